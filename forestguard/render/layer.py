"""Zones prepared for rendering: projected once, sorted by size, shared by everyone.

A :class:`ZoneLayer` is what every map in ForestGuard draws from (dashboard,
reports, notebooks). Building one reads the zones once from the store and
projects them to Web Mercator with numpy on flat GeoArrow-style buffers, so
1M zones take seconds once per process, not per render or per session.

Rows are sorted by the larger side of each zone's bounding box: at a given
pixel size the zones smaller than a pixel are a prefix of the table (a view,
not a copy) and the few bigger ones a suffix, which is what the hybrid
aggregation in :mod:`forestguard.render.raster` relies on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from ..config import redact
from ..schema import Classification
from ..stores.base import ZoneFilter, ZoneStore

#: Categories of the ``classification`` column, in colour-key order ("none": unclassified).
CATEGORIES: tuple[str, ...] = ("legal", "illegal", "none")

#: Web Mercator (EPSG:3857) is defined up to this latitude.
MAX_LATITUDE = 85.0511287798066
_ORIGIN_SHIFT = np.pi * 6378137.0

#: What a map shows when there is nothing to fit to (Web Mercator).
WORLD: tuple[float, float, float, float] = (-20037508.34, -8399737.89, 20037508.34, 15538711.10)

_COLUMNS = ["id", "country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry"]


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


def _shoelace(xy: np.ndarray, ring_offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per edge: its ends relative to the ring's first vertex and their cross product (0 between rings).

    Relative coordinates, because large Mercator values would otherwise cancel badly.
    """
    first = np.repeat(ring_offsets[:-1], np.diff(ring_offsets))
    rel = xy - xy[first]
    x0, y0, x1, y1 = rel[:-1, 0], rel[:-1, 1], rel[1:, 0], rel[1:, 1]
    cross = x0 * y1 - x1 * y0
    cross[ring_offsets[1:-1] - 1] = 0.0  # the step from one ring's end to the next ring's start
    return x0, y0, x1, y1, cross


def _oriented(xy: np.ndarray, ring_offsets: np.ndarray, polygon_offsets: np.ndarray) -> np.ndarray:
    """Shells counter-clockwise, holes clockwise: the winding fill of :func:`raster.polygon_fill` counts on it.

    Rings the other way round are reversed in place in the flat buffer, with numpy.
    """
    if len(ring_offsets) < 2:
        return xy
    signed = np.add.reduceat(np.append(_shoelace(xy, ring_offsets)[-1], 0.0), ring_offsets[:-1])
    shell = np.zeros(len(signed), dtype=bool)
    shell[polygon_offsets[:-1]] = True
    flip = np.flatnonzero(np.where(shell, signed < 0, signed > 0))
    if len(flip) == 0:
        return xy
    starts, stops = ring_offsets[flip], ring_offsets[flip + 1]
    lengths = stops - starts
    position = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    order = np.arange(len(xy))
    order[np.repeat(starts, lengths) + position] = np.repeat(stops - 1, lengths) - position
    return xy[order]


