"""Files and network streams (RTSP, RTMP, HTTP MJPEG/HLS) decoded in-process with PyAV.

FFmpeg does the demuxing and decoding with the GIL released, so capture threads run in
parallel with inference. Network sources get open and read time-outs, which PyAV enforces
through FFmpeg's interrupt callback, so a dead camera cannot hang its thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import av
import av.error

from streamyolo.errors import SourceNotFoundError, SourceOpenError, SourceReadError
from streamyolo.frames import Image
from streamyolo.sources.base import RawFrame, SourceInfo, SourceKind
from streamyolo.sources.redact import redact_text, redact_url, url_secrets
from streamyolo.sources.spec import file_path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """Time-outs and transport for network sources."""

    open_timeout: float = 10.0
    read_timeout: float = 10.0
    transport: str = "tcp"


class PyAVSource:
    """Reads one video stream with PyAV. Not thread-safe: one capture thread uses it;
    only :meth:`interrupt` may be called from elsewhere."""

    def __init__(
        self,
        name: str,
        uri: str,
        kind: SourceKind,
        network: NetworkOptions | None = None,
        decoder_threads: int = 2,
    ) -> None:
        self.name = name
        self.uri = uri
        self.kind = kind
        self.network = network or NetworkOptions()
        self.decoder_threads = decoder_threads
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._interrupted = threading.Event()
        self._secrets = url_secrets(uri)

    # -- FrameSource ---------------------------------------------------------------------

    def open(self) -> SourceInfo:
        self._interrupted.clear()
        target = str(file_path(self.uri)) if self.kind is SourceKind.FILE else self.uri
        if self.kind is SourceKind.FILE and not file_path(self.uri).exists():
            raise SourceNotFoundError(self._message(f"file not found: {self.uri!r}"), stream=self.name, url=self.uri)
        try:
            container = av.open(target, mode="r", options=self._options(), timeout=self._timeouts())
        except av.error.FileNotFoundError as exc:
            raise SourceNotFoundError(self._message(f"not found: {self._reason(exc)}"),
                                      stream=self.name, url=self.display_uri) from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceOpenError(self._message(f"cannot open: {self._reason(exc)}"),
                                  stream=self.name, url=self.display_uri) from exc
        try:
            stream = container.streams.video[0]
        except IndexError:
            container.close()
            raise SourceOpenError(self._message("has no video stream"),
                                  stream=self.name, url=self.display_uri) from None
        stream.thread_type = "AUTO" if self.kind is SourceKind.FILE else "SLICE"
        stream.thread_count = self.decoder_threads
        self._container = container
        self._frames = container.decode(stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else None
        if fps is not None and not 0 < fps <= 1000:
            fps = None
        ctx = stream.codec_context
        return SourceInfo(width=ctx.width, height=ctx.height, fps=fps, codec=ctx.name)

    def read(self) -> RawFrame | None:
        if self._frames is None:
            raise SourceReadError(self._message("read before open"), stream=self.name, url=self.display_uri)
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except av.error.EOFError:
            return None
        except (av.error.FFmpegError, OSError) as exc:
            if self._interrupted.is_set():
                return None
            raise SourceReadError(self._message(f"read failed: {self._reason(exc)}"),
                                  stream=self.name, url=self.display_uri) from exc
        image = cast(Image, frame.to_ndarray(format="bgr24"))
        pts = float(frame.time) if frame.time is not None else None
        return RawFrame(image=image, pts=pts)

    def close(self) -> None:
        frames, self._frames = self._frames, None
        container, self._container = self._container, None
        if frames is not None and hasattr(frames, "close"):
            frames.close()
        if container is not None:
            container.close()

    def interrupt(self) -> None:
        self._interrupted.set()

    # -- helpers -------------------------------------------------------------------------

    @property
    def display_uri(self) -> str:
        return redact_url(self.uri)

    def _options(self) -> dict[str, str]:
        if self.kind is SourceKind.RTSP and self.uri.lower().startswith("rtsp"):
            return {"rtsp_transport": self.network.transport, "fflags": "nobuffer", "flags": "low_delay"}
        if self.kind is SourceKind.HTTP:
            return {"reconnect": "0"}
        return {}

    def _timeouts(self) -> Any:
        if self.kind is SourceKind.FILE:
            return None
        return (self.network.open_timeout, self.network.read_timeout)

    def _message(self, what: str) -> str:
        return f"stream {self.name!r} ({self.display_uri}): {what}"

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, av.error.ExitError):
            return "timed out" if not self._interrupted.is_set() else "interrupted"
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return redact_text(str(text).splitlines()[0], self._secrets)
