"""Memory and time from 1M to 10M zones: demo, serve start-up, maps and statistics, each against a peer.

Every measured path runs in a process of its own, so its peak RSS (``wait4``'s ``ru_maxrss``,
or ``VmHWM`` for a server) is its own, printed beside its time:

- ``demo``: ``forestguard demo`` into a DuckDB file (streamed batches) vs the peer, the same
  zones built whole with GeoPandas and written by DuckDB's ``CREATE TABLE AS`` (``--peer-max``
  bounds the sizes the peer runs at: it needs every geometry in memory);
- ``serve``: ``forestguard serve --warm`` until ``/readyz`` answers, peak RSS of the server;
- ``render``: our layer and map (full extent and Brazil, first call and warm) vs datashader's
  ``Canvas.polygons`` on the same zones read into spatialpandas (read, project, convert timed);
  the share of the peer's non-empty pixels that are also ours says the images agree;
- ``stats``: the dashboard's and ``/api/stats``'s statistics through the store vs a plain
  ``GROUP BY`` over the zone table, warm.

    python bench/bench_scale.py --sizes 1000000,5000000,10000000 --peer-max 1000000
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import CACHE, ROOT, arguments, timed

PYTHON = sys.executable
FORESTGUARD = str(Path(PYTHON).with_name("forestguard"))
WIDTH, HEIGHT = 1200, 800


def run_child(*args: str) -> tuple[dict, float, float]:
    """Run this script as ``--child ARGS``: its JSON result, wall seconds and peak RSS in MB."""
    return run([PYTHON, __file__, "--child", *args], json_out=True)


def run(command: list[str], json_out: bool = False) -> tuple[dict, float, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {err.strip()[-500:]}")
    result = json.loads(out.strip().splitlines()[-1]) if json_out else {"stdout": out}
    return result, wall, usage.ru_maxrss / 1024


def store_path(zones: int) -> Path:
    return CACHE / f"scale-{zones}.duckdb"


# -- children: one measured path each -----------------------------------------------------------------


def child_peer_demo(zones: int, out: str) -> dict:
    """The zones whole in memory (GeoPandas), stored with DuckDB's CREATE TABLE AS from an Arrow table."""
    import duckdb
    import pyarrow as pa
    import shapely

    from forestguard.demo import DemoSpec, demo_zones

    frame = demo_zones(DemoSpec(zones=zones))
    table = pa.table({c: frame[c].to_numpy() for c in ("country", "region", "classification", "year", "source", "verified")}
                     | {"area_ha": frame["area_ha"].astype(float).to_numpy(), "geometry": shapely.to_wkb(frame.geometry.values)})
    con = duckdb.connect(out)
    con.register("zones", table)
    con.execute("CREATE TABLE zones_copy AS SELECT * FROM zones")
    return {"zones": len(frame)}


def child_render_ours(url: str) -> dict:
    from forestguard import stores
    from forestguard.render import aggregate, build_layer, shade_image, view_ranges
    from forestguard.stores.base import ZoneFilter

    with stores.open(url, read_only=True) as store:
        build_s, layer = timed(lambda: build_layer(store), 1)
        x_range, y_range = view_ranges(layer, None, WIDTH, HEIGHT)
        first_s, _ = timed(lambda: shade_image(aggregate(layer, x_range, y_range, WIDTH, HEIGHT)), 1)
        warm_s, world = timed(lambda: aggregate(layer, x_range, y_range, WIDTH, HEIGHT), 3)
        shade_s, _ = timed(lambda: shade_image(world), 3)
        brazil = layer.select(ZoneFilter(countries=("Brazil",)))
        bx, by = view_ranges(brazil, None, WIDTH, HEIGHT)
        brazil_first_s, agg = timed(lambda: aggregate(brazil, bx, by, WIDTH, HEIGHT), 1)
        brazil_warm_s, _ = timed(lambda: aggregate(brazil, bx, by, WIDTH, HEIGHT), 3)
        import numpy as np

        np.save(CACHE / f"ours-{len(layer)}.npy", np.nan_to_num(world.values).sum(axis=-1) > 0)
        return {"zones": len(layer), "layer_mb": layer.nbytes / 2**20, "build_s": build_s, "first_s": first_s, "warm_s": warm_s,
                "shade_s": shade_s, "brazil_first_s": brazil_first_s, "brazil_warm_s": brazil_warm_s,
                "brazil_polygons": agg.attrs["polygons"], "geometry_mb": layer.geometry.nbytes / 2**20}


