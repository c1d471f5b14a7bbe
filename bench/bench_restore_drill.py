"""Restore drill: how long a logical backup, its restore and the check of the restored data take.

The design's targets are RTO 1 h and RPO 5 min. On a PostgreSQL + PostGIS cluster of its own
(or ``--admin-url``) holding ``--zones`` demo zones, it times, as an operator runs them:

1. ``forestguard db backup`` (pg_dump, custom format);
2. ``forestguard db restore`` into a new database (never over the live one);
3. the check: ``forestguard db status --check`` and ``forestguard stats --format json`` on the
   restored database, equal to the live numbers;
4. for comparison, the file route: ``forestguard snapshot create`` and ``snapshot verify``.

Prints each step's wall time and the dump's size; RPO of a logical dump is the time since
the last dump (RDS PITR: ~5 min, see docs/operations.md). Example:

    python bench/bench_restore_drill.py --zones 1000000
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, arguments
from bench_postgis import new_database, postgres


def _options(parser) -> None:
    parser.add_argument("--admin-url", default=None, help="an existing PostgreSQL+PostGIS (default: a cluster of its own)")


def forestguard(*argv: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "forestguard", *argv], cwd=ROOT.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"forestguard {' '.join(argv[:2])} failed: {done.stderr.strip()}")
    return time.perf_counter() - started, done.stdout


def main() -> None:
    args = arguments(__doc__, zones=1_000_000, extra=_options)
    from forestguard import stores
    from forestguard.demo import DemoSpec, demo_zones
    from forestguard.stores.postgis.admin import init

    with postgres(args.admin_url) as admin_url, tempfile.TemporaryDirectory(prefix="fg-drill-") as scratch:
        live = new_database(admin_url)
        init(live)
        started = time.perf_counter()
        with stores.open(live, create=True) as store:
            store.insert(demo_zones(DemoSpec(zones=args.zones, seed=args.seed)))
        print(f"restore drill: {args.zones:,} zones on PostGIS (loaded in {time.perf_counter() - started:.0f} s; figures under load)")
        dump = Path(scratch) / "fg.dump"
        steps = {}
        steps["backup (db backup)"], _ = forestguard("db", "backup", "--db", live, "--out", str(dump))
        restored = new_database(admin_url)
        steps["restore (db restore, new database)"], _ = forestguard("db", "restore", str(dump), "--db", restored)
        check_status, _ = forestguard("db", "status", "--check", "--db", restored)
        check_stats, restored_stats = forestguard("stats", "--db", restored, "--format", "json")
        _, live_stats = forestguard("stats", "--db", live, "--format", "json")
        same = json.loads(restored_stats)["rows"] == json.loads(live_stats)["rows"]
        steps["verify (db status --check + stats)"] = check_status + check_stats
        steps["snapshot create"], _ = forestguard("snapshot", "create", "--db", live, "--out", str(Path(scratch) / "snaps"))
        snapshot = next((Path(scratch) / "snaps").iterdir())
        steps["snapshot verify"], _ = forestguard("snapshot", "verify", str(snapshot))
        for name, seconds in steps.items():
            print(f"  {name:<38} {seconds:8.1f} s")
        restore_total = sum(steps[k] for k in list(steps)[:3])
        print(f"  dump {dump.stat().st_size / 1e6:,.0f} MB; restored numbers equal the live ones: {same}")
        print(f"  backup + restore + verify {restore_total:.0f} s = {restore_total / 3600 * 100:.1f} % of the 1 h RTO; "
              f"peak RSS of this script {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
        if not same:
            raise SystemExit("the restored statistics differ from the live ones")


if __name__ == "__main__":
    main()
