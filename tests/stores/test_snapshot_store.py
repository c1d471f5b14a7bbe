"""A snapshot as a read-only store: the same numbers as its source, local or from S3."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from forestguard import snapshots, stores
from forestguard.config import settings
from forestguard.errors import ReadOnlyStore
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

pytestmark = pytest.mark.duckdb

FILTERS = {
    "all": ZoneFilter(),
    "brazil-2018-2021": ZoneFilter(countries=("Brazil",), year_from=2018, year_to=2021),
    "illegal-verified": ZoneFilter(classifications=(Classification.ILLEGAL,), verified_only=True),
    "confident-sources": ZoneFilter(sources=("GLAD", "PRODES"), min_confidence=0.85),
    "amazon-box": ZoneFilter(bbox=(-70.0, -15.0, -50.0, 0.0)),
    "nothing": ZoneFilter(countries=("Atlantis",)),
}
GROUPINGS = [(), ("country",), ("year",), ("classification",), ("country", "year", "classification")]


@pytest.fixture(scope="module")
def source_and_snapshot(tmp_path_factory: pytest.TempPathFactory, demo_small):
    """The small demo set in DuckDB and a snapshot of it, built once for the module."""
    folder = tmp_path_factory.mktemp("snapshot-store")
    url = str(folder / "demo.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
        manifest = snapshots.create(store, folder / "snapshots")
    with stores.open(url, read_only=True) as source, stores.open(f"snapshot:{manifest.location}") as snap:
        yield source, snap, manifest


@pytest.mark.parametrize("by", GROUPINGS, ids=lambda by: ",".join(by) or "total")
@pytest.mark.parametrize("name", FILTERS)
def test_statistics_equal_the_source_store(source_and_snapshot, name: str, by: tuple[str, ...]) -> None:
    source, snap, _ = source_and_snapshot
    expected = statistics(source, FILTERS[name], by)
    got = statistics(snap, FILTERS[name], by)
    assert got.rows == expected.rows
    assert (got.engine, got.data_version) == ("snapshot", expected.data_version)
    # exact sums, not just equal after rounding
    assert snap.aggregate(FILTERS[name], by).equals(source.aggregate(FILTERS[name], by))
    if name == "all" and by == ():
        assert got.rows[0]["zones"] == 2_000


def test_zones_read_back_identically(source_and_snapshot) -> None:
    source, snap, manifest = source_and_snapshot
    where = ZoneFilter(countries=("Indonesia", "Peru"), year_from=2020)
    assert snap.zones_arrow(where).equals(source.zones_arrow(where))
    assert snap.count() == manifest.rows == source.count()
    frame = snap.zones(where)
    assert frame.crs.to_epsg() == 4326
    assert shapely.equals_exact(frame.geometry.values, source.zones(where).geometry.values, tolerance=0).all()


def test_snapshot_is_read_only(source_and_snapshot, demo_small) -> None:
    _, snap, manifest = source_and_snapshot
    with pytest.raises(ReadOnlyStore, match=manifest.id):
        snap.insert(demo_small.head(1))
    assert snap.count() == manifest.rows


def test_opened_by_id_folder_or_manifest(source_and_snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    _, snap, manifest = source_and_snapshot
    folder = Path(manifest.location)
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(folder.parent.parent))  # default location = …/snapshots
    for url in (str(folder), str(folder / "manifest.json"), f"snapshot:{manifest.id[:8]}"):
        with stores.open(url) as store:
            assert store.engine == "snapshot" and store.count() == manifest.rows


def test_truncated_file_is_an_error_line(demo_duckdb: str, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path)
    part = tmp_path / manifest.id / manifest.files[0].path
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(snapshots.SnapshotCorrupt, match=r"corrupt: part-00000\.parquet has"):
        stores.open(f"snapshot:{tmp_path / manifest.id}")


@pytest.fixture
def s3_manifest(source_and_snapshot, s3) -> snapshots.Manifest:
    """The module's snapshot, published again to this test's S3 prefix."""
    source, _, _ = source_and_snapshot
    with stores.open(source.url, read_only=True) as store:
        return snapshots.create(store, s3.url("snapshots"))


@pytest.mark.s3
def test_s3_snapshot_is_read_through_a_verified_cache(source_and_snapshot, s3_manifest) -> None:
    source, local, _ = source_and_snapshot
    manifest = s3_manifest
    cache = settings().data_dir / "cache" / "snapshots" / manifest.id
    with stores.open(manifest.location) as remote:
        for by in GROUPINGS:
            assert statistics(remote, ZoneFilter(), by).rows == statistics(local, ZoneFilter(), by).rows
    assert (cache / manifest.files[0].path).read_bytes() == (Path(local.path) / manifest.files[0].path).read_bytes()

    # a damaged cached copy is noticed on the next open and fetched again
    part = cache / manifest.files[0].path
    part.write_bytes(b"\0" * part.stat().st_size)
    with stores.open(manifest.location) as remote:
        assert statistics(remote).rows == statistics(source).rows
    assert part.read_bytes() == (Path(local.path) / manifest.files[0].path).read_bytes()


@pytest.mark.s3
def test_corrupted_s3_object_is_detected(s3, s3_manifest) -> None:
    manifest = s3_manifest
    key = f"{s3.prefix}/snapshots/{manifest.id}/{manifest.files[0].path}"
    client = s3.client()
    data = bytearray(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    data[len(data) // 3] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(data))

    with pytest.raises(snapshots.SnapshotCorrupt) as error:
        stores.open(manifest.location)
    message = str(error.value)
    assert "\n" not in message and key in message and "sha256" in message
    assert not (settings().data_dir / "cache" / "snapshots" / manifest.id / manifest.files[0].path).exists()
    with pytest.raises(snapshots.SnapshotCorrupt, match="sha256"):
        snapshots.verify(manifest.location)
