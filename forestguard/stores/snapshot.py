"""A snapshot as a read-only zone store: in-memory DuckDB over the snapshot's GeoParquet files.

It is the embedded engine pointed at Parquet instead of a database file, so it
inherits :class:`DuckDBStore`'s SQL (statistics, counts, zone reads); only the
bounding-box test differs, using the GeoParquet covering column. The same
engine summing the same exact DECIMAL columns is what makes a snapshot's
numbers equal the source store's to the cent.

``data_version`` is the source store's data version recorded in the manifest.
A snapshot holds exactly the zones its source had at that version, so a cached
statistic keyed on (version, filter) is valid for either; a number of its own
(e.g. always 0) would collide across snapshots, and the content id is not a
number that grows.

S3 snapshots are read from a sha256-verified local copy
(``$FORESTGUARD_DATA_DIR/cache/snapshots/<id>``), not through DuckDB's httpfs:
httpfs reads only the needed byte ranges, so a first query fetches less, but
it cannot check a file's hash, so a corrupted object would give wrong numbers
silently; after the one-off download every query runs at local-disk speed
(figures in ``bench/bench_snapshot.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import duckdb
import pyarrow as pa

from .. import storage
from ..config import settings
from ..errors import ReadOnlyStore, UserError
from ..schema import TABLE
from . import inside
from .base import SQLFilter, ZoneFilter, ZoneStore, filter_sql
from .summary import SUMMARIES, summary_rows_sql
from .duckdb import DuckDBStore, connect
from .duckdb_areas import AREAS_DDL
from .duckdb_evidence import EVIDENCE_TABLES_DDL
from .evidence import FEATURES
from .snapshot_format import MANIFEST, Manifest, SnapshotCorrupt, SnapshotFile, locate, mismatch


#: Files this process has hashed and found as their manifest says: (path, size, mtime, inode) → sha256.
_verified: dict[tuple[str, int, int, int], str] = {}
_verified_lock = threading.Lock()


def check_local_file(manifest: Manifest, where: str, entry: SnapshotFile, path: Path) -> None:
    """Raise :class:`SnapshotCorrupt` unless ``path`` is the manifest's file; hashed once per process and file.

    A file changed since it was hashed (size, modification time or inode differ) is hashed again.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise SnapshotCorrupt(f"snapshot {manifest.id} at {where} is incomplete: {entry.path} is missing") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _verified_lock:
        if _verified.get(key) == entry.sha256:
            return
    problem = mismatch(entry, *storage.sha256_file(path)) if stat.st_size == entry.size else mismatch(entry, "", stat.st_size)
    if problem:
        raise SnapshotCorrupt(f"snapshot {manifest.id} at {where} is corrupt: {problem}")
    with _verified_lock:
        _verified[key] = entry.sha256


def local_files(folder: storage.Folder, manifest: Manifest, files: Sequence[SnapshotFile] | None = None) -> Path:
    """A local folder holding the snapshot's files (or ``files`` of them), ready for DuckDB, each checked against the manifest.

    Nothing is read before its bytes match: a flipped bit in a Parquet page could otherwise
    give wrong totals without an error, or DuckDB's internal errors (ZSTD, Thrift).
    Local snapshots are used in place, each file hashed once per process (again if it
    changes on disk; ``bench/bench_snapshot_integrity.py`` has the cost, and why not Parquet
    page checksums). S3 snapshots are copied once into
    ``$FORESTGUARD_DATA_DIR/cache/snapshots/<id>`` and checked the same way: a corrupt
    object is an error, a damaged cached copy is fetched again.
    """
    wanted = manifest.all_files if files is None else files
    for entry in wanted:
        local_file(folder, manifest, entry)
    if not isinstance(folder, storage.LocalFolder):
        cache = _cache_folder(manifest)
        if files is None:
            storage.LocalFolder(cache).put_bytes(MANIFEST, manifest.to_json().encode())
        return cache
    return folder.path


def _cache_folder(manifest: Manifest) -> Path:
    return settings().data_dir / "cache" / "snapshots" / manifest.id


