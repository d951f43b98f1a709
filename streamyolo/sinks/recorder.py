"""Annotated H.264 MP4 per stream, playable in browsers and robust to a killed process.

Each stream gets its own encoder thread (``record:<stream>``) behind a small bounded queue,
so annotation and encoding stay off the inference threads; when the encoder falls behind,
the queue applies back-pressure instead of dropping frames. The MP4 is *fragmented*
(``frag_keyframe+empty_moov``) with a key frame every second and packets flushed as
written: if the process dies, everything up to the last complete fragment still plays.

An earlier run's file is never written over (unless ``overwrite``): a camera job that
restarts after a crash records to ``<stream>-2.mp4`` and keeps the crash's recording. With
``segment`` seconds, each stream's video is cut into files of that many seconds of video,
named after the wall-clock time of their first frame, so a recording that runs for days
is a series of files that can be played, copied and deleted while the run goes on; with
``keep`` seconds, a stream's segments finished longer ago are deleted as new ones start.

A write the system refuses (a full disk, a share gone) pauses the stream's recording instead
of ending it: the file is closed as far as it got, and every ``RETRY_SECONDS`` a new one is
tried (:class:`~streamyolo.sinks.base.OutputPause`); a frame of another size than the file's
(a camera reconfigured) starts a new file too.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeAlias, cast

import av
import cv2

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import RateMeter, file_stamp, format_seconds, wall_time
from streamyolo.errors import OutputError
from streamyolo.frames import Image, Result
from streamyolo.sinks.base import OutputPause, check_writable_folder, delete_older

log = logging.getLogger(__name__)

MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
_FINISH = object()

Packet: TypeAlias = "av.Packet[Any]"
"""An encoded frame."""

KEY_SECONDS = 1.0
"""A key frame (where a fragment of the MP4 ends, and where playing can start) every this many
seconds of video, whatever the frame rate: a live stream that drops frames gets its key frames
as often as one that drops none."""


def encoder_available(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        return False
    return True


def encoder_works(codec: str) -> bool:
    """True if ``codec`` really opens here: NVENC is compiled into PyAV's FFmpeg but needs
    an NVIDIA GPU and driver at run time."""
    if not encoder_available(codec):
        return False
    try:
        context: Any = av.CodecContext.create(codec, "w")
        context.width, context.height = 256, 256
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, 30)
        context.open()
    except Exception:
        return False
    return True


def choose_codec(requested: str, gpu: bool) -> str:
    """``auto``: NVENC when the pipeline runs on a GPU and NVENC opens, else libx264."""
    if requested != "auto":
        return requested
    if gpu and encoder_works("h264_nvenc"):
        return "h264_nvenc"
    return "libx264"


class OpenFile(Protocol):
    """A video file being written."""

    path: Path
    frames: int
    """Frames written into it so far."""

    def close(self) -> None: ...


class RecorderError(OutputError):
    """A stream's recording failed (encoder error, disk full)."""


