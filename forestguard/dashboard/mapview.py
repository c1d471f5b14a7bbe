"""The dashboard's map pieces: outlines, the rendered view and what lies under a click.

Kept apart from the Viewer so they can be tested and reused without a session.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import holoviews as hv
import numpy as np
import pandas as pd
import shapely

from ..render import CATEGORIES, LABELS, ZoneLayer, cached_aggregate, shade_image
from ..render.holoviews import outline_paths
from ..server import metrics
from . import shared
from .image import SharedRGB

#: Below this pixel size (metres) a click lists the zones themselves, not just totals.
DETAIL_PIXEL_M = 300.0
#: A click looks this many pixels around the cursor (dynspread draws small zones up to 2 px wider).
CLICK_RADIUS_PX = 2
#: The map image's plot options (no axes: the outlines place it; click for what is under the cursor).
IMAGE_OPTIONS = {"xaxis": None, "yaxis": None, "tools": ["tap"], "default_tools": ["pan", "wheel_zoom", "reset", "save"]}
ZONE_COLUMNS = ["id", "country", "region", "year", "classification", "area_ha", "source", "confidence", "verified"]


@lru_cache(maxsize=1)
def outlines() -> hv.Path:
    """Country borders as one static vector layer, sent to the browser once per session."""
    return hv.Path(outline_paths(), kdims=["x", "y"]).opts(color="#8C8C8C", line_width=0.6, tools=[])


class ViewImage(NamedTuple):
    """A view's image as HoloViews and Bokeh take it, and the part of it that shows zones."""

    rgba: np.ndarray  #: (height, width, 4) uint8, top row first: a view of ``packed``
    packed: np.ndarray  #: (height, width) uint32, bottom row first, read-only: the whole view
    part: np.ndarray  #: ``packed`` cut to the rows and columns with a visible pixel (a copy, read-only)
    part_bounds: tuple[float, float, float, float]  #: left, bottom, right, top of ``part``


def view_image(layer: ZoneLayer, x_range, y_range, width: int, height: int, cache=None) -> ViewImage:
    """The zones of a view, shaded once per process (shared.VIEWS), aggregate through the cache."""

    def draw() -> ViewImage:
        with metrics.render_timer("map"):
            # The image is memoised per process (shared.VIEWS): the aggregate is worth caching only where other processes read it.
            aggregates = cache if cache is not None and cache.shared else None
            packed = np.ascontiguousarray(shade_image(cached_aggregate(layer, x_range, y_range, width, height, cache=aggregates)))
            part, part_bounds = drawn_part(packed, (x_range[0], y_range[0], x_range[1], y_range[1]))
        packed.flags.writeable = part.flags.writeable = False  # bottom row first, as Bokeh draws it; shared by every session
        # The element's RGBA is a view of the packed array (top row first again): one buffer per view.
        return ViewImage(packed[::-1].view(np.uint8).reshape(*packed.shape, 4), packed, part, part_bounds)

    key = (layer.key, *(round(float(v), 3) for v in (x_range[0], y_range[0], x_range[1], y_range[1])), int(width), int(height))
    return shared.VIEWS.get(key, draw)


def drawn_part(packed: np.ndarray, bounds: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The image cut to the rows and columns with a visible pixel, and the bounds of that part.

    A country's view is mostly transparent margins (a half to two thirds of it for the demo
    countries): bytes every browser would receive and draw for nothing after a filter change.
    """
    height, width = packed.shape
    visible = (packed >> 24) != 0  # RGBA packed little-endian: alpha is the high byte
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    r0, r1, c0, c1 = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) if len(rows) else (0, 1, 0, 1)  # nothing drawn: one clear pixel
    left, bottom, right, top = bounds
    dx, dy = (right - left) / width, (top - bottom) / height
    part = np.ascontiguousarray(packed[r0:r1, c0:c1])  # bottom row first: row r spans bottom + r·dy
    return part, (left + c0 * dx, bottom + r0 * dy, left + c1 * dx, bottom + r1 * dy)


def render_view(layer: ZoneLayer, x_range, y_range, width: int, height: int, cache=None) -> SharedRGB:
    """The zones of a view as an RGB element covering the view: HoloViews sets the plot's ranges from it."""
    view = view_image(layer, x_range, y_range, width, height, cache=cache)
    bounds = (x_range[0], y_range[0], x_range[1], y_range[1])
    # Options on the element: ``hv.opts.RGB`` names the type, and this is a subclass of it.
    return SharedRGB(view.rgba, bounds=bounds, kdims=["x", "y"], packed=view.packed).opts(**IMAGE_OPTIONS, backend="bokeh")


