"""The FrameSource seam: anything that yields BGR frames one at a time."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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
