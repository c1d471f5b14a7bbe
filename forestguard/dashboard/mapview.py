"""The dashboard's map pieces: the session's map figure, the shared view images and what lies under a click.

Kept apart from the Viewer so they can be tested and reused without a session.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import shapely
from bokeh.models import ColumnDataSource, Range1d, WMTSTileSource
from bokeh.plotting import figure

from ..render import CATEGORIES, LABELS, ZoneLayer, cached_aggregate, shade_image
from ..render.holoviews import outline_paths
from ..server import metrics
from . import shared

#: Below this pixel size (metres) a click lists the zones themselves, not just totals.
DETAIL_PIXEL_M = 300.0
#: A click looks this many pixels around the cursor (dynspread draws small zones up to 2 px wider).
CLICK_RADIUS_PX = 2
#: The map's size until the browser reports the plot's (the first image is drawn for it).
DEFAULT_SIZE = (1000, 560)
OUTLINE_COLOR = "#8C8C8C"
ZONE_COLUMNS = ["id", "country", "region", "year", "classification", "area_ha", "source", "confidence", "verified"]


class ViewImage(NamedTuple):
    """A view's zones shaded as Bokeh takes them, and the part of the image that shows zones."""

    packed: np.ndarray  #: (height, width) uint32 RGBA, bottom row first, read-only: the whole view
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
        return ViewImage(packed, part, part_bounds)

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


def image_data(image: ViewImage) -> dict[str, list]:
    """The ``image_rgba`` columns showing a view's drawn part where it lies (the shared array itself, not a copy)."""
    left, bottom, right, top = image.part_bounds
    return dict(image=[image.part], x=[left], y=[bottom], dw=[right - left], dh=[top - bottom])


@lru_cache(maxsize=1)
def outline_data() -> dict[str, list]:
    """Country borders as one line (rings separated by NaN, where Bokeh breaks it): arrays shared by every session."""
    (path,) = outline_paths()
    xs, ys = np.ascontiguousarray(path[:, 0]), np.ascontiguousarray(path[:, 1])
    xs.flags.writeable = ys.flags.writeable = False
    return {"xs": [xs], "ys": [ys]}


@dataclass
class MapFigure:
    """One session's map: a plain Bokeh figure with the zone image over optional tiles, under the borders.

    Built by Bokeh directly, not through HoloViews: a session's map is a few models whose
    data are shared arrays, and every redraw is ours (see :mod:`forestguard.dashboard.viewer`).
    """

    figure: figure
    image: ColumnDataSource

    def show(self, image: ViewImage) -> None:
        """Put a view's image into the map (a change of the image's data source only)."""
        self.image.data = image_data(image)

    def axes(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The extent the axes show (the browser's pans and zooms reach the server as changes of them)."""
        x, y = self.figure.x_range, self.figure.y_range
        return (x.start, x.end), (y.start, y.end)

    def go_to(self, x_range, y_range) -> None:
        """Move the map's axes (the browser follows)."""
        self.figure.x_range.update(start=x_range[0], end=x_range[1])
        self.figure.y_range.update(start=y_range[0], end=y_range[1])


def map_figure(x_range, y_range, image: ViewImage, height: int, tile_url: str | None = None) -> MapFigure:
    """A session's map showing ``image`` over ``x_range``/``y_range`` (Web Mercator metres)."""
    plot = figure(
        x_range=Range1d(*x_range), y_range=Range1d(*y_range), x_axis_type=None, y_axis_type=None,
        tools="pan,wheel_zoom,reset,save", active_drag="pan", active_scroll="wheel_zoom", toolbar_location="above",
        sizing_mode="stretch_width", height=height, min_border=0, output_backend="canvas",
    )
    plot.toolbar.logo = None
    if tile_url:  # only when configured: by default nothing is fetched from outside
        plot.add_tile(WMTSTileSource(url=tile_url), alpha=0.8)
    source = ColumnDataSource(image_data(image))
    plot.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=source)
    plot.multi_line(xs="xs", ys="ys", source=ColumnDataSource(outline_data()), line_color=OUTLINE_COLOR, line_width=0.6)
    return MapFigure(plot, source)


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
