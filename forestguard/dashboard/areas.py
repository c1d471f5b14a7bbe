"""The dashboard's area: a saved area, an uploaded file or a polygon drawn on the map.

Whichever it is becomes the view's ``ZoneFilter.area``, so the cards, bars, map, top regions
and downloads all describe only that area, through the same code as without one. A saved
area's name is a filter like the others (in the page's link: ``?area=NAME``); an uploaded
or drawn one lives in the session only. Drawing uses Bokeh's PolyDrawTool on the session's
map figure (the browser edits a data source the session holds); the polygon becomes the area
when "Use the drawn polygon" is pressed (not on every vertex). Bokeh's polygon tool starts a
polygon with a press (hold), adds a corner per click.

What the page shows of the area (status, outline, a cleared drawing) changes in the session's
"area" tick, like every other change of the page (see :mod:`forestguard.dashboard.viewer`).
"""

from __future__ import annotations

import html
import io
import logging
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, PolyDrawTool

from ..areas import Area, area_from_drawing, read_area
from ..errors import UserError
from ..render import mercator_box, to_lonlat
from ..render.outline import OUTLINE_COLOR, outline_paths
from ..stores.base import ZoneStore
from .style import STYLESHEET


class AreaSession(Protocol):
    """What the area controls use of their session (:class:`~forestguard.dashboard.viewer.ZonesDashboard`):
    its ``area`` parameter, its store, and the ticks that change the page in order."""

    param: Any
    area: str
    _store: ZoneStore

    def soon(self, tick: str) -> None: ...

log = logging.getLogger(__name__)

#: Files a user may upload as an area (a Shapefile as a .zip of its parts).
UPLOAD_TYPES = ".geojson,.json,.gpkg,.parquet,.geoparquet,.zip,.fgb"
DRAW_COLOR = "#0B6BCB"


