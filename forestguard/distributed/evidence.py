"""A Dask task's evidence: the rows of the snapshot's evidence files that concern its partition's zones.

The embedded snapshot engine reads the evidence files whole (views over them). A task reads
one partition of zones, and scanning the whole per-zone evidence for each one would make a
job cost partitions × zones (at 10M zones, ~0.9 s a task just to join 10M suggestions).
Instead each worker reads the files once per snapshot — each zone's suggestion as a code
by zone id, the findings' zone and layer sorted by zone id, the layers — and each task takes
its zones' rows (a lookup a zone; a binary search for those with findings) into tables of
the same names and columns the engine's SQL reads (:func:`forestguard.stores.evidence.zones_source`,
:func:`~forestguard.stores.evidence.overlaps_sql`): the same SQL, on exactly the rows of
these zones, so the answers are the embedded engine's.

Memory a worker keeps: ~2 bytes a zone id (a suggestion's code, whether it has findings) and
~16 bytes a finding, for the last :data:`KEEP_SNAPSHOTS` snapshots it read evidence of.
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


#: Dense lookups by zone id (a byte a zone id) while ids are at most this many times the rows (serial ids: about 1).
DENSE_SPREAD = 16


def _dense_size(ids: np.ndarray, zones: int) -> int | None:
    """Length of a lookup indexed by these (sorted) ids, or None when they are too sparse for one (of a snapshot of ``zones``)."""
    if not len(ids) or ids[0] < 0:
        return None
    size = int(ids[-1]) + 1
    return size if size <= DENSE_SPREAD * max(zones, len(ids)) + 1_000_000 else None


@dataclass(frozen=True)
class ByZone:
    """One evidence table's rows sorted by zone id (text as dictionaries: a code a row).

    ``present`` (a byte a zone id) lets a partition's zones without rows be skipped without
    a search: most zones have no finding.
    """

    zone_ids: np.ndarray
    table: pa.Table
    present: np.ndarray | None = None

    @classmethod
    def read(cls, path: str, columns: list[str], zones: int) -> "ByZone":
        table = pq.read_table(path, columns=columns, read_dictionary=[c for c in columns if c not in ("zone_id", "layer_version")])
        ids = table.column("zone_id").to_numpy()
        if len(ids) > 1 and not bool(np.all(ids[1:] >= ids[:-1])):  # snapshots write them sorted; older writers may not
            order = np.argsort(ids, kind="stable")
            table, ids = table.take(order), ids[order]
        size = _dense_size(ids, zones)
        present = None
        if size is not None:
            present = np.zeros(size, dtype=bool)
            present[ids] = True
        return cls(ids, table, present)

    def rows_of(self, zone_ids: np.ndarray) -> pa.Table:
        """The rows of these zones (every row of each, in zone id order)."""
        ids = np.asarray(zone_ids, dtype=self.zone_ids.dtype)
        if self.present is not None:  # the few with rows, before sorting
            ids = ids[(ids >= 0) & (ids < len(self.present))]
            ids = ids[self.present[ids]]
        ids = np.sort(ids)
        first = np.searchsorted(self.zone_ids, ids, "left")
        count = np.searchsorted(self.zone_ids, ids, "right") - first
        if not count.any():
            return self.table.slice(0, 0)
        starts = np.repeat(first, count)
        within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return self.table.take(starts + within)

    @property
    def nbytes(self) -> int:
        return int(self.zone_ids.nbytes + self.table.nbytes + (0 if self.present is None else self.present.nbytes))


@dataclass(frozen=True)
class Coded:
    """A table of one row per zone whose other columns have few values: each a code by zone id (-1: no row), a byte a zone id."""

    zone_id: pa.DataType
    columns: dict[str, tuple[np.ndarray, pa.Array]]  #: name → (code by zone id, the values)

    @classmethod
    def of(cls, rows: ByZone, zones: int) -> "Coded | None":
        """``rows`` coded, or None when it cannot be (a zone with two rows, sparse ids, a column of many values or nulls)."""
        ids, size = rows.zone_ids, _dense_size(rows.zone_ids, zones)
        if size is None or (len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1]))):
            return None
        columns = {}
        for name in rows.table.column_names:
            if name == "zone_id":
                continue
            column = rows.table.column(name).combine_chunks()
            if not pa.types.is_dictionary(column.type) or column.null_count or len(column.dictionary) > 127:
                return None
            codes = np.full(size, -1, dtype=np.int8)
            codes[ids] = column.indices.to_numpy()
            columns[name] = (codes, column.dictionary)
        return cls(rows.table.schema.field("zone_id").type, columns)

    def rows_of(self, zone_ids: np.ndarray) -> pa.Table:
        """The rows of these zones, in the order given (a partition's: a lookup a zone, no search)."""
        ids = np.asarray(zone_ids)
        codes = [c for c, _ in self.columns.values()]
        ids = ids[(ids >= 0) & (ids < len(codes[0]))] if codes else ids[:0]
        ids = ids[codes[0][ids] >= 0] if codes else ids
        return pa.table({"zone_id": pa.array(ids, self.zone_id),
                         **{name: pa.DictionaryArray.from_arrays(pa.array(code[ids], pa.int8()), values) for name, (code, values) in self.columns.items()}})

    @property
    def nbytes(self) -> int:
        return sum(int(code.nbytes + values.nbytes) for code, values in self.columns.values())


@dataclass(frozen=True)
class SnapshotEvidence:
    """What a worker keeps of one snapshot's evidence."""

    evidence: "Coded | ByZone"
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
    suggestions = ByZone.read(path[EVIDENCE], COLUMNS[EVIDENCE], manifest.rows)
    findings = ByZone.read(path[FINDINGS], COLUMNS[FINDINGS], manifest.rows)
    return SnapshotEvidence(Coded.of(suggestions, manifest.rows) or suggestions, findings, pq.read_table(path[LAYERS]))
