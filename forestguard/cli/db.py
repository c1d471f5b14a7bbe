"""db init | upgrade | status | backup | restore: the PostgreSQL store's schema and backups."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import redact, settings
from ..stores import engine_of

format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


def _database(url: str | None) -> str:
    """The PostgreSQL URL to act on: --db, else DATABASE_URL; anything else is a usage error."""
    url = url or settings().database_url
    if not url:
        raise click.UsageError("no database: pass --db postgresql://… or set DATABASE_URL")
    if engine_of(url) != "postgis":
        raise click.UsageError(f"{redact(url)} is not a PostgreSQL URL: 'db' manages PostGIS stores (DuckDB files create their own schema)")
    return url


def db_url_option(func):
    return click.option(
        "--db", "db", metavar="URL", default=None,
        help="postgresql://user@host/db (libpq options such as ?sslmode=verify-full are honoured). Default: $DATABASE_URL.",
    )(func)


@click.group("db")
def db_group() -> None:
    """The PostgreSQL + PostGIS store: schema migrations, status, backup and restore.

    \b
    Example:
      forestguard db init --db postgresql://forestguard@db.internal/zones?sslmode=require
      forestguard db status --format json
      forestguard db backup --out backups/zones.dump
    """


@db_group.command("init")
@db_url_option
def init_command(db):
    """Create the schema, or adopt an existing deforestation_zones table unchanged; apply migrations.

    Safe to run again: it applies only what is missing.

    \b
    Example:
      forestguard db init --db postgresql://forestguard@localhost/zones
    """
    from ..stores.postgis.admin import init

    url = _database(db)
    result = init(url)
    if result.adopted_zones is not None:
        click.echo(f"adopted the existing deforestation_zones table ({result.adopted_zones:,} zones) unchanged")
    _report_migrations(url, result)


@db_group.command("upgrade")
@db_url_option
def upgrade_command(db):
    """Apply the pending migrations of an initialised database.

    \b
    Example:
      DATABASE_URL=postgresql://forestguard@db.internal/zones forestguard db upgrade
    """
    from ..stores.postgis.admin import upgrade

    url = _database(db)
    _report_migrations(url, upgrade(url))


def _report_migrations(url: str, result) -> None:
    if result.applied:
        click.echo(f"applied {', '.join(result.applied)} to {redact(url)}")
    else:
        click.echo(f"{redact(url)} is up to date")
    if result.ahead:
        click.echo(f"note: the database also has {', '.join(result.ahead)} from a newer ForestGuard", err=True)


@db_group.command("status")
@db_url_option
@format_option
@click.option("--check", is_flag=True, help="Exit 1 unless every migration is applied unmodified and the zone table matches the DDL.")
def status_command(db, fmt, check):
    """Server and PostGIS versions, migrations applied and pending, zone table check, data version.

    \b
    Example:
      forestguard db status --check --format json
    """
    from ..stores.postgis.admin import status

    info = status(_database(db))
    if fmt == "json":
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        click.echo(_status_table(info))
    if check and not info.healthy:
        sys.exit(1)


def _status_table(info) -> str:
    lines = [
        f"database    {info.url}",
        f"server      PostgreSQL {info.server_version}, PostGIS {info.postgis_version or '(not installed)'}, {info.role}",
        f"migrations  {len(info.applied)} applied, {len(info.pending)} pending"
        + (f", {len(info.modified)} modified since applied" if info.modified else "")
        + ("" if info.initialised else " (not initialised: run 'forestguard db init')"),
    ]
    lines += [f"  {m['migration']:<28} applied {m['applied_at']}" for m in info.applied]
    lines += [f"  {label:<28} pending" for label in info.pending]
    lines += [f"  {label:<28} MODIFIED after it was applied" for label in info.modified]
    lines += [f"  {label:<28} from a newer ForestGuard" for label in info.ahead]
    if info.zone_table_problems:
        lines.append("zone table  does NOT match the seed DDL:")
        lines += [f"  - {p}" for p in info.zone_table_problems]
    else:
        lines.append("zone table  matches the seed DDL")
    zones = "-" if info.zones is None else f"{info.zones:,}"
    version = "-" if info.data_version is None else str(info.data_version)
    lines.append(f"zones       {zones} (data version {version})")
    return "\n".join(lines)


@db_group.command("backup")
@db_url_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Backup file to write (pg_dump custom format); written whole or not at all.")
def backup_command(db, out):
    """Back up the database with pg_dump (custom format), checked before it is kept.

    \b
    Example:
      forestguard db backup --out backups/zones-$(date +%F).dump
    """
    from ..stores.postgis.backup import backup

    result = backup(_database(db), out)
    click.echo(
        f"backed up {result.zones:,} zones (data version {result.data_version}) to {result.path} "
        f"({result.size_bytes / 1e6:,.1f} MB)"
    )


@db_group.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@db_url_option
@click.option("--clean", is_flag=True, help="Replace what the target database holds (drops the objects the backup re-creates).")
def restore_command(file, db, clean):
    """Restore a backup into a database, in one transaction: all of it or nothing.

    \b
    Example:
      createdb zones_drill && forestguard db restore backups/zones.dump --db postgresql://localhost/zones_drill
    """
    from ..stores.postgis.backup import restore

    url = _database(db)
    result = restore(file, url, clean=clean)
    click.echo(f"restored {result.zones:,} zones into {redact(url)} (data version now {result.data_version})")
