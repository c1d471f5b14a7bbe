"""The PostGIS engine's reference layers and evidence (migration 0007).

Reads go where the store reads (the replica when there is one); writes go to the primary in
one transaction each. Large writes (a run's findings and evidence rows) are COPYed as CSV
written by Arrow into temporary tables, then merged with set-based statements.
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from ...errors import UserError
from ..evidence_records import BOUNDS, EVIDENCE_SCHEMA, FINDINGS_SCHEMA, RUNS_SCHEMA, AppliedChange, EvidenceWrite, Layer, chunks
from ...schema import TABLE, Classification
from ..base import SQLFilter
from ..evidence import APPLIED, EVIDENCE, FEATURES, FINDINGS, LAYERS, RUNS, STATE, EvidenceStore
from .transfer import GEOMETRY_HASH_SQL

if TYPE_CHECKING:
    from .connection import ReadPool

#: A zone's area candidates through the GiST index (the store's own test, for a layer's box).
_BOX_SQL = "geometry && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"


def copy_arrow(con: psycopg.Connection, table: str, data: pa.Table) -> None:
    """COPY an Arrow table (no binary columns) into ``table``'s columns of the same names, as CSV Arrow writes."""
    if not len(data):
        return
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False, batch_size=65_536))
    with con.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(data.column_names)}) FROM STDIN (FORMAT csv)") as copy:
        view = buffer.getbuffer()
        for start in range(0, len(view), 1 << 22):
            copy.write(view[start : start + (1 << 22)])


