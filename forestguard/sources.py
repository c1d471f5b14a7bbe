"""Reading zone source files and mapping their columns onto the schema.

Real files rarely use our column names; :class:`ColumnMapping` renames them
(``--map country=NAME_FIELD``) and supplies constants (``--set year=2020``).
Every failure to read a file becomes one :class:`InputError` line naming the
file and the reason, never a GDAL traceback.

GeoJSON is parsed here rather than by GDAL, so property values arrive exactly
as written (GDAL turns columns of mixed types into JSON text, cuts strings at a
NUL character and silently picks one of two duplicate keys) and so a broken
record is reported as that record, with its reason, instead of failing the file
or turning into a missing geometry. Problems found while reading a record travel
to :func:`forestguard.validation.validate` in ``frame.attrs[READ_PROBLEMS]``.
"""

from __future__ import annotations

import codecs
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS

from .errors import InputError
from .schema import GEOMETRY_SRID, ZONE_COLUMNS

#: GDAL-read files from this size up are streamed in batches (see :func:`open_zones_file`).
STREAM_MIN_BYTES = 64 << 20
READABLE = {".geojson", ".json", ".gpkg", ".parquet", ".geoparquet", ".shp", ".zip", ".fgb"}
_JSON = {".geojson", ".json"}
_PARQUET = {".parquet", ".geoparquet"}
_SETTABLE = tuple(c for c in ZONE_COLUMNS if c != "geometry")
#: GeoJSON files up to this size are parsed in Python; larger ones are left to GDAL (less memory).
JSON_PARSE_LIMIT = 512 * 1024 * 1024

#: ``frame.attrs`` key: ``{row: [(field, reason, input column or None), …]}`` found while reading.
READ_PROBLEMS = "forestguard_read_problems"
#: Column a streamed batch carries besides the geometry: each record's WKB as the file held it
#: (2-D, little-endian), so that a zone validation leaves untouched is stored without re-encoding.
SOURCE_WKB = "_source_wkb"
#: ``frame.attrs`` key: true when the file named no CRS and EPSG:4326 was assumed.
CRS_ASSUMED = "forestguard_crs_assumed"

_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}
_NON_FINITE = {"NaN", "Infinity", "-Infinity"}


@dataclass(frozen=True)
class ColumnMapping:
    """How input columns become schema columns."""

    renames: dict[str, str] = field(default_factory=dict)  # schema column -> input column
    constants: dict[str, str] = field(default_factory=dict)  # schema column -> value

    @classmethod
    def parse(cls, maps: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> "ColumnMapping":
        renames, constants = _pairs(maps, "--map"), _pairs(sets, "--set")
        both = sorted(set(renames) & set(constants))
        if both:
            raise ValueError(f"{', '.join(both)} given by both --map and --set; use one")
        return cls(renames, constants)

    def apply(self, frame: gpd.GeoDataFrame, file: str) -> tuple[gpd.GeoDataFrame, str]:
        """Return the frame with schema columns only, and a line saying what was used."""
        geometry = frame.geometry.name
        available = [c for c in frame.columns if c not in (geometry, SOURCE_WKB)]
        by_folded: dict[str, str] = {}
        for c in available:
            by_folded.setdefault(str(c).casefold(), c)
        out = {}
        used = []
        sources: dict[str, str] = {}  # input column -> schema column
        for column in _SETTABLE:
            if column in self.constants:
                out[column] = pd.Series([self.constants[column]] * len(frame), index=frame.index, dtype=object)
                used.append(f"{column}=(--set {self.constants[column]})")
                continue
            wanted = self.renames.get(column, column)
            source = wanted if wanted in available else by_folded.get(wanted.casefold())
            if source is None:
                if column in self.renames:
                    raise InputError(
                        file, f"column {wanted!r} (given by --map {column}={wanted}) is not in the file; it has: {_listing(available)}"
                    )
                continue
            out[column] = frame[source]
            sources.setdefault(source, column)
            used.append(column if source == column else f"{column}<-{source}")
        missing = [c for c in ("country", "year") if c not in out]
        if missing and len(frame):
            hint = "; ".join(f"--map {c}=FIELD or --set {c}=VALUE" for c in missing)
            raise InputError(file, f"no {' or '.join(missing)} column ({hint}); the file has: {_listing(available)}")
        ignored = [str(c) for c in available if c not in sources]
        line = f"{file}: using {', '.join(used) or 'no columns'}"
        if ignored:
            line += f"; ignoring {_listing(ignored)}"
        if SOURCE_WKB in frame:
            out[SOURCE_WKB] = frame[SOURCE_WKB]
        mapped = gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs)
        mapped.attrs[CRS_ASSUMED] = bool(frame.attrs.get(CRS_ASSUMED))
        # Problems of the record itself always count; those of a property only when it is used.
        problems: dict[int, list[tuple[str, str, str | None]]] = {}
        for row, found in frame.attrs.get(READ_PROBLEMS, {}).items():
            kept = [(sources.get(col, name) if col is not None else name, reason, None) for name, reason, col in found if col is None or col in sources]
            if kept:
                problems[row] = kept
        mapped.attrs[READ_PROBLEMS] = problems
        return mapped, line


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{option} takes COLUMN=VALUE, got {item!r}")
        if name not in _SETTABLE:
            raise ValueError(f"{option} {item!r}: {name!r} is not a zone column ({', '.join(_SETTABLE)})")
        if name in pairs and pairs[name] != value:
            raise ValueError(f"{option} {name} is given twice ({pairs[name]!r} and {value!r})")
        pairs[name] = value
    return pairs


