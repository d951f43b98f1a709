"""The cameras' own video, recorded as they sent it (``record: original``).

A stream recorded this way is never annotated nor encoded again: its capture thread hands
every compressed packet it reads, before decoding it, to the stream's
:class:`OriginalRecording`, whose own thread (``record:<stream>``) copies the packets into
the recorder's files, with the same names, segments, retention, pauses on a full disk and
crash-safe fragmented MP4 as annotated recordings. It costs next to nothing (no colour
conversion, no encoder), keeps the camera's own quality, and holds every frame the camera
sent, whatever inference keeps (a live stream's drops, ``max_fps``, ``stride``).

Files are cut at the camera's key frames: a segment is ``segment`` seconds long or more, up
to the next key frame. A stream's packets are placed on one continuous timeline (the
:class:`~streamyolo.clock.Timeline` the capture places its frames on), so a looped file or a
reconnected camera whose clock started again goes on in the same file; a camera that comes
back with other settings (another size, another codec) starts a new file.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av

from streamyolo.clock import Clock, Timeline, wall_time
from streamyolo.sinks.recorder import Packet, RecorderError, Recording, Switched
from streamyolo.sources.base import same_frame

if TYPE_CHECKING:
    from streamyolo.sinks.recorder import VideoRecorder

log = logging.getLogger(__name__)

PLAYED_EVERYWHERE = frozenset({"h264", "vp9", "av1"})
"""Codecs an MP4 holds that every current browser plays."""
COPYABLE = PLAYED_EVERYWHERE | {"hevc"}
"""Codecs copied into MP4 files: H.265 too (most cameras send it), which browsers play only
where the hardware decodes it."""

SOUND_COPYABLE = frozenset({"aac", "opus", "mp3"})
"""Sound an MP4 holds that browsers play, copied; other sound (G.711 …) is made AAC."""

QUEUE_PACKETS = 512
"""Packets waiting for the writer at most (some 15 s of a 30 fps camera): a disk that stalls
longer holds up a file's capture, or loses a live camera's packets up to its next key frame."""

_FINISH = object()


def uncopied(stream: str, codec: str | None, clips: bool = False) -> str | None:
    """Why ``stream``'s ``codec`` video cannot be recorded (or, with ``clips``, clipped) as it
    came, if it cannot.

    >>> uncopied("door", "h264") is None, uncopied("door", "hevc") is None
    (True, True)
    >>> uncopied("door", "mjpeg")[:65]
    "recording of stream 'door': its mjpeg video cannot be copied into"
    >>> uncopied("door", "mjpeg", clips=True).split("; ")[-1]
    'cut them from the pictures as shown (clip_mode: annotated)'
    """
    if codec in COPYABLE:
        return None
    what, instead = (("clips", "cut them from the pictures as shown (clip_mode: annotated)") if clips
                     else ("recording", "record it annotated (record: annotated)"))
    return (f"{what} of stream {stream!r}: its {codec or 'unknown'} video cannot be copied into an MP4 browsers "
            f"play (H.264, H.265, VP9 and AV1 can); {instead}")


class _Transcoder:
    """Sound that an MP4 browsers play cannot hold (G.711 …), decoded and encoded as AAC (a
    few hundredths of a core): made in the capture thread, used in the writer's."""

    def __init__(self, audio: Any) -> None:
        context = audio.codec_context
        self.decoder = av.CodecContext.create(context.name, "r")
        self.decoder.sample_rate, self.decoder.layout = context.sample_rate, context.layout
        layout = "mono" if context.channels == 1 else "stereo"
        self._holder = av.open(io.BytesIO(), mode="w", format="mp4")  # the encoder's (and the files') settings
        self.stream = self._holder.add_stream("aac", rate=context.sample_rate)
        self.stream.layout = layout
        self._holder.start_encoding()  # opens the encoder
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=context.sample_rate)
        self._origin: float | None = None  # where the first sample fed goes (seconds on the timeline)
        self._samples = 0

    def encode(self, data: bytes, pts: int, time_base: Fraction, place: float) -> list[tuple[Packet, float]]:
        """The AAC packets a sound packet (its time ``pts``, its place on the timeline
        ``place``) completes, each with its place: counted in samples from the first."""
        packet = av.Packet(data)
        packet.pts, packet.time_base = pts, time_base
        out = []
        for frame in self.decoder.decode(packet):
            if self._origin is None:
                self._origin = place
            for resampled in self._resampler.resample(frame):
                resampled.pts, resampled.time_base = self._samples, Fraction(1, resampled.sample_rate)
                self._samples += resampled.samples  # counted: the encoder wants them without a gap
                out += self._placed(self.stream.encode(resampled))
        return out

    def flush(self) -> list[tuple[Packet, float]]:
        """The AAC packets of the samples the encoder still holds, at the end."""
        return self._placed(self.stream.encode(None)) if self._origin is not None else []

    def _placed(self, packets: list[Packet]) -> list[tuple[Packet, float]]:
        assert self._origin is not None
        return [(p, self._origin + float(p.pts * p.time_base)) for p in packets
                if p.pts is not None and p.time_base is not None]


