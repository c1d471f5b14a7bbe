"""Ingest: read → map columns → validate → load, all or nothing.

Every file of an invocation is opened before the store is touched (big ones are then
streamed in batches rather than held whole), and the load is one transaction: the store
takes each batch of validated records while the next is read and checked, and a reject
found later rolls the transaction back (an embedded store the load created is removed
again), so nothing is half-written and memory holds a batch or two, not the load. With ``skip_invalid`` the good records load
and the bad ones go to a rejects file with their reasons.

Each file's content is hashed first: a file the store has a load record of is refused
before anything is read (and again inside the load's transaction, which writes the new
records), unless ``again`` (see :mod:`forestguard.loads`).
"""

from __future__ import annotations

import csv
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import geopandas as gpd
import pandas as pd

from . import stores
from .config import settings
from .errors import StoreUnavailable, UserError
from .loads import FileLoad, LoadRecord, plan, refuse_repeats
from .sources import READ_PROBLEMS, ColumnMapping, open_zones_file
from .streams import map_ahead, read_ahead
from .validation import Reject, validate

MAX_SHOWN_REJECTS = 20
#: Batches validated at once, each in a thread.
VALIDATION_THREADS = 2
#: Records validated at a time: big enough for vectorised checks, small enough to overlap the load.
#: Eight or so batches are in flight (read ahead, two being checked, checked ahead, being inserted):
#: 1M demo zones from GeoParquet peaked at 1,571 MB with 100,000 (over the 1,536 MB budget), 987 MB
#: with 25,000, and ran no slower (9.9 s vs 8.9 s).
BATCH_ROWS = 25_000
T = TypeVar("T")


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
    files: list[FileLoad] = field(default_factory=list)
    alerts: int = 0  #: deliveries recorded for watched areas the new zones met
    delivery: str | None = None  #: what sending them right after the load did (a failing webhook never fails the ingest)


def prepare(
    paths: Sequence[str | Path],
    *,
    mapping: ColumnMapping = ColumnMapping(),
    repair: bool = False,
    on_file: Callable[[str, int], None] | None = None,
) -> tuple[gpd.GeoDataFrame, IngestResult]:
    """Read and validate every file; return the clean zones and what was found."""
    _check_distinct(paths)
    result = IngestResult()
    frames = list(validated_batches(read_files(paths, mapping, result), result, repair=repair, on_file=on_file))
    if not frames:
        return gpd.GeoDataFrame(), result
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326), result


def read_files(paths: Sequence[str | Path], mapping: ColumnMapping, result: IngestResult) -> list[tuple[str, Iterable[pd.DataFrame]]]:
    """Open every file and map its columns: a file that cannot be opened fails the run before any write.

    Small files are read now; big ones are streamed (see
    :func:`~forestguard.sources.open_zones_file`) as the batches are asked for,
    their ``--map`` names checked now against the columns the file declares.
    """
    files: list[tuple[str, Iterable[pd.DataFrame]]] = []
    for path in paths:
        source = open_zones_file(path)
        result.read += source.features
        if source.frame is not None:
            mapped, line = mapping.apply(source.frame, str(path))
            files.append((str(path), [mapped]))
        else:
            header = gpd.GeoDataFrame({c: [] for c in source.columns}, geometry=gpd.GeoSeries([], crs=4326))
            line = mapping.apply(header, str(path))[1]
            # A thread reads the next batch (GDAL and Arrow, outside the GIL) while this one is validated.
            mapped_batches = (mapping.apply(batch, str(path))[0] for batch in source.batches(BATCH_ROWS))
            files.append((str(path), read_ahead(mapped_batches)))
        result.column_lines.append(line)
    return files


def validated_batches(
    files: list[tuple[str, Iterable[pd.DataFrame]]],
    result: IngestResult,
    *,
    repair: bool = False,
    stop_at_reject: bool = False,
    on_file: Callable[[str, int], None] | None = None,
    batch_rows: int | None = None,
) -> Iterator[gpd.GeoDataFrame]:
    """Validate ``batch_rows`` records at a time, adding rejects to ``result``; yield the clean zones.

    Records are numbered from the start of their file, whether it was read whole or
    streamed. With ``stop_at_reject`` nothing more is yielded once a record fails, but
    every record is still checked so that the error lists all of them.
    """
    step = batch_rows or BATCH_ROWS

    def chunks() -> Iterator[tuple[str, int | None, pd.DataFrame | None, range | None]]:
        """(file, records so far when the file ends, chunk, its feature numbers) in file order."""
        for path, frames in files:
            offset = 0  # features of this file before the current frame
            for frame in frames:
                problems = frame.attrs.get(READ_PROBLEMS) or {}
                for start in range(0, len(frame), step):
                    stop = min(start + step, len(frame))
                    chunk = frame.iloc[start:stop]
                    chunk.attrs = {**frame.attrs, READ_PROBLEMS: {r - start: p for r, p in problems.items() if start <= r < stop}}
                    yield path, None, chunk, range(offset + start, offset + stop)
                offset += len(frame)
            yield path, offset, None, None

    def check(item: tuple[str, int | None, pd.DataFrame | None, range | None]):
        path, _, chunk, features = item
        return None if chunk is None else validate(chunk, file=path, repair=repair, features=features)

    # Two batches are checked at once (shapely and NumPy work outside the GIL: both cores), in order.
    for (path, done, _, _), checked in map_ahead(check, chunks(), workers=VALIDATION_THREADS):
        if checked is None:
            if on_file:
                on_file(path, done)
            continue
        result.rejected.extend(checked.rejects)
        if len(checked.zones) and not (stop_at_reject and result.rejected):
            yield checked.zones


