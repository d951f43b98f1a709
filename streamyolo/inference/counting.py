"""Counting per stream: lines (``lines: {door: [[x1, y1], [x2, y2]]}``, on a tracked stream)
and zones (``zones: {queue: [[x1, y1], [x2, y2], [x3, y3], …]}``).

Zones: in every processed frame, the objects whose box centre lies inside the zone's polygon
(pixels of the stream's picture), by class: how many people wait in the queue now. Tracking is
not needed; the run's summary keeps each zone's peak. On a tracked stream, each object also
*enters* a zone (the first frame its centre is inside) and *leaves* it (the first frame its
centre is seen outside, or after it has not been seen for ``GONE_AFTER`` frames), with how long
it stayed, and, in a zone with ``linger``, *lingers* once it has been inside that long:
:class:`ZoneWatch`. An object that stood still (a parked car) and is lost stays inside for the
zone's ``hidden`` seconds more: found again where it stood, under the tracker's new id, it is
the same stay, no leave and enter (:data:`HIDDEN`).

A line runs from its first point to its second, in the stream's picture (pixels). A tracked
object crosses it when the centre of its box moves, from one processed frame to the next,
from one side of the line to the other within the line's length: ``in`` from the line's left
to its right (walking from the first point to the second, as seen on the picture, whose y
axis points down: a line drawn from left to right counts objects moving down the picture as
``in``), ``out`` the other way. Each track counts at most once per line and direction (as
Ultralytics' ``ObjectCounter`` counts each track once), so a box whose centre jitters on the
line is not counted again and again; an object that goes in and comes back out counts once
each way. The stream's worker counts, in frame order, right after the stream's tracker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.frames import Crossing, Detections, LineTally, Mask, ZoneCrowd, ZoneTally, ZoneVisit
from streamyolo.schedule import Schedule

Box = tuple[float, float, float, float]
"""A box's corners, x1, y1, x2, y2, as plain numbers."""

Point = tuple[float, float]

K = TypeVar("K")


class Area(Protocol):
    """A polygon of the picture that holds some classes: a :class:`Zone` or a :class:`Mask`."""

    @property
    def points(self) -> Sequence[Point]: ...

    @property
    def classes(self) -> frozenset[int] | None: ...

    @property
    def anchor(self) -> str: ...

FORGET_AFTER = 900
"""Frames after which a track that has not been seen is forgotten (trackers drop lost tracks
sooner: ``track_buffer``, 30 by default), so that memory stays bounded over a long run."""

GONE_AFTER = 30
"""Processed frames after which an object inside a zone that has not been seen has left it:
the trackers' own ``track_buffer`` (30 unless the tracker's YAML says), after which they drop a
lost track (an object found again later gets a new id: it enters anew, unless it stood still,
:data:`HIDDEN`)."""

HIDDEN = 30.0
"""Seconds an object that stood still in a zone (:data:`STILL_AFTER`) may go unseen and still
be the same stay when an object of its class is found again where it stood (its box
overlapping its last one by :data:`STILL_OVERLAP`), under whatever id: a parked car that the
model misses for a while, or that a passing bus hides, is not a leave and an enter each time
(nor does its ``linger`` start again). A zone's ``hidden`` sets it, 0: none."""

STILL_AFTER = 2.0
"""Seconds an object's box must have stayed where it was (overlapping its place then by
:data:`STILL_OVERLAP`) for it to be standing still."""

STILL_OVERLAP = 0.5
"""The intersection over union of two boxes of an object standing still."""


@dataclass(frozen=True, slots=True)
class CountingLine:
    """A stream's counting line, from ``a`` to ``b`` in its picture's pixels."""

    name: str
    a: Point
    b: Point
    classes: frozenset[int] | None = None
    """The class ids it counts (``None``: every class), by the class of the object in the frame
    it crosses."""
    anchor: str = "center"
    """The point of each box that crosses it (see :func:`anchor_points`)."""


def side(line: CountingLine, point: Point) -> float:
    """Positive on the line's right (walking from ``a`` to ``b``, y pointing down), negative on
    its left, 0 on it.

    >>> door = CountingLine("door", (0.0, 100.0), (200.0, 100.0))
    >>> side(door, (50.0, 150.0)) > 0, side(door, (50.0, 50.0)) < 0
    (True, True)
    """
    (ax, ay), (bx, by) = line.a, line.b
    return (bx - ax) * (point[1] - ay) - (by - ay) * (point[0] - ax)


