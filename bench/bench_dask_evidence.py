"""Evidence filters on the Dask engine: what a task pays to read its zones' evidence, against the embedded engine.

On the demo zones with synthetic evidence (inserted, not computed: what is measured is reading
it): every zone a suggestion (1 in 40 illegal, 1 in 40 legal), 1 zone in 50 a finding of a
protected area. Printed:

- per partition task (the worker's function, in this process, its copy of the evidence warm):
  CPU time of statistics by country (no evidence), by suggested, and overlapping a kind;
- the worker's copy: time to read it once, bytes it keeps;
- the same three statistics end to end: embedded snapshot engine vs ``--dask local`` (2 workers),
  answers checked equal, and the workers' RSS before and after they read evidence.

    python bench/bench_dask_evidence.py --zones 1000000 --partition-rows 250000
"""

from __future__ import annotations

import os
import time

from common import CACHE, arguments, demo_store

CASES = (("by country", (), ("country",)), ("by suggested", (), ("suggested",)), ("overlaps protected_area", ("protected_area",), ("country",)))


def _snapshot(zones: int, seed: int, partition_rows: int) -> str:
    """A snapshot of the demo store with synthetic evidence, made once in bench/.cache."""
    import shutil

    from forestguard import snapshots, stores

    marker = CACHE / f"evidence-snapshot-{zones}-{seed}-{partition_rows}.txt"
    if marker.exists():
        return marker.read_text()
    path = CACHE / f"evidence-{zones}-{seed}.duckdb"
    shutil.copy(demo_store(zones, seed), path)
    with stores.open(str(path)) as store:
        con = store._con
        con.execute("INSERT INTO forestguard_layers VALUES ('PA', 'protected_area', 'synthetic', DATE '2024-01-01', 'x', NULL, 1, now()::TIMESTAMP, 1)")
        con.execute("INSERT INTO forestguard_findings SELECT id, 'PA', 1, 'f' || (id % 97), 1.0, 0.5, true FROM deforestation_zones WHERE hash(id) % 50 = 0")
        con.execute("INSERT INTO forestguard_evidence SELECT id, year, CAST(hash(id) AS VARCHAR), CASE hash(id) % 40 WHEN 0 THEN 'illegal' "
                    "WHEN 1 THEN 'legal' ELSE 'undetermined' END, NULL, 'synthetic-1' FROM deforestation_zones")
        manifest = snapshots.create(store, CACHE / "evidence-snapshots", partition_rows=partition_rows)
    marker.write_text(f"snapshot:{manifest.location}")
    return marker.read_text()


def per_task(url: str) -> None:
    from forestguard import snapshots
    from forestguard.distributed import evidence, partitions
    from forestguard.stores.base import ZoneFilter

    folder, manifest = snapshots.locate(url)
    part = partitions.Partition.of(folder.url, manifest, manifest.files[0])
    started = time.perf_counter()
    kept = evidence.of_snapshot(folder.url, manifest)
    print(f"worker's copy of {manifest.rows:,} zones' evidence: read in {time.perf_counter() - started:.2f} s, keeps {kept.nbytes / 2**20:.1f} MiB")
    for name, kinds, by in CASES:
        cpu = []
        for _ in range(5):
            t = time.process_time()
            partitions.aggregate(part, ZoneFilter(overlaps=kinds), by)
            cpu.append(time.process_time() - t)
        print(f"  task on a {part.file.rows:,}-zone partition, {name:<24} {min(cpu):.3f} s CPU")


def end_to_end(url: str) -> None:
    from forestguard import stores
    from forestguard.distributed import open_store
    from forestguard.stats import statistics
    from forestguard.stores.base import ZoneFilter

    answers = {}
    with stores.open(url) as embedded, open_store(url, "local") as dask_store:
        def rss() -> int:
            return sum(dask_store.client.run(lambda: int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) >> 10).values())

        statistics(dask_store, ZoneFilter(), ["year"])  # the workers fetch and hash their partitions once
        statistics(embedded, ZoneFilter(), ["year"])
        before = rss()
        for name, kinds, by in CASES:
            for engine, store in (("embedded", embedded), ("dask", dask_store)):
                t = time.perf_counter()
                answers[engine, name] = statistics(store, ZoneFilter(overlaps=kinds), by).rows
                answers[engine, name, "s"] = time.perf_counter() - t
            assert answers["embedded", name] == answers["dask", name], name
            print(f"  {name:<24} embedded {answers['embedded', name, 's']:.2f} s   dask local (2 workers) {answers['dask', name, 's']:.2f} s   (same rows)")
        print(f"  workers' RSS {before} MiB before evidence, {rss()} MiB after (2 workers); load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    options = arguments(__doc__, extra=lambda p: p.add_argument("--partition-rows", type=int, default=250_000))
    url = _snapshot(options.zones, options.seed, options.partition_rows)
    per_task(url)
    end_to_end(url)


if __name__ == "__main__":
    main()
