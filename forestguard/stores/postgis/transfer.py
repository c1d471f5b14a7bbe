"""Zones in and out of PostgreSQL with COPY, a column at a time instead of a row at a time.

In: validated zones become PostgreSQL's binary COPY format built with numpy/Arrow kernels
(numerics as base-10000 digits, geometry as EWKB with SRID 4326), streamed in blocks so the
server parses one block while the next is built. No per-row Python, no text round trip.

Out: ``COPY (SELECT …) TO STDOUT (FORMAT csv)`` read by Arrow's CSV reader into the same
Arrow schema the DuckDB engine returns (geometry as ISO WKB, decimals as decimal128).
"""

from __future__ import annotations

import binascii
import io
import itertools
import struct
from typing import Iterable, Iterator, Sequence

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely

from ...schema import GEOMETRY_SRID, ZONE_COLUMNS
from ..encoding import zone_wkb

#: https://www.postgresql.org/docs/15/sql-copy.html#id-1.9.3.55.9.4
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
ROWS_PER_BLOCK = 50_000
#: Blocks are also cut by size: Arrow binary arrays hold at most 2 GiB, and a few huge
#: polygons must not make one block that big.
BYTES_PER_BLOCK = 64 << 20

_TEXT = ("country", "region", "classification", "source")
_NUMERIC_2 = ("area_ha", "confidence")  # DECIMAL(p, 2)
_NULL = b"\xff\xff\xff\xff"  # field length -1
_EMPTY = pa.scalar(b"", pa.binary())
_NUMERIC_NBASE = 10_000
_NUMERIC_NEG = 0x4000
_EWKB_SRID_FLAG = 0x20  # high byte of the little-endian type word
_BEYOND_ANY_WKB = 1 << 30


def copy_in_statement(table: str) -> str:
    return f"COPY {table} ({', '.join(ZONE_COLUMNS)}) FROM STDIN (FORMAT binary)"


def binary_copy(batches: Iterable[gpd.GeoDataFrame], rows_per_block: int = ROWS_PER_BLOCK) -> Iterator[bytes | memoryview]:
    """The whole COPY stream for zones arriving in ``batches`` (schema columns as validation leaves them)."""
    yield SIGNATURE
    for zones in batches:
        for start, stop in _blocks(np.asarray(zones.geometry.values), rows_per_block):
            yield _block(zones.iloc[start:stop])
    yield TRAILER


def _blocks(geometries: np.ndarray, rows_per_block: int) -> Iterator[tuple[int, int]]:
    """Row ranges of at most ``rows_per_block`` rows and about :data:`BYTES_PER_BLOCK` bytes."""
    # 16 bytes a 2D vertex, plus the other fields: an estimate, not a bound, so keep a margin.
    ends = np.cumsum(shapely.get_num_coordinates(geometries).astype(np.int64) * 16 + 256)
    start, n = 0, len(geometries)
    while start < n:
        used = ends[start - 1] if start else 0
        by_size = int(np.searchsorted(ends, used + BYTES_PER_BLOCK, side="right"))
        stop = min(start + rows_per_block, max(by_size, start + 1))
        yield start, stop
        start = stop


def _block(zones: gpd.GeoDataFrame) -> memoryview:
    """One block of COPY rows, joined by Arrow in a single pass.

    Each field is a fixed-width piece (a ``(rows, width)`` byte matrix) or a variable one (an
    Arrow binary array); runs of fixed pieces (lengths, numbers, EWKB headers) are merged first,
    so every text and geometry byte is copied once into the rows.
    """
    n = len(zones)
    pieces: list[np.ndarray | pa.Array] = [_bytes(np.full(n, len(ZONE_COLUMNS), dtype=">i2"))]
    for column in ZONE_COLUMNS:
        values = zones[column] if column != "geometry" else zones.geometry
        if column in _TEXT:
            pieces += _varlen(pa.array(values, pa.string(), from_pandas=True).cast(pa.binary()))
        elif column in _NUMERIC_2:
            pieces.append(_numeric_2(values.to_numpy(dtype=float, na_value=np.nan)))
        elif column == "year":
            pieces.append(_bytes(_with_length(values.to_numpy(dtype=np.int64).astype(">i4"))))
        elif column == "verified":
            pieces.append(_bytes(_with_length(values.to_numpy(dtype=bool).astype(np.uint8))))
        elif column == "geometry":
            pieces += _ewkb(zone_wkb(zones))
        else:  # a new schema column must be given an encoding here
            raise TypeError(f"no COPY encoding for column {column!r}")
    rows = pc.binary_join_element_wise(*_merged(pieces, n), _EMPTY, null_handling="replace", null_replacement="")
    return _values(rows)


