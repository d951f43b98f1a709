"""Capture and inference threads, and the process that can hold a worker's model.

Imported lazily, so that a child process that needs only :mod:`streamyolo.workers.process`
does not import capture (and, through it, the pipeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamyolo.workers.capture import CaptureWorker
    from streamyolo.workers.inference import Channel, InferenceWorker
    from streamyolo.workers.process import (
        ChildProcessGone,
        ProcessDetector,
        ProcessDetectorFactory,
        RestartCounts,
        RestartingDetector,
    )

__all__ = ["CaptureWorker", "Channel", "ChildProcessGone", "InferenceWorker", "ProcessDetector",
           "ProcessDetectorFactory", "RestartCounts", "RestartingDetector"]

_LAZY = {
    "CaptureWorker": "streamyolo.workers.capture",
    "Channel": "streamyolo.workers.inference",
    "InferenceWorker": "streamyolo.workers.inference",
    "ProcessDetector": "streamyolo.workers.process",
    "ProcessDetectorFactory": "streamyolo.workers.process",
    "ChildProcessGone": "streamyolo.workers.process",
    "RestartingDetector": "streamyolo.workers.process",
    "RestartCounts": "streamyolo.workers.process",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamyolo.workers' has no attribute {name!r}")
