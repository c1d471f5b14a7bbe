"""Zone validation: the one gate every record passes before any engine stores it.

Input is a frame whose columns already carry schema names (see
:mod:`forestguard.sources` for reading and renaming). Output is a frame of
clean zones, one Polygon each, with values exactly as the table stores them,
plus a list of rejects that say which record failed and why. Checks are
vectorised (shapely 2, pandas) so a million demo zones validate in seconds.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable, Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from .area import geodesic_area_ha, polygon_parts
from .sources import CRS_ASSUMED, READ_PROBLEMS, SOURCE_WKB
from .schema import (
    AREA_MAX_HA,
    CONFIDENCE_MAX,
    CONFIDENCE_MIN,
    GEOMETRY_SRID,
    TEXT_LIMITS,
    YEAR_MIN,
    ZONE_COLUMNS,
    Classification,
    current_year,
)

_POLYGONAL = {"Polygon", "MultiPolygon"}
_POLYGONAL_TYPE_IDS = [shapely.GeometryType.POLYGON.value, shapely.GeometryType.MULTIPOLYGON.value]
_TRUE = {"true", "t", "yes", "y", "1", "oui", "vrai"}
_FALSE = {"false", "f", "no", "n", "0", "non", "faux", ""}


@dataclass(frozen=True)
class Reject:
    """One bad record: where it is and what is wrong with it."""

    file: str
    feature: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: feature {self.feature}: {self.field}: {self.reason}"


@dataclass
class Validated:
    """Clean zones (schema columns + ``file``/``feature`` provenance) and the rejects."""

    zones: gpd.GeoDataFrame
    rejects: list[Reject] = field(default_factory=list)


class _Errors:
    """Collects (field, reason) per record; a record may fail on several fields."""

    def __init__(self) -> None:
        self.by_row: dict[int, list[tuple[str, str]]] = defaultdict(list)

    def add(self, mask: np.ndarray, field: str, reason: Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask):
            self.by_row[int(i)].append((field, reason(int(i))))

    def bad_rows(self, n: int) -> np.ndarray:
        bad = np.zeros(n, dtype=bool)
        bad[list(self.by_row)] = True
        return bad

    def rejects(self, file: str, features: np.ndarray) -> list[Reject]:
        out = []
        for i in sorted(self.by_row):
            problems = self.by_row[i]
            out.append(
                Reject(
                    file,
                    int(features[i]),
                    ", ".join(dict.fromkeys(f for f, _ in problems)),
                    "; ".join(r for _, r in problems),
                )
            )
        return out


def _show(value: object, limit: int = 40) -> str:
    if isinstance(value, (np.generic,)):
        value = value.item()  # 0.5, not np.float64(0.5)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy().copy()
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        missing |= values.str.strip().eq("").to_numpy(dtype=bool, na_value=False)
    elif values.dtype == object:
        missing |= np.fromiter((isinstance(v, str) and not v.strip() for v in values.tolist()), dtype=bool, count=len(values))
    return missing


_NOT_A_NUMBER = object()


def _number(value: object) -> object:
    """One value of a mixed (object) column as a float, NaN when missing, or _NOT_A_NUMBER."""
    if value is None or value is pd.NA or value is pd.NaT:
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return _NOT_A_NUMBER  # true is not 1 here: it is a wrong column
    if isinstance(value, (int, np.integer)):
        try:
            return float(value)
        except OverflowError:  # an integer literal beyond a double: out of every range
            return np.inf if value > 0 else -np.inf
    if isinstance(value, (float, np.floating, Decimal)):
        return float(value)
    return _NOT_A_NUMBER


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values and a mask of entries that are present but not numbers (bools count as not)."""
    n = len(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(n, np.nan), ~values.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_complex_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan), np.zeros(n, dtype=bool)
    missing = _is_missing(values)
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return np.where(missing, np.nan, numbers), ~missing & np.isnan(numbers)
    # Mixed values (JSON, object columns): numbers as they are, text parsed, anything else refused.
    objects = values.astype(object).tolist()
    numbers = np.full(n, np.nan)
    not_number = np.zeros(n, dtype=bool)
    text_at = [i for i, v in enumerate(objects) if isinstance(v, str) and not missing[i]]
    if text_at:
        parsed = pd.to_numeric(pd.Series([objects[i] for i in text_at], dtype=object), errors="coerce")
        numbers[text_at] = parsed.to_numpy(dtype=float, na_value=np.nan)
        not_number[text_at] = np.isnan(numbers[text_at])
    for i, v in enumerate(objects):
        if not missing[i] and not isinstance(v, str):
            number = _number(v)
            if number is _NOT_A_NUMBER:
                not_number[i] = True
            else:
                numbers[i] = number
                not_number[i] = np.isnan(number)  # Decimal('NaN')
    return numbers, not_number


