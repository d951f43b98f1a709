"""Build, start, watch, stop and join the pipeline."""

from streamyolo.pipeline.health import StreamHealth, StreamState
from streamyolo.pipeline.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.report import StatusPrinter, StreamReport, Summary

__all__ = ["Pipeline", "StatusPrinter", "StreamHealth", "StreamReport", "StreamSetup", "StreamState", "Summary"]