def child_render_peer(url: str) -> dict:
    import datashader as ds
    import numpy as np
    import pandas as pd
    import spatialpandas as sp

    from forestguard import stores
    from forestguard.render import CATEGORIES, view_ranges
    from forestguard.schema import Classification

    with stores.open(url, read_only=True) as store:
        read_s, frame = timed(lambda: store.zones(columns=["classification", "geometry"]), 1)
    frame["classification"] = pd.Categorical(frame["classification"].map(lambda v: Classification.parse(v).value if isinstance(v, str) else "none"),
                                             categories=CATEGORIES)
    project_s, frame = timed(lambda: frame.to_crs(3857), 1)
    convert_s, spdf = timed(lambda: sp.GeoDataFrame(frame), 1)
    del frame
    xmin, ymin, xmax, ymax = spdf.geometry.total_bounds
    pad_x, pad_y = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05
    from forestguard.render.image import _square_pixels

    x_range, y_range = _square_pixels((xmin - pad_x, ymin - pad_y, xmax + pad_x, ymax + pad_y), WIDTH, HEIGHT)
    canvas = ds.Canvas(plot_width=WIDTH, plot_height=HEIGHT, x_range=x_range, y_range=y_range)
    reducer = ds.by("classification", ds.sum("area_ha") if "area_ha" in spdf else ds.count())
    first_s, _ = timed(lambda: canvas.polygons(spdf, geometry="geometry", agg=reducer), 1)
    warm_s, agg = timed(lambda: canvas.polygons(spdf, geometry="geometry", agg=reducer), 2)
    np.save(CACHE / f"peer-{len(spdf)}.npy", np.nan_to_num(agg.values).sum(axis=-1) > 0)
    return {"read_s": read_s, "project_s": project_s, "convert_s": convert_s, "first_s": first_s, "warm_s": warm_s, "zones": len(spdf)}


#: The statistics the dashboard and /api/stats ask for: (label, filter, group keys).
def stats_cases():
    from forestguard.schema import Classification
    from forestguard.stores.base import ZoneFilter

    brazil_recent = ZoneFilter(countries=("Brazil",), year_from=2019, classifications=(Classification.ILLEGAL,), verified_only=True)
    return [
        ("all, cards", ZoneFilter(), ("classification",)),
        ("all, yearly bars", ZoneFilter(), ("year", "classification")),
        ("all, country×year×class", ZoneFilter(), ("country", "year", "classification")),
        ("Brazil, yearly bars", ZoneFilter(countries=("Brazil",)), ("year", "classification")),
        ("Brazil 2019-, illegal, verified", brazil_recent, ("year",)),
        ("confidence ≥ 0.8, by source", ZoneFilter(min_confidence=0.8, sources=("GLAD", "PRODES")), ("classification",)),
    ]


def child_stats(url: str) -> dict:
    from forestguard import stores
    from forestguard.stats import statistics
    from forestguard.stores.base import aggregate_sql, filter_sql

    out = {}
    with stores.open(url, read_only=True) as store:
        con = store._cursor()
        for label, where, by in stats_cases():
            statistics(store, where, by)
            ours_s, ours = timed(lambda: statistics(store, where, by), 5)
            sql = filter_sql(where)
            query = aggregate_sql("deforestation_zones", by, sql.clause)
            con.execute(query, sql.params).fetchall()
            peer_s, rows = timed(lambda: con.execute(query, sql.params).fetchall(), 5)
            out[label] = {"ours_s": ours_s, "peer_s": peer_s, "rows_equal": len(rows) == len(ours.rows)}
    return out


