"""``stats.json``: the numbers a report showed, what it read, and how to get them again.

Every statistic is stored as the :class:`~forestguard.stats.Statistics`
contract next to the ``forestguard stats`` command that prints the same JSON,
so anyone can check a published report against the source it names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from .. import __version__
from ..stats import Statistics, statistics
from ..stores.base import ZoneFilter, ZoneStore
from .base import SourceInfo

STATS_FILE = "stats.json"


@dataclass(frozen=True)
class Reported:
    """A statistics result with the query that produced it."""

    where: ZoneFilter
    by: tuple[str, ...]
    result: Statistics
    area_argument: str | None = None  #: what ``--area`` is given (a file's path); default: the area's name

    def command(self, url: str) -> str:
        """The ``forestguard stats`` invocation whose JSON output equals :attr:`result`."""
        args = ["forestguard", "stats", "--db", url]
        if self.where.area is not None:
            args += ["--area", self.area_argument or self.where.area.name]  # a saved area's name, or the file the report read
        for country in self.where.countries:
            args += ["--country", country]
        if self.where.year_from is not None and self.where.year_from == self.where.year_to:
            args += ["--year", str(self.where.year_from)]
        else:
            if self.where.year_from is not None:
                args += ["--from", str(self.where.year_from)]
            if self.where.year_to is not None:
                args += ["--to", str(self.where.year_to)]
        for cls in self.where.classifications:
            args += ["--classification", cls.value]
        for source in self.where.sources:
            args += ["--source", source]
        if self.where.verified_only:
            args.append("--verified-only")
        if self.where.min_confidence is not None:
            args += ["--min-confidence", f"{self.where.min_confidence:g}"]
        for kind in self.where.overlaps:
            args += ["--overlaps", kind]
        return shlex.join([*args, "--by", ",".join(self.by), "--format", "json"])

    def to_dict(self, url: str) -> dict[str, Any]:
        return {"command": self.command(url), **self.result.to_dict()}


def reported(store: ZoneStore, where: ZoneFilter, by: Sequence[str], area_argument: str | None = None) -> Reported:
    """Statistics through the shared cache, exactly as ``forestguard stats`` computes them."""
    from ..cache import default_cache

    return Reported(where, tuple(by), statistics(store, where, by, cache=default_cache()), area_argument)


class Recordable(Protocol):
    """What a report object offers for its ``stats.json``."""

    kind: str
    source: SourceInfo

    @property
    def label(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]: ...

    def reported(self) -> dict[str, Reported]: ...

    def tables(self) -> dict[str, list[dict[str, Any]]]: ...

    def key_changes(self) -> list[str]: ...


def stats_record(report: Recordable) -> dict[str, Any]:
    """The ``stats.json`` document of a report."""
    return {
        "report": report.kind,
        "parameters": report.parameters,
        "source": report.source.to_dict(),
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "forestguard_version": __version__,
        "statistics": {name: r.to_dict(report.source.url) for name, r in report.reported().items()},
        "tables": report.tables(),
        "summary": report.key_changes(),
    }


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON so readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_stats(report: Recordable, output_dir: str | os.PathLike[str] | None) -> Path | None:
    """Write ``stats.json`` into ``output_dir``; an empty ``output_dir`` (interactive use) writes nothing."""
    if not output_dir:
        return None
    return write_json_atomic(Path(output_dir) / STATS_FILE, stats_record(report))