def _merged(pieces: list[np.ndarray | pa.Array], n: int) -> list[pa.Array]:
    """Adjacent fixed-width pieces as one, then every piece as an Arrow binary array."""
    out: list[pa.Array] = []
    run: list[np.ndarray] = []
    for piece in [*pieces, None]:
        if isinstance(piece, np.ndarray):
            run.append(piece)
            continue
        if run:
            fixed = np.hstack(run) if len(run) > 1 else run[0]  # each piece is a contiguous byte matrix
            width = fixed.shape[1]
            out.append(pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(fixed)]).cast(pa.binary()))
            run = []
        if piece is not None:
            out.append(piece)
    return out


def _values(array: pa.Array | pa.ChunkedArray) -> memoryview:
    """The concatenated values of a binary array, without copying them."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    return memoryview(array.buffers()[2])[offsets[0] : offsets[-1]]


def _bytes(values: np.ndarray) -> np.ndarray:
    """A fixed-width field per row as a (rows, width) byte matrix (big-endian values, as COPY wants)."""
    return np.ascontiguousarray(values).view(np.uint8).reshape(len(values), values.dtype.itemsize)


def _with_length(values: np.ndarray) -> np.ndarray:
    """Fixed-width values, each preceded by its int32 length."""
    record = np.empty(len(values), dtype=[("length", ">i4"), ("value", values.dtype)])
    record["length"] = values.dtype.itemsize
    record["value"] = values
    return record


def _varlen(values: pa.Array) -> list[np.ndarray | pa.Array]:
    """A variable-length field: its int32 length (-1 for NULL), then the bytes (none for NULL)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    lengths = pc.binary_length(values).to_numpy(zero_copy_only=False)
    lengths = np.where(values.is_null().to_numpy(zero_copy_only=False), -1, lengths).astype(">i4")
    return [_bytes(lengths), values]


def _ewkb(wkb: pa.Array) -> list[np.ndarray | pa.Array]:
    """2D EWKB with SRID 4326 as a COPY field, as the column's typmod requires: little-endian WKB
    with its 5-byte header (byte order, type) widened to 9 (type | SRID flag, SRID). Cheaper than
    giving every shapely geometry an SRID first."""
    offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int32)[wkb.offset : wkb.offset + len(wkb) + 1]
    data = np.frombuffer(wkb.buffers()[2], dtype=np.uint8)
    header = np.empty((len(wkb), 13), dtype=np.uint8)
    header[:, :4] = _bytes((np.diff(offsets) + 4).astype(">i4"))  # the field length: 4 more bytes (the SRID)
    header[:, 4:9] = data[offsets[:-1, None] + np.arange(5)]
    header[:, 8] |= _EWKB_SRID_FLAG
    header[:, 9:] = np.frombuffer(struct.pack("<I", GEOMETRY_SRID), dtype=np.uint8)
    return [header, pc.binary_slice(wkb, 5, _BEYOND_ANY_WKB)]


def _numeric_2(values: np.ndarray) -> np.ndarray | pa.Array:
    """NUMERIC with two decimals in PostgreSQL's binary form (NaN is NULL).

    Validation has already rounded to cents, so ``rint(x * 100)`` is the exact decimal;
    the server still applies the column's precision (DECIMAL(10,2) overflows fail the COPY).
    """
    missing = np.isnan(values)
    cents = np.rint(np.where(missing, 0.0, values) * 100).astype(np.int64)
    magnitude = np.abs(cents)
    whole, hundredths = np.divmod(magnitude, 100)
    record = np.empty(len(values), dtype=[("length", ">i4"), ("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"),
                                          ("dscale", ">i2"), ("d0", ">i2"), ("d1", ">i2"), ("d2", ">i2")])
    record["length"] = 14
    record["ndigits"], record["weight"], record["dscale"] = 3, 1, 2  # d0·10⁴ + d1 + d2·10⁻⁴
    record["sign"] = np.where(cents < 0, _NUMERIC_NEG, 0)
    record["d0"], record["d1"] = np.divmod(whole, _NUMERIC_NBASE)
    record["d2"] = hundredths * 100
    if (whole >= _NUMERIC_NBASE**2).any():
        raise ValueError("numeric value too large for a DECIMAL column")
    if not missing.any():
        return _bytes(record)
    fields = pa.FixedSizeBinaryArray.from_buffers(pa.binary(18), len(values), [None, pa.py_buffer(record.tobytes())]).cast(pa.binary())
    return pc.if_else(pa.array(missing), pa.scalar(_NULL, pa.binary()), fields)


