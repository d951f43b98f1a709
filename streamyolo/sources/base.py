"""The FrameSource seam: anything that yields BGR frames one at a time."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import cv2
import numpy as np

from streamyolo.frames import Image


class SourceKind(enum.Enum):
    FILE = "file"
    RTSP = "rtsp"
    HTTP = "http"
    WEBCAM = "webcam"
    SYNTHETIC = "synthetic"

    @property
    def is_live(self) -> bool:
        """Cameras and URLs deliver frames whether we keep up or not."""
        return self in (SourceKind.RTSP, SourceKind.HTTP, SourceKind.WEBCAM)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source reports once opened."""

    width: int
    height: int
    fps: float | None
    codec: str | None = None


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One decoded picture and its presentation time in seconds, if the source knows it.

    A source asked to defer colour conversion may give ``convert`` (which makes the BGR
    image on demand) instead of ``image``; see :class:`~streamyolo.frames.Frame`.
    ``arrived`` is ``time.monotonic()`` when the frame's data arrived, for a source that
    knows it (a network stream: when its packet was read, before decoding); else the
    capture thread takes the moment ``read`` returned.
    """

    image: Image | None
    pts: float | None = None
    convert: Callable[[], Image] | None = None
    arrived: float | None = None


class FrameSource(Protocol):
    """A readable stream of frames, used by exactly one capture thread.

    ``open`` and ``read`` may block, but never forever: network sources carry time-outs,
    and ``interrupt`` (callable from any thread) cuts a blocking call short.
    ``read`` returns ``None`` at a clean end of stream and raises
    :class:`~streamyolo.errors.SourceReadError` on failure.
    """

    def open(self) -> SourceInfo: ...

    def read(self) -> RawFrame | None: ...

    def close(self) -> None: ...

    def interrupt(self) -> None: ...


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turn(image: Image, clockwise: int) -> Image:
    """``image`` turned ``clockwise`` degrees (0, 90, 180 or 270): a new array, or ``image``
    itself for 0.

    >>> turn(np.arange(6, dtype=np.uint8).reshape(2, 3), 90).tolist()
    [[3, 0], [4, 1], [5, 2]]
    """
    if clockwise % 360 == 0:
        return image
    return cast(Image, cv2.rotate(image, _ROTATE[clockwise % 360]))


def turned(info: SourceInfo, clockwise: int) -> SourceInfo:
    """What a source reports once its pictures are turned ``clockwise`` degrees."""
    return replace(info, width=info.height, height=info.width) if clockwise % 180 == 90 else info


def same_frame(pts: int | None, key: bool, then_pts: int | None, then_key: bool) -> bool:
    """Whether a video packet (its time ``pts``, a key frame or not) and the next hold parts
    of one frame: the next has the same time, or, at the start of an RTSP session, whose first
    packet has no time yet, both are parts of a key frame.

    >>> same_frame(3000, False, 3000, False), same_frame(None, True, 0, True), same_frame(0, True, 3000, False)
    (True, True, False)
    """
    return then_pts is not None and (then_pts == pts or (pts is None and key and then_key))


class PacketTap(Protocol):
    """Takes a source's compressed video packets as it reads them, before decoding (the
    recording of a camera's original video). Called in the capture thread only."""

    def opened(self, video: Any, audio: Any = None) -> None:
        """The source (re)connected; ``video``: its PyAV video stream, ``audio`` its sound
        (``None`` without), valid during this call."""
        ...

    def packet(self, packet: Any, arrived: float | None) -> None:
        """One of its packets, video or sound (``arrived``: ``time.monotonic()`` when read, for
        a network stream). May wait for room (a file's), never for long."""
        ...


@dataclass(frozen=True)
class Taps:
    """Several taps on one source (its recording and its clips, both of the original)."""

    taps: tuple[PacketTap, ...]

    def opened(self, video: Any, audio: Any = None) -> None:
        for tap in self.taps:
            tap.opened(video, audio)

    def packet(self, packet: Any, arrived: float | None) -> None:
        for tap in self.taps:
            tap.packet(packet, arrived)


def tap_of(*taps: PacketTap | None) -> PacketTap | None:
    """One tap for those given (``None`` for none).

    >>> tap_of(None, None) is None
    True
    """
    given = tuple(tap for tap in taps if tap is not None)
    return None if not given else given[0] if len(given) == 1 else Taps(given)


class PacketSource(Protocol):
    """A source read only for its compressed packets, which go to its :class:`PacketTap` (a
    camera's other stream, recorded while the model watches a smaller one)."""

    @property
    def display_uri(self) -> str: ...

    def open(self) -> SourceInfo: ...

    def read_packet(self) -> bool:
        """Hand the next packet to the tap; False once stopped or at a file's end."""
        ...

    def close(self) -> None: ...

    def interrupt(self) -> None: ...


class AdjustedSource:
    """A source whose pictures are turned ``clockwise`` degrees (a camera mounted on its side
    or upside down) and then have the ``hidden`` polygons (privacy areas, in the turned
    picture's pixels) blacked out, as they leave it (or on their first use, for a source that
    defers their conversion)."""

    def __init__(self, source: FrameSource, clockwise: int = 0,
                 hidden: Sequence[Sequence[tuple[float, float]]] = ()) -> None:
        self.source = source
        self.clockwise = clockwise
        self.hidden = [np.round(np.asarray(points, np.float64)).astype(np.int32) for points in hidden]

    def open(self) -> SourceInfo:
        return turned(self.source.open(), self.clockwise)

    def read(self) -> RawFrame | None:
        raw = self.source.read()
        if raw is None:
            return None
        if raw.image is not None:
            return replace(raw, image=self._adjust(raw.image))
        convert = raw.convert
        assert convert is not None
        return replace(raw, convert=lambda: self._adjust(convert()))

    @property
    def skipped(self) -> int:
        """The frames the source skipped to catch up with its camera (see ``PyAVSource.skipped``)."""
        return int(getattr(self.source, "skipped", 0))

    def close(self) -> None:
        self.source.close()

    def interrupt(self) -> None:
        self.source.interrupt()

    def _adjust(self, image: Image) -> Image:
        image = turn(image, self.clockwise)
        if self.hidden:  # the source's own new array, or the turned copy: never one it reuses
            cv2.fillPoly(image, self.hidden, (0, 0, 0))
        return image
