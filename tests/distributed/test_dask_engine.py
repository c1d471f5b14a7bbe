"""The Dask engine on a real cluster (``dask scheduler`` + ``dask worker`` processes) reading a snapshot from S3 (moto).

Every answer is held against the embedded engine (DuckDB) on the same snapshot: statistics
row for row (exact decimals, so to the cent), map aggregates pixel for pixel (the same
pixels drawn; values equal up to the order of floating-point sums, which differs because
partitions are summed separately and then added).
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from forestguard import snapshots, stores
from forestguard.cli import main
from forestguard.distributed import open_store
from forestguard.render.maps import store_map
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.fixtures.dask import dask_cluster
from tests.fixtures.services import free_port, wait_until

pytestmark = [pytest.mark.s3, pytest.mark.slow]

FILTERS = [
    ZoneFilter(),
    ZoneFilter(countries=("Brazil",), year_from=2019, year_to=2024),
    ZoneFilter(classifications=(Classification.ILLEGAL,), min_confidence=0.5),
    ZoneFilter(bbox=(-75.0, -35.0, -40.0, 5.0), verified_only=True),
]
GROUPINGS = [(), ("year", "classification"), ("country", "year", "classification")]


def _snapshot(store_url: str, s3, partition_rows: int, name: str) -> snapshots.Manifest:
    with stores.open(store_url) as store:
        return snapshots.create(store, s3.url(name), partition_rows=partition_rows)


def _same_map(embedded, distributed) -> None:
    assert embedded.attrs["x_range"] == distributed.attrs["x_range"] and embedded.attrs["y_range"] == distributed.attrs["y_range"]
    assert embedded.shape == distributed.shape
    np.testing.assert_array_equal(embedded.values > 0, distributed.values > 0)  # the same pixels drawn
    # Sums of the same terms in another order: equal to the last few bits.
    np.testing.assert_allclose(distributed.values, embedded.values, rtol=1e-12, atol=1e-9)
    assert distributed.attrs["polygons"] == embedded.attrs["polygons"]  # ("points" differ: the embedded layer counts zones out of view too)


def test_statistics_and_maps_equal_the_embedded_engine(demo_duckdb: str, s3, dask_s3_cluster, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    manifest = _snapshot(demo_duckdb, s3, 300, "equal")
    assert len(manifest.files) == 7 and manifest.partitioning == "hilbert"
    url = f"snapshot:{manifest.location}"
    with open_store(url, dask_s3_cluster.address) as dask_store:
        assert not (tmp_path / "client-data" / "cache").exists()  # this process read the manifest only
        with stores.open(url) as embedded:
            for where in FILTERS:
                for by in GROUPINGS:
                    assert statistics(dask_store, where, by).rows == statistics(embedded, where, by).rows, (where, by)
            assert dask_store.count() == embedded.count() == 2_000
            brazil = ZoneFilter(countries=("Brazil",))
            assert dask_store.zones_arrow(brazil).equals(embedded.zones_arrow(brazil))  # gathered in the stores' order
            some = embedded.zones_arrow(brazil, columns=["id", "area_ha"]).slice(0, 25)
            assert dask_store.zones_by_id(some.column("id").to_pylist()[::-1], ["area_ha"]).equals(some)
            assert dask_store.zone_geometries([5, 7]).sort_by("id").equals(embedded.zone_geometries([5, 7]).sort_by("id"))
            _same_map(store_map(embedded, brazil, 320, 240), store_map(dask_store, brazil, 320, 240))
            # A view zoomed in on the largest zone: it and its big neighbours are drawn as polygons (datashader's Canvas.polygons).
            largest = embedded.zones(columns=["id", "area_ha", "geometry"]).sort_values("area_ha").iloc[-1]
            x, y = largest.geometry.centroid.x, largest.geometry.centroid.y
            bounds = (x - 0.3, y - 0.3, x + 0.3, y + 0.3)
            zoomed = store_map(dask_store, ZoneFilter(), 400, 400, bounds=bounds)
            _same_map(store_map(embedded, ZoneFilter(), 400, 400, bounds=bounds), zoomed)
            assert zoomed.attrs["polygons"] > 0 and zoomed.attrs["partitions"] < len(manifest.files)
            world = store_map(dask_store, ZoneFilter(), 360, 180, measure="zones")
            _same_map(store_map(embedded, ZoneFilter(), 360, 180, measure="zones"), world)
            assert world.values.sum() == 2_000  # counts are exact in any order
    # The workers fetched and checked every file themselves.
    assert dask_s3_cluster.cached_files() >= {f.path for f in manifest.files}


def test_an_area_on_the_cluster_equals_the_embedded_engine(demo_duckdb: str, s3, dask_s3_cluster, tmp_path: Path, monkeypatch, capsys) -> None:
    """A saved area the snapshot carries: candidates found by the workers, the exact test and sums made once in the client."""
    import json

    import shapely

    from forestguard.areas import Area

    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    cut = shapely.Polygon([(-70, -15), (-45, -15), (-45, 0), (-55, -8), (-70, 0), (-70, -15)])  # concave: cuts zones
    with stores.open(demo_duckdb) as store:
        store.save_area(Area.of("Cut <area>", cut))
        manifest = snapshots.create(store, s3.url("area"), partition_rows=250)
    assert manifest.areas is not None
    db = f"snapshot:{manifest.location}"
    with open_store(db, dask_s3_cluster.address) as dask_store, stores.open(db) as embedded:
        saved = dask_store.saved_area("Cut <area>")
        assert saved == embedded.saved_area("Cut <area>") and dask_store.saved_area_names() == ["Cut <area>"]
        where = ZoneFilter(area=saved)
        assert 0 < len(dask_store.partitions(where)) < len(manifest.files)  # partitions away from the area are not read
        for by in GROUPINGS:
            assert statistics(dask_store, where, by).rows == statistics(embedded, where, by).rows, by
        assert dask_store.count(where) == embedded.count(where) > 0
        assert dask_store.zones_arrow(where, ["id", "year"]).equals(embedded.zones_arrow(where, ["id", "year"]))
        _same_map(store_map(embedded, where, 300, 200), store_map(dask_store, where, 300, 200))
    outputs = {}
    for engine, extra in (("embedded", []), ("dask", ["--dask", dask_s3_cluster.address])):
        main(["stats", "--db", db, "--area", "Cut <area>", "--by", "year", "--format", "json", *extra])
        outputs[engine] = json.loads(capsys.readouterr().out)
    assert outputs["dask"]["rows"] == outputs["embedded"]["rows"] and outputs["dask"]["area"] == outputs["embedded"]["area"]


def test_a_view_reads_only_the_partitions_it_meets(demo_duckdb: str, s3, dask_s3_cluster, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    manifest = _snapshot(demo_duckdb, s3, 250, "pruning")
    before = dask_s3_cluster.cached_files()
    where = ZoneFilter(countries=("Peru",))
    with open_store(f"snapshot:{manifest.location}", dask_s3_cluster.address) as dask_store:
        wanted = {p.file.path for p in dask_store.partitions(where)}
        assert 0 < len(wanted) < len(manifest.files) / 2
        rows = statistics(dask_store, where, ["year"]).rows
    assert sum(r["zones"] for r in rows) > 0
    fetched = {name for name in dask_s3_cluster.cached_files() - before}
    assert fetched <= wanted  # no other partition was fetched (the others share names with older snapshots' files)
    ids = {f.path: f for f in manifest.files}
    assert all("Peru" in ids[name].countries for name in wanted)


def test_a_worker_killed_mid_job_does_not_change_the_answer(demo_duckdb: str, s3, s3_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    manifest = _snapshot(demo_duckdb, s3, 100, "killed")  # 20 partitions: every worker gets several
    url = f"snapshot:{manifest.location}"
    with stores.open(url) as embedded:
        expected = statistics(embedded, ZoneFilter(), ["country", "year", "classification"]).rows
    with dask_cluster(2, env=s3_server.env()) as cluster, open_store(url, cluster.address) as dask_store:
        pids = cluster.worker_pids()
        victim_address, victim_pid = sorted(pids.items())[0]
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(statistics, dask_store, ZoneFilter(), ["country", "year", "classification"])
            client = dask_store.client
            wait_until(lambda: any(k.startswith("aggregate-") for k in client.processing([victim_address]).get(victim_address, ())),
                       timeout=60, what="a partition task on the victim worker")
            os.kill(victim_pid, signal.SIGSTOP)  # frozen holding its task: the job cannot finish without it
            held = client.processing([victim_address]).get(victim_address, ())
            assert not job.done()
            os.kill(victim_pid, signal.SIGKILL)
            result = job.result(timeout=180)
        assert any(k.startswith("aggregate-") for k in held)
        assert victim_address not in cluster.worker_pids()
    assert result.rows == expected


def test_an_unreachable_scheduler_is_one_line_naming_it(demo_duckdb: str, tmp_path: Path, capsys) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path / "snaps", partition_rows=500)
    address = f"tcp://127.0.0.1:{free_port()}"
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "country_report.ipynb"
    for argv in (["stats", "--db", f"snapshot:{manifest.location}", "--dask", address],
                 ["map", "--db", f"snapshot:{manifest.location}", "--out", str(tmp_path / "m.png"), "--dask", address],
                 ["report", "run", str(notebook), "-p", "country=Brazil", "--source", f"snapshot:{manifest.location}",
                  "--out", str(tmp_path / "report"), "--dask", address]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and address in err[0] and "cannot reach the Dask scheduler" in err[0], err
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "report").exists()  # failed before any work
    with pytest.raises(SystemExit):
        main(["stats", "--db", demo_duckdb, "--dask", address])
    assert "--dask reads snapshots" in capsys.readouterr().err


def test_a_corrupt_partition_fails_the_job_naming_it(demo_duckdb: str, s3, dask_s3_cluster, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    manifest = _snapshot(demo_duckdb, s3, 400, "corrupt")
    victim = manifest.files[2]
    key = f"{s3.prefix}/corrupt/{manifest.id}/{victim.path}"
    body = bytearray(s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=bytes(body))
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", "--db", f"snapshot:{manifest.location}", "--by", "country", "--dask", dask_s3_cluster.address])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "corrupt" in err[0] and victim.path in err[0] and "sha256" in err[0], err
    assert captured.out == ""


def test_cli_statistics_and_map_on_the_cluster(demo_duckdb: str, s3, dask_s3_cluster, tmp_path: Path, monkeypatch, capsys) -> None:
    import xarray as xr

    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    manifest = _snapshot(demo_duckdb, s3, 500, "cli")
    db = f"snapshot:{manifest.location}"
    outputs = {}
    for engine, extra in (("embedded", []), ("dask", ["--dask", dask_s3_cluster.address])):
        main(["stats", "--db", db, "--by", "country,year", "--format", "json", *extra])
        outputs[engine] = capsys.readouterr().out
        main(["map", "--db", db, "--country", "Brazil", "--width", "300", "--height", "200", "--out", str(tmp_path / f"{engine}.png"),
              "--aggregate", str(tmp_path / f"{engine}.nc"), *extra])
        assert f"→ {tmp_path / f'{engine}.png'}" in capsys.readouterr().out
    import json

    assert json.loads(outputs["embedded"])["rows"] == json.loads(outputs["dask"])["rows"]
    assert json.loads(outputs["dask"])["engine"] == "dask"
    with xr.open_dataset(tmp_path / "embedded.nc", engine="h5netcdf") as a, xr.open_dataset(tmp_path / "dask.nc", engine="h5netcdf") as b:
        assert a["area_ha"].attrs["crs"] == "EPSG:3857" and a["area_ha"].dims == ("y", "x", "classification")
        np.testing.assert_allclose(b["area_ha"].values, a["area_ha"].values, rtol=1e-12, atol=1e-9)
    from PIL import Image

    with Image.open(tmp_path / "dask.png") as picture:
        assert picture.size == (300, 200)