def crossed(line: CountingLine, before: Point, after: Point) -> str | None:
    """``"in"``, ``"out"`` or ``None``: whether moving from ``before`` to ``after`` crosses
    ``line`` within its length, and which way (a point on the line counts as on its left).

    >>> door = CountingLine("door", (0.0, 100.0), (200.0, 100.0))
    >>> crossed(door, (50.0, 90.0), (50.0, 110.0)), crossed(door, (50.0, 110.0), (50.0, 90.0))
    ('in', 'out')
    >>> crossed(door, (250.0, 90.0), (250.0, 110.0)), crossed(door, (50.0, 90.0), (60.0, 95.0))
    (None, None)
    """
    was, now = side(line, before) > 0, side(line, after) > 0
    if was == now:
        return None
    move = CountingLine("", before, after)
    if side(move, line.a) * side(move, line.b) > 0:  # both ends of the line on one side: passed beside it
        return None
    return "in" if now else "out"


class LineCounter:
    """One stream's counting lines and totals; used by the worker that owns the stream only."""

    def __init__(self, lines: Sequence[CountingLine], forget_after: int = FORGET_AFTER) -> None:
        self.lines = tuple(lines)
        self.forget_after = forget_after
        self.totals: dict[str, dict[str, int]] = {line.name: {"in": 0, "out": 0} for line in self.lines}
        self._anchors = sorted({line.anchor for line in self.lines})
        self._last: dict[int, tuple[dict[str, Point], int]] = {}  # track id -> ({anchor: point}, frame last seen)
        self._kinds: dict[int, dict[int, int]] = {}  # track id -> {class id: frames it was read as that}
        self._counted: set[tuple[str, str, int]] = set()  # (line, direction, track id)
        self._frame = 0

    def update(self, found: Detections, origins: Mapping[int, Box] | None = None) -> list[Crossing]:
        """The crossings in the next frame of the stream, whose tracked detections are ``found``.
        A crossing's class is the one the track has been read as most often (this frame's on
        a tie): a car the model reads as a truck in the one frame it crosses is still a car,
        for the lines that count only cars, and in the event. ``origins``: for objects kept
        from this frame on (``confirm_frames``), their box when the tracker began following
        them: a line crossed in between is crossed now."""
        self._frame += 1
        crossings: list[Crossing] = []
        if found.ids is not None:
            points = {anchor: anchor_points(found, anchor).tolist() for anchor in self._anchors}
            for index, (track, cls) in enumerate(zip(found.ids.tolist(), found.cls.tolist(), strict=True)):
                before = self._last.get(track)
                if before is None and origins and track in origins:
                    first = np.asarray([origins[track]], np.float32)
                    before = ({anchor: _point(ends(first, anchor)[0]) for anchor in self._anchors}, self._frame)
                now = {anchor: _point(at[index]) for anchor, at in points.items()}
                self._last[track] = (now, self._frame)
                kinds = self._kinds.setdefault(track, {})
                kinds[cls] = kinds.get(cls, 0) + 1
                if before is None:
                    continue
                for line in self.lines:
                    direction = crossed(line, before[0][line.anchor], now[line.anchor])
                    if direction is None or (line.name, direction, track) in self._counted:
                        continue
                    kind = max(kinds, key=lambda c: (kinds[c], c == cls))
                    if line.classes is not None and kind not in line.classes:
                        continue
                    self._counted.add((line.name, direction, track))
                    self.totals[line.name][direction] += 1
                    crossings.append(Crossing(line.name, direction, int(track), int(kind), found.name(int(kind)),
                                              box_of(found, index)))
        if self._frame % 100 == 0:
            self._forget()
        return crossings

    def tallies(self) -> tuple[LineTally, ...]:
        """Every line with its totals so far (for the overlay)."""
        return tuple(LineTally(line.name, line.a, line.b, self.totals[line.name]["in"], self.totals[line.name]["out"])
                     for line in self.lines)

    def _forget(self) -> None:
        gone = {track for track, (_, seen) in self._last.items() if self._frame - seen > self.forget_after}
        for track in gone:
            del self._last[track]
            self._kinds.pop(track, None)
        self._counted = {key for key in self._counted if key[2] not in gone}


