"""Aggregation of a :class:`ZoneLayer` onto a pixel grid: the hybrid of points and polygons.

At world scale nearly every clearing is smaller than a pixel. Rasterizing such
polygons costs a full polygon scan each and, depending on where the pixel
centres fall, keeps or loses them; aggregating them as area-weighted
footprints (the whole measure at the centroid's pixel, or shared among the
few pixels a zone of one to three pixels covers) is exact in total and far
cheaper: a few numpy passes and one ``bincount``. Zones spanning more than a
few pixels are rasterized as polygons (a numpy scanline fill of just those
zones within the view, pixel for pixel what datashader's ``Canvas.polygons``
fills, which the tests check), each covered pixel receiving the zone's
measure spread evenly over its expected pixel count, so totals stay the same
whichever way a zone is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .layer import CATEGORIES, ZoneLayer

Measure = Literal["area_ha", "zones"]
MEASURES: tuple[str, ...] = ("area_ha", "zones")

Range = tuple[float, float]

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True, eq=False)
class Aggregate:
    """A measure per pixel and classification over a Web Mercator view.

    What datashader's ``Canvas`` returns as an ``xarray.DataArray`` (``values``
    is ``(y, x, classification)``, y ascending), kept as plain numpy because
    xarray (with the dask and scipy it probes for) costs a report kernel or a
    server process ~0.6 s to import, for two coordinate vectors that the view
    already defines. :meth:`to_xarray` gives the DataArray for interoperation.
    """

    values: np.ndarray
    x_range: Range
    y_range: Range
    measure: str = "area_ha"
    categories: tuple[str, ...] = CATEGORIES
    points: int | None = None  # zones aggregated as footprints (None: served from the cache)
    polygons: int | None = None  # zones rasterized as polygons

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @property
    def height(self) -> int:
        return self.values.shape[0]

    @property
    def xs(self) -> np.ndarray:
        """Pixel centres along x, as datashader's Canvas puts them."""
        return _centres(self.x_range, self.width)

    @property
    def ys(self) -> np.ndarray:
        return _centres(self.y_range, self.height)

    def astype(self, dtype: np.dtype | type) -> "Aggregate":
        return replace(self, values=self.values.astype(dtype))

    def to_xarray(self) -> "xr.DataArray":
        import xarray as xr

        return xr.DataArray(
            self.values,
            coords={"y": self.ys, "x": self.xs, "classification": list(self.categories)},
            dims=["y", "x", "classification"],
            name=self.measure,
            attrs={"x_range": self.x_range, "y_range": self.y_range, "points": self.points, "polygons": self.polygons},
        )


def _centres(span: Range, pixels: int) -> np.ndarray:
    return np.linspace(span[0], span[1], pixels, endpoint=False) + (span[1] - span[0]) / pixels / 2

#: Zones spanning fewer pixels than this are aggregated as points. Rasterizing a
#: polygon only a pixel or two wide keeps or drops it depending on where the pixel
#: centres fall; its area-weighted centroid is exact.
POLYGON_MIN_PIXELS = 3.0


def pixel_size(x_range: Range, y_range: Range, width: int, height: int) -> float:
    """The larger side of one pixel in metres (Web Mercator)."""
    return max((x_range[1] - x_range[0]) / width, (y_range[1] - y_range[0]) / height)


def split_by_size(layer: ZoneLayer, pixel: float) -> int:
    """How many zones (a prefix of the size-sorted layer) are drawn as points at this pixel size."""
    return int(np.searchsorted(layer.sizes, pixel * POLYGON_MIN_PIXELS, side="right"))


