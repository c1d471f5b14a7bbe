"""The dashboard's evidence: a click shows a zone's findings with sources and dates; the "inside" filter selects by them."""

from __future__ import annotations

import re

import panel as pn
import pytest

from forestguard import stores
from forestguard.cache import MemoryCache
from forestguard.cache.keys import KeySpace
from forestguard.dashboard import ZonesDashboard
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.rules import load_rules
from forestguard.stats import statistics

from .conftest import zone_ids

pytestmark = pytest.mark.duckdb


@pytest.fixture
def dashboard(case_store):
    with stores.open(case_store) as store:
        compute_evidence(store, load_rules())
    store = stores.open(case_store, read_only=True)
    yield ZonesDashboard(store=store, cache=MemoryCache(KeySpace("test-evidence-dashboard")))
    store.close()


def _html(panel: pn.viewable.Viewable) -> str:
    return "".join(str(part.object) for part in panel if isinstance(part, pn.pane.HTML))


def _click(dashboard, zone_id: int) -> str:
    zone = dashboard.selection().zones.set_index("id").loc[zone_id]
    x, y = float(zone["x"]), float(zone["y"])
    dashboard._view = ((x - 5_000, x + 5_000), (y - 2_800, y + 2_800), 1000, 560)  # 10 m pixels: the zones are listed
    return _html(dashboard.click_panel((x, y)))


def test_a_click_shows_the_zones_findings_with_sources_and_dates(dashboard):
    ids = zone_ids(dashboard._store)
    shown = _click(dashboard, ids["half_in_pa"])
    assert f"<b>Zone {ids['half_in_pa']}</b> (2020): classified legal, evidence suggests <b>illegal</b> (inside a protected area) · rules 1" in shown
    assert "UC-half" in shown and "UCs source" in shown and "as of 2024-06-30" in re.sub("<[^>]+>", "", shown) and "50%" in shown
    embargo = _click(dashboard, ids["embargo_later"])
    assert "Embargos &lt;IBAMA&gt;" in embargo and "<IBAMA>" not in embargo  # the user's text, escaped
    assert "No overlap with any reference layer" in _click(dashboard, ids["nothing"])


def test_the_inside_filter_selects_zones_by_their_findings_on_map_and_numbers_alike(dashboard):
    ids = zone_ids(dashboard._store)
    dashboard.inside = "restricted"
    assert dashboard.where.overlaps == ("protected_area", "indigenous_land", "embargo")
    expected = {ids[n] for n in ("half_in_pa", "pa_created_later", "embargo_later")}
    assert set(dashboard.selection().zones["id"]) == expected
    assert sum(r["zones"] for r in statistics(dashboard._store, dashboard.where, ()).rows) == len(expected)
    dashboard.inside = "protected_area"
    assert set(dashboard.selection().zones["id"]) == {ids["half_in_pa"], ids["pa_created_later"]}
    dashboard.inside = ""
    assert len(dashboard.selection()) == len(ids)
