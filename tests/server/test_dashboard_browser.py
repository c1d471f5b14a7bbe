"""The served dashboard in headless Chromium: map drawn, numbers equal the CLI's, text escaped, nothing fetched from outside."""

from __future__ import annotations

import io
import json
import shutil
import urllib.parse
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.services import wait_until

from forestguard import stores
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.fixtures.redis import RedisServer
from tests.fixtures.services import free_port, unavailable

from .conftest import Served, make_store, server_env, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE_REGION = "<script>alert(1)</script>"
HOSTILE_SOURCE = "<img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory, demo_small) -> str:
    """The demo zones plus a few in 'Testland' whose region and source are markup."""
    hostile = demo_small[demo_small["country"] == "Brazil"].head(5).copy()
    hostile["country"] = "Testland"
    hostile["region"] = HOSTILE_REGION
    hostile["source"] = HOSTILE_SOURCE
    zones = demo_small._constructor(np.concatenate([demo_small.values, hostile.values]), columns=demo_small.columns)
    zones = zones.set_geometry("geometry", crs=demo_small.crs)
    return make_store(tmp_path_factory.mktemp("browser") / "zones.duckdb", zones)


@pytest.fixture(scope="module")
def dashboard_redis(tmp_path_factory) -> Iterator[RedisServer | None]:
    """The dashboard's own redis-server (killed and restarted by one test); None when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    redis = RedisServer(binary, free_port(), tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, hostile_store, dashboard_redis) -> Iterator[Served]:
    """One warmed server for the module, with Redis as in production when it is installed."""
    tmp = tmp_path_factory.mktemp("dashboard")
    env = server_env(tmp, **({"REDIS_URL": dashboard_redis.url} if dashboard_redis else {}))
    served = start_server(tmp, hostile_store, "--warm", env=env, timeout=120)
    yield served
    stop_server(served)


def cli_numbers(served: Served, *countries: str) -> dict[str, str]:
    """The numbers the cards must show: statistics() on the store itself (the server's answers are not used)."""
    where = ZoneFilter(countries=countries)
    with stores.open(served.db, read_only=True) as store:
        total = statistics(store, where, ()).rows[0]
        classes = {r["classification"]: r for r in statistics(store, where, ("classification",)).rows}
    return {
        "zones-total": f"{total['zones']:,}",
        "hectares-total": f"{total['area_ha']:,.2f}",
        "hectares-legal": f"{classes['legal']['area_ha']:,.2f}",
        "hectares-illegal": f"{classes['illegal']['area_ha']:,.2f}",
    }


def url_query(page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))


def top_region(served: Served, country: str) -> str:
    """The country's region with the most hectares, from the store itself."""
    with stores.open(served.db, read_only=True) as store:
        zones = store.zones_arrow(ZoneFilter(countries=(country,)), columns=["region", "area_ha"]).to_pandas()
    return str(zones.groupby("region")["area_ha"].sum().idxmax())


def expect_numbers(page, numbers: dict[str, str]) -> None:
    from playwright.sync_api import expect

    for key, text in numbers.items():
        expect(page.locator(f"[data-testid={key}] .fg-number")).to_have_text(text, timeout=30_000)


def open_dashboard(page, served: Served, query: str = "") -> list[str]:
    """Load the page, recording every URL it requests and every dialog (an executed script) in ``page.dialogs``."""
    requests: list[str] = []
    page.dialogs = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(served.base + "/" + query)
    page.locator("[data-testid=zones-total]").wait_for(timeout=60_000)
    return requests


def choose_country(page, country: str) -> None:
    """Pick a country in the Countries list the way a user does: type, then click the matching entry."""
    box = page.locator("input.choices__input--cloned").first
    box.click()
    box.fill(country)
    page.locator(".choices__item--choice").get_by_text(country, exact=True).first.click()
    page.keyboard.press("Escape")


def zone_mask(page) -> np.ndarray:
    """Where the map shows zones: they are its only saturated colour (outlines are grey, the sea white)."""
    box = page.locator(".fg-map").first.bounding_box()
    box = {**box, "y": box["y"] + 40, "height": box["height"] - 40}  # below the toolbar and its coloured logo
    rgb = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")).astype(int)
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 60


def zone_pixels(page) -> int:
    return int(zone_mask(page).sum())


def same_map(page, other) -> bool:
    """The two pages' maps show zones in the same places (a few edge pixels may differ)."""
    a, b = zone_mask(page), zone_mask(other)
    return a.shape == b.shape and a.sum() > 300 and (a != b).sum() < 0.02 * a.sum()


