"""Cache for statistics and aggregates (placeholder until the cache issue lands)."""

from __future__ import annotations


def default_cache():
    return None
