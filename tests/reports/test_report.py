"""Report notebooks run by papermill: numbers equal ``forestguard stats``, HTML self-contained, bad parameters explained."""

from __future__ import annotations

import json
import multiprocessing
import re
import shlex
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from forestguard import stores
from forestguard.cli import cli, main
from forestguard.errors import UserError
from forestguard.reports import ReportError, country_summary, open_source, parse_years, resolve_source, stats_record, yearly_overview
from forestguard.reports.html import export_html, external_resources
from forestguard.reports.runner import ReportResult, coerce_parameters, report_name, run_report
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.fixtures.services import make_store

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
COUNTRY_REPORT = NOTEBOOKS / "country_report.ipynb"
OVERVIEW = NOTEBOOKS / "yearly_overview.ipynb"
ISOLATED = ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "S3_BUCKET", "SENTRY_DSN")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory, demo_small) -> str:
    return make_store(tmp_path_factory.mktemp("store") / "demo.duckdb", demo_small)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, demo_store: str) -> dict[str, tuple[ReportResult, Path]]:
    """Both notebooks run once, side by side (each kernel is the slow part), for the tests that inspect them."""
    out = tmp_path_factory.mktemp("reports")
    wanted = {"country": (COUNTRY_REPORT, {"country": "brazil", "years": "2020-2023"}), "overview": (OVERVIEW, {"year": "2023"})}
    with pytest.MonkeyPatch.context() as patch:  # the kernels inherit the environment: keep it the tests'
        for name in ISOLATED:
            patch.delenv(name, raising=False)
        patch.setenv("FORESTGUARD_DATA_DIR", str(out / "data"))
        with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {key: pool.submit(run_report, nb, params, demo_store, out / key) for key, (nb, params) in wanted.items()}
            results = {key: (future.result(), out / key) for key, future in futures.items()}
    for result, _ in results.values():
        assert result.ok, result.error
    return results


@pytest.fixture(scope="module")
def country_run(runs):
    return runs["country"]


def assert_reproducible(recorded: dict) -> None:
    """Every statistic in a stats.json equals what its recorded `forestguard stats` command prints."""
    for name, entry in recorded["statistics"].items():
        entry = dict(entry)
        command = shlex.split(entry.pop("command"))
        assert command[:2] == ["forestguard", "stats"], name
        outcome = CliRunner().invoke(cli, command[1:], catch_exceptions=False)
        assert outcome.exit_code == 0, outcome.output
        assert json.loads(outcome.output) == entry, f"{name} differs from `{shlex.join(command)}`"


def test_stats_json_equals_forestguard_stats(country_run, demo_store: str) -> None:
    result, out = country_run
    recorded = json.loads((out / "stats.json").read_text())
    assert recorded["report"] == "country_report"
    assert recorded["parameters"] == {"country": "Brazil", "years": "2020-2023"}
    with stores.open(demo_store, read_only=True) as store:
        assert recorded["source"] == {"engine": "duckdb", "url": demo_store, "data_version": store.data_version(), "snapshot_id": None}
        direct = statistics(store, ZoneFilter(countries=("Brazil",), year_from=2020, year_to=2023), ("country", "year", "classification"))
    assert set(recorded["statistics"]) >= {"by_year_classification", "by_year", "total"}
    assert_reproducible(recorded)
    by_class = dict(recorded["statistics"]["by_year_classification"])
    by_class.pop("command")
    assert by_class == direct.to_dict()
    yearly_area = sum(row["area_ha"] for row in recorded["tables"]["yearly"])
    assert yearly_area == pytest.approx(sum(row["area_ha"] for row in direct.rows))
    assert recorded["run"]["notebook"] == "country_report.ipynb" and len(recorded["run"]["notebook_sha256"]) == 64
    assert result.source == recorded["source"]


