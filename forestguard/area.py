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
    """Area in hectares of each (Multi)Polygon, holes subtracted; NaN for missing ones."""
    geometries = np.asarray(geometries, dtype=object)
    out = np.full(len(geometries), np.nan)
    area = WGS84.geometry_area_perimeter
    for i, geom in enumerate(geometries):
        if geom is not None and not geom.is_empty:
            # The sign only tells ring orientation; holes are handled by pyproj.
            out[i] = abs(area(geom)[0]) / M2_PER_HA
    return out


def polygon_parts(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Explode (Multi)Polygons into Polygons; returns parts and the index each came from."""
    parts, index = shapely.get_parts(np.asarray(geometries, dtype=object), return_index=True)
    return parts, index
