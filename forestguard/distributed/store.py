"""A snapshot read by a Dask cluster, behind the one :class:`~forestguard.stores.base.ZoneStore` interface.

:func:`forestguard.stats.statistics`, the reports and :func:`forestguard.render.maps.store_map`
take it like any store. This process reads only the manifest; every zone is read by a worker
(:mod:`.partitions`), and a partition the manifest shows cannot hold the zones asked for is
never read at all. Evidence filters and groups (``--overlaps``, ``--by suggested``) run on the
workers too, each task on its zones' evidence (:mod:`.evidence`); this process reads the
evidence files only for what is not a zone statistic (layers, their features, a zone's findings).
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import snapshots, storage, stores
from ..areas.shape import Area
from ..config import settings
from ..errors import ReadOnlyStore, UserError
from ..stores import inside
from ..stores.base import AGGREGATE_COLUMNS, ZoneFilter, ZoneStore, check_group_keys
from ..stores.evidence_records import ZoneEvidence
from ..stores.snapshot import EvidenceFiles, SnapshotEvidence, local_file
from . import partitions
from .cluster import LOCAL, cluster, probe, scheduler_for
from .partitions import Partition

#: Partial map aggregates summed per task of the reduction tree (each the window of pixels its partitions drew on).
MAP_SPLIT_EVERY = 4
#: Lon/lat margin around a view when choosing the zones drawn (projection round-off; never visible).
_VIEW_MARGIN_DEG = 1e-6


def check_usable(url: str, scheduler: str) -> None:
    """Fail in one line, before any work, when ``url`` is no snapshot or nothing listens at ``scheduler``."""
    if not url or stores.engine_of(url) != "snapshot":
        raise UserError(f"--dask reads snapshots, and {url or 'the default store'!r} is not one: take one with "
                        "'forestguard snapshot create' and pass --db snapshot:PATH (or s3://…)")
    if scheduler.strip().lower() != LOCAL:
        probe(scheduler)


def open_store(url: str, scheduler: str) -> "DaskSnapshotStore":
    """The snapshot ``url`` on the cluster ``scheduler`` names (``local`` starts one); closing the store lets it go.

    Only snapshots can be read by workers: any other store is a one-line error.
    """
    check_usable(url, scheduler)
    folder, manifest = snapshots.locate(url)  # the manifest only: no file is fetched here
    stack = contextlib.ExitStack()
    try:
        client = stack.enter_context(cluster(scheduler))
        return DaskSnapshotStore(url, folder.url, manifest, client, on_close=stack.close)
    except BaseException:
        stack.close()
        raise


def scheduler_of(url: str, dask: str | None = None) -> str | None:
    """The Dask scheduler that reads ``url``, or None for its own engine.

    The cluster is ``dask`` (a command's ``--dask``), else ``FORESTGUARD_DASK``; ``dask=""``
    means the embedded engine whatever the environment. FORESTGUARD_DASK applies to
    snapshots only (other stores are read by their own engine); an explicit ``--dask``
    with a store that is not a snapshot is kept, and refused where it is used (:func:`check_usable`).
    """
    scheduler = None if dask == "" else scheduler_for(dask)
    return scheduler if scheduler and (dask or stores.engine_of(url) == "snapshot") else None


def open_for_reading(url: str | None, dask: str | None = None) -> ZoneStore:
    """The store a command or report reads: ``url`` on a Dask cluster (:func:`scheduler_of`), or as :func:`forestguard.stores.open` opens it."""
    url = url or settings().store_url
    scheduler = scheduler_of(url, dask)
    return open_store(url, scheduler) if scheduler else stores.open(url, read_only=True)


def _combine(frames: Sequence[pd.DataFrame], keys: Sequence[str]) -> pd.DataFrame:
    """Partitions' exact sums added per group (Decimals stay exact; a group without confidence keeps None)."""
    def missing(value: Any) -> bool:
        return value is None or value != value  # NULL comes back as None or NaN (pandas' missing text)

    totals: dict[tuple, list[Any]] = {}
    for frame in frames:
        for row in frame.itertuples(index=False, name=None):
            group = tuple(None if missing(v) else v for v in row[: len(keys)])
            values = [None if missing(v) else v for v in row[len(keys):]]
            seen = totals.get(group)
            if seen is None:
                totals[group] = values
                continue
            for i, value in enumerate(values):
                if value is not None:
                    seen[i] = value if seen[i] is None else seen[i] + value
    order = sorted(totals, key=lambda group: tuple((v is None, v if v is not None else "") for v in group))
    return pd.DataFrame([[*group, *totals[group]] for group in order], columns=[*keys, *AGGREGATE_COLUMNS])


class DaskSnapshotStore(SnapshotEvidence, ZoneStore):
    """Zones of one snapshot, computed partition by partition on a Dask cluster; read-only."""

    engine = "dask"
    read_only = True
    draws_maps = True

    def __init__(self, url: str, folder: str, manifest: snapshots.Manifest, client: Any, *, on_close: Callable[[], None] | None = None) -> None:
        super().__init__(url)
        self.folder = folder
        self.manifest = manifest
        self.client = client
        self._on_close = on_close
        self._close_evidence: Callable[[], None] | None = None

    # -- planning ----------------------------------------------------------------------------------
    def partitions(self, where: ZoneFilter = ZoneFilter()) -> list[Partition]:
        """The partitions that may hold zones ``where`` selects (the others are never read)."""
        return [Partition.of(self.folder, self.manifest, f) for f in self.manifest.files if f.may_hold(where)]

    def _submit(self, function: Callable[..., Any], parts: Sequence[Partition], *args: Any) -> list[Any]:
        """``function(part, *args)`` for every partition, each on the worker that had it last time if it can.

        A worker keeps what it fetched (S3 copies, hashes checked, map layers): sending a
        partition to the same worker again (a stable hash of its name over the workers there
        are) saves doing that twice. It is a preference only: when that worker is busy or
        gone, another one takes the task.
        """
        workers = sorted(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        return [
            self.client.submit(function, part, *args, pure=False, allow_other_workers=True,
                               workers=[workers[zlib.crc32(f"{part.manifest.id}/{part.file.path}".encode()) % len(workers)]] if workers else None)
            for part in parts
        ]

    def _run(self, function: Callable[..., Any], parts: Sequence[Partition], *args: Any) -> list[Any]:
        """``function(part, *args)`` for every partition, on the workers; results in partition order."""
        if not parts:
            return []
        futures = self._submit(function, parts, *args)
        try:
            return self.client.gather(futures)
        finally:
            for future in futures:
                future.release()

    # -- evidence: read by the workers, each task its zones' rows (see .evidence) ------------------------
    def _evidence_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """The evidence reads that are not zone statistics (layers, features, state, runs, findings), run here.

        On the snapshot's evidence files, each fetched the first time a read names it: a
        dossier's or a plot table's reads, small next to the zones, which stay on the workers.
        """
        return self._evidence_files.rows(sql, params)

    def _ids_in(self, column: str) -> str:
        return EvidenceFiles.ids_in(column)

    def zones_evidence(self, zone_ids: Sequence[int]) -> list[ZoneEvidence]:
        """Each zone's class and year read by the workers, its evidence here: the engine's own query, on just these zones."""
        if not len(zone_ids):
            return []
        with self._evidence_files.with_zones(self.zones_by_id(zone_ids, ["classification", "year"])):
            return super().zones_evidence(zone_ids)

    @functools.cached_property
    def _evidence_files(self) -> EvidenceFiles:
        files = EvidenceFiles(self.folder, self.manifest)
        self._close_evidence = files.close
        return files

    def _check_evidence(self, where: ZoneFilter, names: Sequence[str] | None = ()) -> None:
        """Refuse here, in one line and before any task, what needs evidence of a snapshot that carries none (as the embedded engine does)."""
        if where.overlaps or "suggested" in (names or ()):
            self.require_evidence()

    # -- reading ------------------------------------------------------------------------------------
    def data_version(self) -> int:
        return self.manifest.data_version

    def role(self) -> str:
        return "snapshot"

    def aggregate(self, where: ZoneFilter, by: Sequence[str]) -> pd.DataFrame:
        keys = check_group_keys(by)
        self._check_evidence(where, keys)
        if where.area is not None:  # the workers find candidates; the one exact test and fsum run here (see inside)
            return inside.aggregate(self, where, keys)
        return _combine(self._run(partitions.aggregate, self.partitions(where), where, keys), keys)

    def count(self, where: ZoneFilter = ZoneFilter()) -> int:
        if where.area is not None:
            return inside.count(self, where)
        frame = self.aggregate(where, [])
        return int(frame["zones"].sum()) if len(frame) else 0

    def zones_arrow(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, limit: int | None = None, offset: int = 0) -> pa.Table:
        """Gathered from the partitions, sorted by country, year, id (a page with ``limit``/``offset``)."""
        self._check_evidence(where, columns)
        if where.area is not None:
            if offset:
                raise ValueError("zones of an area are not paged")
            return inside.zones_arrow(self, where, columns, limit)
        wanted = list(columns) if columns else None
        sort_keys = [k for k in ("country", "year", "id") if wanted is None or k in wanted]
        tables = self._run(partitions.zones, self.partitions(where), where, wanted)
        if not tables:
            with self._any_partition() as store:
                return store.zones_arrow(ZoneFilter(countries=("\x00",)), wanted)  # the right columns, no rows
        table = pa.concat_tables(tables)
        if sort_keys:
            table = table.sort_by([(k, "ascending") for k in sort_keys])
        return table.slice(int(offset), None if limit is None else int(limit))

    def zone_batches(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, batch_rows: int = 250_000) -> Iterator[pa.Table]:
        """One partition's zones at a time (bounded memory here: a partition, not the selection)."""
        self._check_evidence(where, columns)
        if where.area is not None:
            yield from inside.batches(self, where, columns, batch_rows)
            return
        for part in self.partitions(where):
            yield from self._run(partitions.zones, [part], where, list(columns) if columns else None)

    def _area_candidates(self, where: ZoneFilter, box: tuple[float, float, float, float], columns: Sequence[str],
                         batch_rows: int) -> Iterator[pa.Table]:
        """An area's candidate zones, read by the workers from the partitions that meet ``box``; one partition's here at a time."""
        self._check_evidence(where, columns)
        near = where.narrowed(ZoneFilter(bbox=tuple(box)))  # type: ignore[arg-type]
        parts = self.partitions(near) if near is not None else []
        futures = self._submit(partitions.candidates, parts, where, tuple(box), list(columns)) if parts else []
        try:
            for future in futures:
                table = future.result()
                future.release()
                if table is not None:
                    yield table
        finally:
            for future in futures:
                future.release()

    # -- saved areas: the file the snapshot carries (read here: it is small) ---------------------------
    def saved_areas(self) -> list[Area]:
        return [self._areas[name] for name in sorted(self._areas)]

    def _saved_area(self, name: str) -> Area | None:
        return self._areas.get(name)

    @functools.cached_property
    def _areas(self) -> dict[str, Area]:
        """The manifest's areas file, fetched and checked as a partition is."""
        entry = self.manifest.areas
        if entry is None:
            return {}
        table = pq.read_table(local_file(storage.at(self.folder), self.manifest, entry))
        return {row["name"]: Area(name=row["name"], wkb=bytes(row["geometry"]), sha256=row["sha256"], source=row["source_file"] or "",
                                  added_at=row["added_at"]) for row in table.to_pylist()}

    def zone_geometries(self, ids: Sequence[int]) -> pa.Table:
        wanted = sorted({int(i) for i in ids})
        tables = self._run(partitions.geometries, self.partitions(), wanted) if wanted else []
        if not tables:
            return pa.table({"id": pa.array([], pa.int32()), "geometry": pa.array([], pa.binary())})
        return pa.concat_tables(tables)

    def zones_by_id(self, ids: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
        """The zones ``ids`` from every partition (ids say nothing of where a zone is), sorted by id."""
        wanted = sorted({int(i) for i in ids})
        columns = list(columns) if columns else None
        tables = self._run(partitions.by_id, self.partitions(), wanted, columns) if wanted else []
        if not tables:
            with self._any_partition() as store:
                return store.zones_arrow(ZoneFilter(countries=("\x00",)), columns)
        return pa.concat_tables(tables).sort_by("id")

    @contextlib.contextmanager
    def _any_partition(self) -> Iterator[ZoneStore]:
        with Partition.of(self.folder, self.manifest, self.manifest.files[0]).open() as store:
            yield store

    # -- maps ----------------------------------------------------------------------------------------
    def map_extent(self, where: ZoneFilter) -> tuple[float, float, float, float] | None:
        """Web Mercator extent of the zones ``where`` selects (what a map fits to), from each partition's bbox covering."""
        from ..render.geometry import mercator_box

        self._check_evidence(where)
        boxes = [b for b in self._run(partitions.extent, self.partitions(where), where) if b is not None]
        if not boxes:
            return None
        box = np.array(boxes, dtype=np.float64)
        return mercator_box((float(box[:, 0].min()), float(box[:, 1].min()), float(box[:, 2].max()), float(box[:, 3].max())))

    def map_aggregate(self, where: ZoneFilter, x_range: tuple[float, float], y_range: tuple[float, float], width: int, height: int,
                      measure: str = "area_ha"):
        """The map aggregate of :func:`forestguard.render.aggregate` over the zones ``where`` selects, drawn on the workers.

        Each partition that meets the view draws its zones (the embedded engine's map layer and
        datashader calls); a tree of sums on the workers adds the partial aggregates (each only the
        window of pixels its compact region covers), and only the total comes back. Equal to the embedded engine's aggregate up to the order of floating-point
        sums; the cap on polygons per view (MAX_VIEW_POLYGONS) applies per partition here.
        """
        from ..render.geometry import to_lonlat
        from ..render.raster import MEASURES, empty_aggregate

        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
        self._check_evidence(where)
        out = empty_aggregate(x_range, y_range, width, height, measure)
        x_range, y_range = out.attrs["x_range"], out.attrs["y_range"]
        lon, lat = to_lonlat(np.array(x_range), np.array(y_range))
        view = ZoneFilter(bbox=(float(lon[0]) - _VIEW_MARGIN_DEG, float(lat[0]) - _VIEW_MARGIN_DEG,
                                float(lon[1]) + _VIEW_MARGIN_DEG, float(lat[1]) + _VIEW_MARGIN_DEG))
        in_view = where.narrowed(view)  # a partition whose zones all miss the view puts nothing on it
        parts = self.partitions(in_view) if in_view is not None else []
        counts = {"points": 0, "polygons": 0, "as_points": 0}
        if parts:
            # Each partition draws all its zones ``where`` selects (datashader clips to the view): the layer a
            # worker keeps for it then serves every later view of the same zones. A tree of sums on the workers.
            level = self._submit(partitions.map_aggregate, parts, where, x_range, y_range, int(width), int(height), measure)
            while len(level) > 1:
                level = [self.client.submit(partitions.add_maps, *level[i : i + MAP_SPLIT_EVERY], pure=False)
                         for i in range(0, len(level), MAP_SPLIT_EVERY)]
            (row, col), window, counts = level[0].result()
            out.data[row : row + window.shape[0], col : col + window.shape[1]] = window
        out.attrs.update(counts, partitions=len(parts))
        return out

    # -- the rest of the interface -----------------------------------------------------------------
    def insert(self, zones, *, files=(), again=False) -> int:
        raise ReadOnlyStore(f"snapshot {self.manifest.id} is read-only: ingest into the store it came from, then take a new snapshot")

    def describe(self) -> dict:
        workers = len(self.client.scheduler_info().get("workers", {}))
        return {**super().describe(), "snapshot": self.manifest.id, "created_at": self.manifest.created_at,
                "scheduler": self.client.scheduler.address, "workers": workers, "partitions": len(self.manifest.files)}

    def close(self) -> None:
        if self._close_evidence is not None:
            close_evidence, self._close_evidence = self._close_evidence, None
            close_evidence()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()
