"""A worker's copy of a snapshot's evidence: a partition's rows taken from it are exactly the rows of its zones."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forestguard.distributed.evidence import ByZone, Coded


def _write(tmp_path, name: str, zone_ids, values) -> str:
    path = str(tmp_path / f"{name}.parquet")
    pq.write_table(pa.table({"zone_id": pa.array(zone_ids, pa.int32()), "suggested": pa.array(values, pa.string())}), path)
    return path


def _reference(zone_ids, values, wanted) -> list[tuple[int, str]]:
    """The rows a join on zone id picks, the slow way."""
    wanted = set(int(i) for i in wanted)
    return sorted((int(z), v) for z, v in zip(zone_ids, values) if int(z) in wanted)


def _rows(table: pa.Table) -> list[tuple[int, str]]:
    return sorted(zip(table.column("zone_id").to_pylist(), table.column("suggested").cast(pa.string()).to_pylist()))


@pytest.mark.parametrize("case", ["serial", "unsorted", "duplicates", "sparse"])
def test_a_partitions_rows_are_those_of_its_zones(tmp_path, case: str) -> None:
    rng = np.random.default_rng(5)
    ids = np.arange(1, 5_001)
    if case == "sparse":
        ids = np.sort(rng.choice(2**30, 5_000, replace=False)) + 1
    if case == "duplicates":
        ids = np.sort(np.concatenate([ids, rng.choice(ids, 700, replace=False)]))
    if case == "unsorted":
        ids = rng.permutation(ids)
    values = rng.choice(["legal", "illegal", "undetermined"], len(ids))
    kept = ByZone.read(_write(tmp_path, case, ids, values), ["zone_id", "suggested"], zones=5_000)
    coded = Coded.of(kept, zones=5_000)
    assert (coded is not None) == (case in ("serial", "unsorted"))  # one row a zone and dense ids only
    partition = np.concatenate([rng.choice(np.unique(ids), 900, replace=False), [0, -3, 2**31 - 1]]).astype(np.int32)  # and ids with no rows
    expected = _reference(ids, values, partition)
    assert _rows(kept.rows_of(partition)) == expected
    if coded is not None:
        assert _rows(coded.rows_of(partition)) == expected
    assert kept.rows_of(np.array([0], np.int32)).num_rows == 0
