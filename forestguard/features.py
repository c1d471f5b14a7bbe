"""Zones as OGC API – Features collections: queries, pages and GeoJSON, with no web framework in sight.

Shaped like a pygeoapi provider: a :class:`Collection` describes itself (title, extent,
queryables) and answers ``items`` (a filtered page) and ``item`` (one feature by id).
:data:`COLLECTIONS` lists what the server publishes; saved areas and reference layers join it
as further :class:`Collection` subclasses. :mod:`forestguard.server.ogc` is the HTTP face.

Query parameters are checked by :mod:`forestguard.filters` (the one filter definition the CLI
and ``/api/stats`` use too); a value it refuses is a :class:`~forestguard.filters.FilterError`.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import pyarrow as pa
import shapely

from . import filters
from .cache import store_scope
from .cache.keys import digest
from .filters import FilterError
from .schema import Classification
from .stores.base import ZoneFilter, ZoneStore

#: Features a page holds when ``limit`` is not given (OGC's default is 10; GIS clients ask for more).
DEFAULT_LIMIT = 100
#: Parameters every items request may carry besides a collection's own property filters.
COMMON_PARAMETERS = ("f", "limit", "offset", "bbox", "datetime")
#: The World in lon/lat: the extent of an empty collection.
WORLD = (-180.0, -90.0, 180.0, 90.0)


class LimitExceeded(FilterError):
    """A page larger than the server's download limit."""


@dataclass(frozen=True)
class ItemQuery:
    """One page of one filter: what an items request asks for."""

    where: ZoneFilter
    limit: int
    offset: int = 0


@dataclass(frozen=True)
class FeaturePage:
    """A page of features as GeoJSON text, without the links (they depend on the address asked)."""

    number_matched: int
    number_returned: int
    text: str

    def document(self, links: list[dict[str, Any]]) -> str:
        """The FeatureCollection to send: this page plus ``links`` and the time it was answered."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = json.dumps({"links": links, "timeStamp": stamp}, ensure_ascii=False)
        return self.text[:-1] + "," + extra[1:]

    @classmethod
    def from_text(cls, text: str) -> "FeaturePage":
        head = _COUNTS.match(text)
        if head is None:
            raise ValueError("not a FeaturePage text")
        return cls(int(head["matched"]), int(head["returned"]), text)


_COUNTS = re.compile(r'^\{"type":"FeatureCollection","numberMatched":(?P<matched>\d+),"numberReturned":(?P<returned>\d+),')


def page_text(number_matched: int, features: Sequence[str]) -> str:
    """A FeatureCollection's text whose counts :meth:`FeaturePage.from_text` reads back without parsing the features."""
    return (f'{{"type":"FeatureCollection","numberMatched":{number_matched},"numberReturned":{len(features)},'
            f'"features":[{",".join(features)}]}}')


