"""The production engine: PostgreSQL 15 + PostGIS 3, the seed ``deforestation_zones`` table.

Writes go to the primary (``DATABASE_URL``) in one transaction each (see :mod:`.load`);
reads go to the replica when one is given (``DATABASE_READ_URL``), and the data version is
read from the same place as the data, so a lagging replica can never pair new numbers with
an old version in a cache key. A store opened to write (``create=True``) reads its own
writes from the primary.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import geopandas as gpd
import pandas as pd
import psycopg
import pyarrow as pa

from ...config import redact
from ...errors import ReadOnlyStore, StoreNotFound, UserError
from ...loads import FileLoad, LoadRecord
from ...schema import TABLE
from .. import inside
from ..base import (
    AGGREGATE_COLUMNS,
    SQLFilter,
    ZoneFilter,
    ZoneStore,
    aggregate_sql,
    check_group_keys,
    filter_sql,
)
from ..summary import SUMMARY_THRESHOLDS_TABLE, summary_aggregate_sql, summary_for, summary_frame, threshold_of
from .admin import init
from .areas import PostGISAreas, watch_check, write_outbox
from .evidence import PostGISEvidence
from ..evidence import zones_source
from .connection import ReadPool, connect, one_line
from .load import BULK_MIN_ROWS, load_batches, loads_of
from .migrations import META_TABLE, has_zone_table, state
from .role import read_only_refusal, require_primary, server_role
from .transfer import ARROW_TYPES, SELECT_EXPRESSIONS, csv_batches, read_csv_copy

__all__ = ["PostGISStore"]

#: Columns of :meth:`PostGISStore.zones_arrow` when none are asked for (the zone table's).
ZONE_FIELDS = tuple(c for c in ARROW_TYPES if c not in ("suggested", "geometry_hash", "xmin", "ymin", "xmax", "ymax"))
#: The order of :meth:`PostGISStore.zones_arrow` (the interface's: country, year, id).
ZONE_ORDER = ("country", "year", "id")
# Index-assisted (&&, float boxes) then exact (double bounds), so membership is the same as
# DuckDB's bounding-box test to the last bit.
_BBOX_SQL = (
    "geometry && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
    " AND ST_XMax(geometry) >= %s AND ST_YMax(geometry) >= %s AND ST_XMin(geometry) <= %s AND ST_YMin(geometry) <= %s"
)


_SUMMARY_IN_STEP = (f"SELECT coalesce((SELECT value FROM {META_TABLE} WHERE key = 'summary_version') = "
                    f"(SELECT value FROM {META_TABLE} WHERE key = 'data_version'), false)")


def where_sql(where: ZoneFilter) -> SQLFilter:
    """The engine-neutral filter with PostGIS's bounding-box test."""
    compiled = filter_sql(where.with_(bbox=None), placeholder="%s")
    if where.bbox is not None:
        box = [float(v) for v in where.bbox]
        compiled = SQLFilter(f"({compiled.clause}) AND {_BBOX_SQL}", [*compiled.params, *box, *box])
    return compiled


def _columns(columns: Sequence[str] | None) -> list[str]:
    wanted = list(columns) if columns else list(ZONE_FIELDS)
    unknown = [c for c in wanted if c not in ARROW_TYPES]
    if unknown:
        raise ValueError(f"unknown zone columns: {', '.join(unknown)}")
    return wanted


def _sortable(column: str) -> str:
    # Byte order, as DuckDB sorts, whatever the database's locale.
    return f'{column} COLLATE "C"' if column in ("country", "classification", "suggested") else column


#: An area's candidates: the GiST index answers && with the area's box (float boxes, rounded outwards).
_AREA_CANDIDATES_SQL = "geometry && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"


