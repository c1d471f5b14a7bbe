"""The embedded engine: one DuckDB file with the spatial extension.

The extension is loaded from the ``duckdb-extension-spatial`` wheel by path,
with DuckDB's autoinstall/autoload turned off, so nothing is ever downloaded.

The data version is derived from what was committed: every write appends a load record
(``forestguard_loads``, with the version it made) in its own transaction, and the version is
the larger of that table's highest and the ``forestguard_meta`` row, which a writable open
repairs. An append is the part of a write least exposed to a crash at commit (an ingest
killed at its commit was reported to keep the zones but lose the meta row's update); the
two can no longer disagree in the way a cache key would hide.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import duckdb
import geopandas as gpd
import pandas as pd
import pyarrow as pa

from ..config import settings
from ..errors import ReadOnlyStore, StoreNotFound, UserError
from ..loads import LOADS_TABLE, FileLoad, LoadRecord, counted, refuse_repeats
from ..schema import TABLE, SCHEMA_VERSION
from . import inside
from .encoding import zone_wkb
from .base import (
    AGGREGATE_COLUMNS,
    ZoneFilter,
    ZoneStore,
    aggregate_sql,
    check_group_keys,
    filter_sql,
)
from .duckdb_areas import AREAS_DDL, DuckDBAreas
from .duckdb_evidence import DUCKDB_EVIDENCE_DDL, DuckDBEvidence
from .evidence import zones_source
from .summary import SUMMARIES, SUMMARY_MEASURES, SUMMARY_TABLE, summary_aggregate_sql, summary_folding_sql, summary_for, summary_frame, summary_rows_sql

DUCKDB_DDL = f"""
CREATE SEQUENCE IF NOT EXISTS {TABLE}_id_seq;
CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY DEFAULT nextval('{TABLE}_id_seq'),
    country VARCHAR NOT NULL CHECK (length(country) <= 100),
    region VARCHAR CHECK (length(region) <= 200),
    classification VARCHAR CHECK (classification IN ('Légale', 'Illégale')),
    area_ha DECIMAL(10,2) NOT NULL,
    year INTEGER NOT NULL,
    source VARCHAR CHECK (length(source) <= 100),
    confidence DECIMAL(3,2) CHECK (confidence BETWEEN 0 AND 1),
    verified BOOLEAN DEFAULT false,
    geometry GEOMETRY NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS forestguard_meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO forestguard_meta VALUES ('data_version', 0), ('schema_version', {SCHEMA_VERSION}) ON CONFLICT DO NOTHING;