@dataclass(frozen=True, slots=True)
class Zone:
    """A stream's zone: a polygon in its picture's pixels (3 points or more)."""

    name: str
    points: tuple[Point, ...]
    linger: float | None = None
    """Tracked streams: seconds inside after which an object is said to linger (once per stay)."""
    classes: frozenset[int] | None = None
    """The class ids the zone holds (``None``: every class): objects of other classes inside
    its polygon are neither counted nor seen to enter it. A tracked object inside stays inside
    until it is seen outside the polygon (or unseen), even in a frame where the model reads its
    class as another: one such frame is not a leave and an entry."""
    anchor: str = "center"
    """The point of each box that must be inside (see :func:`anchor_points`)."""
    size: tuple[float, float] | None = None
    """Tracked streams: the real size (metres) of a 4-point zone on the ground, its first side
    and its second: the speed of each object inside is measured (:class:`Ground`)."""
    speed_limit: float | None = None
    """With ``size``: km/h above which an object's speed is an event (``speeding``), once per stay."""
    schedule: Schedule | None = None
    """Tracked streams: when it is watched for who enters and leaves (:class:`ZoneWatch`'s
    ``armed``); ``None``: always."""
    crowd: tuple[int, float] | None = None
    """The objects it holds at least when crowded, and for how long (seconds) before it is
    said to be, or not to be any more (:class:`CrowdWatch`)."""
    hidden: float = HIDDEN
    """Tracked streams: seconds an object that stood still may go unseen inside (:data:`HIDDEN`)."""


def _place(zone: Zone) -> tuple[object, ...]:
    """What makes a zone the same place (a reload that changed only how it is watched, its
    ``linger``, ``schedule``, ``crowd`` …, leaves it so): its name, polygon, classes and anchor."""
    return zone.name, zone.points, zone.classes, zone.anchor


class Ground:
    """A 4-point zone on the ground, and its real size in metres: where a point of the picture
    is on the ground (the perspective that maps the zone's corners to a ``width`` x ``length``
    rectangle), so that distances, and speeds, are measured in metres however the camera
    looks at the road.

    >>> road = Ground(((100, 100), (200, 100), (300, 200), (0, 200)), (5.0, 20.0))
    >>> [[round(v, 2) + 0.0 for v in road.metres(x, y)] for x, y in ((100, 100), (150, 200), (300, 200))]
    [[0.0, 0.0], [2.5, 20.0], [5.0, 20.0]]
    """

    def __init__(self, corners: Sequence[Point], size: tuple[float, float]) -> None:
        width, length = size
        target = np.array([[0, 0], [width, 0], [width, length], [0, length]], np.float32)
        self._matrix = cv2.getPerspectiveTransform(np.array(corners, np.float32), target)

    def metres(self, x: float, y: float) -> tuple[float, float]:
        """Where the picture's point ``(x, y)`` is on the ground, in metres from the zone's first corner."""
        gx, gy = cv2.perspectiveTransform(np.array([[[x, y]]], np.float64), self._matrix)[0, 0]
        return float(gx), float(gy)


SPEED_WINDOW = 1.0
"""Seconds of an object's way through a zone its speed now is measured over."""

SPEED_LEAST = 0.5
"""Seconds an object must have been followed inside a zone before its speed is said."""