# -- out ----------------------------------------------------------------------------

#: The Arrow type of each zone column, as the DuckDB engine returns it.
ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.int32(),
    "country": pa.string(),
    "region": pa.string(),
    "classification": pa.string(),
    "area_ha": pa.decimal128(10, 2),
    "year": pa.int32(),
    "source": pa.string(),
    "confidence": pa.decimal128(3, 2),
    "verified": pa.bool_(),
    "geometry": pa.binary(),
    "suggested": pa.string(),  # the zone's evidence (read through a join: forestguard.stores.evidence.zones_source)
    "geometry_hash": pa.string(),  # what evidence records of the geometry it was computed from
    # Each zone's box (what evidence reads of every zone before the geometry of those near a feature).
    "xmin": pa.float64(), "ymin": pa.float64(), "xmax": pa.float64(), "ymax": pa.float64(),
}
#: A geometry's hash as the PostGIS engine's evidence records it (``{g}``: the geometry column).
GEOMETRY_HASH_SQL = "md5(ST_AsBinary({g}))"
#: How each column is selected for export: geometry as hex ISO WKB (CSV carries text).
SELECT_EXPRESSIONS = {"geometry": "encode(ST_AsBinary(geometry), 'hex') AS geometry",
                      "geometry_hash": GEOMETRY_HASH_SQL.format(g="geometry") + " AS geometry_hash",
                      **{name: f"ST_{name}(geometry) AS {name}" for name in ("xmin", "ymin", "xmax", "ymax")}}
_CSV_BLOCK_BYTES = 8 << 20  # Arrow parses a block while the next one arrives


class _Chunks(io.RawIOBase):
    """A read-only file over an iterable of byte chunks (what COPY TO yields, a row each)."""

    def __init__(self, chunks: Iterable[bytes | memoryview], size: int = 1 << 22) -> None:
        self._chunks = iter(chunks)
        self._pending = bytearray()
        self._size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        want = len(buffer)
        while len(self._pending) < min(want, self._size):
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        n = min(want, len(self._pending))
        buffer[:n] = self._pending[:n]
        del self._pending[:n]
        return n


def read_csv_copy(chunks: Iterable[bytes | memoryview], columns: Sequence[str]) -> pa.Table:
    """Arrow table from a ``COPY … TO STDOUT (FORMAT csv)`` of ``columns``."""
    schema = pa.schema([(c, ARROW_TYPES[c]) for c in columns])
    return pa.Table.from_batches(list(csv_batches(chunks, columns)), schema=schema)


def csv_batches(chunks: Iterable[bytes | memoryview], columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """Arrow record batches (a CSV block each, ~8 MB) from a ``COPY … TO STDOUT (FORMAT csv)`` of ``columns``, as they arrive."""
    schema = pa.schema([(c, ARROW_TYPES[c]) for c in columns])
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:  # no rows: Arrow's reader would call the input malformed
        return
    text_types = {c: (pa.string() if c == "geometry" else ARROW_TYPES[c]) for c in columns}
    reader = pacsv.open_csv(
        io.BufferedReader(_Chunks(itertools.chain([first], chunks)), buffer_size=1 << 22),
        read_options=pacsv.ReadOptions(column_names=list(columns), block_size=_CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=text_types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # PostgreSQL writes NULL unquoted and '' as ""
            true_values=["t"],
            false_values=["f"],
        ),
    )
    for batch in reader:
        yield _unhex_geometry(batch, schema)


def _unhex_geometry(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if "geometry" not in schema.names:
        return batch
    index = schema.get_field_index("geometry")
    columns = list(batch.columns)
    columns[index] = _unhex(columns[index])
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _unhex(text: pa.Array) -> pa.Array:
    """Hex strings to bytes in one pass over the batch (geometry is NOT NULL, so every
    string is there and the batch's characters are one contiguous hex run)."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    chars = memoryview(text.buffers()[2])[offsets[0] : offsets[-1]]
    data = binascii.a2b_hex(chars)
    new_offsets = ((offsets - offsets[0]) // 2).astype(np.int32)
    return pa.Array.from_buffers(pa.binary(), len(text), [None, pa.py_buffer(new_offsets), pa.py_buffer(data)])
