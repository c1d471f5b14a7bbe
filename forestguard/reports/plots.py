"""Report charts: interactive HoloViews panes for the HTML, PNG figures for print.

Interactive charts are returned as Panel ``HoloViews`` panes: Panel's display
path inlines its stylesheets when ``pn.config.inline`` is on (see
:func:`forestguard.reports.notebook.setup`), which HoloViews' own notebook
display does not, and an exported report must open without network.
Colours are the map's (:data:`forestguard.render.COLOR_KEY`) so a class looks
the same in every chart and on the map.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from IPython.display import Image

from ..cache import default_cache
from ..render import COLOR_KEY, LABELS
from ..render.holoviews import hv_map_of
from ..render.image import map_picture
from ..render.maps import store_map
from ..stores.base import ZoneStore
from .tables import CLASS_COLUMNS

if TYPE_CHECKING:
    from .area import AreaReport
    from .country import CountryReport
    from .overview import YearlyOverview

WIDTH, HEIGHT = 820, 340
#: Hectare column → (legend label, colour), in stacking order.
CLASS_SERIES: dict[str, tuple[str, str]] = {
    column: (LABELS[key or "none"], COLOR_KEY[key or "none"]) for key, column in CLASS_COLUMNS.items()
}
NEUTRAL = "#4C72B0"
VERIFIED = "#8172B3"
HECTARES_FORMAT = "%.0f"
DOT = 6  # marker size in screen pixels


def _pane(element: hv.core.Dimensioned) -> pn.pane.HoloViews:
    return pn.pane.HoloViews(element, linked_axes=False)


def _by_class(frame: pd.DataFrame, index: str) -> pd.DataFrame:
    """Long form (index, class, hectares) of the class columns, for stacked bars."""
    long = frame.melt(id_vars=[index], value_vars=list(CLASS_SERIES), var_name="column", value_name="hectares")
    long["class"] = long["column"].map(lambda c: CLASS_SERIES[c][0])
    return long.drop(columns="column")


def _stacked_bars(frame: pd.DataFrame, index: str, title: str, *, invert: bool = False, height: int = HEIGHT) -> pn.pane.HoloViews:
    """Hectares per ``index`` value stacked by class (horizontal bars with ``invert``)."""
    long = _by_class(frame, index)
    long[index] = long[index].astype(str)
    # The value axis is x once inverted, and a numeric formatter on a categorical axis blanks the plot.
    value_axis_format = {"xformatter" if invert else "yformatter": HECTARES_FORMAT}
    bars = hv.Bars(long, [index, "class"], ("hectares", "hectares")).opts(
        stacked=True, invert_axes=invert, cmap={label: color for label, color in CLASS_SERIES.values()},
        tools=["hover"], title=title, width=WIDTH, height=height, **value_axis_format,
        # Beside the columns, never over them (the tallest year is often the last); the shortest rows are at the bottom.
        legend_position="bottom_right" if invert else "right", xlabel="", line_color=None,
    )
    return _pane(bars)


# -- country report -------------------------------------------------------------------


def area_by_year(report: "CountryReport | AreaReport") -> pn.pane.HoloViews:
    """Hectares cleared per year, stacked legal / illegal / unclassified."""
    return _stacked_bars(report.yearly, "year", f"Hectares cleared per year — {report.label}")


def _line_with_dots(frame: pd.DataFrame, x: str, y: str, label: str, color: str, *, size: float, hover: list[str] | None = None) -> hv.Overlay:
    """A line through yearly values with a dot on each year (hover on the dots)."""
    vdims = [y, *(hover or [])]
    line = hv.Curve(frame, x, vdims, label=label).opts(color=color, line_width=2)
    dots = hv.Scatter(frame, x, vdims, label=label).opts(color=color, size=size, tools=["hover"], show_legend=False)
    return line * dots


def zones_trend(report: "CountryReport") -> pn.pane.HoloViews:
    """Zones per year with a least-squares trend line (dashed) and the verified zones."""
    yearly = report.yearly
    layers = [
        _line_with_dots(yearly, "year", "zones", "All zones", NEUTRAL, size=DOT),
        _line_with_dots(yearly.rename(columns={"verified_zones": "verified"}), "year", "verified", "Verified zones", VERIFIED, size=DOT),
    ]
    if len(yearly) >= 3:
        slope, intercept = np.polyfit(yearly["year"], yearly["zones"], 1)
        fit = pd.DataFrame({"year": yearly["year"], "zones": slope * yearly["year"] + intercept})
        layers.append(hv.Curve(fit, "year", "zones", label="Trend").opts(color="#555555", line_dash="dashed"))
    overlay = hv.Overlay(layers).opts(
        title=f"Zones per year — {report.label}", width=WIDTH, height=HEIGHT, legend_position="right",  # never over a line
        xticks=list(yearly["year"]), ylim=(0, float(yearly["zones"].max()) * 1.1 or None), ylabel="zones",
        padding=(0.04, 0.05),  # whole dots at the first and last year
    )
    return _pane(overlay)


def illegal_share(report: "CountryReport") -> pn.pane.HoloViews:
    """Share of the cleared area that is illegal, per year."""
    frame = report.yearly.assign(illegal_share_pct=report.yearly["illegal_share"] * 100)
    chart = _line_with_dots(frame, "year", "illegal_share_pct", "Illegal share", COLOR_KEY["illegal"], size=DOT + 1, hover=["illegal_ha", "area_ha"])
    return _pane(chart.opts(title="Illegal share of the cleared area", width=WIDTH, height=260, ylim=(0, 100), xticks=list(frame["year"]),
                            ylabel="illegal share (%)", show_legend=False, padding=(0.04, 0.05)))


def top_regions(report: "CountryReport") -> pn.pane.HoloViews:
    """Regions by cleared area, illegal part highlighted."""
    regions = report.regions.iloc[::-1]  # largest on top of a horizontal chart
    frame = pd.DataFrame(
        {"region": regions["region"], "illegal_ha": regions["illegal_ha"], "legal_ha": regions["area_ha"] - regions["illegal_ha"], "unclassified_ha": 0.0}
    )
    return _stacked_bars(frame, "region", "Most affected regions (hectares)", invert=True, height=max(220, 34 * len(frame) + 80))


def confidence_breakdown(report: "CountryReport") -> pn.pane.HoloViews:
    """Zones per detection-confidence band, by class."""
    classes = report.confidence[["band", "legal", "illegal", "unclassified"]]
    long = classes.melt(id_vars=["band"], var_name="class", value_name="zones")
    long["class"] = long["class"].map({"legal": LABELS["legal"], "illegal": LABELS["illegal"], "unclassified": LABELS["none"]})
    bars = hv.Bars(long, ["band", "class"], "zones").opts(
        stacked=True, cmap={LABELS[k]: COLOR_KEY[k] for k in ("legal", "illegal", "none")}, tools=["hover"], line_color=None,
        title="Zones by detection confidence", width=WIDTH // 2, height=HEIGHT, xlabel="confidence", legend_position="top_left",
    )
    return _pane(bars)


def verification(report: "CountryReport") -> pn.pane.HoloViews:
    """Verified and unverified zones per year."""
    frame = report.yearly.assign(unverified=report.yearly["zones"] - report.yearly["verified_zones"])
    long = frame[["year", "verified_zones", "unverified"]].melt(id_vars=["year"], var_name="status", value_name="zones")
    long["status"] = long["status"].map({"verified_zones": "Verified", "unverified": "Not verified"})
    long["year"] = long["year"].astype(str)
    bars = hv.Bars(long, ["year", "status"], "zones").opts(
        stacked=True, cmap={"Verified": VERIFIED, "Not verified": "#D0D0D0"}, tools=["hover"], line_color=None,
        title="Verification per year", width=WIDTH // 2, height=HEIGHT, xlabel="", legend_position="top_left",
    )
    return _pane(bars)


def confidence_and_verification(report: "CountryReport") -> pn.Row:
    """:func:`confidence_breakdown` and :func:`verification` side by side."""
    return pn.Row(confidence_breakdown(report), verification(report))


# -- yearly overview ------------------------------------------------------------------


def ranking(overview: "YearlyOverview", top: int = 15) -> pn.pane.HoloViews:
    """The ``top`` countries by cleared area, stacked by class."""
    frame = overview.ranking.head(top).iloc[::-1]
    return _stacked_bars(frame, "country", f"Top {min(top, len(overview.ranking))} countries by cleared area, {overview.year}", invert=True, height=34 * len(frame) + 90)


def change_vs_previous(overview: "YearlyOverview", top: int = 15) -> pn.pane.HoloViews:
    """Change in cleared hectares since the year before, for the ``top`` countries."""
    frame = overview.ranking.head(top).dropna(subset=["change_ha"]).iloc[::-1]
    frame = frame.assign(direction=frame["change_ha"].map(lambda v: "more clearing" if v > 0 else "less clearing"))
    bars = hv.Bars(frame, ["country", "direction"], ("change_ha", "change (ha)")).opts(
        stacked=True, invert_axes=True, cmap={"more clearing": COLOR_KEY["illegal"], "less clearing": COLOR_KEY["legal"]},
        tools=["hover"], width=WIDTH, height=34 * len(frame) + 90, legend_position="bottom_right",
        title=f"Change since {overview.year - 1} (hectares)", xformatter=HECTARES_FORMAT,
    )
    return _pane(bars)


def illegal_shares(overview: "YearlyOverview", top: int = 15) -> pn.pane.HoloViews:
    """Illegal share of the cleared area for the ``top`` countries, largest share first."""
    frame = overview.ranking.head(top).dropna(subset=["illegal_share"]).sort_values("illegal_share")
    frame = frame.assign(percent=frame["illegal_share"] * 100)
    bars = hv.Bars(frame, "country", ("percent", "illegal share (%)")).opts(
        invert_axes=True, color=COLOR_KEY["illegal"], tools=["hover"], width=WIDTH // 2 + 60,
        height=34 * len(frame) + 90, xlim=(0, 100), title="Illegal share of the cleared area",
    )
    return _pane(bars)


def continents(overview: "YearlyOverview") -> pn.pane.HoloViews:
    """Cleared hectares per continent, stacked legal+unclassified / illegal."""
    table = overview.continents.iloc[::-1]
    frame = pd.DataFrame(
        {"continent": table["continent"], "illegal_ha": table["illegal_ha"], "legal_ha": table["area_ha"] - table["illegal_ha"], "unclassified_ha": 0.0}
    )
    return _stacked_bars(frame, "continent", "Cleared area by continent (hectares)", invert=True, height=40 * len(frame) + 90)


# -- maps and print figures -----------------------------------------------------------


def zone_map(store: ZoneStore, report: "CountryReport | YearlyOverview", *, width: int = WIDTH, height: int = 520) -> pn.pane.HoloViews:
    """Interactive (pan/zoom) datashaded map of the report's zones over Natural Earth outlines."""
    agg = store_map(store, report.where, width, height, cache=default_cache())  # cached: a hit needs no layer, no datashader compile
    return _pane(hv_map_of(agg, title=f"Deforestation zones — {report.label}"))