CREATE SEQUENCE IF NOT EXISTS {LOADS_TABLE}_id_seq;
CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (
    id BIGINT NOT NULL DEFAULT nextval('{LOADS_TABLE}_id_seq'),
    file VARCHAR,
    sha256 VARCHAR,
    rows BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    data_version BIGINT NOT NULL
);
-- An R-tree over the zones (the spatial extension's): areas find their candidate zones through it.
CREATE INDEX IF NOT EXISTS idx_zones_geometry_rtree ON {TABLE} USING RTREE (geometry);
{AREAS_DDL}{DUCKDB_EVIDENCE_DDL}"""
_SUMMARY_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    country VARCHAR NOT NULL, year INTEGER NOT NULL, classification VARCHAR, source VARCHAR, verified BOOLEAN NOT NULL,{confidence}
    zones BIGINT NOT NULL, area_cents BIGINT NOT NULL, confidence_cents BIGINT NOT NULL,
    confidence_n BIGINT NOT NULL, verified_zones BIGINT NOT NULL
);
"""
SUMMARY_DDL = "".join(_SUMMARY_DDL.format(table=t, confidence=" confidence DECIMAL(3,2)," if "confidence" in keys else "")
                      for t, keys in SUMMARIES.items())
#: A summary is folded when it holds this many rows more than after its last folding.
_SUMMARY_SLACK_ROWS = 100_000
#: The committed data version: the meta row, or the newest load record if that is newer.
_VERSION_SQL = f"""
SELECT greatest((SELECT value FROM forestguard_meta WHERE key = 'data_version'),
                coalesce((SELECT max(data_version) FROM {LOADS_TABLE}), 0))
"""
_LOADS_COLUMNS = "id, file, sha256, rows, loaded_at, data_version"

#: Zones looked up by id in one query (the statement grows with it).
_IDS_PER_QUERY = 2_000
#: The zone columns readers get when they name none.
ZONE_FIELDS = ("id", "country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry")

# A bounding box test that needs no index: DuckDB prunes by min/max statistics.
_BBOX_SQL = "(ST_XMax(geometry) >= ? AND ST_YMax(geometry) >= ? AND ST_XMin(geometry) <= ? AND ST_YMin(geometry) <= ?)"


def extension_path(name: str) -> Path:
    """Path of a DuckDB extension shipped in its PyPI wheel (``duckdb-extension-<name>``)."""
    spec = find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise UserError(f"the DuckDB {name} extension is not installed: pip install duckdb-extension-{name}=={duckdb.__version__}")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise UserError(f"duckdb-extension-{name} does not match duckdb {duckdb.__version__}: {path} is missing")
    return path


def connect(path: str | None = None, *, read_only: bool = False, extensions: Sequence[str] = ("spatial",)) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with our extensions loaded from their wheels and no downloads."""
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": settings().duckdb_memory_limit,  # part of the process's budget, not 80 % of the machine
    }
    con = duckdb.connect(path or ":memory:", read_only=read_only, config=config)
    for name in extensions:
        con.execute(f"LOAD '{extension_path(name)}'")
    return con


def store_path(url: str) -> Path:
    """The file an embedded store URL names (``duckdb://`` prefix optional)."""
    return Path(url.removeprefix("duckdb://"))


class DuckDBStore(DuckDBAreas, DuckDBEvidence, ZoneStore):
    """Zones in one DuckDB file (the embedded default)."""

    engine = "duckdb"
    _has_loads = False  # set when the file is opened (a snapshot view has no load records)
    #: How an area's candidates are found: the R-tree answers ST_Intersects with a constant box…
    area_candidates_sql = "ST_Intersects(geometry, ST_MakeEnvelope(?, ?, ?, ?))"
    #: …but it fetches its rows one by one (~25 µs each): for a large box reading the table in order is faster.
    area_scan_sql = "ST_Intersects_Extent(geometry, ST_MakeEnvelope(?, ?, ?, ?))"
    #: Boxes up to this size (degrees²) use the R-tree (measured on 1M demo zones: 64k candidates in a
    #: 120 deg² box cost 1.6 s through it and 0.6 s in order; a 100 km² box 5 ms through it, 0.5 s in order).
    rtree_max_box_deg2 = 4.0

    def __init__(self, url: str, *, create: bool = False, read_only: bool = False) -> None:
        super().__init__(url)
        path = store_path(url)
        if not path.exists():
            if not create:
                raise StoreNotFound(f"no store at {path} (create it with 'forestguard ingest' or 'forestguard demo')")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create {path}: {exc.strerror or exc}") from None
        self.path = path
        self.read_only = read_only
        self._read_only_version: int | None = None
        self._lock = threading.RLock()
        self._spatial = False
        try:
            # GEOMETRY, ST_GeomFromWKB and ST_AsWKB are in DuckDB's core: a reader loads the spatial
            # extension (a quarter of a second) only when a query needs it (bbox and area filters); a
            # writer always does, since the zone table's R-tree index is the extension's.
            self._con = connect(str(path), read_only=read_only, extensions=() if read_only else ("spatial",))
        except duckdb.Error as exc:  # not a DuckDB file, a directory, locked by another process…
            raise UserError(f"cannot open {path}: {' '.join(str(exc).split())}") from None
        if not read_only:
            self._spatial = True
            # Building the R-tree of a store made before it existed takes seconds: no progress bar over a command's output.
            self._con.execute("SET enable_progress_bar = false")
            self._con.execute(DUCKDB_DDL + SUMMARY_DDL)
            # Check and repair: the meta row follows the newest committed load record.
            self._con.execute(f"UPDATE forestguard_meta SET value = ({_VERSION_SQL}) WHERE key = 'data_version' AND value < ({_VERSION_SQL})")
        elif not self._has_table():
            raise StoreNotFound(f"{path} is not a ForestGuard store (no {TABLE} table)")
        self._has_loads = self._has_table(LOADS_TABLE)  # a store written before load records has none
        self._summary_ok = self._check_summary()

    def _has_table(self, name: str = TABLE) -> bool:
        return bool(
            self._con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0]
        )

    def _check_summary(self) -> bool:
        """Are the statistics summaries there and in step with the zones? Rebuilt if not (when writable).

        Their zone counts against the table's (DuckDB answers ``count(*)`` from metadata): a store
        from before the summaries, or one whose summaries a crash lost, is caught here.
        """
        if not all(self._has_table(t) for t in SUMMARIES):
            return False
        if not self._summary_columns_current():
            if self.read_only:
                return False
            for table in SUMMARIES:  # a summary of another layout (an earlier ForestGuard): made again
                self._con.execute(f"DROP TABLE {table}")
            self._con.execute(SUMMARY_DDL)
        counts = self._con.execute(
            f"SELECT (SELECT count(*) FROM {TABLE}), " + ", ".join(f"(SELECT coalesce(sum(zones), 0) FROM {t})" for t in SUMMARIES)).fetchone()
        if all(c == counts[0] for c in counts[1:]):
            return True
        if self.read_only:
            return False  # statistics read the zones instead
        with self._lock:
            con = self._cursor()
            con.execute("BEGIN TRANSACTION")
            try:
                for table in SUMMARIES:
                    con.execute(f"DELETE FROM {table}")
                    con.execute(f"INSERT INTO {table} {summary_rows_sql(TABLE, table)}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return True

    def _summary_columns_current(self) -> bool:
        found = {name for (name,) in self._con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [SUMMARY_TABLE]).fetchall()}
        return set(SUMMARY_MEASURES) <= found

    def _summarise(self, con: duckdb.DuckDBPyConnection, after_id: int) -> None:
        """Add the zones loaded in this transaction (ids above ``after_id``) to the summaries, folding one that grew."""
        for table in SUMMARIES:
            con.execute(f"INSERT INTO {table} {summary_rows_sql(f'(SELECT * FROM {TABLE} WHERE id > ?)', table)}", [after_id])
            rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            folded = con.execute("SELECT value FROM forestguard_meta WHERE key = ?", [f"{table}_rows"]).fetchone()
            if rows > (folded[0] if folded else 0) + _SUMMARY_SLACK_ROWS:
                con.execute(f"CREATE TEMP TABLE folded_summary AS {summary_folding_sql(table, table)}")
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} SELECT * FROM folded_summary")
                con.execute("DROP TABLE folded_summary")
                rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                con.execute("INSERT INTO forestguard_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [f"{table}_rows", rows])

    def _load_spatial(self) -> None:
        if not self._spatial:
            with self._lock:
                if not self._spatial:
                    self._con.execute(f"LOAD '{extension_path('spatial')}'")
                    self._spatial = True

    def _filter(self, where: ZoneFilter):
        if where.bbox is not None:
            self._load_spatial()
        if where.overlaps:
            self.require_evidence()
        return filter_sql(where, bbox_sql=_BBOX_SQL)

    def _summary_ready(self) -> bool:
        return self._summary_ok

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A cursor per call lets threads (a Panel server) share one database handle.
        return self._con.cursor()

    def data_version(self) -> int:
        # A read-only handle holds DuckDB's shared file lock, so no process can write while it is
        # open: its version is read once. This takes a query off every cached request.
        if self.read_only and self._read_only_version is not None:
            return self._read_only_version
        sql = _VERSION_SQL if self._has_loads else "SELECT value FROM forestguard_meta WHERE key = 'data_version'"
        version = int(self._cursor().execute(sql).fetchone()[0])
        if self.read_only:
            self._read_only_version = version
        return version

    def count(self, where: ZoneFilter = ZoneFilter()) -> int:
        if where.area is not None:
            return inside.count(self, where)
        sql = self._filter(where)
        return int(self._cursor().execute(f"SELECT count(*) FROM {TABLE} WHERE {sql.clause}", sql.params).fetchone()[0])

    def aggregate(self, where: ZoneFilter, by: Sequence[str]) -> pd.DataFrame:
        keys = check_group_keys(by)
        if where.area is not None:
            return inside.aggregate(self, where, keys)
        sql = self._filter(where)
        if "suggested" in keys:
            self.require_evidence()
        summary = summary_for(where, keys) if self._summary_ready() else None
        if summary:
            return summary_frame(self._cursor().execute(summary_aggregate_sql(summary, keys, sql.clause), sql.params).fetchall(), keys)
        rows = self._cursor().execute(aggregate_sql(zones_source(keys), keys, sql.clause), sql.params).fetchall()
        return pd.DataFrame(rows, columns=[*keys, *AGGREGATE_COLUMNS])

    @staticmethod
    def _select_list(columns: Sequence[str] | None) -> str:
        wanted = list(columns) if columns else list(ZONE_FIELDS)
        return ", ".join("ST_AsWKB(geometry) AS geometry" if c == "geometry" else c for c in wanted)

    def _select(self, where: ZoneFilter, columns: Sequence[str] | None, also: tuple[str, Sequence[float]] | None = None) -> tuple[str, list]:
        """The zones' SELECT; ``also`` is one more condition and its parameters (an area's candidates)."""
        sql = self._filter(where)
        wanted = list(columns) if columns else list(ZONE_FIELDS)
        if "suggested" in wanted:
            self.require_evidence()
        clause, params = (f"({sql.clause}) AND {also[0]}", [*sql.params, *also[1]]) if also else (sql.clause, list(sql.params))
        return f"SELECT {self._select_list(wanted)} FROM {zones_source(wanted)} WHERE {clause}", params

    def zone_batches(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, batch_rows: int = 250_000) -> Iterator[pa.Table]:
        if where.area is not None:
            yield from inside.batches(self, where, columns, batch_rows)
            return
        query, params = self._select(where, columns)
        reader = self._cursor().execute(query, params).to_arrow_reader(batch_rows)
        for batch in reader:
            yield pa.Table.from_batches([batch])

    def _area_candidates(self, where: ZoneFilter, box, columns: Sequence[str], batch_rows: int) -> Iterator[pa.Table]:
        self._load_spatial()
        small = (box[2] - box[0]) * (box[3] - box[1]) <= self.rtree_max_box_deg2
        query, params = self._select(where, columns, (self.area_candidates_sql if small else self.area_scan_sql, [float(v) for v in box]))
        reader = self._cursor().execute(query, params).to_arrow_reader(batch_rows)
        yielded = False
        for batch in reader:
            yielded = True
            yield pa.Table.from_batches([batch])
        if not yielded:  # the schema still tells callers the columns' types
            yield reader.schema.empty_table()

    def zone_geometries(self, ids: Sequence[int]) -> pa.Table:
        return self.zones_by_id(ids, ("id", "geometry"))

    def zones_by_id(self, ids: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
        # An IN list of values, not a join with a list: DuckDB answers it from the primary key's
        # index (3,000 zones in ~0.2 s of 10M, where a join scans every row: 1-2 s).
        wanted = [int(i) for i in ids]
        select = self._select_list(columns)
        cursor = self._cursor()
        tables = []
        for start in range(0, max(len(wanted), 1), _IDS_PER_QUERY):
            part = wanted[start : start + _IDS_PER_QUERY]
            query = f"SELECT {select} FROM {TABLE} WHERE id IN ({', '.join(['?'] * len(part)) or 'NULL'}) ORDER BY id"
            tables.append(cursor.execute(query, part).to_arrow_table())
        return pa.concat_tables(tables)

    def zones_arrow(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, limit: int | None = None, offset: int = 0) -> pa.Table:
        if where.area is not None:
            if offset:
                raise ValueError("zones of an area are not paged")
            return inside.zones_arrow(self, where, columns, limit)
        query, params = self._select(where, columns)
        query += " ORDER BY country, year, id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        if offset:
            query += " OFFSET ?"
            params.append(int(offset))
        return self._cursor().execute(query, params).to_arrow_table()

    def loads(self, sha256s: Sequence[str] | None = None) -> list[LoadRecord]:
        if not self._has_loads:
            return []
        query = f"SELECT {_LOADS_COLUMNS} FROM {LOADS_TABLE}"
        params: list = []
        if sha256s is not None:
            if not sha256s:
                return []
            query += f" WHERE sha256 IN ({', '.join('?' * len(sha256s))})"
            params = list(sha256s)
        rows = self._cursor().execute(query + " ORDER BY id", params).fetchall()
        return [LoadRecord(*row) for row in rows]

    def insert(self, zones: gpd.GeoDataFrame, *, files: Sequence[FileLoad] = (), again: bool = False) -> int:
        return self.insert_batches([zones], rows=len(zones), files=files, again=again)

    def insert_batches(self, batches: Iterable[gpd.GeoDataFrame], rows: int, *, files: Sequence[FileLoad] = (), again: bool = False) -> int:
        """Append zones batch by batch in one transaction: memory holds one batch, not the load.

        DuckDB writes a large transaction's rows to the file as they come (optimistic writes)
        and drops them on rollback, so an exception from ``batches`` leaves nothing behind.
        The load records (one per input file) and the data version derived from them are
        written in the same transaction; a file already recorded is refused unless ``again``.
        """
        if self.read_only:
            raise ReadOnlyStore(f"{self.path} is open read-only")
        loaded = 0
        self.last_alerts = 0
        with self._lock:
            con = self._cursor()
            con.execute("BEGIN TRANSACTION")
            try:
                if files and not again:
                    earlier = {r.sha256: r for r in self._loads_in(con, [f.sha256 for f in files])}
                    refuse_repeats(files, earlier)
                watched = self._watch_check(con)  # watched areas, as this transaction sees them
                last_id = con.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0]
                for zones in watched.batches(counted(batches, files)):
                    if len(zones):
                        loaded += self._append(con, zones)
                if loaded:
                    if self._summary_ok:
                        self._summarise(con, last_id)
                    version = int(con.execute(_VERSION_SQL).fetchone()[0]) + 1
                    records = [(f.file, f.sha256, f.rows) for f in files] or [(None, None, loaded)]
                    now = datetime.now(timezone.utc).replace(tzinfo=None)
                    con.executemany(f"INSERT INTO {LOADS_TABLE} (file, sha256, rows, loaded_at, data_version) VALUES (?, ?, ?, ?, ?)",
                                    [[*record, now, version] for record in records])
                    con.execute("UPDATE forestguard_meta SET value = ? WHERE key = 'data_version'", [version])
                    if watched:
                        alerts = watched.deliveries(version)
                        self._write_outbox(con, alerts)
                        self.last_alerts = len(alerts)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                self.last_alerts = 0
                raise
        return loaded

    @staticmethod
    def _append(con: duckdb.DuckDBPyConnection, zones: gpd.GeoDataFrame) -> int:
        table = pa.table(
            {
                "country": pa.array(zones["country"], pa.string()),
                "region": pa.array(zones["region"], pa.string()),
                "classification": pa.array(zones["classification"], pa.string()),
                "area_ha": pa.array(zones["area_ha"].astype(float), pa.float64()),
                "year": pa.array(zones["year"].astype("int64"), pa.int64()),
                "source": pa.array(zones["source"], pa.string()),
                "confidence": pa.array(zones["confidence"].astype(float), pa.float64(), from_pandas=True),
                "verified": pa.array(zones["verified"].astype(bool), pa.bool_()),
                "geometry": zone_wkb(zones),
            }
        )
        # A stream, not the table: DuckDB keeps a registered table alive until the transaction ends
        # (a whole load in memory), a consumed stream's batches are let go.
        # One record batch: DuckDB scans an Arrow stream's batches in parallel, and ids (the sequence)
        # would then not follow the file's order.
        con.register("incoming_zones", pa.RecordBatchReader.from_batches(table.schema, table.combine_chunks().to_batches(max_chunksize=len(table) or None)))
        try:
            con.execute(
                f"""INSERT INTO {TABLE} (country, region, classification, area_ha, year, source, confidence, verified, geometry)
                    SELECT country, region, classification, area_ha::DECIMAL(10,2), year, source,
                           confidence::DECIMAL(3,2), verified, ST_GeomFromWKB(geometry)
                    FROM incoming_zones"""
            )
        finally:
            con.unregister("incoming_zones")
        return len(table)

    def _loads_in(self, con: duckdb.DuckDBPyConnection, sha256s: list[str]) -> list[LoadRecord]:
        query = f"SELECT {_LOADS_COLUMNS} FROM {LOADS_TABLE} WHERE sha256 IN ({', '.join('?' * len(sha256s))}) ORDER BY id"
        return [LoadRecord(*row) for row in con.execute(query, sha256s).fetchall()]

    def close(self) -> None:
        self._con.close()
