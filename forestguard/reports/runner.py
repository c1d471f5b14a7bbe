"""Run a report notebook: papermill → executed ``.ipynb``, offline ``.html``, ``stats.json``.

A failed run still leaves the executed notebook (papermill keeps the error
cell) and an HTML page that shows the reason, and is reported as a result
with one error line rather than an exception, so pipelines can carry on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import nbformat
import papermill
import zmq
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from traitlets import default

from .. import storage
from ..config import settings
from ..errors import UserError
from .base import one_line, resolve_source
from .html import export_html
from .record import STATS_FILE, write_json_atomic

log = logging.getLogger("forestguard.reports")

#: Parameters every report notebook declares; the runner sets them, not ``-p``.
RUNNER_PARAMETERS = ("source", "output_dir")
#: Errors that will fail the same way on a retry (bad parameters, not a flaky kernel).
PERMANENT_ERRORS = frozenset({"ReportError", "UserError", "StoreNotFound"})


class _ThisPythonSpecs(KernelSpecManager):
    """Every report kernel is this interpreter's ipykernel.

    A ``python3`` kernelspec elsewhere on the machine (``~/.local/share/jupyter``)
    could point at a Python without ForestGuard; reports must run with the
    environment that launched them, wherever that is (venv, conda, container).
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        from ipykernel.kernelspec import RESOURCES, get_kernel_dict

        # argv starts with sys.executable. The kernel's own log stays quiet: jupyter_client interrupts
        # every kernel it shuts down, which ipykernel logs as an error on the console of every run.
        return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict(["--IPKernelApp.log_level=CRITICAL", *KERNEL_SETUP]))


#: Run in each report kernel before the notebook. In IPython, param writes a parameter table into the
#: docstring of every Parameterized class it creates (for ``?`` help): ~1 s of Panel and HoloViews
#: imports, for help text nobody reads in a kernel that runs once. Researchers' own Jupyter is untouched.
KERNEL_SETUP = ("--IPKernelApp.exec_lines=['import param.parameterized as _p; _p.docstring_describe_params = False; del _p']",)


