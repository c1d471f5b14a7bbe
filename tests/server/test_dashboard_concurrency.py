"""Quick filter changes, resizes and pans in a row, with other sessions busy: the map never stays behind.

A map that follows late is fine; one that never follows is the failure. After each burst of
changes (each sent without waiting for the page) the page must come to a state its link
reproduces: the numbers are the CLI's for the last change, the address names the last change
and the extent the map's axes show, and the map shows the same zones as a fresh page opened
from that address.

On the code before this test (HoloViews drew the map) it failed three ways: the image of the
previous country, redrawn by HoloViews for a resize and delivered late over a busy websocket,
stayed over the new one; the address kept an older query; and with Panel's callbacks in a
thread pool the numbers stayed on an older change (two changes applied out of order).
"""

from __future__ import annotations

import urllib.parse
from typing import Iterator

import pytest

from tests.fixtures.services import wait_until

from .conftest import Served, server_env, start_server, stop_server
from .test_dashboard_browser import cli_numbers, expect_numbers, href, open_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COUNTRIES = ["Brazil", "Indonesia", "Peru", "Bolivia", "Colombia", "Malaysia", "Paraguay", "Mexico"]
#: Set the Countries list as a click on an entry does (BokehJS sends the change to the server).
CHOOSE_JS = """
(countries) => {
  for (const doc of window.Bokeh.documents)
    for (const model of doc.all_models)
      if (model.type === 'MultiChoice' && model.placeholder === 'All countries') { model.value = countries; return true; }
  return false;
}
"""
#: Another visitor, busy: a new country every ``period`` ms, ``count`` times (bounded), driven by the page itself.
BUSY_JS = """
([countries, period, count]) => {
  let i = 0;
  const chooser = [...window.Bokeh.documents].flatMap(doc => [...doc.all_models])
    .find(model => model.type === 'MultiChoice' && model.placeholder === 'All countries');
  const timer = setInterval(() => {
    chooser.value = (i % 3 === 2) ? [] : [countries[i % countries.length]];
    if (++i >= count) clearInterval(timer);
  }, period);
  return chooser !== undefined;
}
"""


#: What the page's map shows, in map coordinates: its axes, and the zones drawn in its image (how many pixels, their
#: bounding box and the size of a pixel). The same whether the image is a whole view or its drawn part.
MAP_JS = """
() => {
  const found = {};
  for (const doc of window.Bokeh.documents) for (const model of doc.all_models) {
    if (model.type === 'Range1d') (found.ranges = found.ranges || []).push([model.start, model.end]);
    const data = model.data;
    if (!(data && data.image && data.dw && data.x && data.x.length)) continue;
    const image = data.image[0], [rows, cols] = image.shape;
    let count = 0, r0 = rows, r1 = -1, c0 = cols, c1 = -1;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      if ((image[r * cols + c] >>> 24) === 0) continue;  // alpha is the high byte of a packed RGBA pixel
      count++; r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c);
    }
    const px = data.dw[0] / cols, py = data.dh[0] / rows;
    found.zones = {count, pixel: [px, py],
                   box: count ? [data.x[0] + c0 * px, data.y[0] + r0 * py, data.x[0] + (c1 + 1) * px, data.y[0] + (r1 + 1) * py] : null};
  }
  return found;
}
"""


def same_map(page, other) -> bool:
    """The two pages' maps show the same extent and the same zones (pixel count and where they are, to a pixel)."""
    a, b = page.evaluate(MAP_JS), other.evaluate(MAP_JS)
    if not (a.get("zones") and b.get("zones") and a["zones"]["count"] and len(a.get("ranges", [])) == 2):
        return False
    px, py = a["zones"]["pixel"]
    close = lambda u, v, tol: all(abs(p - q) <= tol for p, q in zip(u, v))  # noqa: E731
    return (close(sum(a["ranges"], []), sum(b["ranges"], []), 1.0) and a["zones"]["count"] == b["zones"]["count"]
            and close(a["zones"]["box"][::2], b["zones"]["box"][::2], px * 1.01) and close(a["zones"]["box"][1::2], b["zones"]["box"][1::2], py * 1.01))


@pytest.fixture(scope="module")
def busy_dashboard(tmp_path_factory, served_store) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("concurrency")
    served = start_server(tmp, served_store, "--warm", env=server_env(tmp), timeout=120)
    yield served
    stop_server(served)


