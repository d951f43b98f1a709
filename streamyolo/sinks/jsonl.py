"""One JSON object per processed frame, one line each, in the documented shape."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TextIO

from streamyolo.errors import OutputError
from streamyolo.frames import Result

log = logging.getLogger(__name__)

def open_lines(path: Path, what: str, overwrite: bool = False) -> TextIO:
    """Open ``path`` (creating it and its folder) for line-buffered text: every line reaches
    the file as it is written, so a killed process leaves only whole lines behind. An earlier
    run's lines are kept and new ones appended (a job restarted after a crash loses nothing),
    unless ``overwrite``; a last line cut short (a full disk) is ended first, so every new
    line starts on a line of its own."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("w" if overwrite else "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        if file.tell() > 0:
            with path.open("rb") as earlier:
                earlier.seek(-1, os.SEEK_END)
                if earlier.read(1) != b"\n":
                    file.write("\n")
            log.info("appending to %s %s (it has an earlier run's lines)", what, path)
    except OSError as exc:
        file.close()
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from exc
    return file


class JsonlSink:
    """Appends ``{"stream", "seq", "time", "t_capture", "pts", "detections"}`` lines to
    ``path`` (after an earlier run's, unless ``overwrite``).

    Lines are flushed as written, so a killed process leaves only whole lines behind.
    """

    def __init__(self, path: Path, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self._file = open_lines(self.path, "JSONL file", self.overwrite)

    def write(self, result: Result) -> None:
        line = json.dumps(result.to_record(), separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                raise OutputError(f"JSONL file {str(self.path)!r} is not open")
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
