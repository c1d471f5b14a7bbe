"""The dashboard's area without a browser: saved, uploaded and drawn areas filter every part, as the CLI does."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import shapely

from forestguard import stores
from forestguard.areas import Area
from forestguard.cache import MemoryCache
from forestguard.cache.keys import KeySpace
from forestguard.dashboard import ZonesDashboard
from forestguard.render.outline import outline_paths
from forestguard.render import to_mercator
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

from ..areas.conftest import write_geojson
from ..areas.helpers import geodesic_ha

pytestmark = pytest.mark.duckdb

AREA = shapely.Polygon([(-60, -12), (-50, -12), (-50, -4), (-55, -8), (-60, -4), (-60, -12)])


@pytest.fixture
def dashboard(tmp_path, demo_small):
    url = str(tmp_path / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
        store.save_area(Area.of("Saved <b>area</b>", AREA))
    store = stores.open(url, read_only=True)
    yield ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-dashboard-areas")))
    store.close()


def cards(view) -> dict:
    return {by: statistics(view._store, view.where, by).rows for by in ((), ("classification",))}


def test_a_saved_area_filters_numbers_map_regions_and_downloads(dashboard, demo_small):
    assert dashboard.param.area.objects == ["", "Saved <b>area</b>"]
    dashboard.area = "Saved <b>area</b>"
    where = dashboard.where
    assert where == ZoneFilter(area=Area.of("x", AREA))
    meeting = demo_small[shapely.intersects(demo_small.geometry.values, AREA)]
    assert len(dashboard.selection()) == len(meeting) > 20
    html = dashboard.cards_html()
    total = statistics(dashboard._store, where, ()).rows[0]
    assert f"{total['zones']:,}" in html and f"{total['area_ha']:,.2f}" in html
    regions = dashboard._top_regions()
    inside = meeting.assign(inside=[geodesic_ha(shapely.intersection(g, AREA)) for g in meeting.geometry.values])
    expected = inside.groupby(["country", "region"])["inside"].sum().sort_values(ascending=False)
    assert regions["hectares"].iloc[0] == pytest.approx(expected.iloc[0], abs=0.01)
    assert regions["hectares"].sum() == pytest.approx(float(inside["inside"].sum()), abs=0.05)
    zones = json.loads(dashboard._zones_file("geojson").getvalue())
    assert len(zones["features"]) == len(meeting)
    assert sum(f["properties"]["area_ha_inside"] for f in zones["features"]) == pytest.approx(total["area_ha"], abs=0.01 * len(meeting))
    assert dashboard._stats_csv().getvalue() == statistics(dashboard._store, where, ("country", "year", "classification")).to_csv()
    assert json.loads(dashboard._areas._area_file().getvalue())["properties"]["name"] == "Saved <b>area</b>"
    assert "Saved &lt;b&gt;area&lt;/b&gt;" in dashboard._areas.status.object


def test_the_map_zooms_to_the_area_and_draws_its_outline(dashboard):
    dashboard.area = "Saved <b>area</b>"
    x, y = to_mercator(np.array([-60.0, -50.0]), np.array([-12.0, -4.0]))
    assert dashboard.x_range[0] <= x[0] and dashboard.x_range[1] >= x[1] and dashboard.y_range[0] <= y[0] and dashboard.y_range[1] >= y[1]
    assert dashboard.x_range[1] - dashboard.x_range[0] < 3 * (x[1] - x[0])
    [ring] = outline_paths(dashboard._areas.current())
    assert len(ring) > 6  # densified: the edges follow lon/lat lines on the Mercator map
    assert ring[:, 0].min() == pytest.approx(x[0]) and ring[:, 1].max() == pytest.approx(y[1])


def test_an_uploaded_file_and_a_drawn_polygon_become_the_area(dashboard, tmp_path):
    path = write_geojson(tmp_path / "mine.geojson", AREA)
    dashboard._areas.widgets()
    dashboard._areas._uploaded("mine.geojson", path.read_bytes())
    assert dashboard.area == "" and dashboard.where.area == Area.of("x", AREA) and dashboard.where.area.name == "mine"
    uploaded = cards(dashboard)
    dashboard.area = "Saved <b>area</b>"
    assert cards(dashboard) == uploaded  # the same polygon, saved or uploaded
    corners = [(-60, -12), (-50, -12), (-50, -4), (-60, -4)]
    xs, ys = to_mercator(np.array([c[0] for c in corners], dtype=float), np.array([c[1] for c in corners], dtype=float))
    dashboard._areas.draw.event(data={"xs": [list(xs)], "ys": [list(ys)]})
    dashboard._areas._use_drawn()
    drawn = dashboard.where.area
    assert dashboard.area == "" and drawn.name == "drawn area"
    assert drawn.bbox == pytest.approx((-60, -12, -50, -4)) and drawn.area_ha == pytest.approx(Area.of("b", shapely.box(-60, -12, -50, -4)).area_ha, abs=1)
    assert cards(dashboard)[()][0]["zones"] >= uploaded[()][0]["zones"]
    dashboard._areas.use(None)
    assert dashboard.where.area is None


def test_bad_uploads_and_drawings_say_why_and_change_nothing(dashboard, tmp_path):
    dashboard._areas.widgets()
    line = write_geojson(tmp_path / "line.geojson", shapely.LineString([(0, 0), (1, 1)]))
    dashboard._areas._uploaded("<b>line</b>.geojson", line.read_bytes())
    assert dashboard.where.area is None
    status = dashboard._areas.status.object
    assert "fg-area-error" in status and "&lt;b&gt;line&lt;/b&gt;.geojson: feature 0: geometry: is a LineString" in status
    dashboard._areas.draw.event(data={"xs": [[0, 1]], "ys": [[0, 1]]})
    dashboard._areas._use_drawn()
    assert dashboard.where.area is None and "at least three corners" in dashboard._areas.status.object


def test_a_link_keeps_a_saved_area_and_ignores_an_unknown_one(dashboard):
    dashboard.area = "Saved <b>area</b>"
    assert dashboard._state()["area"] == "Saved <b>area</b>"
    dashboard._apply({"area": "No such area"})
    assert dashboard.area == "Saved <b>area</b>"
