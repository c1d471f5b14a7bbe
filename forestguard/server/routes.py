"""HTTP routes next to the dashboard: /healthz, /readyz, /metrics and /api/stats.

Tornado handlers handed to the Bokeh server as ``extra_patterns`` (also usable
with ``panel serve --plugins forestguard.server.routes``, which reads
:data:`ROUTES`). Blocking work (store, Redis) runs on a thread so the event
loop keeps serving dashboards and probes meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import click
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler, stream_request_body

from ..config import settings
from ..errors import UserError
from ..schema import GROUP_KEYS
from ..stats import statistics
from . import metrics, runtime
from .access import auth_enabled

#: /api/stats query parameters, as ``forestguard stats`` names its options (``area``: a saved area's name).
STATS_PARAMETERS = ("country", "year", "from", "to", "by", "classification", "source", "verified_only", "min_confidence", "area")
#: Members of a POST body besides the parameters: the area as GeoJSON (or a saved name), and whether to repair it.
BODY_MEMBERS = ("area", "repair")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class JSONHandler(RequestHandler):
    """JSON answers with a request id (taken from X-Request-ID or made up) on every response."""

    request_id: str = ""

    def prepare(self) -> Any:
        incoming = self.request.headers.get("X-Request-ID", "")
        self.request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        self.set_header("X-Request-ID", self.request_id)
        self.set_header("Cache-Control", "no-store")

    def write_json(self, status: int, body: dict[str, Any] | str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body if isinstance(body, str) else json.dumps(body, ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's default is an HTML page with the traceback in debug mode: never for an API.
        self.write_json(status_code, {"error": self._reason, "request_id": self.request_id})


class HealthHandler(JSONHandler):
    """Liveness: the process answers. Touches nothing else, so it stays fast when dependencies are down."""

    def get(self) -> None:
        self.write_json(200, {"status": "ok"})

    head = get


class ReadyHandler(JSONHandler):
    """Readiness: the store (and Redis when configured) answer now; 503 with the reasons otherwise."""

    async def get(self) -> None:
        timeout = runtime.options().readiness_timeout
        try:
            result = await asyncio.wait_for(IOLoop.current().run_in_executor(None, runtime.readiness), timeout + 1.0)
        except asyncio.TimeoutError:
            metrics.READY.set(0)
            self.write_json(503, {"status": "unavailable", "checks": {"timeout": {"ok": False, "error": f"checks took over {timeout + 1.0:g} s"}}})
            return
        metrics.READY.set(1 if result.ready else 0)
        self.write_json(200 if result.ready else 503, result.to_dict())


class MetricsHandler(RequestHandler):
    """Prometheus exposition (merged across worker processes when there are several)."""

    def get(self) -> None:
        body, content_type = metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.finish(body)


@stream_request_body
class StatsHandler(JSONHandler, AuthRequestHandler):
    """``/api/stats``: the statistics JSON of ``forestguard stats --format json``, through the cache.

    ``GET ?area=NAME`` clips to a saved area; ``POST`` takes a JSON object with the same
    parameters and an ``area`` (a GeoJSON geometry, Feature or FeatureCollection, or a saved
    area's name). The body is streamed in and refused with 413 as soon as it passes
    ``FORESTGUARD_API_MAX_BODY_MB`` (before reading it when Content-Length says so); an area
    that is not usable (not polygonal, invalid, too many vertices, too large) is a 400.
    Behind the dashboard's login when authentication is on (401 JSON rather
    than a redirect: API clients do not follow login pages).
    """

    _body: bytearray
    _too_large = False

    async def prepare(self) -> None:
        JSONHandler.prepare(self)
        self._body = bytearray()
        await AuthRequestHandler.prepare(self)
        if auth_enabled(self) and not self.current_user:
            self.write_json(401, {"error": "authentication required", "request_id": self.request_id})
            return
        limit = settings().api_max_body_bytes
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            self._refuse_size(limit)

    def data_received(self, chunk: bytes) -> None:
        if self._too_large or self._finished:
            return
        if len(self._body) + len(chunk) > settings().api_max_body_bytes:
            self._too_large, self._body = True, bytearray()
            return
        self._body.extend(chunk)

    def _refuse_size(self, limit: int) -> None:
        self._too_large = True
        self.write_json(413, {"error": f"the request body is over {limit >> 20} MB (FORESTGUARD_API_MAX_BODY_MB)", "request_id": self.request_id})

    def _fail(self, status: int, message: str) -> None:
        self.write_json(status, {"error": message, "request_id": self.request_id})

    async def get(self) -> None:
        try:
            arguments = {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.arguments.items()}
            where, by = stats_query(arguments)
            names = arguments.get("area", [])
            if len(names) > 1:
                raise ValueError(f"area is given {len(names)} times; give it once")
        except ValueError as exc:
            self._fail(400, str(exc))
            return
        await self._answer(where, by, names[0] if names else None, None, False)

    async def post(self) -> None:
        if self._finished:
            return
        if self._too_large:
            self._refuse_size(settings().api_max_body_bytes)
            return
        try:
            document = json.loads(bytes(self._body).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._fail(400, f"the request body is not JSON: {exc}")
            return
        try:
            if not isinstance(document, dict):
                raise ValueError("the request body must be a JSON object: {\"area\": <GeoJSON>, \"from\": 2021, …}")
            area = document.get("area")
            repair = document.get("repair", False)
            if not isinstance(repair, bool):
                raise ValueError("repair must be true or false")
            where, by = stats_query(_as_arguments({k: v for k, v in document.items() if k not in BODY_MEMBERS}))
            if area is None:
                raise ValueError("the body has no area: give a GeoJSON geometry, Feature or FeatureCollection (or a saved area's name)")
        except ValueError as exc:
            self._fail(400, str(exc))
            return
        await self._answer(where, by, area if isinstance(area, str) else None, None if isinstance(area, str) else area, repair)

    async def _answer(self, where, by, name: str | None, geojson: Any, repair: bool) -> None:
        from ..areas import AreaRefused, area_from_geojson

        def compute() -> str:
            from ..cache import default_cache

            store = runtime.shared_store()
            chosen = where
            if name is not None:
                chosen = where.with_(area=store.saved_area(name))
            elif geojson is not None:
                chosen = where.with_(area=area_from_geojson(geojson, name="posted area", label="area", repair=repair))
            return statistics(store, chosen, by, cache=default_cache()).to_json()

        try:
            body = await IOLoop.current().run_in_executor(None, compute)
        except AreaRefused as exc:
            self._fail(400, str(exc))
            return
        except UserError as exc:
            if name is not None and str(exc).startswith("no saved area"):
                self._fail(404, str(exc))
                return
            runtime.reset_store()
            self._fail(503, str(exc))
            return
        self.write_json(200, body)


def _as_arguments(document: dict[str, Any]) -> dict[str, list[str]]:
    """A POST body's parameters in the query string's form (lists of text), for :func:`stats_query`."""
    out: dict[str, list[str]] = {}
    for name, value in document.items():
        values = value if isinstance(value, list) else [value]
        texts = []
        for v in values:
            if isinstance(v, bool):
                texts.append("true" if v else "false")
            elif isinstance(v, (int, float, str)):
                texts.append(str(v))
            elif v is not None:
                raise ValueError(f"{name} must be text, a number or a list of them")
        out[name] = texts
    return out


def stats_query(arguments: dict[str, list[str]]):
    """Query parameters → (ZoneFilter, group keys), validated exactly like the CLI's options.

    Raises ValueError with a one-line message for anything the CLI would refuse.
    """
    from ..cli.options import parse_by, zone_filter

    unknown = sorted(set(arguments) - set(STATS_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(STATS_PARAMETERS)}")
    arguments = {k: v for k, v in arguments.items() if k != "area"}  # an area is the store's to look up
    single = {}
    for name in ("year", "from", "to", "by", "verified_only", "min_confidence"):
        values = arguments.get(name, [])
        if len(values) > 1:
            raise ValueError(f"{name} is given {len(values)} times; give it once")
        single[name] = values[0].strip() if values else None
    try:
        where = zone_filter(
            countries=tuple(v for v in arguments.get("country", []) if v),
            year=_integer(single["year"], "year"),
            year_from=_integer(single["from"], "from"),
            year_to=_integer(single["to"], "to"),
            classifications=tuple(arguments.get("classification", [])),
            sources=tuple(v for v in arguments.get("source", []) if v),
            verified_only=_boolean(single["verified_only"]),
            min_confidence=_confidence(single["min_confidence"]),
        )
        by = parse_by(single["by"]) if single["by"] is not None else GROUP_KEYS
    except click.ClickException as exc:
        raise ValueError(exc.format_message()) from None
    return where, by


def _integer(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}") from None


def _boolean(text: str | None) -> bool:
    lowered = (text or "").lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"verified_only must be true or false, not {text!r}")


def _confidence(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"min_confidence must be a number between 0 and 1, not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"min_confidence must be between 0 and 1, not {value:g}")
    return value


#: (pattern, handler, kwargs) for Bokeh's ``extra_patterns`` and ``panel serve --plugins``.
ROUTES: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
    (r"/healthz", HealthHandler, {}),
    (r"/readyz", ReadyHandler, {}),
    (r"/metrics", MetricsHandler, {}),
    (r"/api/stats", StatsHandler, {}),
]
