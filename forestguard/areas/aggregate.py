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

from ..stores.base import AGGREGATE_COLUMNS
from .clip import hectares_inside, meeting, overlapping_pairs
from .shape import Area

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


def zone_geometries(table: pa.Table) -> np.ndarray:
    """Shapely geometries of an Arrow batch's WKB ``geometry`` column."""
    column = table.column("geometry")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return shapely.from_wkb(column.to_numpy(zero_copy_only=False))


def clipped_aggregate(batches: Iterable[pa.Table], areas: Sequence[Area], keys: Sequence[str], *, per_area: bool = False) -> pd.DataFrame:
    """Exact sums per group of the zones intersecting ``areas``, hectares counted inside them only.

    ``batches`` hold the ``keys`` and :data:`MEASURE_COLUMNS` of candidate zones (a superset:
    each is tested here). With one area, a zone counts once; with several (``per_area``), once
    per area it meets, and the result starts with :data:`AREA_INDEX`. Sorted by (area,) keys,
    missing keys last, as the engines sort.
    """
    geometries = [a.geometry for a in areas]
    groups: dict[tuple, _Group] = {}
    for table in batches:
        if not len(table):
            continue
        if len(areas) == 1:
            meets, inside = meeting(table.column("geometry"), areas[0])
            zone_at = np.flatnonzero(meets)
            area_at = np.zeros(len(zone_at), dtype=np.int64)
            hectares = inside[zone_at]
        else:
            zones = zone_geometries(table)
            zone_at, area_at = overlapping_pairs(zones, geometries)
            hectares = hectares_inside(zones[zone_at], np.asarray(geometries, dtype=object)[area_at])
        if not len(zone_at):
            continue
        _add(groups, table.take(pa.array(zone_at)), area_at, hectares, keys)
    return _frame(groups, keys, per_area)


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
