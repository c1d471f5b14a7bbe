"""Statistics: zones, hectares, mean confidence and verified zones per group.

Engines return exact sums (:meth:`ZoneStore.aggregate`); rounding happens once,
here, with decimals, so DuckDB, PostGIS and snapshots print the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pandas as pd

from .errors import UserError
from .schema import ALL_GROUP_KEYS, GROUP_KEYS, MEASURES, Classification
from .stores.base import ZoneFilter, ZoneStore, check_group_keys

if TYPE_CHECKING:
    from .areas import Area

_CENT = Decimal("0.01")
_TEN_THOUSANDTH = Decimal("0.0001")


@dataclass
class Statistics:
    """The statistics contract shared by the CLI, ``/api/stats``, reports and dashboards."""

    engine: str
    data_version: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: The area the rows are clipped to (``name``, its own geodesic ``area_ha``, ``bbox``); absent without one.
    area: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.area is None:
            out.pop("area")
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Statistics":
        return cls(engine=data["engine"], data_version=int(data["data_version"]), rows=list(data["rows"]), area=data.get("area"))

    def frame(self) -> pd.DataFrame:
        # The keys as the rows name them: a plot's id (per-feature statistics), then the group keys.
        keys = [k for k in self.rows[0] if k not in MEASURES] if self.rows else []
        return pd.DataFrame(self.rows, columns=[*keys, *MEASURES])

    def to_csv(self) -> str:
        out = io.StringIO()
        columns = list(self.frame().columns)
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
        return out.getvalue()

    def to_table(self) -> str:
        frame = self.frame()
        if frame.empty:
            return "(no zones match)"
        shown = frame.copy()
        for column in ("zones", "verified_zones"):
            shown[column] = shown[column].map("{:,}".format)
        shown["area_ha"] = shown["area_ha"].map("{:,.2f}".format)
        shown["mean_confidence"] = shown["mean_confidence"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:.4f}")
        if "classification" in shown:
            shown["classification"] = shown["classification"].fillna("(none)")
        if "suggested" in shown:
            shown["suggested"] = shown["suggested"].fillna("(not computed)")
        return shown.to_string(index=False)


def _round(value: Any, step: Decimal) -> float:
    return float(Decimal(str(value)).quantize(step, rounding=ROUND_HALF_EVEN))


def rows_from_aggregate(frame: pd.DataFrame, by: Sequence[str]) -> list[dict[str, Any]]:
    """Turn an engine's exact aggregate into contract rows (rounded, classes named in English)."""
    rows = []
    for record in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for key in by:
            value = record[key]
            if key == "classification":
                cls = Classification.from_stored(value if isinstance(value, str) else None)
                row[key] = cls.value if cls else None
            elif key == "year":
                row[key] = int(value)
            else:
                row[key] = value
        n = int(record["confidence_n"] or 0)
        row["zones"] = int(record["zones"])
        row["area_ha"] = _round(record["area_ha"] or 0, _CENT)
        row["mean_confidence"] = None if n == 0 else _round(Decimal(str(record["confidence_sum"])) / n, _TEN_THOUSANDTH)
        row["verified_zones"] = int(record["verified_zones"])
        rows.append(row)
    return sorted(rows, key=lambda r: tuple(_sort_key(r[k]) for k in by))


def _sort_key(value: Any) -> tuple[int, Any]:
    return (1, "") if value is None else (0, value)


def with_evidence_version(store: ZoneStore, where: ZoneFilter, keys: Sequence[str]) -> ZoneFilter:
    """``where`` holding the store's evidence version when its answer depends on evidence, which changes
    without the zones' data version moving (cache keys are made of the filter's key)."""
    if where.reads_evidence or "suggested" in keys:
        return where.with_(evidence_version=store.evidence_version())
    return where


def statistics(
    store: ZoneStore,
    where: ZoneFilter = ZoneFilter(),
    by: Sequence[str] = GROUP_KEYS,
    *,
    cache: "StatsCache | None" = None,
) -> Statistics:
    """Statistics of the zones ``where`` selects, grouped ``by`` (country, year, classification)."""
    keys = check_group_keys(by)
    version = store.data_version()
    where = with_evidence_version(store, where, keys)

    def compute() -> Statistics:
        rows = rows_from_aggregate(store.aggregate(where, keys), keys)
        return Statistics(engine=store.engine, data_version=version, rows=rows)

    result = compute() if cache is None else cache.statistics(store, where, keys, version, compute)
    # Cached by the polygon, described by the name it was asked under.
    return result if where.area is None else replace(result, area=where.area.describe())


def statistics_by_area(
    store: ZoneStore, areas: "Sequence[Area]", where: ZoneFilter = ZoneFilter(), by: Sequence[str] = GROUP_KEYS, *, id_field: str = "id", name: str = ""
) -> Statistics:
    """Statistics of each area (a plot) on its own, in one pass: its rows carry its name under ``id_field``.

    The due-diligence table of many plots: every plot has rows, one with zero zones when nothing
    meets it (no clearing is an answer too). Plots keep the file's order. The ``area`` block
    describes the whole file: its name, the number of plots, their summed own hectares and box.
    """
    from .stores import inside

    keys = check_group_keys(by)
    if id_field in (*ALL_GROUP_KEYS, *MEASURES):
        raise UserError(f"the plots' id field {id_field!r} is also a column of the statistics; rename it in the file")
    version = store.data_version()
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows_from_aggregate(inside.aggregate_per_area(store, where, areas, keys), ["area_index", *keys]):  # one pass for all plots
        found.setdefault(int(row.pop("area_index")), []).append(row)
    empty = {**{k: None for k in keys}, "zones": 0, "area_ha": 0.0, "mean_confidence": None, "verified_zones": 0}
    rows: list[dict[str, Any]] = []
    for index, area in enumerate(areas):
        rows.extend({id_field: area.name, **row} for row in found.get(index, [empty]))
    described = None
    if areas:
        from .areas.shape import measure

        measure(areas)
        boxes = [a.bbox for a in areas]
        described = {
            "name": name,
            "features": len(areas),
            "area_ha": _round(sum(Decimal(repr(a.area_ha)) for a in areas), _CENT),
            "bbox": [round(v, 6) for v in (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))],
        }
    return Statistics(engine=store.engine, data_version=version, rows=rows, area=described)


class StatsCache:
    """What :func:`statistics` needs from a cache (see :mod:`forestguard.cache`)."""

    def statistics(
        self, store: ZoneStore, where: ZoneFilter, by: tuple[str, ...], version: int, compute: Callable[[], Statistics]
    ) -> Statistics:  # pragma: no cover - interface
        raise NotImplementedError
