"""Render: our hybrid aggregate against datashader on GeoPandas, exact totals, shared layers, images."""

from __future__ import annotations

import datashader as ds
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from forestguard import stores
from forestguard.render import (
    CATEGORIES,
    COLOR_KEY,
    ZoneGeometry,
    aggregate,
    build_layer,
    cached_aggregate,
    hv_map,
    map_image,
    mercator_box,
    to_mercator,
    totals,
    view_ranges,
    zone_layer,
)
from forestguard.render.raster import POLYGON_MIN_PIXELS, pixel_size
from forestguard.schema import Classification
from forestguard.stores.base import ZoneFilter

pytestmark = pytest.mark.duckdb


@pytest.fixture(scope="module")
def store_url(tmp_path_factory, demo_small) -> str:
    url = str(tmp_path_factory.mktemp("render") / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
    return url


@pytest.fixture(scope="module")
def layer(store_url):
    with stores.open(store_url, read_only=True) as store:
        return build_layer(store)


@pytest.fixture(scope="module")
def peer_frame(demo_small) -> gpd.GeoDataFrame:
    """The same zones the plain way: GeoPandas, projected with pyproj, classes as a categorical."""
    frame = demo_small.to_crs(3857)
    frame["classification"] = pd.Categorical(classes_of(frame), categories=CATEGORIES)
    frame["area_ha"] = frame["area_ha"].astype(float)
    return frame


def classes_of(frame: pd.DataFrame) -> pd.Series:
    """Classification as English names, "none" when missing (whatever spelling the frame holds)."""
    return frame["classification"].map(lambda v: Classification.parse(v).value if isinstance(v, str) else "none")


def peer_aggregate(frame: gpd.GeoDataFrame, x_range, y_range, width, height):
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)
    return canvas.polygons(frame, geometry="geometry", agg=ds.by("classification", ds.count()))


def non_empty(agg) -> np.ndarray:
    return np.nan_to_num(np.asarray(agg.values, dtype=float)).sum(axis=-1) > 0  # ours or datashader's (y, x, classification)


def test_full_extent_totals_equal_the_zones_sums(layer, demo_small):
    x_range, y_range = view_ranges(layer, None, 600, 400)
    hectares = totals(aggregate(layer, x_range, y_range, 600, 400))
    counts = totals(aggregate(layer, x_range, y_range, 600, 400, measure="zones"))
    classes = classes_of(demo_small)
    expected_ha = demo_small["area_ha"].astype(float).groupby(classes).sum()
    expected_n = classes.value_counts()
    for category in CATEGORIES:
        assert hectares[category] == pytest.approx(expected_ha.get(category, 0.0), rel=1e-9)
        assert counts[category] == pytest.approx(expected_n.get(category, 0), abs=1e-6)


def test_full_extent_matches_datashader_on_geopandas(layer, peer_frame):
    x_range, y_range = view_ranges(layer, None, 600, 400)
    agg = aggregate(layer, x_range, y_range, 600, 400)
    peer_agg = peer_aggregate(peer_frame, x_range, y_range, 600, 400)
    # Same grid as the Canvas: pixel centres, dims and categories line up for xarray/datashader users.
    as_xarray = agg.to_xarray()
    assert as_xarray.dims == peer_agg.dims
    np.testing.assert_allclose(as_xarray.x, peer_agg.x, rtol=1e-12)
    np.testing.assert_allclose(as_xarray.y, peer_agg.y, rtol=1e-12)
    assert sorted(map(str, as_xarray.classification.values)) == sorted(CATEGORIES)
    ours, peer = non_empty(agg), non_empty(peer_agg)
    assert peer.sum() > 1000
    assert abs(int(ours.sum()) - int(peer.sum())) / peer.sum() < 0.05
    assert (ours & peer).sum() / peer.sum() > 0.9


