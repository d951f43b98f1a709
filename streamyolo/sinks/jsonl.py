"""One JSON object per processed frame, one line each, in the documented shape."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TextIO

from streamyolo.errors import OutputError
from streamyolo.frames import Result


def open_lines(path: Path, what: str) -> TextIO:
    """Create ``path`` (and its folder) for line-buffered text: every line reaches the file
    as it is written, so a killed process leaves only whole lines behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("w", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from exc


class JsonlSink:
    """Appends ``{"stream", "seq", "t_capture", "pts", "detections"}`` lines to ``path``.

    Lines are flushed as written, so a killed process leaves only whole lines behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self._file = open_lines(self.path, "JSONL file")

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
