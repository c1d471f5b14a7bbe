"""Areas from files and from GeoJSON documents, checked by the zones' geometry rules.

A file (GeoJSON, GeoPackage, Shapefile, GeoParquet; any CRS, reprojected) is read by the
ingest's reader and its features checked by the ingest's geometry rules, so an area is
refused for exactly the reasons a zone would be (not polygonal, empty, invalid unless
repaired, crossing the antimeridian, outside lon/lat…), plus the area's own limits: its
size (``FORESTGUARD_AREA_MAX_HA``) and vertices (``FORESTGUARD_AREA_MAX_VERTICES``).
Every refusal is one line naming the file (or request), the feature and the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from ..config import Settings, settings
from ..errors import InputError, UserError
from ..sources import CRS_ASSUMED, READ_PROBLEMS, READABLE, geojson_frame, read_zones_file
from ..validation import check_polygons, polygonal_part
from .shape import NAME_MAX_CHARS, Area, areas_of, measure

#: Saved-area names and plot ids are text; these characters would make them unreadable in a list.
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


class AreaRefused(UserError):
    """An area that cannot be used: not polygonal, invalid, too large, too detailed, unnamed…"""


def check_name(name: str, what: str = "area name") -> str:
    """A saved area's name: any text (stored and shown literally), not blank, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise AreaRefused(f"the {what} is empty")
    if len(name) > NAME_MAX_CHARS:
        raise AreaRefused(f"the {what} has {len(name)} characters; at most {NAME_MAX_CHARS}")
    if any(ch in _CONTROL for ch in name):
        raise AreaRefused(f"the {what} {name!r} contains control characters")
    return name


def read_area(path: str | Path, *, name: str | None = None, repair: bool = False) -> Area:
    """The area of a file: the union of its features' polygons, named ``name`` (default: the file's stem)."""
    path = Path(path)
    frame = read_zones_file(path)
    label = str(path)
    polygons = checked_polygons(frame, label, repair, settings().area_max_vertices)
    area = Area.of(
        check_name(name if name is not None else path.stem),
        _union(polygons, label),
        sha256=file_sha256(path),
        source=path.name,
    )
    return within_limits(area, label)


def area_of(store: Any, text: str, *, repair: bool = False) -> Area:
    """``--area FILE|NAME``: a file when one exists at that path (or the name looks like a file), else a saved area."""
    path = Path(text)
    try:
        is_file = path.exists()
    except OSError:
        is_file = False
    if is_file or path.suffix.lower() in READABLE:
        return read_area(path, repair=repair)
    return store.saved_area(text)


def read_plots(path: str | Path, id_field: str, *, repair: bool = False) -> list[Area]:
    """Each feature of a file as its own area, named by its ``id_field`` (unique, not empty)."""
    path = Path(path)
    frame = read_zones_file(path)
    label = str(path)
    column = find_column(frame, id_field, label)
    polygons = checked_polygons(frame, label, repair, settings().area_max_vertices * max(1, len(frame)))
    seen: dict[str, int] = {}
    for feature, value in enumerate(frame[column]):
        plot_id = feature_id(value, feature, column, label)
        if plot_id in seen:
            raise AreaRefused(f"{label}: feature {feature}: {column}: {plot_id!r} is also the id of feature {seen[plot_id]}; plot ids must be unique")
        seen[plot_id] = feature
    plots = areas_of(list(seen), polygons, sha256=file_sha256(path), source=path.name)
    measure(plots)
    config = settings()  # once: reading the environment 10,000 times took ~1 s
    for feature, plot in enumerate(plots):
        within_limits(plot, f"{label}: feature {feature} ({column} {plot.name!r})", config)
    return plots


