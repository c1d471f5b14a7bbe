"""Checking a snapshot before reading it: sha256 of each file (ours) vs Parquet page checksums (peer).

A snapshot is read only after its files match the manifest. Two ways to know:

- **ours**: hash each file once per process and compare with the manifest's sha256
  (``stores/snapshot.py``); covers every byte, the footer (Thrift metadata) included;
- **peer**: write Parquet with page CRC32 checksums (``write_page_checksum=True``) and read
  every page once with ``page_checksum_verification=True`` (pyarrow; DuckDB's reader does not
  check page CRCs, so this pass would be extra either way); covers data pages only.

Prints both times on the same snapshot, the ratio, the snapshot size and peak RSS, plus the
snapshot's first statistics query for scale. Example:

    python bench/bench_snapshot_integrity.py --zones 1000000
"""

from __future__ import annotations

import resource
import shutil
import time

import pyarrow.parquet as pq

from common import CACHE, arguments, demo_store, report, timed


def main() -> None:
    args = arguments(__doc__, zones=1_000_000)
    from forestguard import snapshots, storage, stores

    url = demo_store(args.zones, args.seed)
    where = CACHE / f"integrity-{args.zones}-{args.seed}"
    shutil.rmtree(where, ignore_errors=True)
    with stores.open(url, read_only=True) as store:
        started = time.perf_counter()
        manifest = snapshots.create(store, where)
        print(f"snapshot of {manifest.rows:,} zones: {len(manifest.files)} file(s), "
              f"{sum(f.size for f in manifest.files) / 1e6:,.1f} MB, created in {time.perf_counter() - started:.1f} s")
    folder = where / manifest.id
    paths = [folder / f.path for f in manifest.files]

    # The peer's files: the same tables rewritten with page checksums (same codec and row groups).
    checksummed = []
    for path in paths:
        copy = path.with_name(path.stem + ".crc.parquet")
        table = pq.read_table(path)
        pq.write_table(table, copy, compression="zstd", row_group_size=snapshots.ROW_GROUP_ROWS, store_decimal_as_integer=True,
                       write_page_checksum=True)
        checksummed.append(copy)
        del table

    ours, _ = timed(lambda: [storage.sha256_file(p) for p in paths], args.repeat)
    peer, _ = timed(lambda: [pq.read_table(p, page_checksum_verification=True) for p in checksummed], args.repeat)
    report(f"verify {manifest.rows:,} zones before reading (warm page cache)", ours, peer, "page checksums")
    from forestguard.stores import snapshot as snapshot_store

    snapshot_store._verified.clear()
    started = time.perf_counter()
    with stores.open(f"snapshot:{folder}") as store:
        opened = time.perf_counter() - started
        started = time.perf_counter()
        store.aggregate(stores.ZoneFilter(), ["country"])
        query = time.perf_counter() - started
    print(f"first open (hashing included) {opened * 1000:,.0f} ms; first statistics query {query * 1000:,.0f} ms; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
