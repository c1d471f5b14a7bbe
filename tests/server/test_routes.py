"""forestguard serve as a subprocess: health, readiness, metrics, the stats API and auth."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forestguard import stores
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.fixtures.services import wait_until

from .conftest import server_env, start_server, stop_server

pytestmark = pytest.mark.duckdb


def test_healthz_is_fast_and_touches_nothing(server):
    started = time.perf_counter()
    status, headers, body = server.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert time.perf_counter() - started < 0.5
    assert headers.get("X-Request-ID")


@pytest.mark.parametrize(
    "query, where, by",
    [
        ("", ZoneFilter(), ("country", "year", "classification")),
        ("?country=Brazil&by=year", ZoneFilter(countries=("Brazil",)), ("year",)),
        ("?country=Brazil&country=Peru&from=2018&to=2021&by=country,classification",
         ZoneFilter(countries=("Brazil", "Peru"), year_from=2018, year_to=2021), ("country", "classification")),
        ("?classification=Ill%C3%A9gale&verified_only=true&min_confidence=0.8&by=",
         ZoneFilter(classifications=(Classification.ILLEGAL,), verified_only=True, min_confidence=0.8), ()),
        ("?year=2020&source=GLAD&by=classification", ZoneFilter(year_from=2020, year_to=2020, sources=("GLAD",)), ("classification",)),
    ],
)
def test_api_stats_equals_statistics(server, query, where, by):
    status, body = server.json("/api/stats" + query)
    with stores.open(server.db, read_only=True) as store:
        expected = statistics(store, where, by).to_dict()
    assert status == 200
    assert body == expected and body["rows"]


def test_api_stats_equals_the_cli_json(server):
    status, body = server.json("/api/stats?country=Indonesia&by=year,classification")
    assert status == 200 and body == json.loads(server.cli("stats", "--country", "Indonesia", "--by", "year,classification", "--format", "json"))


@pytest.mark.parametrize(
    "query, message",
    [
        ("?year=twenty", "year must be a whole number"),
        ("?by=region", "region"),
        ("?classification=maybe", "not legal or illegal"),
        ("?from=2022&to=2019", "after"),
        ("?year=2020&from=2019", "cannot be combined"),
        ("?min_confidence=2", "between 0 and 1"),
        ("?verified_only=perhaps", "true or false"),
        ("?countries=Brazil", "unknown parameter"),
    ],
)
def test_bad_parameters_are_400_json(server, query, message):
    status, body = server.json("/api/stats" + query)
    assert status == 400 and message in body["error"] and body["request_id"]


def test_metrics_parse_and_count_requests(server):
    server.get("/healthz")
    server.get("/api/stats?by=year")
    status, headers, body = server.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["forestguard_http_requests"].samples if s.name.endswith("_total")}
    assert requests[("/healthz", "200")] >= 2 and requests[("/api/stats", "200")] >= 1
    latency = [s for s in families["forestguard_http_request_duration_seconds"].samples if s.name.endswith("_count") and s.labels["route"] == "/api/stats"]
    assert latency and latency[0].value >= 1
    assert "forestguard_sessions_active" in families and "forestguard_render_duration_seconds" in families
    cache = {(s.labels["outcome"], s.labels["kind"]): s.value for s in families["forestguard_cache_requests"].samples if s.name.endswith("_total")}
    assert cache[("miss", "stats")] >= 1


def test_readyz_follows_the_store_without_a_restart(tmp_path, served_store):
    db = tmp_path / "ready.duckdb"
    shutil.copy(served_store, db)
    served = start_server(tmp_path, str(db))
    try:
        status, body = served.json("/readyz")
        assert status == 200 and body["checks"]["store"]["ok"]
        away = tmp_path / "elsewhere.duckdb"
        db.rename(away)
        wait_until(lambda: served.json("/readyz")[0] == 503, timeout=20, what="readyz 503")
        status, body = served.json("/readyz")
        # Probes are told what, not where: the path is in the log only.
        assert body["status"] == "unavailable" and body["checks"]["store"]["error"] == "the zone store does not exist (yet)"
        assert str(db) not in json.dumps(body) and "no store at" in served.logs()
        assert served.get("/healthz")[0] == 200  # liveness does not depend on the store
        away.rename(db)
        wait_until(lambda: served.json("/readyz")[0] == 200, timeout=20, what="readyz 200 again")
        assert served.process.poll() is None
    finally:
        stop_server(served)


def test_auth_refuses_unauthenticated_requests(tmp_path, served_store):
    served = start_server(tmp_path, served_store, "--basic-auth", "s3cret-pass", "--cookie-secret", "x" * 32)
    try:
        status, headers, _ = served.get("/")
        assert status in (302, 401, 403) and (status != 302 or "/login" in headers["Location"])
        status, body = served.json("/api/stats")
        assert status == 401 and body["error"] == "authentication required"
        assert served.get("/healthz")[0] == 200  # the load balancer's probe needs no login
        assert served.get("/login")[0] == 200
    finally:
        stop_server(served)


def test_unknown_store_fails_fast_with_one_line(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    done = subprocess.run([sys.executable, "-m", "forestguard", "serve", "--db", str(tmp_path / "missing.duckdb"), "--port", "0"],
                          cwd=ROOT, env=server_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip().startswith("error: no store at") and len(done.stderr.strip().splitlines()) == 1


def test_default_store_not_yet_created_is_live_but_not_ready(tmp_path):
    """A fresh container (no --db, no DATABASE_URL, empty data folder) must pass the ALB probe."""
    served = start_server(tmp_path, None)
    try:
        status, body = served.json("/readyz")
        assert served.get("/healthz")[0] == 200
        assert status == 503 and body["checks"]["store"]["error"] == "the zone store does not exist (yet)"
        assert "Traceback" not in served.logs()
    finally:
        stop_server(served)


def test_several_workers_share_metrics(tmp_path, served_store):
    served = start_server(tmp_path, served_store, "--num-procs", "2")
    try:
        for _ in range(6):
            assert served.get("/healthz")[0] == 200
        families = {f.name: f for f in text_string_to_metric_families(served.get("/metrics")[2].decode())}
        total = sum(s.value for s in families["forestguard_http_requests"].samples if s.labels.get("route") == "/healthz" and s.name.endswith("_total"))
        assert total >= 6  # whichever worker answered, /metrics sums both
    finally:
        stop_server(served)


def test_readyz_follows_postgis_stop_and_start(tmp_path, demo_small, own_postgis_server):
    """With PostGIS: stopping the database gives 503, starting it again 200, same server process."""
    from tests.fixtures import postgis as pg

    database = own_postgis_server
    url = pg.create_database(database.url())
    with stores.open(url, create=True) as store:
        store.insert(demo_small.iloc[:200])
    served = start_server(tmp_path, url)
    try:
        assert served.json("/readyz")[0] == 200
        database.stop()
        wait_until(lambda: served.json("/readyz")[0] == 503, timeout=30, what="readyz 503")
        database.start(initialise=False)
        wait_until(lambda: served.json("/readyz")[0] == 200, timeout=30, what="readyz 200 again")
        assert served.process.poll() is None and served.json("/api/stats?by=")[0] == 200
    finally:
        stop_server(served)


def test_a_store_over_the_memory_budget_is_refused_at_start_in_one_line(tmp_path, demo_small):
    """20,000 zones against FORESTGUARD_MEMORY_MB=1 (map rows for ~14,000): refused with the reason, not served into an OOM kill."""
    import subprocess
    import sys

    from forestguard import stores
    from forestguard.render.layer import LAYER_SHARE, ROW_BYTES

    from .conftest import ROOT

    db = str(tmp_path / "big.duckdb")
    with stores.open(db, create=True) as store:
        store.insert_batches([demo_small] * 10, rows=10 * len(demo_small))
    assert 2**20 * LAYER_SHARE / ROW_BYTES < 20_000
    done = subprocess.run([sys.executable, "-m", "forestguard", "serve", "--db", db, "--port", "0"],
                          cwd=ROOT, env=server_env(tmp_path, FORESTGUARD_MEMORY_MB="1"), capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "20,000 zones need" in lines[0] and "FORESTGUARD_MEMORY_MB=1" in lines[0]
