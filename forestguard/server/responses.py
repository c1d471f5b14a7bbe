"""Encoded API answers kept per process: JSON bytes, their gzip and an ETag, made once per data version.

``/api/stats`` answers the same few views over and over (the whole table, one country): a
cached answer is served as stored bytes — no statistics decoding, JSON encoding or compression
per request — with ``If-None-Match`` → 304 and headers that let a CDN or load balancer keep a
copy and revalidate it (``Cache-Control: no-cache`` + ETag; ``private`` when a login guards
the server). Entries are keyed by store, data version and query, so a write is never hidden:
the next request asks for a new version and finds nothing under it.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

from tornado.web import RequestHandler

#: Bytes of encoded answers one process keeps (the whole country × year × class table of 100k demo
#: zones is ~165 KB, ~15 KB gzipped); least recently used go first.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: gzip level: 6 is the usual server default; the cost is paid once per entry, not per request.
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Encoded:
    """One answer, ready to send."""

    body: bytes
    gzipped: bytes
    etag: str

    @property
    def nbytes(self) -> int:
        return len(self.body) + len(self.gzipped)

    @classmethod
    def of(cls, text: str) -> "Encoded":
        body = text.encode("utf-8")
        # Weak: the identity and gzip forms are the same content (RFC 9110 §8.8.1), so one tag serves both.
        etag = 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        return cls(body, gzip.compress(body, GZIP_LEVEL, mtime=0), etag)


class EncodedCache:
    """A bounded, thread-safe LRU of :class:`Encoded` answers."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Encoded] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_encode(self, key: Hashable, text: Callable[[], str]) -> Encoded:
        """The answer under ``key``, or ``text()`` encoded and kept (an answer over the budget is not kept)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        encoded = Encoded.of(text())
        if encoded.nbytes > self.max_bytes:
            return encoded
        with self._lock:
            if key not in self._entries:
                self._entries[key] = encoded
                self._bytes += encoded.nbytes
                while self._bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.nbytes
        return encoded

    def __len__(self) -> int:
        return len(self._entries)


def accepts_gzip(handler: RequestHandler) -> bool:
    """Whether the request's Accept-Encoding allows gzip (``q=0`` refuses it)."""
    for item in handler.request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _quality(q[2:]) == 0.0)
    return False


def _quality(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def send_encoded(handler: RequestHandler, encoded: Encoded, content_type: str, *, private: bool) -> None:
    """Finish ``handler`` with ``encoded``: 304 when the client's copy is current, gzip when accepted.

    ``no-cache`` lets a shared cache (CloudFront, an ALB's, a proxy's) store the answer but ask
    each time whether it is still current — a 304 of a few hundred bytes when it is; ``private``
    keeps answers behind a login out of shared caches.
    """
    handler.set_header("Cache-Control", ("private, " if private else "") + "no-cache")
    handler.set_header("Vary", "Accept-Encoding")
    handler.set_header("ETag", encoded.etag)
    if handler.check_etag_header():
        handler.set_status(304)
        handler.finish()
        return
    handler.set_status(200)
    handler.set_header("Content-Type", content_type)
    if accepts_gzip(handler):
        handler.set_header("Content-Encoding", "gzip")
        handler.finish(encoded.gzipped)
    else:
        handler.finish(encoded.body)


_stats_answers = EncodedCache()


def stats_answer(where, by: tuple[str, ...]) -> Encoded:
    """``/api/stats``'s encoded answer for a filter and grouping (blocking: run it off the event loop)."""
    from ..cache import default_cache, store_scope
    from ..stats import statistics, with_evidence_version
    from . import runtime

    store = runtime.shared_store()
    where = with_evidence_version(store, where, by)
    key = (store_scope(store), store.data_version(), where.key(), by)
    return _stats_answers.get_or_encode(key, lambda: statistics(store, where, by, cache=default_cache()).to_json())
