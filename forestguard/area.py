"""Geodesic area on the WGS84 ellipsoid.

Two exact-in-practice methods, chosen per ring:

* Small rings (the bulk of deforestation zones) are measured all at once with numpy on the
  *authalic sphere*: latitude is mapped to authalic latitude, a mapping that preserves area
  exactly, and each edge's signed area to the pole is summed in closed form. The only
  difference from a geodesic polygon is the path of each edge (a great circle on the
  authalic sphere instead of a geodesic on the ellipsoid), which grows with edge length:
  measured against GeographicLib, below 1e-5 ha for rings up to :data:`SMALL_RING_DEGREES`
  across and below 1e-6 ha for typical zones (under 0.01°), far under the 0.01 ha stored.
* Larger rings go to GeographicLib (``pyproj.Geod``, the algorithm PostGIS uses for
  ``ST_Area(geography)``), one call each; at ~12 µs a call it was most of an ingest's time
  when used for every ring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import shapely
from pyproj import Geod

if TYPE_CHECKING:
    from .flat import FlatPolygons

WGS84 = Geod(ellps="WGS84")
M2_PER_HA = 10_000.0
#: Rings whose longitude and latitude spans are both at most this go the numpy way.
SMALL_RING_DEGREES = 0.02
#: Coordinates handled per numpy pass (bounds the temporaries to a few hundred MB).
COORDINATES_PER_PASS = 1 << 20

_A = WGS84.a
_E2 = WGS84.es
_E = np.sqrt(_E2)


def _q(sin_phi: np.ndarray | float) -> np.ndarray | float:
    """Snyder's q (Map Projections: A Working Manual, eq. 3-12)."""
    # ln((1 - e sinφ)/(1 + e sinφ)) / 2e = -atanh(e sinφ) / e
    return (1 - _E2) * (sin_phi / (1 - _E2 * sin_phi * sin_phi) + np.arctanh(_E * sin_phi) / _E)


_QP = float(_q(1.0))
_AUTHALIC_R2 = _A * _A * _QP / 2  # radius² of the sphere with the ellipsoid's area


def geodesic_area_ha_of_flat(flat: "FlatPolygons") -> np.ndarray:
    """Hectares of each zone of flat buffers (:class:`forestguard.flat.FlatPolygons`): shells less holes, as :func:`geodesic_area_ha`."""
    counts = np.diff(flat.ring_offsets)
    ring_area = np.zeros(len(counts))
    first = 0
    while first < len(counts):  # whole rings per pass, about COORDINATES_PER_PASS coordinates each
        last = max(int(np.searchsorted(flat.ring_offsets, flat.ring_offsets[first] + COORDINATES_PER_PASS, side="right")) - 1, first + 1)
        points = slice(flat.ring_offsets[first], flat.ring_offsets[last])
        ring_area[first:last] = ring_areas_of_coordinates(flat.xy[points, 0], flat.xy[points, 1], counts[first:last])
        first = last
    shell = np.zeros(len(counts), dtype=bool)
    shell[flat.polygon_offsets[:-1]] = True
    signed = np.where(shell, ring_area, -ring_area)
    zone_of_ring = np.repeat(np.arange(len(flat)), np.diff(flat.polygon_offsets[flat.part_offsets]))
    return np.bincount(zone_of_ring, weights=signed, minlength=len(flat)) / M2_PER_HA


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
    polygon_area = np.zeros(len(polygons))
    holed = shapely.get_num_interior_rings(polygons) > 0
    # A polygon without holes is its own exterior ring: no ring objects need to be made.
    polygon_area[~holed] = ring_areas_m2(polygons[~holed])
    if holed.any():
        rings, ring_of = shapely.get_rings(polygons[holed], return_index=True)
        ring_area = ring_areas_m2(rings)
        # get_rings lists each polygon's exterior first, then its holes.
        exterior = np.ones(len(rings), dtype=bool)
        exterior[1:] = ring_of[1:] != ring_of[:-1]
        signed = np.where(exterior, ring_area, -ring_area)
        polygon_area[holed] = np.bincount(ring_of, weights=signed, minlength=int(holed.sum()))
    total = np.bincount(polygon_of, weights=polygon_area, minlength=len(geometries))
    out[present] = total[present] / M2_PER_HA
    return out