def ingest(
    paths: Sequence[str | Path],
    db: str | None = None,
    *,
    mapping: ColumnMapping = ColumnMapping(),
    repair: bool = False,
    skip_invalid: str | Path | None = None,
    on_file: Callable[[str, int], None] | None = None,
    again: bool = False,
    deliver_alerts: bool = True,
) -> IngestResult:
    """Load zones from files into the store ``db``; raise :class:`IngestRejected` on any bad record.

    :class:`~forestguard.loads.AlreadyLoaded` when a file's content was loaded before (nothing
    is loaded), unless ``again``. Zones meeting watched areas record alerts in the load's
    transaction; they are sent right after it (``deliver_alerts``), and whatever a webhook
    does, the load stands.
    """
    url = db or settings().store_url
    stores.engine_of(url)  # a store URL nobody can open fails before the reading
    _check_distinct(paths)
    if skip_invalid is not None and _same_file(skip_invalid, paths):
        raise UserError(f"{skip_invalid}: the rejects file would overwrite an input file")
    result = IngestResult()
    result.files = plan(paths)
    if not again:
        refuse_repeats(result.files, {r.sha256: r for r in loaded_before(url, [f.sha256 for f in result.files])})
    files = read_files(paths, mapping, result)
    batches = validated_batches(files, result, repair=repair, stop_at_reject=skip_invalid is None, on_file=on_file)

    def checked(batches: Iterable[gpd.GeoDataFrame]) -> Iterator[gpd.GeoDataFrame]:
        yield from batches
        # Every record has been seen: refuse now, and the load (if one started) rolls back.
        if result.rejected and skip_invalid is None:
            raise IngestRejected(result.rejected, result.column_lines)
        if skip_invalid is not None:
            # Written even when empty, so an old rejects file never outlives the run that would replace it.
            write_rejects(result.rejected, Path(skip_invalid))

    # The store takes one batch while the next is read and checked in a thread; the load is one
    # transaction, so a record rejected later rolls back what was sent (memory: a batch or two).
    pending = read_ahead(checked(batches))
    first = next(pending, None)  # every record rejected, or none read: refused before the store is touched
    if first is None:
        return result
    created = stores.new_embedded_store(url)
    try:
        with stores.open(url, create=True) as store:
            result.loaded = store.insert_batches(itertools.chain([first], pending), rows=result.read, files=result.files, again=again)
            result.data_version = store.data_version()
            result.engine = store.engine
            result.alerts = store.last_alerts
            if result.alerts and deliver_alerts:
                result.delivery = _deliver(store)
    except BaseException:
        if created:
            stores.remove_embedded_store(url)  # a refused load leaves no empty store behind
        raise
    return result


def loaded_before(db: str | None, sha256s: list[str]) -> list[LoadRecord]:
    """The store's load records of these contents; none when the store does not exist (yet) or keeps none.

    An early look only (it spares reading and validating a file that will be refused): the
    load's own transaction checks again. A store that cannot be reached fails here, at once.
    """
    try:
        with stores.open(db, read_only=True) as store:
            return store.loads(sha256s)
    except StoreUnavailable:
        raise
    except UserError:  # no store yet, or one that needs its migrations (which the load applies)
        return []


def load_status(paths: Sequence[str | Path], db: str | None = None) -> list[tuple[str, str, list[LoadRecord]]]:
    """(file, sha256, its load records) for each file: did it go into the store, and when?"""
    return [(f.file, f.sha256, loaded_before(db, [f.sha256])) for f in plan(paths)]


def _deliver(store: stores.ZoneStore) -> str:
    """Send the alerts just recorded (and any due): the load is committed, so nothing here may fail it."""
    from .alerts.deliver import deliver_due

    try:
        return deliver_due(store).summary()
    except Exception as exc:  # the outbox keeps them; `alerts deliver` (and the schedule) sends them later
        return f"not sent now ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); 'forestguard alerts deliver' will"


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
