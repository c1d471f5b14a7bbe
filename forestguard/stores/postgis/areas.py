"""The PostGIS engine's saved areas, watches and outbox of alert deliveries (migration 0006).

Mixed into :class:`~forestguard.stores.postgis.PostGISStore`: reads go where the store reads
(the replica when there is one), writes to the primary, each in a transaction of its own.
Concurrent deliverers claim work with ``FOR UPDATE SKIP LOCKED``, so no delivery is sent by
two of them at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import psycopg

from ...alerts.records import DELIVERED, FAILED, PENDING, Delivery, Watch
from ...alerts.watch import WatchCheck
from ...areas.shape import Area
from ...config import redact
from ...errors import ReadOnlyStore, UserError
from .connection import connect
from .role import read_only_refusal, require_primary

if TYPE_CHECKING:
    from .connection import ReadPool

T = TypeVar("T")

_AREA_COLUMNS = "name, ST_AsBinary(geometry), sha256, source_file, added_at"
_ALERT_COLUMNS = "id::text, area_name, webhook_url, secret_env, data_version, body, created_at, status, attempts, next_attempt_at, last_error, delivered_at"


def area_of(row: tuple) -> Area:
    name, wkb, sha256, source, added = row
    return Area(name=name, wkb=bytes(wkb), sha256=sha256, source=source or "", added_at=added)


def delivery_of(row: tuple) -> Delivery:
    (id_, area, url, secret_env, version, body, created, status, attempts, next_at, error, delivered) = row
    return Delivery(id_, area, url, secret_env, int(version), body, created, status, int(attempts), next_at, error, delivered)


def watch_check(con: psycopg.Connection) -> WatchCheck:
    """The watched areas as an ingest's transaction sees them."""
    rows = con.execute(
        "SELECT w.area_name, w.webhook_url, w.secret_env, w.created_at, a.name, ST_AsBinary(a.geometry), a.sha256, a.source_file, a.added_at "
        'FROM forestguard_watches w JOIN forestguard_areas a ON a.name = w.area_name ORDER BY w.area_name COLLATE "C"'
    ).fetchall()
    return WatchCheck((Watch(r[0], r[1], r[2], r[3]), area_of(r[4:])) for r in rows)


def write_outbox(con: psycopg.Connection, deliveries: list[Delivery]) -> None:
    """An ingest's alerts, in its own transaction (the outbox)."""
    if deliveries:
        with con.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO forestguard_alerts ({_ALERT_COLUMNS.replace('id::text', 'id')}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [[d.id, d.area, d.webhook_url, d.secret_env, d.data_version, d.body, d.created_at, d.status, d.attempts,
                  d.next_attempt_at or d.created_at, d.last_error, d.delivered_at] for d in deliveries],
            )


