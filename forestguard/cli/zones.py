"""ingest, stats and demo: getting zones in and numbers out."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from .. import stores
from ..config import redact
from ..ingest import IngestRejected, ingest
from ..schema import GROUP_KEYS
from ..sources import ColumnMapping
from ..stats import statistics
from .options import dask_option, db_option, filter_options, parse_by, zone_filter


@click.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, readable=False, path_type=str))
@db_option
@click.option("--source", "source_name", default=None, metavar="NAME", help="Source recorded for every zone (same as --set source=NAME).")
@click.option("--repair", is_flag=True, help="Repair invalid geometries with make_valid, keeping the polygonal parts.")
@click.option("--skip-invalid", "rejects_file", default=None, metavar="REJECTS_FILE", help="Load the valid records; write the rejected ones with reasons to this CSV.")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD", help="Read zone COLUMN from input FIELD (repeatable), e.g. --map country=NAME_0.")
@click.option("--set", "sets", multiple=True, metavar="COLUMN=VALUE", help="Use VALUE for COLUMN in every record (repeatable), e.g. --set year=2020.")
@click.option("--again", is_flag=True, help="Load files whose content the store has loaded before (refused otherwise).")
@click.option("--status", is_flag=True, help="Load nothing: tell whether each file's content is in the store (exit 1 if one is not).")
def ingest_command(files, db, source_name, repair, rejects_file, maps, sets, again, status):
    """Validate zone files and load them into the store, all or nothing.

    Reads GeoJSON, GeoPackage, GeoParquet and Shapefile; other CRSs are
    reprojected to EPSG:4326. One invalid record rejects the whole run unless
    --skip-invalid is given. Each load records every file's sha256 and zone
    count in the store, in the load's own transaction: a file loaded before is
    refused (naming that load) unless --again, and --status tells whether a
    file went in (also after a run killed before its last line).

    \b
    Example:
      forestguard ingest clearings.gpkg --map country=NAME_0 --set year=2023 --source PRODES
      forestguard ingest --status clearings.gpkg
    """
    if status:
        _ingest_status(files, db)
        return
    try:
        mapping = ColumnMapping.parse(maps, sets + ((f"source={source_name}",) if source_name is not None else ()))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    started = time.perf_counter()
    with tqdm(total=len(files), unit="file", desc="reading", file=sys.stderr, disable=None, leave=False) as bar:

        def on_file(path: str, records: int) -> None:
            bar.set_postfix_str(f"{records:,} records")
            bar.update()

        try:
            result = ingest(files, db, mapping=mapping, repair=repair, skip_invalid=rejects_file, on_file=on_file, again=again)
        except IngestRejected as exc:
            bar.close()
            for line in exc.column_lines:
                click.echo(line)
            for line in exc.lines():
                click.echo(line, err=True)
            sys.exit(1)
    for line in result.column_lines:
        click.echo(line)
    if result.read == 0:
        click.echo("no records in the input: nothing loaded")
        return
    if result.rejected:
        click.echo(f"skipped {len(result.rejected):,} invalid record(s); reasons written to {rejects_file}")
    if result.loaded == 0:
        click.echo("no valid records: nothing loaded")
        return
    click.echo(
        f"loaded {result.loaded:,} zone(s) from {result.read:,} record(s) into {result.engine} "
        f"(data version {result.data_version}) in {time.perf_counter() - started:.1f} s"
    )
    if result.alerts:
        click.echo(f"alerts: {result.alerts} watched area(s) met; {result.delivery}")


def _ingest_status(files, db) -> None:
    from ..ingest import load_status

    missing = 0
    for file, sha256, records in load_status(files, db):
        if records:
            click.echo(f"{file}: loaded ({'; '.join(r.describe() for r in records)})")
        else:
            missing += 1
            click.echo(f"{file}: not loaded (sha256 {sha256})")
    if missing:
        sys.exit(1)


@click.command("stats")
@db_option
@filter_options
@click.option("--area", "area", default=None, metavar="FILE|NAME", help="Only zones meeting this area, hectares counted inside it: a file (GeoJSON, GeoPackage, Shapefile, GeoParquet; any CRS) or a saved area's name.")
@click.option("--per-feature", "per_feature", default=None, metavar="ID_FIELD", help="With --area FILE: rows for each feature (plot) on its own, named by this field.")
@click.option("--repair", is_flag=True, help="Repair an invalid area (make_valid, polygonal parts kept) instead of refusing it.")
@click.option("--by", "by", default=",".join(GROUP_KEYS), show_default=True, help="Group keys, comma-separated.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@dask_option
def stats_command(db, area, per_feature, repair, by, fmt, dask, **filters):
    """Zones, hectares, mean confidence and verified zones per group.

    With --dask the statistics of a snapshot are summed partition by partition on a
    Dask cluster (the same numbers, to the cent).

    \b
    Example:
      forestguard stats --country Brazil --from 2019 --to 2024 --by year,classification --format json
      forestguard stats --db snapshot:s3://my-bucket/snapshots/3fa94c0e12d5b8a1 --by country --dask tcp://scheduler:8786
      forestguard stats --area concession.gpkg --by year        # hectares inside the concession
      forestguard stats --area plots.geojson --per-feature plot_id --from 2021 --format csv
    """
    where = zone_filter(**filters)
    keys = parse_by(by)
    from ..cache import default_cache
    from ..distributed import open_for_reading

    if per_feature is not None and area is None:
        raise click.UsageError("--per-feature needs --area FILE (the plots)")
    with open_for_reading(db, dask) as store:
        if per_feature is not None:
            from ..areas import read_plots
            from ..stats import statistics_by_area

            plots = read_plots(area, per_feature, repair=repair)
            result = statistics_by_area(store, plots, where, keys, id_field=per_feature, name=Path(area).name)
        else:
            if area is not None:
                from ..areas import area_of

                where = where.with_(area=area_of(store, area, repair=repair))
            result = statistics(store, where, keys, cache=default_cache())
    if fmt == "json":
        click.echo(result.to_json())
    elif fmt == "csv":
        click.echo(result.to_csv(), nl=False)
    else:
        click.echo(result.to_table())


def _counted(batch, bar):
    bar.update(len(batch))
    return batch


@click.command("demo")
@db_option
@click.option("--zones", "n", type=click.IntRange(1, 50_000_000), default=100_000, show_default=True, help="How many zones to generate.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: the same seed gives the same zones.")
@click.option("--append", is_flag=True, help="Add to a store that already has zones.")
def demo_command(db, n, seed, append):
    """Generate deterministic synthetic zones inside real countries and load them.

    \b
    Example:
      forestguard demo --zones 1000000 --db data/forestguard.duckdb
    """
    from ..demo import DEMO_AREA_NAME, DemoSpec, demo_area, demo_batches
    from ..streams import read_ahead

    started = time.perf_counter()
    with stores.open(db, create=True) as store:
        existing = store.count()
        if existing and not append:
            raise click.UsageError(f"{redact(store.url)} already has {existing:,} zones; use --append or another --db")
        # Generated and validated a batch ahead (in a thread) while the previous one is stored: bounded memory.
        with tqdm(total=n, unit="zone", unit_scale=True, desc="demo", file=sys.stderr, disable=None, leave=False) as bar:
            loaded = store.insert_batches((_counted(batch, bar) for batch in read_ahead(demo_batches(DemoSpec(zones=n, seed=seed)))), rows=n)
        if not any(a.name == DEMO_AREA_NAME for a in store.saved_areas()):
            store.save_area(demo_area())  # the area report and the dashboard's area list have something to show
        from ..evidence.demo import add_demo_evidence

        evidence = add_demo_evidence(store)  # synthetic reference layers: the evidence pages have something to show
        click.echo(
            f"demo: {loaded:,} zones (seed {seed}) loaded into {store.engine} {redact(store.url)} "
            f"(data version {store.data_version()}) in {time.perf_counter() - started:.1f} s"
        )
        click.echo(evidence)
