"""The clip and its geodesic hectares (forestguard.areas.clip) against shapely + pyproj, zone by zone."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from forestguard.areas import hectares_inside, intersecting, overlapping_pairs, parts_inside

from .helpers import geodesic_ha


def test_each_zone_counts_its_part_inside_as_pyproj_measures_it(demo_small, cut_area):
    zones = np.asarray(demo_small.geometry.values, dtype=object)
    meets = intersecting(zones, cut_area)
    assert meets.sum() > 100
    ours = hectares_inside(zones[meets], cut_area)
    reference = np.array([geodesic_ha(shapely.intersection(z, cut_area)) for z in zones[meets]])
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)
    whole = np.array([geodesic_ha(z) for z in zones[meets]])
    cut = reference < whole - 0.01
    assert cut.sum() >= 30, "the area must cut zones, not only hold them whole"


def test_a_zone_wholly_inside_is_itself_and_a_disjoint_one_has_none():
    area = shapely.box(0, 0, 1, 1)
    inside, outside = shapely.box(0.2, 0.2, 0.3, 0.3), shapely.box(2, 2, 3, 3)
    parts = parts_inside(np.array([inside, outside], dtype=object), area)
    assert parts[0] is inside and parts[1] is None
    assert hectares_inside(np.array([outside], dtype=object), area)[0] == 0.0


def test_touching_the_edge_meets_the_area_with_no_hectares():
    """DE-9IM intersects, as PostGIS ST_Intersects: a shared edge or corner counts, with 0 ha inside."""
    area = shapely.box(0, 0, 1, 1)
    edge, corner = shapely.box(1, 0.2, 1.1, 0.3), shapely.box(1, 1, 1.1, 1.1)
    zones = np.array([edge, corner], dtype=object)
    assert intersecting(zones, area).all()
    assert list(hectares_inside(zones, area)) == [0.0, 0.0]


def test_overlay_leftovers_that_are_not_area_are_dropped():
    """A zone overlapping the area and touching it elsewhere gives polygon + line: only the polygon counts."""
    area = shapely.Polygon([(0, 0), (2, 0), (2, 2), (1, 2), (1, 1), (0, 1), (0, 0)])  # an L
    zone = shapely.box(0.5, 0.5, 1.5, 1.5)
    part = parts_inside(np.array([zone], dtype=object), area)[0]
    assert part.geom_type in ("Polygon", "MultiPolygon")
    assert hectares_inside(np.array([zone], dtype=object), area)[0] == pytest.approx(geodesic_ha(shapely.intersection(zone, area)), abs=1e-4)


def test_many_areas_at_once_find_every_pair():
    areas = [shapely.box(0, 0, 1, 1), shapely.box(0.5, 0, 1.5, 1), shapely.box(5, 5, 6, 6)]
    zones = np.array([shapely.box(0.6, 0.1, 0.7, 0.2), shapely.box(5.5, 5.5, 5.6, 5.6), shapely.box(9, 9, 9.1, 9.1)], dtype=object)
    zone_at, area_at = overlapping_pairs(zones, areas)
    assert list(zip(zone_at, area_at)) == [(0, 0), (0, 1), (1, 2)]
