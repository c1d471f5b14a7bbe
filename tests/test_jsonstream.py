"""The windowed JSON reader: what ``json.loads`` gives, whatever the window cuts, in bounded memory."""

from __future__ import annotations

import io
import json

import pytest

from forestguard.jsonstream import JsonError, JsonWindow, NotUtf8

DECODER = json.JSONDecoder(parse_constant=str)
# Values as written in the file, chosen for where a window can cut them: numbers (the "1" of "1.5e3"),
# escapes, a surrogate pair, literals, NaN (not JSON: kept as text by parse_constant), nesting.
ELEMENTS = ["1234567", "-1e-09", "3.25e10", '"a\\u00e9\\ud83c\\udf33\\n\\""', '"é🌳"', "true", "false", "null", "NaN",
            "-1e400", '{"k": [1, {"x": "y"}], "": []}', "[]"]


def _document() -> str:
    return '\ufeff{"type" : "x",\n  "items": [ ' + ",\n ".join(ELEMENTS) + ' ] ,"after": {"n": 12}}  \n'


def _walk(text: bytes, chunk: int) -> tuple[dict, int]:
    window = JsonWindow(io.BytesIO(text), DECODER, chunk_bytes=chunk)
    out: dict = {}
    for key in window.members():
        if key == "items":
            out[key] = []
            for _ in window.elements():
                out[key].append(window.value())
        else:
            out[key] = window.value()
    window.end()
    return out, window.largest


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_every_cut_gives_what_json_loads_gives(chunk: int) -> None:
    text = _document().encode("utf-8")
    expected = json.loads(text.decode("utf-8-sig"), parse_constant=str)
    assert _walk(text, chunk)[0] == expected


def test_the_window_stays_small_on_a_long_array() -> None:
    """A 4 MB array read with 64 KB chunks never holds much more than a chunk and an element."""
    element = json.dumps({"type": "Feature", "properties": {"n": 1, "text": "x" * 200}, "geometry": None})
    text = ('{"items": [' + ",".join([element] * 16_000) + "]}").encode()
    assert len(text) > 4_000_000
    result, largest = _walk(text, 64 << 10)
    assert len(result["items"]) == 16_000
    assert largest < 3 * (64 << 10)


@pytest.mark.parametrize(
    "text",
    [
        '{"items": [1, 2,, 3]}',
        '{"items": [1, 2 3]}',
        '{"items": [1, 2]',
        '{"items": [{"a": 1}, {"a": }]}',
        '{"a": 1,\n "b" 2}',
        '{"a": 1,\n\n  "b": [tru]}',
        '{"a": "unterminated\n}',
        '{"a": 1} x',
        '{"items": [1, 2, 3',
        '{"a": [1, "b\\x"]}',
        '{"a": 1,}',
        '{1: 2}',
        '',
    ],
)
@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_broken_json_is_reported_where_json_reports_it(text: str, chunk: int) -> None:
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(text)
    with pytest.raises(JsonError) as streamed:
        _walk(text.encode(), chunk)
    assert (streamed.value.msg, streamed.value.lineno, streamed.value.colno) == (whole.value.msg, whole.value.lineno, whole.value.colno)


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_bytes_that_are_not_utf8_are_located_in_the_file(chunk: int) -> None:
    with pytest.raises(NotUtf8) as bad:
        _walk(b'\xef\xbb\xbf{"a": "Cear\xe1"}', chunk)
    assert (bad.value.offset, bad.value.truncated) == (14, False)  # the BOM counts: these are bytes of the file
    with pytest.raises(NotUtf8) as cut:
        _walk('{"a": "é'.encode()[:-1], chunk)
    assert (cut.value.offset, cut.value.truncated) == (7, True)
