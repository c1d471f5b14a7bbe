"""Migrations: the seed DDL verbatim, applied in order once, adoption of an existing database."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psycopg
import pytest

import forestguard
from forestguard.errors import StoreNotFound, UserError
from forestguard.schema import POSTGIS_DDL, SCHEMA_VERSION
from forestguard.stores.postgis import PostGISStore
from forestguard.stores.postgis.admin import init, status, upgrade
from forestguard.stores.postgis.migrations import available

from .helpers import fingerprint, scalar

pytestmark = pytest.mark.postgis

MIGRATIONS = Path(forestguard.__file__).parent / "migrations"

_CATALOG = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'deforestation_zones'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


def catalog(url: str) -> dict:
    """The zone table as the server describes it: columns, constraints, indexes."""
    with psycopg.connect(url) as con:
        return {
            "columns": con.execute(_CATALOG).fetchall(),
            "constraints": sorted(con.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'deforestation_zones'::regclass"
            ).fetchall()),
            "indexes": sorted(con.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'deforestation_zones'"
            ).fetchall()),
        }


def seed_database(url: str, rows: int = 3) -> None:
    """A database as the original infrastructure built it: the DDL, some rows, no ForestGuard."""
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE EXTENSION postgis")
        con.execute(POSTGIS_DDL)
        for i in range(rows):
            con.execute(
                "INSERT INTO deforestation_zones (country, classification, area_ha, year, geometry) "
                "VALUES (%s, %s, %s, %s, ST_GeomFromText(%s, 4326))",
                ["Brazil", "Illégale", 10.5 + i, 2020, f"POLYGON(({i} 0, {i} 1, {i + 1} 1, {i} 0))"],
            )


def test_first_migration_is_the_seed_ddl_verbatim_and_meta_matches_the_schema_version():
    first = available()[0]
    assert (first.version, first.name) == (1, "deforestation_zones")
    assert POSTGIS_DDL in first.sql
    second = (MIGRATIONS / "0002_data_version.sql").read_text()
    assert re.search(rf"\('schema_version', {SCHEMA_VERSION}\)", second), "0002 must record schema.SCHEMA_VERSION"
    assert [m.version for m in available()] == sorted({m.version for m in available()})


def test_init_creates_everything_once_and_is_idempotent(postgis_url):
    first = init(postgis_url)
    assert first.applied == [m.label for m in available()] and first.adopted_zones is None
    recorded = scalar(postgis_url, "SELECT array_agg(version ORDER BY version) FROM forestguard_migrations")
    assert recorded == [m.version for m in available()]
    before = catalog(postgis_url)

    again = init(postgis_url)
    assert again.applied == []
    assert upgrade(postgis_url).applied == []
    assert catalog(postgis_url) == before
    info = status(postgis_url)
    assert info.healthy and info.zones == 0 and info.data_version == 0 and info.postgis_version.startswith("3.")
    assert scalar(postgis_url, "SELECT value FROM forestguard_meta WHERE key = 'schema_version'") == SCHEMA_VERSION

    on_replica = status(postgis_url + "?options=-c%20default_transaction_read_only%3Don")  # a hot standby refuses writes alike
    assert on_replica.zone_table_problems == ["not checked: the server is read-only (a replica?); check on the primary"]
    assert on_replica.pending == [] and on_replica.zones == 0


def test_concurrent_inits_apply_each_migration_once(postgis_url):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            init(postgis_url)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert scalar(postgis_url, "SELECT count(*) FROM forestguard_migrations") == len(available())


def test_an_existing_seed_database_is_adopted_unchanged_and_works(postgis_url, demo_small):
    seed_database(postgis_url, rows=3)
    before = catalog(postgis_url)
    rows_before = scalar(postgis_url, "SELECT md5(string_agg(z::text, '|' ORDER BY id)) FROM deforestation_zones z")

    with pytest.raises(UserError, match="never initialised"):
        PostGISStore(postgis_url)
    result = init(postgis_url)
    assert result.adopted_zones == 3 and len(result.applied) == len(available())
    assert catalog(postgis_url) == before, "init must not alter the seed table"
    assert scalar(postgis_url, "SELECT md5(string_agg(z::text, '|' ORDER BY id)) FROM deforestation_zones z") == rows_before

    with PostGISStore(postgis_url) as store:
        assert store.count() == 3
        store.insert(demo_small.head(10))
        assert store.count() == 13 and store.data_version() == 1
    assert catalog(postgis_url) == before


def test_a_table_that_is_not_the_seed_is_refused_and_left_alone(postgis_url):
    with psycopg.connect(postgis_url, autocommit=True) as con:
        con.execute("CREATE EXTENSION postgis")
        con.execute("CREATE TABLE deforestation_zones (id SERIAL PRIMARY KEY, country TEXT, area_ha REAL)")
    with pytest.raises(UserError, match=r"not the seed table.*column area_ha is real, the DDL says numeric\(10,2\)"):
        init(postgis_url)
    assert scalar(postgis_url, "SELECT to_regclass('forestguard_migrations') IS NULL")
    assert "column year is missing" in status(postgis_url).zone_table_problems


def test_upgrade_needs_init_and_status_reports_pending_and_modified(postgis_url):
    with pytest.raises(UserError, match="db init"):
        upgrade(postgis_url)
    with pytest.raises(StoreNotFound, match="db init"):
        PostGISStore(postgis_url)
    init(postgis_url)
    with psycopg.connect(postgis_url, autocommit=True) as con:
        con.execute("UPDATE forestguard_migrations SET checksum = 'edited' WHERE version = 1")
        con.execute("DELETE FROM forestguard_migrations WHERE version = 2")
    info = status(postgis_url)
    assert info.modified == ["0001_deforestation_zones"] and info.pending == ["0002_data_version"]
    assert not info.healthy
    with pytest.raises(UserError, match="needs migrations 0002_data_version"):
        PostGISStore(postgis_url)
    assert upgrade(postgis_url).applied == ["0002_data_version"]  # re-applying 0002 is safe: it is idempotent SQL


def test_every_writer_bumps_the_data_version_and_a_rollback_bumps_nothing(zones_db, demo_small):
    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(5))
    start = fingerprint(zones_db).data_version
    with psycopg.connect(zones_db) as con:  # a legacy writer that knows nothing of ForestGuard
        con.execute("UPDATE deforestation_zones SET verified = true WHERE id = (SELECT min(id) FROM deforestation_zones)")
    assert fingerprint(zones_db).data_version == start + 1
    with psycopg.connect(zones_db) as con:
        con.execute("DELETE FROM deforestation_zones WHERE id = (SELECT min(id) FROM deforestation_zones)")
        con.rollback()
    assert fingerprint(zones_db).data_version == start + 1
    with psycopg.connect(zones_db) as con:
        con.execute("TRUNCATE deforestation_zones")
    assert fingerprint(zones_db).data_version == start + 2
