"""Top regions: the places of a selection that lost the most forest, ranked one way for every face.

A region is a (country, region) pair; a country's zones without a region count together as
its region ``None``. The ranking: cleared hectares, largest first; on a tie, more zones
first; then country and region names in code point order, no region last. In SQL that is
``ORDER BY sum(area_ha) DESC, count(*) DESC, country, region NULLS LAST`` over byte-ordered
text (PostgreSQL: ``COLLATE "C"``), which is what the tests hold this module to on both
engines. Hectares are summed as whole hundredths, as the stores' ``DECIMAL(10,2)`` sums
are, so a tie in the store is a tie here and float rounding never reorders regions.

Reports (:func:`forestguard.reports.place.region_table`) call :func:`top_regions` on a
country's zone attributes; the dashboard's in-memory layer feeds :class:`RegionCounter`
its category codes a chunk at a time (bounded memory, no strings per zone).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

#: The columns of a ranking, in order (``country`` only when zones of several countries are ranked).
COLUMNS: tuple[str, ...] = ("country", "region", "zones", "area_ha", "illegal_ha")
#: Above this many (country, region) pairs sums are kept for the pairs that occur, not in an array of all.
DENSE_PAIR_LIMIT = 4_000_000


def _name_ranks(names: Sequence[object]) -> np.ndarray:
    """Each name's position in code point order (Python's ``str`` order, UTF-8 byte order)."""
    order = sorted(range(len(names)), key=lambda i: str(names[i]))
    ranks = np.empty(len(names), dtype=np.int64)
    ranks[order] = np.arange(len(names), dtype=np.int64)
    return ranks


class RegionCounter:
    """Zones, hectares and illegal hectares per (country, region) pair, fed category codes chunk by chunk.

    ``countries`` and ``regions`` are the category names the codes index; code -1 is a
    missing region (a missing country is not a zone). Memory: one array over every pair
    when there are at most :data:`DENSE_PAIR_LIMIT`, else sums over the pairs that occur.
    """

    def __init__(self, countries: Sequence[object], regions: Sequence[object], dense_limit: int | None = None) -> None:
        self.countries = list(countries)
        self.regions = list(regions)
        self._width = len(self.regions) + 1  # the last slot: no region
        self._pairs = len(self.countries) * self._width
        self._dense = self._pairs <= (DENSE_PAIR_LIMIT if dense_limit is None else dense_limit)
        self._sums: pd.DataFrame | None = None

    def add(self, country_codes: np.ndarray, region_codes: np.ndarray, area_ha: np.ndarray, illegal: np.ndarray) -> None:
        """Count one chunk of zones: their codes, hectares and whether each is illegal."""
        region_codes = np.asarray(region_codes, dtype=np.int64)
        pair = np.asarray(country_codes, dtype=np.int64) * self._width + np.where(region_codes < 0, self._width - 1, region_codes)
        cents = np.rint(np.asarray(area_ha, dtype=np.float64) * 100)  # whole hundredths: exact sums below 2**53
        if self._dense:
            present, inverse = np.arange(self._pairs), pair
        else:
            present, inverse = np.unique(pair, return_inverse=True)
        part = pd.DataFrame(
            {
                "zones": np.bincount(inverse, minlength=len(present)),
                "area_cents": np.bincount(inverse, weights=cents, minlength=len(present)),
                "illegal_cents": np.bincount(inverse, weights=np.where(np.asarray(illegal, dtype=bool), cents, 0.0), minlength=len(present)),
            },
            index=present,
        )
        self._sums = part if self._sums is None else self._sums.add(part, fill_value=0)

    def top(self, n: int | None = 10) -> pd.DataFrame:
        """The ``n`` first regions of the ranking (all with None): :data:`COLUMNS`, hectares to the cent."""
        sums = self._sums if self._sums is not None else pd.DataFrame({"zones": [], "area_cents": [], "illegal_cents": []})
        sums = sums[sums["zones"] > 0]
        pairs = sums.index.to_numpy(dtype=np.int64)
        country, region = pairs // self._width, pairs % self._width
        region_rank = np.append(_name_ranks(self.regions), len(self.regions))  # no region sorts last
        keys = (region_rank[region], _name_ranks(self.countries)[country] if self.countries else country,
                -sums["zones"].to_numpy(), -sums["area_cents"].to_numpy())
        order = np.lexsort(keys)[:n]  # the last key is the first criterion
        countries = np.array(self.countries + [None], dtype=object)
        regions = np.array(self.regions + [None], dtype=object)
        return pd.DataFrame(
            {
                "country": countries[country[order]],
                "region": regions[region[order]],
                "zones": sums["zones"].to_numpy()[order].astype(np.int64),
                "area_ha": sums["area_cents"].to_numpy()[order] / 100,
                "illegal_ha": sums["illegal_cents"].to_numpy()[order] / 100,
            },
            columns=list(COLUMNS),
        )


def top_regions(region: Sequence[object], area_ha: Sequence[float], illegal: Sequence[bool], n: int | None = 10,
                country: Sequence[object] | None = None) -> pd.DataFrame:
    """The ranking's first ``n`` regions of zones given as columns (text or categorical; None: no region).

    ``country`` None means the zones are of one country (a country report): the rows then
    have no ``country`` column.
    """
    regions = pd.Categorical(region)
    countries = pd.Categorical(np.zeros(len(regions), dtype=np.int8) if country is None else country)
    counter = RegionCounter(list(countries.categories), list(regions.categories))
    counter.add(countries.codes, regions.codes, np.asarray(area_ha, dtype=np.float64), np.asarray(illegal, dtype=bool))
    ranked = counter.top(n)
    return ranked.drop(columns="country") if country is None else ranked
