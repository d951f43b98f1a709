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

A stream's frames are annotated and encoded once, however many outputs take them: its
:class:`StreamWriter` hands the packets to each :class:`FileOutput` (the recording, and,
when :meth:`VideoRecorder.share_with` clips, its clips), and a file (a segment, a clip) is
the packets from one of the encoder's key frames on, asked for where a segment starts.
"""

from __future__ import annotations

import contextlib
import enum
import io
import itertools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import av
import cv2

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import RateMeter, file_stamp, format_seconds, wall_time
from streamyolo.errors import OutputError
from streamyolo.frames import FrameMeta, Image, Result
from streamyolo.sinks.base import (
    OutputPause,
    check_writable_folder,
    current_board,
    delete_beyond,
    delete_older,
    format_size,
)

if TYPE_CHECKING:
    from streamyolo.sinks.clips import ClipRecorder
    from streamyolo.sinks.original import OriginalRecording

log = logging.getLogger(__name__)

MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1",
               # A fragment at every key frame and at least every second: a camera's own video,
               # whose key frames may come 10 s apart, loses as little as ours to a crash.
               "frag_duration": "1000000",
               # With sound beside the video: write what waits for the other stream after 1 s at most.
               "max_interleave_delta": "1000000"}
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


class RecorderError(OutputError):
    """A stream's recording failed (encoder error, disk full)."""


