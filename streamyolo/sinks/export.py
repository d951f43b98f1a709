"""A stream's recordings between two moments, as one MP4 (``streamyolo export``, the web
page's "download"): what an NVR hands over when something happened between 10:03 and 10:07.

The stream's files in the recording folder (annotated or the camera's own video; segments
named after the local time of their first frame, ``<stream>-YYYYmmdd-HHMMSS[-N][-objects].mp4``,
or one file per run, ``<stream>[-N].mp4``, placed by when it was last written) are read in
time order and their packets copied, never decoded or encoded again, from the key frame at or
before the start to the last frame before the end: seconds of a 24/7 recording in a second of
CPU. The export keeps the stream's own time: a segment that follows the one before within a
second goes on without a gap (segment names count whole seconds), while the minutes a camera
was down stay minutes (the picture before holds, as in the recordings). Its sound, if the
recordings have one, comes along. The file is a plain MP4 with its index at the front
(``faststart``): it plays, and seeks, in any browser or player, and can be mailed as it is.
Where the stream's video changes (a camera back at another size or codec), the export goes on
in a second file (``…-2.mp4``): one MP4 holds one kind of picture.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from streamyolo.clock import file_stamp, parse_seconds
from streamyolo.errors import OutputError, meant
from streamyolo.sinks.recorder import recorded_stream, recording_of
from streamyolo.sources.pyav import display_turn

log = logging.getLogger(__name__)

FOLLOWS = 1.0
"""Seconds within which a file that starts after the one before ends goes on right after it
(its name counts whole seconds): a later start is a gap, kept."""

_SEGMENT_TIME = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?(?:-objects)?\.mp4$")


class NothingRecorded(OutputError, LookupError):
    """Nothing of the stream recorded in the span asked for (or at all)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One of a stream's recording files: where it starts on the wall clock, for how long."""

    path: Path
    start: float
    seconds: float

    @property
    def end(self) -> float:
        return self.start + self.seconds


@dataclass(slots=True)
class Exported:
    """What an export wrote: its files, the recordings they were cut from, the seconds and
    frames in them, and where (wall clock) they start and end."""

    files: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)
    frames: int = 0
    start: float | None = None
    end: float | None = None

    @property
    def seconds(self) -> float:
        return 0.0 if self.start is None or self.end is None else self.end - self.start


def parse_moment(text: str, now: float | None = None, day: float | None = None) -> float:
    """A moment as people write one, in local time: ``2026-12-06 10:03`` (or ``T``, with
    seconds), ``2026-12-06`` (its midnight), ``10:03`` or ``10:03:30`` (today, or the day of
    the moment ``day``: a span's end on its start's day), ``today`` and ``yesterday`` (their
    midnight), ``-10m`` (that long ago: ``s``, ``m``, ``h``, ``d``), ``now``, or seconds since
    the epoch. Raises ``ValueError`` naming what it takes.

    >>> parse_moment("-90s", now=1000.0), parse_moment("now", now=1000.0), parse_moment("1796457794.5")
    (910.0, 1000.0, 1796457794.5)
    >>> start = parse_moment("2026-12-06 10:03")
    >>> parse_moment("10:07", day=start) - start
    240.0
    """
    current = time.time() if now is None else now
    value = text.strip()
    if value == "now":
        return current
    if value in ("today", "yesterday"):
        date = dt.datetime.fromtimestamp(current).date() - dt.timedelta(days=value == "yesterday")
        return time.mktime(dt.datetime.combine(date, dt.time()).timetuple())
    if value.startswith("-"):
        try:
            return current - parse_seconds(value[1:], least=0.0)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a moment: -10m is 10 minutes ago ({exc})") from None
    try:
        return float(value)
    except ValueError:
        pass
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(dt.datetime.strptime(value, form).timetuple())
        except ValueError:
            continue
    for form in ("%H:%M:%S", "%H:%M"):
        try:
            clock = dt.datetime.strptime(value, form).time()
        except ValueError:
            continue
        today = dt.datetime.fromtimestamp(current if day is None else day).date()
        return time.mktime(dt.datetime.combine(today, clock).timetuple())
    raise ValueError(f"{text!r} is not a moment: give 2026-12-06 10:03[:30], 2026-12-06, 10:03 (today), today, "
                     "yesterday, -10m (ago), now or seconds since the epoch")


