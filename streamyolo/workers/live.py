"""Which live stream an inference worker serves next, and when it is worth waiting.

A live stream's buffer keeps only the newest frames; the worker takes the newest. Under
overload a worker serves each stream every few forward passes, and a frame's age when its
result is ready is the time it waited to be taken plus the forward pass. Taking streams in
a fixed rotation leaves the waiting to chance: the newest frame of the next stream may have
been captured just now or almost a frame interval ago (33 ms at 30 fps).

:class:`LivePicker` works in rounds, so it stays fair: every live stream is owed one turn
per round; within a round it takes the owed stream whose newest frame is the freshest. When
even that frame is stale (older than half its stream's frame interval) and an owed stream's
next frame is due soon, it holds: the worker waits for that frame rather than spending a
forward pass on a stale one. A hold lasts at most half a frame interval and at most half a
forward pass, so the worker idles little, and only under overload (a worker that keeps up
finds fresh frames anyway). When the frame held for comes late, a fresh frame of a stream
already served this round is taken rather than the stale one; the owed streams keep their
turns (the bench's live run: p99 wait from capture to pick 32-35 ms → 19-20 ms). Frame
intervals and arrivals are measured from the times frames reach their buffers (after
decoding), so decimation (``max_fps``, ``stride``) and cameras that misstate their rate are
handled; "freshest" is by capture time, which frame ages count from.

Measured on the bench's live run (4 streams at 30 fps, YOLO11n OpenVINO, 1 worker, 2
cores): see the README's benchmark section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamyolo.buffering import BufferClosed, Empty
from streamyolo.frames import Frame, FrameMeta

if TYPE_CHECKING:
    from streamyolo.workers.inference import Channel

HOLD_SLACK = 0.003
"""Seconds a hold lasts past the frame's expected arrival (capture timing jitter)."""

_SMOOTHING = 0.2  # weight of a new observation in the running means
_GAP = 1.0  # seconds between two frames beyond which a stream is taken to have paused


@dataclass(frozen=True, slots=True)
class Hold:
    """Take nothing yet: a fresher frame is due by ``until`` (the worker's clock)."""

    until: float


class LivePicker:
    """One worker's choice among its live streams; used by that worker's thread only."""

    def __init__(self, hold: bool = True) -> None:
        self._hold_enabled = hold
        self._owed: set[str] = set()
        self._seen: dict[str, tuple[int, float]] = {}  # newest (seq, ready time) observed
        self._interval: dict[str, float] = {}  # running mean of seconds between frames
        self._forward: float | None = None  # running mean of a forward pass, seconds
        self._hold_until: float | None = None

    def forward_took(self, seconds: float) -> None:
        """Tell the picker how long a forward pass took (it bounds holds by that)."""
        self._forward = seconds if self._forward is None else self._forward + _SMOOTHING * (seconds - self._forward)

    def forget(self, stream: str) -> None:
        """``stream`` is done: what was seen of it goes (one added again under its name counts afresh)."""
        self._owed.discard(stream)
        self._seen.pop(stream, None)
        self._interval.pop(stream, None)

    def interval(self, stream: str) -> float | None:
        """The measured seconds between two frames of ``stream``, once known."""
        return self._interval.get(stream)

    def pick(self, live: Sequence[Channel], active: list[Channel], now: float,
             may_hold: bool = True) -> tuple[Channel, Frame] | Hold | None:
        """Take the next live frame, or say how long to hold for a fresher one, or
        ``None`` when no live stream has a frame. Removes exhausted channels from ``active``."""
        ready: list[tuple[Channel, FrameMeta]] = []
        for channel in live:
            newest = channel.ring.newest()
            if newest is None:
                if channel.ring.exhausted() and channel in active:
                    active.remove(channel)
                continue
            self._observe(channel.name, newest.meta)
            ready.append((channel, newest.meta))
        if not ready:
            return None
        due = [item for item in ready if item[0].name in self._owed]
        if not due:  # a new round: every live stream is owed a turn
            self._owed = {channel.name for channel in live}
            due = ready
        channel, meta = max(due, key=lambda item: item[1].t_capture)
        if may_hold and self._hold_enabled:
            hold = self._hold(meta, now)
            if hold is not None:
                return hold
            if self._hold_until is not None and self._stale(meta, now):
                # The hold ran out and the frame it waited for is late: rather than a frame
                # staler still, take a fresh one of a stream already served this round. The
                # streams owed stay owed, and the late frame is taken at the next turn.
                fresh = max(ready, key=lambda item: item[1].t_capture)
                if not self._stale(fresh[1], now):
                    channel, meta = fresh
        self._hold_until = None
        try:
            frame = channel.ring.get_latest()
        except (Empty, BufferClosed):
            return None
        self._owed.discard(channel.name)
        return channel, frame

    def _hold(self, best: FrameMeta, now: float) -> Hold | None:
        """A hold while the best frame is stale and an owed stream's next frame is near."""
        if self._hold_until is not None:
            if now < self._hold_until and self._stale(best, now):
                return Hold(self._hold_until)
            return None  # the hold is over (or a fresh frame came): take the best there is
        if not self._stale(best, now) or self._forward is None:
            return None
        soonest: float | None = None
        for name in self._owed:
            seen, interval = self._seen.get(name), self._interval.get(name)
            if seen is None or interval is None:
                continue
            arrival = seen[1] + interval
            if now < arrival <= now + min(interval, self._forward) / 2 and (soonest is None or arrival < soonest):
                soonest = arrival
        if soonest is None:
            return None
        self._hold_until = soonest + HOLD_SLACK
        return Hold(self._hold_until)

    def _stale(self, meta: FrameMeta, now: float) -> bool:
        interval = self._interval.get(meta.stream)
        return interval is not None and now - meta.ready_at > interval / 2

    def _observe(self, name: str, meta: FrameMeta) -> None:
        seen = self._seen.get(name)
        if seen is not None and meta.seq <= seen[0]:
            return
        self._seen[name] = (meta.seq, meta.ready_at)
        if seen is None:
            return
        step = (meta.ready_at - seen[1]) / (meta.seq - seen[0])
        if not 0 < step < _GAP:
            return  # a pause (reconnect, stall) says nothing about the frame rate
        known = self._interval.get(name)
        self._interval[name] = step if known is None else known + _SMOOTHING * (step - known)
