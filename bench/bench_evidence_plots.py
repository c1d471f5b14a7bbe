"""Evidence: the risk of 10,000 production plots (``forestguard evidence plots FILE --id FIELD --cutoff 2020-12-31``).

Same zones (the demo's), same 10,000 synthetic reference features (``forestguard demo``'s
layers), same plots (a GeoJSON file of irregular polygons and rotated rectangles of 200 to
3,000 ha, placed around zones of the store, deterministic), same run:

- ours: :func:`forestguard.areas.read_plots` then :func:`forestguard.evidence.plots.plot_risk`
  (what the CLI calls), from the file and the store's path; then once through the CLI in a
  process of its own (start-up, reading, writing the JSON included);
- geopandas (a process of its own, from the same starting point: the file and the store):
  the plots read with ``read_file``, the zones after the cut-off year and the features read
  from the store, ``sjoin`` (intersects) plots × zones + the pairs' ``intersection`` + pyproj's
  geodesic area per part; per layer kind an ``overlay`` (intersection) of plots with the kind's
  features, dissolved by plot, measured the same way.

Ours runs ``--repeat`` times, each in a fresh process (the median is reported); the CLI and the
peer once. Peak RSS beside each time; the load average of the machine at the end. Every figure is taken
on a shared machine: compare within one run. Target: 10,000 plots × 1M zones ≤ 60 s.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import shapely

from common import arguments, demo_store, in_process, report

from forestguard import stores
from forestguard.areas import read_plots
from forestguard.demo import M_PER_DEGREE
from forestguard.evidence.demo import DemoLayersSpec, clearings, demo_layers
from forestguard.evidence.plots import plot_risk
from forestguard.evidence.rules import load_rules

CUTOFF = date(2020, 12, 31)
PLOT_HA = (200.0, 3_000.0)


def _options(parser) -> None:
    parser.add_argument("--plots", type=int, default=10_000, help="synthetic plots (default %(default)s)")
    parser.add_argument("--skip-cli", action="store_true", help="leave out the CLI run in a process of its own")
    parser.add_argument("--skip-peer", action="store_true", help="leave out geopandas")
    parser.add_argument("--profile", default="", metavar="FILE", help="cProfile our run into FILE")
    parser.add_argument("--save", default="", metavar="FILE", help="write our JSON report into FILE (to compare runs)")


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (``VmHWM``: ``ru_maxrss`` would count the parent's, inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def anchors(store, n: int, seed: int) -> np.ndarray:
    """(lon, lat) of ``n`` zones of the store chosen by the seed: where the plots go (plots hold clearing)."""
    total = store.count()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, min(n, total), replace=False))
    points, start = [], 0
    for batch in store.zone_batches(columns=["geometry"], batch_rows=200_000):
        at = chosen[(chosen >= start) & (chosen < start + len(batch))] - start
        start += len(batch)
        if len(at):
            wkb = batch.column("geometry").combine_chunks().take(at).to_numpy(zero_copy_only=False)
            points.append(shapely.get_coordinates(shapely.centroid(shapely.from_wkb(wkb))))
    return np.concatenate(points)


def plot_shapes(centres: np.ndarray, seed: int) -> np.ndarray:
    """Half irregular star-shaped polygons (24 vertices), half slightly rotated rectangles, of 200 to 3,000 ha."""
    rng = np.random.default_rng(seed + 7)
    n = len(centres)
    area_m2 = rng.uniform(*PLOT_HA, n) * 10_000
    shifted = centres + rng.uniform(-0.01, 0.01, (n, 2))  # the anchor zone near, not always in, the middle
    lat = shifted[:, 1:2]
    scale_x = 1 / (M_PER_DEGREE * np.cos(np.radians(lat)))
    star = np.arange(n) % 2 == 0
    out = np.empty(n, dtype=object)
    k = int(star.sum())
    vertices = 24
    angles = np.arange(vertices) * 2 * np.pi / vertices + rng.uniform(-0.1, 0.1, (k, vertices))
    radii = np.sqrt(area_m2[star] / np.pi)[:, None] * rng.uniform(0.8, 1.15, (k, vertices))
    ring = np.stack([shifted[star, 0:1] + radii * np.cos(angles) * scale_x[star], lat[star] + radii * np.sin(angles) / M_PER_DEGREE], axis=-1)
    out[star] = shapely.polygons(np.concatenate([ring, ring[:, :1]], axis=1))
    m = n - k
    side = np.sqrt(area_m2[~star])
    aspect = rng.uniform(0.5, 2.0, m)
    half_w, half_h = side * np.sqrt(aspect) / 2, side / np.sqrt(aspect) / 2
    angle = rng.uniform(-0.4, 0.4, m)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    x, y = corners[None, :, 0] * half_w[:, None], corners[None, :, 1] * half_h[:, None]
    rx = x * np.cos(angle)[:, None] - y * np.sin(angle)[:, None]
    ry = x * np.sin(angle)[:, None] + y * np.cos(angle)[:, None]
    ring = np.stack([shifted[~star, 0:1] + rx * scale_x[~star], lat[~star] + ry / M_PER_DEGREE], axis=-1)
    out[~star] = shapely.polygons(ring)
    return out


def write_plots(path: Path, shapes: np.ndarray) -> None:
    """The plots as a GeoJSON FeatureCollection with a ``plot_id`` property, as a user's file."""
    features = [{"type": "Feature", "properties": {"plot_id": f"PLOT-{i:05d}"}, "geometry": json.loads(g)}
                for i, g in enumerate(shapely.to_geojson(shapes))]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def _ours(plots_path: str, url: str, profile: str, queue) -> None:
    """What ``evidence plots`` does, from the file and the store's path (the rules read too), in a process of its own."""
    import cProfile

    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    rules = load_rules()
    plots = read_plots(plots_path, "plot_id")
    read = time.perf_counter() - started
    with stores.open(url, read_only=True) as store:
        result = plot_risk(store, plots, CUTOFF, rules)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    queue.put({"seconds": seconds, "cpu_s": cpu, "read_s": read, "rss_mb": peak_rss_mb(), "result": result.to_dict()})


