"""Parity: the same zones in DuckDB and PostGIS give the same statistics, to the cent.

12,000 demo zones over ~38 countries and 10 years, every ``--by`` combination, filters that
each engine compiles differently (IN lists, decimal-vs-float confidence, bounding boxes cut
through zones). Both engines are also checked against pandas on the input frame, so they
cannot agree on a wrong answer.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from forestguard import stores
from forestguard.demo import DemoSpec, demo_zones
from forestguard.schema import GROUP_KEYS, Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

pytestmark = pytest.mark.postgis

PARITY_ZONES = 12_000
BY = [combo for n in range(len(GROUP_KEYS) + 1) for combo in itertools.combinations(GROUP_KEYS, n)]
FILTERS = {
    "all": ZoneFilter(),
    "countries": ZoneFilter(countries=("Brazil", "Indonesia", "Côte d'Ivoire")),
    "years": ZoneFilter(year_from=2018, year_to=2021),
    "legal": ZoneFilter(classifications=(Classification.LEGAL,)),
    "illegal+legal": ZoneFilter(classifications=(Classification.ILLEGAL, Classification.LEGAL)),
    "source": ZoneFilter(sources=("GLAD", "PRODES")),
    "verified": ZoneFilter(verified_only=True),
    "confidence≥0.8": ZoneFilter(min_confidence=0.8),
    "bbox": ZoneFilter(bbox=(-60.0, -15.0, -45.0, 0.0)),
    "combined": ZoneFilter(countries=("Brazil",), year_from=2019, min_confidence=0.7, verified_only=True, bbox=(-65.0, -20.0, -40.0, 5.0)),
    "nothing": ZoneFilter(countries=("Atlantis",)),
}


@pytest.fixture(scope="module")
def parity_zones() -> gpd.GeoDataFrame:
    return demo_zones(DemoSpec(zones=PARITY_ZONES, seed=2024))


@pytest.fixture(scope="module")
def engines(parity_zones, postgis_admin_url, postgis_template, tmp_path_factory):
    """The same zones in a DuckDB file and a PostGIS database (loaded once for the module)."""
    from tests.fixtures.postgis import create_database, drop_database

    duck = str(Path(tmp_path_factory.mktemp("parity")) / "zones.duckdb")
    pg = create_database(postgis_admin_url, template=postgis_template)
    with stores.open(duck, create=True) as store:
        store.insert(parity_zones)
    with stores.open(pg, create=True) as store:
        store.insert(parity_zones)
    try:
        with stores.open(duck, read_only=True) as d, stores.open(pg) as p:
            yield d, p
    finally:
        drop_database(postgis_admin_url, pg)


def test_the_data_set_is_non_trivial(parity_zones):
    assert len(parity_zones) >= 10_000
    assert parity_zones["country"].nunique() >= 20 and parity_zones["year"].nunique() >= 10
    assert parity_zones["classification"].isna().any() and parity_zones["confidence"].isna().any()


@pytest.mark.parametrize("name", FILTERS)
def test_every_statistic_is_equal_in_both_engines(engines, name):
    duck, pg = engines
    where = FILTERS[name]
    assert duck.count(where) == pg.count(where)
    for by in BY:
        pd.testing.assert_frame_equal(duck.aggregate(where, by), pg.aggregate(where, by), check_dtype=False, obj=f"{name} {by}")
        left, right = statistics(duck, where, by).rows, statistics(pg, where, by).rows
        assert [_keys(r, by) for r in left] == [_keys(r, by) for r in right], (name, by)
        for a, b in zip(left, right):
            assert (a["zones"], a["verified_zones"]) == (b["zones"], b["verified_zones"]), (name, by, a)
            assert abs(a["area_ha"] - b["area_ha"]) < 0.01, (name, by, a, b)
            assert a["mean_confidence"] == b["mean_confidence"], (name, by, a, b)


@pytest.mark.parametrize("name", ["all", "countries", "years", "verified", "confidence≥0.8", "bbox", "combined"])
def test_both_engines_agree_with_pandas(engines, parity_zones, name):
    expected = _pandas_statistics(parity_zones, FILTERS[name])
    for store in engines:
        got = pd.DataFrame(statistics(store, FILTERS[name], GROUP_KEYS).rows)
        merged = expected.merge(got, on=list(GROUP_KEYS), how="outer", suffixes=("_expected", "_got"), indicator=True)
        assert (merged["_merge"] == "both").all(), (store.engine, name)
        assert (merged["zones_expected"] == merged["zones_got"]).all()
        assert (merged["verified_zones_expected"] == merged["verified_zones_got"]).all()
        assert (merged["area_ha_expected"] - merged["area_ha_got"]).abs().max() < 0.01


def test_zones_come_out_identically(engines):
    duck, pg = engines
    where = FILTERS["combined"]
    assert duck.zones_arrow(where).equals(pg.zones_arrow(where))
    assert pg.zones_arrow(FILTERS["nothing"]).equals(duck.zones_arrow(FILTERS["nothing"]))
    assert pg.zones_arrow(FILTERS["nothing"]).num_rows == 0 and len(pg.zones(FILTERS["nothing"])) == 0
    assert duck.zones_arrow(columns=["id", "country", "geometry"], limit=500).equals(pg.zones_arrow(columns=["id", "country", "geometry"], limit=500))



def test_pages_and_lookups_by_id_are_identical(engines):
    """Feature services page through zones (limit/offset) and read one by id: same rows from either engine."""
    from forestguard.features import COLLECTIONS

    duck, pg = engines
    where = FILTERS["countries"]
    pages = [(duck.zones_arrow(where, limit=300, offset=o), pg.zones_arrow(where, limit=300, offset=o)) for o in (0, 300, 2400)]
    for d, p in pages:
        assert d.equals(p)
    assert pages[0][0].num_rows == pages[1][0].num_rows == 300
    assert not set(pages[0][0]["id"].to_pylist()) & set(pages[1][0]["id"].to_pylist())
    assert duck.zones_arrow(where, offset=4000).equals(pg.zones_arrow(where, offset=4000))
    ids = [int(i) for i in pages[1][0]["id"].to_pylist()[:20]] + [10**9]
    assert duck.zones_by_id(ids).equals(pg.zones_by_id(ids)) and duck.zones_by_id(ids).num_rows == 20
    zones = COLLECTIONS["zones"]
    query = zones.query({"country": ["Brazil"], "datetime": ["2019/2021"], "limit": ["40"], "offset": ["10"]}, 50_000)
    assert zones.items(duck, query).text == zones.items(pg, query).text
    assert zones.item(duck, str(ids[0])) == zones.item(pg, str(ids[0])) is not None


def _keys(row: dict, by) -> tuple:
    return tuple(row[k] for k in by)


def _pandas_statistics(zones: gpd.GeoDataFrame, where: ZoneFilter) -> pd.DataFrame:
    """The reference: the filter and the sums written directly in pandas on the input frame."""
    keep = pd.Series(True, index=zones.index)
    if where.countries:
        keep &= zones["country"].isin(where.countries)
    if where.year_from is not None:
        keep &= zones["year"] >= where.year_from
    if where.year_to is not None:
        keep &= zones["year"] <= where.year_to
    if where.verified_only:
        keep &= zones["verified"]
    if where.min_confidence is not None:
        keep &= zones["confidence"] >= where.min_confidence
    if where.bbox is not None:
        xmin, ymin, xmax, ymax = where.bbox
        b = zones.geometry.bounds
        keep &= (b["maxx"] >= xmin) & (b["maxy"] >= ymin) & (b["minx"] <= xmax) & (b["miny"] <= ymax)
    chosen = zones[keep].copy()
    chosen["classification"] = chosen["classification"].map(
        lambda v: None if v is None or pd.isna(v) else Classification.parse(v).value
    )
    return (
        chosen.groupby(list(GROUP_KEYS), dropna=False)
        .agg(zones=("area_ha", "size"), area_ha=("area_ha", "sum"), verified_zones=("verified", "sum"))
        .reset_index()
        .astype({"year": int})
    )
