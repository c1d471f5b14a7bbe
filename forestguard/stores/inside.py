"""Zones inside an area, the same way for every engine.

A filter with an ``area`` is answered in two steps: the engine finds candidates through its
spatial index (:meth:`ZoneStore._area_candidates`: the PostGIS GiST index, DuckDB's R-tree,
a snapshot's bbox covering), then this module keeps the zones that really intersect the
area and, for statistics, counts the hectares inside it (:mod:`forestguard.areas`). The
decision and the arithmetic never depend on the engine, so counts, zones, maps and
statistics of an area agree exactly across DuckDB, PostGIS and snapshots.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..areas.aggregate import MEASURE_COLUMNS, clipped_aggregate
from ..areas.clip import meeting
from ..areas.shape import Area
from ..schema import ZONE_COLUMNS
from .base import ZoneFilter, ZoneStore

#: The columns a zone read gives when it names none (every engine's default).
DEFAULT_COLUMNS = ("id", *ZONE_COLUMNS)
#: Candidate boxes are widened by this (degrees): the engines' tests only have to be a superset.
BOX_MARGIN = 1e-9
BATCH_ROWS = 100_000
_ORDER = ("country", "year", "id")


def candidate_box(areas: Sequence[Area]) -> tuple[float, float, float, float]:
    """The lon/lat box holding every area, a hair wider (a zone touching an area meets its box)."""
    boxes = [a.bbox for a in areas]
    return (min(b[0] for b in boxes) - BOX_MARGIN, min(b[1] for b in boxes) - BOX_MARGIN,
            max(b[2] for b in boxes) + BOX_MARGIN, max(b[3] for b in boxes) + BOX_MARGIN)


def _candidates(store: ZoneStore, where: ZoneFilter, areas: Sequence[Area], columns: Sequence[str], batch_rows: int) -> Iterator[pa.Table]:
    return store._area_candidates(where.with_(area=None), candidate_box(areas), list(dict.fromkeys(columns)), batch_rows)


def batches(store: ZoneStore, where: ZoneFilter, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The zones ``where`` selects that intersect its area, ``columns`` of them, a batch at a time."""
    area = _area(where)
    wanted = list(columns) if columns else list(DEFAULT_COLUMNS)
    for table in _candidates(store, where, [area], [*wanted, "geometry"], batch_rows):
        kept = table.filter(pa.array(meeting(table.column("geometry"), area, hectares=False)[0])).select(wanted)
        if len(kept):
            yield kept


def count(store: ZoneStore, where: ZoneFilter) -> int:
    return sum(len(t) for t in batches(store, where, ["id"]))


def zones_arrow(store: ZoneStore, where: ZoneFilter, columns: Sequence[str] | None = None, limit: int | None = None) -> pa.Table:
    """As :meth:`ZoneStore.zones_arrow`: sorted by country, year, id, at most ``limit``."""
    wanted = list(columns) if columns else list(DEFAULT_COLUMNS)
    read = [*wanted, *(c for c in _ORDER if c not in wanted)]
    area = _area(where)
    tables = []
    schema = None
    for table in _candidates(store, where, [area], [*read, "geometry"], BATCH_ROWS):
        schema = schema or table.select(read).schema
        kept = table.filter(pa.array(meeting(table.column("geometry"), area, hectares=False)[0])).select(read)
        if len(kept):
            tables.append(kept)
    if not tables:
        return (schema.empty_table() if schema is not None else pa.table({c: [] for c in read})).select(wanted)
    table = pa.concat_tables(tables).combine_chunks().sort_by([(c, "ascending") for c in _ORDER])
    if limit is not None:
        table = table.slice(0, int(limit))
    return table.select(wanted)


def aggregate(store: ZoneStore, where: ZoneFilter, keys: Sequence[str]) -> pd.DataFrame:
    """As :meth:`ZoneStore.aggregate`, hectares counted inside the area only."""
    area = _area(where)
    return clipped_aggregate(_candidates(store, where, [area], [*keys, *MEASURE_COLUMNS], BATCH_ROWS), [area], keys)


def aggregate_per_area(store: ZoneStore, where: ZoneFilter, areas: Sequence[Area], keys: Sequence[str]) -> pd.DataFrame:
    """:func:`aggregate` for many areas (plots) in one pass over the candidates: ``area_index`` first."""
    if where.area is not None:
        raise ValueError("per-area statistics take their areas apart from the filter")
    if not areas:
        return clipped_aggregate([], [], keys, per_area=True)
    return clipped_aggregate(_candidates(store, where, areas, [*keys, *MEASURE_COLUMNS], BATCH_ROWS), areas, keys, per_area=True)


def hectares_by_zone(store: ZoneStore, where: ZoneFilter) -> tuple[np.ndarray, np.ndarray]:
    """Ids (ascending) of the zones meeting ``where``'s area and the hectares of each inside it (maps' tables, downloads)."""
    area = _area(where)
    ids, hectares = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for table in _candidates(store, where, [area], ["id", "geometry"], BATCH_ROWS):
        meets, inside = meeting(table.column("geometry"), area)
        ids.append(table.column("id").to_numpy()[meets].astype(np.int64))
        hectares.append(inside[meets])
    all_ids, all_hectares = np.concatenate(ids), np.concatenate(hectares)
    order = np.argsort(all_ids, kind="stable")
    return all_ids[order], all_hectares[order]


def _area(where: ZoneFilter) -> Area:
    if where.area is None:
        raise ValueError("this filter has no area")
    return where.area
