"""The embedded engine's reference layers and evidence (tables in the store's DuckDB file).

No primary keys on the evidence tables: a run deletes and inserts the same zones in one
transaction, which DuckDB's index checks handle poorly; the code keeps one row per zone.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import UserError
from .evidence_records import BOUNDS, EVIDENCE_SCHEMA, FINDINGS_SCHEMA, KINDS, RUNS_SCHEMA, SUGGESTIONS, AppliedChange, EvidenceWrite, Layer, chunks
from ..schema import TABLE, Classification
from .evidence import APPLIED, EVIDENCE, FEATURES, FINDINGS, LAYERS, RUNS, STATE, EvidenceStore

_KINDS_SQL = ", ".join(f"'{k}'" for k in KINDS)
_SUGGESTIONS_SQL = ", ".join(f"'{s}'" for s in SUGGESTIONS)

#: Each evidence table's DDL (a snapshot makes those it does not carry, empty).
EVIDENCE_TABLES_DDL: dict[str, str] = {
    LAYERS: f"""CREATE TABLE IF NOT EXISTS {LAYERS} (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL CHECK (kind IN ({_KINDS_SQL})),
    source VARCHAR NOT NULL,
    as_of DATE NOT NULL,
    sha256 VARCHAR NOT NULL,
    source_file VARCHAR,
    features INTEGER NOT NULL,
    added_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL
);""",
    FEATURES: f"""CREATE TABLE IF NOT EXISTS {FEATURES} (
    layer VARCHAR NOT NULL,
    feature_id VARCHAR NOT NULL,
    valid_from DATE,
    valid_to DATE,
    geometry GEOMETRY NOT NULL
);""",
    FINDINGS: f"""CREATE TABLE IF NOT EXISTS {FINDINGS} (
    zone_id INTEGER NOT NULL,
    layer VARCHAR NOT NULL,
    layer_version BIGINT NOT NULL,
    feature_id VARCHAR NOT NULL,
    overlap_ha DOUBLE NOT NULL,
    overlap_share DOUBLE NOT NULL,
    valid_at_zone_year BOOLEAN NOT NULL
);""",
    EVIDENCE: f"""CREATE TABLE IF NOT EXISTS {EVIDENCE} (
    zone_id INTEGER NOT NULL,
    zone_year INTEGER NOT NULL,
    geometry_hash VARCHAR NOT NULL,
    suggested VARCHAR NOT NULL CHECK (suggested IN ({_SUGGESTIONS_SQL})),
    rule VARCHAR,
    rules_version VARCHAR NOT NULL
);""",
    STATE: f"CREATE TABLE IF NOT EXISTS {STATE} (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);",
    APPLIED: f"""CREATE TABLE IF NOT EXISTS {APPLIED} (
    zone_id INTEGER NOT NULL,
    classification VARCHAR NOT NULL,
    rule VARCHAR,
    rules_version VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);""",
    RUNS: f"""CREATE TABLE IF NOT EXISTS {RUNS} (
    computed_at TIMESTAMP NOT NULL,
    data_version BIGINT NOT NULL,
    rules_version VARCHAR NOT NULL,
    rules_sha256 VARCHAR NOT NULL,
    layers VARCHAR NOT NULL,
    zones_measured BIGINT NOT NULL,
    findings_written BIGINT NOT NULL,
    suggestions_evaluated BIGINT NOT NULL,
    suggested VARCHAR NOT NULL,
    seconds DOUBLE NOT NULL
);""",
}
DUCKDB_EVIDENCE_DDL = "\n".join(EVIDENCE_TABLES_DDL.values()) + """
INSERT INTO forestguard_meta VALUES ('evidence_version', 0), ('layer_version', 0) ON CONFLICT DO NOTHING;
"""


def _naive_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class DuckDBEvidence(EvidenceStore):
    """Reference layers and evidence in the store's DuckDB file."""

    # Provided by the store this is mixed into: read_only, _lock, _cursor(), _load_spatial(), _writable() (DuckDBAreas').
    read_only: bool
    _lock: "threading.RLock"
    area_candidates_sql: str
    area_scan_sql: str
    rtree_max_box_deg2: float
    geometry_hash_sql = "CAST(hash({g}) AS VARCHAR)"

    def _has_evidence(self) -> bool:
        return bool(self._cursor().execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [LAYERS]).fetchone()[0])

    def _evidence_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._cursor().execute(sql, list(params)).fetchall()

    def _ids_in(self, column: str) -> str:
        return f"{column} IN (SELECT unnest(CAST(? AS INTEGER[])))"

    def _transaction(self, work) -> Any:
        """``work(con)`` in one transaction on a cursor of its own."""
        with self._lock:
            con = self._cursor()
            con.execute("BEGIN TRANSACTION")
            try:
                result = work(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return result

    @staticmethod
    def _bump(con: duckdb.DuckDBPyConnection, key: str) -> int:
        return int(con.execute("UPDATE forestguard_meta SET value = value + 1 WHERE key = ? RETURNING value", [key]).fetchone()[0])

    # -- reference layers --------------------------------------------------------------------------
    def add_layer(self, layer: Layer, features: pa.Table, *, replace: bool = False) -> Layer:
        self._writable("store a reference layer")

        def add(con: duckdb.DuckDBPyConnection) -> None:
            existing = con.execute(f"SELECT added_at FROM {LAYERS} WHERE name = ?", [layer.name]).fetchone()
            if existing is not None and not replace:
                raise UserError(f"a reference layer named {layer.name!r} is already stored (added {existing[0]:%Y-%m-%d %H:%M} UTC); use --replace to replace it")
            version = self._bump(con, "layer_version")
            values = [layer.kind, layer.source, layer.as_of, layer.sha256, layer.source_file or None, len(features), _naive_now(), version]
            if existing is None:
                con.execute(f"INSERT INTO {LAYERS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [layer.name, *values])
            else:
                con.execute(f"UPDATE {LAYERS} SET kind = ?, source = ?, as_of = ?, sha256 = ?, source_file = ?, features = ?, added_at = ?, version = ? WHERE name = ?",
                            [*values, layer.name])
                con.execute(f"DELETE FROM {FEATURES} WHERE layer = ?", [layer.name])
            con.register("incoming_features", features)
            try:
                con.execute(f"INSERT INTO {FEATURES} SELECT ?, feature_id, valid_from, valid_to, ST_GeomFromWKB(geometry) FROM incoming_features", [layer.name])
            finally:
                con.unregister("incoming_features")
            self._bump(con, "evidence_version")

        self._transaction(add)
        return self.reference_layer(layer.name)

    def remove_layer(self, name: str) -> None:
        self._writable("remove a reference layer")
        self.reference_layer(name)  # an unknown name is the user's error, with the list

        def remove(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"DELETE FROM {FEATURES} WHERE layer = ?", [name])
            con.execute(f"DELETE FROM {LAYERS} WHERE name = ?", [name])
            self._bump(con, "evidence_version")

        self._transaction(remove)

    # -- evidence ----------------------------------------------------------------------------------
    def evidence_zone_batches(self, ids: np.ndarray | None = None, box=None, *, hashed: bool = False, geometry: bool = True, bounds: bool = False,
                              batch_rows: int = 100_000) -> Iterator[pa.Table]:
        columns = ["id", "year", *(["ST_AsWKB(geometry) AS geometry"] if geometry else []),
                   *([f"{self.geometry_hash_sql.format(g='geometry')} AS geometry_hash"] if hashed else []),
                   *([f"ST_{name}(ST_Extent(geometry)) AS {name}" for name in BOUNDS] if bounds else [])]  # (from the box: ~10× faster)
        if bounds:
            self._load_spatial()
        con = self._cursor()
        terms, params = [], []
        if ids is not None:
            con.register("evidence_ids", pa.table({"id": pa.array(np.asarray(ids), pa.int32())}))
            terms.append("id IN (SELECT id FROM evidence_ids)")
        if box is not None:  # the store's own choice between its R-tree and a scan in order, as for an area
            self._load_spatial()
            small = (box[2] - box[0]) * (box[3] - box[1]) <= self.rtree_max_box_deg2
            terms.append(self.area_candidates_sql if small else self.area_scan_sql)
            params.extend(float(v) for v in box)
        try:
            # No ORDER BY: a sort would hold every row before the first batch; batches stream as stored.
            reader = con.execute(f"SELECT {', '.join(columns)} FROM {TABLE} WHERE {' AND '.join(terms) or 'TRUE'}", params).to_arrow_reader(batch_rows)
            for batch in reader:
                yield pa.Table.from_batches([batch])
        finally:
            if ids is not None:
                con.unregister("evidence_ids")

    def write_evidence(self, write: EvidenceWrite) -> None:
        self._writable("store evidence")

        def store(con: duckdb.DuckDBPyConnection) -> None:
            version = int(con.execute("SELECT value FROM forestguard_meta WHERE key = 'data_version'").fetchone()[0])
            if version != write.data_version:
                raise UserError(f"{self._label()} changed while evidence was computed (data version {write.data_version} → {version}); run it again")
            tables = {
                "recomputed_ids": pa.table({"zone_id": pa.array(write.recomputed, pa.int32())}),
                "incoming_suggestions": write.suggestions,
            }
            for name, table in tables.items():
                con.register(name, table)
            try:
                if write.everything:  # (cheaper than by id, and nothing is left to prune)
                    con.execute(f"DELETE FROM {FINDINGS}")
                    con.execute(f"DELETE FROM {EVIDENCE}")
                else:
                    con.execute(f"DELETE FROM {FINDINGS} WHERE zone_id IN (SELECT zone_id FROM recomputed_ids)")
                for layer, layer_version in write.dropped:
                    con.execute(f"DELETE FROM {FINDINGS} WHERE layer = ? AND layer_version = ?", [layer, int(layer_version)])
                self._insert_chunks(con, FINDINGS, write.findings, FINDINGS_SCHEMA)
                if not write.everything:
                    con.execute(f"DELETE FROM {EVIDENCE} WHERE zone_id IN (SELECT zone_id FROM recomputed_ids)")
                if write.default is not None:
                    con.execute(f"UPDATE {EVIDENCE} SET suggested = ?, rule = NULL, rules_version = ?", [write.default, write.state.rules_version])
                self._insert_chunks(con, EVIDENCE, write.zones, EVIDENCE_SCHEMA)
                if len(write.suggestions):  # (a join over every zone's evidence otherwise)
                    con.execute(f"UPDATE {EVIDENCE} SET suggested = s.suggested, rule = s.rule, rules_version = s.rules_version "
                                f"FROM incoming_suggestions s WHERE {EVIDENCE}.zone_id = s.zone_id")
                if write.prune and not write.everything:  # zones changed: evidence of zones that went, goes
                    con.execute(f"DELETE FROM {EVIDENCE} WHERE zone_id NOT IN (SELECT id FROM {TABLE})")
                    con.execute(f"DELETE FROM {FINDINGS} WHERE zone_id NOT IN (SELECT id FROM {TABLE})")
            finally:
                for name in tables:
                    con.unregister(name)
            con.execute(f"DELETE FROM {STATE}")
            con.executemany(f"INSERT INTO {STATE} VALUES (?, ?)", [list(r) for r in write.state.to_rows()])
            if write.run is not None:
                con.execute(f"INSERT INTO {RUNS} ({', '.join(RUNS_SCHEMA.names)}) VALUES ({', '.join('?' * len(RUNS_SCHEMA))})", list(write.run.to_row()))
            self._bump(con, "evidence_version")

        self._transaction(store)

    @staticmethod
    def _insert_chunks(con: duckdb.DuckDBPyConnection, table: str, data, schema: pa.Schema) -> None:
        """Insert each chunk of ``data`` (a table or tables, made one at a time) into ``table``."""
        for chunk in chunks(data):
            con.register("incoming_chunk", chunk.cast(schema))
            try:
                con.execute(f"INSERT INTO {table} SELECT * FROM incoming_chunk")
            finally:
                con.unregister("incoming_chunk")

    def apply_suggestions(self, *, rules_version: str, dry_run: bool = False) -> list[AppliedChange]:
        if not dry_run:
            self._writable("change classifications")
        when = datetime.now(timezone.utc).replace(microsecond=0)

        def apply(con: duckdb.DuckDBPyConnection) -> list[AppliedChange]:
            rows = self._unclassified_suggestions(rules_version, lambda sql, params: con.execute(sql, list(params)).fetchall())
            changes = [AppliedChange(z, s, r, rules_version, when) for z, s, r in rows]
            if dry_run or not changes:
                return changes
            run = uuid.uuid4().hex
            table = pa.table({"zone_id": pa.array([c.zone_id for c in changes], pa.int32()),
                              "classification": pa.array([Classification(c.classification).stored for c in changes], pa.string()),
                              "rule": pa.array([c.rule for c in changes], pa.string())})
            con.register("applied_now", table)
            try:
                # Only zones still without a class: what another writer classified meanwhile is left alone.
                con.execute(f"UPDATE {TABLE} SET classification = a.classification, updated_at = current_timestamp FROM applied_now a "
                            f"WHERE {TABLE}.id = a.zone_id AND {TABLE}.classification IS NULL")
                con.execute(f"INSERT INTO {APPLIED} SELECT zone_id, classification, rule, ?, ?, ? FROM applied_now", [rules_version, when.replace(tzinfo=None), run])
            finally:
                con.unregister("applied_now")
            self._bump(con, "data_version")
            return changes

        if dry_run:
            return apply(self._cursor())
        return self._transaction(apply)

    def _export_evidence(self) -> dict[str, pa.Table]:
        con = self._cursor()
        return {
            LAYERS: con.execute(f"SELECT * FROM {LAYERS} ORDER BY name").to_arrow_table(),
            FEATURES: con.execute(f"SELECT layer, feature_id, valid_from, valid_to, ST_AsWKB(geometry) AS geometry FROM {FEATURES} ORDER BY layer, feature_id").to_arrow_table(),
            FINDINGS: con.execute(f"SELECT * FROM {FINDINGS} ORDER BY zone_id, layer, feature_id").to_arrow_table(),
            EVIDENCE: con.execute(f"SELECT * FROM {EVIDENCE} ORDER BY zone_id").to_arrow_table(),
            STATE: con.execute(f"SELECT * FROM {STATE} ORDER BY key").to_arrow_table(),
            RUNS: con.execute(f"SELECT {', '.join(RUNS_SCHEMA.names)} FROM {RUNS} ORDER BY computed_at").to_arrow_table().cast(RUNS_SCHEMA),
        }
