"""Small frozen value types that flow through the pipeline.

A :class:`Frame` is shared read-only between the inference worker and every sink; whoever
wants to draw on it draws on a copy (see ``streamyolo.annotation``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from streamyolo.clock import wall_time

Image = npt.NDArray[np.uint8]
"""An H×W×3 BGR uint8 image, OpenCV's layout."""


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """Where a frame came from.

    ``seq`` counts the frames a stream's capture delivered, from 0, without gaps;
    ``t_capture`` is ``time.monotonic()`` when the frame arrived: when its data was read
    from the network (RTSP, HTTP), when it was due (a file played in real time), else when
    the source handed it over; so a frame's age counts its decoding, colour conversion and
    any lag behind the source. ``t_ready`` is when it was put in its stream's buffer, for
    whoever waits for frames (``None``: at ``t_capture``). ``pts`` is the source's
    presentation time in seconds when the source knows it (files, RTSP), else ``None``.
    ``fps`` is the source's nominal frame rate when known. ``timeline`` is where the frame
    sits on its stream's continuous timeline (seconds; see
    :class:`~streamyolo.clock.Timeline`), set by the capture.

    >>> FrameMeta("cam", 0, 1.0).ready_at, FrameMeta("cam", 0, 1.0, t_ready=1.25).ready_at
    (1.0, 1.25)
    """

    stream: str
    seq: int
    t_capture: float
    pts: float | None = None
    fps: float | None = None
    t_ready: float | None = None
    timeline: float | None = None

    @property
    def ready_at(self) -> float:
        """When the frame could first be taken from its buffer."""
        return self.t_capture if self.t_ready is None else self.t_ready

    @property
    def media_time(self) -> float:
        """Where the frame sits on its stream's timeline, in seconds: its ``timeline`` (for a
        file processed faster than real time, its place in the video; for a camera, going on
        through reconnects), else the source's presentation time, else its arrival.

        >>> FrameMeta("cam", 0, 5.0, pts=1.5).media_time, FrameMeta("cam", 0, 5.0).media_time
        (1.5, 5.0)
        >>> FrameMeta("cam", 0, 5.0, pts=1.5, timeline=61.5).media_time
        61.5
        """
        if self.timeline is not None:
            return self.timeline
        return self.pts if self.pts is not None else self.t_capture


class Frame:
    """One decoded picture and its metadata.

    The BGR image may be made on first use: a live stream's capture hands over the
    decoder's own picture with ``convert``, which turns it into BGR when someone first reads
    :attr:`image`, so the frames a live buffer drops unseen cost no colour conversion (0.5 ms
    of CPU per 1080p frame on an idle core, more on a busy one: ``scripts/preprocess_cost.py``).
    Made once, under a lock; the result is shared read-only.

    >>> frame = Frame(FrameMeta("cam", 0, 0.0), convert=lambda: np.zeros((2, 2, 3), np.uint8))
    >>> frame.converted, frame.image.shape, frame.converted
    (False, (2, 2, 3), True)
    >>> import pickle
    >>> pickle.loads(pickle.dumps(Frame(FrameMeta("cam", 1, 0.0), convert=lambda: np.ones((1, 1, 3), np.uint8)))).image
    array([[[1, 1, 1]]], dtype=uint8)
    """

    __slots__ = ("_convert", "_image", "_lock", "meta")

    def __init__(self, meta: FrameMeta, image: Image | None = None, *,
                 convert: Callable[[], Image] | None = None) -> None:
        if (image is None) == (convert is None):
            raise ValueError("a frame needs exactly one of image and convert")
        self.meta = meta
        self._image = image
        self._convert = convert
        self._lock = threading.Lock() if convert is not None else None

    @property
    def image(self) -> Image:
        image = self._image
        if image is not None:
            return image
        assert self._lock is not None
        with self._lock:
            if self._image is None:
                assert self._convert is not None
                self._image = self._convert()
                self._convert = None  # let the decoder's picture go
            return self._image

    @property
    def converted(self) -> bool:
        """True once the BGR image exists (always, for a frame made from one)."""
        return self._image is not None

    def __repr__(self) -> str:
        return f"Frame({self.meta!r}, converted={self.converted})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its metadata and BGR image (converted first, if need be)."""
        return (Frame, (self.meta, self.image))

    @property
    def stream(self) -> str:
        return self.meta.stream

    @property
    def seq(self) -> int:
        return self.meta.seq


