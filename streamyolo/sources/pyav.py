"""Files and network streams (RTSP, RTMP, HTTP MJPEG/HLS) decoded in-process with PyAV.

FFmpeg does the demuxing and decoding with the GIL released, so capture threads run in
parallel with inference. Network sources carry open and read time-outs, and
:meth:`PyAVSource.interrupt` aborts a blocking open or read at once (see
:mod:`streamyolo.sources.interrupt`), so a dead camera can neither hang its thread nor
hold up shutdown.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import av
import av.error

from streamyolo.clock import CLOCK_JUMP, Behind
from streamyolo.errors import SourceError, SourceNotFoundError, SourceOpenError, SourceReadError, SourceStalledError
from streamyolo.frames import Image
from streamyolo.sources import interrupt as interrupts
from streamyolo.sources.base import PacketTap, RawFrame, SourceInfo, SourceKind, same_frame, turn, turned
from streamyolo.sources.redact import redact_text, redact_url, url_secrets
from streamyolo.sources.spec import file_path

log = logging.getLogger(__name__)

_REORDER_DEPTH = 32
"""Packets whose read time is kept until their frame is decoded: more than any decoder
holds frames back to reorder them."""

# 4xx answers do not get better by asking again: a wrong path, user or password is permanent.
_PERMANENT_OPEN_ERRORS: tuple[type[BaseException], ...] = (
    av.error.HTTPClientError, av.error.FileNotFoundError, av.error.PermissionError,
)


BEHIND = 2.0
"""Seconds a live stream's packets may come to be read later than its camera sent them (over
how late they were at best) before it is said to have fallen behind and skips ahead
(:class:`CatchUp`)."""
CAUGHT_UP = 0.5
"""Seconds late (over the best) at which a stream that fell behind decodes again, from a key frame."""
WINDOW = 300.0
"""Seconds over which a live stream's least lateness is on time (see :class:`CatchUp`)."""
CLOCK_BACK = 1.0
"""Seconds a video packet's timestamp may be earlier than the latest before (frames sent out of
order) before the camera's clock is taken to have started again (:class:`CatchUp`); one that
runs ahead of the packets' reading by :data:`~streamyolo.clock.CLOCK_JUMP` has leapt."""


