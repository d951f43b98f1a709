"""One JSON object per processed frame, one line each, in the documented shape."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from streamyolo.clock import Clock
from streamyolo.errors import OutputError
from streamyolo.frames import Result
from streamyolo.sinks.base import OutputPause
from streamyolo.sinks.days import DailyFiles

log = logging.getLogger(__name__)

def open_lines(path: Path, what: str, overwrite: bool = False, again: bool = False) -> TextIO:
    """Open ``path`` (creating it and its folder) for line-buffered text: every line reaches
    the file as it is written, so a killed process leaves only whole lines behind. An earlier
    run's lines are kept and new ones appended (a job restarted after a crash loses nothing),
    unless ``overwrite``. A last line cut short (by a full disk) is removed, so the file holds
    whole lines only. ``again``: reopened during the run, after a pause."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("w" if overwrite else "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        size = file.tell()
        cut = _trim(path, size)  # opened to append: the next line goes where the cut one began
        if cut:
            log.warning("%s %s: removed its last line, cut short (%d bytes)", what, path, cut)
        if size > cut and not again:
            log.info("appending to %s %s (it has an earlier run's lines)", what, path)
    except OSError as exc:
        file.close()
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from exc
    return file


def _trim(path: Path, size: int, block: int = 65536) -> int:
    """Remove a last line cut short from ``path`` (``size`` bytes): truncate it just after its
    last newline, which needs no room on a full disk. Returns the bytes removed."""
    whole = 0
    with path.open("rb") as file:
        end = size
        while end > 0:
            start = max(0, end - block)
            file.seek(start)
            found = file.read(end - start).rfind(b"\n")
            if found >= 0:
                whole = start + found + 1
                break
            end = start
    if whole < size:
        os.truncate(path, whole)
    return size - whole


class LineFile:
    """A file of lines written by a long run (the JSONL, the stats file) that outlives a full
    disk: a line that cannot be written pauses the file (see :class:`OutputPause`), which is
    opened again a little later, its cut last line removed, and goes on from there. A file
    moved or removed under it (logrotate's default ``create`` mode, a clean-up) is noticed at
    the next line, which starts a new file at the path, as the standard library's
    ``WatchedFileHandler`` does for logs; ``copytruncate`` needs nothing (lines are appended).
    With ``keep`` (seconds), it keeps its days itself, as logrotate would: moved away at
    midnight, compressed, deleted ``keep`` after (:class:`~streamyolo.sinks.days.DailyFiles`).
    Thread-safe."""

    def __init__(self, path: Path, what: str, overwrite: bool = False, clock: Clock = time.monotonic,
                 keep: float | None = None, wall: Clock = time.time) -> None:
        self.path = Path(path)
        self.what = what
        self.overwrite = overwrite
        self.pause = OutputPause(f"{what} {str(self.path)!r}", "line(s)", clock=clock)
        self.days = None if keep is None else DailyFiles(self.path, what, keep, wall)
        self._file: TextIO | None = None
        self._open = False  # between open() and close(); the file itself may be closed (paused, moved)
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open (or create) the file; an :class:`OutputError` if it cannot be, before the run."""
        with self._lock:
            self._file = open_lines(self.path, self.what, self.overwrite)
            self._open = True
            if self.days is not None:
                self.days.opened()

    def write(self, line: str) -> None:
        """Write one line (ending in a newline); never raises. Nothing before open or after close."""
        with self._lock:
            if not self._open or not self.pause.due():
                return
            if self.days is not None and self.days.due():
                self._close_file()
                self.days.rotate()
            try:
                if self._file is not None and self._moved():
                    log.info("%s %s was moved or removed: writing to a new one", self.what, self.path)
                    self._file.close()
                    self._file = None
                if self._file is None:
                    self._file = open_lines(self.path, self.what, again=True)  # after a pause, or moved
                self._file.write(line)
            except OSError as exc:
                self._drop()
                self.pause.failed(exc)
                return
            self.pause.succeeded()

    def record(self, value: Any) -> None:
        """Write ``value`` as one line of compact JSON (what JSON cannot hold, as text)."""
        self.write(json.dumps(value, separators=(",", ":"), default=str) + "\n")

    def close(self) -> None:
        """Close; raises :class:`OutputsIncompleteError` if lines were lost during the run."""
        with self._lock:
            self._close_file()
            self._open = False
        if self.days is not None:
            self.days.close()
        self.pause.check()

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # its last lines could not be flushed
                self.pause.failed(exc)
            self._file = None

    def _moved(self) -> bool:
        """Whether the path no longer leads to the open file."""
        assert self._file is not None
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return True
        mine = os.fstat(self._file.fileno())
        return (here.st_dev, here.st_ino) != (mine.st_dev, mine.st_ino)

    def _drop(self) -> None:
        """Forget the open file after a failed write, with whatever its buffer still holds, and
        remove the line it cut short (which needs no room), so the file holds whole lines even
        if the run ends before it can write again."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        try:
            _trim(self.path, self.path.stat().st_size)
        except OSError as exc:
            log.debug("%s %s: could not remove a line cut short: %s", self.what, self.path, exc)


class JsonlSink:
    """Appends ``{"stream", "seq", "time", "t_capture", "pts", "detections"}`` lines to
    ``path`` (after an earlier run's, unless ``overwrite``).

    Lines are flushed as written, so a killed process leaves only whole lines behind; a full
    disk pauses the file rather than ending it (:class:`LineFile`).
    """

    def __init__(self, path: Path, overwrite: bool = False, keep: float | None = None) -> None:
        self.path = Path(path)
        self._lines = LineFile(self.path, "JSONL file", overwrite, keep=keep)

    def open(self) -> None:
        self._lines.open()

    def write(self, result: Result) -> None:
        self._lines.record(result.to_record())

    def close(self) -> None:
        self._lines.close()
