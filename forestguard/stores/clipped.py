"""Statistics of zones clipped to areas, from batches of candidate zones any engine reads.

Engines only find candidates (through their spatial index); the exact test, the clip and
the sums happen here, once, so DuckDB, PostGIS and snapshots give identical numbers:
hectares are summed with :func:`math.fsum` (exactly rounded, so the order the engine sends
the zones in does not matter) and confidence in whole hundredths (exact, as the stored
DECIMAL(3,2)). The result has the columns and types of :meth:`ZoneStore.aggregate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from ..areas.clip import hectares_inside, meeting
from ..areas.shape import Area
from ..flat import FlatPolygons
from .base import AGGREGATE_COLUMNS

#: The zone columns :func:`clipped_aggregate` reads besides the group keys.
MEASURE_COLUMNS = ("confidence", "verified", "geometry")
#: Column of the per-area result naming the area (its position in the list given).
AREA_INDEX = "area_index"


@dataclass
class _Group:
    zones: int = 0
    hectares: list[np.ndarray] = field(default_factory=list)
    confidence_hundredths: int = 0
    confidence_n: int = 0
    verified: int = 0


def clipped_aggregate(batches: Iterable[pa.Table], areas: Sequence[Area], keys: Sequence[str], *, per_area: bool = False) -> pd.DataFrame:
    """Exact sums per group of the zones intersecting ``areas``, hectares counted inside them only.

    ``batches`` hold the ``keys`` and :data:`MEASURE_COLUMNS` of candidate zones (a superset:
    each is tested here). With one area, a zone counts once; with several (``per_area``), once
    per area it meets, and the result starts with :data:`AREA_INDEX`. Sorted by (area,) keys,
    missing keys last, as the engines sort.
    """
    many = _Areas.of(areas) if len(areas) > 1 else None  # once for every batch
    groups: dict[tuple, _Group] = {}
    for table in batches:
        if not len(table):
            continue
        if many is None:
            meets, inside = meeting(table.column("geometry"), areas[0])
            zone_at = np.flatnonzero(meets)
            area_at = np.zeros(len(zone_at), dtype=np.int64)
            hectares = inside[zone_at]
        else:
            zone_at, area_at, hectares = many.pairs(table.column("geometry"))
        if not len(zone_at):
            continue
        _add(groups, table.take(pa.array(zone_at)), area_at, hectares, keys)
    return _frame(groups, keys, per_area)


@dataclass(frozen=True, eq=False)
class _Areas:
    """Many areas (plots) ready to meet batches of zones: their prepared shapes, an STR-tree, and a grid of their boxes."""

    geometries: np.ndarray
    tree: shapely.STRtree
    grid: "_BoxGrid"

    @classmethod
    def of(cls, areas: Sequence[Area]) -> "_Areas":
        geometries = np.array([a.geometry for a in areas], dtype=object)
        return cls(geometries, shapely.STRtree(geometries), _BoxGrid.of(np.array([a.bbox for a in areas], dtype=float)))

    def pairs(self, wkb: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(zone, area) of every zone of a batch and area that intersect, sorted by zone then area, and the zone's hectares inside.

        Boxes first, from the WKB's flat coordinates: a read over many scattered plots brings
        mostly zones far from every plot, which never become shapely objects (making them all,
        then a box each, was most of ``evidence plots``' clipping time on 1M zones). The exact
        predicate and the clip are those of :func:`~forestguard.areas.clip.overlapping_pairs`
        and :func:`~forestguard.areas.clip.hectares_inside`.
        """
        bounds = FlatPolygons.from_wkb(wkb).bounds
        near = np.flatnonzero(self.grid.near(bounds))
        b = bounds[near]
        zone_at, area_at = self.tree.query(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))  # boxes meet
        if not len(zone_at):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        zone_at = near[zone_at]
        column = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
        wanted, position = np.unique(zone_at, return_inverse=True)
        zones = shapely.from_wkb(column.take(pa.array(wanted)).to_numpy(zero_copy_only=False))[position]
        hit = shapely.intersects(self.geometries[area_at], zones)  # the areas are prepared
        zone_at, area_at, zones = zone_at[hit], area_at[hit], zones[hit]
        order = np.lexsort((area_at, zone_at))
        zone_at, area_at, zones = zone_at[order].astype(np.int64), area_at[order].astype(np.int64), zones[order]
        return zone_at, area_at, hectares_inside(zones, self.geometries[area_at])


