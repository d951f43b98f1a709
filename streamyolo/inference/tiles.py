"""``tiles``: small objects on big pictures, found where they are not shrunk away.

A model sees its input at ``imgsz`` (640 pixels across): a 4K camera's picture shrinks six
times over, and a person 60 pixels tall far down the street becomes 10 pixels, too few to be
found. A stream with ``tiles`` (``3x2``: 3 across, 2 down) also gives the model overlapping
parts of its picture, each shrunk far less, as SAHI's sliced inference does; and the whole
picture, for what is too big for any part (``whole``). The parts' objects are put back in the
picture's pixels and merged: an object a part cut at one of its inner edges is dropped there
(the part beside it has it whole, where the two overlap, or the whole picture does), and an
object found twice (in two parts where they overlap, in a part and the whole picture) is kept
once, the more confident: two boxes of one class from different pictures that overlap by more
than ``MERGE_IOU`` (intersection over union) are one object. Boxes from one picture are left as
the model's own non-maximum suppression left them (two people side by side stay two).

Each part is one more picture for the model: a ``3x2`` stream with ``whole`` costs 7 forward
passes a frame (the parts of one stream are batched together). Tracking, lines, zones, masks
and every output then see one frame's merged objects, as with any other stream. With
``motion`` too, a frame where something moved runs the whole picture and only the parts where
something moved (each part has a motion gate of its own, as sensitive in pixels as the
frame's); the others take what the model last found on them (see the inference worker).

A stream's ``region`` (``x1, y1, x2, y2``) is all the model looks at: the parts cut the region
instead of the picture (1 × 1: the region alone, one pass a frame, as without tiles), and the
whole picture is not run; an object the region cuts is kept as cut (nothing else sees it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streamyolo.frames import Detections, Image, overlaps
from streamyolo.inference.detector import Detector

MERGE_IOU = 0.5
"""Boxes of one class from two of a frame's pictures that overlap more than this (intersection
over union) are one object. Lower than the model's own ``iou`` (0.7): the same object seen at two
scales gives boxes that agree less than two guesses from one picture. On a 3x3 mosaic of
people.mp4's pictures, 0.5 left 4 pairs of one class overlapping by more than 0.3 (the model
alone on the nine pictures gives 3), 0.7 left 7; neither lost a person."""

EDGE = 0.01
"""How near (a fraction of the part's side, at least 2 pixels) a box must come to an edge of a
part that lies inside the picture to count as cut there."""


@dataclass(frozen=True, slots=True)
class TileSettings:
    """A stream's ``tiles`` (see the module)."""

    columns: int = 2
    """Parts across; 0 (with ``rows`` 0): ``auto``, as many as make parts about ``size`` across."""
    rows: int = 2
    overlap: float = 0.2
    """How much neighbouring parts share, a fraction of a part's width (height): an object
    smaller than that is whole in one of them."""
    whole: bool = True
    """Also run the model on the whole picture, for objects bigger than the overlap."""
    most: int = 300
    """At most this many objects a frame, the most confident (the run's ``max_det``, which
    bounds each picture the model runs on)."""
    size: tuple[int, int] = (640, 640)
    """``auto``: the model's input (height, width), which parts should be about as big as."""
    region: tuple[int, int, int, int] | None = None
    """The part of the picture the model looks at (``x1, y1, x2, y2``, pixels), which the
    parts cut (1 × 1: the region alone); ``None``: the whole picture."""
    outline: tuple[tuple[float, float], ...] | None = None
    """A region given as an outline (``region`` the rectangle around it): the objects outside
    it are ignored."""

    @property
    def one_picture(self) -> bool:
        """Whether the model runs on one picture a frame (a region alone), as without tiles."""
        return self.region is not None and self.columns == self.rows == 1 and not self.whole

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Parts across and down for a ``height`` × ``width`` picture (``auto``: as many as
        make parts about ``size``, at least 1; 1 × 1 is the whole picture alone).

        >>> auto = TileSettings(0, 0)
        >>> auto.grid(1080, 1920), auto.grid(2160, 3840), auto.grid(720, 1280), auto.grid(480, 640)
        ((3, 2), (6, 3), (2, 1), (1, 1))
        """
        if self.columns:
            return self.columns, self.rows
        return max(1, round(width / self.size[1])), max(1, round(height / self.size[0]))

    def describe(self) -> str:
        """
        >>> TileSettings(3, 2).describe()
        'tiles 3x2 (overlap 20%) and the whole picture: 7 passes a frame'
        >>> TileSettings(0, 0, whole=False).describe()
        'tiles auto (parts about 640x640, overlap 20%)'
        >>> print(TileSettings(1, 1, whole=False, region=(0, 5, 90, 70), outline=((0, 5), (90, 5), (40, 70))
        ...                    ).describe().replace(": ", ":\\n"))
        region (0, 5)-(90, 70), around its outline of 3 points (what lies outside it ignored) alone:
        the model looks at that part of the picture only
        """
        whole = " and the whole picture" if self.whole else ""
        if self.region is not None:
            where = "region ({}, {})-({}, {})".format(*self.region)
            if self.outline is not None:
                where += f", around its outline of {len(self.outline)} points (what lies outside it ignored)"
            if self.one_picture:
                return f"{where} alone: the model looks at that part of the picture only"
            grid = "auto" if not self.columns else f"{self.columns}x{self.rows}"
            return f"{where} in tiles {grid} (overlap {self.overlap:.0%}){whole}"
        if not self.columns:
            return f"tiles auto (parts about {self.size[1]}x{self.size[0]}, overlap {self.overlap:.0%}){whole}"
        return (f"tiles {self.columns}x{self.rows} (overlap {self.overlap:.0%}){whole}: "
                f"{self.columns * self.rows + self.whole} passes a frame")


@dataclass(frozen=True, slots=True)
class Tile:
    """A part of a picture: its top-left corner and size, and which of its edges (left, top,
    right, bottom) lie inside the picture."""

    x: int
    y: int
    width: int
    height: int
    inner: tuple[bool, bool, bool, bool]


def _spans(length: int, count: int, overlap: float) -> list[tuple[int, int]]:
    """``count`` (start, size) spans over ``length`` pixels, equal, sharing ``overlap`` of a
    span with each neighbour, the first at 0 and the last ending at ``length``.

    >>> _spans(1920, 3, 0.2)
    [(0, 739), (590, 739), (1181, 739)]
    """
    size = min(length, math.ceil(length / (count - (count - 1) * overlap)))
    if count == 1:
        return [(0, length)]
    step = (length - size) / (count - 1)
    return [(round(i * step), size) for i in range(count)]


def area(settings: TileSettings, height: int, width: int) -> tuple[int, int, int, int]:
    """What the parts of a ``height`` × ``width`` picture cut (``x1, y1, x2, y2``): its
    ``region`` within it, or all of it (also for a region that leaves less than 2 × 2 pixels
    of it: coordinates of another resolution, which ``check --connect`` warns of).

    >>> area(TileSettings(region=(100, 50, 5000, 300)), 720, 1280), area(TileSettings(region=(2000, 0, 2100, 9)),
    ...                                                                   720, 1280)
    ((100, 50, 1280, 300), (0, 0, 1280, 720))
    """
    if settings.region is not None:
        x1, y1, x2, y2 = settings.region
        x1, y1, x2, y2 = min(x1, width), min(y1, height), min(x2, width), min(y2, height)
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            return x1, y1, x2, y2
    return 0, 0, width, height


@functools.lru_cache(maxsize=64)
def tiles(settings: TileSettings, height: int, width: int) -> tuple[Tile, ...]:
    """The parts of a ``height`` × ``width`` picture, row by row; an edge is inner where it
    lies inside what they cut (:func:`area`: the picture, or its region).

    >>> [(t.x, t.y, t.width, t.height, t.inner) for t in tiles(TileSettings(2, 1), 100, 200)]
    [(0, 0, 112, 100, (False, False, True, False)), (88, 0, 112, 100, (True, False, False, False))]
    >>> [(t.x, t.y, t.width, t.height, t.inner) for t in tiles(TileSettings(1, 1, region=(20, 10, 120, 60)), 100, 200)]
    [(20, 10, 100, 50, (False, False, False, False))]
    """
    left, top, right, bottom = area(settings, height, width)
    columns, rows = settings.grid(bottom - top, right - left)
    if columns * rows == 1 and settings.region is None:  # `auto` on a small picture: no parts
        return ()
    out = []
    for y, h in _spans(bottom - top, rows, settings.overlap):
        for x, w in _spans(right - left, columns, settings.overlap):
            out.append(Tile(left + x, top + y, w, h, (x > 0, y > 0, left + x + w < right, top + y + h < bottom)))
    return tuple(out)


def with_whole(settings: TileSettings, height: int, width: int) -> bool:
    """Whether the model runs on a ``height`` × ``width`` picture whole: with ``whole``, or
    where it has no parts."""
    return settings.whole or not tiles(settings, height, width)


def cut(settings: TileSettings, image: Image) -> list[Image]:
    """What the model runs on for ``image``: the whole picture (:func:`with_whole`), then its
    parts (views of it, not copies)."""
    parts = [image[t.y:t.y + t.height, t.x:t.x + t.width] for t in tiles(settings, *image.shape[:2])]
    return [image, *parts] if with_whole(settings, *image.shape[:2]) else parts


def detect_tiled(detector: Detector, image: Image, settings: TileSettings | None) -> Detections:
    """One picture's objects: ``detector`` on it alone, or (``settings``) on it and its parts, merged."""
    if settings is None:
        return detector.detect([image])[0]
    return merge(settings, image.shape, detector.detect(cut(settings, image)), detector.names)


def merge(settings: TileSettings, shape: tuple[int, ...], found: Sequence[Detections],
          names: Mapping[int, str]) -> Detections:
    """One picture's objects from what the model found on each of :func:`cut`'s pictures (in
    that order), in the picture's pixels, most confident first."""
    parts = tiles(settings, int(shape[0]), int(shape[1]))
    whole = [found[0]] if with_whole(settings, int(shape[0]), int(shape[1])) else []
    placed = [_uncut(tile, part).placed(1.0, tile.x, tile.y)
              for tile, part in zip(parts, found[len(whole):], strict=True)]
    pictures = [*whole, *placed]
    everything = Detections.joined(pictures, names)
    source = np.repeat(np.arange(len(pictures)), [len(p) for p in pictures])
    return everything.select(suppressed(everything, source, MERGE_IOU)[:settings.most])


def _uncut(tile: Tile, found: Detections) -> Detections:
    """``found`` without the boxes cut by one of ``tile``'s inner edges."""
    if not len(found) or not any(tile.inner):
        return found
    box = found.xyxy
    mx, my = max(2.0, EDGE * tile.width), max(2.0, EDGE * tile.height)
    left, top, right, bottom = tile.inner
    edge = ((left & (box[:, 0] <= mx)) | (top & (box[:, 1] <= my))
            | (right & (box[:, 2] >= tile.width - mx)) | (bottom & (box[:, 3] >= tile.height - my)))
    return found if not edge.any() else found.select(~edge)


def suppressed(found: Detections, source: npt.NDArray[np.int64], iou: float) -> npt.NDArray[np.intp]:
    """The indices of the boxes to keep, most confident first: each box that overlaps a more
    confident kept box of its class from another picture (``source``: each box's) by more than
    ``iou`` (intersection over union) is dropped.

    >>> d = Detections(np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [0, 1, 10, 11]], np.float32),
    ...                np.array([0.5, 0.9, 0.7, 0.8], np.float32), np.array([0, 0, 1, 0]))
    >>> suppressed(d, np.array([0, 1, 1, 1]), 0.5).tolist()
    [1, 3, 2]
    """
    order = np.argsort(-found.conf, kind="stable")
    iou_of = overlaps(found.xyxy, found.xyxy)
    keep: list[int] = []
    dropped = np.zeros(len(found), dtype=bool)
    for i in order:
        if dropped[i]:
            continue
        keep.append(int(i))
        dropped |= (found.cls == found.cls[i]) & (source != source[i]) & (iou_of[i] > iou)
    return np.array(keep, dtype=np.intp)
