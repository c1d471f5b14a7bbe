"""A JSON file read value by value through a bounded window, decoded by the standard ``json`` module.

Big GeoJSON files cannot be parsed whole (a 1 GB FeatureCollection is many GB of Python
objects), yet each record must be read by exactly the rules of the whole-file reader:
the same decoder, hooks and all (duplicate keys seen, ``NaN`` kept as text, numbers as
``json`` makes them). So this module walks the structure (objects, arrays) itself and hands
each value it is asked for to :meth:`json.JSONDecoder.raw_decode` on a window of the text;
a value cut by the window's end is decoded again once more text is in (the window doubles,
so a big value costs at most twice its parse). Streaming parsers such as ijson differ on
exactly the records the strict reader exists for: they refuse ``NaN`` for the whole file,
turn lone surrogates into ``?`` and give numbers as ``Decimal``.

Errors name the line and column as ``json`` does (:class:`JsonError`), and bytes that are
not UTF-8 their offset in the file (:class:`NotUtf8`); a byte-order mark is allowed.
"""

from __future__ import annotations

import codecs
import json
from typing import BinaryIO, Iterator

#: Bytes read at a time.
CHUNK_BYTES = 1 << 20
#: A decoding error this close to the window's end may be the window's doing: read on and try again.
_NEAR_END = 32
_WHITESPACE = " \t\n\r"


class JsonError(ValueError):
    """Not JSON: ``msg`` at ``lineno``/``colno`` (1-based), as :class:`json.JSONDecodeError` says it."""

    def __init__(self, msg: str, lineno: int, colno: int) -> None:
        super().__init__(f"{msg}: line {lineno} column {colno}")
        self.msg, self.lineno, self.colno = msg, lineno, colno


class NotUtf8(ValueError):
    """A byte sequence that is not UTF-8, at ``offset`` bytes into the file (``truncated``: the file ends inside a character)."""

    def __init__(self, offset: int, truncated: bool) -> None:
        super().__init__(f"not UTF-8 at byte {offset}")
        self.offset, self.truncated = offset, truncated


class JsonWindow:
    """The text of ``source`` seen through a window that moves forward as values are taken."""

    def __init__(self, source: BinaryIO, decoder: json.JSONDecoder, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._source = source
        self._decoder = decoder
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # not utf-8-sig: its first error offset leaves the BOM out
        self._started = False  # whether text has come yet (a byte-order mark may open it)
        self._chunk = chunk_bytes
        self._text = ""
        self._pos = 0  # in _text
        self._eof = False
        self._bytes = 0  # bytes handed to the UTF-8 decoder
        self._dropped = 0  # characters before _text
        self._lines = 0  # newlines before _text
        self._last_newline = -1  # character offset of the last newline before _text
        self.largest = 0  #: the widest the window has been, in characters (memory is bounded by it)

    # -- reading ---------------------------------------------------------------------------------
    def _read(self, at_least: int = 0) -> None:
        """Drop what is consumed and add at least ``at_least`` more characters' worth of bytes (one chunk at least)."""
        if self._pos:
            gone = self._text[: self._pos]
            newlines = gone.count("\n")
            if newlines:
                self._lines += newlines
                self._last_newline = self._dropped + gone.rindex("\n")
            self._dropped += self._pos
            self._text, self._pos = self._text[self._pos :], 0
        data = self._source.read(max(self._chunk, at_least))
        pending = len(self._utf8.getstate()[0])
        try:
            text = self._utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise NotUtf8(self._bytes - pending + exc.start, truncated=not data) from None
        self._bytes += len(data)
        self._eof = not data
        if text and not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        self._text += text
        self.largest = max(self.largest, len(self._text))

    def peek(self) -> str | None:
        """The next character that is not whitespace (not taken), or None at the end of the text."""
        while True:
            while self._pos < len(self._text) and self._text[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._text):
                return self._text[self._pos]
            if self._eof:
                return None
            self._read()

    def take(self, char: str, message: str) -> None:
        """Take ``char`` (after whitespace), or fail with ``message`` (``json``'s wording) where it is not."""
        if self.peek() != char:
            raise self.error(message)
        self._pos += 1

    def value(self) -> object:
        """Decode the next value with the decoder, reading on while the window's end cuts it."""
        if self.peek() is None:
            raise self.error("Expecting value")
        while True:
            try:
                value, end = self._decoder.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self._text) - _NEAR_END
                if self._eof or not cut:
                    raise self.error(exc.msg, exc.pos) from None
                self._read(len(self._text) - self._pos)
                continue
            if end > len(self._text) - _NEAR_END and not self._eof:  # a number may go on past the window ("1" of "1.5e3")
                self._read(len(self._text) - self._pos)
                continue
            self._pos = end
            return value

    # -- structure -------------------------------------------------------------------------------
    def members(self) -> Iterator[str]:
        """The keys of the object that starts here, in order; take (or skip) each member's value between keys."""
        self.take("{", "Expecting value")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.error("Expecting property name enclosed in double quotes")
            key = self.value()
            self.take(":", "Expecting ':' delimiter")
            yield key  # type: ignore[misc] - a JSON string decodes to str
            following = self.peek()
            if following == "}":
                self._pos += 1
                return
            self.take(",", "Expecting ',' delimiter")

    def elements(self) -> Iterator[None]:
        """Once per element of the array that starts here; take each element's value in between."""
        self.take("[", "Expecting value")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield None
            following = self.peek()
            if following == "]":
                self._pos += 1
                return
            self.take(",", "Expecting ',' delimiter")

    def end(self) -> None:
        """Nothing but whitespace may follow the document."""
        if self.peek() is not None:
            raise self.error("Extra data")

    def error(self, message: str, pos: int | None = None) -> JsonError:
        """``message`` at ``pos`` in the window (default: the current place), with the file's line and column."""
        pos = self._pos if pos is None else pos
        newlines = self._text.count("\n", 0, pos)
        column = pos - self._text.rindex("\n", 0, pos) if newlines else self._dropped + pos - self._last_newline
        return JsonError(message, self._lines + newlines + 1, column)