class PostGISAreas:
    """Saved areas, watches and the outbox, in ForestGuard's tables beside the zone table."""

    # Provided by the store this is mixed into.
    url: str
    read_only: bool
    _reads: "ReadPool"

    def _write(self, action: str, work: Callable[[psycopg.Connection], T]) -> T:
        """``work`` in one transaction on the primary (a replica refuses in one line)."""
        if self.read_only:
            raise ReadOnlyStore(f"{redact(self.url)} is open read-only: cannot {action}")
        with connect(self.url) as con:
            require_primary(con, self.url, action)
            try:
                with con.transaction():
                    return work(con)
            except psycopg.errors.ReadOnlySqlTransaction:
                raise read_only_refusal(self.url, action) from None

    # -- saved areas ---------------------------------------------------------------------------
    def saved_areas(self) -> list[Area]:
        rows = self._reads.run(lambda con: con.execute(f'SELECT {_AREA_COLUMNS} FROM forestguard_areas ORDER BY name COLLATE "C"').fetchall())
        return [area_of(r) for r in rows]

    def saved_area_names(self) -> list[str]:
        return [r[0] for r in self._reads.run(lambda con: con.execute('SELECT name FROM forestguard_areas ORDER BY name COLLATE "C"').fetchall())]

    def _saved_area(self, name: str) -> Area | None:
        row = self._reads.run(lambda con: con.execute(f"SELECT {_AREA_COLUMNS} FROM forestguard_areas WHERE name = %s", [name]).fetchone())
        return None if row is None else area_of(row)

    def save_area(self, area: Area, *, replace: bool = False) -> Area:
        def save(con: psycopg.Connection) -> Area:
            existing = con.execute("SELECT added_at FROM forestguard_areas WHERE name = %s FOR UPDATE", [area.name]).fetchone()
            if existing is not None and not replace:
                raise UserError(f"an area named {area.name!r} is already saved (added {existing[0]:%Y-%m-%d %H:%M} UTC); use --replace to replace it")
            row = con.execute(
                "INSERT INTO forestguard_areas (name, geometry, sha256, source_file, added_at) VALUES (%s, ST_GeomFromWKB(%s, 4326), %s, %s, now()) "
                "ON CONFLICT (name) DO UPDATE SET geometry = excluded.geometry, sha256 = excluded.sha256, "
                f"source_file = excluded.source_file, added_at = excluded.added_at RETURNING {_AREA_COLUMNS}",
                [area.name, area.wkb, area.sha256, area.source or None],
            ).fetchone()
            return area_of(row)

        return self._write("save an area", save)

    def remove_area(self, name: str) -> None:
        def remove(con: psycopg.Connection) -> None:
            if con.execute("SELECT 1 FROM forestguard_watches WHERE area_name = %s", [name]).fetchone():
                raise UserError(f"area {name!r} is watched; run 'forestguard area unwatch' first")
            if con.execute("DELETE FROM forestguard_areas WHERE name = %s", [name]).rowcount == 0:
                self.saved_area(name)  # raises with the list of saved areas

        self._write("remove an area", remove)

    # -- watches -------------------------------------------------------------------------------
    def watches(self) -> list[Watch]:
        rows = self._reads.run(lambda con: con.execute('SELECT area_name, webhook_url, secret_env, created_at FROM forestguard_watches ORDER BY area_name COLLATE "C"').fetchall())
        return [Watch(*r) for r in rows]

    def watch_area(self, watch: Watch) -> None:
        def add(con: psycopg.Connection) -> None:
            if not con.execute("SELECT 1 FROM forestguard_areas WHERE name = %s", [watch.area]).fetchone():
                self.saved_area(watch.area)  # raises with the list of saved areas
            con.execute(
                "INSERT INTO forestguard_watches (area_name, webhook_url, secret_env) VALUES (%s, %s, %s) "
                "ON CONFLICT (area_name) DO UPDATE SET webhook_url = excluded.webhook_url, secret_env = excluded.secret_env, created_at = now()",
                [watch.area, watch.webhook_url, watch.secret_env],
            )

        self._write("watch an area", add)

    def unwatch_area(self, name: str) -> None:
        def remove(con: psycopg.Connection) -> None:
            if con.execute("DELETE FROM forestguard_watches WHERE area_name = %s", [name]).rowcount == 0:
                raise UserError(f"area {name!r} is not watched (see 'forestguard area list')")

        self._write("unwatch an area", remove)

    # -- deliveries ----------------------------------------------------------------------------
    def deliveries(self, status: str | None = None, limit: int = 100) -> list[Delivery]:
        where, params = ("WHERE status = %s", [status]) if status else ("", [])
        query = f"SELECT {_ALERT_COLUMNS} FROM forestguard_alerts {where} ORDER BY created_at DESC, id LIMIT %s"
        rows = self._reads.run(lambda con: con.execute(query, [*params, int(limit)]).fetchall())
        return [delivery_of(r) for r in rows]

    def claim_deliveries(self, now: datetime, *, lease_s: float, limit: int, waiting_too: bool = False) -> list[Delivery]:
        due = "" if waiting_too else "AND next_attempt_at <= %s"
        params: list[Any] = [now + timedelta(seconds=lease_s), PENDING, *([] if waiting_too else [now]), int(limit)]

        def claim(con: psycopg.Connection) -> list[Delivery]:
            rows = con.execute(
                f"UPDATE forestguard_alerts SET next_attempt_at = %s WHERE id IN (SELECT id FROM forestguard_alerts "
                f"WHERE status = %s {due} ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {_ALERT_COLUMNS}",
                params,
            ).fetchall()
            return sorted((delivery_of(r) for r in rows), key=lambda d: (d.created_at, d.id))

        return self._write("deliver alerts", claim)

    def record_attempt(self, delivery_id: str, *, now: datetime, delivered: bool, error: str | None, next_attempt_at: datetime | None) -> None:
        status = DELIVERED if delivered else (PENDING if next_attempt_at is not None else FAILED)
        self._write(
            "record a delivery",
            lambda con: con.execute(
                "UPDATE forestguard_alerts SET attempts = attempts + 1, status = %s, last_error = %s, "
                "next_attempt_at = coalesce(%s, next_attempt_at), delivered_at = %s WHERE id = %s",
                [status, error, next_attempt_at, now if delivered else None, delivery_id],
            ),
        )