class PostGISEvidence(EvidenceStore):
    """Reference layers and evidence in ForestGuard's tables beside the zone table."""

    # Provided by the store this is mixed into: _write() (PostGISAreas'), _copy_batches(), _label().
    url: str
    read_only: bool
    _reads: "ReadPool"
    geometry_hash_sql = GEOMETRY_HASH_SQL
    wkb_sql = "ST_AsBinary({g})"

    def _has_evidence(self) -> bool:
        return True  # the store refuses to open until migrations (0007 among them) are applied

    def _evidence_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        query = sql.replace("?", "%s")
        return self._reads.run(lambda con: con.execute(query, list(params)).fetchall())

    def _ids_in(self, column: str) -> str:
        return f"{column} = ANY(CAST(? AS integer[]))"

    @staticmethod
    def _bump(con: psycopg.Connection, key: str) -> int:
        return int(con.execute("UPDATE forestguard_meta SET value = value + 1 WHERE key = %s RETURNING value", [key]).fetchone()[0])

    # -- reference layers --------------------------------------------------------------------------
    def add_layer(self, layer: Layer, features: pa.Table, *, replace: bool = False) -> Layer:
        def add(con: psycopg.Connection) -> None:
            existing = con.execute(f"SELECT added_at FROM {LAYERS} WHERE name = %s FOR UPDATE", [layer.name]).fetchone()
            if existing is not None and not replace:
                raise UserError(f"a reference layer named {layer.name!r} is already stored (added {existing[0]:%Y-%m-%d %H:%M} UTC); use --replace to replace it")
            version = self._bump(con, "layer_version")
            con.execute(
                f"INSERT INTO {LAYERS} (name, kind, source, as_of, sha256, source_file, features, added_at, version) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, now(), %s) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, source = excluded.source, "
                "as_of = excluded.as_of, sha256 = excluded.sha256, source_file = excluded.source_file, features = excluded.features, "
                "added_at = excluded.added_at, version = excluded.version",
                [layer.name, layer.kind, layer.source, layer.as_of, layer.sha256, layer.source_file or None, len(features), version],
            )
            con.execute(f"DELETE FROM {FEATURES} WHERE layer = %s", [layer.name])
            rows = zip(*(features.column(c).to_pylist() for c in ("feature_id", "valid_from", "valid_to", "geometry")))
            with con.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {FEATURES} (layer, feature_id, valid_from, valid_to, geometry) VALUES (%s, %s, %s, %s, ST_GeomFromWKB(%s, 4326))",
                    [(layer.name, fid, start, end, wkb) for fid, start, end, wkb in rows],
                )
            self._bump(con, "evidence_version")

        self._write("store a reference layer", add)
        return self.reference_layer(layer.name)

    def remove_layer(self, name: str) -> None:
        def remove(con: psycopg.Connection) -> None:
            if con.execute(f"DELETE FROM {LAYERS} WHERE name = %s", [name]).rowcount == 0:
                self.reference_layer(name)  # raises with the list of stored layers
            self._bump(con, "evidence_version")

        self._write("remove a reference layer", remove)

    # -- evidence ----------------------------------------------------------------------------------
    def evidence_zone_batches(self, ids: np.ndarray | None = None, box=None, *, hashed: bool = False, geometry: bool = True, bounds: bool = False,
                              batch_rows: int = 100_000) -> Iterator[pa.Table]:
        terms, params = [], []
        if ids is not None:
            terms.append("id = ANY(%s)")
            params.append([int(i) for i in ids])
        if box is not None:
            terms.append(_BOX_SQL)
            params.extend(float(v) for v in box)
        columns = ["id", "year", *(["geometry"] if geometry else []), *(["geometry_hash"] if hashed else []), *(BOUNDS if bounds else ())]
        yield from self._copy_batches(SQLFilter(" AND ".join(terms) or "TRUE", params), columns, batch_rows)

    def write_evidence(self, write: EvidenceWrite) -> None:
        def store(con: psycopg.Connection) -> None:
            version = int(con.execute("SELECT value FROM forestguard_meta WHERE key = 'data_version' FOR UPDATE").fetchone()[0])
            if version != write.data_version:
                raise UserError(f"{self._label()} changed while evidence was computed (data version {write.data_version} → {version}); run it again")
            con.execute("CREATE TEMP TABLE recomputed_ids (zone_id integer) ON COMMIT DROP")
            con.execute("CREATE TEMP TABLE incoming_suggestions (zone_id integer, suggested text, rule text, rules_version text) ON COMMIT DROP")
            copy_arrow(con, "recomputed_ids", pa.table({"zone_id": pa.array(write.recomputed, pa.int32())}))
            copy_arrow(con, "incoming_suggestions", write.suggestions)
            if write.everything:  # (cheaper than by id, and nothing is left to prune)
                con.execute(f"DELETE FROM {FINDINGS}")
                con.execute(f"DELETE FROM {EVIDENCE}")
            else:
                con.execute(f"DELETE FROM {FINDINGS} f USING recomputed_ids r WHERE f.zone_id = r.zone_id")
            for layer, layer_version in write.dropped:
                con.execute(f"DELETE FROM {FINDINGS} WHERE layer = %s AND layer_version = %s", [layer, int(layer_version)])
            for chunk in chunks(write.findings):  # straight into the table, a chunk at a time (made as they are written)
                copy_arrow(con, FINDINGS, chunk.cast(FINDINGS_SCHEMA))
            if not write.everything:
                con.execute(f"DELETE FROM {EVIDENCE} e USING recomputed_ids r WHERE e.zone_id = r.zone_id")
            if write.default is not None:
                con.execute(f"UPDATE {EVIDENCE} SET suggested = %s, rule = NULL, rules_version = %s", [write.default, write.state.rules_version])
            for chunk in chunks(write.zones):
                copy_arrow(con, EVIDENCE, chunk.cast(EVIDENCE_SCHEMA))
            if len(write.suggestions):
                con.execute(f"UPDATE {EVIDENCE} e SET suggested = s.suggested, rule = s.rule, rules_version = s.rules_version "
                            "FROM incoming_suggestions s WHERE e.zone_id = s.zone_id")
            if write.prune and not write.everything:
                con.execute(f"DELETE FROM {EVIDENCE} e WHERE NOT EXISTS (SELECT 1 FROM {TABLE} z WHERE z.id = e.zone_id)")
                con.execute(f"DELETE FROM {FINDINGS} f WHERE NOT EXISTS (SELECT 1 FROM {TABLE} z WHERE z.id = f.zone_id)")
            con.execute(f"DELETE FROM {STATE}")
            with con.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {STATE} (key, value) VALUES (%s, %s)", write.state.to_rows())
            if write.run is not None:  # computed_at: naive UTC into timestamptz, read as UTC
                at, *rest = write.run.to_row()
                con.execute(f"INSERT INTO {RUNS} ({', '.join(RUNS_SCHEMA.names)}) VALUES ({', '.join(['%s'] * len(RUNS_SCHEMA))})",
                            [at.replace(tzinfo=timezone.utc), *rest])
            self._bump(con, "evidence_version")

        self._write("store evidence", store)

    def apply_suggestions(self, *, rules_version: str, dry_run: bool = False) -> list[AppliedChange]:
        when = datetime.now(timezone.utc).replace(microsecond=0)
        if dry_run:
            return [AppliedChange(z, s, r, rules_version, when) for z, s, r in self._unclassified_suggestions(rules_version)]

        def apply(con: psycopg.Connection) -> list[AppliedChange]:
            # Only zones still without a class once locked: what another writer classified meanwhile is left alone.
            rows = con.execute(
                f"SELECT z.id, e.suggested, e.rule FROM {TABLE} z JOIN {EVIDENCE} e ON e.zone_id = z.id "
                "WHERE z.classification IS NULL AND e.suggested IN ('legal', 'illegal') AND e.rules_version = %s ORDER BY z.id FOR UPDATE OF z",
                [rules_version],
            ).fetchall()
            changes = [AppliedChange(int(z), s, r, rules_version, when) for z, s, r in rows]
            if not changes:
                return changes
            con.execute("CREATE TEMP TABLE applied_now (zone_id integer, classification text, rule text) ON COMMIT DROP")
            copy_arrow(con, "applied_now", pa.table({"zone_id": pa.array([c.zone_id for c in changes], pa.int32()),
                                                     "classification": [Classification(c.classification).stored for c in changes],
                                                     "rule": pa.array([c.rule for c in changes], pa.string())}))
            con.execute(f"UPDATE {TABLE} z SET classification = a.classification, updated_at = now() FROM applied_now a WHERE z.id = a.zone_id")
            con.execute(f"INSERT INTO {APPLIED} (zone_id, classification, rule, rules_version, applied_at, run_id) "
                        "SELECT zone_id, classification, rule, %s, %s, %s FROM applied_now", [rules_version, when, uuid.uuid4().hex])
            return changes

        return self._write("change classifications", apply)

    def _export_evidence(self) -> dict[str, pa.Table]:
        def rows(sql: str) -> list[tuple]:
            return self._evidence_rows(sql)

        layers = rows(f"SELECT name, kind, source, as_of, sha256, source_file, features, added_at AT TIME ZONE 'UTC', version FROM {LAYERS} ORDER BY name")
        features = rows(f"SELECT layer, feature_id, valid_from, valid_to, ST_AsBinary(geometry) FROM {FEATURES} ORDER BY layer, feature_id")
        findings = rows(f"SELECT * FROM {FINDINGS} ORDER BY zone_id, layer, feature_id")
        evidence = rows(f"SELECT * FROM {EVIDENCE} ORDER BY zone_id")
        state = rows(f"SELECT key, value FROM {STATE} ORDER BY key")
        runs = rows(f"SELECT computed_at AT TIME ZONE 'UTC', {', '.join(RUNS_SCHEMA.names[1:])} FROM {RUNS} ORDER BY computed_at")

        def table(data: list[tuple], schema: pa.Schema) -> pa.Table:
            columns = list(zip(*data)) if data else [[] for _ in schema]
            return pa.table([pa.array([bytes(v) for v in c] if f.type == pa.binary() else list(c), f.type) for c, f in zip(columns, schema)], schema=schema)

        return {
            LAYERS: table(layers, pa.schema([("name", pa.string()), ("kind", pa.string()), ("source", pa.string()), ("as_of", pa.date32()),
                                             ("sha256", pa.string()), ("source_file", pa.string()), ("features", pa.int32()),
                                             ("added_at", pa.timestamp("us")), ("version", pa.int64())])),
            FEATURES: table(features, pa.schema([("layer", pa.string()), ("feature_id", pa.string()), ("valid_from", pa.date32()),
                                                 ("valid_to", pa.date32()), ("geometry", pa.binary())])),
            FINDINGS: table(findings, FINDINGS_SCHEMA),
            EVIDENCE: table(evidence, EVIDENCE_SCHEMA),
            STATE: table(state, pa.schema([("key", pa.string()), ("value", pa.string())])),
            RUNS: table(runs, RUNS_SCHEMA),
        }