@dataclass(frozen=True, eq=False)
class ZoneGeometry:
    """Polygons in Web Mercator as flat buffers (coordinates + offsets), like GeoArrow.

    Kept flat rather than as shapely objects: a third of the memory, and the
    edges of any subset come out for the raster fill without per-zone Python work.
    """

    coords: np.ndarray  # (points, 2) float64
    ring_offsets: np.ndarray  # ring r is coords[ring_offsets[r]:ring_offsets[r + 1]]
    polygon_offsets: np.ndarray  # polygon p is rings[polygon_offsets[p]:…]
    part_offsets: np.ndarray  # zone z is polygons[part_offsets[z]:…]

    @classmethod
    def from_wkb(cls, wkb: pa.Array | pa.ChunkedArray | np.ndarray) -> "ZoneGeometry":
        """Polygons or multipolygons from WKB (an Arrow binary column as the stores return it, or bytes).

        GeoArrow's C reader parses the WKB straight into flat buffers: ~6× faster
        than shapely objects then ``to_ragged_array``, and no Python object per zone.
        """
        import geoarrow.pyarrow as ga

        if isinstance(wkb, np.ndarray):
            wkb = pa.array(wkb, type=pa.binary())
        if isinstance(wkb, pa.ChunkedArray):
            wkb = wkb.combine_chunks()
        if isinstance(wkb.type, pa.ExtensionType):
            wkb = wkb.storage
        wkb = ga.wkb().wrap_array(wkb)
        # as_geoarrow would coerce anything (a line becomes a ring, Z is dropped): check first, 30 ms per 175k zones.
        kinds = {(k["geometry_type"], k["dimensions"]) for k in ga.unique_geometry_types(wkb).to_pylist()}
        allowed = {(kind.value, ga.Dimensions.XY.value) for kind in (ga.GeometryType.POLYGON, ga.GeometryType.MULTIPOLYGON)}
        if not kinds <= allowed:
            raise ValueError("zones must be 2-D polygons or multipolygons")
        native = ga.as_geoarrow(wkb, ga.multipolygon().with_coord_type(ga.CoordType.INTERLEAVED))
        # Nested lists: zone → polygons → rings → vertices → [x, y]; each level's offsets index the next.
        zones = native.storage
        polygons, rings, vertices = zones.values, zones.values.values, zones.values.values.values
        xy = vertices.values.to_numpy().reshape(-1, 2)
        x, y = to_mercator(xy[:, 0], xy[:, 1])
        part_offsets = zones.offsets.to_numpy().astype(np.int64)
        polygon_offsets = polygons.offsets.to_numpy().astype(np.int64)
        ring_offsets = rings.offsets.to_numpy().astype(np.int64)
        if part_offsets[0] or polygon_offsets[0] or ring_offsets[0] or len(xy) != ring_offsets[-1]:
            raise ValueError("unexpected sliced GeoArrow buffers")  # as_geoarrow builds fresh arrays
        coords = _oriented(np.column_stack([x, y]), ring_offsets, polygon_offsets)
        return cls(coords, ring_offsets, polygon_offsets, part_offsets)

    def __len__(self) -> int:
        return len(self.part_offsets) - 1

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.coords, self.ring_offsets, self.polygon_offsets, self.part_offsets))

    def measures(self) -> dict[str, np.ndarray]:
        """Per zone: bounding box, planar (Mercator) area and area centroid, vectorised.

        Shoelace sums per ring on coordinates relative to each ring's first
        vertex (large Mercator values would otherwise cancel badly), holes
        subtracted by taking each polygon's first ring as its shell.
        """
        xy = self.coords
        ring_start = self.ring_offsets[:-1]
        x0, y0, x1, y1, cross = _shoelace(xy, self.ring_offsets)
        cx = (x0 + x1) * cross
        cy = (y0 + y1) * cross

        def ring_sum(values: np.ndarray) -> np.ndarray:
            return np.add.reduceat(np.append(values, 0.0), ring_start)

        ring_a, ring_cx, ring_cy = ring_sum(cross) / 2.0, ring_sum(cx) / 6.0, ring_sum(cy) / 6.0
        # Shells count positive and holes negative, whatever their winding.
        shell = np.zeros(len(ring_start), dtype=bool)
        shell[self.polygon_offsets[:-1]] = True
        sign = np.where(shell, 1.0, -1.0) * np.sign(ring_a)
        area = np.abs(ring_a) * np.where(shell, 1.0, -1.0)
        mx = sign * ring_cx + np.abs(ring_a) * np.where(shell, 1.0, -1.0) * xy[ring_start, 0]
        my = sign * ring_cy + np.abs(ring_a) * np.where(shell, 1.0, -1.0) * xy[ring_start, 1]
        zone_ring_start = self.polygon_offsets[self.part_offsets[:-1]]
        zone_area = np.add.reduceat(area, zone_ring_start)
        zone_point_start = self.ring_offsets[zone_ring_start]
        bounds = [reducer.reduceat(xy[:, axis], zone_point_start) for reducer in (np.minimum, np.maximum) for axis in (0, 1)]
        safe = np.where(zone_area > 0, zone_area, 1.0)
        cx_zone = np.where(zone_area > 0, np.add.reduceat(mx, zone_ring_start) / safe, (bounds[0] + bounds[2]) / 2)
        cy_zone = np.where(zone_area > 0, np.add.reduceat(my, zone_ring_start) / safe, (bounds[1] + bounds[3]) / 2)
        return {"x": cx_zone, "y": cy_zone, "xmin": bounds[0], "ymin": bounds[1], "xmax": bounds[2], "ymax": bounds[3], "mercator_area": zone_area}

    def _take_buffers(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Gather the zones ``rows`` into new contiguous buffers (vectorised)."""

        def gather(offsets: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lengths = stops - starts
            new_offsets = np.zeros(len(starts) + 1, dtype=np.int64)
            np.cumsum(lengths, out=new_offsets[1:])
            index = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
            return new_offsets, index

        rows = np.asarray(rows, dtype=np.int64)
        part_offsets, polygons = gather(self.part_offsets, self.part_offsets[rows], self.part_offsets[rows + 1])
        polygon_offsets, rings = gather(self.polygon_offsets, self.polygon_offsets[polygons], self.polygon_offsets[polygons + 1])
        ring_offsets, points = gather(self.ring_offsets, self.ring_offsets[rings], self.ring_offsets[rings + 1])
        return self.coords[points], ring_offsets, polygon_offsets, part_offsets

    def edges(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every ring edge of the zones ``rows``: start points, end points, and which of ``rows`` it belongs to."""
        coords, ring_offsets, polygon_offsets, part_offsets = self._take_buffers(rows)
        ring_of_point = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
        same_ring = ring_of_point[1:] == ring_of_point[:-1]  # not the jump from one ring to the next
        zone_of_ring = np.repeat(np.repeat(np.arange(len(rows)), np.diff(part_offsets)), np.diff(polygon_offsets))
        return coords[:-1][same_ring], coords[1:][same_ring], zone_of_ring[ring_of_point[1:][same_ring]]

    def shapely(self, rows: np.ndarray, lonlat: bool = False) -> np.ndarray:
        """The zones ``rows`` as shapely geometries (Mercator, or lon/lat when asked)."""
        coords, ring_offsets, polygon_offsets, part_offsets = self._take_buffers(rows)
        if lonlat:
            coords = np.column_stack(to_lonlat(coords[:, 0], coords[:, 1]))
        return shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, coords, (ring_offsets, polygon_offsets, part_offsets))


