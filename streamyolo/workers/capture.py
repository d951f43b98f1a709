"""Capture threads: one per stream, reading its source into its ring buffer, and
reconnecting when a network source fails.

Each stream is a small state machine (``streamyolo.pipeline.health``)::

    connecting → streaming → ended                    (a file reached its end)
         ↓           ↓
    reconnecting ←───┘  → connecting → …              (back-off, then try again)
         ↓
       failed                                         (permanent error, or retries exhausted)

and any live state → ``stopped`` when the run is stopped.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from streamyolo.buffering import BufferClosed, Overflow, RingBuffer
from streamyolo.clock import Behind, Timeline
from streamyolo.errors import SourceError
from streamyolo.frames import Frame, FrameMeta
from streamyolo.pipeline.health import StreamHealth, StreamState
from streamyolo.pipeline.restart import NO_RECONNECT, Backoff
from streamyolo.sources.base import FrameSource, PacketSource, RawFrame, SourceInfo
from streamyolo.sources.redact import redact_text

log = logging.getLogger(__name__)


CAPTURE_NICENESS = 5
"""How much lower capture threads (and the decoder threads they start) run than inference.
Decoding needs a small share of the cores; when the box is overloaded, the scheduler then
lets inference finish its frame instead of slicing it up (live mode, OpenVINO YOLO11n,
one worker, 4 streams at 30 fps: p99 frame age 66 → 57 ms, 36 → 46 frames/s)."""

LAZY_AFTER_DROP = 1.0
"""Seconds after a live buffer dropped a frame during which new frames stay unconverted."""


def lower_priority(niceness: int) -> None:
    """Lower the calling thread's scheduling priority by ``niceness`` (Linux: per thread;
    threads it starts inherit it). Raising it back would need privileges, so never try."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError as exc:  # containers may forbid it; only latency suffers
        log.debug("cannot lower capture thread priority: %s", exc)


class Pacer:
    """Holds frames back to their presentation time, so a file plays like a camera; tells
    ``behind`` how late the frames that come late are."""

    def __init__(self, stop: threading.Event, clock: Callable[[], float], behind: Behind | None = None) -> None:
        self._stop = stop
        self._clock = clock
        self._behind = behind
        self._origin: tuple[float, float] | None = None  # (wall time, media time) of the first frame

    def wait(self, media_time: float) -> float | None:
        """Wait until ``media_time`` is due; the time it was due (the moment a camera would
        have sent the frame, earlier than now if the frame comes late), or ``None`` if
        stopped meanwhile."""
        now = self._clock()
        if self._origin is None or media_time < self._origin[1]:
            self._origin = (now, media_time)  # first frame, or the source restarted its clock
        due = self._origin[0] + (media_time - self._origin[1])
        if self._behind is not None:
            self._behind.at(now - due)
        if due > now and self._stop.wait(due - now):
            return None
        return None if self._stop.is_set() else due


class Decimator:
    """Keeps every ``stride``-th frame, and at most ``max_fps`` frames per second of the
    stream's timeline (:class:`Timeline`, which never goes back)."""

    def __init__(self, max_fps: float | None = None, stride: int = 1) -> None:
        self._interval = 1.0 / max_fps if max_fps else 0.0
        self._stride = stride
        self._count = 0
        self._next_due: float | None = None

    def keep(self, media_time: float) -> bool:
        self._count += 1
        if (self._count - 1) % self._stride:
            return False
        if not self._interval:
            return True
        if self._next_due is not None and media_time < self._next_due - 1e-6:
            return False
        self._next_due = media_time + self._interval
        return True


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """How a capture thread paces, thins and restarts its stream."""

    realtime: bool = False
    max_fps: float | None = None
    stride: int = 1
    backoff: Backoff = NO_RECONNECT
    """Reconnect schedule; ``attempts=0`` (files, synthetic streams) means no reconnect."""
    live: bool = False
    """A camera or URL, whose clock may leap (:class:`Timeline`); a file's timestamps are its own."""


