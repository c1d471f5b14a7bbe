"""Bokeh document updates that walk the model graph only when the graph changed.

Bokeh recomputes a document's set of models (a walk over every property of every model,
~40–70 ms for the dashboard's page) whenever a ``doc.models.freeze()`` block ends, whether
or not a model was added or removed inside it. HoloViews wraps every plot update in such a
block (holoviz/holoviews#6315), so each map redraw paid for a full walk although it only
replaces an image's data. Panel skips the freeze for updates that carry no model references
(holoviz/panel#5864); :func:`graph_frozen` does the same for a block of updates: inner
freezes do not recompute, and the one at the end runs only if a reference changed (Bokeh's
``invalidate``) or a root was added or removed.
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
