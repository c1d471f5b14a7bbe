"""Soak: mixed load on one `forestguard serve` over PostGIS for a bounded time; RSS, p95 and errors over time.

Load, all on loopback, until ``--duration`` seconds have passed:

- dashboard sessions: real Bokeh client sessions (websocket, the document pulled, then closed)
  and plain page loads (``GET /``, sessions Bokeh discards unused), ``--sessions`` a minute;
- ``/api/stats`` with a random country and grouping, ``--stats-rps`` a second;
- an ingest of a fresh file of ``--ingest-zones`` zones every ``--ingest-every`` seconds
  (a CLI subprocess, as a scheduled task would), which moves the data version.

Every ``--interval`` seconds one line: elapsed, server RSS, p95 and count of each kind,
errors. A leak shows as RSS that keeps rising with the session count flat. There is no
peer here: it watches one server over time (``--duration 1800`` for the design's 30 min).

    python bench/bench_soak.py --duration 300 --ingest-every 60
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from common import ROOT, arguments
from bench_postgis import new_database, postgres

KINDS = ("session", "page", "stats", "ingest")


def _options(parser) -> None:
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default %(default)s)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between report lines")
    parser.add_argument("--sessions", type=float, default=20.0, help="dashboard sessions a minute (half websocket, half page loads)")
    parser.add_argument("--stats-rps", type=float, default=5.0, help="/api/stats requests a second")
    parser.add_argument("--ingest-every", type=float, default=300.0, help="seconds between ingests")
    parser.add_argument("--ingest-zones", type=int, default=1000)
    parser.add_argument("--admin-url", default=None, help="an existing PostgreSQL+PostGIS (default: a cluster of its own)")


class Recorder:
    """Latencies and errors per kind since the last report, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.last_error: dict[str, str] = {}

    def timed(self, kind: str, call) -> None:
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:  # counted, the load goes on
            with self.lock:
                self.errors[kind] += 1
                self.last_error[kind] = f"{type(exc).__name__}: {str(exc)[:120]}"
            return
        with self.lock:
            self.seconds[kind].append(time.perf_counter() - started)

    def take(self) -> tuple[dict[str, list[float]], dict[str, int]]:
        with self.lock:
            taken = (dict(self.seconds), dict(self.errors))
            self.seconds.clear()
            self.errors.clear()
        return taken


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def every(period: float, stop: threading.Event, work) -> None:
    """Call ``work`` about once a ``period`` (Poisson arrivals) until ``stop``."""
    while not stop.wait(random.expovariate(1.0 / period)):
        work()


def main() -> None:
    args = arguments(__doc__, zones=100_000, extra=_options)
    import panel.models  # noqa: F401 - the client must know Panel's models
    from bokeh.client import pull_session

    from forestguard import stores
    from forestguard.demo import DemoSpec, demo_zones
    from forestguard.stores.postgis.admin import init

    with postgres(args.admin_url) as admin_url, tempfile.TemporaryDirectory(prefix="fg-soak-") as scratch:
        url = new_database(admin_url)
        init(url)
        with stores.open(url, create=True) as store:
            store.insert(demo_zones(DemoSpec(zones=args.zones, seed=args.seed)))
        countries = sorted(stores.open(url, read_only=True).countries())
        port = 18000 + random.randrange(1000)
        log = open(Path(scratch) / "serve.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "forestguard", "serve", "--db", url, "--port", str(port), "--address", "127.0.0.1"],
                                  cwd=ROOT.parent, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit(f"the server did not start; see {log.name}")
                    time.sleep(0.2)
            record = Recorder()
            stop = threading.Event()
            ingests = [0]

            def session() -> None:
                with pull_session(url=base + "/") as s:
                    assert s.document.roots

            def page() -> None:
                urllib.request.urlopen(base + "/", timeout=60).read()

            def stats() -> None:
                query = f"?country={urllib.request.quote(random.choice(countries))}&by={random.choice(['year', 'classification', ''])}"
                urllib.request.urlopen(base + "/api/stats" + query, timeout=60).read()

            def ingest() -> None:
                ingests[0] += 1
                path = Path(scratch) / f"batch-{ingests[0]}.parquet"
                demo_zones(DemoSpec(zones=args.ingest_zones, seed=10_000 + ingests[0])).to_parquet(path)
                subprocess.run([sys.executable, "-m", "forestguard", "ingest", str(path), "--db", url], cwd=ROOT.parent, check=True,
                               capture_output=True, timeout=600)

            workers = [
                threading.Thread(target=every, args=(120.0 / args.sessions, stop, lambda: record.timed("session", session))),
                threading.Thread(target=every, args=(120.0 / args.sessions, stop, lambda: record.timed("page", page))),
                *(threading.Thread(target=every, args=(2.0 / args.stats_rps, stop, lambda: record.timed("stats", stats))) for _ in range(2)),
                threading.Thread(target=lambda: [record.timed("ingest", ingest) for _ in iter(lambda: stop.wait(args.ingest_every), True)]),
            ]
            for worker in workers:
                worker.start()
            started = time.monotonic()
            print(f"soak: {args.zones:,} zones on PostGIS, {args.duration:.0f} s, sessions {args.sessions:g}/min, "
                  f"/api/stats {args.stats_rps:g}/s, an ingest of {args.ingest_zones:,} every {args.ingest_every:g} s (figures under load)")
            print(f"{'t (s)':>6} {'RSS MB':>7}  " + "  ".join(f"{k + ' n/p95 ms':>18}" for k in KINDS) + "  errors")
            lines = []
            while time.monotonic() - started < args.duration:
                time.sleep(min(args.interval, max(0.0, args.duration - (time.monotonic() - started))))
                seconds, errors = record.take()
                row = {"t": round(time.monotonic() - started), "rss_mb": round(rss_mb(server.pid), 1)}
                cells = []
                for kind in KINDS:
                    values = seconds.get(kind, [])
                    p95 = statistics.quantiles(values, n=20)[-1] * 1000 if len(values) >= 2 else (values[0] * 1000 if values else float("nan"))
                    row[kind] = {"n": len(values), "p95_ms": round(p95, 1), "errors": errors.get(kind, 0)}
                    cells.append(f"{len(values):>6} / {p95:>9,.0f}")
                lines.append(row)
                print(f"{row['t']:>6} {row['rss_mb']:>7,.0f}  " + "  ".join(f"{c:>18}" for c in cells) + f"  {sum(errors.values())}", flush=True)
            stop.set()
            for worker in workers:
                worker.join(timeout=120)
            if record.last_error:
                print("last errors:", json.dumps(record.last_error))
            first, last = lines[0]["rss_mb"], lines[-1]["rss_mb"]
            print(f"RSS {first:,.0f} → {last:,.0f} MB over {lines[-1]['t']} s; ingests {ingests[0]}; "
                  f"errors {sum(r[k]['errors'] for r in lines for k in KINDS)}")
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
