"""Reading a big GeoJSON FeatureCollection: ours streamed against GDAL (the path big files took before) and ours whole.

The same file of raw demo records, each reader in a process of its own (peak RSS from
``wait4``), every record turned into a frame (ours: in batches of 100,000, the ingest's;
validation and loading are not timed). Ours streamed: the strict reader on a bounded window,
two passes (the whole file checked first, then the batches). Peer: GDAL through pyogrio's
Arrow reader (``read_dataframe(use_arrow=True)``), which files over 512 MB were handed to
before — without the strict rules (duplicate keys, NUL, mixed types). Also ours whole: the
reader small files take.

    python bench/bench_geojson.py --zones 200000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import CACHE, arguments

PYTHON = sys.executable

STREAMED = """
import sys
import forestguard.sources as sources
sources.STREAM_MIN_BYTES = 1
source = sources.open_zones_file(sys.argv[1])
assert source.frame is None
print(sum(len(b) for b in source.batches(100_000)))
"""
WHOLE = """
import sys
from forestguard.sources import read_zones_file
print(len(read_zones_file(sys.argv[1])))
"""
GDAL = """
import sys, pyogrio
print(len(pyogrio.read_dataframe(sys.argv[1], use_arrow=True)))
"""


def raw_geojson(zones: int, seed: int) -> Path:
    """The raw demo records as a GeoJSON FeatureCollection, written once a batch at a time."""
    import shapely

    from forestguard.demo import DemoSpec, generate_batches

    path = CACHE / f"demo-raw-{zones}-{seed}.geojson"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write('{"type": "FeatureCollection", "features": [\n')
            first = True
            for batch in generate_batches(DemoSpec(zones=zones, seed=seed)):
                geometries = shapely.to_geojson(batch.geometry.values)
                for props, geometry in zip(batch.drop(columns="geometry").to_dict("records"), geometries):
                    props = {k: (v.item() if hasattr(v, "item") else v) for k, v in props.items()}
                    out.write(("" if first else ",\n") + '{"type": "Feature", "properties": ' + json.dumps(props) + ', "geometry": ' + geometry + "}")
                    first = False
            out.write("\n]}\n")
        tmp.rename(path)
    return path


def run(code: str, path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a reader run in its own process."""
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "-c", code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(process.stderr.read()[-800:])
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    args = arguments(__doc__, zones=200_000)
    path = raw_geojson(args.zones, args.seed)
    print(f"{args.zones:,} raw demo zones, {path.stat().st_size / 2**20:,.0f} MB GeoJSON")
    sides = {"ours streamed": STREAMED, "GDAL (pyogrio, Arrow)": GDAL, "ours whole": WHOLE}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for run_no in range(2):  # alternating order, best of each: the machine's noise falls on all
        for name in (sides if run_no % 2 == 0 else reversed(list(sides))):
            results[name].append(run(sides[name], path))
    for name, runs in results.items():
        seconds, mb = min(runs)
        print(f"{name:<24} {seconds:7.1f} s  peak {mb:6.0f} MB")
    ours, peer = min(results["ours streamed"]), min(results["GDAL (pyogrio, Arrow)"])
    print(f"streamed: ×{ours[0] / peer[0]:.2f} of GDAL's time, ×{ours[1] / peer[1]:.2f} of its peak memory")


if __name__ == "__main__":
    main()