def _png(data: bytes, alt: str) -> Image:
    """A PNG output with alternative text (the report template writes it into the ``<img>``)."""
    return Image(data=data, format="png", metadata={"alt": alt})


def zone_map_image(store: ZoneStore, report: "CountryReport | YearlyOverview", *, width: int = 1200, height: int = 800) -> Image:
    """The same map as a PNG, for print and for e-mail clients without JavaScript."""
    picture = map_picture(store_map(store, report.where, width, height, cache=default_cache()))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")  # optimize=True took 0.5 s for a file 0.3 % smaller
    return _png(buffer.getvalue(), f"Map of deforestation zones, {report.label}: legal, illegal and unclassified clearings")


def print_figure(report: "CountryReport | YearlyOverview") -> Image:
    """A print-ready PNG: hectares by class per year (country) or per top country (overview)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4), dpi=120, layout="constrained")
    axes = figure.subplots()
    if hasattr(report, "yearly"):
        frame, index, title = report.yearly.set_index("year"), "year", f"Hectares cleared per year — {report.label}"
    else:
        frame, index, title = report.ranking.head(12).set_index("country"), "country", f"Top countries by cleared area — {report.year}"
    bottom = pd.Series(0.0, index=frame.index)
    positions = range(len(frame))
    for column, (label, color) in CLASS_SERIES.items():
        axes.bar(positions, frame[column], bottom=bottom, color=color, label=label, width=0.7)
        bottom += frame[column]
    axes.set_xticks(list(positions), [str(v) for v in frame.index], rotation=0 if index == "year" else 35, ha="center" if index == "year" else "right")
    axes.set_ylabel("hectares")
    axes.yaxis.set_major_formatter("{x:,.0f}")
    axes.set_title(title, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return _png(buffer.getvalue(), title)


# -- area report ----------------------------------------------------------------------


def _area_aggregate(store: ZoneStore, report: "AreaReport", width: int, height: int):
    """The map of the zones meeting the area, framed on the area itself (a margin around its box)."""
    xmin, ymin, xmax, ymax = report.area.bbox
    pad_x, pad_y = (xmax - xmin) * 0.08, (ymax - ymin) * 0.08
    bounds = (max(xmin - pad_x, -180.0), max(ymin - pad_y, -85.0), min(xmax + pad_x, 180.0), min(ymax + pad_y, 85.0))
    return store_map(store, report.where, width, height, bounds=bounds, cache=default_cache())


def area_map(store: ZoneStore, report: "AreaReport", *, width: int = WIDTH, height: int = 520) -> pn.pane.HoloViews:
    """Interactive map of the zones meeting the area, with the area's outline."""
    from ..render.outline import OUTLINE_COLOR, outline_paths

    agg = _area_aggregate(store, report, width, height)
    outline = hv.Path(outline_paths(report.area), kdims=["x", "y"]).opts(color=OUTLINE_COLOR, line_width=2, backend="bokeh")
    return _pane(hv_map_of(agg, title=f"Deforestation zones — {report.label}", extra=[outline]))


def area_map_image(store: ZoneStore, report: "AreaReport", *, width: int = 1200, height: int = 800) -> Image:
    """The same map as a PNG with the outline drawn, for print."""
    from ..render.outline import draw_outline

    agg = _area_aggregate(store, report, width, height)
    buffer = io.BytesIO()
    draw_outline(map_picture(agg), agg, report.area).save(buffer, format="PNG")
    return _png(buffer.getvalue(), f"Map of deforestation zones meeting {report.area.name}, {report.period}, with the area's outline")