class VideoRecorder:
    """Writes ``<folder>/<stream>.mp4`` (or its segments) for every stream it records (``streams``)."""

    what = "recording folder"
    files_kind = "recordings"
    thread_prefix = "record"

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
        streams: Collection[str] | None = None,
        max_size: int | None = None,
        keep_objects: float | None = None,
        objects: Mapping[str, frozenset[int]] | None = None,
        keeps: Mapping[str, tuple[float | None, float | None]] | None = None,
    ) -> None:
        """``streams``: the streams recorded (``None``: all); ``max_size``: the bytes of segment
        files (of every stream) the folder keeps at most, the oldest deleted first;
        ``keep_objects``: segment files in which the model saw objects are named so when they
        end (``…-objects.mp4``) and kept this long instead of ``keep``; ``objects``: the classes
        whose objects count so, by stream (a stream not in it: any class); ``keeps``: each
        stream's own ``keep`` and ``keep_objects`` (a stream not in it: these)."""
        if segment is not None and segment <= 0:
            raise ValueError(f"segment must be a positive number of seconds, not {segment}")
        if (keep is not None or any(k[0] is not None for k in (keeps or {}).values())) and segment is None:
            raise ValueError("keep needs segment: only segment files are deleted")
        self.folder = Path(folder)
        self.board = current_board()
        """Where its streams' outputs say they are paused (the run's; they are made later, elsewhere)."""
        self.annotator = annotator or BoxAnnotator()
        self.codec = codec
        self.preset = preset
        self.crf = crf
        self.queue_size = queue_size
        self.default_fps = default_fps
        self.segment = segment
        self.keep = keep
        self.keep_objects = keep_objects
        self.objects: Mapping[str, frozenset[int]] = dict(objects or {})
        """The classes whose objects mark a stream's segments (``record_objects``; swapped whole)."""
        self.keeps: Mapping[str, tuple[float | None, float | None]] = dict(keeps or {})
        """Each stream's retention (``keep``, ``keep_objects``; swapped whole)."""
        self.max_size = max_size
        self.overwrite = overwrite
        self.streams = None if streams is None else frozenset(streams)
        self._writers: dict[str, StreamWriter] = {}
        self._originals: list[OriginalRecording] = []
        self._outputs: dict[str, FileOutput] = {}
        self._ended: list[FileOutput] = []  # the outputs of streams removed as the run went (end_stream)
        self._outputs_lock = threading.Lock()
        self._finished = False
        self._writer_errors: list[BaseException] = []
        self._lock = threading.Lock()
        self.clips: ClipRecorder | None = None
        """The clips that take this recorder's packets (:meth:`share_with`)."""
        self.host: VideoRecorder = self
        """The recorder whose stream writers encode this one's frames: itself, or the one it shares with."""
        self._claimed: set[Path] = set()
        self._claim_lock = threading.Lock()
        self.on_error: Callable[[str, str], None] | None = None
        self.off: frozenset[str] = frozenset()
        """Streams whose recording is switched off (:meth:`switch`): their files end, and the
        next starts when it is on again (swapped whole: the writer threads read it)."""
        self.paced: frozenset[str] = frozenset()
        """Streams processed at the model's pace rather than as they happen (a file not played
        in real time): their files are placed on their video's own clock, from the moment
        their first frame came (:class:`VideoClock`), not when each frame came, which is
        the model's pace (a segment of 10 s of video, processed in 23 s, is named 10 s after
        the one before; a file of one run, processed slower than it plays, ends 10 s after it
        began). Swapped whole."""

    def open(self) -> None:
        self.check()

    def check(self) -> None:
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
                if path in self._claimed or (not self.overwrite and with_objects(path).exists()):
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
        if stream is None:
            return []
        deleted: list[Path] = []
        keep, keep_objects = self.keep_of(stream)
        kept_longer = keep_objects is not None

        def segment_of(objects: bool) -> Callable[[str], bool]:
            """The stream's segment files (with ``keep_objects``: those with objects, or the others)."""
            return lambda name: recording_of(name, stream, True) and (
                not kept_longer or name.endswith(OBJECTS_SUFFIX) == objects)

        for age, setting, objects in ((keep, "record_keep", False), (keep_objects, "record_keep_objects", True)):
            if age is None:
                continue
            gone = delete_older(self.folder, age, segment_of(objects))
            if gone:
                log.info("stream %r: deleted %d recording(s)%s finished more than %s ago (%s)", stream, len(gone),
                         " with objects" if objects else "", format_seconds(age), setting)
            deleted += gone
        return deleted + self.shrink(lambda name: SEGMENT_FILE.fullmatch(name) is not None)

    size_setting = "record_max_size"

    def shrink(self, matches: Callable[[str], bool]) -> list[Path]:
        """``max_size``: delete the oldest of the folder's files whose names ``matches`` (any
        stream's) until they take at most that many bytes, never a file being written."""
        if self.max_size is None:
            return []
        with self._outputs_lock:
            writing = [path for output in self._outputs.values() if (path := output.writing) is not None]
        writing += [with_objects(path) for path in writing]  # it may be renamed so meanwhile (marked)
        deleted = delete_beyond(self.folder, self.max_size, matches, writing)
        if deleted:
            log.info("%s %s: deleted %d of its oldest %s to stay under %s (%s)", self.what, self.folder,
                     len(deleted), self.files_kind, format_size(self.max_size), self.size_setting)
        return deleted

    def keep_of(self, stream: str) -> tuple[float | None, float | None]:
        """How long ``stream``'s segment files are kept, and those with objects: its own
        (``keeps``), else ``keep`` and ``keep_objects``."""
        return self.keeps.get(stream, (self.keep, self.keep_objects))

    @property
    def deletes(self) -> bool:
        """Whether retention deletes files as the run goes (``keep``, ``max_size``)."""
        return self.keep is not None or self.max_size is not None or any(k[0] is not None for k in self.keeps.values())

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every stream's files so far, oldest first (but those retention has deleted)."""
        made: dict[str, list[Path]] = {}
        with self._outputs_lock:
            for output in [*self._ended, *self._outputs.values()]:
                made.setdefault(output.stream, []).extend(output.files)
        if not self.deletes:
            return made
        return {stream: [path for path in paths if path.exists()] for stream, paths in made.items()}

    def share_with(self, clips: ClipRecorder) -> None:
        """Let ``clips`` (a :class:`~streamyolo.sinks.clips.ClipRecorder` with the same encoding
        settings) take the H.264 packets of the streams this records, instead of encoding every
        frame a second time: its clipped streams' frames come with this recorder's."""
        self.clips = clips
        clips.host = self

    def original(self, stream: str, live: bool, rotate: int | None = None) -> OriginalRecording:
        """``stream``'s recording as its camera sends it (``record: original``): the tap its
        source hands its compressed packets to (see :mod:`streamyolo.sinks.original`); give it
        none of the stream's frames (``streams``)."""
        output = self.new_original(stream, live, rotate)
        with self._outputs_lock:
            self._outputs[stream] = output
        with self._lock:
            self._originals.append(output)
        return output

    def new_original(self, stream: str, live: bool, rotate: int | None) -> OriginalRecording:
        from streamyolo.sinks.original import OriginalRecording  # it builds on this module's recordings

        return OriginalRecording(self, stream, live=live, rotate=rotate)

    def marked(self, path: Path) -> Path:
        """File ``path``, being written, in which objects were seen (``keep_objects``), renamed
        ``…-objects.mp4`` at once, while its writer keeps writing to it, so a crash or a power
        cut cannot take the mark, and with it the longer retention, away. Returns its name now."""
        renamed = with_objects(path)
        try:
            os.replace(path, renamed)
        except OSError as exc:  # it stays as it is, kept as long as the others
            log.warning("recording %s: cannot rename it %s: %s", path, renamed.name, exc.strerror or exc)
            return path
        with self._claim_lock:
            self._claimed.discard(path)
        log.debug("recording %s: objects seen, now %s", path, renamed.name)
        return renamed

    def switch(self, stream: str, on: bool) -> None:
        """Switch ``stream``'s recording off (its open file ends, whole, after the last frame
        or packet it was given before) or on again (a new file, from the next key frame)."""
        with self._lock:
            self.off = self.off - {stream} if on else self.off | {stream}
            writer = self._writers.get(stream)
            originals = [output for output in self._originals if output.stream == stream]
        if writer is not None:
            try:
                writer.put(Switched(on))  # in order with the frames given before
            except RecorderError:  # its outputs have failed (and said so)
                pass
        for output in originals:
            output.switch(on)

    def records(self, stream: str) -> bool:
        """Whether ``stream`` is recorded here (annotated, or as its camera sends it)."""
        with self._lock:
            return self.wants(stream) or any(output.stream == stream for output in self._originals)

    def wants(self, stream: str) -> bool:
        """Whether ``stream``'s frames are encoded for this output."""
        return self.streams is None or stream in self.streams

    def marks(self, result: Result) -> bool:
        """Whether ``result`` marks the segment its frame is in (``keep_objects``): an object of
        one of the classes its stream's marks count."""
        if not len(result.detections) or self.keep_of(result.stream)[1] is None:
            return False
        classes = self.objects.get(result.stream)
        return classes is None or any(int(cls) in classes for cls in result.detections.cls)

    def write(self, result: Result) -> None:
        if not self.wants(result.stream) and self.marks(result):
            output = self._outputs.get(result.stream)  # its camera's own video, as it came (no frames here)
            if output is not None:
                output.saw_objects()
        clipped = self.clips is not None and self.clips.wants(result.stream)
        if not clipped and not self.wants(result.stream):
            return
        clip = self.clips.place(result) if self.clips is not None and clipped else None
        self.writer(result.stream).put((result, clip))

    def writer(self, stream: str) -> StreamWriter:
        """``stream``'s writer (and its thread), started on its first frame."""
        writer = self._writers.get(stream)
        if writer is None:
            with self._lock:
                writer = self._writers.get(stream)
                if writer is None:
                    outputs = [self.output(stream)] if self.wants(stream) else []
                    if self.clips is not None and self.clips.wants(stream):
                        outputs.append(self.clips.output(stream))
                    writer = StreamWriter(self, stream, outputs)
                    writer.start()
                    self._writers[stream] = writer
        return writer

    def output(self, stream: str) -> FileOutput:
        """``stream``'s output of this kind (made once, in its writer's making)."""
        output = self.new_output(stream)
        with self._outputs_lock:
            self._outputs[stream] = output
        return output

    def new_output(self, stream: str) -> FileOutput:
        return Recording(self, stream)

    def finish_writers(self) -> list[BaseException]:
        """Finish every stream's writer (once: a recorder and the clips it shares with both
        ask) and return what failed them."""
        with self._lock:
            clips = [] if self.clips is None else self.clips._originals  # its writers are the clips' own
            writers: list[StreamWriter | OriginalRecording] = (
                [] if self._finished else [*self._writers.values(), *self._originals, *clips])
            self._finished = True
        for writer in writers:
            writer.finish()
        for writer in writers:
            if not writer.join(timeout=60):
                log.error("%s for %r did not finish within 60 s", writer.thread_prefix, writer.stream)
            if writer.error is not None:
                self._writer_errors.append(writer.error)
        return self._writer_errors

    def close(self) -> None:
        errors = self.host.finish_writers()
        if errors and self.host is self:
            raise RecorderError(str(errors[0])) from errors[0]
        with self._outputs_lock:
            outputs = [*self._ended, *self._outputs.values()]
        OutputPause.check_all(output.pause for output in outputs)  # frames lost to a full disk: incomplete files

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        """``stream`` was removed while the run goes on, its last frame written: finish its
        files now (its writer's, which the clips share, and its camera's own video's), whole.
        A stream added again under its name records to new files."""
        host = self.host
        with host._lock:
            writer = host._writers.pop(stream, None)
        with self._lock:
            originals = [output for output in self._originals if output.stream == stream]
            self._originals = [output for output in self._originals if output.stream != stream]
        finishing_all: list[StreamWriter | OriginalRecording] = [*([writer] if writer is not None else []), *originals]
        for finishing in finishing_all:
            finishing.finish()
            if not finishing.join(timeout=60):
                log.error("%s for %r did not finish within 60 s", finishing.thread_prefix, stream)
            if finishing.error is not None:
                host._writer_errors.append(finishing.error)
        with self._outputs_lock:
            output = self._outputs.pop(stream, None)
            if output is not None:
                self._ended.append(output)


