"""Per-process server state: which store, the shared read-only handle, readiness.

Sessions never open their own store: one read-only handle per worker process,
opened on first use and reopened after a fork (database handles do not survive
``fork``) or after readiness found the store gone.

Nothing here that waits on the store may run on the event loop: readiness runs on
its own small thread pool (never queued behind statistics or sessions), and a new
dashboard session asks the store from a thread first (:func:`prepare_session`) so
the page is built from what is already in memory, or shows its notice at once.
Visitors and probes get generic words; the details (host, port, database) go to the log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import stores
from ..breaker import ThrottledWarning
from ..config import DEFAULT_DOWNLOAD_LIMIT, redact, settings
from ..errors import StoreNotFound, StoreUnavailable
from ..stores.base import ZoneStore

log = logging.getLogger("forestguard.server")
#: One warning a minute per kind of failed check, however often the probes come.
_warn_store = ThrottledWarning(log, interval=60.0)
_warn_redis = ThrottledWarning(log, interval=60.0)

#: Who may read /metrics without signing in when a login is on: the task itself (an agent sidecar).
METRICS_FROM: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass
class ServerOptions:
    """What ``forestguard serve`` decided; the dashboard and routes read it from here."""

    store_url: str | None = None
    redis_url: str | None = None
    download_limit: int = DEFAULT_DOWNLOAD_LIMIT
    num_procs: int = 1  #: worker processes (``--num-procs``; 0: one per CPU)
    readiness_timeout: float = 2.0
    metrics_from: tuple[str, ...] = METRICS_FROM
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or settings().store_url

    def metrics_allowed(self, address: str | None) -> bool:
        """May a peer at ``address`` read /metrics without signing in?"""
        try:
            peer = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(peer in ipaddress.ip_network(net, strict=False) for net in self.metrics_from)


_options = ServerOptions()
_store: ZoneStore | None = None
_store_pid: int | None = None
_lock = threading.Lock()


def configure(options: ServerOptions) -> None:
    """This process serves ``options``; the dashboard's sessions read the shared store and obey the options."""
    global _options
    _options = options
    reset_store()
    _host_dashboard(options)


def _host_dashboard(options: ServerOptions) -> None:
    """Tell the dashboard what its server gives it (it never imports the server: the server imports it)."""
    from ..dashboard.host import Host, install
    from . import metrics

    install(Host(store=shared_store, download_limit=options.download_limit, sessions_rebuilt=options.num_procs != 1,
                 timer=metrics.render_timer, session_problem=session_problem, store_lost=lose_store))


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
    """The parent's handle (its sockets, file locks) and threads are the parent's: a child forgets them."""
    global _store, _store_pid, _lock, _probes
    _store, _store_pid, _lock, _probes = None, None, threading.Lock(), None


os.register_at_fork(after_in_child=_after_fork_in_child)


_probes: ThreadPoolExecutor | None = None


def probe_executor() -> ThreadPoolExecutor:
    """Threads for readiness only: a probe never waits behind statistics or sessions."""
    global _probes
    with _lock:
        if _probes is None:
            _probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="forestguard-readiness")
        return _probes


#: After a failed look at the store, how long it counts as down without being asked again.
KNOWN_DOWN_SECONDS = 2.0
_store_failed_at: float | None = None


def note_store(ok: bool) -> None:
    """Remember the outcome of the last real look at the store (readiness, a session's check)."""
    global _store_failed_at
    _store_failed_at = None if ok else time.monotonic()


def store_known_down() -> bool:
    """Did a look at the store fail in the last :data:`KNOWN_DOWN_SECONDS`? Never blocks."""
    failed = _store_failed_at
    return failed is not None and time.monotonic() - failed < KNOWN_DOWN_SECONDS


#: What a visitor or a probe is told about a store that cannot be read (the details go to the log).
STORE_PROBLEMS = {
    StoreNotFound: "the zone store does not exist (yet)",
    StoreUnavailable: "the zone store is unreachable",
}
GENERIC_PROBLEM = "the zone store cannot be read"
REDIS_PROBLEM = "the Redis cache is unreachable (answers are slower, not wrong)"


def public_reason(exc: BaseException) -> str:
    """Words for outsiders: what kind of failure, never where (no host, port, user, database or path)."""
    for kind, words in STORE_PROBLEMS.items():
        if isinstance(exc, kind):
            return words
    return GENERIC_PROBLEM


def detail(exc: BaseException) -> str:
    """The whole reason, redacted, on one line: for the log."""
    return redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}")[:500]


@dataclass
class Readiness:
    """The store decides readiness; an optional dependency that is down only degrades it."""

    ready: bool
    checks: dict[str, dict[str, Any]]

    @property
    def degraded(self) -> list[str]:
        return [name for name, check in self.checks.items() if name != "store" and not check["ok"]]

    def to_dict(self) -> dict[str, Any]:
        status = "unavailable" if not self.ready else "degraded" if self.degraded else "ready"
        body: dict[str, Any] = {"status": status, "checks": self.checks}
        if self.ready and self.degraded:
            body["degraded"] = self.degraded
        return body


def _timed(check: Callable[[], dict[str, Any] | None], reason: Callable[[BaseException], str], warn: ThrottledWarning) -> dict[str, Any]:
    """``ok`` and ``seconds`` (or a generic ``error``: details go to the log), plus whatever the check reports (the store's role)."""
    started = time.perf_counter()
    try:
        reported = check() or {}
    except Exception as exc:
        warn(f"readiness: {reason(exc)}: {detail(exc)}")
        return {"ok": False, "error": reason(exc), "seconds": round(time.perf_counter() - started, 4)}
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
    """Check the store (and Redis when configured); blocking, run it on :func:`probe_executor`.

    Not ready only when the store cannot be read: Redis is a cache, and without it every
    answer is still served (slower), so a Redis outage is "degraded", still 200.
    """
    checks = {"store": _timed(_check_store, public_reason, _warn_store)}
    note_store(checks["store"]["ok"])
    if not checks["store"]["ok"]:
        reset_store()  # reopen on next use: the file may come back, a database may restart
    redis_url = _options.redis_url or settings().redis_url
    if redis_url:
        checks["redis"] = _timed(lambda: _check_redis(redis_url), lambda _: REDIS_PROBLEM, _warn_redis)
    return Readiness(checks["store"]["ok"], checks)


#: Per dashboard document: why its store could not be read when the session began (None: it could).
_session_problems: "weakref.WeakKeyDictionary[Any, str | None]" = weakref.WeakKeyDictionary()


def prepare_session() -> str | None:
    """Blocking, on a thread before a session is built: can this process's store be read now?

    Opens the shared handle and the shared zone layer (both kept for the next
    sessions), so building the page on the event loop finds them in memory.
    Returns None when it can, else the words a visitor may see (details are logged).
    """
    from ..render import zone_layer

    try:
        zone_layer(shared_store())
    except Exception as exc:  # any failure to read the store: the visitor gets the notice, the log the reason
        note_store(False)
        reset_store()
        _warn_store(f"dashboard session without its store: {detail(exc)}")
        return public_reason(exc)
    note_store(True)
    return None


def lose_store(exc: BaseException) -> None:
    """A session found the store unreadable while it was built: reopen it next time, say why in the log."""
    reset_store()
    _warn_store(f"dashboard session without its store: {detail(exc)}")


def note_session(doc: Any, problem: str | None) -> None:
    _session_problems[doc] = problem


def session_problem(doc: Any) -> str | None:
    """What :func:`prepare_session` found for this document's session (None: nothing, or not asked)."""
    return _session_problems.get(doc) if doc is not None else None