class VideoRecorder:
    """Writes ``<folder>/<stream>.mp4`` for every stream it sees."""

    what = "recording folder"
    files_kind = "recordings"

    def __init__(
        self,
        folder: Path,
        annotator: BoxAnnotator | None = None,
        *,
        codec: str = "libx264",
        preset: str = "ultrafast",
        crf: int = 23,
        queue_size: int = 8,
        default_fps: float = 30.0,
        segment: float | None = None,
        keep: float | None = None,
        overwrite: bool = False,
    ) -> None:
        if segment is not None and segment <= 0:
            raise ValueError(f"segment must be a positive number of seconds, not {segment}")
        if keep is not None and segment is None:
            raise ValueError("keep needs segment: only segment files are deleted")
        self.folder = Path(folder)
        self.annotator = annotator or BoxAnnotator()
        self.codec = codec
        self.preset = preset
        self.crf = crf
        self.queue_size = queue_size
        self.default_fps = default_fps
        self.segment = segment
        self.keep = keep
        self.overwrite = overwrite
        self._writers: dict[str, StreamWriter] = {}
        self._lock = threading.Lock()
        self._claimed: set[Path] = set()
        self._claim_lock = threading.Lock()
        self.on_error: Callable[[str, str], None] | None = None

    def open(self) -> None:
        check_writable_folder(self.folder, self.what)
        if not encoder_available(self.codec):
            raise OutputError(f"video encoder {self.codec!r} is not available in this FFmpeg build")

    def claim(self, stream: str, started: float) -> Path:
        """A new file for ``stream``'s recording (a segment of it starting at wall-clock time
        ``started``): ``<stream>.mp4``, or with segments ``<stream>-YYYYmmdd-HHMMSS.mp4``; when
        that name is taken (an earlier run's file, or another stream's), the first free of
        ``-2``, ``-3`` … added. The file is created here, exclusively, so two writers (threads
        or processes) never share one; with ``overwrite`` an existing file is replaced."""
        base = self.base_name(stream, started)
        with self._claim_lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)  # again: a clean-up may have removed it
            except OSError as exc:
                raise RecorderError(f"{self.what} {str(self.folder)!r} cannot be created: "
                                    f"{exc.strerror or exc}") from exc
            for number in itertools.count(1):
                path = self.folder / (f"{base}.mp4" if number == 1 else f"{base}-{number}.mp4")
                if path in self._claimed:
                    continue
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | (0 if self.overwrite else os.O_EXCL), 0o644))
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise RecorderError(f"cannot create {str(path)!r}: {exc.strerror or exc}") from exc
                self._claimed.add(path)
                return path
        raise AssertionError("unreachable")

    def base_name(self, stream: str, started: float) -> str:
        """The name (without ``.mp4``) of ``stream``'s file that starts at wall-clock time ``started``."""
        return stream if self.segment is None else f"{stream}-{file_stamp(started)}"

    def release(self, path: Path) -> None:
        """Give up a file :meth:`claim` ed that holds no frame: deleted, and its name free again."""
        with self._claim_lock:
            self._claimed.discard(path)
            try:
                path.unlink()
            except OSError:
                pass

    def report_errors_to(self, callback: Callable[[str, str], None]) -> None:
        """A stream's recording that pauses (a full disk) is reported there: ``callback(stream, message)``."""
        self.on_error = callback

    def prune(self, stream: str | None) -> list[Path]:
        """Delete ``stream``'s segment files (this run's and earlier runs') that were finished
        more than ``keep`` seconds ago, by their modification time (the file being written is
        never that old). Returns what was deleted."""
        if self.keep is None or stream is None:
            return []
        deleted = delete_older(self.folder, self.keep, lambda name: recording_of(name, stream, segments_only=True))
        if deleted:
            log.info("stream %r: deleted %d recording(s) finished more than %s ago (record_keep)",
                     stream, len(deleted), format_seconds(self.keep))
        return deleted

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every stream's recording files so far, oldest first."""
        with self._lock:
            return {name: list(writer.files) for name, writer in self._writers.items()}

    def write(self, result: Result) -> None:
        self.writer(result.stream).put(result)

    def writer(self, stream: str) -> StreamWriter:
        """``stream``'s writer (and its thread), started on its first frame."""
        writer = self._writers.get(stream)
        if writer is None:
            with self._lock:
                writer = self._writers.get(stream)
                if writer is None:
                    writer = self.new_writer(stream)
                    writer.start()
                    self._writers[stream] = writer
        return writer

    def new_writer(self, stream: str) -> StreamWriter:
        return StreamWriter(self, stream)

    def close(self) -> None:
        with self._lock:
            writers = list(self._writers.values())
        for writer in writers:
            writer.finish()
        errors = []
        for writer in writers:
            if not writer.join(timeout=60):
                log.error("recorder for %r did not finish within 60 s", writer.stream)
            if writer.error is not None:
                errors.append(writer.error)
        if errors:
            raise RecorderError(str(errors[0])) from errors[0]
        for writer in writers:
            writer.pause.check()  # frames lost to a full disk: the recording is incomplete