_EMPTY_BOXES: npt.NDArray[np.float32] = np.zeros((0, 4), dtype=np.float32)
_EMPTY_FLOATS: npt.NDArray[np.float32] = np.zeros((0,), dtype=np.float32)
_EMPTY_INTS: npt.NDArray[np.int64] = np.zeros((0,), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Detections:
    """Objects found in one frame, in original-frame pixels: a box each, and what the model's
    task adds to it. A segmentation model's ``segments``: each object's outline, a polygon;
    a pose model's ``keypoints``: each object's K points (x, y, visibility); an oriented-box
    model's ``xywhr``: each object's rotated box (centre, width, height, angle in radians),
    whose upright bounds are ``xyxy``. What a task does not give is ``None``.

    >>> d = Detections.empty({0: "person"})
    >>> len(d), d.task
    (0, 'detect')
    """

    xyxy: npt.NDArray[np.float32]
    conf: npt.NDArray[np.float32]
    cls: npt.NDArray[np.int64]
    names: Mapping[int, str] = field(default_factory=dict)
    ids: npt.NDArray[np.int64] | None = None
    """Track ids, one per box, when the stream is tracked (``tracker``); ``None`` otherwise."""
    segments: tuple[npt.NDArray[np.float32], ...] | None = None
    """Segmentation models: each object's outline, an (M, 2) polygon (M may be 0)."""
    keypoints: npt.NDArray[np.float32] | None = None
    """Pose models: (N, K, 3) keypoints, x, y and visibility (or (N, K, 2) without it)."""
    xywhr: npt.NDArray[np.float32] | None = None
    """Oriented-box models: (N, 5) rotated boxes, centre x, y, width, height, angle (radians)."""

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if (self.xyxy.shape != (n, 4) or self.conf.shape != (n,) or self.cls.shape != (n,)
                or (self.ids is not None and self.ids.shape != (n,))
                or (self.segments is not None and len(self.segments) != n)
                or (self.keypoints is not None and (self.keypoints.ndim != 3 or len(self.keypoints) != n))
                or (self.xywhr is not None and self.xywhr.shape != (n, 5))):
            ids = "" if self.ids is None else f", ids {self.ids.shape}"
            extra = "".join(f", {name} {shape}" for name, shape in (
                ("segments", None if self.segments is None else (len(self.segments),)),
                ("keypoints", None if self.keypoints is None else self.keypoints.shape),
                ("xywhr", None if self.xywhr is None else self.xywhr.shape)) if shape is not None)
            raise ValueError(f"inconsistent detection arrays: xyxy {self.xyxy.shape}, conf {self.conf.shape}, "
                             f"cls {self.cls.shape}{ids}{extra}")

    @classmethod
    def empty(cls, names: Mapping[int, str] | None = None) -> Detections:
        return cls(_EMPTY_BOXES, _EMPTY_FLOATS, _EMPTY_INTS, names or {})

    def __len__(self) -> int:
        return len(self.xyxy)

    @property
    def task(self) -> str:
        """The Ultralytics task these came from, as far as they show it: ``segment``, ``pose``,
        ``obb`` or ``detect``."""
        if self.segments is not None:
            return "segment"
        if self.keypoints is not None:
            return "pose"
        return "obb" if self.xywhr is not None else "detect"

    def name(self, class_id: int) -> str:
        return self.names.get(class_id, str(class_id))

    def counts(self) -> dict[str, int]:
        """How many of each class, by name, most frequent first.

        >>> Detections.empty().counts()
        {}
        """
        found: dict[str, int] = {}
        for class_id in self.cls:
            name = self.name(int(class_id))
            found[name] = found.get(name, 0) + 1
        return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """The objects where ``keep`` is true, or at the indices in ``keep`` (with their ids and
        what the task adds)."""
        segments = None
        if self.segments is not None:
            indices = np.flatnonzero(keep) if keep.dtype == np.bool_ else keep
            segments = tuple(self.segments[int(i)] for i in indices)
        return Detections(self.xyxy[keep], self.conf[keep], self.cls[keep], self.names,
                          None if self.ids is None else self.ids[keep], segments,
                          None if self.keypoints is None else self.keypoints[keep],
                          None if self.xywhr is None else self.xywhr[keep])

    def scaled(self, factor: float) -> Detections:
        """The same objects on a picture ``factor`` times the size (boxes, outlines, keypoints).

        >>> d = Detections(np.array([[2, 4, 6, 8]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64),
        ...                keypoints=np.array([[[2, 2, 0.9]]], np.float32))
        >>> d.scaled(0.5).xyxy.tolist(), d.scaled(0.5).keypoints.tolist()
        ([[1.0, 2.0, 3.0, 4.0]], [[[1.0, 1.0, 0.8999999761581421]]])
        """
        return self.placed(factor, 0.0, 0.0)

    def placed(self, factor: float, x: float, y: float) -> Detections:
        """The same objects ``factor`` times the size, then moved ``x``, ``y`` pixels right and
        down: a part of a picture's detections (a tile's) in the whole picture's pixels.

        >>> d = Detections(np.array([[2, 4, 6, 8]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64),
        ...                segments=(np.array([[2, 4], [6, 8]], np.float32),))
        >>> d.placed(1, 100, 10).xyxy.tolist(), d.placed(1, 100, 10).segments[0].tolist()
        ([[102.0, 14.0, 106.0, 18.0]], [[102.0, 14.0], [106.0, 18.0]])
        """
        f, shift = np.float32(factor), np.array([x, y], np.float32)
        keypoints = None
        if self.keypoints is not None:
            keypoints = self.keypoints.copy()
            keypoints[..., :2] = keypoints[..., :2] * f + shift
        xywhr = None
        if self.xywhr is not None:
            xywhr = self.xywhr.copy()
            xywhr[:, :4] *= f
            xywhr[:, :2] += shift
        return replace(self, xyxy=self.xyxy * f + np.tile(shift, 2), keypoints=keypoints, xywhr=xywhr,
                       segments=None if self.segments is None else tuple(s * f + shift for s in self.segments))

    @classmethod
    def joined(cls, parts: Sequence[Detections], names: Mapping[int, str]) -> Detections:
        """The objects of ``parts`` (of one task, untracked), one after another.

        >>> one = Detections(np.array([[0, 0, 1, 1]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
        >>> len(Detections.joined([one, Detections.empty(), one], {0: "person"}))
        2
        """
        parts = [part for part in parts if len(part)]
        if not parts:
            return cls.empty(names)
        first = parts[0]

        def stacked(values: Sequence[npt.NDArray[Any] | None]) -> npt.NDArray[Any] | None:
            present = [v for v in values if v is not None]
            return np.concatenate(present) if len(present) == len(values) else None

        return cls(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.conf for p in parts]),
                   np.concatenate([p.cls for p in parts]), names,
                   segments=None if first.segments is None else tuple(
                       s for p in parts for s in (p.segments or ())),
                   keypoints=stacked([p.keypoints for p in parts]), xywhr=stacked([p.xywhr for p in parts]))

    def to_records(self) -> list[dict[str, Any]]:
        """The detections as JSON-ready dicts: ``{"xyxy", "conf", "cls", "name"}``, and ``"id"``
        when tracked; ``"segment"`` (the outline, ``[[x, y], …]``), ``"keypoints"`` (``[[x, y,
        visibility], …]``) or ``"xywhr"`` (the rotated box) by the model's task."""
        records = [
            {
                "xyxy": [round(float(v), 2) for v in box],
                "conf": round(float(c), 4),
                "cls": int(k),
                "name": self.name(int(k)),
            }
            for box, c, k in zip(self.xyxy, self.conf, self.cls, strict=True)
        ]
        if self.ids is not None:
            for record, track in zip(records, self.ids, strict=True):
                record["id"] = int(track)
        if self.segments is not None:
            for record, outline in zip(records, self.segments, strict=True):
                record["segment"] = np.round(outline.astype(np.float64), 1).tolist()
        if self.keypoints is not None:
            for record, points in zip(records, self.keypoints, strict=True):
                rounded = np.round(points.astype(np.float64), 2)
                if rounded.shape[1] > 2:
                    rounded[:, 2] = np.round(points[:, 2].astype(np.float64), 3)
                record["keypoints"] = rounded.tolist()
        if self.xywhr is not None:
            for record, rotated in zip(records, self.xywhr, strict=True):
                record["xywhr"] = [*(round(float(v), 2) for v in rotated[:4]), round(float(rotated[4]), 4)]
        return records


