"""Statistics of an area: DuckDB and snapshots against the shapely + pyproj reference, and each other exactly."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
import shapely

from forestguard import snapshots, stores
from forestguard.areas import Area, read_plots
from forestguard.render.layer import build_layer
from forestguard.schema import GROUP_KEYS, Classification
from forestguard.stats import statistics, statistics_by_area
from forestguard.stores.base import ZoneFilter

from ..hazards.files import subprocess_cli
from .conftest import write_geojson
from .helpers import assert_rows_match, reference_rows

BY = [combo for n in range(len(GROUP_KEYS) + 1) for combo in itertools.combinations(GROUP_KEYS, n)]


@pytest.fixture(scope="module")
def snapshot_store(area_store, tmp_path_factory):
    with stores.open(area_store, read_only=True) as store:
        manifest = snapshots.create(store, tmp_path_factory.mktemp("snap"))
    with snapshots.open(manifest.location) as snap:
        yield snap


@pytest.mark.parametrize("by", BY, ids=lambda b: ",".join(b) or "total")
def test_rows_match_the_reference_and_the_snapshot_exactly(area_store, snapshot_store, demo_small, cut_area, by):
    area = Area.of("cut", cut_area)
    where = ZoneFilter(area=area)
    with stores.open(area_store, read_only=True) as duck:
        rows = statistics(duck, where, by).rows
        pd.testing.assert_frame_equal(duck.aggregate(where, by), snapshot_store.aggregate(where, by))
        assert duck.count(where) == snapshot_store.count(where) == sum(r["zones"] for r in rows)
    assert_rows_match(rows, reference_rows(demo_small, cut_area, by), by)


def test_filters_combine_with_the_area(area_store, demo_small, cut_area):
    where = ZoneFilter(area=Area.of("cut", cut_area), year_from=2018, year_to=2021, classifications=(Classification.ILLEGAL,))
    chosen = demo_small[(demo_small["year"].between(2018, 2021)) & (demo_small["classification"] == "Illégale")]
    with stores.open(area_store, read_only=True) as store:
        rows = statistics(store, where, ("year",)).rows
    assert rows and all(2018 <= r["year"] <= 2021 for r in rows)
    assert_rows_match(rows, reference_rows(chosen, cut_area, ("year",)), ("year",))


def test_the_json_describes_the_area_and_keeps_the_contract(area_store, cut_area):
    area = Area.of("Concession <b>12</b>", cut_area)
    with stores.open(area_store, read_only=True) as store:
        plain = statistics(store, ZoneFilter(), ("year",)).to_dict()
        clipped = statistics(store, ZoneFilter(area=area), ("year",)).to_dict()
    assert "area" not in plain
    assert list(clipped) == ["engine", "data_version", "rows", "area"]
    assert clipped["area"]["name"] == "Concession <b>12</b>"
    assert clipped["area"]["area_ha"] == pytest.approx(area.area_ha, abs=0.01) and clipped["area"]["area_ha"] > 1e7
    assert clipped["area"]["bbox"] == pytest.approx(list(shapely.bounds(cut_area)))
    assert [list(r) for r in clipped["rows"]] == [list(r) for r in plain["rows"]][: len(clipped["rows"])]
    assert sum(r["area_ha"] for r in clipped["rows"]) < sum(r["area_ha"] for r in plain["rows"])


def test_the_cache_keys_areas_by_polygon_not_name(area_store, cut_area):
    from forestguard.cache import open_cache

    cache = open_cache()
    small = Area.of("small", shapely.box(-60, -10, -50, 0))
    with stores.open(area_store, read_only=True) as store:
        first = statistics(store, ZoneFilter(area=Area.of("a", cut_area)), ("year",), cache=cache)
        renamed = statistics(store, ZoneFilter(area=Area.of("b", cut_area)), ("year",), cache=cache)
        other = statistics(store, ZoneFilter(area=small), ("year",), cache=cache)
    assert first.rows == renamed.rows and renamed.area["name"] == "b"
    assert other.rows != first.rows
    assert cache.counters()["hits"] == 1


def test_zones_and_the_map_layer_hold_the_zones_meeting_the_area(area_store, demo_small, cut_area):
    where = ZoneFilter(area=Area.of("cut", cut_area))
    expected = int(shapely.intersects(demo_small.geometry.values, cut_area).sum())
    with stores.open(area_store, read_only=True) as store:
        zones = store.zones(where)
        assert len(zones) == expected and shapely.intersects(zones.geometry.values, cut_area).all()
        assert list(zones.columns[:3]) == ["id", "country", "region"]
        assert zones.sort_values(["country", "year", "id"]).index.tolist() == list(range(len(zones)))
        assert len(store.zones_arrow(where, ["id"], limit=5)) == 5
        assert sum(len(b) for b in store.zone_batches(where, ["id"])) == expected
        layer = build_layer(store)
        assert len(layer.select(where)) == expected
        assert len(build_layer(store, where)) == expected


def test_plots_each_get_their_rows_even_without_clearing(area_store, demo_small, cut_area, tmp_path):
    empty_sea = shapely.box(-30, -30, -29, -29)
    brazil_part = shapely.box(-58, -8, -52, -2)
    path = write_geojson(tmp_path / "plots.geojson", brazil_part, empty_sea, shapely.box(105, -5, 115, 0),
                         properties=[{"plot_id": "P-1"}, {"plot_id": "P-2"}, {"plot_id": 3}])
    plots = read_plots(path, "plot_id")
    assert [p.name for p in plots] == ["P-1", "P-2", "3"]
    with stores.open(area_store, read_only=True) as store:
        result = statistics_by_area(store, plots, ZoneFilter(year_from=2019), ("year",), id_field="plot_id", name="plots.geojson")
    by_plot = {name: [r for r in result.rows if r["plot_id"] == name] for name in ("P-1", "P-2", "3")}
    assert by_plot["P-2"] == [{"plot_id": "P-2", "year": None, "zones": 0, "area_ha": 0.0, "mean_confidence": None, "verified_zones": 0}]
    recent = demo_small[demo_small["year"] >= 2019]
    for name, polygon in (("P-1", brazil_part), ("3", shapely.box(105, -5, 115, 0))):
        assert by_plot[name][0]["zones"] > 0
        assert_rows_match([{k: v for k, v in r.items() if k != "plot_id"} for r in by_plot[name]], reference_rows(recent, polygon, ("year",)), ("year",))
    assert result.area["features"] == 3 and result.area["name"] == "plots.geojson"
    assert list(result.frame().columns[:2]) == ["plot_id", "year"]


def test_cli_answers_file_and_saved_name_alike_in_any_crs(area_store, cut_area, tmp_path):
    """The same polygon from GeoJSON, a GeoPackage in Web Mercator and a saved name: the same rows."""
    import geopandas as gpd

    db = tmp_path / "copy.duckdb"
    db.write_bytes(Path(area_store).read_bytes())
    lonlat = write_geojson(tmp_path / "area.geojson", cut_area)
    mercator = tmp_path / "area.gpkg"
    gpd.GeoDataFrame(geometry=[cut_area], crs=4326).to_crs(3857).to_file(mercator)
    shapefile = tmp_path / "area.shp"  # with its .prj: Web Mercator too
    gpd.GeoDataFrame(geometry=[cut_area], crs=4326).to_crs(3857).to_file(shapefile)
    parquet = tmp_path / "area.parquet"
    gpd.GeoDataFrame(geometry=list(shapely.get_parts(cut_area)), crs=4326).to_parquet(parquet)  # one feature per part: their union
    answers = []
    env = {"FORESTGUARD_AREA_MAX_HA": "1000000000"}  # the test area is larger than the default 100 Mha
    for area in (str(lonlat), str(mercator), str(shapefile), str(parquet)):
        done = subprocess_cli("stats", "--db", str(db), "--area", area, "--by", "year,classification", "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    saved = subprocess_cli("area", "add", "Cut area", str(mercator), "--db", str(db), env=env)
    assert saved.returncode == 0, saved.stderr
    done = subprocess_cli("stats", "--db", str(db), "--area", "Cut area", "--by", "year,classification", "--format", "json")
    assert done.returncode == 0, done.stderr
    answers.append(json.loads(done.stdout))
    first = answers[0]["rows"]
    for other in answers[1:]:
        assert [(r["year"], r["classification"], r["zones"]) for r in other["rows"]] == [(r["year"], r["classification"], r["zones"]) for r in first]
        assert all(abs(a["area_ha"] - b["area_ha"]) <= 0.01 for a, b in zip(first, other["rows"]))
    assert answers[-1]["area"]["name"] == "Cut area" and answers[1]["area"]["name"] == "area"


def test_cli_per_feature_csv_is_the_operators_table(area_store, tmp_path):
    path = write_geojson(tmp_path / "plots.geojson", shapely.box(-58, -8, -52, -2), shapely.box(-30, -30, -29, -29),
                         properties=[{"id_plot": "A"}, {"id_plot": "B"}])
    done = subprocess_cli("stats", "--db", area_store, "--area", str(path), "--per-feature", "id_plot", "--from", "2021", "--by", "year", "--format", "csv")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "id_plot,year,zones,area_ha,mean_confidence,verified_zones"
    assert lines[-1] == "B,,0,0.0,,0"
    assert {line.split(",")[0] for line in lines[1:]} == {"A", "B"}
    assert all(int(line.split(",")[1]) >= 2021 for line in lines[1:-1])
