"""Images of a :class:`ZoneLayer`: shading, country outlines, legend, whole maps.

Everything is drawn here, offline: the outlines are the Natural Earth countries
shipped in the package, drawn with PIL under the shaded zones, so a map
needs neither tiles nor network.
"""

from __future__ import annotations

from functools import lru_cache

import datashader.transfer_functions as tf
import geopandas as gpd
import numpy as np
import shapely
import xarray as xr
from PIL import Image, ImageDraw, ImageFont

from ..geodata import countries
from .geometry import mercator_box, to_mercator
from .layer import CATEGORIES, ZoneLayer
from .raster import Measure, Range, cached_aggregate

#: Colour of each classification: Okabe–Ito bluish green / vermillion / grey, distinct for colour-blind readers.
COLOR_KEY: dict[str, str] = {"legal": "#009E73", "illegal": "#D55E00", "none": "#8C8C8C"}
#: Legend text of each classification.
LABELS: dict[str, str] = {"legal": "Legal", "illegal": "Illegal", "none": "Unclassified"}
LAND_COLOR = "#EFECE6"
BORDER_COLOR = "#A3A3A3"
BACKGROUND = "#FFFFFF"

#: Smallest map side in metres: a single zone still gets some context around it.
_MIN_EXTENT_M = 2_000.0


def shade_image(agg: xr.DataArray, spread: int = 2, min_alpha: int = 90) -> np.ndarray:
    """The aggregate as a packed RGBA image (uint32 array, y ascending), shaded by datashader.

    ``tf.shade`` with :data:`COLOR_KEY`: colour = the classes' colours weighted by their share
    of the pixel, opacity by histogram equalisation of the pixel totals; ``tf.dynspread``
    then grows isolated pixels (up to ``spread`` px) so single small clearings stay visible
    at world scale.
    """
    values = np.asarray(agg.values, dtype=np.float64)
    shown = agg.copy(data=np.where(values > 0, values, np.nan))  # datashader: NaN is "nothing here"
    if not np.isfinite(shown.values).any():
        return np.zeros(values.shape[:2], dtype=np.uint32)
    image = tf.shade(shown, color_key={c: COLOR_KEY.get(str(c), COLOR_KEY["none"]) for c in agg.coords["classification"].values},
                     how="eq_hist", min_alpha=min_alpha)
    if spread:
        image = tf.dynspread(image, threshold=0.5, max_px=spread)
    return np.asarray(image.data, dtype=np.uint32)


def shade(agg: xr.DataArray, spread: int = 2) -> Image.Image:
    """The aggregate as a transparent PIL image, north up (see :func:`shade_image`)."""
    packed = np.ascontiguousarray(np.flipud(shade_image(agg, spread)))
    return Image.fromarray(packed.view(np.uint8).reshape(*packed.shape, 4), "RGBA")


def view_ranges(layer: ZoneLayer, bounds: tuple[float, float, float, float] | None, width: int, height: int) -> tuple[Range, Range]:
    """Web Mercator x/y ranges showing ``bounds`` (lon/lat; None: the layer's zones, padded) with square pixels."""
    if bounds is None:
        return fit_ranges(layer.bounds, width, height)
    return _square_pixels(mercator_box(bounds), width, height)


def fit_ranges(box: tuple[float, float, float, float], width: int, height: int) -> tuple[Range, Range]:
    """Ranges showing a Web Mercator box (zones' bounds) with a 5 % margin, square pixels."""
    xmin, ymin, xmax, ymax = box
    pad_x, pad_y = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05
    return _square_pixels((xmin - pad_x, ymin - pad_y, xmax + pad_x, ymax + pad_y), width, height)


def _square_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[Range, Range]:
    xmin, ymin, xmax, ymax = box
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    span_x, span_y = max(xmax - xmin, _MIN_EXTENT_M), max(ymax - ymin, _MIN_EXTENT_M)
    scale = max(span_x / width, span_y / height)  # metres per pixel, the same on both axes
    half_w, half_h = scale * width / 2, scale * height / 2
    return (cx - half_w, cx + half_w), (cy - half_h, cy + half_h)


