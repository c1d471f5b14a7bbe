"""snapshot create|list|verify: versioned, read-only GeoParquet copies of a zone store."""

from __future__ import annotations

import json
import sys
import time

import click
from tqdm import tqdm

from .. import snapshots, stores
from ..config import redact
from .options import db_option

_LOCATION_HELP = "Snapshot location: a folder or s3://BUCKET/PREFIX. Default: s3://$S3_BUCKET/snapshots when S3_BUCKET is set, else data/snapshots."
_format_option = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)


def _size(manifest: snapshots.Manifest) -> str:
    return f"{sum(f.size for f in manifest.files) / 1e6:,.1f} MB"


def _summary(manifest: snapshots.Manifest) -> dict:
    return {
        "id": manifest.id,
        "created_at": manifest.created_at,
        "rows": manifest.rows,
        "files": len(manifest.files),
        "bytes": sum(f.size for f in manifest.files),
        "source_engine": manifest.source.get("engine"),
        "data_version": manifest.data_version,
        "location": manifest.location,
    }


@click.group("snapshot")
def snapshot_group() -> None:
    """Versioned, read-only snapshots of the zones: GeoParquet 1.1 files plus manifest.json.

    A snapshot is read wherever a store URL is accepted, with the same numbers
    as the store it came from.

    \b
    Example:
      forestguard snapshot create --out s3://my-bucket/snapshots
      forestguard stats --db snapshot:data/snapshots/3fa94c0e12d5b8a1 --by year
    """


@snapshot_group.command("create")
@db_option
@click.option("--out", "out", default=None, metavar="DIR|s3://BUCKET/PREFIX", help=_LOCATION_HELP)
@click.option("--partition-rows", type=click.IntRange(min=100), default=snapshots.PARTITION_ROWS, show_default=True, metavar="N",
              help="Zones per partition file (spatially clustered; one Dask task each).")
@_format_option
def create_command(db: str | None, out: str | None, partition_rows: int, fmt: str) -> None:
    """Write a snapshot of the store (atomically: it is listed only once complete).

    Zones are cut into spatial partitions (a Hilbert curve through the zones) of
    about N zones each, listed with their bbox and rows in manifest.json: a
    view or filter reads only the partitions that meet it, and each partition
    is one task for --dask. The snapshot id is a hash of the content:
    snapshotting unchanged zones again gives the same id and publishes nothing new.

    \b
    Example:
      forestguard snapshot create --db data/forestguard.duckdb --out data/snapshots
      forestguard snapshot create --db postgresql://reader@db/forestguard --out s3://my-bucket/snapshots --partition-rows 500000
    """
    started = time.perf_counter()
    with stores.open(db, read_only=True) as store:
        with tqdm(total=store.count(), unit="zone", desc="snapshot", file=sys.stderr, disable=None, leave=False) as bar:
            manifest = snapshots.create(store, out, on_rows=bar.update, partition_rows=partition_rows)
    if fmt == "json":
        click.echo(json.dumps(_summary(manifest)))
        return
    click.echo(
        f"snapshot {manifest.id}: {manifest.rows:,} zones in {len(manifest.files)} file(s), {_size(manifest)}, "
        f"from {manifest.source['engine']} data version {manifest.data_version} → {manifest.location} "
        f"({time.perf_counter() - started:.1f} s)"
    )


@snapshot_group.command("list")
@click.option("--out", "out", default=None, metavar="DIR|s3://BUCKET/PREFIX", help=_LOCATION_HELP)
@_format_option
def list_command(out: str | None, fmt: str) -> None:
    """List the complete snapshots in a location, oldest first.

    \b
    Example:
      forestguard snapshot list --out s3://my-bucket/snapshots --format json
    """
    found = snapshots.list_snapshots(out)
    if fmt == "json":
        click.echo(json.dumps([_summary(m) for m in found]))
        return
    if not found:
        click.echo(f"no snapshots in {redact(out or snapshots.default_location())}")
        return
    click.echo(f"{'id':<16}  {'created_at':<25}  {'zones':>12}  {'size':>10}  source")
    for m in found:
        click.echo(f"{m.id:<16}  {m.created_at:<25}  {m.rows:>12,}  {_size(m):>10}  {m.source.get('engine')} v{m.data_version}")


@snapshot_group.command("verify")
@click.argument("ref", metavar="ID_OR_PATH")
@click.option("--out", "out", default=None, metavar="DIR|s3://BUCKET/PREFIX", help="Where to look up an id. " + _LOCATION_HELP)
def verify_command(ref: str, out: str | None) -> None:
    """Re-hash every file of a snapshot against its manifest; exit 1 on any mismatch.

    ID_OR_PATH is an id (or a unique prefix of one), a snapshot folder, its
    manifest.json, or an s3:// URL.

    \b
    Example:
      forestguard snapshot verify 3fa94c0e
      forestguard snapshot verify s3://my-bucket/snapshots/3fa94c0e12d5b8a1
    """
    manifest = snapshots.verify(ref, out)
    click.echo(f"ok {manifest.id}: {len(manifest.files)} file(s), {manifest.rows:,} zones, {_size(manifest)}, sha256 verified ({manifest.location})")
