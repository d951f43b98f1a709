"""Event clips: a short annotated H.264 MP4 of each moment something happened on a stream.

A frame with events (a line crossed, a zone entered, left or lingered in: see
:mod:`streamyolo.sinks.events`) starts a clip ``<stream>-YYYYmmdd-HHMMSS.mp4`` (the frame's
arrival, local time), which holds the ``before`` seconds of video leading up to it and goes on
until ``after`` seconds past the stream's last frame with events; events inside that span add
to the same clip (up to ``MAX_CLIP_SECONDS``, after which the next event starts another). The
events name their clip (``"clip"``).

The seconds before an event are already gone when it happens, so each clipped stream's
frames are annotated and encoded as they come, in the stream's own ``clip:<stream>``
thread, and the last ``before`` seconds of H.264 packets are kept in memory (from a key
frame: one every second of video); a clip starts with them and takes the packets that follow.
That costs what recording the stream costs, once: a stream both recorded and clipped is
encoded once, in its ``record:<stream>`` thread, for both (:meth:`VideoRecorder.share_with`).
Clips are fragmented MP4s, as recordings are
(:mod:`streamyolo.sinks.recorder`): a killed process leaves every clip playable up to its
last second, and a clip can be played while it is still being written.

With ``clip_mode: original`` a stream's clips are cut from its camera's own packets instead
(:class:`OriginalClips`, fed by the stream's capture as a recording of the original is:
:mod:`streamyolo.sinks.original`): the stream is never annotated nor encoded for them, and
they start at the camera's key frames. A stream with a ``record_source`` (the camera's main
stream, recorded while the model watches its sub stream) has them cut from that stream,
matched to the events by when its packets arrived.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import file_stamp, format_seconds, wall_time
from streamyolo.errors import OutputsIncompleteError
from streamyolo.frames import Result
from streamyolo.sinks.base import OutputPause, delete_older
from streamyolo.sinks.original import OriginalRecording, SourcePacket, VideoSettings
from streamyolo.sinks.recorder import (
    H264,
    KEY_SECONDS,
    STREAM_OVER,
    FileOutput,
    Mp4File,
    Need,
    Packet,
    RecorderError,
    VideoRecorder,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_CLIP_SECONDS = 300.0
"""The longest a clip gets (seconds of video from its first event): a street busy all day
makes a clip every 5 minutes, not one of the whole day."""

PRUNE_SECONDS = 60.0
"""``clips_keep``: how often old clips are looked for (at most), as new ones start."""

CLIP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*-\d{8}-\d{6}(-\d+)?\.mp4")
"""What a clip's file is called: what ``clips_keep`` may delete, and nothing else in the folder."""

_SAME_MOMENT = 1e-6  # seconds: a frame this close to the end of a clip's span is still in it

NONE_CAME = "none of its seconds came from the camera"
PAUSED = "the clips were paused after a failed write"
WRITE_FAILED = "its first write failed"
"""Why a clip is not made (:meth:`ClipRecorder.not_made`)."""


def _before_start(groups: Sequence[Sequence[T]], start: float, at: Callable[[T], float]) -> int:
    """How many of ``groups`` (of packets, each from a key frame; ``at``: a packet's time) come
    before a clip whose seconds begin at ``start``: a group goes when the next starts early
    enough, or when it ended well before (the stream was down, or dropped seconds of frames),
    so a clip starts at most a key frame's interval before its seconds, not at the frames
    before a gap.

    >>> _before_start([[0.0, 0.5], [1.0, 1.5], [2.0]], 1.2, float), _before_start([[0.0], [9.0]], 5.0, float)
    (1, 1)
    """
    first = 0
    start += _SAME_MOMENT
    while first + 1 < len(groups) and (at(groups[first + 1][0]) <= start
                                       or at(groups[first][-1]) < start - KEY_SECONDS):
        first += 1
    return first


@dataclass
class _Span:
    """Where a stream's frames go, decided frame by frame in its inference thread."""

    path: Path | None = None
    """The clip being made, or ``None`` between clips."""
    start: float = 0.0
    """Its first event's time on the stream's timeline (``media_time``)."""
    until: float = -math.inf
    """Where it ends on that timeline, unless another event comes first."""
    last: float = -math.inf
    """The time of the stream's frame before (a timeline that goes back ends the clip)."""
    named: tuple[int, str] | None = None
    """The last frame with events (its ``seq``) and the name of its clip."""
    arrival: float = 0.0
    """Its first event's frame's arrival (``t_capture``) less its ``start``: where its span lies
    on the clock the frames and packets arrive by."""


