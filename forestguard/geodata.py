"""Data shipped in the package: Natural Earth country outlines (public domain)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import geopandas as gpd


@lru_cache(maxsize=1)
def countries() -> gpd.GeoDataFrame:
    """Natural Earth 1:110m countries (name, iso_a3, continent, geometry) in EPSG:4326."""
    path = files("forestguard") / "data" / "naturalearth_lowres.geojson"
    with path.open("rb") as fh:
        frame = gpd.read_file(fh, engine="pyogrio")
    return frame.set_crs(4326, allow_override=True)
