"""One JSON object per processed frame, one line each, in the documented shape."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TextIO

from streamyolo.errors import OutputError
from streamyolo.frames import Result


class JsonlSink:
    """Appends ``{"stream", "seq", "t_capture", "pts", "detections"}`` lines to ``path``.

    Lines are flushed as written, so a killed process leaves only whole lines behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise OutputError(f"cannot write JSONL file {str(self.path)!r}: {exc.strerror or exc}") from exc

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
