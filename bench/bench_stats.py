"""Statistics (country × year × classification: zones, geodesic hectares) over the demo zones.

Ours: the embedded DuckDB store with area stored at ingest. Peer: the plain
GeoPandas way — read the zones from a GeoParquet file, compute the area
(equal-area projection, and the geodesic one like ours), group by.
"""

from __future__ import annotations

import numpy as np

from common import CACHE, arguments, demo_store, report, timed

from forestguard import stores
from forestguard.area import geodesic_area_ha
from forestguard.stats import statistics


def main() -> None:
    args = arguments(__doc__)
    url = demo_store(args.zones, args.seed)
    parquet = CACHE / f"demo-{args.zones}-{args.seed}.parquet"

    import geopandas as gpd

    with stores.open(url, read_only=True) as store:
        if not parquet.exists():
            store.zones(columns=["country", "year", "classification", "geometry"]).to_parquet(parquet)
        statistics(store)  # warm: extension loaded, file pages cached
        ours, result = timed(lambda: statistics(store), args.repeat)
        ours_cold_open, _ = timed(lambda: _open_and_compute(url), 3)

    def peer_equal_area():
        frame = gpd.read_parquet(parquet)
        frame["area_ha"] = frame.geometry.to_crs(6933).area / 10_000
        return frame.groupby(["country", "year", "classification"], dropna=False).agg(
            zones=("area_ha", "size"), area_ha=("area_ha", "sum")
        )

    def peer_geodesic():
        frame = gpd.read_parquet(parquet)
        frame["area_ha"] = geodesic_area_ha(frame.geometry.values)
        return frame.groupby(["country", "year", "classification"], dropna=False).agg(
            zones=("area_ha", "size"), area_ha=("area_ha", "sum")
        )

    peer_ea, grouped = timed(peer_equal_area, 1)
    peer_geo, grouped_geo = timed(peer_geodesic, 1)

    total_ours = sum(r["area_ha"] for r in result.rows)
    print(f"\n{args.zones:,} demo zones, {len(result.rows):,} groups; total area ours {total_ours:,.2f} ha, "
          f"peer geodesic {grouped_geo['area_ha'].sum():,.2f} ha, peer equal-area {grouped['area_ha'].sum():,.2f} ha")
    report("stats warm (DuckDB, stored geodesic area)", ours, peer_ea, "geopandas read+EPSG:6933 area+groupby")
    report("stats warm (DuckDB, stored geodesic area)", ours, peer_geo, "geopandas read+geodesic area+groupby")
    report("stats incl. opening the store", ours_cold_open, peer_ea, "geopandas read+EPSG:6933 area+groupby")
    print(f"target ≤ 50 ms warm: {'met' if ours <= 0.05 else 'NOT met'} ({ours * 1000:.1f} ms)")
    assert np.isclose(total_ours, grouped_geo["area_ha"].sum(), rtol=1e-6), "ours and the geodesic peer disagree"


def _open_and_compute(url: str):
    with stores.open(url, read_only=True) as store:
        return statistics(store)


if __name__ == "__main__":
    main()
