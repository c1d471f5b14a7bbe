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

Zones are read twice, in batches: every zone's id, year, box and hash, then the geometry of only
those whose box meets a feature's (:meth:`~forestguard.areas.overlay.PolygonIndex.may_meet`:
most zones meet none). What a run keeps meanwhile is ~30 bytes a zone and ~25 a finding; the
rows it writes are made a chunk at a time inside the store's one transaction.

Overlaps are :func:`forestguard.areas.overlay.overlaps` (RFC 7946 clip, geodesic hectares on
WGS84), whatever the engine, so DuckDB, PostGIS and snapshots hold identical findings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..areas.overlay import PolygonIndex, overlaps
from ..stores.base import ZoneStore
from ..stores.evidence_records import BOUNDS, EVIDENCE_SCHEMA, FINDINGS_SCHEMA, SUGGESTION_SCHEMA, EvidenceRun, EvidenceState, EvidenceWrite, Layer
from .rules import Rules, RulesError

BATCH_ROWS = 100_000


@dataclass
class ComputeReport:
    """What a run did: what it found changed and how much it read and wrote."""

    zones_recomputed: int = 0
    zones_read: int = 0  #: their id, year and box
    geometries_read: int = 0  #: of those, the zones whose box may meet a feature's: their geometry read and measured
    layers_added: list[str] = field(default_factory=list)
    layers_dropped: list[str] = field(default_factory=list)
    rules_changed: bool = False
    findings_written: int = 0
    suggestions_evaluated: int = 0
    seconds: float = 0.0
    seconds_writing: float = 0.0  #: of those, the store's one transaction (its evidence rows made as written)
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
        out.append(f"zones read {self.zones_read:,} (geometry of {self.geometries_read:,}); findings written {self.findings_written:,}; "
                   f"suggestions evaluated {self.suggestions_evaluated:,}{' (' + by_class + ')' if by_class else ''}; {self.seconds:.1f} s")
        return out


@dataclass(frozen=True)
class _Features:
    """The reference features measured in a run, with what findings need of each."""

    index: PolygonIndex
    layer: pa.Array  #: string
    layer_version: np.ndarray
    kind: np.ndarray
    feature_id: pa.Array  #: string
    first_year: np.ndarray  #: year valid_from falls in (-inf: no date)
    last_year: np.ndarray  #: year valid_to falls in (+inf: no date)

    @classmethod
    def of(cls, store: ZoneStore, layers: list[Layer]) -> "_Features":
        table = store.layer_features([layer.name for layer in layers])
        by_name = {layer.name: layer for layer in layers}
        names = table.column("layer").combine_chunks()
        unique, codes = np.unique(names.to_numpy(zero_copy_only=False).astype(object), return_inverse=True)  # a few layers, many features
        return cls(
            index=PolygonIndex.from_wkb(table.column("geometry")),
            layer=names,
            layer_version=np.array([by_name[n].version for n in unique], dtype=np.int64)[codes],
            kind=np.array([by_name[n].kind for n in unique], dtype=object)[codes],
            feature_id=table.column("feature_id").combine_chunks(),
            first_year=_years(table.column("valid_from"), -np.inf),
            last_year=_years(table.column("valid_to"), np.inf),
        )

    def box(self) -> tuple[float, float, float, float] | None:
        if not len(self.index):
            return None
        b = self.index.bounds
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))


def _years(column: pa.ChunkedArray, missing: float) -> np.ndarray:
    """The year of each date, ``missing`` where there is none."""
    if not len(column):
        return np.zeros(0)
    years = pc.year(column).to_numpy().astype(float)  # nulls come as NaN
    return np.where(np.isnan(years), missing, years)


@dataclass(frozen=True)
class _Found:
    """The findings of one batch of zones, compact: the index of each finding's feature, not its strings (~25 bytes each)."""

    features: _Features
    zone_id: np.ndarray  #: int32
    feature: np.ndarray  #: index into ``features``
    overlap_ha: np.ndarray
    overlap_share: np.ndarray
    valid_at_zone_year: np.ndarray

    def __len__(self) -> int:
        return len(self.zone_id)

    def frame(self) -> pd.DataFrame:
        """What the rules read of them."""
        return pd.DataFrame({"zone_id": self.zone_id, "kind": self.features.kind[self.feature], "overlap_ha": self.overlap_ha,
                             "overlap_share": self.overlap_share, "valid_at_zone_year": self.valid_at_zone_year})

    def table(self) -> pa.Table:
        """As stored (:data:`FINDINGS_SCHEMA`), made only when written."""
        at = pa.array(self.feature, pa.int64())
        return pa.table({"zone_id": pa.array(self.zone_id, pa.int32()), "layer": self.features.layer.take(at),
                         "layer_version": pa.array(self.features.layer_version[self.feature], pa.int64()),
                         "feature_id": self.features.feature_id.take(at), "overlap_ha": pa.array(self.overlap_ha, pa.float64()),
                         "overlap_share": pa.array(self.overlap_share, pa.float64()),
                         "valid_at_zone_year": pa.array(self.valid_at_zone_year, pa.bool_())}, schema=FINDINGS_SCHEMA)


