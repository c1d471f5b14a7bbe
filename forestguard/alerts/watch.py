"""The watch check: what an ingest's new zones bring into each watched area, measured as they load.

An engine's ingest transaction reads the watched areas, passes its batches through
:meth:`WatchCheck.batches` (zones whose box misses every watched area cost one vectorised
bounds test) and, before it commits, writes :meth:`WatchCheck.deliveries` into its outbox:
the alert exists exactly when the zones do. Sending happens later (:mod:`.deliver`).
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Iterator
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..areas.clip import hectares_inside, intersecting
from ..areas.shape import Area
from ..config import settings
from ..schema import Classification
from .records import Delivery, Watch

if TYPE_CHECKING:
    from ..stores.base import ZoneStore

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


def start_watching(store: "ZoneStore", area: str, webhook_url: str, secret_env: str | None = None) -> Watch:
    """Watch a saved area: the URL must be one requests may go to, the secret's variable set now."""
    from ..config import DEFAULT_WEBHOOK_SECRET_VARIABLE, secret
    from ..errors import UserError
    from .webhook import resolve

    variable = secret_env or DEFAULT_WEBHOOK_SECRET_VARIABLE
    if not variable.replace("_", "").isalnum() or variable[0].isdigit():
        raise UserError(f"--secret-env {variable!r} is not an environment variable name")
    resolve(webhook_url)  # malformed, or inside our network: refused now rather than at every ingest
    if secret(variable) is None:
        raise UserError(f"the secret variable {variable} is not set: deliveries are signed with its value (set it here and wherever alerts are delivered)")
    watch = Watch(area, webhook_url, variable)
    store.watch_area(watch)
    return watch
