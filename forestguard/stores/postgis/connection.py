"""Connections to PostgreSQL: URLs honoured as libpq reads them, errors in one safe line.

Whatever the URL says (``sslmode=verify-full``, ``sslrootcert``, ``target_session_attrs``,
``options=-c statement_timeout=…``) reaches libpq untouched; we only add defaults the URL
does not set. Reads go through a small pool that checks a connection before lending it, so
a Multi-AZ failover or a restarted replica costs one reconnect, not a failed request.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ...config import redact
from ...errors import StoreNotFound, UserError

#: Added only when the URL does not say otherwise.
DEFAULT_OPTIONS = {"application_name": "forestguard", "connect_timeout": "10"}
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


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection, or a :class:`UserError` that names the server but never the password."""
    try:
        return psycopg.connect(conninfo(url), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        message = one_line(exc)
        if "does not exist" in message and "database" in message:
            raise StoreNotFound(f"cannot open {redact(url)}: {message}") from None
        raise UserError(f"cannot connect to {redact(url)}: {message}") from None


class ReadPool:
    """Pooled autocommit connections for reads (statistics, maps) shared by a server's threads.

    Opened on first use: a command that fails earlier (bad URL, wrong password) has already
    said why through :func:`connect` instead of waiting out the pool's timeout.
    """

    def __init__(self, url: str, *, max_size: int = 4, timeout: float = 10.0) -> None:
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
        try:
            with self._opened().connection(timeout=self.timeout) as con:
                yield con
        except PoolTimeout:
            # The pool only says it waited; a direct attempt says why (auth, DNS, TLS, ...).
            connect(self.url).close()
            raise UserError(f"no connection to {redact(self.url)} within {self.timeout:g} s") from None

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
            raise UserError(f"{redact(self.url)}: {one_line(exc)}") from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