def test_zoomed_view_rasterizes_big_zones_as_polygons_like_the_peer(layer, peer_frame):
    """Around the biggest zone, zoomed so it spans many pixels: drawn as a polygon, same pixels as datashader's."""
    big = layer.zones.iloc[-1]
    span = float(big["size"]) * 2
    x_range, y_range = (big["x"] - span, big["x"] + span), (big["y"] - span, big["y"] + span)
    agg = aggregate(layer, x_range, y_range, 300, 300)
    assert agg.polygons >= 1 and float(big["size"]) > pixel_size(x_range, y_range, 300, 300) * POLYGON_MIN_PIXELS
    ours, peer = non_empty(agg), non_empty(peer_aggregate(peer_frame, x_range, y_range, 300, 300))
    assert peer.sum() > 100
    assert abs(int(ours.sum()) - int(peer.sum())) / peer.sum() < 0.05
    # The zone is wholly inside the view: its hectares are all there, spread over its pixels.
    category = str(big["classification"])
    inside = layer.zones[layer.in_box((x_range[0], y_range[0], x_range[1], y_range[1]))]
    fully = inside[(inside.xmin >= x_range[0]) & (inside.xmax <= x_range[1]) & (inside.ymin >= y_range[0]) & (inside.ymax <= y_range[1])]
    expected = fully[fully.classification == category]["area_ha"].sum()
    assert totals(agg)[category] == pytest.approx(expected, rel=0.05)


def test_geometry_measures_agree_with_shapely():
    square_with_hole = shapely.Polygon([(10, 0), (14, 0), (14, 4), (10, 4)], holes=[[(11, 1), (11, 2), (12, 2), (12, 1)]])
    clockwise = shapely.Polygon([(-60, -10), (-60, -9), (-59, -9.5)])
    pair = shapely.MultiPolygon([shapely.box(100, 1, 101, 2), shapely.box(102, 1, 104, 3)])
    geometry = ZoneGeometry.from_wkb(shapely.to_wkb(np.array([square_with_hole, clockwise, pair])))
    measures = geometry.measures()
    projected = shapely.transform(np.array([square_with_hole, clockwise, pair]), lambda c: np.column_stack(to_mercator(c[:, 0], c[:, 1])))
    np.testing.assert_allclose(measures["mercator_area"], shapely.area(projected), rtol=1e-9)
    np.testing.assert_allclose(measures["x"], shapely.get_x(shapely.centroid(projected)), rtol=1e-9)
    np.testing.assert_allclose(measures["y"], shapely.get_y(shapely.centroid(projected)), rtol=1e-9)
    np.testing.assert_allclose(np.column_stack([measures[k] for k in ("xmin", "ymin", "xmax", "ymax")]), shapely.bounds(projected))
    back = geometry.shapely(np.array([2, 0]), lonlat=True)
    assert shapely.equals_exact(back[0], pair, tolerance=1e-9) and shapely.area(back[1]) == pytest.approx(square_with_hole.area)


def test_geometry_from_wkb_matches_shapely_ragged_arrays():
    # Any mix of polygons, holes and multipolygons, in either byte order, as Arrow or as bytes.
    rng = np.random.default_rng(3)
    geoms = []
    for i in range(300):
        x, y = rng.uniform(-170, 160), rng.uniform(-60, 60)
        parts = [shapely.Polygon(shapely.box(x + 3 * k, y, x + 3 * k + 2, y + 2).exterior.coords,
                                 holes=[shapely.box(x + 3 * k + 0.5, y + 0.5, x + 3 * k + 1, y + 1).exterior.coords] * (i % 3 == 0))
                 for k in range(1 + i % 4)]
        geoms.append(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))
    geoms = np.array(geoms, dtype=object)
    expected = ZoneGeometry.from_wkb(shapely.to_wkb(geoms))
    big_endian = ZoneGeometry.from_wkb(pa.chunked_array([pa.array(shapely.to_wkb(geoms, byte_order=0), type=pa.binary())]))
    for got in (expected, big_endian):
        np.testing.assert_array_equal(got.part_offsets, np.concatenate([[0], np.cumsum(shapely.get_num_geometries(geoms))]))
        round_trip = got.shapely(np.arange(len(geoms)), lonlat=True)
        originals = shapely.multipolygons(shapely.get_parts(geoms), indices=np.repeat(np.arange(len(geoms)), shapely.get_num_geometries(geoms)))
        assert shapely.equals_exact(shapely.normalize(round_trip), shapely.normalize(originals), tolerance=1e-9).all()
    with pytest.raises(ValueError, match="2-D polygons or multipolygons"):
        ZoneGeometry.from_wkb(shapely.to_wkb(np.array([shapely.LineString([(0, 0), (1, 1)])])))


