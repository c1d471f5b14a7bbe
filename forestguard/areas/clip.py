"""Clipping to areas and measuring what is inside: the one definition every path uses.

RFC 7946 draws a polygon's edges as straight lines in longitude/latitude, so the part of a
zone inside an area is cut in EPSG:4326 coordinates, planar (GEOS through shapely), and
then measured geodesically on the WGS84 ellipsoid (:func:`forestguard.area.geodesic_area_ha`,
as ingest measures zones). Statistics of areas and plots, maps, alerts and evidence all
call these functions, whatever engine the zones came from, so their hectares agree to
the last bit.

A zone *intersects* an area when they share any point (DE-9IM, as PostGIS ``ST_Intersects``):
a zone that only touches the edge counts as a zone, with 0 ha inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa
import shapely

from ..area import geodesic_area_ha, geodesic_area_ha_of_flat
from ..flat import FlatPolygons
from ..validation import polygonal_part

if TYPE_CHECKING:
    from .shape import Area

_POLYGONAL = (shapely.GeometryType.POLYGON.value, shapely.GeometryType.MULTIPOLYGON.value)


def intersecting(geometries: np.ndarray, area: shapely.Geometry) -> np.ndarray:
    """Which geometries share a point with ``area`` (prepared on first use)."""
    shapely.prepare(area)
    return shapely.intersects(area, np.asarray(geometries, dtype=object))


def parts_inside(geometries: np.ndarray, areas: np.ndarray | shapely.Geometry) -> np.ndarray:
    """The polygonal part of each geometry inside its area (elementwise; one area for all is broadcast).

    Zones wholly inside come back as themselves (no overlay); the others are cut. None where
    nothing of area is inside (disjoint, or only an edge or point in common).
    """
    geometries = np.asarray(geometries, dtype=object)
    if isinstance(areas, shapely.Geometry):
        shapely.prepare(areas)
        areas = np.full(len(geometries), areas, dtype=object)
    else:
        areas = np.asarray(areas, dtype=object)
        shapely.prepare(areas)
    out = geometries.copy()
    if not len(out):
        return out
    whole = shapely.contains_properly(areas, geometries)
    cut = ~whole & ~shapely.is_missing(geometries)
    if cut.any():
        out[cut] = _polygonal(shapely.intersection(geometries[cut], areas[cut]))
    return out


def hectares_inside(geometries: np.ndarray, areas: np.ndarray | shapely.Geometry) -> np.ndarray:
    """Geodesic hectares (WGS84) of each geometry's part inside its area; 0 where there is none."""
    return np.nan_to_num(geodesic_area_ha(parts_inside(geometries, areas)), nan=0.0)


def meeting(wkb: pa.Array | pa.ChunkedArray, area: "Area", *, hectares: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Which zones (WKB, as the stores return them) intersect ``area``, and their hectares inside it.

    The same answers as :func:`intersecting` and :func:`hectares_inside`, for many zones at once
    without a shapely object for most of them: a zone whose box meets no box of the area's
    edges lies wholly on one side of its boundary (it is a connected shape within a box the
    boundary does not enter), which its first vertex tells (``contains_xy``); inside, its
    hectares are its own (measured from the flat coordinates, bit for bit as shapely's
    path). Only the zones near the boundary are made into geometries, tested and cut.
    """
    flat = FlatPolygons.from_wkb(wkb)
    bounds = flat.bounds
    near = np.zeros(len(flat), dtype=bool)
    if len(flat):
        near[np.unique(area.edge_index.query(shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]))[0])] = True
    first = flat.xy[flat.first_point]
    meets = ~near & shapely.contains_xy(area.geometry, first[:, 0], first[:, 1])
    inside = np.zeros(len(flat))
    if hectares and meets.any():
        inside[meets] = geodesic_area_ha_of_flat(flat)[meets]
    at = np.flatnonzero(near)
    if len(at):
        column = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
        zones = shapely.from_wkb(column.take(pa.array(at)).to_numpy(zero_copy_only=False))
        hit = intersecting(zones, area.geometry)
        meets[at[hit]] = True
        if hectares:
            inside[at[hit]] = hectares_inside(zones[hit], area.geometry)
    return meets, (inside if hectares else None)


def overlapping_pairs(geometries: np.ndarray, areas: Sequence[shapely.Geometry]) -> tuple[np.ndarray, np.ndarray]:
    """(geometry index, area index) of every geometry and area that intersect, many areas at once.

    An STR-tree over the areas finds the candidates by envelope; the predicate is exact.
    Pairs come sorted by geometry, then area.
    """
    tree = shapely.STRtree(np.asarray(areas, dtype=object))
    found = tree.query(np.asarray(geometries, dtype=object), predicate="intersects")  # rows: geometry, area
    order = np.lexsort((found[1], found[0]))
    return found[0][order], found[1][order]


def _polygonal(geometries: np.ndarray) -> np.ndarray:
    """What an overlay returned, reduced to its area: lines and points where edges meet carry no hectares."""
    out = np.asarray(geometries, dtype=object).copy()
    types = shapely.get_type_id(out)
    other = np.flatnonzero((types >= 0) & ~np.isin(types, _POLYGONAL))
    for i in other:
        out[i] = polygonal_part(out[i])
    empty = ~shapely.is_missing(out)
    empty[empty] = shapely.is_empty(out[empty])
    out[empty] = None
    return out