def _findings(batch: pa.Table, features: _Features) -> _Found:
    """The findings of one batch of zones (``id``, ``year``, ``geometry``) against ``features``."""
    found = overlaps(batch.column("geometry"), features.index)
    zone_ids = batch.column("id").to_numpy()
    years = batch.column("year").to_numpy()
    z, f = found.zone, found.polygon
    year = years[z]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(found.zone_hectares[z] > 0, found.hectares / found.zone_hectares[z], 0.0)
    return _Found(features, zone_ids[z].astype(np.int32), f, found.hectares, share,
                  (features.first_year[f] <= year) & (year <= features.last_year[f]))


def _near(batch: pa.Table, features: _Features) -> np.ndarray:
    """Ids of the zones of ``batch`` (with their boxes) whose box may meet a feature's: the only ones whose geometry is read."""
    bounds = np.column_stack([batch.column(name).to_numpy() for name in BOUNDS])
    return batch.column("id").to_numpy()[features.index.may_meet(bounds)]


def _ids(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _measure(store: ZoneStore, ids: np.ndarray, features: _Features, batch_rows: int, report: "ComputeReport") -> Iterator[_Found]:
    """The findings of zones ``ids`` against ``features``, reading their geometry a batch at a time."""
    if not len(ids):
        return
    for batch in store.evidence_zone_batches(ids, batch_rows=batch_rows):
        report.geometries_read += len(batch)
        yield _findings(batch, features)


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
    read: list[pa.Table] = []  # id, year and hash of the zones measured against every layer (~30 bytes a zone)
    found: list[_Found] = []
    own: list[pd.DataFrame] = []  # the suggestions of those zones that have findings
    if everything or len(stale):
        read, found, own = _every_layer(store, stale, _Features.of(store, layers), rules, report, on_rows, batch_rows)
    recomputed_ids = np.sort(np.concatenate([t.column("id").to_numpy() for t in read])).astype(np.int64) if read else np.zeros(0, np.int64)
    report.zones_recomputed = len(recomputed_ids)
    added_found = _added_layers(store, _Features.of(store, added), recomputed_ids, report, on_rows, batch_rows) if added and not everything else []
    report.findings_written = sum(len(f) for f in found) + sum(len(f) for f in added_found)

    # Suggestions: recomputed zones from their new findings (above); others whose findings changed (or all, new rules) from the store's and the new.
    added_zones = np.concatenate([f.zone_id for f in added_found]).astype(np.int64) if added_found else np.zeros(0, np.int64)
    touched = np.union1d(added_zones, store.zones_with_findings(dropped))
    others = None if rules_changed else np.setdiff1d(touched, recomputed_ids)
    if everything:  # every zone is measured again: no stored finding counts
        kept = pd.DataFrame(columns=["zone_id", "kind", "overlap_ha", "overlap_share", "valid_at_zone_year"])
    else:
        kept = store.findings_of(others)
        kept = kept[~kept["zone_id"].isin(recomputed_ids)]  # (findings of layers since replaced or removed are not read: they join no stored layer)
    evaluated = rules.suggest(pd.concat([kept, *(f.frame() for f in added_found)], ignore_index=True))
    if others is not None:  # zones that lost their last finding get the default
        lost = np.setdiff1d(others, evaluated["zone_id"].to_numpy(dtype=np.int64))
        evaluated = pd.concat([evaluated, pd.DataFrame({"zone_id": lost, "suggested": rules.default, "rule": None})], ignore_index=True)
    suggested = _Suggested.of(own, rules)
    report.suggestions_evaluated = len(evaluated) + report.zones_recomputed
    counted = suggested.counts(report.zones_recomputed)
    for name, n in evaluated["suggested"].value_counts().items():
        counted[str(name)] = counted.get(str(name), 0) + int(n)
    report.suggested = {k: v for k, v in sorted(counted.items()) if v}
    now = datetime.now(timezone.utc)
    writing = time.perf_counter()
    store.write_evidence(
        EvidenceWrite(
            data_version=version,
            state=EvidenceState(version, rules.version, rules.sha256, current, now),
            run=EvidenceRun(now, version, rules.version, rules.sha256, current, report.zones_recomputed, report.findings_written,
                            report.suggestions_evaluated, report.suggested, time.perf_counter() - started),
            recomputed=pa.array(recomputed_ids, pa.int32()),
            dropped=dropped,
            findings=(f.table() for f in [*found, *added_found]),
            zones=(suggested.evidence_rows(t) for t in read),
            suggestions=pa.table({"zone_id": pa.array(evaluated["zone_id"].to_numpy(dtype=np.int64), pa.int32()),
                                  "suggested": pa.array(evaluated["suggested"], pa.string(), from_pandas=True),
                                  "rule": pa.array(evaluated["rule"], pa.string(), from_pandas=True),  # pandas 3 strings: NaN is no rule
                                  "rules_version": pa.array([rules.version] * len(evaluated), pa.string())}, schema=SUGGESTION_SCHEMA),
            default=rules.default if rules_changed else None,
            prune=zones_moved,
            everything=everything,
        )
    )
    report.seconds_writing = time.perf_counter() - writing
    report.seconds = time.perf_counter() - started
    return report


def _every_layer(store: ZoneStore, ids: np.ndarray | None, features: _Features, rules: Rules, report: ComputeReport,
                 on_rows: Callable[[int], None] | None, batch_rows: int) -> tuple[list[pa.Table], list[_Found], list[pd.DataFrame]]:
    """Zones ``ids`` (None: all) against every feature: what is kept of each zone read, the findings, and the suggestions of zones with findings.

    Every zone's box and hash are read (the hash is kept with its evidence), then the geometry of only those near a feature.
    """
    read, near = [], []
    for batch in store.evidence_zone_batches(ids, hashed=True, geometry=False, bounds=True, batch_rows=batch_rows):
        read.append(batch.select(["id", "year", "geometry_hash"]))
        near.append(_near(batch, features))
        report.zones_read += len(batch)
        if on_rows:
            on_rows(len(batch))
    found, own = [], []
    for batch_found in _measure(store, _ids(near), features, batch_rows, report):
        found.append(batch_found)
        own.append(rules.suggest(batch_found.frame()))  # a zone's findings all come from its batch
    return read, found, own


def _added_layers(store: ZoneStore, fresh: _Features, recomputed_ids: np.ndarray, report: ComputeReport,
                  on_rows: Callable[[int], None] | None, batch_rows: int) -> list[_Found]:
    """The findings of layers added since, against the zones (not measured against every layer) their box may meet."""
    box = fresh.box()
    if box is None:
        return []
    near = []
    for batch in store.evidence_zone_batches(box=box, geometry=False, bounds=True, batch_rows=batch_rows):
        batch = batch.filter(pa.array(~np.isin(batch.column("id").to_numpy(), recomputed_ids)))
        near.append(_near(batch, fresh))
        report.zones_read += len(batch)
        if on_rows:
            on_rows(len(batch))
    return list(_measure(store, _ids(near), fresh, batch_rows, report))


@dataclass(frozen=True)
class _Suggested:
    """The suggestion of each zone measured against every layer that has findings (others get the default), as codes."""

    zone_id: np.ndarray  #: ascending
    code: np.ndarray  #: index into ``choices``
    choices: list[tuple[str, str | None]]  #: (suggested, rule); the first is the default's
    rules: Rules

    @classmethod
    def of(cls, frames: list[pd.DataFrame], rules: Rules) -> "_Suggested":
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"zone_id": [], "suggested": [], "rule": []})
        pairs = [(str(s), r if isinstance(r, str) else None) for s, r in zip(frame["suggested"], frame["rule"])]
        choices = [(rules.default, None), *sorted(set(pairs) - {(rules.default, None)}, key=lambda p: (p[0], p[1] or ""))]
        at = {pair: i for i, pair in enumerate(choices)}
        zone_id = frame["zone_id"].to_numpy(dtype=np.int64)
        code = np.array([at[p] for p in pairs], dtype=np.int64)
        order = np.argsort(zone_id, kind="stable")
        return cls(zone_id[order], code[order], choices, rules)

    def codes(self, ids: np.ndarray) -> np.ndarray:
        """Each zone's code (0, the default, for zones without findings)."""
        ids = np.asarray(ids, dtype=np.int64)
        at = np.searchsorted(self.zone_id, ids).clip(max=max(len(self.zone_id) - 1, 0))
        has = (at < len(self.zone_id)) & (self.zone_id[at] == ids) if len(self.zone_id) else np.zeros(len(ids), dtype=bool)
        return np.where(has, self.code[at] if len(self.code) else 0, 0)

    def counts(self, zones: int) -> dict[str, int]:
        """Suggestions by class over ``zones`` recomputed zones (those without findings have the default)."""
        out: dict[str, int] = {}
        for (name, _), n in zip(self.choices, np.bincount(self.code, minlength=len(self.choices))):
            out[name] = out.get(name, 0) + int(n)
        out[self.rules.default] = out.get(self.rules.default, 0) + zones - len(self.zone_id)
        return out

    def evidence_rows(self, read: pa.Table) -> pa.Table:
        """Evidence rows of zones read (``id``, ``year``, ``geometry_hash``): their year and hash as read, and their suggestion."""
        code = pa.array(self.codes(read.column("id").to_numpy()), pa.int64())
        return pa.table(
            {
                "zone_id": read.column("id").cast(pa.int32()),
                "zone_year": read.column("year").cast(pa.int32()),
                "geometry_hash": read.column("geometry_hash").cast(pa.string()),
                "suggested": pa.array([s for s, _ in self.choices], pa.string()).take(code),
                "rule": pa.array([r for _, r in self.choices], pa.string()).take(code),
                "rules_version": pa.array([self.rules.version], pa.string()).take(pa.array(np.zeros(len(read), np.int64))),
            },
            schema=EVIDENCE_SCHEMA,
        )
