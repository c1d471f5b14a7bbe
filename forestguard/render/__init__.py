"""Maps of deforestation zones, drawn by datashader: aggregates, images and HoloViews/GeoViews elements.

The API reports, notebooks and the dashboard share::

    layer = zone_layer(store, where)          # compact rows, prepared once per process and data version
    agg = aggregate(layer, x_range, y_range, 1200, 800)   # xarray (y, x, classification): hectares per pixel
    image = shade(agg)                        # PIL image, datashader's tf.shade with COLOR_KEY
    png = map_image(layer, bounds=None)       # finished map with outlines and legend
    element = hv_map(layer)                   # static HoloViews overlay for HTML exports

Ranges are Web Mercator metres; ``bounds`` are lon/lat boxes (xmin, ymin, xmax, ymax).
"""

from __future__ import annotations

from .geometry import GeometrySource, ZoneGeometry, mercator_box, to_lonlat, to_mercator
from .holoviews import hv_map
from .image import COLOR_KEY, LABELS, fit_ranges, map_image, shade, shade_image, view_ranges
from .layer import CATEGORIES, LayerTooLarge, ZoneLayer, build_layer, zone_layer
from .raster import MEASURES, aggregate, cached_aggregate, empty_aggregate, pixel_size, totals

__all__ = [
    "CATEGORIES",
    "COLOR_KEY",
    "GeometrySource",
    "LABELS",
    "LayerTooLarge",
    "MEASURES",
    "ZoneGeometry",
    "ZoneLayer",
    "aggregate",
    "build_layer",
    "cached_aggregate",
    "empty_aggregate",
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
