"""Where results go: recordings, JSONL, events, the window, the caller's iterator."""

from streamyolo.sinks.base import FanOut, Sink
from streamyolo.sinks.collect import QueueSink
from streamyolo.sinks.display import TiledDisplay, display_available
from streamyolo.sinks.events import EventSink
from streamyolo.sinks.jsonl import JsonlSink
from streamyolo.sinks.recorder import VideoRecorder

__all__ = ["EventSink", "FanOut", "JsonlSink", "QueueSink", "Sink", "TiledDisplay", "VideoRecorder",
           "display_available"]
