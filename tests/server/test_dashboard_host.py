"""The dashboard knows its server only through :mod:`forestguard.dashboard.host` (issue 21: the server imports the dashboard, never back)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from forestguard.cache import MemoryCache
from forestguard.cache.keys import KeySpace
from forestguard.dashboard import ZonesDashboard, host, mapview
from forestguard.server import runtime

pytestmark = pytest.mark.duckdb


def _maps_timed() -> float:
    return REGISTRY.get_sample_value("forestguard_render_duration_seconds_count", {"kind": "map"}) or 0.0


@pytest.fixture
def configured(demo_duckdb):
    yield demo_duckdb
    runtime.configure(runtime.ServerOptions())
    host.install(None)


def test_a_configured_server_gives_the_dashboard_its_store_options_and_timers(configured):
    runtime.configure(runtime.ServerOptions(store_url=configured, download_limit=7, num_procs=2))
    served = host.host()
    assert served.store() is runtime.shared_store()
    assert served.download_limit == 7 and served.sessions_rebuilt
    before = _maps_timed()
    view = ZonesDashboard(cache=MemoryCache(KeySpace("test-dashboard-host")))
    assert view._store is runtime.shared_store()
    view.countries = [view.param.countries.objects[0]]
    # A size no other test draws: images are memoised per process, and only a drawn one is timed.
    mapview.view_image(view.selection(), tuple(view.x_range), tuple(view.y_range), 333, 217, cache=view._cache)
    assert _maps_timed() == before + 1  # the server's histogram timed the dashboard's render


def test_without_a_server_the_dashboard_reads_the_configured_store(configured, monkeypatch):
    host.install(None)
    monkeypatch.setenv("DATABASE_URL", configured)
    view = ZonesDashboard(cache=MemoryCache(KeySpace("test-dashboard-host-alone")))
    assert view._store.count(view.where) == len(view.selection()) > 0
    assert host.host().store() is view._store and host.host().download_limit == host.DEFAULT_DOWNLOAD_LIMIT
    assert not host.host().sessions_rebuilt
