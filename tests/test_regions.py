"""Top regions: one ranking (forestguard.regions), held to the same ORDER BY run by both SQL engines.

The zones are made for ties: hectares from three values, so regions tie on hectares and
on zones too, names whose code point order differs from a locale's (accents, case, markup),
zones without a region. The reference is SQL over the stored zones (exact DECIMAL sums,
byte-ordered text), which the report's table and the counter fed in chunks must match row
for row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forestguard import stores
from forestguard.regions import COLUMNS, RegionCounter, top_regions
from forestguard.reports.place import NO_REGION, region_table
from forestguard.schema import TABLE, Classification

ILLEGAL = Classification.ILLEGAL.stored
REGIONS = ["Zeta", "zeta", "Élan", "Ñuble", "apple", "<b>x</b>", "O'Brien", None]
COUNTRIES = ["Peru", "Côte d'Ivoire", "Chad"]

REFERENCE_SQL = f"""
    SELECT country, region, count(*) AS zones, sum(area_ha) AS area_ha,
           coalesce(sum(area_ha) FILTER (WHERE classification = '{ILLEGAL}'), 0) AS illegal_ha
    FROM {TABLE} {{where}}
    GROUP BY country, region
    ORDER BY sum(area_ha) DESC, count(*) DESC, country {{bytes}}, region {{bytes}} NULLS LAST
"""


@pytest.fixture(scope="module")
def tied_zones(demo_small):
    rng = np.random.default_rng(21)
    zones = demo_small.iloc[:1500].copy()
    zones["country"] = rng.choice(COUNTRIES, len(zones))
    zones["region"] = rng.choice(np.array(REGIONS, dtype=object), len(zones))
    zones["area_ha"] = rng.choice([1.0, 2.5, 10.25], len(zones))  # few values: regions tie
    zones.loc[zones.index[:40], ["country", "region", "area_ha"]] = ["Chad", "Zeta", 2.5]  # the same hectares and zones in two regions
    zones.loc[zones.index[40:80], ["country", "region", "area_ha"]] = ["Chad", "zeta", 2.5]
    zones = zones[~((zones["country"] == "Chad") & zones["region"].isin(["Zeta", "zeta"]) & (zones.index >= zones.index[80]))]
    # Fiji: 10 ha in each region; "b" has more zones than "a"; "c" and no region tie on both.
    fiji = [("b", 2.5)] * 4 + [("a", 10.0)] + [("c", 5.0)] * 2 + [(None, 5.0)] * 2
    extra = demo_small.iloc[1500:1500 + len(fiji)].copy()
    extra["country"], extra["region"], extra["area_ha"] = "Fiji", [r for r, _ in fiji], [a for _, a in fiji]
    return pd.concat([zones, extra])


def _reference(url: str, where: str = "") -> pd.DataFrame:
    """The SQL engine's own ranking of the stored zones, through a connection of the test's own."""
    postgis = url.startswith("postgresql://")
    sql = REFERENCE_SQL.format(where=where, bytes='COLLATE "C"' if postgis else "")
    if postgis:
        import psycopg

        with psycopg.connect(url) as con:
            rows = con.execute(sql).fetchall()
    else:
        from forestguard.stores.duckdb import connect

        con = connect(url, read_only=True, extensions=())
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"zones": np.int64, "area_ha": float, "illegal_ha": float})


def _attributes(store, country: str | None = None) -> pd.DataFrame:
    from forestguard.stores.base import ZoneFilter

    where = ZoneFilter(countries=(country,)) if country else ZoneFilter()
    frame = store.zones_arrow(where, columns=["country", "region", "classification", "area_ha"]).to_pandas()
    return frame.assign(area_ha=frame["area_ha"].astype(float))


def _check_engine(url: str) -> None:
    expected = _reference(url)
    country_expected = _reference(url, "WHERE country = 'Chad'").drop(columns="country")
    with stores.open(url, read_only=True) as store:
        zones = _attributes(store)
        fiji = expected[expected["country"] == "Fiji"]
        assert fiji["region"].fillna("-").tolist() == ["b", "c", "-", "a"] and fiji["area_ha"].nunique() == 1
        assert expected[["area_ha", "zones"]].duplicated().sum() >= 2, "too few ties to break"
        ranked = top_regions(zones["region"], zones["area_ha"], zones["classification"] == ILLEGAL, n=None, country=zones["country"])
        pd.testing.assert_frame_equal(ranked, expected)
        pd.testing.assert_frame_equal(top_regions(zones["region"], zones["area_ha"], zones["classification"] == ILLEGAL, n=5,
                                                  country=zones["country"]), expected.head(5))
        # The dashboard's way in: category codes, a chunk at a time, dense or over the pairs that occur.
        countries, regions = pd.Categorical(zones["country"]), pd.Categorical(zones["region"])
        for dense_limit in (None, 0):
            counter = RegionCounter(list(countries.categories), list(regions.categories), dense_limit=dense_limit)
            for start in range(0, len(zones), 97):
                part = slice(start, start + 97)
                counter.add(countries.codes[part], regions.codes[part], zones["area_ha"].to_numpy()[part],
                            (zones["classification"] == ILLEGAL).to_numpy()[part])
            pd.testing.assert_frame_equal(counter.top(None), expected)
        # The country report's table: one country, no region labelled, shares of the country's total.
        table = region_table(_attributes(store, "Chad"), top=10)
        assert table["region"].tolist() == country_expected["region"].fillna(NO_REGION).head(10).tolist()
        assert table[["zones", "area_ha", "illegal_ha"]].equals(country_expected[["zones", "area_ha", "illegal_ha"]].head(10))
        assert table["share"].tolist() == (country_expected["area_ha"].head(10) / country_expected["area_ha"].sum()).round(4).tolist()


@pytest.mark.duckdb
def test_the_ranking_is_duckdbs_order_by(tied_zones, tmp_path):
    from tests.fixtures.services import make_store

    _check_engine(make_store(tmp_path / "tied.duckdb", tied_zones))


@pytest.mark.postgis
def test_the_ranking_is_postgis_order_by(tied_zones, zones_db):
    with stores.open(zones_db) as store:
        store.insert(tied_zones)
    _check_engine(zones_db)


def test_an_empty_selection_ranks_nothing():
    empty = top_regions(pd.Series([], dtype=object), np.array([]), np.array([], dtype=bool))
    assert empty.empty and list(empty.columns) == ["region", "zones", "area_ha", "illegal_ha"]
