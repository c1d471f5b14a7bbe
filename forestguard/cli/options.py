"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Any, Callable

import click

from .. import filters
from ..schema import ALL_GROUP_KEYS
from ..stores.base import ZoneFilter

db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Zone store: a .duckdb path, postgresql://…, or snapshot:PATH. Default: $DATABASE_URL, then data/forestguard.duckdb.",
)

#: How a listing command prints: aligned text for people, JSON for scripts.
list_format_option = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)

dask_option = click.option(
    "--dask",
    "dask",
    metavar="SCHEDULER",
    default=None,
    help="Compute on a Dask cluster whose workers read the snapshot's files: 'local' (a LocalCluster) or tcp://HOST:8786. "
    "Needs a snapshot (--db snapshot:…). Default: $FORESTGUARD_DASK (for snapshots), else the embedded engine.",
)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--country/--year/--from/--to/--classification/--source/--verified-only/--min-confidence/--bbox."""
    options = [
        click.option("--country", "countries", multiple=True, metavar="NAME", help="Only this country (repeatable)."),
        click.option("--year", type=int, default=None, help="Only this year."),
        click.option("--from", "year_from", type=int, default=None, metavar="YEAR", help="First year (inclusive)."),
        click.option("--to", "year_to", type=int, default=None, metavar="YEAR", help="Last year (inclusive)."),
        click.option("--classification", "classifications", multiple=True, metavar="CLASS", help="legal or illegal (repeatable)."),
        click.option("--source", "sources", multiple=True, metavar="NAME", help="Only zones from this source (repeatable)."),
        click.option("--verified-only", is_flag=True, help="Only verified zones."),
        click.option("--min-confidence", type=click.FloatRange(0, 1), default=None, help="Only zones with confidence ≥ this."),
        click.option("--bbox", default=None, metavar="XMIN,YMIN,XMAX,YMAX", help="Only zones whose bounding box meets this lon/lat box."),
        click.option("--overlaps", "overlaps", multiple=True, metavar="KIND",
                     help="Only zones sharing area with a reference layer of this kind (repeatable: any of them), as evidence compute found."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def zone_filter(countries, year, year_from, year_to, classifications, sources, verified_only, min_confidence, bbox=None,
                overlaps=()) -> ZoneFilter:
    """Build a ZoneFilter from the shared options (checked by :mod:`forestguard.filters`); contradictions are usage errors."""
    try:
        return filters.zone_filter(
            countries=countries, year=year, year_from=year_from, year_to=year_to, classifications=classifications, sources=sources,
            verified_only=verified_only, min_confidence=min_confidence, bbox=filters.parse_bbox(bbox, "--bbox"), overlaps=overlaps,
            spell=lambda name: f"--{name}",
        )
    except filters.FilterError as exc:
        raise click.UsageError(str(exc)) from None


def parse_by(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in ALL_GROUP_KEYS]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {','.join(ALL_GROUP_KEYS)}", param_hint="--by")
    return keys