class Need(enum.IntEnum):
    """What an output wants of a frame."""

    NOTHING = 0
    FRAME = 1
    KEY = 2
    """The frame as a key frame: a file starts with it."""


STREAM_OVER = object()
"""A stream writer's item: the stream has ended or failed (its last frames may still follow)."""


@dataclass(frozen=True, slots=True)
class Switched:
    """A stream writer's item: the stream's recording is switched on or off here (:meth:`VideoRecorder.switch`)."""

    on: bool


class FileOutput:
    """What one output (a stream's recording, its clips) does with the stream's H.264 packets.
    Called only in the stream's writer thread."""

    ends_with_stream = False
    """Whether it is done when the stream has ended or failed (a stream's last frames may still come)."""

    def __init__(self, owner: VideoRecorder, stream: str, what: str) -> None:
        self.owner = owner
        self.stream = stream
        self.files: list[Path] = []
        """Its files so far, swapped whole (read by other threads)."""
        self.pause = OutputPause(what, "frame(s)", stream=stream, board=owner.board)

    def need(self, item: Result, h264: H264 | None) -> Need:
        """What it wants of ``item``'s frame, before it is encoded (by ``h264``, or by a new
        encoder when ``None``). Asked once per frame, in order."""
        raise NotImplementedError

    @property
    def writing(self) -> Path | None:
        """The file it is writing now, if any (retention leaves it alone; read by other threads)."""
        raise NotImplementedError

    def add(self, item: Result, clip: Path | None, h264: H264, packets: list[Packet]) -> None:
        """``item``'s frame has been encoded into ``packets`` (if it wanted it)."""
        raise NotImplementedError

    def encoder_ends(self, h264: H264, packets: list[Packet]) -> None:
        """``h264``'s last ``packets``: the files it feeds end (the next frame has another
        size, or the run ends)."""
        raise NotImplementedError

    def stream_over(self) -> None:
        """The stream has ended or failed."""

    def saw_objects(self) -> None:
        """The model saw objects in the stream's frame just processed (``record_keep_objects``)."""

    def turned(self, on: bool) -> None:
        """The stream's recording is switched on or off (:class:`Switched`): clips go on."""

    def failed_write(self, exc: Exception) -> None:
        """A write the system refused: pause (and say so, once)."""
        message = self.pause.failed(exc)
        if message is not None and self.owner.on_error is not None:
            self.owner.on_error(self.stream, message)

    def close_after_failure(self, file: Mp4File | None) -> None:
        """Close ``file`` as far as it goes, cut after its last whole fragment
        (:func:`whole_fragments`), or delete it if no frame reached it."""
        if file is None:
            return
        try:
            file.close()
        except Exception as exc:
            log.debug("%s: closing %s after a failed write: %s", self.pause.what, file.path, exc)
        try:
            whole_fragments(file.path)
        except OSError as exc:
            log.debug("%s: cutting %s to its whole fragments: %s", self.pause.what, file.path, exc)
        if file.frames == 0:
            self.owner.release(file.path)
            self.files = [f for f in self.files if f != file.path]


