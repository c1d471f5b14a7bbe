"""The dashboard's Bokeh application, with the store asked off the event loop before each session.

Bokeh builds a session's document on the event loop. Building the dashboard reads the
store (the shared handle, the zone layer, the numbers); with the database down that
would hold the loop for a connection timeout, and with it every request of the process,
``/healthz`` included. Bokeh awaits each handler's ``on_session_created`` before it builds
the document, so :class:`StoreCheck` runs :func:`runtime.prepare_session` on a thread
there; the page is then built from memory, or shows its notice without touching the store.

Building a page still takes the loop for tens of milliseconds. When many sessions start at
once (a reconnect wave after an outage or a deploy), their builds would all be ready in one
turn of the loop and run back to back, so a probe arriving then waited for all of them
(0.3-0.6 s for 20 pages). :class:`StoreCheck` lets one build through per turn: between two
builds the loop reads its sockets and answers what is waiting.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Callable

from bokeh.application.handlers.handler import Handler

from . import runtime


class StoreCheck(Handler):
    """A handler that changes no document: it only finds out, on a thread, whether the store answers."""

    def __init__(self) -> None:
        super().__init__()
        # One per event loop (a worker forked by --num-procs has its own).
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

    def modify_document(self, doc: Any) -> None:
        pass

    async def on_session_created(self, session_context: Any) -> None:
        loop = asyncio.get_running_loop()
        problem = await loop.run_in_executor(None, runtime.prepare_session)
        runtime.note_session(session_context._document, problem)
        # Bokeh builds the document as soon as this returns, in the same step of the loop; the
        # turn is handed on by a callback of the next step, after this build.
        turn = self._turns.setdefault(loop, asyncio.Semaphore(1))
        await turn.acquire()
        loop.call_soon(turn.release)


def dashboard_application(page: Callable[[], Any], *, title: str, server_id: str) -> Any:
    """Panel's application for ``page`` (what ``get_server`` would make of it) plus :class:`StoreCheck`."""
    from panel.io.application import build_applications

    app = build_applications({"/": page}, title=title, location=True, server_id=server_id)["/"]
    app.add(StoreCheck())
    return app
