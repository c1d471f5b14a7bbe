"""Statistics and a full-extent map of a partitioned snapshot: embedded DuckDB vs the Dask engine vs plain dask-geopandas.

All on the same snapshot, in the same run, each path in a process of its own (peak RSS of that
process, and of its Dask workers, printed beside its time):

- ``embedded``: the snapshot opened as a store in this process (DuckDB over the files; the map
  from the in-memory layer, datashader), as ``forestguard stats|map --db snapshot:…`` do;
- ``dask-1`` / ``dask-2``: ``--dask`` on a LocalCluster of 1 and 2 single-threaded worker
  processes: one task per partition, workers reading the files themselves;
- ``peer``: plain dask-geopandas + datashader on 2 workers, without our partitioning or code:
  ``dask_geopandas.read_parquet`` of the same files (one partition each, nothing pruned),
  ``groupby().agg()`` (float sums) and every zone's centroid as a datashader point.

Cold = first call of a process (includes hashing the files against the manifest, JIT compiles);
warm = the same call again. Then bytes: what a country view (Brazil) reads against the whole
snapshot — files kept by the manifest, row groups kept by their statistics, and bytes the
process actually read (``/proc/self/io`` rchar). Last, from the measured per-partition cost, the
expected time at 100M and 1B zones on 10- and 50-worker clusters, with the arithmetic.

    python bench/bench_dask.py --snapshot data/snapshots/ID        # or --zones N: demo → snapshot in bench/.cache
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import CACHE, arguments, demo_store

PYTHON = sys.executable
WIDTH, HEIGHT = 1600, 1000
BY = ("country", "year", "classification")
VIEW_COUNTRY = "Brazil"


def rchar() -> int:
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


# -- children --------------------------------------------------------------------------------------


def child_embedded(url: str) -> dict:
    from forestguard import stores
    from forestguard.render.maps import store_map
    from forestguard.stats import statistics
    from forestguard.stores.base import ZoneFilter

    out: dict = {}
    out["open_s"], store = timed(lambda: stores.open(url))  # hashes every file against the manifest
    before = rchar()
    out["stats_cold_s"], stats = timed(lambda: statistics(store, ZoneFilter(), BY))
    out["stats_read_bytes"] = rchar() - before
    out["stats_warm_s"], _ = timed(lambda: statistics(store, ZoneFilter(), BY))
    before = rchar()
    out["country_stats_s"], _ = timed(lambda: statistics(store, ZoneFilter(countries=(VIEW_COUNTRY,)), BY))
    out["country_stats_read_bytes"] = rchar() - before
    out["map_cold_s"], agg = timed(lambda: store_map(store, ZoneFilter(), WIDTH, HEIGHT))
    out["map_warm_s"], _ = timed(lambda: store_map(store, ZoneFilter(), WIDTH, HEIGHT))
    out["rows"] = len(stats.rows)
    out["area_total"] = round(sum(r["area_ha"] for r in stats.rows), 2)
    out["map_total"] = float(agg.values.sum())
    out["peak_mb"] = peak_mb()
    return out


def _worker_peaks(client) -> list[float]:
    return list(client.run(lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024).values())


def child_dask(url: str, workers: int) -> dict:
    from forestguard import snapshots
    from forestguard.distributed.cluster import cluster
    from forestguard.distributed.store import DaskSnapshotStore
    from forestguard.render.maps import store_map
    from forestguard.stats import statistics
    from forestguard.stores.base import ZoneFilter

    out: dict = {}
    started = time.perf_counter()
    with cluster("local", workers=workers, threads_per_worker=1) as client:
        out["cluster_start_s"] = time.perf_counter() - started
        folder, manifest = snapshots.locate(url)
        store = DaskSnapshotStore(url, folder.url, manifest, client)
        io = lambda: sum(client.run(rchar).values())  # noqa: E731 - bytes the workers read
        out["stats_cold_s"], stats = timed(lambda: statistics(store, ZoneFilter(), BY))  # includes each worker hashing its files
        out["stats_warm_s"], _ = timed(lambda: statistics(store, ZoneFilter(), BY))
        before = io()
        out["country_stats_s"], _ = timed(lambda: statistics(store, ZoneFilter(countries=(VIEW_COUNTRY,)), BY))
        out["country_stats_read_bytes"] = io() - before
        out["country_partitions"] = len(store.partitions(ZoneFilter(countries=(VIEW_COUNTRY,))))
        out["map_cold_s"], agg = timed(lambda: store_map(store, ZoneFilter(), WIDTH, HEIGHT))
        out["map_warm_s"], _ = timed(lambda: store_map(store, ZoneFilter(), WIDTH, HEIGHT))
        before = io()
        out["country_map_s"], country = timed(lambda: store_map(store, ZoneFilter(countries=(VIEW_COUNTRY,)), WIDTH, HEIGHT))
        out["country_map_read_bytes"] = io() - before
        out["country_map_partitions"] = country.attrs["partitions"]
        out["partitions"] = len(manifest.files)
        out["rows"] = len(stats.rows)
        out["area_total"] = round(sum(r["area_ha"] for r in stats.rows), 2)
        out["map_total"] = float(agg.values.sum())
        out["worker_peak_mb"] = max(_worker_peaks(client))
    out["peak_mb"] = peak_mb()
    return out


def child_peer(url: str, workers: int) -> dict:
    import dask.dataframe as dd
    import dask_geopandas
    import datashader as ds
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from dask.distributed import Client, LocalCluster

    from forestguard import snapshots

    folder, manifest = snapshots.locate(url)
    files = [str(Path(folder.url) / f.path) for f in manifest.files]
    out: dict = {}
    categories = pd.CategoricalDtype(["Légale", "Illégale", "none"])
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as local, Client(local) as client:

        def stats():
            frame = dd.read_parquet(files, columns=["country", "year", "classification", "area_ha", "confidence", "verified"])
            frame = frame.assign(area_ha=frame["area_ha"].astype("float64"), confidence=frame["confidence"].astype("float64"))
            return frame.groupby(list(BY), dropna=False).agg({"area_ha": "sum", "confidence": ["sum", "count"], "verified": "sum", "year": "count"}).compute()

        def full_map():
            # dask_geopandas.read_parquet finds no geo metadata through this dask's dataset reader: one GeoPandas read per file.
            zones = dask_geopandas.from_dask_dataframe(dd.from_map(lambda f: gpd.read_parquet(f, columns=["geometry", "classification", "area_ha"]), files))

            def points(part):
                centroids = part.geometry.to_crs(3857).centroid
                return pd.DataFrame({"x": centroids.x.to_numpy(), "y": centroids.y.to_numpy(), "area_ha": part["area_ha"].astype("float64").to_numpy(),
                                     "classification": pd.Categorical(part["classification"].fillna("none").to_numpy(), dtype=categories)})

            meta = pd.DataFrame({"x": pd.Series(dtype="float64"), "y": pd.Series(dtype="float64"), "area_ha": pd.Series(dtype="float64"),
                                 "classification": pd.Series(dtype=categories)})
            frame = zones.map_partitions(points, meta=meta)
            canvas = ds.Canvas(plot_width=WIDTH, plot_height=HEIGHT, x_range=(-20037508.34, 20037508.34), y_range=(-8399737.89, 15538711.10))
            return canvas.points(frame, "x", "y", agg=ds.by("classification", ds.sum("area_ha")))

        out["stats_cold_s"], result = timed(stats)
        out["stats_warm_s"], _ = timed(stats)
        out["map_cold_s"], agg = timed(full_map)
        out["map_warm_s"], _ = timed(full_map)
        out["rows"] = len(result)
        out["area_total"] = round(float(result[("area_ha", "sum")].sum()), 2)
        out["map_total"] = float(np.nansum(agg.values))  # datashader: NaN where nothing is
        out["worker_peak_mb"] = max(_worker_peaks(client))
    out["peak_mb"] = peak_mb()
    return out


# -- parent -----------------------------------------------------------------------------------------


def run_child(*args: str, env: dict | None = None) -> tuple[dict, float, float]:
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, __file__, "--child", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": err.strip().splitlines()[-1:]}, wall, usage.ru_maxrss / 1024
    return json.loads(out.strip().splitlines()[-1]), wall, usage.ru_maxrss / 1024


def bytes_for_view(url: str) -> dict:
    """What a Brazil view reads against the whole snapshot, from the manifest and the files' row-group statistics."""
    import pyarrow.parquet as pq

    from forestguard import snapshots
    from forestguard.stores.base import ZoneFilter

    folder, manifest = snapshots.locate(url)
    where = ZoneFilter(countries=(VIEW_COUNTRY,))
    kept = [f for f in manifest.files if f.may_hold(where)]
    columns = {"country", "year", "classification", "area_ha", "confidence", "verified"}
    whole_groups = view_groups = 0
    for entry in manifest.files:
        meta = pq.ParquetFile(Path(folder.url) / entry.path).metadata
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            size = sum(group.column(i).total_compressed_size for i, n in enumerate(names) if n in columns)
            whole_groups += size
            stats = group.column(names.index("country")).statistics
            if entry in kept and stats is not None and stats.min <= VIEW_COUNTRY <= stats.max:
                view_groups += size
    return {"files": len(manifest.files), "files_kept": len(kept), "bytes": sum(f.size for f in manifest.files),
            "bytes_kept": sum(f.size for f in kept), "stat_columns_bytes": whole_groups, "stat_columns_bytes_kept": view_groups,
            "rows": manifest.rows, "partition_rows": manifest.partition_rows or 0}


