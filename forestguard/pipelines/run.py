"""A pipeline run: plan, skip what is complete, execute the rest, summarise, index."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from ..errors import UserError
from ..reports.base import SourceInfo, open_source, resolve_source, source_info
from ..reports.record import write_json_atomic
from .execute import Job, Outcome, run_dask, run_local
from .index import index_html
from .plan import Item, SourceFacts, plan
from .spec import PipelineSpec
from .state import OutputLayout

EXECUTORS = ("local", "dask")


@dataclass
class PipelineRun:
    """What a run did (or, with ``dry_run``, would do)."""

    spec: PipelineSpec
    layout: OutputLayout
    source: SourceInfo
    items: list[Item]
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "failed": 0, "skipped": 0, "pending": 0}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.spec.name,
            "output": self.layout.location,
            "source": self.source.to_dict(),
            "counts": self.counts(),
            "items": [o.to_dict() for o in sorted(self.outcomes, key=lambda o: o.name)],
        }


class Progress:
    """Done / failed / remaining on stderr, so stdout keeps the summary table clean."""

    def __init__(self, total: int, skipped: int, enabled: bool) -> None:
        self.done = self.failed = 0
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=skipped, unit="report", file=sys.stderr, disable=not enabled or None, dynamic_ncols=True)
        self.remaining = total - skipped
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_postfix_str(f"done {self.done} · failed {self.failed} · remaining {self.remaining}", refresh=True)

    def update(self, outcome: Outcome) -> None:
        self.remaining -= 1
        if outcome.status == "failed":
            self.failed += 1
            if self.enabled:
                self.bar.write(f"failed: {outcome.name}: {outcome.error}", file=sys.stderr)
        else:
            self.done += 1
        self.bar.update()
        self._refresh()

    def close(self) -> None:
        self.bar.close()


def run_pipeline(
    spec: PipelineSpec,
    *,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> PipelineRun:
    """Run every item of ``spec`` that is not complete for its run key; one failure never stops the others."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise UserError("--scheduler needs --executor dask")
    source_url = resolve_source(spec.source)
    with open_source(source_url, dask="") as store:  # planning reads a few numbers: no cluster for that
        source, facts = source_info(store), SourceFacts.of(store)
    layout = OutputLayout.for_output(spec.output, spec.name)
    run = PipelineRun(spec, layout, source, plan(spec, facts, source), dry_run=dry_run)
    if dry_run:
        run.outcomes.extend(Outcome(i.name, i.key, i.parameters, "pending") for i in _skip_complete(run))
        return run
    layout.check_publishing()
    with layout.locked():
        layout.clear_staging()
        pending = _skip_complete(run)
        jobs = [Job(i, str(layout.root), layout.publish_to, source_url, spec.timeout, spec.retries, spec.backoff, spec.show_code) for i in pending]
        bar = Progress(len(run.items), len(run.items) - len(pending), progress)

        def done(outcome: Outcome) -> None:
            run.outcomes.append(outcome)
            bar.update(outcome)

        try:
            if executor == "dask":
                run_dask(jobs, workers or spec.workers, scheduler, done)
            else:
                run_local(jobs, workers or spec.workers, done)
        finally:
            bar.close()
            layout.clear_staging()
            write_summary(run)
            layout.publish_index("index.html", "summary.json")
    return run


def _skip_complete(run: PipelineRun) -> list[Item]:
    """Record the items complete for their run key as skipped; return the others."""
    pending = []
    for item in run.items:
        marker = run.layout.completed(item)
        if marker is None:
            pending.append(item)
        else:
            html = f"{item.name}/{item.name}.html"
            run.outcomes.append(Outcome(item.name, item.key, item.parameters, "skipped", marker.get("duration_s", 0.0), 0, None, html))
    return pending


def write_summary(run: PipelineRun) -> None:
    """``summary.json`` and ``index.html`` next to the reports."""
    write_json_atomic(run.layout.root / "summary.json", run.to_dict())
    (run.layout.root / "index.html").write_text(index_html(run.spec.name, run.outcomes, run.counts(), run.source.label), encoding="utf-8")


def summary_table(run: PipelineRun) -> str:
    """Plain-text table: item, status, duration and the error line (the run key on a dry run)."""
    last = "run key" if run.dry_run else "error"
    rows = [("item", "status", "duration", last)]
    for outcome in sorted(run.outcomes, key=lambda o: o.name):
        detail = outcome.key if run.dry_run else outcome.error or ""
        rows.append((outcome.name, outcome.status, f"{outcome.duration_s:.1f} s" if outcome.duration_s else "-", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)).rstrip() for row in rows)