class CatchUp:
    """Keeps a live stream near the present when its frames cannot all be decoded in time.

    A camera sends its frames whether they are decoded or not: when the capture thread decodes
    slower than they come (many 1080p streams on a small box), the rest waits in the network's
    buffers, and every frame read is older than the one before, seconds behind the camera
    after a minute (while its frame age, counted from when it is read, says it is fresh). So
    each video packet's lateness is taken (when it was read, less its timestamp: the camera's
    clock and ours differ by a constant, and the network's delay); its least over the last
    :data:`WINDOW` to twice that (so the two clocks may drift apart over days) is on time. A
    stream :data:`BEHIND` seconds later than that reads its packets without decoding them
    (fast: the backlog is drained), its frames skipped (counted: :attr:`skipped`), up to a key
    frame at most :data:`CAUGHT_UP` late, and decodes from there.

    >>> catch_up = CatchUp("gate")
    >>> def read(t, at):  # frame t of a 10 fps camera (a key frame every 10th) read at ``at``
    ...     return catch_up.skip(t / 10, at, key=t % 10 == 0)
    >>> [read(t, 100 + t / 5) for t in range(21)].count(True)  # decoded at 5 a second: later and later
    0
    >>> [read(t, 104.2 + (t - 21) / 1000) for t in range(21, 40)].count(True), catch_up.skipped  # 2.1 s behind
    (19, 19)
    >>> read(40, 104.22), catch_up.skipping  # a key frame 0.2 s late: decoded from there
    (False, False)
    >>> drift = CatchUp("yard")  # a camera whose clock runs 0.1% slow, over a day
    >>> [drift.skip(t / 10, 100 + t / 10 * 1.001, t % 10 == 0) for t in range(864_000)].count(True)
    0

    A camera whose clock starts again as it streams (its encoder restarted: timestamps from 0
    again), or leaps ahead, is as late as it was before: its lateness goes on from the packet
    before (not taken for seconds behind, nor for catching up).

    >>> again = CatchUp("shed")
    >>> [again.skip(t / 10, 100 + t / 10, t % 10 == 0) for t in range(500)].count(True)
    0
    >>> [again.skip((t - 500) / 10, 100 + t / 10, t % 10 == 0) for t in range(500, 1000)].count(True)
    0
    >>> barn = CatchUp("barn", skips=False)  # 3 s behind when its clock starts again: 3 s behind after
    >>> _ = [barn.skip(t / 10, 100 + t / 10 + (3.0 if t > 100 else 0.0), t % 10 == 0) for t in range(200)]
    >>> round(barn.behind.seconds, 2), barn.skip(0.0, 123.1, True), round(barn.behind.seconds, 2)
    (3.0, False, 3.0)
    >>> barn.skip(3600.1, 123.2, False), round(barn.behind.seconds, 2)  # (an hour ahead: a leap)
    (False, 3.0)

    A stream whose every frame is asked for (``skips`` false: ``overflow: lossless``) skips
    none: that it falls behind is told (:class:`~streamyolo.clock.Behind`).

    >>> waits = CatchUp("door", skips=False)
    >>> [waits.skip(t / 10, 100 + t / 5, key=t % 10 == 0) for t in range(100)].count(True), waits.behind.told
    (0, 3)
    """

    def __init__(self, name: str, skips: bool = True) -> None:
        self.name = name
        self.skips = skips
        self.behind = Behind(name, "its camera", lossless=True, tells=not skips)
        """How far behind its camera the stream is; told when one that ``skips`` none falls behind."""
        self.skipped = 0
        """Frames read but not decoded so far, to catch up."""
        self.skipping = False
        self._best = (math.inf, math.inf)  # the least lateness of the window before, and of this one
        self._window_ends: float | None = None
        self._last_pts: float | None = None
        self._shift = 0.0  # added to the camera's timestamps: its clock's restarts and leaps taken out
        self._newest: float | None = None  # the latest of them so far (shifted)
        self._last = (0.0, 0.0)  # the packet before's reading and lateness
        self._told = False
        self._restarts = 0

    def skip(self, pts: float, read: float, key: bool) -> bool:
        """Whether the video packet with timestamp ``pts`` (seconds) read at ``read``
        (monotonic seconds) is to be skipped."""
        at = pts + self._shift
        if self._newest is not None and not -CLOCK_BACK <= at - self._newest <= read - self._last[0] + CLOCK_JUMP:
            self._restarts += 1  # (its clock started again, or leapt: as late as the packet before)
            log.log(logging.INFO if self._restarts == 1 else logging.DEBUG,
                    "stream %r: its camera's clock %s %.1f s; its lateness goes on from the frame before", self.name,
                    "went back" if at < self._newest else "leapt", abs(at - self._newest))
            self._shift += read - self._last[1] - at
            at = self._newest = pts + self._shift
        late = read - at
        self._newest = at if self._newest is None else max(self._newest, at)
        self._last = (read, late)
        if self._window_ends is None or read >= self._window_ends:
            self._best, self._window_ends = (self._best[1], math.inf), read + WINDOW
        self._best = (self._best[0], min(self._best[1], late))
        behind = late - min(self._best)
        self.behind.at(behind)
        if not self.skips:
            return False
        if not self.skipping:
            if behind <= BEHIND:
                return False
            self.skipping = True
            log.log(logging.DEBUG if self._told else logging.WARNING,
                    "stream %r is %.1f s behind its camera (its frames cannot all be decoded as they come): its "
                    "frames are skipped up to a key frame near the present", self.name, behind)
            self._told = True
        if key and behind <= CAUGHT_UP:
            self.skipping = False
            return False
        if pts != self._last_pts:  # (a frame's slices in packets of their own: one frame)
            self.skipped += 1
        self._last_pts = pts
        return True


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """Time-outs and transport for network sources, in seconds.

    ``open_timeout`` bounds connecting; ``read_timeout`` bounds one read that gets no data;
    ``stall_timeout`` bounds the time without a decoded frame even while data arrives.
    """

    open_timeout: float = 10.0
    read_timeout: float = 5.0
    stall_timeout: float = 10.0
    transport: str = "tcp"


