"""Events of the past, read back from the events file (``--events``): a stream's events between
two moments, of some kinds, of some classes. What the web page's events search and its
timeline's ticks show, and what ``streamyolo events`` prints or counts.

The file grows by a line per event (compact JSON, :class:`~streamyolo.sinks.jsonl.LineFile`),
in the order the events thread handed them out: by time, give or take how far a stream's
processing lags behind its camera (a frame's events carry the frame's arrival, a stream's
state changes the moment they happen). A search finds where its span begins by bisecting the
file on the lines' times, allowing :data:`SLACK` seconds of disorder, and reads only the lines
from there: a minute out of a year of events costs a few dozen short reads. Lines that are not
whole events (the one being written, a line cut short by a full disk) are passed over. The
files ``logrotate`` made of the events file (``events.jsonl.1``, ``events.jsonl.2.gz``,
``events.jsonl-20261201.gz``) are searched too, newest first, as far back as the span reaches;
a compressed one is read whole.
"""

from __future__ import annotations

import gzip
import heapq
import json
import math
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast, get_args

from streamyolo.config import EventKind
from streamyolo.errors import meant
from streamyolo.schedule import SWITCHED, WATCH, described

if TYPE_CHECKING:
    from streamyolo.pipeline.report import StreamReport

SLACK = 600.0
"""Seconds by which a line of the events file may be older than a line before it (a stream's
frames processed that long after they came: a backlog in lossless mode); a search reads this
much beyond its span on either side."""

BLOCK = 1 << 16
"""Bytes read at a time going backwards through the file (forwards, following it)."""

