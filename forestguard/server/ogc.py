"""OGC API – Features under ``/ogc``: what QGIS, ArcGIS and OWSLib read vector layers from.

Part 1 (Core) with GeoJSON, HTML and OpenAPI 3.0: landing page, ``conformance``, ``api``,
``collections``, ``collections/{id}``, ``…/queryables``, ``…/items`` (``bbox``, ``datetime``,
``limit``/``offset`` with next/prev links, property filters) and ``…/items/{featureId}``.
The collections and their queries are :mod:`forestguard.features` (no Tornado there); these
handlers negotiate the format (``f=json|html``, else the Accept header), build links from the
address the client used, run store work off the event loop and apply the server's login and
download limit, as the dashboard and ``/api/stats`` do.

Hand-written rather than an embedded pygeoapi: pygeoapi's API needs Flask, rasterio and
SQLAlchemy installed, a request adapter written against its private framework checks, absolute
URLs from its configuration file, one value per parameter (our filters repeat), and its HTML
loads Leaflet from a CDN; its provider model is what :class:`forestguard.features.Collection`
follows.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler

from ..errors import UserError
from ..features import COLLECTIONS, Collection, FeaturePage, LimitExceeded
from ..filters import FilterError
from . import ogc_html, runtime
from .access import auth_enabled
from .routes import JSONHandler

log = logging.getLogger("forestguard.server")

PREFIX = "/ogc"
TITLE = "ForestGuard"
DESCRIPTION = "Deforestation zones as OGC API – Features (GeoJSON in WGS84 lon/lat)."
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
JSON, GEOJSON, HTML = "application/json", "application/geo+json", "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
FORMATS = {"json": JSON, "geojson": GEOJSON, "html": HTML}


class OGCError(Exception):
    """An answer other than 200, as an OGC exception document."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


class OGCHandler(JSONHandler, AuthRequestHandler):
    """Auth as for ``/api/stats`` (401 for API clients, no login redirect), errors as OGC exceptions."""

    async def prepare(self) -> None:
        JSONHandler.prepare(self)
        await AuthRequestHandler.prepare(self)
        if not auth_enabled(self):
            # Open data: web maps on other origins may read it (OGC API's cross-origin recommendation).
            self.set_header("Access-Control-Allow-Origin", "*")
        elif not self.current_user:
            self.fail(401, "NotAuthorized", "authentication required")

    # -- answering -------------------------------------------------------------------------------
    def arguments(self) -> dict[str, list[str]]:
        return {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.arguments.items()}

    def wants_html(self) -> bool:
        """``f`` decides; otherwise a browser's Accept (text/html before any JSON) does."""
        chosen = self.get_query_argument("f", "").lower()
        if chosen:
            if chosen not in FORMATS:
                raise FilterError(f"f must be one of {', '.join(FORMATS)}, not {chosen!r}")
            return chosen == "html"
        accept = self.request.headers.get("Accept", "")
        html, js = accept.find("text/html"), max(accept.find("json"), accept.find("*/*"))
        return html >= 0 and (js < 0 or html < js)

    @property
    def base(self) -> str:
        return f"{self.request.protocol}://{self.request.host}{PREFIX}"

    def links(self, path: str, title: str, media: str = JSON) -> list[dict[str, str]]:
        """self (this format) and alternate (the other) links of ``path``."""
        alternate = HTML if media != HTML else JSON
        return [
            {"href": f"{self.base}{path}?f={_f(media)}", "rel": "self", "type": media, "title": title},
            {"href": f"{self.base}{path}?f={_f(alternate)}", "rel": "alternate", "type": alternate, "title": f"{title} ({_f(alternate)})"},
        ]

    def answer(self, document: dict[str, Any] | str, media: str, html: str | None = None) -> None:
        if html is not None:
            self.set_status(200)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(html)
            return
        self.set_status(200)
        self.set_header("Content-Type", f"{media}; charset=utf-8" if media != OPENAPI else media)
        self.finish(document if isinstance(document, str) else json.dumps(document, ensure_ascii=False))

    def fail(self, status: int, code: str, description: str) -> None:
        """An OGC exception document (``code``, ``description``), with the request id."""
        self.write_json(status, {"code": code, "description": description, "request_id": self.request_id})

    def collection(self, collection_id: str) -> Collection:
        found = COLLECTIONS.get(collection_id)
        if found is None:
            raise OGCError(404, "NotFound", f"no collection {collection_id!r}; see {self.base}/collections")
        return found

    async def blocking(self, work, *args) -> Any:
        """Store and cache work on a thread; an unreachable store is a 503 with the reason."""
        try:
            return await IOLoop.current().run_in_executor(None, work, *args)
        except FilterError:
            raise
        except UserError as exc:  # the reason in the log; the client gets a generic one (no hosts, users, databases)
            runtime.reset_store()
            log.warning("/ogc: %s", runtime.detail(exc))
            raise OGCError(503, "ServiceUnavailable", runtime.public_reason(exc)) from None

    async def get(self, *args: str) -> None:
        """:meth:`respond`, with refused parameters as 400 and the other failures as OGC exceptions."""
        try:
            await self.respond(*args)
        except LimitExceeded as exc:
            self.fail(400, "LimitExceeded", str(exc))
        except FilterError as exc:
            self.fail(400, "InvalidParameterValue", str(exc))
        except OGCError as exc:
            self.fail(exc.status, exc.code, exc.description)

    async def respond(self, *args: str) -> None:  # pragma: no cover - each endpoint's
        raise NotImplementedError

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.fail(status_code, "ServerError" if status_code >= 500 else "InvalidRequest", self._reason)


