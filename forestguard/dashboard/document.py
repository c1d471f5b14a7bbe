"""How a session's Bokeh document is changed: in batches that reach the browser in order, walking the model graph only when it changed.

**One channel to the browser.** A Bokeh server session sends a change to the page by one of
two routes. A callback that holds the document lock queues its changes and the session
writes them, in order, when the callback ends (each write waits for the websocket's write
lock). Panel's ``unlocked()`` — which Panel uses for its own widgets and panes whenever it
runs on the event loop, and HoloViews for every plot refresh — writes the message to the
socket itself at once, or, while the socket is busy with another message, defers it to a
task that polls every 10 ms. The two routes are not ordered relative to each other: a
message deferred by the second can be written after a later message of the first and undo
it in the browser. That was the dashboard's "map that never follows a filter change": the
image HoloViews drew for the page's first layout was deferred behind the first document
still being written, the user's new filters sent their image through the session, and the
stale image arrived last (see :mod:`forestguard.dashboard.viewer`).

:func:`batched` holds the document (Bokeh's own ``hold``) for a block of updates: Panel's
``unlocked()`` then leaves the events where they are, and releasing the hold hands them all,
combined, to the session, inside the locked callback — every change of the block, Panel's
and ours, goes out through the first route, in order.

**Model-graph walks.** Bokeh recomputes a document's set of models (a walk over every
property of every model, ~40–70 ms for the dashboard's page) whenever a
``doc.models.freeze()`` block ends, whether or not a model was added or removed inside it.
Panel and HoloViews wrap updates in such blocks (holoviz/holoviews#6315); Panel skips the
freeze for updates that carry no model references (holoviz/panel#5864). :func:`graph_frozen`
does the same for a block of updates: inner freezes do not recompute, and the one at the end
runs only if a reference changed (Bokeh's ``invalidate``) or a root was added or removed.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def graph_frozen(doc: Any) -> Iterator[None]:
    """Updates to ``doc`` with at most one model-graph recomputation, and none if the graph is unchanged."""
    models = getattr(doc, "models", None)
    if models is None or not hasattr(models, "_push_freeze"):  # not a Bokeh document (or an unknown Bokeh)
        yield
        return
    changed = False
    invalidate = models.invalidate

    def note_invalidation() -> None:
        nonlocal changed
        changed = True
        invalidate()  # frozen: Bokeh defers it to the end of the outermost freeze

    roots = list(doc.roots)
    models._push_freeze()
    models.invalidate = note_invalidation  # this manager only, not the class
    try:
        yield
    finally:
        del models.invalidate
        if models._freeze_count > 1:  # inside an outer freeze: that one recomputes as Bokeh does
            models._pop_freeze()
        else:
            models._freeze_count -= 1
            if changed or list(doc.roots) != roots:
                models.recompute()


@contextmanager
def batched(doc: Any) -> Iterator[None]:
    """A block of updates to ``doc`` sent as one ordered batch through the session (see the module's docstring).

    Run it on the event loop, in a callback that holds the document lock (a session's next-tick,
    timeout or event callback). Nested blocks join the outer one.
    """
    if doc is None or doc.callbacks.hold_value is not None:  # no document, or an outer hold releases everything
        yield
        return
    with graph_frozen(doc):
        doc.hold("combine")
        try:
            yield
        finally:
            doc.unhold()  # the events go to the session, which writes them when the callback ends
