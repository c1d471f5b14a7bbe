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
from ..areas.overlay import PolygonIndex
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
    """Many areas (plots) ready to meet batches of zones: prepared, in a tree, their boxes on a grid (:class:`PolygonIndex`)."""

    index: PolygonIndex

    @classmethod
    def of(cls, areas: Sequence[Area]) -> "_Areas":
        return cls(PolygonIndex.of(np.array([a.geometry for a in areas], dtype=object)))

    def pairs(self, wkb: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(zone, area) of every zone of a batch and area that intersect, sorted by zone then area, and the zone's hectares inside.

        Boxes first, from the WKB's flat coordinates: a read over many scattered plots brings
        mostly zones far from every plot, which never become shapely objects (making them all,
        then a box each, was most of ``evidence plots``' clipping time on 1M zones). The exact
        predicate and the clip are those of :func:`~forestguard.areas.clip.overlapping_pairs`
        and :func:`~forestguard.areas.clip.hectares_inside`.
        """
        bounds = FlatPolygons.from_wkb(wkb).bounds
        near = np.flatnonzero(self.index.may_meet(bounds))
        b = bounds[near]
        zone_at, area_at = self.index.tree.query(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))  # boxes meet
        if not len(zone_at):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        zone_at = near[zone_at]
        column = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
        wanted, position = np.unique(zone_at, return_inverse=True)
        zones = shapely.from_wkb(column.take(pa.array(wanted)).to_numpy(zero_copy_only=False))[position]
        geometries = self.index.geometries
        hit = shapely.intersects(geometries[area_at], zones)  # the areas are prepared
        zone_at, area_at, zones = zone_at[hit], area_at[hit], zones[hit]
        order = np.lexsort((area_at, zone_at))
        zone_at, area_at, zones = zone_at[order].astype(np.int64), area_at[order].astype(np.int64), zones[order]
        return zone_at, area_at, hectares_inside(zones, geometries[area_at])


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
