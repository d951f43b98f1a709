"""Capture threads: one per stream, reading its source into its ring buffer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from streamyolo.buffering import BufferClosed, RingBuffer
from streamyolo.errors import SourceError
from streamyolo.frames import Frame, FrameMeta
from streamyolo.pipeline.health import StreamHealth, StreamState
from streamyolo.sources.base import FrameSource, RawFrame, SourceInfo
from streamyolo.sources.redact import redact_text

log = logging.getLogger(__name__)


class Pacer:
    """Holds frames back to their presentation time, so a file plays like a camera."""

    def __init__(self, stop: threading.Event, clock: Callable[[], float]) -> None:
        self._stop = stop
        self._clock = clock
        self._origin: tuple[float, float] | None = None  # (wall time, media time) of the first frame

    def wait(self, media_time: float) -> bool:
        """Wait until ``media_time`` is due; False if stopped meanwhile."""
        now = self._clock()
        if self._origin is None:
            self._origin = (now, media_time)
            return not self._stop.is_set()
        due = self._origin[0] + (media_time - self._origin[1])
        if due > now:
            return not self._stop.wait(due - now)
        return not self._stop.is_set()


class CaptureWorker:
    """Reads ``source`` into ``ring`` until the source ends, fails or ``stop`` is set.

    The thread owns its death: whatever happens it closes the source and the ring (so the
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
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._source = source
        self._ring = ring
        self._health = health
        self._stop = stop
        self._realtime = realtime
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name=f"capture:{name}")

    def start(self) -> None:
        self._thread.start()

    def interrupt(self) -> None:
        """Cut a blocking open or read short (called on stop, from another thread)."""
        self._source.interrupt()

    def join(self, timeout: float | None = None) -> bool:
        """True once the thread has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def _run(self) -> None:
        try:
            self._capture()
        except BufferClosed:
            self._health.finish()
        except SourceError as exc:
            log.warning("%s", exc)
            self._health.fail(str(exc))
        except BaseException as exc:  # the thread owns its death: record, never leak
            message = redact_text(f"stream {self.name!r}: capture crashed: {type(exc).__name__}: {exc}")
            log.exception("%s", message)
            self._health.fail(message)
        finally:
            try:
                self._source.close()
            except Exception:  # closing a broken source must not mask the real error
                log.debug("closing source of %s failed", self.name, exc_info=True)
            self._ring.close()

    def _capture(self) -> None:
        info = self._source.open()
        self._health.opened(info.width, info.height, info.fps)
        self._health.transition(StreamState.STREAMING)
        pacer = Pacer(self._stop, self._clock) if self._realtime else None
        seq = 0
        while not self._stop.is_set():
            raw = self._source.read()
            if raw is None:
                if self._stop.is_set():
                    break
                self._health.transition(StreamState.ENDED)
                return
            if pacer is not None and not pacer.wait(_media_time(raw, info, seq)):
                break
            now = self._clock()
            frame = Frame(FrameMeta(self.name, seq, now, raw.pts, info.fps), raw.image)
            self._ring.put(frame)
            self._health.captured(now)
            seq += 1
        self._health.finish()


def _media_time(raw: RawFrame, info: SourceInfo, seq: int) -> float:
    if raw.pts is not None:
        return raw.pts
    return seq / (info.fps or 30.0)
