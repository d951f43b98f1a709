"""Per-stream state machine and counters, shared by a stream's capture thread, its
inference worker and whoever watches (status line, summary, display).

States: ``connecting → streaming → reconnecting → connecting …``, ending in ``ended``
(a file reached its end), ``failed`` (a permanent error, or retries exhausted) or
``stopped`` (the run was stopped first). An illegal transition is a bug and raises.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streamyolo.clock import Behind, RateMeter
from streamyolo.frames import Crossing, ZoneTally, ZoneVisit
from streamyolo.pipeline.report import Stayed, most

log = logging.getLogger(__name__)


class StreamState(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in (StreamState.ENDED, StreamState.FAILED, StreamState.STOPPED)


_LEGAL: dict[StreamState, frozenset[StreamState]] = {
    StreamState.CONNECTING: frozenset({StreamState.STREAMING, StreamState.RECONNECTING, StreamState.FAILED,
                                       StreamState.STOPPED}),
    StreamState.STREAMING: frozenset({StreamState.ENDED, StreamState.RECONNECTING, StreamState.FAILED,
                                      StreamState.STOPPED}),
    StreamState.RECONNECTING: frozenset({StreamState.CONNECTING, StreamState.FAILED, StreamState.STOPPED}),
    StreamState.ENDED: frozenset(),
    StreamState.FAILED: frozenset(),
    StreamState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A stream was asked to move between two states that have no edge: a bug."""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    state: StreamState
    error: str | None
    reconnects: int
    processed: int
    still: int
    """Frames processed without a forward pass: nothing had moved (``motion``)."""
    pictures: int
    """Pictures the model ran on for the frames processed (counted for streams with ``tiles``)."""
    lost: int
    last_frame_at: float | None
    last_age: float | None
    fps_in: float
    fps_out: float
    width: int | None
    height: int | None
    fps: float | None
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """Counting lines: line → direction (``in``/``out``) → class name → objects."""
    zone_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    """Zones: zone → class name → the most objects inside it in one frame so far."""
    zone_entries: dict[str, dict[str, int]] = field(default_factory=dict)
    """Zones of a tracked stream: zone → class name → tracked objects that entered it."""
    zone_stays: dict[str, dict[str, Stayed]] = field(default_factory=dict)
    """Zones of a tracked stream: zone → class name → the objects that left it, how long they stayed."""
    behind: float | None = None
    """Seconds behind its present (its camera; real time, for a file played as one) while it
    streams; ``None`` where that is not watched (:meth:`StreamHealth.lag_from`)."""
    lagging: bool = False
    """Whether it is said to have fallen behind (:attr:`~streamyolo.clock.Behind.lagging`)."""
    worst_behind: float | None = None
    """The farthest behind it was while said to be behind, over the run (``None``: never)."""