def local_file(folder: storage.Folder, manifest: Manifest, entry: SnapshotFile) -> Path:
    """One file of a snapshot on local disk, checked against the manifest (a Dask worker's partition; see :func:`local_files`)."""
    if isinstance(folder, storage.LocalFolder):
        path = folder.path / entry.path
        check_local_file(manifest, folder.url, entry, path)
        return path
    cache = _cache_folder(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / entry.path
    if path.is_file():
        try:
            check_local_file(manifest, str(cache), entry, path)
            return path
        except SnapshotCorrupt:
            pass  # a damaged cached copy: fetched again
    partial = cache / f".{entry.path}.{uuid.uuid4().hex}.part"
    try:
        folder.get_file(entry.path, partial)
        problem = mismatch(entry, *storage.sha256_file(partial))
        if problem:
            raise SnapshotCorrupt(f"snapshot {manifest.id}: object {folder.uri(entry.path)} is corrupt: {problem}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def evidence_view_sql(name: str, path: Path) -> str:
    """The view reading the evidence table ``name`` from its file in a snapshot (features' geometry as the engine's type)."""
    select = "* REPLACE (ST_GeomFromWKB(geometry) AS geometry)" if name == FEATURES else "*"
    return f"CREATE VIEW {name} AS SELECT {select} FROM read_parquet({_sql_string(str(path))})"


def _copy_table(con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> None:
    """``rows`` as the table ``name`` of this database (copied: a registered Arrow table is seen by one connection only)."""
    con.register("copied_rows", rows)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM copied_rows")
    finally:
        con.unregister("copied_rows")


class EvidenceFiles:
    """A snapshot's evidence files as tables, for the reads that need no zone table (a Dask client's: layers, state, runs, findings).

    Each file is fetched and checked, as a partition is, the first time a query names its
    table; a table the snapshot does not carry is empty. :meth:`with_zones` lends the zone
    table's rows some reads join (a few zones' class and year, read elsewhere).
    """

    def __init__(self, folder: str, manifest: Manifest) -> None:
        self.folder, self.manifest = folder, manifest
        self._files = {f.path.removesuffix(".parquet"): f for f in manifest.evidence}
        self._lock = threading.RLock()
        self._con = connect(None, extensions=())
        for name, ddl in EVIDENCE_TABLES_DDL.items():
            if name not in self._files:
                self._con.execute(ddl)

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run a read written with ``?`` placeholders."""
        with self._lock:
            for name in [n for n in self._files if re.search(rf"\b{n}\b", sql)]:
                self._con.execute(evidence_view_sql(name, local_file(storage.at(self.folder), self.manifest, self._files[name])))
                del self._files[name]  # a view now (a file that failed its check is tried again next time)
            return self._con.execute(sql, list(params)).fetchall()

    @staticmethod
    def ids_in(column: str) -> str:
        """A term "``column`` is one of the ids given as one list parameter"."""
        return f"{column} IN (SELECT unnest(CAST(? AS INTEGER[])))"

    @contextlib.contextmanager
    def with_zones(self, zones: pa.Table) -> Iterator[None]:
        """Reads in the block see ``zones`` (``id`` and the columns they name) as the zone table."""
        with self._lock:
            _copy_table(self._con, TABLE, zones)
            try:
                yield
            finally:
                self._con.execute(f"DROP TABLE {TABLE}")

    def close(self) -> None:
        self._con.close()


class SnapshotEvidence:
    """What a snapshot says of its evidence, whichever engine reads it (embedded or Dask)."""

    manifest: Manifest

    def _has_evidence(self) -> bool:
        return bool(self.manifest.evidence)

    def evidence_version(self) -> int:
        return 0  # a snapshot never changes: its evidence is the one it was made with

    def _no_evidence(self) -> UserError:
        """What a snapshot without evidence answers a filter or grouping that needs it."""
        return UserError(f"snapshot {self.manifest.id} carries no reference layers or evidence (its store had none when it was taken: "
                         "add layers with 'forestguard layers add', run 'forestguard evidence compute', then take a new snapshot)")


def _sql_string(text: str) -> str:
    """A SQL string literal (DuckDB table functions take file lists only as literals)."""
    return "'" + text.replace("'", "''") + "'"


class SnapshotStore(SnapshotEvidence, DuckDBStore):
    """Zones of one snapshot (local folder, manifest path, ``s3://…`` URL or id); read-only."""

    engine = "snapshot"
    read_only = True
    #: Box test on the GeoParquet covering column: answered from row-group statistics and plain
    #: doubles (written from the same ST_XMin… values), without decoding WKB or the spatial extension.
    bbox_sql = "(bbox.xmax >= ? AND bbox.ymax >= ? AND bbox.xmin <= ? AND bbox.ymin <= ?)"
    #: An area's candidates: the same covering-column test (a superset the exact test then narrows).
    area_candidates_sql = area_scan_sql = bbox_sql

    def __init__(self, url: str, *, manifest: Manifest | None = None, files: Sequence[SnapshotFile] | None = None) -> None:
        """Open the snapshot ``url`` names; with its ``manifest`` already read, ``url`` is its folder and
        ``files`` may name some of its partitions (a Dask task's): only those are fetched, checked and read.
        """
        ZoneStore.__init__(self, url)
        if manifest is None:
            folder, self.manifest = locate(url)
        else:
            folder, self.manifest = storage.at(url), manifest
        self.files = tuple(self.manifest.files if files is None else files)
        self.path = local_files(folder, self.manifest, None if files is None else self.files)
        self._lock = threading.RLock()
        self._con = connect(None, extensions=())
        files_sql = ", ".join(_sql_string(str(self.path / f.path)) for f in self.files)
        # A view, not a copy: each query scans only the columns and row groups it needs.
        self._con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM read_parquet([{files_sql}], hive_partitioning = false)")
        # The saved areas it carries (small: copied into memory), and no watches or alerts: those are the live store's.
        # A Dask task's store (some partitions) has none: the client resolves an area before the tasks go out.
        self._con.execute(AREAS_DDL)
        if self.manifest.areas is not None and files is None:
            self._con.execute(
                "INSERT INTO forestguard_areas SELECT name, ST_GeomFromWKB(geometry), sha256, source_file, added_at::TIMESTAMP "
                f"FROM read_parquet({_sql_string(str(self.path / self.manifest.areas.path))})"
            )
        # Reference layers and evidence: views over the files it carries, empty tables for the others
        # (a Dask task's store too: it fetched only its partitions; its zones' evidence comes by use_evidence).
        carried = {f.path.removesuffix(".parquet"): self.path / f.path for f in self.manifest.evidence} if files is None else {}
        for name, ddl in EVIDENCE_TABLES_DDL.items():
            if name not in carried:
                self._con.execute(ddl)
                continue
            self._con.execute(evidence_view_sql(name, carried[name]))

        self._summary_ok = False
        # A Dask task's store answers one query and goes: making the summaries would cost two passes
        # over its partition for a query that one pass answers (0.68 s against 0.17 s for 1M zones).
        self._summaries = files is None

    def use_evidence(self, tables: Mapping[str, pa.Table]) -> None:
        """Read these rows as the evidence tables of the same names (a Dask task's store: its zones' rows, from its worker's copy).

        Copied into the store's database (every query runs on a cursor of its own).
        """
        with self._lock:
            con = self._cursor()
            for name, table in tables.items():
                _copy_table(con, name, table)

    def _summary_ready(self) -> bool:
        """The snapshot's statistics summaries, made in memory on first use (a pass over the files)."""
        if not self._summaries:
            return False
        if not self._summary_ok:
            with self._lock:
                if not self._summary_ok:
                    for table in SUMMARIES:
                        self._con.execute(f"CREATE TABLE {table} AS {summary_rows_sql(TABLE, table)}")
                    self._summary_ok = True
        return True

    def _load_spatial(self) -> None:
        """Nothing to load: the covering column answers boxes without the extension."""

    def _filter(self, where: ZoneFilter) -> SQLFilter:
        if where.overlaps:
            self.require_evidence()
        return filter_sql(where, bbox_sql=self.bbox_sql)

    def role(self) -> str:
        return "snapshot"

    def extent(self, where: ZoneFilter = ZoneFilter()) -> tuple[float, float, float, float] | None:
        """Lon/lat extent of the zones ``where`` selects, from the bbox covering (no WKB decoded but an area's candidates'); None when there are none."""
        if where.area is not None:
            import pyarrow.compute as pc

            boxes = [t.column("bbox").combine_chunks() for t in inside.batches(self, where, ["bbox"]) if len(t)]
            if not boxes:
                return None
            box = pa.concat_arrays(boxes)
            return (pc.min(box.field("xmin")).as_py(), pc.min(box.field("ymin")).as_py(),
                    pc.max(box.field("xmax")).as_py(), pc.max(box.field("ymax")).as_py())
        sql = self._filter(where)
        query = f"SELECT min(bbox.xmin), min(bbox.ymin), max(bbox.xmax), max(bbox.ymax) FROM {TABLE} WHERE {sql.clause}"
        row = self._cursor().execute(query, sql.params).fetchone()
        return None if row is None or row[0] is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    def data_version(self) -> int:
        return self.manifest.data_version

    def insert(self, zones, *, files=(), again=False) -> int:
        raise ReadOnlyStore(
            f"snapshot {self.manifest.id} is read-only: ingest into the store it came from, then take a new snapshot"
        )

    def describe(self) -> dict:
        return {**super().describe(), "snapshot": self.manifest.id, "created_at": self.manifest.created_at}
