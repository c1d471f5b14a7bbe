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
from ..render.layer import CHUNK_ROWS, NO_CONFIDENCE
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


#: Above this many (country, region) pairs the regions are counted over the pairs that occur, not in an array of all.
_PAIR_ARRAY_LIMIT = 4_000_000


def top_regions(layer: ZoneLayer, n: int = 10, hectares: np.ndarray | None = None) -> pd.DataFrame:
    """The regions with the most cleared hectares in the selection (from the in-memory layer).

    Counted with ``np.bincount`` on the (country, region) category codes, a chunk of rows at a
    time: over every pair when there are few enough (~10× faster than a pandas groupby), over
    the pairs a chunk holds otherwise (memory bounded by what occurs). Ties: the first in
    (country, region) order. ``hectares`` (one per selected zone) replaces the zones' own, e.g.
    the part of each inside an area.
    """
    if not len(layer):
        return pd.DataFrame(columns=["country", "region", "zones", "hectares", "illegal %"])
    country_dtype, region_dtype = layer.base["country"].dtype, layer.base["region"].dtype
    n_regions = len(region_dtype.categories) + 1  # the last one: no region
    sums: dict[str, pd.Series] = {}
    illegal = CATEGORIES.index("illegal")
    dense = len(country_dtype.categories) * n_regions <= _PAIR_ARRAY_LIMIT
    all_pairs = np.arange(len(country_dtype.categories) * n_regions)
    for first in range(0, len(layer), CHUNK_ROWS):
        stop = min(first + CHUNK_ROWS, len(layer))
        region_codes = layer.column("region", first, stop).astype(np.int64)
        pair = layer.column("country", first, stop).astype(np.int64) * n_regions + np.where(region_codes < 0, n_regions - 1, region_codes)
        area = layer.column("area_ha", first, stop) if hectares is None else hectares[first:stop]
        if dense:
            present, inverse = all_pairs, pair
        else:
            present, inverse = np.unique(pair, return_inverse=True)
        for name, weights in (("zones", None), ("hectares", area), ("illegal_ha", np.where(layer.column("classification", first, stop) == illegal, area, 0.0))):
            part = pd.Series(np.bincount(inverse, weights=weights, minlength=len(present)), index=present)
            sums[name] = part if name not in sums else sums[name].add(part, fill_value=0.0)
    totals = pd.DataFrame(sums).sort_index()  # (country, region) order, for the ties
    totals = totals[totals["zones"] > 0]
    zones, hectares, illegal_ha = (totals[c].to_numpy() for c in ("zones", "hectares", "illegal_ha"))
    pairs = totals.index.to_numpy()
    order = np.argsort(-hectares, kind="stable")[:n]
    top = pairs[order]
    codes = top % n_regions
    frame = pd.DataFrame(
        {
            "country": pd.Categorical.from_codes(top // n_regions, dtype=country_dtype),
            "region": pd.Categorical.from_codes(np.where(codes == n_regions - 1, -1, codes), dtype=region_dtype),
            "zones": zones[order].astype(np.int64),
            "hectares": hectares[order],
            "illegal_ha": illegal_ha[order],
        }
    )
    return _finish_top_regions(frame)


def _finish_top_regions(frame: pd.DataFrame) -> pd.DataFrame:
    frame["illegal %"] = (100 * frame.pop("illegal_ha") / frame["hectares"]).round(1)
    frame["hectares"] = frame["hectares"].round(2)
    return frame
