"""Schedules: a stream's detection or recording on at some hours of some days only (``schedule``).

``schedule: {detect: "22:00-06:00", record: ["mon-fri 07:30-18:00", "sat,sun"]}`` on a stream
(or in ``stream_defaults``): each is a window or a list of them, when the switch is on; outside
them it is off. A window is ``[days] [HH:MM[:SS]-HH:MM[:SS]]``: days as ``mon``, ``mon-fri``,
``sat,sun`` or ``fri-mon`` (every day when left out), hours on the box's local clock (a whole day
when left out; ``24:00`` ends at midnight); a window that ends before it starts goes on past
midnight (``fri 22:00-06:00``: Friday night into Saturday morning).

The :class:`Scheduler` switches each stream's detection or recording
(:meth:`~streamyolo.pipeline.pipeline.Pipeline.set_switch`) when the run starts, and again each
time its schedule says the other thing: a switch by hand in between (the page's, Home
Assistant's) holds until the schedule's next change. A reload that changes a schedule applies
it at once; one that leaves it alone leaves the switches alone.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 86400
LOOK_AGAIN = 60.0
"""Seconds at most between two looks at the clock (a clock set, a box suspended, a DST change)."""

_TIME = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_WINDOW = re.compile(rf"^(?:(?P<days>[a-z,\- ]+?)\s*)?(?:\s*(?P<start>{_TIME})\s*-\s*(?P<end>{_TIME}))?$")


@dataclass(frozen=True, slots=True)
class Window:
    """On these ``days`` (0 Monday … 6 Sunday), from ``start`` to ``end`` (seconds into the
    day; an ``end`` not after ``start``: the next day's)."""

    days: frozenset[int]
    start: int
    end: int


def parse_window(text: str) -> Window:
    """``text`` as a window (see the module); else a ``ValueError`` saying what is wrong.

    >>> parse_window("mon-fri 07:30-18:00")
    Window(days=frozenset({0, 1, 2, 3, 4}), start=27000, end=64800)
    >>> parse_window("22:00-06:00").end, parse_window("sat,sun") == Window(frozenset({5, 6}), 0, DAY)
    (21600, True)
    >>> parse_window("fri-mon 8:00-9:00").days == frozenset({4, 5, 6, 0})
    True
    >>> parse_window("00:00-24:00") == parse_window("mon-sun")
    True
    >>> parse_window("mon 25:00-26:00")
    Traceback (most recent call last):
    ValueError: '25:00' is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)
    >>> parse_window("weekdays 8:00-9:00")
    Traceback (most recent call last):
    ValueError: 'weekdays' is not a day (mon, tue, wed, thu, fri, sat, sun; as mon-fri or sat,sun)
    """
    found = _WINDOW.match(text.strip().lower())
    if found is None or not text.strip():
        raise ValueError(f"{text!r} is not a window: [days] HH:MM-HH:MM, as 'mon-fri 07:30-18:00', '22:00-06:00' "
                         "or 'sat,sun'")
    days = _days(found["days"]) if found["days"] else frozenset(range(7))
    if found["start"] is None:
        return Window(days, 0, DAY)
    start, end = _seconds(found["start"]), _seconds(found["end"])
    if start % DAY == end % DAY and end - start != DAY:  # ("00:00-24:00": the whole day)
        raise ValueError(f"{text!r} starts and ends at the same time (leave the hours out for whole days)")
    return Window(days, start % DAY, end)


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(_is_day_name(end) for end in ends):
            raise ValueError(f"{part!r} is not a day (mon, tue, wed, thu, fri, sat, sun; as mon-fri or sat,sun)")
        first, last = DAYS.index(ends[0][:3]), DAYS.index(ends[-1][:3])
        days.update((first + step) % 7 for step in range((last - first) % 7 + 1))
    return frozenset(days)


def _is_day_name(text: str) -> bool:
    """``mon``, ``monday`` (a start of a day's name, of three letters at least)."""
    names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return len(text) >= 3 and any(name.startswith(text) for name in names)


def _seconds(text: str) -> int:
    hours, minutes, seconds = (int(part) if part else 0 for part in re.fullmatch(_TIME, text).groups())  # type: ignore[union-attr]
    total = hours * 3600 + minutes * 60 + seconds
    if minutes > 59 or seconds > 59 or total > DAY:
        raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)")
    return total


