"""``motion``: run the model only on frames where something moved.

Most of a camera's day is a still picture: an empty car park, a corridor at night. A stream
with ``motion`` on compares each frame, made small and grey (``HEIGHT`` rows, blurred a
little so that a camera's compression noise does not count), with the frame its model last
ran on; where no more than ``area`` of the picture changed by more than ``threshold`` grey
levels, the frame is *still*: its detections are the last ones the model gave, and no forward
pass is spent on it. The model runs again as soon as something moves, and at least every
``refresh`` seconds of the stream's timeline (an object that stopped, light that changed
slowly). A still frame goes through everything else as any other: the tracker, lines, zones,
masks, every output; the JSONL line says ``"still": true``.

Comparing with the frame the model last ran on, not the one before, catches slow change too
(a person walking slowly far away moves little from one frame to the next, and much from the
last detection), so what is carried forward is never further from the picture than that. What
moves inside a stream's masks that ignore every class (a tree that waves, a television), or
outside a mask that ignores the outside, does not count.
This is how NVRs (Frigate, Blue Iris) spare a CPU that watches many cameras.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.frames import Image, Mask

T = TypeVar("T")

HEIGHT = 180
"""Rows of the small grey picture frames are compared at (its width keeps the picture's shape)."""


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """A stream's ``motion`` settings (see the module)."""

    threshold: int = 20
    """Grey levels (of 255) a pixel of the small picture must change by to count as moved."""
    area: float = 0.0005
    """The fraction of the picture that must move for the model to run (0.0005: about a 6 × 6
    pixel blob at 180 rows, a person 40 × 40 pixels of a 1080p picture)."""
    refresh: float = 5.0
    """Seconds of the stream's timeline after which the model runs even on a still picture."""


class MotionGate(Generic[T]):
    """One stream's gate, in its inference worker's thread: :meth:`still` says whether a frame
    may take what the frame the model last ran on gave (``T``: its detections, or where they
    will be), :meth:`ran` says the model runs on a frame."""

    def __init__(self, settings: MotionSettings, masks: Sequence[Mask] = ()) -> None:
        """``masks``: the stream's masks; what moves where one ignores every class (a tree that
        waves), or outside one that ignores the outside, does not count."""
        self.settings = settings
        self._masks = [mask for mask in masks if mask.classes is None]
        self._ignored: tuple[tuple[int, ...], npt.NDArray[np.bool_] | None] = ((), None)  # for a picture's shape
        self._reference: npt.NDArray[np.uint8] | None = None  # the small picture the model last ran on
        self._ran_at = -math.inf
        self._found: T | None = None

    def small(self, image: Image) -> npt.NDArray[np.uint8]:
        """``image`` as :meth:`still` compares it: :func:`shrink`, its ignored areas black."""
        small = shrink(image)
        if self._masks:
            shape, ignored = self._ignored
            if shape != image.shape:
                ignored = ignored_areas(self._masks, image.shape[:2], small.shape[:2])
                self._ignored = (image.shape, ignored)
            if ignored is not None:
                small[ignored] = 0
        return small

    def still(self, small: npt.NDArray[np.uint8], at: float) -> T | None:
        """What the frame the model last ran on gave, if the frame ``small`` (:meth:`small`;
        at ``at`` seconds of the stream's timeline) is still; else ``None``: the model must run
        on it (and :meth:`ran` be told)."""
        reference, found = self._reference, self._found
        if (reference is None or found is None or reference.shape != small.shape
                or not 0 <= at - self._ran_at < self.settings.refresh):
            return None
        return found if moved(reference, small, self.settings.threshold) <= self.settings.area else None

    def ran(self, small: npt.NDArray[np.uint8], at: float, found: T) -> None:
        """The model runs on the frame ``small`` (at ``at``): later frames compare with it and
        take ``found``."""
        self._reference, self._ran_at, self._found = small, at, found

    @property
    def found(self) -> T | None:
        """What the frame the model last ran on gave."""
        return self._found

    def settle(self, found: T) -> None:
        """What the frame the model last ran on gave, now known."""
        self._found = found

    def forget(self) -> None:
        """Compare with nothing: the model runs on the next frame."""
        self._reference, self._found = None, None


def ignored_areas(masks: Sequence[Mask], picture_hw: tuple[int, ...], small_hw: tuple[int, ...]
                  ) -> npt.NDArray[np.bool_] | None:
    """Where ``masks`` (in the picture's pixels) ignore everything, on the small picture.

    >>> from streamyolo.frames import Mask
    >>> tree = Mask("tree", ((0, 0), (960, 0), (960, 1080), (0, 1080)))
    >>> round(float(ignored_areas([tree], (1080, 1920), (180, 320)).mean()), 2)  # the left half
    0.5
    """
    height, width = picture_hw
    rows, columns = small_hw
    scale = np.array([columns / width, rows / height])
    ignored = np.zeros((rows, columns), np.uint8)
    for mask in masks:
        area = np.zeros_like(ignored)
        cv2.fillPoly(area, [np.round(np.array(mask.points) * scale).astype(np.int32)], 1)
        ignored |= (1 - area) if mask.outside else area
    return ignored.astype(bool) if ignored.any() else None


def shrink(image: Image) -> npt.NDArray[np.uint8]:
    """``image`` (BGR) as a small grey picture ``HEIGHT`` rows high, blurred a little.

    >>> shrink(np.zeros((1080, 1920, 3), np.uint8)).shape
    (180, 320)
    """
    height, width = image.shape[:2]
    rows = min(HEIGHT, height)
    columns = max(1, round(width * rows / height))
    # Grey first: a third of the pixels to average down (about 1 ms for a 1080p picture).
    small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (columns, rows), interpolation=cv2.INTER_AREA)
    return cast(npt.NDArray[np.uint8], cv2.GaussianBlur(small, (3, 3), 0))


def moved(before: npt.NDArray[np.uint8], now: npt.NDArray[np.uint8], threshold: int) -> float:
    """The fraction of pixels that changed by more than ``threshold`` grey levels.

    >>> a = np.zeros((10, 10), np.uint8); b = a.copy(); b[:2, :5] = 200
    >>> moved(a, b, 20)
    0.1
    """
    return float(np.count_nonzero(cv2.absdiff(before, now) > threshold)) / before.size
