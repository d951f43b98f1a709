"""Build, start, watch, stop and join the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamyolo.pipeline.health import StreamHealth, StreamState
    from streamyolo.pipeline.pipeline import Pipeline, StreamSetup
    from streamyolo.pipeline.report import StatusPrinter, StreamReport, Summary

__all__ = ["Pipeline", "StatusPrinter", "StreamHealth", "StreamReport", "StreamSetup", "StreamState", "Summary"]

_LAZY = {
    "StreamHealth": "streamyolo.pipeline.health", "StreamState": "streamyolo.pipeline.health",
    "Pipeline": "streamyolo.pipeline.pipeline", "StreamSetup": "streamyolo.pipeline.pipeline",
    "StatusPrinter": "streamyolo.pipeline.report", "StreamReport": "streamyolo.pipeline.report",
    "Summary": "streamyolo.pipeline.report",
}


def __getattr__(name: str) -> Any:
    """The package's names, imported when first used: a module of it (``health``, which the
    workers import) imported on its own does not import the whole pipeline, whose modules
    import the workers (``import streamyolo.workers.inference`` first was an import cycle)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamyolo.pipeline' has no attribute {name!r}")
