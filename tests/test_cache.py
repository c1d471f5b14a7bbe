"""The cache in front of statistics: same numbers with and without it, versions, TTLs, prefixes.

Each test runs against the in-process cache and a real redis-server; the
expected numbers are always computed by the store with no cache at all.
"""

from __future__ import annotations

import re

import pytest

from forestguard import stores
from forestguard.cache import TTL_SECONDS, KeySpace, MemoryCache, default_cache, store_scope
from forestguard.errors import UserError
from forestguard.schema import Classification
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from tests.cache.helpers import ManualClock, count_aggregates

FILTERS = [
    (ZoneFilter(), ("country", "year", "classification")),
    (ZoneFilter(countries=("Brazil",), year_from=2020, year_to=2020), ("classification",)),
    (ZoneFilter(countries=("Brazil", "Peru"), year_from=2016, year_to=2022), ("country", "year")),
    (ZoneFilter(classifications=(Classification.ILLEGAL,), min_confidence=0.5), ("year",)),
    (ZoneFilter(verified_only=True), ()),
]


def test_statistics_are_the_same_with_and_without_the_cache(any_cache, demo_zone_store):
    expected = [statistics(demo_zone_store, where, by) for where, by in FILTERS]
    aggregates = count_aggregates(demo_zone_store)

    cold = [statistics(demo_zone_store, where, by, cache=any_cache) for where, by in FILTERS]
    warm = [statistics(demo_zone_store, where, by, cache=any_cache) for where, by in FILTERS]

    assert [s.to_dict() for s in cold] == [s.to_dict() for s in expected]
    assert [s.to_dict() for s in warm] == [s.to_dict() for s in expected]
    assert aggregates.calls == len(FILTERS), "the warm pass must not query the store"
    counters = any_cache.counters()
    assert (counters["hits_by_kind"]["stats"], counters["misses_by_kind"]["stats"]) == (len(FILTERS), len(FILTERS))
    assert counters["errors"] == 0


def test_an_ingest_is_never_hidden_by_an_old_entry(any_cache, demo_duckdb, demo_small):
    where, by = ZoneFilter(countries=("Brazil",)), ("year",)
    with stores.open(demo_duckdb) as store:
        before = statistics(store, where, by, cache=any_cache)
        old_key = any_cache.keys.stats(store_scope(store), where, by, before.data_version)
        store.insert(demo_small.iloc[:300])
        after = statistics(store, where, by, cache=any_cache)
        expected = statistics(store, where, by)

    assert after.to_dict() == expected.to_dict()
    assert after.data_version == before.data_version + 1
    assert sum(r["zones"] for r in after.rows) > sum(r["zones"] for r in before.rows)
    assert any_cache.remaining_ttl(old_key) is not None, "the old entry stays and ages out; it is just never asked for"


@pytest.mark.redis
def test_ttls_and_key_form_follow_the_design(redis_server, cache_prefix, demo_zone_store):
    from forestguard.cache.redis import RedisCache

    cache = RedisCache(redis_server.url, KeySpace(cache_prefix))
    where = ZoneFilter(countries=("Brazil",), year_from=2020, year_to=2020)
    stats = statistics(demo_zone_store, where, ("classification",), cache=cache)
    cache.geojson("Brazil", stats.data_version, lambda: '{"type": "FeatureCollection", "features": []}')
    cache.cached_array("map", ["view"], stats.data_version, lambda: __import__("numpy").zeros((4, 4)))
    cache.session_set("ana@example.org", {"country": "Brazil"})

    raw = redis_server.client()
    keys = sorted(k.decode() for k in raw.scan_iter(match=f"{cache_prefix}:*"))
    by_kind = {k.split(":")[1]: k for k in keys}
    assert set(by_kind) == {"stats", "geojson", "agg", "session"}, keys
    assert re.fullmatch(rf"{cache_prefix}:stats:Brazil:2020:v{stats.data_version}:\{{[0-9a-f]{{16}}\}}", by_kind["stats"])
    assert re.fullmatch(rf"{cache_prefix}:geojson:Brazil:v{stats.data_version}:\{{[0-9a-f]{{16}}\}}", by_kind["geojson"])
    assert by_kind["session"] == f"{cache_prefix}:session:ana@example.org"
    for kind, key in by_kind.items():
        ttl = raw.ttl(key)
        assert TTL_SECONDS[kind] - 5 <= ttl <= TTL_SECONDS[kind], (kind, ttl)
    assert (TTL_SECONDS["stats"], TTL_SECONDS["geojson"], TTL_SECONDS["session"]) == (1800, 3600, 86400)
    cache.close()


