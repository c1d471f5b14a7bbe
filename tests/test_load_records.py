"""Load records: an ingest is counted once, on both engines, even when killed at its commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from forestguard import stores
from forestguard.cli import main
from forestguard.demo import DemoSpec, demo_zones
from forestguard.ingest import ingest
from forestguard.loads import AlreadyLoaded, FileLoad, file_sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def zone_files(tmp_path_factory) -> tuple[Path, Path]:
    """Two GeoParquet files of demo zones (different content), written once."""
    folder = tmp_path_factory.mktemp("loads")
    first, second = folder / "first.parquet", folder / "second.parquet"
    demo_zones(DemoSpec(zones=300, seed=1)).to_parquet(first)
    demo_zones(DemoSpec(zones=200, seed=2)).to_parquet(second)
    return first, second


@pytest.fixture(params=["duckdb", pytest.param("postgis", marks=pytest.mark.postgis)])
def store_url(request, tmp_path) -> str:
    if request.param == "duckdb":
        return str(tmp_path / "zones.duckdb")
    return request.getfixturevalue("zones_db")


def agree(url: str) -> tuple[int, int, list]:
    """Zones, data version and load records, after checking that they tell the same story."""
    with stores.open(url, read_only=True) as store:
        zones, version, records = store.count(), store.data_version(), store.loads()
    assert zones == sum(r.rows for r in records), (zones, records)
    assert version == max((r.data_version for r in records), default=0), (version, records)
    return zones, version, records


def test_the_same_file_is_refused_naming_the_earlier_load(store_url, zone_files, capsys):
    first, second = zone_files
    result = ingest([first, second], store_url)
    assert result.loaded == 500
    zones, version, records = agree(store_url)
    assert [(Path(r.file).name, r.sha256, r.rows, r.data_version) for r in records] == [
        ("first.parquet", file_sha256(first), 300, version), ("second.parquet", file_sha256(second), 200, version)]

    # The same content under another name, alone: refused before anything is read, with one line.
    renamed = first.with_name("renamed.parquet")
    renamed.write_bytes(first.read_bytes())
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", str(renamed), "--db", store_url])
    error = capsys.readouterr().err.strip()
    assert exit_.value.code == 1 and len(error.splitlines()) == 1
    assert error.startswith(f"error: {renamed}: already loaded (load {records[0].id} of {first}") and "--again" in error
    assert agree(store_url)[:2] == (zones, version)

    # --status tells which files went in (exit 1 when one did not).
    new = first.with_name("new.parquet")
    demo_zones(DemoSpec(zones=50, seed=3)).to_parquet(new)
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--status", str(first), str(new), "--db", store_url])
    out = capsys.readouterr().out.splitlines()
    assert exit_.value.code == 1
    assert out[0].startswith(f"{first}: loaded (load {records[0].id} of {first}") and f"data version {version}" in out[0]
    assert out[1] == f"{new}: not loaded (sha256 {file_sha256(new)})"

    # --again loads it once more, with its own record.
    main(["ingest", str(renamed), "--again", "--db", store_url])
    zones_after, version_after, records_after = agree(store_url)
    assert zones_after == zones + 300 and version_after > version and records_after[-1].file == str(renamed)


def test_the_load_transaction_checks_again(store_url, zone_files):
    """A run that passed the early look (another run committed meanwhile) is refused inside its transaction."""
    first, _ = zone_files
    ingest([first], store_url)
    before = agree(store_url)
    zones = demo_zones(DemoSpec(zones=10, seed=9))
    zones["file"] = str(first)
    with stores.open(store_url, create=True) as store:
        with pytest.raises(AlreadyLoaded, match="already loaded"):
            store.insert(zones, files=[FileLoad(str(first), file_sha256(first))])
    assert agree(store_url) == before


def test_an_out_of_step_version_is_repaired_on_open(tmp_path, zone_files):
    """Zones committed without the meta row's bump (the crash reported): the version still moves on."""
    url = str(tmp_path / "zones.duckdb")
    first, second = zone_files
    ingest([first], url)
    ingest([second], url)
    with duckdb.connect(url) as con:  # the state reported after a kill at commit: zones in, meta row behind
        con.execute("UPDATE forestguard_meta SET value = 1 WHERE key = 'data_version'")
    with stores.open(url, read_only=True) as store:  # read-only: derived, nothing written
        assert store.data_version() == 2
    with stores.open(url, create=True):  # writable: repaired
        pass
    with duckdb.connect(url, read_only=True) as con:
        assert con.execute("SELECT value FROM forestguard_meta WHERE key = 'data_version'").fetchone()[0] == 2


def _wal_at_least(path: Path, size: int, process: subprocess.Popen) -> bool:
    """Poll (no fixed sleep) until the WAL has ``size`` bytes; False when the process ended first."""
    wal = Path(str(path) + ".wal")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size >= size:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.001)
    raise TimeoutError(f"{wal} never reached {size} bytes")


@pytest.mark.parametrize("wal_bytes", [64 * 1024, 2 << 20, 6 << 20, None])
def test_an_ingest_killed_at_its_commit_is_counted_once(tmp_path, wal_bytes):
    """SIGKILL while the commit writes the WAL (the WAL is written at commit), or once the success line
    is out (None): after reopening, zones, data version and load records agree, and running the same
    ingest again ends with each zone once."""
    url = tmp_path / "zones.duckdb"
    seed, big = tmp_path / "seed.parquet", tmp_path / "big.parquet"
    demo_zones(DemoSpec(zones=100, seed=4)).to_parquet(seed)
    demo_zones(DemoSpec(zones=30_000, seed=5)).to_parquet(big)
    ingest([seed], str(url))  # a store with a committed, checkpointed first load
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "forestguard", "ingest", str(big), "--db", str(url)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wal_bytes is None:
        killed = any(line.startswith("loaded ") for line in process.stdout)  # stops reading at the success line
    else:
        killed = _wal_at_least(url, wal_bytes, process)
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    # (After its success line the process may have ended by itself before the signal.)
    assert not killed or process.returncode in (-signal.SIGKILL, -signal.SIGKILL if wal_bytes else 0)

    zones, version, records = agree(str(url))
    assert zones in (100, 30_100) and (wal_bytes is not None or zones == 30_100)
    went_in = zones == 30_100
    # What an operator does next: ask, then run the ingest again.
    status = subprocess.run([sys.executable, "-m", "forestguard", "ingest", "--status", str(big), "--db", str(url)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == (0 if went_in else 1), status.stdout + status.stderr
    again = subprocess.run([sys.executable, "-m", "forestguard", "ingest", str(big), "--db", str(url)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == (1 if went_in else 0), again.stderr
    assert not went_in or "already loaded" in again.stderr
    assert agree(str(url))[0] == 30_100
