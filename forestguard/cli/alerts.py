"""``forestguard alerts list|deliver``: the outbox of alert deliveries."""

from __future__ import annotations

import json

import click

from .. import stores
from ..stores.outbox import STATUSES
from ..config import redact
from .options import db_option, list_format_option


@click.group("alerts")
def alerts_group() -> None:
    """Alert deliveries recorded by ingests into watched areas, and sending them.

    \b
    Example:
      forestguard alerts list --status pending
      forestguard alerts deliver          # run after ingests and on a schedule
    """


@alerts_group.command("list")
@db_option
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@list_format_option
def list_command(db, status, limit, fmt):
    """Deliveries, newest first: id, area, status, attempts, last error.

    \b
    Example:
      forestguard alerts list --status failed --format json
    """
    with stores.open(db, read_only=True) as store:
        found = store.deliveries(status, limit)
    if fmt == "json":
        click.echo(json.dumps([d.to_dict() for d in found], ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("(no deliveries)")
        return
    for d in found:
        error = f"  last error: {d.last_error}" if d.last_error else ""
        click.echo(f"{d.id}  {d.area!r}  v{d.data_version}  {d.status}  {d.attempts} attempt(s)  → {redact(d.webhook_url)}{error}")


@alerts_group.command("deliver")
@db_option
@click.option("--all", "waiting_too", is_flag=True, help="Also send deliveries waiting out a backoff (e.g. once a receiver is fixed).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="Deliveries sent in this run.")
def deliver_command(db, waiting_too, limit):
    """Send the pending deliveries that are due; failures are retried later with backoff.

    \b
    Example:
      forestguard alerts deliver --all
    """
    from ..alerts.deliver import deliver_due

    with stores.open(db) as store:
        report = deliver_due(store, waiting_too=waiting_too, limit=limit)
    for delivery_id, error, _ in report.retrying:
        click.echo(f"{delivery_id}: {error} (will retry)", err=True)
    for delivery_id, error in report.failed:
        click.echo(f"{delivery_id}: {error} (gave up)", err=True)
    click.echo(report.summary())