@dataclass(frozen=True, eq=False)
class ZoneLayer:
    """Zones ready to draw: one row per zone, sorted by size, geometry shared.

    ``zones`` holds per-zone attributes and measures (Web Mercator ``x``/``y``
    area centroid, bounding box, ``size`` = larger bbox side in metres,
    ``area_ha``, ``classification`` as a categorical of :data:`CATEGORIES`,
    ``year``, ``country``, ``region``, ``source``, ``verified``,
    ``confidence``, ``geom_row`` into ``geometry``). Treat it as read-only:
    it is shared by every session of the process.
    """

    source: str
    data_version: int
    where: ZoneFilter
    zones: pd.DataFrame
    geometry: ZoneGeometry
    refined: tuple[ZoneFilter, ...] = ()  # filters applied in memory by :meth:`select`

    def __len__(self) -> int:
        return len(self.zones)

    @property
    def key(self) -> str:
        """Identity for caches: store, data version and filter."""
        return "&".join([f"{self.source}@{self.data_version}", self.where.key(), *(f.key() for f in self.refined)])

    @property
    def sizes(self) -> np.ndarray:
        return self.zones["size"].to_numpy()

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """Web Mercator bounds of all zones (xmin, ymin, xmax, ymax); the world when empty (computed once: layers are read-only)."""
        if not len(self):
            return WORLD
        z = self.zones
        return float(z["xmin"].min()), float(z["ymin"].min()), float(z["xmax"].max()), float(z["ymax"].max())

    @property
    def nbytes(self) -> int:
        return int(self.zones.memory_usage(deep=False).sum()) + self.geometry.nbytes

    @cached_property
    def country_bounds(self) -> pd.DataFrame:
        """Web Mercator bounds of each country's zones (index: country), computed once per layer."""
        z = self.zones
        return z.groupby("country", observed=True).agg(xmin=("xmin", "min"), ymin=("ymin", "min"), xmax=("xmax", "max"), ymax=("ymax", "max"))

    def bounds_of(self, countries: Sequence[str]) -> tuple[float, float, float, float]:
        """Web Mercator bounds of the zones of ``countries`` (all zones when none), without selecting them."""
        if not countries:
            return self.bounds
        rows = self.country_bounds.loc[self.country_bounds.index.intersection(list(countries))]
        if rows.empty:
            return WORLD
        return float(rows["xmin"].min()), float(rows["ymin"].min()), float(rows["xmax"].max()), float(rows["ymax"].max())

    def select(self, where: ZoneFilter) -> "ZoneLayer":
        """The zones of this layer that ``where`` also selects, filtered in memory (no store query).

        Same semantics as the stores' SQL (a missing confidence never passes a
        minimum; the bbox test is an intersection of bounding boxes). An empty
        filter returns this layer itself: nothing is copied.
        """
        if where == ZoneFilter():
            return self
        z = self.zones
        mask = np.ones(len(z), dtype=bool)
        if where.countries:
            mask &= _in_categories(z["country"], where.countries)
        if where.year_from is not None:
            mask &= z["year"].to_numpy() >= where.year_from
        if where.year_to is not None:
            mask &= z["year"].to_numpy() <= where.year_to
        if where.classifications:
            mask &= _in_categories(z["classification"], [c.value for c in where.classifications])
        if where.sources:
            mask &= _in_categories(z["source"], where.sources)
        if where.verified_only:
            mask &= z["verified"].to_numpy()
        if where.min_confidence is not None:
            mask &= np.nan_to_num(z["confidence"].to_numpy(), nan=-1.0) >= where.min_confidence
        if where.bbox is not None:
            mask &= self.in_box(mercator_box(where.bbox))
        refined = (*self.refined, where)
        return ZoneLayer(self.source, self.data_version, self.where, z[mask].reset_index(drop=True), self.geometry, refined)

    def in_box(self, box: tuple[float, float, float, float]) -> np.ndarray:
        """Which zones' bounding boxes intersect a Web Mercator box."""
        z = self.zones
        xmin, ymin, xmax, ymax = box
        return (z["xmax"].to_numpy() >= xmin) & (z["ymax"].to_numpy() >= ymin) & (z["xmin"].to_numpy() <= xmax) & (z["ymin"].to_numpy() <= ymax)