@dataclass(frozen=True, slots=True)
class VideoSettings:
    """A connection's video stream (and sound) as the files copy them: their codec parameters,
    held in a container of their own (the source's closes when the camera reconnects)."""

    holder: Any
    template: Any
    rate: Fraction
    key: tuple[object, ...]
    """What a file's packets must share: codecs, size, time bases, and the codecs' setup data."""
    sound: Any = None
    """The sound's template in the files, when it is recorded."""
    transcoder: _Transcoder | None = None
    """What makes the sound AAC, when it comes in another form."""


@dataclass(frozen=True, slots=True)
class SourcePacket:
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    time_base: Fraction | None
    key: bool
    arrived: float
    sound: bool = False


class OriginalRecording(Recording):
    """A stream's recording as its camera sent it. :meth:`opened` and :meth:`packet` are its
    capture thread's (a :class:`~streamyolo.sources.base.PacketTap`); everything else
    happens in its own writer thread, started with the first connection."""

    clips = False
    """Whether its files are event clips cut from the original (its messages say so)."""

    def __init__(self, owner: VideoRecorder, stream: str, *, live: bool, rotate: int | None = None,
                 queue_size: int = QUEUE_PACKETS, clock: Clock = time.monotonic) -> None:
        """``live``: a camera, whose packets are dropped up to its next key frame when the
        writer falls behind (a file's capture waits instead); ``rotate``: degrees clockwise
        the files say to show the pictures turned (``None``: as the source says)."""
        super().__init__(owner, stream)
        self.live = live
        self.turn = rotate
        self.error: BaseException | None = None
        self.thread_prefix = owner.thread_prefix
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name=f"{owner.thread_prefix}:{stream}")
        self._failed = threading.Event()
        self._lock = threading.Lock()
        self._overrun = 0  # packets the capture could not queue, not yet counted lost (under _lock)
        self._resync = False  # the capture side waits for a key frame after an overrun
        self._refused = False  # the capture side: this connection's codec is not copied
        self._indices: tuple[int, int | None] = (0, None)  # the capture side: the video's and the sound's streams
        # The writer thread's:
        self._settings: VideoSettings | None = None
        self._timeline = Timeline(live)
        self._place = 0.0  # the last packet's place on the timeline (seconds)
        self._file_place = 0.0  # the open file's first packet's
        self._last_dts: int | None = None  # the last packet written's decoding time, in its time base
        self._held: SourcePacket | None = None  # the last packet taken, not yet written
        self._splits = False  # whether this connection has sent a frame in several packets
        self._awaiting_key = True
        self._shift: float | None = None  # a video packet's place less its source time: where the sound goes
        self._last_sound: int | None = None  # the last sound packet written's time, in its time base
        self._sound_after: list[SourcePacket] = []  # sound that came while a video packet was held back

    # -- the capture thread's ------------------------------------------------------------

    def opened(self, video: Any, audio: Any = None) -> None:
        """The source (re)connected: ``video`` is its video stream, ``audio`` its sound (if
        any), whose packets follow."""
        codec = video.codec_context.name
        refusal = uncopied(self.stream, codec, self.clips)
        self._refused = refusal is not None
        if refusal is not None:
            self._fail(RecorderError(refusal))
            return
        if codec not in PLAYED_EVERYWHERE:
            log.warning("stream %r sends %s video, %s as it is: browsers play it only where the hardware decodes "
                        "it (%s: annotated gives H.264)", self.stream, codec, "clipped" if self.clips else "recorded",
                        "clip_mode" if self.clips else "record")
        if audio is not None and audio.codec_context.name not in SOUND_COPYABLE:
            log.info("stream %r: its %s sound is recorded as AAC (an MP4 browsers play holds AAC, Opus or MP3)",
                     self.stream, audio.codec_context.name)
        self._indices = (video.index, None if audio is None else audio.index)
        if not self._thread.is_alive() and not self._failed.is_set():
            self._thread.start()
        self._put(self._settings_of(video, audio), wait=True)

    def packet(self, packet: Packet, arrived: float | None) -> None:
        """One of the stream's packets as read (``arrived``: when, for a network stream)."""
        if self._refused or self._failed.is_set() or packet.size == 0:
            return
        if packet.stream_index != self._indices[0]:  # sound: a camera's is dropped with its pictures, not counted
            if packet.stream_index == self._indices[1] and not self._resync:
                self._put(SourcePacket(bytes(packet), packet.pts, packet.dts, packet.duration or 0, packet.time_base,
                                       True, self._clock() if arrived is None else arrived, sound=True),
                          wait=not self.live)
            return
        key = bool(packet.is_keyframe)
        if self._resync and not key:
            self._lose(1)
            return
        item = SourcePacket(bytes(packet), packet.pts, packet.dts, packet.duration or 0, packet.time_base, key,
                            self._clock() if arrived is None else arrived)
        self._resync = not self._put(item, wait=not self.live)
        if self._resync:
            self._lose(1)

    def _put(self, item: object, wait: bool) -> bool:
        """Queue ``item``; a camera's packet only if there is room (False if not), else
        waiting for room (not when the writer has failed)."""
        while not self._failed.is_set():
            try:
                if wait:
                    self._queue.put(item, timeout=0.5)
                else:
                    self._queue.put_nowait(item)
                return True
            except queue.Full:
                if not wait:
                    return False
        return False

    def _lose(self, count: int) -> None:
        with self._lock:
            self._overrun += count

    def _settings_of(self, video: Any, audio: Any) -> VideoSettings:
        holder = av.open(io.BytesIO(), mode="w", format="mp4")
        template = holder.add_stream_from_template(video, opaque=True)
        transcoder = None
        if audio is not None and audio.codec_context.name not in SOUND_COPYABLE:
            try:
                transcoder = _Transcoder(audio)
            except (av.error.FFmpegError, ValueError) as exc:  # a sound FFmpeg cannot decode: the video alone
                log.warning("stream %r: its %s sound is not recorded: %s", self.stream, audio.codec_context.name, exc)
                audio = None
        sound = (None if audio is None else transcoder.stream if transcoder is not None
                 else holder.add_stream_from_template(audio, opaque=True))
        context = video.codec_context
        rate = video.average_rate or video.guessed_rate or video.base_rate
        rate = Fraction(rate).limit_denominator(1001) if rate and 0 < rate <= 1000 else Fraction(30)
        key = (context.name, context.width, context.height, video.time_base, bytes(context.extradata or b""),
               None if audio is None else (audio.codec_context.name, audio.codec_context.sample_rate, audio.time_base,
                                           bytes(audio.codec_context.extradata or b"")))
        return VideoSettings(holder, template, rate, key, sound, transcoder)

    # -- the writer thread's -------------------------------------------------------------

    def switch(self, on: bool) -> None:
        """Its recording switched on or off (:meth:`VideoRecorder.switch`), after the packets
        queued before."""
        if self._thread.is_alive():
            self._put(Switched(on), wait=True)
        else:  # no packet yet: its thread starts with the first connection
            self.off = not on

    def finish(self) -> None:
        """The stream's last packets are queued (its capture has ended): write them, close
        the file."""
        if self._thread.is_alive():
            self._put(_FINISH, wait=True)

    def join(self, timeout: float) -> bool:
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while (item := self._next()) is not _FINISH:
                self._count_overrun()
                if isinstance(item, VideoSettings):
                    self._connect(item)
                elif isinstance(item, Switched):
                    self.turned(item.on)
                else:
                    assert isinstance(item, SourcePacket)
                    self._take(item)
            self._count_overrun()
            self._take(None)
        except BaseException as exc:  # anything else: this stream's recording ends, the others go on
            self._fail(exc)
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            try:
                self._end_file()
            except Exception as exc:
                self.error = self.error or exc
            self._settings = None

    def _next(self) -> object:
        """The next packet, new settings or :data:`_FINISH` from the capture thread."""
        return self._queue.get()

    def _fail(self, exc: BaseException) -> None:
        self.error = self.error or exc
        self._failed.set()
        log.error("%s", exc)
        if self.owner.on_error is not None:
            self.owner.on_error(self.stream, str(exc))

    def _count_overrun(self) -> None:
        with self._lock:
            lost, self._overrun = self._overrun, 0
        if lost:
            self.pause.lose(lost, "the disk did not keep up with the camera")

    def _connect(self, settings: VideoSettings) -> None:
        self._take(None)  # the last connection's last packet, and sound
        if self._settings is not None and settings.key != self._settings.key:
            log.info("stream %r: the camera's video changed (%s %dx%d now), its files start again",
                     self.stream, *settings.key[:3])
            self._end_file()
        self._settings = settings
        self._awaiting_key = True  # what comes before the next key frame cannot be decoded
        self._splits = False

    def _take(self, packet: SourcePacket | None) -> None:
        """Hold ``packet`` back until the next shows whether it is all of its frame: a camera
        may send a frame's slices in packets of their own, all with the frame's time (the
        first packets of an RTSP session have none yet). ``None``: no more are coming. Sound
        goes where the video is, at once."""
        if packet is not None and packet.sound:
            if self._held is not None:  # it goes after the video packet held back, which comes first
                self._sound_after.append(packet)
            else:
                self._store_sound(packet)
            return
        held, self._held = self._held, packet
        if held is None:
            self._end_sound(packet)
            return
        if packet is not None and same_frame(held.pts, held.key, packet.pts, packet.key):
            self._held = SourcePacket(held.data + packet.data, packet.pts, packet.dts, packet.duration,
                                      packet.time_base, held.key, held.arrived)
            self._splits = True
            return
        self._write_held(held, last=packet is None)
        self._end_sound(packet)

    def _write_held(self, held: SourcePacket, last: bool) -> None:
        """The packet held back, whole (``last``: no more of its frame may come), and the sound
        that came after it."""
        # A camera that splits its key frames, whose last one's rest never came (the run
        # stopped, the camera went away): half a picture is not worth keeping.
        unfinished = last and self._splits and held.key
        if held.key:
            self._awaiting_key = False
        if not self._awaiting_key and not unfinished:
            self._store(held)
        sound, self._sound_after = self._sound_after, []
        for item in sound:
            self._store_sound(item)

    def turned(self, on: bool) -> None:
        if not on and self._held is not None:  # the last packet given before the switch is in the file it ends
            held, self._held = self._held, None
            self._write_held(held, last=True)
        super().turned(on)

    def _end_sound(self, packet: SourcePacket | None) -> None:
        """At a connection's end (``packet`` ``None``), what the sound's encoder still holds."""
        settings = self._settings
        if packet is None and settings is not None and settings.transcoder is not None:
            try:
                self._write_made(settings.transcoder.flush())
            except (av.error.FFmpegError, ValueError) as exc:
                log.debug("stream %r: the sound's last samples not made AAC: %s", self.stream, exc)

    def _store(self, packet: SourcePacket) -> None:
        settings = self._settings
        assert settings is not None
        stamp = packet.dts if packet.dts is not None else packet.pts
        seconds = None if stamp is None or packet.time_base is None else float(stamp * packet.time_base)
        self._place = self._timeline.place(seconds, packet.arrived, float(settings.rate))
        if seconds is not None:
            self._shift = self._place - seconds
        self._placed(settings, packet, self._place)

    def _placed(self, settings: VideoSettings, packet: SourcePacket, place: float) -> None:
        """A video packet, whole, at its ``place`` on the stream's timeline: into the files,
        a new one at a key frame once the open one is a segment long."""
        if self.off:
            return
        segment = self.owner.segment
        # Half a frame short is as good: the timestamps of a camera's frames jitter.
        due = self._file is None or (segment is not None
                                     and place - self._file_place >= segment - 0.5 / float(settings.rate))
        if due and packet.key:
            if not self.pause.due():
                return
            if self._file is not None:
                self._follows = self._started + (place - self._file_place)
            arrived = wall_time(packet.arrived)
            started = arrived if self._follows is None else max(arrived, self._follows)
            self._end_file()
            self._write(settings, packet, place, started)
        elif self._file is not None:
            self._write(settings, packet, place, None)
        elif self.pause.paused:
            self.pause.skip()  # waiting for a key frame to start again

    def _store_sound(self, packet: SourcePacket) -> None:
        """A sound packet (or the AAC it is made into) into the open file, at its place beside
        the video (the source's clock, moved as the video's was); dropped when no file is open
        or it would come before the file's first frame."""
        stamp = packet.pts if packet.pts is not None else packet.dts
        settings = self._settings
        if (settings is None or settings.sound is None or self._shift is None or stamp is None
                or packet.time_base is None):
            return
        place = float(stamp * packet.time_base) + self._shift
        if settings.transcoder is None:
            self._sound_placed(packet.data, place, packet.duration, packet.time_base)
            return
        try:
            made = settings.transcoder.encode(packet.data, stamp, packet.time_base, place)
        except (av.error.FFmpegError, ValueError) as exc:  # a damaged packet: its sound is missing
            log.debug("stream %r: a sound packet not made AAC: %s", self.stream, exc)
            return
        self._write_made(made)

    def _write_made(self, made: list[tuple[Packet, float]]) -> None:
        for encoded, at in made:
            assert encoded.time_base is not None
            self._sound_placed(bytes(encoded), at, encoded.duration or 0, encoded.time_base)

    def _sound_placed(self, data: bytes, place: float, duration: int, time_base: Fraction) -> None:
        """A sound packet (in the files' form) at its ``place`` on the stream's timeline."""
        self._write_sound(data, place, duration, time_base)

    def _write_sound(self, data: bytes, place: float, duration: int, time_base: Fraction) -> None:
        file = self._file
        if file is None or place < self._file_place:
            return
        self._last_sound = dts = _after(round(place / time_base), self._last_sound)
        try:
            file.add_sound([_copy(data, dts, dts, duration, time_base)])
        except (OSError, RecorderError) as exc:  # as a video packet's write
            self.abandon()
            self.failed_write(exc)

    def _write(self, settings: VideoSettings, packet: SourcePacket, place: float, started: float | None) -> None:
        """``packet`` at ``place`` into the open file, or a new one that starts at wall-clock
        time ``started`` (a key frame)."""
        time_base = packet.time_base or settings.template.time_base or Fraction(1, 90000)
        # A camera may send two frames with one time; a new file starts its own times.
        dts = round(place / time_base)
        self._last_dts = dts = dts if started is not None else _after(dts, self._last_dts)
        delay = packet.pts - packet.dts if packet.pts is not None and packet.dts is not None else 0
        copy = _copy(packet.data, dts, dts + max(0, delay), packet.duration, time_base, packet.key)
        try:
            if started is not None:
                self._file_place = place
                self._last_sound = None
                self._open(settings.template, settings.rate, copy, started, sound=settings.sound)
            else:
                assert self._file is not None
                self._file.add([copy])
        except (OSError, RecorderError) as exc:  # a full disk, a share gone: pause, and try again later
            self.abandon()
            self.failed_write(exc)
            return
        self.pause.succeeded()
        if self._file is not None:
            self.mark(self._file)  # objects seen in it meanwhile (the results come in another thread)


def _after(time: int, last: int | None) -> int:
    """``time``, or just after ``last`` if it is not after it: a file's times only go on.

    >>> _after(5, None), _after(5, 4), _after(5, 5), _after(3, 5)
    (5, 5, 6, 6)
    """
    return time if last is None or time > last else last + 1


def _copy(data: bytes, dts: int, pts: int, duration: int, time_base: Fraction, key: bool = False) -> Packet:
    """A packet of ``data`` at those times, for a file."""
    packet = av.Packet(data)
    packet.dts, packet.pts, packet.duration, packet.time_base, packet.is_keyframe = dts, pts, duration, time_base, key
    return packet
