"""Statistics: zones, hectares, mean confidence and verified zones per group.

Engines return exact sums (:meth:`ZoneStore.aggregate`); rounding happens once,
here, with decimals, so DuckDB, PostGIS and snapshots print the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Sequence

import pandas as pd

from .schema import GROUP_KEYS, MEASURES, Classification
from .stores.base import ZoneFilter, ZoneStore, check_group_keys

_CENT = Decimal("0.01")
_TEN_THOUSANDTH = Decimal("0.0001")


@dataclass
class Statistics:
    """The statistics contract shared by the CLI, ``/api/stats``, reports and dashboards."""

    engine: str
    data_version: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Statistics":
        return cls(engine=data["engine"], data_version=int(data["data_version"]), rows=list(data["rows"]))

    def frame(self) -> pd.DataFrame:
        keys = [k for k in GROUP_KEYS if self.rows and k in self.rows[0]]
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

    def compute() -> Statistics:
        rows = rows_from_aggregate(store.aggregate(where, keys), keys)
        return Statistics(engine=store.engine, data_version=version, rows=rows)

    if cache is None:
        return compute()
    return cache.statistics(store, where, keys, version, compute)


class StatsCache:
    """What :func:`statistics` needs from a cache (see :mod:`forestguard.cache`)."""

    def statistics(
        self, store: ZoneStore, where: ZoneFilter, by: tuple[str, ...], version: int, compute: Callable[[], Statistics]
    ) -> Statistics:  # pragma: no cover - interface
        raise NotImplementedError
