"""The dashboard's area in headless Chromium: a saved area from the link, an uploaded file, a drawn polygon.

Every time, the cards must show what ``forestguard stats --area`` prints for the same polygon
(the drawn one is downloaded from the page and given to the CLI as a file).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Iterator

import pytest
import shapely

from forestguard import stores
from forestguard.areas import Area
from tests.fixtures.services import wait_until

from ..areas.conftest import write_geojson
from .conftest import Served, server_env, start_server, stop_server
from .test_dashboard_browser import expect_numbers, open_dashboard, url_query

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAVED = "Reserva <i>Norte</i>"
#: Vertices of the polygon being drawn, as the page's polygon tool holds them (the corner under the pointer included).
DRAWN_VERTICES = ("() => { for (const doc of Bokeh.documents) for (const m of doc.all_models) if (m.type === 'PolyDrawTool') {"
                  " const xs = m.renderers[0].data_source.data.xs; return xs.length ? xs[xs.length - 1].length : 0; } return -1; }")
AREA = shapely.Polygon([(-62, -12), (-50, -12), (-50, -4), (-56, -8), (-62, -4), (-62, -12)])


@pytest.fixture(scope="module")
def area_dashboard(tmp_path_factory, demo_small) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("area-dashboard")
    db = str(tmp / "zones.duckdb")
    with stores.open(db, create=True) as store:
        store.insert(demo_small)
        store.save_area(Area.of(SAVED, AREA))
    served = start_server(tmp, db, "--warm", env=server_env(tmp, FORESTGUARD_AREA_MAX_HA="1000000000"), timeout=120)
    yield served
    stop_server(served)


def cli_cards(served: Served, area: str) -> dict[str, str]:
    """What the cards must show for ``--area``: the CLI's own numbers, in a process of its own."""
    total = json.loads(served.cli("stats", "--area", area, "--by", "", "--format", "json"))["rows"]
    classes = {r["classification"]: r for r in json.loads(served.cli("stats", "--area", area, "--by", "classification", "--format", "json"))["rows"]}
    return {
        "zones-total": f"{total[0]['zones']:,}",
        "hectares-total": f"{total[0]['area_ha']:,.2f}",
        "hectares-legal": f"{classes['legal']['area_ha']:,.2f}",
        "hectares-illegal": f"{classes['illegal']['area_ha']:,.2f}",
    }


def test_a_link_with_a_saved_area_opens_on_it(page, area_dashboard):
    query = "?" + urllib.parse.urlencode({"area": SAVED})
    open_dashboard(page, area_dashboard, query)
    expect_numbers(page, cli_cards(area_dashboard, SAVED))
    page.locator(".fg-area-name").get_by_text(SAVED, exact=True).wait_for(timeout=30_000)
    assert url_query(page).get("area") == SAVED
    assert page.dialogs == []  # the name is shown as text


def test_an_uploaded_file_gives_the_cli_numbers(page, area_dashboard, tmp_path):
    path = write_geojson(tmp_path / "upload.geojson", shapely.box(-58, -10, -52, -4))
    open_dashboard(page, area_dashboard)
    page.locator(".fg-area-upload input[type=file]").set_input_files(str(path))
    page.locator(".fg-area-name").get_by_text("upload", exact=True).wait_for(timeout=30_000)
    expect_numbers(page, cli_cards(area_dashboard, str(path)))
    assert "area" not in url_query(page)  # an uploaded area lives in the session, not the link


def test_a_drawn_polygon_gives_the_cli_numbers_of_its_download(page, area_dashboard, tmp_path):
    open_dashboard(page, area_dashboard, "?" + urllib.parse.urlencode({"area": SAVED}))  # zoomed on the saved area
    page.locator(".fg-area-name").get_by_text(SAVED, exact=True).wait_for(timeout=30_000)
    # Bokeh tells gestures apart by time: a release after 300 ms is a press (hold), two clicks
    # within 300 ms a double click. A test's clicks follow each other within milliseconds (a
    # person's do not) and, on a machine this loaded, a click's release can be handled late: so
    # no two clicks here make a double click, and only the deliberate hold below is a press
    # (it lasts until the page has started the polygon, however long that takes).
    page.evaluate("() => { const g = Bokeh.require('core/ui_gestures').UIGestures; g.press_threshold = 1500; g.doubletap_threshold = 0 }")
    page.locator('[title="Polygon Draw Tool"]').first.click()
    box = page.locator(".fg-map").first.bounding_box()
    corners = [(0.30, 0.35), (0.70, 0.35), (0.65, 0.75), (0.35, 0.70)]
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in corners]
    # As a user draws with Bokeh's polygon tool: press and hold at the first corner, then click each other one.
    page.mouse.move(*points[0])
    page.mouse.down()
    page.wait_for_function(f"({DRAWN_VERTICES})() >= 2", timeout=30_000)  # held long enough: a polygon was started
    page.mouse.up()
    for count, point in enumerate(points[1:], start=3):
        page.mouse.move(*point)
        page.mouse.down()
        page.mouse.up()
        page.wait_for_function(f"({DRAWN_VERTICES})() >= {count}", timeout=30_000)
    page.locator(".fg-area-draw button").click()
    page.locator(".fg-area-name").get_by_text("drawn area", exact=True).wait_for(timeout=30_000)
    with page.expect_download() as download:
        page.get_by_text("Area (GeoJSON)").click()
    drawn = tmp_path / "drawn.geojson"
    download.value.save_as(drawn)
    polygon = shapely.geometry.shape(json.loads(drawn.read_text())["geometry"])
    assert len(shapely.get_coordinates(polygon)) == 5 and polygon.area > 1  # four corners (closed), degrees²
    expect_numbers(page, cli_cards(area_dashboard, str(drawn)))
    wait_until(lambda: "area" not in url_query(page), timeout=15, what="the saved area's name gone from the link")