def _listing(columns: list) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:15]) + (f", … ({len(names)} in all)" if len(names) > 15 else "") if names else "no columns"


def _check_utf8(path: Path) -> None:
    """GDAL quietly accepts some bad encodings; a JSON file must be UTF-8 (RFC 8259)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise InputError(str(path), f"is not UTF-8 text (bad byte at offset {offset + exc.start})") from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(str(path), "is not UTF-8 text (ends in the middle of a character)") from None


def _check_one_layer(path: Path) -> None:
    """GDAL reads the first layer of a GeoPackage; zones in the others would be dropped without a word."""
    layers = [str(name) for name, geometry_type in pyogrio.list_layers(path) if geometry_type]
    if len(layers) > 1:
        raise InputError(str(path), f"has {len(layers)} layers ({_listing(layers)}); give one layer per file")


def _check_path(path: Path) -> str:
    """The file's suffix, once it is known to exist and to be a format we read."""
    label = str(path)
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a name too long for the file system
        raise InputError(label, f"cannot be opened: {_one_line(exc)}") from None
    if not exists:
        raise InputError(label, "no such file")
    if path.is_dir() and path.suffix.lower() not in {".gdb"}:
        raise InputError(label, "is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix not in READABLE and suffix != ".gdb":
        raise InputError(label, f"unsupported format {suffix or '(no extension)'}; use GeoJSON, GeoPackage, GeoParquet or Shapefile")
    return suffix


@dataclass
class ZoneSource:
    """One input file's zones: read whole (``frame``) or, for a big GDAL file, as a stream of batches."""

    path: str
    features: int  # as the file declares it (a stream's final count is what it yields)
    frame: gpd.GeoDataFrame | None = None
    columns: list[str] = field(default_factory=list)  # a stream's attribute columns, before any batch
    _stream: Any = None

    def batches(self, rows: int) -> Iterator[gpd.GeoDataFrame]:
        """The zones as frames: the whole frame read at open, or a stream's batches of ``rows`` records."""
        if self.frame is not None:
            yield self.frame
            return
        yield from self._stream(rows)


def open_zones_file(path: str | Path, *, stream_min_bytes: int | None = None) -> ZoneSource:
    """Open one source file: big GeoPackages, Shapefiles, FlatGeobufs… stream, everything else is read whole.

    A stream keeps memory bounded (one batch of records, not the file) and lets
    the reading overlap validation and loading; what it yields is exactly what
    :func:`read_zones_file` returns, a batch at a time. Reading errors part-way
    are :class:`InputError` lines too (an ingest then rolls back).
    """
    path = Path(path)
    suffix = _check_path(path)
    threshold = STREAM_MIN_BYTES if stream_min_bytes is None else stream_min_bytes
    big = path.is_file() and path.stat().st_size >= threshold
    if big and suffix in _PARQUET:
        source = _open_parquet_stream(path)
        if source is not None:
            return source
    streamable = suffix not in _JSON and suffix not in _PARQUET and path.is_file()
    if streamable and big:
        label = str(path)
        try:
            _check_one_layer(path)
            info = pyogrio.read_info(path)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(label, f"cannot be read: {_one_line(exc)}") from None
        if int(info.get("features", -1)) >= 0:  # a driver that cannot count is read whole
            return ZoneSource(label, int(info["features"]), columns=[str(c) for c in info["fields"]],
                              _stream=lambda rows: _stream_batches(path, rows))
    frame = read_zones_file(path)
    return ZoneSource(str(path), len(frame), frame=frame)


def _stream_batches(path: Path, rows: int) -> Iterator[gpd.GeoDataFrame]:
    label = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pyogrio.open_arrow(path, batch_size=rows, use_pyarrow=True) as (meta, reader):
                geometry = meta["geometry_name"] or "wkb_geometry"
                # The file's WKB can go to the store only if it is in the store's CRS (nothing reprojected).
                as_stored = meta["crs"] is None or CRS.from_user_input(meta["crs"]).to_epsg() == GEOMETRY_SRID
                for batch in reader:
                    table = pa.Table.from_batches([batch])
                    column = None
                    if geometry in table.column_names:
                        column = table.column(geometry).combine_chunks()
                        if isinstance(column.type, pa.ExtensionType):  # geoarrow.wkb, once geoarrow is imported
                            column = column.storage
                        table = table.drop_columns([geometry])
                    frame = table.to_pandas()
                    wkb = column.to_numpy(zero_copy_only=False) if column is not None else np.full(len(frame), None, dtype=object)
                    zones = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries.from_wkb(wkb, on_invalid="ignore"), crs=meta["crs"])
                    zones = _in_4326(zones, label, path.suffix.lower(), {})
                    if as_stored and column is not None and _plain_2d_wkb(column):
                        zones[SOURCE_WKB] = pd.arrays.ArrowExtensionArray(column)  # the file's own bytes, still in Arrow
                    yield zones
    except InputError:
        raise
    except Exception as exc:  # a file that breaks part-way is still the file's problem, in one line
        raise InputError(label, f"cannot be read: {type(exc).__name__}: {_one_line(exc)}") from None