def _as_text(value: object) -> str | None:
    """Text as given; numbers spelled out; None for values that are not text (true, [..], {..})."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer, Decimal)):
        return str(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value):
        return repr(float(value))
    return None


def _text_problem(value: object) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (lone surrogate)"
    return None


def _text(frame: pd.DataFrame, name: str, errors: _Errors, *, required: bool) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """Text exactly as given (missing where absent), checked against the column's limit.

    Arrow-backed text (what the GDAL and Parquet readers give) stays in Arrow: the
    stores take it from there without a Python string per value.
    """
    n = len(frame)
    if name not in frame:
        if required:
            errors.add(np.ones(n, dtype=bool), name, lambda i: "is required")
        return np.full(n, None, dtype=object)
    raw = frame[name]
    missing = _is_missing(raw)
    if required:
        errors.add(missing, name, lambda i: "is required and must not be empty")
    if pd.api.types.is_string_dtype(raw.dtype) and raw.dtype != object:
        # Arrow-backed strings are valid UTF-8 (no lone surrogates), all text: only NUL and length to check, in bulk.
        text = raw.where(~missing).array
        lengths = raw.str.len().fillna(0).to_numpy(dtype=np.int64)
        has_nul = raw.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)
        errors.add(has_nul, name, lambda i: "contains a NUL character")
    else:
        values = raw.astype(object).tolist()
        text = np.empty(n, dtype=object)
        text[:] = [None if missing[i] else _as_text(v) for i, v in enumerate(values)]
        not_text = ~missing & np.array([t is None for t in text], dtype=bool)
        errors.add(not_text, name, lambda i: f"{_show(values[i])} is not text")
        problem = [None if t is None else _text_problem(t) for t in text]
        errors.add(np.array([p is not None for p in problem], dtype=bool), name, lambda i: problem[i])
        lengths = np.array([0 if t is None else len(t) for t in text], dtype=np.int64)
        text[missing] = None
    limit = TEXT_LIMITS.get(name)
    if limit:
        errors.add(lengths > limit, name, lambda i: f"is {int(lengths[i])} characters long; the limit is {limit}")
    return text


def _year(frame: pd.DataFrame, errors: _Errors) -> np.ndarray:
    n = len(frame)
    if "year" not in frame:
        errors.add(np.ones(n, dtype=bool), "year", lambda i: "is required")
        return np.zeros(n, dtype=np.int64)
    raw = frame["year"]
    numbers, not_number = _numbers(raw)
    missing = _is_missing(raw)
    last = current_year()
    errors.add(missing, "year", lambda i: "is required")
    errors.add(not_number, "year", lambda i: f"{_show(raw.iat[i])} is not a whole number")
    ok = ~missing & ~not_number
    with np.errstate(invalid="ignore"):
        fractional = ok & (np.isnan(numbers) | (np.isfinite(numbers) & (numbers != np.round(numbers))))
    errors.add(fractional, "year", lambda i: f"{_show(raw.iat[i])} is not a whole number")
    ok &= ~fractional
    out_of_range = ok & ~((numbers >= YEAR_MIN) & (numbers <= last))  # ±inf (1e400, 10**400) included
    errors.add(out_of_range, "year", lambda i: f"{_show(raw.iat[i])} is outside {YEAR_MIN}..{last}")
    return np.where(ok & ~out_of_range, numbers, 0).astype(np.int64)


def _confidence(frame: pd.DataFrame, errors: _Errors) -> np.ndarray:
    n = len(frame)
    if "confidence" not in frame:
        return np.full(n, np.nan)
    raw = frame["confidence"]
    numbers, not_number = _numbers(raw)
    errors.add(not_number, "confidence", lambda i: f"{_show(raw.iat[i])} is not a number")
    present = ~np.isnan(numbers)
    bad = present & ~((numbers >= CONFIDENCE_MIN) & (numbers <= CONFIDENCE_MAX))
    errors.add(bad, "confidence", lambda i: f"{_show(raw.iat[i])} is outside 0..1")
    # DECIMAL(3,2): what the table would keep.
    return np.where(present & ~bad, _decimal_round(numbers, 2), np.nan)


def _verified(frame: pd.DataFrame, errors: _Errors) -> np.ndarray:
    n = len(frame)
    if "verified" not in frame:
        return np.zeros(n, dtype=bool)
    raw = frame["verified"]
    if pd.api.types.is_bool_dtype(raw.dtype) and not raw.isna().any():
        return raw.to_numpy(dtype=bool)

    def parse(v: object) -> bool | None:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return False
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer, float, np.floating)) and v in (0, 1):
            return bool(v)
        if isinstance(v, str):
            folded = v.strip().casefold()
            if folded in _TRUE:
                return True
            if folded in _FALSE:
                return False
        return None

    parsed = [parse(v) for v in raw.tolist()]
    bad = np.array([p is None for p in parsed], dtype=bool)
    errors.add(bad, "verified", lambda i: f"{_show(raw.iat[i])} is not true or false")
    return np.array([bool(p) for p in parsed], dtype=bool)


def _classification(frame: pd.DataFrame, errors: _Errors) -> np.ndarray:
    n = len(frame)
    if "classification" not in frame:
        return np.full(n, None, dtype=object)
    raw = frame["classification"]
    missing = _is_missing(raw)
    values = raw.astype(object)
    # Few distinct spellings: parse each once, then spread the answers by code.
    try:
        codes, spellings = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # a JSON list or object is unhashable; no such value is a classification
        codes, spellings = pd.factorize(values.map(lambda v: v if isinstance(v, str) else None), use_na_sentinel=True)
    parsed = np.array([*map(_parse_classification, spellings), None], dtype=object)  # code -1 → the None
    stored = parsed[codes]
    stored[missing] = None
    bad = ~missing & pd.isna(stored)
    errors.add(bad, "classification", lambda i: f"{_show(values.iat[i])} is not legal or illegal (légale/illégale)")
    return stored


def _parse_classification(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return Classification.parse(value).stored
    except ValueError:
        return None


def _geometry(geoms: np.ndarray, errors: _Errors, *, repair: bool, explained: np.ndarray | None = None, crs_assumed: bool = False) -> np.ndarray:
    """Check and normalise geometries to 2D valid (Multi)Polygons; failing rows become None.

    ``explained`` marks rows whose geometry the reader already reported (it could
    not be read at all): they are not reported again as missing.
    """
    n = len(geoms)
    explained = np.zeros(n, dtype=bool) if explained is None else explained
    missing = shapely.is_missing(geoms)
    errors.add(missing & ~explained, "geometry", lambda i: "is missing")
    present = ~missing
    empty = present & shapely.is_empty(np.where(present, geoms, None))
    errors.add(empty, "geometry", lambda i: "is empty")
    present &= ~empty
    wrong = present & ~np.isin(shapely.get_type_id(geoms), _POLYGONAL_TYPE_IDS)
    errors.add(wrong, "geometry", lambda i: f"is a {geoms[i].geom_type}; only Polygon and MultiPolygon are accepted")
    present &= ~wrong
    out = np.where(present, geoms, None)
    if shapely.has_z(out).any():  # force_2d rebuilds every geometry; most files are 2D already
        out = shapely.force_2d(out)
    xmin, ymin, xmax, ymax = shapely.bounds(out).T
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(xmin) & np.isfinite(ymin) & np.isfinite(xmax) & np.isfinite(ymax)
        not_finite = present & ~finite
        # NaN coordinates do not show in bounds: check every coordinate.
        if not np.isfinite(shapely.get_coordinates(out)).all():  # rare: only then find whose they are
            coords, owner = shapely.get_coordinates(out, return_index=True)
            not_finite[np.unique(owner[~np.isfinite(coords).all(axis=1)])] = True
        not_finite &= present
        errors.add(not_finite, "geometry", lambda i: "has coordinates that are not finite numbers")
        present &= ~not_finite
        outside = present & ((xmin < -180) | (xmax > 180) | (ymin < -90) | (ymax > 90))
    hint = " (the file names no CRS, so EPSG:4326 was assumed: give it its .prj)" if crs_assumed else ""
    errors.add(
        outside,
        "geometry",
        lambda i: f"coordinates outside EPSG:{GEOMETRY_SRID} (lon -180..180, lat -90..90): "
        f"bounds {xmin[i]:.6g},{ymin[i]:.6g},{xmax[i]:.6g},{ymax[i]:.6g}{hint}",
    )
    present &= ~outside
    # Only a polygon wider than 180° can have an edge that long: check those few ring by ring.
    wraps = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(present & (xmax - xmin >= 180)):
        wraps[i] = _wraps_around(out[i])
    errors.add(
        wraps,
        "geometry",
        lambda i: "has an edge spanning 180° of longitude or more, so it crosses the antimeridian or circles a pole "
        "and its shape on the globe is not the one drawn; split it at ±180° (RFC 7946 §3.1.9)",
    )
    present &= ~wraps
    out = np.where(present, out, None)
    valid = shapely.is_valid(out) | ~present
    invalid = ~valid
    if invalid.any():
        if repair:
            repaired = shapely.make_valid(out[invalid])
            out[invalid] = [polygonal_part(g) for g in repaired]
            lost = np.zeros(n, dtype=bool)
            lost[invalid] = shapely.is_empty(out[invalid]) | shapely.is_missing(out[invalid])
            errors.add(lost, "geometry", lambda i: "repair left no polygon")
        else:
            reasons = shapely.is_valid_reason(out[invalid])
            reason_of = dict(zip(np.flatnonzero(invalid), reasons))
            errors.add(invalid, "geometry", lambda i: f"invalid: {reason_of[i]} (use --repair to fix)")
    return out


def check_polygons(
    geoms: np.ndarray, *, repair: bool = False, crs_assumed: bool = False, explained: np.ndarray | None = None
) -> tuple[np.ndarray, dict[int, list[tuple[str, str]]]]:
    """The zones' geometry rules for other polygons (areas, plots): the checked geometries and the problems per row.

    Rows with a problem come back as None; the problems are (field, reason) as in a :class:`Reject`.
    """
    errors = _Errors()
    out = _geometry(np.asarray(geoms, dtype=object), errors, repair=repair, explained=explained, crs_assumed=crs_assumed)
    return out, dict(errors.by_row)


def _wraps_around(geom: shapely.Geometry) -> bool:
    rings = shapely.get_rings(shapely.get_parts(geom))
    return any(np.abs(np.diff(shapely.get_coordinates(ring)[:, 0])).max(initial=0) >= 180 for ring in rings)


def polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Keep what make_valid returns that is area: dropped lines and points carry no hectares."""
    if geom.geom_type in _POLYGONAL:
        return geom
    polygons = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
    parts = [q for p in polygons for q in shapely.get_parts(p)]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.multipolygons(parts)


