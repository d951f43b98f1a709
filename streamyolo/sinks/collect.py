"""Hands results to the caller of ``Pipeline.results()``, with back-pressure."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from streamyolo.frames import Result

_END = object()


class QueueSink:
    """A bounded queue between the inference threads and one consuming thread.

    When the consumer falls behind, ``write`` waits: every result is delivered, in order
    per stream. ``close`` marks the end; :meth:`results` then finishes.
    """

    def __init__(self, maxsize: int = 64) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize)
        self._abandoned = threading.Event()

    def open(self) -> None:
        """Nothing to open."""

    def write(self, result: Result) -> None:
        while not self._abandoned.is_set():
            try:
                self._queue.put(result, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        while not self._abandoned.is_set():
            try:
                self._queue.put(_END, timeout=0.5)
                return
            except queue.Full:
                continue

    def abandon(self) -> None:
        """The consumer is gone: stop applying back-pressure."""
        self._abandoned.set()

    def results(self) -> Iterator[Result]:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                assert isinstance(item, Result)
                yield item
        finally:
            self.abandon()
