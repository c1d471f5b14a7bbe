"""Areas on PostGIS: the same numbers as DuckDB to the last bit, saved areas and the outbox in the ingest's transaction."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import shapely

from forestguard import snapshots, stores
from forestguard.alerts.deliver import deliver_due
from forestguard.alerts.records import Delivery
from forestguard.alerts.watch import start_watching
from forestguard.areas import Area
from forestguard.demo import DemoSpec, demo_zones
from forestguard.schema import GROUP_KEYS
from forestguard.stats import statistics, statistics_by_area
from forestguard.stores.base import ZoneFilter

from ..areas.conftest import area_cutting
from ..areas.helpers import assert_rows_match, reference_rows

pytestmark = pytest.mark.postgis

BY = [combo for n in range(len(GROUP_KEYS) + 1) for combo in itertools.combinations(GROUP_KEYS, n)]
SMALL = shapely.box(-56, -6, -55, -5)


@pytest.fixture(scope="module")
def zones():
    return demo_zones(DemoSpec(zones=4_000, seed=2024))


@pytest.fixture(scope="module")
def engines(zones, postgis_admin_url, postgis_template, tmp_path_factory):
    from tests.fixtures.postgis import create_database, drop_database

    duck = str(Path(tmp_path_factory.mktemp("areas-parity")) / "zones.duckdb")
    pg = create_database(postgis_admin_url, template=postgis_template)
    for url in (duck, pg):
        with stores.open(url, create=True) as store:
            store.insert(zones)
    try:
        with stores.open(duck, read_only=True) as d, stores.open(pg) as p:
            yield d, p
    finally:
        drop_database(postgis_admin_url, pg)


def test_area_statistics_are_identical_in_both_engines_and_match_the_reference(engines, zones):
    duck, pg = engines
    cut = area_cutting(zones)
    where = ZoneFilter(area=Area.of("cut", cut), year_from=2017)
    assert duck.count(where) == pg.count(where) > 200
    assert duck.zones_arrow(where, ["id"]).equals(pg.zones_arrow(where, ["id"]))
    for by in BY:
        pd.testing.assert_frame_equal(duck.aggregate(where, by), pg.aggregate(where, by), obj=str(by))  # exact decimals
        rows = statistics(pg, where, by).rows
        assert rows == statistics(duck, where, by).rows
        assert_rows_match(rows, reference_rows(zones[zones["year"] >= 2017], cut, by), by)


def test_plots_are_identical_in_both_engines(engines):
    duck, pg = engines
    plots = [Area.of(f"P{i}", shapely.box(-60 + i, -10 + i / 2, -58 + i, -8 + i / 2)) for i in range(12)] + [Area.of("sea", shapely.box(-30, -30, -29, -29))]
    left = statistics_by_area(duck, plots, ZoneFilter(), ("year", "classification"))
    right = statistics_by_area(pg, plots, ZoneFilter(), ("year", "classification"))
    assert left.rows == right.rows and len({r["id"] for r in left.rows}) == 13


def test_saved_areas_go_through_the_migration_and_into_snapshots(zones_db, demo_small, tmp_path):
    name = "Reserva '; DROP TABLE forestguard_areas; -- <i>"
    with stores.open(zones_db, create=True) as store:
        store.insert(demo_small)
        saved = store.save_area(Area(name, Area.of(name, SMALL).wkb, sha256="ab" * 32, source="r.gpkg"))
        assert saved == Area.of(name, SMALL) and saved.added_at is not None and saved.added_at.tzinfo is not None
        with pytest.raises(Exception, match="already saved"):
            store.save_area(Area.of(name, SMALL))
        store.save_area(Area.of(name, shapely.box(-57, -7, -55, -5)), replace=True)
        [listed] = store.saved_areas()
        assert listed.name == name and listed.bbox == (-57.0, -7.0, -55.0, -5.0) and listed.source == ""
        assert store.saved_area_names() == [name]
        stats = statistics(store, ZoneFilter(area=store.saved_area(name)), ("year",))
        manifest = snapshots.create(store, tmp_path / "snaps")
    assert manifest.areas is not None and snapshots.verify(manifest.location).id == manifest.id
    with snapshots.open(manifest.location) as snap:
        [carried] = snap.saved_areas()
        assert snap.saved_area_names() == [name]
        assert carried == listed and carried.name == name and carried.added_at == listed.added_at
        assert statistics(snap, ZoneFilter(area=snap.saved_area(name)), ("year",)).rows == stats.rows
        assert snap.watches() == [] and snap.deliveries() == []
        with pytest.raises(Exception, match="read-only"):
            snap.save_area(Area.of("x", SMALL))
    with psycopg.connect(zones_db) as con:
        assert con.execute("SELECT GeometryType(geometry), ST_SRID(geometry) FROM forestguard_areas").fetchone() == ("MULTIPOLYGON", 4326)


def test_the_outbox_row_commits_and_rolls_back_with_the_zones(zones_db, demo_small, monkeypatch):
    monkeypatch.setenv("FORESTGUARD_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("FG_HOOK_SECRET", "x")
    watched = shapely.box(-60, -12, -50, -2)
    inside = demo_small[shapely.intersects(demo_small.geometry.values, watched)]
    assert len(inside) >= 5
    with stores.open(zones_db, create=True) as store:
        store.save_area(Area.of("W", watched))
        start_watching(store, "W", "http://127.0.0.1:9/hook", "FG_HOOK_SECRET")

        def failing():
            yield inside
            raise RuntimeError("the source broke after the zones were sent")

        with pytest.raises(RuntimeError):
            store.insert_batches(failing(), rows=len(inside))
        assert store.count() == 0 and store.deliveries() == [] and store.last_alerts == 0
        store.insert(inside)
        assert store.last_alerts == 1
        [delivery] = store.deliveries()
        assert delivery.status == "pending" and delivery.data_version == store.data_version()
        assert f'"new_zones":{len(inside)}' in delivery.body


def test_concurrent_deliverers_never_send_one_delivery_twice(zones_db, monkeypatch):
    monkeypatch.setenv("FG_HOOK_SECRET", "x")
    now = datetime.now(timezone.utc)
    with stores.open(zones_db, create=True) as store:
        store.save_area(Area.of("W", SMALL))
        with psycopg.connect(zones_db) as con:
            from forestguard.stores.postgis.areas import write_outbox

            write_outbox(con, [Delivery(f"00000000-0000-0000-0000-{i:012d}", "W", "http://x.invalid/", "FG_HOOK_SECRET", 1, "{}", now, next_attempt_at=now)
                               for i in range(40)])
            con.commit()
    sent: list[str] = []
    lock = threading.Lock()

    def post(delivery, key):
        with lock:
            sent.append(delivery.id)
        return 204

    def run():
        with stores.open(zones_db) as own:
            deliver_due(own, post=post, limit=10)
            deliver_due(own, post=post, limit=10)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 40
    with stores.open(zones_db) as store:
        assert {d.status for d in store.deliveries(limit=100)} == {"delivered"}
        assert deliver_due(store, post=post, now=now + timedelta(days=1), waiting_too=True).summary().startswith("delivered 0")
