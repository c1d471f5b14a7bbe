"""Shared benchmark plumbing: the demo store, timing and the printed report.

Every benchmark times our path and a peer's path on the same data in the same
run and prints the ratio; the figures go into issue notes, never into tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
sys.path.insert(0, str(ROOT.parent))


def arguments(
    description: str, zones: int = 1_000_000, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """--zones/--seed/--repeat, which every benchmark takes, plus its own options from ``extra``."""
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0] if description else None)
    parser.add_argument("--zones", type=int, default=zones, help="demo zones to run on (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of warm paths")
    if extra:
        extra(parser)
    return parser.parse_args()


def demo_store(zones: int, seed: int = 42) -> str:
    """Path of a DuckDB store with the demo zones, generated once and kept in bench/.cache."""
    from forestguard import stores
    from forestguard.demo import DemoSpec, demo_batches

    path = CACHE / f"demo-{zones}-{seed}.duckdb"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.duckdb")
        tmp.unlink(missing_ok=True)
        started = time.perf_counter()
        with stores.open(str(tmp), create=True) as store:
            store.insert_batches(demo_batches(DemoSpec(zones=zones, seed=seed)), rows=zones)
        tmp.rename(path)
        print(f"(generated {zones:,} demo zones in {time.perf_counter() - started:.1f} s → {path})")
    return str(path)


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (seconds) and the last result."""
    times = []
    result = None
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def report(title: str, ours: float, peer: float, peer_name: str, unit: str = "s") -> None:
    """One line: our time, the peer's, and how many times faster we are."""
    ratio = peer / ours if ours > 0 else float("inf")
    print(f"{title:<52} ours {_fmt(ours, unit):>10}   {peer_name}: {_fmt(peer, unit):>10}   ratio ×{ratio:,.1f}")


def _fmt(seconds: float, unit: str) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def in_process(target: Callable[..., None], *args: object) -> dict:
    """``target(*args, queue)`` in a fresh process (spawned: its memory and peak RSS are its own), and what it put."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result
