"""A tiled window of all streams, drawn on the main thread.

OpenCV's GUI calls belong to the main thread, so inference threads only drop their
newest result into a latest-frame slot (:meth:`TiledDisplay.write`, never blocking), and
the main thread calls :meth:`TiledDisplay.render` between its other duties.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

import cv2

from streamyolo.annotation import BoxAnnotator, tile
from streamyolo.frames import Result
from streamyolo.sinks.latest import LatestResults

log = logging.getLogger(__name__)

_QUIT_KEYS = {ord("q"), ord("Q"), 27}


def display_available() -> bool:
    """True where a window can really be opened: a reachable X or Wayland display on Linux
    (checked by connecting, since OpenCV's Qt backend aborts the process otherwise),
    always on macOS and Windows."""
    if sys.platform in ("darwin", "win32"):
        return True
    if os.environ.get("WAYLAND_DISPLAY"):
        return True
    if not os.environ.get("DISPLAY"):
        return False
    library = ctypes.util.find_library("X11")
    if library is None:
        return False
    try:
        x11 = ctypes.CDLL(library)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handle = x11.XOpenDisplay(None)
    except OSError:
        return False
    if not handle:
        return False
    x11.XCloseDisplay(handle)
    return True


class TiledDisplay:
    """Latest annotated frame of every stream in one window; ``q`` or Esc asks to quit."""

    def __init__(self, title: str = "streamyolo", annotator: BoxAnnotator | None = None,
                 size: tuple[int, int] = (1280, 720)) -> None:
        self.title = title
        self.annotator = annotator or BoxAnnotator()
        self.size = size
        self._latest = LatestResults()
        self._window_open = False

    def open(self) -> None:
        """The window opens on the first render, on the main thread."""

    def write(self, result: Result) -> None:
        self._latest.put(result)

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        """A removed stream's tile goes."""
        self._latest.forget(stream)

    def render(self) -> bool:
        """Draw the newest frames; returns False when the user asked to quit."""
        images = [latest.annotate(self.annotator) for latest in self._latest.all()]
        if not self._window_open:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(self.title, *self.size)
            self._window_open = True
        if images:
            cv2.imshow(self.title, tile(images, *self.size))
        key = cv2.waitKey(1) & 0xFF
        return key not in _QUIT_KEYS

    def close(self) -> None:
        if self._window_open:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                log.debug("closing the window failed", exc_info=True)
            self._window_open = False
