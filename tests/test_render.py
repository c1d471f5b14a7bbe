"""Render: our hybrid aggregate against datashader on GeoPandas, exact totals, shared layers, images."""

from __future__ import annotations

import dataclasses

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
from forestguard.render.layer import ROW_BYTES
from forestguard.render.raster import POLYGON_MIN_PIXELS, polygons_as_points
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
    with stores.open(store_url, read_only=True) as store:  # open while the layer reads polygons from it
        yield build_layer(store)


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
    return np.nan_to_num(np.asarray(agg.values, dtype=float)).sum(axis=-1) > 0  # (y, x, classification)


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
    assert agg.dims == peer_agg.dims
    np.testing.assert_allclose(agg.x, peer_agg.x, rtol=1e-12)
    np.testing.assert_allclose(agg.y, peer_agg.y, rtol=1e-12)
    assert sorted(map(str, agg.classification.values)) == sorted(CATEGORIES)
    assert agg.attrs["points"] == len(layer) and agg.attrs["polygons"] == 0  # at world scale every zone is under a pixel
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
    pixel_area = (2 * span / 300) ** 2
    assert agg.attrs["polygons"] >= 1 and float(big["mercator_area"]) > pixel_area * POLYGON_MIN_PIXELS
    ours, peer = non_empty(agg), non_empty(peer_aggregate(peer_frame, x_range, y_range, 300, 300))
    assert peer.sum() > 100
    assert abs(int(ours.sum()) - int(peer.sum())) / peer.sum() < 0.05
    # The zone is wholly inside the view: its hectares are all there, spread over its pixels.
    inside = peer_frame[peer_frame.geometry.within(shapely.box(x_range[0], y_range[0], x_range[1], y_range[1]))]
    category = str(big["classification"])
    expected = inside[inside["classification"] == category]["area_ha"].sum()
    assert totals(agg)[category] == pytest.approx(expected, rel=0.05)


def test_polygons_are_read_for_the_view_only_and_kept(store_url):
    """A zoomed view reads the polygons it draws from the store, once: the layer itself holds no geometry."""
    with stores.open(store_url, read_only=True) as store:
        layer = build_layer(store)
        assert set(layer.base.columns).isdisjoint({"geometry", "geom_row"}) and layer.nbytes <= len(layer) * ROW_BYTES
        big = layer.zones.iloc[-3:]
        x_range = (float(big["x"].min() - big["size"].max()), float(big["x"].max() + big["size"].max()))
        y_range = (float(big["y"].min() - big["size"].max()), float(big["y"].max() + big["size"].max()))
        first = aggregate(layer, x_range, y_range, 400, 400)
        read = layer.geometry.reads
        assert 0 < read == first.attrs["polygons"] < len(layer) / 10
        again = aggregate(layer, x_range, y_range, 400, 400)
        assert layer.geometry.reads == read  # kept: nothing read again
        np.testing.assert_array_equal(first.values, again.values)


def test_a_geometry_budget_of_nothing_keeps_nothing_and_still_draws(store_url):
    from forestguard.render import GeometrySource

    with stores.open(store_url, read_only=True) as store:
        layer = build_layer(store)
        none_kept = dataclasses.replace(layer, geometry=GeometrySource(store, budget_bytes=0))
        big = layer.zones.iloc[-1]
        span = float(big["size"]) * 3
        x_range, y_range = (big["x"] - span, big["x"] + span), (big["y"] - span, big["y"] + span)
        for _ in range(2):
            agg = aggregate(none_kept, x_range, y_range, 400, 400)
        assert agg.attrs["polygons"] >= 1 and none_kept.geometry.nbytes == 0
        assert none_kept.geometry.reads == 2 * agg.attrs["polygons"]  # nothing kept, so read again
        np.testing.assert_allclose(agg.values, aggregate(layer, x_range, y_range, 400, 400).values)