class Schedule:
    """When a switch is on: any of its ``windows`` (see the module), on the local clock."""

    def __init__(self, windows: Sequence[str]) -> None:
        if not windows:
            raise ValueError("no window (leave the schedule out for always on)")
        self.text = tuple(windows)
        self.windows = tuple(parse_window(window) for window in windows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and other.windows == self.windows

    def __hash__(self) -> int:
        return hash(self.windows)

    def __repr__(self) -> str:
        return f"Schedule({list(self.text)!r})"

    def __str__(self) -> str:
        return ", ".join(self.text)

    def describe(self, moment: float) -> str:
        """What it says at ``moment``, for a person: ``22:00-06:00 (off now, on at Mon 22:00)``."""
        on, until = self.at(moment)
        return f"{self} ({'on' if on else 'off'} now, {'off' if on else 'on'} at {when(until)})"

    def at(self, moment: float) -> tuple[bool, float]:
        """Whether it is on at ``moment`` (seconds since the epoch), and until when (the next
        change; a schedule that never changes: a week on)."""
        today = datetime.date.fromtimestamp(moment)
        spans = sorted((_local(day, window.start), _local(day, window.end if window.end > window.start
                                                          else DAY + window.end))
                       for offset in range(-2, 9) for day in [today + datetime.timedelta(days=offset)]
                       for window in self.windows if day.weekday() in window.days)
        merged: list[list[float]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            if moment < start:
                return False, start
            if moment < end:
                return True, end
        return False, moment + 7 * DAY  # (not reached: a window's day comes each week)


def when(moment: float) -> str:
    """``Mon 22:00`` (``Mon 22:00:30``: with its seconds when it has them), on the local clock."""
    local = time.localtime(moment)
    return time.strftime("%a %H:%M:%S" if local.tm_sec else "%a %H:%M", local)


def _local(day: datetime.date, seconds: int) -> float:
    """Seconds since the epoch of ``seconds`` into local ``day`` (past midnight: the next day's)."""
    return (datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(seconds=seconds)).timestamp()


Switch = Callable[[str, str, bool], None]
"""Switches a stream's detection or recording: ``switch(kind, stream, on)``."""


class Scheduler:
    """Switches the streams' detection and recording as their schedules say (see the module),
    on a thread of its own between :meth:`start` and :meth:`stop`."""

    def __init__(self, switch: Switch, clock: Callable[[], float] = time.time) -> None:
        self._switch = switch
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._schedules: dict[tuple[str, str], Schedule] = {}  # (stream, kind) -> its schedule
        self._said: dict[tuple[str, str], bool] = {}  # what each schedule last said (and was switched to)
        self._started = self._stopped = False
        self._thread: threading.Thread | None = None

    def configure(self, schedules: Mapping[str, Mapping[str, Schedule]]) -> None:
        """Each stream's schedules now (``{stream: {"detect": …, "record": …}}``): a new or
        changed one switches its stream by the next look (or :meth:`apply`), one gone leaves
        its switch as it is."""
        wanted = {(stream, kind): schedule for stream, kinds in schedules.items() for kind, schedule in kinds.items()}
        with self._lock:
            for key, schedule in wanted.items():
                if self._schedules.get(key) != schedule:
                    self._said.pop(key, None)
                    if key in self._schedules:
                        log.info("stream %r: its %s's schedule is %s now", key[0], SWITCHED[key[1]], schedule)
            self._said = {key: said for key, said in self._said.items() if key in wanted}
            self._schedules = wanted
            self._wake.notify_all()
            begin = self._started and not self._stopped and self._thread is None and bool(wanted)
        if begin:
            self._begin()

    def start(self) -> None:
        """Switch each stream as its schedule says now (before its first frame), then go on
        on a thread of its own."""
        self._look()
        with self._lock:
            self._started = True
            begin = bool(self._schedules) and self._thread is None
        if begin:
            self._begin()

    def _begin(self) -> None:
        thread = threading.Thread(target=self._run, name="schedule", daemon=True)
        with self._lock:
            if self._thread is not None:
                return
            self._thread = thread
        thread.start()

    def apply(self, stream: str) -> None:
        """Switch ``stream`` as its schedules say now (a stream added as the run goes, before
        its first frame), if they have not yet."""
        self._look(stream)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(10)

    def next_change(self, stream: str, kind: str) -> tuple[bool, float] | None:
        """What ``stream``'s ``kind`` schedule says now, and when it next says the other thing
        (none: ``None``)."""
        with self._lock:
            schedule = self._schedules.get((stream, kind))
        return None if schedule is None else schedule.at(self._clock())

    def hold(self, stream: str, kind: str, until: float) -> bool:
        """A switch of ``stream`` set by hand against its ``kind`` schedule until ``until`` (its
        next change then: an earlier run's, :class:`~streamyolo.pipeline.switches.SwitchFile`)
        holds, if that is still the schedule's next change: the schedule then switches it
        only at that change. Returns whether it holds."""
        now = self._clock()
        with self._lock:
            schedule = self._schedules.get((stream, kind))
            if schedule is None:
                return False
            on, change = schedule.at(now)
            if change != until:
                return False
            self._said[(stream, kind)] = on
            return True

    def kinds(self, stream: str) -> set[str]:
        """What ``stream``'s schedules switch (``detect``, ``record``)."""
        with self._lock:
            return {kind for name, kind in self._schedules if name == stream}

    def state(self, stream: str) -> dict[str, dict[str, object]]:
        """``stream``'s schedules now: ``{kind: {"on": bool, "until": seconds since the epoch,
        "windows": [...]}}`` (none: ``{}``)."""
        with self._lock:
            mine = {kind: schedule for (name, kind), schedule in self._schedules.items() if name == stream}
        now = self._clock()
        return {kind: {"on": on, "until": round(until, 3), "windows": list(schedule.text)}
                for kind, schedule in sorted(mine.items()) for on, until in [schedule.at(now)]}

    def _run(self) -> None:
        while True:
            due = self._look()
            with self._lock:
                if not self._stopped:
                    self._wake.wait(max(0.05, min(LOOK_AGAIN, due - self._clock())))
                if self._stopped:
                    return

    def _look(self, only: str | None = None) -> float:
        """Switch what its schedule now says otherwise than it last did (``only``: that
        stream's); returns when to look again."""
        now = self._clock()
        with self._lock:
            schedules = {key: schedule for key, schedule in self._schedules.items() if only in (None, key[0])}
        due = now + LOOK_AGAIN
        for (stream, kind), schedule in sorted(schedules.items()):
            on, until = schedule.at(now)
            due = min(due, until)
            with self._lock:
                if self._schedules.get((stream, kind)) != schedule or self._said.get((stream, kind)) == on:
                    continue
                self._said[(stream, kind)] = on
            try:
                self._switch(kind, stream, on)
            except (ValueError, RuntimeError) as exc:  # not running yet (a reload adds it) or any more
                log.debug("stream %r: its schedule could not switch its %s: %s", stream, SWITCHED[kind], exc)
                with self._lock:
                    if self._said.get((stream, kind)) == on:
                        del self._said[(stream, kind)]  # (again at the next look, or when it is added)
                continue
            log.info("stream %r: %s %s by its schedule (%s) until %s", stream, SWITCHED[kind], "on" if on else "off",
                     schedule, when(until))
        return due


SWITCHED = {"detect": "detection", "record": "recording"}
"""What each kind of schedule switches, for a person."""
WATCH = "watch:"
"""A zone's switch, ``watch:<zone>``: whether the zone is watched (its events, its occupancy)."""


def watch_kind(zone: str) -> str:
    """The switch of ``zone``'s watching (``watch:<zone>``)."""
    return WATCH + zone


def zone_of(kind: str) -> str | None:
    """The zone whose switch ``kind`` is (``watch:<zone>``); ``None``: a stream's own switch."""
    return kind.removeprefix(WATCH) if kind.startswith(WATCH) else None


def described(kind: str, on: bool) -> str:
    """A switch's state for a person: ``detection off``, ``zone porch not watched``.

    >>> described("detect", False), described(watch_kind("porch"), False)
    ('detection off', 'zone porch not watched')
    """
    zone = zone_of(kind)
    if zone is not None:
        return f"zone {zone} {'watched' if on else 'not watched'}"
    return f"{SWITCHED[kind]} {'on' if on else 'off'}"
