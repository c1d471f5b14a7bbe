"""HTTP routes next to the dashboard: /healthz, /readyz, /metrics and /api/stats.

Tornado handlers handed to the Bokeh server as ``extra_patterns`` (also usable
with ``panel serve --plugins forestguard.server.routes``, which reads
:data:`ROUTES`). Blocking work (store, Redis) runs on a thread so the event
loop keeps serving dashboards and probes meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler, stream_request_body

from .. import filters
from ..config import settings
from ..errors import UserError
from ..schema import GROUP_KEYS
from ..stores.base import check_group_keys
from . import metrics, runtime
from .access import auth_enabled
from .responses import send_encoded, stats_answer

log = logging.getLogger("forestguard.server")

#: /api/stats query parameters, as ``forestguard stats`` names its options (``area``: a saved area's name).
STATS_PARAMETERS = ("country", "year", "from", "to", "by", "classification", "source", "verified_only", "min_confidence", "overlaps", "area")
#: Members of a POST body besides the parameters: the area as GeoJSON (or a saved name), and whether to repair it.
BODY_MEMBERS = ("area", "repair")


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
    """Readiness: 200 when the store answers now ("degraded" when only Redis does not), 503 when it does not."""

    async def get(self) -> None:
        timeout = runtime.options().readiness_timeout
        try:
            result = await asyncio.wait_for(IOLoop.current().run_in_executor(runtime.probe_executor(), runtime.readiness), timeout + 1.0)
        except asyncio.TimeoutError:
            metrics.READY.set(0)
            self.write_json(503, {"status": "unavailable", "checks": {"timeout": {"ok": False, "error": f"checks took over {timeout + 1.0:g} s"}}})
            return
        metrics.READY.set(1 if result.ready else 0)
        self.write_json(200 if result.ready else 503, result.to_dict())


class MetricsHandler(JSONHandler, AuthRequestHandler):
    """Prometheus exposition (merged across worker processes when there are several).

    With a login in front of the dashboard, only signed-in users and peers in
    ``serve --metrics-from`` (default: loopback, i.e. an agent sidecar in the same task)
    may read it; anything through the load balancer comes from another address: 401.
    """

    async def prepare(self) -> None:
        JSONHandler.prepare(self)
        await AuthRequestHandler.prepare(self)
        if auth_enabled(self) and not self.current_user and not runtime.options().metrics_allowed(self.request.remote_ip):
            self.write_json(401, {"error": "authentication required", "request_id": self.request_id})

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
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

        def compute():
            store = runtime.shared_store()
            chosen = where
            if name is not None:
                chosen = where.with_(area=store.saved_area(name))
            elif geojson is not None:
                chosen = where.with_(area=area_from_geojson(geojson, name="posted area", label="area", repair=repair))
            return stats_answer(chosen, by)  # the encoded answer, kept per data version

        try:
            answer = await IOLoop.current().run_in_executor(None, compute)
        except AreaRefused as exc:
            self._fail(400, str(exc))
            return
        except UserError as exc:
            if name is not None and str(exc).startswith("no saved area"):
                self._fail(404, str(exc))
                return
            runtime.reset_store()
            log.warning("/api/stats %s: %s", self.request_id, runtime.detail(exc))
            self._fail(503, runtime.public_reason(exc))
            return
        send_encoded(self, answer, "application/json; charset=utf-8", private=auth_enabled(self))



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
    """Query parameters → (ZoneFilter, group keys), checked by :mod:`forestguard.filters` as the CLI's options are.

    Raises ValueError (:class:`~forestguard.filters.FilterError`) with a one-line message for anything the CLI would refuse.
    """
    filters.refuse_nul(arguments)
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
    where = filters.zone_filter(
        countries=arguments.get("country", []),
        year=filters.parse_integer(single["year"], "year"),
        year_from=filters.parse_integer(single["from"], "from"),
        year_to=filters.parse_integer(single["to"], "to"),
        classifications=arguments.get("classification", []),
        sources=arguments.get("source", []),
        verified_only=filters.parse_boolean(single["verified_only"], "verified_only"),
        min_confidence=filters.parse_confidence(single["min_confidence"], "min_confidence"),
        overlaps=arguments.get("overlaps", []),
    )
    by = check_group_keys(single["by"].split(",")) if single["by"] is not None else GROUP_KEYS
    return where, by


#: (pattern, handler, kwargs) for Bokeh's ``extra_patterns`` and ``panel serve --plugins``.
ROUTES: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
    (r"/healthz", HealthHandler, {}),
    (r"/readyz", ReadyHandler, {}),
    (r"/metrics", MetricsHandler, {}),
    (r"/api/stats", StatsHandler, {}),
]
