"""Geodesic area on the WGS84 ellipsoid.

Areas are computed with GeographicLib (through ``pyproj.Geod``), the same
algorithm PostGIS uses for ``ST_Area(geography)``, so a stored ``area_ha`` agrees
with what either engine would compute on the spheroid.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Geod

WGS84 = Geod(ellps="WGS84")
M2_PER_HA = 10_000.0


def geodesic_area_ha(geometries: np.ndarray) -> np.ndarray:
    """Area in hectares of each (Multi)Polygon, holes subtracted; NaN for missing or empty ones.

    Each ring is measured on its own and its size taken, so the result does not
    depend on ring orientation (files often wind holes the same way as their
    exterior, which a signed sum would add instead of subtract).
    """
    geometries = np.asarray(geometries, dtype=object)
    out = np.full(len(geometries), np.nan)
    if len(geometries) == 0:
        return out
    present = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    polygons, polygon_of = polygon_parts(np.where(present, geometries, None))
    rings, ring_of = shapely.get_rings(polygons, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    lons = np.ascontiguousarray(coords[:, 0])
    lats = np.ascontiguousarray(coords[:, 1])
    ends = np.cumsum(np.bincount(coord_of, minlength=len(rings)))
    starts = np.concatenate([[0], ends[:-1]])
    ring_area = np.empty(len(rings))
    area = WGS84.polygon_area_perimeter
    for k in range(len(rings)):
        ring_area[k] = abs(area(lons[starts[k] : ends[k]], lats[starts[k] : ends[k]])[0])
    # get_rings lists each polygon's exterior first, then its holes.
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = ring_of[1:] != ring_of[:-1]
    polygon_area = np.bincount(ring_of, weights=np.where(exterior, ring_area, -ring_area), minlength=len(polygons))
    total = np.bincount(polygon_of, weights=polygon_area, minlength=len(geometries))
    out[present] = total[present] / M2_PER_HA
    return out


def polygon_parts(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Explode (Multi)Polygons into Polygons; returns parts and the index each came from."""
    geometries = np.asarray(geometries, dtype=object)
    if (shapely.get_type_id(geometries) == shapely.GeometryType.POLYGON).all():
        return geometries, np.arange(len(geometries))  # nothing to explode: skip copying every polygon
    parts, index = shapely.get_parts(geometries, return_index=True)
    return parts, index
