"""Keep Ultralytics off the network.

Ultralytics decides at import time whether it is online (``ultralytics.utils.ONLINE``) and
whether it may ``pip install`` missing packages (``YOLO_AUTOINSTALL``); online it also sends
analytics events and may fetch fonts and weights. streamyolo runs on boxes without internet,
so every import of Ultralytics goes through :func:`import_ultralytics`, which sets the two
switches first unless the user has set them. Weight downloads are prevented separately:
:func:`streamyolo.inference.models.resolve_model` refuses model names that are not local.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

OFFLINE_ENV = {"YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false"}


def import_ultralytics() -> ModuleType:
    """Import and return the ``ultralytics`` package with the offline switches set."""
    if "ultralytics" not in sys.modules:
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
    import ultralytics

    return ultralytics


def preload() -> None:
    """Import what building a model imports (Ultralytics, and torchvision, which Ultralytics
    pulls in on its first forward pass: about 2.5 s together on a small CPU).

    Called on the main thread while a pipeline is being checked, so that inference threads
    do not take turns on Python's import lock at start-up.
    """
    import_ultralytics()
    try:
        import torchvision  # noqa: F401
    except ImportError:  # Ultralytics works without it
        pass
