"""statistics() against a hand computation (plain Python, Decimal) on a small fixture built here."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Callable

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from forestguard import stores
from forestguard.schema import Classification
from forestguard.stats import Statistics, statistics
from forestguard.stores import ZoneFilter
from forestguard.validation import validate

# country, year, classification, area_ha, confidence, verified, source, lon
RECORDS = [
    ("Brazil", 2020, "legal", "10.10", "0.50", True, "PRODES", -60.0),
    ("Brazil", 2020, "légale", "20.21", None, False, "DETER", -60.1),
    ("Brazil", 2020, "illegal", "5.55", "0.33", False, "PRODES", -60.2),
    ("Brazil", 2020, None, "1.00", "0.34", True, "GLAD", -60.3),
    ("Brazil", 2021, "ILLEGALE", "100.00", "0.91", True, "PRODES", -60.4),
    ("Brazil", 2021, "illegal", "0.02", "0.92", False, "GLAD", -60.5),
    ("Brazil", 2021, "illegal", "0.03", "0.95", False, "GLAD", -60.6),
    ("Bolivia", 2020, "legal", "0.01", "0.10", False, "GLAD", -65.0),
    ("Bolivia", 2020, "legal", "99999999.99", "0.11", False, "GLAD", -65.1),
    ("Côte d'Ivoire", 2019, "illegal", "3.33", None, False, "Field survey", -5.0),
    ("'); DROP TABLE deforestation_zones; --", 2019, "legal", "1", "1", True, "<script>", 10.0),
]
CLASS = {"legal": "legal", "légale": "legal", "illegal": "illegal", "ILLEGALE": "illegal", None: None}


def expected(by: tuple[str, ...], keep: Callable[[tuple], bool] = lambda r: True) -> list[dict]:
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for r in RECORDS:
        if keep(r):
            values = {"country": r[0], "year": r[1], "classification": CLASS[r[2]]}
            groups[tuple(values[k] for k in by)].append(r)
    rows = []
    for key, members in groups.items():
        confidences = [Decimal(m[4]) for m in members if m[4] is not None]
        row = dict(zip(by, key))
        row["zones"] = len(members)
        row["area_ha"] = float(sum(Decimal(m[3]) for m in members))
        mean = sum(confidences) / len(confidences) if confidences else None
        row["mean_confidence"] = None if mean is None else float(mean.quantize(Decimal("0.0001"), ROUND_HALF_UP))
        row["verified_zones"] = sum(1 for m in members if m[5])
        rows.append(row)
    # None sorts last; everything else in its natural order.
    return sorted(rows, key=lambda row: tuple((row[k] is None, row[k] if row[k] is not None else 0) for k in by))


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    frame = gpd.GeoDataFrame(
        {
            "country": [r[0] for r in RECORDS],
            "year": [r[1] for r in RECORDS],
            "classification": pd.Series([r[2] for r in RECORDS], dtype=object),
            "area_ha": [r[3] for r in RECORDS],
            "confidence": pd.Series([r[4] for r in RECORDS], dtype=object),
            "verified": [r[5] for r in RECORDS],
            "source": [r[6] for r in RECORDS],
        },
        geometry=[box(r[7], -5.0, r[7] + 0.01, -4.99) for r in RECORDS],
        crs=4326,
    )
    checked = validate(frame, file="fixture")
    assert checked.rejects == []
    path = str(tmp_path_factory.mktemp("stats") / "stats.duckdb")
    with stores.open(path, create=True) as store:
        store.insert(checked.zones)
    return path


@pytest.fixture
def store(url: str):
    with stores.open(url, read_only=True) as opened:
        yield opened


@pytest.mark.parametrize(
    "by",
    [("country", "year", "classification"), ("country",), ("year",), ("classification",), ("country", "classification"), ("year", "classification"), ()],
    ids=lambda by: ",".join(by) or "total",
)
def test_rows_equal_the_hand_computation(store, by) -> None:
    result = statistics(store, by=by)
    assert result.rows == expected(by)
    assert result.engine == "duckdb" and result.data_version == 1


def test_default_grouping_and_the_null_class_sorts_last(store) -> None:
    rows = statistics(store).rows
    brazil_2020 = [r["classification"] for r in rows if r["country"] == "Brazil" and r["year"] == 2020]
    assert brazil_2020 == ["illegal", "legal", None]
    assert [r["country"] for r in rows][0] == "'); DROP TABLE deforestation_zones; --"  # "'" sorts before letters
    assert list(rows[0]) == ["country", "year", "classification", "zones", "area_ha", "mean_confidence", "verified_zones"]


def test_keys_come_in_canonical_order_whatever_the_order_asked(store) -> None:
    assert statistics(store, by=("year", "country")).rows == expected(("country", "year"))
    with pytest.raises(ValueError, match="cannot group by region"):
        statistics(store, by=("region",))


def test_rounding_and_null_mean(store) -> None:
    rows = {(r["country"], r["year"], r["classification"]): r for r in statistics(store).rows}
    assert rows[("Brazil", 2020, "legal")]["mean_confidence"] == 0.5  # one of two zones has a confidence
    assert rows[("Côte d'Ivoire", 2019, "illegal")]["mean_confidence"] is None
    assert rows[("Brazil", 2021, "illegal")]["mean_confidence"] == 0.9267  # (0.91+0.92+0.95)/3 = 0.92666…
    assert rows[("Bolivia", 2020, "legal")]["area_ha"] == 100_000_000.0  # 99,999,999.99 + 0.01, summed exactly


@pytest.mark.parametrize(
    "where, keep",
    [
        (ZoneFilter(countries=("Brazil",)), lambda r: r[0] == "Brazil"),
        (ZoneFilter(countries=("Bolivia", "Côte d'Ivoire")), lambda r: r[0] in ("Bolivia", "Côte d'Ivoire")),
        (ZoneFilter(countries=("'); DROP TABLE deforestation_zones; --",)), lambda r: r[0].startswith("'")),
        (ZoneFilter(countries=("Brazil' OR '1'='1",)), lambda r: False),
        (ZoneFilter(year_from=2020, year_to=2020), lambda r: r[1] == 2020),
        (ZoneFilter(year_from=2020), lambda r: r[1] >= 2020),
        (ZoneFilter(year_to=2019), lambda r: r[1] <= 2019),
        (ZoneFilter(classifications=(Classification.ILLEGAL,)), lambda r: CLASS[r[2]] == "illegal"),
        (ZoneFilter(sources=("GLAD", "<script>")), lambda r: r[6] in ("GLAD", "<script>")),
        (ZoneFilter(verified_only=True), lambda r: r[5]),
        (ZoneFilter(min_confidence=0.9), lambda r: r[4] is not None and Decimal(r[4]) >= Decimal("0.9")),
        (ZoneFilter(bbox=(-61.0, -6.0, -60.15, -4.0)), lambda r: -61.0 <= r[7] <= -60.15),
        (ZoneFilter(countries=("Brazil",), year_from=2021, verified_only=True), lambda r: r[0] == "Brazil" and r[1] >= 2021 and r[5]),
    ],
)
def test_filters(store, where: ZoneFilter, keep) -> None:
    by = ("country", "year", "classification")
    assert statistics(store, where, by).rows == expected(by, keep)
    assert store.count(where) == sum(1 for r in RECORDS if keep(r))


def test_formats(store) -> None:
    result = statistics(store, by=("country", "classification"))
    document = json.loads(result.to_json())
    assert set(document) == {"engine", "data_version", "rows"}
    assert document["rows"] == expected(("country", "classification"))
    assert Statistics.from_dict(document) == result

    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert list(rows[0]) == ["country", "classification", "zones", "area_ha", "mean_confidence", "verified_zones"]
    assert len(rows) == len(result.rows)
    none_row = next(r for r in rows if r["country"] == "Brazil" and r["classification"] == "")
    assert none_row["zones"] == "1"
    ivory = next(r for r in rows if r["country"] == "Côte d'Ivoire")
    assert ivory["mean_confidence"] == ""

    table = result.to_table()
    assert "(none)" in table and "100,000,000.00" in table and "0.7775" in table  # Brazil illegal: 3.11 / 4


def test_empty_store_and_no_match(tmp_path: Path, store) -> None:
    assert statistics(store, ZoneFilter(countries=("Atlantis",))).rows == []
    assert statistics(store, ZoneFilter(countries=("Atlantis",)), by=()).rows == []
    assert Statistics("duckdb", 0).to_table() == "(no zones match)"
    with stores.open(str(tmp_path / "empty.duckdb"), create=True) as empty:
        result = statistics(empty)
    assert (result.rows, result.data_version) == ([], 0)


def test_a_narrowed_filter_selects_what_both_select(demo_duckdb):
    """ZoneFilter.narrowed against the store: the zones of one filter are those both filters select."""
    from forestguard import stores

    pairs = [
        (ZoneFilter(countries=("Brazil", "Peru")), ZoneFilter(countries=("Peru", "Chad"), year_from=2018)),
        (ZoneFilter(year_from=2016, year_to=2022, min_confidence=0.5), ZoneFilter(year_from=2019, year_to=2024, verified_only=True, min_confidence=0.8)),
        (ZoneFilter(classifications=(Classification.LEGAL, Classification.ILLEGAL)), ZoneFilter(classifications=(Classification.ILLEGAL,), sources=("GLAD",))),
        (ZoneFilter(bbox=(-80.0, -20.0, -50.0, 5.0)), ZoneFilter(bbox=(-60.0, -30.0, -40.0, 0.0), countries=("Brazil",))),
    ]
    with stores.open(demo_duckdb, read_only=True) as store:
        def ids(where):
            return set(store.zones_arrow(where, columns=["id"]).column("id").to_pylist())

        for a, b in pairs:
            narrowed = a.narrowed(b)
            assert narrowed is not None and narrowed == b.narrowed(a)
            assert ids(narrowed) == ids(a) & ids(b) and ids(narrowed)
    assert ZoneFilter(countries=("Brazil",)).narrowed(ZoneFilter(countries=("Peru",))) is None
    assert ZoneFilter(bbox=(0.0, 0.0, 1.0, 1.0)).narrowed(ZoneFilter(bbox=(2.0, 2.0, 3.0, 3.0))) is None
