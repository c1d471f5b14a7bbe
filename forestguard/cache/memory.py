"""In-process cache: a thread-safe LRU with TTLs, used when ``REDIS_URL`` is unset.

It stores the same encoded bytes Redis would, so values are copied on every
hit (no caller can mutate another's result) and the decode-failure and TTL
semantics are exactly those of the Redis backend. It is bounded by bytes and by
entries, evicting the least recently used first — like Redis with allkeys-lru.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from .base import Cache, Decode, Encode, Filled, summarize
from .keys import KeySpace


class MemoryCache(Cache):
    backend = "memory"
    shared = False

    def __init__(
        self,
        keys: KeySpace = KeySpace(),
        *,
        max_bytes: int = 256 * 1024 * 1024,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(keys)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # key -> (value, expires at)
        self._bytes = 0
        self.evictions = 0

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def _set(self, key: str, value: bytes, ttl: float) -> bool:
        if ttl <= 0:
            return False
        if len(value) > self.max_bytes:
            self._counters.add("too_large")
            return False
        with self._lock:
            self._drop(key)
            self._entries[key] = (value, self._clock() + ttl)
            self._bytes += len(value)
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                oldest = next(iter(self._entries))
                self._drop(oldest)
                self.evictions += 1
        return True

    def _drop(self, key: str) -> None:
        """Remove a key; the caller holds the lock."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0])

    def _delete(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _fill(self, key: str, ttl: float, compute: Callable[[], Any], encode: Encode, decode: Decode) -> Filled:
        # A thread that missed just as the previous leader finished finds its value here.
        return self._recheck(key, decode) or self._compute_and_store(key, ttl, compute, encode)

    def remaining_ttl(self, key: str) -> float | None:
        with self._lock:
            entry = self._entries.get(key)
            left = None if entry is None else entry[1] - self._clock()
        return left if left is not None and left > 0 else None

    def clear(self) -> int:
        with self._lock:
            mine = [k for k in self._entries if k.startswith(self.keys.prefix + ":")]
            for key in mine:
                self._drop(key)
        return len(mine)

    def describe(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            live = [k for k, (_, expires) in self._entries.items() if expires > now]
            used = self._bytes
        by_kind: dict[str, int] = {}
        for key in live:
            kind = self.keys.kind_of(key)
            by_kind[kind] = by_kind.get(kind, 0) + 1
        return {
            "backend": self.backend,
            "scope": "this process only",
            "prefix": self.keys.prefix,
            "keys": len(live),
            "keys_by_kind": dict(sorted(by_kind.items())),
            "memory_used_bytes": used,
            "memory_limit_bytes": self.max_bytes,
            "evictions": self.evictions,
            "counters": summarize(self._counters.snapshot()),
        }
