"""Detectors: the protocol, the Ultralytics adapter and its factories."""

from streamyolo.inference.detector import Detector, DetectorFactory
from streamyolo.inference.models import (
    DEMO_MODEL,
    DEMO_MODEL_PATH,
    DetectSettings,
    LockedDetector,
    SharedFactory,
    UltralyticsDetector,
    UltralyticsFactory,
    resolve_device,
    resolve_model,
)

__all__ = ["DEMO_MODEL", "DEMO_MODEL_PATH", "DetectSettings", "Detector", "DetectorFactory", "LockedDetector",
           "SharedFactory", "UltralyticsDetector", "UltralyticsFactory", "resolve_device", "resolve_model"]
