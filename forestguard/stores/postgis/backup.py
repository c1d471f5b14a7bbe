"""``db backup`` / ``db restore``: pg_dump's custom format, checked, written whole or not at all.

A backup is the whole database (extension, zone table, ForestGuard's bookkeeping), dumped to
a temporary name, read back with ``pg_restore --list`` to prove the archive is complete, then
renamed. A restore runs in one transaction (``--single-transaction --exit-on-error``): it
lands whole or leaves the target as it was. Ownership and grants are not restored (the roles
of a restore target rarely match the source's); extension comments are skipped because only
an extension's owner may set them.

After a restore the data version jumps to at least the current time in milliseconds. The
restored counter is older than versions the caches may already hold for the database the
backup replaces; without the jump, the next ingest would reuse one of those versions and
old cached numbers would be served for new data.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ...config import redact
from ...errors import UserError
from ...schema import TABLE
from .connection import connect, database_name, without_password
from .migrations import META_TABLE, has_zone_table
from .role import require_primary

_ADVANCE_VERSION = f"""
UPDATE {META_TABLE} SET value = GREATEST(value + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
WHERE key = 'data_version' RETURNING value
"""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    zones: int
    data_version: int | None


@dataclass(frozen=True)
class RestoreResult:
    zones: int
    data_version: int | None


def pg_tool(name: str) -> str:
    """A PostgreSQL client program: on PATH, else Debian's versioned folders (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major_version, reverse=True)
    if candidates:
        return candidates[0]
    raise UserError(f"{name} is not installed (Debian/Ubuntu: postgresql-client-15; it must be at least the server's version)")


def _major_version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _run(args: list[str], url: str, what: str) -> subprocess.CompletedProcess[str]:
    conninfo, password = without_password(url)
    env = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    done = subprocess.run([*args, "--dbname", conninfo], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:800]
        raise UserError(f"{what} failed: {redact(detail)}")
    return done


def _archive_listing(path: Path) -> list[str]:
    listed = subprocess.run([pg_tool("pg_restore"), "--list", str(path)], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise UserError(f"{path} is not a readable pg_dump archive: {' '.join(listed.stderr.split())[:300]}")
    return listed.stdout.splitlines()


def backup(url: str, out: Path) -> BackupResult:
    """Dump the database ``url`` names to ``out`` (custom format)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with connect(url, autocommit=True) as con:
        zones = int(con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]) if has_zone_table(con) else 0
        version = _data_version(con)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _run([pg_tool("pg_dump"), "--format=custom", "--file", str(tmp)], url, f"pg_dump of {redact(url)}")
        _archive_listing(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(out, out.stat().st_size, zones, version)


def restore(path: Path, url: str, *, clean: bool = False) -> RestoreResult:
    """Restore the archive ``path`` into the database ``url`` names, all or nothing."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such backup file")
    listing = _archive_listing(path)
    if not any(re.search(rf" TABLE \S+ {TABLE} ", line) for line in listing):
        raise UserError(f"{path} holds no {TABLE} table: is it a ForestGuard backup?")
    with connect(url, autocommit=True) as con:
        require_primary(con, url, "db restore")
        if has_zone_table(con) and not clean:
            zones = int(con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
            raise UserError(
                f"{redact(url)} ({database_name(url)}) already has a {TABLE} table with {zones:,} zones: "
                "restore into an empty database, or pass --clean to replace what is there"
            )
    with tempfile.TemporaryDirectory(prefix="fg-restore-") as workdir:
        use_list = Path(workdir) / "restore.list"
        use_list.write_text("\n".join(line for line in listing if " COMMENT - EXTENSION " not in line) + "\n")
        args = [pg_tool("pg_restore"), "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
                "--use-list", str(use_list)]
        if clean:
            args += ["--clean", "--if-exists"]
        _run([*args, str(path)], url, f"pg_restore into {redact(url)}")
    with connect(url, autocommit=True) as con:
        con.execute(f"ANALYZE {TABLE}")
        version = con.execute(_ADVANCE_VERSION).fetchone() if _data_version(con) is not None else None
        zones = int(con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
    return RestoreResult(zones, int(version[0]) if version else None)


def _data_version(con: psycopg.Connection) -> int | None:
    if not con.execute("SELECT to_regclass(%s) IS NOT NULL", [META_TABLE]).fetchone()[0]:
        return None
    row = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'data_version'").fetchone()
    return int(row[0]) if row else None
