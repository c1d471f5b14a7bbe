"""Partitioned snapshots: Hilbert-ordered partition files, what the manifest says of each, pruning, older snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from forestguard import snapshots, stores
from forestguard.cli import main
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter


def _box_area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _boxes_of_cuts(table, parts: int) -> list[list[float]]:
    """Boxes of ``parts`` equal cuts of a table's rows, in its order."""
    size = -(-len(table) // parts)
    boxes = []
    for start in range(0, len(table), size):
        bbox = table.slice(start, size).column("bbox").combine_chunks()
        boxes.append([pc.min(bbox.field("xmin")).as_py(), pc.min(bbox.field("ymin")).as_py(), pc.max(bbox.field("xmax")).as_py(), pc.max(bbox.field("ymax")).as_py()])
    return boxes


def test_partitions_are_spatial_and_the_manifest_says_what_each_holds(demo_duckdb: str, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path, partition_rows=250)
        source = statistics(store, by=["country", "year", "classification"]).rows
    assert manifest.partitioning == "hilbert" and manifest.partition_rows == 250
    assert [f.rows for f in manifest.files] == [250] * 8  # 2,000 zones in equal partitions
    tables = []
    for entry in manifest.files:
        path = tmp_path / manifest.id / entry.path
        table = pq.read_table(path, columns=["country", "year", "bbox"])
        tables.append(table)
        assert entry.bbox == _boxes_of_cuts(table, 1)[0]
        assert entry.countries == sorted(set(table.column("country").to_pylist()))
        assert entry.years == [pc.min(table.column("year")).as_py(), pc.max(table.column("year")).as_py()]
        keys = table.select(["country", "year"]).to_pandas()
        assert keys.equals(keys.sort_values(["country", "year"], ignore_index=True))  # row groups keep pruning country and year
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        stats = meta.row_group(0).column(names.index("bbox.xmin")).statistics
        assert stats is not None and stats.has_min_max  # the covering has row-group statistics
        geo = json.loads(meta.metadata[b"geo"])
        assert geo["columns"]["geometry"]["bbox"] == entry.bbox
    # Spatially clustered: the partitions' boxes are far smaller than cutting the same zones in country order would give.
    import pyarrow as pa

    everything = pa.concat_tables(tables)
    by_country = everything.take(pc.sort_indices(everything, [("country", "ascending"), ("year", "ascending")]))
    hilbert_area = sum(_box_area(f.bbox) for f in manifest.files)
    country_order_area = sum(_box_area(b) for b in _boxes_of_cuts(by_country, len(manifest.files)))
    assert hilbert_area < 0.5 * country_order_area, (hilbert_area, country_order_area)
    with stores.open(f"snapshot:{manifest.location}") as snap:
        assert statistics(snap, by=["country", "year", "classification"]).rows == source


def test_the_manifest_prunes_partitions_by_box_country_and_year(demo_duckdb: str, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path, partition_rows=200)
        peru = store.zones_arrow(ZoneFilter(countries=("Peru",)), columns=["id"]).column("id").to_pylist()
    with stores.open(f"snapshot:{manifest.location}") as snap:
        for where in (ZoneFilter(countries=("Peru",)), ZoneFilter(bbox=(-80.0, -15.0, -70.0, -5.0)), ZoneFilter(year_from=2030)):
            kept = [f for f in manifest.files if f.may_hold(where)]
            assert len(kept) < len(manifest.files)
            # Nothing a pruned partition holds is selected: the kept ones give every zone.
            partial = stores.snapshot.SnapshotStore(str(tmp_path / manifest.id), manifest=manifest, files=kept) if kept else None
            expected = snap.zones_arrow(where, columns=["id"]).column("id").to_pylist()
            assert (partial.zones_arrow(where, columns=["id"]).column("id").to_pylist() if partial else []) == expected
    assert peru and all(f.may_hold(ZoneFilter()) for f in manifest.files)


def test_snapshots_written_before_partitioning_are_read_and_never_pruned(demo_duckdb: str, tmp_path: Path) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path, partition_rows=1_000)
        expected = statistics(store, by=["country"]).rows
    path = tmp_path / manifest.id / snapshots.MANIFEST
    data = json.loads(path.read_text())
    for name in ("partitioning", "partition_rows", "sorted_by"):
        data.pop(name)
    for entry in data["files"]:
        for name in ("bbox", "countries", "years"):
            entry.pop(name)
    path.write_text(json.dumps(data))
    _, legacy = snapshots.locate(str(tmp_path / manifest.id))
    assert legacy.sorted_by == snapshots.LEGACY_SORTED_BY and legacy.partitioning is None
    assert all(f.may_hold(ZoneFilter(countries=("Peru",), bbox=(0.0, 0.0, 1.0, 1.0))) for f in legacy.files)
    with stores.open(f"snapshot:{tmp_path / manifest.id}") as snap:
        assert statistics(snap, by=["country"]).rows == expected
    main(["snapshot", "verify", str(tmp_path / manifest.id)])


def test_verify_holds_each_partition_box_against_its_file(demo_duckdb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with stores.open(demo_duckdb) as store:
        manifest = snapshots.create(store, tmp_path, partition_rows=1_000)
    path = tmp_path / manifest.id / snapshots.MANIFEST
    data = json.loads(path.read_text())
    data["files"][1]["bbox"] = [0.0, 0.0, 1.0, 1.0]  # not part of the id: only the files can tell
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exit_info:
        main(["snapshot", "verify", str(tmp_path / manifest.id)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and manifest.files[1].path in err and "covers" in err


def test_partition_rows_option(demo_duckdb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["snapshot", "create", "--db", demo_duckdb, "--out", str(tmp_path), "--partition-rows", "400", "--format", "json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == 5
    with pytest.raises(SystemExit) as exit_info:
        main(["snapshot", "create", "--db", demo_duckdb, "--out", str(tmp_path), "--partition-rows", "10"])
    assert exit_info.value.code == 2
    assert np.all([m.partition_rows == 400 for m in snapshots.list_snapshots(tmp_path)])