def test_several_countries_and_year_ranges_have_readable_keys():
    keys = KeySpace("fg")
    many = keys.stats("s", ZoneFilter(countries=("Peru", "Brazil"), year_from=2016, year_to=2022), ("year",), 3)
    every = keys.stats("s", ZoneFilter(), ("year",), 3)
    open_range = keys.stats("s", ZoneFilter(year_from=2018), ("year",), 3)
    assert many.startswith("fg:stats:Brazil,Peru:2016-2022:v3:")
    assert every.startswith("fg:stats:*:*:v3:")
    assert open_range.startswith("fg:stats:*:2018-:v3:")
    other_group = keys.stats("s", ZoneFilter(), ("country",), 3)
    other_store = keys.stats("t", ZoneFilter(), ("year",), 3)
    assert len({every, other_group, other_store}) == 3, "group keys and store are part of the key"


def test_memory_entries_expire_after_their_ttl(demo_zone_store):
    clock = ManualClock()
    cache = MemoryCache(KeySpace("fg"), clock=clock)
    aggregates = count_aggregates(demo_zone_store)
    statistics(demo_zone_store, ZoneFilter(), ("year",), cache=cache)
    clock.advance(TTL_SECONDS["stats"] - 1)
    statistics(demo_zone_store, ZoneFilter(), ("year",), cache=cache)
    assert aggregates.calls == 1
    clock.advance(2)
    statistics(demo_zone_store, ZoneFilter(), ("year",), cache=cache)
    assert aggregates.calls == 2, "an expired entry is recomputed"


def test_memory_cache_is_a_bounded_lru():
    cache = MemoryCache(KeySpace("fg"), max_entries=3)
    for name in "abcd":
        cache.get_or_compute(f"fg:stats:{name}", 60, lambda: name, str.encode, bytes.decode)
        if name == "c":
            cache.get_or_compute("fg:stats:a", 60, lambda: "recomputed", str.encode, bytes.decode)  # a is now recent
    assert cache.get_or_compute("fg:stats:a", 60, lambda: "recomputed", str.encode, bytes.decode) == "a"
    assert cache.get_or_compute("fg:stats:b", 60, lambda: "recomputed", str.encode, bytes.decode) == "recomputed"
    assert cache.evictions == 2


def test_a_corrupt_value_is_a_miss(any_cache, demo_zone_store):
    where, by = ZoneFilter(countries=("Brazil",)), ("year",)
    expected = statistics(demo_zone_store, where, by)
    key = any_cache.keys.stats(store_scope(demo_zone_store), where, by, expected.data_version)
    for garbage in (b"\x00not a value", b"FGS1z" + b"\xff" * 20, b'FGS1-{"engine": "duckdb"}'):
        any_cache._set(key, garbage, 60)
        assert statistics(demo_zone_store, where, by, cache=any_cache).to_dict() == expected.to_dict()
    assert any_cache.counters()["errors_by_reason"]["corrupt"] == 3
    aggregates = count_aggregates(demo_zone_store)
    assert statistics(demo_zone_store, where, by, cache=any_cache).to_dict() == expected.to_dict()
    assert aggregates.calls == 0, "the recomputed value replaced the corrupt one"


@pytest.mark.redis
def test_prefixes_isolate_deployments(redis_server, cache_prefix, demo_zone_store):
    from forestguard.cache.redis import RedisCache

    first, second = RedisCache(redis_server.url, KeySpace(cache_prefix + "a")), RedisCache(redis_server.url, KeySpace(cache_prefix + "b"))
    aggregates = count_aggregates(demo_zone_store)
    statistics(demo_zone_store, ZoneFilter(), ("year",), cache=first)
    statistics(demo_zone_store, ZoneFilter(), ("year",), cache=second)
    assert aggregates.calls == 2, "one prefix never answers from another's entries"

    raw = redis_server.client()
    raw.set(f"{cache_prefix}:foreign", b"keep")  # a key of someone sharing the Redis, under a prefix-like name
    assert first.clear() >= 1
    assert list(raw.scan_iter(match=f"{cache_prefix}a:*")) == []
    assert len(list(raw.scan_iter(match=f"{cache_prefix}b:*"))) >= 1
    assert raw.get(f"{cache_prefix}:foreign") == b"keep"
    first.close()
    second.close()


@pytest.mark.redis
def test_default_cache_follows_the_configuration(monkeypatch, redis_server):
    monkeypatch.delenv("REDIS_URL", raising=False)
    memory = default_cache()
    assert memory.backend == "memory" and default_cache() is memory, "one cache per process"

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("FORESTGUARD_CACHE_PREFIX", "fgdefault")
    shared = default_cache()
    assert shared.backend == "redis" and shared.keys.prefix == "fgdefault" and default_cache() is shared

    monkeypatch.setenv("FORESTGUARD_CACHE_PREFIX", "no:colons")
    with pytest.raises(UserError, match="prefix"):
        default_cache()
