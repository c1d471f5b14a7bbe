"""notebooks/evidence_report.ipynb: a self-contained HTML dossier whose numbers the recorded commands print again."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner

from forestguard import stores
from forestguard.areas import Area
from forestguard.cli import cli
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.rules import load_rules
from forestguard.reports import ReportError
from forestguard.reports.evidence import evidence_summary
from forestguard.reports.html import external_resources
from forestguard.reports.runner import run_report

from .conftest import cell, write_geojson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from test_report import ISOLATED, NOTEBOOKS, assert_reproducible  # noqa: E402  (tests/reports is not a package)


@pytest.fixture(scope="module")
def evidence_store(tmp_path_factory) -> str:
    from .conftest import add_layers, case_zones

    folder = tmp_path_factory.mktemp("evidence-report")
    url = str(folder / "cases.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(case_zones())
        add_layers(store, folder)
        compute_evidence(store, load_rules())
        store.save_area(Area.of("Cases <all>", shapely.box(-55.01, -5.01, -54.49, -4.98)))
    return url


@pytest.fixture(scope="module")
def plots_run(tmp_path_factory, evidence_store):
    out = tmp_path_factory.mktemp("evidence-report-out")
    plots = write_geojson(out / "plots.geojson", [cell(3).buffer(0.001, join_style="mitre"), cell(9)], [{"pid": "P<3>"}, {"pid": "P9"}])
    with pytest.MonkeyPatch.context() as patch:
        for name in ISOLATED:
            patch.delenv(name, raising=False)
        patch.setenv("FORESTGUARD_DATA_DIR", str(out / "data"))
        result = run_report(NOTEBOOKS / "evidence_report.ipynb", {"area": "", "plots": str(plots), "id_field": "pid", "cutoff": "2020-12-31"},
                            evidence_store, out)
    assert result.ok, result.error
    return result, out


def test_the_plots_dossier_records_numbers_its_commands_print_again(plots_run):
    result, out = plots_run
    recorded = json.loads((out / "stats.json").read_text())
    assert recorded["report"] == "evidence_report" and recorded["parameters"]["cutoff"] == "2020-12-31"
    assert_reproducible(recorded)  # stats --area plots.geojson --by suggested; ... --overlaps ... --by classification
    assert {r["suggested"]: r["zones"] for r in recorded["statistics"]["by_suggested"]["rows"]} == {"illegal": 1, "undetermined": 1}
    command = shlex.split(recorded["tables"]["plots_command"][0]["command"])
    printed = CliRunner().invoke(cli, command[1:], catch_exceptions=False)
    assert printed.exit_code == 0 and json.loads(printed.output)["plots"] == recorded["tables"]["plots"]
    assert [(p["plot_id"], p["verdict"]) for p in recorded["tables"]["plots"]] == [("P<3>", "high"), ("P9", "high")]
    assert {(f["zone"], f["feature"], f["source"], f["as_of"]) for f in recorded["tables"]["findings"]} >= {(4, "UC-half", "UCs source", "2024-06-30")}


def test_the_html_opens_offline_with_findings_and_escaped_names(plots_run):
    result, out = plots_run
    html = (out / result.files["html"]).read_text(encoding="utf-8")
    assert external_resources(html) == [] and "Report not produced" not in html
    assert html.count("Bokeh.embed.embed_items_notebook") >= 1  # the map
    assert "UC-half" in html and "UCs source" in html and "2024-06-30" in html  # a finding with its source and date
    assert "P&lt;3&gt;" in html and "<3>" not in re.sub(r"<script.*?</script>", "", html, flags=re.S)  # the plot id is text, never markup


def test_an_area_dossier_and_its_mistakes(evidence_store):
    with stores.open(evidence_store, read_only=True) as store:
        report = evidence_summary(store, area="Cases <all>")
        assert sum(r["zones"] for r in report.by_suggested.result.rows) == 10
        assert sum(r["zones"] for r in report.inside_restricted.result.rows) == 3
        assert report.plots is None and report.parameters == {"area": "Cases <all>", "rules_version": "1"}
        assert report.key_changes()[1] == "3 of them lie partly inside protected areas, indigenous lands, embargoes."
        with pytest.raises(ReportError, match="either area=NAME"):
            evidence_summary(store, area="Cases <all>", plots="x.geojson")
        with pytest.raises(ReportError, match="no saved area 'Nowhere'"):
            evidence_summary(store, area="Nowhere")
