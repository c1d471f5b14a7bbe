"""The clip and its geodesic hectares (forestguard.areas.clip) against shapely + pyproj, zone by zone."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
import shapely

from forestguard.areas import Area, hectares_inside, intersecting, overlapping_pairs, parts_inside
from forestguard.areas.overlay import PolygonIndex
from forestguard.stores.clipped import clipped_aggregate

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


def _zone_table(zones: np.ndarray) -> pa.Table:
    return pa.table({"confidence": pa.array([0.5] * len(zones), pa.float64()), "verified": pa.array([False] * len(zones)),
                     "geometry": pa.array(shapely.to_wkb(zones, byte_order=1, flavor="iso"), pa.binary())})


def test_many_areas_aggregate_every_pair_a_brute_force_finds():
    """Per-plot statistics (boxes sieved on a grid first) count exactly the pairs and hectares of testing every zone with every plot."""
    rng = np.random.default_rng(5)
    x, y = rng.uniform(-60, -40, 300), rng.uniform(-15, 0, 300)
    plots = list(shapely.box(x, y, x + rng.uniform(0.005, 0.2, 300), y + rng.uniform(0.005, 0.2, 300)))
    plots += [shapely.box(-50, -8, -45, -3), shapely.box(10, 10, 10.01, 10.01)]  # a large plot; one far away widens the grid
    plots += [shapely.box(-39.5, 0.5, -39.49, 0.51)]  # a small plot alone
    cx, cy = rng.uniform(-61, -39, 20_000), rng.uniform(-16, 1, 20_000)
    zones = list(shapely.box(cx, cy, cx + 0.02, cy + 0.02))
    first = shapely.bounds(plots[0])
    zones += [shapely.box(first[2], first[1], first[2] + 0.01, first[3]),  # shares the plot's edge: meets it with 0 ha
              shapely.box(first[2], first[3], first[2] + 0.01, first[3] + 0.01),  # shares a corner only
              shapely.box(-70, -20, -30, 5),  # much wider than the grid's cells: meets every plot but the far one
              shapely.box(-39.55, 0.45, -39.44, 0.56),  # a few cells wide, around the small plot: none of its corners is near a plot
              shapely.box(100, 50, 101, 51)]  # beyond the grid
    zones = np.array(zones, dtype=object)
    areas = [Area.of(f"P{i}", p) for i, p in enumerate(plots)]
    got = clipped_aggregate([_zone_table(zones)], areas, [], per_area=True)
    expected = {}
    for i, area in enumerate(areas):
        hit = zones[shapely.intersects(area.geometry, zones)]
        if len(hit):
            expected[i] = (len(hit), Decimal(repr(math.fsum(hectares_inside(hit, area.geometry)))))
    assert {int(r.area_index): (int(r.zones), r.area_ha) for r in got.itertuples()} == expected
    assert expected[0][0] >= 3 and len(expected) == len(areas) - 1


def test_the_box_prefilter_keeps_exactly_the_boxes_that_meet_a_polygons_box():
    """PolygonIndex.may_meet (a grid, then the tree) against every pair tested by hand, edges touching included."""
    rng = np.random.default_rng(7)
    centres = rng.uniform([-60, -20], [-40, 0], (300, 2))
    polygons = shapely.buffer(shapely.points(centres), rng.uniform(0.01, 0.8, 300), quad_segs=3)
    index = PolygonIndex.of(polygons)
    lo = rng.uniform([-62, -22], [-38, 2], (20_000, 2))
    size = np.where(rng.random((20_000, 1)) < 0.98, rng.uniform(0, 0.02, (20_000, 2)), rng.uniform(0, 3, (20_000, 2)))  # a few large ones
    boxes = np.column_stack([lo, lo + size])
    b = index.bounds
    b0 = b[3]  # one box touching a polygon's box at its corner, from below and left
    boxes[:2] = [[b0[0] - 0.01, b0[1] - 0.01, b0[0], b0[1]], [b0[2], b0[3], b0[2] + 0.005, b0[3] + 0.005]]
    expected = ((boxes[:, None, 0] <= b[None, :, 2]) & (boxes[:, None, 2] >= b[None, :, 0])
                & (boxes[:, None, 1] <= b[None, :, 3]) & (boxes[:, None, 3] >= b[None, :, 1])).any(axis=1)
    got = index.may_meet(boxes)
    assert expected[:2].all() and 0 < expected.sum() < len(boxes)
    np.testing.assert_array_equal(got, expected)
