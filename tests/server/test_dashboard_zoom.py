"""Choosing countries zooms the dashboard's map to them; clearing them zooms back out (no browser)."""

from __future__ import annotations

import pytest
from pyproj import Transformer

from forestguard import stores
from forestguard.cache import MemoryCache
from forestguard.cache.keys import KeySpace
from forestguard.dashboard import ZonesDashboard
from forestguard.stores.base import ZoneFilter

pytestmark = pytest.mark.duckdb


@pytest.fixture
def store(demo_duckdb):
    store = stores.open(demo_duckdb, read_only=True)
    yield store
    store.close()


def mercator_bounds(store, where: ZoneFilter = ZoneFilter()) -> tuple[float, float, float, float]:
    """The zones' bounds in Web Mercator, projected independently of the render code."""
    xmin, ymin, xmax, ymax = store.zones(where).total_bounds
    to_3857 = Transformer.from_crs(4326, 3857, always_xy=True)
    xs, ys = to_3857.transform([xmin, xmax], [ymin, ymax])
    return xs[0], ys[0], xs[1], ys[1]


def assert_fits(view, box) -> None:
    """The view shows the box padded 5 % a side, tight on the axis that sets the scale, centred, with the plot's aspect."""
    (x0, x1), (y0, y1) = view
    xmin, ymin, xmax, ymax = box
    width, height, tol = xmax - xmin, ymax - ymin, 1.0  # metres: the URL rounds to 0.1 m
    assert x0 <= xmin - 0.05 * width + tol and x1 >= xmax + 0.05 * width - tol
    assert y0 <= ymin - 0.05 * height + tol and y1 >= ymax + 0.05 * height - tol
    assert min((x1 - x0) / (1.1 * width), (y1 - y0) / (1.1 * height)) == pytest.approx(1.0, rel=1e-6)
    assert (x0 + x1) / 2 == pytest.approx((xmin + xmax) / 2, abs=tol) and (y0 + y1) / 2 == pytest.approx((ymin + ymax) / 2, abs=tol)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(1000 / 560, rel=1e-6)  # the default plot size before the map is drawn


def test_countries_zoom_the_map_and_clearing_zooms_out(store):
    dashboard = ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-zoom")))
    everything = mercator_bounds(store)
    brazil = mercator_bounds(store, ZoneFilter(countries=("Brazil",)))

    dashboard.countries = ["Brazil"]
    zoomed = dashboard.x_range, dashboard.y_range
    assert_fits(zoomed, brazil)

    dashboard.countries = []
    full = dashboard.x_range, dashboard.y_range
    assert_fits(full, everything)
    assert full[0][1] - full[0][0] > zoomed[0][1] - zoomed[0][0]


def test_a_shared_extent_is_kept_until_the_user_changes_countries(store):
    shared = ((-6.0e6, -5.0e6), (-1.5e6, -1.0e6))
    dashboard = ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-zoom")), countries=["Brazil"], x_range=shared[0], y_range=shared[1])
    assert (dashboard.x_range, dashboard.y_range) == shared
    dashboard.countries = ["Brazil", "Peru"]
    assert_fits((dashboard.x_range, dashboard.y_range), mercator_bounds(store, ZoneFilter(countries=("Brazil", "Peru"))))


def test_a_link_with_countries_but_no_extent_opens_on_them(store):
    dashboard = ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-zoom")), countries=["Peru"])
    assert_fits((dashboard.x_range, dashboard.y_range), mercator_bounds(store, ZoneFilter(countries=("Peru",))))


def test_a_map_still_laying_out_does_not_reach_the_url(store):
    """Bokeh reports NaN ranges while a page lays out: the shared extent stays as it was."""
    dashboard = ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-zoom")), countries=["Peru"])
    dashboard.map_panel()
    before = dashboard.x_range, dashboard.y_range
    nan = float("nan")
    dashboard.browser_view((nan, nan), (nan, nan))
    dashboard.browser_view((1.0, 1.0), (2.0, 3.0))
    assert (dashboard.x_range, dashboard.y_range) == before
    dashboard.browser_view((-7.0e6, -6.0e6), (-2.0e6, -1.0e6))
    assert (dashboard.x_range, dashboard.y_range) == ((-7.0e6, -6.0e6), (-2.0e6, -1.0e6))


def test_a_pan_reported_before_a_zoom_reached_the_page_does_not_undo_it(store):
    """The browser sends its axes, then a RangesUpdate event; one sent before our zoom arrived is stale."""
    from bokeh.events import RangesUpdate

    dashboard = ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-zoom")))
    dashboard.map_panel()
    panned = ((-7.0e6, -6.0e6), (-2.0e6, -1.0e6))
    dashboard.browser_view(*panned)
    dashboard.countries = ["Brazil"]  # the zoom moves the axes
    zoomed = dashboard.x_range, dashboard.y_range
    assert zoomed != panned
    (x0, x1), (y0, y1) = panned
    dashboard._browser_ranges(RangesUpdate(dashboard._map.figure, x0=x0, x1=x1, y0=y0, y1=y1))  # the pan's event, late
    dashboard._map_tick()
    assert (dashboard.x_range, dashboard.y_range) == zoomed
    assert dashboard._view[:2] == zoomed  # and the image is the zoomed view's
