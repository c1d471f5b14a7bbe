"""Assemble and run the server: the dashboard at /, our routes, metrics, logs, Sentry.

Built on Panel's ``get_server`` (the machinery behind ``panel serve``), so the
usual options keep their meaning: --num-procs forks workers after the data is
warmed in the parent, --basic-auth/--oauth-provider put Panel's login in
front of the dashboard and /api/stats, --allow-websocket-origin, --index.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_DOWNLOAD_LIMIT, redact, settings
from ..errors import StoreNotFound, UserError
from . import runtime

log = logging.getLogger("forestguard.server")


@dataclass
class ServeOptions:
    """The ``forestguard serve`` command line, once parsed."""

    db: str | None = None
    port: int = 8501
    address: str | None = None
    num_procs: int = 1
    num_threads: int | None = None  #: Panel's thread pool; None: callbacks on the event loop (see the CLI's --num-threads)
    allow_websocket_origin: list[str] = field(default_factory=list)
    basic_auth: str | None = None
    oauth_provider: str | None = None
    oauth_key: str | None = None
    oauth_secret: str | None = None
    oauth_redirect_uri: str | None = None
    oauth_encryption_key: str | None = None
    cookie_secret: str | None = None
    warm: bool = False
    index: str | None = None
    apps: list[str] = field(default_factory=list)
    download_limit: int = DEFAULT_DOWNLOAD_LIMIT
    metrics_from: tuple[str, ...] = runtime.METRICS_FROM


def dashboard_app() -> None:
    """One session of the zones dashboard (called by Bokeh for every new session), put into the session's document.

    Inside one ``freeze`` of the document's model graph: Panel adds the page root by root, and
    Bokeh walks the whole graph after each (a dozen walks of a growing graph, a quarter of what
    a session cost); frozen, it walks once, when the page is complete.
    """
    import panel as pn

    from ..dashboard import dashboard_page

    doc = pn.state.curdoc
    with doc.models.freeze():
        dashboard_page().server_doc(doc, title=TITLE, location=True)


#: The page's title (the browser tab).
TITLE = "ForestGuard"


def _init_sentry() -> None:
    dsn = settings().sentry_dsn
    if not dsn:
        return
    import sentry_sdk
    from sentry_sdk.integrations.tornado import TornadoIntegration

    sentry_sdk.init(dsn=dsn, traces_sample_rate=0.1, integrations=[TornadoIntegration()], send_default_pii=False)


def _check_store(url: str, explicit: bool) -> None:
    """Fail fast on a store the user named that does not exist; anything else is left to /readyz.

    With no --db and no DATABASE_URL the embedded default may simply not exist yet (a fresh
    container before its first ingest): the server still starts, so liveness holds, and
    /readyz answers 503 with the reason until a store appears.
    """
    try:
        runtime.shared_store().ping()
    except StoreNotFound as exc:
        if explicit:
            raise
        log.warning("%s; /readyz reports 503 until it exists", exc)
    except UserError as exc:
        log.warning("store %s not reachable yet (%s); /readyz reports 503 until it is", redact(url), exc)
    except Exception as exc:
        log.warning("store %s not reachable yet (%s: %s); /readyz reports 503 until it is", redact(url), type(exc).__name__, exc)


def _check_budget() -> None:
    """A store whose map layer would not fit the memory budget is refused now, in one line, not killed later."""
    from ..render.layer import check_layer_budget

    try:
        store = runtime.shared_store()
    except UserError:
        return  # not there (yet): /readyz says so
    check_layer_budget(store)


def warm_up() -> None:
    """Before the first visitor (and before forking): the shared layer, datashader's kernels, the common views.

    datashader compiles its kernels (numba) on first use in each process: done here once, the
    full extent, the largest countries' views and their polygons (read from the store once and
    kept) are ready when sessions arrive.
    """
    from ..render import zone_layer
    from ..render.warm import compile_kernels

    started = time.perf_counter()
    layer = zone_layer(runtime.shared_store())
    compile_kernels()
    views = warm_statistics(runtime.shared_store(), sorted(map(str, layer.base["country"].cat.categories)))
    from ..dashboard import shared
    from ..dashboard.viewer import warm_views
    from . import metrics

    # The countries with the most zones, as many as the shared selections keep with room for the visitors' own.
    counts = layer.base["country"].value_counts()
    largest = [str(c) for c, n in counts.items() if n][: shared.SELECTIONS.size // 2]
    selected = warm_views(largest)
    metrics.LAYER_ZONES.set(len(layer))
    log.info("warm: %s zones ready (data version %s, %.0f MB); numbers of %d dashboard views cached, zones of %d countries selected in %.1f s",
             f"{len(layer):,}", layer.data_version, layer.nbytes / 1e6, views, selected, time.perf_counter() - started)


def warm_statistics(store: Any, countries: list[str]) -> int:
    """Put the numbers of the opening view and of each one-country view in the cache.

    A first visitor choosing a country then gets cached numbers (a lookup, not
    queries): the cards' part of filter-to-update drops from ~45 ms to under 1 ms,
    and the cache starts out serving the views people open most.
    """
    from ..cache import default_cache
    from ..dashboard.host import VIEW_GROUPINGS
    from ..stats import statistics
    from ..stores.base import ZoneFilter

    cache = default_cache()
    views = [ZoneFilter(), *(ZoneFilter(countries=(country,)) for country in countries)]
    for where in views:
        for by in VIEW_GROUPINGS:
            statistics(store, where, by, cache=cache)
    return len(views)


def _session_hooks() -> None:
    import panel as pn

    from . import metrics

    def created(session_context: Any) -> None:
        metrics.SESSIONS_CREATED.inc()
        metrics.SESSIONS_ACTIVE.inc()

    def destroyed(session_context: Any) -> None:
        metrics.SESSIONS_ACTIVE.dec()

    pn.state.on_session_created(created)
    pn.state.on_session_destroyed(destroyed)


def serve(options: ServeOptions) -> None:
    """Run the dashboard server until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    if options.num_procs != 1:
        from . import enable_multiprocess_metrics

        enable_multiprocess_metrics()  # before prometheus_client is imported anywhere
    runtime.configure(runtime.ServerOptions(store_url=options.db, download_limit=options.download_limit,
                                            metrics_from=options.metrics_from, num_procs=options.num_procs))
    url = runtime.options().resolved_store_url
    _check_store(url, explicit=bool(options.db or settings().database_url))
    _check_budget()

    import panel as pn
    from panel.io.server import get_server

    from .access import configure_access_log, log_request
    from .ogc import ROUTES as OGC_ROUTES
    from .routes import ROUTES

    logging.basicConfig(level=settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_access_log(settings().log_level)
    _init_sentry()
    if options.num_procs != 1:
        os.register_at_fork(after_in_child=_init_sentry)  # Sentry's sender thread does not survive a fork
    if options.warm:
        warm_up()
    from ..dashboard import notice_page

    notice_page()  # its first build imports the Markdown renderer: at start-up, not on the loop in an outage
    # What start-up made (modules, the shared layer, warmed caches) lives as long as the process:
    # out of the collector's sight, a full collection only walks what sessions made since.
    gc.collect()
    gc.freeze()
    _session_hooks()
    if options.num_threads:
        pn.config.nthreads = options.num_threads

    from .sessions import dashboard_application

    server_id = uuid.uuid4().hex
    apps: dict[str, Any] = {"/": dashboard_application(dashboard_app, title=TITLE, server_id=server_id)}
    for path in options.apps:
        apps["/" + Path(path).stem] = path
    kwargs: dict[str, Any] = {}
    if options.index:
        kwargs["index"] = options.index
    basic_auth = options.basic_auth
    if basic_auth:  # Panel's provider with a throttled, exact login page (see .login)
        from .login import ThrottledBasicAuthProvider, load_credentials

        kwargs["auth_provider"] = ThrottledBasicAuthProvider(load_credentials(basic_auth))
        basic_auth = None
    from . import frontdoor
    server = get_server(
        apps,
        port=options.port,
        address=options.address,
        websocket_origin=options.allow_websocket_origin or None,
        show=False,
        start=False,
        title=TITLE,
        location=True,
        basic_auth=basic_auth,
        oauth_provider=options.oauth_provider,
        oauth_key=options.oauth_key,
        oauth_secret=options.oauth_secret,
        oauth_redirect_uri=options.oauth_redirect_uri,
        oauth_encryption_key=options.oauth_encryption_key,
        cookie_secret=options.cookie_secret,
        num_procs=options.num_procs,
        extra_patterns=[*ROUTES, *OGC_ROUTES],
        server_id=server_id,
        http_server_kwargs={"max_header_size": frontdoor.READ_LIMIT},
        warm=options.warm and options.num_procs == 1,
        **kwargs,
    )
    server._tornado.settings["log_function"] = log_request  # every request: JSON line + metrics
    frontdoor.install(server._http)  # 414/431 instead of dropped connections; a static notice while the store is down
    host = options.address or "localhost"
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"ForestGuard dashboard: http://{shown}:{server.port}/  (store {redact(url)}; /healthz /readyz /metrics /api/stats /ogc)", file=sys.stderr, flush=True)

    def stop(*_: Any) -> None:
        server.io_loop.add_callback_from_signal(server.io_loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    try:
        server.io_loop.start()
    finally:
        from . import metrics

        metrics.mark_process_dead(os.getpid())
