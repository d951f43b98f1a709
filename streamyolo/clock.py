"""Time: the clock type every component takes (tests inject fakes), a rate meter, and a stream's continuous timeline."""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds on a monotonic scale; ``time.monotonic`` in production."""


def wall_time(reading: float) -> float:
    """The wall-clock time (``time.time()``, seconds since the epoch) of a ``time.monotonic()``
    ``reading`` taken in this boot: for outputs that outlive the process (a JSONL line, a
    recording's name), where monotonic times mean nothing."""
    return time.time() - (time.monotonic() - reading)


ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")
"""What an IANA time zone's name looks like (``Europe/Berlin``, ``America/Argentina/Salta``,
``Etc/GMT-3``, ``UTC``): nothing that leads out of the time-zone database's folder."""


def zone_file(name: str) -> Path | None:
    """The file of time zone ``name`` in this box's time-zone database (``/usr/share/zoneinfo``,
    as Python's ``zoneinfo`` looks for it), else in the ``tzdata`` package's (a container
    without one); ``None`` if neither has it.

    >>> zone_file("Europe/Berlin") is not None, zone_file("Europe/Atlantis"), zone_file("../../etc/passwd")
    (True, None, None)
    """
    if not ZONE_NAME.fullmatch(name):
        return None
    import zoneinfo

    for folder in zoneinfo.TZPATH:
        path = Path(folder, name)
        if path.is_file() and path.read_bytes()[:4] == b"TZif":
            return path
    try:
        import tzdata  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    path = Path(tzdata.__file__).parent.joinpath("zoneinfo", *name.split("/"))
    return path if path.is_file() and path.read_bytes()[:4] == b"TZif" else None


def use_timezone(name: str) -> None:
    """Make time zone ``name`` (``Europe/Berlin``) this process's local time, and its children's:
    what the schedules, the pictures' date and time, the recordings' names, the log and the
    events' days follow (``timezone``), whatever the box is set to (a container: UTC). Raises
    ``ValueError`` if the zone is not known, or the C library does not take it."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    path = zone_file(name)
    if path is None:
        raise ValueError(f"{name!r} is not a time zone this box knows")
    os.environ["TZ"] = f":{path}"  # (glibc's form for a zone's file: the package's as well as the box's)
    time.tzset()
    now = time.time()
    offset = datetime.fromtimestamp(now, ZoneInfo(name)).utcoffset()
    if offset is None or time.localtime(now).tm_gmtoff != int(offset.total_seconds()):
        raise ValueError(f"time zone {name!r}: this box's C library does not take its file {path}")


def file_stamp(moment: float, millis: bool = False) -> str:
    """``moment`` (seconds since the epoch) in local time, for file names that sort in time
    order: ``YYYYmmdd-HHMMSS``, with ``-mmm`` milliseconds if ``millis``.

    >>> import re
    >>> bool(re.fullmatch(r"\\d{8}-\\d{6}-\\d{3}", file_stamp(1_700_000_000.25, millis=True)))
    True
    """
    text = time.strftime("%Y%m%d-%H%M%S", time.localtime(moment))
    return f"{text}-{int(moment * 1000) % 1000:03d}" if millis else text


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._times: deque[float] = deque(maxlen=1024)

    def tick(self, now: float | None = None) -> None:
        self._times.append(self._clock() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        horizon = now - self._window
        recent = [t for t in self._times if t >= horizon]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], 1e-6)


LOSSLESS_BEHIND = ("every frame of it is processed (overflow: lossless), and this machine cannot keep up with them "
                   "all; overflow: live keeps it current (the model then takes the newest frame), or give the "
                   "machine less to do (see `streamyolo bench`)")
"""Why a stream whose every frame is asked for falls behind, and what helps (:class:`Behind`)."""
SLOW_DECODING = ("its frames cannot all be decoded as fast as they play (a video of fewer pixels or frames a "
                 "second decodes faster)")
"""Why another stream falls behind (its frames are skipped as they wait, but are late decoded)."""


class Behind:
    """Tells (a warning) that stream ``name`` has fallen ``first`` seconds or more behind
    ``present`` (its camera; real time, for a file played as one), saying why and what helps
    (``lossless``: every frame of it is asked for, :data:`LOSSLESS_BEHIND`; else
    :data:`SLOW_DECODING`); again each time it is twice as far behind as last told; and, once
    within a quarter of ``first`` again, that it caught up (the next fall told afresh). One that
    ``tells`` nothing (a live camera: it skips ahead instead) only keeps how far behind it is.

    >>> behind, told = Behind("gate", "its camera", lossless=True), []
    >>> for seconds in (0.5, 1.9, 2.1, 3.0, 4.5, 9.0, 0.4, 2.5):  # warned at 2.1, 4.5 and 9.0; at 2.5 afresh
    ...     behind.at(seconds)
    ...     told.append(behind.told)
    >>> told, behind.seconds, behind.worst, behind.lagging
    ([0, 0, 1, 1, 2, 3, 0, 1], 2.5, 9.0, True)

    Read from other threads (the stream's status): each attribute is replaced whole.
    """

    def __init__(self, name: str, present: str, lossless: bool, first: float = 2.0, tells: bool = True) -> None:
        self.name, self.present, self.first, self.tells = name, present, first, tells
        self.why = LOSSLESS_BEHIND if lossless else SLOW_DECODING
        self.told = 0
        """Warnings given since the stream last caught up."""
        self.seconds = 0.0
        """How far behind it is now (seconds)."""
        self.worst: float | None = None
        """The farthest behind it was while told so (``None``: it never was)."""
        self._next = first

    @property
    def lagging(self) -> bool:
        """Whether it is said to be behind now (told, and not up with its present since)."""
        return self.told > 0

    def at(self, seconds: float) -> None:
        """Take how far behind the stream is now (ahead: not behind)."""
        self.seconds = seconds = max(0.0, seconds)
        if not self.tells:
            return
        if seconds >= self._next:
            log.warning("stream %r is %.1f s behind %s%s: %s", self.name, seconds, self.present,
                        " and falling further behind" if self.told else "", self.why)
            self.told, self._next = self.told + 1, 2 * seconds
        elif self.told and seconds <= self.first / 4:
            log.info("stream %r is up with %s again", self.name, self.present)
            self.told, self._next = 0, self.first
        if self.told:
            self.worst = max(self.worst or 0.0, seconds)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
"""Seconds in each unit a span of time may be written in."""


TEN_YEARS = 10 * 365 * 86400.0
"""The longest span of time :func:`parse_seconds` takes unless told."""


def parse_seconds(value: Any, least: float = 1.0, most: float = TEN_YEARS) -> float:
    """A span of time: seconds as a number, or a number with ``s``, ``m``, ``h`` or ``d``
    (at least ``least`` seconds, at most ``most``: ten years unless told).

    >>> parse_seconds("90d"), parse_seconds("12h"), parse_seconds(45), parse_seconds("1.5m"), parse_seconds(0, 0)
    (7776000.0, 43200.0, 45.0, 90.0, 0.0)
    >>> parse_seconds("2d", most=86400)
    Traceback (most recent call last):
    ValueError: must be from 1 second to 1 day
    """
    text = str(value).strip().lower()
    scale = _UNITS.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ValueError("must be seconds, or a number with s, m, h or d (like 30d)") from None
    if not least <= seconds <= most:  # (nan is neither)
        raise ValueError(f"must be from {_spoken(least)} to {_spoken(most)}")
    return seconds


def _spoken(seconds: float) -> str:
    """A bound of :func:`parse_seconds` in words.

    >>> _spoken(1), _spoken(0), _spoken(0.01), _spoken(86400), _spoken(TEN_YEARS)
    ('1 second', '0 s', '0.01 s', '1 day', '10 years')
    """
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds / size
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    return "1 second" if seconds == 1 else f"{seconds:g} s"


def format_seconds(seconds: float) -> str:
    """A span of time the way :func:`parse_seconds` reads it, in the largest unit it fills.

    >>> format_seconds(86400 * 30), format_seconds(7200), format_seconds(90), format_seconds(45)
    ('30d', '2h', '1.5m', '45s')
    """
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


CLOCK_JUMP = 10.0
"""Seconds by which a live source's timestamps may run ahead of the frames' arrivals (beyond
one frame) before the jump is taken for a clock reset rather than time that passed."""


class Timeline:
    """A stream's frames on one continuous timeline, in seconds, whatever the source's own
    timestamps do: a frame with a timestamp moves on by as much as it did from the frame
    before; a frame without one (an RTSP camera's first, say), or whose source clock went
    back (a camera that reconnected, its clock started again) or, on a ``live`` source, leapt
    ahead (``CLOCK_JUMP``), moves on by the time between the frames' arrivals (one frame
    interval at least). A file's leaps ahead are gaps in its video, and kept. The first frame
    sits at its timestamp (a file's frames at their place in the video), or at 0.

    Recordings, clips, zone dwell times and ``max_fps`` read it (``FrameMeta.media_time``): a
    camera whose first frame had no timestamp, or that reconnected after an hour, no longer
    gets its video squeezed (every frame a frame interval after the one before, the gaps of
    dropped frames gone) until its clock caught up, nor dwell times across the restart.

    >>> camera = Timeline(live=True)
    >>> [round(camera.place(pts, arrived, 25.0), 3) for pts, arrived in
    ...  [(None, 100.0), (0.5, 100.5), (0.6, 100.6), (0.04, 101.0), (None, 101.01), (3600.0, 101.05)]]
    [0.0, 0.5, 0.6, 1.0, 1.04, 1.08]
    >>> video = Timeline()  # a recording with a gap of an hour, read faster than real time
    >>> [round(video.place(pts, arrived, 25.0), 3) for pts, arrived in [(0.0, 5.0), (0.04, 5.001), (3600.0, 5.002)]]
    [0.0, 0.04, 3600.0]
    """

    def __init__(self, live: bool = False) -> None:
        self.live = live
        self._last: float | None = None  # the frame before's place
        self._last_pts: float | None = None  # its timestamp
        self._last_arrived = 0.0  # its arrival

    def place(self, pts: float | None, arrived: float, fps: float | None) -> float:
        """Where a frame with source timestamp ``pts`` that arrived at ``arrived`` (monotonic
        seconds) sits; called once per frame, in order."""
        step = 1.0 / (fps or 30.0)
        if self._last is None:
            now = pts if pts is not None else 0.0
        else:
            waited = max(step, arrived - self._last_arrived)
            moved = None if pts is None or self._last_pts is None else pts - self._last_pts
            trusted = moved is not None and moved >= 0 and (not self.live or moved <= waited + CLOCK_JUMP)
            now = self._last + (moved if trusted and moved is not None else waited)
        self._last, self._last_pts, self._last_arrived = now, pts, arrived
        return now
