"""validate(), rule by rule, on frames built here."""

from __future__ import annotations

import warnings
from decimal import Decimal

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from forestguard.schema import current_year
from forestguard.validation import Reject, validate

GEOD = Geod(ellps="WGS84")


def box(x0: float = 10.0, y0: float = 0.0, w: float = 0.01, h: float = 0.01) -> Polygon:
    return Polygon([(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)])


def frame(n: int = 1, geometry=None, **columns) -> gpd.GeoDataFrame:
    data = {"country": ["Brazil"] * n, "year": [2020] * n}
    data.update({k: (v if isinstance(v, (list, pd.Series)) else [v] * n) for k, v in columns.items()})
    geoms = geometry if geometry is not None else [box(10 + i) for i in range(n)]
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=gpd.GeoSeries(geoms), crs=4326)


def mixed(values: list) -> pd.Series:
    """A column exactly as a JSON reader gives it: Python objects, no conversion."""
    return pd.Series(values, dtype=object)


def quietly(make, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shapely warns while building a NaN polygon; that polygon is the point
        return make(*args)


def reasons(result, field: str | None = None) -> dict[int, str]:
    return {r.feature: r.reason for r in result.rejects if field is None or field in r.field.split(", ")}


def test_good_record_comes_out_as_the_table_stores_it() -> None:
    result = validate(frame(region="Pará", classification="illégale", source="PRODES", confidence=0.876, verified="yes"), file="f")
    assert result.rejects == []
    row = result.zones.iloc[0]
    assert (row.country, row.region, row.classification, row.year, row.source, row.verified) == ("Brazil", "Pará", "Illégale", 2020, "PRODES", True)
    assert row.confidence == 0.88  # DECIMAL(3,2)
    lons, lats = zip(*box(10).exterior.coords)
    assert row.area_ha == round(abs(GEOD.polygon_area_perimeter(lons, lats)[0]) / 10_000, 2)
    assert list(result.zones.columns[:9]) == ["country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry"]
    assert result.zones.crs.to_epsg() == 4326


# -- geometry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "geometry, reason",
    [
        (Point(0, 0), "is a Point; only Polygon and MultiPolygon"),
        (LineString([(0, 0), (1, 1)]), "is a LineString"),
        (shapely.GeometryCollection([box()]), "is a GeometryCollection"),
        (None, "is missing"),
        (Polygon(), "is empty"),
        (box(200), "outside EPSG:4326"),
        (box(10, -91), "outside EPSG:4326"),
        (quietly(Polygon, [(0, 0), (np.nan, 0), (1, 1), (0, 0)]), "not finite"),
        (quietly(Polygon, [(0, 0), (np.inf, 0), (1, 1), (0, 0)]), "not finite"),
        (Polygon([(179.9, 0), (-179.9, 0), (-179.9, 0.1), (179.9, 0.1)]), "antimeridian"),
        (Polygon([(-180, 80), (180, 80), (180, 90), (-180, 90)]), "antimeridian"),
    ],
)
def test_geometry_rejected(geometry, reason: str) -> None:
    result = validate(frame(geometry=[geometry]), file="f")
    assert len(result.zones) == 0
    assert [(r.file, r.feature, r.field) for r in result.rejects] == [("f", 0, "geometry")]
    assert reason in result.rejects[0].reason


def test_invalid_geometry_reason_is_shapelys_and_repair_keeps_the_polygons() -> None:
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    result = validate(frame(geometry=[bowtie]), file="f")
    assert shapely.is_valid_reason(bowtie) in result.rejects[0].reason
    assert "Self-intersection" in result.rejects[0].reason

    repaired = validate(frame(geometry=[bowtie]), file="f", repair=True)
    assert repaired.rejects == []
    assert len(repaired.zones) == 2  # make_valid splits the bow tie into two triangles, one zone each
    assert all(g.geom_type == "Polygon" and g.is_valid for g in repaired.zones.geometry)
    assert shapely.union_all(repaired.zones.geometry.values).equals(shapely.make_valid(bowtie))


def test_repair_that_leaves_no_area_is_a_reject() -> None:
    spike = Polygon([(0, 0), (1, 1), (2, 2), (1, 1), (0, 0)])  # a polygon folded onto a line
    result = validate(frame(geometry=[spike]), file="f", repair=True)
    assert len(result.zones) == 0
    assert reasons(result, "geometry") == {0: "repair left no polygon"}


