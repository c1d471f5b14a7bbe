"""Many zones against many polygons (reference features, plots): the hectares of every pair that shares area.

The same clip and the same measure as :func:`.clip.meeting` for one area, for thousands at
once: an STR-tree over the polygons finds the pairs whose boxes meet; a pair whose zone box
meets none of the polygon's edges is decided by the zone's first vertex (wholly inside or
wholly outside: no shapely object, hectares from the flat buffers), and only the pairs near
an edge are cut with shapely (:func:`.clip.hectares_inside`). So a pair's hectares are bit for
bit those of ``stats --area`` with that polygon as the area, whatever engine read the zones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import shapely

from ..area import geodesic_area_ha_of_flat
from ..flat import FlatPolygons
from .clip import hectares_inside

#: Cells of the grid that tells, from a zone's box alone, whether it may meet a polygon's box (at most).
GRID_CELLS = 1 << 22
#: Margin (degrees) around every polygon's box in that grid: boxes read from a store may be rounded.
GRID_MARGIN = 1e-6

#: Consecutive edges of a ring share one box in the edge index: ~8× fewer objects than one per
#: edge (10,000 detailed polygons stay a few MB), at the price of a few more exact tests.
EDGES_PER_BOX = 8


@dataclass(frozen=True, eq=False)
class PolygonIndex:
    """Polygons (lon/lat) ready to meet many zones: prepared shapes, their tree, and boxes of their edges."""

    geometries: np.ndarray  #: (Multi)Polygons, prepared

    @classmethod
    def of(cls, geometries: np.ndarray) -> "PolygonIndex":
        geometries = np.asarray(geometries, dtype=object)
        shapely.prepare(geometries)
        return cls(geometries)

    @classmethod
    def from_wkb(cls, wkb: pa.Array | pa.ChunkedArray | np.ndarray) -> "PolygonIndex":
        if isinstance(wkb, pa.ChunkedArray):
            wkb = wkb.combine_chunks()
        values = wkb.to_numpy(zero_copy_only=False) if isinstance(wkb, pa.Array) else np.asarray(wkb, dtype=object)
        return cls.of(shapely.from_wkb(values))

    def __len__(self) -> int:
        return len(self.geometries)

    @cached_property
    def tree(self) -> shapely.STRtree:
        return shapely.STRtree(self.geometries)

    @cached_property
    def bounds(self) -> np.ndarray:
        return shapely.bounds(self.geometries).reshape(-1, 4)

    def may_meet(self, bounds: np.ndarray) -> np.ndarray:
        """Which boxes (rows xmin, ymin, xmax, ymax) meet a polygon's box (as :func:`overlaps` pairs zones and polygons).

        Few shapely objects (~1 µs each, most of a million zones' time when most meet nothing):
        a box smaller than a grid cell meets a polygon's box only if its lower-left corner lies
        in that box widened by a cell down and left, so one lookup of the corner's cell in a grid
        marked with the widened boxes rules most boxes out; the others (and larger boxes) are
        tested against the polygons' tree.
        """
        bounds = np.asarray(bounds, dtype=float).reshape(-1, 4)
        if not len(self) or not len(bounds):
            return np.zeros(len(bounds), dtype=bool)
        marked, origin, cell = self._box_grid
        col = np.floor((bounds[:, 0] - origin[0]) / cell)
        row = np.floor((bounds[:, 1] - origin[1]) / cell)
        inside = (col >= 0) & (col < marked.shape[1]) & (row >= 0) & (row < marked.shape[0])
        out = ~((bounds[:, 2] - bounds[:, 0] <= cell) & (bounds[:, 3] - bounds[:, 1] <= cell))  # large: may
        small = inside & ~out
        out[small] = marked[row[small].astype(np.int64), col[small].astype(np.int64)]
        # The few left are tested exactly against the polygons' boxes (as overlaps() pairs them).
        at = np.flatnonzero(out)
        hit = self.tree.query(shapely.box(bounds[at, 0], bounds[at, 1], bounds[at, 2], bounds[at, 3]))[0]
        out[:] = False
        out[at[hit]] = True
        return out

    @cached_property
    def _box_grid(self) -> tuple[np.ndarray, tuple[float, float], float]:
        """Cells (rows: y) marked where a polygon's box, widened by a cell down and left and by :data:`GRID_MARGIN`, lies; origin; cell size."""
        b = self.bounds.copy()
        b[:, :2] -= GRID_MARGIN
        b[:, 2:] += GRID_MARGIN
        width, height = float(b[:, 2].max() - b[:, 0].min()), float(b[:, 3].max() - b[:, 1].min())
        cell = max(np.sqrt(max(width, 1e-9) * max(height, 1e-9) / GRID_CELLS), 1e-6)
        origin = (float(b[:, 0].min()) - cell, float(b[:, 1].min()) - cell)
        columns, rows = int(np.ceil(width / cell)) + 2, int(np.ceil(height / cell)) + 2
        marked = np.zeros((rows, columns), dtype=bool)
        lo = np.floor((b[:, :2] - cell - np.array(origin)) / cell).astype(np.int64).clip(0)
        hi = np.floor((b[:, 2:] - np.array(origin)) / cell).astype(np.int64)
        for (c0, r0), (c1, r1) in zip(lo, hi):
            marked[r0 : r1 + 1, c0 : c1 + 1] = True
        return marked, origin, cell

    @cached_property
    def _edge_boxes(self) -> tuple[shapely.STRtree, np.ndarray]:
        """An STR-tree of boxes each holding a run of up to :data:`EDGES_PER_BOX` edges of one ring, and each box's polygon."""
        parts, part_of = shapely.get_parts(self.geometries, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        if not len(coords):
            return shapely.STRtree([]), np.zeros(0, dtype=np.int64)
        # Edge e joins vertex e and e + 1 of the same ring; runs of edges are cut at ring ends.
        same = ring_of[1:] == ring_of[:-1]
        edge_start = np.flatnonzero(same)
        edge_ring = ring_of[edge_start]
        first_edge_of_ring = np.r_[0, np.flatnonzero(np.diff(edge_ring)) + 1]
        position = np.arange(len(edge_start)) - np.repeat(first_edge_of_ring, np.diff(np.r_[first_edge_of_ring, len(edge_start)]))
        run_key = edge_ring.astype(np.int64) * (1 << 32) + position // EDGES_PER_BOX
        run_start = np.r_[0, np.flatnonzero(np.diff(run_key)) + 1]
        a, b = coords[edge_start], coords[edge_start + 1]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        xmin, ymin = np.minimum.reduceat(lo[:, 0], run_start), np.minimum.reduceat(lo[:, 1], run_start)
        xmax, ymax = np.maximum.reduceat(hi[:, 0], run_start), np.maximum.reduceat(hi[:, 1], run_start)
        owner = part_of[ring_part[edge_ring[run_start]]]
        return shapely.STRtree(shapely.box(xmin, ymin, xmax, ymax)), owner.astype(np.int64)


@dataclass(frozen=True)
class Overlaps:
    """The pairs of one batch of zones and the polygons that share area with them."""

    zone: np.ndarray  #: index into the batch, ascending
    polygon: np.ndarray  #: index into the :class:`PolygonIndex`
    hectares: np.ndarray  #: geodesic hectares of the zone inside the polygon (> 0)
    zone_hectares: np.ndarray  #: each zone of the batch: its own geodesic hectares (shares' denominator; 0 for zones meeting no box)


def overlaps(wkb: pa.Array | pa.ChunkedArray, polygons: PolygonIndex) -> Overlaps:
    """Every (zone, polygon) pair of ``wkb`` (zones as the stores return them) and ``polygons`` sharing area.

    Touching (an edge or a point in common) is not sharing area: such pairs are left out.
    """
    flat = FlatPolygons.from_wkb(wkb)
    zone_hectares = np.zeros(len(flat))
    empty = Overlaps(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), zone_hectares)
    if not len(flat) or not len(polygons):
        return empty
    b = flat.bounds
    boxes = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    zone_at, polygon_at = polygons.tree.query(boxes)  # boxes meet
    if not len(zone_at):
        return empty
    column = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    # Only zones whose box meets a polygon's are measured (most zones meet none: ~1/3 of a run's time went to measuring them all).
    candidates = np.unique(zone_at)
    measured = flat if len(candidates) == len(flat) else FlatPolygons.from_wkb(column.take(pa.array(candidates)))
    zone_hectares[candidates] = geodesic_area_ha_of_flat(measured)
    n = np.int64(len(polygons))
    pair = zone_at.astype(np.int64) * n + polygon_at
    edge_tree, edge_owner = polygons._edge_boxes
    near_zone, near_box = edge_tree.query(boxes)
    near = np.isin(pair, np.unique(near_zone.astype(np.int64) * n + edge_owner[near_box]))
    # Far from every edge of its polygon: wholly inside or wholly outside, as its first vertex is.
    far = np.flatnonzero(~near)
    first = flat.xy[flat.first_point[zone_at[far]]]
    inside_far = far[shapely.contains_xy(polygons.geometries[polygon_at[far]], first[:, 0], first[:, 1])]
    hectares = np.zeros(len(pair))
    hectares[inside_far] = zone_hectares[zone_at[inside_far]]
    close = np.flatnonzero(near)
    if len(close):
        wanted, position = np.unique(zone_at[close], return_inverse=True)
        zones = shapely.from_wkb(column.take(pa.array(wanted)).to_numpy(zero_copy_only=False))
        hectares[close] = hectares_inside(zones[position], polygons.geometries[polygon_at[close]])
    kept = np.flatnonzero(hectares > 0)
    order = kept[np.lexsort((polygon_at[kept], zone_at[kept]))]
    return Overlaps(zone_at[order].astype(np.int64), polygon_at[order].astype(np.int64), hectares[order], zone_hectares)
