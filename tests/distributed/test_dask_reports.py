"""Reports and pipelines on a real Dask cluster reading an S3 (moto) snapshot."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from forestguard import snapshots, stores
from forestguard.cli import main
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

pytestmark = [pytest.mark.s3, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ISOLATED = ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "S3_BUCKET", "SENTRY_DSN", "FORESTGUARD_DASK")


@pytest.fixture
def s3_snapshot(demo_duckdb: str, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> snapshots.Manifest:
    for name in ISOLATED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))  # the report kernels' too
    with stores.open(demo_duckdb) as store:
        return snapshots.create(store, s3.url("reports"), partition_rows=400)


def test_report_run_computes_its_statistics_and_map_on_the_cluster(s3_snapshot, dask_s3_cluster, tmp_path: Path, capsys) -> None:
    source = f"snapshot:{s3_snapshot.location}"
    main(["report", "run", str(NOTEBOOKS / "country_report.ipynb"), "-p", "country=Brazil", "-p", "years=2020-2023",
          "--source", source, "--out", str(tmp_path / "report"), "--dask", dask_s3_cluster.address])
    assert "html" in capsys.readouterr().out
    recorded = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert recorded["source"]["engine"] == "dask" and recorded["source"]["snapshot_id"] == s3_snapshot.id
    # The kernel read the manifest only: the partitions were fetched by the workers.
    assert not (tmp_path / "client-data" / "cache" / "snapshots" / s3_snapshot.id).exists()
    for name, entry in recorded["statistics"].items():  # each number equals its recorded command's on the embedded engine
        main(shlex.split(entry["command"])[1:])
        embedded = json.loads(capsys.readouterr().out)
        assert embedded["engine"] == "snapshot" and entry["engine"] == "dask"
        assert entry["rows"] == embedded["rows"], name
    with stores.open(source) as embedded_store:
        direct = statistics(embedded_store, ZoneFilter(countries=("Brazil",), year_from=2020, year_to=2023), ("country", "year", "classification"))
    assert recorded["statistics"]["by_year_classification"]["rows"] == direct.rows


def test_pipeline_run_on_the_cluster(s3_snapshot, dask_s3_cluster, tmp_path: Path, capsys) -> None:
    spec = {"name": "dask", "notebook": str(NOTEBOOKS / "country_report.ipynb"), "parameters": {"country": ["Peru"], "years": "2021-2023"},
            "source": f"snapshot:{s3_snapshot.location}", "output": str(tmp_path / "out"), "retries": 0, "workers": 1}
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(spec), encoding="utf-8")
    main(["pipeline", "run", str(pipeline), "--quiet", "--format", "json", "--dask", dask_s3_cluster.address])
    summary = json.loads(capsys.readouterr().out)
    assert [o["status"] for o in summary["items"]] == ["ok"], summary
    # The item ran on a worker, which read the snapshot itself (its own data folder holds the partitions it read).
    assert dask_s3_cluster.cached_files() & {f.path for f in s3_snapshot.files}
