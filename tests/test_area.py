"""Geodesic area against pyproj.Geod (GeographicLib) used directly, ring by ring."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon

from forestguard.area import SMALL_RING_DEGREES, geodesic_area_ha, polygon_parts

GEOD = Geod(ellps="WGS84")


def ring_ha(ring: list[tuple[float, float]]) -> float:
    """|area| of one ring in ha, straight from GeographicLib (no shapely involved)."""
    lons, lats = zip(*ring)
    return abs(GEOD.polygon_area_perimeter(lons, lats)[0]) / 10_000


def box(x0: float, y0: float, w: float, h: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]


@pytest.mark.parametrize(
    "ring",
    [
        box(-60.0, -3.0, 0.05, 0.04),  # Amazon, near the equator
        box(10.0, 0.0, 1.0, 1.0),  # on the equator, 1° square
        box(15.0, 78.0, 0.3, 0.1),  # Svalbard, high latitude
        box(-45.0, -70.0, 2.0, 1.0),  # Antarctic coast, south
        [(0.0, 89.0), (1.0, 89.0), (1.0, 90.0), (0.0, 90.0)],  # touching the pole
    ],
    ids=["amazon", "equator-1deg", "svalbard", "antarctic", "pole"],
)
def test_polygon_matches_geographiclib(ring) -> None:
    got = geodesic_area_ha(np.array([Polygon(ring)], dtype=object))[0]
    assert got == pytest.approx(ring_ha(ring), rel=1e-6)


def test_one_degree_at_the_equator_is_about_12309_km2() -> None:
    # A known figure (1° × 1° at the equator on WGS84 ≈ 12,308 km²), independent of GeographicLib.
    got = geodesic_area_ha(np.array([Polygon(box(0, 0, 1, 1))], dtype=object))[0]
    assert 1_230_000 < got < 1_232_000


@pytest.mark.parametrize("exterior_ccw", [True, False])
@pytest.mark.parametrize("hole_ccw", [True, False])
@pytest.mark.parametrize("lat", [0.0, 70.0])
def test_holes_are_subtracted_whatever_the_winding(exterior_ccw: bool, hole_ccw: bool, lat: float) -> None:
    exterior = box(20.0, lat, 0.5, 0.5)
    hole = box(20.1, lat + 0.1, 0.2, 0.2)
    polygon = Polygon(exterior if exterior_ccw else exterior[::-1], [hole if hole_ccw else hole[::-1]])
    expected = ring_ha(exterior) - ring_ha(hole)
    assert geodesic_area_ha(np.array([polygon], dtype=object))[0] == pytest.approx(expected, rel=1e-6)


def test_multipolygon_is_the_sum_of_its_parts_and_missing_is_nan() -> None:
    a, b = box(0, 0, 0.1, 0.1), box(5, 60, 0.2, 0.1)
    geoms = np.array([MultiPolygon([Polygon(a), Polygon(b)]), None, Polygon(), Polygon(b)], dtype=object)
    got = geodesic_area_ha(geoms)
    assert got[0] == pytest.approx(ring_ha(a) + ring_ha(b), rel=1e-6)
    assert np.isnan(got[1]) and np.isnan(got[2])
    assert got[3] == pytest.approx(ring_ha(b), rel=1e-6)
    assert len(geodesic_area_ha(np.array([], dtype=object))) == 0


def test_polygon_parts_explodes_multipolygons_and_keeps_plain_polygons() -> None:
    p = Polygon(box(0, 0, 1, 1))
    parts, index = polygon_parts(np.array([p, MultiPolygon([p, Polygon(box(3, 3, 1, 1))])], dtype=object))
    assert list(index) == [0, 1, 1]
    assert [g.geom_type for g in parts] == ["Polygon"] * 3
    parts, index = polygon_parts(np.array([p, p], dtype=object))
    assert list(index) == [0, 1] and parts[0].equals(p)


def star(lon: float, lat: float, span: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """An irregular 12-vertex ring about ``span`` degrees across (in both lon and lat)."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    radius = span / 2 * rng.uniform(0.5, 1.0, 12)
    return list(zip(lon + radius * np.cos(angles), lat + radius * np.sin(angles)))


def test_small_rings_match_geographiclib_everywhere() -> None:
    # Small rings take the vectorised authalic-sphere path; the bound is far below the 0.01 ha stored.
    rng = np.random.default_rng(3)
    rings = [
        star(rng.uniform(-179, 179), rng.uniform(-89.5, 89.5), rng.uniform(0.0005, SMALL_RING_DEGREES), rng)
        for _ in range(400)
    ]
    got = geodesic_area_ha(np.array([Polygon(r) for r in rings], dtype=object))
    expected = np.array([ring_ha(r) for r in rings])
    assert np.abs(got - expected).max() < 5e-5
    assert np.abs(got - expected).max() / expected.min() < 1e-3


@pytest.mark.parametrize("lat", [-3.0, 62.0])
def test_small_holes_and_multiparts_take_the_vector_path_too(lat: float) -> None:
    exterior = box(20.0, lat, 0.015, 0.01)
    hole = box(20.004, lat + 0.002, 0.004, 0.004)
    other = box(30.0, lat, 0.005, 0.005)
    polygon = Polygon(exterior, [hole[::-1]])
    geoms = np.array([polygon, MultiPolygon([polygon, Polygon(other)]), Polygon(hole)], dtype=object)
    got = geodesic_area_ha(geoms)
    assert got[0] == pytest.approx(ring_ha(exterior) - ring_ha(hole), abs=1e-5)
    assert got[1] == pytest.approx(ring_ha(exterior) - ring_ha(hole) + ring_ha(other), abs=1e-5)
    assert got[2] == pytest.approx(ring_ha(hole), abs=1e-5)


def test_small_ring_across_the_antimeridian() -> None:
    ring = [(179.995, -17.0), (-179.995, -17.0), (-179.995, -16.99), (179.995, -16.99)]
    got = geodesic_area_ha(np.array([Polygon(ring)], dtype=object))[0]
    assert got == pytest.approx(ring_ha(ring), rel=1e-6) and 100 < got < 2000


def test_many_rings_are_measured_in_several_passes(monkeypatch) -> None:
    import forestguard.area as area

    rng = np.random.default_rng(5)
    rings = [star(rng.uniform(-60, 60), rng.uniform(-60, 60), 0.01, rng) for _ in range(50)] + [box(0, 0, 1, 1)]
    geoms = np.array([Polygon(r) for r in rings], dtype=object)
    whole = geodesic_area_ha(geoms)
    monkeypatch.setattr(area, "COORDINATES_PER_PASS", 40)
    assert np.array_equal(geodesic_area_ha(geoms), whole)
    assert whole[-1] == pytest.approx(ring_ha(rings[-1]), rel=1e-9)
