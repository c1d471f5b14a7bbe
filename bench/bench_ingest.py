"""Ingest into the embedded store: ``forestguard ingest`` of a GeoParquet file against DuckDB's own CTAS.

Both read the same GeoParquet file of raw demo records into a new DuckDB file, each as a whole
command in a process of its own (peak RSS from ``wait4``). Peer: ``CREATE TABLE AS SELECT * FROM
read_parquet(...)`` through the same DuckDB build (no validation, no geodesic area, no geometry
decoding). Ours: ``forestguard ingest`` — streamed batches of row groups, validation (geometry
checks, geodesic area) on two threads, one transaction with the load record and the statistics
summaries. Target: ours within 2× of the peer.

    python bench/bench_ingest.py --zones 1000000
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import CACHE, arguments

PYTHON = sys.executable
FORESTGUARD = str(Path(PYTHON).with_name("forestguard"))


def raw_geoparquet(zones: int, seed: int) -> Path:
    """The raw demo records (before validation: no area) as GeoParquet, made once, a batch at a time."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    from forestguard.demo import DemoSpec, generate_batches

    path = CACHE / f"demo-raw-{zones}-{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.parquet")
        geo = {"version": "1.1.0", "primary_column": "geometry",
               "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"]}}}  # no crs: OGC:CRS84
        writer = None
        for batch in generate_batches(DemoSpec(zones=zones, seed=seed)):
            frame = batch.drop(columns="geometry")
            table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
                "geometry", pa.array(shapely.to_wkb(batch.geometry.values), pa.binary()))
            if writer is None:
                schema = table.schema.with_metadata({b"geo": json.dumps(geo).encode()})
                writer = pq.ParquetWriter(tmp, schema, compression="zstd")
            writer.write_table(table.cast(schema))
        writer.close()
        tmp.rename(path)
    return path


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command run in its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-500:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


PEER = """
import sys
from forestguard.stores.duckdb import connect
con = connect(sys.argv[2], extensions=())
con.execute("CREATE TABLE zones AS SELECT * FROM read_parquet(?)", [sys.argv[1]])
"""


def main() -> None:
    args = arguments(__doc__)
    source = raw_geoparquet(args.zones, args.seed)
    print(f"{args.zones:,} raw demo zones, {source.stat().st_size / 2**20:,.0f} MB GeoParquet")
    ours, peer = [], []
    for run_no in range(2):  # alternating, best of each: the machine's noise falls on both
        for side in ("ours", "peer") if run_no % 2 == 0 else ("peer", "ours"):
            target = CACHE / f"ingest-{side}.duckdb"
            for leftover in (target, target.with_name(target.name + ".wal")):
                leftover.unlink(missing_ok=True)
            if side == "ours":
                ours.append(run([FORESTGUARD, "ingest", str(source), "--db", str(target)]))
            else:
                peer.append(run([PYTHON, "-c", PEER, str(source), str(target)]))
    (ours_s, ours_mb), (peer_s, peer_mb) = min(ours), min(peer)
    print(f"forestguard ingest (validated, area, summaries)   {ours_s:7.1f} s  peak {ours_mb:6.0f} MB")
    print(f"DuckDB CREATE TABLE AS read_parquet (no checks)   {peer_s:7.1f} s  peak {peer_mb:6.0f} MB")
    print(f"ratio ×{ours_s / peer_s:.2f} of the peer's time (target ≤ 2)")


if __name__ == "__main__":
    main()
