"""Aggregation of a :class:`ZoneLayer` onto a pixel grid with datashader: points and polygons.

At world scale nearly every clearing is smaller than a pixel. Rasterizing such polygons
keeps or drops each of them depending on where the pixel centres fall; drawing each as an
area-weighted point at its centroid (``Canvas.points`` with ``ds.sum``) is exact in total
and needs no geometry. Zones whose Mercator area covers at least
:data:`POLYGON_MIN_PIXELS` pixels are rasterized as polygons (``Canvas.polygons``, their
geometry read through :class:`~forestguard.render.geometry.GeometrySource`), each covered
pixel receiving the zone's measure divided by the pixels it is expected to cover, so totals
stay the same whichever way a zone is drawn. Both go through ``ds.by("classification", …)``:
the result is the ``(y, x, classification)`` DataArray datashader users know.

Points are fed to datashader :data:`~forestguard.render.layer.CHUNK_ROWS` at a time and the
partial aggregates added: scratch memory is bounded whatever the number of zones.
"""

from __future__ import annotations

import logging
from typing import Literal

import datashader as ds
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from .layer import CATEGORIES, ZoneLayer

log = logging.getLogger(__name__)

Measure = Literal["area_ha", "zones"]
MEASURES: tuple[str, ...] = ("area_ha", "zones")
Range = tuple[float, float]

#: Zones whose Mercator area covers at least this many pixels are rasterized as polygons; the
#: smaller ones are area-weighted points (a polygon of a pixel or two is kept or dropped
#: depending on where the pixel centres fall; its centroid is exact).
POLYGON_MIN_PIXELS = 4.0
#: Most polygons one view reads from the store; past it the smaller ones are drawn as points
#: and the aggregate says so (``attrs["as_points"]``), so a view never reads more than this.
MAX_VIEW_POLYGONS = 20_000


def pixel_size(x_range: Range, y_range: Range, width: int, height: int) -> float:
    """The larger side of one pixel in metres (Web Mercator)."""
    return max((x_range[1] - x_range[0]) / width, (y_range[1] - y_range[0]) / height)


def canvas(x_range: Range, y_range: Range, width: int, height: int) -> ds.Canvas:
    return ds.Canvas(plot_width=int(width), plot_height=int(height), x_range=tuple(map(float, x_range)), y_range=tuple(map(float, y_range)))


def _reduction(measure: str) -> ds.reductions.Reduction:
    return ds.by("classification", ds.count() if measure == "zones" else ds.sum(measure))


def _point_columns(measure: str) -> list[str]:
    return ["x", "y", "classification", *(["area_ha"] if measure == "area_ha" else [])]


def empty_aggregate(x_range: Range, y_range: Range, width: int, height: int, measure: str = "area_ha") -> xr.DataArray:
    """Zeros on the grid datashader's Canvas uses (pixel centres), ``(y, x, classification)``."""
    width, height = int(width), int(height)
    xs = np.linspace(x_range[0], x_range[1], width, endpoint=False) + (x_range[1] - x_range[0]) / width / 2
    ys = np.linspace(y_range[0], y_range[1], height, endpoint=False) + (y_range[1] - y_range[0]) / height / 2
    return xr.DataArray(
        np.zeros((height, width, len(CATEGORIES))),
        coords={"y": ys, "x": xs, "classification": list(CATEGORIES)},
        dims=["y", "x", "classification"],
        name=measure,
        attrs={"x_range": tuple(map(float, x_range)), "y_range": tuple(map(float, y_range)), "measure": measure},
    )


