"""Process-wide memo of what sessions with the same view share (selections, images, tables).

Sessions are cheap only if they hold nothing big of their own: the zones a
filter selects, a rendered view or the top-regions table are computed once
per process for everyone asking for the same thing, and the least recently
used ones are let go.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from functools import partial
from typing import Any, Callable, Hashable, TypeVar

log = logging.getLogger(__name__)

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


class DataVersionWatch:
    """One look at the store's data version per process and period, for every open dashboard.

    A periodic callback per session cost 100 sessions 100 store queries per
    period, and each Panel periodic callback flips the process-wide busy state,
    which every session's page was told about. Here one Tornado timer asks each
    view ``data_changed(latest_layer)`` (is there a newer shared layer than
    yours?), with the store's latest layer looked up once per store and poll,
    and, only when there is, hands the view's ``refresh()`` to its own
    document's next tick. Views and documents are held weakly: a closed session
    leaves nothing behind.
    """

    def __init__(self, period_ms: int) -> None:
        self.period_ms = period_ms
        self._views: weakref.WeakKeyDictionary[Any, weakref.ref] = weakref.WeakKeyDictionary()
        self._timer: Any = None
        self._lock = threading.Lock()
        self._polling = threading.Lock()

    def add(self, view: Any, doc: Any) -> None:
        """Watch for ``view`` (with ``data_changed(latest_layer)`` and ``refresh()``) until its session ends."""
        from tornado.ioloop import IOLoop, PeriodicCallback

        with self._lock:
            self._views[view] = weakref.ref(doc)
            if self._timer is None:
                self._timer = PeriodicCallback(self._poll_off_loop, self.period_ms)
                IOLoop.current().add_callback(self._timer.start)
        view_ref = weakref.ref(view)
        doc.on_session_destroyed(lambda _context: self.discard(view_ref()))

    def discard(self, view: Any) -> None:
        with self._lock:
            if view is not None:
                self._views.pop(view, None)

    def __len__(self) -> int:
        return len(self._views)

    def _poll_off_loop(self) -> None:
        """The timer's tick: the store is asked from a thread (a database that is down must not hold the loop)."""
        from tornado.ioloop import IOLoop

        if not self._polling.acquire(blocking=False):
            return  # the last poll still waits for the store: one at a time

        def run() -> None:
            try:
                self.poll()
            except Exception as exc:  # the store is down: the views keep what they show, the next tick asks again
                log.info("data version poll skipped: %s", exc)
            finally:
                self._polling.release()

        IOLoop.current().run_in_executor(None, run)

    def poll(self) -> int:
        """Schedule a refresh in every session whose data changed; returns how many were scheduled.

        Blocking (it may read the store); ``add_next_tick_callback`` is the documents' thread-safe door.
        """
        from ..render import zone_layer

        with self._lock:
            views = list(self._views.items())
        layers: dict[int, Any] = {}

        def latest_layer(store: Any) -> Any:  # one data-version query per store and poll, not one per session
            if id(store) not in layers:
                layers[id(store)] = zone_layer(store)
            return layers[id(store)]

        scheduled = 0
        for view, doc_ref in views:
            doc = doc_ref()
            if doc is not None and view.data_changed(latest_layer):
                doc.add_next_tick_callback(partial(_refresh_in, doc, view.refresh))
                scheduled += 1
        return scheduled


def _refresh_in(doc: Any, refresh: Callable[[], None]) -> None:
    from panel.io.state import set_curdoc

    with set_curdoc(doc):
        refresh()


#: How often the open dashboards look for new data (an ingest), in milliseconds.
DATA_VERSION_POLL_MS = 30_000
DATA_VERSIONS = DataVersionWatch(DATA_VERSION_POLL_MS)
