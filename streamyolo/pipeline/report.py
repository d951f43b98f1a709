"""Per-stream numbers, live (status line) and final (summary JSON and table)."""

from __future__ import annotations

import json
import operator
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from streamyolo.errors import OutputError

N = TypeVar("N", int, "Stayed")


@dataclass(frozen=True, slots=True)
class Stayed:
    """The tracked objects of one class that left a zone: how many, and how long they stayed
    (seconds: in all, and the longest).

    >>> Stayed().then(4.0).then(2.0) + Stayed(1, 9.0, 9.0)
    Stayed(left=3, seconds=15.0, longest=9.0)
    >>> Stayed(3, 15.0, 9.0).to_dict()
    {'left': 3, 'mean': 5.0, 'longest': 9.0}
    """

    left: int = 0
    seconds: float = 0.0
    longest: float = 0.0

    def then(self, dwell: float) -> Stayed:
        """With one more that stayed ``dwell`` seconds."""
        return Stayed(self.left + 1, self.seconds + dwell, max(self.longest, dwell))

    def __add__(self, other: Stayed) -> Stayed:
        return Stayed(self.left + other.left, self.seconds + other.seconds, max(self.longest, other.longest))

    @property
    def mean(self) -> float:
        """How long they stayed on average (seconds; 0 for none)."""
        return self.seconds / max(self.left, 1)

    def to_dict(self) -> dict[str, float]:
        """``{"left", "mean", "longest"}`` (seconds), as the summary file has it."""
        return {"left": self.left, "mean": round(self.mean, 2), "longest": round(self.longest, 2)}


@dataclass(frozen=True, slots=True)
class StreamReport:
    """One stream's numbers. At the end of a run ``captured == processed + dropped``."""

    name: str
    source: str
    state: str
    captured: int
    processed: int
    dropped: int
    error: str | None
    reconnects: int = 0
    fps_in: float = 0.0
    fps_out: float = 0.0
    frame_age: float | None = None
    last_frame_age: float | None = None
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """Counting lines (``lines:``): line → ``in``/``out`` → class name → objects counted."""
    zone_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    """Zones (``zones:``): zone → class name → the most objects inside it in one frame."""
    zone_entries: dict[str, dict[str, int]] = field(default_factory=dict)
    """Zones of a tracked stream: zone → class name → tracked objects that entered it."""
    zone_stays: dict[str, dict[str, Stayed]] = field(default_factory=dict)
    """Zones of a tracked stream: zone → class name → the objects that left it, and how long they stayed."""
    still: int | None = None
    """Streams with ``motion``: the frames processed without a forward pass (nothing moved)."""
    pictures: int | None = None
    """Streams with ``tiles``: the pictures the model ran on (whole pictures and parts)."""
    detect: bool = True
    """False while the stream's detection is switched off (its frames go on without objects)."""
    record: bool | None = None
    """Whether the stream's recording is on (switched off: ``False``); ``None``: it is not recorded."""
    live: bool = False
    """Whether the stream is live: under overload it skips frames (the newest is taken) rather
    than wait (lossless)."""
    schedule: dict[str, dict[str, Any]] = field(default_factory=dict)
    """A stream with a ``schedule``: ``{"detect": {"on", "until", "windows"}, "record": …}``,
    what each says now and until when (:meth:`~streamyolo.schedule.Scheduler.state`); its
    zones' with one, ``"watch:<zone>"``."""
    behind: float | None = None
    """Seconds behind its present now: its camera (a network stream or webcam, by its packets'
    times), or real time (a file played as one); ``None`` where not watched, or not streaming."""
    lagging: bool = False
    """Whether it is said to have fallen behind (:class:`~streamyolo.clock.Behind`): a stream
    that waits for every frame, or a file played in real time, that the machine cannot keep up with."""
    worst_behind: float | None = None
    """The farthest behind it was while said to be so, over the run (``None``: never)."""


def most(*values: float | None) -> float | None:
    """The largest of ``values`` that are not ``None`` (``None``: none is).

    >>> most(None, 3.0, 2.5), most(None, None)
    (3.0, None)
    """
    return max((value for value in values if value is not None), default=None)