def aggregate(layer: ZoneLayer, x_range: Range, y_range: Range, width: int, height: int, *, measure: Measure = "area_ha") -> xr.DataArray:
    """Hectares (or zones, ``measure="zones"``) per pixel and classification, drawn by datashader.

    Zeros where nothing is; summed over all pixels the values give the measure's total over
    the zones in view. ``attrs`` say how many zones were drawn as points and as polygons.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    out = empty_aggregate(x_range, y_range, width, height, measure)
    x_range, y_range = out.attrs["x_range"], out.attrs["y_range"]
    cvs = canvas(x_range, y_range, width, height)
    pixel_area = _pixel_area(x_range, y_range, width, height)
    n_points, big, as_points = _split_view(layer, x_range, y_range, pixel_area)
    values = out.data
    for chunk in layer.chunks(_point_columns(measure), 0, n_points):
        _add(values, cvs.points(chunk, "x", "y", agg=_reduction(measure)))
    if len(as_points):
        _add(values, cvs.points(_rows(layer, as_points, _point_columns(measure)), "x", "y", agg=_reduction(measure)))
        log.info("view with %d polygons: the %d smallest drawn as points", len(big), len(as_points))
    polygons = big[len(as_points):]
    drawn = _polygons(layer, polygons, measure, pixel_area)
    if len(drawn):
        _add(values, cvs.polygons(drawn, geometry="geometry", agg=ds.by("classification", ds.sum("weight"))))
    out.attrs.update(points=int(n_points), polygons=int(len(drawn)), as_points=int(len(as_points)))
    return out


def _pixel_area(x_range: Range, y_range: Range, width: int, height: int) -> float:
    return (x_range[1] - x_range[0]) / int(width) * (y_range[1] - y_range[0]) / int(height)


def _split_view(layer: ZoneLayer, x_range: Range, y_range: Range, pixel_area: float) -> tuple[int, np.ndarray, np.ndarray]:
    """How a view draws its zones: the count drawn as points by size, the polygon-sized ones in
    view (positions, smallest first) and those of them drawn as points (past MAX_VIEW_POLYGONS)."""
    n_points = layer.split(pixel_area * POLYGON_MIN_PIXELS)
    big = np.flatnonzero(layer.in_box((x_range[0], y_range[0], x_range[1], y_range[1]), n_points)) + n_points
    as_points = big[:-MAX_VIEW_POLYGONS] if len(big) > MAX_VIEW_POLYGONS else big[:0]  # the smallest of too many
    return n_points, big, as_points


def polygons_as_points(layer: ZoneLayer, x_range: Range, y_range: Range, width: int, height: int) -> int:
    """How many zones a view would draw as polygons but draws as points (too many to read): what a
    page says beside a map from the cache, whose aggregate carries no counts. No geometry is read."""
    return int(len(_split_view(layer, tuple(map(float, x_range)), tuple(map(float, y_range)), _pixel_area(x_range, y_range, width, height))[2]))


def _add(values: np.ndarray, part: xr.DataArray) -> None:
    """Add a datashader aggregate (NaN where empty) into ``values``, classes in :data:`CATEGORIES` order."""
    part = part.transpose("y", "x", part.dims[-1])
    order = [list(map(str, part.coords[part.dims[-1]].values)).index(c) for c in CATEGORIES]
    values += np.nan_to_num(np.asarray(part.data, dtype=np.float64))[..., order]


def _rows(layer: ZoneLayer, positions: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Selected rows at ``positions`` (positions within the selection)."""
    rows = positions if layer.rows is None else layer.rows[positions]
    return layer.base[columns].take(rows)


def _polygons(layer: ZoneLayer, positions: np.ndarray, measure: str, pixel_area: float) -> gpd.GeoDataFrame:
    """The zones at ``positions`` as Mercator polygons with their per-pixel weight (zones missing from the store are left out)."""
    if not len(positions) or layer.geometry is None:
        return gpd.GeoDataFrame({"weight": [], "classification": pd.Categorical([], categories=CATEGORIES)}, geometry=gpd.GeoSeries([]))
    rows = _rows(layer, positions, ["id", "mercator_area", "area_ha", "classification"])
    shapes = layer.geometry.polygons(rows["id"].to_numpy())
    found = np.array([s is not None for s in shapes], dtype=bool)
    expected_pixels = np.maximum(rows["mercator_area"].to_numpy(np.float64) / pixel_area, 1.0)
    amount = rows["area_ha"].to_numpy(np.float64) if measure == "area_ha" else np.ones(len(rows))
    frame = gpd.GeoDataFrame(
        {"weight": (amount / expected_pixels)[found], "classification": rows["classification"].to_numpy()[found]},
        geometry=gpd.GeoSeries(shapes[found]),
    )
    frame["classification"] = pd.Categorical(frame["classification"], categories=CATEGORIES)
    return frame


def totals(agg: xr.DataArray) -> dict[str, float]:
    """The aggregate summed per classification (legend and tests)."""
    sums = np.asarray(agg.values, dtype=np.float64).sum(axis=(0, 1))
    return {str(category): float(total) for category, total in zip(agg.coords["classification"].values, sums)}


def cached_aggregate(
    layer: ZoneLayer,
    x_range: Range,
    y_range: Range,
    width: int,
    height: int,
    *,
    measure: Measure = "area_ha",
    cache=None,
) -> xr.DataArray:
    """:func:`aggregate` through the cache (``cache.cached_array``), keyed by layer, view and measure.

    A view someone already looked at (the default extent of a dashboard, a shared link, a
    report's map the dashboard drew) is served from the cache instead of re-rendered: no
    datashader compilation in a process that only shows cached views. Stored as float32:
    7 significant digits are plenty for shading (use :func:`aggregate` for exact sums).
    """
    if cache is None:
        return aggregate(layer, x_range, y_range, width, height, measure=measure)
    view = [round(float(v), 3) for v in (*x_range, *y_range)]
    parts = [layer.key, *view, int(width), int(height), measure]
    drawn: dict[str, int] = {}

    def compute() -> np.ndarray:
        made = aggregate(layer, x_range, y_range, width, height, measure=measure)
        drawn.update({k: made.attrs[k] for k in ("points", "polygons", "as_points")})
        return made.values.astype(np.float32)

    values = cache.cached_array("zones", parts, layer.data_version, compute)
    out = empty_aggregate(x_range, y_range, width, height, measure)
    out.data = np.asarray(values, dtype=np.float64)
    out.attrs.update(drawn)  # drawn here (a miss): how; from the cache nothing says (see polygons_as_points)
    return out
