"""The statistics summaries: exact sums per combination of the columns a statistic filters or groups by.

Statistics of millions of zones must answer within the design's database latency (< 100 ms);
a GROUP BY over every zone cannot. The coarse summary leaves confidence out (a few thousand
rows however many zones: every statistic without a minimum confidence); the fine one keeps it
(hundreds of thousands: those with one). Each write appends its own sums in its own
transaction (DuckDB: the load, in SQL; PostGIS: the load from its batches, triggers for
updates and deletes by anyone) and a folding merges repeated combinations. Column names are
the zone table's, so :func:`~forestguard.stores.base.filter_sql` applies as is. Statistics
with a bounding box read the zones.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import GROUP_KEYS
from .base import AGGREGATE_COLUMNS, ZoneFilter

SUMMARY_TABLE = "forestguard_zone_summary"
SUMMARY_FINE_TABLE = "forestguard_zone_summary_confidence"
SUMMARY_KEYS = ("country", "year", "classification", "source", "verified")
SUMMARY_FINE_KEYS = (*SUMMARY_KEYS, "confidence")
SUMMARIES = {SUMMARY_TABLE: SUMMARY_KEYS, SUMMARY_FINE_TABLE: SUMMARY_FINE_KEYS}


def _summary_group(keys: Sequence[str]) -> str:
    return ", ".join("coalesce(verified, false)" if k == "verified" else k for k in keys)


#: What a summary row holds beside its keys: counts, and hectares and confidences summed in
#: hundredths (integers: both engines sum 64-bit integers many times faster than decimals).
SUMMARY_MEASURES = ("zones", "area_cents", "confidence_cents", "confidence_n", "verified_zones")


def summary_rows_sql(source: str, table: str = SUMMARY_TABLE, sign: str = "") -> str:
    """The rows of summary ``table`` for the zones in ``source`` (a table or parenthesised query); ``sign="-"`` for removed zones."""
    group = _summary_group(SUMMARIES[table])
    select = ", ".join("coalesce(verified, false) AS verified" if k == "verified" else k for k in SUMMARIES[table])
    return f"""
        SELECT {select}, {sign}count(*) AS zones, {sign}CAST(sum(area_ha) * 100 AS BIGINT) AS area_cents,
               {sign}CAST(coalesce(sum(confidence), 0) * 100 AS BIGINT) AS confidence_cents,
               {sign}count(confidence) AS confidence_n, {sign}count(*) FILTER (WHERE verified) AS verified_zones
        FROM {source} AS zones GROUP BY {group}
    """


def summary_folding_sql(source: str, table: str | Sequence[str] = SUMMARY_TABLE) -> str:
    """The rows of summary ``table`` (or of a summary with these keys) in ``source`` folded to one per combination.

    Groups whose zones all went are dropped.
    """
    keys = ", ".join(SUMMARIES[table] if isinstance(table, str) else table)
    return f"""
        SELECT {keys}, {', '.join(f'sum({m}) AS {m}' for m in SUMMARY_MEASURES)}
        FROM {source} AS summary GROUP BY {keys} HAVING sum(zones) <> 0
    """


#: PostGIS keeps a third summary: per combination and confidence threshold (every THRESHOLD_STEP
#: hundredths, the dashboard slider's step), the sums of the zones at or above it. A minimum
#: confidence on a threshold reads one threshold's rows (thousands) instead of the fine summary's
#: hundreds of thousands; DuckDB scans those fast enough without it.
SUMMARY_THRESHOLDS_TABLE = "forestguard_zone_summary_thresholds"
THRESHOLD_STEP = 5


def _needs_zones(where: ZoneFilter, keys: Sequence[str]) -> bool:
    """A bounding box, an overlap with a layer kind or a grouping by evidence needs the zones: summaries hold neither."""
    return where.bbox is not None or where.reads_evidence or any(k not in GROUP_KEYS for k in keys)


def threshold_of(where: ZoneFilter, keys: Sequence[str] = ()) -> int | None:
    """The thresholds summary's threshold (hundredths) answering ``where``'s minimum confidence, if there is one.

    Stored confidences are hundredths, so "at least x" is "at least ceil(100·x) hundredths".
    """
    if where.min_confidence is None or _needs_zones(where, keys):
        return None
    hundredths = max(0, int(math.ceil(round(where.min_confidence * 100, 9))))
    return hundredths if hundredths % THRESHOLD_STEP == 0 and hundredths <= 100 else None


def thresholds_sql(fine_source: str) -> str:
    """Rows of the thresholds summary from rows of the fine one (``fine_source``: a table or parenthesised query)."""
    keys = ", ".join(SUMMARY_KEYS)
    return f"""
        SELECT {keys}, t.threshold, {', '.join(f'sum({m})' for m in SUMMARY_MEASURES)}
        FROM {fine_source} AS s JOIN generate_series(0, 100, {THRESHOLD_STEP}) AS t(threshold) ON s.confidence * 100 >= t.threshold
        GROUP BY {keys}, t.threshold
    """


def summary_for(where: ZoneFilter, keys: Sequence[str] = ()) -> str | None:
    """The summary that answers statistics of ``where`` grouped by ``keys``, or None (see :func:`_needs_zones`)."""
    if _needs_zones(where, keys):
        return None
    return SUMMARY_TABLE if where.min_confidence is None else SUMMARY_FINE_TABLE


def summary_aggregate_sql(table: str, keys: Sequence[str], clause: str, sort_key: Callable[[str], str] = str) -> str:
    """The statistics query over a summary: the same groups as over the zones, from far fewer rows.

    Its measures are :data:`SUMMARY_MEASURES`; :func:`summary_frame` turns them into the
    aggregate's exact decimals.
    """
    group = ", ".join(keys)
    order = ", ".join(f"{sort_key(k)} NULLS LAST" for k in keys)
    return f"""
        SELECT {group + ',' if keys else ''} {', '.join(f'sum({m}) AS {m}' for m in SUMMARY_MEASURES)}
        FROM {table} WHERE {clause}
        {'GROUP BY ' + group if keys else ''} HAVING sum(zones) > 0
        {'ORDER BY ' + order if keys else ''}
    """


def summary_frame(rows: list[tuple], keys: Sequence[str]) -> pd.DataFrame:
    """Rows of :func:`summary_aggregate_sql` as :meth:`ZoneStore.aggregate` gives them: hundredths back to exact decimals."""
    out = []
    for row in rows:
        *values, zones, area_cents, confidence_cents, confidence_n, verified_zones = row
        out.append((*values, int(zones), Decimal(int(area_cents)).scaleb(-2),
                    Decimal(int(confidence_cents)).scaleb(-2) if confidence_n else None, int(confidence_n), int(verified_zones)))
    return pd.DataFrame(out, columns=[*keys, *AGGREGATE_COLUMNS])


class SummaryDelta:
    """The fine summary's rows for zones a load appends, summed batch by batch from the validated frames.

    Exact: hectares and confidences are summed as integer hundredths (the stores' DECIMAL(10,2)
    and DECIMAL(3,2)), as the database would sum the stored decimals; :meth:`table` hands them
    over as hundredths for the engine to divide.
    """

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []

    def add(self, zones: pd.DataFrame) -> None:
        if not len(zones):
            return
        confidence = pd.to_numeric(zones["confidence"], errors="coerce").to_numpy(dtype=float)
        missing = np.isnan(confidence)
        hundredths = np.rint(np.where(missing, 0, confidence) * 100).astype(np.int64)
        verified = zones["verified"].fillna(False).to_numpy(dtype=bool)
        keys = {"country": _text(zones["country"]), "year": pa.array(zones["year"].to_numpy(dtype="int64")),
                "classification": _text(zones["classification"]), "source": _text(zones["source"]),
                "verified": pa.array(verified), "confidence": pa.array(hundredths, mask=missing)}
        measures = {"zones": np.ones(len(zones), dtype=np.int64), "area": np.rint(pd.to_numeric(zones["area_ha"]).to_numpy(dtype=float) * 100),
                    "confidence_sum": hundredths, "confidence_n": ~missing, "verified_zones": verified}
        self._parts.append(_sum_by(keys, measures))

    def table(self) -> pa.Table:
        """Fine-summary rows: the keys (``confidence`` in hundredths), ``zones``, ``area`` and ``confidence_sum``
        in hundredths, ``confidence_n`` and ``verified_zones``."""
        if not self._parts:
            return pa.table({})
        parts = pa.concat_tables(self._parts)
        return _sum_by({k: parts.column(k) for k in _DELTA_KEYS}, {m: parts.column(m).to_numpy() for m in _DELTA_MEASURES})


_DELTA_KEYS = ["country", "year", "classification", "source", "verified", "confidence"]
_DELTA_MEASURES = ["zones", "area", "confidence_sum", "confidence_n", "verified_zones"]


def _text(column: pd.Series) -> pa.Array:
    array = column.array
    if isinstance(array, pd.arrays.ArrowExtensionArray):
        return pc.cast(array._pa_array, pa.string())
    return pa.array(column.astype(object).where(column.notna(), None), pa.string())


def _codes(array: pa.Array) -> tuple[np.ndarray, int]:
    """Dense codes of an array's values (nulls one more code) and how many codes there are."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.dictionary_encode(array)
    size = len(encoded.dictionary) + 1
    return encoded.indices.fill_null(size - 1).to_numpy(zero_copy_only=False).astype(np.int64), size


def _sum_by(keys: dict[str, pa.Array | pa.ChunkedArray], measures: dict[str, np.ndarray]) -> pa.Table:
    """The measures summed per combination of the keys (nulls a value of their own), as a table.

    One integer per combination (mixed radix over each key's codes), then NumPy sums per integer:
    ~20× faster than Arrow's hash group-by over six columns.
    """
    combined = np.zeros(len(next(iter(measures.values()))), dtype=np.int64)
    for array in keys.values():
        codes, size = _codes(array)
        combined = combined * size + codes
    present, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    sums = {name: pa.array(np.rint(np.bincount(inverse, weights=np.asarray(values, dtype=np.float64), minlength=len(present))).astype(np.int64))
            for name, values in measures.items()}
    taken = pa.array(first)
    return pa.table({**{k: (a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a).take(taken) for k, a in keys.items()}, **sums})
