"""Requests answered before the application sees them, cheaply and at once.

- **Too big**: Tornado closes the connection, without a word, on a request whose head is
  larger than its ``max_header_size``. The server reads heads up to :data:`READ_LIMIT`
  instead, and what is over our own limits gets a JSON 414 or 431.
- **The dashboard while the store is known down**: a Bokeh session costs the event loop
  tens of milliseconds to build even when it only holds a notice, and a wave of visitors
  during a database outage would queue the load balancer's probes behind those builds.
  While :func:`runtime.store_known_down` says so, ``GET /`` gets a small static page with
  the same notice and ``503`` + ``Retry-After``, built once.
"""

from __future__ import annotations

import functools
import html
import json
from typing import Any, Awaitable

from tornado import httputil

from ..dashboard.host import STORE_NOTICE
from . import metrics, runtime

#: Longest request target (path and query) served; longer ones get 414 URI Too Long.
MAX_URI_BYTES = 8 * 1024
#: Largest request head (all header lines) served; larger ones get 431.
MAX_HEADER_BYTES = 32 * 1024
#: What Tornado reads before it gives up on a request head (its own limit, raised so we can answer).
READ_LIMIT = 1024 * 1024


#: Path of the dashboard (the app served at /).
DASHBOARD_PATH = "/"
RETRY_AFTER_SECONDS = 5


@functools.lru_cache(maxsize=1)
def _notice_page() -> bytes:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ForestGuard</title></head>"
            "<body style=\"font-family:sans-serif;margin:2em\"><h2>ForestGuard · Deforestation zones</h2>"
            f"<p role=\"alert\">{html.escape(STORE_NOTICE)}</p></body></html>").encode()


def too_large(start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> tuple[int, str] | None:
    """(status, reason) when the request is over a limit, else None."""
    if len(start_line.path.encode("utf-8", "surrogateescape")) > MAX_URI_BYTES:
        return 414, f"the request target is over {MAX_URI_BYTES // 1024} KiB"
    if sum(len(k) + len(v) + 4 for k, v in headers.get_all()) > MAX_HEADER_BYTES:
        return 431, f"the request headers are over {MAX_HEADER_BYTES // 1024} KiB"
    return None


class _Guard(httputil.HTTPMessageDelegate):
    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection) -> None:
        self.inner = inner
        self.connection = connection
        self.refused = False

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        if not isinstance(start_line, httputil.RequestStartLine):
            return self.inner.headers_received(start_line, headers)
        problem = too_large(start_line, headers)
        if problem is not None:
            status, reason = problem
            self._answer(start_line, status, "application/json; charset=utf-8", json.dumps({"error": reason}).encode(), close=True)
            return None
        if start_line.method in ("GET", "HEAD") and start_line.path.split("?", 1)[0] == DASHBOARD_PATH and runtime.store_known_down():
            self._answer(start_line, 503, "text/html; charset=utf-8", _notice_page(), retry_after=RETRY_AFTER_SECONDS)
            return None
        return self.inner.headers_received(start_line, headers)

    def _answer(self, start_line: httputil.RequestStartLine, status: int, content_type: str, body: bytes, *,
                close: bool = False, retry_after: int | None = None) -> None:
        self.refused = True
        fields = {"Content-Type": content_type, "Content-Length": str(len(body)), "Cache-Control": "no-store"}
        if close:
            fields["Connection"] = "close"
        if retry_after:
            fields["Retry-After"] = str(retry_after)
        self.connection.write_headers(httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses.get(status, "")),
                                      httputil.HTTPHeaders(fields), b"" if start_line.method == "HEAD" else body)
        self.connection.finish()
        route = "/" if start_line.path.split("?", 1)[0] == DASHBOARD_PATH else "other"
        metrics.REQUESTS.labels(route, start_line.method, str(status)).inc()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


class FrontDoor(httputil.HTTPServerConnectionDelegate):
    """Wraps the application Tornado's HTTP server calls (``HTTPServer.request_callback``)."""

    def __init__(self, application: httputil.HTTPServerConnectionDelegate) -> None:
        self.application = application

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Guard(self.application.start_request(server_conn, request_conn), request_conn)

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)


def install(http_server: Any) -> None:
    """Put the front door before a Tornado ``HTTPServer``'s application (idempotent)."""
    if not isinstance(http_server.request_callback, FrontDoor):
        http_server.request_callback = FrontDoor(http_server.request_callback)