class AreaControls:
    """The area widgets of one session, and the map layers that show and draw areas."""

    def __init__(self, view: AreaSession) -> None:
        self.view = view
        self.custom: Area | None = None  #: uploaded or drawn (the saved one is ``view.area``)
        self._saved: tuple[str, Area] | None = None
        self.outline = ColumnDataSource({"xs": [], "ys": []})  #: the area's rings on the map
        self.drawing = ColumnDataSource({"xs": [], "ys": []})  #: the polygon being drawn (the browser's PolyDrawTool edits it)
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["fg-area-status"], stylesheets=[STYLESHEET])
        self._widgets: pn.Column | None = None
        self._shown: Area | None = None
        self.zoom_pending = False
        # What the next "area" tick puts on the page (set anywhere, applied on the loop).
        self._status_html: str | None = None
        self._outline_data: dict[str, list] | None = None
        self._clear_drawing = False

    # -- the current area --------------------------------------------------------------------
    def current(self) -> Area | None:
        """The area the view is filtered to: the saved one named in ``view.area``, else an uploaded or drawn one."""
        name = self.view.area
        if not name:
            return self.custom
        if self._saved is None or self._saved[0] != name:
            try:
                self._saved = (name, self.view._store.saved_area(name))
            except UserError as exc:  # removed since the page listed it: the view shows no area, and says why
                log.info("dashboard area %r: %s", name, exc)
                self._refuse(str(exc))
                return None
        return self._saved[1]

    def take_zoom(self) -> bool:
        """Whether the map should move to a new area (once per change)."""
        pending, self.zoom_pending = self.zoom_pending, False
        return pending

    def mercator_bounds(self) -> tuple[float, float, float, float] | None:
        area = self.current()
        return None if area is None else mercator_box(area.bbox)

    def use(self, area: Area | None) -> None:
        """Filter the view to an uploaded or drawn area (None: no area)."""
        self.custom = area
        if self.view.area:
            self.view.area = ""  # the change itself updates the view
        else:
            self.view.param.trigger("area")

    def changed(self) -> None:
        """The view's area changed: outline and status follow (the view does the numbers and the map)."""
        area = self.current()
        if area == self._shown and (area is None or area.name == self._shown.name):
            return
        self._shown = area
        self.zoom_pending = area is not None
        self._outline_data = outline_data(area)
        self._show(self._describe(area))

    def _show(self, status: str) -> None:
        self._status_html = status
        self.view.soon("area")

    def show(self) -> None:
        """In the session's "area" tick: status, outline and drawing as the last changes left them."""
        if self._status_html is not None:
            self.status.object, self._status_html = self._status_html, None
        if self._outline_data is not None:
            self.outline.data, self._outline_data = self._outline_data, None
        if self._clear_drawing:
            self.drawing.data, self._clear_drawing = {"xs": [], "ys": []}, False

    @staticmethod
    def _describe(area: Area | None) -> str:
        if area is None:
            return "<p class='fg-hint'>No area: every zone the filters select.</p>"
        return (f"<p><b>Area:</b> <span class='fg-area-name'>{html.escape(area.name)}</span> · "
                f"<span class='fg-area-ha'>{area.area_ha:,.2f}</span> ha</p>")

    def _refuse(self, message: str) -> None:
        self._show(f"<p class='fg-area-error'>{html.escape(message)}</p>")

    # -- widgets ---------------------------------------------------------------------------------
    def widgets(self) -> pn.Column:
        if self._widgets is not None:
            return self._widgets
        saved = pn.widgets.Select.from_param(self.view.param.area, name="Saved area", options={"(none)": "", **{n: n for n in self.view.param.area.objects if n}},
                                             sizing_mode="stretch_width")
        upload = pn.widgets.FileInput(accept=UPLOAD_TYPES, multiple=False, sizing_mode="stretch_width", css_classes=["fg-area-upload"])
        upload.param.watch(lambda event: self._uploaded(upload.filename, event.new), "value")
        use_drawn = pn.widgets.Button(label="Use the drawn polygon", color="primary", sizing_mode="stretch_width", css_classes=["fg-area-draw"])
        use_drawn.on_click(lambda _: self._use_drawn())
        clear = pn.widgets.Button(label="Clear area", sizing_mode="stretch_width", css_classes=["fg-area-clear"])
        clear.on_click(lambda _: self.use(None))
        download = pn.widgets.FileDownload(callback=self._area_file, filename="forestguard-area.geojson", label="Area (GeoJSON)", sizing_mode="stretch_width")
        self.status.object = self._describe(self.current())
        self._widgets = pn.Column(
            saved,
            pn.pane.HTML("<small>…or upload a file (GeoJSON, GeoPackage, zipped Shapefile, GeoParquet; any CRS), or draw a polygon "
                         "on the map: choose the polygon tool, press and hold where it starts, click each corner, then:</small>", sizing_mode="stretch_width"),
            upload, use_drawn, clear, self.status, download, sizing_mode="stretch_width",
        )
        return self._widgets

    def _uploaded(self, filename: str | None, data: bytes | None) -> None:
        if not data or not filename:
            return
        suffix = Path(filename).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="fg-area-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                area = read_area(path, name=Path(filename).stem or "uploaded area")
            except UserError as exc:
                self._refuse(str(exc).replace(str(path), filename))
                return
        self.use(area)

    def _use_drawn(self) -> None:
        data = self.drawing.data
        xs, ys = (list(data.get("xs", [])) or [None])[-1], (list(data.get("ys", [])) or [None])[-1]
        if xs is None or ys is None or not len(xs) or not len(ys):
            self._refuse("draw a polygon on the map first (the polygon tool: press and hold to start, then click each corner)")
            return
        lon, lat = to_lonlat(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        try:
            area = area_from_drawing(list(lon), list(lat))
        except UserError as exc:
            self._refuse(str(exc))
            return
        self._clear_drawing = True  # the outline shows it from now on
        self.view.soon("area")
        self.use(area)

    def _area_file(self) -> io.StringIO:
        area = self.current()
        if area is None:
            raise ValueError("no area is chosen")
        return io.StringIO(area.geojson())

    # -- map layers -----------------------------------------------------------------------------
    def add_layers(self, plot: Any) -> None:
        """The area's outline and the drawing layer (with Bokeh's polygon tool) on the session's map figure."""
        self.outline.data = outline_data(self.current())
        plot.multi_line(xs="xs", ys="ys", source=self.outline, line_color=OUTLINE_COLOR, line_width=2)
        drawn = plot.patches(xs="xs", ys="ys", source=self.drawing, fill_alpha=0.15, fill_color=DRAW_COLOR, line_color=DRAW_COLOR, line_width=2)
        vertices = plot.scatter([], [], size=8, color=DRAW_COLOR)
        plot.add_tools(PolyDrawTool(renderers=[drawn], vertex_renderer=vertices, num_objects=1, drag=False))


def outline_data(area: Area | None) -> dict[str, list]:
    """An area's rings as the map's ``multi_line`` columns (none without an area)."""
    rings = outline_paths(area)
    return {"xs": [r[:, 0] for r in rings], "ys": [r[:, 1] for r in rings]}


def inside_hectares(store: Any, where: Any, layer: Any) -> np.ndarray | None:
    """Hectares inside the view's area of each selected zone, in the selection's order (None without an area)."""
    if where.area is None:
        return None
    from ..stores.inside import hectares_by_zone

    ids, hectares = hectares_by_zone(store, where)
    selected = layer.column("id").astype(np.int64)
    at = np.minimum(np.searchsorted(ids, selected), max(len(ids) - 1, 0))
    return np.where((ids[at] == selected) if len(ids) else False, hectares[at] if len(ids) else 0.0, 0.0)


def add_inside_hectares(zones: Any, where: Any) -> None:
    """A downloaded zone's hectares inside the view's area, beside its own (``area_ha_inside``)."""
    if where.area is None or not len(zones):
        return
    from ..areas import hectares_inside

    zones["area_ha_inside"] = np.round(hectares_inside(np.asarray(zones.geometry.values, dtype=object), where.area.geometry), 2)
