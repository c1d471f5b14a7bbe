"""What the PostGIS tests look at directly in the database, independently of the store."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Fingerprint:
    """Everything "the table exactly as it was" means: rows, indexes, data version."""

    rows: int
    content_md5: str | None
    indexes: tuple[str, ...]
    data_version: int


def fingerprint(url: str) -> Fingerprint:
    with psycopg.connect(url) as con:
        rows, digest = con.execute(
            "SELECT count(*), md5(string_agg(z::text, '|' ORDER BY id)) FROM deforestation_zones z"
        ).fetchone()
        indexes = tuple(
            r[0] for r in con.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'deforestation_zones' ORDER BY indexname"
            )
        )
        version = con.execute("SELECT value FROM forestguard_meta WHERE key = 'data_version'").fetchone()[0]
    return Fingerprint(rows, digest, indexes, version)


def scalar(url: str, query: str, params: list | None = None):
    with psycopg.connect(url, autocommit=True) as con:
        return con.execute(query, params).fetchone()[0]


def forestguard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command line as operators run it: a real process, real exit code."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "forestguard", *args], capture_output=True, text=True, env=environment, timeout=300
    )