class ClipRecorder(VideoRecorder):
    """Writes clips around each stream's events into ``folder`` (see the module)."""

    def __init__(self, folder: Path, annotator: BoxAnnotator | None = None, *, before: float = 5.0,
                 after: float = 5.0, keep: float | None = None, streams: Collection[str] | None = None,
                 max_size: int | None = None, **encoding: Any) -> None:
        """``streams``: the streams that can have events (lines, zones), the only ones whose
        frames are encoded for clips (``None``: all); ``max_size``: the bytes of clips the
        folder keeps at most, the oldest deleted first; ``encoding``: the recorder's ``codec``,
        ``preset``, ``crf``, ``queue_size``, ``default_fps``."""
        if before < 0 or after < 0:
            raise ValueError(f"before and after must be 0 or more seconds, not {before} and {after}")
        super().__init__(folder, annotator, streams=streams, max_size=max_size, **encoding)
        self.before = before
        self.after = after
        self.clips_keep = keep
        self._spans: dict[str, _Span] = {}
        self._unclaimed = 0  # clips that could not even be created
        self.on_end: Callable[[str, str, float, bool], None] | None = None
        """Told of each clip finished: ``on_end(stream, name, seconds, whole)`` (``whole``: false
        when a failed write cut it short), from the thread that wrote it: the events sink's
        ``clip`` event."""
        self.on_fail: Callable[[str, str, str], None] | None = None
        """Told of each clip its events named that is not made: ``on_fail(stream, name, why)``,
        from the thread that gave it up: the events sink's ``clip`` event, ``failed``."""
        self._pruned_at = -math.inf
        self._prune_lock = threading.Lock()
        self._originals_of: dict[str, OriginalClips] = {}  # streams clipped from their cameras' own video

    what = "clips folder"
    files_kind = "clips"
    size_setting = "clips_max_size"
    thread_prefix = "clip"

    def base_name(self, stream: str, started: float) -> str:
        return f"{stream}-{file_stamp(started)}"

    def new_output(self, stream: str) -> FileOutput:
        return _ClipOutput(self, stream)

    def open(self) -> None:
        super().open()
        self.prune(None)

    def original(self, stream: str, live: bool, rotate: int | None = None, *,
                 other: bool = False) -> OriginalRecording:
        """``stream``'s clips cut from its camera's own video (``clip_mode: original``): the
        tap its source hands its packets to; give it none of the stream's frames (``streams``).
        ``other``: the packets are another stream's than the one the model watches (its
        ``record_source``: the camera's main stream), matched to the events by their arrival."""
        cutter = super().original(stream, live, rotate)
        assert isinstance(cutter, OriginalClips)
        cutter.by_arrival = other  # before its first packet: its writer thread starts with it
        return cutter

    def new_original(self, stream: str, live: bool, rotate: int | None) -> OriginalClips:
        cutter = self._originals_of[stream] = OriginalClips(self, stream, live=live, rotate=rotate)
        return cutter

    def write(self, result: Result) -> None:
        cutter = self._originals_of.get(result.stream)
        if cutter is not None:
            path = self.place(result)
            span = self._spans[result.stream]
            shift = span.arrival if cutter.by_arrival else 0.0
            cutter.follow(_Cut(path, span.start - self.before + shift, span.until + shift) if path is not None
                          else _Cut(None))
        elif self.host is self and self.wants(result.stream):  # else the recorder it shares with has them
            self.writer(result.stream).put((result, self.place(result)))

    def stream_changed(self, stream: str, state: str, error: str | None) -> None:
        """A stream that has ended or failed (after its last frame) finishes its clip now, not
        at the end of the run (and, unless recorded, lets go of its encoder)."""
        if state not in ("ended", "failed"):
            return
        span = self._spans.get(stream)
        if span is not None:
            span.path = None
        cutter = self._originals_of.get(stream)
        if cutter is not None:
            cutter.follow(_Cut(None))
            cutter.stream_over()
        if stream in self.host._writers:  # it has had frames
            try:
                self.host.writer(stream).put(STREAM_OVER)
            except RecorderError:  # its clips had failed already (and said so)
                pass

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        self._spans.pop(stream, None)
        cutter = self._originals_of.pop(stream, None)
        if cutter is not None:
            cutter.follow(_Cut(None))  # the clip being cut ends here
        super().end_stream(stream, restarting)

    def not_made(self, stream: str, clip: Path, why: str) -> None:
        """``clip``, which its events named, has no file (given back: :meth:`release`): said in
        the log, and told (``on_fail``)."""
        log.warning("stream %r: clip %s not made: %s", stream, clip.name, why)
        if self.on_fail is not None:
            self.on_fail(stream, clip.name, why)

    def clip_of(self, result: Result) -> str | None:
        """The name of the clip ``result``'s events are in (once :meth:`write` has had it), or
        ``None``: for the events sink, which names it in each event."""
        span = self._spans.get(result.stream)
        if span is None or span.named is None or span.named[0] != result.frame.meta.seq:
            return None
        return span.named[1]

    def prune(self, stream: str | None) -> list[Path]:
        """``clips_keep``: delete the clips (of every stream, this run's and earlier runs')
        older than that; ``clips_max_size``: the oldest clips beyond that many bytes; at most
        once a minute, as clips start."""
        if self.clips_keep is None and self.max_size is None:
            return []
        with self._prune_lock:
            if time.monotonic() - self._pruned_at < PRUNE_SECONDS:
                return []
            self._pruned_at = time.monotonic()
            deleted = []
            if self.clips_keep is not None:
                deleted = delete_older(self.folder, self.clips_keep,
                                       lambda name: CLIP_NAME.fullmatch(name) is not None)
            if deleted:
                log.info("clips folder %s: deleted %d clip(s) older than %s (clips_keep)", self.folder, len(deleted),
                         format_seconds(self.clips_keep or 0))
            return deleted + self.shrink(lambda name: CLIP_NAME.fullmatch(name) is not None)

    @property
    def deletes(self) -> bool:
        return self.clips_keep is not None or self.max_size is not None

    def close(self) -> None:
        super().close()
        if self._unclaimed:
            raise OutputsIncompleteError(f"clips folder {str(self.folder)!r}: {self._unclaimed} clip(s) could not "
                                         "be created")

    def place(self, result: Result) -> Path | None:
        """The clip ``result``'s frame belongs to, if any; starts one at a frame with events.
        Called in the stream's inference thread, frame by frame, so its span needs no lock."""
        meta = result.frame.meta
        span = self._spans.get(meta.stream)
        if span is None:
            span = self._spans[meta.stream] = _Span()
        now = meta.media_time
        if span.path is not None and (now > span.until + _SAME_MOMENT or now < span.last
                                      or now - span.start >= MAX_CLIP_SECONDS):
            span.path = None
        span.last = now
        if result.crossings or result.visits or result.crowds:
            if span.path is None:
                try:
                    span.path = self.claim(meta.stream, wall_time(meta.t_capture))
                except RecorderError as exc:
                    self._unclaimed += 1
                    log.error("stream %r: no clip of the events at frame %d: %s", meta.stream, meta.seq, exc)
                    return None
                span.start = now
                span.arrival = meta.t_capture - now
            span.until = now + self.after
            span.named = (meta.seq, span.path.name)
        return span.path