def test_too_many_polygons_in_a_view_are_drawn_as_points_with_totals_kept(layer, monkeypatch):
    from forestguard.render import raster

    x_range, y_range = view_ranges(layer.select(ZoneFilter(countries=("Brazil",))), None, 800, 800)
    monkeypatch.setattr(raster, "POLYGON_MIN_PIXELS", 0.2)  # many polygons in a small test's view
    full = aggregate(layer, x_range, y_range, 800, 800)
    assert full.attrs["polygons"] > 5
    monkeypatch.setattr(raster, "MAX_VIEW_POLYGONS", 3)
    capped = aggregate(layer, x_range, y_range, 800, 800)
    assert capped.attrs["polygons"] == 3 and capped.attrs["as_points"] == full.attrs["polygons"] - 3
    # Every zone in view still counts: the hectares are those of the zones whose centroid is in view.
    z = layer.zones
    in_view = z[(z.x >= x_range[0]) & (z.x < x_range[1]) & (z.y >= y_range[0]) & (z.y < y_range[1])]
    expected = in_view.groupby("classification", observed=False)["area_ha"].sum()
    for category, total in totals(capped).items():
        assert total == pytest.approx(expected[category], rel=0.02)


def test_points_are_aggregated_a_bounded_chunk_at_a_time(layer, monkeypatch):
    from forestguard.render import layer as layer_module

    x_range, y_range = view_ranges(layer, None, 300, 200)
    whole = aggregate(layer, x_range, y_range, 300, 200)
    monkeypatch.setattr(layer_module, "CHUNK_ROWS", 97)
    seen = []
    original = layer_module.ZoneLayer.frame

    def frame(self, columns=None, start=0, stop=None):
        part = original(self, columns, start, stop)
        seen.append(len(part))
        return part

    monkeypatch.setattr(layer_module.ZoneLayer, "frame", frame)
    chunked = aggregate(layer.select(ZoneFilter(year_from=2000)), x_range, y_range, 300, 200)
    assert max(seen) <= 97 and sum(seen) >= len(layer)
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-9, atol=1e-9)


def test_a_store_over_the_layer_budget_is_refused_with_the_reason(store_url):
    from forestguard.render import LayerTooLarge

    with stores.open(store_url, read_only=True) as store:
        with pytest.raises(LayerTooLarge) as caught:
            build_layer(store, budget_bytes=10_000)
    message = str(caught.value)
    assert "\n" not in message and "2,000 zones" in message and "FORESTGUARD_MEMORY_MB" in message


def test_geometry_measures_agree_with_shapely():
    square_with_hole = shapely.Polygon([(10, 0), (14, 0), (14, 4), (10, 4)], holes=[[(11, 1), (11, 2), (12, 2), (12, 1)]])
    clockwise = shapely.Polygon([(-60, -10), (-60, -9), (-59, -9.5)])
    pair = shapely.MultiPolygon([shapely.box(100, 1, 101, 2), shapely.box(102, 1, 104, 3)])
    geoms = np.array([square_with_hole, clockwise, pair])
    for wkb in (shapely.to_wkb(geoms), pa.chunked_array([pa.array(shapely.to_wkb(geoms, byte_order=0), type=pa.binary())])):
        measures = ZoneGeometry.from_wkb(wkb).measures()
        projected = shapely.transform(geoms, lambda c: np.column_stack(to_mercator(c[:, 0], c[:, 1])))
        np.testing.assert_allclose(measures["mercator_area"], shapely.area(projected), rtol=1e-9)
        np.testing.assert_allclose(measures["x"], shapely.get_x(shapely.centroid(projected)), rtol=1e-9)
        np.testing.assert_allclose(measures["y"], shapely.get_y(shapely.centroid(projected)), rtol=1e-9)
        np.testing.assert_allclose(np.column_stack([measures[k] for k in ("xmin", "ymin", "xmax", "ymax")]), shapely.bounds(projected))
    with pytest.raises(ValueError, match="2-D polygons or multipolygons"):
        ZoneGeometry.from_wkb(shapely.to_wkb(np.array([shapely.LineString([(0, 0), (1, 1)])])))