@dataclass(frozen=True, eq=False)
class _BoxGrid:
    """A regular lon/lat grid over some boxes, each cell marked when a box covers it: which other boxes may meet one, in numpy.

    A superset, never a miss: a point two boxes share lies in a marked cell, and when a box
    spans at most two cells each way that cell is one of its four corner cells (cell indexes
    are monotone in the coordinate, in floating point too). Wider boxes are always "near".
    """

    x0: float
    y0: float
    size: float
    marked: np.ndarray  #: (columns, rows) bool

    CELLS = 2048  #: along the longer side of the boxes' extent (~4 MB of cells at most)

    @classmethod
    def of(cls, boxes: np.ndarray) -> "_BoxGrid":
        x0, y0 = float(boxes[:, 0].min()), float(boxes[:, 1].min())
        size = max(float(boxes[:, 2].max()) - x0, float(boxes[:, 3].max()) - y0) / cls.CELLS or 1.0
        grid = cls(x0, y0, size, np.zeros((cls.CELLS + 2, cls.CELLS + 2), dtype=bool))
        (ix0, ix1), (iy0, iy1) = grid._cells(boxes[:, 0], boxes[:, 2], x0), grid._cells(boxes[:, 1], boxes[:, 3], y0)
        for a, b, c, d in zip(ix0, ix1, iy0, iy1):
            grid.marked[a : b + 1, c : d + 1] = True
        return grid

    def _cells(self, low: np.ndarray, high: np.ndarray, origin: float) -> tuple[np.ndarray, np.ndarray]:
        last = self.marked.shape[0] - 1
        return (np.clip(np.floor((low - origin) / self.size), -1, last + 1).astype(np.int64),
                np.clip(np.floor((high - origin) / self.size), -1, last + 1).astype(np.int64))

    def near(self, boxes: np.ndarray) -> np.ndarray:
        """Which boxes (xmin, ymin, xmax, ymax rows) may meet a marked one."""
        last = self.marked.shape[0] - 1
        (ix0, ix1), (iy0, iy1) = self._cells(boxes[:, 0], boxes[:, 2], self.x0), self._cells(boxes[:, 1], boxes[:, 3], self.y0)
        outside = (ix1 < 0) | (ix0 > last) | (iy1 < 0) | (iy0 > last)
        wide = (ix1 - ix0 > 1) | (iy1 - iy0 > 1)
        ix0, ix1, iy0, iy1 = (np.clip(v, 0, last) for v in (ix0, ix1, iy0, iy1))
        corners = self.marked[ix0, iy0] | self.marked[ix0, iy1] | self.marked[ix1, iy0] | self.marked[ix1, iy1]
        return ~outside & (wide | corners)


def _add(groups: dict[tuple, _Group], table: pa.Table, area_at: np.ndarray, hectares: np.ndarray, keys: Sequence[str]) -> None:
    confidence = pc.cast(table.column("confidence"), pa.float64()).to_numpy(zero_copy_only=False)
    known = ~np.isnan(confidence)
    hundredths = np.where(known, np.rint(np.nan_to_num(confidence) * 100), 0).astype(np.int64)
    verified = table.column("verified").fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    frame = pd.DataFrame({AREA_INDEX: area_at, **{k: table.column(k).to_pandas() for k in keys}})
    for group, rows in frame.groupby([AREA_INDEX, *keys], dropna=False, sort=False).indices.items():
        group = group if isinstance(group, tuple) else (group,)
        name = tuple(None if _missing(v) else (int(v) if isinstance(v, (np.integer,)) else v) for v in group)
        entry = groups.setdefault(name, _Group())
        entry.zones += len(rows)
        entry.hectares.append(hectares[rows])
        entry.confidence_hundredths += int(hundredths[rows].sum())
        entry.confidence_n += int(known[rows].sum())
        entry.verified += int(verified[rows].sum())


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _frame(groups: dict[tuple, _Group], keys: Sequence[str], per_area: bool) -> pd.DataFrame:
    rows = []
    for name in sorted(groups, key=lambda g: tuple((v is None, v if v is not None else 0) for v in g)):
        entry = groups[name]
        hectares = math.fsum(np.concatenate(entry.hectares)) if entry.hectares else 0.0
        rows.append(
            (
                *(name if per_area else name[1:]),
                entry.zones,
                Decimal(repr(hectares)),
                Decimal(entry.confidence_hundredths).scaleb(-2) if entry.confidence_n else None,
                entry.confidence_n,
                entry.verified,
            )
        )
    columns = [*([AREA_INDEX] if per_area else []), *keys, *AGGREGATE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)
