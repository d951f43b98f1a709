"""A bounded ring buffer on condition variables, shaped like CPython's ``Lib/queue.py``.

One lock guards the items and the counters; ``not_empty`` and ``not_full`` conditions
carry the waits. What happens when a producer meets a full buffer is the
:class:`Overflow` policy: ``BLOCK`` (lossless: the producer waits) or ``DROP_OLDEST``
(live: the oldest item is overwritten in the same critical section as the insert, and
counted). Closing wakes every waiter: ``put`` then raises :class:`BufferClosed`, ``get``
drains what is left and then raises it (as ``Queue.shutdown`` does in CPython 3.13).

Invariant, at every moment: ``put_count == got_count + dropped_count + len(buffer)``.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, Full
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["BufferClosed", "BufferCounts", "Empty", "Full", "Overflow", "RingBuffer"]


class BufferClosed(Exception):
    """Raised by ``put`` on a closed buffer, and by ``get`` on a closed, drained one."""


class Overflow(enum.Enum):
    """What ``put`` does when the buffer is full."""

    BLOCK = "lossless"
    DROP_OLDEST = "live"


@dataclass(frozen=True, slots=True)
class BufferCounts:
    """A consistent snapshot of a buffer's counters."""

    put: int
    got: int
    dropped: int
    size: int


class RingBuffer(Generic[T]):
    """Bounded FIFO with a per-buffer overflow policy.

    >>> ring: RingBuffer[int] = RingBuffer(2, Overflow.DROP_OLDEST)
    >>> for i in range(3):
    ...     ring.put(i)
    >>> ring.get(), ring.counts().dropped
    (1, 1)

    ``on_ready`` (optional) is called, outside the lock, after every successful ``put`` and
    after ``close``; an inference worker serving several buffers uses it as a doorbell.
    """

    def __init__(
        self,
        capacity: int,
        overflow: Overflow = Overflow.BLOCK,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"ring buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.overflow = overflow
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._put = 0
        self._got = 0
        self._dropped = 0
        self._on_ready = on_ready

    # -- producer side -------------------------------------------------------------------

    def put(self, item: T, timeout: float | None = None) -> None:
        """Insert ``item``. ``BLOCK`` waits for room (up to ``timeout`` seconds, then raises
        :class:`queue.Full`); ``DROP_OLDEST`` never waits. Raises :class:`BufferClosed` if
        the buffer is or becomes closed."""
        with self._not_full:
            if self._closed:
                raise BufferClosed
            if len(self._items) >= self.capacity:
                if self.overflow is Overflow.DROP_OLDEST:
                    self._items.popleft()
                    self._dropped += 1
                else:
                    self._wait_for_room(timeout)
            self._items.append(item)
            self._put += 1
            self._not_empty.notify()
        if self._on_ready is not None:
            self._on_ready()

    def _wait_for_room(self, timeout: float | None) -> None:
        # Called with the lock held; deadline-based like Lib/queue.py.
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._items) >= self.capacity and not self._closed:
            if deadline is None:
                self._not_full.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Full
            self._not_full.wait(remaining)
        if self._closed:
            raise BufferClosed

    # -- consumer side -------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> T:
        """Remove and return the oldest item, waiting up to ``timeout`` seconds
        (:class:`queue.Empty` after that). On a closed buffer, returns what is left, then
        raises :class:`BufferClosed`."""
        with self._not_empty:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise BufferClosed
                if deadline is None:
                    self._not_empty.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Empty
                self._not_empty.wait(remaining)
            return self._take_oldest()

    def get_nowait(self) -> T:
        """The oldest item at once; :class:`queue.Empty` or :class:`BufferClosed` if none."""
        with self._lock:
            if not self._items:
                raise BufferClosed if self._closed else Empty
            return self._take_oldest()

    def get_latest(self) -> T:
        """The newest item at once, discarding (and counting as dropped) every older one.

        This is how a live stream is consumed: inference always works on the freshest frame.
        Raises :class:`queue.Empty` or :class:`BufferClosed` if there is nothing to take.
        """
        with self._lock:
            if not self._items:
                raise BufferClosed if self._closed else Empty
            skipped = len(self._items) - 1
            item = self._items.pop()
            self._items.clear()
            self._dropped += skipped
            self._got += 1
            self._not_full.notify_all()
            return item

    def newest(self) -> T | None:
        """The newest item, left in place; ``None`` when empty. For choosing between buffers."""
        with self._lock:
            return self._items[-1] if self._items else None

    def _take_oldest(self) -> T:
        item = self._items.popleft()
        self._got += 1
        self._not_full.notify()
        return item

    # -- both ----------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse further puts and wake every waiter. Idempotent."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if self._on_ready is not None:
            self._on_ready()

    def passed(self, count: int) -> None:
        """``count`` items the producer let pass without putting them (a live source that
        skipped frames to catch up): counted as put and dropped, as if overwritten at once."""
        with self._lock:
            self._put += count
            self._dropped += count

    def discard(self) -> int:
        """Drop every buffered item (counted as dropped); returns how many."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
            self._dropped += n
            self._not_full.notify_all()
            return n

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def exhausted(self) -> bool:
        """True once the buffer is closed and empty: nothing will ever come out again."""
        with self._lock:
            return self._closed and not self._items

    def counts(self) -> BufferCounts:
        with self._lock:
            return BufferCounts(self._put, self._got, self._dropped, len(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
