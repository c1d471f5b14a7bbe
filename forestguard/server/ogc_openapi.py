"""The OpenAPI 3.0 definition of ``/ogc`` (its ``service-desc``), generated from the published collections."""

from __future__ import annotations

from typing import Any, Mapping

from ..features import DEFAULT_LIMIT, Collection


def _parameter(name: str, schema: dict[str, Any], description: str, *, where: str = "query", explode: bool = False) -> dict[str, Any]:
    out = {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}
    if where == "query":
        out.update(style="form", explode=explode)
    return out


def _response(description: str, media: tuple[str, ...] = ("application/json", "text/html")) -> dict[str, Any]:
    return {"200": {"description": description, "content": {m: {} for m in media}},
            "400": {"description": "A parameter is not valid (OGC exception document)."},
            "401": {"description": "The server has a login and the request has none."}}


def openapi(base: str, title: str, description: str, collections: Mapping[str, Collection], max_limit: int) -> dict[str, Any]:
    """The definition of every path the server answers under ``base``."""
    fmt = _parameter("f", {"type": "string", "enum": ["json", "html"]}, "Response format (default: from the Accept header, else JSON).")
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "parameters": [fmt], "responses": _response("Landing page")}},
        "/conformance": {"get": {"summary": "Conformance classes", "operationId": "getConformance", "parameters": [fmt], "responses": _response("Conformance")}},
        "/api": {"get": {"summary": "This definition", "operationId": "getAPI", "responses": _response("OpenAPI 3.0", ("application/vnd.oai.openapi+json;version=3.0",))}},
        "/collections": {"get": {"summary": "Collections", "operationId": "getCollections", "parameters": [fmt], "responses": _response("Collections")}},
    }
    for c in collections.values():
        path = f"/collections/{c.id}"
        items = [
            fmt,
            _parameter("limit", {"type": "integer", "minimum": 1, "maximum": max_limit, "default": min(DEFAULT_LIMIT, max_limit)},
                       f"Features per page (at most {max_limit:,}: the server's download limit)."),
            _parameter("offset", {"type": "integer", "minimum": 0, "default": 0}, "Features to skip (the next/prev links carry it)."),
            _parameter("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
                       "Only features whose bounding box meets this lon/lat box: xmin,ymin,xmax,ymax.", explode=False),
            _parameter("datetime", {"type": "string"}, "An instant or interval (RFC 3339, '..' open): features whose year it meets."),
            *(_parameter(name, schema, schema.get("description", ""), explode=True) for name, schema in c.queryables.items()),
        ]
        paths[path] = {"get": {"summary": c.title, "operationId": f"describe_{c.id}", "parameters": [fmt], "responses": _response(c.title)}}
        paths[f"{path}/queryables"] = {"get": {"summary": f"{c.title}: queryables", "operationId": f"queryables_{c.id}",
                                                "responses": _response("JSON schema", ("application/schema+json",))}}
        paths[f"{path}/items"] = {"get": {"summary": f"{c.title}: features", "operationId": f"items_{c.id}", "parameters": items,
                                           "responses": _response("A page of features", ("application/geo+json", "text/html"))}}
        paths[f"{path}/items/{{featureId}}"] = {"get": {
            "summary": f"{c.title}: one feature", "operationId": f"item_{c.id}",
            "parameters": [fmt, _parameter("featureId", {"type": "string"}, "The feature's id.", where="path")],
            "responses": {**_response("The feature", ("application/geo+json", "text/html")), "404": {"description": "No such feature."}}}}
    return {"openapi": "3.0.3", "info": {"title": title, "description": description, "version": "1.0.0"},
            "servers": [{"url": base}], "paths": paths}