class StreamWriter:
    """A stream's frames annotated and H.264-encoded, once, in a thread of its own fed by a
    small queue; the packets go to each of its outputs (the recording, the clips)."""

    def __init__(self, owner: VideoRecorder, stream: str, outputs: list[FileOutput]) -> None:
        self.owner = owner
        self.stream = stream
        self.outputs = outputs
        self.thread_prefix = owner.thread_prefix
        self.error: BaseException | None = None
        self._queue: queue.Queue[object] = queue.Queue(owner.queue_size)
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{self.thread_prefix}:{stream}")
        self._meter = RateMeter()
        self._h264: H264 | None = None

    @property
    def what(self) -> str:
        return " and ".join(output.pause.what for output in self.outputs)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: object) -> None:
        """Queue ``(result, clip)`` (or :data:`STREAM_OVER`); waits while the queue is full."""
        while True:
            if self._failed.is_set():
                raise RecorderError(f"{self.what} failed: {self.error}")
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
        except BaseException as exc:  # anything else (the encoder refused): this stream's outputs end
            self.error = exc
            self._failed.set()
            log.error("%s failed: %s", self.what, exc)
            _drain(self._queue)
        finally:
            try:
                self._end_encoder()
            except Exception as exc:
                self.error = self.error or exc
                self._failed.set()

    def take(self, item: object) -> None:
        if isinstance(item, Switched):
            for output in self.outputs:
                output.turned(item.on)
            return
        if item is STREAM_OVER:
            for output in self.outputs:
                output.stream_over()
            if all(output.ends_with_stream for output in self.outputs):
                self._end_encoder()  # lets go of its memory
            return
        result, clip = cast(tuple[Result, Path | None], item)
        if self._h264 is not None and not self._h264.fits(result):  # the camera's size changed
            height, width = result.frame.image.shape[:2]
            log.info("stream %r: frames now %dx%d, its files start again", self.stream, width, height)
            self._end_encoder()
        needs = [output.need(result, self._h264) for output in self.outputs]
        if not any(needs):
            return
        if self._h264 is None:
            self._h264 = H264(self.owner, result)
        packets = self._h264.encode(self.annotate(result), result, key=Need.KEY in needs)
        for output, need in zip(self.outputs, needs, strict=True):
            if need:
                output.add(result, clip, self._h264, packets)

    def annotate(self, item: Result) -> Image:
        """``item``'s frame as recorded: its boxes, lines, zones and the stream's numbers drawn on it."""
        self._meter.tick()
        return self.owner.annotator.annotate(
            item.frame.image, item.detections, stream=self.stream, fps=self._meter.rate(), age=item.age,
            lines=item.lines, zones=item.zones, masks=item.masks, when=wall_time(item.frame.meta.t_capture),
            speeds=dict(item.speeds),
        )

    def _end_encoder(self) -> None:
        """The encoder's last packets to the outputs, whose files end; then it closes."""
        h264, self._h264 = self._h264, None
        if h264 is None:
            return
        packets: list[Packet] = []
        try:
            packets = h264.flush()
        finally:
            failed: list[Exception] = []
            for output in self.outputs:
                try:
                    output.encoder_ends(h264, packets)
                except Exception as exc:  # the other outputs still close their files
                    failed.append(exc)
            h264.close()
            if failed:
                raise failed[0]