def url_view(page) -> tuple[list[str], list[float]]:
    """The countries and the extent (x and y ranges, one list) the page's address names."""
    from panel.util import parse_query  # how the dashboard reads a link (JSON lists, or Python's repr of them)

    query = parse_query("?" + urllib.parse.urlsplit(href(page)).query)
    return list(query.get("country", [])), list(query.get("x", [])) + list(query.get("y", []))


def settled(page, countries: list[str]) -> bool:
    """The address names ``countries`` and the extent the map's axes show (a link to what the page shows)."""
    named, extent = url_view(page)
    axes = sum(page.evaluate(MAP_JS).get("ranges", []), [])
    return named == countries and len(extent) == len(axes) == 4 and all(abs(u - a) <= 0.1 for u, a in zip(extent, axes))


def pan(page) -> None:
    """A drag on the map (the pan tool is active): the browser reports the map's new extent."""
    box = page.locator(".fg-map").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 25, steps=3)
    page.mouse.up()


def test_the_map_follows_every_burst_of_changes_with_other_sessions_busy(browser, busy_dashboard):
    served, size = busy_dashboard, {"width": 1400, "height": 900}
    others = browser.new_context(viewport={"width": 1200, "height": 800})
    context = browser.new_context(viewport=size)
    try:
        for _ in range(2):  # other visitors changing their filters all along
            other = others.new_page()
            open_dashboard(other, served)
            assert other.evaluate(BUSY_JS, [COUNTRIES[::-1], 120, 150])
        page, fresh = context.new_page(), context.new_page()
        open_dashboard(page, served)  # the first change comes as soon as the numbers show: the page is still laying out
        for burst, final in enumerate(("Peru", "Indonesia")):
            for step, country in enumerate(c for c in COUNTRIES if c != final):
                # A resize (the browser reports the map's new size) and a change right after it, without waiting.
                page.set_viewport_size({"width": size["width"] - 80 * (step % 2), "height": size["height"]})
                assert page.evaluate(CHOOSE_JS, [country])
                if step % 3 == 2:
                    pan(page)
            page.set_viewport_size(size)
            assert page.evaluate(CHOOSE_JS, [final])
            expect_numbers(page, cli_numbers(served, final))  # the numbers follow the last change
            wait_until(lambda: settled(page, [final]), timeout=30, what="the page's URL naming the last change and the map's extent")
            # The page's link opens what the page must come to show: the same filters and extent. (A resize
            # reported late moves the extent after the URL first matched it: then the newest link is opened.)
            opened: list[str] = []

            def follows() -> bool:
                link = href(page)
                if opened[-1:] != [link]:
                    opened.append(link)
                    fresh.goto(link)
                    fresh.locator("[data-testid=zones-total]").wait_for(timeout=60_000)
                return settled(page, [final]) and same_map(page, fresh)

            try:
                wait_until(follows, timeout=30, what=f"burst {burst}: the map following the last change ({final})")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n  page:  {page.evaluate(MAP_JS)}\n  its link: {fresh.evaluate(MAP_JS)}") from None
    finally:
        context.close()
        others.close()


def test_pages_work_whichever_worker_holds_them(browser, tmp_path, served_store):
    """--num-procs 2 --warm: data warmed once before the fork; a page's request and its websocket may reach
    different workers, and every page still gets its numbers, map and charts, and follows a change."""
    served = start_server(tmp_path, served_store, "--warm", "--num-procs", "2", env=server_env(tmp_path), timeout=120)
    try:
        def workers() -> list[str]:
            return open(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read().split()

        # The first worker may answer /healthz while the parent is still forking the second.
        wait_until(lambda: len(workers()) == 2, timeout=30, what="two worker processes")
        for country in ("Peru", "Brazil", "Bolivia"):  # a new browser each: new connections, to either worker
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            try:
                page = context.new_page()
                open_dashboard(page, served)
                expect_numbers(page, cli_numbers(served))
                assert page.evaluate(CHOOSE_JS, [country])
                expect_numbers(page, cli_numbers(served, country))
                wait_until(lambda: settled(page, [country]) and page.evaluate(MAP_JS)["zones"]["count"] > 0, timeout=30, what="the map of the country")
                page.get_by_text("Top regions").first.wait_for(timeout=30_000)  # the charts follow once the page has loaded
            finally:
                context.close()
        assert served.logs().count("zones ready") == 1  # the warm-up ran once, in the process that forked the workers
    finally:
        stop_server(served)