def overlaps(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """The intersection over union of each box of ``a`` (N×4, x1 y1 x2 y2) with each of ``b``: N×M.

    >>> overlaps(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a, b = a.astype(np.float64)[:, None], b.astype(np.float64)[None]
    inter = ((np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
             * (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0))
    area_a = (a[..., 2] - a[..., 0]).clip(0) * (a[..., 3] - a[..., 1]).clip(0)
    area_b = (b[..., 2] - b[..., 0]).clip(0) * (b[..., 3] - b[..., 1]).clip(0)
    iou: npt.NDArray[np.float64] = inter / np.maximum(area_a + area_b - inter, 1e-9)
    return iou


def rotated_corners(xywhr: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The four corners (N×4×2) of rotated boxes (centre x, y, width, height, angle in
    radians), in Ultralytics' order (``xywhr2xyxyxyxy``).

    >>> rotated_corners(np.array([[10, 10, 4, 2, 0]], np.float32)).tolist()
    [[[12.0, 11.0], [12.0, 9.0], [8.0, 9.0], [8.0, 11.0]]]
    """
    centre, w, h, angle = xywhr[:, None, :2], xywhr[:, 2:3], xywhr[:, 3:4], xywhr[:, 4:5]
    cos, sin = np.cos(angle), np.sin(angle)
    along = np.concatenate((w / 2 * cos, w / 2 * sin), axis=-1)[:, None, :]
    across = np.concatenate((-h / 2 * sin, h / 2 * cos), axis=-1)[:, None, :]
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], np.float32)  # (along, across) per corner
    corners = centre + signs[None, :, :1] * along + signs[None, :, 1:] * across
    return corners.astype(np.float32)


