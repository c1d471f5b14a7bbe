"""Statistics through the cache: cold (DuckDB, PostGIS) against warm (Redis hit), and the hit rate of a dashboard mix.

Latency: the same 1,000 dashboard-like statistics requests (country × year ×
view) answered by the store with no cache (cold), then from Redis after one
pass filled it (warm) — p50/p95 of each. The warm figure is the whole
``statistics()`` call (it asks the store for its data version, then Redis);
the Redis round trip + decode alone is printed too. Target: Redis hit p95 ≤ 2 ms.

Hit rate: a replayed request mix — 30 % the default view (all countries, the
latest year), the rest Zipf over countries (by demo weight) × years (recent ones
more often) × four views — with a few ingests in between, each of which bumps the
data version and so starts every key afresh (design target > 80 %).

The benchmark starts its own redis-server on a free loopback port. PostGIS cold
figures need FORESTGUARD_BENCH_DATABASE_URL (a PostGIS store holding demo data).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np

from common import demo_store, arguments as common_arguments

from forestguard import stores
from forestguard.cache import KeySpace, MemoryCache, codecs, store_scope
from forestguard.cache.redis import RedisCache
from forestguard.config import redact
from forestguard.demo import COUNTRY_WEIGHTS, YEARS, DemoSpec, demo_zones
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

Request = tuple[ZoneFilter, tuple[str, ...]]
T = TypeVar("T")

VIEWS: list[Callable[[str, int], Request]] = [
    lambda c, y: (ZoneFilter(countries=(c,), year_from=y, year_to=y), ("classification",)),
    lambda c, y: (ZoneFilter(countries=(c,)), ("year", "classification")),
    lambda c, y: (ZoneFilter(countries=(c,), year_from=y, year_to=y, classifications=(Classification.ILLEGAL,), min_confidence=0.8), ()),
    lambda c, y: (ZoneFilter(countries=(c,), year_from=y - 4, year_to=y, verified_only=True), ("year",)),
]
DEFAULT_VIEW: Request = (ZoneFilter(year_from=int(YEARS[-1]), year_to=int(YEARS[-1])), ("country", "classification"))


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per latency figure")
    parser.add_argument("--mix", type=int, default=5000, help="requests in the replayed dashboard mix")
    parser.add_argument("--ingests", type=int, default=3, help="ingests spread over the mix")


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port: its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise SystemExit("redis-server is not installed (Debian package redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="fg-bench-redis-") as workdir:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            import redis

            deadline = time.monotonic() + 20
            while True:
                try:
                    if redis.Redis(port=port, socket_timeout=1).ping():
                        break
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait()


def latencies(items: Sequence[T], answer: Callable[[T], object]) -> np.ndarray:
    """Seconds each ``answer(item)`` took."""
    times = np.empty(len(items))
    for i, item in enumerate(items):
        started = time.perf_counter()
        answer(item)
        times[i] = time.perf_counter() - started
    return times


def line(title: str, times: np.ndarray) -> str:
    p50, p95 = np.percentile(times, [50, 95]) * 1000
    return f"{title:<50} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms"


def latency_requests(n: int, rng: np.random.Generator) -> list[Request]:
    countries = list(COUNTRY_WEIGHTS)
    return [
        VIEWS[rng.integers(len(VIEWS))](countries[rng.integers(len(countries))], int(rng.choice(YEARS[4:])))
        for _ in range(n)
    ]


def dashboard_mix(n: int, rng: np.random.Generator) -> list[Request]:
    countries = sorted(COUNTRY_WEIGHTS, key=COUNTRY_WEIGHTS.get, reverse=True)
    country_p = 1 / np.arange(1, len(countries) + 1) ** 1.1
    years = YEARS[::-1]  # most recent first
    year_p = 1 / np.arange(1, len(years) + 1) ** 1.2
    mix: list[Request] = []
    for _ in range(n):
        if rng.random() < 0.3:
            mix.append(DEFAULT_VIEW)
            continue
        country = countries[rng.choice(len(countries), p=country_p / country_p.sum())]
        year = int(years[rng.choice(len(years), p=year_p / year_p.sum())])
        mix.append(VIEWS[rng.integers(len(VIEWS))](country, year))
    return mix


def cold_and_warm(url: str, redis_url: str, requests: list[Request]) -> None:
    with stores.open(url, read_only=True) as store:
        statistics(store, *requests[0])  # extension loaded, file pages cached
        cold = latencies(requests, lambda r: statistics(store, *r))
        print(line(f"cold: {store.engine} (no cache)", cold))

        cache = RedisCache(redis_url, KeySpace("bench"))
        memory = MemoryCache(KeySpace("bench"))
        for request in requests:
            statistics(store, *request, cache=cache)
            statistics(store, *request, cache=memory)
        warm = latencies(requests, lambda r: statistics(store, *r, cache=cache))
        warm_memory = latencies(requests, lambda r: statistics(store, *r, cache=memory))
        version, scope = store.data_version(), store_scope(store)
        keys = [cache.keys.stats(scope, where, by, version) for where, by in requests]
        redis_only = latencies(
            keys, lambda key: cache.get_or_compute(key, 60, _never, codecs.encode_statistics, codecs.decode_statistics)
        )
        version_only = latencies(requests[:200], lambda r: store.data_version())
        print(line("warm: Redis hit, whole statistics() call", warm))
        print(line("  of which Redis GET + decode", redis_only))
        print(line("  of which the store's data_version()", version_only))
        print(line("warm: in-process cache hit, statistics()", warm_memory))
        hits = cache.counters()
        assert hits["errors"] == 0 and hits["hits"] >= 2 * len(requests), hits
        whole, redis_part = (float(np.percentile(t, 95) * 1000) for t in (warm, redis_only))
        print(f"target Redis hit p95 ≤ 2 ms: whole call {whole:.2f} ms ({'met' if whole <= 2 else 'NOT met'}), "
              f"Redis part {redis_part:.2f} ms ({'met' if redis_part <= 2 else 'NOT met'}); "
              f"cold/warm p50 ×{np.median(cold) / np.median(warm):,.0f}")
        cache.close()


def _never() -> object:
    raise AssertionError("a warm request computed")


def postgis_cold(requests: list[Request]) -> None:
    url = os.environ.get("FORESTGUARD_BENCH_DATABASE_URL")
    if not url:
        print("cold: postgis                                       skipped (set FORESTGUARD_BENCH_DATABASE_URL)")
        return
    try:
        with stores.open(url, read_only=True) as store:
            statistics(store, *requests[0])
            print(line(f"cold: postgis ({redact(url)})", latencies(requests, lambda r: statistics(store, *r))))
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not crash
        print(f"cold: postgis                                       skipped ({type(exc).__name__}: {redact(str(exc))[:200]})")


def replay(url: str, redis_url: str, mix: list[Request], ingests: int, seed: int) -> None:
    """Replay the mix against a copy of the store, ingesting a small batch at evenly spaced points."""
    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        copy = Path(tmp) / "replay.duckdb"
        shutil.copyfile(url, copy)
        cache = RedisCache(redis_url, KeySpace("replay"))
        batches = [demo_zones(DemoSpec(zones=200, seed=seed + 1 + i)) for i in range(ingests)]
        ingest_at = {round(len(mix) * (i + 1) / (ingests + 1)): batch for i, batch in enumerate(batches)}
        segment_hits, segments = cache.counters()["hits"], []
        started = time.perf_counter()
        with stores.open(str(copy)) as store:
            for i, request in enumerate(mix):
                if i in ingest_at:
                    store.insert(ingest_at[i])
                    hits = cache.counters()["hits"]
                    segments.append(hits - segment_hits)
                    segment_hits = hits
                statistics(store, *request, cache=cache)
        elapsed = time.perf_counter() - started
        counters = cache.counters()
        segments.append(counters["hits"] - segment_hits)
        rate = counters["hits"] / (counters["hits"] + counters["misses"])
        distinct = len({(w.key(), b) for w, b in mix})
        print(f"dashboard mix: {len(mix):,} requests ({distinct:,} distinct), {ingests} ingest(s) in between: "
              f"hit rate {rate:.1%} (design target > 80 %: {'met' if rate > 0.8 else 'NOT met'}); "
              f"{elapsed:.1f} s in all")
        bounds = [0, *sorted(ingest_at), len(mix)]
        sizes = np.diff(bounds)
        # Every key's first request after an ingest must miss: no cache can beat this ceiling.
        first_requests = sum(len({(w.key(), b) for w, b in mix[a:z]}) for a, z in zip(bounds, bounds[1:]))
        print(f"  ceiling for this mix (only first requests after each ingest miss): {1 - first_requests / len(mix):.1%}")
        print("  hit rate between ingests: " + ", ".join(f"{h / n:.1%}" for h, n in zip(segments, sizes)))
        cache.close()


def main() -> None:
    args = common_arguments(__doc__, extra=_options)
    url = demo_store(args.zones, args.seed)
    rng = np.random.default_rng(args.seed)
    requests = latency_requests(args.requests, rng)
    print(f"\n{args.zones:,} demo zones; {len(requests):,} requests per latency figure "
          f"({len({(w.key(), b) for w, b in requests}):,} distinct)")
    with redis_server() as redis_url:
        cold_and_warm(url, redis_url, requests)
        postgis_cold(requests)
        replay(url, redis_url, dashboard_mix(args.mix, rng), args.ingests, args.seed)


if __name__ == "__main__":
    main()