class CaptureWorker:
    """Reads ``source`` into ``ring`` until the source ends, fails for good, or ``stop``.

    The thread owns its death: whatever happens, it closes the source and the ring (so the
    inference worker drains and moves on) and leaves the stream in a terminal state.
    """

    def __init__(
        self,
        name: str,
        source: FrameSource,
        ring: RingBuffer[Frame],
        health: StreamHealth,
        stop: threading.Event,
        *,
        policy: CapturePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        recording: PacketSource | None = None,
    ) -> None:
        """``recording``: the camera's other stream, read for its packets only (they go to its
        recording) by a thread of its own, started, stopped and joined with this one."""
        self.name = name
        self._source = source
        self._ring = ring
        self._health = health
        self._stop = stop
        self._policy = policy or CapturePolicy()
        self._rethin = False  # thin() was told new settings: the capture thread takes them at its next frame
        self._clock = clock
        self._rng = rng or random.Random()
        self._seq = 0
        self._delivered = 0
        self._timeline = Timeline(self._policy.live)  # across reconnects
        self._thread = threading.Thread(target=self._run, name=f"capture:{name}")
        self._recording = None if recording is None else PacketCapture(
            name, recording, stop, self._policy.backoff, functools.partial(health.note_error, replace=True), self._rng)

    def start(self) -> None:
        self._thread.start()
        if self._recording is not None:
            self._recording.start()

    def interrupt(self) -> None:
        """Cut a blocking open or read short (called on stop, from another thread)."""
        self._source.interrupt()
        if self._recording is not None:
            self._recording.source.interrupt()

    def join(self, timeout: float | None = None) -> bool:
        """True once the thread (and its recording source's) has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._thread.join(timeout)
        if self._recording is not None and self._recording.thread.ident is not None:
            self._recording.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if self._recording.thread.is_alive():
                return False
        return not self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    # -- thread body ---------------------------------------------------------------------

    def _run(self) -> None:
        lower_priority(CAPTURE_NICENESS)
        try:
            self._connect_loop()
        except BufferClosed:
            self._health.finish()
        except BaseException as exc:  # the thread owns its death: record, never leak
            message = redact_text(f"stream {self.name!r}: capture crashed: {type(exc).__name__}: {exc}")
            log.exception("%s", message)
            self._health.fail(message)
        finally:
            self._close_source()
            self._ring.close()

    def _connect_loop(self) -> None:
        failures = 0  # consecutive connections that ended without delivering a frame
        backoff = self._policy.backoff
        while not self._stop.is_set():
            self._delivered = 0
            try:
                info = self._source.open()
                self._health.opened(info.width, info.height, info.fps)
                self._health.transition(StreamState.STREAMING)
                if not self._pump(info):
                    break  # stopped
                self._health.transition(StreamState.ENDED)
                return
            except SourceError as exc:
                if self._stop.is_set():
                    break
                failures = 0 if self._delivered else failures + 1
                if exc.permanent or backoff.exhausted(failures):
                    why = "" if exc.permanent or not backoff.attempts else f" (gave up after {failures} attempts)"
                    log.warning("%s%s", exc, why)
                    self._health.fail(f"{exc}{why}")
                    return
                self._close_source()
                delay = backoff.delay(failures, self._rng)
                log.warning("%s; reconnecting in %.1f s", exc, delay)
                self._health.transition(StreamState.RECONNECTING, error=str(exc))
                if self._stop.wait(delay):
                    break
                self._health.transition(StreamState.CONNECTING)
        self._health.finish()

    def thin(self, max_fps: float | None, stride: int) -> None:
        """Keep every ``stride``-th frame and at most ``max_fps`` a second from the next frame
        read on (a reload's change), the connection going on."""
        self._policy = replace(self._policy, max_fps=max_fps, stride=stride)
        self._rethin = True

    def _decimator(self) -> Decimator | None:
        policy = self._policy
        return Decimator(policy.max_fps, policy.stride) if policy.max_fps is not None or policy.stride > 1 else None

    def _pump(self, info: SourceInfo) -> bool:
        """Read frames into the ring until the source ends (True) or the run stops
        (False). Source errors propagate; ``self._delivered`` counts what got through."""
        behind = (Behind(self.name, "real time", self._ring.overflow is Overflow.BLOCK) if self._policy.realtime
                  else getattr(self._source, "behind", None))  # (a network stream's, by its packets)
        self._health.lag_from(behind)
        pacer = Pacer(self._stop, self._clock, behind) if self._policy.realtime else None
        decimator = self._decimator()
        # A frame the source hands over unconverted is made BGR here while the consumer keeps
        # up, and left to its first use while a live buffer drops frames (for LAZY_AFTER_DROP
        # seconds after a drop), since most of those are dropped unseen (see Frame). Frames
        # thinned out are never converted.
        dropped, lazy_until = self._ring.counts().dropped, -math.inf
        skipped = getattr(self._source, "skipped", 0)  # (frames a live source skipped to catch up)
        while not self._stop.is_set():
            raw = self._source.read()
            if raw is None:
                return not self._stop.is_set()
            if (now_skipped := getattr(self._source, "skipped", 0)) > skipped:  # captured and dropped
                self._ring.passed(now_skipped - skipped)
                self._seq += now_skipped - skipped
                skipped = now_skipped
            # A frame's age counts from its arrival: its packet's for a network stream, the
            # moment it was due for a file played in real time, else now (before converting).
            arrived = self._clock() if raw.arrived is None else raw.arrived
            place = self._timeline.place(raw.pts, arrived, info.fps)
            if self._rethin:
                self._rethin, decimator = False, self._decimator()
            if decimator is not None and not decimator.keep(place):
                continue
            image, convert = raw.image, raw.convert
            if image is None and convert is not None and self._clock() >= lazy_until:
                image, convert = convert(), None  # the consumer keeps up: convert here, beside it
            if pacer is not None:
                due = pacer.wait(_media_time(raw, info, self._seq))
                if due is None:
                    return False
                arrived = due
            now = self._clock()
            meta = FrameMeta(self.name, self._seq, arrived, raw.pts, info.fps, t_ready=now, timeline=place)
            self._ring.put(Frame(meta, image, convert=convert))
            drops = self._ring.counts().dropped
            if drops > dropped:
                dropped, lazy_until = drops, now + LAZY_AFTER_DROP
            self._health.captured(now)
            self._seq += 1
            self._delivered += 1
        return False

    def _close_source(self) -> None:
        try:
            self._source.close()
        except Exception:  # closing a broken source must not mask the real error
            log.debug("closing source of %s failed", self.name, exc_info=True)


class PacketCapture:
    """Reads a stream's recording source (its camera's main stream, say, while the model
    watches the smaller sub stream) packet by packet, never decoding: the packets go to the
    recording. Reconnects as the stream's capture does, by its back-off; says what went wrong
    through ``report`` (the stream's error: once when it goes down, again if it gives up, as
    the back-off does), so a stream whose recording is not being made says so."""

    def __init__(self, name: str, source: PacketSource, stop: threading.Event, backoff: Backoff,
                 report: Callable[[str], None], rng: random.Random) -> None:
        self.name = name
        self.source = source
        self._stop = stop
        self._backoff = backoff
        self._report = report
        self._rng = rng
        self.thread = threading.Thread(target=self._run, name=f"capture:{name}:recording")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        lower_priority(CAPTURE_NICENESS)
        failures = 0  # consecutive connections that ended without a packet
        down = False  # whether the stream has been told its recording source is down
        try:
            while not self._stop.is_set():
                read = 0
                try:
                    self.source.open()
                    log.info("stream %r: recording %s", self.name, self.source.display_uri)
                    down = False
                    while not self._stop.is_set() and self.source.read_packet():
                        read += 1
                    return  # stopped, or a file's end
                except SourceError as exc:
                    if self._stop.is_set():
                        return
                    failures = 0 if read else failures + 1
                    if exc.permanent or self._backoff.exhausted(failures):
                        message = f"recording source: {exc}" + ("" if exc.permanent else " (gave up)")
                        log.error("%s", message)
                        self._report(message)
                        return
                    self._close()
                    delay = self._backoff.delay(failures, self._rng)
                    log.warning("recording source: %s; reconnecting in %.1f s", exc, delay)
                    if not down:
                        self._report(f"recording source: {exc}; reconnecting")
                        down = True
                    if self._stop.wait(delay):
                        return
        except BaseException as exc:  # the thread owns its death: record, never leak
            message = redact_text(f"stream {self.name!r}: recording source crashed: {type(exc).__name__}: {exc}")
            log.exception("%s", message)
            self._report(message)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self.source.close()
        except Exception:  # closing a broken source must not mask the real error
            log.debug("closing the recording source of %s failed", self.name, exc_info=True)


def _media_time(raw: RawFrame, info: SourceInfo, seq: int) -> float:
    if raw.pts is not None:
        return raw.pts
    return seq / (info.fps or 30.0)
