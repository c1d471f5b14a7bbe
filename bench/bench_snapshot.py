"""Snapshots of the demo zones: creation, statistics, and how an S3 snapshot is best read.

Creation. Ours: ``snapshots.create`` — read the store in batches as Arrow (WKB), exact
decimals and the bbox covering computed in DuckDB, GeoParquet 1.1 with zstd via pyarrow,
sha256 of every file, manifest. Peer: the plain GeoPandas way on the same zones —
``store.zones()`` then ``GeoDataFrame.to_parquet`` (zstd, bbox covering, GeoParquet 1.1),
no hashes, no manifest. Target: 1M zones in ≤ 10 s.

Statistics (country × year × classification, warm, median of ``--repeat``): the snapshot
against the DuckDB store it came from; the rows must be equal.

S3 (moto server on loopback, unless ``--no-s3``): a snapshot read through a sha256-verified
local cache copy (first open downloads and hashes; later opens re-hash the copy) against
DuckDB's httpfs reading the objects directly (range requests, nothing verified).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import ROOT, demo_store, report, timed, arguments as common_arguments

from forestguard import snapshots, stores
from forestguard.stats import statistics
from forestguard.stores.duckdb import connect


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 comparison (needs moto_server)")


def _fresh(parent: Path, name: str) -> Path:
    path = parent / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def bench_create(url: str, work: Path, repeat: int) -> snapshots.Manifest:
    with stores.open(url, read_only=True) as store:
        ours, manifest = timed(lambda: snapshots.create(store, _fresh(work, "ours")), repeat)

        def peer():
            frame = store.zones()
            frame.to_parquet(work / "peer.parquet", compression="zstd", write_covering_bbox=True, schema_version="1.1.0")
            return frame

        peer_time, _ = timed(peer, repeat)
        frame = store.zones()
        write_only, _ = timed(lambda: frame.to_parquet(work / "peer.parquet", compression="zstd", write_covering_bbox=True, schema_version="1.1.0"), repeat)
    size = sum(f.size for f in manifest.files) / 1e6
    print(f"\n{manifest.rows:,} zones → {len(manifest.files)} file(s), {size:,.1f} MB (peer file {(work / 'peer.parquet').stat().st_size / 1e6:,.1f} MB)")
    report("snapshot create (read store + write + sha256)", ours, peer_time, "store.zones()+to_parquet")
    report("snapshot create vs the peer's write alone", ours, write_only, "to_parquet only")
    print(f"target ≤ 10 s for 1M zones: {'met' if ours * 1_000_000 / max(manifest.rows, 1) <= 10 else 'NOT met'} ({ours:.2f} s)")
    return manifest


def bench_stats(url: str, manifest: snapshots.Manifest, repeat: int) -> None:
    with stores.open(url, read_only=True) as store, stores.open(f"snapshot:{manifest.location}") as snap:
        statistics(store), statistics(snap)  # warm: files in the page cache
        duck, expected = timed(lambda: statistics(store), repeat)
        ours, got = timed(lambda: statistics(snap), repeat)
    assert got.rows == expected.rows, "snapshot and source statistics differ"
    report("stats warm: snapshot (Parquet) vs its DuckDB store", ours, duck, "DuckDB file")


def bench_s3(manifest: snapshots.Manifest, repeat: int) -> None:
    import os
    import sys

    sys.path.insert(0, str(ROOT.parent))
    from tests.fixtures.s3 import moto_server

    with moto_server() as server, tempfile.TemporaryDirectory() as data_dir:
        os.environ.update(server.env(), FORESTGUARD_DATA_DIR=data_dir)
        started = time.perf_counter()
        with stores.open(manifest.location) as local:
            remote = snapshots.create(local, f"s3://{server.bucket}/snapshots")
        print(f"(published to {remote.location} in {time.perf_counter() - started:.1f} s)")

        def cached_open_and_stats():
            with stores.open(remote.location) as snap:
                return statistics(snap)

        first_cache, expected = timed(cached_open_and_stats, 1)
        reopen_cache, _ = timed(cached_open_and_stats, repeat)
        with stores.open(remote.location) as snap:
            warm_cache, _ = timed(lambda: statistics(snap), repeat)

        con = connect(None, extensions=("httpfs",))
        host = server.endpoint.removeprefix("http://")
        con.execute(
            f"CREATE SECRET (TYPE s3, KEY_ID {_literal(server.access_key)}, SECRET {_literal(server.secret_key)}, "
            f"REGION {_literal(server.region)}, ENDPOINT {_literal(host)}, URL_STYLE 'path', USE_SSL false)"
        )
        files = ", ".join(_literal(f"{remote.location}/{f.path}") for f in remote.files)
        query = f"""SELECT country, year, classification, count(*), sum(area_ha), sum(confidence), count(confidence),
                           count(*) FILTER (WHERE verified)
                    FROM read_parquet([{files}]) GROUP BY ALL ORDER BY ALL"""
        first_httpfs, rows = timed(lambda: con.execute(query).fetchall(), 1)
        warm_httpfs, _ = timed(lambda: con.execute(query).fetchall(), repeat)
    assert sum(r[3] for r in rows) == sum(r["zones"] for r in expected.rows)
    report("S3 first stats: verified cache (download+sha256)", first_cache, first_httpfs, "httpfs first query")
    report("S3 stats, new process: cache re-hash+open", reopen_cache, first_httpfs, "httpfs fresh connection")
    report("S3 stats warm: cached copy", warm_cache, warm_httpfs, "httpfs warm")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    args = common_arguments(__doc__, extra=_options)
    url = demo_store(args.zones, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        work = Path(tmp)
        manifest = bench_create(url, work, max(1, min(args.repeat, 3)))
        bench_stats(url, manifest, args.repeat)
        if not args.no_s3:
            bench_s3(manifest, args.repeat)


if __name__ == "__main__":
    main()
