"""The dashboard's pieces without a browser: filters → ZoneFilter, click info, tables, downloads, session state."""

from __future__ import annotations

import html
import io
import json

import geopandas as gpd
import numpy as np
import pytest

from forestguard import stores
from forestguard.cache import MemoryCache
from forestguard.cache.keys import KeySpace
from forestguard.dashboard import ZonesDashboard, host
from forestguard.dashboard.mapview import click_info, top_regions
from forestguard.dashboard.parts import escaped_options
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

pytestmark = pytest.mark.duckdb


@pytest.fixture
def dashboard(demo_duckdb):
    store = stores.open(demo_duckdb, read_only=True)
    yield ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-dashboard")))
    store.close()


def test_filters_become_the_zone_filter_of_the_cli(dashboard):
    first, last = dashboard.param.years.bounds
    dashboard.param.update(countries=["Brazil"], years=(first + 1, last), classification="illegal", verified_only=True, min_confidence=0.5)
    assert dashboard.where == ZoneFilter(countries=("Brazil",), year_from=first + 1, classifications=(Classification.ILLEGAL,),
                                         verified_only=True, min_confidence=0.5)
    assert len(dashboard.selection()) == dashboard._store.count(dashboard.where) > 0


def test_downloads_follow_the_filters_and_the_limit(dashboard, monkeypatch):
    dashboard.countries = ["Peru"]
    expected = statistics(dashboard._store, dashboard.where, ("country", "year", "classification")).to_csv()
    assert dashboard._stats_csv().getvalue() == expected
    zones = json.loads(dashboard._zones_file("geojson").getvalue())
    assert len(zones["features"]) == dashboard._store.count(dashboard.where) and {f["properties"]["country"] for f in zones["features"]} == {"Peru"}
    parquet = gpd.read_parquet(io.BytesIO(dashboard._zones_file("parquet").getvalue()))
    assert len(parquet) == len(zones["features"])
    monkeypatch.setattr(host, "_host", host.Host(store=lambda: dashboard._store, download_limit=5))
    with pytest.raises(ValueError, match="limited to 5"):
        dashboard._zones_file("geojson")
    panel = dashboard.downloads()
    assert "narrow the filters" in panel[-1].object and panel[1].disabled and panel[2].disabled