def _area(frame: pd.DataFrame, errors: _Errors) -> np.ndarray:
    """Given area in ha (NaN where not given), checked against DECIMAL(10,2)."""
    n = len(frame)
    if "area_ha" not in frame:
        return np.full(n, np.nan)
    raw = frame["area_ha"]
    numbers, not_number = _numbers(raw)
    errors.add(not_number, "area_ha", lambda i: f"{_show(raw.iat[i])} is not a number")
    present = ~np.isnan(numbers)
    with np.errstate(invalid="ignore"):
        rounded = _decimal_round(numbers, 2)
        bad = present & ~((rounded > 0) & (rounded <= AREA_MAX_HA))
    errors.add(
        bad,
        "area_ha",
        lambda i: f"{_show(raw.iat[i])} must be > 0 and at most {AREA_MAX_HA:,.2f} (DECIMAL(10,2))"
        + (", and it rounds to 0.00" if numbers[i] > 0 and rounded[i] == 0 else ""),
    )
    return np.where(present & ~bad, rounded, np.nan)


def _decimal_round(numbers: np.ndarray, places: int) -> np.ndarray:
    """Round as the number is written, half away from zero: 12.345 → 12.35, as DECIMAL(p,2) does.

    ``np.round`` works on the binary double (12.345 is 12.3449999…) and would
    give 12.34. Values already at the precision (the common case) skip the decimals.
    """
    out = np.round(numbers, places)
    with np.errstate(invalid="ignore"):
        ragged = np.flatnonzero(np.isfinite(numbers) & (out != numbers))
    step = Decimal(1).scaleb(-places)
    for i in ragged:
        out[i] = float(Decimal(repr(float(numbers[i]))).quantize(step, rounding=ROUND_HALF_UP))
    return out


