"""The zones dashboard: a Panel Viewer whose parameters are the filters.

Every part (map, numbers, yearly bars, top regions, downloads) depends on the
same parameters, so one filter change updates them together. Heavy data is
process-wide (the shared :func:`~forestguard.render.zone_layer`, the cache);
a session holds only its filters and the in-memory selection of the layer.
"""

from __future__ import annotations

import io
import logging
import math
from contextlib import nullcontext
from functools import partial
from typing import Any, Callable

import holoviews as hv
import panel as pn
import param
from panel.io.document import immediate_dispatch
from panel.io.state import set_curdoc

from ..cache import default_cache
from ..render import ZoneLayer, fit_ranges, pixel_size, view_ranges, zone_layer
from ..schema import Classification
from ..stats import Statistics, statistics
from ..stores.base import ZoneFilter, ZoneStore
from ..server import metrics, runtime
from . import mapview, parts, shared
from .evidence import INSIDE_CHOICES, INSIDE_LABELS, MAX_ZONES as EVIDENCE_ZONES, findings_html
from .areas import AreaControls, add_inside_hectares, inside_hectares
from .document import graph_frozen
from .image import SharedRGB, SharedRGBPlot

log = logging.getLogger(__name__)

FILTERS = ("countries", "years", "classification", "sources", "verified_only", "min_confidence", "inside", "area")
#: Parameter → URL query name: the view a link opens.
URL_PARAMETERS = {
    "countries": "country",
    "years": "years",
    "classification": "classification",
    "sources": "source",
    "verified_only": "verified_only",
    "min_confidence": "min_confidence",
    "inside": "inside",
    "area": "area",
    "x_range": "x",
    "y_range": "y",
}


#: Counts the images put straight into a session's plots: part of the key of HoloViews' memo of a view.
_Drawn = hv.streams.Stream.define("Drawn", images=0)