def test_geometry_is_oriented_for_the_winding_fill():
    # A clockwise shell with a counter-clockwise hole: the winding fill counts on shells CCW, holes CW.
    shell, hole = [(10, 0), (10, 4), (14, 4), (14, 0)], [(11, 1), (12, 1), (12, 2), (11, 2)]
    geometry = ZoneGeometry.from_wkb(shapely.to_wkb(np.array([shapely.Polygon(shell, holes=[hole])])))
    rings = shapely.get_rings(shapely.from_ragged_array(shapely.GeometryType.POLYGON, geometry.coords, (geometry.ring_offsets, geometry.polygon_offsets)))
    assert [shapely.is_ccw(r) for r in rings] == [True, False]


def test_select_in_memory_equals_the_store_filter(store_url, layer):
    where = ZoneFilter(countries=("Brazil", "Peru"), year_from=2018, year_to=2022, classifications=(Classification.ILLEGAL,),
                       min_confidence=0.7, bbox=(-75.0, -15.0, -50.0, 0.0))
    with stores.open(store_url, read_only=True) as store:
        expected = store.zones_arrow(where, columns=["id"]).column("id").to_pylist()
    selected = layer.select(where)
    assert len(expected) > 50
    assert sorted(selected.zones["id"].tolist()) == sorted(expected)
    assert selected.key != layer.key and selected.geometry is layer.geometry


def test_zone_layer_is_shared_until_the_data_version_moves(demo_duckdb, demo_small):
    with stores.open(demo_duckdb) as store:
        first = zone_layer(store)
        assert zone_layer(store) is first
        store.insert(demo_small.iloc[:10])
        second = zone_layer(store)
    assert second is not first and len(second) == len(first) + 10 and second.data_version == first.data_version + 1


def test_cached_aggregate_is_served_from_the_cache(layer):
    from forestguard.cache import MemoryCache
    from forestguard.cache.keys import KeySpace

    cache = MemoryCache(KeySpace("test-render"))
    x_range, y_range = view_ranges(layer, None, 200, 100)
    first = cached_aggregate(layer, x_range, y_range, 200, 100, cache=cache)
    again = cached_aggregate(layer, x_range, y_range, 200, 100, cache=cache)
    np.testing.assert_array_equal(first.values, again.values)
    assert cache.counters()["hits_by_kind"]["agg"] == 1


