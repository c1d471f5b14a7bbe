"""What the dashboard needs from whoever runs it: its store, its limits, a clock for its metrics.

The dashboard runs under ``forestguard serve`` and in a notebook or a test. It does not
import the server (the server imports it): the server installs a :class:`Host` made of its
per-process store handle, its options and its Prometheus timers (``forestguard.server.app``);
without a server, :func:`host` gives one that opens the configured store once and times
nothing. So the layers point one way: server → dashboard → core.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import DEFAULT_DOWNLOAD_LIMIT
from ..stores.base import ZoneStore

log = logging.getLogger("forestguard.dashboard")

#: The statistics a dashboard view shows: the cards (total, by class) and the yearly bars.
CARD_GROUPINGS: tuple[tuple[str, ...], ...] = ((), ("classification",))
BARS_GROUPING: tuple[str, ...] = ("year", "classification")
#: Every grouping a view asks for (what a server warms for the opening views).
VIEW_GROUPINGS: tuple[tuple[str, ...], ...] = (*CARD_GROUPINGS, BARS_GROUPING)

#: What a visitor reads instead of the dashboard when the store cannot be read: no host, port, user, database or path.
STORE_NOTICE = "The zone store is not available right now. Please try again in a few minutes."


def _no_timer(kind: str) -> AbstractContextManager[None]:
    return nullcontext()


def _no_problem(doc: Any) -> str | None:
    return None


def _log_lost(exc: BaseException) -> None:
    log.warning("dashboard session without its store: %s: %s", type(exc).__name__, exc)


@dataclass(frozen=True)
class Host:
    """The dashboard's view of its server (or of a notebook: the defaults)."""

    store: Callable[[], ZoneStore]  #: the store sessions read (shared, read-only)
    download_limit: int = DEFAULT_DOWNLOAD_LIMIT
    #: Sessions are built twice (several worker processes: the page's process, then the websocket's),
    #: so the parts below the fold are made once the page has loaded.
    sessions_rebuilt: bool = False
    timer: Callable[[str], AbstractContextManager[None]] = _no_timer  #: times a render of a kind
    session_problem: Callable[[Any], str | None] = _no_problem  #: why a document's session began without its store
    store_lost: Callable[[BaseException], None] = field(default=_log_lost)  #: a session found the store unreadable


_host: Host | None = None
_lock = threading.Lock()
_own_stores: dict[str, ZoneStore] = {}


def _configured_store() -> ZoneStore:
    """Without a server: the configured store (``DATABASE_URL`` or the embedded default), opened once per URL, read-only."""
    from .. import stores
    from ..config import settings

    url = settings().store_url
    with _lock:
        if url not in _own_stores:
            _own_stores[url] = stores.open(url, read_only=True)
        return _own_stores[url]


def install(new: Host | None) -> None:
    """The server's host (None: back to the defaults)."""
    global _host
    _host = new


def host() -> Host:
    return _host if _host is not None else Host(store=_configured_store)
