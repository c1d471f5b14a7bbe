"""``forestguard evidence plots``: is each production plot at risk? (The EU Deforestation Regulation's question.)

For each plot: the clearing inside it after the cut-off (hectares clipped to the plot and zones,
exactly ``forestguard stats --area PLOTS --per-feature ID --from YEAR`` with YEAR the year after
the cut-off's), how much of it lies in each kind of reference layer (the union of the kind's
features clipped to the plot, geodesic hectares as everywhere), and a verdict — ``low``,
``high`` or ``more_info_needed`` — with the reasons the plot rules (:mod:`.rules`) give.

Zones carry a year, not a date: with a cut-off other than 31 December, the zones of the
cut-off's own year cannot be placed before or after it; they are counted apart
(``undated_zones``, a measure the rules can use) and never as clearing after the cut-off.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Sequence

import numpy as np
import shapely

from ..area import geodesic_area_ha
from ..areas.clip import parts_inside
from ..areas.overlay import PolygonIndex
from ..areas.shape import Area, measure
from ..stats import statistics_by_area
from ..stores.base import ZoneFilter, ZoneStore
from ..stores.evidence_records import KINDS
from .rules import Rules

#: Feature ids named in a reason, at most (then "… and N more").
REASON_FEATURES = 5


@dataclass(frozen=True)
class PlotRisk:
    """One plot's row."""

    plot_id: str
    cleared_after_cutoff_ha: float
    cleared_after_cutoff_zones: int
    overlaps: dict[str, float]  #: kind → hectares of the plot inside that kind's features
    verdict: str
    reasons: list[str]
    undated_zones: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of a plot (exactly these keys)."""
        return {"plot_id": self.plot_id, "cleared_after_cutoff_ha": self.cleared_after_cutoff_ha,
                "cleared_after_cutoff_zones": self.cleared_after_cutoff_zones, "overlaps": dict(self.overlaps),
                "verdict": self.verdict, "reasons": list(self.reasons)}


@dataclass
class PlotsReport:
    """``evidence plots``: the cut-off, the rules' version and a row per plot, in the file's order."""

    cutoff: date
    rules_version: str
    plots: list[PlotRisk] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "rules_version": self.rules_version, "plots": [p.to_dict() for p in self.plots]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["plot_id", "cleared_after_cutoff_ha", "cleared_after_cutoff_zones", *(f"{k}_ha" for k in KINDS), "verdict", "reasons"])
        for p in self.plots:
            writer.writerow([p.plot_id, f"{p.cleared_after_cutoff_ha:.2f}", p.cleared_after_cutoff_zones, *(f"{p.overlaps[k]:.2f}" for k in KINDS),
                             p.verdict, "; ".join(p.reasons)])
        return out.getvalue()

    def verdicts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for p in self.plots:
            counted[p.verdict] = counted.get(p.verdict, 0) + 1
        return counted


def cleared_after(cutoff: date) -> ZoneFilter:
    """The zones cleared after ``cutoff``: those of a later year."""
    return ZoneFilter(year_from=cutoff.year + 1)


def plot_risk(store: ZoneStore, plots: Sequence[Area], cutoff: date, rules: Rules) -> PlotsReport:
    """Every plot's clearing after ``cutoff``, overlaps by layer kind, verdict and reasons."""
    plots = list(plots)
    measure(plots)
    after = {row["plot"]: row for row in statistics_by_area(store, plots, cleared_after(cutoff), (), id_field="plot").rows}
    undated: dict[str, int] = {}
    if (cutoff.month, cutoff.day) != (12, 31):
        year = ZoneFilter(year_from=cutoff.year, year_to=cutoff.year)
        undated = {row["plot"]: int(row["zones"]) for row in statistics_by_area(store, plots, year, (), id_field="plot").rows}
    layers = store.reference_layers()
    counts = {kind: sum(1 for layer in layers if layer.kind == kind) for kind in KINDS}
    hectares, names = _overlaps(store, plots, layers)
    report = PlotsReport(cutoff, rules.version)
    for i, plot in enumerate(plots):
        row = after[plot.name]
        measures: dict[str, float] = {
            "cleared_after_cutoff_ha": float(row["area_ha"]),
            "cleared_after_cutoff_zones": int(row["zones"]),
            "undated_zones": undated.get(plot.name, 0),
        }
        for kind in KINDS:
            measures[f"overlap_ha.{kind}"] = round(float(hectares[kind][i]), 2)
            measures[f"overlap_share.{kind}"] = float(hectares[kind][i] / plot.area_ha) if plot.area_ha > 0 else 0.0
            measures[f"layers.{kind}"] = counts[kind]
        details = {"cutoff": cutoff.isoformat(), "zones": int(row["zones"]), "features": {k: names[k][i] for k in KINDS}}
        verdict, reasons = rules.verdict(measures, details)
        report.plots.append(PlotRisk(plot.name, measures["cleared_after_cutoff_ha"], int(row["zones"]),
                                     {k: measures[f"overlap_ha.{k}"] for k in KINDS}, verdict, reasons, int(measures["undated_zones"])))
    return report


def _overlaps(store: ZoneStore, plots: list[Area], layers: list) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per kind: each plot's hectares inside the union of that kind's features, and which features (``layer: id``) they are."""
    hectares = {kind: np.zeros(len(plots)) for kind in KINDS}
    names: dict[str, list[str]] = {kind: [""] * len(plots) for kind in KINDS}
    if not plots or not layers:
        return hectares, names
    index = PolygonIndex.of(np.array([p.geometry for p in plots], dtype=object))
    kind_of = {layer.name: layer.kind for layer in layers}
    table = store.layer_features([layer.name for layer in layers])
    features = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    layer = np.asarray(table.column("layer").to_pylist(), dtype=object)
    ids = np.asarray(table.column("feature_id").to_pylist(), dtype=object)
    feature_at, plot_at = index.tree.query(features, predicate="intersects")
    if not len(feature_at):
        return hectares, names
    parts = parts_inside(index.geometries[plot_at], features[feature_at])
    shares = ~shapely.is_missing(parts)
    feature_at, plot_at, parts = feature_at[shares], plot_at[shares], parts[shares]
    kinds = np.array([kind_of[n] for n in layer[feature_at]], dtype=object)
    order = np.lexsort((feature_at, plot_at))
    for kind in KINDS:
        chosen = order[kinds[order] == kind]
        if not len(chosen):
            continue
        groups = np.split(chosen, np.flatnonzero(np.diff(plot_at[chosen])) + 1)
        unions = np.array([shapely.union_all(parts[g]) if len(g) > 1 else parts[g[0]] for g in groups], dtype=object)
        at = np.array([plot_at[g[0]] for g in groups])
        hectares[kind][at] = np.nan_to_num(geodesic_area_ha(unions))
        for g, plot in zip(groups, at):
            named = [f"{layer[f]}: {ids[f]}" for f in feature_at[g]]
            names[kind][plot] = ", ".join(named[:REASON_FEATURES]) + (f" and {len(named) - REASON_FEATURES} more" if len(named) > REASON_FEATURES else "")
    return hectares, names