class Recording(FileOutput):
    """A stream's recording: every frame (but while a full disk pauses it) into its file, or
    with ``segment`` into a new file every that many seconds of video."""

    owner: VideoRecorder
    turn: int | None = None
    """Degrees clockwise its files say to show their pictures turned (``None``: not at all,
    or as the camera's video says)."""

    def __init__(self, owner: VideoRecorder, stream: str) -> None:
        super().__init__(owner, stream, f"recording of stream {stream!r}")
        self._file: Mp4File | None = None
        self._first = 0  # the open file's first frame, in the encoder's frame intervals
        self._cut: float | None = None  # the wall-clock time the file the next key frame starts starts at
        self._started = 0.0  # the wall-clock time the open file starts at
        self._follows: float | None = None  # where the file after a finished one starts at the earliest
        self._video_clock = VideoClock()  # (a paced stream's)
        self.off = stream in owner.off
        """Switched off (:meth:`VideoRecorder.switch`): no file, until it is on again."""

    @property
    def writing(self) -> Path | None:
        file = self._file
        return None if file is None else file.path

    def need(self, item: Result, h264: H264 | None) -> Need:
        self._video_clock.see(item.frame.meta)
        if self.off or not self.pause.due():
            return Need.NOTHING
        segment = self.owner.segment
        if self._file is None or (segment is not None and h264 is not None
                                  and h264.pts(item) - self._first >= segment * float(h264.rate)):
            if self._file is not None and h264 is not None:
                self._follows = self._started + (h264.pts(item) - self._first) / float(h264.rate)
            # A file is named after its first frame's arrival, or, when the stream runs faster
            # than real time (a file), after where it starts in the video: names stay in order,
            # at least a segment apart.
            arrived = wall_time(item.frame.meta.t_capture)
            if self.stream in self.owner.paced:  # (a file at the model's pace: on its video's clock)
                self._cut = self._video_clock.at(item.frame.meta)
            else:
                self._cut = arrived if self._follows is None else max(arrived, self._follows)
            return Need.KEY
        return Need.FRAME

    def add(self, item: Result, clip: Path | None, h264: H264, packets: list[Packet]) -> None:
        try:
            for packet in packets:
                if self._cut is not None and packet.is_keyframe:
                    self._end_file()
                    self._open(h264.stream, h264.rate, packet, self._cut)
                    self._first = h264.last_pts
                    self._cut = None
                elif self._file is not None:
                    self._file.add([packet])
        except (OSError, RecorderError) as exc:  # a full disk, a share gone: pause, and try again later
            self.abandon()
            self.failed_write(exc)
            return
        self.pause.succeeded()
        if self._file is not None and self.owner.marks(item):
            self._file.objects = True
            self.mark(self._file)

    def saw_objects(self) -> None:
        """Objects were seen in the frame of the file being written (called by another thread)."""
        file = self._file
        if file is not None:
            file.objects = True

    def mark(self, file: Mp4File) -> None:
        """``file`` renamed ``…-objects.mp4`` once objects were seen in it (:meth:`VideoRecorder.marked`)."""
        if file.objects and not file.marked:
            file.marked = True  # once: a rename that failed is not tried for every packet
            named = self.owner.marked(file.path)
            self.files = [named if path == file.path else path for path in self.files]
            file.path = named

    def encoder_ends(self, h264: H264, packets: list[Packet]) -> None:
        if self._file is None:
            return
        try:
            self._file.add(packets)
            self._end_file()
            self._follows = self._started + (h264.last_pts + 1 - self._first) / float(h264.rate)
        except OSError as exc:
            self.abandon()
            self.failed_write(exc)

    def turned(self, on: bool) -> None:
        """Switched off: the open file ends here, whole; the next, once it is on again, is
        named after when it starts."""
        self.off = not on
        self._follows = self._cut = None
        if on or self._file is None:
            return
        log.info("stream %r: recording switched off: %s ends", self.stream, self._file.path.name)
        try:
            self._end_file()
        except OSError as exc:
            self.abandon()
            self.failed_write(exc)

    def abandon(self) -> None:
        """After a failed write: give up the open file."""
        file, self._file = self._file, None
        self._follows = self._cut = None
        self.close_after_failure(file)

    def _end_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()  # writes its last fragment
            self.mark(file)  # objects seen in its last frames
            ends = self._started + file.seconds
            if self.owner.segment is None and self.stream in self.owner.paced and ends < time.time():
                # A file of one run is placed by when it was last written, less its length: on
                # the video's clock, it ends that long after it began (processed slower than it
                # plays; faster, it would end in the future: left as written, it ends now).
                with contextlib.suppress(OSError):
                    os.utime(file.path, (time.time(), ends))

    def _open(self, template: Any, rate: Fraction, first: Packet, started: float, sound: Any = None) -> None:
        """A new file, named after wall-clock time ``started``, from key frame ``first`` on
        (:class:`Mp4File`'s ``template``, ``rate`` and ``sound``)."""
        self._started = started
        deleted = self.owner.prune(self.stream)  # first: it may free the room the new file needs
        path = self.owner.claim(self.stream, started)
        try:
            self._file = Mp4File(path, template, rate, [first], clockwise=self.turn, sound=sound, stream=self.stream)
        except BaseException:
            self.owner.release(path)
            raise
        self.files = [*(f for f in self.files if f not in deleted), path]
        log.log(logging.DEBUG if len(self.files) > 1 else logging.INFO, "recording stream %r to %s", self.stream, path)


