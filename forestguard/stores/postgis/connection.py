"""Connections to PostgreSQL: URLs honoured as libpq reads them, errors in one safe line.

Whatever the URL says (``sslmode=verify-full``, ``sslrootcert``, ``target_session_attrs``,
``options=-c statement_timeout=…``) reaches libpq untouched; we only add defaults the URL
does not set. Reads go through a small pool that checks a connection before lending it, so
a Multi-AZ failover or a restarted replica costs one reconnect, not a failed request.

While a server is known to be down, nobody waits for it: every connection attempt to one
server goes through that server's :class:`~forestguard.cache.breaker.CircuitBreaker` (the
Redis cache's), which after a failed attempt refuses at once with :class:`StoreUnavailable`
for :data:`BREAKER_COOLDOWN` seconds, then lets one attempt through to see whether it is back.
"""

from __future__ import annotations

import re
import threading
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ...cache.breaker import CircuitBreaker
from ...config import redact
from ...errors import StoreNotFound, StoreUnavailable, UserError

#: Added only when the URL does not say otherwise. A connection attempt is bounded: an RDS
#: failover moves the endpoint within one to two minutes, and meanwhile attempts fail fast
#: through the breaker instead of each waiting out a long timeout.
DEFAULT_OPTIONS = {"application_name": "forestguard", "connect_timeout": "5"}
#: How long a pooled read waits for a connection before the server counts as down.
POOL_TIMEOUT = 5.0
#: Seconds a server found down is not asked again (then one attempt probes it).
BREAKER_COOLDOWN = 2.0
#: SQLAlchemy-style spellings libpq does not know.
_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+\w+://", re.I)
#: Errors after which a read is worth one more try on a fresh connection.
RETRYABLE = (psycopg.OperationalError, psycopg.errors.SerializationFailure)

T = TypeVar("T")


def conninfo(url: str) -> str:
    """The libpq connection string of ``url``, our defaults filling only what it leaves unset."""
    try:
        params = conninfo_to_dict(_DRIVER_SUFFIX.sub(r"\1://", url.strip()))
    except psycopg.ProgrammingError as exc:
        raise UserError(f"not a valid PostgreSQL URL {redact(url)!r}: {one_line(exc)}") from None
    return make_conninfo(**{**DEFAULT_OPTIONS, **params})


def without_password(url: str) -> tuple[str, str | None]:
    """``(conninfo without the password, the password)``: for child processes (pg_dump),
    whose command lines other users can read, the password travels in ``PGPASSWORD``."""
    params = conninfo_to_dict(conninfo(url))
    password = params.pop("password", None)
    return make_conninfo(**params), password


def database_name(url: str) -> str:
    params = conninfo_to_dict(conninfo(url))
    return str(params.get("dbname") or params.get("user") or "")


def one_line(exc: BaseException) -> str:
    """An exception as one line with no secrets (libpq messages span several lines)."""
    return redact(" ".join(str(exc).split()))


#: libpq's words for a server that is not there (down, restarting, failing over, out of reach).
_OUTAGE = re.compile(
    r"connection refused|timeout expired|timed out|could not translate host name|no route to host|network is unreachable"
    r"|server closed the connection|connection reset|starting up|shutting down|could not receive data|could not send data",
    re.I,
)
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker(url: str) -> CircuitBreaker:
    """The breaker of the server ``url`` names (host, port and database; one per process)."""
    params = conninfo_to_dict(conninfo(url))
    key = "|".join(str(params.get(k, "")) for k in ("host", "hostaddr", "port", "dbname", "user"))
    with _breakers_lock:
        found = _breakers.get(key)
        if found is None:
            found = _breakers[key] = CircuitBreaker(threshold=1, cooldown=BREAKER_COOLDOWN)
        return found


def _refuse_if_known_down(url: str) -> CircuitBreaker:
    gate = breaker(url)
    if not gate.allow():
        raise StoreUnavailable(f"{redact(url)} is unreachable (failed moments ago; tried again within {gate.cooldown:g} s)")
    return gate


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection, or a :class:`UserError` that names the server but never the password.

    :class:`StoreUnavailable` at once, without a connection attempt, while the server is known down.
    """
    _refuse_if_known_down(url)
    return _attempt(url, autocommit)


def _attempt(url: str, autocommit: bool = False) -> psycopg.Connection:
    """One connection attempt, its outcome told to the server's breaker."""
    gate = breaker(url)
    try:
        con = psycopg.connect(conninfo(url), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        message = one_line(exc)
        if "does not exist" in message and "database" in message:
            gate.success()  # the server answered
            raise StoreNotFound(f"cannot open {redact(url)}: {message}") from None
        if not _OUTAGE.search(message):
            gate.success()  # it answered and refused us (password, certificate, options): ours to fix, not an outage
            raise UserError(f"cannot connect to {redact(url)}: {message}") from None
        gate.failure()
        raise StoreUnavailable(f"cannot connect to {redact(url)}: {message}") from None
    except BaseException:
        gate.success()  # not the server's doing (a bad option, an interrupt): never leave the gate half-open
        raise
    gate.success()
    return con


class ReadPool:
    """Pooled autocommit connections for reads (statistics, maps) shared by a server's threads.

    Opened on first use: a command that fails earlier (bad URL, wrong password) has already
    said why through :func:`connect` instead of waiting out the pool's timeout.
    """

    def __init__(self, url: str, *, max_size: int = 4, timeout: float = POOL_TIMEOUT) -> None:
        self.url = url
        self.max_size = max_size
        self.timeout = timeout
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def _opened(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    conninfo(self.url),
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={"autocommit": True},
                    check=ConnectionPool.check_connection,
                    open=True,
                    name="forestguard-read",
                    timeout=self.timeout,
                )
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        gate = _refuse_if_known_down(self.url)
        with ExitStack() as stack:
            try:
                con = stack.enter_context(self._opened().connection(timeout=self.timeout))
            except PoolTimeout:
                # The pool only says it waited; a direct attempt says why (auth, DNS, TLS, refused, ...).
                _attempt(self.url).close()
                raise StoreUnavailable(f"no connection to {redact(self.url)} within {self.timeout:g} s") from None
            except BaseException:
                gate.failure()
                raise
            gate.success()
            yield con

    def run(self, query: Callable[[psycopg.Connection], T]) -> T:
        """Run a read; once more on a fresh connection if the first was cut (failover, replica conflict)."""
        try:
            with self.connection() as con:
                return query(con)
        except RETRYABLE:
            pass
        try:
            with self.connection() as con:
                return query(con)
        except RETRYABLE as exc:
            if isinstance(exc, psycopg.OperationalError):
                breaker(self.url).failure()  # cut twice in a row: the server is going away
                raise StoreUnavailable(f"{redact(self.url)}: {one_line(exc)}") from None
            raise UserError(f"{redact(self.url)}: {one_line(exc)}") from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
