"""The dashboard's evidence in headless Chromium: a click on a zone shows its findings, each with its
layer's source and as-of date (the user's text shown as text), and the "inside" filter gives the
numbers ``forestguard stats --overlaps KIND`` prints, with the filter in the link.

Expected values come from the CLI in a process of its own (``evidence show``, ``stats``), never
from the server's answers.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest
from pyproj import Transformer

from forestguard import stores
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.layers import read_layer
from forestguard.evidence.rules import load_rules
from forestguard.stores.evidence_records import KIND_LABELS, RESTRICTED_KINDS
from tests.fixtures.services import wait_until

from ..server.conftest import Served, start_server, stop_server
from ..server.test_dashboard_browser import expect_numbers, open_dashboard, url_query
from .conftest import CASES, case_layer_files, case_zones, zone_ids

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.duckdb]

#: Each case layer's as-of date, all different: a row showing another layer's date would be caught.
AS_OF = {"ASV": "2024-03-31", "UCs": "2023-12-01", "CAR": "2024-01-15", "Embargos <IBAMA>": "2024-06-30"}
TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)
SCREENSHOT = Path("/tmp/evidence-click.png")

#: The map's axes and where its frame is on the page, from Bokeh's own view of the plot.
MAP_FRAME_JS = """
() => {
  const view = Bokeh.index.query_one(v => (v.model.css_classes || []).includes('fg-map') && v.frame != null);
  if (view == null || !view.canvas_view) return null;
  const canvas = view.canvas_view.el.getBoundingClientRect(), frame = view.frame.bbox;
  const x = view.model.x_range, y = view.model.y_range;
  return {left: canvas.left + frame.left, top: canvas.top + frame.top, width: frame.width, height: frame.height,
          x: [x.start, x.end], y: [y.start, y.end]};
}
"""
#: Elements anywhere in the page (shadow roots included) with this tag name.
ELEMENTS_JS = """
(tag) => { let count = 0; const walk = (root) => root.querySelectorAll('*').forEach(el => {
  if (el.tagName.toLowerCase() === tag) count++; if (el.shadowRoot) walk(el.shadowRoot); }); walk(document); return count; }
"""


@pytest.fixture(scope="module")
def evidence_dashboard(tmp_path_factory) -> Iterator[Served]:
    """The evidence case zones and layers, evidence computed, behind ``forestguard serve``."""
    tmp = tmp_path_factory.mktemp("evidence-dashboard")
    db = str(tmp / "cases.duckdb")
    with stores.open(db, create=True) as store:
        store.insert(case_zones())
        for name, (kind, path, maps) in case_layer_files(tmp).items():
            read = read_layer(kind, path, name=name, source=f"{name} source", as_of=AS_OF[name], maps=maps)
            store.add_layer(read.layer, read.features)
        compute_evidence(store, load_rules())
    served = start_server(tmp, db, timeout=120)
    yield served
    stop_server(served)


def zone_centre(served: Served, region: str) -> tuple[int, tuple[float, float]]:
    """A case zone's id (from the store) and the centre of its square in Web Mercator metres."""
    with stores.open(served.db, read_only=True) as store:
        zone_id = zone_ids(store)[region]
    centre = CASES[region][2].centroid
    return zone_id, TO_MERCATOR.transform(centre.x, centre.y)


#: Is the whole element to be seen: it fits, or the nearest box around it that is narrower scrolls sideways?
REACHABLE_JS = """
el => {
  const width = el.getBoundingClientRect().width;
  for (let node = el.parentNode; node; node = node.parentNode || node.host) {
    if (!(node instanceof Element) || node.getBoundingClientRect().width + 1 >= width) continue;
    const overflow = getComputedStyle(node).overflowX;  // a narrower box: it scrolls, cuts, or lets it spill to the next
    if (overflow === 'auto' || overflow === 'scroll') return node.scrollWidth > node.clientWidth;
    if (overflow !== 'visible') return false;
  }
  return el.getBoundingClientRect().right <= document.documentElement.clientWidth;
}
"""


def click_map_at(page, x: float, y: float) -> None:
    """Click the page's map where Web Mercator point (x, y) is drawn, as the map's axes and frame place it."""
    page.wait_for_function(f"(() => {{ const f = ({MAP_FRAME_JS})(); return f && f.width > 100 && f.height > 100 }})()")  # laid out
    frame = page.evaluate(MAP_FRAME_JS)
    (x0, x1), (y0, y1) = frame["x"], frame["y"]
    assert x0 < x < x1 and y0 < y < y1, f"the zone is outside the map's view: {frame}"
    left = frame["left"] + (x - x0) / (x1 - x0) * frame["width"]
    top = frame["top"] + (y1 - y) / (y1 - y0) * frame["height"]
    page.mouse.click(left, top)


def evidence_of(served: Served, zone_id: int) -> dict[str, Any]:
    return json.loads(served.cli("evidence", "show", str(zone_id), "--format", "json"))


def shown_zone(page, zone_id: int):
    """The findings block of this zone in the click panel, once it is there."""
    block = page.locator(f".fg-evidence[data-zone='{zone_id}']")
    block.wait_for(timeout=60_000)
    return block


