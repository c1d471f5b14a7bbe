"""A Dask task's evidence: the rows of the snapshot's evidence files that concern its partition's zones.

The embedded snapshot engine reads the evidence files whole (views over them). A task reads
one partition of zones, and scanning the whole per-zone evidence for each one would make a
job cost partitions × zones (at 10M zones, ~0.9 s a task just to join 10M suggestions).
Instead each worker reads the files once per snapshot — zone ids and suggestions, findings'
zone and layer, the layers — kept sorted by zone id, and each task takes its zones' rows by
binary search (partition × log zones) into tables of the same names and columns the
engine's SQL reads (:func:`forestguard.stores.evidence.zones_source`,
:func:`~forestguard.stores.evidence.overlaps_sql`): the same SQL, on exactly the rows of
these zones, so the answers are the embedded engine's.

Memory a worker keeps: ~5 bytes a zone (id, suggestion's code) and ~16 bytes a finding, for
the last :data:`KEEP_SNAPSHOTS` snapshots it read evidence of.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import storage
from ..stores.evidence import EVIDENCE, EVIDENCE_COLUMNS, FINDINGS, LAYERS

if TYPE_CHECKING:
    from ..stores.snapshot_format import Manifest

#: Evidence of this many snapshots a worker keeps (least recently used goes first).
KEEP_SNAPSHOTS = 2
#: The columns of each table a task's queries read (what the engine's evidence joins and filters name).
COLUMNS = {EVIDENCE: ["zone_id", *EVIDENCE_COLUMNS], FINDINGS: ["zone_id", "layer", "layer_version"]}


@dataclass(frozen=True)
class ByZone:
    """One evidence table's rows sorted by zone id (text as dictionaries: a code a row)."""

    zone_ids: np.ndarray
    table: pa.Table

    @classmethod
    def read(cls, path: str, columns: list[str]) -> "ByZone":
        table = pq.read_table(path, columns=columns, read_dictionary=[c for c in columns if c not in ("zone_id", "layer_version")])
        ids = table.column("zone_id").to_numpy()
        if len(ids) > 1 and not bool(np.all(ids[1:] >= ids[:-1])):  # snapshots write them sorted; older writers may not
            order = np.argsort(ids, kind="stable")
            table, ids = table.take(order), ids[order]
        return cls(ids, table)

    def rows_of(self, zone_ids: np.ndarray) -> pa.Table:
        """The rows of these zones (every row of each, in zone id order of the table)."""
        ids = np.sort(np.asarray(zone_ids, dtype=self.zone_ids.dtype))
        first = np.searchsorted(self.zone_ids, ids, "left")
        count = np.searchsorted(self.zone_ids, ids, "right") - first
        if not count.any():
            return self.table.slice(0, 0)
        starts = np.repeat(first, count)
        within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return self.table.take(starts + within)

    @property
    def nbytes(self) -> int:
        return int(self.zone_ids.nbytes + self.table.nbytes)


@dataclass(frozen=True)
class SnapshotEvidence:
    """What a worker keeps of one snapshot's evidence."""

    evidence: ByZone
    findings: ByZone
    layers: pa.Table

    def tables_for(self, zone_ids: np.ndarray) -> dict[str, pa.Table]:
        """The tables a task's store reads, restricted to its zones (the layers whole: a row a layer)."""
        return {EVIDENCE: self.evidence.rows_of(zone_ids), FINDINGS: self.findings.rows_of(zone_ids), LAYERS: self.layers}

    @property
    def nbytes(self) -> int:
        return self.evidence.nbytes + self.findings.nbytes + int(self.layers.nbytes)


_kept: "OrderedDict[str, SnapshotEvidence]" = OrderedDict()
_kept_lock = threading.Lock()
_loading: dict[str, threading.Lock] = {}


def of_snapshot(folder: str, manifest: "Manifest") -> SnapshotEvidence:
    """This snapshot's evidence as this worker keeps it, read (fetched and checked as partitions are) on first use."""
    with _kept_lock:
        if manifest.id in _kept:
            _kept.move_to_end(manifest.id)
            return _kept[manifest.id]
        lock = _loading.setdefault(manifest.id, threading.Lock())
    with lock:  # one thread reads it; the others wait for it
        with _kept_lock:
            if manifest.id in _kept:
                return _kept[manifest.id]
        read = _read(folder, manifest)
        with _kept_lock:
            _kept[manifest.id] = read
            while len(_kept) > KEEP_SNAPSHOTS:
                _kept.popitem(last=False)
            _loading.pop(manifest.id, None)
        return read


def _read(folder: str, manifest: "Manifest") -> SnapshotEvidence:
    from ..stores.snapshot import local_file

    files = {f.path.removesuffix(".parquet"): f for f in manifest.evidence}
    missing = [name for name in (EVIDENCE, FINDINGS, LAYERS) if name not in files]
    if missing:
        raise ValueError(f"snapshot {manifest.id} lists evidence without {', '.join(missing)}")
    place = storage.at(folder)
    path = {name: str(local_file(place, manifest, files[name])) for name in (EVIDENCE, FINDINGS, LAYERS)}
    return SnapshotEvidence(ByZone.read(path[EVIDENCE], COLUMNS[EVIDENCE]), ByZone.read(path[FINDINGS], COLUMNS[FINDINGS]),
                            pq.read_table(path[LAYERS]))
