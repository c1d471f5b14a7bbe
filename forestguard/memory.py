"""Memory as a budget: what one process may hold (FORESTGUARD_MEMORY_MB) and giving freed memory back.

Building a layer or streaming a load frees most of what it allocated, but the allocators keep
it: Arrow's (mimalloc) for its buffers, glibc's for NumPy and Python. A long-lived server would
carry that as resident memory it never uses again; :func:`release_unused` hands it back to the
system after such a step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from .config import settings


def budget_bytes(share: float) -> int:
    """``share`` of this process's memory budget, in bytes."""
    return int(settings().memory_mb * share * 2**20)


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_unused() -> None:
    """Return freed memory to the system (Arrow's pool, then glibc's heap); harmless elsewhere."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
