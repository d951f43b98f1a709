"""Source strings: ``[name=]uri``, their kind, default names and checks done up front."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from streamyolo.errors import SourceNotFoundError, UnsupportedSourceError, meant
from streamyolo.sources.base import SourceKind
from streamyolo.sources.redact import redact_url

_NAMED = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)=(?P<uri>.+)$")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):")
_NETWORK_SCHEMES = {"rtsp": SourceKind.RTSP, "rtsps": SourceKind.RTSP, "rtmp": SourceKind.RTSP,
                    "rtmps": SourceKind.RTSP, "http": SourceKind.HTTP, "https": SourceKind.HTTP}
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".ts", ".mts", ".flv", ".wmv",
                            ".mpg", ".mpeg", ".h264", ".264", ".hevc", ".h265", ".mjpeg", ".mjpg", ".gif",
                            ".jpg", ".jpeg", ".png", ".bmp"})
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed source: its stream name, the URI as given, and its kind."""

    name: str
    uri: str
    kind: SourceKind

    @property
    def display_uri(self) -> str:
        """The URI with any credentials redacted: safe to print, log and write."""
        return redact_url(self.uri)


def split_name(text: str) -> tuple[str | None, str]:
    """``"cam1=rtsp://x"`` → ``("cam1", "rtsp://x")``; an unnamed string → ``(None, text)``."""
    match = _NAMED.match(text.strip())
    if match and not _SCHEME.match(text.strip()):
        return match["name"], match["uri"].strip()
    return None, text.strip()


def source_kind(uri: str) -> SourceKind:
    """Classify ``uri``; raise :class:`UnsupportedSourceError` for schemes we cannot read."""
    if uri.isdigit():
        return SourceKind.WEBCAM
    if uri.startswith("/dev/video"):
        return SourceKind.WEBCAM
    if uri.startswith("synthetic:"):
        return SourceKind.SYNTHETIC
    match = _SCHEME.match(uri)
    if match and len(match["scheme"]) > 1:  # one letter is a Windows drive, not a scheme
        scheme = match["scheme"].lower()
        if scheme in _NETWORK_SCHEMES:
            return _NETWORK_SCHEMES[scheme]
        if scheme == "file":
            return SourceKind.FILE
        raise UnsupportedSourceError(
            f"unsupported source scheme {scheme!r} in {redact_url(uri)!r} "
            "(use a file path, rtsp://, rtmp://, http(s)://, a webcam index or synthetic:)"
            + meant(scheme, [*_NETWORK_SCHEMES, "file"], "{}://")
        )
    return SourceKind.FILE


def file_path(uri: str) -> Path:
    return Path(urlsplit(uri).path if uri.startswith("file:") else uri).expanduser()


def default_name(uri: str, kind: SourceKind, index: int) -> str:
    """A file's stem (sanitised), else ``cam<index>``."""
    if kind is SourceKind.FILE:
        stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", file_path(uri).stem)
        if stem and NAME_PATTERN.match(stem):
            return stem
    return f"cam{index}"


def expand(uri: str) -> list[str]:
    """A folder becomes the video files inside it; a glob pattern, the files it matches."""
    if source_kind(uri) is not SourceKind.FILE:
        return [uri]
    path = file_path(uri)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise SourceNotFoundError(f"source folder {uri!r} holds no video files")
        return [str(p) for p in files]
    if any(ch in uri for ch in "*?["):
        matches = sorted(glob.glob(os.path.expanduser(uri)))
        if not matches:
            raise SourceNotFoundError(f"source pattern {uri!r} matches no files")
        return matches
    return [uri]


def check_file_source(name: str, uri: str) -> None:
    """Fail early, naming the stream, when a file source does not exist or cannot be read."""
    path = file_path(uri)
    if not path.exists():
        raise SourceNotFoundError(f"stream {name!r}: file not found: {uri!r}", stream=name, url=uri)
    if path.is_dir():
        raise SourceNotFoundError(f"stream {name!r}: {uri!r} is a folder, not a video file", stream=name, url=uri)
    if not os.access(path, os.R_OK):
        raise SourceNotFoundError(f"stream {name!r}: file not readable: {uri!r}", stream=name, url=uri)
