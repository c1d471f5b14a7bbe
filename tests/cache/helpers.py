"""Helpers shared by the cache tests: call counters and a manual clock."""

from __future__ import annotations

import threading
from typing import Any, Callable

from forestguard.stores.base import ZoneStore


class CallCounter:
    """Wraps a function and counts its calls (thread-safe): how many times work was really done."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        return self.fn(*args, **kwargs)


class ManualClock:
    """A monotonic clock the test advances: TTLs and cooldowns without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def count_aggregates(store: ZoneStore) -> CallCounter:
    """Count the store's aggregate queries (what a cache hit must avoid)."""
    counter = CallCounter(store.aggregate)
    store.aggregate = counter  # type: ignore[method-assign]
    return counter
