"""Report benchmarks: one country report end to end, and a 20-report pipeline on 1 vs 2 workers.

The single report is timed as a scheduler sees it: kernel start, every cell,
HTML export and stats.json (target ≤ 10 s on 1M demo zones). The pipeline
runs the same items twice into fresh folders, once per worker count, and
prints the speed-up of 2 workers over 1.

    python bench/bench_reports.py                 # 1,000,000 demo zones (generated once into bench/.cache)
    python bench/bench_reports.py --zones 100000 --items 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from common import CACHE, ROOT, demo_store, report, arguments as common_arguments

NOTEBOOK = ROOT.parent / "notebooks" / "country_report.ipynb"
TARGET_S = 10.0


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--country", default="Brazil", help="country of the single report (default %(default)s)")
    parser.add_argument("--years", default="2019-2024")
    parser.add_argument("--items", type=int, default=20, help="reports in the pipeline (default %(default)s)")


def single_report(source: str, country: str, years: str, out: Path) -> None:
    from forestguard.reports import run_report

    started = time.perf_counter()
    result = run_report(NOTEBOOK, {"country": country, "years": years}, source=source, out=out)
    total = time.perf_counter() - started
    if not result.ok:
        sys.exit(f"report failed: {result.error}")
    executed = nbformat.read(out / result.files["ipynb"], as_version=4)
    kernel = float(executed.metadata.papermill.duration)
    cells = sorted(
        ((float(c.metadata.papermill.get("duration") or 0), c.source.splitlines()[0]) for c in executed.cells if c.cell_type == "code"),
        reverse=True,
    )
    verdict = "within" if total <= TARGET_S else "OVER"
    print(f"{'one country report (' + country + ', ' + years + ')':<52} {total:6.2f} s   {verdict} the {TARGET_S:.0f} s target")
    print(f"  notebook execution incl. kernel start {kernel:6.2f} s; export + stats.json {total - kernel:5.2f} s")
    for seconds, first_line in cells[:4]:
        print(f"    {seconds:6.2f} s  {first_line[:70]}")


def pipeline_speedup(source: str, items: int, work: Path) -> None:
    from forestguard import reports
    from forestguard.pipelines import PipelineSpec, ReportSpec, run_pipeline

    with reports.open_source(source) as store:
        countries = store.countries()
        years = store.years()
    grid = [(c, str(y)) for y in reversed(years) for c in countries][:items]
    # One country list per year keeps the spec a plain grid; the item count is exact.
    specs = []
    for year in sorted({y for _, y in grid}):
        specs.append(ReportSpec(NOTEBOOK, {"country": [c for c, y in grid if y == year], "years": year}))

    def timed_run(workers: int) -> float:
        spec = PipelineSpec(name=f"bench-{workers}", path=work, reports=tuple(specs), source=source,
                            output=str(work / f"workers-{workers}"), timeout=600, retries=0, backoff=0, workers=workers)
        started = time.perf_counter()
        run = run_pipeline(spec, progress=False)
        elapsed = time.perf_counter() - started
        counts = run.counts()
        print(f"  {workers} worker(s): {len(run.items)} reports in {elapsed:6.1f} s ({counts['ok']} ok, {counts['failed']} failed)")
        return elapsed

    one, two = timed_run(1), timed_run(2)
    report(f"pipeline of {len(grid)} reports, 2 workers vs 1", two, one, "1 worker")


def main() -> None:
    args = common_arguments(__doc__, extra=_options)
    source = demo_store(args.zones, args.seed)
    print(f"== reports on {args.zones:,} demo zones ({source})")
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="reports-") as scratch:
        work = Path(scratch)
        single_report(source, args.country, args.years, work / "single")
        pipeline_speedup(source, args.items, work)


if __name__ == "__main__":
    main()
