"""``forestguard pipeline``: run a report pipeline file, as a scheduler would."""

from __future__ import annotations

import json

import click

from ..config import redact
from ..errors import UserError


@click.group("pipeline")
def pipeline_group() -> None:
    """Run report pipelines (pipelines/*.yaml): many reports, resumable, for schedulers."""


@pipeline_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Reports run at once (default: the file's workers:).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None, help="local: a process pool on this machine (default); dask: a dask.distributed cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler (tcp://host:8786); without it --executor dask starts a LocalCluster of --workers processes.")
@click.option("--dask", "dask", default=None, metavar="SCHEDULER",
              help="Run the reports as tasks on a Dask cluster ('local': a LocalCluster of --workers processes, or tcp://HOST:8786); "
              "each reads the source where it runs. Same as --executor dask [--scheduler]. Default: $FORESTGUARD_DASK.")
@click.option("--dry-run", is_flag=True, help="List the items, their run keys and what a run would skip; run nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="json prints the summary as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_command(file: str, workers: int | None, executor: str | None, scheduler: str | None, dask: str | None, dry_run: bool, fmt: str,
                quiet: bool) -> None:
    """Run every report of pipeline FILE that is not already complete.

    Each item's run key is its notebook's code + parameters + the source's data
    version: an item complete for its key is skipped, so a killed run re-run
    finishes only what is missing. A failing item does not stop the others;
    the run prints a summary table (item, status, duration, error), writes
    index.html and summary.json next to the reports, and exits 1 if any item
    failed. Progress goes to stderr.

    \b
    Examples:
      forestguard pipeline run pipelines/yearly_reports.yaml --workers 4
      forestguard pipeline run pipelines/annual_overview.yaml --dry-run
      forestguard pipeline run pipelines/yearly_reports.yaml --dask tcp://scheduler:8786
    """
    from ..distributed import LOCAL, scheduler_for
    from ..pipelines import load_pipeline, run_pipeline, summary_table

    if dask and (executor == "local" or scheduler):
        raise click.UsageError("--dask is --executor dask [--scheduler]: give one or the other")
    chosen = dask or (scheduler_for(None) if executor is None and not scheduler else None)
    if chosen:
        executor, scheduler = "dask", None if chosen.strip().lower() == LOCAL else chosen
    executor = executor or "local"

    spec = load_pipeline(file)
    run = run_pipeline(spec, workers=workers, executor=executor, scheduler=scheduler, dry_run=dry_run, progress=not quiet)
    if fmt == "json":
        click.echo(json.dumps({**run.to_dict(), "dry_run": dry_run}, ensure_ascii=False))
    else:
        click.echo(summary_table(run))
        counts = run.counts()
        if dry_run:
            click.echo(f"\n{len(run.items)} item(s): {counts['pending']} to run, {counts['skipped']} complete (dry run: nothing ran)")
        else:
            click.echo(
                f"\n{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped (complete) — "
                f"index: {redact(run.layout.location).rstrip('/')}/index.html"
            )
    if run.failed:
        raise UserError(f"{len(run.failed)} of {len(run.items)} report(s) failed")
