"""A database outage must not freeze the server: probes stay fast, pages show a notice, all recovers.

A real PostgreSQL + PostGIS cluster of the test's own is stopped with ``pg_ctl`` under a
running ``forestguard serve`` and started again; nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from forestguard import stores
from tests.fixtures.services import stop_process, wait_until

from .conftest import start_server, stop_server

pytestmark = pytest.mark.postgis

NOTICE = "not available right now"


def _page_text(served) -> str:
    """What a visitor's page holds: the session's document, pulled as a browser would (websocket).

    On a thread of its own: Bokeh's client runs an event loop, and the test process may already
    have one running (Playwright's, when the browser tests ran first).
    """
    import panel.models  # noqa: F401 - the page is made of Panel models, which the client must know
    from bokeh.client import pull_session

    def pull() -> str:
        with pull_session(url=served.base + "/") as session:
            return " ".join(str(value) for model in session.document.models for value in model.properties_with_values().values())

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(pull).result(timeout=120)


#: Asks /healthz back to back until told to stop (a line on stdin) and it has 100 answers, and prints
#: the latencies: in its own process, as the load balancer is, so the test's page-loading threads do
#: not slow the measure.
_PROBE = """
import json, sys, threading, time, urllib.request
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
seconds, deadline = [], time.monotonic() + 60
print("probing", flush=True)
while not (stop.is_set() and len(seconds) >= 100) and time.monotonic() < deadline:
    started = time.perf_counter()
    with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:
        assert answer.status == 200
    seconds.append(time.perf_counter() - started)
print(json.dumps(seconds), flush=True)
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def test_database_outage_keeps_probes_fast_and_recovers(tmp_path, demo_small, own_postgis_server):
    from tests.fixtures.postgis import create_database

    database = own_postgis_server
    url = create_database(database.url())
    with stores.open(url, create=True) as store:
        store.insert(demo_small.iloc[:300])
    served = start_server(tmp_path, url)
    try:
        assert served.get("/")[0] == 200
        assert NOTICE not in _page_text(served)
        assert served.json("/readyz")[0] == 200

        database.stop()
        stopped = time.monotonic()
        first_503: list[float] = []

        def watch_readiness() -> None:
            while time.monotonic() - stopped < 30:
                if served.get("/readyz", timeout=10)[0] == 503:
                    first_503.append(time.monotonic() - stopped)
                    return

        watcher = threading.Thread(target=watch_readiness)
        watcher.start()
        probe = subprocess.Popen([sys.executable, "-c", _PROBE, served.base + "/healthz"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert probe.stdout.readline().strip() == "probing"
            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(lambda _: served.get("/", timeout=60), range(20)))
            watcher.join()
            probe.stdin.write("stop\n")
            probe.stdin.flush()
            latencies = json.loads(probe.stdout.readline())
        finally:
            stop_process(probe)
        assert len(latencies) >= 100

        assert _percentile(latencies, 0.99) <= 0.100, f"/healthz p99 {_percentile(latencies, 0.99) * 1000:.0f} ms during the outage"
        assert first_503 and first_503[0] <= 5.0, f"/readyz said 503 only after {first_503} s"
        for status, _, body in answers:  # a Bokeh page whose document holds the notice, or the static notice
            assert status == 200 or (status == 503 and NOTICE in body.decode()), (status, body[:200])
        page = _page_text(served)
        assert NOTICE in page
        # Visitors and probes are told what, never where.
        status, _, body = served.get("/readyz")
        stats_status, _, stats_body = served.get("/api/stats?by=")
        assert status == 503 and stats_status == 503
        for text in (body.decode(), stats_body.decode(), page, *(answer[2].decode() for answer in answers)):
            for secret in (str(database.port), url.rsplit("/", 1)[1], "postgres@", "postgresql://"):
                assert secret not in text, f"{secret!r} shown to visitors: {text[:300]}"
        assert json.loads(body)["checks"]["store"]["error"] == "the zone store is unreachable"
        assert str(database.port) in served.logs()  # the operator's details are in the log

        database.start(initialise=False)
        wait_until(lambda: served.json("/readyz")[0] == 200, timeout=30, what="readyz 200 again")
        wait_until(lambda: served.get("/api/stats?by=")[0] == 200, timeout=30, what="/api/stats again")
        assert NOTICE not in _page_text(served)
        assert served.process.poll() is None
    finally:
        stop_server(served)
