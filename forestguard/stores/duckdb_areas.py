"""The embedded engine's saved areas, watches and outbox of alert deliveries (DuckDB SQL).

Mixed into :class:`~forestguard.stores.duckdb.DuckDBStore`; a snapshot store reuses the reads
over the areas it carries. Times are stored as UTC without a zone (DuckDB's TIMESTAMP) and
come back as aware UTC datetimes, as the PostGIS engine gives them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import duckdb

from ..alerts.records import DELIVERED, FAILED, PENDING, Delivery, Watch
from ..alerts.watch import WatchCheck
from ..areas.shape import Area
from ..errors import ReadOnlyStore, UserError

if TYPE_CHECKING:
    import threading

AREAS_DDL = """
CREATE TABLE IF NOT EXISTS forestguard_areas (
    name VARCHAR PRIMARY KEY,
    geometry GEOMETRY NOT NULL,
    sha256 VARCHAR NOT NULL,
    source_file VARCHAR,
    added_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS forestguard_watches (
    area_name VARCHAR PRIMARY KEY,
    webhook_url VARCHAR NOT NULL,
    secret_env VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS forestguard_alerts (
    id VARCHAR PRIMARY KEY,
    area_name VARCHAR NOT NULL,
    webhook_url VARCHAR NOT NULL,
    secret_env VARCHAR NOT NULL,
    data_version BIGINT NOT NULL,
    body VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error VARCHAR,
    delivered_at TIMESTAMP
);
"""

_AREA_COLUMNS = "name, ST_AsWKB(geometry), sha256, source_file, added_at"
_ALERT_COLUMNS = "id, area_name, webhook_url, secret_env, data_version, body, created_at, status, attempts, next_attempt_at, last_error, delivered_at"


def _utc(value: datetime | None) -> datetime | None:
    """DuckDB's zone-less TIMESTAMP read as the UTC it was written in."""
    return None if value is None else value.replace(tzinfo=timezone.utc)


def _naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc).replace(tzinfo=None)


def area_of(row: tuple) -> Area:
    name, wkb, sha256, source, added = row
    return Area(name=name, wkb=bytes(wkb), sha256=sha256, source=source or "", added_at=_utc(added))


def delivery_of(row: tuple) -> Delivery:
    (id_, area, url, secret_env, version, body, created, status, attempts, next_at, error, delivered) = row
    return Delivery(id_, area, url, secret_env, int(version), body, _utc(created), status, int(attempts), _utc(next_at), error, _utc(delivered))


class DuckDBAreas:
    """Saved areas, watches and the outbox in the store's DuckDB file."""

    # Provided by the store this is mixed into: read_only, _lock, _cursor(), _label(), saved_area().
    read_only: bool
    _lock: "threading.RLock"

    def _has_areas(self) -> bool:
        """A store written before areas existed, opened read-only, has none of their tables."""
        found = self._cursor().execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'forestguard_areas'").fetchone()[0]
        return bool(found)

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self._label()} is open read-only: cannot {what}")

    # -- saved areas -----------------------------------------------------------------------
    def saved_areas(self) -> list[Area]:
        if not self._has_areas():
            return []
        rows = self._cursor().execute(f"SELECT {_AREA_COLUMNS} FROM forestguard_areas ORDER BY name").fetchall()
        return [area_of(r) for r in rows]

    def saved_area_names(self) -> list[str]:
        if not self._has_areas():
            return []
        return [r[0] for r in self._cursor().execute("SELECT name FROM forestguard_areas ORDER BY name").fetchall()]

    def _saved_area(self, name: str) -> Area | None:
        if not self._has_areas():
            return None
        row = self._cursor().execute(f"SELECT {_AREA_COLUMNS} FROM forestguard_areas WHERE name = ?", [name]).fetchone()
        return None if row is None else area_of(row)

    def save_area(self, area: Area, *, replace: bool = False) -> Area:
        self._writable("save an area")
        added = datetime.now(timezone.utc)
        with self._lock:
            con = self._cursor()
            existing = con.execute("SELECT added_at, sha256 FROM forestguard_areas WHERE name = ?", [area.name]).fetchone()
            if existing is not None and not replace:
                raise UserError(f"an area named {area.name!r} is already saved (added {_utc(existing[0]):%Y-%m-%d %H:%M} UTC); use --replace to replace it")
            values = [bytes(area.wkb), area.sha256, area.source or None, _naive(added)]
            if existing is None:
                con.execute("INSERT INTO forestguard_areas VALUES (?, ST_GeomFromWKB(?), ?, ?, ?)", [area.name, *values])
            else:
                con.execute("UPDATE forestguard_areas SET geometry = ST_GeomFromWKB(?), sha256 = ?, source_file = ?, added_at = ? WHERE name = ?", [*values, area.name])
        saved = self._saved_area(area.name)
        assert saved is not None
        return saved

    def remove_area(self, name: str) -> None:
        self._writable("remove an area")
        with self._lock:
            con = self._cursor()
            self.saved_area(name)  # an unknown name is the user's error, with the list
            if con.execute("SELECT count(*) FROM forestguard_watches WHERE area_name = ?", [name]).fetchone()[0]:
                raise UserError(f"area {name!r} is watched; run 'forestguard area unwatch' first")
            con.execute("DELETE FROM forestguard_areas WHERE name = ?", [name])

    # -- watches -----------------------------------------------------------------------------
    def watches(self) -> list[Watch]:
        if not self._has_areas():
            return []
        rows = self._cursor().execute("SELECT area_name, webhook_url, secret_env, created_at FROM forestguard_watches ORDER BY area_name").fetchall()
        return [Watch(a, u, s, _utc(c)) for a, u, s, c in rows]

    def watch_area(self, watch: Watch) -> None:
        self._writable("watch an area")
        with self._lock:
            self.saved_area(watch.area)
            self._cursor().execute(
                "INSERT INTO forestguard_watches VALUES (?, ?, ?, ?) ON CONFLICT (area_name) DO UPDATE SET webhook_url = excluded.webhook_url, "
                "secret_env = excluded.secret_env, created_at = excluded.created_at",
                [watch.area, watch.webhook_url, watch.secret_env, _naive(datetime.now(timezone.utc))],
            )

    def unwatch_area(self, name: str) -> None:
        self._writable("unwatch an area")
        with self._lock:
            con = self._cursor()
            if not con.execute("SELECT count(*) FROM forestguard_watches WHERE area_name = ?", [name]).fetchone()[0]:
                raise UserError(f"area {name!r} is not watched (see 'forestguard area list')")
            con.execute("DELETE FROM forestguard_watches WHERE area_name = ?", [name])

    def _watch_check(self, con: duckdb.DuckDBPyConnection) -> WatchCheck:
        """The watched areas as the ingest's transaction sees them."""
        rows = con.execute(
            "SELECT w.area_name, w.webhook_url, w.secret_env, w.created_at, a.name, ST_AsWKB(a.geometry), a.sha256, a.source_file, a.added_at "
            "FROM forestguard_watches w JOIN forestguard_areas a ON a.name = w.area_name ORDER BY w.area_name"
        ).fetchall()
        return WatchCheck((Watch(r[0], r[1], r[2], _utc(r[3])), area_of(r[4:])) for r in rows)

    def _write_outbox(self, con: duckdb.DuckDBPyConnection, deliveries: list[Delivery]) -> None:
        """The ingest's alerts, in its own transaction (the outbox)."""
        for d in deliveries:
            con.execute(
                f"INSERT INTO forestguard_alerts ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [d.id, d.area, d.webhook_url, d.secret_env, d.data_version, d.body, _naive(d.created_at), d.status, d.attempts,
                 _naive(d.next_attempt_at or d.created_at), d.last_error, _naive(d.delivered_at)],
            )

    # -- deliveries ----------------------------------------------------------------------------
    def deliveries(self, status: str | None = None, limit: int = 100) -> list[Delivery]:
        if not self._has_areas():
            return []
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._cursor().execute(f"SELECT {_ALERT_COLUMNS} FROM forestguard_alerts {where} ORDER BY created_at DESC, id LIMIT ?", [*params, int(limit)]).fetchall()
        return [delivery_of(r) for r in rows]

    def claim_deliveries(self, now: datetime, *, lease_s: float, limit: int, waiting_too: bool = False) -> list[Delivery]:
        self._writable("deliver alerts")
        with self._lock:
            con = self._cursor()
            due = "" if waiting_too else "AND next_attempt_at <= ?"
            params: list[Any] = [PENDING, *([] if waiting_too else [_naive(now)]), int(limit)]
            rows = con.execute(f"SELECT {_ALERT_COLUMNS} FROM forestguard_alerts WHERE status = ? {due} ORDER BY created_at, id LIMIT ?", params).fetchall()
            claimed = [delivery_of(r) for r in rows]
            lease = _naive(now + timedelta(seconds=lease_s))
            for d in claimed:
                con.execute("UPDATE forestguard_alerts SET next_attempt_at = ? WHERE id = ?", [lease, d.id])
        return claimed

    def record_attempt(self, delivery_id: str, *, now: datetime, delivered: bool, error: str | None, next_attempt_at: datetime | None) -> None:
        self._writable("record a delivery")
        status = DELIVERED if delivered else (PENDING if next_attempt_at is not None else FAILED)
        with self._lock:
            self._cursor().execute(
                "UPDATE forestguard_alerts SET attempts = attempts + 1, status = ?, last_error = ?, next_attempt_at = coalesce(?, next_attempt_at), "
                "delivered_at = ? WHERE id = ?",
                [status, error, _naive(next_attempt_at), _naive(now) if delivered else None, delivery_id],
            )