def _drain(items: queue.Queue[object]) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return


SEGMENT_FILE = re.compile(r".+-\d{8}-\d{6}(-\d+)?(-objects)?\.mp4")
"""A segment file's name, of any stream (see :func:`recording_of`)."""


def recording_of(file: str, stream: str, segments_only: bool = False) -> bool:
    """Whether ``file`` is one of the names :meth:`VideoRecorder.claim` gives ``stream``'s
    recordings: ``<stream>.mp4``, ``<stream>-2.mp4`` …, or a segment
    ``<stream>-YYYYmmdd-HHMMSS[-2].mp4`` (only these with ``segments_only``), or a segment in
    which objects were seen (``…-objects.mp4``: ``record_keep_objects``).

    >>> recording_of("cam-20261205-021125.mp4", "cam"), recording_of("cam-3.mp4", "cam")
    (True, True)
    >>> recording_of("cam-20261205-021125-2-objects.mp4", "cam", True), recording_of("cam-objects.mp4", "cam")
    (True, False)
    >>> recording_of("camera.mp4", "cam"), recording_of("cam-2-2.mp4", "cam"), recording_of("cam.mp4", "cam", True)
    (False, False, False)
    """
    if re.fullmatch(re.escape(stream) + r"-\d{8}-\d{6}(-\d+)?-objects\.mp4", file):
        return True
    segment = r"-\d{8}-\d{6}" if segments_only else r"(-\d{8}-\d{6})?"
    return re.fullmatch(re.escape(stream) + segment + r"(-\d+)?\.mp4", file) is not None


def recorded_stream(file: str) -> str | None:
    """The stream whose recording ``file`` may be (as :func:`recording_of` names them), or
    ``None`` for no recording's name.

    >>> recorded_stream("gate-20261205-021125-2-objects.mp4"), recorded_stream("gate-2.mp4"), recorded_stream("a.txt")
    ('gate', 'gate', None)
    """
    found = re.fullmatch(r"(.+?)(-\d{8}-\d{6})?(-\d+)?(-objects)?\.mp4", file)
    return None if found is None else found.group(1)


OBJECTS_SUFFIX = "-objects.mp4"
"""How a segment file in which objects were seen ends (``record_keep_objects``)."""


def with_objects(path: Path) -> Path:
    """``path``'s name for a segment in which objects were seen.

    >>> with_objects(Path("/rec/cam-20261205-021125-2.mp4")).name
    'cam-20261205-021125-2-objects.mp4'
    """
    return path.with_name(path.stem + OBJECTS_SUFFIX)


class H264:
    """An H.264 encoder for one stream's frames: timestamps from the source's timeline
    (dropped frames leave their gap) and a key frame every ``KEY_SECONDS`` of it. Its
    :meth:`encode` returns the packets, which :class:`Mp4File` s write (each file the packets
    from one of its key frames on). Its ``stream`` belongs to a container of its own, never
    written: opened, it is the template of every file's stream."""

    def __init__(self, owner: VideoRecorder, first: Result) -> None:
        height, width = first.frame.image.shape[:2]
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        fps = first.frame.meta.fps or owner.default_fps
        self.rate = Fraction(fps).limit_denominator(1001)
        self._container: Any = av.open(io.BytesIO(), mode="w", format="mp4")  # MP4's settings (global headers)
        try:
            stream = cast(av.VideoStream, self._container.add_stream(owner.codec, rate=self.rate))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            # Key frames are asked for by time (see encode); this only bounds a timeline that stalls.
            stream.codec_context.gop_size = max(1, 2 * round(float(self.rate) * KEY_SECONDS))
            if owner.codec == "libx264":
                # zerolatency: no look-ahead or B-frame queue, so each frame's packet comes out
                # as it goes in (written, and safe from a crash, at once; a file can start at the
                # frame asked to be a key frame), and the encoder holds less memory.
                stream.options = {"preset": owner.preset, "crf": str(owner.crf), "tune": "zerolatency"}
            elif owner.codec.endswith("_nvenc"):
                stream.options = {"preset": "p4", "cq": str(owner.crf), "zerolatency": "1", "delay": "0", "bf": "0"}
            self.stream = stream
            self._container.start_encoding()  # opens the encoder
        except BaseException:
            self._container.close()
            raise
        self._origin: float | None = None
        self._last_pts = -1
        self._last_key: int | None = None
        self.last_seconds = 0.0
        """Where the last frame encoded is, in seconds from the first."""

    @property
    def last_pts(self) -> int:
        """The last frame encoded's timestamp, in frame intervals from the first."""
        return self._last_pts

    def fits(self, result: Result) -> bool:
        """Whether ``result``'s frame has this encoder's size (a file's frames all have one)."""
        height, width = result.frame.image.shape[:2]
        return (width - width % 2, height - height % 2) == (self.width, self.height)

    def pts(self, result: Result) -> int:
        """``result``'s timestamp (in frame intervals from the first frame): from the source's
        timeline, so dropped frames leave their gap, but always after the frame before, so a
        timeline that jumps back (a reconnected camera) still moves on."""
        media_time = result.frame.meta.media_time
        if self._origin is None:
            return 0
        return max(self._last_pts + 1, round((media_time - self._origin) * float(self.rate)))

    def encode(self, image: Any, result: Result, key: bool = False) -> list[Packet]:
        """``result``'s frame (``image``, annotated) encoded; ``key``: as a key frame."""
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
        if key or self._last_key is None or pts - self._last_key >= float(self.rate) * KEY_SECONDS:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key = pts
        return list(self.stream.encode(frame))

    def flush(self) -> list[Packet]:
        """The packets the encoder still holds, at the end."""
        return list(self.stream.encode(None))

    def close(self) -> None:
        try:
            self._container.close()
        except Exception as exc:  # nothing was written to it: nothing is lost
            log.debug("closing an encoder: %s", exc)