def test_click_info_counts_what_is_under_the_cursor(dashboard):
    layer = dashboard.selection()
    zone = layer.zones.iloc[len(layer) // 2]
    wide = click_info(layer, zone["x"], zone["y"], pixel=5_000.0)
    assert wide.total_zones >= 1 and wide.detail is None
    close = click_info(layer, zone["x"], zone["y"], pixel=10.0)
    assert close.detail is not None and zone["id"] in close.detail["id"].tolist()
    assert sum(close.hectares.values()) == pytest.approx(close.detail["area_ha"].sum())
    assert click_info(layer, 0.0, -1.0e7, pixel=10.0).total_zones == 0  # the Southern Ocean


def test_top_regions_sum_like_the_zones(dashboard):
    table = top_regions(dashboard.selection(), n=3)
    zones = dashboard.selection().zones
    first = table.iloc[0]
    subset = zones[(zones["country"] == first["country"]) & (zones["region"] == first["region"])]
    assert first["zones"] == len(subset) and first["hectares"] == pytest.approx(subset["area_ha"].sum(), abs=0.01)
    assert list(table["hectares"]) == sorted(table["hectares"], reverse=True)


def test_choice_labels_are_escaped_values_are_not():
    options = escaped_options(["Brazil", "<img src=x onerror=alert(2)>"])
    assert options == {"Brazil": "Brazil", html.escape("<img src=x onerror=alert(2)>", quote=False): "<img src=x onerror=alert(2)>"}


def test_session_state_is_kept_for_a_signed_in_user(dashboard):
    dashboard._user = "ana"
    dashboard.param.update(countries=["Bolivia"], classification="legal")
    saved = dashboard._cache.session_get("ana")
    assert saved["countries"] == ["Bolivia"] and saved["classification"] == "legal"
    fresh = ZonesDashboard(store=dashboard._store, cache=dashboard._cache)
    fresh._apply(saved)
    assert fresh.where == dashboard.where


def test_every_session_shows_the_shared_image_array_not_a_copy(dashboard):
    """A session's map holds the process's image of a view (read-only), as Bokeh's image_rgba takes it."""
    import numpy as np

    from forestguard.dashboard import mapview
    from forestguard.render import cached_aggregate, shade_image

    other = ZonesDashboard(store=dashboard._store, cache=dashboard._cache)
    dashboard.map_panel(), other.map_panel()
    first, second = (d._map.image.data["image"][0] for d in (dashboard, other))
    assert first is second and not first.flags.writeable  # one array for both sessions
    x_range, y_range, width, height = dashboard._view
    whole = shade_image(cached_aggregate(dashboard.selection(), x_range, y_range, width, height))
    expected, bounds = mapview.drawn_part(np.ascontiguousarray(whole), (x_range[0], y_range[0], x_range[1], y_range[1]))
    np.testing.assert_array_equal(first, expected)  # the shaded view, bottom row first, cut to its drawn part
    data = dashboard._map.image.data
    assert (data["x"][0], data["y"][0], data["x"][0] + data["dw"][0], data["y"][0] + data["dh"][0]) == pytest.approx(bounds)


def test_a_view_image_is_cut_to_its_drawn_pixels():
    """Transparent margins are not sent; what is left sits where it was in the view."""
    import numpy as np

    from forestguard.dashboard.mapview import drawn_part

    packed = np.zeros((10, 20), dtype=np.uint32)  # bottom row first
    packed[3, 5] = packed[6, 12] = 0xFF0000FF  # opaque red
    packed[8, 1] = 0x000000FF  # red but fully transparent: not drawn
    part, bounds = drawn_part(packed, (0.0, 100.0, 200.0, 200.0))  # 10 units a pixel both ways
    np.testing.assert_array_equal(part, packed[3:7, 5:13])
    assert bounds == (50.0, 130.0, 130.0, 170.0) and part.flags.c_contiguous
    part, bounds = drawn_part(np.zeros((4, 4), dtype=np.uint32), (0.0, 0.0, 4.0, 4.0))
    assert part.shape == (1, 1) and not part.any() and bounds == (0.0, 0.0, 1.0, 1.0)


def test_bars_regions_and_downloads_follow_the_filters_in_place(dashboard):
    bars, regions, downloads = dashboard.yearly_bars(), dashboard.regions_table(), dashboard.downloads()
    figure, first_table = bars.object, regions.object
    dashboard.countries = ["Peru"]
    assert bars.object is figure and regions is dashboard.regions_table()  # same models, new data
    data = figure.renderers[0].data_source.data
    expected = statistics(dashboard._store, dashboard.where, ("year", "classification")).frame()
    assert data["year"] == [str(y) for y in sorted(expected["year"].unique())] == list(figure.x_range.factors)
    for category in ("legal", "illegal"):
        rows = expected[expected["classification"] == category]
        assert sum(data[category]) == pytest.approx(rows["area_ha"].astype(float).sum())
        assert sum(data[f"{category}_zones"]) == rows["zones"].sum()
    assert set(regions.object["country"]) == {"Peru"} and not regions.object.equals(first_table)
    assert not downloads[1].disabled and not downloads[-1].visible


def test_a_filter_change_puts_the_new_image_into_the_drawn_map(dashboard):
    """New filters, a pan: the map's data source gets the image of that view and selection, its axes the zoom."""
    from bokeh.document import Document

    from forestguard.dashboard import mapview

    pane = dashboard.map_panel()
    pane.get_root(Document())  # the map as a page shows it
    source, plot = dashboard._map.image, dashboard._map.figure
    everything = source.data["image"][0]

    dashboard.countries = ["Peru"]
    assert dashboard._map.image is source
    x_range, y_range, width, height = dashboard._view
    assert (x_range, y_range) == (dashboard.x_range, dashboard.y_range)  # the zoom to Peru, also the URL's extent
    assert (plot.x_range.start, plot.x_range.end) == pytest.approx(x_range, abs=0.1)  # the browser's axes follow
    image = mapview.view_image(dashboard.selection(), x_range, y_range, width, height)
    assert source.data["image"][0] is image.part and image.part.size < everything.size  # the drawn part of the view
    left, bottom, right, top = image.part_bounds
    assert (source.data["x"], source.data["y"], source.data["dw"], source.data["dh"]) == ([left], [bottom], [right - left], [top - bottom])
    assert x_range[0] <= left < right <= x_range[1] and y_range[0] <= bottom < top <= y_range[1]

    dashboard.classification = "illegal"  # same view, other zones
    illegal = mapview.view_image(dashboard.selection(), x_range, y_range, width, height)
    assert source.data["image"][0] is illegal.part and not np.array_equal(illegal.packed, image.packed)

    panned = ((x_range[0] - 1e5, x_range[1] - 1e5), (y_range[0], y_range[1]))
    dashboard.browser_view(*panned)  # the browser reports a pan: that view is drawn and goes to the URL
    assert (dashboard.x_range, dashboard.y_range) == panned
    assert source.data["image"][0] is mapview.view_image(dashboard.selection(), *panned, width, height).part


def test_a_view_with_more_polygons_than_it_reads_says_so_on_the_map(dashboard, monkeypatch):
    """Past MAX_VIEW_POLYGONS the smallest polygons are drawn as points: the map says how many, and the note goes when they fit."""
    from bokeh.document import Document

    from forestguard.render import aggregate, raster

    monkeypatch.setattr(raster, "POLYGON_MIN_PIXELS", 0.0)  # every zone a polygon: many in a small test's country view
    monkeypatch.setattr(raster, "MAX_VIEW_POLYGONS", 3)
    dashboard.map_panel().get_root(Document())
    note = dashboard._map.note
    dashboard.countries = ["Brazil"]
    x_range, y_range, width, height = dashboard._view
    expected = aggregate(dashboard.selection(), x_range, y_range, width, height).attrs["as_points"]
    assert expected > 0 and note.visible
    assert note.text.startswith(f"{expected:,} of the smaller zones in this view are drawn as points") and "at most 3 polygons" in note.text

    monkeypatch.setattr(raster, "MAX_VIEW_POLYGONS", 1_000_000)
    dashboard.countries = ["Peru"]  # another view, every polygon read
    assert not note.visible and note.text == ""


def test_country_bounds_are_the_zones_exact_extent_and_selections_hold_them(dashboard):
    """Countries' bounds (what the map zooms to) are the store's exact extent; a selection's bounds hold its zones."""
    from forestguard.render import mercator_box

    layer = dashboard._base
    for countries in (["Brazil"], ["Peru", "Indonesia"], []):
        where = ZoneFilter(countries=tuple(countries))
        lon_lat = dashboard._store.zones(where).total_bounds
        assert layer.bounds_of(countries) == pytest.approx(mercator_box(tuple(lon_lat)), rel=1e-9)
        held = layer.select(where).bounds
        exact = layer.bounds_of(countries)
        assert held[0] <= exact[0] + 1 and held[1] <= exact[1] + 1 and held[2] >= exact[2] - 1 and held[3] >= exact[3] - 1


def test_warm_up_caches_the_numbers_of_one_country_views(demo_duckdb, monkeypatch):
    from forestguard.cache import default_cache
    from forestguard.dashboard.host import VIEW_GROUPINGS
    from forestguard.server.app import warm_statistics

    monkeypatch.setenv("FORESTGUARD_CACHE_PREFIX", "test-warm")  # a cache of its own for this test
    cache = default_cache()
    with stores.open(demo_duckdb, read_only=True) as store:
        assert warm_statistics(store, ["Peru", "Brazil"]) == 3
        before = cache.counters()["hits_by_kind"].get("stats", 0)
        for by in VIEW_GROUPINGS:
            cached = statistics(store, ZoneFilter(countries=("Peru",)), by, cache=cache)
            assert cached.rows == statistics(store, ZoneFilter(countries=("Peru",)), by).rows
        assert cache.counters()["hits_by_kind"]["stats"] - before == len(VIEW_GROUPINGS)


def test_warm_up_selects_the_zones_of_one_country_views(dashboard, monkeypatch):
    from forestguard.dashboard import shared
    from forestguard.dashboard.viewer import warm_views
    from forestguard.render import ZoneLayer

    shared.SELECTIONS.clear()
    shared.TABLES.clear()
    assert warm_views(["Peru", "Brazil"], store=dashboard._store, cache=dashboard._cache) == 2

    def not_again(self, where):
        raise AssertionError(f"selected again: {where}")

    monkeypatch.setattr(ZoneLayer, "select", not_again)
    dashboard.countries = ["Peru"]
    table = dashboard.regions_table().object  # the selection and the table both come from the warm-up
    assert len(dashboard.selection()) == dashboard._store.count(dashboard.where) > 0 and set(table["country"]) == {"Peru"}
    with pytest.raises(AssertionError, match="selected again"):  # not warmed: selected when the table follows
        dashboard.countries = ["Bolivia"]


def test_one_data_version_poll_serves_every_session():
    import gc

    from bokeh.document import Document

    from forestguard.dashboard.shared import DataVersionWatch

    class View:  # stands for a dashboard: held weakly, gone with its session
        def __init__(self, name: str, changed: bool) -> None:
            self.name, self.changed = name, changed

        def data_changed(self, latest_layer) -> bool:
            return self.changed

        def refresh(self) -> None:
            refreshed.append(self.name)

    watch = DataVersionWatch(60_000)
    refreshed: list[str] = []
    stale, current = View("stale", True), View("current", False)
    docs = {"stale": Document(), "current": Document()}
    watch.add(stale, docs["stale"])
    watch.add(current, docs["current"])
    assert watch.poll() == 1 and not refreshed  # scheduled in the stale view's own document, not run here
    for callback in list(docs["stale"].session_callbacks):  # what the server's loop does (the callback then removes itself)
        callback.callback()
    del callback
    assert refreshed == ["stale"] and not docs["current"].session_callbacks
    del stale
    gc.collect()
    assert len(watch) == 1


@pytest.mark.parametrize("pair_limit", [4_000_000, 0])
def test_top_regions_are_the_one_ranking_counted_in_chunks(monkeypatch, pair_limit):
    """Missing regions, ties, an unused category, selections and small chunks: the rows and order of
    forestguard.regions' ranking (held to both SQL engines' ORDER BY in tests/test_regions.py), the sums of a groupby."""
    import numpy as np
    import pandas as pd

    from forestguard import regions
    from forestguard.dashboard import mapview
    from forestguard.render import CATEGORIES, ZoneLayer
    from forestguard.stores.base import ZoneFilter

    monkeypatch.setattr(regions, "DENSE_PAIR_LIMIT", pair_limit)  # 0: counted over the pairs that occur
    monkeypatch.setattr(mapview, "CHUNK_ROWS", 777)
    rng = np.random.default_rng(3)
    n = 5_000
    region = rng.choice(["a", "b", "<b>c</b>", None, "e"], n)
    base = pd.DataFrame({
        "country": pd.Categorical(rng.choice(["Peru", "Chad", "Fiji"], n), categories=["Peru", "Chad", "Fiji", "Unused"]),
        "region": pd.Categorical(region, categories=["e", "a", "b", "<b>c</b>", "f"]),  # not in name order: the ranking sorts names
        "classification": pd.Categorical(rng.choice(CATEGORIES, n), categories=CATEGORIES),
        "area_ha": rng.choice([1.0, 2.5, 10.25], n),  # few values: ties between regions happen
    })

    for rows in (None, np.arange(40, dtype=np.int32), np.array([0, 7, 4_999], dtype=np.int32), np.sort(rng.choice(n, 2_000, replace=False)).astype(np.int32)):
        layer = ZoneLayer("test", 1, ZoneFilter(), base, None, rows)
        zones = layer.zones.reset_index(drop=True)
        illegal = (zones["classification"] == "illegal").to_numpy()
        sums = (zones.assign(illegal_ha=zones["area_ha"].where(illegal, 0.0)).groupby(["country", "region"], observed=True, dropna=False)
                .agg(zones=("area_ha", "size"), hectares=("area_ha", "sum"), illegal_ha=("illegal_ha", "sum")).reset_index())
        sums = {(c, r if isinstance(r, str) else None): (z, h, i) for c, r, z, h, i in sums.itertuples(index=False)}
        for top in (3, 10):
            table = mapview.top_regions(layer, top)
            ranked = regions.top_regions(zones["region"].astype(object), zones["area_ha"], illegal, n=top, country=zones["country"].astype(object))
            assert table[["country", "region", "zones", "hectares"]].values.tolist() == ranked[["country", "region", "zones", "area_ha"]].values.tolist()
            for country, region, count, hectares, illegal_percent in table.itertuples(index=False):
                zones_in, hectares_in, illegal_in = sums[(country, region if isinstance(region, str) else None)]
                assert (count, hectares) == (zones_in, pytest.approx(hectares_in, abs=1e-9))
                assert illegal_percent == round(100 * illegal_in / hectares_in, 1)
