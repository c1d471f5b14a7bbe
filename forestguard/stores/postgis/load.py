"""Loading validated zones: one transaction, COPY, the data version bumped inside it.

Small loads COPY straight into the indexed table; concurrent loads run side by side and
queue only on the data-version row (the trigger of migration 0002) at the very end.

A load at least as large as the table (the first load, a rebuild) is a *bulk* load, done the
way PostgreSQL's "Populating a Database" advises: the secondary indexes are dropped, the rows
copied and the indexes re-created from their own definitions (``pg_get_indexdef``), all
inside the same transaction, so a failure restores the indexes with the rows. It needs an
ACCESS EXCLUSIVE lock: readers wait for the load (on a hot-standby replica too, which replays
the lock). If the lock is not granted within :data:`BULK_LOCK_TIMEOUT`, the load quietly
becomes an ordinary one rather than make every reader queue behind it. Statistics for the
planner are left to autovacuum, which analyses a table that has just grown this much.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import geopandas as gpd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from ...loads import LOADS_TABLE, FileLoad, LoadRecord, counted, refuse_repeats
from ...schema import TABLE
from ..summary import (
    SUMMARIES,
    SUMMARY_FINE_TABLE,
    SUMMARY_KEYS,
    SUMMARY_MEASURES,
    SUMMARY_THRESHOLDS_TABLE,
    SummaryDelta,
    summary_folding_sql,
    summary_rows_sql,
    thresholds_sql,
)
from .migrations import META_TABLE
from .transfer import binary_copy, copy_in_statement

#: Below this many zones, index maintenance costs less than rebuilding.
BULK_MIN_ROWS = 100_000
BULK_LOCK_TIMEOUT = "5s"
#: Memory for re-creating indexes in a bulk load (per session, released at commit).
BULK_MAINTENANCE_WORK_MEM = "256MB"

_SECONDARY_INDEXES = """
SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid), i.indisclustered, t.spcname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
WHERE i.indrelid = %s::regclass AND i.indisvalid
  AND NOT (i.indisunique OR i.indisprimary OR i.indisexclusion)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname
"""


@dataclass(frozen=True)
class _Index:
    schema: str
    name: str
    definition: str
    clustered: bool
    tablespace: str | None

    def drop(self) -> sql.Composed:
        return sql.SQL("DROP INDEX {}").format(sql.Identifier(self.schema, self.name))

    def create(self) -> list[sql.Composable]:
        # The definition is the server's own text for this index, re-run as it printed it.
        statement: sql.Composable = sql.SQL(self.definition)  # type: ignore[arg-type]
        if self.tablespace:
            statement = sql.SQL("{} TABLESPACE {}").format(statement, sql.Identifier(self.tablespace))
        out = [statement]
        if self.clustered:
            out.append(sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(sql.Identifier(TABLE), sql.Identifier(self.name)))
        return out


def load_batches(
    con: psycopg.Connection,
    batches: Iterable[gpd.GeoDataFrame],
    rows: int,
    *,
    bulk_min_rows: int = BULK_MIN_ROWS,
    files: Sequence[FileLoad] = (),
    again: bool = False,
) -> int | None:
    """Append zones arriving in ``batches`` (about ``rows``) in one transaction on ``con``.

    Returns the data version committed, or None when the batches held no zone (nothing is
    written then, not even a version bump). An exception from ``batches`` rolls back.
    A load record per file of ``files`` is written in the same transaction; a file whose
    content is recorded already raises :class:`AlreadyLoaded` before the COPY (unless
    ``again``). Loads of the same content queue on a transaction lock, so two concurrent
    runs of one file cannot both pass that check.
    """
    pending = (batch for batch in counted(batches, files) if len(batch))
    first = next(pending, None)  # a load of nothing must not start a COPY, whose trigger bumps the version
    if first is None:
        return None
    delta = SummaryDelta()
    with con.transaction():
        if files:
            for sha in sorted({f.sha256 for f in files}):
                con.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(sha)])
            if not again:
                refuse_repeats(files, {r.sha256: r for r in loads_of(con, [f.sha256 for f in files])})
        rebuilt = _start_bulk(con, rows) if rows >= bulk_min_rows else []
        with con.cursor() as cursor:
            with cursor.copy(copy_in_statement(TABLE), writer=QueuedLibpqWriter(cursor)) as copy:
                for block in binary_copy(_summed(itertools.chain([first], pending), delta)):
                    copy.write(block)
        summarise(con, delta)
        if rebuilt:
            con.execute("SELECT set_config('maintenance_work_mem', %s, true)", [BULK_MAINTENANCE_WORK_MEM])
            for index in rebuilt:
                for statement in index.create():
                    con.execute(statement)
        version = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'data_version'").fetchone()
        if version is None:
            raise RuntimeError(f"{META_TABLE} has no data_version row: run 'forestguard db upgrade'")
        if files:
            with con.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {LOADS_TABLE} (file, sha256, rows, data_version) VALUES (%s, %s, %s, %s)",
                                   [(f.file, f.sha256, f.rows, int(version[0])) for f in files])
    return int(version[0])


#: A summary is folded when it holds this many rows more than after its last folding.
SUMMARY_SLACK_ROWS = 100_000


def _summed(batches: Iterable[gpd.GeoDataFrame], delta: SummaryDelta) -> Iterator[gpd.GeoDataFrame]:
    for batch in batches:
        delta.add(batch)
        yield batch


def summarise(con: psycopg.Connection, delta: SummaryDelta) -> None:
    """Add a load's sums to the statistics summaries, in the load's transaction, after its COPY.

    The COPY's trigger has just bumped the data version and holds its row until commit, so
    loads pass here one at a time. If the summaries were in step before (summary_version one
    behind), this load's sums are appended; if another writer's insert left them behind, they
    are rebuilt from the zones. Either way they end in step with the version committed.
    """
    version, summarised = con.execute(
        f"SELECT (SELECT value FROM {META_TABLE} WHERE key = 'data_version'), (SELECT value FROM {META_TABLE} WHERE key = 'summary_version')"
    ).fetchone()
    if summarised == version - 1:
        _append_delta(con, delta.table())
    else:
        for table in SUMMARIES:
            con.execute(f"DELETE FROM {table}")
            con.execute(f"INSERT INTO {table} {summary_rows_sql(TABLE, table)}")
        con.execute(f"DELETE FROM {SUMMARY_THRESHOLDS_TABLE}")
        con.execute(f"INSERT INTO {SUMMARY_THRESHOLDS_TABLE} {thresholds_sql(SUMMARY_FINE_TABLE)}")
    con.execute(f"INSERT INTO {META_TABLE} (key, value) VALUES ('summary_version', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [version])
    fold_summary(con)


def _append_delta(con: psycopg.Connection, delta: pa.Table) -> None:
    """The load's sums (hundredths) into both summaries: one CSV COPY into a scratch table, two INSERTs."""
    if not delta.num_rows:
        return
    con.execute("""CREATE TEMP TABLE forestguard_summary_delta (
        country TEXT, year INTEGER, classification TEXT, source TEXT, verified BOOLEAN, confidence BIGINT,
        zones BIGINT, area BIGINT, confidence_sum BIGINT, confidence_n BIGINT, verified_zones BIGINT) ON COMMIT DROP""")
    text = io.BytesIO()
    pacsv.write_csv(delta.select(_DELTA_COLUMNS), text, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    with con.cursor().copy("COPY forestguard_summary_delta FROM STDIN (FORMAT csv)") as copy:
        copy.write(text.getbuffer())
    for table, keys in SUMMARIES.items():
        fine = "confidence" in keys
        con.execute(f"""
            INSERT INTO {table} ({', '.join(keys)}, {', '.join(SUMMARY_MEASURES)})
            SELECT country, year, classification, source, verified{', (confidence / 100.0)::numeric(3,2)' if fine else ''},
                   sum(zones), sum(area), sum(confidence_sum), sum(confidence_n), sum(verified_zones)
            FROM forestguard_summary_delta
            GROUP BY country, year, classification, source, verified{', confidence' if fine else ''}""")
    fine_delta = "(SELECT *, (confidence / 100.0)::numeric(3,2) AS confidence_value FROM forestguard_summary_delta)"
    con.execute(f"INSERT INTO {SUMMARY_THRESHOLDS_TABLE} {thresholds_sql(_as_fine(fine_delta))}")
    con.execute("DROP TABLE forestguard_summary_delta")


_DELTA_COLUMNS = ["country", "year", "classification", "source", "verified", "confidence", "zones", "area", "confidence_sum",
                  "confidence_n", "verified_zones"]


def _as_fine(delta: str) -> str:
    """The scratch delta (hundredths in ``confidence``, ``area``) in the fine summary's column names."""
    return (f"(SELECT {', '.join(SUMMARY_KEYS)}, confidence_value AS confidence, zones, area AS area_cents, "
            f"confidence_sum AS confidence_cents, confidence_n, verified_zones FROM {delta} AS d)")


def fold_summary(con: psycopg.Connection) -> None:
    """Fold the statistics summaries' repeated combinations (each load appends its own sums) once they have grown."""
    for table, keys in {**SUMMARIES, SUMMARY_THRESHOLDS_TABLE: (*SUMMARY_KEYS, "threshold")}.items():
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        folded = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = %s", [f"{table}_rows"]).fetchone()
        if rows <= (folded[0] if folded else 0) + SUMMARY_SLACK_ROWS:
            continue
        con.execute(f"WITH removed AS (DELETE FROM {table} RETURNING *) INSERT INTO {table} {summary_folding_sql('removed', keys)}")
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute(f"INSERT INTO {META_TABLE} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [f"{table}_rows", rows])


def loads_of(con: psycopg.Connection, sha256s: Sequence[str] | None = None) -> list[LoadRecord]:
    """Load records (all, or those of these contents), oldest first."""
    query = f"SELECT id, file, sha256, rows, loaded_at, data_version FROM {LOADS_TABLE}"
    params: list = []
    if sha256s is not None:
        query += " WHERE sha256 = ANY(%s)"
        params = [list(sha256s)]
    return [LoadRecord(*row) for row in con.execute(query + " ORDER BY id", params).fetchall()]


def _lock_key(sha256: str) -> int:
    """pg_advisory_xact_lock key of one file content: 8 bytes of its sha256, as a signed bigint."""
    return int.from_bytes(bytes.fromhex(sha256)[:8], "big", signed=True)


def _start_bulk(con: psycopg.Connection, incoming: int) -> list[_Index]:
    """Drop the secondary indexes when the load is at least as big as the table; return them."""
    # Counting stops at `incoming`: the question is only whether the table is smaller.
    existing = con.execute(
        sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) AS sample").format(sql.Identifier(TABLE)), [incoming]
    ).fetchone()[0]
    if existing >= incoming:
        return []
    previous = con.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
    try:
        with con.transaction():  # a savepoint: on timeout only the attempt is undone
            con.execute("SELECT set_config('lock_timeout', %s, true)", [BULK_LOCK_TIMEOUT])
            con.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(TABLE)))
    except psycopg.errors.LockNotAvailable:
        return []
    finally:
        con.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
    indexes = [_Index(*row) for row in con.execute(_SECONDARY_INDEXES, [TABLE])]
    for index in indexes:
        con.execute(index.drop())
    return indexes
