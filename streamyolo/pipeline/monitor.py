"""The pipeline's watcher thread: live status, the stats file, the run's duration, and
inference workers that seem hung."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from streamyolo.pipeline.overload import Overload
from streamyolo.pipeline.report import StatusPrinter, StreamReport, stays_json, workers_json
from streamyolo.pipeline.service import STATUS_SECONDS, Notifier, service_status
from streamyolo.sinks.history import refreshed
from streamyolo.sinks.jsonl import LineFile

log = logging.getLogger(__name__)

_TICK = 0.1  # seconds; the granularity of the duration limit
_HANG_TICK = 1.0  # seconds between looks at the workers when nothing else needs the monitor
_STACK_DEPTH = 12  # innermost frames shown per thread when a worker seems hung
LOOK_EVERY = 10.0  # seconds between the looks at the streams' numbers handed over (``looks``: MQTT, events)
JUDGE_EVERY = 1.0  # seconds between the overload watch's looks, at most (a stream behind is told within it)
_OVERLOAD_LOOKS = 6  # looks per overload window, at least (a short window, looked at more often)


class Watched(Protocol):
    """What the monitor needs of an inference worker to notice a hang."""

    @property
    def name(self) -> str: ...

    @property
    def streams(self) -> list[str]: ...

    @property
    def busy_since(self) -> float | None: ...

    @property
    def doing(self) -> str: ...

    @property
    def in_hand(self) -> tuple[str, ...]: ...


class StatsWriter:
    """One JSON line per status interval: every stream's state, last error, reconnects,
    last-frame age, fps and counts, and with process workers each worker's restarts, with the
    wall-clock time; appended to an earlier run's lines unless ``overwrite``.
    Credentials are already redacted in the reports."""

    def __init__(self, path: Path, overwrite: bool = False, keep: float | None = None,
                 interval: float | None = None) -> None:
        """``interval``: seconds between its lines (0: only as the run ends; ``None``: with the
        status table, every status interval)."""
        self.path = Path(path)
        self.interval = interval
        self._lines = LineFile(self.path, "stats file", overwrite, keep=keep)

    def open(self) -> None:
        self._lines.open()

    def write(self, reports: list[StreamReport], elapsed: float, restarts: Mapping[str, int] | None = None,
              overload: Mapping[str, Any] | None = None, ended: bool = False) -> None:
        """A line; ``overload``: while the machine cannot keep up (:attr:`Monitor.overload`);
        ``ended``: the run's last (``"ended": true``: ``streamyolo status`` says it is not running)."""
        streams = {r.name: {k: v for k, v in asdict(r).items() if k != "name"}
                   | {"zone_stays": stays_json(r.zone_stays)} for r in reports}
        line: dict[str, Any] = {"time": round(time.time(), 3), "elapsed": round(elapsed, 3), "streams": streams}
        if restarts:
            line["workers"] = workers_json(restarts)
        if overload is not None:
            line["overload"] = refreshed(overload, reports)
        if ended:
            line["ended"] = True
        self._lines.record(line)

    def close(self) -> None:
        """Close; raises :class:`OutputsIncompleteError` if lines were lost during the run."""
        self._lines.close()


