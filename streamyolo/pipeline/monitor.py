"""The pipeline's watcher thread: live status, the stats file, and the run's duration."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from streamyolo.pipeline.report import StatusPrinter, StreamReport, workers_json
from streamyolo.sinks.jsonl import open_lines

log = logging.getLogger(__name__)

_TICK = 0.1  # seconds; the granularity of the duration limit


class StatsWriter:
    """One JSON line per status interval: every stream's state, last error, reconnects,
    last-frame age, fps and counts, and with process workers each worker's restarts.
    Credentials are already redacted in the reports."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None

    def open(self) -> None:
        self._file = open_lines(self.path, "stats file")

    def write(self, reports: list[StreamReport], elapsed: float, restarts: Mapping[str, int] | None = None) -> None:
        if self._file is None:
            return
        streams = {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in reports}
        line: dict[str, Any] = {"elapsed": round(elapsed, 3), "streams": streams}
        if restarts:
            line["workers"] = workers_json(restarts)
        self._file.write(json.dumps(line, default=str) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Monitor:
    """Samples the pipeline every ``interval`` seconds for the status table and the stats
    file, and stops the run when ``duration`` has passed. Ends when ``finished`` is set."""

    def __init__(
        self,
        reports: Callable[[], list[StreamReport]],
        finished: threading.Event,
        stop: Callable[[], None],
        clock: Callable[[], float],
        *,
        interval: float = 1.0,
        duration: float | None = None,
        status: StatusPrinter | None = None,
        stats: StatsWriter | None = None,
        restarts: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self._reports = reports
        self._restarts = restarts
        self._finished = finished
        self._stop = stop
        self._clock = clock
        self._interval = interval
        self._duration = duration
        self._status = status
        self._stats = stats
        self._thread = threading.Thread(target=self._run, name="pipeline:monitor")

    @property
    def needed(self) -> bool:
        sampling = self._interval > 0 and (self._status is not None or self._stats is not None)
        return sampling or self._duration is not None

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def join(self, timeout: float) -> bool:
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = self._clock()
        next_sample = started
        stopped = False
        try:
            while not self._finished.wait(_TICK):
                now = self._clock()
                if not stopped and self._duration is not None and now - started >= self._duration:
                    log.info("duration of %.1f s reached: stopping", self._duration)
                    self._stop()
                    stopped = True
                if self._interval > 0 and now >= next_sample:
                    self._sample(now - started)
                    next_sample = now + self._interval
        except Exception:  # a broken terminal must not take the run down
            log.exception("status monitor failed")

    def _sample(self, elapsed: float) -> None:
        reports, restarts = self._reports(), self._restarts()
        if self._status is not None:
            self._status.show(reports, elapsed, restarts)
        if self._stats is not None:
            self._stats.write(reports, elapsed, restarts)

    def final(self, reports: list[StreamReport], elapsed: float) -> None:
        """Write the final stats line once every thread has ended."""
        if self._stats is not None:
            self._stats.write(reports, elapsed, self._restarts())