def test_z_and_m_are_dropped() -> None:
    result = validate(frame(geometry=[shapely.force_3d(box(), 7.0)]), file="f")
    assert result.rejects == [] and not result.zones.geometry.iloc[0].has_z


def test_pole_touching_polygon_is_accepted_with_its_geodesic_area() -> None:
    wedge = Polygon([(0, 89), (1, 89), (1, 90), (0, 90)])
    result = validate(frame(geometry=[wedge]), file="f")
    lons, lats = zip(*wedge.exterior.coords)
    assert result.zones.area_ha.iloc[0] == round(abs(GEOD.polygon_area_perimeter(lons, lats)[0]) / 10_000, 2)


def test_multipolygon_becomes_one_zone_per_part_with_the_feature_number() -> None:
    multi = MultiPolygon([box(10), box(11, 0, 0.02, 0.01)])
    result = validate(frame(2, geometry=[box(5), multi]), file="f")
    assert list(result.zones.feature) == [0, 1, 1]
    assert [g.geom_type for g in result.zones.geometry] == ["Polygon"] * 3
    assert result.zones.area_ha.iloc[2] == pytest.approx(2 * result.zones.area_ha.iloc[1], abs=0.02)


def test_given_area_is_shared_between_parts_to_the_cent() -> None:
    multi = MultiPolygon([box(10), box(11), box(12)])  # three equal parts
    result = validate(frame(geometry=[multi], area_ha=100), file="f")
    areas = sorted(Decimal(str(a)) for a in result.zones.area_ha)
    assert sum(areas) == Decimal("100.00")
    assert areas == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]


def test_given_area_share_follows_part_size() -> None:
    multi = MultiPolygon([box(10, 0, 0.01), box(11, 0, 0.03)])
    result = validate(frame(geometry=[multi], area_ha=40), file="f")
    assert list(result.zones.area_ha) == [10.0, 30.0]


def test_a_feature_with_one_bad_part_is_rejected_whole() -> None:
    sliver = Polygon([(20, 0), (20 + 1e-9, 0), (20, 1e-9)])
    result = validate(frame(geometry=[MultiPolygon([box(10), sliver])]), file="f")
    assert len(result.zones) == 0
    assert "rounds to 0.00" in result.rejects[0].reason and "part 2 of 2" in result.rejects[0].reason


# -- area -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, fragment",
    [(0, "> 0"), (-5, "> 0"), (0.004, "rounds to 0.00"), (100_000_000, "DECIMAL(10,2)"), (1e300, "DECIMAL(10,2)"), ("big", "not a number"), (True, "not a number"), (np.inf, "> 0")],
)
def test_given_area_rejected(value, fragment: str) -> None:
    result = validate(frame(area_ha=mixed([value])), file="f")
    assert fragment in reasons(result, "area_ha")[0]


def test_given_area_limits_and_text() -> None:
    result = validate(frame(3, area_ha=mixed([99_999_999.99, "12.5", 0.005 + 1e-9])), file="f")
    assert result.rejects == []
    assert list(result.zones.area_ha) == [99_999_999.99, 12.5, 0.01]


@pytest.mark.parametrize("given, stored", [(12.345, 12.35), (2.675, 2.68), (0.005, 0.01), ("1.005", 1.01), (7, 7.0)])
def test_given_area_is_rounded_as_written_like_decimal(given, stored: float) -> None:
    # DECIMAL(10,2) of the number as written: 2.675 is 2.67499999… as a double, but 2.68 as a decimal.
    result = validate(frame(area_ha=mixed([given])), file="f")
    assert result.rejects == [] and result.zones.area_ha.iloc[0] == stored


@pytest.mark.parametrize("given, stored", [(0.125, 0.13), (0.115, 0.12), (0.994, 0.99), (0.995, 1.0)])
def test_confidence_is_rounded_as_written_like_decimal(given: float, stored: float) -> None:
    result = validate(frame(confidence=mixed([given])), file="f")
    assert result.rejects == [] and result.zones.confidence.iloc[0] == stored


def test_geodesic_area_too_large_or_too_small() -> None:
    continent = Polygon([(-60, -30), (0, -30), (0, 30), (-60, 30)])
    sliver = Polygon([(10, 0), (10 + 1e-10, 0), (10 + 1e-10, 1e-10), (10, 0)])
    result = validate(frame(2, geometry=[continent, sliver]), file="f")
    got = reasons(result, "area_ha")
    assert "exceeds DECIMAL(10,2)" in got[0] and "rounds to 0.00" in got[1]


