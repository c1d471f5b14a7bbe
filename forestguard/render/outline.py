"""An area's outline on a map: the dashboard's vector path and a picture's drawn line, from one projection.

The outline is densified in lon/lat before it is projected, so its edges follow the area's
RFC 7946 edges (straight in lon/lat) on a Web Mercator map rather than cutting corners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import shapely
import xarray as xr
from PIL import Image, ImageDraw

from .geometry import to_mercator

if TYPE_CHECKING:
    from ..areas import Area

#: Outline vertices are at most this far apart (degrees).
OUTLINE_STEP_DEGREES = 0.05
OUTLINE_COLOR = "#111111"


def outline_paths(area: "Area | None") -> list[np.ndarray]:
    """The area's rings in Web Mercator, each an (n, 2) array (nothing without an area)."""
    if area is None:
        return []
    dense = shapely.segmentize(area.geometry, OUTLINE_STEP_DEGREES)
    paths = []
    for ring in shapely.get_rings(shapely.get_parts(dense)):
        lon, lat = shapely.get_coordinates(ring).T
        x, y = to_mercator(lon, lat)
        paths.append(np.column_stack([x, y]))
    return paths


def draw_outline(image: Image.Image, agg: xr.DataArray, area: "Area", width: int = 3) -> Image.Image:
    """The picture of ``agg`` (see :func:`~forestguard.render.image.map_picture`) with the area's outline drawn on it."""
    (x0, x1), (y0, y1) = agg.attrs["x_range"], agg.attrs["y_range"]
    pixels_y, pixels_x = agg.shape[:2]
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for path in outline_paths(area):
        px = (path[:, 0] - x0) / (x1 - x0) * pixels_x
        py = (y1 - path[:, 1]) / (y1 - y0) * pixels_y  # rows go down, northings up
        draw.line(list(zip(px.tolist(), py.tolist())), fill=OUTLINE_COLOR, width=width, joint="curve")
    return out
