"""graph_frozen: data-only updates skip Bokeh's model-graph walk; batched: a block of updates reaches the session at once, in order."""

from __future__ import annotations

import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Div
from bokeh.plotting import figure

from forestguard.dashboard.document import batched, graph_frozen


@pytest.fixture
def doc():
    document = Document()
    plot = figure()
    plot.scatter("x", "y", source=ColumnDataSource({"x": [1], "y": [1]}))
    document.add_root(plot)
    return document


def count_recomputes(doc) -> list[int]:
    calls: list[int] = []
    recompute = doc.models.recompute

    def counting() -> None:
        calls.append(1)
        recompute()

    doc.models.recompute = counting
    return calls


def test_data_updates_do_not_walk_the_graph(doc):
    calls = count_recomputes(doc)
    source = next(m for m in doc.models if isinstance(m, ColumnDataSource))
    with graph_frozen(doc):
        source.data = {"x": [1, 2], "y": [3, 4]}
        with doc.models.freeze():  # what HoloViews wraps every plot update in
            source.data = {"x": [5], "y": [6]}
    assert calls == []
    assert doc.models._freeze_count == 0
    with doc.models.freeze():  # Bokeh's own freeze is untouched: it still recomputes
        source.data = {"x": [7], "y": [8]}
    assert calls == [1]


def test_added_models_and_roots_are_found(doc):
    calls = count_recomputes(doc)
    plot = next(m for m in doc.roots)
    with graph_frozen(doc):
        with doc.models.freeze():
            line = plot.line([0, 1], [0, 1])  # a new renderer and data source, referenced by the plot
    assert calls == [1]
    assert doc.get_model_by_id(line.id) is line and doc.get_model_by_id(line.data_source.id) is line.data_source
    div = Div(text="new root")
    with graph_frozen(doc):
        doc.add_root(div)
    assert doc.get_model_by_id(div.id) is div
    assert doc.models._freeze_count == 0


def test_an_error_inside_leaves_the_document_unfrozen(doc):
    with pytest.raises(RuntimeError):
        with graph_frozen(doc):
            raise RuntimeError("boom")
    assert doc.models._freeze_count == 0
    assert "invalidate" not in vars(doc.models)


def test_a_batch_reaches_the_session_at_its_end_in_order(doc):
    """What a session sends (its change callbacks) sees the block's changes only when the block ends, in order."""
    seen: list[tuple[str, object]] = []
    doc.on_change(lambda event: seen.append((getattr(event, "attr", None), getattr(event, "new", None))))
    source = next(m for m in doc.models if isinstance(m, ColumnDataSource))
    div = Div(text="before")
    doc.add_root(div)
    seen.clear()
    with batched(doc):
        source.data = {"x": [1], "y": [2]}
        div.text = "first"
        with batched(doc):  # a nested block joins the outer one
            div.text = "second"
        assert seen == [] and doc.callbacks.hold_value == "combine"
    assert [attr for attr, _ in seen] == ["data", "text"] and seen[-1][1] == "second"  # the text's two changes combined
    assert doc.callbacks.hold_value is None and doc.models._freeze_count == 0


def test_a_batch_that_fails_still_sends_what_it_changed(doc):
    seen: list[object] = []
    doc.on_change(seen.append)
    source = next(m for m in doc.models if isinstance(m, ColumnDataSource))
    with pytest.raises(RuntimeError):
        with batched(doc):
            source.data = {"x": [9], "y": [9]}
            raise RuntimeError("boom")
    assert len(seen) == 1 and doc.callbacks.hold_value is None and doc.models._freeze_count == 0
