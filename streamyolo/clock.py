"""Time: the clock type every component takes (tests inject fakes), and a rate meter."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]
"""Seconds on a monotonic scale; ``time.monotonic`` in production."""


def wall_time(reading: float) -> float:
    """The wall-clock time (``time.time()``, seconds since the epoch) of a ``time.monotonic()``
    ``reading`` taken in this boot: for outputs that outlive the process (a JSONL line, a
    recording's name), where monotonic times mean nothing."""
    return time.time() - (time.monotonic() - reading)


def file_stamp(moment: float, millis: bool = False) -> str:
    """``moment`` (seconds since the epoch) in local time, for file names that sort in time
    order: ``YYYYmmdd-HHMMSS``, with ``-mmm`` milliseconds if ``millis``.

    >>> import re
    >>> bool(re.fullmatch(r"\\d{8}-\\d{6}-\\d{3}", file_stamp(1_700_000_000.25, millis=True)))
    True
    """
    text = time.strftime("%Y%m%d-%H%M%S", time.localtime(moment))
    return f"{text}-{int(moment * 1000) % 1000:03d}" if millis else text


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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
"""Seconds in each unit a span of time may be written in."""


def parse_seconds(value: Any, least: float = 1.0) -> float:
    """A span of time: seconds as a number, or a number with ``s``, ``m``, ``h`` or ``d``
    (at least ``least`` seconds, at most ten years).

    >>> parse_seconds("90d"), parse_seconds("12h"), parse_seconds(45), parse_seconds("1.5m"), parse_seconds(0, 0)
    (7776000.0, 43200.0, 45.0, 90.0, 0.0)
    """
    text = str(value).strip().lower()
    scale = _UNITS.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ValueError("must be seconds, or a number with s, m, h or d (like 30d)") from None
    if not least <= seconds <= 10 * 365 * 86400:
        raise ValueError("must be from 1 second to 10 years" if least == 1 else f"must be from {least:g} s to 10 years")
    return seconds


def format_seconds(seconds: float) -> str:
    """A span of time the way :func:`parse_seconds` reads it, in the largest unit it fills.

    >>> format_seconds(86400 * 30), format_seconds(7200), format_seconds(90), format_seconds(45)
    ('30d', '2h', '1.5m', '45s')
    """
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
