"""Iterators that overlap making items with using them: bounded memory, both cores busy."""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")


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
