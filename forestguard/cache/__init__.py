"""The one cache of statistics, dashboards and reports: Redis when configured, in-process otherwise.

``default_cache()`` gives this process's cache, chosen from the configuration:
``REDIS_URL`` set → :class:`RedisCache` (shared by every process and container
using the same ``FORESTGUARD_CACHE_PREFIX``); unset → :class:`MemoryCache`
(same interface and TTL semantics, this process only). Keys and TTLs are
defined in :mod:`forestguard.cache.keys`, value formats in
:mod:`forestguard.cache.codecs`.

Usage::

    cache = default_cache()
    stats = statistics(store, where, by, cache=cache)        # StatsCache protocol
    values = cache.cached_array("map", [x_range, y_range, width, height, where.key()], store.data_version(), render)
    text = cache.geojson("Brazil", store.data_version(), lambda: zones_geojson(store, "Brazil"))
    cache.session_set(user_id, {"country": "Brazil"}); cache.session_get(user_id)
    cache.counters()                                          # for /metrics
"""

from __future__ import annotations

import atexit
import logging
import threading

from ..config import redact, settings
from ..memory import budget_bytes
from .base import Cache, CacheUnavailable
from .codecs import CorruptValue
from .keys import TTL_SECONDS, KeySpace, store_scope
from .memory import MemoryCache

__all__ = [
    "Cache",
    "CacheUnavailable",
    "CorruptValue",
    "KeySpace",
    "MemoryCache",
    "TTL_SECONDS",
    "default_cache",
    "open_cache",
    "store_scope",
]

log = logging.getLogger("forestguard.cache")

#: Share of FORESTGUARD_MEMORY_MB the in-process cache may hold (Redis holds its own).
MEMORY_CACHE_SHARE = 0.1

_lock = threading.Lock()
_default: tuple[tuple[str | None, str], Cache] | None = None


def open_cache(redis_url: str | None = None, prefix: str = "fg", **options: object) -> Cache:
    """A new cache: Redis when ``redis_url`` is given, in-process otherwise (``options`` go to its constructor)."""
    keys = KeySpace(prefix)
    if redis_url:
        from .redis import RedisCache  # redis-py is imported only when Redis is configured

        return RedisCache(redis_url, keys, **options)  # type: ignore[arg-type]
    return MemoryCache(keys, **options)  # type: ignore[arg-type]


def default_cache() -> Cache:
    """This process's cache, built once from ``REDIS_URL`` and ``FORESTGUARD_CACHE_PREFIX``.

    It is rebuilt only if those settings change (tests switch them); every
    caller in a process shares it, so single-flight and counters are per process.
    """
    global _default
    config = settings()
    wanted = (config.redis_url, config.cache_prefix)
    with _lock:
        if _default is None or _default[0] != wanted:
            # In-process, the cache is part of this process's memory budget: a tenth of it.
            options = {} if config.redis_url else {"max_bytes": budget_bytes(MEMORY_CACHE_SHARE)}
            cache = open_cache(config.redis_url, config.cache_prefix, **options)
            if _default is None:
                atexit.register(_publish_at_exit)
            log.debug("cache: %s backend, prefix %r %s", cache.backend, config.cache_prefix, redact(config.redis_url))
            _default = (wanted, cache)
        return _default[1]


def _publish_at_exit() -> None:
    """A short-lived process (a CLI run) still adds its hits and misses to the shared totals."""
    if _default is not None and hasattr(_default[1], "publish_counters"):
        _default[1].publish_counters()
