"""Iterators that overlap making items with using them: bounded memory, both cores busy."""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` while a thread already makes the next ``depth`` of them.

    Worth it when making an item (shapely, numpy, Arrow) and using it (a COPY to a server)
    both spend their time outside the GIL. The producer's exceptions reach the consumer.
    """
    done = object()
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stopping = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stopping.is_set():
                    return
                handoff.put((item, None))
            handoff.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            handoff.put((done, exc))

    worker = threading.Thread(target=produce, name="forestguard-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stopping.set()
        while worker.is_alive():  # unblock a producer waiting to hand over, so it sees `stopping`
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def map_ahead(function: Callable[[T], R], items: Iterable[T], *, workers: int = 2) -> Iterator[tuple[T, R]]:
    """``(item, function(item))`` for each item, in order, with ``workers`` threads computing the next ones.

    At most ``workers`` results are computed ahead of the one being used: memory holds that many
    items, not the input. An exception from ``function`` reaches the consumer at its item.
    """
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forestguard-map") as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        for item in items:
            pending.append((item, pool.submit(function, item)))
            if len(pending) > workers:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()
