"""A process whose DATABASE_URL is a hot standby: it reads, refuses writes in one line, and
takes writes once the standby is promoted, without a restart; the data version never goes back.

Real streaming replication between two PostgreSQL 15 clusters on loopback (``replicated_postgis``).
"""

from __future__ import annotations

import json

import pytest

from forestguard import stores
from forestguard.cache import KeySpace, MemoryCache
from forestguard.errors import ReadOnlyStore
from forestguard.server import runtime
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from forestguard.stores.postgis import PostGISStore
from tests.postgis.helpers import fingerprint, forestguard

pytestmark = pytest.mark.postgis

ASKED = [(ZoneFilter(), ("year", "classification")), (ZoneFilter(countries=("Brazil",)), ("classification",))]


def _numbers(store) -> list[dict]:
    return [statistics(store, where, by).to_dict() for where, by in ASKED]


def _with_password(url: str) -> str:
    return url.replace("postgres@", "postgres:s3cret-pw@")  # the test clusters trust loopback: any password works


@pytest.fixture
def loaded(replicated_postgis, demo_small):
    """The pair with zones written on the primary after the standby started (streamed, not copied)."""
    with stores.open(replicated_postgis.primary_url, create=True) as primary:
        primary.insert(demo_small.head(300))
    replicated_postgis.wait_replayed()
    return replicated_postgis


@pytest.fixture
def server_on(monkeypatch):
    """Point the server's runtime at a store and read its readiness, as /readyz does."""

    def ready(url: str) -> dict:
        runtime.configure(runtime.ServerOptions(store_url=url))
        return runtime.readiness().to_dict()

    yield ready
    runtime.configure(runtime.ServerOptions())


def test_a_standby_answers_the_primarys_numbers(loaded, server_on):
    with stores.open(loaded.primary_url, read_only=True) as primary, stores.open(loaded.standby_url, read_only=True) as standby:
        assert standby.count() == primary.count() == 300
        expected = _numbers(primary)
        for mine, theirs in zip(_numbers(standby), expected):
            assert (mine["rows"], mine["data_version"]) == (theirs["rows"], theirs["data_version"])
        assert (primary.role(), standby.role()) == ("primary", "replica")
    shown = forestguard("db", "status", "--db", loaded.standby_url, "--format", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["role"] == "replica", shown.stderr

    ready = server_on(_with_password(loaded.standby_url))
    assert ready["status"] == "ready" and ready["checks"]["store"]["role"] == "replica"
    assert server_on(loaded.primary_url)["checks"]["store"]["role"] == "primary"


def test_every_write_to_a_standby_is_refused_in_one_line(loaded, demo_small, tmp_path):
    source = tmp_path / "more.geojson"
    demo_small.head(20).to_file(source, driver="GeoJSON")
    url = _with_password(loaded.standby_url)
    before = fingerprint(loaded.primary_url)
    for command in (("ingest", str(source), "--db", url), ("db", "upgrade", "--db", url), ("db", "init", "--db", url),
                    ("demo", "--zones", "50", "--append", "--db", url)):
        done = forestguard(*command)  # a timeout (nothing may hang) fails the test
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, (command, done.stderr)
        assert "is a read replica (hot standby)" in lines[0] and "must go to the primary" in lines[0], lines[0]
        assert "s3cret-pw" not in done.stderr and "postgres:***@127.0.0.1" in lines[0]
    loaded.wait_replayed()
    assert fingerprint(loaded.primary_url) == before == fingerprint(loaded.standby_url), "nothing was written anywhere"

    with PostGISStore(loaded.standby_url) as store:
        with pytest.raises(ReadOnlyStore, match="read replica"):
            store.insert(demo_small.head(3))


def test_promotion_takes_writes_without_a_restart_and_the_version_never_goes_back(loaded, demo_small, server_on):
    cache = MemoryCache(KeySpace("promotion"))
    store = PostGISStore(loaded.standby_url)  # one long-lived handle, as a server worker holds it
    seen = [store.data_version()]
    zones_before = statistics(store, ZoneFilter(), (), cache=cache).rows[0]["zones"]
    with pytest.raises(ReadOnlyStore):
        store.insert(demo_small.head(3))

    loaded.promote()
    seen.append(store.data_version())
    assert server_on(loaded.standby_url)["checks"]["store"]["role"] == "primary"
    # The old primary, still up, takes a write the promoted one never receives (lost in the failover):
    # it used the next version number.
    with PostGISStore(loaded.primary_url) as old:
        old.insert(demo_small.head(2))
        lost = old.data_version()
    assert lost == seen[-1] + 1

    assert store.insert(demo_small.iloc[10:13]) == 3  # the same handle: no reopen, no restart
    seen.append(store.data_version())
    assert seen == sorted(seen) and seen[-1] > lost, seen
    after = statistics(store, ZoneFilter(), (), cache=cache)
    assert after.data_version == seen[-1] and after.rows[0]["zones"] == zones_before + 3, "not an old cache entry"
    store.insert(demo_small.iloc[20:21])
    assert store.data_version() == seen[-1] + 1, "later writes add one, as before"
    store.close()