class _ClipOutput(FileOutput):
    """A stream's clips: keeps the last ``before`` seconds of its packets (whole groups from
    a key frame) and writes the clip each frame belongs to."""

    owner: ClipRecorder
    ends_with_stream = True

    def __init__(self, owner: ClipRecorder, stream: str) -> None:
        super().__init__(owner, stream, f"clips of stream {stream!r}")
        self._kept: deque[list[tuple[float, Packet]]] = deque()  # groups of packets, each from a key frame
        self._clip: Mp4File | None = None
        self._given_up: set[Path] = set()  # clips a failed write ended: their later frames are lost
        self._waiting: Path | None = None  # a clip not started while a failed write pauses the clips

    def need(self, item: Result, h264: H264 | None) -> Need:
        return Need.FRAME  # every frame: the seconds before an event are kept

    @property
    def writing(self) -> Path | None:
        clip = self._clip
        return None if clip is None else clip.path

    def add(self, item: Result, clip: Path | None, h264: H264, packets: list[Packet]) -> None:
        self._keep(h264.last_seconds, packets)
        if clip is None or (self._clip is not None and self._clip.path != clip):
            self._end_clip()
        if self._waiting is not None and self._waiting != clip:
            self._never_started()
        if clip is None:
            return
        if clip in self._given_up:
            self.pause.skip()
            return
        if self._clip is None and not self.pause.due():
            self._waiting = clip
            return
        self._waiting = None
        try:
            if self._clip is not None:
                self._clip.add(packets)
            else:
                self.owner.prune(None)  # first: it may free the room the clip needs
                self._clip = Mp4File(clip, h264.stream, h264.rate, [p for group in self._kept for _, p in group],
                                     stream=self.stream)
                self.files = [*self.files, clip]
                log.debug("stream %r: clip %s", self.stream, clip.name)
        except OSError as exc:  # a full disk: this clip ends here, the next one tries again
            self._given_up.add(clip)
            if self._clip is None:  # not a frame of it written
                self.owner.release(clip)
                self.owner.not_made(self.stream, clip, WRITE_FAILED)
            self.abandon()
            self.failed_write(exc)
            return
        self.pause.succeeded()

    def encoder_ends(self, h264: H264, packets: list[Packet]) -> None:
        try:
            if self._clip is not None:
                self._clip.add(packets)
        except OSError as exc:
            self.abandon()
            self.failed_write(exc)
        self.stream_over()  # its clip ends, its packets are of no use to the next encoder

    def stream_over(self) -> None:
        self._end_clip()
        if self._waiting is not None:
            self._never_started()
        self._kept.clear()

    def _never_started(self) -> None:
        """The clip asked for while the clips were paused is over without a frame."""
        clip, self._waiting = self._waiting, None
        assert clip is not None
        self.owner.release(clip)
        self.owner.not_made(self.stream, clip, PAUSED)

    def _keep(self, now: float, packets: list[Packet]) -> None:
        for packet in packets:
            if packet.is_keyframe or not self._kept:
                self._kept.append([])
            self._kept[-1].append((now, packet))
        for _ in range(_before_start(self._kept, now - self.owner.before, lambda kept: kept[0])):
            self._kept.popleft()

    def _end_clip(self) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        try:
            clip.close()  # writes its last fragment
        except OSError as exc:
            self.failed_write(exc)
            self._ended(clip, whole=False)
            return
        self._ended(clip, whole=True)

    def abandon(self) -> None:
        clip, self._clip = self._clip, None
        self.close_after_failure(clip)
        if clip is not None and clip.frames:
            self._ended(clip, whole=False)
        elif clip is not None:  # released
            self.owner.not_made(self.stream, clip.path, WRITE_FAILED)

    def _ended(self, clip: Mp4File, whole: bool) -> None:
        if self.owner.on_end is not None:
            self.owner.on_end(self.stream, clip.path.name, clip.seconds, whole)


