"""Local cameras (``0``, ``/dev/video0``) through OpenCV's VideoCapture, which knows each
platform's camera API (V4L2, AVFoundation, DirectShow/MSMF)."""

from __future__ import annotations

import threading
import time
from typing import cast

import cv2

from streamyolo.errors import SourceOpenError, SourceReadError
from streamyolo.frames import Image
from streamyolo.sources.base import RawFrame, SourceInfo


class WebcamSource:
    """One local camera. The V4L2 driver bounds each read (about 10 s without frames)."""

    def __init__(self, name: str, uri: str) -> None:
        self.name = name
        self.uri = uri
        self._capture: cv2.VideoCapture | None = None
        self._interrupted = threading.Event()
        self._t0: float | None = None

    def open(self) -> SourceInfo:
        self._interrupted.clear()
        device: int | str = int(self.uri) if self.uri.isdigit() else self.uri
        capture = cv2.VideoCapture(device)
        if not capture.isOpened():
            capture.release()
            raise SourceOpenError(f"stream {self.name!r} ({self.uri}): cannot open camera",
                                  stream=self.name, url=self.uri)
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        return SourceInfo(
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=float(fps) if 0 < fps <= 1000 else None,
        )

    def read(self) -> RawFrame | None:
        if self._capture is None:
            raise SourceReadError(f"stream {self.name!r}: read before open", stream=self.name, url=self.uri)
        ok, image = self._capture.read()
        if not ok or image is None:
            if self._interrupted.is_set():
                return None
            raise SourceReadError(f"stream {self.name!r} ({self.uri}): camera read failed",
                                  stream=self.name, url=self.uri)
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return RawFrame(image=cast(Image, image), pts=now - self._t0)

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def interrupt(self) -> None:
        self._interrupted.set()