@dataclass
class ClickInfo:
    """Zones and hectares under a click, by classification, and the zones when zoomed in far."""

    zones: dict[str, int] = field(default_factory=dict)
    hectares: dict[str, float] = field(default_factory=dict)
    detail: pd.DataFrame | None = None

    @property
    def total_zones(self) -> int:
        return sum(self.zones.values())

    def to_html(self) -> str:
        """A small table; every text from the data is escaped."""
        if not self.total_zones:
            return "<p class='fg-click'>No zones here.</p>"
        rows = "".join(
            f"<tr><td><span class='fg-swatch fg-{c}'></span>{html.escape(LABELS[c])}</td>"
            f"<td>{self.zones.get(c, 0):,}</td><td>{self.hectares.get(c, 0.0):,.2f}</td></tr>"
            for c in CATEGORIES
            if self.zones.get(c)
        )
        return (
            "<table class='fg-click'><thead><tr><th>Here</th><th>Zones</th><th>Hectares</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )


def click_info(layer: ZoneLayer, x: float, y: float, pixel: float, max_detail: int = 20) -> ClickInfo:
    """What the map shows around (x, y): zones whose centroid is within a few pixels, or whose polygon contains the point."""
    z = layer.zones
    radius = pixel * (CLICK_RADIUS_PX + 0.5)
    near = (np.abs(z["x"].to_numpy() - x) <= radius) & (np.abs(z["y"].to_numpy() - y) <= radius)
    candidates = np.flatnonzero(~near & layer.in_box((x, y, x, y)))
    if len(candidates):
        shapes = layer.geometry.shapely(z["geom_row"].to_numpy()[candidates])
        near[candidates[shapely.contains_xy(shapes, x, y)]] = True
    hits = z[near]
    grouped = hits.groupby("classification", observed=False)["area_ha"].agg(["size", "sum"])
    info = ClickInfo(
        zones={str(c): int(n) for c, n in grouped["size"].items() if n},
        hectares={str(c): float(v) for c, v in grouped["sum"].items() if v},
    )
    if pixel <= DETAIL_PIXEL_M and 0 < len(hits) <= max_detail:
        info.detail = hits[ZONE_COLUMNS].sort_values("area_ha", ascending=False).reset_index(drop=True)
    return info


#: Above this many (country, region) pairs the regions are grouped by pandas, not counted in an array.
_PAIR_ARRAY_LIMIT = 4_000_000


def top_regions(layer: ZoneLayer, n: int = 10) -> pd.DataFrame:
    """The regions with the most cleared hectares in the selection (from the in-memory layer).

    Counted with ``np.bincount`` on the (country, region) category codes: ~10× faster than a
    pandas groupby, which the first view of a country waits for. Same rows, order and ties.
    """
    z = layer.zones
    if not len(z):
        return pd.DataFrame(columns=["country", "region", "zones", "hectares", "illegal %"])
    country, region = z["country"].cat, z["region"].cat
    n_regions = len(region.categories) + 1  # the last one: no region
    if len(country.categories) * n_regions > _PAIR_ARRAY_LIMIT:
        return _top_regions_grouped(z, n)
    region_codes = region.codes.to_numpy().astype(np.int64)
    pair = country.codes.to_numpy().astype(np.int64) * n_regions + np.where(region_codes < 0, n_regions - 1, region_codes)
    size = len(country.categories) * n_regions
    area = z["area_ha"].to_numpy()
    zones = np.bincount(pair, minlength=size)
    hectares = np.bincount(pair, weights=area, minlength=size)
    illegal_ha = np.bincount(pair, weights=np.where((z["classification"] == "illegal").to_numpy(), area, 0.0), minlength=size)
    present = np.flatnonzero(zones)
    top = present[np.argsort(-hectares[present], kind="stable")[:n]]  # ties: the first in (country, region) order
    codes = top % n_regions
    frame = pd.DataFrame(
        {
            "country": pd.Categorical.from_codes(top // n_regions, dtype=z["country"].dtype),
            "region": pd.Categorical.from_codes(np.where(codes == n_regions - 1, -1, codes), dtype=z["region"].dtype),
            "zones": zones[top],
            "hectares": hectares[top],
            "illegal_ha": illegal_ha[top],
        }
    )
    return _finish_top_regions(frame)


def _top_regions_grouped(z: pd.DataFrame, n: int) -> pd.DataFrame:
    illegal = z["area_ha"].where(z["classification"] == "illegal", 0.0)
    frame = (
        z.assign(illegal_ha=illegal)
        .groupby(["country", "region"], observed=True, dropna=False)
        .agg(zones=("area_ha", "size"), hectares=("area_ha", "sum"), illegal_ha=("illegal_ha", "sum"))
        .nlargest(n, "hectares")
        .reset_index()
    )
    return _finish_top_regions(frame)


def _finish_top_regions(frame: pd.DataFrame) -> pd.DataFrame:
    frame["illegal %"] = (100 * frame.pop("illegal_ha") / frame["hectares"]).round(1)
    frame["hectares"] = frame["hectares"].round(2)
    return frame