class StreamWriter:
    """A stream's recording, written in a thread of its own from a small queue."""

    thread_prefix = "record"

    def __init__(self, owner: VideoRecorder, stream: str, what: str | None = None) -> None:
        self.owner = owner
        self.stream = stream
        self.files: list[Path] = []
        self.error: BaseException | None = None
        self.pause = OutputPause(what or f"recording of stream {stream!r}", "frame(s)")
        self._queue: queue.Queue[object] = queue.Queue(owner.queue_size)
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{self.thread_prefix}:{stream}")
        self._meter = RateMeter()
        self._encoder: _Encoder | None = None
        self._started = 0.0  # the wall-clock time the open file starts at
        self._follows: float | None = None  # where the file after a finished segment starts at the earliest

    def start(self) -> None:
        self._thread.start()

    def put(self, item: object) -> None:
        while True:
            if self._failed.is_set():
                raise RecorderError(f"{self.pause.what} failed: {self.error}")
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        try:
            self.put(_FINISH)
        except RecorderError:
            pass

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _FINISH:
                    break
                self.take(item)
        except BaseException as exc:  # anything else (the encoder refused): this stream's recording ends
            self.error = exc
            self._failed.set()
            log.error("%s failed: %s", self.pause.what, exc)
            _drain(self._queue)
        finally:
            try:
                self.close_files()
            except Exception as exc:
                self.error = self.error or exc
                self._failed.set()

    def take(self, item: object) -> None:
        """Write one item of the queue (a :class:`Result`)."""
        assert isinstance(item, Result)
        if not self.pause.due():
            return
        try:
            self._write(item)
        except OSError as exc:  # a full disk, a share gone: pause, and try again later
            self.abandon()
            self.failed_write(exc)
            return
        self.pause.succeeded()

    def failed_write(self, exc: OSError) -> None:
        """A write the system refused: pause (and say so, once)."""
        message = self.pause.failed(exc)
        if message is not None and self.owner.on_error is not None:
            self.owner.on_error(self.stream, message)

    def annotate(self, item: Result) -> Image:
        """``item``'s frame as recorded: its boxes, lines, zones and the stream's numbers drawn on it."""
        self._meter.tick()
        return self.owner.annotator.annotate(
            item.frame.image, item.detections, stream=self.stream, fps=self._meter.rate(), age=item.age,
            lines=item.lines, zones=item.zones,
        )

    def close_files(self) -> None:
        """At the end: finish the open file."""
        if self._encoder is not None:
            self._encoder.close()

    def _write(self, item: Result) -> None:
        resized = self._encoder is not None and not self._encoder.fits(item)  # the camera's size changed
        if self._encoder is not None and (resized or self._encoder.full(item)):
            finished, self._encoder = self._encoder, None
            self._follows = self._started + finished.seconds_to(item)
            finished.close()
            if resized:
                height, width = item.frame.image.shape[:2]
                log.info("stream %r: frames now %dx%d, recorded to a new file", self.stream, width, height)
        if self._encoder is None:
            self._encoder = self._open(item)
        self._encoder.encode(self.annotate(item), item)

    def _open(self, item: Result) -> _Encoder:
        """The next file, starting with ``item``. A segment is named after its first frame's
        arrival, or, when the stream runs faster than real time (a file), after where it starts
        in the video: names stay in order, at least a segment apart."""
        arrived = wall_time(item.frame.meta.t_capture)
        self._started = arrived if self._follows is None else max(arrived, self._follows)
        deleted = self.owner.prune(self.stream)  # first: it may free the room the new file needs
        path = self.owner.claim(self.stream, self._started)
        try:
            encoder = _Encoder(self.owner, path, item)
        except BaseException:
            self.owner.release(path)
            raise
        self.files = [*(f for f in self.files if f not in deleted), path]  # swapped whole: read elsewhere
        log.log(logging.DEBUG if len(self.files) > 1 else logging.INFO, "recording stream %r to %s", self.stream, path)
        return encoder

    def abandon(self) -> None:
        """After a failed write: give up the open file."""
        encoder, self._encoder = self._encoder, None
        self._follows = None
        self.close_after_failure(encoder)

    def close_after_failure(self, file: OpenFile | None) -> None:
        """Close ``file`` as far as it goes (a fragmented MP4 plays up to its last whole
        fragment), or delete it if no frame reached it."""
        if file is None:
            return
        try:
            file.close()
        except Exception as exc:
            log.debug("%s: closing %s after a failed write: %s", self.pause.what, file.path, exc)
        if file.frames == 0:
            self.owner.release(file.path)
            self.files = [f for f in self.files if f != file.path]


def _drain(items: queue.Queue[object]) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return


def recording_of(file: str, stream: str, segments_only: bool = False) -> bool:
    """Whether ``file`` is one of the names :meth:`VideoRecorder.claim` gives ``stream``'s
    recordings: ``<stream>.mp4``, ``<stream>-2.mp4`` …, or a segment
    ``<stream>-YYYYmmdd-HHMMSS[-2].mp4`` (only these with ``segments_only``).

    >>> recording_of("cam-20261205-021125.mp4", "cam"), recording_of("cam-3.mp4", "cam")
    (True, True)
    >>> recording_of("camera.mp4", "cam"), recording_of("cam-2-2.mp4", "cam"), recording_of("cam.mp4", "cam", True)
    (False, False, False)
    """
    segment = r"-\d{8}-\d{6}" if segments_only else r"(-\d{8}-\d{6})?"
    return re.fullmatch(re.escape(stream) + segment + r"(-\d+)?\.mp4", file) is not None


