"""Zone geometry for maps: Web Mercator, measured in bulk, and read from the store only when a view needs it.

:class:`ZoneGeometry` parses WKB straight into flat buffers (GeoArrow's C reader) and measures
every zone at once (centroid, extent, Mercator area) without a Python object per zone: how a
layer is built. :class:`GeometrySource` reads the polygons of the zones a view draws as
polygons (the few bigger than a few pixels there) from the store through its index, and keeps
the recent ones within a memory budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import shapely

from .. import memory
from ..flat import FlatPolygons

if TYPE_CHECKING:
    from ..stores.base import ZoneStore

#: Web Mercator (EPSG:3857) is defined up to this latitude.
MAX_LATITUDE = 85.0511287798066
_ORIGIN_SHIFT = np.pi * 6378137.0
#: Share of the process's memory budget (FORESTGUARD_MEMORY_MB) for polygons read for views.
GEOMETRY_SHARE = 0.08


def to_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:4326 → EPSG:3857 (datashader's ``lnglat_to_meters``, latitudes clipped to the projection's range)."""
    lat = np.clip(lat, -MAX_LATITUDE, MAX_LATITUDE)
    x = np.asarray(lon, dtype=float) * (_ORIGIN_SHIFT / 180.0)
    y = np.log(np.tan((90.0 + lat) * (np.pi / 360.0))) * (_ORIGIN_SHIFT / np.pi)
    return x, y


def to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:3857 → EPSG:4326, the inverse of :func:`to_mercator`."""
    lon = np.asarray(x, dtype=float) * (180.0 / _ORIGIN_SHIFT)
    lat = np.degrees(2.0 * np.arctan(np.exp(np.asarray(y, dtype=float) * (np.pi / _ORIGIN_SHIFT)))) - 90.0
    return lon, lat


def mercator_box(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A lon/lat box (xmin, ymin, xmax, ymax) in Web Mercator."""
    x, y = to_mercator(np.array(bbox[0::2], dtype=float), np.array(bbox[1::2], dtype=float))
    return float(x[0]), float(y[0]), float(x[1]), float(y[1])


def _project(coords: np.ndarray) -> np.ndarray:
    return np.column_stack(to_mercator(coords[:, 0], coords[:, 1]))


