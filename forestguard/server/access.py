"""Structured access logs and request metrics for every request the server answers.

Installed as Tornado's ``log_function``, so dashboards, static files, the
websocket and our routes are all counted the same way, with bounded route
labels (never raw paths: those would explode Prometheus cardinality).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid

from tornado.web import RequestHandler

from . import metrics

ACCESS_LOG = logging.getLogger("forestguard.access")
_EXACT_ROUTES = frozenset({"/", "/healthz", "/readyz", "/metrics", "/api/stats", "/login", "/logout", "/favicon.ico"})


def route_of(path: str) -> str:
    """A small, fixed set of labels for metrics."""
    if path in _EXACT_ROUTES:
        return path
    if path.startswith("/static/"):
        return "/static"
    if path == "/ogc" or path.startswith("/ogc/"):
        return "/ogc"
    if path.endswith("/ws"):
        return "/ws"
    if path.endswith("/autoload.js"):
        return "/autoload.js"
    return "other"


def log_request(handler: RequestHandler) -> None:
    """Tornado ``log_function``: one JSON line per request plus the request metrics."""
    request = handler.request
    status = handler.get_status()
    seconds = request.request_time()
    route = route_of(request.path)
    metrics.REQUESTS.labels(route, request.method or "", str(status)).inc()
    metrics.REQUEST_SECONDS.labels(route).observe(seconds)
    if route == "/static" and status < 400:
        return  # JS/CSS/fonts: counted, not logged line by line
    user = getattr(handler, "_current_user", None) if auth_enabled(handler) else None
    record = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "event": "request",
        "request_id": getattr(handler, "request_id", "") or request.headers.get("X-Request-ID") or uuid.uuid4().hex,
        "method": request.method,
        "path": request.path,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "user": user if isinstance(user, str) else None,
        "remote": request.remote_ip,
    }
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 and status not in (401, 404) else logging.INFO
    ACCESS_LOG.log(level, json.dumps(record, ensure_ascii=False))


def auth_enabled(handler: RequestHandler) -> bool:
    """Whether the server has a login (Panel basic auth or OAuth) in front of its pages."""
    provider = getattr(handler.application, "auth_provider", None)
    return provider is not None and (provider.get_user is not None or provider.get_user_async is not None)


def configure_access_log(level: str = "INFO") -> None:
    """JSON lines on stderr for ``forestguard.access`` (idempotent)."""
    if any(getattr(h, "_forestguard", False) for h in ACCESS_LOG.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._forestguard = True  # type: ignore[attr-defined]
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(level)
    ACCESS_LOG.propagate = False
