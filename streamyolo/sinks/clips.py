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
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import file_stamp, format_seconds, wall_time
from streamyolo.errors import OutputsIncompleteError
from streamyolo.frames import Result
from streamyolo.sinks.base import delete_older
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

MAX_CLIP_SECONDS = 300.0
"""The longest a clip gets (seconds of video from its first event): a street busy all day
makes a clip every 5 minutes, not one of the whole day."""

PRUNE_SECONDS = 60.0
"""``clips_keep``: how often old clips are looked for (at most), as new ones start."""

CLIP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*-\d{8}-\d{6}(-\d+)?\.mp4")
"""What a clip's file is called: what ``clips_keep`` may delete, and nothing else in the folder."""

_SAME_MOMENT = 1e-6  # seconds: a frame this close to the end of a clip's span is still in it


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
        self._pruned_at = -math.inf
        self._prune_lock = threading.Lock()

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

    def write(self, result: Result) -> None:
        if self.host is self and self.wants(result.stream):  # else the recorder it shares with has them
            self.writer(result.stream).put((result, self.place(result)))

    def stream_changed(self, stream: str, state: str, error: str | None) -> None:
        """A stream that has ended or failed (after its last frame) finishes its clip now, not
        at the end of the run (and, unless recorded, lets go of its encoder)."""
        if state not in ("ended", "failed"):
            return
        span = self._spans.get(stream)
        if span is not None:
            span.path = None
        if stream in self.host._writers:  # it has had frames
            try:
                self.host.writer(stream).put(STREAM_OVER)
            except RecorderError:  # its clips had failed already (and said so)
                pass

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
        if result.crossings or result.visits:
            if span.path is None:
                try:
                    span.path = self.claim(meta.stream, wall_time(meta.t_capture))
                except RecorderError as exc:
                    self._unclaimed += 1
                    log.error("stream %r: no clip of the events at frame %d: %s", meta.stream, meta.seq, exc)
                    return None
                span.start = now
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
        if clip is None:
            return
        if clip in self._given_up:
            self.pause.skip()
            return
        if self._clip is None and not self.pause.due():
            return
        try:
            if self._clip is not None:
                self._clip.add(packets)
            else:
                self.owner.prune(None)  # first: it may free the room the clip needs
                self._clip = Mp4File(clip, h264.stream, h264.rate, [p for group in self._kept for _, p in group])
                self.files = [*self.files, clip]
                log.debug("stream %r: clip %s", self.stream, clip.name)
        except OSError as exc:  # a full disk: this clip ends here, the next one tries again
            self._given_up.add(clip)
            if self._clip is None:  # not a frame of it written
                self.owner.release(clip)
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
        self._kept.clear()

    def _keep(self, now: float, packets: list[Packet]) -> None:
        for packet in packets:
            if packet.is_keyframe or not self._kept:
                self._kept.append([])
            self._kept[-1].append((now, packet))
        horizon = now - self.owner.before + _SAME_MOMENT
        # The first group goes when the next starts early enough, or when it ended well before
        # (the stream was down, or dropped seconds of frames): a clip starts at most a key
        # frame's interval before its seconds, not at the frames before a gap.
        while len(self._kept) > 1 and (self._kept[1][0][0] <= horizon or self._kept[0][-1][0] < horizon - KEY_SECONDS):
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

    def _ended(self, clip: Mp4File, whole: bool) -> None:
        if self.owner.on_end is not None:
            self.owner.on_end(self.stream, clip.path.name, clip.seconds, whole)
