"""Areas that cannot be used: one line naming the file, the feature and the reason; exit 1; nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from forestguard import stores
from forestguard.cli import main

from .conftest import write_geojson

SMALL = shapely.box(-56, -6, -55, -5)
BOWTIE = shapely.Polygon([(-56, -6), (-55, -5), (-55, -6), (-56, -5), (-56, -6)])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, db: str, path: Path, *extra: str) -> str:
    code, out, err = run(capsys, "area", "add", "X", str(path), "--db", db, *extra)
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    with stores.open(db, read_only=True) as store:
        assert store.saved_areas() == []  # nothing stored
    return lines[0]


@pytest.fixture
def db(tmp_path, demo_small) -> str:
    url = str(tmp_path / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small.iloc[:50])
    return url


def test_not_polygonal(capsys, db, tmp_path):
    line = refused(capsys, db, write_geojson(tmp_path / "line.geojson", shapely.LineString([(0, 0), (1, 1)])))
    assert line.endswith("line.geojson: feature 0: geometry: is a LineString; only Polygon and MultiPolygon are accepted")


def test_empty(capsys, db, tmp_path):
    none = tmp_path / "none.geojson"
    none.write_text('{"type": "FeatureCollection", "features": []}')
    assert "has no features" in refused(capsys, db, none)
    hollow = tmp_path / "hollow.geojson"
    hollow.write_text('{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": []}}')
    assert "feature 0: geometry: is empty" in refused(capsys, db, hollow)


def test_self_intersecting_is_refused_or_repaired(capsys, db, tmp_path):
    path = write_geojson(tmp_path / "bowtie.geojson", BOWTIE)
    line = refused(capsys, db, path)
    assert "feature 0: geometry: invalid: Self-intersection" in line and "--repair" in line
    code, out, err = run(capsys, "area", "add", "X", str(path), "--db", db, "--repair")
    assert code == 0, err
    with stores.open(db, read_only=True) as store:
        assert store.saved_area("X").geometry.is_valid


def test_too_large_and_too_detailed(capsys, db, tmp_path, monkeypatch):
    huge = write_geojson(tmp_path / "huge.geojson", shapely.box(-70, -20, -40, 5))
    assert "over the limit of 100,000,000 ha (FORESTGUARD_AREA_MAX_HA)" in refused(capsys, db, huge)
    detailed = write_geojson(tmp_path / "detailed.geojson", shapely.Point(-55, -5).buffer(0.5, quad_segs=400))
    monkeypatch.setenv("FORESTGUARD_AREA_MAX_VERTICES", "1000")
    assert "1,601 vertices, over the limit of 1,000 (FORESTGUARD_AREA_MAX_VERTICES)" in refused(capsys, db, detailed)


def test_unknown_or_missing_crs(capsys, db, tmp_path):
    unknown = tmp_path / "unknown.geojson"
    unknown.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:999999"}},
                                   "features": [{"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(SMALL))}]}))
    assert "names an unknown CRS 'EPSG:999999'" in refused(capsys, db, unknown)
    projected = gpd.GeoDataFrame(geometry=[SMALL], crs=4326).to_crs(32721)
    shapefile = tmp_path / "noprj.shp"
    projected.to_file(shapefile)
    shapefile.with_suffix(".prj").unlink()
    line = refused(capsys, db, shapefile)
    assert "coordinates outside EPSG:4326" in line and "give it its .prj" in line


def test_crossing_the_antimeridian_must_be_split(capsys, db, tmp_path):
    across = shapely.Polygon([(179, 0), (-179, 0), (-179, 1), (179, 1), (179, 0)])
    assert "antimeridian" in refused(capsys, db, write_geojson(tmp_path / "across.geojson", across))


def test_unknown_names_and_files(capsys, db, tmp_path):
    code, out, err = run(capsys, "stats", "--db", db, "--area", "Nowhere <script>")
    assert code == 1 and err.strip() == f"error: no saved area 'Nowhere <script>' in {db} (none is saved; see 'forestguard area list')"
    code, out, err = run(capsys, "stats", "--db", db, "--area", str(tmp_path / "missing.gpkg"))
    assert code == 1 and err.strip().endswith("missing.gpkg: no such file")
    for command in (("area", "show", "Nope"), ("area", "remove", "Nope"), ("area", "unwatch", "Nope")):
        code, out, err = run(capsys, *command, "--db", db)
        assert code == 1 and len(err.strip().splitlines()) == 1 and "'Nope'" in err, (command, err)


def test_names_and_content_are_stored_literally(capsys, db, tmp_path):
    name = "Terra Indígena '; DROP TABLE forestguard_areas; -- <b>x</b>"
    path = write_geojson(tmp_path / "a.geojson", SMALL)
    code, out, err = run(capsys, "area", "add", name, str(path), "--db", db)
    assert code == 0, err
    code, out, err = run(capsys, "area", "list", "--db", db, "--format", "json")
    [listed] = json.loads(out)
    assert listed["name"] == name and listed["vertices"] == 5 and listed["source_file"] == "a.geojson"
    code, out, err = run(capsys, "area", "show", name, "--db", db, "--format", "geojson")
    shown = json.loads(out)
    assert shown["properties"]["name"] == name and shapely.equals(shapely.geometry.shape(shown["geometry"]), SMALL)
    for bad in ("", "   ", "tab\there", "x" * 201):
        code, out, err = run(capsys, "area", "add", bad, str(path), "--db", db)
        assert code == 1 and "area name" in err


def test_plots_need_their_id_field_unique_and_present(capsys, db, tmp_path):
    two = [shapely.box(-56, -6, -55.5, -5.5), shapely.box(-55.5, -6, -55, -5.5)]
    cases = {
        "missing field": ([{"id": "a"}, {"id": "b"}], "has no field 'plot' for --per-feature"),
        "duplicate": ([{"plot": "a"}, {"plot": "a"}], "feature 1: plot: 'a' is also the id of feature 0"),
        "no id": ([{"plot": "a"}, {"plot": None}], "feature 1: plot: is missing"),
    }
    for label, (properties, message) in cases.items():
        path = write_geojson(tmp_path / f"{label}.geojson", *two, properties=properties)
        code, out, err = run(capsys, "stats", "--db", db, "--area", str(path), "--per-feature", "plot")
        assert code == 1 and message in err and out == "", (label, err)
    code, out, err = run(capsys, "stats", "--db", db, "--per-feature", "plot")
    assert code == 2 and "--per-feature needs --area FILE" in err
