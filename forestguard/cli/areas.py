"""``forestguard area add|list|show|remove|watch|unwatch``: saved areas and their watches."""

from __future__ import annotations

import json

import click

from .. import stores
from ..config import redact
from .options import db_option, list_format_option


@click.group("area")
def area_group() -> None:
    """Saved areas (kept in the zone store) and watches that alert on new clearing inside them.

    \b
    Example:
      forestguard area add "Concession 12" concession.gpkg
      forestguard stats --area "Concession 12" --by year
      forestguard area watch "Concession 12" --webhook https://hooks.example.org/fg --secret-env FG_HOOK_SECRET
    """


@area_group.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@db_option
@click.option("--replace", is_flag=True, help="Replace an area already saved under NAME (its watch is kept).")
@click.option("--repair", is_flag=True, help="Repair an invalid polygon (make_valid, polygonal parts kept) instead of refusing it.")
def add_command(name, file, db, replace, repair):
    """Save the area of FILE (its features' union; any CRS, reprojected) under NAME.

    \b
    Example:
      forestguard area add "Terra Indígena X" territory.shp --db postgresql://…
    """
    from ..areas import check_name, read_area

    area = read_area(file, name=check_name(name), repair=repair)
    with stores.open(db) as store:
        saved = store.save_area(area, replace=replace)
    click.echo(f"saved area {saved.name!r}: {saved.area_ha:,.2f} ha, {saved.vertices:,} vertices, sha256 {saved.sha256[:12]}… (from {file})")


@area_group.command("list")
@db_option
@list_format_option
def list_command(db, fmt):
    """The saved areas: name, hectares, vertices, when added, watch.

    \b
    Example:
      forestguard area list --format json
    """
    with stores.open(db, read_only=True) as store:
        areas = store.saved_areas()
        watched = {w.area: w for w in store.watches()}
    records = [{**_record(a), "watch": watched[a.name].to_dict() if a.name in watched else None} for a in areas]
    if fmt == "json":
        click.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    if not records:
        click.echo("(no saved areas: forestguard area add NAME FILE)")
        return
    for r in records:
        watch = f"  watched → {redact(r['watch']['webhook'])}" if r["watch"] else ""
        click.echo(f"{r['name']!r}  {r['area_ha']:,.2f} ha  {r['vertices']:,} vertices  added {r['added_at']}{watch}")


@area_group.command("show")
@click.argument("name")
@db_option
@click.option("--format", "fmt", type=click.Choice(["json", "geojson"]), default="json", show_default=True)
def show_command(name, db, fmt):
    """One saved area: its details (json) or the polygon itself (geojson).

    \b
    Example:
      forestguard area show "Concession 12" --format geojson > concession.geojson
    """
    with stores.open(db, read_only=True) as store:
        area = store.saved_area(name)
    click.echo(area.geojson() if fmt == "geojson" else json.dumps(_record(area), ensure_ascii=False, indent=2))


@area_group.command("remove")
@click.argument("name")
@db_option
def remove_command(name, db):
    """Remove a saved area (unwatch it first).

    \b
    Example:
      forestguard area remove "Concession 12"
    """
    with stores.open(db) as store:
        store.remove_area(name)
    click.echo(f"removed area {name!r}")


@area_group.command("watch")
@click.argument("name")
@click.option("--webhook", "url", required=True, metavar="URL", help="Where each alert is POSTed (http or https; not a private address).")
@click.option("--secret-env", "secret_env", default=None, metavar="VAR", help="Environment variable holding the HMAC secret (default FORESTGUARD_WEBHOOK_SECRET); only its name is stored.")
@db_option
def watch_command(name, url, secret_env, db):
    """Alert a webhook when an ingest brings new clearing into a saved area.

    \b
    Example:
      export FG_HOOK_SECRET=…
      forestguard area watch "Concession 12" --webhook https://hooks.example.org/forestguard --secret-env FG_HOOK_SECRET
    """
    from ..alerts.watch import start_watching

    with stores.open(db) as store:
        watch = start_watching(store, name, url, secret_env)
    click.echo(f"watching area {name!r}: new clearing is posted to {redact(watch.webhook_url)}, signed with ${watch.secret_env}")


@area_group.command("unwatch")
@click.argument("name")
@db_option
def unwatch_command(name, db):
    """Stop alerting on a saved area (deliveries already recorded are still sent).

    \b
    Example:
      forestguard area unwatch "Concession 12"
    """
    with stores.open(db) as store:
        store.unwatch_area(name)
    click.echo(f"no longer watching area {name!r}")


def _record(area) -> dict:
    return {
        **area.describe(),
        "vertices": area.vertices,
        "sha256": area.sha256,
        "source_file": area.source or None,
        "added_at": None if area.added_at is None else area.added_at.isoformat(timespec="seconds"),
    }