def run_ours(plots_path: Path, url: str, profile: str = "") -> dict:
    return in_process(_ours, str(plots_path), url, profile)


def cli(plots_path: Path, url: str, out: Path) -> tuple[float, float]:
    """The command in a process of its own: wall time and its peak RSS (printed by the process itself as it exits)."""
    run = ("import atexit, runpy, sys\n"
           "def peak():\n"
           "    print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0], file=sys.stderr)\n"
           "atexit.register(peak)\n"
           "sys.argv = ['forestguard', *sys.argv[1:]]\n"
           "runpy.run_module('forestguard', run_name='__main__')\n")
    started = time.perf_counter()
    with out.open("w") as stdout:
        done = subprocess.run([sys.executable, "-c", run, "evidence", "plots", str(plots_path), "--id", "plot_id",
                               "--cutoff", CUTOFF.isoformat(), "--format", "json", "--db", url], stdout=stdout, stderr=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - started, int(done.stderr.split()[-1]) / 1024


# -- the peer: geopandas + pyproj, in a process of its own ------------------------------------------


def _peer(plots_path: str, url: str, queue) -> None:
    import geopandas as gpd
    import pandas as pd
    from pyproj import Geod

    from forestguard.stores.base import ZoneFilter

    geod = Geod(ellps="WGS84")

    def geodesic_ha(geometries) -> np.ndarray:
        return np.array([abs(geod.geometry_area_perimeter(g)[0]) / 10_000 if g is not None and not g.is_empty else 0.0 for g in geometries])

    started, cpu = time.perf_counter(), time.process_time()
    plots = gpd.read_file(plots_path)
    with stores.open(url, read_only=True) as store:
        zones = store.zones(ZoneFilter(year_from=CUTOFF.year + 1), columns=["id", "year", "geometry"])
        kinds = {layer.name: layer.kind for layer in store.reference_layers()}
        table = store.layer_features()
    features = gpd.GeoDataFrame({"kind": [kinds[n] for n in table.column("layer").to_pylist()], "feature_id": table.column("feature_id").to_pylist()},
                                geometry=gpd.GeoSeries.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)), crs=4326)
    loaded = time.perf_counter() - started
    pairs = gpd.sjoin(plots, zones, predicate="intersects")
    parts = shapely.intersection(pairs.geometry.values, zones.geometry.values[zones.index.get_indexer(pairs["index_right"])])
    pairs = pd.DataFrame({"plot_id": pairs["plot_id"].to_numpy(), "area_ha": geodesic_ha(parts)})
    cleared = pairs.groupby("plot_id").agg(zones=("area_ha", "size"), area_ha=("area_ha", "sum"))
    overlaps = {}
    for kind, of_kind in features.groupby("kind"):
        inside = gpd.overlay(plots[["plot_id", "geometry"]], of_kind[["geometry"]], how="intersection", keep_geom_type=True)
        merged = inside.dissolve(by="plot_id")
        overlaps[kind] = dict(zip(merged.index, geodesic_ha(merged.geometry.values)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    per_plot = {"cleared_after_cutoff_ha": cleared["area_ha"].to_dict(), "cleared_after_cutoff_zones": cleared["zones"].to_dict(), **overlaps}
    queue.put({"seconds": seconds, "cpu_s": cpu, "load_s": loaded, "cleared_ha": float(cleared["area_ha"].sum()), "zones": int(cleared["zones"].sum()),
               "overlaps": {k: float(sum(v.values())) for k, v in overlaps.items()}, "per_plot": per_plot, "rss_mb": peak_rss_mb()})


def disagreements(rows: list[dict], per_plot: dict[str, dict]) -> tuple[int, float]:
    """Plot figures (hectares, zones) where ours and the peer's differ by more than 0.01 ha (or a zone), and the largest difference."""
    worst, count = 0.0, 0
    for row in rows:
        ours = {"cleared_after_cutoff_ha": row["cleared_after_cutoff_ha"], "cleared_after_cutoff_zones": row["cleared_after_cutoff_zones"], **row["overlaps"]}
        for measure, value in ours.items():
            difference = abs(value - float(per_plot.get(measure, {}).get(row["plot_id"], 0.0)))
            worst = max(worst, difference)
            count += difference > 0.01 + 1e-9  # ours are rounded to the cent
    return count, worst


def run_peer(plots_path: Path, url: str) -> dict:
    return in_process(_peer, str(plots_path), url)


def main() -> None:
    args = arguments(__doc__, zones=1_000_000, extra=_options)
    source = demo_store(args.zones, args.seed)
    with tempfile.TemporaryDirectory(prefix="fg-bench-evidence-plots-") as tmp:
        url = str(Path(tmp) / "zones.duckdb")
        shutil.copy(source, url)
        plots_path = Path(tmp) / "plots.geojson"
        spec = DemoLayersSpec(seed=args.seed)
        with stores.open(url) as store:
            reads = list(demo_layers(spec, clearings(store, spec)))
            for read in reads:
                store.add_layer(read.layer, read.features)
            write_plots(plots_path, plot_shapes(anchors(store, args.plots, args.seed), args.seed))
        features = sum(r.layer.features for r in reads)
        print(f"{args.plots:,} plots ({plots_path.stat().st_size / 1e6:.1f} MB GeoJSON) × {args.zones:,} zones × {features:,} reference features, "
              f"cut-off {CUTOFF}")
        runs = [run_ours(plots_path, url, args.profile if i == 0 else "") for i in range(max(args.repeat, 1))]  # each in a fresh process
        run = runs[0]
        seconds, rows = statistics.median(r["seconds"] for r in runs), run["result"]["plots"]
        assert all(r["result"] == run["result"] for r in runs), "our runs disagree"
        verdicts: dict[str, int] = {}
        for row in rows:
            verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
        cleared = sum(p["cleared_after_cutoff_ha"] for p in rows)
        zones = sum(p["cleared_after_cutoff_zones"] for p in rows)
        kinds = {k: round(sum(p["overlaps"][k] for p in rows), 2) for k in rows[0]["overlaps"]} if rows else {}
        print(f"ours: {seconds:.2f} s (median of {len(runs)}: {', '.join(format(r['seconds'], '.2f') for r in runs)}), of which reading the plots "
              f"{statistics.median(r['read_s'] for r in runs):.2f} s; CPU {statistics.median(r['cpu_s'] for r in runs):.2f} s (peak RSS {max(r['rss_mb'] for r in runs):,.0f} MB): verdicts {verdicts}; "
              f"cleared after the cut-off {cleared:,.2f} ha in {zones:,} plot-zone pairs; overlaps {kinds}")
        if args.profile:
            print(f"(profile of ours in {args.profile})")
        if args.save:
            Path(args.save).write_text(json.dumps(run["result"], indent=1))
        if not args.skip_cli:
            cli_s, cli_rss = cli(plots_path, url, Path(tmp) / "plots.json")
            same = json.loads((Path(tmp) / "plots.json").read_text()) == run["result"]
            print(f"ours through the CLI (a process of its own, start-up included): {cli_s:.2f} s (peak RSS {cli_rss:,.0f} MB); "
                  f"{'the same JSON' if same else 'A DIFFERENT JSON'}")
        if not args.skip_peer:
            peer = run_peer(plots_path, url)
            overlaps = {k: round(v, 2) for k, v in peer["overlaps"].items()}
            print(f"geopandas: {peer['seconds']:.2f} s, of which reading {peer['load_s']:.2f} s; CPU {peer['cpu_s']:.2f} s (peak RSS {peer['rss_mb']:,.0f} MB): cleared "
                  f"{peer['cleared_ha']:,.2f} ha in {peer['zones']:,} plot-zone pairs; overlaps {overlaps}")
            count, worst = disagreements(rows, peer["per_plot"])
            print(f"per plot, ours and geopandas: {count} figure(s) differ by more than 0.01 ha or a zone; largest difference {worst:.4f}")
            report(f"evidence plots ({args.plots:,} × {args.zones:,}) vs geopandas", seconds, peer["seconds"], "geopandas")
            report("  the same in CPU time (less sensitive to a busy machine)", statistics.median(r["cpu_s"] for r in runs), peer["cpu_s"], "geopandas")
        print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
