"""Versioned SQL migrations, applied in order, once.

Migration 1 is the seed DDL itself (:data:`forestguard.schema.POSTGIS_DDL`, the one place it is
written) after ``CREATE EXTENSION postgis``; every statement in it is IF NOT EXISTS, so a
database already built from that DDL is adopted unchanged. The later ones are the files
``forestguard/migrations/NNNN_name.sql``.

Each migration runs in its own transaction together with its row in ``forestguard_migrations``
(version, name, sha256, applied_at), so a failure leaves neither half a migration nor a record
of one. A session advisory lock makes concurrent ``db init``/``upgrade`` runs (two deploys at
once) queue instead of racing. Checksums catch a migration edited after it was applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

import psycopg

from ...schema import POSTGIS_DDL, TABLE

MIGRATIONS_TABLE = "forestguard_migrations"
META_TABLE = "forestguard_meta"
#: pg_advisory_lock key: the first 8 bytes of sha256("forestguard.migrations"), as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"forestguard.migrations").digest()[:8], "big", signed=True)
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_BOOTSTRAP = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass
class MigrationState:
    """What a database has applied compared with what this ForestGuard ships."""

    available: list[Migration]
    applied: list[Applied] = field(default_factory=list)
    initialised: bool = False  # the migrations table exists

    @property
    def pending(self) -> list[Migration]:
        done = {a.version for a in self.applied}
        return [m for m in self.available if m.version not in done]

    @property
    def modified(self) -> list[Migration]:
        """Shipped migrations whose text differs from what was applied."""
        applied = {a.version: a.checksum for a in self.applied}
        return [m for m in self.available if m.version in applied and applied[m.version] != m.checksum]

    @property
    def unknown(self) -> list[Applied]:
        """Applied by a newer ForestGuard: this one does not ship them."""
        shipped = {m.version for m in self.available}
        return [a for a in self.applied if a.version not in shipped]

    @property
    def current(self) -> bool:
        return self.initialised and not self.pending


BASELINE = Migration(1, "deforestation_zones", "CREATE EXTENSION IF NOT EXISTS postgis;\n" + POSTGIS_DDL)


def available() -> list[Migration]:
    """The migrations this package ships, in version order."""
    folder = resources.files("forestguard").joinpath("migrations")
    found = [BASELINE]
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return found


def state(con: psycopg.Connection) -> MigrationState:
    """Read the migration state (works on a read-only replica)."""
    result = MigrationState(available())
    result.initialised = _exists(con, MIGRATIONS_TABLE)
    if result.initialised:
        rows = con.execute(f"SELECT version, name, checksum, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version").fetchall()
        result.applied = [Applied(*row) for row in rows]
    return result


def migrate(con: psycopg.Connection) -> list[Migration]:
    """Apply the pending migrations in order; return those applied (none: already current).

    ``con`` must be in autocommit mode: each migration commits on its own.
    """
    if not con.autocommit:
        raise ValueError("migrate() needs an autocommit connection")
    con.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    try:
        con.execute(_BOOTSTRAP)
        done = []
        for migration in state(con).pending:  # read under the lock: a concurrent run has finished
            with con.transaction():
                con.execute(migration.sql)
                con.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                    [migration.version, migration.name, migration.checksum],
                )
            done.append(migration)
        return done
    finally:
        con.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def has_zone_table(con: psycopg.Connection) -> bool:
    return _exists(con, TABLE)


def _exists(con: psycopg.Connection, table: str) -> bool:
    return con.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0]
