"""The peer of the dashboard's first page: a plain Panel template page of the same layout.

bench_server.py serves it beside the dashboard from the same ``forestguard serve`` process
(an extra app at /baseline_page): the same template, widgets, panes and Bokeh figures, the
same map image size and country outlines, but no HoloViews, no statistics and no filters
wired to anything. What a session of it costs is what Panel and Bokeh spend on a page
like ours; the rest of the dashboard's cost is ours.
"""

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, FactorRange
from bokeh.plotting import figure

COUNTRIES = [f"Country {i}" for i in range(48)]
SOURCES = ["DETER", "Field survey", "GLAD", "PRODES", "RADD", "Sentinel-2 analyst"]
YEARS = [str(y) for y in range(2015, 2025)]
WORLD = (-20037508.3, -10988125.5, 20037508.3, 18410690.5)


def shared_data() -> dict:
    """Computed once per process, like the dashboard's shared layer and images."""
    from forestguard.render.holoviews import outline_paths

    (outlines,) = outline_paths()
    return {
        "outlines": (outlines[:, 0].copy(), outlines[:, 1].copy()),
        "image": np.zeros((560, 1000), dtype=np.uint32),  # the dashboard's first map image: 1000×560 RGBA
        "regions": pd.DataFrame({"country": COUNTRIES[:10], "region": SOURCES[:5] * 2, "zones": range(10), "hectares": np.linspace(1, 2, 10)}),
    }


data = pn.state.as_cached("forestguard-bench-baseline", shared_data)

map_figure = figure(x_range=(WORLD[0], WORLD[2]), y_range=(WORLD[1], WORLD[3]), sizing_mode="stretch_both",
                    tools="pan,wheel_zoom,reset,save,tap", active_scroll="wheel_zoom", toolbar_location="above")
map_figure.axis.visible = False
map_figure.image_rgba(image=[data["image"]], x=WORLD[0], y=WORLD[1], dw=WORLD[2] - WORLD[0], dh=WORLD[3] - WORLD[1])
xs, ys = data["outlines"]
map_figure.multi_line(xs=[xs], ys=[ys], line_color="#8C8C8C", line_width=0.6)

bars = figure(x_range=FactorRange(*YEARS), height=300, sizing_mode="stretch_width", title="Cleared hectares per year", toolbar_location=None, tools="")
bars.vbar_stack(["legal", "illegal", "none"], x="year", width=0.8, color=["#1b9e77", "#d95f02", "#999999"],
                legend_label=["Legal", "Illegal", "Unclassified"],
                source=ColumnDataSource({"year": YEARS, "legal": [1.0] * 10, "illegal": [2.0] * 10, "none": [0.5] * 10}))

cards = "".join(f"<div class='card'><div>{label}</div><div>{value}</div></div>" for label, value in
                (("Zones", "1,000,000"), ("Hectares", "70,000,000.00"), ("Legal", "30,000,000.00"), ("Illegal", "40,000,000.00")))
sidebar = [
    pn.pane.Markdown("### Filters"),
    pn.Column(
        pn.widgets.MultiChoice(name="Countries", options=COUNTRIES, placeholder="All countries", sizing_mode="stretch_width"),
        pn.widgets.IntRangeSlider(name="Years", start=2015, end=2024, value=(2015, 2024), sizing_mode="stretch_width"),
        pn.widgets.RadioButtonGroup(name="Classification", options=["All", "Legal", "Illegal"], sizing_mode="stretch_width"),
        pn.widgets.MultiChoice(name="Sources", options=SOURCES, placeholder="All sources", sizing_mode="stretch_width"),
        pn.widgets.Switch(name="Verified only"),
        pn.widgets.FloatSlider(name="Minimum confidence", start=0, end=1, step=0.05, sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
    ),
    pn.pane.HTML("<div><b>Classification</b><div>Legal</div><div>Illegal</div><div>Unclassified</div></div>", sizing_mode="stretch_width"),
    pn.pane.Markdown("### Downloads"),
    pn.Column(
        pn.widgets.FileDownload(callback=lambda: None, filename="statistics.csv", label="Statistics (CSV)", sizing_mode="stretch_width"),
        pn.widgets.FileDownload(callback=lambda: None, filename="zones.geojson", label="Zones (GeoJSON)", sizing_mode="stretch_width"),
        pn.widgets.FileDownload(callback=lambda: None, filename="zones.parquet", label="Zones (GeoParquet)", sizing_mode="stretch_width"),
        pn.pane.Alert("", alert_type="warning", sizing_mode="stretch_width", visible=False),
        sizing_mode="stretch_width",
    ),
]
main = [
    pn.Column(pn.pane.HTML(f"<div class='cards'>{cards}</div>", sizing_mode="stretch_width"), sizing_mode="stretch_width"),
    pn.Row(
        pn.Column(pn.pane.Bokeh(map_figure, sizing_mode="stretch_width", height=560), sizing_mode="stretch_width", height=560),
        pn.Column(pn.pane.Markdown("#### Under the cursor"), pn.pane.HTML("<p>Click the map.</p>"), width=320),
        sizing_mode="stretch_width",
    ),
    pn.Row(
        pn.Column(pn.pane.Bokeh(bars, sizing_mode="stretch_width", height=320), sizing_mode="stretch_width"),
        pn.Column(pn.pane.Markdown("#### Top regions"), pn.pane.DataFrame(data["regions"], index=False, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
    ),
]
pn.template.BootstrapTemplate(title="Baseline · same layout", sidebar=sidebar, main=main, header_background="#1B4332",
                              sidebar_width=320, busy_indicator=None).servable()