def serve_startup(url: str, port: int) -> tuple[float, float, float]:
    """Seconds until /readyz answers 200 after `serve --warm`, and the server's peak and final RSS (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen([FORESTGUARD, "serve", "--db", url, "--port", str(port), "--warm", "--address", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = started + 600
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)  # polling the server's readiness: a bench, not a test
        ready_s = time.perf_counter() - started
        status = Path(f"/proc/{process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        return ready_s, int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        name, *rest = sys.argv[2:]
        result = {"peer-demo": lambda: child_peer_demo(int(rest[0]), rest[1]), "render-ours": lambda: child_render_ours(rest[0]),
                  "render-peer": lambda: child_render_peer(rest[0]), "stats": lambda: child_stats(rest[0])}[name]()
        print(json.dumps(result))
        return

    def extra(parser):
        parser.add_argument("--sizes", default="1000000,5000000,10000000", help="zone counts, comma-separated")
        parser.add_argument("--peer-max", type=int, default=1_000_000, help="largest size the whole-in-memory peers run at")
        parser.add_argument("--port", type=int, default=18501)

    args = arguments(__doc__, extra=extra)
    CACHE.mkdir(exist_ok=True)
    for zones in (int(s) for s in args.sizes.split(",")):
        print(f"\n=== {zones:,} zones")
        path = store_path(zones)
        if not path.exists():
            tmp = path.with_suffix(".tmp.duckdb")
            tmp.unlink(missing_ok=True)
            _, demo_s, demo_mb = run([FORESTGUARD, "demo", "--zones", str(zones), "--db", str(tmp)])
            tmp.rename(path)
            line = f"demo (streamed into DuckDB)            {demo_s:8.1f} s  peak {demo_mb:7.0f} MB"
            if zones <= args.peer_max:
                peer_out = CACHE / f"peer-demo-{zones}.duckdb"
                peer_out.unlink(missing_ok=True)
                _, peer_s, peer_mb = run_child("peer-demo", str(zones), str(peer_out))
                peer_out.unlink(missing_ok=True)
                line += f"   peer (GeoPandas whole + CTAS) {peer_s:6.1f} s  peak {peer_mb:7.0f} MB   ratio time ×{peer_s / demo_s:.2f}, memory ×{peer_mb / demo_mb:.2f}"
            print(line)
        ready_s, peak_mb, rss_mb = serve_startup(str(path), args.port)
        print(f"serve --warm ready                      {ready_s:8.1f} s  peak {peak_mb:7.0f} MB  (RSS when ready {rss_mb:.0f} MB)")
        ours, ours_s, ours_mb = run_child("render-ours", str(path))
        print(f"render ours: layer {ours['build_s']:.1f} s ({ours['layer_mb']:.0f} MB), full extent first {ours['first_s']:.2f} s "
              f"(numba compiles), warm {ours['warm_s'] * 1000:.0f} ms + shade {ours['shade_s'] * 1000:.0f} ms; Brazil first "
              f"{ours['brazil_first_s'] * 1000:.0f} ms ({ours['brazil_polygons']} polygons read), warm {ours['brazil_warm_s'] * 1000:.0f} ms; "
              f"process peak {ours_mb:.0f} MB")
        if zones <= args.peer_max:
            import numpy as np

            peer, peer_s, peer_mb = run_child("render-peer", str(path))
            print(f"render peer (datashader on spatialpandas): read {peer['read_s']:.1f} s, project {peer['project_s']:.1f} s, "
                  f"convert {peer['convert_s']:.1f} s, first {peer['first_s']:.2f} s, warm {peer['warm_s'] * 1000:.0f} ms; process peak {peer_mb:.0f} MB")
            print(f"  full extent warm: ours {ours['warm_s'] * 1000:.0f} ms vs {peer['warm_s'] * 1000:.0f} ms (×{peer['warm_s'] / ours['warm_s']:.1f}); "
                  f"ready to draw: ours {ours['build_s'] + ours['first_s']:.1f} s vs {peer['read_s'] + peer['project_s'] + peer['convert_s'] + peer['first_s']:.1f} s; "
                  f"peak memory ×{peer_mb / ours_mb:.1f}")
            a, b = np.load(CACHE / f"ours-{zones}.npy"), np.load(CACHE / f"peer-{zones}.npy")
            print(f"  images: {(a & b).sum() / max(b.sum(), 1):.1%} of the peer's non-empty pixels also ours; ours {a.sum():,} vs {b.sum():,}")
        stats, _, stats_mb = run_child("stats", str(path))
        for label, figures in stats.items():
            print(f"stats {label:<34} ours {figures['ours_s'] * 1000:7.1f} ms   plain GROUP BY {figures['peer_s'] * 1000:7.1f} ms   "
                  f"ratio ×{figures['peer_s'] / figures['ours_s']:.1f}{'' if figures['rows_equal'] else '  ROWS DIFFER'}")


if __name__ == "__main__":
    main()
