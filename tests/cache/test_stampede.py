"""Stampede protection: many concurrent misses of one key compute once.

The computation is held until every request has missed (observed through
the misses counter, polled with a deadline), so the test cannot pass by
luck of scheduling; all requests start together from a Barrier.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from forestguard.cache import KeySpace, codecs
from tests.cache.helpers import CallCounter
from tests.fixtures.services import wait_until

REQUESTS = 50


def _stampede(caches: list[Any], key: str, compute: Callable[[], Any], release: threading.Event) -> list[Any]:
    """REQUESTS requests of ``key`` at once (request i uses caches[i % len]); the answers."""
    barrier = threading.Barrier(REQUESTS)

    def request(i: int) -> Any:
        barrier.wait(timeout=30)
        return caches[i % len(caches)].get_or_compute(key, 60, compute, codecs.encode_json, codecs.decode_json)

    with ThreadPoolExecutor(REQUESTS) as pool:
        futures = [pool.submit(request, i) for i in range(REQUESTS)]
        wait_until(lambda: sum(c.counters()["misses"] for c in caches) == REQUESTS, timeout=30, what="every request to miss")
        release.set()
        return [f.result(timeout=30) for f in futures]


def _held_computation() -> tuple[CallCounter, threading.Event]:
    release = threading.Event()

    def compute() -> dict[str, Any]:
        assert release.wait(timeout=30), "never released"
        return {"zones": 42, "rows": [1, 2, 3]}

    return CallCounter(compute), release


def test_concurrent_misses_in_one_process_compute_once(any_cache):
    compute, release = _held_computation()
    key = f"{any_cache.keys.prefix}:stats:{{stampede}}"
    answers = _stampede([any_cache], key, compute, release)

    assert compute.calls == 1
    assert answers == [{"zones": 42, "rows": [1, 2, 3]}] * REQUESTS
    assert len({id(a) for a in answers}) == REQUESTS, "every caller gets its own copy"
    assert any_cache.counters()["coalesced"] == REQUESTS - 1


@pytest.mark.redis
def test_concurrent_misses_across_processes_compute_once(redis_server, cache_prefix):
    """Fifty independent clients (as fifty processes would have) share only the Redis lock."""
    from forestguard.cache.redis import RedisCache

    caches = [RedisCache(redis_server.url, KeySpace(cache_prefix)) for _ in range(REQUESTS)]
    compute, release = _held_computation()
    answers = _stampede(caches, f"{cache_prefix}:stats:{{stampede}}", compute, release)

    assert compute.calls == 1
    assert answers == [{"zones": 42, "rows": [1, 2, 3]}] * REQUESTS
    assert sum(c.counters()["lock_waits"] for c in caches) == REQUESTS - 1
    assert redis_server.client().exists(caches[0].keys.lock(f"{cache_prefix}:stats:{{stampede}}")) == 0, "lock released"
    for cache in caches:
        cache.close()


@pytest.mark.redis
def test_a_lock_left_by_a_dead_holder_only_delays(redis_server, cache_prefix):
    """A process that died holding the lock stores nothing; waiters compute once it expires."""
    from forestguard.cache.redis import RedisCache

    cache = RedisCache(redis_server.url, KeySpace(cache_prefix))
    key = f"{cache_prefix}:stats:{{orphan}}"
    redis_server.client().set(cache.keys.lock(key), b"dead-holder", px=300)
    compute = CallCounter(lambda: {"fresh": True})

    assert cache.get_or_compute(key, 60, compute, codecs.encode_json, codecs.decode_json) == {"fresh": True}
    assert compute.calls == 1 and cache.counters()["lock_waits"] == 1
    assert redis_server.client().exists(key) == 1
    cache.close()


def test_a_failed_computation_reaches_every_waiter_and_is_not_cached(any_cache):
    release = threading.Event()

    def failing() -> Any:
        assert release.wait(timeout=30)
        raise RuntimeError("store unreachable")

    compute = CallCounter(failing)
    key = f"{any_cache.keys.prefix}:stats:{{failing}}"
    with pytest.raises(RuntimeError, match="store unreachable"):
        _stampede([any_cache], key, compute, release)
    assert compute.calls == 1

    recovered = CallCounter(lambda: {"ok": 1})
    assert any_cache.get_or_compute(key, 60, recovered, codecs.encode_json, codecs.decode_json) == {"ok": 1}
    assert recovered.calls == 1, "the failure was not cached"
