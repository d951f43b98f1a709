"""The Sink seam, and the fan-out that isolates one failing sink from the rest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from streamyolo.frames import Result

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives every processed frame.

    ``write`` is called from inference threads (several at once, but one stream only ever
    from one thread, in order); it must be quick or apply deliberate back-pressure.
    ``open`` runs before any thread starts (do the I/O that can fail there), ``close``
    after every inference thread has ended.
    """

    def open(self) -> None: ...

    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class FileSink(Protocol):
    """A sink that writes files per stream (the recorder): the summary lists them."""

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every stream's files so far, oldest first."""
        ...


class FanOut:
    """Writes each result to every sink. A sink that raises for a stream is reported once
    (through ``on_error``) and skipped for that stream from then on; the others go on."""

    def __init__(self, sinks: Sequence[Sink], on_error: Callable[[str, str], None] | None = None) -> None:
        self.sinks = list(sinks)
        self._on_error = on_error
        self._broken: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open()
                opened.append(sink)
        except BaseException:
            for sink in reversed(opened):
                sink.close()
            raise

    def write(self, result: Result) -> None:
        for index, sink in enumerate(self.sinks):
            key = (index, result.stream)
            if key in self._broken:
                continue
            try:
                sink.write(result)
            except Exception as exc:
                with self._lock:
                    self._broken.add(key)
                message = f"{type(sink).__name__} failed for stream {result.stream!r}: {exc}"
                log.error("%s", message)
                if self._on_error is not None:
                    self._on_error(result.stream, message)

    def close(self) -> None:
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as exc:
                log.error("closing %s failed: %s", type(sink).__name__, exc)
                first = first or exc
        if first is not None:
            raise first