def aggregate(
    layer: ZoneLayer,
    x_range: Range,
    y_range: Range,
    width: int,
    height: int,
    *,
    measure: Measure = "area_ha",
) -> Aggregate:
    """Zones (``measure="zones"``) or hectares per pixel and classification.

    The ``(y, x, classification)`` float64 values are what
    ``Canvas.polygons(..., agg=ds.by("classification", …))`` gives, with zeros
    where nothing is; summed over all pixels they give the measure's total over
    the zones in view.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    width, height = int(width), int(height)
    x_range, y_range = (float(x_range[0]), float(x_range[1])), (float(y_range[0]), float(y_range[1]))
    pixel = pixel_size(x_range, y_range, width, height)
    n_points = split_by_size(layer, pixel)
    zones = layer.zones
    # The small zones are a prefix of the shared, size-sorted frame: a slice, no copy per render.
    values = _footprints(zones.iloc[:n_points], x_range, y_range, width, height, measure)
    big = zones.iloc[n_points:]
    polygons = 0
    if len(big):
        visible = big[layer.in_box((x_range[0], y_range[0], x_range[1], y_range[1]))[n_points:]]
        polygons = len(visible)
        if polygons:
            values += _polygon_aggregate(layer, visible, measure, x_range, y_range, width, height)
    return Aggregate(values, x_range, y_range, measure, CATEGORIES, n_points, polygons)


def _footprints(small: pd.DataFrame, x_range: Range, y_range: Range, width: int, height: int, measure: str) -> np.ndarray:
    """Zones smaller than a few pixels as area-weighted footprints; totals are exact.

    A zone under a pixel adds its whole measure to the pixel of its centroid;
    a zone one to a few pixels wide shares it among the pixels a square of
    its own area (around its centroid) overlaps, in proportion to the overlap.
    """
    n_categories = len(CATEGORIES)
    out = np.zeros(height * width * n_categories, dtype=np.float64)
    if not len(small):
        return out.reshape(height, width, n_categories)
    sx, sy = width / (x_range[1] - x_range[0]), height / (y_range[1] - y_range[0])
    # The footprint: below a pixel, the centroid alone (an area-weighted point, one pixel); from
    # one pixel up, a square of the zone's own area around its centroid, shared by overlap (a
    # bounding box would overstate a star-shaped or diagonal zone's cover several times over).
    half = np.sqrt(small["mercator_area"].to_numpy()) / 2
    half = np.where(2 * half * max(sx, sy) < 1.0, 0.0, half)
    cx, cy = small["x"].to_numpy(), small["y"].to_numpy()
    x0, x1 = (cx - half - x_range[0]) * sx, (cx + half - x_range[0]) * sx
    y0, y1 = (cy - half - y_range[0]) * sy, (cy + half - y_range[0]) * sy
    inside = (x1 >= 0) & (x0 < width) & (y1 >= 0) & (y0 < height)
    weight, category = small[measure].to_numpy(), small["classification"].cat.codes.to_numpy()
    if not inside.all():
        x0, x1, y0, y1, weight, category = x0[inside], x1[inside], y0[inside], y1[inside], weight[inside], category[inside]
    first_col, first_row, last_col, last_row = np.floor(x0), np.floor(y0), np.floor(x1), np.floor(y1)
    # Most zones lie within one pixel: their whole measure goes there, no overlap arithmetic.
    single = (first_col == last_col) & (first_row == last_row) & (first_col >= 0) & (first_col < width) & (first_row >= 0) & (first_row < height)
    indices = [((first_row[single] * width + first_col[single]) * n_categories + category[single]).astype(np.int64)]
    weights = [weight[single]]
    straddling = ~single
    x0, x1, y0, y1, weight, category = x0[straddling], x1[straddling], y0[straddling], y1[straddling], weight[straddling], category[straddling]
    first_col, first_row, last_col, last_row = first_col[straddling], first_row[straddling], last_col[straddling], last_row[straddling]
    span_x, span_y = x1 - x0, y1 - y0
    for dx in range(int((last_col - first_col).max(initial=0)) + 1):
        col = first_col + dx
        share_x = _overlap(x0, x1, col, span_x, dx)
        for dy in range(int((last_row - first_row).max(initial=0)) + 1):
            row = first_row + dy
            share = share_x * _overlap(y0, y1, row, span_y, dy)
            keep = (share > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
            indices.append(((row[keep] * width + col[keep]) * n_categories + category[keep]).astype(np.int64))
            weights.append(weight[keep] * share[keep])
    out += np.bincount(np.concatenate(indices), weights=np.concatenate(weights), minlength=out.size)
    return out.reshape(height, width, n_categories)


def _overlap(low: np.ndarray, high: np.ndarray, cell: np.ndarray, span: np.ndarray, offset: int) -> np.ndarray:
    """Share of [low, high] inside [cell, cell + 1]; a zero-width interval lies wholly in its first cell."""
    covered = np.clip(np.minimum(high, cell + 1) - np.maximum(low, cell), 0.0, None)
    return np.where(span > 0, covered / np.where(span > 0, span, 1.0), 1.0 if offset == 0 else 0.0)


def _pixel_area(x_range: Range, y_range: Range, width: int, height: int) -> float:
    return (x_range[1] - x_range[0]) / width * (y_range[1] - y_range[0]) / height


def _polygon_aggregate(layer: ZoneLayer, visible: pd.DataFrame, measure: str, x_range: Range, y_range: Range, width: int, height: int) -> np.ndarray:
    """Rasterize the visible zones bigger than a pixel, each spread evenly over its expected pixels."""
    expected_pixels = np.maximum(visible["mercator_area"].to_numpy() / _pixel_area(x_range, y_range, width, height), 1.0)
    weights = visible[measure].to_numpy() / expected_pixels
    categories = visible["classification"].cat.codes.to_numpy()
    start, end, zone = layer.geometry.edges(visible["geom_row"].to_numpy())
    return polygon_fill(start, end, zone, weights, categories, x_range, y_range, width, height, len(CATEGORIES))


def polygon_fill(
    start: np.ndarray,
    end: np.ndarray,
    zone: np.ndarray,
    weights: np.ndarray,
    categories: np.ndarray,
    x_range: Range,
    y_range: Range,
    width: int,
    height: int,
    n_categories: int,
) -> np.ndarray:
    """Sum of ``weights[z]`` over the zones z covering each pixel centre, per category: ``(height, width, n)``.

    A scanline fill by winding number, with numpy: every edge is cut by the pixel-centre
    rows it spans (half open, so a vertex on a row counts once); each crossing adds the
    zone's weight to every pixel right of it, positive where the boundary goes down and
    negative where it goes up, through a difference array summed along the row. With shells
    counter-clockwise and holes clockwise (:class:`ZoneGeometry` orients them) a pixel inside
    gets the weight once and one outside or in a hole nothing, with no sorting. Like
    datashader's ``Canvas.polygons`` it fills the pixels whose centre lies inside (the tests
    compare the two pixel by pixel), but it needs no JIT compilation, which costs seconds in
    every new process (holoviz/datashader#1318) and was a third of a report's run time.
    """
    sx, sy = width / (x_range[1] - x_range[0]), height / (y_range[1] - y_range[0])
    xa, ya = (start[:, 0] - x_range[0]) * sx, (start[:, 1] - y_range[0]) * sy
    xb, yb = (end[:, 0] - x_range[0]) * sx, (end[:, 1] - y_range[0]) * sy
    # Rows whose centre r + 0.5 lies in [min y, max y) of the edge, within the canvas.
    first = np.clip(np.ceil(np.minimum(ya, yb) - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(ya, yb) - 0.5), 0, height).astype(np.int64)
    count = np.maximum(stop - first, 0)
    edge = np.repeat(np.arange(len(count)), count)
    row = first[edge] + (np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count))
    slope = (xb - xa) / np.where(yb != ya, yb - ya, 1.0)
    x = xa[edge] + (row + 0.5 - ya[edge]) * slope[edge]
    # The first pixel whose centre is at or right of the crossing (width: none on the canvas).
    column = np.clip(np.ceil(x - 0.5), 0, width).astype(np.int64)
    owner = zone[edge]
    cells = height * (width + 1) * n_categories
    index = (row * (width + 1) + column) * n_categories + categories[owner]
    down = (yb < ya)[edge]
    sign = np.where(down, 1.0, -1.0)
    shape = (height, width + 1, n_categories)
    summed = np.cumsum(np.bincount(index, sign * weights[owner], cells).reshape(shape), axis=1)
    # Exact zeros where no zone is (the float sum of +w and -w may leave 1e-17 behind).
    covered = np.cumsum((np.bincount(index[down], minlength=cells) - np.bincount(index[~down], minlength=cells)).reshape(shape), axis=1)
    return np.where(covered > 0, summed, 0.0)[:, :width, :]


def totals(agg: Aggregate) -> dict[str, float]:
    """The aggregate summed per classification (legend and tests)."""
    sums = agg.values.sum(axis=(0, 1))
    return {category: float(total) for category, total in zip(agg.categories, sums)}


def cached_aggregate(
    layer: ZoneLayer,
    x_range: Range,
    y_range: Range,
    width: int,
    height: int,
    *,
    measure: Measure = "area_ha",
    cache=None,
) -> Aggregate:
    """:func:`aggregate` through the cache (``cache.cached_array``), keyed by layer, view and measure.

    A view someone already looked at (the default extent of a dashboard, a
    shared link) is served compressed from the cache instead of re-rendered.
    Stored as float32: half the bytes to compress and move, and 7 significant
    digits are plenty for shading (use :func:`aggregate` for exact sums).
    """
    if cache is None:
        return aggregate(layer, x_range, y_range, width, height, measure=measure)
    view = [round(float(v), 3) for v in (*x_range, *y_range)]
    parts = [layer.key, *view, int(width), int(height), measure]

    def compute() -> np.ndarray:
        return aggregate(layer, x_range, y_range, width, height, measure=measure).values.astype(np.float32)

    values = cache.cached_array("zones", parts, layer.data_version, compute)
    return Aggregate(values, (float(x_range[0]), float(x_range[1])), (float(y_range[0]), float(y_range[1])), measure)
