"""cache stats | clear: look at and empty this deployment's cache (only its prefix)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..cache import default_cache
from ..cache.keys import DATA_KINDS

format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


@click.group("cache")
def cache_group() -> None:
    """The statistics/map cache: Redis when REDIS_URL is set, in-process otherwise.

    \b
    Example:
      forestguard cache stats --format json
      FORESTGUARD_CACHE_PREFIX=staging forestguard cache clear
    """


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n:,} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


def _table(info: dict[str, Any]) -> str:
    counters = info["counters"]
    looked_up = counters["hits"] + counters["misses"]
    rate = f"{counters['hits'] / looked_up:.1%}" if looked_up else "-"
    data = ", ".join(f"{kind} {n:,}" for kind, n in info["keys_by_kind"].items() if kind in DATA_KINDS) or "none"
    other = ", ".join(f"{kind} {n:,}" for kind, n in info["keys_by_kind"].items() if kind not in DATA_KINDS)
    limit = info["memory_limit_bytes"]
    errors = ", ".join(f"{reason} {n:,}" for reason, n in counters["errors_by_reason"].items()) or "none"
    lines = [
        ("backend", f"{info['backend']} {info.get('url', '')}".rstrip() + f" ({info['scope']})"
         + (f"; Redis Cluster of {info['primaries']} primaries" if info.get("cluster") else "")),
        ("prefix", info["prefix"]),
        ("keys", f"{info['keys']:,} ({data}" + (f"; bookkeeping: {other})" if other else ")")),
        ("memory used", f"{_size(info['memory_used_bytes'])} " + (f"of {_size(limit)}" if limit else "(no limit)")
         + (f", policy {info['maxmemory_policy']}" if info.get("maxmemory_policy") else "")),
        ("evictions", f"{info['evictions'] or 0:,}"),
        ("hits", f"{counters['hits']:,} (hit rate {rate})"),
        ("misses", f"{counters['misses']:,}"),
        ("errors", f"{counters['errors']:,} ({errors})"),
    ]
    return "\n".join(f"{name:<12} {value}" for name, value in lines)


@cache_group.command("stats")
@format_option
def stats_command(fmt: str) -> None:
    """Backend, keys under the prefix, memory used, hits, misses and errors.

    With Redis the counts are every process's totals since the last clear;
    the in-process cache only knows this command's own process.

    \b
    Example:
      forestguard cache stats --format json
    """
    info = default_cache().describe()
    click.echo(json.dumps(info, indent=2) if fmt == "json" else _table(info))


@cache_group.command("clear")
@format_option
def clear_command(fmt: str) -> None:
    """Delete every key under this deployment's prefix (SCAN + UNLINK; other prefixes are untouched).

    \b
    Example:
      forestguard cache clear
    """
    cache = default_cache()
    deleted = cache.clear()
    if fmt == "json":
        click.echo(json.dumps({"backend": cache.backend, "prefix": cache.keys.prefix, "deleted": deleted}))
    else:
        click.echo(f"deleted {deleted:,} key(s) under prefix {cache.keys.prefix!r} ({cache.backend})")
