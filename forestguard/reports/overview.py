"""All countries for one year: the numbers behind ``notebooks/yearly_overview.ipynb``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..geodata import countries as world_countries
from ..stores.base import ZoneFilter, ZoneStore
from .base import ReportError, SourceInfo, source_info
from .record import Reported, reported
from .summary import change, hectares, percent, signed
from .tables import class_pivot, records, share


@dataclass
class YearlyOverview:
    """The numbers of one yearly overview. Build it with :func:`yearly_overview`."""

    year: int
    source: SourceInfo
    by_class: Reported
    by_country: Reported
    previous: Reported | None
    ranking: pd.DataFrame
    continents: pd.DataFrame

    kind = "yearly_overview"

    @property
    def where(self) -> ZoneFilter:
        return ZoneFilter(year_from=self.year, year_to=self.year)

    @property
    def label(self) -> str:
        return f"All countries, {self.year}"

    @property
    def parameters(self) -> dict[str, Any]:
        return {"year": self.year}

    def reported(self) -> dict[str, Reported]:
        named = {"by_country_classification": self.by_class, "by_country": self.by_country}
        if self.previous is not None:
            named["previous_year_by_country"] = self.previous
        return named

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {"ranking": records(self.ranking), "continents": records(self.continents)}

    def key_changes(self) -> list[str]:
        return overview_key_changes(self)


def yearly_overview(store: ZoneStore, year: int) -> YearlyOverview:
    """Every country's clearing in ``year`` next to the year before, or a :class:`ReportError`."""
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise ReportError(f"year {year!r} is not a whole number") from None
    available = store.years()
    if year not in available:
        span = f"{available[0]}–{available[-1]}" if available else "no year at all"
        raise ReportError(f"no zones in {year}; the source has zones in {span}")
    where = ZoneFilter(year_from=year, year_to=year)
    by_class = reported(store, where, ("country", "year", "classification"))
    by_country = reported(store, where, ("country", "year"))
    previous = None
    if year - 1 in available:
        previous = reported(store, where.with_(year_from=year - 1, year_to=year - 1), ("country", "year"))
    ranking = ranking_table(by_country, by_class, previous)
    return YearlyOverview(
        year=year,
        source=source_info(store),
        by_class=by_class,
        by_country=by_country,
        previous=previous,
        ranking=ranking,
        continents=continent_table(ranking),
    )


def ranking_table(by_country: Reported, by_class: Reported, previous: Reported | None) -> pd.DataFrame:
    """Countries by cleared area (rank 1 = most), with class hectares and the change since the year before."""
    table = by_country.result.frame().set_index("country")[["zones", "area_ha", "verified_zones", "mean_confidence"]]
    table = table.join(class_pivot(by_class.result.frame(), "country"))
    table["illegal_share"] = share(table["illegal_ha"], table["area_ha"])
    before = previous.result.frame().set_index("country")["area_ha"] if previous is not None else pd.Series(dtype=float)
    table["previous_area_ha"] = before.reindex(table.index)
    table["change_ha"] = (table["area_ha"] - table["previous_area_ha"]).round(2)
    table["change_share"] = share(table["change_ha"], table["previous_area_ha"])
    table = table.sort_values(["area_ha", "zones"], ascending=False)
    table.insert(0, "rank", range(1, len(table) + 1))
    continent = world_countries().set_index("name")["continent"]
    table["continent"] = continent.reindex(table.index).fillna("Other").to_numpy()
    return table.rename_axis("country").reset_index()


def continent_table(ranking: pd.DataFrame) -> pd.DataFrame:
    """Cleared and illegal hectares per continent (Natural Earth's), largest first."""
    table = ranking.groupby("continent")[["zones", "area_ha", "illegal_ha"]].sum()
    table["share"] = share(table["area_ha"], table["area_ha"].sum())
    table["illegal_share"] = share(table["illegal_ha"], table["area_ha"])
    return table.sort_values("area_ha", ascending=False).round({"area_ha": 2, "illegal_ha": 2}).reset_index()


def overview_key_changes(overview: YearlyOverview) -> list[str]:
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
        lines.append(f"Compared with {overview.year - 1}, cleared area {change(before, area)}.")
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
            lines.append(f"Largest increase: {up['country']} (+{hectares(float(up['change_ha']))}, {signed(up['change_share'])}).")
        if down["change_ha"] < 0:
            lines.append(f"Largest decrease: {down['country']} (−{hectares(-float(down['change_ha']))}, {signed(down['change_share'])}).")
    major = ranking.head(10).dropna(subset=["illegal_share"])
    if len(major):
        worst = major.loc[major["illegal_share"].idxmax()]
        lines.append(f"Among the ten largest, {worst['country']} has the highest illegal share: {percent(worst['illegal_share'])}.")
    return lines
