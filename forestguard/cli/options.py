"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..schema import ALL_GROUP_KEYS, Classification
from ..stores.base import ZoneFilter

db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Zone store: a .duckdb path, postgresql://…, or snapshot:PATH. Default: $DATABASE_URL, then data/forestguard.duckdb.",
)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--country/--year/--from/--to/--classification/--source/--verified-only/--min-confidence."""
    options = [
        click.option("--country", "countries", multiple=True, metavar="NAME", help="Only this country (repeatable)."),
        click.option("--year", type=int, default=None, help="Only this year."),
        click.option("--from", "year_from", type=int, default=None, metavar="YEAR", help="First year (inclusive)."),
        click.option("--to", "year_to", type=int, default=None, metavar="YEAR", help="Last year (inclusive)."),
        click.option("--classification", "classifications", multiple=True, metavar="CLASS", help="legal or illegal (repeatable)."),
        click.option("--source", "sources", multiple=True, metavar="NAME", help="Only zones from this source (repeatable)."),
        click.option("--verified-only", is_flag=True, help="Only verified zones."),
        click.option("--min-confidence", type=click.FloatRange(0, 1), default=None, help="Only zones with confidence ≥ this."),
        click.option("--overlaps", "overlaps", multiple=True, metavar="KIND",
                     help="Only zones sharing area with a reference layer of this kind (repeatable: any of them), as evidence compute found."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def zone_filter(countries, year, year_from, year_to, classifications, sources, verified_only, min_confidence, overlaps=()) -> ZoneFilter:
    """Build a ZoneFilter from the shared options; contradictions are usage errors."""
    if year is not None and (year_from is not None or year_to is not None):
        raise click.UsageError("--year cannot be combined with --from/--to")
    if year is not None:
        year_from = year_to = year
    if year_from is not None and year_to is not None and year_from > year_to:
        raise click.UsageError(f"--from {year_from} is after --to {year_to}")
    try:
        classes = tuple(dict.fromkeys(Classification.parse(c) for c in classifications))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--classification") from None
    from ..evidence.layers import LayerRefused, check_kinds

    try:
        kinds = check_kinds(overlaps)
    except LayerRefused as exc:
        raise click.BadParameter(str(exc), param_hint="--overlaps") from None
    return ZoneFilter(
        countries=tuple(countries),
        year_from=year_from,
        year_to=year_to,
        classifications=classes,
        sources=tuple(sources),
        verified_only=verified_only,
        min_confidence=min_confidence,
        overlaps=kinds,
    )


def parse_by(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in ALL_GROUP_KEYS]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {','.join(ALL_GROUP_KEYS)}", param_hint="--by")
    return keys
