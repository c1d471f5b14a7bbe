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

from ..schema import Classification
from ..stores.base import ZoneFilter, ZoneStore
from .base import ReportError, match_name, parse_years
from .place import PlaceReport, place_numbers
from .record import Reported
from .tables import CLASS_COLUMNS, class_pivot, records, share

CONFIDENCE_BANDS = (0.0, 0.5, 0.7, 0.9, 1.0000001)
CONFIDENCE_LABELS = ("below 0.5", "0.5–0.7", "0.7–0.9", "0.9 and above")
UNKNOWN_CONFIDENCE = "not given"
NO_REGION = "(no region)"


@dataclass
class CountryReport(PlaceReport):
    """The numbers of one country report. Build it with :func:`country_summary`."""

    country: str
    confidence: pd.DataFrame

    kind = "country_report"

    @property
    def where(self) -> ZoneFilter:
        return ZoneFilter(countries=(self.country,), year_from=self.first, year_to=self.last)

    @property
    def place(self) -> str:
        return self.country

    @property
    def label(self) -> str:
        return f"{self.country}, {self.period}"

    @property
    def parameters(self) -> dict[str, Any]:
        return {"country": self.country, "years": f"{self.first}-{self.last}"}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {"yearly": records(self.yearly), "top_regions": records(self.regions), "confidence": records(self.confidence)}


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
    attributes = store.zones_arrow(where, columns=["region", "classification", "area_ha", "confidence"])
    # Exact decimals become floats in Arrow (the tables below sum and band them as floats anyway):
    # pandas would make one Decimal object per zone and convert each in Python.
    attributes = attributes.cast(pa.schema([f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f for f in attributes.schema])).to_pandas()
    return CountryReport(
        country=country,
        **place_numbers(store, where, ("country",), wanted, first, last, available),
        regions=region_table(attributes),
        confidence=confidence_table(attributes),
    )


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
    """Regions by cleared area (largest first): zones, hectares, illegal hectares and share of the total."""
    frame = attributes.assign(
        region=attributes["region"].fillna(NO_REGION),
        area_ha=attributes["area_ha"].astype(float),
        illegal_ha=np.where(attributes["classification"] == Classification.ILLEGAL.stored, attributes["area_ha"].astype(float), 0.0),
    )
    table = frame.groupby("region").agg(zones=("area_ha", "size"), area_ha=("area_ha", "sum"), illegal_ha=("illegal_ha", "sum"))
    table["share"] = share(table["area_ha"], table["area_ha"].sum())
    table["illegal_share"] = share(table["illegal_ha"], table["area_ha"])
    table = table.sort_values(["area_ha", "zones"], ascending=False).head(top)
    return table.round({"area_ha": 2, "illegal_ha": 2}).reset_index()


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