# -- text ------------------------------------------------------------------------------------


def test_text_is_kept_exactly() -> None:
    hostile = ["'); DROP TABLE deforestation_zones; --", "<script>alert(1)</script>", "  spaced  ", "🌳 \"q\" 'x' \\", "e\u0301"]
    result = validate(frame(5, country=hostile, region=hostile, source=hostile), file="f")
    assert result.rejects == []
    for column in ("country", "region", "source"):
        assert list(result.zones[column]) == hostile


@pytest.mark.parametrize("column, limit", [("country", 100), ("region", 200), ("source", 100)])
def test_text_limits_count_characters(column: str, limit: int) -> None:
    values = ["é" * limit, "🌳" * limit, "x" * (limit + 1)]
    result = validate(frame(3, **{column: values}), file="f")
    assert reasons(result, column) == {2: f"is {limit + 1} characters long; the limit is {limit}"}


@pytest.mark.parametrize("value", [None, "", "   ", np.nan])
def test_country_is_required(value) -> None:
    result = validate(frame(country=mixed([value])), file="f")
    assert "required" in reasons(result, "country")[0]


def test_country_column_absent() -> None:
    result = validate(frame().drop(columns="country"), file="f")
    assert reasons(result, "country") == {0: "is required"}


@pytest.mark.parametrize("value", [True, {"name": "Brazil"}, ["Brazil"], b"Brazil", float("inf")])
def test_values_that_are_not_text_are_rejected(value) -> None:
    result = validate(frame(country=mixed([value])), file="f")
    assert "is not text" in reasons(result, "country")[0]


def test_numbers_in_text_columns_are_spelled_out() -> None:
    result = validate(frame(2, country=mixed([123, 4.5]), region=mixed([7, None])), file="f")
    assert list(result.zones.country) == ["123", "4.5"]
    assert result.zones.region.iloc[0] == "7" and pd.isna(result.zones.region.iloc[1])


@pytest.mark.parametrize("value, fragment", [("a\x00b", "NUL"), ("a\ud800", "lone surrogate")])
def test_text_that_no_engine_can_store(value: str, fragment: str) -> None:
    result = validate(frame(region=mixed([value])), file="f")
    assert fragment in reasons(result, "region")[0]


def test_nul_in_arrow_strings() -> None:
    result = validate(frame(2, region=pd.Series(["ok", "a\x00b"], dtype="str")), file="f")
    assert reasons(result, "region") == {1: "contains a NUL character"}


# -- classification, year, confidence, verified --------------------------------------------


@pytest.mark.parametrize(
    "given, stored",
    [("legal", "Légale"), ("LEGAL", "Légale"), ("légale", "Légale"), ("Legale", "Légale"), (" LÉGALE ", "Légale"),
     ("illegal", "Illégale"), ("Illégale", "Illégale"), ("ILLEGALE", "Illégale"), ("ille\u0301gale", "Illégale"), (None, None), ("", None)],
)
def test_classification_spellings(given, stored) -> None:
    result = validate(frame(classification=mixed([given])), file="f")
    assert result.rejects == [] and result.zones.classification.iloc[0] == stored


@pytest.mark.parametrize("given", ["unknown", "ilegal", "legally", 1, True])
def test_classification_rejected(given) -> None:
    result = validate(frame(classification=mixed([given])), file="f")
    assert "not legal or illegal" in reasons(result, "classification")[0]


@pytest.mark.parametrize("given", [1970, 2020, "2020", 2020.0, " 2020 ", np.int32(2021), Decimal("2019"), current_year()])
def test_year_accepted(given) -> None:
    result = validate(frame(year=mixed([given])), file="f")
    assert result.rejects == [] and result.zones.year.iloc[0] == int(float(str(given).strip()))


@pytest.mark.parametrize(
    "given, fragment",
    [(1969, "outside 1970.."), (current_year() + 1, "outside 1970.."), (2020.5, "whole number"), (True, "whole number"), ("abc", "whole number"),
     ("NaN", "whole number"), ("Infinity", "outside 1970.."), (None, "required"), (10**30, "outside"), (10**400, "outside"), ([2020], "whole number")],
)
def test_year_rejected(given, fragment: str) -> None:
    result = validate(frame(year=mixed([given])), file="f")
    assert fragment in reasons(result, "year")[0]


