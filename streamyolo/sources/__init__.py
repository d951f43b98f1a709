"""Frame sources: files, network streams, cameras and synthetic scenes."""

from __future__ import annotations

from collections.abc import Sequence

from streamyolo.sources.base import AdjustedSource, FrameSource, PacketTap, RawFrame, SourceInfo, SourceKind
from streamyolo.sources.pyav import NetworkOptions, PyAVSource
from streamyolo.sources.redact import redact_text, redact_url
from streamyolo.sources.spec import SourceSpec, source_kind, split_name
from streamyolo.sources.synthetic import SyntheticSource, read_stamp, stamp, stream_tag
from streamyolo.sources.webcam import WebcamSource

__all__ = [
    "AdjustedSource", "FrameSource", "NetworkOptions", "PyAVSource", "RawFrame", "SourceInfo", "SourceKind",
    "SourceSpec", "SyntheticSource", "WebcamSource", "open_source", "read_stamp", "redact_text", "redact_url",
    "source_kind", "split_name", "stamp", "stream_tag",
]


def open_source(spec: SourceSpec, network: NetworkOptions | None = None, decoder_threads: int = 2,
                loop: bool = False, defer_conversion: bool = False, rotate: int | None = None,
                hidden: Sequence[Sequence[tuple[float, float]]] = (), packets: PacketTap | None = None,
                catch_up: bool = False) -> FrameSource:
    """The right reader for ``spec`` (not yet opened: opening is the capture thread's job).
    ``defer_conversion``: decoded streams hand frames over unconverted (``RawFrame.convert``),
    for the capture thread to convert or leave to the frame's first use. ``rotate``: degrees
    clockwise to turn every picture; ``None``: as a file's display matrix says (else 0).
    ``hidden``: polygons (privacy areas) blacked out of every picture, once turned.
    ``packets``: gets a decoded stream's compressed video packets as read (others have none).
    ``catch_up``: a network stream that falls behind skips ahead (``PyAVSource``'s; a live
    stream's, not one whose every frame is asked for)."""
    source: FrameSource
    if spec.kind is SourceKind.SYNTHETIC:
        source = SyntheticSource(spec.name, spec.uri)
    elif spec.kind is SourceKind.WEBCAM:
        source = WebcamSource(spec.name, spec.uri)
    else:
        source = PyAVSource(spec.name, spec.uri, spec.kind, network=network, decoder_threads=decoder_threads,
                            loop=loop, defer_conversion=defer_conversion, autorotate=rotate is None,
                            packets=packets, catch_up=catch_up)
    return AdjustedSource(source, rotate or 0, hidden) if rotate or hidden else source
