"""Evidence: every zone measured against every reference feature (``forestguard evidence compute --full``).

Same zones (the demo's), same 10,000 synthetic reference features (``forestguard demo``'s
layers), same run:

- ours (a process of its own): :func:`forestguard.evidence.compute.compute_evidence` with
  ``full=True`` on a DuckDB store (read, overlay, geodesic hectares, rules, write), then a
  rerun after one more layer;
- geopandas (a process of its own each, timed from the same start: zones and features read
  from the store, then indexed): ``sjoin`` (intersects) + the pairs' ``intersection`` +
  pyproj's geodesic area per part, and the issue's textbook form, ``overlay(how="intersection")``
  + pyproj (up to :data:`OVERLAY_MAX_ZONES` zones);
- PostGIS (``--postgis``): one ``ST_Intersection`` query over the same zones and features,
  hectares by ``ST_Area(geography)``, into a temporary table.

Peak RSS beside each time. Every figure is taken on a shared machine: compare within one run.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

from common import arguments, demo_store, in_process, report

from forestguard import stores
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.demo import DemoLayersSpec, clearings, demo_layers
from forestguard.evidence.rules import load_rules


def _options(parser) -> None:
    parser.add_argument("--postgis", action="store_true", help="also time one PostGIS ST_Intersection query (loads the zones into a server)")
    parser.add_argument("--admin-url", default=None, help="existing PostGIS server (a role that may CREATE DATABASE)")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(url: str, queue) -> None:
    """Our full run in a process of its own (its peak RSS is the run's: imports, store, compute, write)."""
    rules = load_rules()
    started, cpu = time.perf_counter(), time.process_time()
    with stores.open(url) as store:
        full = compute_evidence(store, rules, full=True)
    queue.put({"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "findings": full.findings_written,
               "geometries": full.geometries_read, "rss_mb": peak_rss_mb(), "writing_s": full.seconds_writing})


def _read_store(duck_url: str):
    """Zones and features from the store into GeoDataFrames, as a geopandas user starts (part of the peers' timed work)."""
    import geopandas as gpd

    with stores.open(duck_url, read_only=True) as store:
        zones = store.zones(columns=["id", "geometry"])
        table = store.layer_features()
    features = gpd.GeoDataFrame({"layer": table.column("layer").to_pylist(), "feature_id": table.column("feature_id").to_pylist()},
                                geometry=gpd.GeoSeries.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)), crs=4326)
    return zones, features


def _peer(duck_url: str, how: str, queue) -> None:
    """A geopandas peer, timed from the store as ours is: read, index, pair, cut, measure geodesically (pyproj)."""
    import geopandas as gpd
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    started, cpu = time.perf_counter(), time.process_time()
    zones, features = _read_store(duck_url)
    loaded = time.perf_counter() - started
    if how == "sjoin":  # hand-tuned: sjoin (intersects) then only the pairs' intersection
        pairs = gpd.sjoin(zones, features, predicate="intersects")
        parts = shapely.intersection(pairs.geometry.values, features.geometry.values[pairs["index_right"].to_numpy()])
    else:  # the textbook call the issue names
        parts = gpd.overlay(zones, features, how="intersection", keep_geom_type=True).geometry.values
    hectares = np.array([abs(geod.geometry_area_perimeter(g)[0]) / 10_000 if not g.is_empty else 0.0 for g in parts])
    found = int((hectares > 0).sum())
    queue.put({"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "findings": found,
               "hectares": float(hectares.sum()), "rss_mb": peak_rss_mb(), "load_s": loaded})


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


#: Above this many zones geopandas.overlay is not run (minutes and GBs; the sjoin peer is the stronger one anyway).
OVERLAY_MAX_ZONES = 300_000


def main() -> None:
    args = arguments(__doc__, zones=1_000_000, extra=_options)
    source = demo_store(args.zones, args.seed)
    print(f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores: wall times are shared-machine times, "
          "CPU seconds (process_time, every thread) beside them")
    print("every figure starts from the same point: zones and features in the DuckDB store, nothing read or indexed yet")
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
        ours = in_process(_ours, url)
        print(f"ours: {args.zones:,} zones × {features:,} features: {ours['findings']:,} findings in {ours['seconds']:.2f} s "
              f"(CPU {ours['cpu_s']:.2f} s; of which writing every zone's evidence row {ours['writing_s']:.2f} s, which the peers do not; "
              f"geometry read of {ours['geometries']:,} zones; peak RSS {ours['rss_mb']:,.0f} MB)")
        with stores.open(url) as store:
            store.add_layer(reads[0].layer, reads[0].features)
            again = compute_evidence(store, rules)
            print(f"ours, rerun after adding {reads[0].layer.name!r} ({reads[0].layer.features:,} features): {again.seconds:.2f} s, "
                  f"{again.zones_read:,} zones' boxes read, geometry of {again.geometries_read:,}, {again.zones_recomputed:,} zones measured again")
            store.remove_layer(reads[0].layer.name)
            compute_evidence(store, rules)
        peer = in_process(_peer, url, "sjoin")
        print(f"geopandas sjoin + intersection + pyproj: {peer['findings']:,} findings in {peer['seconds']:.2f} s (CPU {peer['cpu_s']:.2f} s; "
              f"of which reading the store {peer['load_s']:.2f} s; peak RSS {peer['rss_mb']:,.0f} MB)")
        report("evidence compute --full vs geopandas sjoin", ours["seconds"], peer["seconds"], "geopandas")
        report("  (CPU seconds)", ours["cpu_s"], peer["cpu_s"], "geopandas")
        if args.zones <= OVERLAY_MAX_ZONES:
            textbook = in_process(_peer, url, "overlay")
            print(f"geopandas overlay(how='intersection') + pyproj: {textbook['findings']:,} findings in {textbook['seconds']:.2f} s "
                  f"(CPU {textbook['cpu_s']:.2f} s; of which reading the store {textbook['load_s']:.2f} s; peak RSS {textbook['rss_mb']:,.0f} MB)")
            report("evidence compute --full vs geopandas overlay", ours["seconds"], textbook["seconds"], "geopandas")
            report("  (CPU seconds)", ours["cpu_s"], textbook["cpu_s"], "geopandas")
        else:
            print(f"geopandas overlay(how='intersection'): not run above {OVERLAY_MAX_ZONES:,} zones (the sjoin peer above is its faster form)")
        if args.postgis:
            seconds, found = postgis_query(args.admin_url, url)
            print(f"PostGIS one ST_Intersection query: {found:,} findings (server-side; zones and features loaded and indexed beforehand, not timed)")
            report("evidence compute --full vs PostGIS query", ours["seconds"], seconds, "PostGIS")


if __name__ == "__main__":
    main()
