"""Capture and inference threads."""

from streamyolo.workers.capture import CaptureWorker
from streamyolo.workers.inference import Channel, InferenceWorker

__all__ = ["CaptureWorker", "Channel", "InferenceWorker"]
