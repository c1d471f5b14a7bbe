"""Redis backend: shared across processes and containers, and never the reason a request fails.

- Short socket and connect timeouts (0.2 s) and at most one immediate retry on a
  dropped connection (redis-py's default of ten retries with backoff would turn
  a dead Redis into seconds per request).
- Every call goes through a :class:`~.breaker.CircuitBreaker`: after three
  consecutive connection failures or timeouts, Redis is left alone for the
  cooldown and requests go straight to the store.
- A full Redis (OOM on write, under ``noeviction``) or a read-only replica
  still answers reads; those errors are counted but do not open the circuit.
- Stampedes: the thread that misses takes ``SET lock NX PX``; others (in any
  process) poll for the value until it appears, the lock disappears, or the lock
  timeout passes — then they compute themselves.
- Counters are published to ``{prefix}:meta:counters`` every few seconds (and at
  exit for the default cache), so ``cache stats`` sees every process's totals.
- Redis Cluster (ElastiCache cluster mode enabled) is detected from the server
  the URL names (``INFO cluster``: ``cluster_enabled:1``), so one ``REDIS_URL``
  serves both deployments; the cluster client then finds every node itself.
  Detection happens on first use, through the breaker: a Redis that is down
  when the process starts is asked again later, like any other call.
  Keys read together share a hash tag (:mod:`.keys`); ``clear`` and ``describe``
  visit every primary.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from typing import Any, Callable, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from ..config import redact
from ..errors import UserError
from .base import MISS, Cache, CacheUnavailable, Decode, Encode, Filled, summarize
from ..breaker import CircuitBreaker
from .keys import KeySpace

T = TypeVar("T")

# Delete the lock only if it is still ours: a holder that outlived its lock must
# not release the next holder's.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class _Unavailable(Exception):
    """Redis could not serve this call (down, slow, full, circuit open): go without it."""


def _reason(exc: BaseException) -> tuple[str, bool]:
    """Error reason for the counters, and whether it means Redis is unreachable (opens the circuit)."""
    if isinstance(exc, (redis.exceptions.ClusterDownError, redis.exceptions.RedisClusterException)):
        return "cluster", True  # slots without a live master, or no node answering the topology query
    if isinstance(exc, redis.exceptions.TimeoutError):
        return "timeout", True
    if isinstance(exc, redis.exceptions.ConnectionError):
        return "connection", True
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "oom", False
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "readonly", False
    if isinstance(exc, redis.exceptions.ResponseError):
        return "response", False
    if isinstance(exc, OSError):
        return "connection", True
    return "other", True


class RedisCache(Cache):
    backend = "redis"

    def __init__(
        self,
        url: str,
        keys: KeySpace = KeySpace(),
        *,
        socket_timeout: float = 0.2,
        connect_timeout: float = 0.2,
        lock_timeout: float = 10.0,
        breaker: CircuitBreaker | None = None,
        warn_interval: float = 60.0,
        publish_interval: float = 5.0,
        max_value_bytes: int = 8 * 1024 * 1024,
        max_connections: int = 64,
    ) -> None:
        super().__init__(keys, warn_interval)
        self.url = url
        self.lock_timeout = lock_timeout
        self.max_value_bytes = max_value_bytes
        self.breaker = breaker or CircuitBreaker()
        self.publish_interval = publish_interval
        self._options: dict[str, Any] = dict(
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            health_check_interval=15,
            max_connections=max_connections,
            client_name=f"forestguard-{keys.prefix}",
        )
        try:
            # The node the URL names; kept as the client unless it says it is part of a cluster.
            self._node = redis.Redis.from_url(
                url, retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)), **self._options
            )
        except ValueError as exc:  # a configuration error: say so once, at startup
            raise UserError(f"REDIS_URL {redact(url)} is not usable: {redact(str(exc))}") from None
        self._client: redis.Redis | RedisCluster | None = None
        self._release_lock: Script | None = None
        self._connect_lock = threading.Lock()
        self._published: Counter[str] = Counter()
        self._publish_lock = threading.Lock()
        self._next_publish = time.monotonic() + publish_interval

    def __repr__(self) -> str:
        return f"<RedisCache {redact(self.url)} prefix={self.keys.prefix!r}>"

    # -- the client: one node, or the cluster that node belongs to -------------------------------
    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The client to use, found on first use (raises what Redis raised while it is unreachable)."""
        if self._client is None:
            with self._connect_lock:
                if self._client is None:
                    client = self._cluster() if self._node.info("cluster").get("cluster_enabled") else self._node
                    self._release_lock = client.register_script(_RELEASE)
                    self._client = client
        return self._client

    @property
    def cluster(self) -> bool | None:
        """Whether the server is a Redis Cluster (None until it has been reached)."""
        return None if self._client is None else isinstance(self._client, RedisCluster)

    def _cluster(self) -> RedisCluster:
        try:
            # At most one retry, as for a single node; the cluster client refreshes its slot map on its own.
            return RedisCluster.from_url(self.url, retry=Retry(NoBackoff(), 1), **self._options)
        except redis.exceptions.RedisClusterException as exc:  # e.g. a db number other than 0 in the URL
            if "db" in str(exc) or "Unix" in str(exc):
                raise UserError(f"REDIS_URL {redact(self.url)} is not usable with Redis Cluster: {exc}") from None
            raise

    # -- every call goes through here ---------------------------------------------------------
    def _call(self, operation: Callable[[], T]) -> T:
        if not self.breaker.allow():
            self._counters.add("bypassed")
            raise _Unavailable("circuit open")
        try:
            result = operation()
        except Exception as exc:  # whatever Redis or the client does, the request goes on without it
            reason, unreachable = _reason(exc)
            detail = f"{type(exc).__name__}: {redact(' '.join(str(exc).split())[:200])}"
            self._error(reason, f"Redis cache at {redact(self.url)}: {reason} ({detail}); answering without it")
            if not unreachable:
                self.breaker.success()  # it answered: reachable, just refusing this command
            elif self.breaker.failure():
                self._warn("circuit", f"Redis cache at {redact(self.url)} unreachable; not asked again for {self.breaker.cooldown:g} s")
            raise _Unavailable(reason) from exc
        self.breaker.success()
        return result

    # -- storage ----------------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        try:
            return self._call(lambda: self.client.get(key))
        except _Unavailable:
            return None

    def _set(self, key: str, value: bytes, ttl: float) -> bool:
        if len(value) > self.max_value_bytes:
            self._counters.add("too_large")
            return False
        try:
            self._call(lambda: self.client.set(key, value, px=max(1, round(ttl * 1000))))
            return True
        except _Unavailable:
            return False

    def _delete(self, key: str) -> None:
        try:
            self._call(lambda: self.client.unlink(key))
        except _Unavailable:
            pass

    def remaining_ttl(self, key: str) -> float | None:
        try:
            ms = self._call(lambda: self.client.pttl(key))
        except _Unavailable:
            return None
        return ms / 1000 if ms >= 0 else None

    # -- stampede protection --------------------------------------------------------------------------
    def _fill(self, key: str, ttl: float, compute: Callable[[], Any], encode: Encode, decode: Decode) -> Filled:
        lock = self.keys.lock(key)
        token = secrets.token_hex(8)
        lock_ms = max(1, round(self.lock_timeout * 1000))
        deadline = time.monotonic() + self.lock_timeout
        while time.monotonic() < deadline:
            try:
                if self._call(lambda: self.client.set(lock, token, nx=True, px=lock_ms)):
                    return self._fill_holding_lock(key, lock, token, ttl, compute, encode, decode)
                self._counters.add("lock_waits")
                found = self._await_fill(key, lock, decode, deadline)
            except _Unavailable:
                break
            if found is not None:
                return found
            # The lock went away without a value (its holder failed): try to take it over.
        return self._compute_and_store(key, ttl, compute, encode)

    def _fill_holding_lock(
        self, key: str, lock: str, token: str, ttl: float, compute: Callable[[], Any], encode: Encode, decode: Decode
    ) -> Filled:
        try:
            # Stored by another process between our miss and our lock?
            return self._recheck(key, decode) or self._compute_and_store(key, ttl, compute, encode)
        finally:
            try:
                self._call(lambda: self._release(lock, token))
            except _Unavailable:
                pass  # it expires on its own

    def _release(self, lock: str, token: str) -> Any:
        self.client  # noqa: B018 - resolves the client and its registered script
        assert self._release_lock is not None
        return self._release_lock(keys=[lock], args=[token])

    def _await_fill(self, key: str, lock: str, decode: Decode, deadline: float) -> Filled | None:
        """Poll until the lock holder stores the value (returned) or the lock is gone or expires (None)."""
        delay = 0.002
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(delay, remaining))
            data, holder = self._call(lambda: self.client.mget([key, lock]))  # one slot: the same hash tag
            if data is not None:
                value = self._decode(key, data, decode)
                return None if value is MISS else (value, data)
            if holder is None:
                return None
            delay = min(delay * 2, 0.05)
        return None

    # -- shared counters ------------------------------------------------------------------------------
    def _after_request(self) -> None:
        # Non-blocking: a request never waits for another thread's publication.
        if time.monotonic() >= self._next_publish and self._publish_lock.acquire(blocking=False):
            try:
                self._next_publish = time.monotonic() + self.publish_interval
                self._publish()
            finally:
                self._publish_lock.release()

    def publish_counters(self) -> bool:
        """Add what this process counted since the last publication to the shared totals."""
        with self._publish_lock:
            return self._publish()

    def _publish(self) -> bool:
        current = self._counters.snapshot()
        delta = current - self._published
        if not delta:
            return True

        def send() -> None:
            pipe = self.client.pipeline(transaction=False)
            for name, n in delta.items():
                pipe.hincrby(self.keys.counters, name, n)
            pipe.execute()

        try:
            self._call(send)
        except _Unavailable:
            return False
        self._published = current
        return True

    # -- administration (errors are reported, not hidden) -------------------------------------------------
    def _admin(self, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise CacheUnavailable(f"Redis cache at {redact(self.url)}: {type(exc).__name__}: {redact(str(exc))}") from None

    def clear(self) -> int:
        """UNLINK every key under the prefix, found with SCAN (never FLUSHDB/FLUSHALL)."""

        def run() -> int:
            deleted = 0
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=self.keys.pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += self.client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += self.client.unlink(*batch)
            return deleted

        with self._publish_lock:
            cleared = self._admin(run)
            self._published = self._counters.snapshot()  # the shared totals were just deleted too
        return cleared

    def describe(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            by_kind: Counter[str] = Counter()
            for key in self.client.scan_iter(match=self.keys.pattern, count=1000):
                by_kind[self.keys.kind_of(key.decode("utf-8", "replace"))] += 1
            shared = {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.counters).items()}
            nodes = self._primaries_info()
            first = nodes[0] if nodes else {}

            def total(field: str) -> int | None:
                values = [node.get(field) for node in nodes]
                return sum(values) if values and None not in values else None  # type: ignore[arg-type]

            return {
                "backend": self.backend,
                "scope": "every process using this prefix",
                "url": redact(self.url),
                "prefix": self.keys.prefix,
                "redis_version": first.get("redis_version"),
                "cluster": self.cluster,
                "primaries": len(nodes),
                "keys": sum(n for kind, n in by_kind.items() if kind not in ("lock", "meta")),
                "keys_by_kind": dict(sorted(by_kind.items())),
                "memory_used_bytes": total("used_memory"),
                "memory_limit_bytes": total("maxmemory") or None,
                "maxmemory_policy": first.get("maxmemory_policy"),
                "evictions": total("evicted_keys"),
                "counters": summarize(Counter(shared)),
            }

        self.publish_counters()
        return self._admin(run)

    def _primaries_info(self) -> list[dict[str, Any]]:
        """``INFO`` of the one server, or of every primary of the cluster (summed by ``describe``)."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return [client.info()]
        found = client.info(target_nodes=RedisCluster.PRIMARIES)
        return [found] if "redis_version" in found else list(found.values())

    def close(self) -> None:
        self.publish_counters()
        if self._client is not None and self._client is not self._node:
            self._client.close()
        self._node.close()
