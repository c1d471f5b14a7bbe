"""Presentational pieces of the dashboard: cards, bars, legend and the template."""

from __future__ import annotations

import html
from typing import Any, Callable, ClassVar, Protocol

import panel as pn
import param
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

from ..render import CATEGORIES, COLOR_KEY, LABELS
from ..stats import Statistics

from .style import HEADER_COLOR, STYLESHEET


class Page(Protocol):
    """What the page is laid out from: a session's panes (:class:`~forestguard.dashboard.viewer.ZonesDashboard`
    provides them); the layout knows the session by this alone."""

    param: Any
    builds_on_load: bool

    def on_load(self, make: Callable[[], list], **layout: Any) -> pn.Column: ...
    def area_controls(self) -> pn.Column: ...
    def widgets(self) -> pn.Column: ...
    def downloads(self) -> pn.Column: ...
    def cards(self) -> pn.pane.HTML: ...
    def map_panel(self) -> pn.viewable.Viewable: ...
    def click_panel(self, clicked: tuple[float, float] | None = None) -> pn.viewable.Viewable: ...
    def charts(self) -> pn.Column: ...


TITLE = "ForestGuard"
SUBTITLE = "Deforestation zones"
MAP_HEIGHT = 560
CHARTS_HEIGHT = 320



def _card(key: str, label: str, value: str, unit: str = "", kind: str = "total", note: str = "") -> str:
    unit_html = f"<span class='fg-unit'>{html.escape(unit)}</span>" if unit else ""
    note_html = f"<div class='fg-note'>{html.escape(note)}</div>" if note else ""
    return (
        f"<div class='fg-card fg-{kind}' data-testid='{key}'><div class='fg-label'>{html.escape(label)}</div>"
        f"<div class='fg-value'><span class='fg-number'>{value}</span>{unit_html}</div>{note_html}</div>"
    )


def cards_html(total: Statistics, by_class: Statistics) -> str:
    """Zones and hectares (total, legal, illegal) exactly as the statistics contract gives them."""
    everything = total.rows[0] if total.rows else {"zones": 0, "area_ha": 0.0}
    classes = {row["classification"]: row for row in by_class.rows}
    empty = {"zones": 0, "area_ha": 0.0}
    legal, illegal = classes.get("legal", empty), classes.get("illegal", empty)
    cards = [
        _card("zones-total", "Zones", f"{everything['zones']:,}"),
        _card("hectares-total", "Hectares", f"{everything['area_ha']:,.2f}", "ha"),
        _card("hectares-legal", "Legal", f"{legal['area_ha']:,.2f}", "ha", "legal", f"{legal['zones']:,} zones"),
        _card("hectares-illegal", "Illegal", f"{illegal['area_ha']:,.2f}", "ha", "illegal", f"{illegal['zones']:,} zones"),
    ]
    return f"<div class='fg-cards'>{''.join(cards)}</div>"


def escaped_options(values: list[str]) -> dict[str, str]:
    """MultiChoice options whose labels are HTML-escaped.

    Bokeh's MultiChoice (Choices.js) inserts option labels as HTML: a source
    named ``<img src=x onerror=…>`` would run in every visitor's browser.
    Escaped labels display the name as text; the values stay the raw names.
    """
    return {html.escape(value, quote=False): value for value in values}


class ImmediateMultiChoice(pn.widgets.MultiChoice):
    """A MultiChoice whose changes reach the server's watchers at once.

    Panel holds every browser change back 50 ms (``Syncable._debounce``) to merge
    bursts, as a slider drag makes; picking a name is one deliberate change, and
    the 50 ms were a quarter of a filter-to-numbers update.
    """

    _priority_changes: ClassVar[list[str]] = ["value"]


class ImmediateRadioButtonGroup(pn.widgets.RadioButtonGroup):
    """A RadioButtonGroup without the 50 ms debounce (see :class:`ImmediateMultiChoice`)."""

    _priority_changes: ClassVar[list[str]] = ["value"]


class ImmediateSwitch(pn.widgets.Switch):
    """A Switch without the 50 ms debounce (see :class:`ImmediateMultiChoice`)."""

    _priority_changes: ClassVar[list[str]] = ["value"]


def safe_multichoice(owner: "param.Parameterized", name: str, label: str, placeholder: str) -> pn.widgets.MultiChoice:
    """A MultiChoice for a ListSelector of names from the data, kept in sync both ways, labels escaped."""
    widget = ImmediateMultiChoice(
        name=label, options=escaped_options(owner.param[name].objects), value=list(getattr(owner, name)),
        placeholder=placeholder, sizing_mode="stretch_width",
    )
    widget.link(owner, value=name, bidirectional=True)
    return widget


def legend_html() -> str:
    items = "".join(f"<div><span class='fg-swatch fg-{c}'></span>{html.escape(LABELS[c])}</div>" for c in CATEGORIES)
    return f"<div class='fg-legend'><b>Classification</b>{items}<div class='fg-hint'>Opacity: hectares cleared per pixel.</div></div>"


