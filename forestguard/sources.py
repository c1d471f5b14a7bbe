"""Reading zone source files and mapping their columns onto the schema.

Real files rarely use our column names; :class:`ColumnMapping` renames them
(``--map country=NAME_FIELD``) and supplies constants (``--set year=2020``).
Every failure to read a file becomes one :class:`InputError` line naming the
file and the reason, never a GDAL traceback.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from .errors import InputError
from .schema import GEOMETRY_SRID, ZONE_COLUMNS

READABLE = {".geojson", ".json", ".gpkg", ".parquet", ".geoparquet", ".shp", ".zip", ".fgb"}
_JSON = {".geojson", ".json"}
_SETTABLE = tuple(c for c in ZONE_COLUMNS if c != "geometry")


@dataclass(frozen=True)
class ColumnMapping:
    """How input columns become schema columns."""

    renames: dict[str, str] = field(default_factory=dict)  # schema column -> input column
    constants: dict[str, str] = field(default_factory=dict)  # schema column -> value

    @classmethod
    def parse(cls, maps: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> "ColumnMapping":
        return cls(_pairs(maps, "--map"), _pairs(sets, "--set"))

    def apply(self, frame: gpd.GeoDataFrame, file: str) -> tuple[gpd.GeoDataFrame, str]:
        """Return the frame with schema columns only, and a line saying what was used."""
        geometry = frame.geometry.name
        available = [c for c in frame.columns if c != geometry]
        by_folded = {c.casefold(): c for c in available}
        out = {}
        used = []
        for column in _SETTABLE:
            if column in self.constants:
                out[column] = pd.Series([self.constants[column]] * len(frame), index=frame.index, dtype=object)
                used.append(f"{column}=(--set {self.constants[column]})")
                continue
            wanted = self.renames.get(column, column)
            source = wanted if wanted in frame.columns else by_folded.get(wanted.casefold())
            if source is None or source == geometry:
                if column in self.renames:
                    raise InputError(
                        file, f"column {wanted!r} (given by --map {column}={wanted}) is not in the file; it has: {_listing(available)}"
                    )
                continue
            out[column] = frame[source]
            used.append(column if source == column else f"{column}<-{source}")
        missing = [c for c in ("country", "year") if c not in out]
        if missing and len(frame):
            hint = " ".join(f"--map {c}=FIELD or --set {c}=VALUE" for c in missing)
            raise InputError(file, f"no {' or '.join(missing)} column ({hint}); the file has: {_listing(available)}")
        taken = {s for s in (self.renames.get(c, c) for c in out) if s in frame.columns} | {
            by_folded.get(self.renames.get(c, c).casefold()) for c in out
        }
        ignored = [c for c in available if c not in taken]
        line = f"{file}: using {', '.join(used) or 'no columns'}"
        if ignored:
            line += f"; ignoring {', '.join(ignored)}"
        return gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs), line


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{option} takes COLUMN=VALUE, got {item!r}")
        if name not in _SETTABLE:
            raise ValueError(f"{option} {item!r}: {name!r} is not a zone column ({', '.join(_SETTABLE)})")
        pairs[name] = value
    return pairs


def _listing(columns: list[str]) -> str:
    return ", ".join(columns[:15]) + (f", … ({len(columns)} in all)" if len(columns) > 15 else "") if columns else "no columns"


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


def read_zones_file(path: str | Path) -> gpd.GeoDataFrame:
    """Read one source file into a frame in EPSG:4326; raise InputError on anything unreadable."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise InputError(label, "no such file")
    if path.is_dir() and path.suffix.lower() not in {".gdb"}:
        raise InputError(label, "is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix not in READABLE and suffix != ".gdb":
        raise InputError(label, f"unsupported format {suffix or '(no extension)'}; use GeoJSON, GeoPackage, GeoParquet or Shapefile")
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise InputError(label, "is empty (0 bytes)")
        if suffix in _JSON:
            _check_utf8(path)
            _check_json(path)
        if suffix in {".parquet", ".geoparquet"}:
            frame = gpd.read_parquet(path)
        else:
            frame = gpd.read_file(path, engine="pyogrio", on_invalid="ignore")
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
    if frame.crs is None:
        frame = frame.set_crs(GEOMETRY_SRID)  # GeoJSON's default; other formats carry their CRS
    elif frame.crs.to_epsg() != GEOMETRY_SRID:
        try:
            frame = frame.to_crs(GEOMETRY_SRID)
        except Exception as exc:
            raise InputError(label, f"cannot be reprojected from {frame.crs.name} to EPSG:4326: {_one_line(exc)}") from None
    return frame


def _check_json(path: Path) -> None:
    """Catch truncated or malformed GeoJSON with a line number before GDAL guesses at it."""
    if path.stat().st_size > 512 * 1024 * 1024:
        return  # too large to parse twice; GDAL reports what it finds
    try:
        with path.open("rb") as fh:
            document = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); truncated?") from None
    except RecursionError:
        raise InputError(str(path), "is not valid GeoJSON (nested too deeply)") from None
    if not isinstance(document, dict) or document.get("type") not in {"FeatureCollection", "Feature"}:
        raise InputError(str(path), "is not a GeoJSON FeatureCollection or Feature")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
