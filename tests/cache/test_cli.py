"""`forestguard cache stats|clear` as operators run it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.services import free_port

def forestguard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FORESTGUARD_CACHE_PREFIX")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "forestguard", *args], capture_output=True, text=True, env=environment, timeout=120
    )


@pytest.mark.redis
def test_stats_counts_every_process_and_clear_keeps_foreign_keys(redis_server, cache_prefix, demo_duckdb):
    env = {"REDIS_URL": redis_server.url, "FORESTGUARD_CACHE_PREFIX": cache_prefix}
    first = forestguard("stats", "--db", demo_duckdb, "--by", "year", "--format", "json", **env)
    second = forestguard("stats", "--db", demo_duckdb, "--by", "year", "--format", "json", **env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)

    shown = forestguard("cache", "stats", "--format", "json", **env)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["backend"], info["prefix"], info["keys"], info["keys_by_kind"].get("stats")) == ("redis", cache_prefix, 1, 1)
    assert (info["counters"]["hits"], info["counters"]["misses"]) == (1, 1), "both CLI processes' counts are shared"
    assert info["memory_used_bytes"] > 0

    raw = redis_server.client()
    raw.set(f"{cache_prefix}x:stats:other-deployment", b"1")
    raw.set("unprefixed", b"1")
    cleared = forestguard("cache", "clear", "--format", "json", **env)
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["deleted"] >= 2  # the entry and the shared counters
    assert list(raw.scan_iter(match=f"{cache_prefix}:*")) == []
    assert raw.get(f"{cache_prefix}x:stats:other-deployment") == b"1" and raw.get("unprefixed") == b"1"
    raw.delete(f"{cache_prefix}x:stats:other-deployment", "unprefixed")

    table = forestguard("cache", "stats", **env)
    assert table.returncode == 0 and "keys         0" in table.stdout, table.stdout


def test_unreachable_redis_is_one_line_without_the_password():
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    for command in (("cache", "stats"), ("cache", "clear")):
        result = forestguard(*command, REDIS_URL=url)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr


def test_in_process_backend_and_usage_errors():
    memory = forestguard("cache", "stats", "--format", "json")
    assert memory.returncode == 0 and json.loads(memory.stdout)["backend"] == "memory"
    assert forestguard("cache", "clear").returncode == 0
    assert forestguard("cache", "stats", FORESTGUARD_CACHE_PREFIX="a:b").returncode == 1
    assert forestguard("cache", "stats", REDIS_URL="localhost:6379").returncode == 1
    assert forestguard("cache", "stats", "--format", "yaml").returncode == 2
