"""`forestguard db …` as operators run it, and the backup → drop → restore drill."""

from __future__ import annotations

import json
import psycopg
import pytest

from forestguard import stores
from forestguard.stats import statistics
from forestguard.stores.postgis.backup import pg_tool
from tests.fixtures.postgis import create_database, drop_database
from tests.fixtures.services import free_port, unavailable

from .helpers import fingerprint, forestguard

pytestmark = pytest.mark.postgis


@pytest.fixture
def pg_client_tools() -> None:
    try:
        pg_tool("pg_dump"), pg_tool("pg_restore")
    except Exception as exc:  # noqa: BLE001 - the message names the package
        unavailable(str(exc))


def over_tls(url: str, server) -> str:
    """The URL as production writes it (verify-full), when the test server speaks TLS."""
    if server is None or server.certificate is None:
        return url
    return f"{url}?sslmode=verify-full&sslrootcert={server.certificate}"


def test_init_status_upgrade_from_the_command_line(postgis_url):
    status = forestguard("db", "status", "--db", postgis_url, "--check")
    assert status.returncode == 1 and "not initialised" in status.stdout
    upgrade = forestguard("db", "upgrade", "--db", postgis_url)
    assert upgrade.returncode == 1 and upgrade.stderr.startswith("error: ") and "db init" in upgrade.stderr

    first = forestguard("db", "init", "--db", postgis_url)
    from forestguard.stores.postgis.migrations import available

    labels = [m.label for m in available()]
    assert labels[:7] == ["0001_deforestation_zones", "0002_data_version", "0003_data_version_timeline", "0004_load_records",
                          "0005_zone_summary", "0006_areas_and_alerts", "0007_reference_layers_and_evidence"]
    assert first.returncode == 0 and f"applied {', '.join(labels)}" in first.stdout, first.stderr
    again = forestguard("db", "init", "--db", postgis_url)
    assert again.returncode == 0 and "up to date" in again.stdout

    shown = forestguard("db", "status", "--format", "json", "--check", DATABASE_URL=postgis_url)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    info = json.loads(shown.stdout)
    assert info["healthy"] and info["pending"] == [] and info["zones"] == 0 and info["zone_table_problems"] == []
    assert [m["migration"] for m in info["applied"]] == labels


def test_command_line_errors_are_one_line_and_never_show_the_password():
    unreachable = f"postgresql://fg:s3cret-pw@127.0.0.1:{free_port()}/zones?connect_timeout=3"
    for command in (("db", "status"), ("stats",)):
        result = forestguard(*command, "--db", unreachable)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "s3cret-pw" not in result.stderr, result.stderr
    wrong = forestguard("db", "status", "--db", "zones.duckdb")
    assert wrong.returncode == 2 and "not a PostgreSQL URL" in wrong.stderr
    missing = forestguard("db", "status")
    assert missing.returncode == 2 and "DATABASE_URL" in missing.stderr


def test_backup_drop_restore_gives_the_same_statistics(postgis_server, postgis_admin_url, zones_db, demo_small, tmp_path, pg_client_tools):
    with stores.open(zones_db, create=True) as store:
        store.insert(demo_small)
        before = statistics(store, by=("country", "year", "classification")).rows
        version_before = store.data_version()
    backup = tmp_path / "backups" / "zones.dump"

    made = forestguard("db", "backup", "--db", over_tls(zones_db, postgis_server), "--out", str(backup))
    assert made.returncode == 0, made.stderr
    assert backup.stat().st_size > 0 and f"backed up {len(demo_small):,} zones" in made.stdout
    assert [p.name for p in backup.parent.iterdir()] == ["zones.dump"], "no temporary file left behind"

    name = psycopg.conninfo.conninfo_to_dict(zones_db)["dbname"]
    drop_database(postgis_admin_url, zones_db)
    create_database(postgis_admin_url, name)  # an empty database, as a fresh RDS instance would have

    restored = forestguard("db", "restore", str(backup), "--db", over_tls(zones_db, postgis_server))
    assert restored.returncode == 0, restored.stderr
    with stores.open(zones_db) as store:
        assert statistics(store, by=("country", "year", "classification")).rows == before
        assert store.data_version() > version_before, "caches filled since the backup must not be reused"
        version_restored = store.data_version()
    assert forestguard("db", "status", "--db", zones_db, "--check").returncode == 0

    with stores.open(zones_db, create=True) as store:  # the version trigger came back with the table
        store.insert(demo_small.head(5))
        assert store.data_version() == version_restored + 1


def test_restore_refuses_a_damaged_archive_or_a_database_in_use(zones_db, demo_small, tmp_path, pg_client_tools):
    with stores.open(zones_db, create=True) as store:
        store.insert(demo_small.head(100))
    backup = tmp_path / "zones.dump"
    assert forestguard("db", "backup", "--db", zones_db, "--out", str(backup)).returncode == 0
    before = fingerprint(zones_db)

    busy = forestguard("db", "restore", str(backup), "--db", zones_db)
    assert busy.returncode == 1 and "--clean" in busy.stderr

    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    broken = forestguard("db", "restore", str(damaged), "--db", zones_db, "--clean")
    assert broken.returncode == 1 and len(broken.stderr.strip().splitlines()) == 1
    assert fingerprint(zones_db) == before

    replaced = forestguard("db", "restore", str(backup), "--db", zones_db, "--clean")
    assert replaced.returncode == 0, replaced.stderr
    after = fingerprint(zones_db)
    assert (after.rows, after.content_md5, after.indexes) == (before.rows, before.content_md5, before.indexes)


def test_backup_of_an_unreachable_database_leaves_no_file(tmp_path, pg_client_tools):
    out = tmp_path / "never.dump"
    result = forestguard("db", "backup", "--db", f"postgresql://fg@127.0.0.1:{free_port()}/zones?connect_timeout=3", "--out", str(out))
    assert result.returncode == 1 and not out.exists() and list(tmp_path.iterdir()) == []


def test_an_archive_without_zones_is_refused_before_anything_happens(postgis_url, zones_db, tmp_path, pg_client_tools):
    from forestguard.errors import UserError
    from forestguard.stores.postgis.backup import backup, restore

    foreign = backup(postgis_url, tmp_path / "other-app.dump")  # some other database's dump
    assert foreign.zones == 0 and foreign.data_version is None
    before = fingerprint(zones_db)
    with pytest.raises(UserError, match="holds no deforestation_zones table"):
        restore(foreign.path, zones_db, clean=True)
    assert fingerprint(zones_db) == before
