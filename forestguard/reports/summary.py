"""The few sentences at the top of a report: what changed, in plain words.

Generated from the same tables the charts show, so the text can never
disagree with the figures; the sentences are also stored in ``stats.json``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .overview import YearlyOverview
    from .place import PlaceReport


def hectares(value: float) -> str:
    return f"{value:,.0f} ha" if abs(value) >= 10 else f"{value:,.1f} ha"


def percent(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def _change(old: float, new: float) -> str:
    """'rose 12% (1,000 ha → 1,120 ha)' style wording, robust to a zero start."""
    if old == 0:
        return f"went from none to {hectares(new)}" if new else "stayed at zero"
    ratio = new / old - 1
    verb = "rose" if ratio > 0.005 else "fell" if ratio < -0.005 else "held steady"
    amount = "" if verb == "held steady" else f" {abs(ratio):.0%}"
    return f"{verb}{amount} ({hectares(old)} → {hectares(new)})"


def _points(old: float, new: float) -> str:
    delta = (new - old) * 100
    if abs(delta) < 0.5:
        return f"stayed at about {percent(new)}"
    return f"{'rose' if delta > 0 else 'fell'} from {percent(old)} to {percent(new)} ({f'{delta:+.0f}'.replace('-', '−')} points)"


def place_key_changes(report: "PlaceReport") -> list[str]:
    """Key changes of a report on one place (a country, an area), most important first."""
    yearly = report.yearly
    area = float(yearly["area_ha"].sum())
    illegal = float(yearly["illegal_ha"].sum())
    zones = int(yearly["zones"].sum())
    lines = [
        f"{zones:,} zones covering {hectares(area)} were cleared in {report.place} in "
        f"{report.period}; {percent(illegal / area if area else None)} of that area was illegal."
    ]
    first, last = yearly.iloc[0], yearly.iloc[-1]
    if report.first == report.last and report.before is not None:
        prior = report.before.result.frame()
        prior_area = float(prior["area_ha"].sum())
        prior_illegal = float(prior.loc[prior["classification"] == "illegal", "area_ha"].sum())
        lines.append(f"Compared with {report.first - 1}, cleared area {_change(prior_area, float(last['area_ha']))}.")
        if prior_area and last["area_ha"]:
            lines.append(f"The illegal share {_points(prior_illegal / prior_area, float(last['illegal_share']))}.")
    elif report.first != report.last:
        lines.append(
            f"From {report.first} to {report.last}, cleared area {_change(float(first['area_ha']), float(last['area_ha']))}."
        )
        if first["area_ha"] and last["area_ha"]:
            lines.append(f"The illegal share {_points(float(first['illegal_share']), float(last['illegal_share']))}.")
        peak = yearly.loc[yearly["area_ha"].idxmax()]
        lines.append(f"The largest year was {int(peak['year'])} with {hectares(float(peak['area_ha']))}.")
        if len(yearly) >= 3:
            slope = float(np.polyfit(yearly["year"], yearly["area_ha"], 1)[0])
            lines.append(f"The linear trend is {'+' if slope >= 0 else '−'}{hectares(abs(slope))} per year.")
    if not report.regions.empty:
        top = report.regions.iloc[0]
        lines.append(f"{top['region']} is the most affected region: {hectares(float(top['area_ha']))}, {percent(top['share'])} of the total.")
    verified = int(yearly["verified_zones"].sum())
    confidence = report.total.result.rows[0]["mean_confidence"] if report.total.result.rows else None
    confidence_text = "" if confidence is None else f"; mean detection confidence is {confidence:.2f}"
    lines.append(f"{percent(verified / zones if zones else None)} of the zones are verified{confidence_text}.")
    return lines


def overview_key_changes(overview: "YearlyOverview") -> list[str]:
    """Key changes of a yearly overview, most important first."""
    ranking = overview.ranking
    area = float(ranking["area_ha"].sum())
    illegal = float(ranking["illegal_ha"].sum())
    lines = [
        f"In {overview.year}, {int(ranking['zones'].sum()):,} zones covering {hectares(area)} were cleared in "
        f"{len(ranking)} countries; {percent(illegal / area if area else None)} of that area was illegal."
    ]
    if overview.previous is not None:
        before = float(overview.previous.result.frame()["area_ha"].sum())
        lines.append(f"Compared with {overview.year - 1}, cleared area {_change(before, area)}.")
    leaders = ranking.head(3)
    if len(leaders):
        top = leaders.iloc[0]
        others = " and ".join(leaders["country"].iloc[1:])
        lines.append(
            f"{top['country']} ranks first with {hectares(float(top['area_ha']))} ({percent(top['area_ha'] / area)} of the total)"
            + (f", followed by {others}." if others else ".")
        )
    changes = ranking.dropna(subset=["change_ha"])
    if len(changes) >= 2:
        up, down = changes.loc[changes["change_ha"].idxmax()], changes.loc[changes["change_ha"].idxmin()]
        if up["change_ha"] > 0:
            lines.append(f"Largest increase: {up['country']} (+{hectares(float(up['change_ha']))}, {_signed(up['change_share'])}).")
        if down["change_ha"] < 0:
            lines.append(f"Largest decrease: {down['country']} (−{hectares(-float(down['change_ha']))}, {_signed(down['change_share'])}).")
    major = ranking.head(10).dropna(subset=["illegal_share"])
    if len(major):
        worst = major.loc[major["illegal_share"].idxmax()]
        lines.append(f"Among the ten largest, {worst['country']} has the highest illegal share: {percent(worst['illegal_share'])}.")
    return lines


def _signed(ratio: float | None) -> str:
    if ratio is None or pd.isna(ratio):
        return "new this year"
    return f"{ratio:+.0%}"
