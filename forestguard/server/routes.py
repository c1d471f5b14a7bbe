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

import click
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler

from ..errors import UserError
from ..schema import GROUP_KEYS
from ..stats import statistics
from . import metrics, runtime
from .access import auth_enabled

log = logging.getLogger("forestguard.server")

#: /api/stats query parameters, as ``forestguard stats`` names its options.
STATS_PARAMETERS = ("country", "year", "from", "to", "by", "classification", "source", "verified_only", "min_confidence")
NUL = "\x00"
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


class StatsHandler(JSONHandler, AuthRequestHandler):
    """``/api/stats``: the statistics JSON of ``forestguard stats --format json``, through the cache.

    Behind the dashboard's login when authentication is on (401 JSON rather
    than a redirect: API clients do not follow login pages).
    """

    async def prepare(self) -> None:
        JSONHandler.prepare(self)
        await AuthRequestHandler.prepare(self)
        if auth_enabled(self) and not self.current_user:
            self.write_json(401, {"error": "authentication required", "request_id": self.request_id})

    async def get(self) -> None:
        try:
            where, by = stats_query({k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.arguments.items()})
        except ValueError as exc:
            self.write_json(400, {"error": str(exc), "request_id": self.request_id})
            return

        def compute() -> str:
            from ..cache import default_cache

            return statistics(runtime.shared_store(), where, by, cache=default_cache()).to_json()

        try:
            body = await IOLoop.current().run_in_executor(None, compute)
        except UserError as exc:
            runtime.reset_store()
            log.warning("/api/stats %s: %s", self.request_id, runtime.detail(exc))
            self.write_json(503, {"error": runtime.public_reason(exc), "request_id": self.request_id})
            return
        self.write_json(200, body)



def stats_query(arguments: dict[str, list[str]]):
    """Query parameters → (ZoneFilter, group keys), validated exactly like the CLI's options.

    Raises ValueError with a one-line message for anything the CLI would refuse.
    """
    from ..cli.options import parse_by, zone_filter

    for name, values in arguments.items():
        if any(NUL in v for v in (name, *values)):
            shown = "a parameter name" if NUL in name else name
            raise ValueError(f"{shown} contains a NUL character, which no zone field can hold")
    unknown = sorted(set(arguments) - set(STATS_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(STATS_PARAMETERS)}")
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