def _open_parquet_stream(path: Path) -> ZoneSource | None:
    """A big GeoParquet file with WKB geometry, streamed a batch of row groups at a time (None: read it whole).

    GeoParquet's ``geo`` metadata names the geometry column, its encoding and CRS; files with
    native GeoArrow encodings (rare) are read whole by GeoPandas instead.
    """
    label = str(path)
    try:
        parquet = pq.ParquetFile(path)
        geo = json.loads((parquet.schema_arrow.metadata or {}).get(b"geo", b"{}"))
    except Exception as exc:
        raise InputError(label, f"cannot be read: {type(exc).__name__}: {_one_line(exc)}") from None
    column = geo.get("primary_column")
    meta = geo.get("columns", {}).get(column or "", {})
    if not column or meta.get("encoding", "WKB").upper() != "WKB" or column not in parquet.schema_arrow.names:
        return None
    crs = meta.get("crs", "OGC:CRS84")  # GeoParquet: a missing crs means lon/lat (OGC:CRS84)
    columns = [c for c in parquet.schema_arrow.names if c != column]
    return ZoneSource(label, parquet.metadata.num_rows, columns=columns,
                      _stream=lambda rows: _stream_parquet(path, column, crs, rows))


def _stream_parquet(path: Path, column: str, crs: Any, rows: int) -> Iterator[gpd.GeoDataFrame]:
    label = str(path)
    try:
        stored_crs = None if crs is None else CRS.from_user_input(crs)
        as_stored = stored_crs is None or stored_crs.equals(CRS.from_epsg(GEOMETRY_SRID), ignore_axis_order=True)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            table = pa.Table.from_batches([batch])
            wkb = table.column(column).combine_chunks()
            if isinstance(wkb.type, pa.ExtensionType):
                wkb = wkb.storage
            frame = table.drop_columns([column]).to_pandas()
            zones = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore"),
                                     crs=GEOMETRY_SRID if as_stored else stored_crs)
            zones = _in_4326(zones, label, path.suffix.lower(), {})
            if as_stored and _plain_2d_wkb(wkb):
                zones[SOURCE_WKB] = pd.arrays.ArrowExtensionArray(wkb)
            yield zones
    except InputError:
        raise
    except Exception as exc:
        raise InputError(label, f"cannot be read: {type(exc).__name__}: {_one_line(exc)}") from None


def _plain_2d_wkb(wkb: pa.Array) -> bool:
    """Every value little-endian ISO WKB of a 2-D Polygon or MultiPolygon (what the stores are given)?"""
    if wkb.null_count:
        return False
    header = pc.binary_slice(wkb, 0, 5)
    return bool(pc.all(pc.is_in(header, pa.array([b"\x01\x03\x00\x00\x00", b"\x01\x06\x00\x00\x00"]))).as_py())


