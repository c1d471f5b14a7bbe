"""Map rendering of the demo zones at 1200×800: ours against datashader on GeoPandas and on spatialpandas.

Ours: compact rows prepared once (Web Mercator centroids, sorted by area) and drawn by
datashader as area-weighted points where zones are under a few pixels, as polygons (read
from the store for the view) where they are bigger. Peers: datashader ``Canvas.polygons`` on the same zones as a
GeoPandas GeoSeries and as a spatialpandas GeoDataFrame (conversion timed
separately). One run, same data; also: a zoomed view with ~100k zones, and a
cached aggregate served from the cache.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common import arguments, demo_store, report, timed

from forestguard import stores
from forestguard.render import CATEGORIES, build_layer, cached_aggregate, shade, view_ranges
from forestguard.render.raster import aggregate
from forestguard.schema import Classification

WIDTH, HEIGHT = 1200, 800


def non_empty(agg) -> np.ndarray:
    return np.nan_to_num(np.asarray(agg.values, dtype=float)).sum(axis=-1) > 0  # ours or datashader's (y, x, classification)


def agreement(ours: np.ndarray, peer: np.ndarray) -> str:
    both = (ours & peer).sum()
    return (f"non-empty pixels ours {ours.sum():,} vs {peer.sum():,} ({(ours.sum() - peer.sum()) / max(peer.sum(), 1):+.1%}), "
            f"{both / max(peer.sum(), 1):.1%} of the peer's also ours")


def zoomed_view(layer, wanted: int = 100_000):
    """A square around the densest area holding about ``wanted`` zones' centroids."""
    from forestguard.stores.base import ZoneFilter

    brazil = layer.select(ZoneFilter(countries=("Brazil",)))
    cx, cy = float(np.median(brazil.column("x"))), float(np.median(brazil.column("y")))
    x, y = layer.column("x"), layer.column("y")
    low, high = 1_000.0, 5_000_000.0
    for _ in range(40):
        half = (low + high) / 2
        inside = int(((np.abs(x - cx) <= half * 1.5) & (np.abs(y - cy) <= half)).sum())
        low, high = (half, high) if inside < wanted else (low, half)
    half = (low + high) / 2
    return (cx - half * 1.5, cx + half * 1.5), (cy - half, cy + half), inside


def main() -> None:
    args = arguments(__doc__)
    url = demo_store(args.zones, args.seed)
    import datashader as ds
    import spatialpandas as sp

    with stores.open(url, read_only=True) as store:
        build_s, layer = timed(lambda: build_layer(store), 1)
        print(f"\n{len(layer):,} zones; layer built once per process in {build_s:.2f} s ({layer.nbytes / 1e6:,.0f} MB)")
        x_range, y_range = view_ranges(layer, None, WIDTH, HEIGHT)
        first_s, _ = timed(lambda: aggregate(layer, x_range, y_range, WIDTH, HEIGHT), 1)
        ours_s, ours = timed(lambda: aggregate(layer, x_range, y_range, WIDTH, HEIGHT), args.repeat)
        shade_s, _ = timed(lambda: shade(ours), args.repeat)
        print(f"ours: first call (numba compile) {first_s:.2f} s; warm aggregate {ours_s * 1000:.1f} ms + shade {shade_s * 1000:.1f} ms "
              f"({ours.attrs['points']:,} as points, {ours.attrs['polygons']:,} as polygons)")

        read_s, frame = timed(lambda: store.zones(columns=["classification", "geometry"]), 1)
    classes = frame["classification"].map(lambda v: Classification.parse(v).value if isinstance(v, str) else "none")
    frame["classification"] = pd.Categorical(classes, categories=CATEGORIES)
    project_s, frame = timed(lambda: frame.to_crs(3857), 1)
    canvas = ds.Canvas(plot_width=WIDTH, plot_height=HEIGHT, x_range=x_range, y_range=y_range)
    reducer = ds.by("classification", ds.count())
    gpd_first, _ = timed(lambda: canvas.polygons(frame, geometry="geometry", agg=reducer), 1)
    gpd_s, gpd_agg = timed(lambda: canvas.polygons(frame, geometry="geometry", agg=reducer), max(1, min(args.repeat, 2)))
    convert_s, spdf = timed(lambda: sp.GeoDataFrame(frame), 1)
    sp_first, _ = timed(lambda: canvas.polygons(spdf, geometry="geometry", agg=reducer), 1)
    sp_s, sp_agg = timed(lambda: canvas.polygons(spdf, geometry="geometry", agg=reducer), args.repeat)

    print(f"peers: read zones {read_s:.2f} s, project to 3857 {project_s:.2f} s, spatialpandas conversion {convert_s:.2f} s; "
          f"first calls {gpd_first:.2f} s (geopandas) / {sp_first:.2f} s (spatialpandas)\n")
    report(f"full extent {WIDTH}×{HEIGHT}, warm", ours_s, gpd_s, "datashader on GeoPandas")
    report(f"full extent {WIDTH}×{HEIGHT}, warm", ours_s, sp_s, "datashader on spatialpandas")
    report("full extent incl. preparing the data", build_s + ours_s, read_s + project_s + convert_s + sp_s, "spatialpandas incl. read+project+convert")
    print("agreement with GeoPandas:     " + agreement(non_empty(ours), non_empty(gpd_agg)))
    print("agreement with spatialpandas: " + agreement(non_empty(ours), non_empty(sp_agg)))

    zx, zy, inside = zoomed_view(layer)
    zoom_s, zoom = timed(lambda: aggregate(layer, zx, zy, WIDTH, HEIGHT), args.repeat)
    zoom_canvas = ds.Canvas(plot_width=WIDTH, plot_height=HEIGHT, x_range=zx, y_range=zy)
    zoom_peer_s, zoom_peer = timed(lambda: zoom_canvas.polygons(spdf, geometry="geometry", agg=reducer), args.repeat)
    print(f"\nzoomed view: {inside:,} zones inside, {zoom.attrs['polygons']:,} drawn as polygons (read from the store, then kept)")
    report("zoomed view ~100k zones, warm", zoom_s, zoom_peer_s, "datashader on spatialpandas")
    print("agreement (zoomed) with spatialpandas: " + agreement(non_empty(zoom), non_empty(zoom_peer)))

    from forestguard.cache import default_cache

    cache = default_cache()
    cached_aggregate(layer, x_range, y_range, WIDTH, HEIGHT, cache=cache)
    cached_s, _ = timed(lambda: cached_aggregate(layer, x_range, y_range, WIDTH, HEIGHT, cache=cache), args.repeat)
    print(f"\ncached aggregate served ({cache.backend} cache): {cached_s * 1000:.1f} ms")
    print(f"targets: full extent ≤ 300 ms {'met' if ours_s <= 0.3 else 'NOT met'} ({ours_s * 1000:.0f} ms); "
          f"zoomed ≤ 500 ms {'met' if zoom_s <= 0.5 else 'NOT met'} ({zoom_s * 1000:.0f} ms); "
          f"cached ≤ 20 ms {'met' if cached_s <= 0.02 else 'NOT met'} ({cached_s * 1000:.1f} ms)")
    assert abs(int(non_empty(ours).sum()) - int(non_empty(sp_agg).sum())) / non_empty(sp_agg).sum() < 0.05, "images disagree"


if __name__ == "__main__":
    main()
