"""Process-wide memo of what sessions with the same view share (selections, images, tables).

Sessions are cheap only if they hold nothing big of their own: the zones a
filter selects, a rendered view or the top-regions table are computed once
per process for everyone asking for the same thing, and the least recently
used ones are let go.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class SharedLRU:
    """A small thread-safe LRU: ``get(key, compute)``; concurrent askers of one key compute it once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self._items:
                    return self._items[key]  # type: ignore[return-value]
            value = compute()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._pending.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


#: Filtered layers (a few MB each for 1M zones), rendered views (RGBA, ~4 MB at 1200×800), tables.
SELECTIONS = SharedLRU(16)
VIEWS = SharedLRU(24)
TABLES = SharedLRU(64)
