"""Restart policy as data: exponential back-off with jitter, and an attempt limit."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): ``min(cap, base · 2ⁿ)``, spread by
    ±``jitter`` (a fraction) so that many cameras that died together do not all come back
    in the same instant. ``attempts`` bounds consecutive failures (``None``: never give up).

    >>> Backoff(base=1, cap=8, jitter=0).delays(5)
    [1.0, 2.0, 4.0, 8.0, 8.0]
    """

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.2
    attempts: int | None = None

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        raw = float(min(self.cap, self.base * 2.0 ** min(attempt, 62)))
        if not self.jitter:
            return raw
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, raw * (1 + spread))

    def bound(self, attempt: int) -> float:
        """The longest :meth:`delay` can be for ``attempt``."""
        return min(self.cap, self.base * 2.0 ** min(attempt, 62)) * (1 + self.jitter)

    def exhausted(self, failures: int) -> bool:
        """True once ``failures`` consecutive failed attempts reach the limit."""
        return self.attempts is not None and failures >= self.attempts

    def delays(self, count: int) -> list[float]:
        return [self.delay(n) for n in range(count)]


NO_RECONNECT = Backoff(attempts=0)
