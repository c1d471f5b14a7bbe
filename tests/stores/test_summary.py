"""The statistics summary answers as the zones do, after any sequence of writes (DuckDB and snapshots).

The reference is the same statistic with a bounding box around the whole world: a box needs
the zones, so it is answered from the zone table, while the plain filter uses the summary.
"""

from __future__ import annotations

import pytest

from forestguard import snapshots, stores
from forestguard.schema import GROUP_KEYS, Classification
from forestguard.stores import duckdb as duckdb_store
from forestguard.stores.base import ZoneFilter
from forestguard.stores.summary import SUMMARY_FINE_TABLE, SUMMARY_TABLE

pytestmark = pytest.mark.duckdb

WORLD = (-180.0, -90.0, 180.0, 90.0)
FILTERS = [
    ZoneFilter(),
    ZoneFilter(countries=("Brazil", "Peru")),
    ZoneFilter(year_from=2018, year_to=2021, classifications=(Classification.ILLEGAL,)),
    ZoneFilter(sources=("GLAD",), verified_only=True),
    ZoneFilter(min_confidence=0.85),  # on a threshold (PostGIS: the thresholds summary)
    ZoneFilter(min_confidence=0.826, countries=("Brazil",)),  # between thresholds: the fine summary
    ZoneFilter(countries=("Nowhere",)),
]
GROUPINGS = [(), ("classification",), ("year", "classification"), GROUP_KEYS]


def assert_summary_answers_as_the_zones(store) -> None:
    for where in FILTERS:
        for by in GROUPINGS:
            from_zones = store.aggregate(where.with_(bbox=WORLD), by)
            from_summary = store.aggregate(where, by)
            assert from_summary.astype(str).values.tolist() == from_zones.astype(str).values.tolist(), (where, by)


def summary_rows(url: str) -> int:
    with stores.open(url, read_only=True) as store:
        return store._cursor().execute(f"SELECT count(*) FROM {SUMMARY_FINE_TABLE}").fetchone()[0]


def test_the_summary_follows_every_load_and_its_folding(tmp_path, demo_small, monkeypatch):
    monkeypatch.setattr(duckdb_store, "_SUMMARY_SLACK_ROWS", 50)  # fold often
    url = str(tmp_path / "zones.duckdb")
    for part in range(4):
        with stores.open(url, create=True) as store:
            store.insert(demo_small.iloc[part * 500 : (part + 1) * 500])
    with stores.open(url, read_only=True) as store:
        assert store._summary_ok
        assert_summary_answers_as_the_zones(store)
        rows = store._cursor().execute(f"SELECT count(*), count(DISTINCT (country, year, classification, source, verified, confidence)) FROM {SUMMARY_FINE_TABLE}").fetchone()
    assert rows[0] < rows[1] + 60 + 500  # folded: at most the slack and the last load's rows repeat a combination


def test_a_store_whose_summary_is_missing_or_out_of_step_is_rebuilt_when_opened_to_write(tmp_path, demo_small):
    url = str(tmp_path / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
        store._cursor().execute(f"DELETE FROM {SUMMARY_TABLE} WHERE country = 'Brazil'")  # as a lost write would leave it
    with stores.open(url, read_only=True) as store:
        assert not store._summary_ok  # read-only: statistics read the zones instead, still right
        assert_summary_answers_as_the_zones(store)
    with stores.open(url) as store:
        assert store._summary_ok
    with stores.open(url, read_only=True) as store:
        assert store._summary_ok
        assert_summary_answers_as_the_zones(store)
    with stores.open(url) as store:
        store._cursor().execute(f"DROP TABLE {SUMMARY_FINE_TABLE}")  # a store made before the summaries existed
        store._cursor().execute(f"DROP TABLE {SUMMARY_TABLE}")
    with stores.open(url) as store:
        assert store._summary_ok
    assert summary_rows(url) > 0
    with stores.open(url, read_only=True) as store:
        assert_summary_answers_as_the_zones(store)


def test_a_summary_of_another_layout_is_made_again(tmp_path, demo_small):
    url = str(tmp_path / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
        store._cursor().execute(f"ALTER TABLE {SUMMARY_TABLE} RENAME COLUMN area_cents TO area_ha")  # an earlier layout
    with stores.open(url, read_only=True) as store:
        assert not store._summary_ok
        assert_summary_answers_as_the_zones(store)  # from the zones meanwhile
    with stores.open(url) as store:
        assert store._summary_ok
        assert_summary_answers_as_the_zones(store)


def test_a_snapshot_makes_its_summary_in_memory_and_answers_the_same(tmp_path, demo_duckdb):
    with stores.open(demo_duckdb, read_only=True) as store:
        manifest = snapshots.create(store, tmp_path / "snapshots")
        expected = {by: store.aggregate(ZoneFilter(countries=("Brazil",)), by).astype(str).values.tolist() for by in GROUPINGS}
    with stores.open(f"snapshot:{manifest.location}") as snapshot:
        assert not snapshot._summary_ok
        assert_summary_answers_as_the_zones(snapshot)
        assert snapshot._summary_ok
        for by, rows in expected.items():
            assert snapshot.aggregate(ZoneFilter(countries=("Brazil",)), by).astype(str).values.tolist() == rows
