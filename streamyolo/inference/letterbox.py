"""Letterboxing into reused buffers, exactly as Ultralytics' ``LetterBox`` does it.

Ultralytics resizes each frame with ``cv2.resize`` (linear), then pads it with
``cv2.copyMakeBorder``, allocating two images per frame and one batch array per call.
:class:`Letterboxer` computes the same geometry once per input shape and resizes every
frame straight into its slot of a preallocated, pre-padded batch buffer: the same pixels,
without the allocations and copies. Results therefore stay equal to ``predict()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.frames import Image

PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where a frame of one shape lands in the model input."""

    input_hw: tuple[int, int]
    resized_wh: tuple[int, int]
    top: int
    left: int


def geometry(shape: tuple[int, int], new_shape: tuple[int, int], auto: bool, stride: int) -> Geometry:
    """Ultralytics ``LetterBox.get_params`` (centre, scale-up allowed), for one frame shape."""
    height, width = shape
    ratio = min(new_shape[0] / height, new_shape[1] / width)
    resized = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_w, pad_h = new_shape[1] - resized[0], new_shape[0] - resized[1]
    if auto:  # the smallest rectangle that the stride divides
        pad_w, pad_h = pad_w % stride, pad_h % stride
    half_w, half_h = pad_w / 2, pad_h / 2
    top, bottom = round(half_h - 0.1), round(half_h + 0.1)
    left, right = round(half_w - 0.1), round(half_w + 0.1)
    return Geometry((resized[1] + top + bottom, resized[0] + left + right), resized, top, left)


Allocator = Callable[[tuple[int, ...]], npt.NDArray[np.uint8]]


def _numpy_allocator(shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    return np.empty(shape, dtype=np.uint8)


class Letterboxer:
    """Fills a reused ``(n, H, W, 3)`` uint8 batch buffer with letterboxed frames.

    ``allocator`` lets a CUDA runner put the buffer in pinned host memory. The buffer is
    reused by the next call: use the returned view before calling again.
    """

    def __init__(self, new_shape: tuple[int, int], auto: bool, stride: int,
                 allocator: Allocator = _numpy_allocator) -> None:
        self.new_shape = new_shape
        self.auto = auto
        self.stride = stride
        self._allocator = allocator
        self._geometries: dict[tuple[int, int], Geometry] = {}
        self._buffer: npt.NDArray[np.uint8] | None = None
        self._buffer_geometry: Geometry | None = None

    def geometry(self, shape: tuple[int, int]) -> Geometry:
        found = self._geometries.get(shape)
        if found is None:
            found = self._geometries[shape] = geometry(shape, self.new_shape, self.auto, self.stride)
        return found

    def fill(self, images: Sequence[Image]) -> tuple[npt.NDArray[np.uint8], Geometry]:
        """Letterbox ``images`` (all of one shape) into the buffer; returns the filled view."""
        first = images[0].shape
        where = self.geometry((first[0], first[1]))
        buffer = self._buffer_for(len(images), where)
        (width, height), top, left = where.resized_wh, where.top, where.left
        for slot, image in zip(buffer, images, strict=False):
            region = slot[top:top + height, left:left + width]
            if image.shape[0] == height and image.shape[1] == width:
                region[...] = image
            else:
                cv2.resize(image, (width, height), dst=region, interpolation=cv2.INTER_LINEAR)
        return buffer[: len(images)], where

    def _buffer_for(self, count: int, where: Geometry) -> npt.NDArray[np.uint8]:
        buffer = self._buffer
        if buffer is None or buffer.shape[0] < count or self._buffer_geometry != where:
            # Padding only ever holds PAD_VALUE, so it is written once per geometry.
            size = max(count, buffer.shape[0] if buffer is not None and self._buffer_geometry == where else 0)
            buffer = self._allocator((size, *where.input_hw, 3))
            buffer[...] = PAD_VALUE
            self._buffer, self._buffer_geometry = buffer, where
        return buffer