def snapshot_of(zones: int) -> str:
    from forestguard import snapshots, stores

    where = CACHE / "dask-snapshots"
    existing = [m for m in snapshots.list_snapshots(where) if m.rows == zones] if where.exists() else []
    if existing:
        return existing[-1].location
    with stores.open(demo_store(zones)) as store:
        return snapshots.create(store, where).location


def projection(warm_s: float, cold_s: float, level_s: float, fetch_s: float) -> list[str]:
    """Expected times at 100M and 1B zones (1M-zone partitions) on 10 and 50 workers, with the arithmetic.

    One partition at a time per worker (each wave: as many partitions as workers); a sum tree of
    4 inputs a node; cold adds fetching each partition from S3 and the first pass over it (sha256
    check, map layer) that later jobs find done on the worker that had it.
    """
    lines = []
    for zones in (100_000_000, 1_000_000_000):
        partitions = zones // 1_000_000
        for workers in (10, 50):
            waves = math.ceil(partitions / workers)
            levels = math.ceil(math.log(max(partitions, 2), 4))
            warm = waves * warm_s + levels * level_s
            cold = waves * (fetch_s + cold_s) + levels * level_s
            lines.append(f"  {zones / 1e6:>5,.0f}M zones, {workers:>2} workers: {partitions} partitions → {waves} waves × {warm_s:.2f} s "
                         f"+ {levels} tree levels × {level_s:.2f} s = {warm:,.1f} s warm; cold {waves} × ({fetch_s:.1f} s S3 + {cold_s:.2f} s) "
                         f"+ {levels} × {level_s:.2f} s = {cold:,.1f} s")
    return lines


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, url = sys.argv[2], sys.argv[3]
        result = {"embedded": lambda: child_embedded(url), "dask": lambda: child_dask(url, int(sys.argv[4])),
                  "peer": lambda: child_peer(url, int(sys.argv[4]))}[kind]()
        print(json.dumps(result))
        return
    args = arguments(__doc__, extra=lambda p: (p.add_argument("--snapshot", default=None, help="a partitioned snapshot (default: one of --zones demo zones)"),
                                             p.add_argument("--skip", default="", help="paths not to run, comma-separated (embedded,dask-1,dask-2,peer)"),
                                             p.add_argument("--embedded-memory-mb", type=int, default=None,
                                                            help="FORESTGUARD_MEMORY_MB for the embedded path (its map layer needs 37 B a zone)")))
    url = f"snapshot:{args.snapshot}" if args.snapshot else f"snapshot:{snapshot_of(args.zones)}"
    skip = set(filter(None, args.skip.split(",")))
    view = bytes_for_view(url)
    print(f"snapshot {url}: {view['rows']:,} zones in {view['files']} partitions, {view['bytes'] / 1e6:,.0f} MB")
    results = {}
    paths = [("embedded", ("embedded", url), {"FORESTGUARD_MEMORY_MB": str(args.embedded_memory_mb)} if args.embedded_memory_mb else {}),
             ("dask-1", ("dask", url, "1"), {}), ("dask-2", ("dask", url, "2"), {}), ("peer", ("peer", url, "2"), {})]
    for name, child_args, env in paths:
        if name in skip:
            continue
        result, wall, rss = run_child(*child_args, env=env)
        results[name] = result
        if "error" in result:
            print(f"{name:<9} failed: {result['error']}")
            continue
        # rss: the largest process of the path's tree (wait4 counts its workers); the client's own and the workers' beside it.
        workers = (f" (client {result['peak_mb']:,.0f} MB, largest worker {result['worker_peak_mb']:,.0f} MB)"
                   if "worker_peak_mb" in result else "")
        print(f"{name:<9} stats {result['stats_cold_s']:7.2f} s cold {result['stats_warm_s']:7.2f} s warm | full-extent map "
              f"{result['map_cold_s']:7.2f} s cold {result['map_warm_s']:7.2f} s warm | process {wall:6.1f} s, peak {rss:,.0f} MB{workers}")
        print(f"          {result['rows']} groups, {result['area_total']:,.2f} ha; map sums {result['map_total']:,.2f}")
    ours = results.get("dask-2", {})
    for other in ("embedded", "peer", "dask-1"):
        theirs = results.get(other, {})
        if "stats_warm_s" in ours and "stats_warm_s" in theirs:
            print(f"dask-2 vs {other}: statistics ×{theirs['stats_warm_s'] / ours['stats_warm_s']:.2f}, "
                  f"map ×{theirs['map_warm_s'] / ours['map_warm_s']:.2f} (warm; > 1: dask-2 faster)")
    print(f"\nbytes for a {VIEW_COUNTRY} view vs the whole snapshot:")
    print(f"  manifest: {view['files_kept']} of {view['files']} partition files, {view['bytes_kept'] / 1e6:,.0f} of {view['bytes'] / 1e6:,.0f} MB "
          f"({view['bytes_kept'] / view['bytes']:.0%}) — what workers fetch from S3 and hash")
    print(f"  row groups: statistics columns {view['stat_columns_bytes_kept'] / 1e6:,.1f} of {view['stat_columns_bytes'] / 1e6:,.1f} MB "
          f"({view['stat_columns_bytes_kept'] / max(view['stat_columns_bytes'], 1):.0%}) in the row groups whose country range holds it")
    if "country_stats_read_bytes" in results.get("embedded", {}):
        e = results["embedded"]
        print(f"  measured (embedded, rchar): whole-snapshot statistics {e['stats_read_bytes'] / 1e6:,.1f} MB, {VIEW_COUNTRY} "
              f"{e['country_stats_read_bytes'] / 1e6:,.1f} MB")
    if "country_map_read_bytes" in ours:
        print(f"  measured (dask-2 workers, rchar): {VIEW_COUNTRY} statistics {ours['country_stats_read_bytes'] / 1e6:,.1f} MB from "
              f"{ours['country_partitions']} partitions; {VIEW_COUNTRY} map {ours['country_map_read_bytes'] / 1e6:,.1f} MB from "
              f"{ours['country_map_partitions']} partitions")
    one = results.get("dask-1", {})
    if "stats_warm_s" in one:
        partitions = one["partitions"]
        scale = 1_000_000 / max(view["partition_rows"] or view["rows"] / partitions, 1)
        per = {k: one[k] / partitions * scale for k in ("stats_warm_s", "stats_cold_s", "map_warm_s", "map_cold_s")}
        print(f"\nper 1M-zone partition on one worker thread (dask-1): statistics {per['stats_warm_s']:.2f} s warm, {per['stats_cold_s']:.2f} s cold; "
              f"map {per['map_warm_s']:.2f} s warm, {per['map_cold_s']:.2f} s cold (cold: sha256 check, map layer, first compiles)")
        fetch = 1_000_000 / max(view["rows"] / view["files"], 1) * view["bytes"] / view["files"] / 100e6
        print(f"expected, statistics (a tree level: a few rows, ~0.01 s; S3: {fetch:.1f} s per partition at ~100 MB/s):")
        print("\n".join(projection(per["stats_warm_s"], per["stats_cold_s"], 0.01, fetch)))
        print(f"expected, full-extent map {WIDTH}×{HEIGHT} (a tree level: windows up to the whole 38 MB aggregate added and moved, ~0.1 s):")
        print("\n".join(projection(per["map_warm_s"], per["map_cold_s"], 0.1, fetch)))


if __name__ == "__main__":
    main()
