"""``forestguard evidence compute``: each zone's findings and suggested class, redoing only what changed.

A run compares what the stored evidence was computed from (:class:`EvidenceState`: data
version, rules version, each layer's version) with the store now:

- zones new or changed since (another year or geometry: the store's own hash of each zone's
  geometry is kept with its evidence) are measured against every layer, and the evidence of
  zones that went is dropped — only when the data version moved;
- layers added (or replaced) since are measured against the zones their box may meet (the
  store's spatial index), and findings of layers removed or replaced are dropped;
- suggestions are evaluated again for the zones whose findings changed, or for every zone
  when the rules' version changed.

Overlaps are :func:`forestguard.areas.overlay.overlaps` (RFC 7946 clip, geodesic hectares on
WGS84), whatever the engine, so DuckDB, PostGIS and snapshots hold identical findings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from ..areas.overlay import PolygonIndex, overlaps
from ..stores.base import ZoneStore
from ..stores.evidence_records import EVIDENCE_SCHEMA, FINDINGS_SCHEMA, SUGGESTION_SCHEMA, EvidenceRun, EvidenceState, EvidenceWrite, Layer
from .rules import Rules, RulesError

BATCH_ROWS = 100_000


@dataclass
class ComputeReport:
    """What a run did: what it found changed and how much it read and wrote."""

    zones_recomputed: int = 0
    zones_read: int = 0
    layers_added: list[str] = field(default_factory=list)
    layers_dropped: list[str] = field(default_factory=list)
    rules_changed: bool = False
    findings_written: int = 0
    suggestions_evaluated: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    suggested: dict[str, int] = field(default_factory=dict)  #: suggestions evaluated, by class

    def lines(self) -> list[str]:
        if self.up_to_date:
            return ["evidence is up to date (same zones, layers and rules): nothing to do"]
        out = [f"zones measured against every layer: {self.zones_recomputed:,}"]
        if self.layers_added:
            out.append(f"layers measured against the zones they may meet: {', '.join(repr(n) for n in self.layers_added)}")
        if self.layers_dropped:
            out.append(f"findings dropped of layers removed or replaced: {', '.join(repr(n) for n in self.layers_dropped)}")
        if self.rules_changed:
            out.append("rules version changed: every suggestion evaluated again")
        by_class = ", ".join(f"{k} {v:,}" for k, v in sorted(self.suggested.items()))
        out.append(f"zones read {self.zones_read:,}; findings written {self.findings_written:,}; "
                   f"suggestions evaluated {self.suggestions_evaluated:,}{' (' + by_class + ')' if by_class else ''}; {self.seconds:.1f} s")
        return out


@dataclass(frozen=True)
class _Features:
    """The reference features measured in a run, with what findings need of each."""

    index: PolygonIndex
    layer: np.ndarray
    layer_version: np.ndarray
    kind: np.ndarray
    feature_id: np.ndarray
    first_year: np.ndarray  #: year valid_from falls in (-inf: no date)
    last_year: np.ndarray  #: year valid_to falls in (+inf: no date)

    @classmethod
    def of(cls, store: ZoneStore, layers: list[Layer]) -> "_Features":
        table = store.layer_features([layer.name for layer in layers])
        by_name = {layer.name: layer for layer in layers}
        names = np.asarray(table.column("layer").to_pylist(), dtype=object)
        return cls(
            index=PolygonIndex.from_wkb(table.column("geometry")),
            layer=names,
            layer_version=np.array([by_name[n].version for n in names], dtype=np.int64),
            kind=np.array([by_name[n].kind for n in names], dtype=object),
            feature_id=np.asarray(table.column("feature_id").to_pylist(), dtype=object),
            first_year=_years(table.column("valid_from"), -np.inf),
            last_year=_years(table.column("valid_to"), np.inf),
        )

    def box(self) -> tuple[float, float, float, float] | None:
        if not len(self.index):
            return None
        b = self.index.bounds
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))


def _years(column: pa.ChunkedArray, missing: float) -> np.ndarray:
    return np.array([missing if d is None else d.year for d in column.to_pylist()], dtype=float)


def _findings(batch: pa.Table, features: _Features) -> pd.DataFrame:
    """The findings of one batch of zones (``id``, ``year``, ``geometry``) against ``features``."""
    found = overlaps(batch.column("geometry"), features.index)
    zone_ids = batch.column("id").to_numpy()
    years = batch.column("year").to_numpy()
    z, f = found.zone, found.polygon
    year = years[z]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(found.zone_hectares[z] > 0, found.hectares / found.zone_hectares[z], 0.0)
    return pd.DataFrame(
        {
            "zone_id": zone_ids[z].astype(np.int32),
            "layer": features.layer[f],
            "layer_version": features.layer_version[f],
            "feature_id": features.feature_id[f],
            "overlap_ha": found.hectares,
            "overlap_share": share,
            "valid_at_zone_year": (features.first_year[f] <= year) & (year <= features.last_year[f]),
            "kind": features.kind[f],
        }
    )


def check_rules(state: EvidenceState | None, rules: Rules) -> None:
    """A rules file whose content changed under a version already used is refused: one version, one meaning."""
    if state is not None and state.rules_version == rules.version and state.rules_sha256 != rules.sha256:
        raise RulesError(f"{rules.path}: the rules changed but their version is still {rules.version!r} (the stored evidence was computed "
                         f"with other rules under that version); give them a new `version`")


def compute_evidence(store: ZoneStore, rules: Rules, *, full: bool = False, on_rows: Callable[[int], None] | None = None,
                     batch_rows: int = BATCH_ROWS) -> ComputeReport:
    """Bring the store's evidence up to date with its zones, layers and ``rules`` (``full``: redo everything)."""
    started = time.perf_counter()
    state = None if full else store.evidence_state()
    check_rules(store.evidence_state() if full else state, rules)
    version = store.data_version()
    layers = store.reference_layers()
    previous = state.layers if state is not None else {}
    current = {layer.name: layer.version for layer in layers}
    added = [layer for layer in layers if previous.get(layer.name) != layer.version]
    dropped = [(name, v) for name, v in previous.items() if current.get(name) != v]
    zones_moved = state is None or state.data_version != version
    rules_changed = state is None or state.rules_version != rules.version
    report = ComputeReport(layers_added=[layer.name for layer in added], layers_dropped=[name for name, _ in dropped], rules_changed=rules_changed)
    if not (zones_moved or added or dropped or rules_changed):
        report.up_to_date = True
        report.seconds = time.perf_counter() - started
        return report

    everything = state is None
    stale = None if everything else (store.stale_zone_ids() if zones_moved else np.zeros(0, dtype=np.int64))
    features = _Features.of(store, layers)
    # Findings of changed (or all) zones against every layer; their evidence rows carry the hash read with them.
    frames, rows = [], []
    if everything or len(stale):
        for batch in store.evidence_zone_batches(stale, hashed=True, batch_rows=batch_rows):
            frames.append(_findings(batch, features))
            rows.append(batch.select(["id", "year", "geometry_hash"]))
            report.zones_read += len(batch)
            if on_rows:
                on_rows(len(batch))
    recomputed = pa.concat_tables(rows).column("id").combine_chunks() if rows else pa.array([], pa.int32())
    report.zones_recomputed = len(recomputed)
    recomputed_ids = np.asarray(recomputed.to_numpy(zero_copy_only=False), dtype=np.int64)
    # Layers added since: measured against the other zones their box may meet.
    if added and not everything:
        fresh = _Features.of(store, added)
        box = fresh.box()
        if box is not None:
            for batch in store.evidence_zone_batches(box=box, batch_rows=batch_rows):
                keep = ~np.isin(batch.column("id").to_numpy(), recomputed_ids)
                batch = batch.filter(pa.array(keep))
                frames.append(_findings(batch, fresh))
                report.zones_read += len(batch)
                if on_rows:
                    on_rows(len(batch))
    new = pd.concat(frames, ignore_index=True) if frames else _findings_frame()
    report.findings_written = len(new)

    # Suggestions: recomputed zones from their new findings; others whose findings changed (or all, new rules) from the store's and the new.
    touched = np.union1d(new["zone_id"].to_numpy(dtype=np.int64), store.zones_with_findings(dropped))
    others = None if rules_changed else np.setdiff1d(touched, recomputed_ids)
    kept = store.findings_of(others)
    kept = kept[~kept["zone_id"].isin(recomputed_ids)]  # (findings of layers since replaced or removed are not read: they join no stored layer)
    evaluated = rules.suggest(pd.concat([kept, new[~new["zone_id"].isin(recomputed_ids)]], ignore_index=True))
    if others is not None:  # zones that lost their last finding get the default
        lost = np.setdiff1d(others, evaluated["zone_id"].to_numpy(dtype=np.int64))
        evaluated = pd.concat([evaluated, pd.DataFrame({"zone_id": lost, "suggested": rules.default, "rule": None})], ignore_index=True)
    own = rules.suggest(new[new["zone_id"].isin(recomputed_ids)]).set_index("zone_id")
    zones = _evidence_rows(pa.concat_tables(rows) if rows else None, own, rules)
    report.suggestions_evaluated = len(evaluated) + len(zones)
    counted = pd.concat([evaluated["suggested"], pd.Series(zones.column("suggested").to_pylist(), dtype=object)])
    report.suggested = {str(k): int(v) for k, v in counted.value_counts().items()}
    now = datetime.now(timezone.utc)

    store.write_evidence(
        EvidenceWrite(
            data_version=version,
            state=EvidenceState(version, rules.version, rules.sha256, current, now),
            run=EvidenceRun(now, version, rules.version, rules.sha256, current, report.zones_recomputed, report.findings_written,
                            report.suggestions_evaluated, report.suggested, time.perf_counter() - started),
            recomputed=recomputed,
            dropped=dropped,
            findings=pa.Table.from_pandas(new.drop(columns="kind"), schema=FINDINGS_SCHEMA, preserve_index=False),
            zones=zones,
            suggestions=pa.table({"zone_id": pa.array(evaluated["zone_id"].to_numpy(dtype=np.int64), pa.int32()),
                                  "suggested": pa.array(evaluated["suggested"], pa.string(), from_pandas=True),
                                  "rule": pa.array(evaluated["rule"], pa.string(), from_pandas=True),  # pandas 3 strings: NaN is no rule
                                  "rules_version": pa.array([rules.version] * len(evaluated), pa.string())}, schema=SUGGESTION_SCHEMA),
            default=rules.default if rules_changed else None,
            prune=zones_moved,
        )
    )
    report.seconds = time.perf_counter() - started
    return report


