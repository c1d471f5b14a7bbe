"""The one interface every zone store implements.

Engines differ only in SQL; callers see zones as GeoDataFrames/Arrow tables
with geometry as WKB, statistics as a small aggregate frame, and a data version
that every write bumps (caches key on it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Sequence

import geopandas as gpd
import pandas as pd
import pyarrow as pa

from ..errors import ReadOnlyStore, UserError
from ..loads import FileLoad, LoadRecord
from ..schema import ALL_GROUP_KEYS, Classification
from .evidence import EvidenceStore, overlaps_sql

if TYPE_CHECKING:  # areas and alerts build on the stores; the stores only name their types
    from .outbox import Delivery, Watch
    from ..areas import Area

#: Columns of :meth:`ZoneStore.aggregate`: the group keys chosen, then these.
AGGREGATE_COLUMNS = ("zones", "area_ha", "confidence_sum", "confidence_n", "verified_zones")


@dataclass(frozen=True)
class ZoneFilter:
    """Which zones a statistic, map or export covers. Empty fields do not filter."""

    countries: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    classifications: tuple[Classification, ...] = ()
    sources: tuple[str, ...] = ()
    verified_only: bool = False
    min_confidence: float | None = None
    bbox: tuple[float, float, float, float] | None = None  # lon/lat: xmin, ymin, xmax, ymax
    #: Only zones intersecting this area, their hectares counted inside it (see :mod:`forestguard.areas`).
    area: "Area | None" = None
    #: Only zones that share area with a reference feature of one of these layer kinds (their evidence's findings).
    overlaps: tuple[str, ...] = ()
    #: The store's evidence version the ``overlaps`` term (or a grouping by ``suggested``) was read at: part of
    #: the cache key only, so evidence computed later is never hidden by an entry of the earlier.
    evidence_version: int | None = None

    def with_(self, **changes: Any) -> "ZoneFilter":
        return replace(self, **changes)

    def narrowed(self, other: "ZoneFilter") -> "ZoneFilter | None":
        """One filter selecting exactly the zones both select, or None when no single filter can say it.

        (Disjoint country, class or source lists, or boxes that do not meet, select nothing: an
        empty list would mean "all".)
        """

        def both(a: tuple, b: tuple) -> tuple | None:
            if a and b:
                common = tuple(v for v in a if v in b)
                return common or None
            return a or b

        countries, classifications, sources = both(self.countries, other.countries), both(self.classifications, other.classifications), both(self.sources, other.sources)
        if countries is None or classifications is None or sources is None:
            return None
        if self.area is not None and other.area is not None and self.area != other.area:
            return None  # two areas: zones meeting both is no single area's selection
        if self.overlaps and other.overlaps and set(self.overlaps) != set(other.overlaps):
            return None  # overlapping one of A and one of B is no single list of kinds
        bbox = self.bbox or other.bbox
        if self.bbox and other.bbox:
            bbox = (max(self.bbox[0], other.bbox[0]), max(self.bbox[1], other.bbox[1]), min(self.bbox[2], other.bbox[2]), min(self.bbox[3], other.bbox[3]))
            if bbox[0] > bbox[2] or bbox[1] > bbox[3]:
                return None

        def bound(a, b, pick):
            return b if a is None else a if b is None else pick(a, b)

        return ZoneFilter(
            countries=countries,
            year_from=bound(self.year_from, other.year_from, max),
            year_to=bound(self.year_to, other.year_to, min),
            classifications=classifications,
            sources=sources,
            verified_only=self.verified_only or other.verified_only,
            min_confidence=bound(self.min_confidence, other.min_confidence, max),
            bbox=bbox,
            area=self.area or other.area,
            overlaps=self.overlaps or other.overlaps,
            evidence_version=self.evidence_version if self.evidence_version is not None else other.evidence_version,
        )

    def key(self) -> str:
        """A stable text form for cache keys."""
        parts = [
            ",".join(sorted(self.countries)) or "*",
            f"{self.year_from or ''}-{self.year_to or ''}",
            ",".join(sorted(c.value for c in self.classifications)) or "*",
            ",".join(sorted(self.sources)) or "*",
            "v" if self.verified_only else "",
            "" if self.min_confidence is None else f"c{self.min_confidence:g}",
            "" if self.bbox is None else "b" + ",".join(f"{v:.6f}" for v in self.bbox),
        ]
        if self.area is not None:  # the polygon itself, not its name: a renamed area keeps its entries
            parts.append("a" + self.area.digest)
        if self.overlaps or self.evidence_version is not None:
            parts.append("o" + ",".join(sorted(self.overlaps)) + f"@{self.evidence_version if self.evidence_version is not None else ''}")
        return "|".join(parts)

    @property
    def reads_evidence(self) -> bool:
        """Whether the selection depends on evidence (statistics summaries kept per zone column cannot answer it)."""
        return bool(self.overlaps)


def check_group_keys(by: Iterable[str]) -> tuple[str, ...]:
    """Group keys in their canonical order; unknown names are a usage error."""
    chosen = tuple(dict.fromkeys(k.strip() for k in by if k.strip()))
    unknown = [k for k in chosen if k not in ALL_GROUP_KEYS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join(ALL_GROUP_KEYS)}")
    return tuple(k for k in ALL_GROUP_KEYS if k in chosen)


class ZoneStore(EvidenceStore, abc.ABC):
    """Zones in some engine. Open one with :func:`forestguard.stores.open`."""

    engine: ClassVar[str]
    read_only: bool = False
    #: Engines that draw map aggregates themselves (the Dask engine: ``map_extent``, ``map_aggregate``) say so;
    #: the maps of the others are drawn from an in-memory layer (:mod:`forestguard.render`).
    draws_maps: ClassVar[bool] = False
    #: Alert deliveries the last insert of this handle recorded in the outbox (watched areas it met).
    last_alerts: int = 0

    def __init__(self, url: str) -> None:
        self.url = url

    # -- reading -------------------------------------------------------------
    @abc.abstractmethod
    def data_version(self) -> int:
        """A number every write increases: part of every cache key."""

    @abc.abstractmethod
    def aggregate(self, where: ZoneFilter, by: Sequence[str]) -> pd.DataFrame:
        """Exact sums per group: ``by`` columns then :data:`AGGREGATE_COLUMNS`.

        ``area_ha`` and ``confidence_sum`` are exact decimals (``decimal.Decimal``)
        so that engines agree to the cent; classification comes as stored.
        """

    @abc.abstractmethod
    def zones_arrow(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, limit: int | None = None, offset: int = 0) -> pa.Table:
        """Zones as Arrow, geometry as WKB in a ``geometry`` column, sorted by country, year, id.

        ``limit``/``offset`` give one page of that order (feature services page through it).
        """

    def zones(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, limit: int | None = None) -> gpd.GeoDataFrame:
        table = self.zones_arrow(where, columns, limit)
        frame = table.to_pandas()
        geometry = gpd.GeoSeries.from_wkb(frame.pop("geometry"), crs=4326) if "geometry" in frame else None
        return gpd.GeoDataFrame(frame, geometry=geometry, crs=4326)

    def zone_batches(self, where: ZoneFilter = ZoneFilter(), columns: Sequence[str] | None = None, batch_rows: int = 250_000) -> Iterator[pa.Table]:
        """Zones as Arrow tables of about ``batch_rows`` each, in no particular order: bounded memory for any store.

        Engines that can stream override this; the default reads one table.
        """
        yield self.zones_arrow(where, columns)

    @abc.abstractmethod
    def zone_geometries(self, ids: Sequence[int]) -> pa.Table:
        """``id`` and ``geometry`` (WKB) of the zones ``ids`` (those that exist), looked up by primary key."""

    @abc.abstractmethod
    def zones_by_id(self, ids: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
        """The zones ``ids`` (those that exist) with ``columns`` (all by default), by primary key, sorted by id."""

    @abc.abstractmethod
    def count(self, where: ZoneFilter = ZoneFilter()) -> int: ...

    def ping(self) -> None:
        """Raise if the store cannot answer (readiness probes)."""
        self.data_version()

    def role(self) -> str:
        """``"primary"`` (takes writes), ``"replica"`` (a hot standby: reads only) or ``"snapshot"``."""
        return "primary"

    def countries(self) -> list[str]:
        return sorted(self.aggregate(ZoneFilter(), ["country"])["country"].tolist())

    def years(self) -> list[int]:
        return sorted(int(y) for y in self.aggregate(ZoneFilter(), ["year"])["year"])

    def loads(self, sha256s: Sequence[str] | None = None) -> list[LoadRecord]:
        """Load records (all, or those of these contents), oldest first; a store that keeps none has none."""
        return []

    # -- writing -------------------------------------------------------------
    @abc.abstractmethod
    def insert(self, zones: gpd.GeoDataFrame, *, files: Sequence[FileLoad] = (), again: bool = False) -> int:
        """Append validated zones in one transaction and bump the data version; return the count.

        ``files``: the input files the zones came from; a load record for each is written in
        the same transaction, and a file whose content is already recorded raises
        :class:`~forestguard.loads.AlreadyLoaded` (nothing written) unless ``again``.
        """

    def insert_batches(self, batches: Iterable[gpd.GeoDataFrame], rows: int, *, files: Sequence[FileLoad] = (), again: bool = False) -> int:
        """Like :meth:`insert` for zones that arrive in batches (about ``rows`` in all).

        One transaction still: an exception from ``batches`` loads nothing. Engines that
        can store a batch while the next is made override this.
        """
        frames = [batch for batch in batches if len(batch)]
        if not frames:
            return 0
        return self.insert(gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326), files=files, again=again)

    def _area_candidates(
        self, where: ZoneFilter, box: tuple[float, float, float, float], columns: Sequence[str], batch_rows: int
    ) -> Iterator[pa.Table]:
        """Zones ``where`` selects (its area aside) that may meet the lon/lat ``box``, through the engine's spatial index.

        A superset: :mod:`forestguard.stores.inside` tests each exactly, the same way for every engine.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot select zones by area")

    # -- saved areas (forestguard area add/list/show/remove) -------------------------------------
    def saved_areas(self) -> list["Area"]:
        """Every saved area, by name."""
        return []

    def saved_area_names(self) -> list[str]:
        """The saved areas' names only (a dashboard's list: no geometry read)."""
        return [a.name for a in self.saved_areas()]

    def saved_area(self, name: str) -> "Area":
        """The saved area ``name``; a name that is not saved is the user's error, listing those that are."""
        found = self._saved_area(name)
        if found is None:
            known = [a.name for a in self.saved_areas()]
            listing = ", ".join(repr(n) for n in known[:20]) + (f", … ({len(known)} in all)" if len(known) > 20 else "")
            raise UserError(f"no saved area {name!r} in {self._label()} ({'saved: ' + listing if known else 'none is saved'}; see 'forestguard area list')")
        return found

    def _saved_area(self, name: str) -> "Area | None":
        return None

    def save_area(self, area: "Area", *, replace: bool = False) -> "Area":
        """Store ``area`` under its name (refused if the name is taken, unless ``replace``); returns it as saved."""
        raise ReadOnlyStore(f"{self._label()} cannot save areas (read-only)")

    def remove_area(self, name: str) -> None:
        """Remove a saved area (refused while it is watched)."""
        raise ReadOnlyStore(f"{self._label()} cannot remove areas (read-only)")

    # -- watches and the outbox of alert deliveries (forestguard area watch, alerts) ---------------
    def watches(self) -> list["Watch"]:
        return []

    def watch_area(self, watch: "Watch") -> None:
        """Watch a saved area: each ingest that commits zones meeting it records a delivery to the webhook."""
        raise ReadOnlyStore(f"{self._label()} cannot watch areas (read-only)")

    def unwatch_area(self, name: str) -> None:
        raise ReadOnlyStore(f"{self._label()} cannot watch areas (read-only)")

    def deliveries(self, status: str | None = None, limit: int = 100) -> list["Delivery"]:
        """Alert deliveries, newest first (``status``: pending, delivered or failed)."""
        return []

    def claim_deliveries(self, now: datetime, *, lease_s: float, limit: int, waiting_too: bool = False) -> list["Delivery"]:
        """Pending deliveries due at ``now`` (all pending ones with ``waiting_too``), leased for ``lease_s``.

        The lease moves their next attempt past the sending, so a concurrent deliverer skips them
        and one that dies leaves them to be retried when the lease ends (at-least-once).
        """
        return []

    def record_attempt(self, delivery_id: str, *, now: datetime, delivered: bool, error: str | None, next_attempt_at: datetime | None) -> None:
        """The outcome of one attempt: delivered, retried at ``next_attempt_at``, or failed for good (None)."""
        raise ReadOnlyStore(f"{self._label()} cannot record deliveries (read-only)")

    def _label(self) -> str:
        from ..config import redact

        return redact(self.url)

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - engines without resources need nothing
        pass

    def __enter__(self) -> "ZoneStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        from ..config import redact

        return {"engine": self.engine, "url": redact(self.url), "data_version": self.data_version(), "zones": self.count()}

    def __repr__(self) -> str:
        from ..config import redact

        return f"<{type(self).__name__} {redact(self.url)}>"