def single(arguments: Mapping[str, Sequence[str]], name: str) -> str | None:
    """A parameter that may be given once (None when absent)."""
    values = arguments.get(name, [])
    if len(values) > 1:
        raise FilterError(f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def parse_datetime(text: str | None) -> tuple[int | None, int | None]:
    """OGC ``datetime`` (an instant, ``start/end``, ``../end``, ``start/..``) → the zones' years it meets.

    A zone's time is its whole year, so an interval meets the years from its start's to its end's.
    A bare year (``2020``) is accepted too.
    """
    if text is None or text.strip() == "":
        return None, None
    parts = text.strip().split("/")
    if len(parts) > 2:
        raise FilterError(f"datetime must be an instant or start/end, not {text!r}")
    years = [None if p in ("", "..") else _year_of(p, text) for p in parts]
    if len(years) == 1:
        if years[0] is None:
            raise FilterError(f"datetime must be an instant or start/end, not {text!r}")
        return years[0], years[0]
    start, end = years
    if start is not None and end is not None and start > end:
        raise FilterError(f"datetime {text!r} ends before it starts")
    return start, end


def _year_of(part: str, whole: str) -> int:
    if re.fullmatch(r"\d{4}", part):
        return int(part)
    try:
        return dt.datetime.fromisoformat(part).year
    except ValueError:
        raise FilterError(f"datetime must be RFC 3339 (2020-06-01T00:00:00Z, or a date or year), not {whole!r}") from None


class Collection(abc.ABC):
    """One published collection (a pygeoapi provider's shape): metadata, pages and single features."""

    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    #: Property filters (query parameter → JSON schema of its value) beyond :data:`COMMON_PARAMETERS`.
    queryables: ClassVar[dict[str, dict[str, Any]]]

    def parameters(self) -> tuple[str, ...]:
        return (*COMMON_PARAMETERS, *self.queryables)

    @abc.abstractmethod
    def extent(self, store: ZoneStore, cache: Any = None) -> dict[str, Any]:
        """OGC ``extent``: ``spatial`` (lon/lat bbox) and ``temporal`` (interval)."""

    @abc.abstractmethod
    def query(self, arguments: Mapping[str, Sequence[str]], max_limit: int) -> ItemQuery:
        """An items request's parameters → what to select; unknown or bad values raise :class:`FilterError`."""

    @abc.abstractmethod
    def items(self, store: ZoneStore, query: ItemQuery, cache: Any = None) -> FeaturePage:
        """One page of the features ``query`` selects."""

    @abc.abstractmethod
    def item(self, store: ZoneStore, identifier: str) -> str | None:
        """One Feature's GeoJSON text, or None when there is no such feature."""


def paging(arguments: Mapping[str, Sequence[str]], max_limit: int) -> tuple[int, int]:
    """``limit`` (default :data:`DEFAULT_LIMIT`, at most ``max_limit``) and ``offset`` (default 0)."""
    limit = filters.parse_integer(single(arguments, "limit"), "limit")
    offset = filters.parse_integer(single(arguments, "offset"), "offset") or 0
    if limit is None:
        limit = min(DEFAULT_LIMIT, max_limit)
    if limit < 1:
        raise FilterError(f"limit must be at least 1, not {limit}")
    if limit > max_limit:
        raise LimitExceeded(f"limit {limit:,} is over this server's {max_limit:,} features per request; "
                            "ask for fewer and page with offset (the response's next link)")
    if offset < 0:
        raise FilterError(f"offset must be 0 or more, not {offset}")
    return limit, offset


#: The zones' properties as published (stored names; classification in English like the statistics).
ZONE_PROPERTIES = ("country", "region", "classification", "area_ha", "year", "source", "confidence", "verified")


class ZoneCollection(Collection):
    """The deforestation zones: one feature per zone, its id the store's."""

    id = "zones"
    title = "Deforestation zones"
    description = "Cleared areas with country, region, year, legal/illegal classification, area (ha), source, confidence and verification."
    queryables = {
        "country": {"type": "string", "description": "Country as stored (repeatable)."},
        "classification": {"type": "string", "enum": [c.value for c in Classification], "description": "legal or illegal (repeatable)."},
        "source": {"type": "string", "description": "Detection source (repeatable)."},
        "verified": {"type": "boolean", "description": "true: only verified zones."},
        "min_confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "Only zones with confidence at least this."},
    }

    def query(self, arguments: Mapping[str, Sequence[str]], max_limit: int) -> ItemQuery:
        """Query parameters (name → values, as given) → the filter and page; unknown names are refused."""
        filters.refuse_nul(arguments)
        unknown = sorted(set(arguments) - set(self.parameters()))
        if unknown:
            raise FilterError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(self.parameters())}")
        limit, offset = paging(arguments, max_limit)
        verified = single(arguments, "verified")
        if verified is not None and not filters.parse_boolean(verified, "verified"):
            raise FilterError("verified=false is not supported: leave verified out for every zone, or verified=true")
        year_from, year_to = parse_datetime(single(arguments, "datetime"))
        where = filters.zone_filter(
            countries=arguments.get("country", []),
            year_from=year_from,
            year_to=year_to,
            classifications=arguments.get("classification", []),
            sources=arguments.get("source", []),
            verified_only=verified is not None,
            min_confidence=filters.parse_confidence(single(arguments, "min_confidence"), "min_confidence"),
            bbox=filters.parse_bbox(single(arguments, "bbox")),
        )
        return ItemQuery(where, limit, offset)

    def items(self, store: ZoneStore, query: ItemQuery, cache: Any = None) -> FeaturePage:
        """A page of zones in the store's order (country, year, id).

        A page of one country's zones is kept in the cache under ``geojson:{country}`` (with the
        data version, the rest of the filter and the page in the key's digest).
        """

        def compute() -> str:
            matched = store.count(query.where)
            table = store.zones_arrow(query.where, ("id", *ZONE_PROPERTIES, "geometry"), query.limit, query.offset) if query.offset < matched else None
            return page_text(matched, zone_features(table) if table is not None else [])

        if cache is None or len(query.where.countries) != 1:
            return FeaturePage.from_text(compute())
        scope = digest([store_scope(store), query.where.key(), query.limit, query.offset])
        return FeaturePage.from_text(cache.geojson(query.where.countries[0], store.data_version(), compute, scope=scope))

    def item(self, store: ZoneStore, identifier: str) -> str | None:
        if not re.fullmatch(r"\d{1,18}", identifier):
            return None
        table = store.zones_by_id([int(identifier)], ("id", *ZONE_PROPERTIES, "geometry"))
        features = zone_features(table)
        return features[0] if features else None

    def extent(self, store: ZoneStore, cache: Any = None) -> dict[str, Any]:
        """Lon/lat box and the years, through the cache (the map's extent of every zone; statistics by year)."""
        from .render.geometry import to_lonlat
        from .render.maps import zones_extent
        from .stats import statistics

        years = [row["year"] for row in statistics(store, ZoneFilter(), ("year",), cache=cache).rows]
        xmin, ymin, xmax, ymax = zones_extent(store, ZoneFilter(), cache) if years else (None,) * 4
        if years:
            lon, lat = to_lonlat([xmin, xmax], [ymin, ymax])
            box = [max(-180.0, float(lon[0])), max(-90.0, float(lat[0])), min(180.0, float(lon[1])), min(90.0, float(lat[1]))]
        else:
            box = list(WORLD)
        interval = [[f"{min(years)}-01-01T00:00:00Z", f"{max(years)}-12-31T23:59:59Z"]] if years else [[None, None]]
        return {"spatial": {"bbox": [box], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
                "temporal": {"interval": interval, "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}}


def zone_features(table: pa.Table) -> list[str]:
    """GeoJSON Feature texts of zone rows (geometry as WKB); values are data: JSON-escaped, never interpreted."""
    if table.num_rows == 0:
        return []
    geometries = shapely.to_geojson(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
    columns = {name: table.column(name).to_pylist() for name in ZONE_PROPERTIES}
    ids = table.column("id").to_pylist()
    features = []
    for i, identifier in enumerate(ids):
        properties = {name: columns[name][i] for name in ZONE_PROPERTIES}
        stored = properties["classification"]
        cls = Classification.from_stored(stored) if isinstance(stored, str) else None
        properties["classification"] = cls.value if cls else None
        for name in ("area_ha", "confidence"):  # exact decimals in the store, numbers in JSON
            if properties[name] is not None:
                properties[name] = float(properties[name])
        properties["verified"] = bool(properties["verified"]) if properties["verified"] is not None else None
        features.append(f'{{"type":"Feature","id":{int(identifier)},"geometry":{geometries[i]},'
                        f'"properties":{json.dumps(properties, ensure_ascii=False)}}}')
    return features


#: What the server publishes under /ogc/collections, by id.
COLLECTIONS: dict[str, Collection] = {c.id: c for c in (ZoneCollection(),)}
