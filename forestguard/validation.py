"""Zone validation: the one gate every record passes before any engine stores it.

Input is a frame whose columns already carry schema names (see
:mod:`forestguard.sources` for reading and renaming). Output is a frame of
clean zones, one Polygon each, with values exactly as the table stores them,
plus a list of rejects that say which record failed and why. Checks are
vectorised (shapely 2, pandas) so a million demo zones validate in seconds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .area import geodesic_area_ha, polygon_parts
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
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy().copy()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        blank = values.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
        missing |= blank.fillna(False).to_numpy(dtype=bool)
    return missing


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values and a mask of entries that are present but not numbers (bools count as not)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(len(values), np.nan), ~values.isna().to_numpy()
    if values.dtype == object:
        is_bool = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        numeric = pd.to_numeric(values.where(~is_bool), errors="coerce")
    else:
        is_bool = np.zeros(len(values), dtype=bool)
        numeric = pd.to_numeric(values, errors="coerce")
    numbers = numeric.to_numpy(dtype=float, na_value=np.nan)
    not_number = (~_is_missing(values) & np.isnan(numbers)) | is_bool
    return numbers, not_number


def _text(frame: pd.DataFrame, name: str, errors: _Errors, *, required: bool) -> pd.Series:
    n = len(frame)
    if name not in frame:
        if required:
            errors.add(np.ones(n, dtype=bool), name, lambda i: "is required")
        return pd.Series([None] * n, dtype=object, index=frame.index)
    raw = frame[name]
    missing = _is_missing(raw)
    if required:
        errors.add(missing, name, lambda i: "is required and must not be empty")
    # Text is data: keep it exactly as given, only numbers are spelled out as text.
    text = raw.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore").astype(object)
    text = text.where(~missing, None)
    limit = TEXT_LIMITS.get(name)
    lengths = text.map(len, na_action="ignore").fillna(0).to_numpy()
    if limit:
        errors.add(lengths > limit, name, lambda i: f"is {int(lengths[i])} characters long; the limit is {limit}")
    has_nul = text.map(lambda v: "\x00" in v, na_action="ignore").fillna(False).to_numpy(dtype=bool)
    errors.add(has_nul, name, lambda i: "contains a NUL character")
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
    fractional = ok & (np.isnan(numbers) | ~np.isfinite(numbers) | (numbers != np.round(numbers)))
    errors.add(fractional, "year", lambda i: f"{_show(raw.iat[i])} is not a whole number")
    ok &= ~fractional
    out_of_range = ok & ((numbers < YEAR_MIN) | (numbers > last))
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
    return np.where(present & ~bad, np.round(numbers, 2), np.nan)


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
    stored = np.full(n, None, dtype=object)
    # Few distinct spellings: parse each once.
    lookup: dict[object, str | None] = {}
    bad = np.zeros(n, dtype=bool)
    for i, value in enumerate(raw.tolist()):
        if missing[i]:
            continue
        key = value if isinstance(value, str) else repr(value)
        if key not in lookup:
            try:
                lookup[key] = Classification.parse(value).stored if isinstance(value, str) else None
            except ValueError:
                lookup[key] = None
        stored[i] = lookup[key]
        bad[i] = lookup[key] is None
    errors.add(bad, "classification", lambda i: f"{_show(raw.iat[i])} is not legal or illegal (légale/illégale)")
    return stored


def _geometry(geoms: np.ndarray, errors: _Errors, *, repair: bool) -> np.ndarray:
    """Check and normalise geometries to 2D valid (Multi)Polygons; failing rows become None."""
    n = len(geoms)
    missing = shapely.is_missing(geoms)
    errors.add(missing, "geometry", lambda i: "is missing")
    present = ~missing
    empty = present & shapely.is_empty(np.where(present, geoms, None))
    errors.add(empty, "geometry", lambda i: "is empty")
    present &= ~empty
    types = np.array([g.geom_type if ok else "" for g, ok in zip(geoms, present)], dtype=object)
    wrong = present & ~np.isin(types, list(_POLYGONAL))
    errors.add(wrong, "geometry", lambda i: f"is a {types[i]}; only Polygon and MultiPolygon are accepted")
    present &= ~wrong
    out = np.where(present, geoms, None)
    out = shapely.force_2d(out)
    xmin, ymin, xmax, ymax = shapely.bounds(out).T
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(xmin) & np.isfinite(ymin) & np.isfinite(xmax) & np.isfinite(ymax)
        not_finite = present & ~finite
        # NaN coordinates do not show in bounds: check every coordinate.
        coords = shapely.get_coordinates(out, include_z=False, return_index=True)
        bad_coords = ~np.isfinite(coords[0]).all(axis=1)
        not_finite[np.unique(coords[1][bad_coords])] = True
        not_finite &= present
        errors.add(not_finite, "geometry", lambda i: "has coordinates that are not finite numbers")
        present &= ~not_finite
        outside = present & ((xmin < -180) | (xmax > 180) | (ymin < -90) | (ymax > 90))
    errors.add(
        outside,
        "geometry",
        lambda i: f"coordinates outside EPSG:{GEOMETRY_SRID} (lon -180..180, lat -90..90): "
        f"bounds {xmin[i]:.6g},{ymin[i]:.6g},{xmax[i]:.6g},{ymax[i]:.6g}",
    )
    present &= ~outside
    out = np.where(present, out, None)
    valid = shapely.is_valid(out) | ~present
    invalid = ~valid
    if invalid.any():
        if repair:
            repaired = shapely.make_valid(out[invalid])
            out[invalid] = [_polygonal_part(g) for g in repaired]
            lost = np.zeros(n, dtype=bool)
            lost[invalid] = shapely.is_empty(out[invalid]) | shapely.is_missing(out[invalid])
            errors.add(lost, "geometry", lambda i: "repair left no polygon")
        else:
            reasons = shapely.is_valid_reason(out[invalid])
            reason_of = dict(zip(np.flatnonzero(invalid), reasons))
            errors.add(invalid, "geometry", lambda i: f"invalid: {reason_of[i]} (use --repair to fix)")
    return out


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
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
        rounded = np.round(numbers, 2)
        bad = present & ~((rounded > 0) & (rounded <= AREA_MAX_HA))
    errors.add(bad, "area_ha", lambda i: f"{_show(raw.iat[i])} must be > 0 and at most {AREA_MAX_HA:,.2f} (DECIMAL(10,2))")
    return np.where(present & ~bad, numbers, np.nan)


def validate(frame: pd.DataFrame, *, file: str, repair: bool = False, features: Iterable[int] | None = None) -> Validated:
    """Check every record; return clean zones (one Polygon each) and the rejects.

    ``features`` are the record numbers used in messages (default 0..n-1, the
    position of the feature in its file).
    """
    n = len(frame)
    frame = frame.reset_index(drop=True)
    feature_no = np.arange(n) if features is None else np.asarray(list(features))
    errors = _Errors()
    geometry_column = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else "geometry"
    raw_geoms = (
        np.asarray(frame[geometry_column].values, dtype=object) if geometry_column in frame else np.full(n, None, dtype=object)
    )
    geoms = _geometry(raw_geoms, errors, repair=repair)
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

    good = ~errors.bad_rows(n)
    parts, part_of = polygon_parts(geoms[good])
    rows = np.flatnonzero(good)[part_of]
    part_area = geodesic_area_ha(parts)
    area = part_area.copy()
    given = given_area[rows]
    has_given = ~np.isnan(given)
    if has_given.any():
        # A given area belongs to the whole feature: share it between its parts by their size.
        feature_area = pd.Series(part_area).groupby(rows).transform("sum").to_numpy()
        share = np.divide(part_area, feature_area, out=np.ones_like(part_area), where=feature_area > 0)
        area[has_given] = given[has_given] * share[has_given]
    area = np.round(area, 2)
    too_small = area <= 0
    too_big = area > AREA_MAX_HA
    area_errors = _Errors()
    area_errors.add(too_small, "area_ha", lambda j: f"geodesic area {part_area[j]:.6g} ha rounds to 0.00 ha")
    area_errors.add(too_big, "area_ha", lambda j: f"geodesic area {part_area[j]:,.2f} ha exceeds DECIMAL(10,2)")
    for j, problems in area_errors.by_row.items():
        errors.by_row[int(rows[j])].extend(problems)
    keep = ~(too_small | too_big)
    # A feature with one failing part is rejected whole: records are all or nothing too.
    failed_features = np.isin(rows, list(errors.by_row))
    keep &= ~failed_features

    zones = gpd.GeoDataFrame(
        {
            **{name: (values.to_numpy() if isinstance(values, pd.Series) else values)[rows[keep]] for name, values in columns.items()},
            "area_ha": area[keep],
            "file": file,
            "feature": feature_no[rows[keep]],
        },
        geometry=gpd.GeoSeries(parts[keep], crs=GEOMETRY_SRID),
    )
    zones = zones[[*ZONE_COLUMNS, "file", "feature"]]
    return Validated(zones, errors.rejects(file, feature_no))
