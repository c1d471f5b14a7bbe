"""Redis down, slow or full: slower answers, never wrong or failed ones.

Every test has a redis-server of its own (``fresh_redis``) that it kills
(SIGKILL), pauses (SIGSTOP: connections accepted, nothing answered) or fills.
Connection attempts are counted at the socket level of redis-py, independently
of the cache's own counters.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from forestguard.cache import KeySpace
from forestguard.breaker import CircuitBreaker
from forestguard.cache.redis import RedisCache
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.cache.helpers import CallCounter, ManualClock
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.redis

REQUESTS = [
    (ZoneFilter(), ("year",)),
    (ZoneFilter(countries=("Brazil",)), ("year", "classification")),
    (ZoneFilter(countries=("Indonesia",), year_from=2018, year_to=2021), ("classification",)),
    (ZoneFilter(classifications=(Classification.LEGAL,)), ("country",)),
]


@pytest.fixture
def expected(demo_zone_store):
    """The answers computed with no cache at all."""
    return [statistics(demo_zone_store, where, by).to_dict() for where, by in REQUESTS]


@pytest.fixture
def connection_attempts(monkeypatch: pytest.MonkeyPatch) -> CallCounter:
    """Every socket connect redis-py makes (its private ``_connect``: the one place sockets open)."""
    original = redis.connection.Connection._connect
    attempts = CallCounter(original)
    monkeypatch.setattr(redis.connection.Connection, "_connect", lambda self: attempts(self))
    return attempts


def _ask_all(cache: RedisCache, store, expected: list[dict]) -> None:
    for (where, by), answer in zip(REQUESTS, expected):
        assert statistics(store, where, by, cache=cache).to_dict() == answer


def test_redis_killed_in_the_middle_of_a_run(fresh_redis, cache_prefix, demo_zone_store, expected):
    cache = RedisCache(fresh_redis.url, KeySpace(cache_prefix), breaker=CircuitBreaker(threshold=3, cooldown=0.2))
    done, wrong, failed = [0], [], []
    lock, stop = threading.Lock(), threading.Event()

    def worker(offset: int) -> None:
        i = offset
        while not stop.is_set():
            where, by = REQUESTS[i % len(REQUESTS)]
            try:
                answer = statistics(demo_zone_store, where, by, cache=cache).to_dict()
            except Exception as exc:  # noqa: BLE001 - the test counts any failure
                failed.append(repr(exc))
            else:
                if answer != expected[i % len(REQUESTS)]:
                    wrong.append((where, by))
            with lock:
                done[0] += 1
            i += 1

    with ThreadPoolExecutor(4) as pool:
        for offset in range(4):
            pool.submit(worker, offset)
        wait_until(lambda: done[0] >= 40, timeout=30, what="requests before the kill")
        fresh_redis.kill()
        killed_at = done[0]
        wait_until(lambda: done[0] >= killed_at + 60, timeout=30, what="requests while Redis is dead")
        fresh_redis.start()
        wait_until(lambda: fresh_redis.client().dbsize() > 0, timeout=30, what="the cache to use Redis again")
        stop.set()

    assert failed == [] and wrong == []
    counters = cache.counters()
    assert counters["errors_by_reason"].get("connection", 0) >= 1
    assert cache.breaker.opened >= 1
    assert counters["hits"] > 0
    cache.close()


def test_the_circuit_opens_and_closes_when_redis_is_back(fresh_redis, cache_prefix, demo_zone_store, expected, connection_attempts):
    clock = ManualClock()
    cache = RedisCache(fresh_redis.url, KeySpace(cache_prefix), breaker=CircuitBreaker(threshold=3, cooldown=5, clock=clock))
    _ask_all(cache, demo_zone_store, expected)
    fresh_redis.kill()

    _ask_all(cache, demo_zone_store, expected)
    assert cache.breaker.state == "open"
    attempts_when_opened = connection_attempts.calls
    for _ in range(5):
        _ask_all(cache, demo_zone_store, expected)
    assert connection_attempts.calls == attempts_when_opened, "an open circuit must not reconnect per request"

    fresh_redis.start()
    _ask_all(cache, demo_zone_store, expected)
    assert fresh_redis.client().dbsize() == 0, "still open: Redis not asked before the cooldown"
    clock.advance(5)
    _ask_all(cache, demo_zone_store, expected)
    assert cache.breaker.state == "closed"
    assert fresh_redis.client().dbsize() >= len(REQUESTS), "closed again: values are stored"
    assert cache.counters()["bypassed"] > 0
    cache.close()


def test_a_hung_redis_costs_a_few_timeouts_not_one_per_request(fresh_redis, cache_prefix, demo_zone_store, expected, connection_attempts):
    cache = RedisCache(fresh_redis.url, KeySpace(cache_prefix), breaker=CircuitBreaker(threshold=3, cooldown=60))
    _ask_all(cache, demo_zone_store, expected)
    fresh_redis.pause()
    try:
        slowest = 0.0
        for _ in range(5):
            started = time.perf_counter()
            _ask_all(cache, demo_zone_store, expected)
            slowest = max(slowest, time.perf_counter() - started)
        attempts = connection_attempts.calls
        _ask_all(cache, demo_zone_store, expected)
    finally:
        fresh_redis.resume()
    assert cache.counters()["errors_by_reason"].get("timeout", 0) >= 1
    assert cache.breaker.state == "open"
    assert connection_attempts.calls == attempts
    # Three 0.2 s timeouts open the circuit; redis-py's defaults (5 s, 10 retries) would take minutes.
    assert slowest < 3.0, f"a pass over {len(REQUESTS)} requests took {slowest:.2f} s against a hung Redis"
    cache.close()


def test_a_dead_redis_is_warned_about_once_per_interval_without_its_password(fresh_redis, cache_prefix, demo_zone_store, expected, caplog):
    fresh_redis.client().config_set("requirepass", "s3cret-pw")
    url = fresh_redis.url.replace("redis://", "redis://:s3cret-pw@")
    cache = RedisCache(url, KeySpace(cache_prefix), breaker=CircuitBreaker(threshold=1, cooldown=0.01), warn_interval=3600)
    _ask_all(cache, demo_zone_store, expected)
    fresh_redis.kill()
    with caplog.at_level(logging.WARNING, logger="forestguard.cache"):
        for _ in range(20):
            _ask_all(cache, demo_zone_store, expected)
    warnings = [r.getMessage() for r in caplog.records if r.name == "forestguard.cache"]
    assert cache.counters()["errors"] >= 2, "several failures happened"
    assert 1 <= len(warnings) <= 2, warnings  # one for the failure, one for the circuit opening
    assert all("s3cret-pw" not in w for w in warnings) and any("***" in w for w in warnings)
    cache.close()


def test_a_full_redis_still_answers_and_still_serves_hits(fresh_redis, cache_prefix, demo_zone_store, expected):
    cache = RedisCache(fresh_redis.url, KeySpace(cache_prefix))
    warm_where, warm_by = REQUESTS[0]
    statistics(demo_zone_store, warm_where, warm_by, cache=cache)
    raw = fresh_redis.client()
    raw.config_set("maxmemory-policy", "noeviction")
    raw.config_set("maxmemory", 1)  # below what is used: every write is refused with OOM

    _ask_all(cache, demo_zone_store, expected)
    counters = cache.counters()
    assert counters["errors_by_reason"].get("oom", 0) >= 1
    assert cache.breaker.state == "closed", "a full Redis is reachable: reads go on"
    assert counters["hits_by_kind"]["stats"] == 1, "the value stored before it filled up is still served"
    assert raw.dbsize() == 1
    cache.close()