def test_html_embeds_plots_and_opens_offline(country_run) -> None:
    result, out = country_run
    html = (out / result.files["html"]).read_text(encoding="utf-8")
    assert external_resources(html) == []
    assert '<script src="http' not in html
    assert html.count("Bokeh.embed.embed_items_notebook") >= 6  # interactive HoloViews charts and the map
    assert '"output_backend":"webgl"' not in html  # canvas charts: no WebGL context per chart
    assert "cdn.bokeh.org" not in html and "cdn.holoviz.org" not in html  # BokehJS and Panel's CSS are inline
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 2  # print figure and map image
    summary = json.loads((out / "stats.json").read_text())["summary"]
    assert summary and all(line.split(";")[0] in html for line in summary[:1])
    assert "country_summary(store" not in html  # code hidden by default
    assert "Report not produced" not in html


def test_executed_notebook_is_kept(country_run) -> None:
    result, out = country_run
    executed = nbformat.read(out / result.files["ipynb"], as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'country = "brazil"' in injected[0].source
    assert not any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.browser
def test_report_renders_in_a_browser_without_network(country_run, page) -> None:
    result, out = country_run
    remote: list[str] = []

    def offline(route) -> None:
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto((out / result.files["html"]).as_uri())
    rendered = """() => window.Bokeh !== undefined && Bokeh.index.roots.filter(
        view => view.model.type === "Row" && view.child_views.length > 0 && view.el.getBoundingClientRect().width > 0
    ).length >= 6"""
    page.wait_for_function(rendered, timeout=30_000)
    assert remote == []


def test_yearly_overview_report(runs, demo_store: str) -> None:
    result, out = runs["overview"]
    recorded = json.loads((out / "stats.json").read_text())
    assert recorded["parameters"] == {"year": 2023} and recorded["report"] == "yearly_overview"
    assert_reproducible(recorded)
    with stores.open(demo_store, read_only=True) as store:
        countries = statistics(store, ZoneFilter(year_from=2023, year_to=2023), ("country",)).rows
    assert [row["country"] for row in recorded["tables"]["ranking"]] == [
        row["country"] for row in sorted(countries, key=lambda r: (-r["area_ha"], -r["zones"]))
    ]
    html = (out / result.files["html"]).read_text(encoding="utf-8")
    assert external_resources(html) == [] and html.count("Bokeh.embed.embed_items_notebook") >= 5


def test_invalid_country_fails_with_one_clear_line(tmp_path: Path, demo_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "atlantis"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "run", str(COUNTRY_REPORT), "-p", "country=Atlantis", "--source", demo_store, "--out", str(out)])
    assert exit_info.value.code == 1
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("error: ") and "unknown country 'Atlantis'" in stderr[0]
    html = next(out.glob("*.html")).read_text(encoding="utf-8")
    assert "This report could not be produced" in html and "unknown country" in html and "Atlantis" in html
    assert "Traceback" not in html and not (out / "stats.json").exists()
    executed = nbformat.read(next(out.glob("*.ipynb")), as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert [e.ename for e in errors] == ["ReportError"]  # papermill's error cell is kept


def test_unknown_parameter_is_refused_before_any_kernel(tmp_path: Path, demo_store: str) -> None:
    with pytest.raises(UserError, match="unknown parameter 'contry'"):
        run_report(COUNTRY_REPORT, {"contry": "Brazil"}, source=demo_store, out=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- without a kernel -------------------------------------------------------------------


def test_parse_years() -> None:
    assert (parse_years("2019-2024").first, parse_years("2019-2024").last) == (2019, 2024)
    assert (parse_years("2023").first, parse_years("2023").last) == (2023, 2023)
    assert (parse_years(2021).first, parse_years("2019–").last) == (2021, None)
    assert parse_years("").label == "all years"
    for bad in ("2024-2019", "twenty", "19-24"):
        with pytest.raises(ReportError):
            parse_years(bad)


def test_parameters_take_the_notebook_types() -> None:
    declared = {"year": {"inferred_type_name": "int"}, "years": {"inferred_type_name": "str"}, "source": {}, "output_dir": {}}
    assert coerce_parameters(declared, {"year": "2023", "years": 2023}) == {"year": 2023, "years": "2023"}
    with pytest.raises(UserError, match="not a valid int"):
        coerce_parameters(declared, {"year": "last"})
    with pytest.raises(UserError, match="unknown parameter"):
        coerce_parameters(declared, {"country": "Peru"})


def test_country_summary_matches_statistics(demo_store: str) -> None:
    with open_source(demo_store) as store:
        report = country_summary(store, "Brazil", "2020-2023")
        per_year = statistics(store, ZoneFilter(countries=("Brazil",), year_from=2020, year_to=2023), ("year",))
        assert report.yearly["zones"].tolist() == [r["zones"] for r in per_year.rows]
        assert report.yearly["area_ha"].tolist() == pytest.approx([r["area_ha"] for r in per_year.rows])
        classes = report.yearly[["legal_ha", "illegal_ha", "unclassified_ha"]].sum(axis=1)
        assert classes.tolist() == pytest.approx(report.yearly["area_ha"].tolist())
        assert int(report.confidence["zones"].sum()) == sum(r["zones"] for r in per_year.rows)
        assert any("Brazil" in line for line in report.key_changes())
        with pytest.raises(ReportError, match=r"Did you mean 'Brazil'"):
            country_summary(store, "Brasil", "2020")
        with pytest.raises(ReportError, match=r"no zones for Brazil in 1990.*2015–2024"):
            country_summary(store, "Brazil", "1990")


def test_yearly_overview_ranks_every_country(demo_store: str) -> None:
    with open_source(demo_store) as store:
        overview = yearly_overview(store, 2023)
        by_country = statistics(store, ZoneFilter(year_from=2023, year_to=2023), ("country",))
        previous = {r["country"]: r["area_ha"] for r in statistics(store, ZoneFilter(year_from=2022, year_to=2022), ("country",)).rows}
        with pytest.raises(ReportError, match="no zones in 2031"):
            yearly_overview(store, 2031)
    assert sorted(overview.ranking["country"]) == sorted(r["country"] for r in by_country.rows)
    assert overview.ranking["area_ha"].is_monotonic_decreasing and overview.ranking["rank"].tolist()[:2] == [1, 2]
    top = overview.ranking.iloc[0]
    assert top["change_ha"] == pytest.approx(top["area_ha"] - previous[top["country"]])
    assert overview.continents["area_ha"].sum() == pytest.approx(sum(r["area_ha"] for r in by_country.rows))


def test_snapshot_source_is_recorded_with_its_id(tmp_path: Path, demo_store: str) -> None:
    from forestguard import snapshots

    with stores.open(demo_store, read_only=True) as store:
        manifest = snapshots.create(store, tmp_path / "snapshots")
    with open_source(f"snapshot:{tmp_path / 'snapshots' / manifest.id}") as snapshot:
        recorded = stats_record(country_summary(snapshot, "Peru", "2020-2022"))
    assert recorded["source"]["engine"] == "snapshot" and recorded["source"]["snapshot_id"] == manifest.id
    assert_reproducible(recorded)


def test_html_template_links_nothing_online() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hello"), nbformat.v4.new_code_cell("answer_to_everything = 42")])
    html = export_html(nb, title="t")
    assert external_resources(html) == [] and "Hello" in html and "answer_to_everything" not in html
    assert "answer_to_everything" in export_html(nb, title="t", show_code=True)
    assert external_resources('<script src="https://cdn.example/x.js"></script><link href="//cdn/x.css">') != []


def test_source_is_found_from_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "zones.duckdb").touch()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where Jupyter starts a notebook's kernel
    assert resolve_source("data/zones.duckdb") == str(tmp_path / "data" / "zones.duckdb")
    assert resolve_source("postgresql://u:p@h/db") == "postgresql://u:p@h/db"


def test_report_names_are_safe_paths() -> None:
    assert report_name("notebooks/country_report.ipynb", {"country": "Côte d'Ivoire", "years": "2019-2024", "source": "x"}) == (
        "country_report-cote-d-ivoire-2019-2024"
    )
