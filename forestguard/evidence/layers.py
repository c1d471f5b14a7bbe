"""Reference layers from files: checked like zones (all or nothing, one line per refusal), with provenance.

``forestguard layers add KIND FILE --name NAME --source ORG --as-of DATE [--map FIELD=COLUMN]``
reads any file an area can be read from (GeoJSON, GeoPackage, Shapefile, GeoParquet; any CRS,
reprojected), checks every feature's polygon by the zones' geometry rules, and each kind's
fields: ``property`` needs ``id`` (its registry id, like Brazil's CAR code), ``authorization``
``valid_from`` and ``valid_to``, ``embargo`` its ``date``; any kind may give ``id`` (default:
the feature's number in the file), ``valid_from`` and ``valid_to`` (when the feature was in
force). A field is read from the file's field of the same name (any case) unless ``--map``
names another. Nothing is stored unless every feature passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..areas.reading import AreaRefused, check_name, checked_polygons, feature_id, file_sha256, find_column
from ..areas.shape import canonical_wkb
from ..config import settings
from ..errors import UserError
from ..sources import READ_PROBLEMS, SOURCE_WKB, read_zones_file
from ..stores.evidence_records import FEATURES_SCHEMA, KINDS, NAME_MAX_CHARS, Layer

#: Fields a layer's features may carry, per kind (``date`` is an embargo's: stored as the day it starts).
FIELDS: dict[str, tuple[str, ...]] = {
    "protected_area": ("id", "valid_from", "valid_to"),
    "indigenous_land": ("id", "valid_from", "valid_to"),
    "property": ("id", "valid_from", "valid_to"),
    "authorization": ("id", "valid_from", "valid_to"),
    "embargo": ("id", "date"),
}
REQUIRED: dict[str, tuple[str, ...]] = {"property": ("id",), "authorization": ("valid_from", "valid_to"), "embargo": ("date",)}


class LayerRefused(UserError):
    """A reference layer that cannot be stored: bad kind, file, feature, field or provenance."""


@dataclass(frozen=True)
class LayerFile:
    """A checked layer and its features (:data:`~forestguard.stores.evidence_records.FEATURES_SCHEMA`), ready to store."""

    layer: Layer
    features: pa.Table
    fields: str  #: which file field each feature field came from, for the command's report


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise LayerRefused(f"unknown layer kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def parse_date(text: Any, what: str) -> date:
    """A date given as ``YYYY-MM-DD`` (or an ISO date-time, or a date object)."""
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    try:
        return datetime.fromisoformat(str(text).strip()).date()
    except ValueError:
        raise LayerRefused(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def parse_maps(maps: Sequence[str], kind: str) -> dict[str, str]:
    """``--map FIELD=COLUMN`` options: which file field (COLUMN) gives each feature field of ``kind``."""
    allowed = FIELDS[check_kind(kind)]
    chosen: dict[str, str] = {}
    for item in maps:
        name, sep, column = item.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise LayerRefused(f"--map takes FIELD=COLUMN, got {item!r}")
        if name not in allowed:
            raise LayerRefused(f"--map {item!r}: a {kind} layer's features have no field {name!r} ({', '.join(allowed)})")
        if name in chosen and chosen[name] != column:
            raise LayerRefused(f"--map {name} is given twice ({chosen[name]!r} and {column!r})")
        chosen[name] = column
    return chosen


def read_layer(
    kind: str, path: str | Path, *, name: str, source: str, as_of: str | date, maps: Sequence[str] = (), repair: bool = False
) -> LayerFile:
    """A layer file checked whole: the first problem is a :class:`LayerRefused` naming the file, feature and field."""
    kind = check_kind(kind)
    mapping = parse_maps(maps, kind)
    name = _text(name, "layer name")
    source = _text(source, "--source")
    when = parse_date(as_of, "--as-of")
    if when > datetime.now(timezone.utc).date():
        raise LayerRefused(f"--as-of {when.isoformat()} is in the future")
    path = Path(path)
    label = str(path)
    frame = read_zones_file(path)
    if len(frame) == 0:
        raise LayerRefused(f"{label}: has no features; a layer needs at least one Polygon or MultiPolygon")
    columns = _columns(frame, kind, mapping, label)
    _field_problems(frame, columns, label)
    try:
        polygons = checked_polygons(frame, label, repair, settings().area_max_vertices * len(frame))
    except AreaRefused as exc:
        raise LayerRefused(str(exc)) from None
    ids = _ids(frame, columns.get("id"), label)
    valid_from = _dates(frame, columns.get("valid_from") or columns.get("date"), label)
    valid_to = _dates(frame, columns.get("valid_to"), label)
    for field, values in (("valid_from", valid_from), ("valid_to", valid_to), ("date", valid_from)):
        if field in REQUIRED.get(kind, ()) and field in columns:
            missing = np.flatnonzero(pd.isna(values))
            if len(missing):
                raise LayerRefused(f"{label}: feature {missing[0]}: {columns[field]}: is missing; every feature of a layer of kind {kind} needs its {field}")
    for feature in np.flatnonzero(pd.notna(valid_from) & pd.notna(valid_to)):
        if valid_to[feature] < valid_from[feature]:
            raise LayerRefused(
                f"{label}: feature {feature}: {columns['valid_to']}: {valid_to[feature].isoformat()} is before valid_from {valid_from[feature].isoformat()}"
            )
    features = pa.table(
        {
            "feature_id": pa.array(ids, pa.string()),
            "valid_from": pa.array(list(valid_from), pa.date32()),
            "valid_to": pa.array(list(valid_to), pa.date32()),
            "geometry": pa.array([canonical_wkb(p) for p in polygons], pa.binary()),
        },
        schema=FEATURES_SCHEMA,
    )
    layer = Layer(name=name, kind=kind, source=source, as_of=when, sha256=file_sha256(path), source_file=path.name, features=len(features))
    used = ", ".join(f"{field}<-{column}" if field != column else field for field, column in columns.items()) or "no fields"
    return LayerFile(layer, features, f"{label}: using {used}" + ("" if "id" in columns else "; features are numbered from 0 in file order"))


def _text(value: str, what: str) -> str:
    try:
        return check_name(value, what)
    except AreaRefused as exc:
        raise LayerRefused(str(exc)) from None


def _columns(frame: pd.DataFrame, kind: str, mapping: dict[str, str], label: str) -> dict[str, str]:
    """Feature field → the file's field that gives it (mapped, or of the same name in any case)."""
    names = [c for c in frame.columns if c not in (frame.geometry.name, SOURCE_WKB)]
    found: dict[str, str] = {}
    for field in FIELDS[kind]:
        if field in mapping:
            try:
                found[field] = find_column(frame, mapping[field], label, option=f"--map {field}={mapping[field]}")
            except AreaRefused as exc:
                raise LayerRefused(str(exc)) from None
            continue
        same = [c for c in names if str(c).casefold() == field]
        if same:
            found[field] = same[0]
        elif field in REQUIRED.get(kind, ()):
            shown = ", ".join(map(str, names[:15])) or "no attributes"
            raise LayerRefused(f"{label}: a layer of kind {kind} needs {field!r} for each feature: add --map {field}=COLUMN naming the file's field; it has: {shown}")
    return found


