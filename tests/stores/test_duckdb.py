"""The embedded DuckDB store: opening, writing, versions, reading back."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import geopandas as gpd
import pytest
import shapely
from shapely.geometry import box

from forestguard import stores
from forestguard.errors import ReadOnlyStore, StoreNotFound, UserError
from forestguard.schema import TABLE
from forestguard.stores.base import ZoneFilter, filter_sql
from forestguard.validation import validate

pytestmark = pytest.mark.duckdb


def zones(n: int = 3, **columns) -> gpd.GeoDataFrame:
    data = {"country": ["Peru", "Brazil", "Brazil"][:n], "year": [2019, 2021, 2020][:n], "area_ha": ["1.5", "2.25", "3"][:n], **columns}
    frame = gpd.GeoDataFrame(data, geometry=[box(i, 0, i + 0.01, 0.01) for i in range(n)], crs=4326)
    checked = validate(frame, file="t")
    assert checked.rejects == []
    return checked.zones


def test_reading_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    url = tmp_path / "nested" / "zones.duckdb"
    for read_only in (False, True):
        with pytest.raises(StoreNotFound):
            stores.open(str(url), read_only=read_only)
    assert not url.parent.exists()


def test_create_insert_and_data_version(duckdb_url: str) -> None:
    with stores.open(duckdb_url, create=True) as store:
        assert (store.count(), store.data_version(), store.engine) == (0, 0, "duckdb")
        assert store.insert(zones()) == 3
        assert (store.count(), store.data_version()) == (3, 1)
        assert store.insert(zones().iloc[0:0]) == 0
        assert store.data_version() == 1
        store.insert(zones(1))
        assert (store.count(), store.data_version()) == (4, 2)
    with stores.open(duckdb_url, read_only=True) as store:  # persisted
        assert (store.count(), store.data_version()) == (4, 2)
        assert store.describe()["zones"] == 4


def test_values_and_geometry_come_back_exactly(duckdb_url: str) -> None:
    given = zones(country=["Perú 🌳", "'); DROP TABLE x; --", "<b>"], region=["a\"b", None, "c'd"], classification=["légale", None, "ILLEGAL"])
    with stores.open(duckdb_url, create=True) as store:
        store.insert(given)
        back = store.zones()
        aggregate = store.aggregate(ZoneFilter(), ["country"])
    assert list(back.columns) == ["id", "country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry"]
    assert list(back.country) == ["'); DROP TABLE x; --", "<b>", "Perú 🌳"]  # sorted by country, year, id
    assert back.classification.tolist()[1:] == ["Illégale", "Légale"] and back.classification.isna().tolist() == [True, False, False]
    assert back.region.tolist()[1:] == ["c'd", 'a"b'] and back.region.isna().tolist() == [True, False, False]
    by_country = dict(zip(given.country, given.geometry))
    for country, geometry in zip(back.country, back.geometry):
        assert shapely.equals_exact(geometry, by_country[country], tolerance=0)
    assert all(isinstance(v, Decimal) for v in aggregate["area_ha"])
    assert sorted(aggregate["area_ha"]) == [Decimal("1.50"), Decimal("2.25"), Decimal("3.00")]


def test_zones_columns_limit_and_filters(duckdb_url: str) -> None:
    with stores.open(duckdb_url, create=True) as store:
        store.insert(zones())
        table = store.zones_arrow(ZoneFilter(countries=("Brazil",)), columns=["country", "year"], limit=1)
        assert table.column_names == ["country", "year"] and table.to_pylist() == [{"country": "Brazil", "year": 2020}]
        assert store.count(ZoneFilter(bbox=(0.5, -1, 1.5, 1))) == 1  # only the zone at x=1
        assert store.countries() == ["Brazil", "Peru"] and store.years() == [2019, 2020, 2021]


def test_read_only_store_refuses_writes(duckdb_url: str) -> None:
    with stores.open(duckdb_url, create=True) as store:
        store.insert(zones(1))
    with stores.open(duckdb_url, read_only=True) as store:
        with pytest.raises(ReadOnlyStore):
            store.insert(zones(1))
        assert store.count() == 1


def test_the_table_refuses_what_validation_would_have_refused(duckdb_url: str) -> None:
    """Defence in depth: an unvalidated frame cannot break the schema's rules, and a failed insert writes nothing."""
    bad = zones(2)
    bad.loc[1, "country"] = "x" * 101
    with stores.open(duckdb_url, create=True) as store:
        with pytest.raises(duckdb.Error):
            store.insert(bad)
        assert (store.count(), store.data_version()) == (0, 0)


@pytest.mark.parametrize("content", [b"not a database at all" * 100, None])
def test_files_that_are_not_stores(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.duckdb"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    for read_only in (True, False):
        with pytest.raises(UserError, match="cannot open"):
            stores.open(str(path), read_only=read_only)


def test_a_duckdb_file_of_someone_else_is_not_a_store_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t (a INTEGER)").close()
    with pytest.raises(StoreNotFound, match=f"no {TABLE} table"):
        stores.open(str(path), read_only=True)


def test_cannot_create_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create"):
        stores.open(str(tmp_path / "file" / "zones.duckdb"), create=True)


@pytest.mark.parametrize(
    "url, engine",
    [("data/x.duckdb", "duckdb"), ("duckdb://x", "duckdb"), ("x.db", "duckdb"), ("postgresql://u:p@h/db", "postgis"), ("postgres://h/db", "postgis"), ("snapshot:/tmp/s", "snapshot"), ("s3://b/snapshots/1", "snapshot")],
)
def test_engine_of(url: str, engine: str) -> None:
    assert stores.engine_of(url) == engine


def test_engine_of_unknown_url() -> None:
    with pytest.raises(UserError, match="cannot tell which store"):
        stores.engine_of("zones.geojson")


def test_filter_sql_keeps_values_out_of_the_sql_text() -> None:
    hostile = "x'); DROP TABLE deforestation_zones; --"
    sql = filter_sql(ZoneFilter(countries=(hostile,), sources=(hostile,), year_from=2020, min_confidence=0.5), placeholder="%s")
    assert hostile not in sql.clause and "DROP" not in sql.clause
    assert sql.params == [hostile, 2020, hostile, 0.5]
    assert filter_sql(ZoneFilter()).clause == "TRUE"
    with pytest.raises(ValueError):
        filter_sql(ZoneFilter(bbox=(0, 0, 1, 1)))


def test_default_store_is_under_the_data_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "d"))
    with stores.open(create=True) as store:
        store.insert(zones(1))
    assert (tmp_path / "d" / "forestguard.duckdb").exists()
