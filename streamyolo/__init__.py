"""streamyolo: watch many video streams at once with Ultralytics YOLO.

::

    from streamyolo import Pipeline
    summary = Pipeline.from_config({"streams": ["a.mp4"], "record": "runs/rec"}).run()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# OpenCV before PyAV, always: both wheels bundle their own libxcb under the same file names,
# and whichever loads first wins. With PyAV's copy loaded first, OpenCV's Qt window hangs
# forever in its first X request. Every module that uses PyAV lives in this package, so
# loading cv2 here, first, keeps the window working.
import cv2  # noqa: F401

__version__ = "0.1.0"

if TYPE_CHECKING:
    from streamyolo.config import PipelineConfig, build_config
    from streamyolo.frames import Detections, Frame, FrameMeta, Result
    from streamyolo.pipeline import Pipeline, Summary

__all__ = [
    "Detections",
    "Frame",
    "FrameMeta",
    "Pipeline",
    "PipelineConfig",
    "Result",
    "Summary",
    "__version__",
    "build_config",
]

_LAZY = {
    "Pipeline": "streamyolo.pipeline", "Summary": "streamyolo.pipeline",
    "PipelineConfig": "streamyolo.config", "build_config": "streamyolo.config",
    "Detections": "streamyolo.frames", "Frame": "streamyolo.frames", "FrameMeta": "streamyolo.frames",
    "Result": "streamyolo.frames",
}


def __getattr__(name: str) -> Any:
    """Import the heavy parts (PyAV, OpenCV) only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamyolo' has no attribute {name!r}")
