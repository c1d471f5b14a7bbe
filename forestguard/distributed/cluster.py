"""Dask clusters for one command or store: a LocalCluster started for it, or a running cluster's scheduler.

Nothing here schedules anything: it connects a ``dask.distributed.Client`` and turns the ways
that can fail (no such scheduler, nothing listening, a timeout, dask not installed) into one
line naming the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any, Iterator
from urllib.parse import urlsplit

from ..config import settings
from ..errors import UserError

#: ``--dask local``: a LocalCluster of worker processes on this machine.
LOCAL = "local"
#: How long a running scheduler gets to answer before the command gives up.
CONNECT_TIMEOUT_S = 10.0


def scheduler_for(option: str | None) -> str | None:
    """The scheduler a command uses: its ``--dask`` option, else ``FORESTGUARD_DASK``, else None (the embedded engine)."""
    return (option or "").strip() or settings().dask


def _address(scheduler: str) -> tuple[str, str, int]:
    """``tcp://host:port`` (port 8786 when omitted) checked and split; anything else is a one-line error."""
    text = scheduler.strip()
    if "://" not in text:
        text = f"tcp://{text}"
    parts = urlsplit(text)
    try:
        port = parts.port or 8786
    except ValueError:
        port = -1
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port <= 0 or parts.path not in ("", "/"):
        raise UserError(f"--dask {scheduler!r} is not a Dask scheduler: use 'local' or tcp://HOST:PORT (e.g. tcp://scheduler:8786)")
    return f"{parts.scheme}://{parts.hostname}:{port}", parts.hostname, port


def probe(scheduler: str) -> str:
    """The scheduler's address, once something answers there; else one line naming it.

    Dask's own connect retries a refused connection until its timeout: this fails at once.
    """
    address, host, port = _address(scheduler)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach the Dask scheduler at {address}: {reason} (is it running? check --dask or FORESTGUARD_DASK)") from None
    return address


def _local_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@contextlib.contextmanager
def cluster(scheduler: str, *, workers: int | None = None, threads_per_worker: int | None = None) -> Iterator[Any]:
    """A connected ``Client``: to a LocalCluster started here (``"local"``), or to the scheduler at ``tcp://host:port``.

    A LocalCluster has ``workers`` processes (default: one per core, at most 8) of
    ``threads_per_worker`` threads (default 1: partitions are a process's worth of work,
    and DuckDB and datashader use their own threads) and stops with the block.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--dask needs dask.distributed: pip install 'forestguard[scale]'") from None

    with contextlib.ExitStack() as stack:
        if scheduler.strip().lower() == LOCAL:
            local = LocalCluster(n_workers=workers or _local_workers(), threads_per_worker=threads_per_worker or 1,
                                 processes=True, dashboard_address=None)
            stack.callback(local.close)
            client = Client(local)
        else:
            address = probe(scheduler)
            try:
                client = Client(address, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(exc).split())[:200]}") from None
        stack.callback(client.close)
        yield client