@lru_cache(maxsize=1)
def world_mercator() -> gpd.GeoDataFrame:
    """Natural Earth countries in Web Mercator (polar latitudes clipped), projected once."""
    parts = countries().explode(index_parts=False)  # one polygon per row (the data has a collection)
    parts = parts[parts.geom_type == "Polygon"]

    def project(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(to_mercator(coords[:, 0], coords[:, 1]))

    geometry = shapely.transform(parts.geometry.values, project)
    return gpd.GeoDataFrame({"name": parts["name"].to_numpy()}, geometry=geometry, crs=3857)


@lru_cache(maxsize=1)
def _outline_rings() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Country shells, all rings (for borders) and each ring's bounds, in Web Mercator."""
    polygons = world_mercator().geometry.values
    shells = [shapely.get_coordinates(shapely.get_exterior_ring(p)) for p in polygons]
    rings = [shapely.get_coordinates(r) for r in shapely.get_rings(polygons)]
    bounds = np.array([(r[:, 0].min(), r[:, 1].min(), r[:, 0].max(), r[:, 1].max()) for r in rings])
    return shells, rings, bounds


def basemap(x_range: Range, y_range: Range, width: int, height: int, background: str | None = BACKGROUND) -> Image.Image:
    """Land and country borders for a view, drawn with PIL (no compiled kernels: instant in a fresh process)."""
    image = Image.new("RGBA", (width, height), background or (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    sx, sy = width / (x_range[1] - x_range[0]), height / (y_range[1] - y_range[0])

    def to_pixels(ring: np.ndarray) -> list[tuple[float, float]]:
        return list(zip((ring[:, 0] - x_range[0]) * sx, (y_range[1] - ring[:, 1]) * sy))

    shells, rings, bounds = _outline_rings()
    visible = (bounds[:, 2] >= x_range[0]) & (bounds[:, 0] <= x_range[1]) & (bounds[:, 3] >= y_range[0]) & (bounds[:, 1] <= y_range[1])
    for shell in shells:
        if len(shell) >= 3:
            draw.polygon(to_pixels(shell), fill=LAND_COLOR)
    for ring in (r for r, show in zip(rings, visible) if show):
        draw.line(to_pixels(ring), fill=BORDER_COLOR, width=1)
    return image


def draw_legend(image: Image.Image, categories: tuple[str, ...] = CATEGORIES) -> Image.Image:
    """A small key in the lower-left corner (drawn in place; returns the image)."""
    draw = ImageDraw.Draw(image)
    size = max(11, image.height // 55)
    font = ImageFont.load_default(size=size)
    pad, swatch = size // 2, size
    line_h = size + pad
    box_w = swatch + pad * 3 + max(int(draw.textlength(LABELS[c], font=font)) for c in categories)
    top = image.height - pad - line_h * len(categories) - pad
    draw.rectangle([pad, top, pad + box_w, image.height - pad], fill=(255, 255, 255, 220), outline=BORDER_COLOR)
    for i, category in enumerate(categories):
        y = top + pad + i * line_h
        draw.rectangle([pad * 2, y, pad * 2 + swatch, y + swatch], fill=COLOR_KEY[category])
        draw.text((pad * 3 + swatch, y), LABELS[category], fill="#333333", font=font)
    return image


def map_image(
    layer: ZoneLayer,
    bounds: tuple[float, float, float, float] | None = None,
    width: int = 1200,
    height: int = 800,
    outlines: bool = True,
    *,
    legend: bool = True,
    measure: Measure = "area_ha",
    background: str | None = BACKGROUND,
    cache=None,
) -> Image.Image:
    """A finished map of the layer: zones over land and borders, with a legend.

    ``bounds`` is a lon/lat box (xmin, ymin, xmax, ymax); None fits the zones.
    ``background=None`` keeps the image transparent (for overlays). With a ``cache`` the
    aggregate is taken from it when someone drew the same view of the same zones.
    """
    x_range, y_range = view_ranges(layer, bounds, width, height)
    agg = cached_aggregate(layer, x_range, y_range, width, height, measure=measure, cache=cache)
    return map_picture(agg, outlines=outlines, legend=legend, background=background)


def map_picture(agg: xr.DataArray, *, outlines: bool = True, legend: bool = True, background: str | None = BACKGROUND) -> Image.Image:
    """An aggregate as a finished picture: shaded zones over land and borders, with a legend."""
    x_range, y_range = agg.attrs["x_range"], agg.attrs["y_range"]
    height, width = agg.shape[:2]
    zones = shade(agg)
    if outlines:
        image = Image.alpha_composite(basemap(x_range, y_range, width, height, background), zones)
    elif background:
        image = Image.alpha_composite(Image.new("RGBA", (width, height), background), zones)
    else:
        image = zones
    return draw_legend(image) if legend else image