def inside(polygon: Sequence[Point], points: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Which of ``points`` (N x 2) lie inside ``polygon`` (even-odd rule: a ray from each point
    crosses its edges an odd number of times).

    >>> square = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
    >>> inside(square, np.array([[5, 5], [15, 5], [5, -1]], np.float32)).tolist()
    [True, False, False]
    """
    x, y = points[:, 0], points[:, 1]
    result = np.zeros(len(points), dtype=bool)
    corners = list(polygon)
    for (x1, y1), (x2, y2) in zip(corners, corners[1:] + corners[:1], strict=True):
        spans = (y1 > y) != (y2 > y)  # the edge spans the point's height
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result ^= spans & (x < crossing_x)
    return result


def anchor_points(found: Detections, anchor: str = "center") -> npt.NDArray[np.floating]:
    """A point of every box of ``found`` (N x 2): its centre (``center``), or the middle of its
    bottom edge (``bottom``: where a person or a car stands) or of its top edge (``top``).

    >>> box = Detections(np.array([[0, 0, 10, 20]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
    >>> [anchor_points(box, a).tolist() for a in ("center", "bottom", "top")]
    [[[5.0, 10.0]], [[5.0, 20.0]], [[5.0, 0.0]]]
    """
    return ends(found.xyxy, anchor)


def ends(xyxy: npt.NDArray[np.floating], anchor: str) -> npt.NDArray[np.floating]:
    """:func:`anchor_points` of boxes given by their corners (N x 4)."""
    x1, y1, x2, y2 = xyxy.T
    y = y2 if anchor == "bottom" else y1 if anchor == "top" else (y1 + y2) / 2
    return np.stack(((x1 + x2) / 2, y), axis=1)


def _point(at: Sequence[float] | npt.NDArray[np.floating]) -> Point:
    return float(at[0]), float(at[1])


def unmasked(masks: Sequence[Mask], found: Detections) -> Detections:
    """``found`` without the boxes that ``masks`` ignore: those whose centre lies inside one
    (outside one that says ``outside``), of its ``classes`` when it has them.

    >>> found = Detections(np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 10, 10]], np.float32),
    ...                    np.full(3, 0.9, np.float32), np.array([0, 0, 2]))
    >>> corner = ((0.0, 0.0), (15.0, 0.0), (15.0, 15.0), (0.0, 15.0))
    >>> unmasked([Mask("corner", corner)], found).xyxy[:, 0].tolist()
    [20.0]
    >>> unmasked([Mask("corner", corner, frozenset({2}))], found).cls.tolist()
    [0, 0]
    >>> unmasked([Mask("corner", corner, outside=True)], found).xyxy[:, 0].tolist()
    [0.0, 0.0]
    """
    if not len(found):
        return found
    drop = np.logical_or.reduce([  # a mask that keeps only its area drops its classes outside it
        (~held if mask.classes is None else ~held & np.isin(found.cls, list(mask.classes))) if mask.outside else held
        for mask, held in zip(masks, occupancy(masks, found), strict=True)])
    return found.select(~drop) if bool(drop.any()) else found


@dataclass(slots=True)
class Place:
    """Where a tracked object was last seen, and whether it stood still there (:data:`HIDDEN`):
    so that, lost, it can be found again where it stood under another id
    (:meth:`found_again`)."""

    box: Box
    """Where it was last seen."""
    seen: float
    """When (seconds)."""
    still: Box
    """Where it has stood since :attr:`still_since` (its box then)."""
    still_since: float

    @classmethod
    def at(cls, box: Box, now: float) -> Place:
        return cls(box, now, box, now)

    def saw(self, box: Box, now: float) -> None:
        """It was seen at ``box`` at ``now``."""
        self.box, self.seen = box, now
        if _overlap(self.still, box) < STILL_OVERLAP:
            self.still, self.still_since = box, now

    def stood(self) -> bool:
        """Whether it stood still where it was last seen (:data:`STILL_AFTER`)."""
        return self.seen - self.still_since >= STILL_AFTER

    @staticmethod
    def found_again(box: Box, lost: Mapping[K, Place]) -> K | None:
        """Which of the ``lost`` objects (each standing still when lost, of the class of the one
        newly seen at ``box``) this one is: the one whose last box it overlaps most, by
        :data:`STILL_OVERLAP` at least."""
        near = [(_overlap(place.box, box), n, key) for n, (key, place) in enumerate(lost.items())]
        best = max(near, default=None)
        return best[2] if best is not None and best[0] >= STILL_OVERLAP else None


def _overlap(a: Box, b: Box) -> float:
    """The intersection over union of two boxes, as :func:`~streamyolo.frames.overlaps` gives it
    for many, in plain arithmetic: one pair per tracked object and frame, where NumPy's
    arrays would cost ten times as much.

    >>> from streamyolo.frames import overlaps
    >>> _overlap((0, 0, 10, 10), (5, 0, 15, 10)) == overlaps(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))
    array([[ True]])
    """
    width, height = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


@dataclass(slots=True)
class _Stay:
    """A tracked object inside a zone: since when, and when it was last seen there."""

    id: int
    """The track id it entered with (its events keep it, found again under another)."""
    cls: int
    name: str
    since: float
    frame: int
    place: Place
    lingered: bool = False
    sped: bool = False
    way: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=512))
    """In a zone with a size: where it was on the ground, (time, x, y) in seconds and metres."""
    start: tuple[float, float, float] | None = None
    """Its first place on the ground in the zone."""

    def speed(self) -> float | None:
        """Its speed now (km/h), over the last :data:`SPEED_WINDOW` seconds of its way; ``None``
        until it has been followed for :data:`SPEED_LEAST` seconds."""
        if not self.way:
            return None
        t, x, y = self.way[-1]
        then = next((sample for sample in reversed(self.way) if t - sample[0] >= SPEED_WINDOW), self.way[0])
        return _kmh(then, (t, x, y))

    def average(self) -> float | None:
        """Its speed from its first place in the zone to its last (km/h)."""
        return _kmh(self.start, self.way[-1]) if self.start is not None and self.way else None

    @property
    def seen(self) -> float:
        return self.place.seen

    def saw(self, box: Box, now: float, frame: int) -> None:
        """It was seen at ``box`` in this ``frame``, at ``now``."""
        self.frame = frame
        self.place.saw(box, now)


def _kmh(a: tuple[float, float, float] | None, b: tuple[float, float, float]) -> float | None:
    """The speed from ``a`` to ``b`` ((time, x, y): seconds and metres) in km/h; ``None`` over
    less than :data:`SPEED_LEAST` seconds."""
    if a is None or b[0] - a[0] < SPEED_LEAST:
        return None
    return float(np.hypot(b[1] - a[1], b[2] - a[2]) / (b[0] - a[0]) * 3.6)


class Standing:
    """Which of a tracked stream's objects stand still, wherever they are (their box on the
    place it had :data:`STILL_AFTER` seconds before: a parked car, not one driving by); used by
    the worker that owns the stream only. One that stood still and is lost (a bus in front of
    the parked car) is found again where it stood under the tracker's new id, of its class,
    within :data:`HIDDEN` seconds, as :class:`ZoneWatch` finds it: still standing.

    >>> standing = Standing()
    >>> def at(x: float, track: int = 3) -> Detections:
    ...     return Detections(np.array([[x, 0, x + 10, 10]], np.float32), np.ones(1, np.float32),
    ...                       np.zeros(1, np.int64), {0: "car"}, np.array([track]))
    >>> [sorted(standing.update(at(x), t)) for t, x in enumerate([0, 1, 0, 0, 20, 20, 21, 20])]
    [[], [], [3], [3], [], [], [3], [3]]
    >>> sorted(standing.update(at(20, track=8), 9)), sorted(standing.update(at(60, track=9), 10))
    ([8], [])
    """

    def __init__(self, gone_after: int = GONE_AFTER, hidden: float = HIDDEN) -> None:
        """``gone_after``: the tracker's ``track_buffer`` (:data:`GONE_AFTER`): the frames a
        lost object's place is kept, as the tracker keeps its id; ``hidden``: the seconds one
        that stood still is kept beyond that."""
        self.gone_after = max(1, gone_after)
        self.hidden = hidden
        self._places: dict[int, tuple[Place, int, int]] = {}  # track id -> its place, class, the frame last seen
        self._frame = 0

    def update(self, found: Detections, now: float) -> frozenset[int]:
        """The track ids of the objects of the stream's next frame (tracked detections
        ``found``, at ``now`` on its timeline, seconds) that stand still."""
        self._frame += 1
        standing = set()
        if found.ids is not None and len(found):
            tracks = found.ids.tolist()
            seen = set(tracks)
            for track, cls, (x1, y1, x2, y2) in zip(tracks, found.cls.tolist(), found.xyxy.tolist(), strict=True):
                box: Box = (x1, y1, x2, y2)
                kept = self._places.get(track)
                if kept is None:
                    again = Place.found_again(box, {key: place for key, (place, of, _) in self._places.items()
                                                    if of == cls and key not in seen and place.stood()})
                    place = Place.at(box, now) if again is None else self._places.pop(again)[0]
                else:
                    place = kept[0]
                place.saw(box, now)
                self._places[track] = (place, int(cls), self._frame)
                if place.stood():
                    standing.add(track)
        if self._frame % self.gone_after == 0:  # (now and then: those the tracker dropped, or hidden too long)
            self._places = {track: kept for track, kept in self._places.items()
                            if self._frame - kept[2] <= self.gone_after
                            or (kept[0].stood() and now - kept[0].seen <= self.hidden)}
        return frozenset(standing)


class ZoneWatch:
    """Which tracked objects enter and leave one stream's zones, and how long they stay; used
    by the worker that owns the stream only.

    >>> queue = Zone("queue", ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)))
    >>> watch = ZoneWatch([queue])
    >>> def at(x: float) -> Detections:
    ...     return Detections(np.array([[x - 5, 45, x + 5, 55]], np.float32), np.ones(1, np.float32),
    ...                       np.zeros(1, np.int64), {0: "person"}, np.array([7]))
    >>> [[(v.event, v.id, v.dwell) for v in watch.update(at(x), t, occupancy([queue], at(x)))]
    ...  for t, x in enumerate([150, 90, 50, 120])]
    [[], [('enter', 7, None)], [], [('leave', 7, 1.0)]]
    """

    def __init__(self, zones: Sequence[Zone], gone_after: int = GONE_AFTER) -> None:
        """``gone_after``: the tracker's ``track_buffer`` (:data:`GONE_AFTER`)."""
        self.zones = tuple(zones)
        self.gone_after = gone_after
        self._inside: dict[tuple[str, int], _Stay] = {}  # (zone, track id) -> its stay
        self._hidden: dict[tuple[str, int], _Stay] = {}  # lost after standing still: may be found again
        self._hiding = {zone.name: zone.hidden for zone in zones}
        self._frame = 0
        self._grounds = {zone.name: Ground(zone.points, zone.size) for zone in zones if zone.size is not None}
        self.speeds: dict[int, float] = {}
        """The speeds (km/h) measured in the last frame, by track id (zones with a size)."""
        self.stationary: dict[str, dict[str, int]] = {}
        """The objects in each watched zone in the last frame that stand still there
        (:data:`STILL_AFTER`: a parked car, someone waiting), by class name as that frame reads them."""

    def going_on(self, old: ZoneWatch) -> ZoneWatch:
        """This watch, going on from ``old`` (the stream's zones before a reload): the stays in
        each zone that is still the same place (:func:`_place`) go on, so those inside do not
        enter it again; the other zones start afresh.

        >>> drive = Zone("drive", ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0)))
        >>> before = ZoneWatch([drive])
        >>> inside = Detections(np.array([[60, 10, 70, 20]], np.float32), np.ones(1, np.float32),
        ...                     np.zeros(1, np.int64), {0: "person"}, np.array([7]))
        >>> [v.event for v in before.update(inside, 0.0, occupancy([drive], inside))]
        ['enter']
        >>> after = ZoneWatch([replace(drive, linger=30.0)]).going_on(before)
        >>> [v.event for v in after.update(inside, 0.1, occupancy([drive], inside))]
        []
        """
        places = {_place(zone) for zone in old.zones}
        same = {zone.name for zone in self.zones if _place(zone) in places}
        self._frame = old._frame
        self._inside = {key: stay for key, stay in old._inside.items() if key[0] in same}
        self._hidden = {key: stay for key, stay in old._hidden.items() if key[0] in same}
        return self

    def update(self, found: Detections, now: float, held: Sequence[npt.NDArray[np.bool_]],
               armed: Sequence[bool | None] | None = None) -> list[ZoneVisit]:
        """The entries and exits in the next frame of the stream, whose tracked detections are
        ``found``, at ``now`` on the stream's timeline (seconds); ``held``: which of them each
        zone holds (:func:`occupancy`); ``armed``: whether each zone is watched now (its
        ``schedule``, a switch by hand; ``None``: watched; default: all): one that is not sees no
        one, and those inside when it stops being watched leave then."""
        self._frame += 1
        self.speeds = {}
        visits: list[ZoneVisit] = []
        watched = [True] * len(self.zones) if armed is None else [on is not False for on in armed]
        self.stationary = {zone.name: {} for zone, on in zip(self.zones, watched, strict=True) if on}
        for zone, on in zip(self.zones, watched, strict=True):
            if not on:
                visits += [self._leave(key, pool=pool) for pool in (self._inside, self._hidden)
                           for key in [k for k in pool if k[0] == zone.name]]
        if found.ids is not None and len(found):
            tracks, classes = found.ids.tolist(), found.cls.tolist()
            boxes: list[Box] = [(x1, y1, x2, y2) for x1, y1, x2, y2 in found.xyxy.tolist()]
            feet = anchor_points(found, "bottom") if self._grounds else None  # where each stands
            for zone, mask, on in zip(self.zones, held, watched, strict=True):
                if not on:
                    continue
                points = anchor_points(found, zone.anchor) if zone.classes is not None else None
                ground = self._grounds.get(zone.name)
                for index, (track, cls, here) in enumerate(zip(tracks, classes, mask.tolist(), strict=True)):
                    key = (zone.name, int(track))
                    stay = self._inside.get(key)
                    box = boxes[index]
                    if here:
                        if stay is None and self._hidden:
                            stay = self._found_again(key, int(cls), box)
                        if stay is None:
                            name = found.name(int(cls))
                            stay = self._inside[key] = _Stay(key[1], int(cls), name, now, self._frame,
                                                             Place.at(box, now))
                            visits.append(ZoneVisit(zone.name, "enter", key[1], int(cls), name, box=box))
                        stay.saw(box, now, self._frame)
                        if stay.place.stood():
                            still = self.stationary[zone.name]
                            name = found.name(int(cls))
                            still[name] = still.get(name, 0) + 1
                        if zone.linger is not None and not stay.lingered and now - stay.since >= zone.linger:
                            stay.lingered = True
                            visits.append(ZoneVisit(zone.name, "linger", stay.id, stay.cls, stay.name,
                                                    float(now - stay.since), box))
                        if ground is not None and feet is not None:
                            visits += self._measure(zone, ground, stay, int(track),
                                                    (now, *ground.metres(*feet[index])), box)
                    elif stay is not None and points is not None and inside(zone.points, points[index:index + 1])[0]:
                        stay.saw(box, now, self._frame)  # still there, its class read otherwise this time
                    elif stay is not None:
                        visits.append(self._leave(key, box))
        for key in [k for k, stay in self._inside.items() if self._frame - stay.frame > self.gone_after]:
            if self._hiding[key[0]] > 0 and self._inside[key].place.stood():
                self._hidden[key] = self._inside.pop(key)
            else:
                visits.append(self._leave(key))
        for key in [k for k, stay in self._hidden.items() if now - stay.seen > self._hiding[k[0]]]:
            visits.append(self._leave(key, pool=self._hidden))
        return visits

    def _found_again(self, key: tuple[str, int], cls: int, box: Box) -> _Stay | None:
        """The stay of an object lost after standing still that this newly seen one is, in the
        zone and of the class, where it stood (or of its very track id); moved back inside
        under ``key``."""
        again = self._hidden.pop(key, None)
        if again is None:
            found = Place.found_again(box, {k: stay.place for k, stay in self._hidden.items()
                                            if k[0] == key[0] and stay.cls == cls})
            if found is None:
                return None
            again = self._hidden.pop(found)
        self._inside[key] = again
        return again

    def _measure(self, zone: Zone, ground: Ground, stay: _Stay, track: int, place: tuple[float, float, float],
                 box: Box) -> list[ZoneVisit]:
        """A tracked object in a zone with a size, at ``place`` (time, and metres on the ground):
        its speed now (:attr:`speeds`), and a ``speeding`` event the first time it goes faster
        than the zone's ``speed_limit``."""
        if stay.start is None:
            stay.start = place
        stay.way.append(place)
        speed = stay.speed()
        if speed is None:
            return []
        self.speeds.setdefault(track, speed)
        if zone.speed_limit is None or speed <= zone.speed_limit or stay.sped:
            return []
        stay.sped = True
        return [ZoneVisit(zone.name, "speeding", stay.id, stay.cls, stay.name, float(place[0] - stay.since), box,
                          speed)]

    def _leave(self, key: tuple[str, int], box: Box | None = None,
               pool: dict[tuple[str, int], _Stay] | None = None) -> ZoneVisit:
        stay = (self._inside if pool is None else pool).pop(key)
        return ZoneVisit(key[0], "leave", stay.id, stay.cls, stay.name, max(0.0, float(stay.seen - stay.since)), box,
                         stay.average())


