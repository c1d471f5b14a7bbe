"""Maps of deforestation zones: aggregates (numpy, datashader's conventions), images and HoloViews elements.

The API reports, notebooks and the dashboard share::

    layer = zone_layer(store, where)          # prepared once per process and data version
    agg = aggregate(layer, x_range, y_range, 1200, 800)   # hectares per pixel and class
    image = shade(agg)                        # PIL image, colours from COLOR_KEY
    png = map_image(layer, bounds=None)       # finished map with outlines and legend
    element = hv_map(layer)                   # static HoloViews overlay for HTML exports

Ranges are Web Mercator metres; ``bounds`` are lon/lat boxes (xmin, ymin, xmax, ymax).
"""

from __future__ import annotations

from .holoviews import hv_map
from .image import COLOR_KEY, LABELS, fit_ranges, map_image, shade, shade_image, view_ranges
from .layer import CATEGORIES, ZoneGeometry, ZoneLayer, build_layer, mercator_box, to_lonlat, to_mercator, zone_layer
from .raster import MEASURES, Aggregate, aggregate, cached_aggregate, pixel_size, totals

__all__ = [
    "Aggregate",
    "CATEGORIES",
    "COLOR_KEY",
    "LABELS",
    "MEASURES",
    "ZoneGeometry",
    "ZoneLayer",
    "aggregate",
    "build_layer",
    "cached_aggregate",
    "fit_ranges",
    "hv_map",
    "map_image",
    "mercator_box",
    "pixel_size",
    "shade",
    "shade_image",
    "to_lonlat",
    "to_mercator",
    "totals",
    "view_ranges",
    "zone_layer",
]