class Mp4File:
    """One MP4 file being written: a stream's packets (an encoder's, or the camera's own),
    copied and timed from its first (a key frame), whose decoding time is 0. ``template``: the
    video stream whose settings the file's stream takes; ``rate``: its frames per second.
    Fragmented (:data:`MP4_OPTIONS`): it plays up to its last whole fragment whatever happens
    to the process."""

    def __init__(self, path: Path, template: Any, rate: Fraction, packets: list[Packet],
                 clockwise: int | None = None, sound: Any = None, stream: str | None = None) -> None:
        """``clockwise``: the degrees the file says to show its pictures turned (``None``: as
        the template says, if it does); ``sound``: the template of a sound stream beside the
        video (:meth:`add_sound`); ``stream``: the stream whose video it is, its title (a file's
        name may fit two streams': ``gate-2.mp4``, ``gate``'s second or ``gate-2``'s first)."""
        self.path = path
        """Its name now (``…-objects.mp4`` once :attr:`objects`, see :meth:`Recording.mark`)."""
        self.frames = 0
        """Packets (frames) written into it so far."""
        self.objects = False
        """Whether objects were seen in its frames (``record_keep_objects``; set by any thread)."""
        self.marked = False
        """Whether it has been renamed for them."""
        self._rate = rate
        self._last: tuple[int, int | None, Fraction | None] = (0, None, None)  # its last pts, duration, time base
        self.container: Any = av.open(str(path), mode="w", format="mp4", options=MP4_OPTIONS)
        if stream is not None:
            self.container.metadata["title"] = stream
        try:
            # opaque: the settings copied as they are (a camera's H.265 needs no encoder here)
            self.stream = self.container.add_stream_from_template(template, opaque=True)
            if clockwise is not None:
                self.stream.set_display_rotation(-clockwise)  # PyAV takes it counter-clockwise
            if self.stream.codec_context.name == "hevc":
                self.stream.codec_tag = "hvc1"  # H.265 as Apple's players want it (FFmpeg's default is hev1)
            self.sound = None if sound is None else self.container.add_stream_from_template(sound, opaque=True)
            first = packets[0]
            self._origin = first.dts if first.dts is not None else _stamp(first)
            self._origin_seconds = float(self._origin * first.time_base) if first.time_base is not None else 0.0
            self.add(packets)
        except BaseException:
            try:
                self.container.close()
            except Exception as exc:  # the error that brought us here is the one to raise
                log.debug("closing %s: %s", self.path, exc)
            raise

    def add(self, packets: list[Packet]) -> None:
        for packet in packets:
            # A copy: muxing hands a packet's data to the file, and a packet may go into more
            # than one file (a recording and a clip, clips whose seconds before overlap).
            copy = av.Packet(bytes(packet))
            copy.pts = _stamp(packet) - self._origin
            copy.dts = (packet.dts if packet.dts is not None else _stamp(packet)) - self._origin
            copy.duration = packet.duration
            copy.time_base = packet.time_base
            copy.is_keyframe = packet.is_keyframe
            copy.stream = self.stream
            self._last = (copy.pts, packet.duration, packet.time_base)  # muxing hands the packet over
            self.container.mux(copy)
            self.frames += 1

    def add_sound(self, packets: list[Packet]) -> None:
        """Sound packets (their own copies), timed on the video's clock: moved by where the
        file's first frame is."""
        assert self.sound is not None
        for packet in packets:
            assert packet.pts is not None and packet.time_base is not None
            shift = round(self._origin_seconds / packet.time_base)
            packet.pts -= shift
            packet.dts = packet.pts
            packet.stream = self.sound
            self.container.mux(packet)

    @property
    def seconds(self) -> float:
        """Seconds of video in it so far, to the end of its last frame."""
        pts, duration, time_base = self._last
        if not self.frames or time_base is None:
            return 0.0
        return float(pts * time_base + (duration * time_base if duration else 1 / self._rate))

    def close(self) -> None:
        self.container.close()


