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
import struct
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray

    from ..stats import Statistics

_FORMAT = b"1"
_RAW, _ZLIB = b"-", b"z"
#: Payloads above this size are compressed (smaller ones do not shrink enough to pay).
COMPRESS_ABOVE = 4096
_LEN32 = struct.Struct(">I")
_LEN64 = struct.Struct(">Q")


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
        # Label coordinates often come as object arrays of str: store them as
        # unicode. Anything else would need pickle, which the cache never uses.
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


def _frames(arrays: list[np.ndarray]) -> bytes:
    return b"".join(_LEN64.pack(len(blob)) + blob for blob in map(_npy, arrays))


def _read_frames(body: bytes, offset: int) -> list[np.ndarray]:
    arrays = []
    while offset < len(body):
        if offset + _LEN64.size > len(body):
            raise CorruptValue("array frame is truncated")
        (size,) = _LEN64.unpack_from(body, offset)
        offset += _LEN64.size
        if offset + size > len(body):
            raise CorruptValue("array frame is truncated")
        arrays.append(_from_npy(body[offset : offset + size]))
        offset += size
    return arrays


def encode_ndarray(array: np.ndarray) -> bytes:
    return _pack(b"A", _npy(np.asarray(array)))


def decode_ndarray(data: bytes) -> np.ndarray:
    return _from_npy(_unpack(b"A", data))


def _attr_to_json(value: Any) -> Any:
    """Attributes as JSON, tuples tagged so they come back as tuples (datashader's x_range)."""
    if isinstance(value, tuple):
        return {"__tuple__": [_attr_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_attr_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _attr_to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot cache attribute of type {type(value).__name__}")


def _attr_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_attr_from_json(v) for v in value["__tuple__"])
        return {k: _attr_from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_attr_from_json(v) for v in value]
    return value


def encode_dataarray(array: xarray.DataArray) -> bytes:
    """An ``xarray.DataArray`` with its dims, coordinates, name and attributes."""
    names = list(array.coords)
    meta = _dumps(
        {
            "name": array.name,
            "dims": list(array.dims),
            "attrs": _attr_to_json(dict(array.attrs)),
            "coords": [[str(n), list(array.coords[n].dims)] for n in names],
        }
    )
    arrays = [array.values, *(array.coords[n].values for n in names)]
    return _pack(b"X", _LEN32.pack(len(meta)) + meta + _frames(arrays))


def decode_dataarray(data: bytes) -> xarray.DataArray:
    import xarray

    body = _unpack(b"X", data)
    if len(body) < _LEN32.size:
        raise CorruptValue("data array header is truncated")
    (size,) = _LEN32.unpack_from(body, 0)
    meta = _loads(body[_LEN32.size : _LEN32.size + size])
    arrays = _read_frames(body, _LEN32.size + size)
    try:
        coords = {name: (tuple(dims), values) for (name, dims), values in zip(meta["coords"], arrays[1:], strict=True)}
        return xarray.DataArray(
            arrays[0], dims=tuple(meta["dims"]), coords=coords, name=meta["name"], attrs=_attr_from_json(meta["attrs"])
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CorruptValue(f"not a data array: {exc!r}") from None


def encode_array(value: np.ndarray | xarray.DataArray) -> bytes:
    """Dispatch by type: a DataArray keeps its coordinates, anything else is a plain array."""
    if hasattr(value, "dims") and hasattr(value, "coords"):
        return encode_dataarray(value)  # type: ignore[arg-type]
    return encode_ndarray(value)  # type: ignore[arg-type]


def decode_array(data: bytes) -> np.ndarray | xarray.DataArray:
    if bytes(data[2:3]) == b"X":
        return decode_dataarray(data)
    return decode_ndarray(data)
