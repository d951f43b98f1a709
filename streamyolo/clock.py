"""Time: the clock type every component takes (tests inject fakes), and a rate meter."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale; ``time.monotonic`` in production."""


def wall_time(reading: float) -> float:
    """The wall-clock time (``time.time()``, seconds since the epoch) of a ``time.monotonic()``
    ``reading`` taken in this boot: for outputs that outlive the process (a JSONL line, a
    recording's name), where monotonic times mean nothing."""
    return time.time() - (time.monotonic() - reading)


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._times: deque[float] = deque(maxlen=1024)

    def tick(self, now: float | None = None) -> None:
        self._times.append(self._clock() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        horizon = now - self._window
        recent = [t for t in self._times if t >= horizon]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], 1e-6)
