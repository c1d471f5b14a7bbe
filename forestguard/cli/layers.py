"""``forestguard layers add|list|remove``: reference layers (with their provenance) kept in the zone store."""

from __future__ import annotations

import json

import click

from .. import stores
from ..stores.evidence_records import KINDS
from .options import db_option, list_format_option


@click.group("layers")
def layers_group() -> None:
    """Reference layers: protected areas, indigenous lands, properties, authorizations, embargoes.

    Each keeps its source, as-of date and the file's sha256; `forestguard evidence compute`
    measures every zone against them.

    \b
    Example:
      forestguard layers add protected_area ucs.gpkg --name "UCs ICMBio" --source ICMBio --as-of 2024-06-30
      forestguard layers add property car_pa.shp --name "CAR Pará" --source SICAR --as-of 2024-05-01 --map id=cod_imovel
      forestguard layers list
    """


@layers_group.command("add")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--name", required=True, help="The layer's name (shown with every finding).")
@click.option("--source", required=True, metavar="ORG", help="Who publishes the data (e.g. ICMBio, FUNAI, SICAR, IBAMA).")
@click.option("--as-of", "as_of", required=True, metavar="DATE", help="The date the data describe (YYYY-MM-DD).")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Read feature FIELD (id, valid_from, valid_to; an embargo's date) from the file's COLUMN (repeatable).")
@click.option("--replace", is_flag=True, help="Replace a layer already stored under --name (its findings are redone by the next evidence compute).")
@click.option("--repair", is_flag=True, help="Repair invalid polygons (make_valid, polygonal parts kept) instead of refusing them.")
@db_option
def add_command(kind, file, name, source, as_of, maps, replace, repair, db):
    """Store the polygons of FILE as a reference layer of KIND, all or nothing.

    A property layer needs each feature's registry id (--map id=COLUMN), an authorization layer
    valid_from and valid_to, an embargo layer its date; any layer may give id, valid_from and
    valid_to. A field is read from the file's field of the same name unless --map says otherwise.

    \b
    Example:
      forestguard layers add authorization asv.geojson --name "ASV Pará" --source SEMAS-PA --as-of 2024-01-31 \\
          --map id=num_autorizacao --map valid_from=data_emissao --map valid_to=data_validade
    """
    from ..evidence.layers import read_layer

    read = read_layer(kind, file, name=name, source=source, as_of=as_of, maps=maps, repair=repair)
    click.echo(read.fields)
    with stores.open(db) as store:
        stored = store.add_layer(read.layer, read.features, replace=replace)
    click.echo(f"stored {stored.kind} layer {stored.name!r}: {stored.features:,} features from {stored.source}, as of {stored.as_of}, "
               f"sha256 {stored.sha256[:12]}… (run 'forestguard evidence compute' to measure the zones against it)")


@layers_group.command("list")
@db_option
@list_format_option
def list_command(db, fmt):
    """The reference layers: name, kind, source, as-of date, features, file, when added.

    \b
    Example:
      forestguard layers list --format json
    """
    with stores.open(db, read_only=True) as store:
        layers = store.reference_layers()
    if fmt == "json":
        click.echo(json.dumps([layer.to_dict() for layer in layers], ensure_ascii=False, indent=2))
        return
    if not layers:
        click.echo("(no reference layers: forestguard layers add KIND FILE --name NAME --source ORG --as-of DATE)")
        return
    for layer in layers:
        added = "" if layer.added_at is None else f"  added {layer.added_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{layer.name!r}  {layer.kind}  {layer.features:,} features  source {layer.source!r}  as of {layer.as_of}  "
                   f"{layer.source_file or '-'} sha256 {layer.sha256[:12]}…{added}")


@layers_group.command("remove")
@click.argument("name")
@db_option
def remove_command(name, db):
    """Remove a reference layer (its findings stop showing; the next evidence compute drops them).

    \b
    Example:
      forestguard layers remove "CAR Pará"
    """
    with stores.open(db) as store:
        store.remove_layer(name)
    click.echo(f"removed reference layer {name!r} (run 'forestguard evidence compute' to update the suggestions)")
