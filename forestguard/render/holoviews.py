"""The map as GeoViews elements: the zone image and country outlines with their CRS, tiles from configuration.

GeoViews elements know their coordinate reference system (Web Mercator here), so a
researcher overlays their own layers in any CRS in a notebook (``zones * gv.Polygons(my_areas)``)
and GeoViews projects them. The zones are one image (datashader's shading of the aggregate),
so an exported HTML embeds one image plus vector outlines instead of millions of polygons and
needs no Python kernel to display. Tiles only when ``FORESTGUARD_TILE_URL`` is set: by default
nothing is fetched from outside.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import cartopy.crs as ccrs
import geoviews as gv
import holoviews as hv
import numpy as np
import xarray as xr

from ..config import settings

from .image import BACKGROUND, BORDER_COLOR, COLOR_KEY, LABELS, map_picture, view_ranges, world_mercator
from .layer import CATEGORIES, ZoneLayer
from .raster import Measure, cached_aggregate

#: The CRS every map element is in (Web Mercator, as the aggregates are drawn).
MERCATOR = ccrs.GOOGLE_MERCATOR


def bokeh_extension(**options) -> None:
    """HoloViews on Bokeh as ForestGuard draws: on a canvas, not HoloViews' default WebGL.

    Our charts have tens of glyphs and the map arrives as one image: WebGL buys nothing there,
    holds one of a page's few WebGL contexts per chart and, without a GPU, costs ~100 ms a
    repaint (its canvas is copied back each time).
    """
    hv.extension("bokeh", logo=False, **options)
    hv.renderer("bokeh").webgl = False


@lru_cache(maxsize=1)
def outline_paths() -> list[np.ndarray]:
    """Country borders (Web Mercator) as ONE coordinate array, rings separated by NaN rows.

    Bokeh breaks a line at NaN, so this draws like ~1,500 separate rings
    while HoloViews handles a single path: ~100× less work per plot.
    """
    import shapely

    rings = shapely.get_parts(shapely.get_parts(world_mercator().boundary.values))
    gap = np.full((1, 2), np.nan)
    return [np.concatenate([part for ring in rings for part in (shapely.get_coordinates(ring), gap)])]


def hv_map(
    layer: ZoneLayer,
    width: int = 900,
    height: int = 600,
    bounds: tuple[float, float, float, float] | None = None,
    *,
    title: str = "Deforestation zones",
    measure: Measure = "area_ha",
    cache=None,
) -> hv.Overlay:
    """Zones as a rasterized RGB image, country outlines and a legend, in Web Mercator.

    Display it with the bokeh backend (``hv.extension("bokeh")``); it survives
    ``nbconvert --to html`` because nothing in it calls back to Python.
    """
    x_range, y_range = view_ranges(layer, bounds, width, height)
    return hv_map_of(cached_aggregate(layer, x_range, y_range, width, height, measure=measure, cache=cache), title=title)


def zone_image(agg: xr.DataArray) -> gv.RGB:
    """The aggregate shaded (datashader), as a GeoViews image in Web Mercator."""
    x_range, y_range = agg.attrs["x_range"], agg.attrs["y_range"]
    image = map_picture(agg, outlines=False, legend=False, background=None)
    return gv.RGB(np.asarray(image), bounds=(x_range[0], y_range[0], x_range[1], y_range[1]), kdims=["x", "y"], crs=MERCATOR)


def outline_element() -> gv.Path:
    """Country borders (Natural Earth, shipped) as one GeoViews path in Web Mercator."""
    return gv.Path(outline_paths(), kdims=["x", "y"], crs=MERCATOR)


def tile_element() -> gv.WMTS | None:
    """The configured basemap (``FORESTGUARD_TILE_URL``, an XYZ template), or None: nothing is fetched by default."""
    url = settings().tile_url
    return gv.WMTS(url, crs=MERCATOR) if url else None


def legend_keys() -> list[gv.Points]:
    """Empty points in each class's colour: the legend's entries."""
    return [gv.Points([], kdims=["x", "y"], label=LABELS[c], crs=MERCATOR).opts(color=COLOR_KEY[c], size=10, marker="square", backend="bokeh")
            for c in CATEGORIES]


def hv_map_of(agg: xr.DataArray, *, title: str = "Deforestation zones", extra: Sequence[hv.Element] = ()) -> hv.Overlay:
    """An aggregate as the static map overlay of :func:`hv_map` (tiles, outlines, zones, legend); ``extra`` layers go over the zones (an area's outline)."""
    import geoviews.plotting.bokeh  # noqa: F401 - registers the GeoViews plots and options used below

    x_range, y_range = agg.attrs["x_range"], agg.attrs["y_range"]
    height, width = agg.shape[:2]
    tiles = tile_element()
    outlines = outline_element().opts(color=BORDER_COLOR, line_width=0.7, backend="bokeh")
    layers = [*([tiles] if tiles is not None else []), outlines, zone_image(agg), *extra, *legend_keys()]
    return gv.Overlay(layers).opts(
        width=width,
        height=height,
        title=title,
        xlim=x_range,
        ylim=y_range,
        xaxis=None,
        yaxis=None,
        bgcolor=BACKGROUND,
        legend_position="bottom_left",
        active_tools=["wheel_zoom"],
        toolbar="above",
        backend="bokeh",
    )
