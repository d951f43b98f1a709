"""Keep Ultralytics and OpenVINO off the network.

Ultralytics decides at import time whether it is online (``ultralytics.utils.ONLINE``) and
whether it may ``pip install`` missing packages (``YOLO_AUTOINSTALL``); online it also sends
analytics events and may fetch fonts and weights. streamyolo runs on boxes without internet,
so every import of Ultralytics goes through :func:`import_ultralytics`, which sets the two
switches first unless the user has set them. Weight downloads are prevented separately:
:func:`streamyolo.inference.models.resolve_model` refuses model names that are not local.

OpenVINO reaches out too: ``import openvino`` imports ``openvino.tools.ovc``, which sends a
usage event to Google Analytics (from a forked child process, even inside a threaded
program) unless ``CI=true`` or the user has opted out. Every import of OpenVINO — ours in
:func:`import_openvino`, and Ultralytics' own inside its OpenVINO backend — comes after
:func:`quiet_openvino_telemetry` has made it decline.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

OFFLINE_ENV = {"YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false"}

_wanted: dict[str, int | None] = {"ultralytics": None}
"""The level the application wants for Ultralytics' logger (None: leave Ultralytics' own)."""


def import_ultralytics() -> ModuleType:
    """Import and return the ``ultralytics`` package with the offline switches set (and its
    logger at the level of :func:`set_ultralytics_level`, if one was set)."""
    if "ultralytics" not in sys.modules:
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
    quiet_openvino_telemetry()  # Ultralytics imports OpenVINO itself when it loads such a model
    import ultralytics

    _apply_ultralytics_level()
    return ultralytics


def ultralytics_file(*parts: str) -> Path:
    """A file Ultralytics ships (``ultralytics_file("cfg", "trackers", "bytetrack.yaml")``),
    found without importing it (torch with it: seconds on a small box)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("No module named 'ultralytics'", name="ultralytics")
    return Path(spec.origin).parent.joinpath(*parts)


def set_ultralytics_level(level: int | None) -> None:
    """The level of Ultralytics' own logger, which writes to stdout ("Loading … for OpenVINO
    inference...", "Using OpenVINO LATENCY mode …"): set now if Ultralytics is imported, and
    again by :func:`import_ultralytics`, as Ultralytics sets its logger up when it is first
    imported. Its handler is moved to stderr too (its warnings beside streamyolo's log). The
    command line keeps it at WARNING (INFO with ``--log-level DEBUG``), so that stdout holds
    streamyolo's report alone; process workers carry it into their child."""
    _wanted["ultralytics"] = level
    if "ultralytics" in sys.modules:
        _apply_ultralytics_level()


def _apply_ultralytics_level() -> None:
    level = _wanted["ultralytics"]
    if level is None:
        return
    logger = logging.getLogger("ultralytics")
    logger.setLevel(level)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


@contextmanager
def held_ultralytics_warnings() -> Iterator[list[str]]:
    """Hold back the warnings Ultralytics logs on this thread while inside (its own
    multi-line, emoji-prefixed lines, written straight to the terminal); the list yielded
    collects their text, for the caller to drop (an error that says more) or to log as its
    own. Other threads' records pass: the filter looks at the thread that logged.

    >>> import logging
    >>> with held_ultralytics_warnings() as held:
    ...     logging.getLogger("ultralytics").warning("WARNING ⚠️ careful")
    >>> held
    ['WARNING ⚠️ careful']
    """
    logger = logging.getLogger("ultralytics")
    held: list[str] = []
    thread = threading.get_ident()

    def hold(record: logging.LogRecord) -> bool:
        if record.thread != thread or record.levelno < logging.WARNING:
            return True
        held.append(record.getMessage())
        return False

    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)


def ultralytics_level() -> int | None:
    """What :func:`set_ultralytics_level` set (None if nothing)."""
    return _wanted["ultralytics"]


def import_openvino() -> ModuleType:
    """Import and return the ``openvino`` package with its telemetry switched off and its
    numpy bridge ready (see :func:`_ready_numpy_bridge`)."""
    quiet_openvino_telemetry()
    import openvino

    module: ModuleType = openvino
    _ready_numpy_bridge(module)
    return module


_bridge_lock = threading.Lock()
_bridge_ready = threading.Event()


def _ready_numpy_bridge(openvino: ModuleType) -> None:
    """Make OpenVINO's Python binding set up its numpy support now, on one thread.

    The binding sets it up on first use, inside a C++ function-local static whose set-up
    lets go of the GIL and then waits for it again (pybind11's ``npy_api``). When two
    threads make their first use at the same moment (two workers or lanes warming up their
    models), the second can take the GIL and wait for the first's static while holding
    the GIL, which the first needs to finish: both wait for good, and so does the whole
    process. Seen once in runs A-M of the bench (a lossless run that never ended) and once
    in 186 fresh starts of that run since (2 workers, a lane each, warming up at once);
    caught with ``py-spy dump --native``: one lane in ``__cxa_guard_acquire``, the other
    in ``take_gil`` under ``gil_safe_call_once_and_store<npy_api>``. Two threads making
    their first ``infer`` call at once hung 8 of 60 fresh processes, and 0 of 60
    (interleaved) once one thread had read a tensor's data first. So the first
    :func:`import_openvino` does that, under a lock (waiting for a Python lock lets go of
    the GIL), before any thread of ours runs a model.
    """
    if _bridge_ready.is_set():
        return
    with _bridge_lock:
        if _bridge_ready.is_set():
            return
        import numpy as np

        for dtype in (np.uint8, np.float32):  # the models' input and output types
            _ = openvino.Tensor(np.zeros((1,), dtype)).data
        _bridge_ready.set()


def quiet_openvino_telemetry() -> None:
    """Make OpenVINO's telemetry decline, before OpenVINO is first imported.

    Every ``openvino_telemetry.Telemetry`` set-up (at OpenVINO's import and again when a tool
    re-initialises it) asks ``OptInChecker.check`` for consent; answering "declined" there
    makes it send nothing and write nothing (no client id under ``~/intel``). A telemetry
    object set up before this call (OpenVINO imported earlier by the caller's own code) is
    declined as well. Without ``openvino_telemetry`` installed there is nothing to do.
    """
    try:
        import openvino_telemetry
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:
        return
    declined = opt_in_checker.ConsentCheckResult.DECLINED

    def check(self: Any, *args: Any, **kwargs: Any) -> Any:
        return declined

    opt_in_checker.OptInChecker.check = check
    try:
        openvino_telemetry.Telemetry().consent = False
    except RuntimeError:  # not set up yet: the patched check will decline when it is
        pass


def preload(openvino: bool = False) -> None:
    """Import what building a model imports (Ultralytics, and torchvision, which Ultralytics
    pulls in on its first forward pass: about 2.5 s together on a small CPU; with
    ``openvino``, for an OpenVINO model, also OpenVINO: 0.1 s more).

    Called on the main thread while a pipeline is being checked, so that inference threads
    do not take turns on Python's import lock at start-up.
    """
    import_ultralytics()
    try:
        import torchvision  # noqa: F401
    except ImportError:  # Ultralytics works without it
        pass
    if openvino:
        import_openvino()
