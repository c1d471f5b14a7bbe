"""The zones dashboard: a Panel Viewer whose parameters are the filters.

Every part (map, numbers, yearly bars, top regions, downloads) depends on the
same parameters, so one filter change updates them together. Heavy data is
process-wide (the shared :func:`~forestguard.render.zone_layer`, the cache);
a session holds only its filters and the in-memory selection of the layer.

How a session's page follows (the rule that keeps the map from falling behind): the
document is changed only on the event loop, in this session's own next-tick callbacks,
each a :func:`~forestguard.dashboard.document.batched` block. Panel hands a widget's change
to a worker thread; what runs there (the parameters, the URL's session state, a statistics
query the cache misses) never touches the document: it passes the change to the loop
(``IOLoop.add_callback``, thread-safe). The numbers go out in one tick, the map (extent and
image) in the next, bars, regions and downloads in the one after; pan, zoom, resize and
clicks in the browser are Bokeh events that ask for a map tick too. One route to the
browser, in the order the ticks ran: an image drawn for older filters or an older view
cannot arrive after a newer one.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
from contextlib import nullcontext
from functools import partial
from typing import Any, Callable

import panel as pn
import param
from bokeh.events import RangesUpdate, Tap
from panel.io.state import set_curdoc
from tornado.ioloop import IOLoop

from ..cache import default_cache
from ..config import settings
from ..render import ZoneLayer, fit_ranges, pixel_size, zone_layer
from ..schema import Classification
from ..stats import Statistics, statistics
from ..stores.base import ZoneFilter, ZoneStore
from . import mapview, parts, shared
from .style import STYLESHEET
from .evidence import INSIDE_CHOICES, INSIDE_LABELS, MAX_ZONES as EVIDENCE_ZONES, findings_html
from .areas import AreaControls, add_inside_hectares, inside_hectares
from .document import batched
from .host import BARS_GROUPING, CARD_GROUPINGS, host

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
#: What each of a session's ticks updates, and the kind of ``forestguard_render_duration_seconds`` it is timed as.
TICKS = {"numbers": "dashboard-numbers", "map": "dashboard-view", "parts": "dashboard-parts", "click": None, "area": None, "loaded": "dashboard-loaded"}


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
    clicked = param.XYCoordinates(default=None, precedence=-1, doc="Where the map was last clicked, Web Mercator metres.")

    def __init__(self, store: ZoneStore | None = None, cache: Any = None, **params: Any) -> None:
        self._store = store or host().store()
        self._cache = default_cache() if cache is None else cache
        self._base = zone_layer(self._store)
        super().__init__(**params)
        self._set_choices(self._base)
        self.param.area.objects = ["", *self._store.saved_area_names()]
        doc = pn.state.curdoc
        self._doc = doc if doc is not None and doc.session_context is not None else None  # None: no session (tests, warm-up)
        self._loop = IOLoop.current() if self._doc is not None else None  # sessions are created on their event loop
        self._user = pn.state.user if doc is not None else None
        self._location = pn.state.location if doc is not None else None  # the page's URL (None without a page)
        self._map: mapview.MapFigure | None = None
        self._map_pane: pn.pane.Bokeh | None = None
        self._size = mapview.DEFAULT_SIZE  # the map's plot in pixels, as the browser reports it
        self._view: tuple | None = None  # (x_range, y_range, width, height) of the image in the map
        self._drawn: tuple | None = None  # what that image shows: (selection key, view)
        # Loop-only state (read and written on the event loop): ticks asked for, a zoom to do, a pan or zoom in the browser.
        self._pending: set[str] = set()
        self._zoom_pending = False
        self._browser_moved = False
        self._clicked_at: tuple[float, float] | None = None
        self._ended = False
        self._fitted = False  # is the extent one we fitted to the zones (refitted when the map's size changes), not a link's or the user's?
        self._cards: pn.pane.HTML | None = None
        self._bars: pn.pane.Bokeh | None = None
        self._regions: pn.pane.DataFrame | None = None
        self._downloads: pn.Column | None = None
        self._loading: list[tuple[pn.Column, Callable[[], list]]] = []  # places on the page made once it has loaded
        self._areas = AreaControls(self)
        self.param.watch(lambda *_: self._areas.changed(), ["area"])  # before the others: outline, status, zoom
        self._restore_state()
        if (self.countries or self.area) and not (self.x_range and self.y_range):
            self._zoom_to_countries()  # a link that names countries (or an area) but no extent opens on them
        self._write_url()
        self.param.watch(self._save_state, list(FILTERS))
        self.param.watch(self._filters_changed, list(FILTERS))
        if self._doc is not None:
            shared.DATA_VERSIONS.add(self, self._doc)
            self._doc.on_session_destroyed(self._session_ended)

    def _session_ended(self, session_context: Any) -> None:
        self._ended = True  # no more ticks: the document is being destroyed

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
        location = self._location
        if location is None:
            return
        if not location.search and self._user:
            saved = _session_get(self._cache, self._user)
            if saved:
                self._apply(saved)
        names = {key: name for name, key in URL_PARAMETERS.items()}
        self._apply({names[key]: value for key, value in location.query_params.items() if key in names})

    def _apply(self, state: dict[str, Any]) -> None:
        """Filters (and a map extent) from saved session state or a link; values that do not fit are left out."""
        values = {}
        for name, value in state.items():
            if name not in FILTERS and name not in ("x_range", "y_range"):
                continue
            if name in ("countries", "sources"):
                if isinstance(value, str):  # a hand-typed link (?country=Brazil) names one where the page writes a list
                    value = [value]
                value = [v for v in value or [] if v in self.param[name].objects]
            elif name in ("years", "x_range", "y_range") and value is not None:
                try:
                    value = tuple((int if name == "years" else float)(v) for v in value)
                except (TypeError, ValueError):
                    continue
            values[name] = value
        try:
            self.param.update(**values)
        except (ValueError, TypeError):  # one bad value (an older dashboard's state, a mangled link): keep the others
            for name, value in values.items():
                try:
                    self.param.update(**{name: value})
                except (ValueError, TypeError) as exc:
                    log.info("ignoring %s from saved state or link: %s", name, exc)

    def _url_query(self) -> dict[str, str]:
        """The view as the URL's query: filters and extent, each serialised by its parameter (lists and ranges as JSON)."""
        query = {}
        for name, key in URL_PARAMETERS.items():
            value = getattr(self, name)
            if value is not None:
                value = self.param[name].serialize(value)
                query[key] = value if isinstance(value, str) else json.dumps(value)
        return query

    def _write_url(self) -> None:
        """The page's URL shows this view, so a link opens it (a change only when the query changed).

        Written by this session's ticks on the event loop, not by Panel's ``Location.sync``, whose
        watcher runs in whichever thread changed a filter: two changes handled by two threads
        at once could each write a query missing the other's.
        """
        if self._location is not None:
            self._location.update_query(**self._url_query())

    def _save_state(self, *events: Any) -> None:
        if self._user:
            _session_set(self._cache, self._user, self._state())

    def data_changed(self, latest_layer: Callable[[ZoneStore], ZoneLayer] = zone_layer) -> bool:
        """Is there a newer shared layer than the one this view shows (an ingest happened)?"""
        return latest_layer(self._store) is not self._base

    def refresh(self) -> None:
        """Pick up a new data version (an ingest): new shared layer, new choices, redraw (in one of the session's ticks)."""
        layer = zone_layer(self._store)
        if layer is not self._base:
            with batched(self._doc):
                self._base = layer
                self._set_choices(layer)
                self.param.trigger(*FILTERS)

    # -- updates: the numbers first, then the map, then the rest --------------------------------
    def _filters_changed(self, *events: param.parameterized.Event) -> None:
        """New filters: the cards, the map (extent and image), then bars, regions and downloads follow.

        Called where the filters changed (in Panel's processing of a widget's change); the page
        is changed by the session's ticks, on the event loop (see the module's docstring).
        """
        zoom = any(e.name == "countries" and e.old != e.new for e in events) | self._areas.take_zoom()
        if self._doc is None:  # no session (tests, warm-up): everything at once
            self._zoom_pending |= zoom
            for tick in TICKS:
                getattr(self, f"_{tick}_tick")()
            return
        self._loop.add_callback(self._changed, zoom)  # thread-safe, should Panel run callbacks in threads

    def _changed(self, zoom: bool) -> None:
        """On the event loop: the numbers tick once the statistics are in the cache (a query it misses runs in a thread)."""
        self._zoom_pending |= zoom
        self._loop.add_future(self._loop.run_in_executor(None, self.cards_html), lambda _: self._ask("numbers"))

    def soon(self, tick: str) -> None:
        """From anywhere (a widget's callback, any thread): ``tick`` runs in one of the session's ticks, or now without a session."""
        if self._doc is None:
            getattr(self, f"_{tick}_tick")()
        else:
            self._loop.add_callback(self._ask, tick)

    def _ask(self, tick: str) -> None:
        """On the event loop: run ``tick`` in this session's next tick (once, however often asked before it runs)."""
        if self._doc is None or self._ended or tick in self._pending:  # no session (the caller runs the tick), or no more
            return
        self._doc.add_next_tick_callback(partial(self._run, tick))
        self._pending.add(tick)

    def _run(self, tick: str) -> None:
        """One of the session's ticks: its changes reach the page in one batch, after those of the ticks before it."""
        self._pending.discard(tick)
        timer = host().timer(TICKS[tick]) if TICKS[tick] else nullcontext()
        with timer, set_curdoc(self._doc), batched(self._doc):
            getattr(self, f"_{tick}_tick")()

    def _numbers_tick(self) -> None:
        if self._cards is not None:
            self._cards.object = self.cards_html()
        if not self._zoom_pending:  # else the map tick writes the URL, with the new countries' extent
            self._write_url()
        self._ask("map")
        self._ask("parts")

    def _map_tick(self) -> None:
        """The map's extent (new countries, or the browser's pan and zoom) and the image of the view."""
        if self._zoom_pending:  # new countries win over a pan that came before them
            self._zoom_pending = self._browser_moved = False
            self._zoom_to_countries()
        else:
            if self._browser_moved:
                self._browser_moved = False
                self._keep_extent(*self._map.axes())
            if self._fitted and self._view is not None and self._size != self._view[2:]:
                self._zoom_to_countries()  # the map's size changed: the zones fitted to it again
        self._draw()
        self._write_url()

    def _parts_tick(self) -> None:
        self._update_parts()

    def _loaded_tick(self) -> None:
        """The page has loaded: what waited for it goes into its places (see :meth:`on_load`)."""
        loading, self._loading = self._loading, []
        for place, make in loading:
            place[:] = make()

    def _area_tick(self) -> None:
        self._areas.show()

    def _click_tick(self) -> None:
        clicked, self._clicked_at = self._clicked_at, None
        if clicked is not None:
            self.clicked = clicked

    # -- map -------------------------------------------------------------------------------------
    def map_panel(self) -> pn.viewable.Viewable:
        """The map: a Bokeh figure of this session's own; its image comes from the process's shared view images."""
        if self._map is None:
            if not (self.x_range and self.y_range):  # no link, no countries: all zones
                self._zoom_to_countries()
                self._write_url()
            view = (tuple(self.x_range), tuple(self.y_range), *self._size)
            layer = self.selection()
            image = mapview.view_image(layer, *view, cache=self._cache)
            self._map = mapview.map_figure(view[0], view[1], image, parts.MAP_HEIGHT, settings().tile_url)
            self._drawn, self._view = (layer.key, view), view
            plot = self._map.figure
            plot.css_classes = ["fg-map"]  # what the page's tests and styles find the map by
            plot.on_event(RangesUpdate, self._browser_ranges)
            plot.on_event(Tap, self._browser_tap)
            plot.on_change("inner_width", self._browser_size)
            plot.on_change("inner_height", self._browser_size)
            self._areas.add_layers(plot)
        if self._map_pane is None:
            self._map_pane = pn.pane.Bokeh(self._map.figure, sizing_mode="stretch_width", height=parts.MAP_HEIGHT)
        return self._map_pane

    def _draw(self) -> None:
        """The image of this view and these filters into the map, unless it is there already."""
        if self._map is None:  # no map yet: it is drawn from the filters when it is made
            return
        view = (tuple(self.x_range), tuple(self.y_range), *self._size)
        layer = self.selection()
        if self._drawn == (layer.key, view):
            return
        self._map.show(mapview.view_image(layer, *view, cache=self._cache))  # the drawn part: the margins are transparent anyway
        self._drawn, self._view = (layer.key, view), view

    def _browser_ranges(self, event: RangesUpdate) -> None:
        """Pan, zoom or reset in the browser (a Bokeh event, on the loop): the map follows in a tick.

        The extent drawn is the map's axes as the session has them, not the event's: the browser
        sends its axes ahead of the event, and an event sent before our last zoom reached the page
        would take the map back to where it was.
        """
        self._browser_moved = True
        self._ask("map")

    def _browser_size(self, attr: str, old: Any, new: Any) -> None:
        """The browser laid out or resized the map: draw it at its size in pixels."""
        plot = self._map.figure
        try:
            width, height = plot.inner_width, plot.inner_height
        except ValueError:  # Bokeh's UnsetValueError: one of the two has not arrived yet
            return
        if width and height and (width, height) != self._size:
            self._size = (int(width), int(height))
            self._ask("map")

    def _browser_tap(self, event: Tap) -> None:
        self._clicked_at = (event.x, event.y)
        self._ask("click")

    def browser_view(self, x_range, y_range) -> None:
        """What a pan or zoom in the browser sends (the axes, then the event), for callers without a browser (tests)."""
        self._map.go_to(x_range, y_range)
        self._browser_moved = True
        self._map_tick()

    def _keep_extent(self, x_range, y_range) -> None:
        """The map extent goes to the URL with the filters, so a link opens the same view."""
        # While a page lays out, Bokeh can report NaN (or empty) ranges: no extent to share yet.
        if x_range and y_range and all(math.isfinite(v) for v in (*x_range, *y_range)) and x_range[0] < x_range[1] and y_range[0] < y_range[1]:
            self.param.update(x_range=_rounded(x_range), y_range=_rounded(y_range))
            self._fitted = False

    def _zoom_to_countries(self) -> None:
        """The map goes to the chosen countries' zones, padded; no choice: to all zones."""
        x_range, y_range = fit_ranges(self._areas.mercator_bounds() or self._base.bounds_of(self.countries), *self._size)
        self.param.update(x_range=_rounded(x_range), y_range=_rounded(y_range))
        self._fitted = True
        if self._map is not None:
            self._map.go_to(x_range, y_range)  # the browser's axes follow

    def click_panel(self, clicked: tuple[float, float] | None = None) -> pn.viewable.Viewable:
        """Zones and hectares where the map was clicked (bound to ``clicked``)."""
        if clicked is None or self._view is None:
            return pn.pane.HTML("<p class='fg-hint'>Click the map to see the zones and hectares under the cursor.</p>", sizing_mode="stretch_width")
        x, y = clicked
        info = mapview.click_info(self.selection(), x, y, pixel_size(*self._view))
        items = [pn.pane.HTML(info.to_html(), sizing_mode="stretch_width", stylesheets=[STYLESHEET])]
        if info.detail is not None:
            # Nine columns in a side column: they scroll sideways rather than being cut off.
            items.append(pn.pane.DataFrame(info.detail, index=False, escape=True, sizing_mode="stretch_width", float_format="{:,.2f}".format,
                                           styles={"overflow-x": "auto"}))
            findings = findings_html(self._store.zones_evidence(info.detail["id"].tolist()[:EVIDENCE_ZONES]))
            if findings:
                items.append(pn.pane.HTML(findings, sizing_mode="stretch_width", stylesheets=[STYLESHEET]))
        return pn.Column(*items, sizing_mode="stretch_width")

    # -- numbers and charts --------------------------------------------------------------------
    def cards_html(self) -> str:
        return parts.cards_html(*(self.stats(by) for by in CARD_GROUPINGS))

    def cards(self) -> pn.pane.HTML:
        """The numbers: one pane for the session, its HTML replaced when the filters change."""
        if self._cards is None:
            self._cards = pn.pane.HTML(self.cards_html(), sizing_mode="stretch_width", stylesheets=[STYLESHEET])
        return self._cards

    def yearly_bars(self) -> pn.pane.Bokeh:
        """One Bokeh figure for the session, its data replaced in place when the filters change."""
        if self._bars is None:
            self._bars = pn.pane.Bokeh(parts.yearly_bars(self.stats(BARS_GROUPING)), sizing_mode="stretch_width", height=320)
        return self._bars

    def regions_table(self) -> pn.pane.DataFrame:
        """The top regions of the selection: one pane for the session, its table replaced on a change."""
        if self._regions is None:
            self._regions = pn.pane.DataFrame(self._top_regions(), index=False, escape=True, sizing_mode="stretch_width",
                                              float_format="{:,.2f}".format, formatters={"zones": "{:,}".format}, stylesheets=[STYLESHEET])
        return self._regions

    def _top_regions(self):
        layer = self.selection()
        return shared.TABLES.get(("top-regions", layer.key), lambda: mapview.top_regions(layer, hectares=inside_hectares(self._store, self.where, layer)))

    @property
    def builds_on_load(self) -> bool:
        """Is the whole page (not only its charts) made once it has loaded? With ``--num-procs`` above 1.

        A page's request and its websocket can reach different worker processes; the second then
        makes the session again for the websocket, and the first made it for nothing. Made on
        load, the first process has made only the empty page.
        """
        return self._doc is not None and host().sessions_rebuilt

    def on_load(self, make: Callable[[], list], **layout: Any) -> pn.Column:
        """A place on the page for what ``make`` returns, made once the page has loaded (at once without a page)."""
        place = pn.Column(**layout)
        if self._doc is None:
            place[:] = make()
        else:
            if not self._loading:
                pn.state.onload(lambda: self._loop.add_callback(self._ask, "loaded"))
            self._loading.append((place, make))
        return place

    def charts(self) -> pn.Column:
        """The yearly bars and the top regions, below the map: made once the page has loaded.

        A new visitor's page is the filters, the numbers and the map; the charts below them are a
        third of what a session costs to make and send, and a burst of arrivals waits for every
        page before its own. They follow as soon as the page has loaded (``pn.state.onload``).
        """
        return self.on_load(lambda: [pn.Row(
            pn.Column(self.yearly_bars(), sizing_mode="stretch_width"),
            pn.Column(pn.pane.Markdown("#### Top regions"), self.regions_table(), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )], sizing_mode="stretch_width", min_height=parts.CHARTS_HEIGHT)

    def _update_parts(self) -> None:
        """Bars, regions and downloads follow the filters (those of them already on a page)."""
        if self._bars is not None:
            parts.update_yearly_bars(self._bars.object, self.stats(BARS_GROUPING))
        if self._regions is not None:
            self._regions.object = self._top_regions()
        if self._downloads is not None:
            self._update_downloads()

    # -- downloads -------------------------------------------------------------------------------
    def _stats_csv(self) -> io.StringIO:
        return io.StringIO(self.stats(("country", "year", "classification")).to_csv())

    def _zones_file(self, kind: str) -> io.IOBase:
        limit = host().download_limit
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

    async def _in_thread(self, make: Callable[..., io.IOBase], *args: Any) -> io.IOBase:
        """A download's file, made in a thread: the query and the encoding (seconds for 50,000 zones) do not hold up the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, make, *args)

    def downloads(self) -> pn.Column:
        """Statistics and zone downloads; the zone buttons are disabled (with a note) above the size limit."""
        if self._downloads is None:
            self._downloads = pn.Column(
                pn.widgets.FileDownload(callback=partial(self._in_thread, self._stats_csv), filename="forestguard-statistics.csv",
                                        label="Statistics (CSV)", color="primary", sizing_mode="stretch_width"),
                pn.widgets.FileDownload(callback=partial(self._in_thread, self._zones_file, "geojson"), filename="forestguard-zones.geojson",
                                        label="Zones (GeoJSON)", sizing_mode="stretch_width"),
                pn.widgets.FileDownload(callback=partial(self._in_thread, self._zones_file, "parquet"), filename="forestguard-zones.parquet",
                                        label="Zones (GeoParquet)", sizing_mode="stretch_width"),
                pn.pane.Alert("", alert_type="warning", sizing_mode="stretch_width", visible=False),
                sizing_mode="stretch_width",
            )
        self._update_downloads()
        return self._downloads

    def _update_downloads(self) -> None:
        limit = host().download_limit
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


def _rounded(values) -> tuple[float, float]:
    """An extent as the URL keeps it (0.1 m)."""
    return tuple(round(float(v), 1) for v in values)


def warm_views(countries: list[str], store: ZoneStore | None = None, cache: Any = None) -> int:
    """Select each country's zones and count its top regions, once for the process, before the first visitor.

    What a first visit of a country waits for besides its image (the selection and the regions
    table, 10-25 ms for a large country); every session choosing that country shares them.
    """
    view = ZonesDashboard(store=store, cache=cache)
    for country in countries:
        view.countries = [country]  # no page: nothing is drawn
        view._top_regions()  # selects the zones too
        mapview.view_image(view.selection(), tuple(view.x_range), tuple(view.y_range), *view._size, cache=view._cache)  # and reads the polygons it draws
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