def _findings_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in (
        ("zone_id", np.int32), ("layer", object), ("layer_version", np.int64), ("feature_id", object),
        ("overlap_ha", float), ("overlap_share", float), ("valid_at_zone_year", bool), ("kind", object))})


def _evidence_rows(read: pa.Table | None, suggested: pd.DataFrame, rules: Rules) -> pa.Table:
    """Evidence rows of the zones read: their year and geometry hash as read, and their suggestion (the default without findings)."""
    if read is None or not len(read):
        return EVIDENCE_SCHEMA.empty_table()
    ids = read.column("id").to_numpy()
    chosen = suggested.reindex(ids)
    has = chosen["suggested"].notna().to_numpy()
    return pa.table(
        {
            "zone_id": pa.array(ids, pa.int32()),
            "zone_year": read.column("year").cast(pa.int32()),
            "geometry_hash": read.column("geometry_hash").cast(pa.string()),
            "suggested": pa.array(np.where(has, chosen["suggested"].to_numpy(dtype=object), rules.default).tolist(), pa.string()),
            "rule": pa.array([r if isinstance(r, str) else None for r in chosen["rule"].tolist()], pa.string()),
            "rules_version": pa.array([rules.version] * len(ids), pa.string()),
        },
        schema=EVIDENCE_SCHEMA,
    )

