"""``db init | upgrade | status``: what the commands do, without the printing.

``init`` creates the schema in an empty database or adopts an existing one built from the
seed DDL (checked against it first; nothing is changed if it does not match). ``upgrade``
applies pending migrations to a database ``init`` has already seen, so a typo in a URL
cannot quietly turn some other database into a ForestGuard one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from ...config import redact
from ...errors import UserError
from ...schema import TABLE
from .conformance import zone_table_problems
from .connection import connect, one_line
from .migrations import META_TABLE, Migration, has_zone_table, migrate, state
from .role import read_only_refusal, require_primary, server_role


@dataclass
class MigrateResult:
    applied: list[str] = field(default_factory=list)
    adopted_zones: int | None = None  # an existing zone table taken over, with this many rows
    ahead: list[str] = field(default_factory=list)  # applied by a newer ForestGuard


def init(url: str, *, action: str = "db init") -> MigrateResult:
    """Create or adopt the schema and apply every pending migration (idempotent).

    ``action`` names the write in the error when ``url`` is a replica (ingest and demo init too).
    """
    with connect(url, autocommit=True) as con:
        require_primary(con, url, action)
        before = state(con)
        result = MigrateResult()
        if has_zone_table(con) and not before.initialised:
            problems = zone_table_problems(con)
            if problems:
                raise UserError(
                    f"{redact(url)}: {TABLE} exists but is not the seed table ({'; '.join(problems)}); nothing was changed"
                )
            result.adopted_zones = _count(con)
        result.applied = [m.label for m in _migrate(con, url)]
        result.ahead = [f"{a.version:04d}_{a.name}" for a in state(con).unknown]
    return result


def upgrade(url: str) -> MigrateResult:
    """Apply pending migrations to an initialised database."""
    with connect(url, autocommit=True) as con:
        require_primary(con, url, "db upgrade")
        if not state(con).initialised:
            raise UserError(f"{redact(url)} is not a ForestGuard database yet: run 'forestguard db init' first")
        result = MigrateResult(applied=[m.label for m in _migrate(con, url)])
        result.ahead = [f"{a.version:04d}_{a.name}" for a in state(con).unknown]
    return result


def _migrate(con: psycopg.Connection, url: str) -> list[Migration]:
    try:
        return migrate(con)
    except psycopg.errors.ReadOnlySqlTransaction:
        raise read_only_refusal(url, "a schema change") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise UserError(f"not allowed to change the schema: {one_line(exc)}") from None
    except psycopg.errors.FeatureNotSupported as exc:  # e.g. PostGIS not installed on the server
        raise UserError(f"the server cannot run the migrations: {one_line(exc)}") from None
    except psycopg.errors.UndefinedFile as exc:
        raise UserError(f"PostGIS is not installed on the server: {one_line(exc)}") from None


@dataclass
class Status:
    url: str
    server_version: str
    role: str  # primary, or replica (a hot standby: reads only)
    postgis_version: str | None
    initialised: bool
    applied: list[dict[str, Any]]
    pending: list[str]
    modified: list[str]
    ahead: list[str]
    zone_table_problems: list[str]
    zones: int | None
    data_version: int | None

    @property
    def healthy(self) -> bool:
        return self.initialised and not (self.pending or self.modified or self.zone_table_problems)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


def status(url: str) -> Status:
    """Everything ``db status`` shows; reads only (the conformance check rolls back)."""
    with connect(url, autocommit=True) as con:
        migrations = state(con)
        postgis = con.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
        has_table = has_zone_table(con)
        has_meta = con.execute("SELECT to_regclass(%s) IS NOT NULL", [META_TABLE]).fetchone()[0]
        version = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'data_version'").fetchone() if has_meta else None
        return Status(
            url=redact(url),
            server_version=con.execute("SELECT current_setting('server_version')").fetchone()[0],
            role=server_role(con),
            postgis_version=postgis[0] if postgis else None,
            initialised=migrations.initialised,
            applied=[{"migration": f"{a.version:04d}_{a.name}", "applied_at": a.applied_at.isoformat()} for a in migrations.applied],
            pending=[m.label for m in migrations.pending],
            modified=[m.label for m in migrations.modified],
            ahead=[f"{a.version:04d}_{a.name}" for a in migrations.unknown],
            zone_table_problems=zone_table_problems(con) if postgis else ["PostGIS is not installed in this database"],
            zones=_count(con) if has_table else None,
            data_version=int(version[0]) if version else None,
        )


def _count(con: psycopg.Connection) -> int:
    return int(con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