def _f(media: str) -> str:
    return "html" if media == HTML else "json"


class LandingHandler(OGCHandler):
    async def respond(self) -> None:
        html = self.wants_html()
        document = {
            "title": TITLE,
            "description": DESCRIPTION,
            "links": [
                *self.links("", "This document", HTML if html else JSON),
                {"href": f"{self.base}/api?f=json", "rel": "service-desc", "type": OPENAPI, "title": "The API definition (OpenAPI 3.0)"},
                {"href": f"{self.base}/conformance?f=json", "rel": "conformance", "type": JSON, "title": "Conformance classes"},
                {"href": f"{self.base}/collections?f=json", "rel": "data", "type": JSON, "title": "Collections"},
            ],
        }
        self.answer(document, JSON, ogc_html.landing(document) if html else None)


class ConformanceHandler(OGCHandler):
    async def respond(self) -> None:
        html = self.wants_html()
        document = {"conformsTo": CONFORMANCE, "links": self.links("/conformance", "Conformance", HTML if html else JSON)}
        self.answer(document, JSON, ogc_html.conformance(document) if html else None)


class OpenAPIHandler(OGCHandler):
    async def respond(self) -> None:
        from .ogc_openapi import openapi

        self.answer(openapi(self.base, TITLE, DESCRIPTION, COLLECTIONS, runtime.options().download_limit), OPENAPI)