class PostGISStore(PostGISAreas, PostGISEvidence, ZoneStore):
    """Zones in PostgreSQL + PostGIS (``postgresql://…``; every libpq URL option honoured)."""

    engine = "postgis"

    def __init__(
        self,
        url: str,
        *,
        create: bool = False,
        read_only: bool = False,
        read_url: str | None = None,
        bulk_min_rows: int = BULK_MIN_ROWS,
    ) -> None:
        super().__init__(url)
        self.read_only = read_only
        self.bulk_min_rows = bulk_min_rows
        # A writer reads its own writes; a reader may use the replica.
        self.read_url = read_url if (read_url and not create) else url
        self.last_write_version: int | None = None
        if create:
            if read_only:
                raise ValueError("a store cannot be both created and read-only")
            init(url, action="a write")  # create, or adopt a seed database after checking it, then migrate
        else:
            with connect(self.read_url, autocommit=True) as con:
                self._check_ready(con)
        self._reads = ReadPool(self.read_url)

    def _check_ready(self, con: psycopg.Connection) -> None:
        where = redact(self.read_url)
        migrations = state(con)
        if not has_zone_table(con):
            raise StoreNotFound(f"{where} has no {TABLE} table (create it with 'forestguard db init --db URL')")
        if not migrations.initialised:
            raise UserError(
                f"{where} has a {TABLE} table but was never initialised for ForestGuard: run 'forestguard db init' "
                "(it adds ForestGuard's own tables beside the zone table and leaves the zone table as it is)"
            )
        if migrations.pending:
            labels = ", ".join(m.label for m in migrations.pending)
            raise UserError(f"{where} needs migrations {labels}: run 'forestguard db upgrade'")

    # -- reading ---------------------------------------------------------------------------
    def data_version(self) -> int:
        row = self._reads.run(lambda con: con.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'data_version'").fetchone())
        return int(row[0])

    def count(self, where: ZoneFilter = ZoneFilter()) -> int:
        if where.area is not None:
            return inside.count(self, where)
        compiled = where_sql(where)
        query = f"SELECT count(*) FROM {TABLE} WHERE {compiled.clause}"
        return int(self._reads.run(lambda con: con.execute(query, compiled.params).fetchone()[0]))

    def aggregate(self, where: ZoneFilter, by: Sequence[str]) -> pd.DataFrame:
        keys = check_group_keys(by)
        if where.area is not None:
            return inside.aggregate(self, where, keys)
        compiled = where_sql(where)
        # The summaries (migration 0005) answer every filter but a bounding box from a few rows per
        # combination, while they are in step with the zones (another writer's insert can leave them behind).
        summary, summary_params = summary_for(where, keys), compiled.params
        threshold = threshold_of(where, keys)
        if threshold is not None:  # the dashboard's slider: one threshold's rows of the thresholds summary
            other = where_sql(where.with_(min_confidence=None))
            summary, summary_params = SUMMARY_THRESHOLDS_TABLE, [*other.params, threshold]
            by_summary = summary_aggregate_sql(summary, keys, f"({other.clause}) AND threshold = %s", _sortable)
        else:
            by_summary = summary_aggregate_sql(summary, keys, compiled.clause, _sortable) if summary else None
        by_zones = aggregate_sql(zones_source(keys), keys, compiled.clause, _sortable)

        def read(con: psycopg.Connection) -> pd.DataFrame:
            if by_summary is not None and con.execute(_SUMMARY_IN_STEP).fetchone()[0]:
                return summary_frame(con.execute(by_summary, summary_params).fetchall(), keys)
            return pd.DataFrame(con.execute(by_zones, compiled.params).fetchall(), columns=[*keys, *AGGREGATE_COLUMNS])

        return self._reads.run(read)

    def zones_arrow(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, limit: int | None = None, offset: int = 0) -> pa.Table:
        if where.area is not None:
            if offset:
                raise ValueError("zones of an area are not paged")
            return inside.zones_arrow(self, where, columns, limit)
        wanted = _columns(columns)
        compiled = where_sql(where)
        params = list(compiled.params)
        if limit is None and offset:
            limit = 2**62  # PostgreSQL's LIMIT ALL, as a parameter
        if limit is None:
            # Arrow sorts faster than the server, whose sort of whole rows spills to disk at the
            # default work_mem; sort keys not asked for ride along and are dropped after.
            fetched = [*(k for k in ZONE_ORDER if k not in wanted), *wanted]
            order = ""
        else:
            fetched = wanted
            order = f" ORDER BY {_sortable('country')}, year, id LIMIT %s OFFSET %s"
            params.extend([int(limit), int(offset)])
        select = ", ".join(SELECT_EXPRESSIONS.get(c, c) for c in fetched)
        table = self._export(f"SELECT {select} FROM {zones_source(fetched)} WHERE {compiled.clause}{order}", params, fetched)
        if limit is None:
            # One chunk per column first: a take across the CSV reader's many chunks was ~12× slower.
            table = table.combine_chunks().sort_by([(k, "ascending") for k in ZONE_ORDER]).select(wanted)
        return table

    def _export(self, query: str, params: list, columns: list[str]) -> pa.Table:
        """One query's rows through COPY … TO STDOUT (CSV parsed by Arrow)."""

        def export(con: psycopg.Connection) -> pa.Table:
            with con.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params) as copy:
                return read_csv_copy(copy, columns)

        return self._reads.run(export)

    def zones_by_id(self, ids: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
        wanted = _columns(columns)
        select = ", ".join(SELECT_EXPRESSIONS.get(c, c) for c in wanted)
        return self._export(f"SELECT {select} FROM {TABLE} WHERE id = ANY(%s) ORDER BY id", [[int(i) for i in ids]], wanted)

    def zone_batches(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, batch_rows: int = 250_000) -> Iterator[pa.Table]:
        """Streamed from one COPY: Arrow parses a block (~8 MB) while the server sends the next."""
        if where.area is not None:
            yield from inside.batches(self, where, columns, batch_rows)
            return
        yield from self._copy_batches(where_sql(where), columns, batch_rows)

    def _area_candidates(self, where: ZoneFilter, box, columns: Sequence[str], batch_rows: int) -> Iterator[pa.Table]:
        compiled = where_sql(where)
        compiled = SQLFilter(f"({compiled.clause}) AND {_AREA_CANDIDATES_SQL}", [*compiled.params, *(float(v) for v in box)])
        yielded = False
        for table in self._copy_batches(compiled, columns, batch_rows):
            yielded = True
            yield table
        if not yielded:  # the schema still tells callers the columns' types
            yield pa.schema([(c, ARROW_TYPES[c]) for c in columns]).empty_table()

    def _copy_batches(self, compiled: SQLFilter, columns: Sequence[str] | None, batch_rows: int) -> Iterator[pa.Table]:
        wanted = _columns(columns)
        select = ", ".join(SELECT_EXPRESSIONS.get(c, c) for c in wanted)
        query = f"COPY (SELECT {select} FROM {zones_source(wanted)} WHERE {compiled.clause}) TO STDOUT (FORMAT csv)"
        pending: list[pa.RecordBatch] = []
        rows = 0
        with self._reads.connection() as con, con.cursor() as cursor, cursor.copy(query, compiled.params) as copy:
            for batch in csv_batches(copy, wanted):
                pending.append(batch)
                rows += batch.num_rows
                if rows >= batch_rows:
                    yield pa.Table.from_batches(pending)
                    pending, rows = [], 0
        if pending:
            yield pa.Table.from_batches(pending)

    def zone_geometries(self, ids: Sequence[int]) -> pa.Table:
        query = f"SELECT id, ST_AsBinary(geometry) FROM {TABLE} WHERE id = ANY(%s)"
        rows = self._reads.run(lambda con: con.execute(query, [[int(i) for i in ids]]).fetchall())
        return pa.table({"id": pa.array([r[0] for r in rows], pa.int32()), "geometry": pa.array([bytes(r[1]) for r in rows], pa.binary())})

    # -- writing ---------------------------------------------------------------------------
    def loads(self, sha256s: Sequence[str] | None = None) -> list[LoadRecord]:
        return self._reads.run(lambda con: loads_of(con, sha256s))

    def insert(self, zones: gpd.GeoDataFrame, *, files: Sequence[FileLoad] = (), again: bool = False) -> int:
        if self.read_only:
            raise ReadOnlyStore(f"{redact(self.url)} is open read-only")
        return self.insert_batches([zones], len(zones), files=files, again=again) if len(zones) else 0

    def insert_batches(self, batches: Iterable[gpd.GeoDataFrame], rows: int, *, files: Sequence[FileLoad] = (), again: bool = False) -> int:
        if self.read_only:
            raise ReadOnlyStore(f"{redact(self.url)} is open read-only")
        counted = _Counted(batches)
        self.last_alerts = 0
        with connect(self.url) as con:
            require_primary(con, self.url, "an ingest")  # before a batch is read: nothing half-done
            con.rollback()  # the check's transaction; the load opens its own
            try:
                with con.transaction():  # the ingest's own: the zones, their load records and their alerts commit together
                    watched = watch_check(con)
                    version = load_batches(con, watched.batches(counted), rows, bulk_min_rows=self.bulk_min_rows, files=files, again=again)
                    alerts = watched.deliveries(version) if version is not None and watched else []
                    write_outbox(con, alerts)
            except psycopg.errors.ReadOnlySqlTransaction:
                raise read_only_refusal(self.url, "an ingest") from None
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                raise UserError(f"{redact(self.url)} refused the zones, nothing was loaded: {one_line(exc)}") from None
        if version is not None:
            self.last_write_version = version
        self.last_alerts = len(alerts)  # committed
        return counted.rows

    # -- role ------------------------------------------------------------------------------
    def role(self) -> str:
        """Whether the server ``DATABASE_URL`` names is a ``"primary"`` or a ``"replica"`` now."""
        if self.read_url == self.url:
            return self._reads.run(server_role)
        with connect(self.url, autocommit=True) as con:
            return server_role(con)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._reads.close()


class _Counted:
    """Batches passed through, their rows counted."""

    def __init__(self, batches: Iterable[gpd.GeoDataFrame]) -> None:
        self.batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[gpd.GeoDataFrame]:
        for batch in self.batches:
            self.rows += len(batch)
            yield batch
