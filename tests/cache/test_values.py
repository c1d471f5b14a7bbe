"""Dashboard values through the cache: map aggregates, GeoJSON, sessions; damaged values."""

from __future__ import annotations

import numpy as np
import pytest

from forestguard.cache import KeySpace, MemoryCache, codecs
from tests.cache.helpers import CallCounter


def test_a_map_aggregate_round_trips_through_the_cache(any_cache):
    """What the maps keep (forestguard.render): an aggregate's values as float32, one entry per data version."""
    values = np.random.default_rng(3).poisson(0.3, (48, 64, 3)).astype(np.float32)
    compute = CallCounter(lambda: values)
    parts = [(0, 1), (0, 1), 64, 48, "*|-|*|*|||"]
    first = any_cache.cached_array("map", parts, 7, compute)
    again = any_cache.cached_array("map", parts, 7, compute)
    np.testing.assert_array_equal(again, values)
    assert again.dtype == np.float32 and first is values and again is not values
    assert compute.calls == 1
    any_cache.cached_array("map", parts, 8, compute)
    assert compute.calls == 2, "a new data version is a new entry"


def test_plain_arrays_keep_dtype_shape_and_nan(any_cache):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    array[0, 0, 0] = np.nan
    any_cache.cached_array("density", ["v"], 1, lambda: array)
    cached = any_cache.cached_array("density", ["v"], 1, lambda: pytest.fail("recomputed"))
    assert cached.dtype == np.float32 and cached.shape == (2, 3, 4)
    np.testing.assert_array_equal(cached, array)


def test_geojson_and_sessions(any_cache):
    text = '{"type":"FeatureCollection","features":[{"properties":{"country":"Côte d\'Ivoire"}}]}'
    compute = CallCounter(lambda: text)
    assert any_cache.geojson("Côte d'Ivoire", 3, compute) == text
    assert any_cache.geojson("Côte d'Ivoire", 3, compute) == text
    assert compute.calls == 1

    assert any_cache.session_get("ana") is None
    assert any_cache.session_set("ana", {"country": "Brazil", "years": [2019, 2024], "note": "déjà vu"})
    assert any_cache.session_get("ana") == {"country": "Brazil", "years": [2019, 2024], "note": "déjà vu"}
    any_cache.session_delete("ana")
    assert any_cache.session_get("ana") is None
    counters = any_cache.counters()
    assert (counters["hits_by_kind"]["session"], counters["misses_by_kind"]["session"]) == (1, 2)


def test_every_truncation_of_a_value_is_detected():
    aggregate = np.random.default_rng(3).poisson(0.3, (48, 64, 3)).astype(np.float32)
    for blob in (codecs.encode_ndarray(aggregate), codecs.encode_json({"a": list(range(3000))})):
        decode = codecs.decode_ndarray if blob[2:3] == b"A" else codecs.decode_json
        decode(blob)
        for cut in (0, 3, 5, 40, len(blob) // 2, len(blob) - 1):
            with pytest.raises(codecs.CorruptValue):
                decode(blob[:cut])
    with pytest.raises(codecs.CorruptValue):
        codecs.decode_statistics(codecs.encode_json({"engine": "duckdb"}))  # right bytes, wrong type


def test_arrays_are_never_pickled():
    with pytest.raises(TypeError):
        codecs.encode_ndarray(np.array([{"code": "runs on load"}], dtype=object))


def test_a_value_too_large_is_answered_but_not_kept():
    cache = MemoryCache(KeySpace("fg"), max_bytes=1000)
    big = np.random.default_rng(0).random(1000)
    compute = CallCounter(lambda: big)
    for _ in range(2):
        np.testing.assert_array_equal(cache.cached_array("big", [], 1, compute), big)
    assert compute.calls == 2 and cache.counters()["too_large"] == 2