def _field_problems(frame: pd.DataFrame, columns: dict[str, str], label: str) -> None:
    used = set(columns.values())
    for row, found in sorted((frame.attrs.get(READ_PROBLEMS) or {}).items()):
        for field, reason, column in found:
            if column is not None and column in used:
                raise LayerRefused(f"{label}: feature {row}: {column}: {reason}")


def _ids(frame: pd.DataFrame, column: str | None, label: str) -> list[str]:
    if column is None:
        return [str(i) for i in range(len(frame))]
    ids, seen = [], {}
    for feature, value in enumerate(frame[column]):
        try:
            text = feature_id(value, feature, column, label, what="feature")
        except AreaRefused as exc:
            raise LayerRefused(str(exc)) from None
        if len(text) > NAME_MAX_CHARS:
            raise LayerRefused(f"{label}: feature {feature}: {column}: has {len(text)} characters; at most {NAME_MAX_CHARS}")
        if text in seen:
            raise LayerRefused(f"{label}: feature {feature}: {column}: {text!r} is also the id of feature {seen[text]}; ids must be unique in a layer")
        seen[text] = feature
        ids.append(text)
    return ids


def _dates(frame: pd.DataFrame, column: str | None, label: str) -> np.ndarray:
    """Each feature's date from ``column`` (None where missing, or for every feature without the column)."""
    out = np.full(len(frame), None, dtype=object)
    if column is None:
        return out
    for feature, value in enumerate(frame[column]):
        if value is None or (not isinstance(value, str) and pd.isna(value)) or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        try:
            out[feature] = parse_date(value, "")
        except LayerRefused:
            raise LayerRefused(f"{label}: feature {feature}: {column}: {value!r} is not a date (YYYY-MM-DD)") from None
    return out