class ReportKernelManager(AsyncKernelManager):
    """papermill's kernel manager, with kernels always started from :data:`sys.executable`."""

    #: Variables set (a value) or removed (None) in the kernel's environment, e.g. the Dask scheduler a report computes on.
    kernel_environment: ClassVar[dict[str, str | None]] = {}

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.kernel_environment:
            env = dict(kw.get("env") or os.environ)
            for name, value in self.kernel_environment.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
            kw["env"] = env
        await super()._async_launch_kernel(kernel_cmd, **kw)

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return _ThisPythonSpecs(parent=self)

    if "transport_encryption" in AsyncKernelManager.class_trait_names():  # jupyter_client ≥ 8.10

        @default("transport_encryption")
        def _transport_encryption_default(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"  # CurveZMQ on the local sockets when available


@dataclass
class ReportResult:
    """What one report run produced; ``error`` is one line when it failed."""

    notebook: str
    name: str
    parameters: dict[str, Any]
    output: str
    status: str  # "ok" | "failed"
    duration_s: float
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    retryable: bool = False
    source: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slug(text: str) -> str:
    """ASCII, lower case, dashes: safe in file names, URLs and S3 keys ("Côte d'Ivoire" → "cote-d-ivoire")."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "x"


def report_name(notebook: str | Path, parameters: Mapping[str, Any]) -> str:
    """``country_report-brazil-2019-2024``: the notebook and its parameter values, in declaration order."""
    values = [slug(v) for k, v in parameters.items() if k not in RUNNER_PARAMETERS and str(v) != ""]
    return "-".join([Path(notebook).stem, *values])


def notebook_hash(nb: nbformat.NotebookNode) -> str:
    """Hash of what a notebook does (cell types and sources), blind to outputs and metadata churn."""
    cells = [[cell.cell_type, cell.source] for cell in nb.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false")


_CONVERTERS = {"int": int, "float": float, "bool": _bool, "str": str}


def declared_parameters(nb: nbformat.NotebookNode | str | Path) -> dict[str, dict[str, Any]]:
    """The notebook's ``parameters`` cell: name → papermill's description (type, default, help)."""
    declared = papermill.inspect_notebook(nb)
    missing = [name for name in RUNNER_PARAMETERS if name not in declared]
    if missing:
        raise UserError(f"the notebook's parameters cell lacks {', '.join(missing)}: a report notebook declares {', '.join(RUNNER_PARAMETERS)}")
    return declared


def coerce_parameters(declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]) -> dict[str, Any]:
    """Values converted to the types the notebook declares (``-p year=2023`` → ``2023`` for ``year: int``)."""
    coerced: dict[str, Any] = {}
    for name, value in given.items():
        if name not in declared:
            raise UserError(f"unknown parameter {name!r}; the notebook has {', '.join(n for n in declared if n not in RUNNER_PARAMETERS)}")
        kind = declared[name].get("inferred_type_name", "None")
        if kind == "str":
            coerced[name] = value if isinstance(value, str) else str(value)  # YAML's 2023 for years: str
        elif kind in _CONVERTERS and isinstance(value, str):
            try:
                coerced[name] = _CONVERTERS[kind](value)
            except ValueError:
                raise UserError(f"parameter {name}: {value!r} is not a valid {kind}") from None
        else:
            coerced[name] = value
    return coerced


def _failure(exc: BaseException) -> tuple[str, bool]:
    """One error line for a failed run, and whether retrying could help."""
    if isinstance(exc, papermill.PapermillExecutionError):
        return f"{exc.ename}: {one_line(exc.evalue)}", exc.ename not in PERMANENT_ERRORS
    name = type(exc).__name__
    if name == "CellTimeoutError":
        return "timed out (the report took longer than its timeout)", True
    return f"{name}: {one_line(exc, 300)}", True


def _kernel_manager(dask: str | None) -> type[ReportKernelManager]:
    """The kernel manager of a run: ``dask`` None leaves FORESTGUARD_DASK as it is, "" removes it, else sets it."""
    if dask is None:
        return ReportKernelManager
    return type("ReportKernelManager", (ReportKernelManager,), {"kernel_environment": {"FORESTGUARD_DASK": dask or None}})


def _execute(nb: nbformat.NotebookNode, output: Path, parameters: dict[str, Any], cwd: Path, timeout: float | None,
             dask: str | None = None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    papermill.execute_notebook(
        nb,
        str(output),
        parameters=parameters,
        kernel_name="python3",
        kernel_manager_class=_kernel_manager(dask),
        progress_bar=False,
        request_save_on_cell_execute=False,  # one write at the end: the bokeh JS makes each save megabytes
        shutdown_kernel="immediate",  # a report kernel holds nothing to flush; a graceful stop costs a second
        log_output=False,
        cwd=str(cwd),
        start_timeout=60 if timeout is None else max(10.0, min(60.0, timeout)),
        # A per-item deadline, not a per-cell one: each cell gets what is left of it.
        timeout_func=None if deadline is None else (lambda cell: max(1, int(deadline - time.monotonic()))),
    )


def run_report(
    notebook: str | Path,
    params: Mapping[str, Any] | None = None,
    source: str = "",
    out: str | Path | None = None,
    show_code: bool = False,
    *,
    timeout: float | None = None,
    name: str | None = None,
    content: nbformat.NotebookNode | None = None,
    dask: str | None = None,
) -> ReportResult:
    """Execute ``notebook`` with ``params`` on ``source`` and write its report into ``out``.

    ``out`` is a folder or ``s3://bucket/prefix/`` (default: :func:`default_location`). Bad parameters raise
    :class:`~forestguard.errors.UserError` before any kernel starts; a failure
    inside the notebook returns a failed :class:`ReportResult`. ``content``
    runs that notebook instead of the file's (pipelines pin what they hashed). ``dask`` is the
    Dask scheduler the notebook computes a snapshot's statistics and maps on (the kernel's
    FORESTGUARD_DASK; None: as this process's environment says, "": the embedded engine).
    """
    path = Path(notebook)
    if content is None and not path.is_file():
        raise UserError(f"no notebook at {path}")
    nb = content if content is not None else nbformat.read(path, as_version=4)
    given = dict(params or {})
    source = source or str(given.pop("source", "") or "")
    if "output_dir" in given:
        raise UserError("output_dir is set by the runner: use --out")
    parameters = coerce_parameters(declared_parameters(nb), given)
    name = name or report_name(path, parameters)
    target = str(out) if out else default_location(name)
    if storage.is_s3(target):
        storage.at(target).exists(STATS_FILE)  # an unreachable bucket fails now, not after the run
        with tempfile.TemporaryDirectory(prefix="forestguard-report-") as staging:
            result = _run_into(nb, path, parameters, source, Path(staging), name, show_code, timeout, dask)
            storage.publish_dir(Path(staging), target.rstrip("/") + "/")  # files first, manifest.json last
        result.output = target
        return result
    return _run_into(nb, path, parameters, source, Path(target), name, show_code, timeout, dask)


def _run_into(
    nb: nbformat.NotebookNode, path: Path, parameters: dict[str, Any], source: str, folder: Path, name: str, show_code: bool, timeout: float | None,
    dask: str | None = None,
) -> ReportResult:
    folder = folder.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    stats_path, ipynb_path, html_path = folder / STATS_FILE, folder / f"{name}.ipynb", folder / f"{name}.html"
    stats_path.unlink(missing_ok=True)  # a stale file must never pass for this run's numbers
    run_parameters = {**parameters, "source": resolve_source(source), "output_dir": str(folder)}
    started = time.monotonic()
    error, retryable = None, False
    try:
        cwd = path.parent.absolute() if path.parent.is_dir() else folder  # a Dask worker may lack the checkout
        _execute(nb, ipynb_path, run_parameters, cwd, timeout, dask)
    except Exception as exc:  # noqa: BLE001 - any failure of the run is reported, not raised
        error, retryable = _failure(exc)
        log.info("report %s failed: %s", name, error)
    if error is None and not stats_path.exists():
        error = "the notebook did not record stats.json (it must call reports.record(report, output_dir))"
    files = {}
    if ipynb_path.exists():
        executed = nbformat.read(ipynb_path, as_version=4)
        html_path.write_text(export_html(executed, title=_title(path, parameters), show_code=show_code), encoding="utf-8")
        files = {"ipynb": ipynb_path.name, "html": html_path.name}
    recorded = None
    if error is None:
        recorded = _stamp_stats(stats_path, path, nb, parameters, html_path.name)
        files["stats"] = stats_path.name
    return ReportResult(
        notebook=str(path),
        name=name,
        parameters=parameters,
        output=str(folder),
        status="ok" if error is None else "failed",
        duration_s=round(time.monotonic() - started, 2),
        files=files,
        error=error,
        retryable=retryable,
        source=None if recorded is None else recorded.get("source"),
    )


def default_location(name: str) -> str:
    """Where reports go unless told: ``s3://$S3_BUCKET/reports/<name>`` with a bucket, else ``<data dir>/reports/<name>``."""
    config = settings()
    return f"s3://{config.s3_bucket}/reports/{name}" if config.s3_bucket else str(config.reports_dir / name)


def _title(path: Path, parameters: Mapping[str, Any]) -> str:
    values = ", ".join(str(v) for v in parameters.values() if str(v) != "")
    return f"{path.stem.replace('_', ' ').capitalize()}{f' — {values}' if values else ''}"


def _stamp_stats(stats_path: Path, path: Path, nb: nbformat.NotebookNode, parameters: Mapping[str, Any], html_name: str) -> dict[str, Any]:
    """Add how the report was run to the notebook's ``stats.json`` (notebook, its hash, parameters as given)."""
    recorded = json.loads(stats_path.read_text(encoding="utf-8"))
    recorded["run"] = {"notebook": path.name, "notebook_sha256": notebook_hash(nb), "parameters": dict(parameters), "html": html_name}
    write_json_atomic(stats_path, recorded)
    return recorded

