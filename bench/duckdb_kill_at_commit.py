"""Plain DuckDB, no ForestGuard: is a transaction killed at its commit replayed all or nothing?

Reported (issue 22): an ingest killed at its commit left the new zones in the file but the
data version (a meta row updated in the same transaction) unchanged, 5 of 5 tries, also with
plain DuckDB 1.5.5 and the zone table's definition. This script is the minimal reproducer
meant for an upstream report: it builds the zone table and the meta table as the embedded
store does (PRIMARY KEY id from a sequence, CHECKs, DECIMAL, GEOMETRY, a meta row), commits one
load, then starts a second load in a child process — INSERT of N rows from a registered Arrow
table + UPDATE of the meta row, one transaction — and SIGKILLs it when the WAL, which DuckDB
writes during the commit, reaches each of a series of sizes; then it reopens the file (WAL
replay) and checks that the zones and the meta row moved together.

    python bench/duckdb_kill_at_commit.py --rows 100000 --tries 3

Prints one line per kill point and a summary: "consistent" (nothing or everything of the
killed transaction), or "INCONSISTENT" with the counts. No upstream report could be filed
from this machine (no network); the issue tracker's stored copy has no matching report
(searched: WAL replay, update lost after kill, commit atomicity).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DDL = """
CREATE SEQUENCE zones_id_seq;
CREATE TABLE zones (
    id INTEGER PRIMARY KEY DEFAULT nextval('zones_id_seq'),
    country VARCHAR NOT NULL CHECK (length(country) <= 100),
    area_ha DECIMAL(10,2) NOT NULL,
    year INTEGER NOT NULL,
    confidence DECIMAL(3,2) CHECK (confidence BETWEEN 0 AND 1),
    geometry GEOMETRY NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta VALUES ('data_version', 0);
"""
#: A small polygon as WKB (GEOMETRY and ST_GeomFromWKB are in DuckDB's core).
SQUARE = bytes.fromhex("0103000000010000000500000000000000000000000000000000000000000000000000f03f0000000000000000"
                       "000000000000f03f000000000000f03f0000000000000000000000000000f03f00000000000000000000000000000000")


def load(con, rows: int, seed: int, say=lambda _: None) -> None:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    table = pa.table({
        "country": pa.array([f"c{i % 50}" for i in range(rows)]),
        "area_ha": pa.array(rng.uniform(0.1, 900, rows)),
        "year": pa.array(rng.integers(2001, 2024, rows)),
        "confidence": pa.array(rng.uniform(0, 1, rows)),
        "geometry": pa.array([SQUARE] * rows, pa.binary()),
    })
    con.register("incoming", table)
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO zones (country, area_ha, year, confidence, geometry) SELECT country, area_ha::DECIMAL(10,2), year, "
                "confidence::DECIMAL(3,2), ST_GeomFromWKB(geometry) FROM incoming")
    con.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
    say("committing")
    con.execute("COMMIT")
    say("committed")


def child(path: str, rows: int) -> None:
    import duckdb

    con = duckdb.connect(path)
    load(con, rows, seed=2, say=lambda word: print(word, flush=True))
    time.sleep(3600)  # killed before this ends


def one_try(rows: int, wal_bytes: int) -> tuple[str, int, int, int | None]:
    import duckdb

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.duckdb")
        with duckdb.connect(path) as con:
            con.execute(DDL)
            load(con, rows, seed=1)
        process = subprocess.Popen([sys.executable, __file__, "--child", path, "--rows", str(rows)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "committing"
        committed = threading.Event()
        threading.Thread(target=lambda: (process.stdout.readline(), committed.set()), daemon=True).start()
        wal = Path(path + ".wal")
        while not committed.is_set() and not (wal.exists() and wal.stat().st_size >= wal_bytes):
            time.sleep(0.0005)
        size = wal.stat().st_size if wal.exists() else None
        process.send_signal(signal.SIGKILL)
        process.wait()
        with duckdb.connect(path) as con:
            zones = con.execute("SELECT count(*) FROM zones").fetchone()[0]
            version = con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]
        consistent = (zones, version) in ((rows, 1), (2 * rows, 2))
        return ("consistent" if consistent else "INCONSISTENT"), zones, version, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=2, help="tries per kill point")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return
    import duckdb

    print(f"DuckDB {duckdb.__version__}, {args.rows:,} rows per load")
    bad = total = 0
    for wal_bytes in (1, 64 << 10, 1 << 20, 4 << 20, 8 << 20, 12 << 20, 1 << 40):
        for _ in range(args.tries):
            outcome, zones, version, size = one_try(args.rows, wal_bytes)
            total += 1
            bad += outcome != "consistent"
            label = "COMMIT returned" if wal_bytes == 1 << 40 else f"WAL ≥ {wal_bytes:,} B"
            print(f"kill at {label:>20}: WAL {size if size is not None else '-':>11} B → zones {zones:,}, data_version {version}: {outcome}")
    print(f"{bad} inconsistent of {total} kills")


if __name__ == "__main__":
    main()