def box_of(found: Detections, index: int) -> Box:
    """The ``index``-th box of ``found``, as plain numbers."""
    x1, y1, x2, y2 = (float(v) for v in found.xyxy[index])
    return x1, y1, x2, y2


def occupancy(zones: Sequence[Area], found: Detections) -> list[npt.NDArray[np.bool_]]:
    """For each zone (or mask), which of ``found``'s boxes it holds (their anchor point, the
    centre by default, is inside it, and their class is one of its ``classes``)."""
    points = {anchor: anchor_points(found, anchor) for anchor in {zone.anchor for zone in zones}}
    return [inside(zone.points, points[zone.anchor]) if zone.classes is None else
            inside(zone.points, points[zone.anchor]) & np.isin(found.cls, list(zone.classes)) for zone in zones]


@dataclass(slots=True)
class _Crowding:
    crowded: bool = False
    since: float | None = None  # when the count first said otherwise (not yet for long enough)
    began: float = 0.0  # when it became crowded


class CrowdWatch:
    """When one stream's zones with a ``crowd`` become crowded (hold at least its objects for
    its time) and stop being (hold fewer as long); used by the worker that owns the stream
    only. A zone not watched now (its ``schedule``) holds nothing for it.

    >>> watch = CrowdWatch([Zone("queue", ((0.0, 0.0), (9.0, 0.0), (9.0, 9.0)), crowd=(3, 1.0))])
    >>> def held(n: int) -> tuple[ZoneTally, ...]:
    ...     return (ZoneTally("queue", (), {"person": n}),)
    >>> [[(c.state, c.count) for c in watch.update(held(n), t)[0]] for t, n in enumerate([2, 3, 4, 3, 1, 4, 1, 1])]
    [[], [], [('started', 4)], [], [], [], [], [('ended', 1)]]
    """

    def __init__(self, zones: Sequence[Zone]) -> None:
        self._zones = {zone.name: zone.crowd for zone in zones if zone.crowd is not None}
        self._places = {zone.name: (_place(zone), zone.crowd) for zone in zones if zone.crowd is not None}
        self._state: dict[str, _Crowding] = {}

    def going_on(self, old: CrowdWatch) -> CrowdWatch:
        """This watch, going on from ``old`` (before a reload) in each zone that is the same
        place with the same ``crowd``: a crowd under way is not told again."""
        self._state = {name: state for name, state in old._state.items()
                       if name in self._places and old._places.get(name) == self._places[name]}
        return self

    def update(self, tallies: Sequence[ZoneTally], now: float) -> tuple[list[ZoneCrowd], tuple[ZoneTally, ...]]:
        """The zones that became crowded, or stopped being, in the frame of ``tallies`` (at
        ``now``, seconds of the stream), and the tallies with whether each zone is crowded."""
        changed: list[ZoneCrowd] = []
        told = []
        for tally in tallies:
            crowd = self._zones.get(tally.name)
            if crowd is None:
                told.append(tally)
                continue
            objects, after = crowd
            state = self._state.setdefault(tally.name, _Crowding())
            count = sum(tally.inside.values()) if tally.watched is not False else 0
            if (count >= objects) == state.crowded:
                state.since = None
            else:
                state.since = now if state.since is None else state.since
                if now - state.since >= after - 1e-6:  # (frames' times in floating point)
                    state.crowded, state.since = not state.crowded, None
                    if state.crowded:
                        state.began = now
                    changed.append(ZoneCrowd(tally.name, "started" if state.crowded else "ended", count, objects,
                                             None if state.crowded else now - state.began,
                                             dict(tally.inside) if tally.watched is not False else {}))
            told.append(replace(tally, crowded=state.crowded))
        return changed, tuple(told)