def test_select_in_memory_equals_the_store_filter(store_url, layer):
    where = ZoneFilter(countries=("Brazil", "Peru"), year_from=2018, year_to=2022, classifications=(Classification.ILLEGAL,),
                       min_confidence=0.7, bbox=(-75.0, -15.0, -50.0, 0.0))
    with stores.open(store_url, read_only=True) as store:
        expected = store.zones_arrow(where, columns=["id"]).column("id").to_pylist()
        confidence_edge = store.zones_arrow(ZoneFilter(min_confidence=0.9), columns=["id"]).column("id").to_pylist()
    selected = layer.select(where)
    assert len(expected) > 30
    assert sorted(selected.column("id").tolist()) == sorted(expected)
    assert sorted(layer.select(ZoneFilter(min_confidence=0.9)).column("id").tolist()) == sorted(confidence_edge)
    assert selected.key != layer.key and selected.base is layer.base and selected.rows.dtype == np.int32
    # A selection of a selection is the selection of both filters.
    twice = layer.select(ZoneFilter(countries=("Brazil", "Peru"))).select(where)
    np.testing.assert_array_equal(twice.rows, selected.rows)


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
    assert again.dims == ("y", "x", "classification") and cache.counters()["hits_by_kind"]["agg"] == 1
    # Drawn (the miss), it says how; from the cache it cannot, and the page counts the points itself.
    drawn = aggregate(layer, x_range, y_range, 200, 100).attrs
    assert {k: first.attrs[k] for k in ("points", "polygons", "as_points")} == {k: drawn[k] for k in ("points", "polygons", "as_points")}
    assert "as_points" not in again.attrs and polygons_as_points(layer, x_range, y_range, 200, 100) == drawn["as_points"]


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


def test_shading_colours_by_class_share_and_opacity_by_amount():
    """datashader's categorical shading as the map uses it: a pure class has its colour, more hectares are more opaque."""
    from forestguard.render import empty_aggregate, shade_image

    agg = empty_aggregate((0.0, 4.0), (0.0, 1.0), 4, 1)
    agg.data[0, 0, CATEGORIES.index("legal")] = 1.0
    agg.data[0, 1, CATEGORIES.index("illegal")] = 50.0
    agg.data[0, 2, CATEGORIES.index("legal")] = agg.data[0, 2, CATEGORIES.index("illegal")] = 10.0
    rgba = shade_image(agg, spread=0).view(np.uint8).reshape(1, 4, 4)[0]
    colour = {c: np.array([int(COLOR_KEY[c][i : i + 2], 16) for i in (1, 3, 5)]) for c in CATEGORIES}
    assert (np.abs(rgba[0, :3].astype(int) - colour["legal"]) <= 1).all()
    assert (np.abs(rgba[1, :3].astype(int) - colour["illegal"]) <= 1).all()
    assert (np.abs(rgba[2, :3].astype(int) - (colour["legal"] + colour["illegal"]) / 2) <= 1).all()
    assert rgba[3, 3] == 0 and 0 < rgba[0, 3] < rgba[2, 3] < rgba[1, 3]


def test_the_same_zones_have_the_same_layer_key_however_the_layer_was_made(store_url, layer):
    """A report's layer of Brazil and the dashboard's whole layer with Brazil selected share their cached maps."""
    brazil = ZoneFilter(countries=("Brazil",), year_from=2019)
    with stores.open(store_url, read_only=True) as store:
        own = build_layer(store, brazil)
    selected = layer.select(ZoneFilter(countries=("Brazil",))).select(ZoneFilter(year_from=2019))
    assert own.key == selected.key == layer.select(brazil).key and len(own) == len(selected)
    assert layer.select(ZoneFilter(countries=("Peru",))).key != selected.key


def test_the_map_is_geoviews_elements_with_their_crs_and_tiles_only_when_configured(layer, monkeypatch):
    """A researcher overlays their own layers: the elements carry Web Mercator; no tile layer unless one is configured."""
    import cartopy.crs as ccrs
    import geoviews as gv

    element = hv_map(layer, width=300, height=200)
    assert not any(isinstance(e, gv.WMTS) for e in element)
    assert all(isinstance(e.crs, type(ccrs.GOOGLE_MERCATOR)) for e in element if isinstance(e, (gv.RGB, gv.Path)))
    monkeypatch.setenv("FORESTGUARD_TILE_URL", "https://tiles.example.org/{Z}/{X}/{Y}.png")
    tiles = [e for e in hv_map(layer, width=300, height=200) if isinstance(e, gv.WMTS)]
    assert len(tiles) == 1 and tiles[0].data == "https://tiles.example.org/{Z}/{X}/{Y}.png"
