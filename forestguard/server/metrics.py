"""Prometheus metrics of the dashboard server, safe with several worker processes.

Names follow ``forestguard_<thing>_<unit>``. With ``--num-procs`` > 1 the
serve command calls :func:`forestguard.server.enable_multiprocess_metrics`
before anything imports prometheus_client; every worker then writes its
samples to that folder and ``/metrics`` (answered by whichever worker) merges
them.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

from . import multiprocess_metrics_dir

#: Seconds: health probes and API calls at the low end, map renders and first loads at the top.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("forestguard_http_requests_total", "HTTP requests answered.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram("forestguard_http_request_duration_seconds", "HTTP request latency.", ["route"], buckets=LATENCY_BUCKETS)
SESSIONS_ACTIVE = Gauge("forestguard_sessions_active", "Dashboard sessions open now.", multiprocess_mode="livesum")
SESSIONS_CREATED = Counter("forestguard_sessions_created_total", "Dashboard sessions opened.")
RENDER_SECONDS = Histogram("forestguard_render_duration_seconds", "Server time to draw: one map view (kind=map), a dashboard's numbers (dashboard-numbers), its map (dashboard-view: after a filter change, a pan, zoom or resize), its charts and tables after a filter change (dashboard-parts) or once a new page has loaded (dashboard-loaded).", ["kind"], buckets=LATENCY_BUCKETS)
LAYER_ZONES = Gauge("forestguard_layer_zones", "Zones held in memory for maps by this process.", multiprocess_mode="max")
CACHE_REQUESTS = Counter("forestguard_cache_requests_total", "Cache lookups by outcome (hit, miss) and kind (stats, geojson, agg, session).", ["outcome", "kind"])
CACHE_ERRORS = Counter("forestguard_cache_errors_total", "Cache backend errors by reason (connection, timeout, …); answers were computed instead.", ["reason"])
READY = Gauge("forestguard_ready", "1 when the last readiness check passed.", multiprocess_mode="liveall")


def multiprocess_mode() -> bool:
    return multiprocess_metrics_dir() is not None


def exposition() -> tuple[bytes, str]:
    """The current samples in the text format (merged across workers in multi-process mode)."""
    sync_cache_counters()
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


@contextmanager
def render_timer(kind: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        RENDER_SECONDS.labels(kind).observe(time.perf_counter() - started)


class _CacheCounterBridge:
    """Copies the cache's per-process counts into Prometheus counters, as deltas.

    The cache keeps plain counts (:meth:`forestguard.cache.Cache.counters`);
    adding only what changed since the last sync keeps the Prometheus counters
    monotonic, and the multi-process collector then sums the workers.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def sync(self) -> None:
        counts = _cache_counts()
        samples = [(CACHE_REQUESTS.labels("hit", kind), ("hit", kind), n) for kind, n in counts.get("hits_by_kind", {}).items()]
        samples += [(CACHE_REQUESTS.labels("miss", kind), ("miss", kind), n) for kind, n in counts.get("misses_by_kind", {}).items()]
        samples += [(CACHE_ERRORS.labels(reason), ("error", reason), n) for reason, n in counts.get("errors_by_reason", {}).items()]
        with self._lock:
            for counter, key, value in samples:
                delta = float(value) - self._seen.get(key, 0.0)
                if delta < 0:  # the cache was rebuilt (settings changed): its counts restarted
                    delta = float(value)
                if delta:
                    counter.inc(delta)
                self._seen[key] = float(value)


def _cache_counts() -> dict[str, Any]:
    from ..cache import default_cache

    try:
        return default_cache().counters()
    except Exception:  # a scrape never fails because of the cache
        return {}


_bridge = _CacheCounterBridge()
sync_cache_counters = _bridge.sync


def mark_process_dead(pid: int) -> None:
    """Forget a finished worker's live gauges (multi-process mode)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)