class Monitor:
    """Samples the pipeline every ``interval`` seconds for the status table and the stats
    file, and stops the run when ``duration`` has passed. Ends when ``finished`` is set.

    With ``hang_warning`` > 0 it also watches the ``workers``: one that has been inside one
    forward pass for that many seconds is reported once, with where every inference thread
    is, as a model runtime that deadlocks (as OpenVINO's Python binding did, see
    :func:`streamyolo.inference.offline.import_openvino`) would otherwise stop its streams
    without a word; the log says so again when the worker comes back.

    With ``overload_warning`` > 0 it warns when most frames of the live streams over that many
    seconds were skipped (the machine cannot keep up: :mod:`~streamyolo.pipeline.overload`).
    Each of ``looks`` is called with the streams' reports and the overload at the same looks, every
    :data:`LOOK_EVERY` seconds or a sixth of ``overload_warning`` if that is shorter (Home
    Assistant's sensors of each stream's frame rates: :meth:`~streamyolo.sinks.events.EventSink.look`).

    With a ``notifier`` (a systemd service: :mod:`streamyolo.pipeline.service`) it tells
    systemd the run's status as it changes and feeds its watchdog while the run is well: not
    while a worker is reported hung, unless ``hangs_recovered`` (process workers, whose hung
    children the run kills and starts again).
    """

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
        workers: Callable[[], Sequence[Watched]] = list,
        hang_warning: float = 0.0,
        overload_warning: float = 0.0,
        looks: Sequence[Callable[[list[StreamReport], float, Mapping[str, Any] | None], object]] = (),
        notifier: Notifier | None = None,
        hangs_recovered: bool = False,
    ) -> None:
        self._reports = reports
        self._workers = workers
        self._hang_warning = hang_warning
        self._reported: dict[str, float] = {}  # worker name -> busy_since of the pass reported
        self._hung: tuple[str, ...] = ()  # the workers reported, for other threads
        self._overload = Overload(overload_warning) if overload_warning > 0 else None
        self._looks = list(looks)
        self._look_every = min(LOOK_EVERY, overload_warning / _OVERLOAD_LOOKS) if overload_warning > 0 else LOOK_EVERY
        self._restarts = restarts
        self._finished = finished
        self._stop = stop
        self._clock = clock
        self._interval = interval
        self._duration = duration
        self._status = status
        self._stats = stats
        self._notifier = notifier
        self._hangs_recovered = hangs_recovered
        self._ping_due = -float("inf")
        self._status_due = -float("inf")
        self._said = ""  # the status systemd was told last
        self._withheld = False  # the watchdog is not fed (a worker hung)
        self._thread = threading.Thread(target=self._run, name="pipeline:monitor")

    @property
    def needed(self) -> bool:
        return (self._sampling or self._duration is not None or self._hang_warning > 0 or self._overload is not None
                or bool(self._looks) or self._notifier is not None)

    @property
    def _sampling(self) -> bool:
        return (self._interval > 0 and self._status is not None) or self._stats_every > 0

    @property
    def _stats_every(self) -> float:
        """Seconds between the stats file's lines (0: none while the run goes)."""
        if self._stats is None:
            return 0.0
        return self._interval if self._stats.interval is None else self._stats.interval

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
        next_status = next_stats = next_look = next_judged = started
        stopped = False
        tick = _TICK if self._sampling or self._duration is not None else _HANG_TICK
        watchdog = None if self._notifier is None else self._notifier.watchdog
        if watchdog is not None:
            tick = min(tick, watchdog / 8)
        try:
            while not self._finished.wait(tick):
                now = self._clock()
                if self._hang_warning > 0:
                    self._watch(now)
                if self._notifier is not None:
                    self._notify(self._notifier, now)
                if (self._overload is not None or self._looks) and now >= (
                        next_look if self._overload is None else min(next_look, next_judged)):
                    handed = now >= next_look
                    self._look(now, handed)
                    next_judged = now + min(self._look_every, JUDGE_EVERY)
                    if handed:
                        next_look = now + self._look_every
                if not stopped and self._duration is not None and now - started >= self._duration:
                    log.info("duration of %.1f s reached: stopping", self._duration)
                    self._stop()
                    stopped = True
                shows = self._status is not None and self._interval > 0 and now >= next_status
                writes = self._stats is not None and self._stats_every > 0 and now >= next_stats
                if shows or writes:  # (one look at the streams for both)
                    reports, restarts = self._reports(), self._restarts()
                    if shows and self._status is not None:
                        self._status.show(reports, now - started, restarts, self.overload)
                        next_status = now + self._interval
                    if writes and self._stats is not None:
                        self._stats.write(reports, now - started, restarts, self.overload)
                        next_stats = now + self._stats_every
            if self._hang_warning > 0:
                self._watch(self._clock())  # a reported worker that ended its pass as the run ended
        except Exception:  # a broken terminal must not take the run down
            log.exception("status monitor failed")

    def _look(self, now: float, handed: bool = True) -> None:
        """Judge the overload by the streams' numbers now; ``handed``: hand them over too."""
        reports = self._reports()
        if self._overload is not None:
            self._overload.look(reports, now)
        if handed:
            self.hand_over(reports, now)

    def hand_over(self, reports: list[StreamReport], now: float) -> None:
        """Hand the streams' ``reports`` to the ``looks`` (as the run ends, before the sinks
        close, with its last numbers: a run shorter than a look gives them too)."""
        overload = self.overload
        for look in self._looks:
            try:
                look(reports, now, overload)
            except Exception:  # (the duration, the status and the others' looks go on)
                log.exception("could not hand the streams' numbers to %r", look)

    def _watch(self, now: float) -> None:
        """Report a worker inside one forward pass (or building its model again) for
        ``hang_warning`` seconds (once per pass), and a reported worker that has come back."""
        for worker in self._workers():
            since = worker.busy_since
            reported = self._reported.get(worker.name)
            if reported is not None and since != reported:
                del self._reported[worker.name]
                log.warning("inference worker %r is running again: what it was doing ended after about %.0f s",
                            worker.name, now - reported)
            if since is None or worker.name in self._reported or now - since < self._hang_warning:
                continue
            self._reported[worker.name] = since
            log.warning("inference worker %r (streams %s) has been %s for %.0f s: the model "
                        "runtime may be hung (set hang_warning to wait longer before this warning; a thread worker "
                        "cannot be stopped, a process worker's child that does not answer in 5 minutes is killed "
                        "and started again); where the inference threads are:\n%s",
                        worker.name, ", ".join(dict.fromkeys([*worker.streams, *worker.in_hand])), worker.doing,
                        now - since, inference_stacks())
        self._hung = tuple(sorted(self._reported))

    @property
    def overload(self) -> dict[str, Any] | None:
        """While the live streams skip most of their frames: how many, since when, which
        (:attr:`Overload.state <streamyolo.pipeline.overload.Overload.state>`); else ``None``. From any thread."""
        return None if self._overload is None else self._overload.state

    @property
    def stuck(self) -> tuple[str, ...]:
        """The workers reported hung that the run cannot recover by itself (thread workers;
        none with ``hangs_recovered``): systemd's watchdog and ``/healthz`` say the run is not
        well while there are any. From any thread."""
        return () if self._hangs_recovered else self._hung

    def _notify(self, notifier: Notifier, now: float) -> None:
        """Feed systemd's watchdog (unless a worker is hung) and tell it the status, if changed."""
        if notifier.watchdog is not None and now >= self._ping_due:
            hung = self.stuck
            if not hung:
                notifier.ping()
                self._ping_due = now + notifier.watchdog / 2
                self._withheld = False
            elif not self._withheld:
                self._withheld = True
                log.error("inference worker %s is hung: the systemd watchdog is no longer fed, so systemd restarts the "
                          "service (WatchdogSec)", ", ".join(repr(name) for name in hung))
        if now >= self._status_due:
            self._status_due = now + STATUS_SECONDS
            said = service_status(self._reports())
            if said != self._said:
                self._said = said
                notifier.status(said)

    def final(self, reports: list[StreamReport], elapsed: float) -> None:
        """Write the final stats line once every thread has ended."""
        if self._stats is not None:
            self._stats.write(reports, elapsed, self._restarts(), ended=True)


def inference_stacks() -> str:
    """The innermost Python frames of every inference thread (workers and their lanes)."""
    frames = sys._current_frames()
    parts = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        if frame is None or not thread.name.startswith("inference:"):
            continue
        stack = "".join(traceback.format_stack(frame, limit=_STACK_DEPTH))
        parts.append(f"thread {thread.name!r}:\n{stack.rstrip()}")
    return "\n".join(parts) or "(no inference thread is running)"
