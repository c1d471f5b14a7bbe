"""One area over a range of years: the numbers behind ``notebooks/area_report.ipynb``.

Statistics come from :func:`forestguard.stats.statistics` with the area as filter (the
numbers ``forestguard stats --area NAME`` prints: zones meeting the area, hectares inside
it); the regions table counts each zone's hectares inside the area too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..areas import Area, area_of
from ..errors import UserError
from ..stores.base import ZoneFilter, ZoneStore
from ..stores.inside import hectares_by_zone
from .base import ReportError, parse_years
from .country import region_table
from .place import PlaceReport, place_numbers
from .tables import records


@dataclass
class AreaReport(PlaceReport):
    """The numbers of one area report. Build it with :func:`area_summary`."""

    area: Area

    kind = "area_report"

    @property
    def where(self) -> ZoneFilter:
        return ZoneFilter(area=self.area, year_from=self.first, year_to=self.last)

    @property
    def place(self) -> str:
        return f"the area {self.area.name}"

    @property
    def label(self) -> str:
        return f"{self.area.name}, {self.period}"

    @property
    def parameters(self) -> dict[str, Any]:
        return {"area": self.area.name, "years": f"{self.first}-{self.last}"}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {"yearly": records(self.yearly), "top_regions": records(self.regions), "area": [self.area.describe()]}

    def key_changes(self) -> list[str]:
        lines = super().key_changes()
        lines.insert(1, f"The area covers {self.area.area_ha:,.0f} ha; hectares count only what lies inside it.")
        return lines


def area_summary(store: ZoneStore, area: str, years: str | int | None = "") -> AreaReport:
    """Everything an area report shows, or a :class:`ReportError` saying why there is nothing to show.

    ``area`` is a saved area's name or a file (its path becomes the name, so the recorded
    commands read the same file).
    """
    try:
        chosen = area_of(store, area)
    except UserError as exc:
        raise ReportError(str(exc)) from None
    if Path(area).exists():
        chosen = replace(chosen, name=area)
    wanted = parse_years(years)
    inside = ZoneFilter(area=chosen)
    available = sorted(int(y) for y in store.aggregate(inside, ["year"])["year"])
    covered = [y for y in available if y in wanted]
    if not covered:
        found = "no zones at all" if not available else f"zones in {available[0]}–{available[-1]}" if len(available) > 1 else f"zones in {available[0]}"
        raise ReportError(f"no zones meet the area {chosen.name!r} in {wanted.label}; it has {found}")
    first = wanted.first if wanted.first is not None else covered[0]
    last = wanted.last if wanted.last is not None else covered[-1]
    where = inside.with_(year_from=first, year_to=last)
    return AreaReport(
        area=chosen,
        **place_numbers(store, where, (), wanted, first, last, available),
        regions=region_table(_inside_attributes(store, where)),
    )


def _inside_attributes(store: ZoneStore, where: ZoneFilter) -> pd.DataFrame:
    """Region and class of each zone meeting the area, with its hectares inside it as ``area_ha``."""
    ids, hectares = hectares_by_zone(store, where)
    zones = store.zones_arrow(where, columns=["id", "region", "classification"]).to_pandas()
    inside = pd.Series(hectares, index=ids)
    return zones.assign(area_ha=zones["id"].map(inside).astype(float)).drop(columns="id")
