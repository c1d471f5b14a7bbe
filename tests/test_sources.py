"""Reading source files (GeoJSON, GeoPackage, Shapefile, GeoParquet, FlatGeobuf) and mapping columns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from forestguard.errors import InputError
from forestguard.sources import CRS_ASSUMED, READ_PROBLEMS, ColumnMapping, read_zones_file

from .hazards.files import GOOD, collection, dumps, feature, square

POLYGONS = [Polygon([(10, 0), (10.01, 0), (10.01, 0.01), (10, 0.01)]), Polygon([(-60, -3), (-59.9, -3), (-59.9, -2.9), (-60, -2.9)])]


@pytest.fixture
def zones() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"NAME_0": ["Brazil", "Perú"], "yr": [2020, 2021], "cls": ["légale", "ILLEGAL"]}, geometry=POLYGONS, crs=4326)


def assert_same_shapes(frame: gpd.GeoDataFrame, tolerance: float = 1e-6) -> None:
    assert frame.crs.to_epsg() == 4326
    for got, want in zip(frame.geometry, POLYGONS):
        assert got.hausdorff_distance(want) < tolerance


@pytest.mark.parametrize(
    "name, driver, crs",
    [
        ("zones.gpkg", "GPKG", 4326),
        ("zones.shp", "ESRI Shapefile", 3857),  # web mercator .prj
        ("utm 33n é.shp", "ESRI Shapefile", 32633),  # a UTM zone .prj, a path with a space and an accent
        ("zones.fgb", "FlatGeobuf", 3857),
    ],
)
def test_gdal_formats_are_read_and_reprojected(tmp_path: Path, zones, name: str, driver: str, crs: int) -> None:
    path = tmp_path / name
    zones.to_crs(crs).to_file(path, driver=driver)
    frame = read_zones_file(path)
    assert_same_shapes(frame)
    assert list(frame["NAME_0"]) == ["Brazil", "Perú"] and list(frame["yr"]) == [2020, 2021]
    assert frame.attrs[CRS_ASSUMED] is False


def test_geopackage_with_several_layers_is_refused_not_half_read(tmp_path: Path, zones) -> None:
    path = tmp_path / "two.gpkg"
    zones.to_file(path, layer="clearings_2020")
    zones.to_file(path, layer="clearings_2021")
    with pytest.raises(InputError, match=r"has 2 layers \(clearings_2020, clearings_2021\)"):
        read_zones_file(path)


def test_geoparquet_in_another_crs(tmp_path: Path, zones) -> None:
    path = tmp_path / "zones.parquet"
    zones.to_crs(32633).to_parquet(path)
    assert_same_shapes(read_zones_file(path))


def test_shapefile_without_prj_is_assumed_lonlat_and_says_so(tmp_path: Path, zones) -> None:
    zones.to_file(tmp_path / "a.shp")
    (tmp_path / "a.prj").unlink()
    frame = read_zones_file(tmp_path / "a.shp")
    assert frame.crs.to_epsg() == 4326 and frame.attrs[CRS_ASSUMED] is True
    assert_same_shapes(frame)


def test_geojson_properties_arrive_exactly_as_written(tmp_path: Path) -> None:
    features = [feature({"country": "A", "year": "2020", "n": 1}), feature({"country": 7, "year": 2020.0, "n": True, "deep": {"a": [1]}}), feature({})]
    path = tmp_path / "a.geojson"
    path.write_bytes(dumps(collection(*features)))
    frame = read_zones_file(path)
    assert frame["country"].tolist()[:2] == ["A", 7]
    assert frame["year"].tolist()[:2] == ["2020", 2020.0]
    assert frame["n"].tolist()[:2] == [1, True]
    assert frame["deep"].tolist()[1] == {"a": [1]}
    assert len(frame) == 3 and frame.attrs[READ_PROBLEMS] == {}


def test_geojson_geometries_equal_what_gdal_reads(tmp_path: Path) -> None:
    shell, hole = [(0, 0), (4, 0), (4, 4), (0, 4)], [(1, 1), (2, 1), (2, 2), (1, 2)]
    shapes = [
        Polygon(shell, [hole]),
        MultiPolygon([Polygon(shell), Polygon([(5, 5), (6, 5), (6, 6)], [[(5.5, 5.1), (5.9, 5.1), (5.9, 5.4)]])]),
        Polygon([(x, y, 7.0) for x, y in shell]),
        Polygon(shell),
    ]
    path = tmp_path / "shapes.geojson"
    gpd.GeoDataFrame({"country": ["A"] * 4, "year": [2020] * 4}, geometry=shapes, crs=4326).to_file(path)
    ours, gdals = read_zones_file(path).geometry.values, gpd.read_file(path).geometry.values
    assert all(a.equals_exact(shapely.force_2d(b), 0) for a, b in zip(ours, gdals))
    assert not ours[2].has_z


def test_geojson_nan_and_infinity_are_text_not_null(tmp_path: Path) -> None:
    path = tmp_path / "a.geojson"
    path.write_text('{"type":"Feature","properties":{"country":"A","year":2020,"confidence":NaN,"area_ha":-Infinity},"geometry":%s}' % json.dumps(square()))
    frame = read_zones_file(path)
    assert frame["confidence"].tolist() == ["NaN"] and frame["area_ha"].tolist() == ["-Infinity"]


def test_geojson_property_named_geometry_does_not_replace_the_geometry(tmp_path: Path) -> None:
    path = tmp_path / "a.geojson"
    path.write_bytes(dumps(collection(feature({**GOOD, "geometry": "a text"}))))
    frame = read_zones_file(path)
    assert frame["geometry"].tolist() == ["a text"]
    assert frame.geometry.iloc[0].equals(Polygon(square()["coordinates"][0]))


def test_geojson_crs_member_is_honoured(tmp_path: Path, zones) -> None:
    document = json.loads(zones.to_crs(3857).to_json())
    document["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    path = tmp_path / "mercator.geojson"
    path.write_text(json.dumps(document))
    assert_same_shapes(read_zones_file(path), tolerance=1e-6)


def test_geojson_record_problems_are_reported_per_record(tmp_path: Path) -> None:
    sq = json.dumps(square())
    path = tmp_path / "a.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":['
        '{"type":"Feature","properties":{"country":"A","country":"B","year":2020},"geometry":%s},'
        '{"type":"Feature","properties":{"country":"A","year":2020},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}},'
        '{"type":"Feature","properties":{"country":"A","year":2020},"geometry":%s}]}' % (sq, sq)
    )
    frame = read_zones_file(path)
    problems = frame.attrs[READ_PROBLEMS]
    assert set(problems) == {0, 1}
    assert problems[0] == [("country", "duplicate key 'country' in properties (ambiguous: which value?)", "country")]
    assert problems[1][0][0] == "geometry" and "not closed" in problems[1][0][1]
    assert frame.geometry.iloc[1] is None and frame.geometry.iloc[2] is not None


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b'{"type": "FeatureCollection", "features": [', "not valid JSON (line 1, column 44"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"", "is empty (0 bytes)"),
        (b"[]", "top level is an array"),
        (b"42", "top level is a number"),
        (b'{"type": "Topology"}', "not GeoJSON"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_json_is_one_input_error(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_zones_file(path)
    assert caught.value.file == str(path) and fragment in caught.value.reason
    assert "\n" not in str(caught.value)


def test_path_errors(tmp_path: Path) -> None:
    (tmp_path / "folder.geojson").mkdir()
    (tmp_path / "zones.csv").write_text("a,b\n")
    (tmp_path / "junk.gpkg").write_bytes(os.urandom(2048))
    for name, fragment in [("missing.geojson", "no such file"), ("folder.geojson", "is a directory"), ("zones.csv", "unsupported format .csv"), ("junk.gpkg", "cannot be read")]:
        with pytest.raises(InputError, match=fragment):
            read_zones_file(tmp_path / name)
    with pytest.raises(InputError, match="cannot be opened|no such file"):
        read_zones_file(tmp_path / ("x" * 5000 + ".geojson"))


# An unreadable file is tested through the CLI (tests/cli/test_cli_zones.py), as a non-root user.


# -- ColumnMapping ---------------------------------------------------------------------------


def test_mapping_renames_sets_and_says_what_it_used(zones) -> None:
    frame = zones.assign(Extra=1, region="R")
    mapping = ColumnMapping.parse(("country=NAME_0", "classification=cls"), ("year=2019", "source=PRODES"))
    mapped, line = mapping.apply(frame, "in.gpkg")
    assert list(mapped["country"]) == ["Brazil", "Perú"] and list(mapped["year"]) == ["2019", "2019"]
    assert list(mapped["source"]) == ["PRODES"] * 2 and list(mapped["region"]) == ["R", "R"]
    assert "yr" not in mapped.columns and "Extra" not in mapped.columns
    assert line == "in.gpkg: using country<-NAME_0, region, classification<-cls, year=(--set 2019), source=(--set PRODES); ignoring yr, Extra"


def test_mapping_matches_column_names_ignoring_case(zones) -> None:
    mapped, line = ColumnMapping().apply(zones.rename(columns={"NAME_0": "Country", "yr": "YEAR"}), "f")
    assert list(mapped["country"]) == ["Brazil", "Perú"] and line.startswith("f: using country<-Country, year<-YEAR")


def test_mapping_errors(zones) -> None:
    with pytest.raises(InputError, match="'NOPE'.*not in the file; it has: NAME_0, yr, cls"):
        ColumnMapping.parse(("country=NOPE",)).apply(zones, "f")
    with pytest.raises(InputError, match="no country or year column"):
        ColumnMapping().apply(zones, "f")
    for maps, sets, fragment in [
        (("country",), (), "COLUMN=VALUE"),
        (("geometry=x",), (), "not a zone column"),
        ((), ("year=2019", "year=2020"), "given twice"),
        (("year=yr",), ("year=2020",), "both --map and --set"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            ColumnMapping.parse(maps, sets)


def test_mapping_keeps_only_problems_of_used_columns(zones) -> None:
    frame = zones.rename(columns={"NAME_0": "pays"})
    frame.attrs[READ_PROBLEMS] = {0: [("pays", "duplicate key", "pays")], 1: [("note", "duplicate key", "note"), ("geometry", "bad", None)]}
    mapped, _ = ColumnMapping.parse(("country=pays", "year=yr")).apply(frame, "f")
    assert mapped.attrs[READ_PROBLEMS] == {0: [("country", "duplicate key", None)], 1: [("geometry", "bad", None)]}


def test_mapping_of_an_empty_file_needs_no_columns() -> None:
    empty = gpd.GeoDataFrame({"a": pd.Series([], dtype=object)}, geometry=gpd.GeoSeries([]), crs=4326)
    mapped, line = ColumnMapping().apply(empty, "f")
    assert len(mapped) == 0 and line == "f: using no columns; ignoring a"
