"""The Detector seam: what an inference worker needs from a model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from streamyolo.frames import Detections, Image


class Detector(Protocol):
    """Finds objects in a batch of BGR images.

    One instance is used by one thread at a time; :class:`LockedDetector` makes an instance
    safe to share. ``detect`` returns one :class:`Detections` per image, in order, with
    boxes in the pixels of the image given; the images may differ in shape (a frame and its
    tiles: a model runs each shape apart, but replicas of it share the whole batch evenly).
    """

    @property
    def names(self) -> Mapping[int, str]: ...

    def detect(self, images: Sequence[Image]) -> list[Detections]: ...

    def close(self) -> None: ...


DetectorFactory = Callable[[], Detector]
"""Builds a ready (warmed-up) detector. Called inside the thread that will use it."""

