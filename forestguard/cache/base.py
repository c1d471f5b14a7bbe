"""What every cache backend does, written once: lookups, single-flight, counters, helpers.

A backend (memory, Redis) supplies raw byte storage that never raises — an
unreachable backend simply looks empty and drops writes — and a ``_fill`` that
computes a missing value once. Everything callers use (``get_or_compute``,
``statistics``, ``cached_array``, ``geojson``, sessions) lives here, so both
backends have the same interface and semantics by construction.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, TypeVar

from ..errors import UserError
from . import codecs
from ..breaker import ThrottledWarning
from .keys import DATA_KINDS, KeySpace, store_scope

if TYPE_CHECKING:
    import numpy as np

    from ..stats import Statistics
    from ..stores.base import ZoneFilter, ZoneStore

log = logging.getLogger("forestguard.cache")

T = TypeVar("T")
Encode = Callable[[Any], bytes]
Decode = Callable[[bytes], Any]

#: A computed value and its encoded form (followers of a single flight decode their own copy).
Filled = tuple[Any, bytes]


class CacheUnavailable(UserError):
    """An administrative operation (``cache stats``/``clear``) could not reach the backend.

    Requests never see it: they degrade to computing. Only operators' commands report it.
    """


class _Miss:
    """Sentinel: nothing usable is stored under the key."""


MISS = _Miss()


class Counters:
    """Thread-safe event counts: hits/misses per kind, errors per reason, and the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


def summarize(counts: Counter[str]) -> dict[str, Any]:
    """The metrics dict from flat counter names (``hit:stats``, ``error:timeout``, ``coalesced``)."""

    def by(event: str, known: Iterable[str] = ()) -> dict[str, int]:
        found = dict.fromkeys(known, 0)
        for name, n in counts.items():
            head, _, detail = name.partition(":")
            if head == event and detail:
                found[detail] = found.get(detail, 0) + n
        return dict(sorted(found.items()))

    hits, misses, errors = by("hit", DATA_KINDS), by("miss", DATA_KINDS), by("error")
    return {
        "hits": sum(hits.values()),
        "hits_by_kind": hits,
        "misses": sum(misses.values()),
        "misses_by_kind": misses,
        "errors": sum(errors.values()),
        "errors_by_reason": errors,
        **{name: counts.get(name, 0) for name in ("coalesced", "lock_waits", "bypassed", "too_large")},
    }


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    result: Filled | None = None
    error: BaseException | None = None


class SingleFlight:
    """One thread per key computes; the others wait for its result (or its exception)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def run(self, key: str, fill: Callable[[], Filled]) -> tuple[Filled, bool]:
        """The filled value and whether this thread was the one that computed it."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result, False
        try:
            flight.result = fill()
            return flight.result, True
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