def ring_areas_m2(rings: np.ndarray) -> np.ndarray:
    """Unsigned area in m² enclosed by each ring (LinearRings, or Polygons' exteriors)."""
    out = np.zeros(len(rings))
    counts = shapely.get_num_coordinates(rings)
    ends = np.cumsum(counts)
    first = 0
    while first < len(rings):
        # Whole rings per pass, about COORDINATES_PER_PASS coordinates each.
        done = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, done + COORDINATES_PER_PASS, side="right")), first + 1)
        out[first:last] = _ring_areas_pass(rings[first:last], counts[first:last])
        first = last
    return out


def _ring_areas_pass(rings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    coords = shapely.get_coordinates(rings)
    return ring_areas_of_coordinates(coords[:, 0], coords[:, 1], counts)


def ring_areas_of_coordinates(lon: np.ndarray, lat: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Unsigned area in m² of rings given as flat coordinates, ``counts[r]`` vertices each, in order.

    The same two methods as :func:`geodesic_area_ha` (numpy on the authalic sphere for small
    rings, GeographicLib for the others), so a zone measures alike either way.
    """
    counts = np.asarray(counts, dtype=np.int64)
    ring_of = np.repeat(np.arange(len(counts)), counts)
    out = np.zeros(len(counts))
    nonempty = counts > 0
    starts = (np.cumsum(counts) - counts)[nonempty]
    if len(starts) == 0:
        return out
    span = np.zeros(len(counts))
    span[nonempty] = np.maximum(
        np.maximum.reduceat(lon, starts) - np.minimum.reduceat(lon, starts),
        np.maximum.reduceat(lat, starts) - np.minimum.reduceat(lat, starts),
    )
    small = nonempty & (span <= SMALL_RING_DEGREES)

    # Authalic sphere: t = tan(β/2) of each vertex, then each edge's area to the pole
    # (the exact great-circle trapezoid, tan(E/2) = tan(Δλ/2)(t₁+t₂)/(1+t₁t₂)).
    sin_beta = np.clip(_q(np.sin(np.radians(lat))) / _QP, -1.0, 1.0)
    t = sin_beta / (1 + np.sqrt(1 - sin_beta * sin_beta))  # tan(β/2) without arcsin and tan
    # No wrapping at ±180°: a ring across it spans ~360° of raw longitude, so it is not small.
    excess = _edge_excess(np.diff(np.radians(lon)) / 2, (t[1:] + t[:-1]) / (1 + t[1:] * t[:-1]))
    within = ring_of[1:] == ring_of[:-1]  # the step from one ring's last vertex to the next's first is no edge
    summed = np.bincount(ring_of[1:][within], weights=excess[within], minlength=len(counts))
    out[small] = np.abs(summed[small]) * _AUTHALIC_R2

    area = WGS84.polygon_area_perimeter
    ends = np.cumsum(counts)
    for k in np.flatnonzero(nonempty & ~small):
        start = ends[k] - counts[k]
        out[k] = abs(area(lon[start : ends[k]], lat[start : ends[k]])[0])
    return out


def _edge_excess(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """2·atan(tan(h)·x) by series, |h| ≤ SMALL_RING_DEGREES/2 in radians.

    Both series are cut after the fifth power: the first term left out is below 1e-19 of
    the edge's share for such short edges, so this is the closed form to double precision
    at a fraction of the cost of tan and atan over every vertex.
    """
    h2 = h * h
    u = h * (1 + h2 * (1 / 3 + h2 * (2 / 15))) * x
    u2 = u * u
    return 2 * u * (1 - u2 * (1 / 3 - u2 * (1 / 5)))


def polygon_parts(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Explode (Multi)Polygons into Polygons; returns parts and the index each came from."""
    geometries = np.asarray(geometries, dtype=object)
    types = shapely.get_type_id(geometries)
    single = types == shapely.GeometryType.POLYGON
    if single.all():
        return geometries, np.arange(len(geometries))  # nothing to explode: skip copying every polygon
    # Only multipart rows are exploded: a Polygon stays the very object it was (get_parts would clone it).
    multi = ~single & (types >= 0)
    parts, index = shapely.get_parts(geometries[multi], return_index=True)
    rows = np.concatenate([np.flatnonzero(single), np.flatnonzero(multi)[index]])
    order = np.argsort(rows, kind="stable")
    return np.concatenate([geometries[single], parts])[order], rows[order]