def _share_given_area(given: np.ndarray, part_area: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Split each feature's given area between its parts in proportion to their size, to the cent.

    The parts' rounded areas add up exactly to the given area (largest remainder),
    so statistics over a country do not drift by a cent per multipolygon.
    """
    area = given.copy()  # already to the cent (see _area)
    # rows is sorted (parts come in feature order): each feature's parts are one slice.
    _, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    for start, count in zip(starts[counts > 1], counts[counts > 1]):
        at = slice(start, start + count)
        if np.isnan(given[start]):
            continue
        cents = int(round(given[start] * 100))
        sizes = part_area[at]
        total = sizes.sum()
        share = sizes / total if total > 0 else np.full(count, 1 / count)
        exact = share * cents
        whole = np.floor(exact).astype(np.int64)
        leftover = cents - int(whole.sum())
        whole[np.argsort(-(exact - whole), kind="stable")[:leftover]] += 1
        area[at] = whole / 100
    return area


def validate(frame: pd.DataFrame, *, file: str, repair: bool = False, features: Iterable[int] | None = None) -> Validated:
    """Check every record; return clean zones (one Polygon each) and the rejects.

    ``features`` are the record numbers used in messages (default 0..n-1, the
    position of the feature in its file). Problems the reader found in a record
    (``frame.attrs[READ_PROBLEMS]``, see :mod:`forestguard.sources`) are part of
    its verdict.
    """
    n = len(frame)
    read_problems = frame.attrs.get(READ_PROBLEMS) or {}
    crs_assumed = bool(frame.attrs.get(CRS_ASSUMED))
    frame = frame.reset_index(drop=True)
    feature_no = np.arange(n) if features is None else np.asarray(list(features))
    errors = _Errors()
    explained = np.zeros(n, dtype=bool)
    for row, problems in read_problems.items():
        for name, reason, *_ in problems:
            errors.by_row[int(row)].append((name, reason))
            explained[int(row)] |= name in ("geometry", "feature")
    geometry_column = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else "geometry"
    raw_geoms = (
        np.asarray(frame[geometry_column].values, dtype=object) if geometry_column in frame else np.full(n, None, dtype=object)
    )
    geoms = _geometry(raw_geoms, errors, repair=repair, explained=explained, crs_assumed=crs_assumed)
    columns = {
        "country": _text(frame, "country", errors, required=True),
        "region": _text(frame, "region", errors, required=False),
        "classification": _classification(frame, errors),
        "year": _year(frame, errors),
        "source": _text(frame, "source", errors, required=False),
        "confidence": _confidence(frame, errors),
        "verified": _verified(frame, errors),
    }
    given_area = _area(frame, errors)
    for row, problems in read_problems.items():
        # A record that is not a Feature (or whose properties are not an object) has no fields to speak of;
        # a field the reader could not take (a lone surrogate, …) is not also "missing".
        structural = [(name, reason) for name, reason, *_ in problems if name in ("feature", "properties")]
        reported = {name for name, *_ in problems}
        found = errors.by_row[int(row)]
        errors.by_row[int(row)] = structural or found[: len(problems)] + [e for e in found[len(problems) :] if e[0] not in reported]

    good = ~errors.bad_rows(n)
    parts, part_of = polygon_parts(geoms[good])
    rows = np.flatnonzero(good)[part_of]
    part_area = geodesic_area_ha(parts)
    given = given_area[rows]
    area = np.where(np.isnan(given), np.round(part_area, 2), _share_given_area(given, part_area, rows))
    too_small = area <= 0
    too_big = area > AREA_MAX_HA
    area_errors = _Errors()
    area_errors.add(
        too_small,
        "area_ha",
        lambda j: f"geodesic area {part_area[j]:.3g} ha rounds to 0.00 ha"
        if np.isnan(given[j])
        else f"the part's share of the given area ({given[j]:g} ha) rounds to 0.00 ha",
    )
    area_errors.add(too_big, "area_ha", lambda j: f"geodesic area {part_area[j]:,.2f} ha exceeds DECIMAL(10,2) ({AREA_MAX_HA:,.2f})")
    for j, problems in area_errors.by_row.items():
        first, last = np.searchsorted(rows, rows[j], side="left"), np.searchsorted(rows, rows[j], side="right")
        label = f" (part {j - first + 1} of {last - first})" if last - first > 1 else ""
        errors.by_row[int(rows[j])].extend((name, reason + label) for name, reason in problems)
    keep = ~(too_small | too_big)
    # A feature with one failing part is rejected whole: records are all or nothing too.
    failed_features = np.isin(rows, list(errors.by_row))
    keep &= ~failed_features

    kept_rows, kept_parts = rows[keep], parts[keep]
    extra = {}
    if SOURCE_WKB in frame:
        # A zone whose geometry is the very object read from the file keeps the file's WKB for the store.
        untouched = _same_objects(kept_parts, raw_geoms[kept_rows])
        source = pa.array(frame[SOURCE_WKB].array).take(pa.array(kept_rows))
        extra[SOURCE_WKB] = pd.arrays.ArrowExtensionArray(pc.if_else(pa.array(untouched), source, pa.scalar(None, source.type)))
    zones = gpd.GeoDataFrame(
        {
            **{name: values[kept_rows] for name, values in columns.items()},
            "area_ha": area[keep],
            "file": pd.Categorical.from_codes(np.zeros(len(kept_rows), dtype=np.int8), categories=[file]),
            "feature": feature_no[kept_rows],
            **extra,
        },
        geometry=gpd.GeoSeries(kept_parts, crs=GEOMETRY_SRID),
    )
    zones = zones[[*ZONE_COLUMNS, "file", "feature", *extra]]
    return Validated(zones, errors.rejects(file, feature_no))


_is = np.frompyfunc(operator.is_, 2, 1)


def _same_objects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _is(a, b).astype(bool) if len(a) else np.zeros(0, dtype=bool)


def zone_wkb(zones: pd.DataFrame) -> pa.Array:
    """The zones' geometries as 2-D little-endian WKB, for the stores.

    Taken from the file (:data:`SOURCE_WKB`) where validation left a geometry as
    it was read, which spares a shapely → WKB encoding per zone (~2 s per million);
    encoded by shapely for the others (repaired, exploded, made 2-D, or read from
    GeoJSON).
    """
    geometries = np.asarray(zones.geometry.values)
    if SOURCE_WKB not in zones:
        return pa.array(shapely.to_wkb(geometries, output_dimension=2, byte_order=1), pa.binary())
    wkb = pa.array(zones[SOURCE_WKB].array, pa.binary())
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if wkb.null_count:
        missing = wkb.is_null().to_numpy(zero_copy_only=False)
        encoded = shapely.to_wkb(geometries[missing], output_dimension=2, byte_order=1)
        wkb = pc.replace_with_mask(wkb, pa.array(missing), pa.array(encoded, pa.binary()))
    return wkb
