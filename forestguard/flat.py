"""Polygons as flat coordinate buffers, read straight from WKB (GeoArrow's layout).

Maps (Web Mercator measures per zone) and area clipping (boxes, first vertices and
geodesic sizes of zones wholly inside an area) read many zones at once without making a
Python object per zone: GeoArrow's C reader parses the WKB into one coordinate array
and the offsets of rings, polygons and zones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa


@dataclass(frozen=True, eq=False)
class FlatPolygons:
    """Polygons or multipolygons in lon/lat as flat buffers (like GeoArrow)."""

    xy: np.ndarray  #: (points, 2) float64
    ring_offsets: np.ndarray  #: ring r is xy[ring_offsets[r]:ring_offsets[r + 1]]
    polygon_offsets: np.ndarray  #: polygon p is rings[polygon_offsets[p]:…]
    part_offsets: np.ndarray  #: zone z is polygons[part_offsets[z]:…]

    @classmethod
    def from_wkb(cls, wkb: pa.Array | pa.ChunkedArray | np.ndarray) -> "FlatPolygons":
        """From WKB (an Arrow binary column as the stores return it, or bytes); only 2-D polygons and multipolygons.

        ~6× faster than shapely objects then ``to_ragged_array``, and no Python object per zone.
        """
        import geoarrow.pyarrow as ga

        if isinstance(wkb, np.ndarray):
            wkb = pa.array(wkb, type=pa.binary())
        if isinstance(wkb, pa.ChunkedArray):
            wkb = wkb.combine_chunks()
        if isinstance(wkb.type, pa.ExtensionType):
            wkb = wkb.storage
        wkb = ga.wkb().wrap_array(wkb)
        # as_geoarrow would coerce anything (a line becomes a ring, Z is dropped): check first.
        kinds = {(k["geometry_type"], k["dimensions"]) for k in ga.unique_geometry_types(wkb).to_pylist()}
        allowed = {(kind.value, ga.Dimensions.XY.value) for kind in (ga.GeometryType.POLYGON, ga.GeometryType.MULTIPOLYGON)}
        if not kinds <= allowed:
            raise ValueError("zones must be 2-D polygons or multipolygons")
        native = ga.as_geoarrow(wkb, ga.multipolygon().with_coord_type(ga.CoordType.INTERLEAVED))
        # Nested lists: zone → polygons → rings → vertices → [x, y]; each level's offsets index the next.
        zones = native.storage
        polygons, rings, vertices = zones.values, zones.values.values, zones.values.values.values
        xy = vertices.values.to_numpy().reshape(-1, 2)
        part_offsets = zones.offsets.to_numpy().astype(np.int64)
        polygon_offsets = polygons.offsets.to_numpy().astype(np.int64)
        ring_offsets = rings.offsets.to_numpy().astype(np.int64)
        if part_offsets[0] or polygon_offsets[0] or ring_offsets[0] or len(xy) != ring_offsets[-1]:
            raise ValueError("unexpected sliced GeoArrow buffers")  # as_geoarrow builds fresh arrays
        return cls(xy, ring_offsets, polygon_offsets, part_offsets)

    def __len__(self) -> int:
        return len(self.part_offsets) - 1

    @cached_property
    def first_point(self) -> np.ndarray:
        """Index into ``xy`` of each zone's first vertex."""
        return self.ring_offsets[self.polygon_offsets[self.part_offsets[:-1]]]

    @cached_property
    def bounds(self) -> np.ndarray:
        """(zones, 4): xmin, ymin, xmax, ymax of each zone (from its vertices, exactly)."""
        start = self.first_point
        if not len(start):
            return np.zeros((0, 4))
        return np.column_stack([reducer.reduceat(self.xy[:, axis], start) for reducer in (np.minimum, np.maximum) for axis in (0, 1)])
