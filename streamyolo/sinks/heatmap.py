"""``heatmaps``: where each stream's objects were, over the run, as a picture.

Each processed frame adds the disc inside each detection's box to its stream's heat (as
Ultralytics' ``Heatmap`` solution does; on a grid a quarter of the picture's size, so a 1080p
stream's heat takes half a megabyte): where people walk, stand, queue, where cars park, the
longer the hotter. :meth:`HeatmapSink.picture` draws it, at any time, over the stream's newest
frame (the JET colour map, blended half and half where there was anything), for the web
page's ``/heatmaps/<stream>.jpg``; the folder gets ``<stream>.png`` every minute and at the end
of the run, written whole (a temporary name, then renamed) by a thread of its own, and the heat
itself beside it, ``<stream>.heat.npy``, from which the next run goes on (a service restarted,
a box rebooted: a week's heatmap is a week's), unless told to ``overwrite``.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.frames import Image, Result
from streamyolo.sinks.base import BackgroundWriter, check_writable_folder, write_picture, write_whole

log = logging.getLogger(__name__)

GRID = 4
"""Pixels of the picture per cell of the heat, each way."""

SAVE_SECONDS = 60.0
"""How often each stream's heatmap is written to the folder (and at the end)."""


@dataclass(slots=True)
class _Heat:
    heat: npt.NDArray[np.float32]
    frame: Image
    """The stream's newest frame (the pictures' background)."""
    saved_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


def add_heat(heat: npt.NDArray[np.float32], boxes: npt.NDArray[np.float32], grid: int = GRID) -> None:
    """Add 1 to the cells of ``heat`` inside the disc each box holds (its centre, half its
    shorter side; boxes in the picture's pixels, ``heat`` a cell per ``grid`` of them).

    >>> heat = np.zeros((10, 10), np.float32)
    >>> add_heat(heat, np.array([[0, 0, 40, 40]], np.float32))
    >>> int(heat.sum()), float(heat[5, 5]), float(heat[0, 0])
    (80, 1.0, 0.0)
    """
    rows, cols = heat.shape
    for x1, y1, x2, y2 in boxes / grid:
        cx, cy, radius = (x1 + x2) / 2, (y1 + y2) / 2, min(x2 - x1, y2 - y1) / 2
        left, right = max(0, int(np.floor(cx - radius))), min(cols, int(np.ceil(cx + radius)))
        top, bottom = max(0, int(np.floor(cy - radius))), min(rows, int(np.ceil(cy + radius)))
        if right <= left or bottom <= top:
            continue
        ys, xs = np.ogrid[top:bottom, left:right]
        heat[top:bottom, left:right] += ((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= radius ** 2)


def draw_heat(frame: Image, heat: npt.NDArray[np.float32]) -> Image:
    """``frame`` with ``heat`` over it: the JET colour map of the heat (scaled to its hottest
    cell), blended half and half where there is any; the rest of the picture as it was."""
    height, width = frame.shape[:2]
    hottest = float(heat.max())
    if hottest <= 0:
        return frame.copy()
    scaled = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    levels = np.clip(scaled * (255.0 / hottest), 0, 255).astype(np.uint8)
    blended = cv2.addWeighted(frame, 0.5, cv2.applyColorMap(levels, cv2.COLORMAP_JET), 0.5, 0)
    out = frame.copy()
    warm = scaled > 0
    out[warm] = blended[warm]
    return out


class HeatmapSink:
    """Every stream's heat (see the module); ``folder`` gets ``<stream>.png`` (``None``: none)."""

    def __init__(self, folder: str | Path | None = None, save_every: float = SAVE_SECONDS,
                 overwrite: bool = False) -> None:
        """``overwrite``: each stream's heat starts afresh, not from the folder's earlier runs'."""
        self.folder = Path(folder) if folder is not None else None
        self.save_every = save_every
        self.overwrite = overwrite
        self._streams: dict[str, _Heat] = {}
        self._lock = threading.Lock()  # guards _streams' keys
        self._writer = BackgroundWriter("heatmaps", f"heatmaps folder {str(self.folder)!r}", "heatmap(s)")

    @property
    def saved(self) -> list[Path]:
        """Every heatmap file written, in order."""
        return self._writer.saved

    def check(self) -> None:
        if self.folder is not None:
            check_writable_folder(self.folder, "heatmaps folder")

    def open(self) -> None:
        self.check()
        if self.folder is not None:
            self._writer.start()

    @property
    def streams(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def write(self, result: Result) -> None:
        image = result.frame.image
        with self._lock:
            state = self._streams.get(result.stream)
            if state is None or state.heat.shape != _grid_shape(image):  # first frame, or a new size
                heat = self._earlier(result.stream, image) if state is None else None
                if heat is None:
                    heat = np.zeros(_grid_shape(image), np.float32)
                state = self._streams[result.stream] = _Heat(heat, image)
        with state.lock:
            add_heat(state.heat, result.detections.xyxy)
            state.frame = image
        now = time.monotonic()
        if self.folder is not None and now - state.saved_at >= self.save_every:
            state.saved_at = now
            self._writer.put(functools.partial(self._save, result.stream))

    def _earlier(self, stream: str, image: Image) -> npt.NDArray[np.float32] | None:
        """``stream``'s heat as the folder's earlier runs left it, if it is there, goes with
        pictures of ``image``'s size, and is not to be overwritten."""
        if self.folder is None or self.overwrite:
            return None
        path = self.folder / f"{stream}.heat.npy"
        try:
            heat: npt.NDArray[np.float32] = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("heatmap of stream %r starts afresh: %s cannot be read (%s)", stream, path, exc)
            return None
        if heat.dtype != np.float32 or heat.shape != _grid_shape(image):
            log.warning("heatmap of stream %r starts afresh: %s is of pictures of another size (now %dx%d)",
                        stream, path, image.shape[1], image.shape[0])
            return None
        log.info("heatmap of stream %r goes on from the earlier runs' (%s; --overwrite starts afresh)", stream, path)
        return heat

    def picture(self, stream: str) -> Image | None:
        """``stream``'s heatmap now, over its newest frame; ``None`` before its first frame."""
        now = self._now(stream)
        return None if now is None else draw_heat(now[1], now[0])

    def _now(self, stream: str) -> tuple[npt.NDArray[np.float32], Image] | None:
        """A copy of ``stream``'s heat and its newest frame; ``None`` before its first frame."""
        with self._lock:
            state = self._streams.get(stream)
        if state is None:
            return None
        with state.lock:
            return state.heat.copy(), state.frame

    def close(self) -> None:
        if self.folder is None:
            return
        for stream in self.streams:
            self._writer.put(functools.partial(self._save, stream))
        self._writer.close()

    def _save(self, stream: str) -> Path | None:
        assert self.folder is not None
        now = self._now(stream)
        if now is None:
            return None
        heat, frame = now
        path = self.folder / f"{stream}.png"
        write_picture(path, draw_heat(frame, heat))
        data = io.BytesIO()
        np.save(data, heat, allow_pickle=False)
        write_whole(self.folder / f"{stream}.heat.npy", data.getvalue())
        return path


def _grid_shape(image: Image) -> tuple[int, int]:
    return -(-image.shape[0] // GRID), -(-image.shape[1] // GRID)
