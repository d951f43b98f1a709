"""From a validated config to the parts of a pipeline, checking everything that can be
checked before a thread starts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from streamyolo.buffering import Overflow
from streamyolo.config import PipelineConfig, StreamConfig
from streamyolo.errors import ConfigError, OutputError, SourceNotFoundError
from streamyolo.sources import (
    FrameSource,
    NetworkOptions,
    PyAVSource,
    SourceKind,
    SourceSpec,
    open_source,
    redact_url,
    source_kind,
)
from streamyolo.sources.base import PacketTap
from streamyolo.sources.spec import check_file_source, default_name, expand
from streamyolo.sources.synthetic import SyntheticParams

log = logging.getLogger(__name__)

LOSSLESS_CAPACITY = 8
LIVE_CAPACITY = 2


@dataclass(frozen=True, slots=True)
class ResolvedStream:
    """One stream with every default applied."""

    spec: SourceSpec
    config: StreamConfig
    overflow: Overflow
    capacity: int
    missing: str | None = None
    """Why its file cannot be read (not found, a folder, not readable), if it cannot: the
    stream fails as it opens, the others go on; ``check`` says so and exits with 2."""


def resolve_streams(config: PipelineConfig) -> list[ResolvedStream]:
    """Expand folders and globs, name every stream, apply defaults by source kind, and
    check files and synthetic parameters. Raises with a message naming the stream; a file
    that cannot be read fails its stream alone (:attr:`ResolvedStream.missing`, logged), unless
    every stream's is such a file: then nothing could run, and that is raised."""
    if not config.streams:
        raise ConfigError("no streams given (use --source, or 'streams:' in the config file)")
    if not any(stream.enabled for stream in config.streams):
        raise ConfigError("every stream is disabled (enabled: false): nothing to watch")
    entries: list[tuple[str | None, str, StreamConfig]] = []
    for stream in (stream for stream in config.streams if stream.enabled):
        uris = expand(stream.source)
        if stream.name and len(uris) > 1:
            entries.extend((f"{stream.name}-{Path(u).stem}", u, stream) for u in uris)
        else:
            entries.extend((stream.name, u, stream) for u in uris)

    explicit = [name for name, _, _ in entries if name]
    duplicates = sorted({n for n in explicit if explicit.count(n) > 1})
    if duplicates:
        raise ConfigError(f"stream name {duplicates[0]!r} is used twice; stream names must be unique")
    taken = set(explicit)
    resolved: list[ResolvedStream] = []
    for index, (given, uri, stream) in enumerate(entries):
        kind = source_kind(uri)
        name = given or _unique(default_name(uri, kind, index), taken)
        missing = None
        if kind is SourceKind.FILE:
            try:
                check_file_source(name, uri)
            except SourceNotFoundError as exc:
                if len(entries) == 1:
                    raise
                missing = str(exc)
        elif kind is SourceKind.SYNTHETIC:
            SyntheticParams.parse(uri)
        recorded = source_kind(stream.record_source) if stream.record_source is not None else None
        if recorded is not None and recorded not in (SourceKind.RTSP, SourceKind.HTTP):
            raise ConfigError(f"stream {name!r}: record_source {redact_url(stream.record_source or '')!r} is a "
                              f"{recorded.value}; give a camera's stream (rtsp://, rtmp://, http(s)://)")
        if kind in (SourceKind.SYNTHETIC, SourceKind.WEBCAM):
            if recorded is None and config.record_of(stream) == "original":
                key = "record: original" if stream.record == "original" else "record_mode: original"
                raise ConfigError(f"stream {name!r}: {key} copies the video its source sends, and a {kind.value} "
                                  "source sends pictures, not video; record this stream annotated "
                                  "(record: annotated)")
            if recorded is None and config.clips_of(stream) == "original":
                raise ConfigError(f"stream {name!r}: clip_mode: original copies the video its source sends, and a "
                                  f"{kind.value} source sends pictures, not video; give clip_mode: annotated")
        live = kind.is_live or stream.realtime
        overflow_name = stream.overflow or ("live" if live else "lossless")
        overflow = Overflow(overflow_name)
        capacity = stream.buffer or (LIVE_CAPACITY if overflow is Overflow.DROP_OLDEST else LOSSLESS_CAPACITY)
        resolved.append(ResolvedStream(SourceSpec(name, uri, kind), stream, overflow, capacity, missing))
    if all(s.missing is not None for s in resolved):
        raise SourceNotFoundError(str(resolved[0].missing))  # (every one: nothing could run)
    for s in resolved:
        if s.missing is not None:
            log.error("%s: the stream fails, the others go on", s.missing)
    return resolved


def _unique(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3`` … whichever is free; marks it taken."""
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def check_output_file(path: Path, what: str) -> None:
    """The parent folder of an output file must exist (or be creatable) and be writable."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {str(path)!r}: folder cannot be created: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{what} {str(path)!r} is not writable")


def open_stream(stream: ResolvedStream, defer_conversion: bool = False,
                packets: PacketTap | None = None) -> FrameSource:
    """``stream``'s source as its config asks (connection settings, decoder threads, looping,
    turning, privacy areas), not yet opened; ``packets`` gets its compressed video as read."""
    return open_source(stream.spec, network_options(stream.config), decoder_threads=stream.config.decoder_threads,
                       loop=stream.config.loop, defer_conversion=defer_conversion, rotate=rotation(stream.config),
                       hidden=[area.points for area in (stream.config.privacy or {}).values()], packets=packets,
                       catch_up=stream.overflow is Overflow.DROP_OLDEST)


def recording_source(stream: ResolvedStream, packets: PacketTap | None = None) -> PyAVSource | None:
    """``stream``'s ``record_source`` (the camera's stream recorded, not watched), its packets
    going to ``packets``; ``None`` without one."""
    uri = stream.config.record_source
    if uri is None:
        return None
    return PyAVSource(stream.spec.name, uri, source_kind(uri), network=network_options(stream.config), packets=packets)


def rotation(stream: StreamConfig) -> int | None:
    """Degrees clockwise ``stream``'s pictures are turned; ``None``: as its source says."""
    return None if stream.rotate == "auto" else stream.rotate


def network_options(stream: StreamConfig) -> NetworkOptions:
    """A stream's connection settings, as its source takes them."""
    return NetworkOptions(open_timeout=stream.open_timeout, read_timeout=stream.read_timeout,
                          stall_timeout=stream.stall_timeout, transport=stream.transport)