def area_from_geojson(document: Any, *, name: str, label: str = "area", repair: bool = False) -> Area:
    """An area from a GeoJSON geometry, Feature or FeatureCollection (a request body's ``area``)."""
    if not isinstance(document, dict):
        raise AreaRefused(f"{label}: is not a GeoJSON object (a geometry, Feature or FeatureCollection)")
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    try:
        frame = geojson_frame(text, label)
    except InputError as exc:
        raise AreaRefused(str(exc)) from None
    polygons = checked_polygons(frame, label, repair, settings().area_max_vertices)
    area = Area.of(check_name(name), _union(polygons, label), sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    return within_limits(area, label)


def area_from_drawing(xs: list[float], ys: list[float], *, name: str = "drawn area") -> Area:
    """An area from a polygon drawn on a map, vertices in lon/lat (closed here)."""
    if len(xs) != len(ys):
        raise AreaRefused("a drawn area needs as many x as y coordinates")
    ring: list[tuple[float, float]] = []
    for corner in zip(map(float, xs), map(float, ys)):
        if not ring or corner != ring[-1]:  # a drawing tool repeats the corner under the pointer
            ring.append(corner)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    if len(ring) < 3:
        raise AreaRefused("a drawn area needs at least three corners")
    ring.append(ring[0])
    document = {"type": "Polygon", "coordinates": [ring]}
    return area_from_geojson(document, name=name, label="drawn area")


def within_limits(area: Area, label: str, config: Settings | None = None) -> Area:
    """The area, if its vertices and geodesic size are within the configured limits (``config``: read now when not given)."""
    config = settings() if config is None else config
    if area.vertices > config.area_max_vertices:
        raise AreaRefused(f"{label}: has {area.vertices:,} vertices, over the limit of {config.area_max_vertices:,} (FORESTGUARD_AREA_MAX_VERTICES); simplify it")
    if not area.area_ha > 0:
        raise AreaRefused(f"{label}: the area is empty (0 ha)")
    if area.area_ha > config.area_max_ha:
        raise AreaRefused(f"{label}: the area is {area.area_ha:,.0f} ha, over the limit of {config.area_max_ha:,.0f} ha (FORESTGUARD_AREA_MAX_HA)")
    return area


def checked_polygons(frame: gpd.GeoDataFrame, label: str, repair: bool, max_vertices: int) -> np.ndarray:
    """Each feature's (Multi)Polygon after the zones' geometry rules; the first problem is an error.

    ``max_vertices`` bounds the work before any costly check (the whole area's limit; for plots,
    the limit times their number, each plot being checked again on its own).
    """
    if len(frame) == 0:
        raise AreaRefused(f"{label}: has no features; an area needs at least one Polygon or MultiPolygon")
    vertices = int(shapely.get_num_coordinates(np.asarray(frame.geometry.values, dtype=object)).sum())
    if vertices > max_vertices:
        raise AreaRefused(f"{label}: has {vertices:,} vertices, over the limit of {settings().area_max_vertices:,} (FORESTGUARD_AREA_MAX_VERTICES); simplify it")
    explained = np.zeros(len(frame), dtype=bool)
    problems: dict[int, list[tuple[str, str]]] = {}
    for row, found in (frame.attrs.get(READ_PROBLEMS) or {}).items():
        structural = [(name, reason) for name, reason, *_ in found if name in ("feature", "geometry")]
        if structural:
            problems[int(row)] = structural
            explained[int(row)] = True
    polygons, geometry_problems = check_polygons(
        np.asarray(frame.geometry.values, dtype=object), repair=repair, crs_assumed=bool(frame.attrs.get(CRS_ASSUMED)), explained=explained
    )
    for row, found in geometry_problems.items():
        problems.setdefault(row, []).extend(found)
    if problems:
        first = min(problems)
        field = ", ".join(dict.fromkeys(f for f, _ in problems[first]))
        reason = "; ".join(r for _, r in problems[first])
        more = f" ({len(problems) - 1} more feature(s) have problems)" if len(problems) > 1 else ""
        raise AreaRefused(f"{label}: feature {first}: {field}: {reason}{more}")
    return polygons


def _union(polygons: np.ndarray, label: str) -> shapely.Geometry:
    merged = polygons[0] if len(polygons) == 1 else shapely.union_all(polygons)
    merged = polygonal_part(merged) if merged is not None and not merged.is_empty else None
    if merged is None or merged.is_empty:
        raise AreaRefused(f"{label}: the area is empty")
    return merged


def find_column(frame: gpd.GeoDataFrame, wanted: str, label: str, option: str = "--per-feature") -> str:
    """The file's field ``wanted`` (exact, else case-insensitive); a missing one is refused, naming the ``option`` that asked for it."""
    names = [c for c in frame.columns if c != frame.geometry.name]
    if wanted in names:
        return wanted
    folded = [c for c in names if str(c).casefold() == wanted.casefold()]
    if folded:
        return folded[0]
    shown = ", ".join(map(str, names[:15])) or "no attributes"
    raise AreaRefused(f"{label}: has no field {wanted!r} for {option}; it has: {shown}")


def feature_id(value: Any, feature: int, column: str, label: str, what: str = "plot") -> str:
    """A feature's id as text (a plot's, a reference feature's): not missing, no control characters."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise AreaRefused(f"{label}: feature {feature}: {column}: is missing; every {what} needs an id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 17.0 from a GDAL column of numbers is plot 17
    return check_name(str(value), f"{column} of feature {feature}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    targets = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for target in targets:
        with target.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