def cli_cards(served: Served, *filters: str) -> dict[str, str]:
    """The cards' numbers for these filters: ``forestguard stats`` in a process of its own."""
    total = json.loads(served.cli("stats", *filters, "--by", "", "--format", "json"))["rows"]
    classes = {r["classification"]: r for r in json.loads(served.cli("stats", *filters, "--by", "classification", "--format", "json"))["rows"]}
    empty = {"zones": 0, "area_ha": 0.0}
    legal, illegal = classes.get("legal", empty), classes.get("illegal", empty)
    return {
        "zones-total": f"{total[0]['zones']:,}" if total else "0",
        "hectares-total": f"{total[0]['area_ha']:,.2f}" if total else "0.00",
        "hectares-legal": f"{legal['area_ha']:,.2f}",
        "hectares-illegal": f"{illegal['area_ha']:,.2f}",
    }


def test_a_click_on_a_zone_shows_its_findings_with_sources_and_dates(page, evidence_dashboard):
    from playwright.sync_api import expect

    open_dashboard(page, evidence_dashboard)
    # One click at a time, each after the last one's answer: never a double tap, however slow the page.
    page.evaluate("() => { Bokeh.require('core/ui_gestures').UIGestures.doubletap_threshold = 0 }")
    zone_id, centre = zone_centre(evidence_dashboard, "half_in_pa")
    click_map_at(page, *centre)
    block = shown_zone(page, zone_id)
    expected = evidence_of(evidence_dashboard, zone_id)
    assert expected["suggested"] == "illegal" and [f["layer"] for f in expected["findings"]] == ["UCs"]
    expect(block.locator("p").first).to_contain_text(
        f"Zone {zone_id} (2020): classified {expected['classification']}, evidence suggests {expected['suggested']}")
    expect(block.locator("p b").nth(1)).to_have_text(expected["suggested"])  # the suggestion stands out
    for finding in expected["findings"]:
        row = block.locator("tbody tr").filter(has_text=finding["feature_id"])
        expect(row.locator("td").nth(0)).to_have_text(KIND_LABELS[finding["kind"]])
        expect(row.locator("td").nth(1)).to_have_text(f"{finding['layer']}{finding['feature_id']}")
        expect(row.locator("td").nth(3)).to_have_text(f"{finding['source']}as of {finding['as_of']}")
        assert finding["as_of"] == AS_OF[finding["layer"]]
        assert row.locator("td").nth(3).get_by_text(finding["as_of"]).evaluate("el => el.getClientRects().length") == 1  # one line
    assert block.evaluate("el => el.scrollWidth <= el.clientWidth")  # the findings fit the click panel's column
    # The zone's own row (nine columns) is wider than the column: it scrolls sideways, nothing is cut off.
    zone_row = page.locator("table", has=page.locator("th", has_text="classification")).first
    assert zone_row.evaluate(REACHABLE_JS)
    block.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOT), clip=panel_box(page, block))

    zone_id, centre = zone_centre(evidence_dashboard, "embargo_later")
    click_map_at(page, *centre)
    block = shown_zone(page, zone_id)
    expected = evidence_of(evidence_dashboard, zone_id)
    (finding,) = expected["findings"]
    assert finding["layer"] == "Embargos <IBAMA>" and finding["source"] == "Embargos <IBAMA> source"
    assert expected["classification"] is None
    expect(block.locator("p").first).to_contain_text(f"Zone {zone_id} (2021): unclassified, evidence suggests {expected['suggested']}")
    row = block.locator("tbody tr").first
    expect(row.locator("td").nth(1)).to_have_text(f"Embargos <IBAMA>{finding['feature_id']}")  # the name as text
    expect(row.locator("td").nth(3)).to_have_text(f"Embargos <IBAMA> sourceas of {AS_OF['Embargos <IBAMA>']}")
    assert block.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.evaluate(ELEMENTS_JS, "ibama") == 0  # no element made of the user's text
    assert page.dialogs == []


def panel_box(page, block) -> dict[str, float]:
    """The "Under the cursor" column, from its heading to the end of the findings."""
    heading = page.get_by_text("Under the cursor", exact=True).first.bounding_box()
    end = block.bounding_box()
    top = min(heading["y"], end["y"]) - 4
    left = min(heading["x"], end["x"]) - 4
    return {"x": left, "y": top, "width": max(end["x"] + end["width"] - left, 330) + 8, "height": end["y"] + end["height"] - top + 8}


def choose_inside(page, label: str) -> None:
    """Pick an entry of the "Evidence" list, as a user does."""
    page.locator("select").filter(has=page.locator("option", has_text=label)).select_option(label=label)


def test_the_inside_filter_gives_the_cli_numbers_and_goes_to_the_link(page, evidence_dashboard):
    open_dashboard(page, evidence_dashboard)
    expect_numbers(page, cli_cards(evidence_dashboard))
    choose_inside(page, f"Inside {KIND_LABELS['protected_area']}")
    numbers = cli_cards(evidence_dashboard, "--overlaps", "protected_area")
    assert numbers["zones-total"] == "2"  # half_in_pa and pa_created_later: not the zones only touching one
    expect_numbers(page, numbers)
    wait_until(lambda: url_query(page).get("inside") == "protected_area", timeout=30, what="the filter in the link")
    shared = page.context.new_page()  # the link opens the same filter
    open_dashboard(shared, evidence_dashboard, "?" + urllib.parse.urlencode({"inside": "protected_area"}))
    expect_numbers(shared, numbers)

    choose_inside(page, "Inside protected areas, indigenous lands or embargoes")
    restricted = cli_cards(evidence_dashboard, *(a for kind in RESTRICTED_KINDS for a in ("--overlaps", kind)))
    assert restricted["zones-total"] == "3"  # and embargo_later
    expect_numbers(page, restricted)
    wait_until(lambda: url_query(page).get("inside") == "restricted", timeout=30, what="the filter in the link")