def upright(xywhr: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The upright bounds (x1, y1, x2, y2) of rotated boxes, as Ultralytics' ``OBB.xyxy``.

    >>> upright(np.array([[10, 10, 4, 2, np.pi / 2]], np.float32)).round(3).tolist()
    [[9.0, 8.0, 11.0, 12.0]]
    """
    corners = rotated_corners(xywhr)
    return np.concatenate((corners.min(1), corners.max(1)), axis=1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class DetectionFilter:
    """A stream's own ``conf`` and ``classes``, stricter than what its worker's model detects
    at (the loosest of every stream's): keeps what ``predict()`` with these settings keeps; its
    thresholds by class (``class_conf``); and its box sizes (``min_area``, ``max_area``; a
    rotated box's own area). A
    box below the threshold never suppresses a higher one in NMS, and NMS runs per class, so
    filtering after it gives the same boxes as filtering before (up to ``max_det``).

    >>> found = Detections(np.zeros((3, 4), np.float32), np.array([0.2, 0.5, 0.9], np.float32),
    ...                    np.array([0, 2, 2]))
    >>> DetectionFilter(conf=0.3).apply(found).conf.tolist(), DetectionFilter(classes=frozenset({0})).apply(found).cls
    ([0.5, 0.8999999761581421], array([0]))
    >>> DetectionFilter(conf=0.3, class_conf=((0, 0.1), (2, 0.6))).apply(found).conf.tolist()
    [0.20000000298023224, 0.8999999761581421]
    """

    conf: float = 0.0
    """Keep boxes whose confidence is above this (as Ultralytics: strictly above)."""
    classes: frozenset[int] | None = None
    """Keep only these class ids (``None``: every class)."""
    min_area: float = 0.0
    """Keep boxes of at least this many square pixels of the picture."""
    max_area: float | None = None
    """Keep boxes of at most this many square pixels (``None``: however large)."""
    class_conf: tuple[tuple[int, float], ...] = ()
    """``(class id, threshold)`` pairs: those classes' boxes are kept above their own
    threshold instead of ``conf``."""

    def apply(self, found: Detections) -> Detections:
        if self.class_conf:
            limit = np.full(len(found.conf), self.conf, np.float32)
            for cls, conf in self.class_conf:
                limit[found.cls == cls] = conf
            keep = found.conf > limit
        else:
            keep = found.conf > self.conf
        if self.classes is not None:
            keep &= np.isin(found.cls, list(self.classes))
        if self.min_area > 0 or self.max_area is not None:
            if found.xywhr is not None:  # a rotated box's own area, not its upright bounds'
                area = found.xywhr[:, 2] * found.xywhr[:, 3]
            else:
                area = (found.xyxy[:, 2] - found.xyxy[:, 0]) * (found.xyxy[:, 3] - found.xyxy[:, 1])
            keep &= area >= self.min_area
            if self.max_area is not None:
                keep &= area <= self.max_area
        return found if bool(keep.all()) else found.select(keep)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A tracked object crossing a stream's counting line (``lines:``) in one frame."""

    line: str
    direction: str
    """``"in"`` (from the line's left to its right, walking from its first point to its
    second, as seen on the picture) or ``"out"``."""
    id: int
    cls: int
    name: str
    box: tuple[float, float, float, float] | None = None
    """Where the object was in the frame it crossed (x1, y1, x2, y2, in the picture's pixels)."""

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"line": self.line, "direction": self.direction, "id": self.id, "cls": self.cls,
                                  "name": self.name}
        if self.box is not None:
            record["xyxy"] = [round(v, 2) for v in self.box]
        return record


@dataclass(frozen=True, slots=True)
class ZoneVisit:
    """A tracked object entering or leaving a stream's zone (``zones:``) in one frame."""

    zone: str
    event: str
    """``"enter"``, ``"leave"``, ``"linger"`` (inside for the zone's ``linger`` seconds) or
    ``"speeding"`` (measured faster than the zone's ``speed_limit``)."""
    id: int
    """The track id the object entered with (found again after it stood still, hidden, under
    another id, its stay keeps this one: :data:`~streamyolo.inference.counting.HIDDEN`)."""
    cls: int
    name: str
    dwell: float | None = None
    """On leaving or lingering: seconds from the frame it was first seen inside to the last one
    (on the stream's timeline: :attr:`FrameMeta.media_time`)."""
    box: tuple[float, float, float, float] | None = None
    """Where the object was in this frame (x1, y1, x2, y2, in the picture's pixels); ``None``
    for one that left by not being seen any more."""
    speed: float | None = None
    """On leaving a zone with a size: its speed (km/h) from its first place in it to its last;
    speeding: its speed then (over its last second)."""

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"zone": self.zone, "id": self.id, "cls": self.cls, "name": self.name}
        if self.dwell is not None:
            record["dwell"] = round(self.dwell, 3)
        if self.box is not None:
            record["xyxy"] = [round(v, 2) for v in self.box]
        if self.speed is not None:
            record["speed"] = round(self.speed, 1)
        return record


@dataclass(frozen=True, slots=True)
class LineTally:
    """A counting line as a frame shows it: where it is, and its totals up to that frame."""

    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    into: int
    out: int


@dataclass(frozen=True, slots=True)
class ZoneTally:
    """A stream's zone as a frame shows it: its outline, and the objects inside it, by class."""

    name: str
    points: tuple[tuple[float, float], ...]
    inside: Mapping[str, int]
    watched: bool | None = None
    """Whether it makes events now, as its ``schedule`` says (``None``: it has none: always)."""
    crowded: bool | None = None
    """Whether it is crowded now, as its ``crowd`` says (``None``: it has none)."""
    stationary: Mapping[str, int] | None = None
    """Of the objects inside, those that stand still (a parked car), by class name; ``None`` on a
    stream without a tracker, which cannot tell."""


def stationary_of(zones: Sequence[ZoneTally]) -> dict[str, dict[str, int]] | None:
    """A frame's zones' objects standing still, by zone and class, as the JSONL and the page's
    status give them; ``None`` where it cannot tell (no zones, no tracker)."""
    if not zones or zones[0].stationary is None:
        return None
    return {zone.name: dict(zone.stationary or {}) for zone in zones}


@dataclass(frozen=True, slots=True)
class ZoneCrowd:
    """A stream's zone becoming crowded (``started``: it has held at least ``limit`` objects
    for its ``crowd``'s time) or not any more (``ended``, after ``seconds`` crowded)."""

    zone: str
    state: str
    count: int
    """The objects it holds now."""
    limit: int
    seconds: float | None = None
    inside: Mapping[str, int] = field(default_factory=dict)
    """What it holds now, by class name."""

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"zone": self.zone, "state": self.state, "count": self.count, "limit": self.limit,
                                  "inside": dict(self.inside)}
        if self.seconds is not None:
            record["seconds"] = round(self.seconds, 3)
        return record