def test_year_column_of_floats_with_a_gap() -> None:
    result = validate(frame(2, year=[2020.0, np.nan]), file="f")
    assert reasons(result, "year") == {1: "is required"}


@pytest.mark.parametrize("given, stored", [(0, 0.0), (1, 1.0), ("0.5", 0.5), (0.994, 0.99), (None, None), (np.nan, None)])
def test_confidence_accepted(given, stored) -> None:
    result = validate(frame(confidence=mixed([given])), file="f")
    got = result.zones.confidence.iloc[0]
    assert result.rejects == [] and (np.isnan(got) if stored is None else got == stored)


@pytest.mark.parametrize("given, fragment", [(-0.01, "outside 0..1"), (1.01, "outside 0..1"), (80, "outside 0..1"), ("high", "not a number"), (True, "not a number"), ("NaN", "not a number"), ("Infinity", "outside 0..1")])
def test_confidence_rejected(given, fragment: str) -> None:
    result = validate(frame(confidence=mixed([given])), file="f")
    assert fragment in reasons(result, "confidence")[0]


@pytest.mark.parametrize("given, stored", [(True, True), (False, False), ("yes", True), ("oui", True), ("FALSE", False), (1, True), (0.0, False), (None, False), ("", False)])
def test_verified_accepted(given, stored: bool) -> None:
    result = validate(frame(verified=mixed([given])), file="f")
    assert result.rejects == [] and bool(result.zones.verified.iloc[0]) is stored


@pytest.mark.parametrize("given", ["maybe", 2, -1, [True]])
def test_verified_rejected(given) -> None:
    result = validate(frame(verified=mixed([given])), file="f")
    assert "not true or false" in reasons(result, "verified")[0]


# -- records ------------------------------------------------------------------------------------


def test_one_reject_per_record_naming_every_field_and_the_feature_numbers_given() -> None:
    df = frame(3, year=mixed([2020, 1800, 2020]), confidence=mixed([0.5, 7, 0.5]), country=mixed(["A", "", "C"]))
    result = validate(df, file="zones.gpkg", features=[10, 11, 12])
    assert len(result.rejects) == 1
    reject = result.rejects[0]
    assert (reject.file, reject.feature) == ("zones.gpkg", 11)
    assert set(reject.field.split(", ")) == {"country", "year", "confidence"}
    assert str(reject) == f"zones.gpkg: feature 11: {reject.field}: {reject.reason}"
    assert list(result.zones.feature) == [10, 12]


def test_reject_is_one_line_even_for_hostile_values() -> None:
    result = validate(frame(classification=mixed(["legal\nfile: feature 9: x: forged"])), file="f")
    assert "\n" not in str(result.rejects[0])


def test_empty_frame() -> None:
    result = validate(frame(0, geometry=[]), file="f")
    assert len(result.zones) == 0 and result.rejects == []


def test_reject_str() -> None:
    assert str(Reject("a.geojson", 3, "year", "is required")) == "a.geojson: feature 3: year: is required"


def test_the_files_wkb_is_kept_only_for_geometries_left_as_read() -> None:
    from forestguard.sources import SOURCE_WKB
    from forestguard.stores.encoding import zone_wkb

    bowtie = Polygon([(10, 0), (10.01, 0.01), (10.01, 0), (10, 0.01), (10, 0)])
    pair = MultiPolygon([box(20), box(21)])
    geoms = [box(10), bowtie, pair, box(30)]
    zones_in = frame(4, geometry=geoms)
    zones_in[SOURCE_WKB] = shapely.to_wkb(np.array(geoms, dtype=object), output_dimension=2, byte_order=1)
    checked = validate(zones_in, file="f.gpkg", repair=True)
    zones = checked.zones
    assert list(zones["feature"]) == [0, 1, 1, 2, 2, 3]  # the bow-tie repaired into two triangles, the pair split
    kept = zones[SOURCE_WKB].notna().tolist()
    assert kept == [True, False, False, False, False, True]
    assert zones[SOURCE_WKB].iloc[0] == zones_in[SOURCE_WKB].iloc[0]
    expected = shapely.to_wkb(np.asarray(zones.geometry.values), output_dimension=2, byte_order=1)
    assert zone_wkb(zones).to_pylist() == list(expected)  # the same bytes either way
    assert zone_wkb(zones.drop(columns=SOURCE_WKB)).to_pylist() == list(expected)