class VideoClock:
    """A stream's frames placed on its video's own clock, from the moment (wall clock) its
    first frame came: where a paced stream's recording has them (:attr:`VideoRecorder.paced`),
    and where its events' ``recording_url`` finds them. A stream started again (its frame 0
    once more, a reload) starts it again.

    >>> clock = VideoClock()
    >>> from streamyolo.frames import FrameMeta
    >>> for seq in range(3):  # 25 frames a second of video, processed at 10 a second
    ...     clock.see(FrameMeta("file", seq, 1000.0 + seq / 10, pts=seq / 25))
    >>> round(clock.at(FrameMeta("file", 2, 1000.2, pts=0.08)) - wall_time(1000.0), 3)
    0.08
    """

    def __init__(self) -> None:
        self._first: tuple[float, float] | None = None  # (wall-clock time, media time) of the first frame

    def see(self, meta: FrameMeta) -> None:
        """Take ``meta``, a frame of the stream, in order."""
        if self._first is None or meta.seq == 0:
            self._first = (wall_time(meta.t_capture), meta.media_time)

    def at(self, meta: FrameMeta) -> float:
        """Where the frame ``meta`` sits (wall-clock seconds), once a first frame was seen."""
        assert self._first is not None
        return self._first[0] + meta.media_time - self._first[1]


def whole_fragments(path: Path) -> None:
    """Cut a fragmented MP4 that a failed write (a full disk) left with part of a fragment at
    its end back to its last whole frame, so that it decodes to its end (a player stops there,
    a strict decoder raises on the torn frame): its boxes are walked by their sizes alone, the
    header (``ftyp``, ``moov``) and every ``moof`` with its whole ``mdat`` kept, and of the torn
    fragment (one track's: our video's) the frames whose bytes are all there
    (:func:`_whole_samples`); of one with sound as well, nothing."""
    with open(path, "r+b") as file:
        size = os.fstat(file.fileno()).st_size
        at = whole = 0
        fragment: tuple[int, bytes] | None = None  # the last whole moof: where it starts, its bytes
        while at + 8 <= size:
            file.seek(at)
            head = file.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if length == 1 and len(head) == 16:  # (a 64-bit size)
                length = int.from_bytes(head[8:16], "big")
            if length < 8 or at + length > size:
                if kind == b"mdat" and int.from_bytes(head[:4], "big") != 1 and fragment is not None:
                    whole = _whole_samples(file, *fragment, at, size) or whole
                break
            if kind == b"moof":  # (a fragment is whole with its mdat)
                file.seek(at)
                fragment = (at, file.read(length))
            else:
                whole, fragment = at + length, None
            at += length
        if whole < size:
            file.truncate(whole)
            log.info("%s: cut after its last whole frame (%d bytes of a torn fragment)", path.name, size - whole)


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """The boxes in ``data[start:end]``: (kind, where it starts, where it ends)."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        length = int.from_bytes(data[start:start + 4], "big")
        if length < 8 or start + length > end:
            return
        yield data[start + 4:start + 8], start, start + length
        start += length


def _whole_samples(file: Any, moof_at: int, moof: bytes, mdat_at: int, size: int) -> int | None:
    """Keep the frames of the torn fragment (``moof``, at ``moof_at``, its ``mdat`` at
    ``mdat_at`` cut short at ``size``) whose bytes are all written: its ``trun``'s count and its
    ``mdat``'s size made theirs. Returns where the file now ends, or ``None`` (none whole, or not
    a fragment of one track whose samples' places are told)."""
    trafs = [(s, e) for kind, s, e in _boxes(moof, 8) if kind == b"traf"]
    if len(trafs) != 1:
        return None
    inside = list(_boxes(moof, trafs[0][0] + 8, trafs[0][1]))
    children = {kind: (s, e) for kind, s, e in inside}
    runs = [s for kind, s, _ in inside if kind == b"trun"]
    if b"tfhd" not in children or len(runs) != 1:
        return None
    at = children[b"tfhd"][0] + 8
    flags, at = int.from_bytes(moof[at + 1:at + 4], "big"), at + 8  # (version, flags; the track's id)
    base = moof_at
    if flags & 0x01:
        base, at = int.from_bytes(moof[at:at + 8], "big"), at + 8
    at += 4 if flags & 0x02 else 0
    at += 4 if flags & 0x08 else 0
    default_size = int.from_bytes(moof[at:at + 4], "big") if flags & 0x10 else None
    run = runs[0] + 8
    run_flags, count = int.from_bytes(moof[run + 1:run + 4], "big"), int.from_bytes(moof[run + 4:run + 8], "big")
    if not run_flags & 0x01:
        return None
    offset = int.from_bytes(moof[run + 8:run + 12], "big", signed=True)
    at = run + 12 + (4 if run_flags & 0x04 else 0)
    step = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if run_flags & bit)
    size_at = 4 if run_flags & 0x100 else 0
    end = data = base + offset
    kept = 0
    for index in range(count):
        sample = (int.from_bytes(moof[at + index * step + size_at:at + index * step + size_at + 4], "big")
                  if run_flags & 0x200 else default_size)
        if sample is None or end + sample > size:
            break
        end, kept = end + sample, kept + 1
    if kept == 0 or data < mdat_at + 8:
        return None
    file.seek(moof_at + run + 4)
    file.write(kept.to_bytes(4, "big"))
    file.seek(mdat_at)
    file.write((end - mdat_at).to_bytes(4, "big"))
    return end


def _stamp(packet: Packet) -> int:
    """An encoded packet's timestamp (the encoder always gives one)."""
    assert packet.pts is not None
    return packet.pts
