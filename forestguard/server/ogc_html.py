"""The HTML face of ``/ogc`` (OGC API – Features' HTML conformance class): plain pages, no scripts.

Every value from the store or the request is escaped here (a region named ``<script>`` shows as
text); links come from the JSON documents, so the two formats cannot disagree.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

_STYLE = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}nav a{margin-right:1em}")


def _page(title: str, body: str, links: Iterable[dict[str, Any]]) -> str:
    nav = "".join(f'<a href="{escape(link["href"])}">{escape(link.get("title") or link["rel"])}</a>'
                  for link in links if link.get("rel") in ("alternate", "data", "conformance", "service-desc", "collection", "items", "next", "prev"))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1><nav>{nav}</nav>{body}</body></html>")


def _table(rows: Iterable[Iterable[Any]], header: Iterable[str]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


def landing(document: dict[str, Any]) -> str:
    return _page(document["title"], f"<p>{escape(document['description'])}</p>", document["links"])


def conformance(document: dict[str, Any]) -> str:
    return _page("Conformance", _table(([uri] for uri in document["conformsTo"]), ["conforms to"]), document["links"])


def collections(document: dict[str, Any]) -> str:
    rows = ([f'<a href="{escape(_html_link(c["links"], "self"))}">{escape(c["id"])}</a>', escape(c["title"]), escape(c["description"])]
            for c in document["collections"])
    body = "<table><thead><tr><th>id</th><th>title</th><th>description</th></tr></thead><tbody>" + "".join(
        "<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in rows) + "</tbody></table>"
    return _page("Collections", body, document["links"])


def collection(document: dict[str, Any]) -> str:
    extent = document["extent"]
    rows = [["id", document["id"]], ["description", document["description"]],
            ["bbox (lon/lat)", ", ".join(f"{v:g}" for v in extent["spatial"]["bbox"][0])],
            ["years", " to ".join(str(v)[:4] for v in extent["temporal"]["interval"][0] if v)]]
    return _page(document["title"], _table(rows, ["", ""]), document["links"])


def items(title: str, document: dict[str, Any]) -> str:
    features = document["features"]
    names = list(features[0]["properties"]) if features else []
    rows = ([feature["id"], *(feature["properties"].get(n) for n in names)] for feature in features)
    shown = f"<p>{document['numberReturned']:,} of {document['numberMatched']:,} features.</p>"
    return _page(title, shown + _table(rows, ["id", *names]), document["links"])


def item(title: str, document: dict[str, Any]) -> str:
    rows = [["id", document["id"]], *([k, v] for k, v in document["properties"].items())]
    return _page(f"{title}: {document['id']}", _table(rows, ["property", "value"]), document["links"])


def _html_link(links: list[dict[str, Any]], rel: str) -> str:
    for link in links:
        if link["rel"] in (rel, "alternate") and link.get("type") == "text/html":
            return link["href"]
    return links[0]["href"]
