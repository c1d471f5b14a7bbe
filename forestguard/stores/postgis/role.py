"""Primary or replica: what the server a URL names is now, asked of the server itself.

A process whose ``DATABASE_URL`` is a hot standby (an RDS read replica, a secondary region
before promotion) serves every read; what would write — ingest, ``db init``/``upgrade``,
``db restore``, ``demo`` — is refused before it starts, in one line naming the replica.
The role is asked on every write and every readiness probe, never remembered, so a
promoted replica takes writes without a restart of anything.
"""

from __future__ import annotations

import psycopg

from ...config import redact
from ...errors import ReadOnlyStore

PRIMARY = "primary"
REPLICA = "replica"


def server_role(con: psycopg.Connection) -> str:
    """``"replica"`` while the server replays WAL (hot standby), ``"primary"`` otherwise."""
    return REPLICA if con.execute("SELECT pg_is_in_recovery()").fetchone()[0] else PRIMARY


def replica_refusal(url: str, action: str) -> ReadOnlyStore:
    """The one-line error of a write aimed at a replica."""
    return ReadOnlyStore(
        f"{redact(url)} is a read replica (hot standby): {action} must go to the primary "
        "(or promote this one: see 'Region loss' in docs/operations.md)"
    )


def read_only_refusal(url: str, action: str) -> ReadOnlyStore:
    """The error when a primary refused a write as read-only (``default_transaction_read_only``, or demoted since the check)."""
    return ReadOnlyStore(f"{redact(url)} is a read-only server (read-only transactions, or a replica): {action} must go to a writable primary")


def require_primary(con: psycopg.Connection, url: str, action: str) -> None:
    """Refuse ``action`` before it writes anything when ``con`` is on a replica."""
    if server_role(con) == REPLICA:
        raise replica_refusal(url, action)
