"""Local cameras (``0``, ``/dev/video0``) through OpenCV's VideoCapture, which knows each
platform's camera API (V4L2, AVFoundation, DirectShow/MSMF).

OpenCV tries one camera API after another and each writes its own failure to stderr, a dozen
lines in all for a camera that is not there (``VIDEOIO(V4L2:/dev/video0): can't open camera by
index``, FFmpeg's ``Camera index out of range`` with a C++ signature, OBSENSOR's …), on every
reconnect attempt. Opening is done with OpenCV's log silenced (:func:`quiet_opencv`), and
on Linux a device that does not exist is not handed to OpenCV at all (its FFmpeg back end
writes ``Cannot open video device`` past OpenCV's log level); the error says what is wrong.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
        node = device_node(self.uri)
        camera = self.uri if node is None or node == self.uri else f"{self.uri} ({node})"
        if node is not None and not Path(node).exists():
            raise SourceOpenError(f"stream {self.name!r}: cannot open camera {camera}: no such device",
                                  stream=self.name, url=self.uri)
        with quiet_opencv():
            capture = cv2.VideoCapture(device)
            opened = capture.isOpened()
            if not opened:
                capture.release()
        if not opened:
            raise SourceOpenError(f"stream {self.name!r}: cannot open camera {camera}: {_why_not(node)}",
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
            with quiet_opencv():
                capture.release()

    def interrupt(self) -> None:
        self._interrupted.set()


def device_node(uri: str) -> str | None:
    """The Linux device file of camera ``uri`` (``0`` → ``/dev/video0``; a path is its own);
    None elsewhere, where cameras are numbered by the platform's API and have no file."""
    if not sys.platform.startswith("linux"):
        return None
    return f"/dev/video{int(uri)}" if uri.isdigit() else uri


def _why_not(node: str | None) -> str:
    """Why an existing camera did not open, as far as can be told from outside OpenCV."""
    if node is not None and not os.access(node, os.R_OK | os.W_OK):
        return "no permission to use the device (is the user in the 'video' group?)"
    return "the device did not open (in use by another program, or not a camera that captures?)"


_quiet_lock = threading.Lock()
_quiet: dict[str, int] = {"inside": 0, "level": 0}
"""How many threads are inside :func:`quiet_opencv`, and OpenCV's log level before the first."""


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own log (``[ WARN:0@…] global cap_v4l.cpp …``) silenced while inside.

    OpenCV's log level is the process's: it is set back when the last thread inside leaves,
    to what it was when the first came in (``OPENCV_LOG_LEVEL``, or a program's own setting).
    """
    logging_api = cv2.utils.logging
    with _quiet_lock:
        if _quiet["inside"] == 0:
            _quiet["level"] = logging_api.getLogLevel()
            logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
        _quiet["inside"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["inside"] -= 1
            if _quiet["inside"] == 0:
                logging_api.setLogLevel(_quiet["level"])