KEEP_MORE_SECONDS = 5.0
"""A clip of the original keeps this much more than its ``before`` seconds of packets: its
first event is known only once the model has seen the frame, a moment after the packets came."""

SPAN_POLL_SECONDS = 0.25
"""How soon a clip of the original hears of its end when no packet comes (a camera down)."""


@dataclass(frozen=True, slots=True)
class _Cut:
    """A clip of the original as the stream's inference thread marks it out: ``path`` holds the
    packets from ``first`` to ``until`` on the stream's timeline, or when they arrive
    (:attr:`OriginalClips.by_arrival`) (``None``: no clip now)."""

    path: Path | None
    first: float = 0.0
    until: float = 0.0


def _at(kept: _Kept) -> float:
    return kept.at


@dataclass(frozen=True, slots=True)
class _Kept:
    """A packet kept for the clips: video (``packet``) or sound (``data``, ``duration``,
    ``time_base``), at its ``place`` on the stream's timeline, ``number`` in the order kept;
    ``at``: where the clips' spans look for it (its place, or its arrival)."""

    settings: VideoSettings
    place: float
    at: float
    number: int
    packet: SourcePacket | None = None
    data: bytes = b""
    duration: int = 0
    time_base: Fraction = Fraction(1, 90000)


class OriginalClips(OriginalRecording):
    """A stream's clips cut from its camera's own packets (``clip_mode: original``): its
    capture thread hands them over as for a recording of the original, and its writer thread
    (``clip:<stream>``) keeps the last ``before`` seconds and more of them (whole groups from a
    key frame) and copies those of each clip the stream's inference thread marks out
    (:meth:`follow`) into it: from the last key frame ``before`` seconds before its first
    event to ``after`` seconds past its last, with the camera's sound. Nothing is decoded,
    annotated or encoded.

    The writer may be behind the capture (a slow disk), and the model always is: a clip whose
    end has been told ends once a packet past its span has come (all before it are in), or
    when the stream or the run ends; clips told meanwhile wait for it.

    ``by_arrival``: the packets are another stream's than the one the model watches (the
    camera's main stream, its ``record_source``), on a timeline of their own: the spans are
    then told, and the packets found, by when they arrived (``time.monotonic()``), the clock
    both streams share. A camera sends the two streams' pictures of a moment at about the
    same time, so a clip holds the main stream's pictures of the moments the model saw."""

    owner: ClipRecorder
    clips = True

    def __init__(self, owner: ClipRecorder, stream: str, *, live: bool, rotate: int | None = None,
                 by_arrival: bool = False) -> None:
        super().__init__(owner, stream, live=live, rotate=rotate)
        self.by_arrival = by_arrival
        self.pause = OutputPause(f"clips of stream {stream!r}", "frame(s)", stream=stream, board=owner.board)
        self._cuts: queue.SimpleQueue[_Cut] = queue.SimpleQueue()
        self._asked = _Cut(None)  # the inference thread's: the last cut it told
        # The writer thread's:
        self._kept: deque[list[_Kept]] = deque()  # groups of packets, each from a key frame
        self._number = 0  # the next packet kept's
        self._later: deque[_Cut] = deque()  # cuts told, not yet taken up
        self._making: _Cut | None = None  # the clip being made
        self._ending = False  # its end has been told
        self._copied = -1  # the number of the next kept packet it takes (-1: its first not chosen yet)
        self._done: Path | None = None  # the last clip made or given up: never opened again
        self._lost: _Cut | None = None  # the last clip given up: its later frames are lost
        self._at_shift = 0.0  # the last video packet's `at` less its place: where the sound's is

    # -- the inference thread's ----------------------------------------------------------

    def follow(self, cut: _Cut) -> None:
        """The clip the stream's last frame is in (``cut.path``), or none: the writer hears
        of each change."""
        if cut != self._asked and not (cut.path is None and self._asked.path is None):
            self._asked = cut
            self._cuts.put(cut)

    def stream_over(self) -> None:
        """The stream has ended or failed (after its last packet): its clip ends now, not at
        the end of the run."""
        if self._thread.is_alive():
            self._put(_STREAM_OVER, wait=True)

    def finish(self) -> None:
        super().finish()
        if self._thread.ident is None:  # not a packet came (a record source never reached): no clip is made
            told = None
            while True:
                try:
                    cut = self._cuts.get_nowait()
                except queue.Empty:
                    break
                if cut.path is not None and cut.path != told:
                    told = cut.path
                    self.owner.release(cut.path)
                    self.owner.not_made(self.stream, cut.path, NONE_CAME)

    # -- the writer thread's -------------------------------------------------------------

    def _next(self) -> object:
        while True:
            self._take_cuts()
            try:
                item = self._queue.get(timeout=SPAN_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is not _STREAM_OVER:
                return item
            self._take(None)  # its last packet, held back to see whether it was whole
            self._take_cuts()
            self._end_file()

    def _take_cuts(self) -> None:
        while True:
            try:
                self._later.append(self._cuts.get_nowait())
            except queue.Empty:
                break
        while self._later:
            cut, making = self._later[0], self._making
            if making is not None and cut.path != making.path:
                if not self._ending:
                    self._ending = True
                    self._copy()  # ends it if a packet past its span is in
                if self._making is not None:
                    return  # the next waits for it
                continue
            self._later.popleft()
            if self._lost is not None and cut.path == self._lost.path:
                self._lost = cut  # its frames are lost for longer
            elif cut.path is not None and cut.path != self._done:
                if making is None:
                    self._copied = -1
                self._making = cut
                self._copy()

    def _placed(self, settings: VideoSettings, packet: SourcePacket, place: float) -> None:
        at = packet.arrived if self.by_arrival else place
        self._at_shift = at - place
        if packet.key or not self._kept:
            self._kept.append([])
        self._kept[-1].append(_Kept(settings, place, at, self._number, packet=packet))
        self._number += 1
        if self._lost is not None and at <= self._lost.until + _SAME_MOMENT:
            self.pause.skip()
        for _ in range(_before_start(self._kept, at - self.owner.before - KEEP_MORE_SECONDS, _at)):
            self._kept.popleft()
        self._copy()

    def _sound_placed(self, data: bytes, place: float, duration: int, time_base: Fraction) -> None:
        settings = self._settings
        if not self._kept or settings is None:
            return
        self._kept[-1].append(_Kept(settings, place, place + self._at_shift, self._number, data=data,
                                    duration=duration, time_base=time_base))
        self._number += 1
        self._copy()

    def _copy(self) -> None:
        """The packets of the clip being made that have come, up to its end so far; a clip
        whose end was told ends at the first packet past it."""
        cut = self._making
        if cut is None or cut.path is None or not self._kept:
            return
        if self._copied < 0:  # its first: the last key frame at least `before` seconds before its first event
            if not self.pause.due():
                self._give_up(cut.path, PAUSED)
                return
            group = self._kept[_before_start(self._kept, cut.first, _at)]
            if group[-1].at < cut.first - KEY_SECONDS:  # packets from before a gap (a record source down)
                return  # its first comes with the next
            self._copied = group[0].number
        for group in self._kept:
            if group[-1].number < self._copied:
                continue
            for kept in group:
                if kept.number < self._copied:
                    continue
                if kept.at > cut.until + _SAME_MOMENT:
                    if self._ending:
                        self._close()
                    return  # else kept: its events may go on
                if kept.packet is not None:
                    started = None if self._file is not None else wall_time(kept.packet.arrived)
                    self._write(kept.settings, kept.packet, kept.place, started)
                elif self._file is not None:
                    self._write_sound(kept.data, kept.place, kept.duration, kept.time_base)
                if self._making is not cut:  # a write failed: the clip ends here
                    return
                self._copied = kept.number + 1

    def _open(self, template: Any, rate: Fraction, first: Packet, started: float, sound: Any = None) -> None:
        assert self._making is not None and self._making.path is not None
        path = self._making.path
        self.owner.prune(None)  # first: it may free the room the clip needs
        self._file = Mp4File(path, template, rate, [first], clockwise=self.turn, sound=sound, stream=self.stream)
        self.files = [*self.files, path]
        log.debug("stream %r: clip %s (of the original)", self.stream, path.name)

    def _end_file(self) -> None:
        """No more packets come on this connection (or at all): the clips told so far end with
        what they have."""
        while self._making is not None:
            self._copy()
            if self._making is not None:
                self._close()

    def _close(self) -> None:
        """The clip being made is done: its file closed; the clips told meanwhile go on."""
        cut, self._making, self._ending = self._making, None, False
        assert cut is not None and cut.path is not None
        self._done = cut.path
        file = self._file
        if file is None:
            self._give_up(cut.path, NONE_CAME)
        else:
            try:
                super()._end_file()
            except OSError as exc:
                self.failed_write(exc)
                self._ended(file, whole=False)
            else:
                self._ended(file, whole=True)
        self._take_cuts()

    def abandon(self) -> None:
        file = self._file
        super().abandon()
        if self._making is not None and self._making.path is not None:
            self._give_up(self._making.path, WRITE_FAILED)
        if file is not None and file.frames:
            self._ended(file, whole=False)

    def _give_up(self, path: Path, why: str) -> None:
        """A clip a full disk ends (or lets not start), or none of whose packets came: its later
        packets are lost."""
        self._done = path
        if self._making is not None and self._making.path == path:
            self._lost = self._making
            self._making, self._ending = None, False
        if path not in self.files:
            self.owner.release(path)
            self.owner.not_made(self.stream, path, why)

    def _connect(self, settings: VideoSettings) -> None:
        changed = self._settings is not None and settings.key != self._settings.key
        super()._connect(settings)
        if changed:  # its packets cannot go into the files of the new ones
            self._kept.clear()

    def _ended(self, clip: Mp4File, whole: bool) -> None:
        if self.owner.on_end is not None:
            self.owner.on_end(self.stream, clip.path.name, clip.seconds, whole)




_STREAM_OVER = object()
