"""Areas: the polygons users bring, draw or save, and the zones' part inside them.

::

    area = read_area("concession.gpkg")                  # any CRS, checked, reprojected, one MultiPolygon
    where = ZoneFilter(area=area, year_from=2021)         # statistics, maps, downloads: zones meeting it
    statistics(store, where)                              # area_ha counts only what is inside
    hectares_inside(zone_geometries, area.geometry)       # the clip + geodesic area itself (clip.py)

Clipping follows RFC 7946 (edges straight in lon/lat) and measures geodesically on WGS84;
:mod:`.clip` is the one definition, :mod:`.aggregate` the statistics built on it.
"""

from __future__ import annotations

from .clip import hectares_inside, intersecting, overlapping_pairs, parts_inside
from .reading import AreaRefused, area_from_drawing, area_of, area_from_geojson, check_name, read_area, read_plots, within_limits
from .shape import Area, canonical_wkb

__all__ = [
    "Area",
    "AreaRefused",
    "area_from_drawing",
    "area_from_geojson",
    "area_of",
    "canonical_wkb",
    "check_name",
    "hectares_inside",
    "intersecting",
    "overlapping_pairs",
    "parts_inside",
    "read_area",
    "read_plots",
    "within_limits",
]
