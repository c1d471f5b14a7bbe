"""notebooks/getting_started.ipynb: executes on a demo store (papermill), shows each step, and is a report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from forestguard import stores
from forestguard.reports.html import external_resources
from forestguard.reports.runner import run_report
from forestguard.schema import Classification
from forestguard.stores.base import ZoneFilter
from tests.fixtures.services import make_store

from test_report import ISOLATED, assert_reproducible  # tests/reports is a rootdir folder, not a package

GETTING_STARTED = Path(__file__).resolve().parents[2] / "notebooks" / "getting_started.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory, demo_small):
    """The notebook run once by the report runner, as `forestguard report run` does."""
    store = make_store(tmp_path_factory.mktemp("store") / "demo.duckdb", demo_small)
    out = tmp_path_factory.mktemp("getting-started")
    with pytest.MonkeyPatch.context() as patch:  # the kernel inherits the environment: keep it the tests'
        for name in ISOLATED:
            patch.delenv(name, raising=False)
        patch.setenv("FORESTGUARD_DATA_DIR", str(out / "data"))
        result = run_report(GETTING_STARTED, {"country": "Peru", "years": "2019-2022"}, store, out)
    assert result.ok, result.error
    return result, out, store


def _outputs(notebook, needle: str) -> list:
    """Outputs of the code cell whose source contains ``needle``."""
    cells = [c for c in notebook.cells if c.cell_type == "code" and needle in c.source]
    assert len(cells) == 1, needle
    return cells[0].outputs


def test_it_is_a_report_whose_numbers_forestguard_stats_reproduces(executed):
    result, out, _ = executed
    recorded = json.loads((out / "stats.json").read_text())
    assert recorded["parameters"]["country"] == "Peru" and recorded["statistics"]
    assert_reproducible(recorded)
    html = (out / result.files["html"]).read_text(encoding="utf-8")
    assert external_resources(html) == [] and "cdn.bokeh.org" not in html  # opens offline


def test_each_step_shows_what_it_says(executed):
    result, out, store_url = executed
    notebook = nbformat.read(out / result.files["ipynb"], as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    with stores.open(store_url, read_only=True) as store:
        total = store.count()
        chosen = ZoneFilter(countries=("Peru",), year_from=2019, year_to=2022, classifications=(Classification.ILLEGAL,), min_confidence=0.8)
        illegal = store.count(chosen)
    described = _outputs(notebook, "store.describe()")[0]["data"]["text/plain"]
    assert f"'zones': {total}" in described
    pivot = _outputs(notebook, "frame.pivot(")[0]["data"]
    assert "text/html" in pivot and re.search(r"illegal.*legal", pivot["text/plain"], re.S) and "2019" in pivot["text/plain"]
    printed = "".join(o.get("text", "") for o in _outputs(notebook, "store.zones(illegal"))
    assert f"{illegal:,} illegal zones with confidence" in printed and illegal > 0
    aggregate = _outputs(notebook, "maps.store_map(")[0]["data"]["text/plain"]
    assert "xarray.DataArray" in aggregate and "classification: 3" in aggregate
    overlay = _outputs(notebook, "pn.Column(chosen")
    assert any("application/vnd.holoviews_exec.v0+json" in o.get("data", {}) for o in overlay)  # Panel + HoloViews (Bokeh) output
