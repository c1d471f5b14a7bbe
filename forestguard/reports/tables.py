"""Small table helpers shared by the reports: class pivots, shares, JSON-safe records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Hectare column of each classification (``None``: zones without one).
CLASS_COLUMNS: dict[str | None, str] = {"legal": "legal_ha", "illegal": "illegal_ha", None: "unclassified_ha"}


def class_pivot(frame: pd.DataFrame, index: str) -> pd.DataFrame:
    """Hectares per classification as columns (legal_ha, illegal_ha, unclassified_ha), one row per ``index``."""
    classes = frame["classification"].map(lambda c: CLASS_COLUMNS.get(c, CLASS_COLUMNS[None]))
    pivot = frame.assign(column=classes).pivot_table(index=index, columns="column", values="area_ha", aggfunc="sum")
    return pivot.reindex(columns=list(CLASS_COLUMNS.values())).fillna(0.0).round(2).rename_axis(columns=None)


def share(part: pd.Series, whole: pd.Series | float) -> pd.Series:
    """part / whole rounded to 4 decimals; NaN where the whole is zero (no share, not 0 %)."""
    whole = whole.replace(0, np.nan) if isinstance(whole, pd.Series) else (whole or np.nan)
    return (part / whole).astype(float).round(4)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (NaN → null), the form ``stats.json`` stores tables in."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