def test_map_is_drawn_and_nothing_leaves_the_server(page, dashboard):
    requests = open_dashboard(page, dashboard)
    wait_until(lambda: zone_pixels(page) > 300, timeout=30, what="zones drawn on the map")
    hosts = {urllib.parse.urlsplit(url).hostname for url in requests if url.startswith(("http:", "https:", "ws:", "wss:"))}
    assert hosts == {"127.0.0.1"}, f"requests left the server: {sorted(hosts)}"
    assert page.dialogs == []
    assert any("/static/" in url for url in requests)  # Bokeh/Panel resources came from us


def test_country_filter_shows_the_cli_numbers_and_goes_to_the_url(page, dashboard):
    from playwright.sync_api import expect

    open_dashboard(page, dashboard)
    expect_numbers(page, cli_numbers(dashboard))
    extent_before = url_query(page).get("x")
    choose_country(page, "Indonesia")
    indonesia = cli_numbers(dashboard, "Indonesia")
    expect_numbers(page, indonesia)
    wait_until(lambda: "Indonesia" in urllib.parse.unquote(page.url), timeout=15, what="the filter in the URL")
    # The numbers go out first; the map (zoomed to Indonesia) and the tables follow in the next tick.
    wait_until(lambda: url_query(page).get("x") not in (None, extent_before), timeout=30, what="the map zoomed to the country")
    expect(page.get_by_role("cell", name=top_region(dashboard, "Indonesia"), exact=True).first).to_be_visible(timeout=30_000)
    shared = page.context.new_page()  # the link opens the same view
    open_dashboard(shared, dashboard, "?" + urllib.parse.urlsplit(page.url).query)
    expect_numbers(shared, indonesia)
    # The first page's image came straight into its plot; the link's page drew its own through HoloViews.
    wait_until(lambda: same_map(page, shared), timeout=30, what="the changed map equal to the map its link opens")


def test_a_hand_typed_link_with_one_country_opens_on_it(page, dashboard):
    # The page writes country=["Peru"]; a person types country=Peru.
    open_dashboard(page, dashboard, "?country=Peru")
    expect_numbers(page, cli_numbers(dashboard, "Peru"))


def test_hostile_names_are_shown_as_text(page, dashboard):
    query = "?" + urllib.parse.urlencode({"country": json.dumps(["Testland"])})
    open_dashboard(page, dashboard, query)
    expect_numbers(page, cli_numbers(dashboard, "Testland"))
    region = page.get_by_text(HOSTILE_REGION, exact=True)
    region.first.wait_for(timeout=30_000)
    assert region.first.is_visible()
    injected = page.evaluate(
        """() => { const found = []; const walk = (root) => { root.querySelectorAll('*').forEach(el => {
               if (el.tagName === 'SCRIPT' && el.textContent.includes('alert(1)')) found.push('script');
               if (el.tagName === 'IMG' && (el.getAttribute('src') || '') === 'x') found.push('img');
               if (el.shadowRoot) walk(el.shadowRoot); }); }; walk(document); return found; }"""
    )
    assert injected == []
    sources = page.locator("input.choices__input--cloned").nth(1)  # the source names are in this list
    sources.click()
    option = page.locator(".choices__item--choice").get_by_text(HOSTILE_SOURCE, exact=True)
    option.first.wait_for(timeout=10_000)
    assert page.dialogs == []


def test_sessions_survive_redis_being_killed(browser, dashboard, dashboard_redis):
    """Redis dies with two dashboards open: they keep answering with the right numbers; readiness says why."""
    if dashboard_redis is None:
        unavailable("redis-server is not installed (Debian package redis-server; `make test` installs it)")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        pages = [context.new_page() for _ in range(2)]
        for page in pages:
            open_dashboard(page, dashboard)
        expect_numbers(pages[0], cli_numbers(dashboard))
        assert dashboard.json("/readyz")[0] == 200
        dashboard_redis.kill()
        for page, country in zip(pages, ("Peru", "Bolivia")):
            choose_country(page, country)
            expect_numbers(page, cli_numbers(dashboard, country))
        status, body = dashboard.json("/readyz")  # still served: degraded, not unready
        assert status == 200 and body["status"] == "degraded" and not body["checks"]["redis"]["ok"] and body["checks"]["store"]["ok"]
        assert dashboard.json("/api/stats?country=Peru&by=")[0] == 200
        assert all(page.dialogs == [] for page in pages)
    finally:
        context.close()
        if dashboard_redis.process is None:
            dashboard_redis.start()
    wait_until(lambda: dashboard.json("/readyz")[1]["status"] == "ready", timeout=30, what="readyz once Redis is back")
