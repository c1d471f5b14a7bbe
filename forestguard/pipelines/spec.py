"""Pipeline files (``pipelines/*.yaml``): which reports to run, over which parameter grid, how.

A pipeline file::

    name: yearly_reports
    notebook: ../notebooks/country_report.ipynb    # relative to this file
    parameters:                                    # the grid: every combination is one report
      country: {each: country}                     # every country in the source
      years: {each: year, last: 3}                 # each of the source's last 3 years
    source: ""          # store URL or snapshot:PATH; "" = $DATABASE_URL, else data/forestguard.duckdb
    output: ""          # folder or s3://bucket/prefix; "" = <data dir>/reports/<name>
    timeout: 900        # seconds per report
    retries: 2          # extra attempts for failures a retry can fix (not bad parameters)
    backoff: 30         # seconds before the first retry, doubled after each
    workers: 2          # reports run at once (--workers overrides)

Several notebooks: a ``reports:`` list of ``{notebook, parameters}`` instead of
the top-level pair. Grid values are a scalar, a list, or one of
``{each: country}``, ``{each: year [, last: N] [, from: Y] [, to: Y]}``,
``{span: year, last: N}`` (one value: the last N years as a range "2020-2024"),
``{range: "2019-2024"}`` (each year of a fixed range).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..reports.base import one_line

_TOP_KEYS = {"name", "description", "notebook", "parameters", "reports", "source", "output", "timeout", "retries", "backoff", "workers", "show_code"}
_REPORT_KEYS = {"notebook", "parameters"}
_GRID_KEYS = {"each", "span", "range", "last", "from", "to", "except"}


@dataclass(frozen=True)
class ReportSpec:
    """One notebook and its parameter grid (values not yet expanded against the source)."""

    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline file."""

    name: str
    path: Path
    reports: tuple[ReportSpec, ...]
    source: str = ""
    output: str = ""
    timeout: float | None = 900.0
    retries: int = 1
    backoff: float = 30.0
    workers: int = 1
    show_code: bool = False


def _fail(path: Path, message: str) -> UserError:
    return UserError(f"{path}: {message}")


def _check_keys(path: Path, where: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(path, f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _check_grid(path: Path, parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise _fail(path, "parameters must be a mapping of name: value(s)")
    for name, value in parameters.items():
        if isinstance(value, dict):
            _check_keys(path, f"parameters.{name}", value, _GRID_KEYS)
            kinds = [k for k in ("each", "span", "range") if k in value]
            if len(kinds) != 1:
                raise _fail(path, f"parameters.{name}: give exactly one of each:, span: or range:")
            if value.get("each", value.get("span", "year")) not in ("country", "year"):
                raise _fail(path, f"parameters.{name}: each/span is 'country' or 'year'")
            if "span" in value and "last" not in value:
                raise _fail(path, f"parameters.{name}: span: year needs last: N")
            for bound in ("last", "from", "to"):
                if bound in value and not isinstance(value[bound], int):
                    raise _fail(path, f"parameters.{name}.{bound} must be a whole number")
        elif isinstance(value, list) and not value:
            raise _fail(path, f"parameters.{name}: an empty list gives no reports")
    return dict(parameters)


def _number(path: Path, data: dict[str, Any], key: str, default: float | None, kind: type, minimum: float) -> Any:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum or (kind is int and int(value) != value):
        raise _fail(path, f"{key} must be a {'whole ' if kind is int else ''}number ≥ {minimum:g}")
    return kind(value)


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline file; every mistake is a one-line :class:`UserError`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no pipeline file at {path}") from None
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML: {one_line(exc)}") from None
    if not isinstance(data, dict):
        raise _fail(path, "a pipeline file is a mapping (name:, notebook:, parameters:, …)")
    _check_keys(path, "pipeline", data, _TOP_KEYS)
    if ("notebook" in data) == ("reports" in data):
        raise _fail(path, "give either notebook: (with parameters:) or a reports: list")
    entries = [{"notebook": data["notebook"], "parameters": data.get("parameters")}] if "notebook" in data else data["reports"]
    if not isinstance(entries, list) or not entries:
        raise _fail(path, "reports: must be a non-empty list of {notebook, parameters}")
    reports = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "notebook" not in entry:
            raise _fail(path, f"reports[{index}] needs a notebook:")
        _check_keys(path, f"reports[{index}]", entry, _REPORT_KEYS)
        notebook = (path.parent / str(entry["notebook"])).resolve()
        if not notebook.is_file():
            raise _fail(path, f"notebook {entry['notebook']} not found (paths are relative to the pipeline file)")
        reports.append(ReportSpec(notebook, _check_grid(path, entry.get("parameters"))))
    return PipelineSpec(
        name=str(data.get("name") or path.stem),
        path=path.resolve(),
        reports=tuple(reports),
        source=str(data.get("source") or ""),
        output=str(data.get("output") or ""),
        timeout=_number(path, data, "timeout", 900.0, float, 1),
        retries=_number(path, data, "retries", 1, int, 0),
        backoff=_number(path, data, "backoff", 30.0, float, 0),
        workers=_number(path, data, "workers", 1, int, 1),
        show_code=bool(data.get("show_code", False)),
    )
