"""Per-process server state: which store, the shared read-only handle, readiness.

Sessions never open their own store: one read-only handle per worker process,
opened on first use and reopened after a fork (database handles do not survive
``fork``) or after readiness found the store gone.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import stores
from ..config import redact, settings
from ..stores.base import ZoneStore

#: The statistics a dashboard view shows: the cards (total, by class) and the yearly bars.
CARD_GROUPINGS: tuple[tuple[str, ...], ...] = ((), ("classification",))
BARS_GROUPING: tuple[str, ...] = ("year", "classification")
VIEW_GROUPINGS: tuple[tuple[str, ...], ...] = (*CARD_GROUPINGS, BARS_GROUPING)

#: Zones a GeoJSON/GeoParquet download may hold; beyond it the dashboard asks to narrow the filters.
DEFAULT_DOWNLOAD_LIMIT = 50_000


@dataclass
class ServerOptions:
    """What ``forestguard serve`` decided; the dashboard and routes read it from here."""

    store_url: str | None = None
    redis_url: str | None = None
    download_limit: int = DEFAULT_DOWNLOAD_LIMIT
    readiness_timeout: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or settings().store_url


_options = ServerOptions()
_store: ZoneStore | None = None
_store_pid: int | None = None
_lock = threading.Lock()


def configure(options: ServerOptions) -> None:
    global _options
    _options = options
    reset_store()


def options() -> ServerOptions:
    return _options


def shared_store() -> ZoneStore:
    """This process's read-only store handle (opened on first use)."""
    global _store, _store_pid
    store = _store
    if store is not None and _store_pid == os.getpid():
        return store
    with _lock:
        if _store is None or _store_pid != os.getpid():
            _store = stores.open(_options.resolved_store_url, read_only=True)
            _store_pid = os.getpid()
        return _store


def reset_store() -> None:
    """Drop the handle so the next use reopens the store (after a failure or a fork).

    Not closed here: sessions still rendering with it finish; it closes when collected.
    """
    global _store, _store_pid
    with _lock:
        _store, _store_pid = None, None


def _after_fork_in_child() -> None:
    """The parent's handle (its sockets, file locks) is the parent's: a child forgets it."""
    global _store, _store_pid, _lock
    _store, _store_pid, _lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "unavailable", "checks": self.checks}


def _timed(check) -> dict[str, Any]:
    """``ok`` and ``seconds`` (or ``error``), plus whatever the check reports (the store's role)."""
    started = time.perf_counter()
    try:
        reported = check() or {}
    except Exception as exc:  # the reason goes to the probe's JSON, redacted
        return {"ok": False, "error": redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}")[:300],
                "seconds": round(time.perf_counter() - started, 4)}
    return {"ok": True, **reported, "seconds": round(time.perf_counter() - started, 4)}


def _check_store() -> dict[str, str]:
    """Open the store afresh and ask it something: can a worker starting now serve, and as what?"""
    with stores.open(_options.resolved_store_url, read_only=True) as probe:
        probe.ping()
        return {"role": probe.role()}  # primary, replica (serves reads only) or snapshot


_redis_clients: dict[tuple[int, str], Any] = {}


def _check_redis(url: str) -> None:
    import redis

    key = (os.getpid(), url)
    client = _redis_clients.get(key)
    if client is None:
        timeout = _options.readiness_timeout
        client = _redis_clients[key] = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    client.ping()


def readiness() -> Readiness:
    """Check the store (and Redis when configured); blocking, run it off the event loop."""
    checks = {"store": _timed(_check_store)}
    if not checks["store"]["ok"]:
        reset_store()  # reopen on next use: the file may come back, a database may restart
    redis_url = _options.redis_url or settings().redis_url
    if redis_url:
        checks["redis"] = _timed(lambda: _check_redis(redis_url))
    return Readiness(all(c["ok"] for c in checks.values()), checks)
