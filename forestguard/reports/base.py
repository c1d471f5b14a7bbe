"""What every report shares: its error type, year ranges and the source it reads.

A report is reproducible only if it says exactly what it read, so opening a
source here also pins it down (:class:`SourceInfo`: engine, data version and
snapshot id) for ``stats.json`` and for pipeline run keys.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import stores
from ..config import redact, settings
from ..errors import UserError
from ..stores.base import ZoneStore


def one_line(text: object, limit: int = 500) -> str:
    """Text on one line (error messages go into tables, logs and summaries)."""
    return " ".join(str(text).split())[:limit]


class ReportError(UserError):
    """A report that cannot be produced from its parameters (unknown country, year without data…).

    In a notebook it shows as one readable line instead of a traceback
    (IPython's ``_render_traceback_`` hook); the runner turns it into a failed
    report whose reason is that line.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[1;31mReport not produced:\x1b[0m {self}"]


@dataclass(frozen=True)
class YearRange:
    """Inclusive years a report covers; ``None`` ends are open (every year in the source)."""

    first: int | None = None
    last: int | None = None

    @property
    def label(self) -> str:
        if self.first is None and self.last is None:
            return "all years"
        if self.first == self.last:
            return str(self.first)
        return f"{self.first or '…'}–{self.last or '…'}"

    def __contains__(self, year: object) -> bool:
        return isinstance(year, int) and (self.first is None or year >= self.first) and (self.last is None or year <= self.last)


_YEARS = re.compile(r"^\s*(?P<first>\d{4})?\s*(?:(?P<dash>[-–:]|\.\.)\s*(?P<last>\d{4})?)?\s*$")


def parse_years(text: str | int | None) -> YearRange:
    """``"2019-2024"``, ``"2023"``, ``2023``, ``"2019-"`` or ``""`` (every year) as a :class:`YearRange`."""
    if text is None or isinstance(text, int):
        return YearRange(text, text)
    match = _YEARS.match(str(text))
    if not match:
        raise ReportError(f"years {text!r} is not a year or a range like 2019-2024")
    first = int(match["first"]) if match["first"] else None
    last = int(match["last"]) if match["last"] else (None if match["dash"] else first)
    if first is not None and last is not None and first > last:
        raise ReportError(f"years {text!r}: {first} is after {last}")
    return YearRange(first, last)


def match_name(wanted: str, known: list[str], what: str) -> str:
    """The stored spelling of ``wanted`` (case-insensitive), or a ReportError with suggestions."""
    folded = {name.casefold(): name for name in known}
    if wanted.strip().casefold() in folded:
        return folded[wanted.strip().casefold()]
    close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(known[:12]) + (f", … ({len(known)} in all)" if len(known) > 12 else "")
    raise ReportError(f"unknown {what} {wanted!r}.{hint} The source has: {listed or 'no zones at all'}.")


@dataclass(frozen=True)
class SourceInfo:
    """Exactly what a report read: recorded in ``stats.json`` and part of pipeline run keys."""

    engine: str
    url: str
    data_version: int
    snapshot_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        snapshot = f", snapshot {self.snapshot_id}" if self.snapshot_id else ""
        return f"{self.engine} {self.url} (data version {self.data_version}{snapshot})"


def source_info(store: ZoneStore) -> SourceInfo:
    manifest = getattr(store, "manifest", None)  # a snapshot store carries the manifest it reads
    return SourceInfo(
        engine=store.engine,
        url=redact(store.url),
        data_version=store.data_version(),
        snapshot_id=getattr(manifest, "id", None),
    )


def resolve_source(source: str = "") -> str:
    """The store URL a report reads: ``source``, else ``$DATABASE_URL``, else the embedded store.

    A relative local path that does not exist from the current folder is also
    looked for in its parents, so a notebook opened from ``notebooks/`` finds
    the project's ``data/forestguard.duckdb`` (Jupyter starts kernels in the
    notebook's folder). Local paths come back absolute so that kernels started
    elsewhere (pipelines, Dask workers) read the same store.
    """
    url = source.strip() or settings().store_url
    prefix, path = ("snapshot:", url.removeprefix("snapshot:")) if url.startswith("snapshot:") else ("", url)
    if "://" in path:
        return url
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and not candidate.exists():
        for parent in Path.cwd().parents:
            if (parent / candidate).exists():
                candidate = parent / candidate
                break
    return prefix + str(candidate.absolute())


def open_source(source: str = "", *, dask: str | None = None) -> ZoneStore:
    """Open a report's source read-only; a source that cannot be opened is a :class:`ReportError`.

    Read-only lets many report kernels share one DuckDB file at once. A snapshot is read on
    the Dask cluster FORESTGUARD_DASK names, if any (``dask``: another one; "": none).
    """
    from ..distributed import open_for_reading

    try:
        return open_for_reading(resolve_source(source), dask)
    except ReportError:
        raise
    except UserError as exc:
        raise ReportError(str(exc)) from None
