"""The wording of the few sentences at the top of a report: hectares, shares and changes in plain words.

Each report builds its sentences (``key_changes``) from the same tables the charts show,
with these helpers, so the text can never disagree with the figures; the sentences are
also stored in ``stats.json``. Nothing here knows a report's shape: reports import this
module, never the reverse.
"""

from __future__ import annotations

import math

import pandas as pd


def hectares(value: float) -> str:
    return f"{value:,.0f} ha" if abs(value) >= 10 else f"{value:,.1f} ha"


def percent(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def change(old: float, new: float) -> str:
    """'rose 12% (1,000 ha → 1,120 ha)' style wording, robust to a zero start."""
    if old == 0:
        return f"went from none to {hectares(new)}" if new else "stayed at zero"
    ratio = new / old - 1
    verb = "rose" if ratio > 0.005 else "fell" if ratio < -0.005 else "held steady"
    amount = "" if verb == "held steady" else f" {abs(ratio):.0%}"
    return f"{verb}{amount} ({hectares(old)} → {hectares(new)})"


def points(old: float, new: float) -> str:
    delta = (new - old) * 100
    if abs(delta) < 0.5:
        return f"stayed at about {percent(new)}"
    return f"{'rose' if delta > 0 else 'fell'} from {percent(old)} to {percent(new)} ({f'{delta:+.0f}'.replace('-', '−')} points)"


def signed(ratio: float | None) -> str:
    if ratio is None or pd.isna(ratio):
        return "new this year"
    return f"{ratio:+.0%}"
