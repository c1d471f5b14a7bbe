"""One country over a range of years: the numbers behind ``notebooks/country_report.ipynb``.

Counts, hectares, confidence and verification per year come from
:func:`forestguard.stats.statistics` (the same numbers ``forestguard stats``
prints); only the breakdowns the statistics contract has no key for (regions,
confidence bands) are computed here from the zones' attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..regions import top_regions
from ..schema import Classification
from ..stores.base import ZoneFilter, ZoneStore
from .base import ReportError, SourceInfo, YearRange, match_name, parse_years, source_info
from .record import Reported, reported
from .summary import change, hectares, percent, points
from .tables import CLASS_COLUMNS, class_pivot, records, share

CONFIDENCE_BANDS = (0.0, 0.5, 0.7, 0.9, 1.0000001)
CONFIDENCE_LABELS = ("below 0.5", "0.5–0.7", "0.7–0.9", "0.9 and above")
UNKNOWN_CONFIDENCE = "not given"
NO_REGION = "(no region)"


@dataclass
class CountryReport:
    """The numbers of one country report. Build it with :func:`country_summary`."""

    country: str
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
    confidence: pd.DataFrame

    kind = "country_report"

    @property
    def where(self) -> ZoneFilter:
        return ZoneFilter(countries=(self.country,), year_from=self.first, year_to=self.last)

    @property
    def period(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}–{self.last}"

    @property
    def label(self) -> str:
        return f"{self.country}, {self.period}"

    @property
    def parameters(self) -> dict[str, Any]:
        return {"country": self.country, "years": f"{self.first}-{self.last}"}

    def reported(self) -> dict[str, Reported]:
        named = {"by_year_classification": self.by_class, "by_year": self.by_year, "total": self.total}
        if self.before is not None:
            named["previous_year"] = self.before
        return named

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {"yearly": records(self.yearly), "top_regions": records(self.regions), "confidence": records(self.confidence)}

    def key_changes(self) -> list[str]:
        return country_key_changes(self)


def country_summary(store: ZoneStore, country: str, years: str | int | None = "") -> CountryReport:
    """Everything a country report shows, or a :class:`ReportError` saying why there is nothing to show."""
    country = match_name(country, store.countries(), "country")
    wanted = parse_years(years)
    available = sorted(int(y) for y in store.aggregate(ZoneFilter(countries=(country,)), ["year"])["year"])
    covered = [y for y in available if y in wanted]
    if not covered:
        raise ReportError(
            f"no zones for {country} in {wanted.label}; the source has {country} zones in "
            f"{_years_text(available)}"
        )
    first = wanted.first if wanted.first is not None else covered[0]
    last = wanted.last if wanted.last is not None else covered[-1]
    where = ZoneFilter(countries=(country,), year_from=first, year_to=last)
    by_class = reported(store, where, ("country", "year", "classification"))
    by_year = reported(store, where, ("country", "year"))
    before = None
    if first - 1 in available:
        before = reported(store, where.with_(year_from=first - 1, year_to=first - 1), ("country", "year", "classification"))
    attributes = store.zones_arrow(where, columns=["region", "classification", "area_ha", "confidence"])
    # Exact decimals become floats in Arrow (the tables below sum and band them as floats anyway):
    # pandas would make one Decimal object per zone and convert each in Python.
    attributes = attributes.cast(pa.schema([f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f for f in attributes.schema])).to_pandas()
    return CountryReport(
        country=country,
        years=wanted,
        first=first,
        last=last,
        source=source_info(store),
        by_class=by_class,
        by_year=by_year,
        total=reported(store, where, ("country",)),
        before=before,
        yearly=yearly_table(by_year, by_class, range(first, last + 1)),
        regions=region_table(attributes),
        confidence=confidence_table(attributes),
    )


def country_key_changes(report: CountryReport) -> list[str]:
    """Key changes of a country report, most important first."""
    yearly = report.yearly
    area = float(yearly["area_ha"].sum())
    illegal = float(yearly["illegal_ha"].sum())
    zones = int(yearly["zones"].sum())
    lines = [
        f"{zones:,} zones covering {hectares(area)} were cleared in {report.country} in "
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


def _years_text(years: list[int]) -> str:
    if not years:
        return "no year at all"
    return str(years[0]) if len(years) == 1 else f"{years[0]}–{years[-1]}"


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


def confidence_table(attributes: pd.DataFrame) -> pd.DataFrame:
    """Zones per confidence band and class: how much of the picture rests on weak detections."""
    confidence = pd.to_numeric(attributes["confidence"], errors="coerce").astype(float)
    band = pd.cut(confidence, CONFIDENCE_BANDS, right=False, labels=CONFIDENCE_LABELS).astype(object)
    stored = attributes["classification"]
    # A handful of stored spellings: look each up once, not once per zone.
    names = {v: Classification.from_stored(v).value for v in stored.dropna().unique() if isinstance(v, str)}
    frame = pd.DataFrame(
        {
            "band": band.where(confidence.notna(), UNKNOWN_CONFIDENCE),
            "classification": stored.map(names).fillna("unclassified"),
        }
    )
    table = frame.value_counts().unstack(fill_value=0)
    table = table.reindex(index=[*CONFIDENCE_LABELS, UNKNOWN_CONFIDENCE], columns=["legal", "illegal", "unclassified"], fill_value=0)
    table["zones"] = table.sum(axis=1)
    return table.rename_axis(index="band", columns=None).reset_index()