def yearly_bars_data(stats: Statistics) -> dict[str, list]:
    """Hectares and zones per year and class, as the columns of the bars' data source."""
    frame = stats.frame()
    years = sorted({int(y) for y in frame["year"]}) if not frame.empty else []
    data: dict[str, list] = {"year": [str(y) for y in years]}
    for category in CATEGORIES:
        rows = frame[frame["classification"].fillna("none") == category] if not frame.empty else frame
        by_year = dict(zip(rows["year"].astype(int), zip(rows["area_ha"].astype(float), rows["zones"].astype(int)))) if len(rows) else {}
        data[category] = [by_year.get(y, (0.0, 0))[0] for y in years]
        data[f"{category}_zones"] = [by_year.get(y, (0.0, 0))[1] for y in years]
    return data


def yearly_bars(stats: Statistics) -> figure:
    """Hectares per year, stacked by classification: one Bokeh figure a session keeps.

    Plain Bokeh rather than ``hv.Bars``: a filter change only replaces the data
    source's columns and the year factors, where HoloViews rebuilt its stacked
    frame through several Dataset copies (~100 ms a change, the largest part
    of a redraw) and a new session paid for a HoloViews plot as well.
    """
    data = yearly_bars_data(stats)
    plot = figure(x_range=FactorRange(*data["year"]), height=300, sizing_mode="stretch_width", title="Cleared hectares per year",
                  toolbar_location=None, tools="", x_axis_label="Year", y_axis_label="Hectares")
    source = ColumnDataSource(data)
    renderers = plot.vbar_stack(list(CATEGORIES), x="year", width=0.8, source=source, line_color=None,
                                color=[COLOR_KEY[c] for c in CATEGORIES], legend_label=[LABELS[c] for c in CATEGORIES])
    for category, renderer in zip(CATEGORIES, renderers):
        plot.add_tools(HoverTool(renderers=[renderer], tooltips=[
            ("Year", "@year"), ("Class", LABELS[category]), ("Hectares", f"@{{{category}}}{{0,0.00}}"), ("Zones", f"@{{{category}_zones}}{{0,0}}"),
        ]))
    plot.yaxis.formatter = NumeralTickFormatter(format="0,0")
    plot.y_range.start = 0
    plot.xgrid.grid_line_color = None
    legend = plot.legend[0]
    legend.orientation, legend.border_line_color, legend.margin = "horizontal", None, 0
    plot.add_layout(legend, "above")  # above the bars, never over them
    return plot


def update_yearly_bars(plot: figure, stats: Statistics) -> None:
    """New figures in the session's bars: the source's columns and the year axis, nothing rebuilt."""
    data = yearly_bars_data(stats)
    plot.x_range.factors = data["year"]
    plot.renderers[0].data_source.data = data


def template(dashboard: Page) -> pn.template.BaseTemplate:
    """The page: filters, legend and downloads on the side; numbers, map and charts in the main area.

    The charts are made once the page has loaded, and so is everything else when
    ``dashboard.builds_on_load`` (several worker processes): see ZonesDashboard.on_load.
    """
    if dashboard.builds_on_load:
        section = dashboard.on_load
    else:
        def section(make, **layout):
            return pn.Column(*make(), **layout)
    sidebar = [
        pn.pane.Markdown("### Area"),
        section(lambda: [dashboard.area_controls()], sizing_mode="stretch_width"),
        pn.pane.Markdown("### Filters"),
        section(lambda: [dashboard.widgets()], sizing_mode="stretch_width"),
        pn.pane.HTML(legend_html(), stylesheets=[STYLESHEET], sizing_mode="stretch_width"),
        pn.pane.Markdown("### Downloads"),
        section(lambda: [dashboard.downloads()], sizing_mode="stretch_width"),
    ]
    main = [
        section(lambda: [dashboard.cards()], sizing_mode="stretch_width"),
        pn.Row(
            section(lambda: [dashboard.map_panel()], sizing_mode="stretch_width", height=MAP_HEIGHT),
            pn.Column(pn.pane.Markdown("#### Under the cursor"), pn.bind(dashboard.click_panel, clicked=dashboard.param.clicked), width=320),
            sizing_mode="stretch_width",
        ),
        dashboard.charts(),
    ]
    # Bootstrap rather than FAST: FAST's design links Google Fonts, and the page must not leave our server.
    return pn.template.BootstrapTemplate(
        title=f"{TITLE} · {SUBTITLE}",
        sidebar=sidebar,
        main=main,
        header_background=HEADER_COLOR,
        sidebar_width=320,
        # Panel's busy spinner shows the process's busy state, shared by every session: each callback in any
        # session re-sent it to all pages (O(sessions) messages per filter change). The numbers update in ~0.1 s.
        busy_indicator=None,
    )
