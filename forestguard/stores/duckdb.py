"""The embedded engine: one DuckDB file with the spatial extension.

The extension is loaded from the ``duckdb-extension-spatial`` wheel by path,
with DuckDB's autoinstall/autoload turned off, so nothing is ever downloaded.
"""

from __future__ import annotations

import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import duckdb
import geopandas as gpd
import pandas as pd
import pyarrow as pa

from ..config import settings
from ..errors import ReadOnlyStore, StoreNotFound, UserError
from ..schema import TABLE, SCHEMA_VERSION
from ..validation import zone_wkb
from . import inside
from .base import AGGREGATE_COLUMNS, ZoneFilter, aggregate_sql, ZoneStore, check_group_keys, filter_sql
from .duckdb_areas import AREAS_DDL, DuckDBAreas
from .duckdb_evidence import DUCKDB_EVIDENCE_DDL, DuckDBEvidence
from .evidence import zones_source

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
-- An R-tree over the zones (the spatial extension's): areas find their candidate zones through it.
CREATE INDEX IF NOT EXISTS idx_zones_geometry_rtree ON {TABLE} USING RTREE (geometry);
{AREAS_DDL}{DUCKDB_EVIDENCE_DDL}"""

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
            self._con.execute(DUCKDB_DDL)
        elif not self._has_table():
            raise StoreNotFound(f"{path} is not a ForestGuard store (no {TABLE} table)")

    def _has_table(self) -> bool:
        return bool(
            self._con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]).fetchone()[0]
        )

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

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A cursor per call lets threads (a Panel server) share one database handle.
        return self._con.cursor()

    def data_version(self) -> int:
        # A read-only handle holds DuckDB's shared file lock, so no process can write while it is
        # open: its version is read once. This takes a query off every cached request.
        if self.read_only and self._read_only_version is not None:
            return self._read_only_version
        version = int(self._cursor().execute("SELECT value FROM forestguard_meta WHERE key = 'data_version'").fetchone()[0])
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
        query = aggregate_sql(zones_source(keys), keys, sql.clause)
        rows = self._cursor().execute(query, sql.params).fetchall()
        return pd.DataFrame(rows, columns=[*keys, *AGGREGATE_COLUMNS])

    def _select(self, where: ZoneFilter, columns: Sequence[str] | None, also: tuple[str, Sequence[float]] | None = None) -> tuple[str, list]:
        """The zones' SELECT; ``also`` is one more condition and its parameters (an area's candidates)."""
        sql = self._filter(where)
        wanted = list(columns) if columns else list(ZONE_FIELDS)
        if "suggested" in wanted:
            self.require_evidence()
        select = ", ".join("ST_AsWKB(geometry) AS geometry" if c == "geometry" else c for c in wanted)
        clause, params = (f"({sql.clause}) AND {also[0]}", [*sql.params, *also[1]]) if also else (sql.clause, list(sql.params))
        return f"SELECT {select} FROM {zones_source(wanted)} WHERE {clause}", params

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
        # An IN list of values, not a join with a list: DuckDB answers it from the primary key's
        # index (3,000 zones in ~0.2 s of 10M, where a join scans every row: 1-2 s).
        wanted = [int(i) for i in ids]
        cursor = self._cursor()
        tables = []
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            part = wanted[start : start + _IDS_PER_QUERY]
            query = f"SELECT id, ST_AsWKB(geometry) AS geometry FROM {TABLE} WHERE id IN ({', '.join(['?'] * len(part))})"
            tables.append(cursor.execute(query, part).to_arrow_table())
        return pa.concat_tables(tables) if tables else pa.table({"id": pa.array([], pa.int32()), "geometry": pa.array([], pa.binary())})

    def zones_arrow(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, limit: int | None = None) -> pa.Table:
        if where.area is not None:
            return inside.zones_arrow(self, where, columns, limit)
        query, params = self._select(where, columns)
        query += " ORDER BY country, year, id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        return self._cursor().execute(query, params).to_arrow_table()

    def insert(self, zones: gpd.GeoDataFrame) -> int:
        return self.insert_batches([zones], rows=len(zones))

    def insert_batches(self, batches: Iterable[gpd.GeoDataFrame], rows: int) -> int:
        """Append zones batch by batch in one transaction: memory holds one batch, not the load.

        DuckDB writes a large transaction's rows to the file as they come (optimistic writes)
        and drops them on rollback, so an exception from ``batches`` leaves nothing behind.
        """
        if self.read_only:
            raise ReadOnlyStore(f"{self.path} is open read-only")
        loaded = 0
        self.last_alerts = 0
        with self._lock:
            con = self._cursor()
            con.execute("BEGIN TRANSACTION")
            try:
                watched = self._watch_check(con)  # watched areas, as this transaction sees them
                for zones in watched.batches(batches):
                    if len(zones):
                        loaded += self._append(con, zones)
                if loaded:
                    con.execute("UPDATE forestguard_meta SET value = value + 1 WHERE key = 'data_version'")
                    if watched:
                        version = con.execute("SELECT value FROM forestguard_meta WHERE key = 'data_version'").fetchone()[0]
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

    def close(self) -> None:
        self._con.close()
