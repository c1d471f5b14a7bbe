"""notebooks/area_report.ipynb: the country report's standards for one area (numbers = `forestguard stats --area`)."""

from __future__ import annotations

import json
import re

import pytest
import shapely

from forestguard import stores
from forestguard.areas import Area
from forestguard.reports import ReportError, area_summary
from forestguard.reports.html import external_resources
from forestguard.reports.runner import run_report
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

from tests.areas.helpers import geodesic_ha
from test_report import ISOLATED, NOTEBOOKS, assert_reproducible  # tests/reports is on the path (no package)

AREA = shapely.Polygon([(-62, -12), (-50, -12), (-50, -4), (-56, -8), (-62, -4), (-62, -12)])
NAME = "Concession <12> d'Or"


@pytest.fixture(scope="module")
def area_store(tmp_path_factory, demo_small) -> str:
    url = str(tmp_path_factory.mktemp("area-report") / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
        store.save_area(Area.of(NAME, AREA))
    return url


@pytest.fixture(scope="module")
def area_run(tmp_path_factory, area_store):
    out = tmp_path_factory.mktemp("area-report-out")
    with pytest.MonkeyPatch.context() as patch:
        for name in ISOLATED:
            patch.delenv(name, raising=False)
        patch.setenv("FORESTGUARD_DATA_DIR", str(out / "data"))
        result = run_report(NOTEBOOKS / "area_report.ipynb", {"area": NAME, "years": "2018-2023"}, area_store, out)
    assert result.ok, result.error
    return result, out


def test_every_number_is_what_stats_area_prints(area_run, area_store, demo_small):
    result, out = area_run
    recorded = json.loads((out / "stats.json").read_text())
    assert recorded["report"] == "area_report" and recorded["parameters"] == {"area": NAME, "years": "2018-2023"}
    assert_reproducible(recorded)  # each command includes --area NAME and prints exactly the recorded JSON
    assert all("--area" in entry["command"] for entry in recorded["statistics"].values())
    with stores.open(area_store, read_only=True) as store:
        direct = statistics(store, ZoneFilter(area=store.saved_area(NAME), year_from=2018, year_to=2023), ("year",))
    assert [(r["year"], r["area_ha"]) for r in recorded["tables"]["yearly"]] == [(r["year"], r["area_ha"]) for r in direct.rows]
    chosen = demo_small[demo_small["year"].between(2018, 2023)]
    inside = sum(geodesic_ha(shapely.intersection(g, AREA)) for g in chosen.geometry.values if shapely.intersects(g, AREA))
    assert sum(r["area_ha"] for r in recorded["tables"]["top_regions"]) == pytest.approx(inside, abs=0.05)
    assert recorded["tables"]["area"][0]["name"] == NAME


def test_the_html_opens_offline_with_the_outlined_map(area_run):
    result, out = area_run
    html = (out / result.files["html"]).read_text(encoding="utf-8")
    assert external_resources(html) == [] and '<script src="http' not in html
    assert html.count("Bokeh.embed.embed_items_notebook") >= 2  # the map with its outline, the yearly bars
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 2  # print figure and outlined map image
    assert "Concession &lt;12&gt; d&#x27;Or" in html or "Concession &lt;12&gt; d'Or" in html
    outside_scripts = re.sub(r"<script.*?</script>", "", html, flags=re.S)  # Bokeh's JSON carries it as text for canvas titles
    assert "<12>" not in outside_scripts  # in the page itself the name is never markup
    assert "Report not produced" not in html


def test_an_unknown_area_is_one_readable_line(area_store):
    with stores.open(area_store, read_only=True) as store:
        with pytest.raises(ReportError, match=r"^no saved area 'Nowhere' .*saved: \"Concession <12> d'Or\""):
            area_summary(store, "Nowhere", "2019-2024")
        with pytest.raises(ReportError, match="no zones meet the area"):
            area_summary(store, NAME, "1990-1991")