Mark = tuple[int, int, int]
"""The events file as a :class:`Follower` found it: its device, inode and size then. A search
given it reads that file up to there, and the follower goes on from there: nothing twice."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events: from ``since`` (seconds since the epoch, included) to ``until`` (excluded),
    of ``streams``, of kinds ``kinds`` (``line``, ``enter`` …), about objects of ``classes``
    (class names, or ids as text), in ``places`` (zones' or lines' names); ``None`` for any.

    >>> query = EventQuery(since=100.0, streams=frozenset({"door"}), classes=frozenset({"person"}))
    >>> query.matches({"time": 120.5, "stream": "door", "event": "enter", "cls": 0, "name": "person"})
    True
    >>> query.matches({"time": 120.5, "stream": "door", "event": "state", "state": "streaming"})
    False

    A run's event (``"stream": ""``) that names streams is one of each of them: an overload
    that ``door`` is behind in is one of ``door``'s.

    >>> EventQuery(streams=frozenset({"door"})).matches({"time": 1.0, "stream": "", "event": "overload",
    ...                                                  "streams": [], "behind": {"door": 5.2}})
    True
    """

    since: float | None = None
    until: float | None = None
    streams: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    classes: frozenset[str] | None = None
    places: frozenset[str] | None = None

    def matches(self, event: Mapping[str, Any]) -> bool:
        moment = event.get("time")
        if not isinstance(moment, (int, float)) or isinstance(moment, bool):
            return False
        return ((self.since is None or moment >= self.since) and (self.until is None or moment < self.until)
                and (self.streams is None or event.get("stream") in self.streams
                     or not self.streams.isdisjoint(named_streams(event)))
                and (self.kinds is None or event.get("event") in self.kinds)
                and (self.classes is None or event.get("name") in self.classes
                     or ("cls" in event and str(event["cls"]) in self.classes))
                and (self.places is None or event.get("zone") in self.places or event.get("line") in self.places))

    def select(self, events: Iterable[Mapping[str, Any]], limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The first ``limit`` of ``events`` (the events sink's recent ones, newest first) that
        match, and whether more did."""
        chosen = [dict(event) for event in events if self.matches(event)]
        return chosen[:limit], len(chosen) > limit


def named_streams(event: Mapping[str, Any]) -> set[str]:
    """The streams a run's event (``"stream": ""``) is about: an ``overload``'s ``streams``
    (those skipping most, or, when it ends, every one it was about) and those ``behind``.

    >>> sorted(named_streams({"stream": "", "event": "overload", "streams": ["gate"], "behind": {"yard": 5.2}}))
    ['gate', 'yard']
    """
    if event.get("stream") != "":
        return set()
    names = event.get("streams")
    behind = event.get("behind")
    return ({str(name) for name in names} if isinstance(names, list) else set()) | (
        {str(name) for name in behind} if isinstance(behind, dict) else set())


def why_none(path: Path, query: EventQuery) -> str:
    """Why no event of ``path`` matches ``query``, when a name it asks for is in none of the
    events of its span (a stream, class, zone or line misspelt): ``": no event of
    stream 'stret' then (did you mean 'street'?)"``; else ``""``. Raises ``OSError`` as
    :func:`read_events`."""
    wide = EventQuery(query.since, query.until)
    seen: dict[str, set[str]] = {"stream": set(), "class": set(), "zone or line": set()}
    for event in read_events(path, wide):
        seen["stream"].add(str(event.get("stream")))
        seen["stream"].update(named_streams(event))
        seen["class"].update(str(event[key]) for key in ("name", "cls") if key in event)
        seen["zone or line"].update(str(event[key]) for key in ("zone", "line") if key in event)
    for what, given in (("stream", query.streams), ("class", query.classes), ("zone or line", query.places)):
        for name in sorted((given or frozenset()) - seen[what]):
            return f": no event of {what} {name!r} then{meant(name, seen[what])}"
    return ""


def event_files(path: Path) -> list[Path]:
    """The events file ``path`` and the files ``logrotate`` made of it (``events.jsonl.1``,
    ``events.jsonl.2.gz``, ``events.jsonl-20261201``, …), newest first (by their last write).
    Raises ``FileNotFoundError`` when there are none."""
    rotated = re.compile(re.escape(path.name) + r"(\.\d+|-\d{8,10})(\.gz)?")
    try:
        found = [entry for entry in path.parent.iterdir() if rotated.fullmatch(entry.name) and entry.is_file()]
    except OSError:
        found = []
    names = {entry.name for entry in found}
    found = [entry for entry in found if entry.name.removesuffix(".gz") not in names - {entry.name}]  # (compressing)
    files = sorted(found, key=_written, reverse=True)
    if path.is_file():
        files.insert(0, path)
    if not files:
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return files


def find_events(path: Path, query: EventQuery, limit: int,
                mark: Mark | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` events of the events file ``path`` (and the files logrotate made of
    it: :func:`event_files`) that match ``query``, newest first, and whether there are more
    (older ones); the file ``mark`` took only up to its mark. Raises ``OSError`` if a file cannot
    be read (``FileNotFoundError``: no events written yet).

    Reads the files backwards from the end of the span (a compressed one whole); once it has one
    more than ``limit``, it stops :data:`SLACK` seconds before the oldest of them.
    """
    found: list[tuple[float, tuple[int, int], dict[str, Any]]] = []  # (time, recency, event)
    floor: float | None = None  # below this (and SLACK more), nothing can be among the newest
    for age, events_file in enumerate(event_files(path)):
        newest = _last_time(events_file)
        if newest is None:
            continue  # empty (just rotated)
        if (query.since is not None and newest < query.since - SLACK) or (floor is not None
                                                                          and newest < floor - SLACK):
            break  # it and the older files end before the span, or before the newest found
        for order, event in enumerate(_newest_first(events_file, query, limit, mark)):
            moment = float(event["time"])
            if floor is not None and moment < floor - SLACK:
                break
            if query.matches(event):
                found.append((moment, (-age, -order), event))
                if floor is None and len(found) > limit:
                    floor = heapq.nlargest(limit + 1, found)[-1][0]
    found.sort(reverse=True)  # (time, recency) tell every two apart: the events are never compared
    return [event for _, _, event in found[:limit]], len(found) > limit


def read_events(path: Path, query: EventQuery, mark: Mark | None = None) -> Iterator[dict[str, Any]]:
    """Every event of the events file ``path`` (and the files logrotate made of it, the oldest
    first) that matches ``query``, in the files' order (the order they happened, per stream);
    the file ``mark`` took only up to its mark. Raises ``OSError`` if a file cannot be read."""
    for events_file in reversed(event_files(path)):
        newest = _last_time(events_file)
        if newest is None or (query.since is not None and newest < query.since - SLACK):
            continue  # empty, or it ends before the span
        with _open(events_file) as file:
            lines: Iterable[bytes] = file
            if not _compressed(events_file):
                end = _end(file, mark)
                file.seek(_position(file, query.since - SLACK) if query.since is not None else 0)
                lines = _lines_to(file, end)
            for line in lines:
                event = _event(line, query)
                if event is None:
                    continue
                if query.until is not None and float(event["time"]) >= query.until + SLACK:
                    return
                if query.matches(event):
                    yield event


def _newest_first(path: Path, query: EventQuery, limit: int, mark: Mark | None) -> Iterator[dict[str, Any]]:
    """The events of one file that may be ``query``'s, about the newest first: a plain file's
    span read backwards; of a compressed file (read whole), the newest ``limit`` + 1 that match."""
    with _open(path) as file:
        if not _compressed(path):
            start = _position(file, query.since - SLACK) if query.since is not None else 0
            end = _end(file, mark)
            if query.until is not None:
                end = min(end, _position(file, query.until + SLACK))
            for line in _lines_back(file, start, end):
                event = _event(line, query)
                if event is not None:
                    yield event
            return
        matching = (event for event in (_event(line, query) for line in file)
                    if event is not None and query.matches(event))
        yield from (event for _, _, event in heapq.nlargest(limit + 1, ((float(e["time"]), n, e)
                                                                      for n, e in enumerate(matching))))


def _last_time(path: Path) -> float | None:
    """The time of a file's last event (``None``: it has none); for a compressed file, when it
    was last written (no event in it is later)."""
    if _compressed(path):
        return _written(path)
    with path.open("rb") as file:
        for line in _lines_back(file, 0, _size(file)):
            event = _event(line, EventQuery())
            if event is not None:
                return float(event["time"])
    return None


def _written(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _compressed(path: Path) -> bool:
    return path.suffix == ".gz"


def _open(path: Path) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if _compressed(path) else path.open("rb")


def _event(line: bytes, query: EventQuery) -> dict[str, Any] | None:
    """The event on ``line``; ``None`` if it is not one (cut short, not JSON, no time) or
    cannot be one of ``query``'s streams (a quick look before parsing)."""
    if query.streams is not None and not any(_quoted(name) in line for name in query.streams):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("time"), (int, float)):
        return None
    return event


def _quoted(name: str) -> bytes:
    return json.dumps(name).encode()


def _size(file: IO[bytes]) -> int:
    return file.seek(0, 2)


def _end(file: IO[bytes], mark: Mark | None) -> int:
    """Where a plain file's events end: at its end, or for the file ``mark`` took, at its mark.
    Moves the file's position."""
    if mark is not None:
        info = os.fstat(file.fileno())
        if (info.st_dev, info.st_ino) == mark[:2]:
            return mark[2]
    return _size(file)


def _lines_to(file: IO[bytes], end: int) -> Iterator[bytes]:
    """The lines of the file from where it is (the beginning of a line) to ``end``."""
    rest = b""
    while (left := end - file.tell()) > 0 and (block := file.read(min(BLOCK, left))):
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _line_at(file: IO[bytes], offset: int) -> tuple[int, float | None]:
    """The first line with a time that begins at or after ``offset``: where it begins and its
    time (``None``: there is none, the end of the file)."""
    if offset > 0:
        file.seek(offset - 1)
        file.readline()  # to just after the next newline (the one at offset - 1 if there is one)
    else:
        file.seek(0)
    while True:
        begins = file.tell()
        line = file.readline()
        if not line:
            return begins, None
        event = _event(line, EventQuery())
        if event is not None:
            return begins, float(event["time"])


def _position(file: IO[bytes], moment: float) -> int:
    """Where the file's lines reach ``moment``: the beginning of the first line whose time is
    ``moment`` or later, by bisection (the lines in time order, more or less: see SLACK)."""
    begins, first = _line_at(file, 0)
    if first is None or first >= moment:
        return begins
    low, high = 0, _size(file)  # the line at low is earlier than moment; none at high is
    while high - low > 1:
        middle = (low + high) // 2
        _, seen = _line_at(file, middle)
        if seen is None or seen >= moment:
            high = middle
        else:
            low = middle
    return _line_at(file, high)[0]


def _lines_back(file: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    """The lines of the file between ``start`` and ``end`` (each the beginning of a line, or
    the end of the file), the last first."""
    position, rest = end, b""
    while position > start:
        size = min(BLOCK, position - start)
        position -= size
        file.seek(position)
        lines = (file.read(size) + rest).split(b"\n")
        rest = lines[0]
        yield from (line for line in reversed(lines[1:]) if line)
    if rest:
        yield rest


@dataclass(slots=True)
class _Tail:
    """A file a :class:`Follower` reads: where it has read to, and the start of a line being written."""

    file: IO[bytes]
    rest: bytes = b""
    start: bytes = b""  # the file's first bytes when last looked at

    def same(self, info: os.stat_result) -> bool:
        mine = os.fstat(self.file.fileno())
        return (info.st_dev, info.st_ino) == (mine.st_dev, mine.st_ino)

    def rewritten(self) -> bool:
        """Whether the file was emptied and written again since the last look (``copytruncate``,
        however much was written since): it no longer starts as it did (a line's time, to the
        millisecond, and its stream)."""
        now = os.pread(self.file.fileno(), 256, 0)
        again = not now.startswith(self.start)
        self.start = now
        return again


class Follower:
    """The events written to the events file ``path`` after the follower was made that match
    ``query``, as ``tail -F`` follows a log: from the file's end then (:attr:`mark`; or from its
    first line when there is none yet), each line once it is whole, on to the new file when
    ``logrotate`` moves the file away (its ``create`` mode: the one moved away read to its end
    once more, for a line written to it just as it moved), from the start when it was emptied
    and written again (``copytruncate``), and after a line a full disk cut short (removed by
    the writer), from where it began. Not thread-safe: one reader."""

    def __init__(self, path: Path, query: EventQuery) -> None:
        self.path = path
        self.query = query
        self.mark: Mark | None = None
        """Where the file was when the follower was made (``None``: there was none)."""
        self._tails: list[_Tail] = []  # the file at the path last; before it, one logrotate moved away
        try:
            file = path.open("rb")
        except FileNotFoundError:
            return
        info = os.fstat(file.fileno())
        self.mark = (info.st_dev, info.st_ino, _size(file))
        self._tails.append(_Tail(file))
        self._tails[-1].rewritten()  # (its start, as it is now)

    def events(self) -> list[dict[str, Any]]:
        """The events that match written since the last look (none: nothing new); never waits.
        Raises ``OSError`` if the file cannot be read."""
        found = [event for tail in self._tails for event in self._read(tail)]
        for moved in self._tails[:-1]:  # read once more after it moved: done
            moved.file.close()
        del self._tails[:-1]
        try:
            here = self.path.stat()
        except FileNotFoundError:
            return found  # moved or removed: the writer makes it again with its next line
        if not self._tails or not self._tails[-1].same(here):
            try:
                self._tails.append(_Tail(self.path.open("rb")))
            except FileNotFoundError:
                return found
            found += self._read(self._tails[-1])
        return found

    def close(self) -> None:
        for tail in self._tails:
            tail.file.close()
        self._tails.clear()

    def _read(self, tail: _Tail) -> list[dict[str, Any]]:
        """The whole new lines' events that match; first, if the file was emptied and written
        again, from its start, and if a line being written was removed, from where it began."""
        size, read = os.fstat(tail.file.fileno()).st_size, tail.file.tell()
        if tail.rewritten() or size < read:
            whole = read - len(tail.rest)
            tail.file.seek(whole if size < read and whole <= size and tail.start else 0)
            tail.rest = b""
        found = []
        while block := tail.file.read(BLOCK):
            lines = (tail.rest + block).split(b"\n")
            tail.rest = lines.pop()
            for line in lines:
                event = _event(line, self.query)
                if event is not None and self.query.matches(event):
                    found.append(event)
        return found


def where(event: Mapping[str, Any]) -> str:
    """Where an event happened, for a count: a line and the way it was crossed, a zone, a
    stream's or a clip's state.

    >>> where({"event": "line", "line": "gate", "direction": "in"}), where({"event": "enter", "zone": "queue"})
    ('gate in', 'queue')
    """
    if event.get("event") == "line":
        return f"{event.get('line', '')} {event.get('direction', '')}".strip()
    if event.get("event") == "crowd":
        return f"{event.get('zone', '')} {event.get('state', '')}".strip()
    return str(event.get("zone", event.get("state", "")))


def describe(event: Mapping[str, Any]) -> str:
    """An event as a line a person reads, as the web page lists it: local time, stream, what
    happened (``streamyolo events --text``).

    >>> import time as t
    >>> describe({"time": t.mktime((2026, 12, 5, 9, 10, 3, 0, 0, -1)), "stream": "gate", "event": "line",
    ...           "line": "door", "direction": "in", "id": 4, "name": "person"})
    '2026-12-05 09:10:03  gate: person #4 crossed door (in)'
    """
    stream = f"{event['stream']}: " if event.get("stream") else ""  # (an output of the run's: none)
    return f"{local_time(float(event['time']))}  {stream}{happened(event)}"


def local_time(moment: float) -> str:
    """``moment`` (seconds since the epoch) as the events' lines show it, local time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def refreshed(overload: Mapping[str, Any] | None, reports: Iterable[StreamReport]) -> dict[str, Any] | None:
    """``overload`` (:attr:`~streamyolo.pipeline.overload.Overload.state`, as of the watch's
    last look) with its streams' seconds behind as ``reports`` have them now (those reports'
    own: one page, one stats line says one number for a stream).

    >>> from streamyolo.pipeline.report import StreamReport
    >>> refreshed({"skipped": 0.0, "behind": {"yard": 5.2, "gate": 3.0}},
    ...           [StreamReport("yard", "y", "streaming", 9, 9, 0, None, behind=6.04, lagging=True),
    ...            StreamReport("gate", "g", "reconnecting", 9, 9, 0, None)])
    {'skipped': 0.0, 'behind': {'yard': 6.0, 'gate': 3.0}}
    """
    if overload is None or not overload.get("behind"):
        return None if overload is None else dict(overload)
    now = {r.name: r.behind for r in reports if r.behind is not None}
    return {**overload, "behind": {name: round(now[name], 1) if name in now else seconds
                                   for name, seconds in overload["behind"].items()}}


def overload_text(overload: Mapping[str, Any]) -> str:
    """What an overload (:attr:`~streamyolo.pipeline.overload.Overload.state`, an ``overload`` event's) says, in a line.

    >>> overload_text({"skipped": 80.0, "window": 60.0, "streams": ["gate", "door"]})
    "the machine cannot keep up: 80% of the live streams' frames skipped in the last 60 s (gate, door)"
    >>> overload_text({"skipped": 3.0, "window": 60.0, "streams": [], "behind": {"yard": 5.23}})
    'the machine cannot keep up: yard 5.2 s behind'
    """
    behind = overload.get("behind") or {}
    said = [f"{name} {float(seconds):.1f} s behind" for name, seconds in behind.items()]
    if overload.get("streams") or not behind:
        said.insert(0, f"{float(overload.get('skipped', 0)):.0f}% of the live streams' frames skipped in the last "
                       f"{float(overload.get('window', 0)):.0f} s ({', '.join(overload.get('streams') or [])})")
    return "the machine cannot keep up: " + "; ".join(said)


def happened(event: Mapping[str, Any]) -> str:
    """What happened, as a person reads it (:func:`describe` without its time and stream):
    ``person #4 crossed door (in)``."""
    kind, who = event.get("event"), str(event.get("name", event.get("cls")))
    if event.get("id") is not None:  # (tracked: which one)
        who += f" #{event['id']}"
    if kind == "line":
        what = f"{who} crossed {event.get('line')} ({event.get('direction')})"
    elif kind == "enter":
        what = f"{who} entered {event.get('zone')}"
    elif kind in ("leave", "linger"):
        what = (f"{who} left {event.get('zone')} after" if kind == "leave" else f"{who} lingers in {event.get('zone')}:"
                ) + f" {float(event.get('dwell', 0)):.1f} s"
    elif kind == "speeding":
        what = f"{who} speeding in {event.get('zone')}: {float(event.get('speed', 0)):.0f} km/h"
    elif kind == "test":  # (streamyolo check --notify)
        what = str(event.get("message", "a test"))
    elif kind == "crowd":
        inside = ", ".join(f"{n} {name}" for name, n in (event.get("inside") or {}).items())
        what = (f"{event.get('zone')} crowded: {inside or str(event.get('count')) + ' objects'} "
                f"({event.get('limit')} or more)"
                if event.get("state") == "started" else
                f"{event.get('zone')} no longer crowded after {float(event.get('seconds', 0)):.1f} s"
                + (f" (the stream {event['stream_state']})" if event.get("stream_state") else ""))
    elif kind == "overload":
        what = (overload_text(event) if event.get("state") == "started" else
                f"the run ended after {float(event.get('seconds', 0)):.0f} s of not keeping up" if event.get("stopped")
                else f"the machine keeps up again after {float(event.get('seconds', 0)):.0f} s")
    elif kind == "output":
        what = f"{event.get('output')} " + (f"paused: {event.get('error')}" if event.get("state") == "paused" else
                                             f"writing again after {float(event.get('seconds', 0)):.0f} s "
                                             f"({event.get('lost')} {event.get('unit')} lost)")
    elif kind == "switch" and event.get("switch") == "watch":
        what = f"{described(WATCH + str(event.get('zone')), event.get('state') == 'on')} ({event.get('by')})"
    elif kind == "switch":
        what = (f"{SWITCHED.get(str(event.get('switch')), event.get('switch'))} switched {event.get('state')} "
                f"({event.get('by')})")
    elif kind == "clip":
        state = event.get("state")
        what = {"started": "something happened: a clip starts",
                "ended": f"clip finished ({float(event.get('seconds', 0)):.1f} s): {event.get('clip')}",
                "failed": f"clip not made: {event.get('error')}"}.get(str(state), f"clip {state}")
    else:
        what = str(event.get("state", kind)) + (f": {event['error']}" if event.get("error") else "")
    return what


CSV_COLUMNS = ("time", "epoch", "stream", "event", "where", "class", "id", "dwell", "speed", "what", "snapshot",
               "clip")
"""The columns of ``streamyolo events --csv`` (events listed, not counted): local time, seconds
since the epoch, stream, kind, :func:`where`, the object's class name, track id, dwell (s) and
speed (km/h), what happened as a person reads it, the snapshot's and clip's file names."""


def csv_row(event: Mapping[str, Any]) -> tuple[str, ...]:
    """``event`` as a row of :data:`CSV_COLUMNS` (empty where it has nothing).

    >>> csv_row({"time": 0, "stream": "gate", "event": "enter", "zone": "drive", "id": 3, "name": "car"})[2:]
    ('gate', 'enter', 'drive', 'car', '3', '', '', 'car #3 entered drive', '', '')
    """
    def field(key: str) -> str:
        value = event.get(key)
        return "" if value is None else str(value)

    return (local_time(float(event["time"])), field("time"), field("stream"), field("event"), where(event),
            str(event.get("name", event.get("cls", ""))), field("id"), field("dwell"), field("speed"),
            happened(event), field("snapshot"), field("clip"))


PERIODS = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}
"""What ``--by`` counts events in, and how each is written (local time; weeks as ISO 8601 has
them, from Monday: ``2026-W49``)."""


def period_of(by: str, moment: float, zone: tzinfo | None = None) -> str:
    """The local hour, day, week or month (``by``) that holds ``moment``, as :data:`PERIODS` writes it: on the
    clocks of ``zone`` (``None``: the box's)."""
    return _wall(moment, zone).strftime(PERIODS[by])


def periods(by: str, first: float, last: float, zone: tzinfo | None = None) -> list[str]:
    """Every local hour, day, week or month (``by``) from the one holding ``first`` to the one
    holding ``last`` (seconds since the epoch), as :data:`PERIODS` writes them, on the clocks of
    ``zone`` (``None``: the box's); a clock change is counted as the clock shows it (an hour
    it skips is not there, one it shows twice is one).

    >>> import time as t
    >>> start = t.mktime((2026, 12, 5, 22, 30, 0, 0, 0, -1))
    >>> periods("hour", start, start + 3 * 3600)
    ['2026-12-05 22:00', '2026-12-05 23:00', '2026-12-06 00:00', '2026-12-06 01:00']
    >>> periods("week", start, start + 10 * 86400), periods("month", start, start + 40 * 86400)
    (['2026-W49', '2026-W50', '2026-W51'], ['2026-12', '2027-01'])
    """
    wall = _wall(first, zone).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    if by != "hour":
        wall = wall.replace(hour=0)
    if by == "week":
        wall -= timedelta(days=wall.weekday())  # (its Monday)
    elif by == "month":
        wall = wall.replace(day=1)
    found: list[str] = []
    while (moment := _moment(wall, zone)) <= last:
        name = wall.strftime(PERIODS[by])
        if _wall(moment, zone).strftime(PERIODS[by]) == name and (not found or found[-1] != name):
            found.append(name)
        wall = _next(wall, by)
    return found


def _next(wall: datetime, by: str) -> datetime:
    """The start of the hour, day, week or month (``by``) after the one starting at ``wall``."""
    if by == "month":
        return wall.replace(year=wall.year + wall.month // 12, month=wall.month % 12 + 1)
    return wall + {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}[by]


def _wall(moment: float, zone: tzinfo | None) -> datetime:
    """``moment`` as the clocks of ``zone`` show it (``None``: the box's)."""
    return datetime.fromtimestamp(moment, zone)


def _moment(wall: datetime, zone: tzinfo | None) -> float:
    """When the clocks of ``zone`` (``None``: the box's) show ``wall``."""
    return wall.replace(tzinfo=zone).timestamp() if zone is not None else time.mktime((*wall.timetuple()[:8], -1))


STATS = ("dwell median", "dwell mean", "speed mean")
"""The columns :func:`count_rows` adds, with ``stats``, to the rows of ``leave`` events: how
long the objects stayed in the zone (seconds: the median and the mean), and how fast they went
through it (km/h, a zone with a size)."""


def count_rows(events: Iterable[Mapping[str, Any]], by: str | None = None,
               span: tuple[float | None, float | None] = (None, None),
               zone: tzinfo | None = None, stats: bool = False) -> list[tuple[str, ...]]:
    """``events`` counted by stream, kind, :func:`where` and class (and first by the local
    hour, day, week or month each happened in: ``by``, one of :data:`PERIODS`, on the clocks of ``zone``,
    ``None``: the box's): a header, a row per count in
    order, and the total. By any of them, every period of ``span`` (its ends, where given, else
    the first and last event's) has a row for each thing counted, 0 where nothing happened:
    a day's footfall has its 24 hours. With ``stats``, when some ``leave`` event has its
    ``dwell`` (or ``speed``), the rows have :data:`STATS` too: how long people waited in the
    queue, by the hour.

    >>> count_rows([{"time": 0, "stream": "door", "event": "enter", "zone": "hall", "name": "person"}] * 2)[1:]
    [('door', 'enter', 'hall', 'person', '2'), ('total', '', '', '', '2')]
    >>> count_rows([{"time": 0, "stream": "door", "event": "leave", "zone": "hall", "name": "person", "dwell": d}
    ...             for d in (4, 5, 30)], stats=True)
    [('stream', 'event', 'where', 'class', 'count', 'dwell median', 'dwell mean'), \
('door', 'leave', 'hall', 'person', '3', '5.0', '13.0'), ('total', '', '', '', '3', '', '')]
    """
    counts: Counter[tuple[str, ...]] = Counter()
    measured: dict[tuple[str, ...], tuple[list[float], list[float]]] = {}  # key -> (dwells, speeds)
    seen: list[float] = []
    for event in events:
        key: tuple[str, ...] = (str(event.get("stream", "")), str(event.get("event", "")), where(event),
                                str(event.get("name", event.get("cls", ""))))
        if by is not None:
            moment = float(event["time"])
            seen = [min(seen[0], moment), max(seen[1], moment)] if seen else [moment, moment]
            key = (period_of(by, moment, zone), *key)
        counts[key] += 1
        if stats and event.get("event") == "leave":
            dwells, speeds = measured.setdefault(key, ([], []))
            for value, into in ((event.get("dwell"), dwells), (event.get("speed"), speeds)):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    into.append(float(value))
    if by is not None and seen:
        first = seen[0] if span[0] is None else span[0]
        last = seen[1] if span[1] is None else span[1] - 0.001  # (the span's end is not in it)
        for things in {key[1:] for key in counts}:
            for period in periods(by, first, last, zone):
                counts.setdefault((period, *things), 0)
    header: tuple[str, ...] = ("stream", "event", "where", "class", "count")
    shown = [column for n, column in ((0, STATS[0]), (0, STATS[1]), (1, STATS[2]))
             if any(lists[n] for lists in measured.values())]
    rows = [(*((by,) if by is not None else ()), *header, *shown)]
    for key, count in sorted(counts.items()):
        dwells, speeds = measured.get(key, ([], []))
        said = {STATS[0]: f"{statistics.median(dwells):.1f}" if dwells else "",
                STATS[1]: f"{statistics.fmean(dwells):.1f}" if dwells else "",
                STATS[2]: f"{statistics.fmean(speeds):.1f}" if speeds else ""}
        rows.append((*key, str(count), *(said[column] for column in shown)))
    rows.append(("total", *[""] * (len(header) - 2 + (by is not None)), str(sum(counts.values())),
                 *[""] * len(shown)))
    return rows


def count_table(events: Iterable[Mapping[str, Any]], by: str | None = None,
                span: tuple[float | None, float | None] = (None, None)) -> tuple[str, int]:
    """:func:`count_rows` (with its :data:`STATS`) as an aligned table (counts and numbers to
    the right), and how many events there were."""
    rows = count_rows(events, by, span, stats=True)
    numbers = rows[0].index("count")  # (it and the columns after it)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) if i >= numbers else cell.ljust(width) for i, (cell, width)
                       in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    return "\n".join(lines), int(rows[-1][numbers])


def count_series(events: Iterable[Mapping[str, Any]], by: str, since: float, until: float,
                 zone: tzinfo | None = None) -> dict[str, Any]:
    """``events`` (of the span from ``since`` to ``until``) counted as :func:`count_rows` counts
    them by ``by``, made into a chart's series: ``{"by", "periods": [every hour or day of the
    span], "series": [{"stream", "event", "where", "class", "counts": [one per period], "total"},
    …], "total"}``, what the web page's ``/counts.json`` answers; a series of ``leave`` events
    with their ``dwell`` also has ``"dwell"``, the median of each period (``None``: none left).

    >>> import time as t
    >>> start = t.mktime((2026, 12, 5, 10, 0, 0, 0, 0, -1))
    >>> walker = {"time": start + 4000, "stream": "door", "event": "enter", "zone": "hall", "name": "person"}
    >>> chart = count_series([walker], "hour", start, start + 3 * 3600)
    >>> chart["periods"], chart["series"][0]["counts"], chart["total"]
    (['2026-12-05 10:00', '2026-12-05 11:00', '2026-12-05 12:00'], [0, 1, 0], 1)
    """
    names = periods(by, since, until - 0.001, zone)  # (the span's end is not in it)
    index = {name: number for number, name in enumerate(names)}
    series: dict[tuple[str, ...], list[int]] = {}
    dwells: dict[tuple[str, ...], list[float | None]] = {}  # the leaves' median dwell, by period
    rows = count_rows(events, by, (since, until), zone, stats=True)
    median = rows[0].index(STATS[0]) if STATS[0] in rows[0] else None
    for row in rows[1:-1]:
        thing, at = tuple(row[1:5]), index[row[0]]  # (row: period, stream, event, where, class, count, …)
        series.setdefault(thing, [0] * len(names))[at] += int(row[5])
        if median is not None and row[median]:
            dwells.setdefault(thing, [None] * len(names))[at] = float(row[median])
    return {"by": by, "periods": names, "total": sum(map(sum, series.values())),
            "series": [{"stream": thing[0], "event": thing[1], "where": thing[2], "class": thing[3], "counts": counts,
                        "total": sum(counts), **({"dwell": dwells[thing]} if thing in dwells else {})}
                       for thing, counts in series.items()]}


KINDS = frozenset(get_args(EventKind)) | {"removed"}
"""What events are about (``removed``: a stream's state when a reload took it out)."""


def parse_names(values: Collection[str] | None, what: str) -> frozenset[str] | None:
    """A query's set from repeated or comma-separated values (``--stream a --stream b,c``);
    ``None`` for none given. Raises ``ValueError`` naming ``what`` for an empty one.

    >>> sorted(parse_names(["a", "b,c"], "stream"))
    ['a', 'b', 'c']
    """
    if not values:
        return None
    names = frozenset(part.strip() for value in values for part in value.split(","))
    if "" in names:
        raise ValueError(f"{what}: an empty name")
    return names


def parse_kinds(values: Collection[str] | None, what: str) -> frozenset[str] | None:
    """:func:`parse_names` for event kinds, each one of :data:`KINDS`."""
    kinds = parse_names(values, what)
    for kind in sorted(kinds or ()):
        if kind not in KINDS:
            raise ValueError(f"{what}: no events are {kind!r} (they are {', '.join(sorted(KINDS - {'removed'}))})"
                             + meant(kind, KINDS))
    return kinds


def span_of(fields: Mapping[str, list[str]]) -> tuple[float | None, float | None]:
    """A request's ``from`` and ``to`` (seconds since the epoch; ``None`` where not given).
    Raises ``ValueError`` naming the field at fault.

    >>> span_of({"from": ["100.5"]})
    (100.5, None)
    """
    moments: list[float | None] = []
    for key in ("from", "to"):
        given = (fields.get(key) or [""])[0]
        try:
            moment = float(given) if given else None
        except ValueError:
            moment = math.nan
        if moment is not None and not math.isfinite(moment):
            raise ValueError(f"{key}: {given!r} is not seconds since the epoch")
        moments.append(moment)
    return moments[0], moments[1]


def limit_of(fields: Mapping[str, list[str]], most: int) -> int | None:
    """A request's ``limit``, from 1 to ``most`` (``None``: not given). Raises ``ValueError``
    naming it when it is not one."""
    given = (fields.get("limit") or [""])[0]
    limit = int(given) if re.fullmatch(r"[0-9]{1,9}", given) else None
    if "limit" in fields and (limit is None or not 0 < limit <= most):
        raise ValueError(f"limit: {given!r} is not a number from 1 to {most}")
    return limit


def events_query(fields: Mapping[str, list[str]]) -> EventQuery:
    """The query of a request's fields (the web page's ``/events.json?stream=…&from=…``):
    ``stream``, ``event``, ``class``, ``where`` (a zone's or a line's name; each repeatable or
    comma-separated), ``from`` and ``to`` (seconds since the epoch). Raises ``ValueError``
    naming the field at fault."""
    since, until = span_of(fields)
    return EventQuery(since, until, parse_names(fields.get("stream"), "stream"),
                      parse_kinds(fields.get("event"), "event"), parse_names(fields.get("class"), "class"),
                      parse_names(fields.get("where"), "where"))