def _in_categories(column: pd.Series, values: Sequence[str]) -> np.ndarray:
    """Which rows of a categorical column hold one of ``values``: a lookup by code, ~10× faster than ``isin``."""
    categories = column.cat.categories
    wanted = np.zeros(len(categories) + 1, dtype=bool)  # the last slot answers for code -1 (missing)
    found = categories.get_indexer(list(values))
    wanted[found[found >= 0]] = True
    return wanted[column.cat.codes.to_numpy()]


def build_layer(store: ZoneStore, where: ZoneFilter = ZoneFilter(), data_version: int | None = None) -> ZoneLayer:
    """Read and prepare the zones ``where`` selects (use :func:`zone_layer` for the shared copy)."""
    version = store.data_version() if data_version is None else data_version
    table = store.zones_arrow(where, columns=_COLUMNS)
    geometry = ZoneGeometry.from_wkb(table.column("geometry"))
    measures = geometry.measures()
    stored = table.column("classification").to_pandas()
    classification = np.full(len(table), "none", dtype=object)
    for cls in Classification:
        classification[(stored == cls.stored).to_numpy()] = cls.value
    zones = pd.DataFrame(
        {
            **measures,
            "size": np.maximum(measures["xmax"] - measures["xmin"], measures["ymax"] - measures["ymin"]),
            "area_ha": pc.cast(table.column("area_ha"), pa.float64()).to_numpy(),
            "zones": np.ones(len(table), dtype=np.float64),
            "classification": pd.Categorical(classification, categories=CATEGORIES),
            "year": table.column("year").to_numpy().astype(np.int16),
            "country": _categorical(table.column("country")),
            "region": _categorical(table.column("region")),
            "source": _categorical(table.column("source")),
            "verified": table.column("verified").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
            "confidence": pc.cast(table.column("confidence"), pa.float64()).to_numpy(zero_copy_only=False),
            "id": table.column("id").to_numpy().astype(np.int64),
            "geom_row": np.arange(len(table), dtype=np.int64),
        }
    )
    order = np.argsort(zones["size"].to_numpy(), kind="stable")
    zones = zones.take(order).reset_index(drop=True)
    return ZoneLayer(redact(store.url), version, where, zones, geometry)


def _categorical(column: pa.ChunkedArray) -> pd.Categorical:
    return pd.Categorical(column.dictionary_encode().to_pandas() if column.null_count < len(column) else column.to_pandas())


class _LayerCache:
    """One layer per (store, filter) and process, rebuilt when the data version moves on.

    Concurrent sessions asking for the same layer wait for one build instead
    of each reading the store (per-key lock).
    """

    def __init__(self) -> None:
        self._layers: dict[tuple[str, str], ZoneLayer] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, store: ZoneStore, where: ZoneFilter) -> ZoneLayer:
        key = (redact(store.url), where.key())
        version = store.data_version()
        layer = self._layers.get(key)
        if layer is not None and layer.data_version == version:
            return layer
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            layer = self._layers.get(key)
            if layer is None or layer.data_version != version:
                layer = build_layer(store, where, version)
                self._layers[key] = layer  # replaces the old version: its memory goes with it
            return layer

    def clear(self) -> None:
        with self._guard:
            self._layers.clear()


LAYERS = _LayerCache()


def zone_layer(store: ZoneStore, where: ZoneFilter = ZoneFilter()) -> ZoneLayer:
    """The zones ``where`` selects, prepared once per process and data version and shared."""
    return LAYERS.get(store, where)
