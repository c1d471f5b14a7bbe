"""``forestguard report``: run one parameterized report notebook."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click

from ..config import redact
from ..errors import UserError


def parse_parameters(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-p name=value`` pairs as a dict (values stay text: the runner converts them to the notebook's types)."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="-p")
        parameters[name.strip()] = value
    return parameters


@click.group("report")
def report_group() -> None:
    """Run report notebooks into an executed notebook, an offline HTML page and stats.json."""


@report_group.command("run")
@click.argument("notebook", type=click.Path(dir_okay=False, path_type=str))
@click.option("-p", "--parameter", "pairs", multiple=True, metavar="NAME=VALUE", help="A notebook parameter (repeatable), e.g. -p country=Brazil.")
@click.option("--source", default="", metavar="URL", help="Store the report reads: a .duckdb path, postgresql://… or snapshot:PATH. Default: $DATABASE_URL, then data/forestguard.duckdb.")
@click.option("--out", default=None, metavar="DIR|s3://BUCKET/PREFIX", help="Where the report goes. Default: data/reports/<notebook>-<parameters>/.")
@click.option("--show-code", is_flag=True, help="Keep the code cells in the HTML (hidden by default).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS", help="Fail the report if it runs longer than this.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json prints the result as one JSON object.")
@click.option("--dask", "dask", metavar="SCHEDULER", default=None,
              help="Compute the report's statistics and maps of a snapshot source on a Dask cluster: 'local' or tcp://HOST:8786. Default: $FORESTGUARD_DASK.")
def run_command(notebook: str, pairs: tuple[str, ...], source: str, out: str | None, show_code: bool, timeout: float | None, fmt: str,
                dask: str | None) -> None:
    """Execute NOTEBOOK with papermill and write NAME.ipynb, NAME.html and stats.json.

    The HTML opens offline (JavaScript and images inline). stats.json holds
    every number the report shows, the source's engine, data version and
    snapshot id, and the `forestguard stats` command that reproduces each
    statistic. An invalid parameter (unknown country, a year without data)
    fails with a one-line reason and exit code 1; the failed report, with
    the reason in place of the content, is kept.

    \b
    Examples:
      forestguard report run notebooks/country_report.ipynb -p country=Brazil -p years=2019-2024
      forestguard report run notebooks/yearly_overview.ipynb -p year=2023 --source snapshot:data/snapshots/2024-06
      forestguard report run notebooks/country_report.ipynb -p country=Peru --out s3://my-bucket/reports/peru/
      forestguard report run notebooks/country_report.ipynb -p country=Brazil --source snapshot:s3://my-bucket/snapshots/3fa94c0e --dask tcp://scheduler:8786
    """
    from ..distributed import LOCAL, check_usable, cluster, scheduler_of
    from ..reports.base import resolve_source
    from ..reports.runner import run_report

    url = resolve_source(source)
    scheduler = scheduler_of(url, dask)
    with contextlib.ExitStack() as stack:
        if scheduler:  # a scheduler that cannot be reached, or a source that is no snapshot, fails here, not in the kernel
            check_usable(url, scheduler)
            if scheduler.strip().lower() == LOCAL:  # started here, so it stops with the command, whatever the kernel does
                scheduler = stack.enter_context(cluster(LOCAL)).scheduler.address
        result = run_report(notebook, parse_parameters(pairs), source, out, show_code, timeout=timeout, dask=scheduler)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        where = redact(result.output)
        for kind in ("html", "ipynb", "stats"):
            if kind in result.files:
                click.echo(f"{kind:<5} {where.rstrip('/')}/{result.files[kind]}")
    if not result.ok:
        raise UserError(f"{result.name}: {result.error}")


@report_group.command("params")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False, path_type=str))
def params_command(notebook: str) -> None:
    """List the parameters NOTEBOOK takes, with their types and defaults.

    \b
    Example:
      forestguard report params notebooks/country_report.ipynb
    """
    from ..reports.runner import declared_parameters

    for name, spec in declared_parameters(notebook).items():
        note = {"source": "  (--source)", "output_dir": "  (set by the runner from --out)"}.get(name, "")
        help_text = f"  # {spec['help']}" if spec.get("help") else ""
        click.echo(f"{name}: {spec['inferred_type_name']} = {spec['default']}{help_text}{note}")
