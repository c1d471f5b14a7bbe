"""Circuit breaker and throttled warnings: a dead Redis (or database server) costs one timeout, not one per request.

Used by the cache, the PostGIS store's connections and the server alike, so it sits at the
bottom of the package and imports nothing of it.

States: *closed* (calls go through), *open* after ``threshold`` consecutive
failures (calls are refused without touching the network for ``cooldown``
seconds), then *half-open*: one caller is let through as a probe; its success
closes the circuit, its failure opens it for another cooldown.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable


class CircuitBreaker:
    """Thread-safe; ``clock`` is injectable so state changes can be reasoned about in seconds."""

    def __init__(self, threshold: int = 3, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or cooldown <= 0:
            raise ValueError("threshold must be ≥ 1 and cooldown > 0")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.opened = 0  # how many times the circuit opened (a metric)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """May a call go to the backend now? In half-open state only one probe at a time may."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() - self._opened_at < self.cooldown:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> bool:
        """Record a failed call; True when this failure opened (or re-opened) the circuit."""
        with self._lock:
            self._failures += 1
            if self._probing or (self._opened_at is None and self._failures >= self.threshold):
                self._probing = False
                self._opened_at = self._clock()
                self.opened += 1
                return True
            return False


class ThrottledWarning:
    """Log a warning at most once per ``interval`` seconds, with how many were held back."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._held_back = 0

    def __call__(self, message: str) -> bool:
        """Log ``message`` unless one was logged within the interval; True when logged."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self.interval:
                self._held_back += 1
                return False
            held, self._held_back, self._last = self._held_back, 0, now
        suffix = f" ({held} similar warning(s) held back in the last {self.interval:.0f} s)" if held else ""
        self.logger.warning("%s%s", message, suffix)
        return True
