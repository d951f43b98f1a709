"""Cut a blocking PyAV call short from another thread.

FFmpeg checks an *interrupt callback* while it opens or reads a network stream; PyAV
implements that callback as a time-out check (``open_timeout`` / ``read_timeout``) and
offers no way to abort on demand. A dead camera's ``av.open`` can therefore hold a
capture thread for the whole open time-out after the user asked to stop.

PyAV's callback reads the time through the ``time`` module of ``av.container.core``. We
give that module a clock that is the real ``time`` module for every thread except the ones
asked to stop: for those it runs far ahead, so the pending time-out expires at the next
check (FFmpeg polls about every 100 ms). Only calls that have a time-out are affected, and
only in interrupted threads. If a PyAV release stops reading the clock this way, the shim
is simply not used and calls end at their time-out instead (still bounded).
"""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_installed = threading.Event()
_interrupted: dict[int, int] = {}  # thread ident → how many times the clock was read since


class _InterruptingClock:
    """``time`` as PyAV sees it; runs ahead only in interrupted threads."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real

    def monotonic(self) -> float:
        now: float = self._real.monotonic()
        ident = threading.get_ident()
        count = _interrupted.get(ident)
        if count is None:
            return now
        # Ever further ahead, so that even a time-out started after the interrupt expires.
        # Only the interrupted thread itself writes or removes its own entry.
        _interrupted[ident] = count + 1
        return now + 1e7 * (count + 1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install() -> bool:
    """Install the clock into PyAV once; True if PyAV can be interrupted this way."""
    with _lock:
        if _installed.is_set():
            return True
        try:
            from av.container import core
        except ImportError:
            return False
        if getattr(core, "time", None) is not time:
            log.debug("PyAV does not read time.monotonic as expected; interrupts fall back to time-outs")
            return False
        setattr(core, "time", _InterruptingClock(time))  # noqa: B010 - the attribute is not in PyAV's stubs
        _installed.set()
        return True


def interrupt(ident: int) -> None:
    """Make PyAV calls with a time-out in thread ``ident`` give up at their next check."""
    with _lock:
        _interrupted.setdefault(ident, 0)


def clear(ident: int) -> None:
    """Let thread ``ident`` run PyAV calls normally again."""
    with _lock:
        _interrupted.pop(ident, None)


def is_interrupted(ident: int) -> bool:
    return ident in _interrupted
