"""Evidence: every zone measured against every reference feature (``forestguard evidence compute --full``).

Same zones (the demo's), same 10,000 synthetic reference features (``forestguard demo``'s
layers), same run:

- ours: :func:`forestguard.evidence.compute.compute_evidence` with ``full=True`` on a DuckDB
  store (read, overlay, geodesic hectares, rules, write), then a rerun after one more layer;
- geopandas (a process of its own, zones and features already in memory, not timed):
  ``sjoin`` (intersects) + the pairs' ``intersection`` + pyproj's geodesic area per part;
- PostGIS (``--postgis``): one ``ST_Intersection`` query over the same zones and features,
  hectares by ``ST_Area(geography)``, into a temporary table.

Peak RSS beside each time. Every figure is taken on a shared machine: compare within one run.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

from common import arguments, demo_store, report

from forestguard import stores
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.demo import DemoLayersSpec, clearings, demo_layers
from forestguard.evidence.layers import read_layer
from forestguard.evidence.rules import load_rules


def _options(parser) -> None:
    parser.add_argument("--postgis", action="store_true", help="also time one PostGIS ST_Intersection query (loads the zones into a server)")
    parser.add_argument("--admin-url", default=None, help="existing PostGIS server (a role that may CREATE DATABASE)")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peer(duck_url: str, queue) -> None:
    import geopandas as gpd
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    loading = time.perf_counter()
    with stores.open(duck_url, read_only=True) as store:
        zones = store.zones(columns=["id", "geometry"])
        table = store.layer_features()
    features = gpd.GeoDataFrame({"layer": table.column("layer").to_pylist(), "feature_id": table.column("feature_id").to_pylist()},
                                geometry=gpd.GeoSeries.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)), crs=4326)
    zones.sindex, features.sindex  # noqa: B018 - built before the clock, as a long-running peer keeps them
    loaded = time.perf_counter() - loading
    started = time.perf_counter()
    pairs = gpd.sjoin(zones, features, predicate="intersects")
    parts = shapely.intersection(pairs.geometry.values, features.geometry.values[pairs["index_right"].to_numpy()])
    hectares = np.array([abs(geod.geometry_area_perimeter(g)[0]) / 10_000 if not g.is_empty else 0.0 for g in parts])
    found = int((hectares > 0).sum())
    queue.put({"seconds": time.perf_counter() - started, "findings": found, "hectares": float(hectares.sum()), "rss_mb": peak_rss_mb(), "load_s": loaded})


def run_peer(duck_url: str) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peer, args=(duck_url, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def postgis_query(admin_url: str | None, duck_url: str) -> tuple[float, int]:
    import psycopg

    from bench_areas import postgis_store
    from bench_postgis import postgres
    from forestguard.stores.postgis.connection import conninfo

    with postgres(admin_url) as admin:
        url = postgis_store(admin, duck_url)
        with stores.open(duck_url, read_only=True) as duck, stores.open(url) as pg:
            for layer in duck.reference_layers():
                table = duck.layer_features([layer.name])
                pg.add_layer(layer, table.drop_columns(["layer"]))
        with psycopg.connect(conninfo(url), autocommit=True) as con:
            con.execute("VACUUM (ANALYZE)")
            started = time.perf_counter()
            con.execute("CREATE TEMP TABLE pairs AS SELECT z.id, f.layer, f.feature_id, "
                        "ST_Area(geography(ST_Intersection(z.geometry, f.geometry))) / 10000 AS ha "
                        "FROM deforestation_zones z JOIN forestguard_layer_features f ON ST_Intersects(z.geometry, f.geometry)")
            seconds = time.perf_counter() - started
            found = con.execute("SELECT count(*) FROM pairs WHERE ha > 0").fetchone()[0]
    return seconds, int(found)


def main() -> None:
    args = arguments(__doc__, zones=1_000_000, extra=_options)
    source = demo_store(args.zones, args.seed)
    with tempfile.TemporaryDirectory(prefix="fg-bench-evidence-") as tmp:
        url = str(Path(tmp) / "zones.duckdb")
        shutil.copy(source, url)
        spec = DemoLayersSpec()
        rules = load_rules()
        with stores.open(url) as store:
            reads = list(demo_layers(spec, clearings(store, spec)))
            for read in reads[1:]:  # the first layer is added later, for the incremental rerun
                store.add_layer(read.layer, read.features)
            features = sum(r.layer.features for r in reads[1:])
            full = compute_evidence(store, rules, full=True)
            print(f"ours: {args.zones:,} zones × {features:,} features: {full.findings_written:,} findings in {full.seconds:.2f} s "
                  f"(peak RSS {peak_rss_mb():,.0f} MB)")
            store.add_layer(reads[0].layer, reads[0].features)
            again = compute_evidence(store, rules)
            print(f"ours, rerun after adding {reads[0].layer.name!r} ({reads[0].layer.features:,} features): {again.seconds:.2f} s, "
                  f"{again.zones_read:,} zones read, {again.zones_recomputed:,} zones measured again")
            store.remove_layer(reads[0].layer.name)
            compute_evidence(store, rules)
        peer = run_peer(url)
        print(f"geopandas sjoin + intersection + pyproj: {peer['findings']:,} findings (peak RSS {peer['rss_mb']:,.0f} MB); "
          f"its zones and features read from the store and indexed beforehand, not timed: {peer['load_s']:.2f} s")
        report("evidence compute --full vs geopandas", full.seconds, peer["seconds"], "geopandas")
        if args.postgis:
            seconds, found = postgis_query(args.admin_url, url)
            print(f"PostGIS one ST_Intersection query: {found:,} findings")
            report("evidence compute --full vs PostGIS query", full.seconds, seconds, "PostGIS")


if __name__ == "__main__":
    main()