class H264:
    """An H.264 encoder for one stream's frames, as a stream of ``container``: timestamps from
    the source's timeline (dropped frames leave their gap) and a key frame every
    ``KEY_SECONDS`` of it. :meth:`encode` returns the packets, for the container's owner to write."""

    def __init__(self, owner: VideoRecorder, container: Any, first: Result) -> None:
        height, width = first.frame.image.shape[:2]
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        fps = first.frame.meta.fps or owner.default_fps
        self.rate = Fraction(fps).limit_denominator(1001)
        stream = cast(av.VideoStream, container.add_stream(owner.codec, rate=self.rate))
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        # Key frames are asked for by time (see encode); this only bounds a timeline that stalls.
        stream.codec_context.gop_size = max(1, 2 * round(float(self.rate) * KEY_SECONDS))
        if owner.codec == "libx264":
            # zerolatency: no look-ahead or B-frame queue, so each frame is written (and safe
            # from a crash) as soon as it is encoded, and the encoder holds less memory.
            stream.options = {"preset": owner.preset, "crf": str(owner.crf), "tune": "zerolatency"}
        elif owner.codec.endswith("_nvenc"):
            stream.options = {"preset": "p4", "cq": str(owner.crf)}
        self.stream = stream
        self._origin: float | None = None
        self._last_pts = -1
        self._last_key: int | None = None
        self.last_seconds = 0.0
        """Where the last frame encoded is, in seconds from the first."""

    @property
    def started(self) -> bool:
        return self._last_pts >= 0

    def fits(self, result: Result) -> bool:
        """Whether ``result``'s frame has this encoder's size (a file's frames all have one)."""
        height, width = result.frame.image.shape[:2]
        return (width - width % 2, height - height % 2) == (self.width, self.height)

    def seconds_to(self, result: Result) -> float:
        """Seconds of video from the first frame to ``result`` (not yet encoded)."""
        return self.pts(result) / float(self.rate)

    def pts(self, result: Result) -> int:
        """``result``'s timestamp (in frame intervals from the first frame): from the source's
        timeline, so dropped frames leave their gap, but always after the frame before, so a
        timeline that jumps back (a reconnected camera) still moves on."""
        media_time = result.frame.meta.media_time
        if self._origin is None:
            return 0
        return max(self._last_pts + 1, round((media_time - self._origin) * float(self.rate)))

    def encode(self, image: Any, result: Result) -> list[Packet]:
        if self._origin is None:
            self._origin = result.frame.meta.media_time
        pts = self.pts(result)
        self._last_pts = pts
        self.last_seconds = pts / float(self.rate)
        if image.shape[0] != self.height or image.shape[1] != self.width:
            image = image[: self.height, : self.width]
        # OpenCV's BGR→I420 is several times cheaper than letting FFmpeg's swscale convert
        # (1.2 ms against 5.5 ms for a 1080p frame, measured here), and x264 takes I420 as is.
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        frame.pts = pts
        if self._last_key is None or pts - self._last_key >= float(self.rate) * KEY_SECONDS:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key = pts
        return list(self.stream.encode(frame))

    def flush(self) -> list[Packet]:
        """The packets the encoder still holds, at the end."""
        return list(self.stream.encode(None))


class _Encoder:
    """One open MP4 file and its H.264 encoder."""

    def __init__(self, owner: VideoRecorder, path: Path, first: Result) -> None:
        self.path = path
        self.frames = 0
        """Frames encoded into the file so far."""
        self.container: Any = av.open(str(path), mode="w", format="mp4", options=MP4_OPTIONS)
        try:
            self.h264 = H264(owner, self.container, first)
        except BaseException:
            self.container.close()
            raise
        self.segment = owner.segment

    def fits(self, result: Result) -> bool:
        return self.h264.fits(result)

    def full(self, result: Result) -> bool:
        """Whether ``result`` starts the next segment: this file already holds ``segment``
        seconds of video before it."""
        return self.segment is not None and self.h264.started and \
            self.h264.pts(result) >= self.segment * float(self.h264.rate)

    def seconds_to(self, result: Result) -> float:
        """Seconds of video from this file's first frame to ``result``."""
        return self.h264.seconds_to(result)

    def encode(self, image: Any, result: Result) -> None:
        for packet in self.h264.encode(image, result):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            for packet in self.h264.flush():
                self.container.mux(packet)
        finally:
            self.container.close()
