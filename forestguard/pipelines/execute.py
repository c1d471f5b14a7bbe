"""Running items: one item with retries (:func:`run_item`), many on a process pool or Dask.

:func:`run_item` does all the work of an item where it runs (execute, retry,
commit into the output folder), so executors only hand out items and collect
outcomes; a Dask cluster needs nothing but an output folder its workers share.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat

from ..reports.base import one_line
from .plan import Item
from .state import OutputLayout

OnDone = Callable[["Outcome"], None]


@dataclass(frozen=True)
class Job:
    """An item with everything a worker needs to run it (picklable, no open handles)."""

    item: Item
    root: str
    publish_to: str | None
    source: str
    timeout: float | None
    retries: int
    backoff: float
    show_code: bool


@dataclass
class Outcome:
    """How an item ended: ``ok``, ``failed`` or ``skipped`` (complete from an earlier run)."""

    name: str
    key: str
    parameters: dict[str, Any]
    status: str
    duration_s: float = 0.0
    attempts: int = 0
    error: str | None = None
    html: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _retry_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): backoff, 2×backoff, 4×backoff, …"""
    return backoff * 2 ** (attempt - 1)


def run_item(job: Job) -> Outcome:
    """Run one report (retrying what a retry can fix), commit it, publish it; never raises."""
    from ..reports.runner import ReportResult, run_report

    item, layout = job.item, OutputLayout(Path(job.root), job.publish_to)
    started = time.monotonic()
    content = nbformat.reads(item.notebook_json, as_version=4)
    attempt = 0
    while True:
        attempt += 1
        staged = layout.staging_dir(item)
        try:
            # dask="": each report reads the snapshot itself where it runs (on a Dask worker, the worker does): a
            # kernel sending tasks to the cluster its own item occupies could wait for a thread forever.
            result = run_report(item.notebook, item.parameters, job.source, staged, job.show_code, timeout=job.timeout, name=item.name,
                                content=content, dask="")
        except Exception as exc:  # noqa: BLE001 - an item's failure must not stop the pipeline
            result = ReportResult(item.notebook, item.name, item.parameters, str(staged), "failed", 0.0,
                                  error=f"{type(exc).__name__}: {one_line(exc)}", retryable=False)
        if result.ok or not result.retryable or attempt > job.retries:
            break
        shutil.rmtree(staged, ignore_errors=True)
        time.sleep(_retry_delay(job.backoff, attempt))  # backoff between attempts, not synchronisation
    duration = round(time.monotonic() - started, 2)
    record = {"status": result.status, "error": result.error, "attempts": attempt, "duration_s": duration, "source": result.source}
    layout.commit(item, staged, record)
    try:
        layout.publish_item(item)
    except Exception as exc:  # noqa: BLE001 - reported like any other failure of the item
        result.status, result.error = "failed", f"publishing to {layout.publish_to} failed: {one_line(exc)}"
    html = result.files.get("html")
    return Outcome(item.name, item.key, item.parameters, result.status, duration, attempt, result.error,
                   f"{item.name}/{html}" if html else None)


def _lost(job: Job, exc: BaseException) -> Outcome:
    """An item whose worker died under it (killed, out of memory)."""
    return Outcome(job.item.name, job.item.key, job.item.parameters, "failed", error=f"worker lost: {type(exc).__name__}: {one_line(exc)}")


def run_local(jobs: Iterable[Job], workers: int, on_done: OnDone) -> None:
    """Items on a pool of ``workers`` processes (each item's kernel is its own process too).

    Spawned, not forked, workers: the parent holds threads (progress bar) and
    library state that a fork would copy half-way.
    """
    jobs = list(jobs)
    if not jobs:
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures: dict[Future[Outcome], Job] = {pool.submit(run_item, job): job for job in jobs}
        for future in as_completed(futures):
            exc = future.exception()
            on_done(_lost(futures[future], exc) if exc else future.result())


def run_dask(jobs: Iterable[Job], workers: int, scheduler: str | None, on_done: OnDone) -> None:
    """Items as tasks on a Dask cluster: ``scheduler`` (tcp://host:8786), or a LocalCluster of ``workers`` processes."""
    from ..distributed import LOCAL, cluster

    jobs = list(jobs)
    if not jobs:
        return
    # One thread per worker: the work is a kernel subprocess, and reports should not share a process.
    with cluster(scheduler or LOCAL, workers=min(workers, len(jobs)), threads_per_worker=1) as client:
        from dask.distributed import as_completed as dask_completed

        futures = {
            client.submit(run_item, job, key=f"report-{job.item.name}-{job.item.key}", pure=False): job for job in jobs
        }
        for future in dask_completed(list(futures)):
            exc = future.exception()
            on_done(_lost(futures[future], exc) if exc else future.result())
