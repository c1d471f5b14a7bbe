"""Snapshots: GeoParquet 1.1 layout, manifest, atomic writes, verification, S3 round trip."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from forestguard import snapshots, stores
from forestguard.cli import main
from forestguard.config import settings
from forestguard.schema import SCHEMA_VERSION
from forestguard.stats import statistics

pytestmark = pytest.mark.duckdb
ROOT = Path(__file__).resolve().parents[1]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_records_what_is_on_disk(demo_duckdb: str, demo_small: gpd.GeoDataFrame, tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path / "snaps")
        version = store.data_version()
    folder = tmp_path / "snaps" / manifest.id
    on_disk = json.loads((folder / "manifest.json").read_text())

    listing = []
    for entry in on_disk["files"]:
        data = (folder / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        assert entry["rows"] == pq.ParquetFile(folder / entry["path"]).metadata.num_rows
        listing.append([entry["path"], entry["size"], entry["sha256"]])
    content = json.dumps({"schema_version": SCHEMA_VERSION, "files": listing}, separators=(",", ":"))
    assert on_disk["id"] == manifest.id == hashlib.sha256(content.encode()).hexdigest()[:16]
    assert on_disk["rows"] == len(demo_small)
    assert on_disk["source"]["engine"] == "duckdb" and on_disk["source"]["data_version"] == version
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert before <= datetime.fromisoformat(on_disk["created_at"]) <= before + timedelta(minutes=5)
    assert on_disk["bbox"] == pytest.approx(list(demo_small.total_bounds), abs=0)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(f["path"] for f in on_disk["files"]), "manifest.json"])


def test_files_are_geoparquet_1_1_sorted_with_exact_decimals(demo_duckdb: str, demo_small: gpd.GeoDataFrame, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path)
    path = tmp_path / manifest.id / manifest.files[0].path
    parquet = pq.ParquetFile(path)
    geo = json.loads(parquet.metadata.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert column["covering"]["bbox"] == {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}
    assert {parquet.metadata.row_group(0).column(i).compression for i in range(parquet.metadata.num_columns)} == {"ZSTD"}
    area = parquet.schema_arrow.field("area_ha").type
    assert (area.precision, area.scale) == (10, 2)
    assert parquet.schema.column(parquet.schema_arrow.get_field_index("area_ha")).physical_type == "INT64"

    frame = gpd.read_parquet(path)  # GeoPandas reads it as a GeoDataFrame in EPSG:4326
    assert frame.crs.to_epsg() == 4326 and len(frame) == len(demo_small)
    keys = frame[["country", "year"]]
    assert keys.equals(keys.sort_values(["country", "year"], ignore_index=True))
    bounds = shapely.bounds(frame.geometry.values)
    covering = pq.read_table(path, columns=["bbox"]).column("bbox").combine_chunks().flatten()
    covering = np.column_stack([c.to_numpy() for c in covering])
    np.testing.assert_array_equal(covering, bounds)
    # Exact decimals, each the input's area to the cent (ids follow the input order).
    by_id = frame.set_index("id").sort_index()
    assert all(isinstance(v, Decimal) and v.as_tuple().exponent == -2 for v in by_id["area_ha"])
    expected = demo_small["area_ha"].astype(float).to_numpy()
    np.testing.assert_allclose(by_id["area_ha"].astype(float).to_numpy(), expected, atol=0.005 + 1e-9)


def test_same_zones_give_the_same_snapshot(demo_duckdb: str, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        first = snapshots.create(store, tmp_path)
        second = snapshots.create(store, tmp_path)
    assert first.id == second.id
    assert [m.id for m in snapshots.list_snapshots(tmp_path)] == [first.id]


def test_large_stores_are_written_in_batches_files_and_row_groups(demo_duckdb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "PARTITION_ROWS", 400)
    monkeypatch.setattr(snapshots, "BATCH_ROWS", 300)  # Brazil (~600 zones) is read in year ranges
    monkeypatch.setattr(snapshots, "ROW_GROUP_ROWS", 128)
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path)
        source_rows = statistics(store).rows
        source_zones = store.zones_arrow()
    assert len(manifest.files) > 3
    groups = [pq.ParquetFile(tmp_path / manifest.id / f.path).metadata for f in manifest.files]
    assert max(g.row_group(i).num_rows for g in groups for i in range(g.num_row_groups)) == 128
    with stores.open(f"snapshot:{manifest.location}") as snap:
        assert statistics(snap).rows == source_rows
        assert snap.zones_arrow().equals(source_zones)


def test_empty_store_gives_an_empty_snapshot(duckdb_url: str, tmp_path: Path) -> None:
    with stores.open(duckdb_url, create=True) as store:
        manifest = snapshots.create(store, tmp_path)
    assert manifest.rows == 0 and manifest.bbox is None and len(manifest.files) == 1
    with stores.open(f"snapshot:{manifest.location}") as snap:
        assert snap.count() == 0 and statistics(snap, by=["year"]).rows == []


_CRASH = textwrap.dedent(
    """
    import os, sys
    from forestguard import snapshots, stores
    where = sys.argv[1]
    store = stores.open(sys.argv[2])
    if sys.argv[3] == "mid-write":
        snapshots.BATCH_ROWS = snapshots.PARTITION_ROWS = 300
        calls = []
        read = store.zones_arrow
        def crash_on_third(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                os._exit(9)  # a hard crash: no cleanup code runs
            return read(*args, **kwargs)
        store.zones_arrow = crash_on_third
    else:
        os.rename = lambda *args: os._exit(9)  # killed after the manifest, before the rename
    snapshots.create(store, where)
    """
)


@pytest.mark.parametrize("moment", ["mid-write", "before-rename"])
def test_a_crash_leaves_nothing_that_looks_complete(demo_duckdb: str, tmp_path: Path, moment: str) -> None:
    where = tmp_path / "snaps"
    result = subprocess.run([sys.executable, "-c", _CRASH, str(where), demo_duckdb, moment], cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 9, result.stderr.decode()
    leftovers = list(where.iterdir())
    assert leftovers and all(p.name.startswith(".tmp-snapshot-") for p in leftovers)  # the crash did happen mid-way
    assert any(p.suffix == ".parquet" for p in leftovers[0].iterdir())
    assert snapshots.list_snapshots(where) == []
    with pytest.raises(SystemExit) as exit_info:
        main(["snapshot", "verify", "--out", str(where), leftovers[0].name[:4]])
    assert exit_info.value.code == 1


def test_a_later_create_removes_staging_left_by_a_killed_one(demo_duckdb: str, tmp_path: Path) -> None:
    import os
    import time

    where = tmp_path / "snaps"
    where.mkdir()
    stale, fresh = where / ".tmp-snapshot-killed", where / ".tmp-snapshot-running"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "part-00000.parquet").write_bytes(b"half written")
    day_old = time.time() - snapshots.STALE_STAGING_S - 60
    os.utime(stale, (day_old, day_old))
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, where)
    assert not stale.exists()
    assert fresh.exists()  # perhaps a concurrent create: too young to touch
    assert sorted(p.name for p in where.iterdir()) == sorted([fresh.name, manifest.id])


def test_verify_detects_a_flipped_byte(demo_duckdb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path)
    main(["snapshot", "verify", "--out", str(tmp_path), manifest.id[:6]])  # returns: exit 0
    assert f"ok {manifest.id}" in capsys.readouterr().out

    part = tmp_path / manifest.id / manifest.files[0].path
    _flip_byte(part, part.stat().st_size // 2)
    with pytest.raises(SystemExit) as bad:
        main(["snapshot", "verify", str(tmp_path / manifest.id)])
    err = capsys.readouterr().err
    assert bad.value.code == 1
    assert err.count("\n") == 1 and manifest.files[0].path in err and "sha256" in err


def test_an_edited_manifest_is_detected(demo_duckdb: str, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path)
    path = tmp_path / manifest.id / "manifest.json"
    data = json.loads(path.read_text())
    data["files"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(snapshots.SnapshotCorrupt, match="does not hash to id"):
        snapshots.verify(str(path))


def test_default_location_follows_s3_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    assert snapshots.default_location() == str(settings().data_dir / "snapshots")
    monkeypatch.setenv("S3_BUCKET", "fg-prod")
    assert snapshots.default_location() == "s3://fg-prod/snapshots"


@pytest.mark.s3
def test_s3_round_trip_equals_local(demo_duckdb: str, tmp_path: Path, s3, capsys: pytest.CaptureFixture[str]) -> None:
    with stores.open(demo_duckdb) as store:
        local = snapshots.create(store, tmp_path / "local")
        remote = snapshots.create(store, s3.url("snapshots"))
    assert remote.id == local.id and remote.location == s3.url("snapshots", local.id)

    client = s3.client()
    for entry in local.files:
        body = client.get_object(Bucket=s3.bucket, Key=f"{s3.prefix}/snapshots/{local.id}/{entry.path}")["Body"].read()
        assert body == (tmp_path / "local" / local.id / entry.path).read_bytes()
    assert json.loads(client.get_object(Bucket=s3.bucket, Key=f"{s3.prefix}/snapshots/{local.id}/manifest.json")["Body"].read())["id"] == local.id

    assert main_ok(["snapshot", "list", "--out", s3.url("snapshots"), "--format", "json"], capsys)[0]["id"] == local.id
    assert main_ok(["snapshot", "verify", s3.url("snapshots", local.id)], capsys) is None


@pytest.mark.s3
def test_create_defaults_to_the_s3_bucket(demo_duckdb: str, s3, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("S3_BUCKET", s3.bucket)
    created = main_ok(["snapshot", "create", "--db", demo_duckdb, "--format", "json"], capsys)
    assert created["location"] == f"s3://{s3.bucket}/snapshots/{created['id']}"
    assert s3.client().head_object(Bucket=s3.bucket, Key=f"snapshots/{created['id']}/manifest.json")["ServerSideEncryption"] == "AES256"


def main_ok(argv: list[str], capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process (it returns on success, exits otherwise); stdout parsed as JSON or None."""
    main(argv)
    out = capsys.readouterr().out
    return json.loads(out) if out.lstrip().startswith(("[", "{")) else None
