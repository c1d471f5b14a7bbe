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
from bokeh.models import ColumnDataSource, Label, Range1d, WMTSTileSource
from bokeh.plotting import figure

from ..render import CATEGORIES, LABELS, ZoneLayer, cached_aggregate, shade_image
from ..render.layer import CHUNK_ROWS, NO_CONFIDENCE
from ..render import raster
from ..regions import RegionCounter
from ..render.holoviews import outline_paths
from . import shared
from .host import host

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
    as_points: int = 0  #: zones large enough for polygons drawn as points (the view holds too many to read)


def view_image(layer: ZoneLayer, x_range, y_range, width: int, height: int, cache=None) -> ViewImage:
    """The zones of a view, shaded once per process (shared.VIEWS), aggregate through the cache."""

    def draw() -> ViewImage:
        with host().timer("map"):
            # The image is memoised per process (shared.VIEWS): the aggregate is worth caching only where other processes read it.
            aggregates = cache if cache is not None and cache.shared else None
            agg = cached_aggregate(layer, x_range, y_range, width, height, cache=aggregates)
            packed = np.ascontiguousarray(shade_image(agg))
            part, part_bounds = drawn_part(packed, (x_range[0], y_range[0], x_range[1], y_range[1]))
            as_points = agg.attrs.get("as_points")  # drawn now: it says; from the cache: counted again, no geometry read
            if as_points is None:
                as_points = raster.polygons_as_points(layer, x_range, y_range, width, height)
        packed.flags.writeable = part.flags.writeable = False  # bottom row first, as Bokeh draws it; shared by every session
        return ViewImage(packed, part, part_bounds, as_points)

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


def points_note(image: ViewImage) -> str:
    """What the map says when a view holds more polygons than one view reads (empty otherwise)."""
    if not image.as_points:
        return ""
    return (f"{image.as_points:,} of the smaller zones in this view are drawn as points "
            f"(a view reads at most {raster.MAX_VIEW_POLYGONS:,} polygons): zoom in to see their shapes")


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
    note: Label

    def show(self, image: ViewImage) -> None:
        """Put a view's image into the map (a change of the image's data source), and its note."""
        self.image.data = image_data(image)
        text = points_note(image)
        if self.note.text != text:
            self.note.update(text=text, visible=bool(text))

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
    text = points_note(image)
    note = Label(x=8, y=8, x_units="screen", y_units="screen", text=text, visible=bool(text), text_font_size="12px",
                 background_fill_color="white", background_fill_alpha=0.85, css_classes=["fg-map-note"])
    plot.add_layout(note)
    return MapFigure(plot, source, note)


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
    """What the map shows around (x, y): zones whose centroid is within a few pixels, or whose polygon contains the point.

    The compact rows are scanned a chunk at a time; only the few zones whose extent holds the
    point have their polygon read (from the layer's geometry source) to test it.
    """
    radius = pixel * (CLICK_RADIUS_PX + 0.5)
    hits: list[np.ndarray] = []
    for first in range(0, len(layer), CHUNK_ROWS):
        stop = min(first + CHUNK_ROWS, len(layer))
        cx, cy, half = (layer.column(c, first, stop) for c in ("x", "y", "size"))
        dx, dy = np.abs(cx - x), np.abs(cy - y)
        near = (dx <= radius) & (dy <= radius)
        around = np.flatnonzero(~near & (dx <= half) & (dy <= half))
        if len(around) and layer.geometry is not None:
            shapes = layer.geometry.polygons(layer.column("id", first, stop)[around])
            known = np.array([s is not None for s in shapes], dtype=bool)
            inside = np.zeros(len(around), dtype=bool)
            inside[known] = shapely.contains_xy(np.asarray(list(shapes[known]), dtype=object), x, y) if known.any() else False
            near[around[inside]] = True
        hits.append(np.flatnonzero(near) + first)
    positions = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
    frame = layer.frame(DETAIL_SOURCE).iloc[0:0] if not len(positions) else _at(layer, positions)
    grouped = frame.groupby("classification", observed=False)["area_ha"].agg(["size", "sum"])
    info = ClickInfo(
        zones={str(c): int(n) for c, n in grouped["size"].items() if n},
        hectares={str(c): float(v) for c, v in grouped["sum"].items() if v},
    )
    if pixel <= DETAIL_PIXEL_M and 0 < len(frame) <= max_detail:
        detail = frame.sort_values("area_ha", ascending=False).reset_index(drop=True)
        confidence = detail["confidence"].to_numpy()
        detail["confidence"] = np.where(confidence == NO_CONFIDENCE, np.nan, confidence / 100.0)
        info.detail = detail[ZONE_COLUMNS]
    return info


#: The compact columns a click's table is made from.
DETAIL_SOURCE = ["id", "country", "region", "year", "classification", "area_ha", "source", "confidence", "verified"]


def _at(layer: ZoneLayer, positions: np.ndarray) -> pd.DataFrame:
    rows = positions if layer.rows is None else layer.rows[positions]
    return layer.base[DETAIL_SOURCE].take(rows)


def top_regions(layer: ZoneLayer, n: int = 10, hectares: np.ndarray | None = None) -> pd.DataFrame:
    """The regions with the most cleared hectares in the selection (from the in-memory layer).

    Ranked as everywhere else (:class:`forestguard.regions.RegionCounter`: hectares, then zones,
    then names), fed the layer's category codes a chunk of rows at a time. ``hectares`` (one per
    selected zone) replaces the zones' own, e.g. the part of each inside an area.
    """
    if not len(layer):
        return pd.DataFrame(columns=["country", "region", "zones", "hectares", "illegal %"])
    counter = RegionCounter(layer.base["country"].cat.categories, layer.base["region"].cat.categories)
    illegal = CATEGORIES.index("illegal")
    for first in range(0, len(layer), CHUNK_ROWS):
        stop = min(first + CHUNK_ROWS, len(layer))
        area = layer.column("area_ha", first, stop) if hectares is None else hectares[first:stop]
        counter.add(layer.column("country", first, stop), layer.column("region", first, stop), area,
                    layer.column("classification", first, stop) == illegal)
    frame = counter.top(n).rename(columns={"area_ha": "hectares"})
    frame["illegal %"] = (100 * frame.pop("illegal_ha") / frame["hectares"]).round(1)
    return frame
