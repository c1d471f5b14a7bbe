"""Zone stores: one interface, engines chosen by URL (``forestguard.stores.open(url)``).

- nothing, or a path ending in ``.duckdb``: the embedded DuckDB store;
- ``postgresql://…`` / ``postgres://…``: PostgreSQL + PostGIS;
- ``snapshot:PATH``, a snapshot folder or its ``manifest.json`` (local or ``s3://``):
  a read-only GeoParquet snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import settings
from ..errors import UserError
from .base import AGGREGATE_COLUMNS, ZoneFilter, ZoneStore

__all__ = ["open", "engine_of", "new_embedded_store", "remove_embedded_store", "ZoneStore", "ZoneFilter", "AGGREGATE_COLUMNS"]


def engine_of(url: str) -> str:
    """Which engine a URL names, without opening anything."""
    lowered = url.lower()
    if lowered.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgis"
    if lowered.startswith("snapshot:") or lowered.endswith("manifest.json"):
        return "snapshot"
    if lowered.startswith("s3://"):
        return "snapshot"
    if lowered.startswith("duckdb://") or lowered.endswith(".duckdb") or lowered.endswith(".db"):
        return "duckdb"
    if Path(url).is_dir() and (Path(url) / "manifest.json").exists():
        return "snapshot"
    raise UserError(
        f"cannot tell which store {url!r} is: use a path ending in .duckdb, postgresql://…, or snapshot:PATH"
    )


def new_embedded_store(url: str) -> bool:
    """Whether ``url`` names an embedded store file that does not exist yet (a load would create it)."""
    return engine_of(url) == "duckdb" and not _duckdb_path(url).exists()


def remove_embedded_store(url: str) -> None:
    """Remove an embedded store file (and its write-ahead log), e.g. one a refused load created."""
    path = _duckdb_path(url)
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _duckdb_path(url: str) -> Path:
    from .duckdb import store_path

    return store_path(url)


def _open_duckdb(url: str, create: bool, read_only: bool):
    from .duckdb import DuckDBStore

    return DuckDBStore(url, create=create, read_only=read_only)


def _open_postgis(url: str, create: bool, read_only: bool):
    from .postgis import PostGISStore

    # The replica only serves reads of the primary it replicates, never of another --db.
    config = settings()
    read_url = config.database_read_url if url == config.database_url else None
    return PostGISStore(url, create=create, read_only=read_only, read_url=read_url)


def _open_snapshot(url: str, create: bool, read_only: bool):
    from .snapshot import SnapshotStore

    return SnapshotStore(url.removeprefix("snapshot:"))


_ENGINES: dict[str, Callable[[str, bool, bool], ZoneStore]] = {
    "duckdb": _open_duckdb,
    "postgis": _open_postgis,
    "snapshot": _open_snapshot,
}


def open(url: str | None = None, *, create: bool = False, read_only: bool = False) -> ZoneStore:  # noqa: A001
    """Open the store a URL names (default: ``DATABASE_URL``, then the embedded file).

    Reading never creates: a URL that names nothing raises :class:`StoreNotFound`.
    ``create=True`` (ingest, demo) makes the embedded file or the PostGIS schema.
    """
    url = url or settings().store_url
    return _ENGINES[engine_of(url)](url, create, read_only)
