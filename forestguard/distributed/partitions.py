"""What a Dask worker does with one partition of a snapshot: the embedded engine's own code, on one file.

Each task opens its file as a one-partition :class:`~forestguard.stores.snapshot.SnapshotStore`:
the file is fetched (S3) or found (a shared folder), checked against the manifest's sha256
before a byte of it is read, and queried by DuckDB with the same SQL as the embedded engine.
Tasks are pure functions of their arguments, so Dask may run one again on another worker
when a worker dies, and the answer does not change.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import snapshots
from ..schema import TABLE
from ..stores.base import ZoneFilter
from ..stores.snapshot import SnapshotStore
from . import evidence


@dataclass(frozen=True)
class Partition:
    """One file of a snapshot and what a worker needs to read it (small: the manifest keeps only this file)."""

    folder: str  # the snapshot's folder: a path the workers share, or s3://…
    manifest: snapshots.Manifest
    file: snapshots.SnapshotFile

    @classmethod
    def of(cls, folder: str, manifest: snapshots.Manifest, file: snapshots.SnapshotFile) -> "Partition":
        return cls(folder, replace(manifest, files=(file,), areas=None, location=None), file)

    def open(self) -> "PartitionStore":
        return PartitionStore(self)


class PartitionStore(SnapshotStore):
    """One partition of a snapshot as a store; its zones' evidence is read the first time a query needs it.

    The embedded engine asks :meth:`require_evidence` before every query that reads evidence
    (an ``overlaps`` filter, a ``suggested`` group or column): that is when the rows of this
    partition's zones are taken from the worker's copy of the snapshot's evidence
    (:mod:`.evidence`), so a query without evidence costs nothing more.
    """

    def __init__(self, part: Partition) -> None:
        super().__init__(part.folder, manifest=part.manifest, files=(part.file,))
        self._folder = part.folder
        self._evidence_ready = False

    def require_evidence(self) -> None:
        super().require_evidence()
        if self._evidence_ready:
            return
        with self._lock:
            if not self._evidence_ready:
                ids = self._cursor().execute(f"SELECT id FROM {TABLE}").fetchnumpy()["id"]
                self.use_evidence(evidence.of_snapshot(self._folder, self.manifest).tables_for(ids))
                self._evidence_ready = True


def aggregate(part: Partition, where: ZoneFilter, keys: Sequence[str]) -> pd.DataFrame:
    """Exact sums per group of the partition's zones (:meth:`ZoneStore.aggregate`)."""
    with part.open() as store:
        return store.aggregate(where, keys)


def zones(part: Partition, where: ZoneFilter, columns: Sequence[str] | None) -> pa.Table:
    """The partition's zones ``where`` selects (geometry as WKB)."""
    with part.open() as store:
        return store.zones_arrow(where, columns)


def candidates(part: Partition, where: ZoneFilter, box: tuple[float, float, float, float], columns: Sequence[str]) -> pa.Table | None:
    """The partition's zones ``where`` selects whose covering meets the lon/lat ``box`` (an area's candidates; None: none)."""
    with part.open() as store:
        tables = [t for t in store._area_candidates(where, box, columns, 250_000) if len(t)]
    return pa.concat_tables(tables) if tables else None


def geometries(part: Partition, ids: Sequence[int]) -> pa.Table:
    with part.open() as store:
        return store.zone_geometries(ids)


def by_id(part: Partition, ids: Sequence[int], columns: Sequence[str] | None) -> pa.Table:
    """The zones ``ids`` this partition holds (``id`` and ``columns``)."""
    import pyarrow.compute as pc

    with part.open() as store:
        table = store.zones_arrow(ZoneFilter(), list(dict.fromkeys(["id", *columns])) if columns else None)
    return table.filter(pc.is_in(table.column("id"), value_set=pa.array(list(ids), pa.int32())))


