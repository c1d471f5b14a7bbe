"""What the stores keep for alerts, and the check that fills the outbox as an ingest loads.

Watches of saved areas and the outbox of deliveries are records every engine keeps. An
engine's ingest transaction reads the watched areas, passes its batches through
:meth:`WatchCheck.batches` (zones whose box misses every watched area cost one vectorised
bounds test) and, before it commits, writes :meth:`WatchCheck.deliveries` into its outbox:
the alert exists exactly when the zones do. Starting a watch and sending the outbox are
:mod:`forestguard.alerts`' work, above the stores.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..areas.clip import hectares_inside, intersecting
from ..areas.shape import Area
from ..config import settings
from ..schema import Classification

#: A delivery's states: waiting to be sent (or re-sent), received by the webhook, given up on.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True)
class Watch:
    """A saved area whose new clearing is posted to a webhook, signed with the secret a variable holds."""

    area: str
    webhook_url: str
    secret_env: str  #: the environment variable's name; its value is never stored
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "webhook": self.webhook_url, "secret_env": self.secret_env,
                "created_at": None if self.created_at is None else self.created_at.isoformat(timespec="seconds")}


@dataclass(frozen=True)
class Delivery:
    """One alert in the outbox: recorded in the ingest's transaction, sent (and re-sent) after it.

    ``body`` is the exact JSON text posted every time, so the signature and the receiver's
    de-duplication by ``id`` hold across retries.
    """

    id: str
    area: str
    webhook_url: str
    secret_env: str
    data_version: int
    body: str
    created_at: datetime
    status: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(timespec="seconds")

        return {"id": self.id, "area": self.area, "webhook": self.webhook_url, "data_version": self.data_version,
                "status": self.status, "attempts": self.attempts, "created_at": when(self.created_at),
                "next_attempt_at": when(self.next_attempt_at) if self.status == PENDING else None,
                "delivered_at": when(self.delivered_at), "last_error": self.last_error}


#: Payload keys of the hectares by classification (zones without one are "unclassified").
CLASS_KEYS = {Classification.LEGAL.stored: "legal", Classification.ILLEGAL.stored: "illegal", None: "unclassified"}


@dataclass
class _Found:
    zones: int = 0
    hectares: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    years: set[int] = field(default_factory=set)


class WatchCheck:
    """Accumulates, per watched area, the new zones that meet it and their hectares inside it."""

    def __init__(self, watched: Iterable[tuple[Watch, Area]]) -> None:
        self.watched = list(watched)
        self._found = [_Found() for _ in self.watched]

    def __bool__(self) -> bool:
        return bool(self.watched)

    def batches(self, batches: Iterable[gpd.GeoDataFrame]) -> Iterator[gpd.GeoDataFrame]:
        """The batches unchanged, each measured on its way to the store (nothing to do without watches)."""
        if not self.watched:
            yield from batches
            return
        for batch in batches:
            self.add(batch)
            yield batch

    def add(self, zones: gpd.GeoDataFrame) -> None:
        if not len(zones) or not self.watched:
            return
        geometries = np.asarray(zones.geometry.values, dtype=object)
        xmin, ymin, xmax, ymax = shapely.bounds(geometries).T
        classification = zones["classification"].to_numpy(dtype=object)
        year = zones["year"].to_numpy()
        for (watch, area), found in zip(self.watched, self._found):
            bx0, by0, bx1, by1 = area.bbox
            near = np.flatnonzero((xmax >= bx0) & (ymax >= by0) & (xmin <= bx1) & (ymin <= by1))
            if not len(near):
                continue
            hit = near[intersecting(geometries[near], area.geometry)]
            if not len(hit):
                continue
            hectares = hectares_inside(geometries[hit], area.geometry)
            found.zones += len(hit)
            found.years.update(int(y) for y in np.unique(year[hit]))
            classes = pd.Series(classification[hit], dtype=object)
            for stored, key in CLASS_KEYS.items():
                mask = (classes.isna() if stored is None else classes.eq(stored)).to_numpy(dtype=bool)
                if mask.any():
                    found.hectares[key].append(hectares[mask])

    def deliveries(self, data_version: int, now: datetime | None = None) -> list[Delivery]:
        """One delivery per watched area the new zones met, its body the JSON the webhook receives."""
        now = now or datetime.now(timezone.utc)
        out = []
        for (watch, area), found in zip(self.watched, self._found):
            if not found.zones:
                continue
            delivery_id = str(uuid.uuid4())
            hectares = {key: round(math.fsum(np.concatenate(found.hectares[key])) if found.hectares[key] else 0.0, 2) for key in CLASS_KEYS.values()}
            total = round(math.fsum(np.concatenate([h for parts in found.hectares.values() for h in parts])), 2)
            body = json.dumps(
                {
                    "id": delivery_id,
                    "area": watch.area,
                    "data_version": int(data_version),
                    "new_zones": found.zones,
                    "hectares_inside": {**hectares, "total": total},
                    "years": sorted(found.years),
                    "dashboard": dashboard_link(watch.area),
                    "created_at": now.isoformat(timespec="seconds"),
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            out.append(Delivery(delivery_id, watch.area, watch.webhook_url, watch.secret_env, int(data_version), body, now, next_attempt_at=now))
        return out


def dashboard_link(area: str) -> str:
    """The dashboard opened on a saved area (FORESTGUARD_PUBLIC_URL)."""
    return f"{settings().public_url}/?area={quote(area, safe='')}"
