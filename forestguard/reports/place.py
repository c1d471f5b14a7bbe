"""What a report on one place over a range of years holds, whatever the place (a country, an area).

The tables and sentences every place report shows are built here once; a report module
(:mod:`.country`, :mod:`.area`) adds only what its place has of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..regions import top_regions
from ..schema import Classification
from ..stores.base import ZoneFilter, ZoneStore
from .base import SourceInfo, YearRange, source_info
from .record import Reported, reported
from .summary import change, hectares, percent, points
from .tables import CLASS_COLUMNS, class_pivot, share

NO_REGION = "(no region)"


@dataclass
class PlaceReport:
    """The statistics and tables of one place over ``first``–``last``; subclasses say which place."""

    years: YearRange
    first: int
    last: int
    source: SourceInfo
    by_class: Reported
    by_year: Reported
    total: Reported
    before: Reported | None
    yearly: pd.DataFrame
    regions: pd.DataFrame

    @property
    def place(self) -> str:  # pragma: no cover - every subclass names its place
        raise NotImplementedError

    @property
    def period(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}–{self.last}"

    def reported(self) -> dict[str, Reported]:
        named = {"by_year_classification": self.by_class, "by_year": self.by_year, "total": self.total}
        if self.before is not None:
            named["previous_year"] = self.before
        return named

    def key_changes(self) -> list[str]:
        return place_key_changes(self)


def place_numbers(store: ZoneStore, where: ZoneFilter, keys: tuple[str, ...], wanted: YearRange, first: int, last: int,
                  available: list[int]) -> dict:
    """The statistics every place report shows for ``where`` over ``first``–``last`` (``keys``: the place's own group keys).

    Returns the :class:`PlaceReport` fields but ``regions`` (each report counts its regions' hectares its own way,
    then ranks them with :func:`region_table`).
    """
    by_class = reported(store, where, (*keys, "year", "classification"))
    by_year = reported(store, where, (*keys, "year"))
    before = None
    if first - 1 in available:
        before = reported(store, where.with_(year_from=first - 1, year_to=first - 1), (*keys, "year", "classification"))
    return dict(years=wanted, first=first, last=last, source=source_info(store), by_class=by_class, by_year=by_year,
                total=reported(store, where, keys), before=before, yearly=yearly_table(by_year, by_class, range(first, last + 1)))


def yearly_table(by_year: Reported, by_class: Reported, years: range) -> pd.DataFrame:
    """One row per year of the range (years without zones as zeros): totals and hectares per class."""
    totals = by_year.result.frame().set_index("year")[["zones", "area_ha", "verified_zones", "mean_confidence"]]
    classes = class_pivot(by_class.result.frame(), "year")
    table = totals.join(classes, how="outer").reindex(list(years))
    counts = ["zones", "verified_zones", *CLASS_COLUMNS.values(), "area_ha"]
    table[counts] = table[counts].fillna(0)
    table[["zones", "verified_zones"]] = table[["zones", "verified_zones"]].astype(int)
    table["illegal_share"] = share(table["illegal_ha"], table["area_ha"])
    table["verified_share"] = share(table["verified_zones"], table["zones"])
    return table.rename_axis("year").reset_index()


def region_table(attributes: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Regions by cleared area, ranked as :mod:`forestguard.regions` ranks them: zones, hectares, illegal hectares, shares."""
    area = attributes["area_ha"].astype(float)
    table = top_regions(attributes["region"], area, attributes["classification"] == Classification.ILLEGAL.stored, top)
    table["region"] = table["region"].fillna(NO_REGION)
    table["share"] = share(table["area_ha"], float(area.sum()))
    table["illegal_share"] = share(table["illegal_ha"], table["area_ha"])
    return table




def place_key_changes(report: PlaceReport) -> list[str]:
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
        lines.append(f"Compared with {report.first - 1}, cleared area {change(prior_area, float(last['area_ha']))}.")
        if prior_area and last["area_ha"]:
            lines.append(f"The illegal share {points(prior_illegal / prior_area, float(last['illegal_share']))}.")
    elif report.first != report.last:
        lines.append(
            f"From {report.first} to {report.last}, cleared area {change(float(first['area_ha']), float(last['area_ha']))}."
        )
        if first["area_ha"] and last["area_ha"]:
            lines.append(f"The illegal share {points(float(first['illegal_share']), float(last['illegal_share']))}.")
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