class CollectionsHandler(OGCHandler):
    async def respond(self) -> None:
        html = self.wants_html()
        described = await self.blocking(lambda: [self.describe(c) for c in COLLECTIONS.values()])
        document = {"collections": described, "links": self.links("/collections", "Collections", HTML if html else JSON)}
        self.answer(document, JSON, ogc_html.collections(document) if html else None)

    def describe(self, collection: Collection) -> dict[str, Any]:
        """A collection's description (blocking: its extent may need the store)."""
        from ..cache import default_cache

        path = f"/collections/{collection.id}"
        return {
            "id": collection.id,
            "title": collection.title,
            "description": collection.description,
            "itemType": "feature",
            "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
            "extent": collection.extent(runtime.shared_store(), default_cache()),
            "links": [
                *self.links(path, collection.title),
                {"href": f"{self.base}{path}/items?f=json", "rel": "items", "type": GEOJSON, "title": f"{collection.title} (GeoJSON)"},
                {"href": f"{self.base}{path}/items?f=html", "rel": "items", "type": HTML, "title": f"{collection.title} (HTML)"},
                {"href": f"{self.base}{path}/queryables?f=json", "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                 "type": "application/schema+json", "title": "Queryables"},
            ],
        }


class CollectionHandler(CollectionsHandler):
    async def respond(self, collection_id: str) -> None:
        html = self.wants_html()
        collection = self.collection(collection_id)
        document = await self.blocking(self.describe, collection)
        self.answer(document, JSON, ogc_html.collection(document) if html else None)


class QueryablesHandler(OGCHandler):
    async def respond(self, collection_id: str) -> None:
        collection = self.collection(collection_id)
        self.answer({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{self.base}/collections/{collection.id}/queryables",
            "type": "object",
            "title": collection.title,
            "properties": collection.queryables,
        }, "application/schema+json")


class ItemsHandler(OGCHandler):
    async def respond(self, collection_id: str) -> None:
        html = self.wants_html()
        collection = self.collection(collection_id)
        arguments = self.arguments()
        query = collection.query(arguments, runtime.options().download_limit)

        def fetch() -> FeaturePage:
            from ..cache import default_cache

            return collection.items(runtime.shared_store(), query, default_cache())

        page = await self.blocking(fetch)
        path = f"/collections/{collection.id}/items"
        media = HTML if html else GEOJSON
        other = GEOJSON if html else HTML
        links = [
            {"href": self.page_url(path, arguments, query.offset, media), "rel": "self", "type": media, "title": "This page"},
            {"href": self.page_url(path, arguments, query.offset, other), "rel": "alternate", "type": other, "title": f"This page ({_f(other)})"},
            {"href": f"{self.base}/collections/{collection.id}?f=json", "rel": "collection", "type": JSON, "title": collection.title},
        ]
        if query.offset + page.number_returned < page.number_matched:
            links.append({"href": self.page_url(path, arguments, query.offset + query.limit, media), "rel": "next", "type": media, "title": "Next page"})
        if query.offset > 0:
            links.append({"href": self.page_url(path, arguments, max(0, query.offset - query.limit), media), "rel": "prev", "type": media, "title": "Previous page"})
        text = page.document(links)
        self.answer(text, GEOJSON, ogc_html.items(collection.title, json.loads(text)) if html else None)

    def page_url(self, path: str, arguments: dict[str, list[str]], offset: int, media: str) -> str:
        """The same query at another offset (and format): every filter the client gave is kept."""
        kept = [(k, v) for k, vs in arguments.items() if k not in ("offset", "f") for v in vs]
        return f"{self.base}{path}?{urlencode([*kept, ('offset', str(offset)), ('f', _f(media))])}"


class ItemHandler(OGCHandler):
    async def respond(self, collection_id: str, feature_id: str) -> None:
        html = self.wants_html()
        collection = self.collection(collection_id)
        found = await self.blocking(collection.item, runtime.shared_store(), feature_id)
        if found is None:
            raise OGCError(404, "NotFound", f"no feature {feature_id!r} in {collection.id}")
        path = f"/collections/{collection.id}/items/{feature_id}"
        links = [*self.links(path, f"Feature {feature_id}", HTML if html else GEOJSON),
                 {"href": f"{self.base}/collections/{collection.id}?f=json", "rel": "collection", "type": JSON, "title": collection.title}]
        text = found[:-1] + ',"links":' + json.dumps(links, ensure_ascii=False) + "}"
        self.answer(text, GEOJSON, ogc_html.item(collection.title, json.loads(text)) if html else None)


#: (pattern, handler, kwargs) added to the server's routes beside :data:`forestguard.server.routes.ROUTES`.
ROUTES: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
    (rf"{PREFIX}/?", LandingHandler, {}),
    (rf"{PREFIX}/conformance/?", ConformanceHandler, {}),
    (rf"{PREFIX}/api/?", OpenAPIHandler, {}),
    (rf"{PREFIX}/collections/?", CollectionsHandler, {}),
    (rf"{PREFIX}/collections/([^/]+)/?", CollectionHandler, {}),
    (rf"{PREFIX}/collections/([^/]+)/queryables/?", QueryablesHandler, {}),
    (rf"{PREFIX}/collections/([^/]+)/items/?", ItemsHandler, {}),
    (rf"{PREFIX}/collections/([^/]+)/items/([^/]+)/?", ItemHandler, {}),
]