def read_zones_file(path: str | Path) -> gpd.GeoDataFrame:
    """Read one source file into a frame in EPSG:4326; raise InputError on anything unreadable."""
    path = Path(path)
    label = str(path)
    suffix = _check_path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise InputError(label, "is empty (0 bytes)")
        with warnings.catch_warnings():
            # GDAL and shapely talk on stderr (unclosed rings, mixed types…); problems are reported per record instead.
            warnings.simplefilter("ignore")
            if suffix in _JSON and path.stat().st_size <= JSON_PARSE_LIMIT:
                frame = _read_geojson(path)
            else:
                if suffix in _JSON:
                    _check_utf8(path)
                if suffix in _PARQUET:
                    frame = gpd.read_parquet(path)
                else:
                    _check_one_layer(path)
                    # GDAL's Arrow stream builds the columns in C: 2-3× faster than feature by feature.
                    frame = gpd.read_file(path, engine="pyogrio", on_invalid="ignore", use_arrow=True)
    except InputError:
        raise
    except PermissionError:
        raise InputError(label, "permission denied") from None
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(label, f"cannot be read: {_one_line(exc)}") from None
    except Exception as exc:  # any reader failure is the file's problem, reported in one line
        raise InputError(label, f"cannot be read: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry is None:
        raise InputError(label, "has no geometry column")
    return _in_4326(frame, label, suffix, frame.attrs.get(READ_PROBLEMS, {}))


def _in_4326(frame: gpd.GeoDataFrame, label: str, suffix: str, problems: dict) -> gpd.GeoDataFrame:
    """The frame in EPSG:4326 (a missing CRS is assumed to be it, and said so), with its reading problems."""
    crs_assumed = False
    if frame.crs is None:
        crs_assumed = suffix not in _JSON  # no CRS is GeoJSON's normal case; elsewhere it is a guess
        frame = frame.set_crs(GEOMETRY_SRID)
    elif frame.crs.to_epsg() != GEOMETRY_SRID:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                frame = frame.to_crs(GEOMETRY_SRID)
        except Exception as exc:
            raise InputError(label, f"cannot be reprojected from {frame.crs.name} to EPSG:4326: {_one_line(exc)}") from None
    frame.attrs[READ_PROBLEMS] = problems
    frame.attrs[CRS_ASSUMED] = crs_assumed
    return frame


# -- GeoJSON -------------------------------------------------------------------


class _Duplicated(dict):
    """A JSON object that named some key more than once (the last value is kept)."""

    __slots__ = ("duplicates",)


def _object(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = _Duplicated(obj)
        dup.duplicates = tuple(dict.fromkeys(k for k, _ in pairs if k in seen or seen.add(k)))
        return dup
    return obj


def _duplicates(obj: object) -> tuple[str, ...]:
    return obj.duplicates if isinstance(obj, _Duplicated) else ()


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else "a number"


def _read_geojson(path: Path) -> gpd.GeoDataFrame:
    """A GeoJSON FeatureCollection, Feature or bare Geometry as a frame, with per-record problems."""
    label = str(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is tolerated
    except UnicodeDecodeError as exc:
        raise InputError(label, f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    del data
    return geojson_frame(text, label)


def geojson_frame(text: str, label: str) -> gpd.GeoDataFrame:
    """GeoJSON text (a file's, or a request body's) as a frame, with per-record problems; ``label`` names it in errors."""
    try:
        # NaN/Infinity are not JSON: they arrive as that text, so numbers reject them and nothing takes them for null.
        document = json.loads(text, object_pairs_hook=_object, parse_constant=str)
    except json.JSONDecodeError as exc:
        raise InputError(label, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); truncated?") from None
    except RecursionError:
        raise InputError(label, "is not valid GeoJSON (nested too deeply)") from None
    del text
    if not isinstance(document, dict):
        raise InputError(label, f"is not GeoJSON: the top level is {_kind(document)}, not a FeatureCollection, Feature or Geometry object")
    if _duplicates(document):
        raise InputError(label, f"is ambiguous GeoJSON: the top-level object has duplicate key(s) {', '.join(map(repr, _duplicates(document)))}")
    kind = document.get("type")
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            raise InputError(label, f"is not valid GeoJSON: 'features' is {_kind(features)}, not an array")
    elif kind == "Feature":
        features = [document]
    elif kind in _GEOMETRY_TYPES:
        features = [{"type": "Feature", "properties": {}, "geometry": document}]
    else:
        raise InputError(label, f"is not GeoJSON: the top-level type is {kind!r}, not FeatureCollection, Feature or a geometry")
    crs = _geojson_crs(document.get("crs"), label)

    problems: dict[int, list[tuple[str, str, str | None]]] = {}
    properties: list[dict] = []
    geometries: list[object] = []
    for i, feature in enumerate(features):
        found: list[tuple[str, str, str | None]] = []
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            what = f"an object of type {feature.get('type')!r}" if isinstance(feature, dict) else _kind(feature)
            found.append(("feature", f"is {what}, not a GeoJSON Feature", None))
            feature = feature if isinstance(feature, dict) else {}
        for key in _duplicates(feature):
            found.append(("feature", f"duplicate key {key!r}", None))
        props = feature.get("properties")
        if props is None:
            props = {}
        elif not isinstance(props, dict):
            found.append(("properties", f"is {_kind(props)}, not an object", None))
            props = {}
        for key in _duplicates(props):
            found.append((key, f"duplicate key {key!r} in properties (ambiguous: which value?)", key))
        geometry = feature.get("geometry")
        if geometry is not None and not (isinstance(geometry, dict) and geometry.get("type") in _GEOMETRY_TYPES):
            what = f"an object of type {geometry.get('type')!r}" if isinstance(geometry, dict) else _kind(geometry)
            found.append(("geometry", f"is {what}, not a GeoJSON geometry", None))
            geometry = None
        elif _duplicates(geometry):
            found.append(("geometry", f"duplicate key(s) {', '.join(map(repr, _duplicates(geometry)))}", None))
            geometry = None
        if found:
            problems[i] = found
        properties.append(props)
        geometries.append(geometry)

    geoms = _geojson_geometries(geometries, problems)
    attributes = _properties_frame(properties, problems)
    # A property may itself be called "geometry": the shapes then take another column name.
    geometry_name = "geometry" if "geometry" not in attributes.columns else "__geometry__"
    attributes[geometry_name] = gpd.GeoSeries(geoms, index=attributes.index)
    frame = gpd.GeoDataFrame(attributes, geometry=geometry_name, crs=crs)
    frame.attrs[READ_PROBLEMS] = problems
    return frame


def _geojson_crs(member: object, label: str) -> CRS | None:
    """The pre-RFC 7946 ``crs`` member (``{"type": "name", "properties": {"name": …}}``); absent means EPSG:4326."""
    if member is None:
        return None
    name = member.get("properties", {}).get("name") if isinstance(member, dict) and isinstance(member.get("properties"), dict) else None
    if not isinstance(name, str):
        raise InputError(label, "has a 'crs' member that does not name a CRS (only {\"type\": \"name\", …} is supported)")
    try:
        return CRS.from_user_input(name)
    except Exception:
        raise InputError(label, f"names an unknown CRS {name!r}") from None


def _geojson_geometries(geometries: list[object], problems: dict[int, list]) -> np.ndarray:
    """Shapely geometries (None where absent or unreadable, with the reason added to ``problems``)."""
    out = np.full(len(geometries), None, dtype=object)
    rest = _plain_polygons(geometries, out)
    texts = np.full(len(geometries), None, dtype=object)
    for i in rest:
        try:
            texts[i] = json.dumps(geometries[i], allow_nan=False)
        except ValueError:  # a number too large for a double (1e400) was read as infinity
            problems.setdefault(i, []).append(("geometry", "has coordinates that are not finite numbers", None))
    out[rest] = shapely.from_geojson(texts[rest], on_invalid="ignore")
    for i in np.flatnonzero(shapely.is_missing(out) & ~pd.isna(texts)):
        geometry = geometries[i]
        try:
            # GeoJSON allows extra values after x, y (z, m…): we keep x and y.
            out[i] = shapely.force_2d(shapely.from_geojson(json.dumps(_positions_2d(geometry))))
        except Exception as exc:
            problems.setdefault(i, []).append(("geometry", _geometry_reason(geometry, exc), None))
    return out


def _ring(positions: object) -> np.ndarray:
    """A closed ring of numeric positions as an (n, 2) array; ValueError for anything else."""
    ring = np.asarray(positions)
    if ring.ndim != 2 or ring.shape[1] < 2 or ring.shape[0] < 4 or ring.dtype.kind not in "fi" or not (ring[0, :2] == ring[-1, :2]).all():
        raise ValueError("not a plain ring")
    return ring[:, :2]


def _plain_polygons(geometries: list[object], out: np.ndarray) -> np.ndarray:
    """Build the ordinary Polygons and MultiPolygons in bulk (from coordinate arrays, no JSON round trip).

    Fills ``out`` and returns the indexes of every other geometry (other types,
    unclosed or short rings, non-numeric or ragged positions…), which GEOS then
    reads one by one so that it can say what is wrong with them.
    """
    rest: list[int] = []
    built: dict[str, tuple[list[int], list[list[list[np.ndarray]]]]] = {"Polygon": ([], []), "MultiPolygon": ([], [])}
    for i, geometry in enumerate(geometries):
        if geometry is None:
            continue
        kind, coordinates = geometry.get("type"), geometry.get("coordinates")
        try:
            if kind == "Polygon" and isinstance(coordinates, list) and coordinates:
                parts = [[_ring(r) for r in coordinates]]
            elif kind == "MultiPolygon" and isinstance(coordinates, list) and coordinates and all(isinstance(p, list) and p for p in coordinates):
                parts = [[_ring(r) for r in p] for p in coordinates]
            else:
                rest.append(i)
                continue
        except (ValueError, TypeError):
            rest.append(i)
            continue
        built[kind][0].append(i)
        built[kind][1].append(parts)
    for kind, (at, shapes) in built.items():
        if not at:
            continue
        rings = [ring for parts in shapes for rings_of_part in parts for ring in rings_of_part]
        coords = np.concatenate(rings).astype(float)
        ring_offsets = np.concatenate([[0], np.cumsum([len(r) for r in rings])])
        polygon_offsets = np.concatenate([[0], np.cumsum([len(p) for parts in shapes for p in parts])])
        if kind == "Polygon":
            offsets = (ring_offsets, polygon_offsets)
            geometry_type = shapely.GeometryType.POLYGON
        else:
            offsets = (ring_offsets, polygon_offsets, np.concatenate([[0], np.cumsum([len(parts) for parts in shapes])]))
            geometry_type = shapely.GeometryType.MULTIPOLYGON
        out[at] = shapely.from_ragged_array(geometry_type, coords, offsets)
    return np.array(rest, dtype=np.int64)


def _positions_2d(geometry: object) -> object:
    def walk(value: object) -> object:
        if isinstance(value, list):
            if len(value) > 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                return value[:2]
            return [walk(v) for v in value]
        return value

    if isinstance(geometry, dict):
        return {k: (walk(v) if k == "coordinates" else [_positions_2d(g) for g in v] if k == "geometries" and isinstance(v, list) else v) for k, v in geometry.items()}
    return geometry


def _scalars(value: object):
    if isinstance(value, list):
        for v in value:
            yield from _scalars(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    else:
        yield value


def _geometry_reason(geometry: dict, exc: Exception) -> str:
    message = " ".join(str(exc).split()).removeprefix("GEOSException: ")
    values = list(_scalars(geometry.get("coordinates", geometry.get("geometries"))))
    if any(isinstance(v, str) and v in _NON_FINITE for v in values):
        return "has coordinates that are not finite numbers (NaN/Infinity)"
    if "closed linestring" in message:
        return "has a ring that is not closed (its first and last positions differ)"
    if any(isinstance(v, (str, bool)) or v is None for v in values) and "type must be" in message:
        return "has coordinates that are not numbers"
    if "point array must contain" in message or "Invalid number of points" in message:
        return "has a ring with too few positions (a ring needs at least 4)"
    if "overflow" in message:
        return "has coordinates that are not finite numbers"
    return f"is not a valid GeoJSON geometry ({message[:200]})"


def _properties_frame(properties: list[dict], problems: dict[int, list]) -> pd.DataFrame:
    try:
        return pd.DataFrame(properties, index=pd.RangeIndex(len(properties)))
    except UnicodeEncodeError:
        pass
    # A "\ud800"-style escape is valid JSON but not text: the record is rejected, the value dropped.
    cleaned = []
    for i, props in enumerate(properties):
        keep = {}
        for key, value in props.items():
            if not _encodable(key):
                problems.setdefault(i, []).append(("properties", "has a key that is not valid Unicode (lone surrogate escape)", None))
            elif isinstance(value, str) and not _encodable(value):
                problems.setdefault(i, []).append((key, "is not valid Unicode text (lone surrogate escape)", key))
                keep[key] = None
            else:
                keep[key] = value
        cleaned.append(keep)
    return pd.DataFrame(cleaned, index=pd.RangeIndex(len(cleaned)))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