class PyAVSource:
    """Reads one video stream with PyAV. Used by one capture thread; only
    :meth:`interrupt` may be called from elsewhere."""

    def __init__(
        self,
        name: str,
        uri: str,
        kind: SourceKind,
        network: NetworkOptions | None = None,
        decoder_threads: int = 2,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        defer_conversion: bool = False,
        autorotate: bool = False,
        packets: PacketTap | None = None,
        catch_up: bool = False,
    ) -> None:
        self.name = name
        self.uri = uri
        self.kind = kind
        self.network = network or NetworkOptions()
        self.decoder_threads = decoder_threads
        self.loop = loop and kind is SourceKind.FILE
        self.defer_conversion = defer_conversion
        """Hand frames over in the decoder's own format with ``RawFrame.convert`` (the capture
        thread converts them, or leaves that to their first use when a live buffer drops most)."""
        self.autorotate = autorotate
        """Turn a file's pictures as its display matrix says (a phone's portrait video), as
        players and OpenCV do."""
        self.packets = packets
        """Gets every video packet as read, before decoding (a recording of the original video)."""
        self._turn = 0  # clockwise degrees every picture is turned
        self._clock = clock
        self._container: Any = None
        self._stream: Any = None
        self._frames: Iterator[Any] | None = None
        self._demuxed: Iterator[Any] | None = None  # read_packet's
        self._sound: Any = None  # the audio stream read with the video for the tap, if any
        self._interrupted = threading.Event()
        self._reader: int | None = None  # ident of the thread that opens and reads
        self._secrets = url_secrets(uri)
        self._decoded = 0  # frames decoded in the current pass over the file
        self._pts_offset = 0.0  # added to pts after a loop, so time keeps running forward
        self._last_pts: float | None = None
        self._last_frame_at = 0.0
        self.catch_up = catch_up and kind is not SourceKind.FILE
        """Whether the stream skips ahead when it falls behind its camera (:class:`CatchUp`): a
        live stream's (not one whose every frame is asked for: it waits, and says it is behind)."""
        self._catch_up: CatchUp | None = None  # this connection's
        self._skipped_before = 0  # frames skipped to catch up on the connections before
        interrupts.install()

    @property
    def skipped(self) -> int:
        """Frames of a live stream read but not decoded to catch up with its camera, in all
        (:class:`CatchUp`); the capture counts them as captured and dropped."""
        return self._skipped_before + (self._catch_up.skipped if self._catch_up is not None else 0)

    @property
    def behind(self) -> Behind | None:
        """How far behind its camera this connection's stream is (:class:`CatchUp`); ``None`` for a
        file, HLS or DASH (read as fast as it comes), or before it is open."""
        return None if self._catch_up is None else self._catch_up.behind

    # -- FrameSource ---------------------------------------------------------------------

    def open(self) -> SourceInfo:
        self._reader = threading.get_ident()
        interrupts.clear(self._reader)
        if self._interrupted.is_set():
            raise self._error(SourceOpenError, "cannot open: interrupted")
        target = str(file_path(self.uri)) if self.kind is SourceKind.FILE else self.uri
        if self.kind is SourceKind.FILE and not file_path(self.uri).exists():
            raise self._error(SourceNotFoundError, f"file not found: {self.uri!r}", permanent=True)
        started = self._clock()
        try:
            container = av.open(target, mode="r", options=self._options(), timeout=self._timeouts())
        except (av.error.FFmpegError, OSError) as exc:
            if self._interrupted.is_set():
                raise self._error(SourceOpenError, "cannot open: interrupted") from exc
            permanent = self.kind is SourceKind.FILE or isinstance(exc, _PERMANENT_OPEN_ERRORS)
            kind = SourceNotFoundError if isinstance(exc, av.error.FileNotFoundError) else SourceOpenError
            timeout = self.network.open_timeout
            timed_out = self.kind is not SourceKind.FILE and self._clock() - started >= 0.95 * timeout
            reason = f"no answer within {timeout:g} s (open time-out)" if timed_out else self._reason(exc)
            raise self._error(kind, f"cannot open: {reason}", permanent=permanent) from exc
        if not container.streams.video:
            container.close()
            raise self._error(SourceOpenError, "has no video stream", permanent=True)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if self.kind is SourceKind.FILE else "SLICE"
        stream.thread_count = self.decoder_threads
        self._container, self._stream = container, stream
        self._frames = self._decode()
        self._decoded = 0
        self._last_frame_at = self._clock()
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else None
        if fps is not None and not 0 < fps <= 1000:
            fps = None
        ctx = stream.codec_context
        self._turn = display_turn(target) if self.autorotate and self.kind is SourceKind.FILE else 0
        # With a tap, the sound goes with the video (to be recorded with it); it is never decoded.
        self._sound = container.streams.audio[0] if self.packets is not None and container.streams.audio else None
        # A stream sent as it happens (not HLS or DASH: read a segment of seconds at a time) is
        # kept near the present when it cannot all be decoded in time.
        self._skipped_before = self.skipped
        self._catch_up = (CatchUp(self.name, skips=self.catch_up) if self.kind is not SourceKind.FILE
                          and not {"hls", "dash"} & set(str(container.format.name).split(",")) else None)
        if self.packets is not None:
            self.packets.opened(stream, self._sound)
        return turned(SourceInfo(width=ctx.width, height=ctx.height, fps=fps, codec=ctx.name), self._turn)

    def read(self) -> RawFrame | None:
        if self._frames is None:
            raise self._error(SourceReadError, "read before open")
        try:
            frame, arrived = next(self._frames, (None, None))
        except SourceError:
            raise
        except (av.error.FFmpegError, OSError) as exc:
            if self._interrupted.is_set():
                return None
            raise self._read_error(exc) from exc
        if frame is None:
            return self._end_of_stream()
        self._decoded += 1
        self._last_frame_at = self._clock()
        pts = None if frame.time is None else float(frame.time) + self._pts_offset
        self._last_pts = pts
        if self.defer_conversion:
            return RawFrame(image=None, pts=pts, convert=functools.partial(_bgr, frame, self._turn), arrived=arrived)
        return RawFrame(image=_bgr(frame, self._turn), pts=pts, arrived=arrived)

    def read_packet(self) -> bool:
        """Read the next video packet and hand it to ``packets`` without decoding it (a stream
        that is recorded, not watched); False once stopped (:meth:`interrupt`) or at a file's
        end. Raises as :meth:`read` does."""
        if self._container is None or self.packets is None:
            raise self._error(SourceReadError, "read before open")
        if self._demuxed is None:
            self._demuxed = self._container.demux(*self._demuxing())
        try:
            packet = next(self._demuxed, None)
        except (av.error.FFmpegError, OSError) as exc:
            if self._interrupted.is_set():
                return False
            raise self._read_error(exc) from exc
        if not self._untorn():
            return False
        if packet is None or packet.size == 0:  # the end (a flush packet), or the next call's
            if packet is not None:
                return True
            if self.kind is not SourceKind.FILE:
                raise self._error(SourceReadError, f"stream ended after {self._decoded} packets")
            return False
        if packet.stream_index == self._stream.index:
            self._decoded += 1
        self._last_frame_at = self._clock()
        self.packets.packet(packet, self._last_frame_at if self.kind is not SourceKind.FILE else None)
        return True

    def close(self) -> None:
        self._demuxed = self._sound = None
        frames, self._frames = self._frames, None
        container, self._container = self._container, None
        self._stream = None
        if frames is not None and hasattr(frames, "close"):
            frames.close()
        if container is not None:
            container.close()
        if self._reader is not None and self._reader == threading.get_ident():
            interrupts.clear(self._reader)

    def interrupt(self) -> None:
        self._interrupted.set()
        if self._reader is not None:
            interrupts.interrupt(self._reader)

    # -- decoding ------------------------------------------------------------------------

    def _decode(self) -> Iterator[tuple[Any, float | None]]:
        """Frames of the video stream, packet by packet, so a stream that sends data but
        no pictures is caught by the stall time-out too; each with the time its packet was
        read for a network stream (a decoder that reorders frames hands a frame out with a
        later packet), ``None`` for a file.

        A camera may send a frame's slices in packets of their own, each with the frame's time
        (GStreamer's payloader repeating the parameter sets before every slice): decoded apart,
        each is part of a picture. Whether a connection does is seen in its first two packets
        (the first held back until the second comes); one that does has each packet held until
        the next shows whether it goes on, and joined with it, which costs a frame's wait."""
        container, stream = self._container, self._stream
        stall = self.network.stall_timeout
        network = self.kind is not SourceKind.FILE
        arrivals: dict[int, float] = {}  # pts -> when its packet was read, for frames held back
        tap = self.packets
        joins: bool | None = None  # whether this connection's frames come in several packets
        held: tuple[Any, float | None] | None = None  # a packet whose frame may go on in the next
        last: tuple[int | None, bool] = (None, False)  # the packet before's time and key
        catch_up = self._catch_up
        for packet in container.demux(*self._demuxing()):
            arrived = self._clock() if network else None
            if tap is not None and self._untorn():
                tap.packet(packet, arrived)
            # Not the sound, which is for the tap alone. (PyAV's empty packets at the end say which
            # stream they end by ``stream``; their ``stream_index`` is 0 whatever the stream.)
            if packet.stream.index == stream.index:
                if (catch_up is not None and arrived is not None and packet.size > 0 and packet.pts is not None
                        and catch_up.skip(float(packet.pts * packet.time_base), arrived, bool(packet.is_keyframe))):
                    if held is not None and held[0].pts != packet.pts:  # (a frame before: decoded, not lost)
                        yield from self._frames_of(*held, arrivals)
                    last, held = (packet.pts, bool(packet.is_keyframe)), None
                    self._last_frame_at = self._clock()  # (frames come: not a stall)
                    continue
                splits = packet.size > 0 and same_frame(*last, packet.pts, packet.is_keyframe)
                last = (packet.pts, bool(packet.is_keyframe))
                if splits and not joins:  # seen in the first two packets, or later (from then on)
                    joins = True
                    log.info("stream %r sends a frame's slices in packets of their own: they are joined before "
                             "decoding (each frame waits for the next packet)", self.name)
                if packet.size == 0:  # the end: what is held, then what the decoder holds
                    if held is not None:
                        yield from self._frames_of(*held, arrivals)
                        held = None
                    yield from self._frames_of(packet, arrived, arrivals)
                elif splits and held is not None:
                    held = (_joined(held[0], packet), held[1])
                else:
                    if held is not None:
                        yield from self._frames_of(*held, arrivals)
                        joins = bool(joins)  # the first two packets have shown it
                    held = (packet, arrived) if joins is None or joins else None
                    if held is None:
                        yield from self._frames_of(packet, arrived, arrivals)
            if network and self._clock() - self._last_frame_at > stall:
                raise self._error(SourceStalledError, f"no frame for {stall:g} s (stall time-out)")

    def _frames_of(self, packet: Any, arrived: float | None, arrivals: dict[int, float]) -> Iterator[
            tuple[Any, float | None]]:
        """``packet``'s frames, decoded, each with its packet's arrival (see :meth:`_decode`)."""
        if arrived is not None and packet.pts is not None:
            arrivals[packet.pts] = arrived
            if len(arrivals) > _REORDER_DEPTH:
                del arrivals[next(iter(arrivals))]  # the oldest: its frame never came
        for frame in self._stream.codec_context.decode(packet):
            yield frame, (arrivals.pop(frame.pts, arrived) if arrived is not None else None)

    def _untorn(self) -> bool:
        """Whether the packet just read may be recorded: not once the source is interrupted.
        FFmpeg's RTSP reader, interrupted while it gathers a frame's RTP packets, hands over
        what it has: a camera's parameter sets without the picture after them, say, which
        would end a recording with a packet no decoder takes (seen 3 times in 11 runs of
        ``tests/test_original.py``)."""
        return not self._interrupted.is_set()

    def _demuxing(self) -> tuple[Any, ...]:
        """The streams read: the video, and with a tap its sound too."""
        return (self._stream,) if self._sound is None else (self._stream, self._sound)

    def _end_of_stream(self) -> RawFrame | None:
        if self.kind is not SourceKind.FILE:
            raise self._error(SourceReadError, f"stream ended after {self._decoded} frames")
        expected = int(self._stream.frames or 0) if self._stream is not None else 0
        if expected and self._decoded < expected - 1:
            # The container promised more frames than could be decoded: a damaged file.
            raise self._error(SourceReadError, f"file ends early: {self._decoded} of {expected} frames decodable "
                                               "(truncated or corrupt)", permanent=True)
        if self.loop and self._decoded:
            self._rewind()
            return self.read()
        return None

    def _rewind(self) -> None:
        assert self._container is not None
        step = 1.0 / float(self._stream.average_rate) if self._stream is not None and self._stream.average_rate else 0
        self._pts_offset = (self._last_pts or 0.0) + step
        self._container.seek(0)
        self._frames = self._decode()
        self._decoded = 0

    # -- helpers -------------------------------------------------------------------------

    @property
    def display_uri(self) -> str:
        return redact_url(self.uri)

    def _options(self) -> dict[str, str]:
        if self.kind is SourceKind.RTSP and self.uri.lower().startswith("rtsp"):
            # No "fflags nobuffer": it throws away the packets read while probing, and with them
            # the key frame that decoding must start from.
            return {"rtsp_transport": self.network.transport, "flags": "low_delay", "analyzeduration": "1000000"}
        if self.kind is SourceKind.HTTP:
            return {"reconnect": "0"}
        return {}

    def _timeouts(self) -> Any:
        if self.kind is SourceKind.FILE:
            return None
        return (self.network.open_timeout, self.network.read_timeout)

    def _error(self, kind: type[SourceError], what: str, permanent: bool = False) -> SourceError:
        error = kind(f"stream {self.name!r} ({self.display_uri}): {what}", stream=self.name, url=self.display_uri)
        error.permanent = permanent
        return error

    def _read_error(self, exc: BaseException) -> SourceError:
        if isinstance(exc, av.error.ExitError):
            return self._error(SourceStalledError, f"no data for {self.network.read_timeout:g} s (read time-out)")
        return self._error(SourceReadError, f"read failed after {self._decoded} frames: {self._reason(exc)}",
                           permanent=self.kind is SourceKind.FILE)

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, av.error.ExitError):
            return "timed out"
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return redact_text(str(text).splitlines()[0], self._secrets)


def _joined(first: Any, then: Any) -> Any:
    """One packet of two that hold parts of one frame."""
    joined = av.Packet(bytes(first) + bytes(then))
    joined.pts, joined.dts, joined.time_base = then.pts, then.dts, then.time_base
    joined.is_keyframe = first.is_keyframe
    return joined


def _bgr(frame: av.VideoFrame, clockwise: int = 0) -> Image:
    return turn(cast(Image, frame.to_ndarray(format="bgr24")), clockwise)


def display_turn(path: str) -> int:
    """How many degrees clockwise a video file's pictures are turned to be shown (0, 90, 180
    or 270): its display matrix, as its first frame carries it (PyAV gives it counter-clockwise);
    0 without one, or when the file cannot be read (reading it then says why)."""
    try:
        with av.open(path, mode="r") as container:
            for frame in container.decode(video=0):
                return round(-float(getattr(frame, "rotation", 0) or 0) / 90) % 4 * 90
    except (av.error.FFmpegError, OSError, IndexError):
        log.debug("no display matrix read from %s", path, exc_info=True)
    return 0
