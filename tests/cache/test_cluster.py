"""Redis Cluster (ElastiCache cluster mode): the same cache, found from one node's URL.

A real three-master cluster on loopback (``redis_cluster``): the URL names one
node only, keys spread over the masters, a value and its stampede lock share a
slot, ``cache stats|clear`` see every master, and a killed master only makes
answers slower.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from forestguard.cache import KeySpace
from forestguard.cache.breaker import CircuitBreaker
from forestguard.cache.keys import hash_tag
from forestguard.cache.redis import RedisCache
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.cache.helpers import count_aggregates
from tests.cache.test_cli import forestguard
from tests.cache.test_stampede import REQUESTS as STAMPEDE, _held_computation, _stampede

COUNTRIES = ("Brazil", "Indonesia", "Peru", "Colombia", "Bolivia", "Congo")
ASKED = [(ZoneFilter(countries=(c,)), ("year", "classification")) for c in COUNTRIES] + [(ZoneFilter(), ("country",))]


def _answers(store, cache=None) -> list[dict]:
    return [statistics(store, where, by, cache=cache).to_dict() for where, by in ASKED]


def test_a_data_key_and_its_lock_share_one_hash_tag_whatever_the_names():
    keys = KeySpace("fg")
    for country in ("Brazil", "a{b}", "{}", "x}{y", "%7B"):
        for key in (keys.stats("s", ZoneFilter(countries=(country,)), ("year",), 1), keys.geojson(country, 1),
                    keys.agg(country, ["view"], 1)):
            tag = hash_tag(key)
            assert tag is not None and len(tag) == 16 and key.endswith("{" + tag + "}"), key
            assert hash_tag(keys.lock(key)) == tag
    # Escaping is one-to-one: names that differ only by braces never share a key.
    assert keys.geojson("a{b}", 1) != keys.geojson("a%7Bb%7D", 1)
    with pytest.raises(ValueError, match="hash tag"):
        keys.lock("fg:stats:untagged")


@pytest.mark.redis
def test_one_node_url_serves_a_cluster_with_the_same_numbers(redis_cluster, cache_prefix, demo_zone_store):
    expected = _answers(demo_zone_store)
    # The URL names the *last* node: any one is enough, the client finds the rest.
    cache = RedisCache(redis_cluster.nodes[-1].url, KeySpace(cache_prefix))
    aggregates = count_aggregates(demo_zone_store)

    assert _answers(demo_zone_store, cache) == expected
    computed = aggregates.calls
    assert _answers(demo_zone_store, cache) == expected
    assert aggregates.calls == computed, "the second round was answered from the cluster"
    assert cache.cluster is True and cache.counters()["errors"] == 0

    with redis_cluster.client() as raw:
        stored = [k.decode() for k in raw.scan_iter(match=f"{cache_prefix}:*")]
    assert len(stored) == len(ASKED)
    assert len({redis_cluster.node_of(k).port for k in stored}) >= 2, "keys spread over several masters"
    cache.close()


@pytest.mark.redis
def test_a_single_server_is_not_taken_for_a_cluster(redis_server, cache_prefix, demo_zone_store):
    cache = RedisCache(redis_server.url, KeySpace(cache_prefix))
    assert cache.cluster is None, "nothing is asked before first use"
    statistics(demo_zone_store, ZoneFilter(), ("year",), cache=cache)
    assert cache.cluster is False and cache.counters()["errors"] == 0
    cache.close()


@pytest.mark.redis
def test_stampede_across_clients_of_a_cluster_computes_once(redis_cluster, cache_prefix):
    # Generous timeouts: what is tested is the lock and the slots, not how fast a loaded machine
    # lets STAMPEDE clients discover the cluster at once (0.2 s timed out on a busy CI host).
    caches = [RedisCache(redis_cluster.url, KeySpace(cache_prefix), socket_timeout=5.0, connect_timeout=5.0) for _ in range(STAMPEDE)]
    key = KeySpace(cache_prefix).stats("scope", ZoneFilter(countries=("Brazil",)), ("year",), 1)
    compute, release = _held_computation()
    answers = _stampede(caches, key, compute, release)

    assert compute.calls == 1
    assert answers == [{"zones": 42, "rows": [1, 2, 3]}] * STAMPEDE
    assert sum(c.counters()["lock_waits"] for c in caches) == STAMPEDE - 1
    assert sum(c.counters()["errors"] for c in caches) == 0, "no CROSSSLOT or other refusal"
    with redis_cluster.client() as raw:
        assert raw.exists(caches[0].keys.lock(key)) == 0, "lock released"
    for cache in caches:
        cache.close()


@pytest.mark.redis
def test_cache_stats_and_clear_cover_every_master(redis_cluster, cache_prefix, demo_zone_store):
    env = {"REDIS_URL": redis_cluster.nodes[1].url, "FORESTGUARD_CACHE_PREFIX": cache_prefix}
    cache = RedisCache(redis_cluster.nodes[2].url, KeySpace(cache_prefix))
    _answers(demo_zone_store, cache)
    cache.close()  # publishes its counters
    with redis_cluster.client() as raw:
        stored = [k.decode() for k in raw.scan_iter(match=f"{cache_prefix}:stats:*")]
        raw.set(f"{cache_prefix}x:stats:{{other-deployment}}", b"1")
    assert len({redis_cluster.node_of(k).port for k in stored}) >= 2

    shown = forestguard("cache", "stats", "--format", "json", **env)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["cluster"], info["primaries"], info["keys_by_kind"].get("stats")) == (True, 3, len(ASKED))
    assert info["counters"]["misses"] == len(ASKED), "another process's counts are seen"
    node_memory = sum(redis.Redis(port=n.port).info("memory")["used_memory"] for n in redis_cluster.nodes)
    assert info["memory_used_bytes"] > node_memory / 2, "memory is summed over the masters"

    table = forestguard("cache", "stats", **env)
    assert table.returncode == 0 and "Redis Cluster of 3 primaries" in table.stdout, table.stdout

    cleared = forestguard("cache", "clear", "--format", "json", **env)
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["deleted"] == len(ASKED) + 1  # the entries and the shared counters
    with redis_cluster.client() as raw:
        assert list(raw.scan_iter(match=f"{cache_prefix}:*")) == []
        assert raw.get(f"{cache_prefix}x:stats:{{other-deployment}}") == b"1"
        raw.delete(f"{cache_prefix}x:stats:{{other-deployment}}")


@pytest.mark.redis
def test_a_master_killed_leaves_every_answer_correct(fresh_redis_cluster, cache_prefix, demo_zone_store):
    expected = _answers(demo_zone_store)
    cache = RedisCache(fresh_redis_cluster.url, KeySpace(cache_prefix), breaker=CircuitBreaker(threshold=3, cooldown=0.2))
    assert _answers(demo_zone_store, cache) == expected  # stored on every master

    # Kill a master that holds some of the entries, but not the node the URL names.
    with fresh_redis_cluster.client() as raw:
        stored = [k.decode() for k in raw.scan_iter(match=f"{cache_prefix}:*")]
    victim = next(fresh_redis_cluster.node_of(k) for k in stored if fresh_redis_cluster.node_of(k) is not fresh_redis_cluster.nodes[0])
    victim.kill()

    wrong: list[str] = []
    barrier = threading.Barrier(4)

    def ask(_: int) -> None:
        barrier.wait(timeout=30)
        for _ in range(5):
            if _answers(demo_zone_store, cache) != expected:
                wrong.append("differs")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, range(4)))  # any exception from a request is raised here
    assert wrong == []
    assert cache.counters()["errors"] >= 1, "the dead master was noticed"
    cache.close()