def combined(earlier: StreamReport, later: StreamReport) -> StreamReport:
    """One stream's numbers over two turns of it in one run (removed, or changed, by a reload,
    and added again): ``later``'s, with both turns' frames, reconnects, counts, zone entries
    and stays added up and the zones' peaks the higher.

    >>> a = StreamReport("gate", "a.mp4", "removed", 10, 9, 1, None, counts={"door": {"in": {"person": 2}}})
    >>> b = StreamReport("gate", "b.mp4", "ended", 5, 5, 0, None, counts={"door": {"in": {"person": 1, "car": 1}}})
    >>> both = combined(a, b)
    >>> both.source, both.state, both.captured, both.processed, both.dropped, both.counts
    ('b.mp4', 'ended', 15, 14, 1, {'door': {'in': {'person': 3, 'car': 1}}})
    >>> combined(replace(a, zone_stays={"q": {"person": Stayed(1, 4.0, 4.0)}}),
    ...          replace(b, zone_stays={"q": {"person": Stayed(2, 2.0, 1.5)}})).zone_stays
    {'q': {'person': Stayed(left=3, seconds=6.0, longest=4.0)}}
    """
    def optional(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return replace(
        later,
        captured=earlier.captured + later.captured,
        processed=earlier.processed + later.processed,
        dropped=earlier.dropped + later.dropped,
        error=later.error or earlier.error,
        reconnects=earlier.reconnects + later.reconnects,
        counts={line: {way: _added(earlier.counts.get(line, {}).get(way, {}), later.counts.get(line, {}).get(way, {}))
                       for way in {**earlier.counts.get(line, {}), **later.counts.get(line, {})}}
                for line in {**earlier.counts, **later.counts}},
        zone_peaks={zone: _added(earlier.zone_peaks.get(zone, {}), later.zone_peaks.get(zone, {}), max)
                    for zone in {**earlier.zone_peaks, **later.zone_peaks}},
        zone_entries={zone: _added(earlier.zone_entries.get(zone, {}), later.zone_entries.get(zone, {}))
                      for zone in {**earlier.zone_entries, **later.zone_entries}},
        zone_stays={zone: _added(earlier.zone_stays.get(zone, {}), later.zone_stays.get(zone, {}))
                    for zone in {**earlier.zone_stays, **later.zone_stays}},
        worst_behind=most(earlier.worst_behind, later.worst_behind),
        still=optional(earlier.still, later.still),
        pictures=optional(earlier.pictures, later.pictures),
    )


def _added(a: Mapping[str, N], b: Mapping[str, N], how: Callable[[N, N], N] = operator.add) -> dict[str, N]:
    return {key: how(a[key], b[key]) if key in a and key in b else a[key] if key in a else b[key]
            for key in {**a, **b}}


@dataclass(frozen=True, slots=True)
class Summary:
    streams: dict[str, StreamReport]
    worker_restarts: dict[str, int] = field(default_factory=dict)
    """Process workers: how many times each worker's child process was started again after it
    died or hung (``process_restarts``); empty for thread workers."""
    recordings: dict[str, list[str]] = field(default_factory=dict)
    """Each recorded stream's recording files, oldest first."""
    clips: dict[str, list[str]] = field(default_factory=dict)
    """Each stream's event clips, oldest first."""
    lost: list[str] = field(default_factory=list)
    """What each output could not write in full during the run (a full disk), one line each:
    ``recording of stream 'gate': 97 frame(s) could not be written (first: …)``."""

    @property
    def processed(self) -> int:
        return sum(r.processed for r in self.streams.values())

    def to_dict(self) -> dict[str, Any]:
        """The summary file's shape: ``{"streams": {name: {captured, processed, dropped, state,
        error, …}}}`` (a recorded stream's with its ``"recordings"``, its event ``"clips"``), and with process workers
        ``"workers": {name: {"restarts": n}}``, and ``"lost"`` when outputs lost something."""
        keep = ("captured", "processed", "dropped", "state", "error", "reconnects", "source")
        out: dict[str, Any] = {"streams": {name: {k: asdict(r)[k] for k in keep} for name, r in self.streams.items()}}
        for kind, by_stream in (("recordings", self.recordings), ("clips", self.clips)):
            for name, files in by_stream.items():
                if name in out["streams"]:
                    out["streams"][name][kind] = files
        for name, report in self.streams.items():
            if report.counts:
                out["streams"][name]["counts"] = report.counts
            if report.zone_peaks:
                out["streams"][name]["zone_peaks"] = report.zone_peaks
            if report.zone_entries:
                out["streams"][name]["zone_entries"] = report.zone_entries
            if report.zone_stays:
                out["streams"][name]["zone_stays"] = stays_json(report.zone_stays)
            if report.still is not None:
                out["streams"][name]["still"] = report.still
            if report.pictures is not None:
                out["streams"][name]["pictures"] = report.pictures
            if report.worst_behind is not None:
                out["streams"][name]["worst_behind"] = round(report.worst_behind, 1)
        if self.worker_restarts:
            out["workers"] = workers_json(self.worker_restarts)
        if self.lost:
            out["lost"] = self.lost
        return out

    def write(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write summary file {str(path)!r}: {exc.strerror or exc}") from exc

    def table(self) -> str:
        rows = [["stream", "state", "captured", "processed", "dropped", "reconnects", "error"]]
        for name, r in self.streams.items():
            rows.append([name, r.state, str(r.captured), str(r.processed), str(r.dropped), str(r.reconnects),
                         _short(r.error, 70)])
        recorded = {name: self.recordings[name] for name in self.streams if name in self.recordings}
        clipped = {name: self.clips[name] for name in self.streams if name in self.clips}
        counted = [f"counted {name}: {count_text(r.counts)}" for name, r in self.streams.items() if r.counts]
        counted += [f"zones of {name}, most at once: {zone_text(r.zone_peaks)}"
                    for name, r in self.streams.items() if r.zone_peaks]
        counted += [f"zones of {name}, entered: {zone_text(r.zone_entries)}"
                    for name, r in self.streams.items() if r.zone_entries]
        counted += [f"zones of {name}, stayed: {stay_text(r.zone_stays)}"
                    for name, r in self.streams.items() if any(r.zone_stays.values())]
        counted += [still_text(name, r.processed, r.still) for name, r in self.streams.items() if r.still is not None]
        counted += [pictures_text(name, r.processed, r.pictures) for name, r in self.streams.items()
                    if r.pictures is not None]
        from streamyolo.pipeline.overload import lag_notes, run_note  # (it reads the reports this module defines)

        overloaded = run_note(self.streams.values())
        return "\n".join([_format(rows), *counted, *recording_notes(recorded),
                          *recording_notes(clipped, "clips of"), *restart_notes(self.worker_restarts),
                          *([overloaded] if overloaded is not None else []), *lag_notes(self.streams.values())])


def workers_json(restarts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """The ``"workers"`` entry of the summary file, the stats file's lines and the web page's
    status, from each process worker's restarts.

    >>> workers_json({"w0": 0, "w1": 2})
    {'w0': {'restarts': 0}, 'w1': {'restarts': 2}}
    """
    return {name: {"restarts": n} for name, n in restarts.items()}


def count_text(counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> str:
    """A stream's counting lines in a few words.

    >>> count_text({"door": {"in": {"person": 3, "dog": 1}, "out": {"person": 2}}, "gate": {"in": {}, "out": {}}})
    'door: 4 in (3 person, 1 dog), 2 out (2 person); gate: 0 in, 0 out'
    """
    def one(by_class: Mapping[str, int], way: str) -> str:
        kinds = _kinds(by_class)
        return f"{sum(by_class.values())} {way}" + (f" ({kinds})" if kinds else "")

    return "; ".join(f"{line}: {one(ways.get('in', {}), 'in')}, {one(ways.get('out', {}), 'out')}"
                     for line, ways in counts.items())


def pictures_text(stream: str, processed: int, pictures: int) -> str:
    """What a stream's ``tiles`` cost its model.

    >>> pictures_text("far", 600, 1380)
    'tiles of far: the model ran on 1380 pictures for 600 frames (2.3 a frame)'
    """
    each = f" ({pictures / processed:.1f} a frame)" if processed else ""
    return f"tiles of {stream}: the model ran on {pictures} pictures for {processed} frames{each}"


def still_text(stream: str, processed: int, still: int) -> str:
    """What ``motion`` spared a stream's model.

    >>> still_text("yard", 1500, 1200)
    'motion of yard: the model ran on 300 of 1500 frames (1200 still: 80%)'
    """
    share = f": {still / processed:.0%}" if processed else ""
    return f"motion of {stream}: the model ran on {processed - still} of {processed} frames ({still} still{share})"


def zone_text(peaks: Mapping[str, Mapping[str, int]]) -> str:
    """A stream's zones and the most each held at once.

    >>> zone_text({"queue": {"person": 5, "dog": 1}, "door": {}})
    'queue: 5 person, 1 dog; door: nothing'
    """
    return "; ".join(f"{zone}: {_kinds(by_class) or 'nothing'}" for zone, by_class in peaks.items())


def stays_json(stays: Mapping[str, Mapping[str, Stayed]]) -> dict[str, dict[str, dict[str, float]]]:
    """A stream's zones' stays as the summary, the stats file and the page's status give them:
    ``{zone: {class: {"left", "mean", "longest"}}}``."""
    return {zone: {name: stayed.to_dict() for name, stayed in by_class.items()} for zone, by_class in stays.items()}


def stay_text(stays: Mapping[str, Mapping[str, Stayed]]) -> str:
    """How long the objects that left a stream's zones stayed, by zone and class (most first).

    >>> stay_text({"queue": {"person": Stayed(3, 15.0, 9.0), "dog": Stayed(1, 2.0, 2.0)}, "door": {}})
    'queue: 3 person 5.0 s on average (longest 9.0 s), 1 dog 2.0 s on average (longest 2.0 s)'
    """
    return "; ".join(f"{zone}: " + ", ".join(
        f"{stayed.left} {name} {stayed.mean:.1f} s on average (longest {stayed.longest:.1f} s)"
        for name, stayed in sorted(by_class.items(), key=lambda item: (-item[1].left, item[0])))
        for zone, by_class in stays.items() if by_class)


def _kinds(by_class: Mapping[str, int]) -> str:
    """``{"dog": 1, "person": 3}`` → ``"3 person, 1 dog"`` (most first)."""
    return ", ".join(f"{n} {name}" for name, n in sorted(by_class.items(), key=lambda item: (-item[1], item[0])))


def recording_notes(recordings: Mapping[str, list[str]], what: str = "recorded") -> list[str]:
    """Where each stream's recording (or ``what`` else it has files of) went, a line each.

    >>> recording_notes({"cam": ["rec/cam-2.mp4"], "gate": ["rec/gate-1.mp4", "rec/gate-2.mp4", "rec/gate-3.mp4"]})
    ['recorded cam: rec/cam-2.mp4', 'recorded gate: 3 files, rec/gate-1.mp4 … rec/gate-3.mp4']
    """
    return [f"{what} {name}: {files[0]}" if len(files) == 1 else
            f"{what} {name}: {len(files)} files, {files[0]} … {files[-1]}"
            for name, files in recordings.items() if files]


def restart_notes(restarts: Mapping[str, int]) -> list[str]:
    """A line for each process worker whose inference process was started again.

    >>> restart_notes({"w0": 0, "w1": 2})
    ['worker w1: its inference process was started again 2 times (it died or hung; see the log)']
    """
    return [f"worker {name}: its inference process was started again {n} time{'s' if n > 1 else ''} "
            "(it died or hung; see the log)" for name, n in restarts.items() if n]


def status_table(reports: list[StreamReport]) -> str:
    """The live status: state, fps in/out, dropped, frame age, last error.

    >>> print(status_table([StreamReport("gate", "x", "streaming", 9, 9, 0, None, detect=False),
    ...                     StreamReport("door", "y", "streaming", 9, 9, 0, None, behind=5.24, lagging=True)]))
    stream  state                     fps in  fps out  processed  dropped  age ms  last frame  error
    gate    streaming, detection off  0.0     0.0      9          0        -       -
    door    streaming, 5.2 s behind   0.0     0.0      9          0        -       -
    """
    rows = [["stream", "state", "fps in", "fps out", "processed", "dropped", "age ms", "last frame", "error"]]
    for r in reports:
        rows.append([
            r.name, ", ".join([r.state, *(["detection off"] if not r.detect else []),
                               *(["recording off"] if r.record is False else []),
                               *([f"{r.behind:.1f} s behind"] if r.lagging and r.behind is not None else [])]),
            f"{r.fps_in:.1f}", f"{r.fps_out:.1f}",
            str(r.processed), str(r.dropped),
            "-" if r.frame_age is None else f"{r.frame_age * 1000:.0f}",
            "-" if r.last_frame_age is None else f"{r.last_frame_age:.1f}s ago",
            _short(r.error, 50),
        ])
    return _format(rows)


def _short(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _format(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


class StatusPrinter:
    """Prints the live status table: redrawn in place on a terminal, as plain blocks every
    ``plain_every`` seconds when the output is a file or pipe."""

    def __init__(self, out: TextIO | None = None, plain_every: float = 10.0) -> None:
        self.out = out or sys.stderr
        self.plain_every = plain_every
        self._lines_drawn = 0
        self._last_plain: float | None = None
        self._tty = bool(getattr(self.out, "isatty", lambda: False)())

    def show(self, reports: list[StreamReport], now: float, restarts: Mapping[str, int] | None = None,
             overload: Mapping[str, Any] | None = None) -> None:
        """The table of ``reports``, and under it the process workers started again and, while
        the machine cannot keep up, the ``overload`` (as ``streamyolo status`` says them)."""
        from streamyolo.sinks.history import overload_text, refreshed  # (the sinks read this module's reports)

        now_over = refreshed(overload, reports)
        text = "\n".join([status_table(reports), *restart_notes(restarts or {}),
                          *([overload_text(now_over)] if now_over is not None else [])])
        if self._tty:
            if self._lines_drawn:
                self.out.write(f"\x1b[{self._lines_drawn}F\x1b[J")
            self.out.write(text + "\n")
            self._lines_drawn = text.count("\n") + 1
        else:
            if self._last_plain is not None and now - self._last_plain < self.plain_every:
                return
            self._last_plain = now
            self.out.write(text + "\n\n")
        self.out.flush()

    def clear(self) -> None:
        """Forget the drawn lines so the next print starts fresh (e.g. before the summary)."""
        self._lines_drawn = 0