class StreamHealth:
    """Mutable, lock-guarded status of one stream."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = StreamState.CONNECTING
        self._error: str | None = None
        self._reconnects = 0
        self._counts: dict[str, dict[str, dict[str, int]]] = {}
        self._zone_peaks: dict[str, dict[str, int]] = {}
        self._zone_entries: dict[str, dict[str, int]] = {}
        self._zone_stays: dict[str, dict[str, Stayed]] = {}
        self._processed = 0
        self._still = 0
        self._pictures = 0
        self._lost = 0
        self._last_frame_at: float | None = None
        self._last_age: float | None = None
        self._in = RateMeter(clock=clock)
        self._out = RateMeter(clock=clock)
        self._size: tuple[int, int] | None = None
        self._fps: float | None = None
        self._changed = threading.Condition(self._lock)
        self._watchers: list[Callable[[str, str, str | None], None]] = []
        self._settled = False  # its last frame is processed
        self._untold: tuple[StreamState, str | None] | None = None  # an end not told yet
        self._behind: Behind | None = None  # the connection's lag watch (lag_from)
        self._worst_before: float | None = None  # the farthest behind on the connections before

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        with self._lock:
            return self._state

    def watch(self, callback: Callable[[str, str, str | None], None]) -> None:
        """Call ``callback(stream, state, error)`` after every change of state from now on (the
        events sink), from the thread that changed it, outside the lock; the end of the stream
        (``ended``, ``failed``) once its last frame is processed too (:meth:`settled`), so that
        it comes after everything its frames made happen."""
        with self._lock:
            self._watchers.append(callback)

    def settled(self) -> None:
        """The stream's inference worker has processed its last frame (or will process none)."""
        with self._lock:
            self._settled = True
            self._changed.notify_all()
            untold, self._untold = self._untold, None
        if untold is not None:
            self._tell(*untold)

    def wait_settled(self, timeout: float) -> bool:
        """Block until the stream's last frame is processed (:meth:`settled`); False on time-out."""
        with self._changed:
            return self._changed.wait_for(lambda: self._settled, timeout)

    def transition(self, new: StreamState, error: str | None = None) -> None:
        with self._lock:
            if new not in _LEGAL[self._state]:
                raise IllegalTransition(f"stream {self.name!r}: {self._state.value} → {new.value}")
            if new is StreamState.RECONNECTING:
                self._reconnects += 1
            self._state = new
            if error is not None:
                self._error = error
            self._changed.notify_all()
            told = self._to_tell(new, error)
        if told is not None:
            self._tell(*told)

    def fail(self, error: str) -> None:
        """Move to ``failed`` from wherever the stream is; keeps the first terminal state."""
        told = None
        with self._lock:
            if not self._state.terminal:
                self._state = StreamState.FAILED
                self._error = error
                self._changed.notify_all()
                told = self._to_tell(StreamState.FAILED, error)
            elif self._error is None:
                self._error = error
        if told is not None:
            self._tell(*told)

    def finish(self) -> None:
        """At the end of the run: a stream not yet in a terminal state was stopped."""
        with self._lock:
            changed = not self._state.terminal
            if changed:
                self._state = StreamState.STOPPED
                self._changed.notify_all()
            untold, self._untold = self._untold, None
        if untold is not None:  # its worker never got to the end of it
            self._tell(*untold)
        if changed:
            self._tell(StreamState.STOPPED, None)

    def _to_tell(self, state: StreamState, error: str | None) -> tuple[StreamState, str | None] | None:
        """(Under the lock.) The change to tell watchers now; an end (``ended``, ``failed``) is
        kept until the stream's last frame is processed (:meth:`settled`)."""
        if state.terminal and not self._settled:
            self._untold = (state, error)
            return None
        return state, error

    def _tell(self, state: StreamState, error: str | None) -> None:
        for callback in list(self._watchers):
            try:
                callback(self.name, state.value, error)
            except Exception:  # a watcher's trouble never stops the stream
                log.exception("stream %r: a watcher of its state failed", self.name)

    def note_error(self, error: str, replace: bool = False) -> None:
        """Record an error that did not change the state (e.g. a sink failed for this stream):
        the first such, or with ``replace`` the latest (as a change of state's error is)."""
        with self._lock:
            if replace or self._error is None:
                self._error = error

    def wait_for(self, predicate: Callable[[StreamState], bool], timeout: float) -> bool:
        """Block until ``predicate(state)`` holds (tests and the soak script use this)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._state), timeout)

    # -- counters ------------------------------------------------------------------------

    def opened(self, width: int, height: int, fps: float | None) -> None:
        with self._lock:
            self._size = (width, height)
            self._fps = fps

    def lag_from(self, behind: Behind | None) -> None:
        """How far behind its present the stream is, from now on: this connection's watch (the
        capture's, at each connection; ``None``: not watched)."""
        with self._lock:
            if self._behind is not None:
                self._worst_before = most(self._worst_before, self._behind.worst)
            self._behind = behind

    def captured(self, now: float) -> None:
        with self._lock:
            self._last_frame_at = now
            self._in.tick(now)

    def processed(self, age: float, now: float, still: bool = False, pictures: int = 0) -> None:
        """A frame's result was written (``still``: without a forward pass, see ``motion``;
        ``pictures``: how many the model ran on for it, see ``tiles``)."""
        with self._lock:
            self._processed += 1
            self._still += still
            self._pictures += pictures
            self._last_age = age
            self._out.tick(now)

    def counted(self, crossings: Sequence[Crossing]) -> None:
        """Objects that crossed the stream's counting lines (see :mod:`streamyolo.inference.counting`)."""
        with self._lock:
            for crossing in crossings:
                by_class = self._counts.setdefault(crossing.line, {}).setdefault(crossing.direction, {})
                by_class[crossing.name] = by_class.get(crossing.name, 0) + 1

    def zoned(self, tallies: Sequence[ZoneTally], visits: Sequence[ZoneVisit] = ()) -> None:
        """A frame's zone occupancy (keeps each zone's peak, by class), and on a tracked stream
        the objects that entered or left its zones (counts the entries)."""
        with self._lock:
            for tally in tallies:
                peaks = self._zone_peaks.setdefault(tally.name, {})
                for name, n in tally.inside.items():
                    if n > peaks.get(name, 0):
                        peaks[name] = n
            for visit in visits:
                if visit.event == "enter":
                    entries = self._zone_entries.setdefault(visit.zone, {})
                    entries[visit.name] = entries.get(visit.name, 0) + 1
                elif visit.event == "leave" and visit.dwell is not None:
                    stays = self._zone_stays.setdefault(visit.zone, {})
                    stays[visit.name] = stays.get(visit.name, Stayed()).then(visit.dwell)

    def counts_on(self, lines: Sequence[str], zones: Sequence[str], tracked: bool = False) -> None:
        """The stream's counting lines and zones: they show (at zero, empty) from the start;
        on a ``tracked`` stream, so do its zones' entries."""
        with self._lock:
            for line in lines:
                self._counts.setdefault(line, {"in": {}, "out": {}})
            for zone in zones:
                self._zone_peaks.setdefault(zone, {})
                if tracked:
                    self._zone_entries.setdefault(zone, {})
                    self._zone_stays.setdefault(zone, {})

    def lose(self, count: int) -> None:
        """Frames taken from the buffer that will never be processed (a worker died)."""
        with self._lock:
            self._lost += count

    def snapshot(self) -> HealthSnapshot:
        now = self._clock()
        with self._lock:
            return HealthSnapshot(
                state=self._state,
                error=self._error,
                reconnects=self._reconnects,
                processed=self._processed,
                still=self._still,
                pictures=self._pictures,
                lost=self._lost,
                last_frame_at=self._last_frame_at,
                last_age=self._last_age,
                fps_in=self._in.rate(now),
                fps_out=self._out.rate(now),
                width=self._size[0] if self._size else None,
                height=self._size[1] if self._size else None,
                fps=self._fps,
                counts={line: {way: dict(n) for way, n in ways.items()} for line, ways in self._counts.items()},
                zone_peaks={zone: dict(peaks) for zone, peaks in self._zone_peaks.items()},
                zone_entries={zone: dict(entries) for zone, entries in self._zone_entries.items()},
                zone_stays={zone: dict(stays) for zone, stays in self._zone_stays.items()},
                behind=(None if self._behind is None or self._state is not StreamState.STREAMING
                        else self._behind.seconds),
                lagging=self._behind is not None and self._state is StreamState.STREAMING and self._behind.lagging,
                worst_behind=most(self._worst_before, None if self._behind is None else self._behind.worst),
            )
