"""Reference layers and evidence in a store: the reads every engine shares, and the defaults.

The tables (DuckDB: :data:`DUCKDB_EVIDENCE_DDL`; PostGIS: migration 0007; snapshots: Parquet
files of their own) sit beside the zone table and never alter it:

- ``forestguard_layers``: one row per reference layer (kind, source, as-of date, file sha256,
  feature count, when added, and a ``version`` each add draws from a counter);
- ``forestguard_layer_features``: the layers' polygons, ids and validity dates;
- ``forestguard_findings``: (zone, layer version, feature) with the overlap's hectares, share
  and whether the feature was in force in the zone's year;
- ``forestguard_evidence``: per zone, the suggested class, the rule and rules version behind
  it, and the zone's year and geometry hash as they were read (what makes a run incremental);
- ``forestguard_evidence_state``: what the evidence was computed from (data version, rules,
  layer versions); ``forestguard_evidence_applied``: what ``evidence apply`` changed.

Findings join their layer on (name, version): a layer removed or replaced since the last run
stops showing at once, and the next run drops its findings. Reads here use ``?`` placeholders;
an engine's :meth:`_evidence_rows` runs them. Writes are each engine's own (bulk loading).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ReadOnlyStore, UserError
from .evidence_records import (
    FEATURES_SCHEMA,
    KINDS,
    RUNS_SCHEMA,
    AppliedChange,
    EvidenceRun,
    EvidenceState,
    EvidenceWrite,
    Finding,
    Layer,
    ZoneEvidence,
)
from ..schema import TABLE, Classification

LAYERS = "forestguard_layers"
FEATURES = "forestguard_layer_features"
FINDINGS = "forestguard_findings"
EVIDENCE = "forestguard_evidence"
STATE = "forestguard_evidence_state"
APPLIED = "forestguard_evidence_applied"
RUNS = "forestguard_evidence_runs"

#: The zone columns that live in the evidence table (read through a join).
EVIDENCE_COLUMNS = ("suggested",)


def zones_source(columns: Sequence[str] = ()) -> str:
    """What a zone query reads FROM: the zone table, joined to each zone's evidence when ``columns`` name a column of it."""
    if any(c in EVIDENCE_COLUMNS for c in columns):
        return f"{TABLE} LEFT JOIN {EVIDENCE} ON {EVIDENCE}.zone_id = {TABLE}.id"
    return TABLE


def overlaps_sql(kinds: Sequence[str], placeholder: str = "?") -> str:
    """The filter term "overlaps a layer of one of ``kinds``" (a finding is an overlap of more than 0 ha)."""
    marks = ", ".join([placeholder] * len(kinds))
    return (f"id IN (SELECT f.zone_id FROM {FINDINGS} f JOIN {LAYERS} l ON l.name = f.layer AND l.version = f.layer_version "
            f"WHERE l.kind IN ({marks}))")


_LAYER_COLUMNS = "name, kind, source, as_of, sha256, source_file, features, added_at, version"
_APPLIED_COLUMNS = "zone_id, classification, rule, rules_version, applied_at"
_RUN_COLUMNS = ", ".join(RUNS_SCHEMA.names)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def layer_of(row: tuple) -> Layer:
    name, kind, source, as_of, sha256, source_file, features, added, version = row
    return Layer(name, kind, source, as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of)), sha256, source_file or "",
                 int(features), _utc(added), int(version))