def polygons_from_wkb(wkb: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Lon/lat WKB → shapely geometries in Web Mercator."""
    return shapely.transform(shapely.from_wkb(np.asarray(wkb.to_numpy(zero_copy_only=False), dtype=object)), _project)


@dataclass(frozen=True, eq=False)
class ZoneGeometry:
    """Polygons in Web Mercator as flat buffers (coordinates + offsets), like GeoArrow."""

    coords: np.ndarray  # (points, 2) float64
    ring_offsets: np.ndarray  # ring r is coords[ring_offsets[r]:ring_offsets[r + 1]]
    polygon_offsets: np.ndarray  # polygon p is rings[polygon_offsets[p]:…]
    part_offsets: np.ndarray  # zone z is polygons[part_offsets[z]:…]

    @classmethod
    def from_wkb(cls, wkb: pa.Array | pa.ChunkedArray | np.ndarray) -> "ZoneGeometry":
        """Polygons or multipolygons from WKB (an Arrow binary column as the stores return it, or bytes), projected."""
        flat = FlatPolygons.from_wkb(wkb)
        x, y = to_mercator(flat.xy[:, 0], flat.xy[:, 1])
        return cls(np.column_stack([x, y]), flat.ring_offsets, flat.polygon_offsets, flat.part_offsets)

    def __len__(self) -> int:
        return len(self.part_offsets) - 1

    def measures(self) -> dict[str, np.ndarray]:
        """Per zone: bounding box, planar (Mercator) area and area centroid, vectorised.

        Shoelace sums per ring on coordinates relative to each ring's first vertex (large
        Mercator values would otherwise cancel badly), holes subtracted by taking each
        polygon's first ring as its shell, whatever the rings' winding.
        """
        xy = self.coords
        ring_start = self.ring_offsets[:-1]
        first = np.repeat(ring_start, np.diff(self.ring_offsets))
        rel = xy - xy[first]
        x0, y0, x1, y1 = rel[:-1, 0], rel[:-1, 1], rel[1:, 0], rel[1:, 1]
        cross = x0 * y1 - x1 * y0
        cross[self.ring_offsets[1:-1] - 1] = 0.0  # the step from one ring's end to the next ring's start
        cx = (x0 + x1) * cross
        cy = (y0 + y1) * cross

        def ring_sum(values: np.ndarray) -> np.ndarray:
            return np.add.reduceat(np.append(values, 0.0), ring_start)

        ring_a, ring_cx, ring_cy = ring_sum(cross) / 2.0, ring_sum(cx) / 6.0, ring_sum(cy) / 6.0
        shell = np.zeros(len(ring_start), dtype=bool)
        shell[self.polygon_offsets[:-1]] = True
        sign = np.where(shell, 1.0, -1.0) * np.sign(ring_a)
        area = np.abs(ring_a) * np.where(shell, 1.0, -1.0)
        mx = sign * ring_cx + area * xy[ring_start, 0]
        my = sign * ring_cy + area * xy[ring_start, 1]
        zone_ring_start = self.polygon_offsets[self.part_offsets[:-1]]
        zone_area = np.add.reduceat(area, zone_ring_start)
        zone_point_start = self.ring_offsets[zone_ring_start]
        bounds = [reducer.reduceat(xy[:, axis], zone_point_start) for reducer in (np.minimum, np.maximum) for axis in (0, 1)]
        safe = np.where(zone_area > 0, zone_area, 1.0)
        cx_zone = np.where(zone_area > 0, np.add.reduceat(mx, zone_ring_start) / safe, (bounds[0] + bounds[2]) / 2)
        cy_zone = np.where(zone_area > 0, np.add.reduceat(my, zone_ring_start) / safe, (bounds[1] + bounds[3]) / 2)
        return {"x": cx_zone, "y": cy_zone, "xmin": bounds[0], "ymin": bounds[1], "xmax": bounds[2], "ymax": bounds[3], "mercator_area": zone_area}


def _polygon_bytes(geometries: np.ndarray) -> np.ndarray:
    """About what a shapely polygon holds: its coordinates and a few hundred bytes of GEOS and Python."""
    return shapely.get_num_coordinates(geometries) * 16 + 320


class GeometrySource:
    """Polygons (Web Mercator shapely geometries) of zones by id, from the store, the recent ones kept.

    What a view draws as polygons is the few zones spanning pixels there; they are read by id
    (the primary key: PostGIS's index, DuckDB's row-group statistics) and kept, least recently
    used first out, within ``budget_bytes`` (default: 8 % of FORESTGUARD_MEMORY_MB): panning
    and zooming around re-reads nothing, and memory does not grow with the store.
    """

    def __init__(self, store: "ZoneStore", budget_bytes: int | None = None) -> None:
        self.store = store
        self.budget_bytes = memory.budget_bytes(GEOMETRY_SHARE) if budget_bytes is None else budget_bytes
        self._items: OrderedDict[int, tuple[shapely.Geometry, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.reads = 0  # zones read from the store so far (tests, metrics)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def polygons(self, ids: np.ndarray) -> np.ndarray:
        """Geometries of ``ids`` (Web Mercator), in the order asked; read from the store when not kept."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty(len(ids), dtype=object)
        missing: list[int] = []
        with self._lock:
            for i, zone in enumerate(ids.tolist()):
                item = self._items.get(zone)
                if item is None:
                    missing.append(i)
                else:
                    self._items.move_to_end(zone)
                    out[i] = item[0]
        if missing:
            wanted = ids[missing]
            table = self.store.zone_geometries(np.unique(wanted))
            found = dict(zip(table.column("id").to_numpy().tolist(), polygons_from_wkb(table.column("geometry"))))
            self.reads += len(found)
            for i, zone in zip(missing, wanted.tolist()):
                out[i] = found.get(zone)
            self._keep(found)
        return out

    def _keep(self, found: dict[int, shapely.Geometry]) -> None:
        if not found:
            return
        sizes = _polygon_bytes(np.array(list(found.values()), dtype=object))
        with self._lock:
            for (zone, geometry), size in zip(found.items(), sizes.tolist()):
                if zone not in self._items:
                    self._items[zone] = (geometry, size)
                    self._bytes += size
            while self._bytes > self.budget_bytes and self._items:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size