class ZoneSwitches:
    """The zones switched by hand (the page, Home Assistant, the switches file): watched or not
    against their ``schedule`` until its next change (then the schedule again), a zone without
    one until switched again. Set by the pipeline, read by the workers at each frame: thread-safe
    (a new mapping each change; a read takes whichever is current).

    >>> hands = ZoneSwitches()
    >>> hands.set("door", "porch", False, until=100.0)
    >>> hands.get("door", "porch", 99.0), hands.get("door", "porch", 100.0), hands.any("door")
    (False, None, True)
    """

    def __init__(self) -> None:
        self._hands: dict[tuple[str, str], tuple[bool, float | None]] = {}
        self._lock = threading.Lock()  # (writers only)

    def set(self, stream: str, zone: str, on: bool | None, until: float | None = None) -> None:
        """``stream``'s ``zone`` is watched (``on``) or not by hand, until ``until`` (seconds
        since the epoch; ``None``: until switched again); ``on`` ``None``: as its schedule says."""
        with self._lock:
            hands = {key: hand for key, hand in self._hands.items() if key != (stream, zone)}
            if on is not None:
                hands[(stream, zone)] = (on, until)
            self._hands = hands

    def get(self, stream: str, zone: str, now: float) -> bool | None:
        """Whether ``stream``'s ``zone`` is watched by hand at ``now``; ``None``: not switched
        by hand (any more), its schedule says."""
        hand = self._hands.get((stream, zone))
        if hand is None or (hand[1] is not None and now >= hand[1]):
            return None
        return hand[0]

    def any(self, stream: str) -> bool:
        """Whether any of ``stream``'s zones is (or was) switched by hand."""
        return any(key[0] == stream for key in self._hands)

    def until(self, stream: str, zone: str) -> float | None:
        """Until when ``stream``'s ``zone`` is held by hand (``None``: not held, or until switched again)."""
        hand = self._hands.get((stream, zone))
        return None if hand is None else hand[1]


def zone_tallies(zones: Sequence[Zone], found: Detections, held: Sequence[npt.NDArray[np.bool_]],
                 armed: Sequence[bool | None] | None = None,
                 stationary: Mapping[str, Mapping[str, int]] | None = None) -> tuple[ZoneTally, ...]:
    """Every zone with the objects of ``found`` inside it now (``held``: :func:`occupancy`),
    by class name, and whether a zone with a schedule (or switched by hand) is watched now
    (``armed``, each zone's; ``None``: always); on a tracked stream, ``stationary``: those
    standing still, by zone (:attr:`ZoneWatch.stationary`; a zone not in it holds none)."""
    tallies = []
    for index, (zone, mask) in enumerate(zip(zones, held, strict=True)):
        by_class: dict[str, int] = {}
        for cls in found.cls[mask].tolist():
            name = found.name(int(cls))
            by_class[name] = by_class.get(name, 0) + 1
        watched = armed[index] if armed is not None else None
        tallies.append(ZoneTally(zone.name, zone.points, by_class, watched,
                                 stationary=None if stationary is None else stationary.get(zone.name, {})))
    return tuple(tallies)