class ZonesDashboard(pn.viewable.Viewer):
    """Deforestation zones: map, numbers and charts for the chosen filters."""

    countries = param.ListSelector(default=[], objects=[], doc="Countries to show; none selected shows all.")
    years = param.Range(default=None, doc="First and last year shown.")
    classification = param.Selector(default="all", objects=["all", "legal", "illegal"])
    sources = param.ListSelector(default=[], objects=[], doc="Sources to show; none selected shows all.")
    verified_only = param.Boolean(default=False, doc="Only zones verified in the field.")
    min_confidence = param.Number(default=0.0, bounds=(0.0, 1.0), step=0.05, doc="Only zones at least this confident (0: all).")
    inside = param.Selector(default="", objects=list(INSIDE_CHOICES), doc="Only zones evidence found inside layers of these kinds (none: anywhere).")
    area = param.Selector(default="", objects=[""], doc="A saved area: only zones meeting it, hectares counted inside it.")
    x_range = param.Range(default=None, precedence=-1, doc="Map extent, Web Mercator metres.")
    y_range = param.Range(default=None, precedence=-1, doc="Map extent, Web Mercator metres.")

    def __init__(self, store: ZoneStore | None = None, cache: Any = None, **params: Any) -> None:
        self._store = store or runtime.shared_store()
        self._cache = default_cache() if cache is None else cache
        self._base = zone_layer(self._store)
        self._view = None
        super().__init__(**params)
        self._set_choices(self._base)
        self.param.area.objects = ["", *self._store.saved_area_names()]
        self._areas = AreaControls(self)
        self._user = pn.state.user if pn.state.curdoc is not None else None
        self._map_pane: pn.pane.HoloViews | None = None
        self._map: hv.DynamicMap | None = None
        self._follow_pending = False
        self._zoom_pending = False
        self._cards: pn.pane.HTML | None = None
        self._bars: pn.pane.Bokeh | None = None
        self._regions: pn.pane.DataFrame | None = None
        self._downloads: pn.Column | None = None
        self.param.watch(lambda *_: self._areas.changed(), ["area"])  # before the others: outline, status, zoom
        self._restore_state()
        if (self.countries or self.area) and not (self.x_range and self.y_range):
            self._zoom_to_countries()  # a link that names countries (or an area) but no extent opens on them
        self.param.watch(self._save_state, list(FILTERS))
        self.param.watch(self._filters_changed, list(FILTERS))  # after the URL: a shared extent is kept
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            shared.DATA_VERSIONS.add(self, pn.state.curdoc)

    # -- filters ---------------------------------------------------------------------------
    def _set_choices(self, layer: ZoneLayer) -> None:
        z = layer.base
        self.param.countries.objects = sorted(map(str, z["country"].cat.categories))
        self.param.sources.objects = sorted(map(str, z["source"].cat.categories))
        for name, widget in getattr(self, "_choice_widgets", {}).items():
            widget.options = parts.escaped_options(self.param[name].objects)
        first, last = (int(z["year"].min()), int(z["year"].max())) if len(z) else (2000, 2000)
        self.param.years.bounds = (first, last)
        if self.years is None:
            self.years = (first, last)

    @property
    def where(self) -> ZoneFilter:
        """The filters as the ZoneFilter every statistic and map of this view uses."""
        first, last = self.param.years.bounds or (None, None)
        year_from, year_to = self.years or (None, None)
        return ZoneFilter(
            countries=tuple(self.countries),
            year_from=None if year_from is None or year_from <= first else int(year_from),
            year_to=None if year_to is None or year_to >= last else int(year_to),
            classifications=() if self.classification == "all" else (Classification(self.classification),),
            sources=tuple(self.sources),
            verified_only=bool(self.verified_only),
            min_confidence=float(self.min_confidence) if self.min_confidence else None,
            area=self._areas.current(),
            overlaps=INSIDE_CHOICES[self.inside],
            # Evidence changes without the zones' data version moving: selections shared by key follow it.
            evidence_version=self._store.evidence_version() if self.inside else None,
        )

    def selection(self) -> ZoneLayer:
        """The zones the filters select, from the shared layer, shared with every session using the same filters."""
        base, where = self._base, self.where
        return shared.SELECTIONS.get((base.key, where.key()), lambda: base.select(where))

    def stats(self, by: tuple[str, ...]) -> Statistics:
        return statistics(self._store, self.where, by, cache=self._cache)

    # -- state: URL and session ----------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILTERS}

    def _restore_state(self) -> None:
        """A shared link wins; without one, a signed-in user gets back their last filters."""
        location = pn.state.location
        if location is not None:
            if not location.search and self._user:
                saved = _session_get(self._cache, self._user)
                if saved:
                    self._apply(saved)
            location.sync(self, URL_PARAMETERS, on_error=self._apply)

    def _apply(self, state: dict[str, Any]) -> None:
        """Filters (and a map extent) from saved session state or from a link Panel could not apply."""
        values = {}
        for name, value in state.items():
            if name not in FILTERS and name not in ("x_range", "y_range"):
                continue
            if name in ("countries", "sources"):
                if isinstance(value, str):  # a hand-typed link (?country=Brazil) names one where the page writes a list
                    value = [value]
                value = [v for v in value or [] if v in self.param[name].objects]
            elif name in ("years", "x_range", "y_range") and value is not None:
                value = tuple((int if name == "years" else float)(v) for v in value)
            values[name] = value
        try:
            self.param.update(**values)
        except (ValueError, TypeError) as exc:  # state from an older version of the dashboard, a mangled link
            log.info("ignoring saved dashboard state: %s", exc)

    def _save_state(self, *events: Any) -> None:
        if self._user:
            _session_set(self._cache, self._user, self._state())

    def data_changed(self, latest_layer: Callable[[ZoneStore], ZoneLayer] = zone_layer) -> bool:
        """Is there a newer shared layer than the one this view shows (an ingest happened)?"""
        return latest_layer(self._store) is not self._base

    def refresh(self) -> None:
        """Pick up a new data version (an ingest): new shared layer, new choices, redraw."""
        layer = zone_layer(self._store)
        if layer is not self._base:
            self._base = layer
            self._set_choices(layer)
            self.param.trigger(*FILTERS)

    # -- updates: the numbers first, then the rest ------------------------------------------
    def _filters_changed(self, *events: param.parameterized.Event) -> None:
        """The cards follow the filters at once, the map in the next tick, bars, regions and downloads in the one after.

        The numbers are what a filter change is for and cost a cached lookup; sent in a patch
        of their own they show without waiting for the image. The map (extent and image) goes
        out in a tick of its own too, before the charts and tables (~30 ms of Bokeh updates)
        are made.
        """
        self._zoom_pending |= any(e.name == "countries" and e.old != e.new for e in events) | self._areas.take_zoom()
        doc = pn.state.curdoc
        if self._cards is not None:
            with metrics.render_timer("dashboard-numbers"):
                html = self.cards_html()
                with immediate_dispatch(doc) if doc is not None else nullcontext():  # on the wire now, not with the rest
                    self._cards.object = html
        if doc is None or self._map is None:  # no page yet (or none at all): nothing to split
            self._follow_map()
            self._update_parts()
        elif not self._follow_pending:
            self._follow_pending = True
            doc.add_next_tick_callback(partial(self._follow_in, doc))

    def _follow_in(self, doc: Any) -> None:
        with metrics.render_timer("dashboard-view"), set_curdoc(doc), graph_frozen(doc):  # a graph walk only if a model came or went
            self._follow_map()
        doc.add_next_tick_callback(partial(self._parts_in, doc))

    def _parts_in(self, doc: Any) -> None:
        with metrics.render_timer("dashboard-parts"), set_curdoc(doc), graph_frozen(doc):
            self._update_parts()

    def _follow_map(self) -> None:
        """The map's extent (new countries) and image, in one patch."""
        self._follow_pending = False
        if self._zoom_pending:  # a refresh re-triggering the same filters keeps the user's view
            self._zoom_pending = False
            self._zoom_to_countries()
        self._redraw_map()

    # -- map -------------------------------------------------------------------------------------
    def _build_map(self) -> hv.DynamicMap:
        self._ranges = hv.streams.RangeXY()
        self._size = hv.streams.PlotSize()
        # HoloViews memoises a view on its streams' values; new filters change the image under an
        # unchanged view (_redraw_map), so the count of those images is one of the values.
        self._drawn = _Drawn()
        zones = hv.DynamicMap(self._render, streams=[self._ranges, self._size, self._drawn])
        self.tap = hv.streams.Tap(source=zones, x=None, y=None)
        self._ranges.param.watch(self._keep_extent, ["x_range", "y_range"])
        return zones

    def _view_args(self, x_range=None, y_range=None, width=None, height=None) -> tuple[tuple, tuple, int, int]:
        """The view to draw: what the browser reports, else the extent from the URL, else all zones."""
        width, height = int(width or 1000), int(height or 560)
        if x_range is None or y_range is None:
            if self.x_range and self.y_range:
                x_range, y_range = tuple(self.x_range), tuple(self.y_range)
            else:
                x_range, y_range = view_ranges(self._base, None, width, height)
        return x_range, y_range, width, height

    def _render(self, x_range=None, y_range=None, width=None, height=None, **_: Any) -> SharedRGB:
        """The DynamicMap's callback: a view HoloViews asks for (first draw, pan, zoom, resize)."""
        self._view = self._view_args(x_range, y_range, width, height)
        return mapview.render_view(self.selection(), *self._view, cache=self._cache)

    def _redraw_map(self) -> None:
        """New filters: the new image goes straight into this session's plots.

        A stream event would have HoloViews rebuild the frame, recompute the ranges of every
        layer (the outlines too) and diff the plot: ~40 ms on the event loop before the image
        leaves, for a change that is only the image. Pan, zoom and resize stay HoloViews' own,
        with images of the whole view: HoloViews takes its first ranges from the image.
        """
        if self._map is None:  # no map yet: it is drawn from the filters when it is
            return
        self._drawn.update(images=self._drawn.images + 1)  # no event: what HoloViews remembers of this view is stale
        plots = self._image_plots()
        if not plots:  # not on a page yet
            return
        self._view = self._view_args(self._ranges.x_range, self._ranges.y_range, self._size.width, self._size.height)
        image = mapview.view_image(self.selection(), *self._view, cache=self._cache)
        for plot in plots:  # the drawn part only: the margins are transparent anyway
            plot.show(image.part, image.part_bounds)

    def _map_plots(self) -> list[Any]:
        """This session's rendered map plots, each once (Panel files a plot under more than one model)."""
        return list({id(plot): plot for plot, _ in getattr(self._map_pane, "_plots", {}).values()}.values())

    def _image_plots(self) -> list[SharedRGBPlot]:
        """The zone image plots of this session's map."""
        return [sub for plot in self._map_plots() for sub in getattr(plot, "subplots", {}).values() if isinstance(sub, SharedRGBPlot)]

    def _keep_extent(self, *events: Any) -> None:
        """The map extent goes to the URL with the filters, so a link opens the same view."""
        x_range, y_range = self._ranges.x_range, self._ranges.y_range
        # While a page lays out, Bokeh reports NaN (or empty) ranges: no extent to share yet.
        if x_range and y_range and all(math.isfinite(v) for v in (*x_range, *y_range)) and x_range[0] < x_range[1] and y_range[0] < y_range[1]:
            self.param.update(x_range=tuple(round(v, 1) for v in x_range), y_range=tuple(round(v, 1) for v in y_range))

    def _zoom_to_countries(self) -> None:
        """The map goes to the chosen countries' zones, padded; no choice: to all zones."""
        width, height = self._view[2:] if self._view else (1000, 560)
        x_range, y_range = fit_ranges(self._areas.mercator_bounds() or self._base.bounds_of(self.countries), width, height)
        if self._map is None:  # no map yet: the extent the map will open with
            self.param.update(x_range=tuple(round(v, 1) for v in x_range), y_range=tuple(round(v, 1) for v in y_range))
            return
        self._set_axes(x_range, y_range)  # the browser's axes follow
        self._ranges.update(x_range=x_range, y_range=y_range)  # no event: _redraw_map, which follows, draws there
        self._keep_extent()

    def _set_axes(self, x_range, y_range) -> None:
        """The browser's axes follow: the Bokeh ranges of this session's map are set on the server."""
        for plot in self._map_plots():
            plot.handles["x_range"].update(start=x_range[0], end=x_range[1])
            plot.handles["y_range"].update(start=y_range[0], end=y_range[1])

    def map_panel(self) -> pn.viewable.Viewable:
        if self._map is None:
            self._map = self._build_map()
        tiles = parts.basemap()
        plot = (tiles * self._map * mapview.outlines()) if tiles is not None else (self._map * mapview.outlines())
        plot = plot * self._areas.layers()
        plot = plot.opts(
            hv.opts.Path(apply_ranges=False),  # the world's borders do not set the extent: a linked view opens as shared
            hv.opts.Overlay(responsive=True, height=parts.MAP_HEIGHT, active_tools=["pan", "wheel_zoom"], toolbar="above"),
        )
        self._map_pane = pn.pane.HoloViews(plot, sizing_mode="stretch_width", height=parts.MAP_HEIGHT, linked_axes=False, css_classes=["fg-map"])
        return self._map_pane

    def click_panel(self, x: float | None = None, y: float | None = None) -> pn.viewable.Viewable:
        """Zones and hectares where the map was clicked (bound to the map's Tap stream)."""
        if x is None or y is None or self._view is None:
            return pn.pane.HTML("<p class='fg-hint'>Click the map to see the zones and hectares under the cursor.</p>", sizing_mode="stretch_width")
        info = mapview.click_info(self.selection(), x, y, pixel_size(*self._view))
        items = [pn.pane.HTML(info.to_html(), sizing_mode="stretch_width", stylesheets=[parts.STYLESHEET])]
        if info.detail is not None:
            items.append(pn.pane.DataFrame(info.detail, index=False, escape=True, sizing_mode="stretch_width", float_format="{:,.2f}".format))
            findings = findings_html(self._store.zones_evidence(info.detail["id"].tolist()[:EVIDENCE_ZONES]))
            if findings:
                items.append(pn.pane.HTML(findings, sizing_mode="stretch_width", stylesheets=[parts.STYLESHEET]))
        return pn.Column(*items, sizing_mode="stretch_width")

    # -- numbers and charts --------------------------------------------------------------------
    def cards_html(self) -> str:
        return parts.cards_html(*(self.stats(by) for by in runtime.CARD_GROUPINGS))

    def cards(self) -> pn.pane.HTML:
        """The numbers: one pane for the session, its HTML replaced when the filters change."""
        if self._cards is None:
            self._cards = pn.pane.HTML(self.cards_html(), sizing_mode="stretch_width", stylesheets=[parts.STYLESHEET])
        return self._cards

    def yearly_bars(self) -> pn.pane.Bokeh:
        """One Bokeh figure for the session, its data replaced in place when the filters change."""
        if self._bars is None:
            self._bars = pn.pane.Bokeh(parts.yearly_bars(self.stats(runtime.BARS_GROUPING)), sizing_mode="stretch_width", height=320)
        return self._bars

    def regions_table(self) -> pn.pane.DataFrame:
        """The top regions of the selection: one pane for the session, its table replaced on a change."""
        if self._regions is None:
            self._regions = pn.pane.DataFrame(self._top_regions(), index=False, escape=True, sizing_mode="stretch_width",
                                              float_format="{:,.2f}".format, formatters={"zones": "{:,}".format}, stylesheets=[parts.STYLESHEET])
        return self._regions

    def _top_regions(self):
        layer = self.selection()
        return shared.TABLES.get(("top-regions", layer.key), lambda: mapview.top_regions(layer, hectares=inside_hectares(self._store, self.where, layer)))

    def _update_parts(self) -> None:
        """Bars, regions and downloads follow the filters (those of them already on a page)."""
        if self._bars is not None:
            parts.update_yearly_bars(self._bars.object, self.stats(runtime.BARS_GROUPING))
        if self._regions is not None:
            self._regions.object = self._top_regions()
        if self._downloads is not None:
            self._update_downloads()

    # -- downloads -------------------------------------------------------------------------------
    def _stats_csv(self) -> io.StringIO:
        return io.StringIO(self.stats(("country", "year", "classification")).to_csv())

    def _zones_file(self, kind: str) -> io.IOBase:
        limit = runtime.options().download_limit
        count = len(self.selection())
        if count > limit:  # the buttons are disabled then; this guards a stale page
            raise ValueError(f"{count:,} zones selected; downloads are limited to {limit:,}")
        zones = self._store.zones(self.where)
        for column in ("area_ha", "confidence"):  # exact decimals in the store; JSON and Parquet readers expect numbers
            if column in zones:
                zones[column] = zones[column].astype("float64")
        add_inside_hectares(zones, self.where)
        if kind == "geojson":
            return io.StringIO(zones.to_json(drop_id=True))
        buffer = io.BytesIO()
        zones.to_parquet(buffer, compression="zstd")
        buffer.seek(0)
        return buffer

    def downloads(self) -> pn.Column:
        """Statistics and zone downloads; the zone buttons are disabled (with a note) above the size limit."""
        if self._downloads is None:
            self._downloads = pn.Column(
                pn.widgets.FileDownload(callback=self._stats_csv, filename="forestguard-statistics.csv", label="Statistics (CSV)", color="primary", sizing_mode="stretch_width"),
                pn.widgets.FileDownload(callback=lambda: self._zones_file("geojson"), filename="forestguard-zones.geojson", label="Zones (GeoJSON)", sizing_mode="stretch_width"),
                pn.widgets.FileDownload(callback=lambda: self._zones_file("parquet"), filename="forestguard-zones.parquet", label="Zones (GeoParquet)", sizing_mode="stretch_width"),
                pn.pane.Alert("", alert_type="warning", sizing_mode="stretch_width", visible=False),
                sizing_mode="stretch_width",
            )
        self._update_downloads()
        return self._downloads

    def _update_downloads(self) -> None:
        limit = runtime.options().download_limit
        count = len(self.selection())
        too_many = count > limit
        _, geojson, parquet, note = self._downloads
        message = (f"{count:,} zones are selected. Zone downloads are limited to {limit:,}: narrow the filters "
                   "(countries, years, classification) to download them.") if too_many else ""
        # Only what changed: each change is a message to the browser.
        for widget, name, value in ((geojson, "disabled", too_many), (parquet, "disabled", too_many), (note, "object", message), (note, "visible", too_many)):
            if getattr(widget, name) != value:
                setattr(widget, name, value)

    # -- layout ----------------------------------------------------------------------------------
    def area_controls(self) -> pn.Column:
        """Choose a saved area, upload one or draw one (see :mod:`.areas`)."""
        return self._areas.widgets()

    def widgets(self) -> pn.Column:
        first, last = self.param.years.bounds
        self._choice_widgets = {
            "countries": parts.safe_multichoice(self, "countries", "Countries", "All countries"),
            "sources": parts.safe_multichoice(self, "sources", "Sources", "All sources"),
        }
        return pn.Column(
            self._choice_widgets["countries"],
            pn.widgets.IntRangeSlider.from_param(self.param.years, name="Years", start=first, end=max(last, first + 1), step=1, sizing_mode="stretch_width"),
            parts.ImmediateRadioButtonGroup.from_param(self.param.classification, name="Classification", options={"All": "all", "Legal": "legal", "Illegal": "illegal"}, sizing_mode="stretch_width"),
            self._choice_widgets["sources"],
            parts.ImmediateSwitch.from_param(self.param.verified_only, name="Verified only"),
            pn.widgets.FloatSlider.from_param(self.param.min_confidence, name="Minimum confidence", sizing_mode="stretch_width"),
            pn.widgets.Select.from_param(self.param.inside, name="Evidence", options=INSIDE_LABELS, sizing_mode="stretch_width",
                                         visible=bool(self._store.reference_layers())),  # no layers: nothing to filter by
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.template.BaseTemplate:
        return parts.template(self)


def warm_views(countries: list[str], store: ZoneStore | None = None, cache: Any = None) -> int:
    """Select each country's zones and count its top regions, once for the process, before the first visitor.

    What a first visit of a country waits for besides its image (the selection and the regions
    table, 10-25 ms for a large country); every session choosing that country shares them.
    """
    view = ZonesDashboard(store=store, cache=cache)
    for country in countries:
        view.countries = [country]  # no page: nothing is drawn
        view._top_regions()  # selects the zones too
        mapview.view_image(view.selection(), *view._view_args(), cache=view._cache)  # and reads the polygons it draws
    return len(countries)


def _session_get(cache: Any, user: str) -> dict[str, Any] | None:
    try:
        return cache.session_get(user)
    except Exception:  # the cache never breaks a dashboard
        return None


def _session_set(cache: Any, user: str, state: dict[str, Any]) -> None:
    try:
        cache.session_set(user, {k: list(v) if isinstance(v, tuple) else v for k, v in state.items()})
    except Exception:
        pass


__all__ = ["FILTERS", "URL_PARAMETERS", "ZonesDashboard", "warm_views"]