def test_map_image_shows_zones_in_their_colours(layer):
    image = map_image(layer, bounds=(-75.0, -35.0, -33.0, 6.0), width=480, height=360)
    assert image.size == (480, 360)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    for category in ("legal", "illegal"):
        colour = np.array([int(COLOR_KEY[category][i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - colour).sum(axis=1) < 60).sum() > 20, category
    assert (pixels == 255).all(axis=1).sum() > 1000  # ocean stays white: outlines and zones do not fill it


def test_map_of_an_empty_layer_is_a_plain_world(layer):
    empty = layer.select(ZoneFilter(countries=("Nowhere",)))
    image = map_image(empty, width=300, height=200, legend=False)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(empty) == 0 and len(np.unique(pixels, axis=0)) < 40


def test_hv_map_exports_to_static_html(layer, tmp_path):
    import holoviews as hv

    element = hv_map(layer, width=400, height=300, bounds=(-75.0, -35.0, -33.0, 6.0))
    path = tmp_path / "map.html"
    hv.save(element, path, backend="bokeh", resources="inline")
    text = path.read_text()
    assert "Deforestation zones" in text and "Illegal" in text
    rgb = next(el for el in element if isinstance(el, hv.RGB))
    assert rgb.dimension_values("R", flat=False).shape == (300, 400)
    x0, y0, x1, y1 = mercator_box((-75.0, -35.0, -33.0, 6.0))
    assert rgb.bounds.lbrt()[0] <= x0 and rgb.bounds.lbrt()[2] >= x1


def test_polygon_fill_is_pixel_for_pixel_datashaders_polygons():
    """The numpy scanline fill against datashader's Canvas.polygons: concave, holed, multipart, overlapping."""
    import datashader as ds
    import spatialpandas as sp

    from forestguard.render.raster import polygon_fill

    rng = np.random.default_rng(0)
    zones = []
    while len(zones) < 200:
        cx, cy = rng.uniform(0, 100, 2)
        n = int(rng.integers(3, 15))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(1, 12) * rng.uniform(0.3, 1, n)
        zone = shapely.Polygon(np.c_[cx + radius * np.cos(angles), cy + radius * np.sin(angles)])
        if not zone.is_valid:
            continue
        if len(zones) % 4 == 0:
            zone = zone.difference(shapely.Point(cx, cy).buffer(radius.min() * 0.4))  # a hole
        if len(zones) % 7 == 0:
            zone = shapely.union(zone, shapely.box(cx + 15, cy, cx + 18.3, cy + 4.1))  # two parts
        if zone.is_valid and not zone.is_empty:
            zones.append(shapely.orient_polygons(zone))
    geoms = np.array(zones, dtype=object)
    weights = rng.uniform(0.5, 2.0, len(geoms))
    width, height, x_range, y_range = 400, 300, (-5.0, 110.0), (0.0, 105.0)
    frame = sp.GeoDataFrame(gpd.GeoDataFrame({"w": weights}, geometry=geoms))
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)
    expected = canvas.polygons(frame, geometry="geometry", agg=ds.sum("w")).fillna(0.0).values

    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, point_of = shapely.get_coordinates(rings, return_index=True)
    edge = point_of[1:] == point_of[:-1]
    got = polygon_fill(coords[:-1][edge], coords[1:][edge], part_of[ring_of[point_of[1:][edge]]], weights,
                       np.zeros(len(geoms), dtype=np.int64), x_range, y_range, width, height, 1)[:, :, 0]
    assert (expected > 0).sum() > 50_000
    # Equal but for a pixel centre that falls (to the last bit) on an edge, which either rule may take.
    assert ((got > 0) != (expected > 0)).sum() <= 5
    assert (~np.isclose(got, expected, rtol=1e-9, atol=0)).sum() <= 5
    assert got.sum() == pytest.approx(expected.sum(), rel=1e-4)


@pytest.mark.parametrize("max_px", [1, 2, 3])
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.9])
def test_dynspread_is_datashaders_bit_for_bit(max_px: int, threshold: float):
    import datashader.transfer_functions as tf

    from forestguard.render.spread import dynspread

    rng = np.random.default_rng(max_px * 10 + int(threshold * 10))
    for _ in range(15):
        height, width = rng.integers(20, 120, 2)
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        n = int(rng.integers(1, height * width // int(rng.integers(2, 40))))  # sparse to crowded
        ys, xs = rng.integers(0, height, n), rng.integers(0, width, n)
        rgba[ys, xs, :3] = rng.integers(0, 256, (n, 3))
        rgba[ys, xs, 3] = rng.integers(1, 256, n)  # translucent too: overlaps go through 'over'
        packed = rgba.view(np.uint32)[..., 0].copy()
        image = tf.Image(packed.copy(), coords={"y": np.arange(height), "x": np.arange(width)}, dims=["y", "x"])
        expected = tf.dynspread(image, threshold=threshold, max_px=max_px).data
        np.testing.assert_array_equal(dynspread(packed, threshold=threshold, max_px=max_px), expected)


def test_shade_image_is_plain_eq_hist_shading():
    """The vectorised shading against its plain statement: colour by class share, opacity by rank (ties share it)."""
    from forestguard.render import COLOR_KEY, shade_image
    from forestguard.render.raster import Aggregate

    rng = np.random.default_rng(7)
    for _ in range(5):
        values = rng.choice([0.0, 0.5, 1.0, 2.5, 40.0], size=(37, 53, 3), p=[0.6, 0.1, 0.1, 0.1, 0.1])
        values[rng.random((37, 53)) < 0.05] = rng.random(3) * 1e6
        agg = Aggregate(values, (0.0, 53.0), (0.0, 37.0))
        total = values.sum(axis=-1)
        filled = total > 0
        colours = np.array([[int(COLOR_KEY[c][i : i + 2], 16) for i in (1, 3, 5)] for c in agg.categories], dtype=float)
        expected = np.zeros((37, 53, 4), dtype=np.uint8)
        expected[filled, :3] = np.rint(values[filled] @ colours / total[filled][:, None]).astype(np.uint8)
        ranks = np.array([(total[filled] <= v).sum() for v in total[filled]]) / filled.sum()
        expected[filled, 3] = np.rint(90 + 165 * ranks).astype(np.uint8)
        got = shade_image(agg, spread=0)
        assert got.dtype == np.uint32 and got.shape == (37, 53)
        np.testing.assert_array_equal(got.view(np.uint8).reshape(37, 53, 4), expected)
