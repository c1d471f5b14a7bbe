"""Ingest: read → map columns → validate → load, all or nothing.

Every file of an invocation is read and validated before the store is touched;
the load is one transaction. With ``skip_invalid`` the good records load and
the bad ones go to a rejects file with their reasons.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import geopandas as gpd
import pandas as pd

from . import stores
from .config import settings
from .errors import UserError
from .sources import ColumnMapping, read_zones_file
from .validation import Reject, validate

MAX_SHOWN_REJECTS = 20


class IngestRejected(UserError):
    """Invalid records: nothing was written."""

    def __init__(self, rejects: list[Reject], column_lines: list[str] | None = None) -> None:
        self.rejects = rejects
        self.column_lines = list(column_lines or [])  # which input columns were used, per file
        super().__init__(f"{len(rejects)} invalid record(s); nothing was loaded")

    def lines(self, limit: int = MAX_SHOWN_REJECTS) -> list[str]:
        shown = [str(r) for r in self.rejects[:limit]]
        if len(self.rejects) > limit:
            shown.append(f"… and {len(self.rejects) - limit} more invalid records ({len(self.rejects)} in all)")
        shown.append(f"nothing was loaded: fix the records, use --repair for invalid geometries, or --skip-invalid FILE")
        return shown


@dataclass
class IngestResult:
    loaded: int = 0
    read: int = 0
    rejected: list[Reject] = field(default_factory=list)
    column_lines: list[str] = field(default_factory=list)
    data_version: int | None = None
    engine: str | None = None


def prepare(
    paths: Sequence[str | Path],
    *,
    mapping: ColumnMapping = ColumnMapping(),
    repair: bool = False,
    on_file: Callable[[str, int], None] | None = None,
) -> tuple[gpd.GeoDataFrame, IngestResult]:
    """Read and validate every file; return the clean zones and what was found."""
    result = IngestResult()
    frames = []
    _check_distinct(paths)
    for path in paths:
        raw = read_zones_file(path)
        mapped, line = mapping.apply(raw, str(path))
        result.column_lines.append(line)
        result.read += len(mapped)
        checked = validate(mapped, file=str(path), repair=repair)
        frames.append(checked.zones)
        result.rejected.extend(checked.rejects)
        if on_file:
            on_file(str(path), len(mapped))
    zones = pd.concat(frames, ignore_index=True) if frames else gpd.GeoDataFrame()
    return gpd.GeoDataFrame(zones, geometry="geometry", crs=4326) if len(frames) else zones, result


def ingest(
    paths: Sequence[str | Path],
    db: str | None = None,
    *,
    mapping: ColumnMapping = ColumnMapping(),
    repair: bool = False,
    skip_invalid: str | Path | None = None,
    on_file: Callable[[str, int], None] | None = None,
) -> IngestResult:
    """Load zones from files into the store ``db``; raise :class:`IngestRejected` on any bad record."""
    stores.engine_of(db or settings().store_url)  # a store URL nobody can open fails before the reading
    _check_distinct(paths)
    if skip_invalid is not None and _same_file(skip_invalid, paths):
        raise UserError(f"{skip_invalid}: the rejects file would overwrite an input file")
    zones, result = prepare(paths, mapping=mapping, repair=repair, on_file=on_file)
    if result.rejected and skip_invalid is None:
        raise IngestRejected(result.rejected, result.column_lines)
    if skip_invalid is not None:
        # Written even when empty, so an old rejects file never outlives the run that would replace it.
        write_rejects(result.rejected, Path(skip_invalid))
    if len(zones) == 0:
        return result
    with stores.open(db, create=True) as store:
        result.loaded = store.insert(zones)
        result.data_version = store.data_version()
        result.engine = store.engine
    return result


def _check_distinct(paths: Sequence[str | Path]) -> None:
    """The same file twice would load its zones twice."""
    for i, path in enumerate(paths):
        if _same_file(path, paths[:i]):
            raise UserError(f"{path}: given twice; each file is loaded once")


def _same_file(path: str | Path, others: Sequence[str | Path]) -> bool:
    try:
        return Path(path).resolve() in {Path(p).resolve() for p in others}
    except (OSError, RuntimeError):
        return False


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """CSV of rejected records (file, feature, field, reason), written whole or not at all."""
    try:
        _write_rejects(rejects, path)
    except OSError as exc:
        raise UserError(f"cannot write the rejects file {path}: {exc.strerror or exc}; nothing was loaded") from None


def _write_rejects(rejects: list[Reject], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "feature", "field", "reason"])
            for r in rejects:
                writer.writerow([r.file, r.feature, r.field, r.reason])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
