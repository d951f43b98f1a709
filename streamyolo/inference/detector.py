"""The Detector seam: what an inference worker needs from a model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from streamyolo.frames import Detections, Image


class Detector(Protocol):
    """Finds objects in a batch of BGR images.

    One instance is used by one thread at a time; :class:`LockedDetector` makes an instance
    safe to share. ``detect`` returns one :class:`Detections` per image, in order, with
    boxes in the pixels of the image given.
    """

    @property
    def names(self) -> Mapping[int, str]: ...

    def detect(self, images: Sequence[Image]) -> list[Detections]: ...

    def close(self) -> None: ...


DetectorFactory = Callable[[], Detector]
"""Builds a ready (warmed-up) detector. Called inside the thread that will use it."""


def detect_by_shape(detector: Detector, images: Sequence[Image]) -> list[Detections]:
    """``detector.detect(images)`` for images of any shapes, results in the images' order: a
    model's batch has one shape, so one call per shape; but a detector that takes a batch of
    mixed shapes (``mixed_shapes``: one that cuts it between replicas of its model, or sends it to
    a process that does) gets it whole, so that its replicas share the batch evenly (a frame and
    its tiles: 1 + 9 pictures on 2 replicas, 5 each, not the frame on one while the other waits)."""
    if getattr(detector, "mixed_shapes", False) or len({image.shape for image in images}) <= 1:
        return detector.detect(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    out: list[Detections | None] = [None] * len(images)
    for indices in groups.values():
        for index, found in zip(indices, detector.detect([images[i] for i in indices]), strict=True):
            out[index] = found
    return [d for d in out if d is not None]
