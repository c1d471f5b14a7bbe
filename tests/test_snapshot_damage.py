"""A damaged snapshot is never read: bit flips and manifests that no longer match the data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from forestguard import snapshots, stores
from forestguard.cli import main

pytestmark = pytest.mark.duckdb


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, demo_small) -> Path:
    from tests.fixtures.services import make_store

    folder = tmp_path_factory.mktemp("damage")
    with stores.open(make_store(folder / "zones.duckdb", demo_small), read_only=True) as store:
        manifest = snapshots.create(store, folder / "snaps")
    return Path(manifest.location)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_bit_flip_is_one_line_naming_the_file(snapshot, tmp_path, capsys):
    code, baseline, _ = run(capsys, "stats", "--db", f"snapshot:{snapshot}", "--by", "", "--format", "json")
    assert code == 0
    part = "part-00000.parquet"
    size = (snapshot / part).stat().st_size
    # 19 single-bit flips across the file: pages of every column, row-group and page headers, the footer.
    offsets = sorted({*np.linspace(4, size - 9, 16).astype(int).tolist(), size - 12, size - 40, size - 200})
    assert len(offsets) == 19
    for i, offset in enumerate(offsets):
        damaged = tmp_path / f"copy-{i}"
        shutil.copytree(snapshot, damaged)
        data = bytearray((damaged / part).read_bytes())
        data[offset] ^= 1 << (i % 8)
        (damaged / part).write_bytes(bytes(data))
        code, out, err = run(capsys, "stats", "--db", f"snapshot:{damaged}", "--by", "", "--format", "json")
        assert code == 1 and out == "", f"flip at {offset}: answered {out[:200]!r} (baseline {baseline[:200]!r})"
        assert len(err.strip().splitlines()) == 1 and part in err and "corrupt" in err and "Traceback" not in err, err
        code, _, err = run(capsys, "snapshot", "verify", str(damaged))
        assert code == 1 and part in err and len(err.strip().splitlines()) == 1, err


def _edited(snapshot: Path, tmp_path: Path, name: str, edit) -> Path:
    copy = tmp_path / name
    shutil.copytree(snapshot, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


@pytest.mark.parametrize(
    "name, edit, words",
    [
        ("total-rows", lambda m: m.update(rows=m["rows"] + 1), "the manifest says 2,001 rows, its files hold 2,000"),
        ("file-rows", lambda m: (m.update(rows=m["rows"] - 5), m["files"][0].update(rows=m["files"][0]["rows"] - 5)),
         "part-00000.parquet holds 2,000 rows, the manifest says 1,995"),
        ("data-version", lambda m: m["source"].update(data_version=m["source"]["data_version"] + 7),
         "part-00000.parquet was written at data version 1, the manifest says 8"),
    ],
)
def test_verify_holds_the_manifest_against_the_data(snapshot, tmp_path, capsys, name, edit, words):
    edited = _edited(snapshot, tmp_path, name, edit)
    code, _, err = run(capsys, "snapshot", "verify", str(edited))
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1, err
    assert run(capsys, "snapshot", "verify", str(snapshot))[0] == 0


def test_a_file_is_hashed_once_per_process_and_again_when_it_changes(snapshot, tmp_path):
    from forestguard.stores import snapshot as snapshot_store

    copy = tmp_path / "copy"
    shutil.copytree(snapshot, copy)
    with stores.open(f"snapshot:{copy}") as store:
        total = store.count()
    hashed = dict(snapshot_store._verified)
    with stores.open(f"snapshot:{copy}") as store:  # the same file again: not hashed again (same key)
        assert store.count() == total
    assert snapshot_store._verified == hashed
    part = copy / "part-00000.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x10
    part.write_bytes(bytes(data))  # changed on disk after it was checked
    with pytest.raises(snapshots.SnapshotCorrupt, match="part-00000.parquet sha256"):
        stores.open(f"snapshot:{copy}")