@dataclass
class SQLFilter:
    """A WHERE clause and its parameters, built once for engines that speak SQL."""

    clause: str
    params: list[Any] = field(default_factory=list)


def aggregate_sql(table: str, keys: Sequence[str], clause: str, sort_key: Callable[[str], str] = str) -> str:
    """The statistics query both SQL engines run: exact sums per group, nothing rounded.

    ``sort_key`` lets an engine impose byte order on text keys so engines sort alike;
    without group keys an empty selection gives no row (HAVING), as with keys.
    """
    group = ", ".join(keys)
    order = ", ".join(f"{sort_key(k)} NULLS LAST" for k in keys)
    return f"""
        SELECT {group + ',' if keys else ''}
               count(*) AS zones,
               sum(area_ha) AS area_ha,
               sum(confidence) AS confidence_sum,
               count(confidence) AS confidence_n,
               count(*) FILTER (WHERE verified) AS verified_zones
        FROM {table} WHERE {clause}
        {'GROUP BY ' + group if keys else 'HAVING count(*) > 0'}
        {'ORDER BY ' + order if keys else ''}
    """


def filter_sql(where: ZoneFilter, placeholder: str = "?", bbox_sql: str | None = None) -> SQLFilter:
    """Compile a filter to a parameterized WHERE clause (values never enter the SQL text).

    ``bbox_sql`` is the engine's bounding-box test with four placeholders
    (xmin, ymin, xmax, ymax); without it a bbox filter is an error.
    """
    if where.area is not None:
        raise ValueError("an area is not a SQL filter: the store selects by area through forestguard.stores.inside")
    terms: list[str] = []
    params: list[Any] = []

    def in_list(column: str, values: Sequence[Any]) -> None:
        terms.append(f"{column} IN ({', '.join([placeholder] * len(values))})")
        params.extend(values)

    if where.countries:
        in_list("country", list(where.countries))
    if where.year_from is not None:
        terms.append(f"year >= {placeholder}")
        params.append(int(where.year_from))
    if where.year_to is not None:
        terms.append(f"year <= {placeholder}")
        params.append(int(where.year_to))
    if where.classifications:
        in_list("classification", [c.stored for c in where.classifications])
    if where.sources:
        in_list("source", list(where.sources))
    if where.verified_only:
        terms.append("verified")
    if where.min_confidence is not None:
        terms.append(f"confidence >= {placeholder}")
        params.append(float(where.min_confidence))
    if where.bbox is not None:
        if bbox_sql is None:
            raise ValueError("this engine cannot filter by bounding box")
        terms.append(bbox_sql)
        params.extend(float(v) for v in where.bbox)
    if where.overlaps:
        terms.append(overlaps_sql(where.overlaps, placeholder))
        params.extend(where.overlaps)
    return SQLFilter(" AND ".join(terms) or "TRUE", params)
