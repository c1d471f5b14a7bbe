"""How values are stored in the cache: small tagged envelopes, compressed when worth it.

Every stored value starts with ``FG`` + a type tag + a format digit + a
compression flag, so a value of the wrong type, an older format or a truncated
write fails to decode (raising :class:`CorruptValue`) and the cache treats it as
a miss instead of returning something wrong. Arrays go through ``np.save`` with
``allow_pickle=False``: decoding never runs code from the cache.

Compression is zlib level 1: on the miss path it costs about a millisecond per
megabyte, needs no extra wheel, and the aggregates and statistics rows it sees
(repeated keys, runs of zero counts) shrink several-fold, which is what matters
in a memory-bounded Redis.
"""

from __future__ import annotations

import io
import json
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..stats import Statistics

_FORMAT = b"1"
_RAW, _ZLIB = b"-", b"z"
#: Payloads above this size are compressed (smaller ones do not shrink enough to pay).
COMPRESS_ABOVE = 4096


class CorruptValue(ValueError):
    """A stored value that cannot be decoded into what the caller expects."""


def _pack(tag: bytes, payload: bytes) -> bytes:
    if len(payload) > COMPRESS_ABOVE:
        return b"FG" + tag + _FORMAT + _ZLIB + zlib.compress(payload, 1)
    return b"FG" + tag + _FORMAT + _RAW + payload


def _unpack(tag: bytes, data: bytes) -> bytes:
    header = b"FG" + tag + _FORMAT
    if not isinstance(data, (bytes, bytearray, memoryview)) or bytes(data[:4]) != header:
        raise CorruptValue(f"not a {tag.decode()!r} value of format {_FORMAT.decode()}")
    flag, body = bytes(data[4:5]), data[5:]
    if flag == _RAW:
        return bytes(body)
    if flag == _ZLIB:
        try:
            return zlib.decompress(body)
        except zlib.error as exc:
            raise CorruptValue(f"compressed value is damaged: {exc}") from None
    raise CorruptValue(f"unknown compression flag {flag!r}")


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptValue(f"not JSON: {exc}") from None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


# -- statistics, JSON documents, text ---------------------------------------------


def encode_statistics(stats: Statistics) -> bytes:
    return _pack(b"S", _dumps(stats.to_dict()))


def decode_statistics(data: bytes) -> Statistics:
    from ..stats import Statistics

    document = _loads(_unpack(b"S", data))
    try:
        return Statistics.from_dict(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptValue(f"not statistics: {exc!r}") from None


def encode_json(value: Any) -> bytes:
    return _pack(b"J", _dumps(value))


def decode_json(data: bytes) -> Any:
    return _loads(_unpack(b"J", data))


def encode_text(text: str) -> bytes:
    return _pack(b"T", text.encode("utf-8"))


def decode_text(data: bytes) -> str:
    try:
        return _unpack(b"T", data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptValue(f"not UTF-8 text: {exc}") from None


# -- arrays -------------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    if array.dtype == object:
        # Text is stored as unicode; anything else would need pickle, which the cache never uses.
        if not all(isinstance(v, str) for v in array.flat):
            raise TypeError("cannot cache an object array of non-strings (it would need pickle)")
        array = np.asarray(array, dtype=str)
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def _from_npy(blob: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(blob), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptValue(f"array is damaged: {exc}") from None


def encode_ndarray(array: np.ndarray) -> bytes:
    return _pack(b"A", _npy(np.asarray(array)))


def decode_ndarray(data: bytes) -> np.ndarray:
    return _from_npy(_unpack(b"A", data))
