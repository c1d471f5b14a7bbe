"""An independent reference for areas: shapely overlay + pyproj's geodesic area, per zone, summed by pandas.

Nothing here comes from forestguard.areas, so the package and the reference cannot agree on a
wrong answer: the package is held to it within 0.01 ha per statistics row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
CLASS_NAMES = {"Légale": "legal", "Illégale": "illegal"}


def geodesic_ha(geometry) -> float:
    if geometry is None or geometry.is_empty:
        return 0.0
    polygons = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
    return sum(abs(GEOD.geometry_area_perimeter(p)[0]) for p in polygons) / 10_000.0


def reference_rows(zones: pd.DataFrame, area, by: tuple[str, ...]) -> list[dict]:
    """Zones meeting ``area`` (any point in common) and the geodesic hectares of their part inside, per group."""
    geometries = np.asarray(zones.geometry.values, dtype=object)
    meets = shapely.intersects(geometries, area)
    chosen = zones[meets].copy()
    chosen["inside_ha"] = [geodesic_ha(shapely.intersection(g, area)) for g in geometries[meets]]
    chosen["classification"] = chosen["classification"].map(CLASS_NAMES)
    if not by:
        return [{"zones": len(chosen), "area_ha": round(float(chosen["inside_ha"].sum()), 2)}] if len(chosen) else []
    grouped = chosen.groupby(list(by), dropna=False).agg(zones=("inside_ha", "size"), area_ha=("inside_ha", "sum")).reset_index()
    rows = []
    for record in grouped.to_dict("records"):
        row = {k: (None if pd.isna(record[k]) else (int(record[k]) if k == "year" else record[k])) for k in by}
        rows.append({**row, "zones": int(record["zones"]), "area_ha": round(float(record["area_ha"]), 2)})
    return rows


def assert_rows_match(rows: list[dict], expected: list[dict], by: tuple[str, ...], tolerance: float = 0.01) -> None:
    """Same groups, same zone counts, hectares within ``tolerance`` per row."""
    def key(row):
        return tuple((row[k] is None, row[k] if row[k] is not None else 0) for k in by)

    got = {key(r): r for r in rows}
    want = {key(r): r for r in expected}
    assert set(got) == set(want), (sorted(got), sorted(want))
    for k, row in want.items():
        assert got[k]["zones"] == row["zones"], (k, got[k], row)
        assert abs(got[k]["area_ha"] - row["area_ha"]) <= tolerance, (k, got[k]["area_ha"], row["area_ha"])
