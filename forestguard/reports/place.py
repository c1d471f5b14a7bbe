"""What a report on one place over a range of years holds, whatever the place (a country, an area)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..stores.base import ZoneFilter, ZoneStore
from .base import SourceInfo, YearRange, source_info
from .record import Reported, reported


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
        from .summary import place_key_changes

        return place_key_changes(self)


def place_numbers(store: ZoneStore, where: ZoneFilter, keys: tuple[str, ...], wanted: YearRange, first: int, last: int,
                  available: list[int]) -> dict:
    """The statistics every place report shows for ``where`` over ``first``–``last`` (``keys``: the place's own group keys).

    Returns the :class:`PlaceReport` fields but ``regions`` (each report counts its regions its own way).
    """
    from .country import yearly_table

    by_class = reported(store, where, (*keys, "year", "classification"))
    by_year = reported(store, where, (*keys, "year"))
    before = None
    if first - 1 in available:
        before = reported(store, where.with_(year_from=first - 1, year_to=first - 1), (*keys, "year", "classification"))
    return dict(years=wanted, first=first, last=last, source=source_info(store), by_class=by_class, by_year=by_year,
                total=reported(store, where, keys), before=before, yearly=yearly_table(by_year, by_class, range(first, last + 1)))