class EvidenceStore:
    """What every store answers about reference layers and evidence; stores without them have none and refuse writes."""

    # Provided by the store this is mixed into.
    read_only: bool

    def _label(self) -> str:  # pragma: no cover - ZoneStore's
        raise NotImplementedError

    # -- engine hooks ------------------------------------------------------------------------------
    def _has_evidence(self) -> bool:
        """Whether the store has the evidence tables (a store from before them, opened read-only, has not)."""
        return False

    def _evidence_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read written with ``?`` placeholders."""
        raise NotImplementedError

    def _ids_in(self, column: str) -> str:
        """A term "``column`` is one of the ids given as one list parameter"."""
        raise NotImplementedError

    #: SQL of a zone geometry's hash (``{g}``: the geometry column): stored with each zone's evidence.
    geometry_hash_sql = ""
    wkb_sql = "ST_AsWKB({g})"

    def _no_evidence(self) -> UserError:
        return UserError(f"{self._label()} has no reference layers or evidence (written before they existed; open it to write once, or run 'forestguard layers add')")

    def require_evidence(self) -> None:
        """Refuse, in one line, a statistic that needs evidence from a store without its tables."""
        if not self._has_evidence():
            raise self._no_evidence()

    # -- reference layers --------------------------------------------------------------------------
    def reference_layers(self) -> list[Layer]:
        """Every reference layer, by name."""
        if not self._has_evidence():
            return []
        rows = self._evidence_rows(f"SELECT {_LAYER_COLUMNS} FROM {LAYERS}")
        return sorted((layer_of(r) for r in rows), key=lambda layer: layer.name)

    def reference_layer(self, name: str) -> Layer:
        """The layer ``name``; a name that is not stored is the user's error, listing those that are."""
        found = [layer for layer in self.reference_layers() if layer.name == name]
        if not found:
            known = [layer.name for layer in self.reference_layers()]
            listing = ", ".join(repr(n) for n in known[:20]) + (f", … ({len(known)} in all)" if len(known) > 20 else "")
            raise UserError(f"no reference layer {name!r} in {self._label()} ({'stored: ' + listing if known else 'none is stored'}; see 'forestguard layers list')")
        return found[0]

    def layer_features(self, layers: Sequence[str] | None = None) -> pa.Table:
        """The features of ``layers`` (default: all): ``layer`` then :data:`FEATURES_SCHEMA`, geometry as WKB."""
        schema = pa.schema([("layer", pa.string()), *FEATURES_SCHEMA])
        if not self._has_evidence() or (layers is not None and not layers):
            return schema.empty_table()
        where, params = ("", []) if layers is None else (f"WHERE layer IN ({', '.join('?' * len(layers))})", list(layers))
        rows = self._evidence_rows(f"SELECT layer, feature_id, valid_from, valid_to, {self.wkb_sql.format(g='geometry')} FROM {FEATURES} {where} ORDER BY layer, feature_id", params)
        columns = list(zip(*rows)) if rows else [[]] * 5
        return pa.table([pa.array(list(c), t.type) if i < 4 else pa.array([bytes(v) for v in c], pa.binary()) for i, (c, t) in enumerate(zip(columns, schema))], schema=schema)

    def add_layer(self, layer: Layer, features: pa.Table, *, replace: bool = False) -> Layer:
        """Store a layer and its features in one transaction (refused if the name is taken, unless ``replace``)."""
        raise ReadOnlyStore(f"{self._label()} cannot store reference layers (read-only)")

    def remove_layer(self, name: str) -> None:
        """Remove a layer and its features (its findings stop showing; the next ``evidence compute`` drops them)."""
        raise ReadOnlyStore(f"{self._label()} cannot remove reference layers (read-only)")

    # -- evidence: state and reads -----------------------------------------------------------------
    def evidence_version(self) -> int:
        """A number each evidence write (and each layer added or removed) increases: cache keys of evidence filters hold it."""
        if not self._has_evidence():
            return 0
        return int(self._evidence_rows("SELECT value FROM forestguard_meta WHERE key = 'evidence_version'")[0][0])

    def evidence_state(self) -> EvidenceState | None:
        """What the stored evidence was computed from (None: never computed)."""
        if not self._has_evidence():
            return None
        return EvidenceState.from_rows(self._evidence_rows(f"SELECT key, value FROM {STATE}"))

    def evidence_runs(self, limit: int = 100) -> list[EvidenceRun]:
        """The evidence runs that wrote something, newest first: the rules version and sha256 and the layers each used."""
        if not self._has_evidence():
            return []
        rows = self._evidence_rows(f"SELECT {_RUN_COLUMNS} FROM {RUNS} ORDER BY computed_at DESC, data_version DESC LIMIT ?", [int(limit)])
        return [EvidenceRun.from_row(r) for r in rows]

    def stale_zone_ids(self) -> np.ndarray:
        """Zones whose evidence is missing or was computed from another year or geometry (ascending)."""
        hashed = self.geometry_hash_sql.format(g="z.geometry")
        rows = self._evidence_rows(
            f"SELECT z.id FROM {TABLE} z LEFT JOIN {EVIDENCE} e ON e.zone_id = z.id "
            f"WHERE e.zone_id IS NULL OR e.zone_year <> z.year OR e.geometry_hash <> {hashed} ORDER BY z.id"
        )
        return np.array([r[0] for r in rows], dtype=np.int64)

    def zones_with_findings(self, layers: Sequence[tuple[str, int]]) -> np.ndarray:
        """Zones that have a finding of one of these (layer, version) pairs."""
        if not layers:
            return np.zeros(0, dtype=np.int64)
        terms = " OR ".join(["(layer = ? AND layer_version = ?)"] * len(layers))
        rows = self._evidence_rows(f"SELECT DISTINCT zone_id FROM {FINDINGS} WHERE {terms} ORDER BY zone_id", [v for pair in layers for v in pair])
        return np.array([r[0] for r in rows], dtype=np.int64)

    def findings_of(self, zone_ids: np.ndarray | None = None) -> pd.DataFrame:
        """The findings of these zones (default: all) whose layer is stored as computed, with the layer's kind."""
        columns = ["zone_id", "layer", "layer_version", "feature_id", "overlap_ha", "overlap_share", "valid_at_zone_year", "kind"]
        if not self._has_evidence() or (zone_ids is not None and not len(zone_ids)):
            return pd.DataFrame(columns=columns)
        where, params = ("", []) if zone_ids is None else (f"WHERE {self._ids_in('f.zone_id')}", [[int(i) for i in zone_ids]])
        rows = self._evidence_rows(
            f"SELECT f.zone_id, f.layer, f.layer_version, f.feature_id, f.overlap_ha, f.overlap_share, f.valid_at_zone_year, l.kind "
            f"FROM {FINDINGS} f JOIN {LAYERS} l ON l.name = f.layer AND l.version = f.layer_version {where}",
            params,
        )
        return pd.DataFrame(rows, columns=columns)

    def zones_evidence(self, zone_ids: Sequence[int]) -> list[ZoneEvidence]:
        """Each zone's stored class, suggestion and findings (with their layers' provenance); zones that do not exist are left out."""
        if not len(zone_ids):
            return []
        ids = [[int(i) for i in zone_ids]]
        has = self._has_evidence()
        if has:
            zones = self._evidence_rows(
                f"SELECT z.id, z.classification, z.year, e.suggested, e.rules_version, e.rule FROM {TABLE} z "
                f"LEFT JOIN {EVIDENCE} e ON e.zone_id = z.id WHERE {self._ids_in('z.id')}", ids)
            found = self._evidence_rows(
                f"SELECT f.zone_id, f.layer, l.kind, l.source, l.as_of, f.feature_id, f.overlap_ha, f.overlap_share, f.valid_at_zone_year "
                f"FROM {FINDINGS} f JOIN {LAYERS} l ON l.name = f.layer AND l.version = f.layer_version WHERE {self._ids_in('f.zone_id')}", ids)
        else:
            zones = [(*r, None, None, None) for r in self._evidence_rows(f"SELECT id, classification, year FROM {TABLE} WHERE {self._ids_in('id')}", ids)]
            found = []
        by_zone: dict[int, list[Finding]] = {}
        for zone_id, layer, kind, source, as_of, feature_id, hectares, share, valid in found:
            as_of = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of))
            by_zone.setdefault(int(zone_id), []).append(Finding(layer, kind, source, as_of, feature_id, float(hectares), float(share), bool(valid)))
        out = {}
        for zone_id, stored, year, suggested, version, rule in zones:
            cls = Classification.from_stored(stored)
            findings = sorted(by_zone.get(int(zone_id), []), key=lambda f: (-f.overlap_ha, f.layer, f.feature_id))
            out[int(zone_id)] = ZoneEvidence(int(zone_id), cls.value if cls else None, suggested, version, rule, int(year), tuple(findings))
        return [out[int(i)] for i in zone_ids if int(i) in out]

    def zone_evidence(self, zone_id: int) -> ZoneEvidence:
        """One zone's evidence; a zone that does not exist is the user's error."""
        found = self.zones_evidence([zone_id])
        if not found:
            raise UserError(f"no zone {zone_id} in {self._label()}")
        return found[0]

    def evidence_zone_batches(self, ids: np.ndarray | None = None, box: tuple[float, float, float, float] | None = None, *,
                              hashed: bool = False, geometry: bool = True, bounds: bool = False, batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """``id``, ``year``, ``geometry`` (WKB) and, when ``hashed``, ``geometry_hash`` of the zones ``ids`` (default: all), or of those that may meet ``box``.

        ``geometry=False`` leaves the WKB out and ``bounds`` adds each zone's box (``xmin``, ``ymin``,
        ``xmax``, ``ymax``): a run first reads every zone's box, then the geometry of only those near a feature.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot compute evidence")

    def write_evidence(self, write: EvidenceWrite) -> None:
        """Store one run's evidence in one transaction (see :class:`EvidenceWrite`)."""
        raise ReadOnlyStore(f"{self._label()} cannot store evidence (read-only)")

    # -- evidence apply ----------------------------------------------------------------------------
    def apply_suggestions(self, *, rules_version: str, dry_run: bool = False) -> list[AppliedChange]:
        """Write each unclassified zone's suggestion (legal or illegal, of ``rules_version``) as its classification, recorded."""
        raise ReadOnlyStore(f"{self._label()} cannot change classifications (read-only)")

    def applied_changes(self, limit: int = 1000) -> list[AppliedChange]:
        """What ``evidence apply`` changed, newest first."""
        if not self._has_evidence():
            return []
        rows = self._evidence_rows(f"SELECT {_APPLIED_COLUMNS} FROM {APPLIED} ORDER BY applied_at DESC, zone_id LIMIT ?", [int(limit)])
        return [AppliedChange(int(z), Classification.from_stored(c).value, r, v, _utc(t)) for z, c, r, v, t in rows]

    def _unclassified_suggestions(self, rules_version: str, run: Any = None) -> list[tuple[int, str, str | None]]:
        """(zone, suggestion, rule) of zones without a classification whose suggestion of ``rules_version`` is a class.

        ``run`` runs the query inside a writer's transaction (default: a read).
        """
        rows = (run or self._evidence_rows)(
            f"SELECT z.id, e.suggested, e.rule FROM {TABLE} z JOIN {EVIDENCE} e ON e.zone_id = z.id "
            f"WHERE z.classification IS NULL AND e.suggested IN ('legal', 'illegal') AND e.rules_version = ? ORDER BY z.id",
            [rules_version],
        )
        return [(int(z), s, r) for z, s, r in rows]

    # -- snapshots ---------------------------------------------------------------------------------
    def evidence_tables(self) -> dict[str, pa.Table]:
        """The layers, features and evidence as Arrow tables, for a snapshot (empty when the store has none)."""
        if not self._has_evidence() or not self._evidence_rows(f"SELECT count(*) FROM {LAYERS}")[0][0]:
            return {}
        return self._export_evidence()

    def _export_evidence(self) -> dict[str, pa.Table]:
        raise NotImplementedError


__all__ = ["EvidenceStore", "KINDS", "zones_source", "overlaps_sql", "layer_of"]
