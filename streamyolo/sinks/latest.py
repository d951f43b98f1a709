"""The newest result of every stream, for viewers that show streams rather than keep them.

Inference threads drop each result into a per-stream slot (:meth:`LatestResults.put`,
never blocking beyond a short lock); viewers — the tiled window on the main thread, the
web page's client threads — read the slots at their own pace and draw what is there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import cast

import cv2

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import Clock, RateMeter, wall_time
from streamyolo.frames import Image, Result


@dataclass(frozen=True, slots=True)
class Latest:
    """A stream's newest result; ``version`` counts the results put for that stream."""

    result: Result
    version: int
    fps: float

    def annotate(self, annotator: BoxAnnotator, max_width: int | None = None) -> Image:
        """The frame with its detections drawn; with ``max_width``, shrunk to that width
        first (boxes scaled with it: cheaper than drawing on the full frame and shrinking)."""
        image: Image = self.result.frame.image
        detections = self.result.detections
        height, width = image.shape[:2]
        scale = 1.0
        if max_width is not None and width > max_width:
            scale = max_width / width
            image = cast(Image, cv2.resize(image, (max_width, max(1, round(height * scale))),
                                           interpolation=cv2.INTER_AREA))
            detections = detections.scaled(scale)
        return annotator.annotate(image, detections, stream=self.result.stream, fps=self.fps, age=self.result.age,
                                  lines=self.result.lines, zones=self.result.zones, masks=self.result.masks, zoom=scale,
                                  when=wall_time(self.result.frame.meta.t_capture), speeds=dict(self.result.speeds))


class LatestResults:
    """Per-stream latest-result slots with their output rate; safe from any thread."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._latest: dict[str, tuple[Result, int]] = {}
        self._meters: dict[str, RateMeter] = {}
        self._closed = False

    def put(self, result: Result) -> None:
        with self._changed:
            _, version = self._latest.get(result.stream, (None, 0))
            self._latest[result.stream] = (result, version + 1)
            self._meters.setdefault(result.stream, RateMeter(clock=self._clock)).tick()
            self._changed.notify_all()

    def get(self, stream: str) -> Latest | None:
        with self._changed:
            return self._entry(stream)

    def all(self) -> list[Latest]:
        """Every stream's newest result, by stream name."""
        with self._changed:
            return [entry for name in sorted(self._latest) if (entry := self._entry(name)) is not None]

    def wait_newer(self, stream: str, version: int, timeout: float) -> Latest | None:
        """``stream``'s newest result once it is newer than ``version``; ``None`` after
        ``timeout`` seconds or once :meth:`close` is called."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._latest.get(stream, (None, 0))[1] > version, timeout)
            if self._closed:
                return None
            entry = self._entry(stream)
            return entry if entry is not None and entry.version > version else None

    def forget(self, stream: str) -> None:
        """Drop ``stream``'s slot (it was removed): :meth:`all` no longer has it."""
        with self._changed:
            self._latest.pop(stream, None)
            self._meters.pop(stream, None)

    def close(self) -> None:
        """Wake every waiter; :meth:`wait_newer` returns ``None`` from now on."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _entry(self, stream: str) -> Latest | None:
        found = self._latest.get(stream)
        if found is None:
            return None
        return Latest(found[0], found[1], self._meters[stream].rate())