def segment_start(name: str) -> float | None:
    """When a segment file (a recording's or a clip's, named ``…-YYYYmmdd-HHMMSS[-N][-objects].mp4``)
    starts, by its name: seconds since the epoch (``None``: not a name with a time).

    >>> segment_start("cam-20261206-101500-2-objects.mp4") == time.mktime((2026, 12, 6, 10, 15, 0, 0, 0, -1))
    True
    >>> segment_start("cam.mp4") is None
    True
    """
    found = _SEGMENT_TIME.search(name)
    if found is None:
        return None
    try:
        return time.mktime(time.strptime(found.group(1), "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return None


def recordings_of(folder: Path, stream: str, start: float | None = None, end: float | None = None) -> list[Recorded]:
    """``stream``'s recording files in ``folder``, in time order (those that hold no frame
    left out); with ``start`` and ``end``, those that may hold some of that span and the one
    before them (read only those: a month of segments is thousands of files)."""
    named: list[tuple[float, Path]] = []
    runs: list[Path] = []  # one file per run: placed by when it was last written
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not recording_of(entry.name, stream) or not entry.is_file(follow_symlinks=False):
            continue
        begins = segment_start(entry.name) if recording_of(entry.name, stream, segments_only=True) else None
        if begins is None:
            runs.append(Path(entry.path))
        else:
            named.append((begins, Path(entry.path)))
    named.sort()
    if start is not None and end is not None:  # a segment ends before the next starts
        near = [i for i, (begins, _) in enumerate(named) if begins < end
                and (i + 1 == len(named) or named[i + 1][0] > start - FOLLOWS)]
        named = named[max(0, near[0] - 1):near[-1] + 1] if near else []
    found_files = []
    for begins, path in [*named, *((None, path) for path in runs)]:
        seconds, title = _read(path)
        if seconds is None or (title is not None and title != stream and recording_of(path.name, title)):
            continue  # (nothing in it; or the other stream's whose name it fits too: gate-2.mp4, gate-2's)
        try:
            at = begins if begins is not None else path.stat().st_mtime - seconds
        except OSError:  # deleted meanwhile
            continue
        found_files.append(Recorded(path, at, seconds))
    return sorted(found_files, key=lambda r: (r.start, r.path.name))


def export(folder: Path, stream: str, start: float, end: float, out: Path, overwrite: bool = False) -> Exported:
    """``stream``'s recordings in ``folder`` from ``start`` to ``end`` (seconds since the
    epoch) into ``out`` (and ``<out>-2.mp4`` … where the video changes). Raises
    :class:`NothingRecorded` when there is nothing to export, :class:`OutputError` when ``out``
    cannot be written."""
    what = f"export of stream {stream!r}"
    wrong = backwards(start, end)
    if wrong is not None:
        raise OutputError(f"{what}: {wrong}")
    files = recordings_of(folder, stream, start, end)
    placed = _placed(files)
    files = [r for r in files if placed[r.path] + r.seconds > start and placed[r.path] < end]
    if not files:
        everything = recordings_of(folder, stream)
        if not everything:
            names = {name for file in os.listdir(folder) if (name := recorded_stream(file)) is not None}
            raise NothingRecorded(f"{what}: no recording of it in {str(folder)!r}{meant(stream, names)}")
        raise NothingRecorded(f"{what}: nothing recorded between {_shown(start)} and {_shown(end)} (its "
                              f"{len(everything)} recording(s) in {str(folder)!r} go from "
                              f"{_shown(everything[0].start)} to {_shown(everything[-1].end)})")
    done = Exported()
    writer: _Writer | None = None
    try:
        for recorded in files:
            try:
                container = av.open(str(recorded.path))
            except (av.error.FFmpegError, OSError) as exc:  # deleted meanwhile (record_keep), or broken
                log.warning("%s: %s skipped: %s", what, recorded.path.name, exc)
                continue
            with container:
                video = container.streams.video[0]
                sound = container.streams.audio[0] if container.streams.audio else None
                if writer is not None and not writer.takes(video, sound):
                    log.info("%s: the video changes in %s (%s): it goes on in another file", what,
                             recorded.path.name, _kind_shown(video))
                    _finish(writer, done)
                    writer = None
                if writer is None:
                    number = len(done.files) + 1
                    target = out if number == 1 else out.with_name(f"{out.stem}-{number}{out.suffix}")
                    writer = _Writer(target, video, sound, display_turn(str(recorded.path)), overwrite)
                if writer.copy(container, video, sound, placed[recorded.path], start, end):
                    done.sources.append(recorded.path)
    except BaseException:
        if writer is not None:  # a file cut short is no export: gone (the parts before are whole)
            writer.abandon()
        raise
    if writer is not None:
        _finish(writer, done)
    if not done.files:
        raise NothingRecorded(f"{what}: no frame recorded between {_shown(start)} and {_shown(end)}")
    return done


def _finish(writer: _Writer, done: Exported) -> None:
    """Close ``writer``'s file: one with frames is part of ``done``, one without is deleted."""
    writer.close()
    if not writer.frames:
        writer.path.unlink(missing_ok=True)
        return
    done.files.append(writer.path)
    done.frames += writer.frames
    assert writer.first is not None and writer.last is not None
    done.start = writer.first if done.start is None else done.start
    done.end = writer.last


def _placed(files: Sequence[Recorded]) -> dict[Path, float]:
    """Where each file's time 0 is on the wall clock: where its name (or its last write) says,
    or right after the file before when it starts within :data:`FOLLOWS` of its end (or
    before it: files do not overlap)."""
    placed: dict[Path, float] = {}
    ends: float | None = None
    for recorded in files:
        at = recorded.start if ends is None or recorded.start >= ends + FOLLOWS else ends
        placed[recorded.path] = at
        ends = at + recorded.seconds
    return placed


class _Writer:
    """One exported MP4: packets copied from recordings of one kind of video (and sound),
    timed from its first frame on the wall clock."""

    def __init__(self, path: Path, video: Any, sound: Any, turn: int, overwrite: bool) -> None:
        if path.exists() and not overwrite:
            raise OutputError(f"export file {str(path)!r} exists (overwrite replaces it)")
        self.path = path
        self.kind = _kind(video, sound)
        try:
            self.container: Any = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write export file {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") \
                from exc
        self.video = self.container.add_stream_from_template(video, opaque=True)
        if turn:
            self.video.set_display_rotation(-turn)  # PyAV takes it counter-clockwise
        if self.video.codec_context.name == "hevc":
            self.video.codec_tag = "hvc1"
        self.sound = None if sound is None else self.container.add_stream_from_template(sound, opaque=True)
        self.frames = 0
        self.first: float | None = None
        """The wall-clock time of its first frame (its time 0)."""
        self.last: float | None = None
        """The wall-clock time its last frame ends."""
        self._last_dts: dict[int, int] = {}

    def takes(self, video: Any, sound: Any) -> bool:
        return _kind(video, sound) == self.kind

    def copy(self, container: Any, video: Any, sound: Any, offset: float, start: float, end: float) -> bool:
        """The packets of ``container`` (a recording whose time 0 is at wall-clock ``offset``)
        from ``start`` to ``end``: from the key frame at or before ``start`` when none is
        written yet. Returns whether it gave any frame."""
        streams = [video] if sound is None or self.sound is None else [video, sound]
        held: list[tuple[Any, float]] = []  # since the last key frame, before the start
        given = False
        for packet in container.demux(streams):
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is None or packet.time_base is None or packet.size == 0:
                continue
            at = offset + float(stamp * packet.time_base)
            if packet.stream.type == "video":
                if at >= end:
                    break
                if self.first is None:  # it starts at the last key frame at or before the start
                    if packet.is_keyframe:
                        held = []
                    elif not held:
                        continue  # no key frame yet to start on
                    held.append((packet, at))
                    if at < start:
                        continue
                for early, when in held or [(packet, at)]:
                    self._write(early, when)
                held = []
                given = True
            elif self.first is not None and at >= self.first:  # sound beside the frames written
                self._write(packet, at)
            elif held and at >= held[0][1]:
                held.append((packet, at))
        return given

    def _write(self, packet: Any, at: float) -> None:
        is_video = packet.stream.type == "video"
        if is_video and self.first is None:
            self.first = at
        assert self.first is not None
        target = self.video if is_video else self.sound
        assert target is not None  # sound is copied only when the file has it
        time_base = packet.time_base
        dts = round((at - self.first) / time_base)
        last = self._last_dts.get(target.index)
        if last is not None and dts <= last:
            dts = last + 1  # a file's times only go on
        self._last_dts[target.index] = dts
        delay = packet.pts - packet.dts if packet.pts is not None and packet.dts is not None else 0
        packet.dts = dts
        packet.pts = dts + delay
        packet.stream = target
        packet.time_base = time_base
        if is_video:
            self.frames += 1
            duration = float(packet.duration * time_base) if packet.duration else 0.0
            self.last = at + duration
        self.container.mux(packet)

    def close(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write export file {str(self.path)!r}: {exc}") from exc

    def abandon(self) -> None:
        try:
            self.container.close()
        except (av.error.FFmpegError, OSError) as exc:
            log.debug("closing %s: %s", self.path, exc)
        self.path.unlink(missing_ok=True)


def _kind(video: Any, sound: Any) -> tuple[Any, ...]:
    """What an MP4's streams must share to go on in one file."""
    context = video.codec_context
    return (context.name, context.width, context.height, bytes(context.extradata or b""),
            None if sound is None else (sound.codec_context.name, sound.codec_context.sample_rate,
                                        bytes(sound.codec_context.extradata or b"")))


def _kind_shown(video: Any) -> str:
    context = video.codec_context
    return f"{context.name} {context.width}x{context.height}"


def _read(path: Path) -> tuple[float | None, str | None]:
    """Seconds of video in recording ``path`` (``None``: none, or it cannot be read), and the
    stream it says it is of (its title; ``None``: it does not say)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None, None
            duration, title = container.duration, container.metadata.get("title")
    except (av.error.FFmpegError, OSError) as exc:
        log.debug("%s: not read: %s", path, exc)
        return None, None
    return (None if not duration else duration / av.time_base), title


def backwards(start: float, end: float) -> str | None:
    """What is wrong with a span from ``start`` to ``end`` that does not end after it starts
    (``None``: nothing), as an export or a search of events says it."""
    return None if end > start else f"the end ({_shown(end)}) is not after the start ({_shown(start)})"


def _shown(moment: float) -> str:
    """A moment as the export's messages show it: local time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def default_name(stream: str, start: float) -> str:
    """The export's file name when none is given: ``<stream>-YYYYmmdd-HHMMSS-export.mp4``."""
    return f"{stream}-{file_stamp(start)}-export.mp4"


__all__ = ["Exported", "NothingRecorded", "Recorded", "backwards", "default_name", "export", "parse_moment",
           "recordings_of", "segment_start"]