@dataclass(frozen=True, slots=True)
class Mask:
    """An area of a stream's picture whose detections are ignored (``masks:``): a tree that
    waves, a screen, the street beyond the fence. A box whose centre lies inside the polygon
    (in the picture's pixels) is dropped before tracking, counting and every output; with
    ``classes``, only boxes of those class ids (the parked cars, not the people walking by)."""

    name: str
    points: tuple[tuple[float, float], ...]
    classes: frozenset[int] | None = None
    anchor: str = "center"
    """The point of a box that must lie inside: ``center``, ``bottom`` or ``top`` (the middle of
    that edge)."""
    outside: bool = False
    """Ignore the boxes outside the polygon instead (the picture but this area is masked)."""


@dataclass(frozen=True, slots=True)
class Result:
    """A frame with its detections, as the inference worker hands it to the sinks."""

    frame: Frame
    detections: Detections
    t_done: float
    worker: str = ""
    crossings: tuple[Crossing, ...] = ()
    """Counting lines crossed in this frame (streams with ``lines:``)."""
    lines: tuple[LineTally, ...] = ()
    """The stream's counting lines with their totals after this frame (for the overlay)."""
    zones: tuple[ZoneTally, ...] = ()
    """The stream's zones with the objects inside them in this frame (streams with ``zones:``)."""
    visits: tuple[ZoneVisit, ...] = ()
    """Tracked objects that entered or left the stream's zones in this frame."""
    crowds: tuple[ZoneCrowd, ...] = ()
    """The stream's zones that became crowded, or stopped being, in this frame (``crowd``)."""
    masks: tuple[Mask, ...] = ()
    """The stream's masks, whose detections were dropped (for the overlay)."""
    speeds: tuple[tuple[int, float], ...] = ()
    """The speeds (km/h) measured in this frame, by track id (zones with a size)."""
    still: bool = False
    """The model did not run on this frame: nothing moved since it last did (``motion``), and
    its detections are those of that frame."""
    pictures: int | None = None
    """Streams with ``tiles``: the pictures the model ran on for this frame (the whole and its
    parts; with ``motion``, only the parts where something moved; 0 when still)."""
    detect: bool = True
    """False: the stream's detection was switched off for this frame (no forward pass, so no
    objects: not "nothing there")."""
    region: tuple[int, int, int, int] | None = None
    """A stream with a ``region``: the part of this frame the model looked at (``x1, y1, x2,
    y2``), all that it looked at."""
    standing: frozenset[int] | None = None
    """A tracked stream: the track ids of this frame's objects that stand still, wherever they
    are (:class:`~streamyolo.inference.counting.Standing`); ``None``: not tracked."""

    def stationary(self) -> int | None:
        """How many of the frame's objects stand still; ``None`` on a stream not tracked."""
        if self.standing is None:
            return None
        ids = self.detections.ids
        return 0 if ids is None or not self.standing else sum(track in self.standing for track in ids.tolist())

    @property
    def stream(self) -> str:
        return self.frame.meta.stream

    @property
    def age(self) -> float:
        """Seconds from capture to the end of inference."""
        return self.t_done - self.frame.meta.t_capture

    def to_record(self) -> dict[str, Any]:
        """The JSONL record for this frame, exactly the documented shape (``time``: the
        frame's arrival on the wall clock, seconds since the epoch; ``t_capture``: the same on
        the process's monotonic clock; ``crossings`` for a stream with counting lines, ``zones``
        for one with zones)."""
        meta = self.frame.meta
        record: dict[str, Any] = {
            "stream": meta.stream,
            "seq": meta.seq,
            "time": round(wall_time(meta.t_capture), 3),
            "t_capture": round(meta.t_capture, 6),
            "pts": None if meta.pts is None else round(meta.pts, 6),
            "detections": self.detections.to_records(),
        }
        if self.speeds:
            speeds = dict(self.speeds)
            for found in record["detections"]:
                if found.get("id") in speeds:
                    found["speed"] = round(speeds[found["id"]], 1)
        if self.standing:
            for found in record["detections"]:
                if found.get("id") in self.standing:
                    found["stationary"] = True
        if self.lines:
            record["crossings"] = [c.to_record() for c in self.crossings]
        if self.zones:
            record["zones"] = {z.name: dict(z.inside) for z in self.zones}
            stationary = stationary_of(self.zones)
            if stationary is not None:
                record["stationary"] = stationary
        if self.still:
            record["still"] = True
        if not self.detect:
            record["detect"] = False
        if self.pictures is not None:
            record["pictures"] = self.pictures
        return record
