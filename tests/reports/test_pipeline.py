"""Report pipelines: isolated failures, resumable after a kill, Dask executor, run keys.

The pipeline mechanics do not depend on what a notebook draws, so these tests
run a small report notebook (the real computations and stats.json, no charts)
to keep each kernel to a couple of seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from forestguard import storage, stores
from forestguard.cli import main
from forestguard.config import settings
from forestguard.pipelines import Item, OutputLayout, SourceFacts, load_pipeline, plan, run_pipeline
from forestguard.pipelines.state import COMPLETE
from forestguard.reports.base import SourceInfo
from forestguard.reports.runner import report_name
from tests.fixtures.services import wait_until

SMALL_REPORT = [
    nbformat.v4.new_code_cell(
        'country: str = "Brazil"\nyears: str = "2019-2024"\nsource: str = ""\noutput_dir: str = ""', metadata={"tags": ["parameters"]}
    ),
    nbformat.v4.new_code_cell(
        "from forestguard import reports\n"
        "store = reports.open_source(source)\n"
        "report = reports.country_summary(store, country, years)\n"
        "reports.key_changes(report)"
    ),
    nbformat.v4.new_code_cell("reports.record(report, output_dir)"),
]


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    path = tmp_path / "small_report.ipynb"
    nb = nbformat.v4.new_notebook(cells=SMALL_REPORT, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    nbformat.write(nb, path)
    return path


def write_pipeline(tmp_path: Path, notebook: Path, source: str, countries: list[str], **settings) -> Path:
    spec = {
        "name": "test",
        "notebook": str(notebook),
        "parameters": {"country": countries, "years": "2021-2023"},
        "source": source,
        "output": str(tmp_path / "out"),
        "retries": 1,
        "backoff": 0,
        "workers": 2,
        **settings,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def item_dir(tmp_path: Path, country: str) -> Path:
    return tmp_path / "out" / report_name("small_report", {"country": country, "years": "2021-2023"})


def test_one_failing_item_does_not_stop_the_others(tmp_path: Path, notebook: Path, demo_duckdb: str, capsys: pytest.CaptureFixture[str]) -> None:
    countries = ["Brazil", "Peru", "Atlantis", "Bolivia"]
    pipeline = write_pipeline(tmp_path, notebook, demo_duckdb, countries)
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", "run", str(pipeline), "--quiet"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    rows = {line.split()[0]: line.split()[1] for line in captured.out.splitlines()[1:5]}
    assert rows == {item_dir(tmp_path, c).name: ("failed" if c == "Atlantis" else "ok") for c in countries}
    assert "unknown country 'Atlantis'" in captured.out
    assert "3 ok, 1 failed, 0 skipped" in captured.out
    assert captured.err.strip().splitlines()[-1] == "error: 1 of 4 report(s) failed"

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == {"ok": 3, "failed": 1, "skipped": 0, "pending": 0}
    failed = [i for i in summary["items"] if i["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["attempts"] == 1  # a bad parameter is not retried
    for country in ("Brazil", "Peru", "Bolivia"):
        stats = json.loads((item_dir(tmp_path, country) / "stats.json").read_text())
        assert stats["parameters"]["country"] == country and (item_dir(tmp_path, country) / COMPLETE).exists()
    atlantis = item_dir(tmp_path, "Atlantis")
    assert not (atlantis / COMPLETE).exists() and not (atlantis / "stats.json").exists()
    executed = nbformat.read(atlantis / f"{atlantis.name}.ipynb", as_version=4)
    assert [o.ename for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"] == ["ReportError"]
    index = (tmp_path / "out" / "index.html").read_text()
    assert all(f'href="{item_dir(tmp_path, c).name}/{item_dir(tmp_path, c).name}.html"' in index for c in countries)


def test_killed_pipeline_reruns_only_what_is_missing(tmp_path: Path, notebook: Path, demo_duckdb: str) -> None:
    countries = ["Brazil", "Peru", "Bolivia"]
    pipeline = write_pipeline(tmp_path, notebook, demo_duckdb, countries, workers=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "forestguard", "pipeline", "run", str(pipeline), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    markers = lambda: sorted(tmp_path.glob(f"out/*/{COMPLETE}"))  # noqa: E731
    try:
        wait_until(lambda: len(markers()) >= 1, timeout=120, what="the first completed report")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole run: CLI process and its pool workers
        process.wait()
    finished = {m.parent.name: m.stat().st_mtime_ns for m in markers()}
    assert 1 <= len(finished) < len(countries)

    run = run_pipeline(load_pipeline(pipeline), workers=2, progress=False)
    statuses = {o.name: o.status for o in run.outcomes}
    assert {n for n, s in statuses.items() if s == "skipped"} == set(finished)
    assert {n for n, s in statuses.items() if s == "ok"} == {item_dir(tmp_path, c).name for c in countries} - set(finished)
    assert {m.parent.name: m.stat().st_mtime_ns for m in markers() if m.parent.name in finished} == finished  # not redone
    assert len(markers()) == len(countries) and not (tmp_path / "out" / ".staging").exists()


def test_dask_executor_on_a_local_cluster(tmp_path: Path, notebook: Path, demo_duckdb: str) -> None:
    pipeline = write_pipeline(tmp_path, notebook, demo_duckdb, ["Brazil", "Indonesia"])
    run = run_pipeline(load_pipeline(pipeline), executor="dask", workers=2, progress=False)
    assert sorted(o.status for o in run.outcomes) == ["ok", "ok"]
    for country in ("Brazil", "Indonesia"):
        assert json.loads((item_dir(tmp_path, country) / "stats.json").read_text())["parameters"]["country"] == country
    again = run_pipeline(load_pipeline(pipeline), executor="dask", workers=2, progress=False)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]  # nothing pending: no cluster needed


def test_timeout_is_retried_with_backoff_then_reported(tmp_path: Path, notebook: Path, demo_duckdb: str) -> None:
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell("import time\ntime.sleep(120)"))
    nbformat.write(nb, notebook)
    pipeline = write_pipeline(tmp_path, notebook, demo_duckdb, ["Brazil"], timeout=3, retries=1, backoff=0)
    run = run_pipeline(load_pipeline(pipeline), progress=False)
    [outcome] = run.outcomes
    assert (outcome.status, outcome.attempts) == ("failed", 2)
    assert "timed out" in outcome.error
    assert outcome.duration_s < 60  # the kernel was interrupted, not waited for


def test_dry_run_lists_items_and_runs_nothing(tmp_path: Path, notebook: Path, demo_duckdb: str, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = write_pipeline(tmp_path, notebook, demo_duckdb, ["Brazil", "Peru"])
    main(["pipeline", "run", str(pipeline), "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["item", "status", "duration", "run", "key"]
    assert [line.split()[1] for line in lines[1:3]] == ["pending", "pending"]
    assert all(len(line.split()[-1]) == 20 for line in lines[1:3])
    assert not (tmp_path / "out").exists()


def test_grid_every_country_and_last_years(tmp_path: Path, notebook: Path, demo_duckdb: str) -> None:
    pipeline = write_pipeline(tmp_path, notebook, demo_duckdb, [])
    text = pipeline.read_text().replace("country: []", "country: {each: country, except: [Brazil]}")
    pipeline.write_text(text.replace("years: 2021-2023", "years: {each: year, last: 2}"))
    spec = load_pipeline(pipeline)
    with stores.open(demo_duckdb, read_only=True) as store:
        facts = SourceFacts.of(store)
        source = SourceInfo("duckdb", demo_duckdb, store.data_version())
    items = plan(spec, facts, source)
    expected = {(c, str(y)) for c, y in facts.pairs if c != "Brazil" and y in facts.years[-2:]}
    assert {(i.parameters["country"], i.parameters["years"]) for i in items} == expected


def test_run_key_follows_notebook_parameters_and_data(tmp_path: Path, notebook: Path, demo_duckdb: str) -> None:
    spec = load_pipeline(write_pipeline(tmp_path, notebook, demo_duckdb, ["Brazil", "Peru"]))
    facts = SourceFacts(("Brazil", "Peru"), (2021, 2022, 2023), frozenset())
    version_1 = SourceInfo("duckdb", demo_duckdb, 1)
    keys = [i.key for i in plan(spec, facts, version_1)]
    assert keys == [i.key for i in plan(spec, facts, version_1)] and len(set(keys)) == 2
    assert not set(keys) & {i.key for i in plan(spec, facts, SourceInfo("duckdb", demo_duckdb, 2))}
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[2].source += "\nprint('edited')"
    nbformat.write(nb, notebook)
    assert not set(keys) & {i.key for i in plan(spec, facts, version_1)}


def test_s3_output_publishes_marker_last_and_resumes_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With s3:// output the published marker decides what is complete (a fresh task has no local state)."""
    uploads: list[str] = []

    class Bucket(storage.LocalFolder):  # an S3 prefix stood in for by a folder, recording upload order
        def put_file(self, name: str, source: Path) -> None:
            uploads.append(f"{self.path.name}/{name}")
            super().put_file(name, source)

    monkeypatch.setattr(storage, "at", lambda url: Bucket(tmp_path / "bucket" / str(url).removeprefix("s3://")))
    layout = OutputLayout.for_output("s3://reports/yearly", "yearly")
    assert layout.publish_to == "s3://reports/yearly" and layout.root == settings().reports_dir / ".pipelines" / "yearly"
    item = Item("nb.ipynb", "{}", {"country": "Peru"}, "nb-peru", "k1")
    staged = layout.staging_dir(item)
    (staged / "nb-peru.html").write_text("<html></html>")
    (staged / "stats.json").write_text("{}")
    layout.commit(item, staged, {"status": "ok"})
    assert layout.completed(item) is None  # built here, not published yet: not done
    layout.publish_item(item)
    assert uploads[-1] == f"nb-peru/{COMPLETE}" and set(uploads) == {f"nb-peru/{n}" for n in ("nb-peru.html", "stats.json", COMPLETE)}
    shutil.rmtree(layout.root)  # a new task on a new machine
    assert layout.completed(item)["key"] == "k1"
    assert layout.completed(Item("nb.ipynb", "{}", {"country": "Peru"}, "nb-peru", "k2")) is None  # new data version


def test_one_run_per_output_at_a_time(tmp_path: Path) -> None:
    from forestguard.errors import UserError

    layout = OutputLayout(tmp_path / "out")
    with layout.locked():
        with pytest.raises(UserError, match="another run of this pipeline"):
            with layout.locked():
                pass
    with layout.locked():  # released when the first run ends
        assert not any(p.name.endswith(".lock") for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "give either notebook"),
        ("notebook: nope.ipynb\n", "not found"),
        ("notebook: NB\nworkerz: 2\n", "unknown key(s) workerz"),
        ("notebook: NB\nparameters: {country: {each: planet}}\n", "each/span is 'country' or 'year'"),
        ("notebook: NB\nretries: -1\n", "retries must be a whole number"),
    ],
)
def test_pipeline_file_mistakes_are_one_line_errors(tmp_path: Path, notebook: Path, text: str, message: str) -> None:
    from forestguard.errors import UserError

    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("NB", str(notebook)))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pipeline(path)