class Cache(abc.ABC):
    """The cache used by statistics, dashboards and reports. Get one with :func:`default_cache`."""

    backend: ClassVar[str]
    #: Whether other processes (dashboard workers, report kernels) read what this cache stores.
    shared: ClassVar[bool] = True

    def __init__(self, keys: KeySpace, warn_interval: float = 60.0) -> None:
        self.keys = keys
        self._counters = Counters()
        self._flights = SingleFlight()
        self._warn_interval = warn_interval
        self._warnings: dict[str, ThrottledWarning] = {}
        self._warnings_lock = threading.Lock()

    # -- what a backend provides --------------------------------------------------------
    @abc.abstractmethod
    def _get(self, key: str) -> bytes | None:
        """The stored bytes, or None when absent, expired or the backend is unavailable. Never raises."""

    @abc.abstractmethod
    def _set(self, key: str, value: bytes, ttl: float) -> bool:
        """Store with a TTL in seconds; False when it could not be stored. Never raises."""

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Remove a key if it can be reached. Never raises."""

    @abc.abstractmethod
    def _fill(self, key: str, ttl: float, compute: Callable[[], Any], encode: Encode, decode: Decode) -> Filled:
        """Compute a missing value once (per process here, across processes where the backend can)."""

    @abc.abstractmethod
    def remaining_ttl(self, key: str) -> float | None:
        """Seconds the key has left; None when it is absent (or the backend unreachable)."""

    @abc.abstractmethod
    def clear(self) -> int:
        """Delete every key under this prefix (and nothing else); return how many. Raises CacheUnavailable."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Backend, key counts, memory and shared counters for ``cache stats``. Raises CacheUnavailable."""

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing
        """Release connections; the cache must not be used afterwards."""

    # -- the core -------------------------------------------------------------------------
    def get_or_compute(self, key: str, ttl: float, compute: Callable[[], T], encode: Encode, decode: Decode) -> T:
        """The cached value of ``key``, or ``compute()`` stored for ``ttl`` seconds.

        Concurrent misses of one key compute once; a value that fails to decode
        is a miss; a backend that is down, slow or full makes this slower, never
        wrong and never raising — only ``compute``'s own errors propagate.
        """
        if not key.startswith(self.keys.prefix + ":"):
            raise ValueError(f"cache key {key!r} was not built by this cache's KeySpace")
        kind = self.keys.kind_of(key)
        value = self._lookup(key, decode)
        if value is not MISS:
            self._counters.add(f"hit:{kind}")
            self._after_request()
            return value
        self._counters.add(f"miss:{kind}")
        (computed, blob), leader = self._flights.run(key, lambda: self._fill(key, ttl, compute, encode, decode))
        self._after_request()
        if leader:
            return computed
        self._counters.add("coalesced")
        copy = self._decode(key, blob, decode)  # each caller gets its own object, as on a hit
        return computed if copy is MISS else copy

    def _lookup(self, key: str, decode: Decode) -> Any:
        data = self._get(key)
        return MISS if data is None else self._decode(key, data, decode)

    def _decode(self, key: str, data: bytes, decode: Decode) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # any decoding failure means "not cached", whatever raised it
            self._error("corrupt", f"cache value {key} cannot be decoded ({type(exc).__name__}: {exc}); recomputing")
            return MISS

    def _recheck(self, key: str, decode: Decode) -> Filled | None:
        """The value, if another thread or process stored it since our miss (no counting: the miss was counted)."""
        data = self._get(key)
        if data is None:
            return None
        try:
            return decode(data), data
        except Exception:
            return None

    def _compute_and_store(self, key: str, ttl: float, compute: Callable[[], Any], encode: Encode) -> Filled:
        value = compute()
        blob = encode(value)
        self._set(key, blob, ttl)
        return value, blob

    def _after_request(self) -> None:
        """Hook run after each request is answered (the Redis backend publishes counters)."""

    # -- counters and warnings ----------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """This process's counts for the metrics endpoint.

        ``hits``/``misses`` (and ``*_by_kind``: stats, geojson, agg, session),
        ``errors`` (and ``errors_by_reason``: connection, timeout, oom, readonly,
        response, corrupt, other), ``coalesced`` (answered by another thread's
        computation), ``lock_waits`` (waited for another process's),
        ``bypassed`` (backend skipped while the circuit was open), ``too_large``
        (values not stored because of their size).
        """
        return {"backend": self.backend, **summarize(self._counters.snapshot())}

    def _error(self, reason: str, message: str) -> None:
        self._counters.add(f"error:{reason}")
        self._warn(reason, message)

    def _warn(self, topic: str, message: str) -> None:
        """Log once per interval per topic: a dead backend must not flood the logs."""
        with self._warnings_lock:
            warn = self._warnings.setdefault(topic, ThrottledWarning(log, self._warn_interval))
        warn(message)

    # -- statistics (the StatsCache protocol of forestguard.stats) ------------------------------
    def statistics(
        self, store: ZoneStore, where: ZoneFilter, by: tuple[str, ...], version: int, compute: Callable[[], Statistics]
    ) -> Statistics:
        """Statistics under ``stats:{country}:{year}`` + data version, for 1800 s."""
        key = self.keys.stats(store_scope(store), where, by, version)

        def decode(data: bytes) -> Statistics:
            stats = codecs.decode_statistics(data)
            if stats.data_version != version or stats.engine != store.engine:
                raise codecs.CorruptValue("statistics of another data version or engine under this key")
            return stats

        return self.get_or_compute(key, self.keys.ttl("stats"), compute, codecs.encode_statistics, decode)

    # -- helpers for dashboards and reports -------------------------------------------------------
    def cached_array(self, name: str, key_parts: Iterable[object], version: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A numpy array (a map aggregate's values, an extent) keyed by view name, parts and data version.

        ``key_parts`` is everything the array depends on besides the data
        version: ranges, canvas size, filters (``ZoneFilter.key()``) and the
        store (``keys.store_scope(store)``) when one Redis serves several stores.
        """
        key = self.keys.agg(name, list(key_parts), version)
        return self.get_or_compute(key, self.keys.ttl("agg"), compute, codecs.encode_ndarray, codecs.decode_ndarray)

    def geojson(self, country: str, version: int, compute: Callable[[], str], *, scope: str = "") -> str:
        """GeoJSON text of a country's zones under ``geojson:{country}`` + data version, for 3600 s.

        Text in, text out: the cache never parses it, so a hit costs one
        decompression. ``scope``: see :meth:`cached_array`.
        """
        key = self.keys.geojson(country, version, scope)
        return self.get_or_compute(key, self.keys.ttl("geojson"), compute, codecs.encode_text, codecs.decode_text)

    def session_get(self, user_id: str) -> dict[str, Any] | None:
        """A dashboard session's state, or None (absent, expired, unreadable or backend down)."""
        key = self.keys.session(user_id)
        value = self._lookup(key, codecs.decode_json)
        found = isinstance(value, dict)
        self._counters.add(f"{'hit' if found else 'miss'}:session")
        self._after_request()
        return value if found else None

    def session_set(self, user_id: str, state: dict[str, Any]) -> bool:
        """Keep a session's state for 86400 s; False when the backend could not store it."""
        return self._set(self.keys.session(user_id), codecs.encode_json(state), self.keys.ttl("session"))

    def session_delete(self, user_id: str) -> None:
        self._delete(self.keys.session(user_id))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} prefix={self.keys.prefix!r}>"


__all__ = ["Cache", "CacheUnavailable", "Counters", "SingleFlight", "MISS", "summarize"]