def extent(part: Partition, where: ZoneFilter) -> tuple[float, float, float, float] | None:
    """Lon/lat extent of the partition's zones ``where`` selects, from the bbox covering (no WKB decoded)."""
    with part.open() as store:
        return store.extent(where)


#: A partition's part of a map: (first row, first column) of its window, the window's values, its zone counts.
MapPart = tuple[tuple[int, int], np.ndarray, dict[str, int]]


def map_aggregate(part: Partition, where: ZoneFilter, x_range: tuple[float, float], y_range: tuple[float, float],
                  width: int, height: int, measure: str) -> MapPart:
    """The partition's map aggregate: its zones as the embedded engine's map layer, drawn by :func:`forestguard.render.aggregate`.

    Small zones are area-weighted points, bigger ones polygons read from this partition
    by id: the embedded path exactly, on this partition's zones. Only the window of pixels it
    drew on is returned (a partition covers a compact region: most of a wide view is empty),
    with how many zones were drawn each way.
    """
    from ..render.raster import aggregate as draw

    agg = draw(_layer(part, where), x_range, y_range, width, height, measure=measure)  # type: ignore[arg-type]
    values = agg.values
    counts = {k: int(agg.attrs[k]) for k in ("points", "polygons", "as_points")}
    drawn = values.any(axis=2)
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    if not len(rows):
        return (0, 0), values[:0, :0], counts
    window = values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    return (int(rows[0]), int(cols[0])), window, counts


def add_maps(*parts: MapPart) -> MapPart:
    """Partitions' map windows as one, added in order (a tree of these sums them on the workers)."""
    return functools.reduce(_add_two, parts)


def _add_two(a: MapPart, b: MapPart) -> MapPart:
    """Two windows in the window holding both (adding zeros changes no sum)."""
    (ra, ca), va, counts_a = a
    (rb, cb), vb, counts_b = b
    counts = {k: counts_a[k] + counts_b[k] for k in counts_a}
    if not vb.size:
        return (ra, ca), va, counts
    if not va.size:
        return (rb, cb), vb, counts
    top, left = min(ra, rb), min(ca, cb)
    bottom, right = max(ra + va.shape[0], rb + vb.shape[0]), max(ca + va.shape[1], cb + vb.shape[1])
    out = np.zeros((bottom - top, right - left, va.shape[2]), dtype=np.float64)
    out[ra - top : ra - top + va.shape[0], ca - left : ca - left + va.shape[1]] += va
    out[rb - top : rb - top + vb.shape[0], cb - left : cb - left + vb.shape[1]] += vb
    return (top, left), out, counts


#: Map layers of the partitions this worker drew, newest last: (snapshot id, file, filter) → (store, layer).
_layers: "OrderedDict[tuple[str, str, str], tuple[SnapshotStore, Any]]" = OrderedDict()
_layers_lock = threading.Lock()


def _layer(part: Partition, where: ZoneFilter) -> Any:
    """The partition's map layer for ``where``, built once per worker and kept within the layer budget.

    What the embedded engine keeps for a store (compact rows, ~37 bytes a zone, no geometry;
    the store stays open for the polygons of big zones), a worker keeps for each partition it
    drew: the next map of the same zones (another view, size or measure) decodes no WKB.
    Least recently used layers go first past half of FORESTGUARD_MEMORY_MB.
    """
    from ..render.layer import build_layer, layer_budget_bytes

    key = (part.manifest.id, part.file.path, where.key())
    with _layers_lock:
        if key in _layers:
            _layers.move_to_end(key)
            return _layers[key][1]
    store = part.open()
    layer = build_layer(store, where, data_version=part.manifest.data_version)
    with _layers_lock:
        _layers[key] = (store, layer)
        budget = layer_budget_bytes()
        while len(_layers) > 1 and sum(entry[1].nbytes for entry in _layers.values()) > budget:
            _layers.popitem(last=False)  # its store closes when the last task drawing from it is done
    return layer


