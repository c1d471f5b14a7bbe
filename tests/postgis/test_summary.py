"""The statistics summary on PostGIS: every writer keeps it exact (its triggers), loads fold it.

The reference is the same statistic with a bounding box around the world, which PostGIS answers
from the zone table; the plain filter is answered from the summary.
"""

from __future__ import annotations

import psycopg
import pytest

from forestguard import stores
from forestguard.stores.summary import SUMMARY_FINE_TABLE
from forestguard.stores.postgis import _SUMMARY_IN_STEP as SUMMARY_IN_STEP
from forestguard.stores.postgis import load as load_module
from tests.stores.test_summary import assert_summary_answers_as_the_zones

pytestmark = pytest.mark.postgis


def test_loads_and_folding_keep_the_summary_exact(zones_db, demo_small, monkeypatch):
    monkeypatch.setattr(load_module, "SUMMARY_SLACK_ROWS", 50)
    for part in range(3):
        with stores.open(zones_db, create=True) as store:
            store.insert(demo_small.iloc[part * 600 : (part + 1) * 600])
    with stores.open(zones_db) as store:
        assert_summary_answers_as_the_zones(store)
    with psycopg.connect(zones_db) as con:
        rows, combinations = con.execute(
            f"SELECT count(*), count(DISTINCT (country, year, classification, source, verified, confidence)) FROM {SUMMARY_FINE_TABLE}").fetchone()
    assert rows <= combinations + 50 + 600


def test_writes_from_outside_forestguard_keep_the_summary_exact(zones_db, demo_small):
    with stores.open(zones_db, create=True) as store:
        store.insert(demo_small)
    with psycopg.connect(zones_db, autocommit=True) as con:
        con.execute("UPDATE deforestation_zones SET classification = 'Illégale', verified = true WHERE country = 'Peru'")
        con.execute("UPDATE deforestation_zones SET confidence = NULL, source = 'legacy' WHERE id % 7 = 0")
        con.execute("DELETE FROM deforestation_zones WHERE year = 2017")
        con.execute("INSERT INTO deforestation_zones (country, year, area_ha, geometry) "
                    "SELECT country, 2030, area_ha, geometry FROM deforestation_zones WHERE id % 5 = 0")
        # An insert by another writer is not summed: statistics read the zones until ForestGuard's next load.
        assert not con.execute(SUMMARY_IN_STEP).fetchone()[0]
        with con.transaction():  # a rolled-back write adds nothing
            con.execute("DELETE FROM deforestation_zones WHERE country = 'Brazil'")
            raise psycopg.Rollback()
    with stores.open(zones_db) as store:
        assert_summary_answers_as_the_zones(store)
        assert int(store.aggregate(stores.ZoneFilter(year_from=2030), ()).iloc[0]["zones"]) > 0
    with stores.open(zones_db, create=True) as store:
        store.insert(demo_small.iloc[:10])  # rebuilds the summaries from the zones
    with psycopg.connect(zones_db, autocommit=True) as con:
        assert con.execute(SUMMARY_IN_STEP).fetchone()[0]
        con.execute("DELETE FROM deforestation_zones WHERE country = 'Peru'")  # summed by the trigger: still in step
        assert con.execute(SUMMARY_IN_STEP).fetchone()[0]
    with stores.open(zones_db) as store:
        assert_summary_answers_as_the_zones(store)
    with psycopg.connect(zones_db, autocommit=True) as con:
        con.execute("TRUNCATE deforestation_zones")
        assert con.execute(f"SELECT count(*) FROM {SUMMARY_FINE_TABLE}").fetchone()[0] == 0
