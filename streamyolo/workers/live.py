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

Workers that run one model take their live streams from one :class:`LiveShare`: the rounds
are the share's, over every live stream of those workers, and a worker that is free takes the
freshest owed frame of any of them that no other worker has in hand (its claim, held until the
result is written, keeps a stream's frames in order and its tracker, counters and motion gates
with one worker at a time: :class:`~streamyolo.workers.inference.Kept`). So live streams dealt
unevenly to workers (3 cameras on 2 workers) still get even shares of the processed frames; the
README's "How many workers" has the measurements.

Measured on the bench's live run (4 streams at 30 fps, YOLO11n OpenVINO, 1 worker, 2
cores): see the README's benchmark section.
"""

from __future__ import annotations

import threading
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


class LiveShare:
    """The live streams of the workers that run one model, and what their pickers share: the
    rounds (who is owed a turn), what was seen of each stream (its newest frame, its frame
    interval), the forward pass's mean, and which streams a worker has in hand (claimed, with
    claimed). Each worker :meth:`enter` s with its doorbell and :meth:`publish` es its live
    streams, and its paced lossless ones, at which they take turns too (:meth:`take_paced`);
    a frame put into a shared stream rings every member (:meth:`ring`), and so does a claim
    given back, so that a free worker takes it at once. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owed: set[str] = set()
        self.seen: dict[str, tuple[int, float]] = {}  # newest (seq, ready time) observed
        self.interval: dict[str, float] = {}  # running mean of seconds between frames
        self.forward: float | None = None  # running mean of a forward pass, seconds
        self.paced_owed: set[str] = set()  # the paced lossless streams owed a turn in this round
        self._claimed: set[object] = set()  # the buffers of the streams a worker has in hand
        # By worker: its doorbell, its live streams and its paced lossless ones
        self._members: dict[object, tuple[threading.Event, tuple[Channel, ...], tuple[Channel, ...]]] = {}
        self._pacing = False  # whether several workers share paced lossless streams (read once a batch, unlocked)

    def enter(self, member: object, doorbell: threading.Event) -> None:
        """Worker ``member`` takes from the share (``doorbell``: how it is woken). A worker is
        itself its key: one that takes the place of another (of the same name) is another."""
        with self.lock:
            self._members[member] = (doorbell, (), ())
            self._members_changed()

    def leave(self, member: object) -> None:
        """Worker ``member`` has ended: its streams are no longer offered to the others (who
        are told: one with no stream of its own left may end too)."""
        with self.lock:
            self._members.pop(member, None)
            self._members_changed()
        self.ring()

    def publish(self, member: object, live: Sequence[Channel], paced: Sequence[Channel] = ()) -> None:
        """Worker ``member``'s live streams now (and their settings), and its paced lossless
        ones (cameras and files played in real time whose every frame is processed), which the
        others may take (they are told)."""
        with self.lock:
            if member in self._members:
                self._members[member] = (self._members[member][0], tuple(live), tuple(paced))
                self._members_changed()
        self.ring()

    def offers(self, member: object) -> bool:
        """Whether the other workers have live streams that ``member`` may take: a worker whose
        own streams have all gone goes on serving theirs while they have some (not their paced
        lossless ones: it ends and lends its model, which splits their batches: see
        :mod:`streamyolo.inference.lanes`)."""
        with self.lock:
            return any(live for worker, (_, live, _) in self._members.items() if worker is not member)

    def others(self, member: object) -> list[Channel]:
        """The live streams of every worker but ``member``; call with :attr:`lock` held."""
        return [channel for worker, (_, live, _) in self._members.items() if worker is not member
                for channel in live]

    def pacing(self) -> bool:
        """Whether its workers take turns at paced lossless streams (there are some, and more
        than one worker); a worker alone takes its own as it takes a file's frames."""
        return self._pacing

    def _members_changed(self) -> None:
        """With :attr:`lock` held."""
        self._pacing = len(self._members) > 1 and any(paced for _, _, paced in self._members.values())

    def take_paced(self, streams: int) -> list[Channel]:
        """Up to ``streams`` paced lossless streams (of any worker) with frames waiting that no
        worker has in hand, claimed: those owed a turn in this round first (every such stream
        is owed one per round), the one with the most frames waiting first. So the workers of
        one model take turns at them, whoever is free, and each gets its share of turns."""
        with self.lock:
            offered = [channel for _, _, paced in self._members.values() for channel in paced]
            ready = [channel for channel in offered
                     if channel.ring not in self._claimed and (len(channel.ring) or channel.kept.pending)]
            if not ready:
                return []
            if not any(channel.name in self.paced_owed for channel in ready):  # a new round
                self.paced_owed = {channel.name for channel in offered}
            ready.sort(key=lambda channel: (channel.name not in self.paced_owed, -len(channel.ring)))
            taken = ready[:streams]
            for channel in taken:
                self.paced_owed.discard(channel.name)
                self._claimed.add(channel.ring)
            return taken

    def ring(self) -> None:
        """A shared stream has a frame (a ring buffer's ``on_ready``): wake every member."""
        for doorbell, _, _ in list(self._members.values()):
            doorbell.set()

    def claim(self, buffer: object) -> bool:
        """Take the stream of ``buffer`` in hand; False while another worker has it."""
        with self.lock:
            return self.claim_held(buffer)

    def claim_held(self, buffer: object) -> bool:
        """:meth:`claim`, with :attr:`lock` held."""
        if buffer in self._claimed:
            return False
        self._claimed.add(buffer)
        return True

    def claimed(self, buffer: object) -> bool:
        """Whether a worker has the stream of ``buffer`` in hand; call with :attr:`lock` held."""
        return buffer in self._claimed

    def release(self, buffer: object) -> None:
        """Give the stream of ``buffer`` back: its next frame is any free worker's."""
        with self.lock:
            self._claimed.discard(buffer)
        self.ring()


class LivePicker:
    """One worker's choice among the live streams of its :class:`LiveShare` (its own, with
    none given); used by that worker's thread only. A stream it picks is in its hand until
    it gives it back (:meth:`LiveShare.release`)."""

    def __init__(self, hold: bool = True, share: LiveShare | None = None, member: object = None) -> None:
        self._hold_enabled = hold
        self._share = LiveShare() if share is None else share
        self._member = member
        self._hold_until: float | None = None

    @property
    def share(self) -> LiveShare:
        return self._share

    def forward_took(self, seconds: float) -> None:
        """Tell the picker how long a forward pass took (it bounds holds by that)."""
        share = self._share
        with share.lock:
            share.forward = seconds if share.forward is None else share.forward + _SMOOTHING * (
                seconds - share.forward)

    def forget(self, stream: str) -> None:
        """``stream`` is done: what was seen of it goes (one added again under its name counts afresh)."""
        share = self._share
        with share.lock:
            share.owed.discard(stream)
            share.seen.pop(stream, None)
            share.interval.pop(stream, None)

    def interval(self, stream: str) -> float | None:
        """The measured seconds between two frames of ``stream``, once known."""
        return self._share.interval.get(stream)

    def pick(self, live: Sequence[Channel], active: list[Channel], now: float,
             may_hold: bool = True) -> tuple[Channel, Frame] | Hold | None:
        """Take the next live frame (of ``live``, this worker's, or of a stream of the share's
        other workers that none has in hand), or say how long to hold for a fresher one, or
        ``None`` when no live stream has a frame. Removes exhausted channels from ``active``."""
        share = self._share
        with share.lock:
            offered = [*live, *share.others(self._member)]
            ready: list[tuple[Channel, FrameMeta]] = []
            for channel in offered:
                if share.claimed(channel.ring):
                    continue
                newest = channel.ring.newest()
                if newest is None:
                    if channel.ring.exhausted() and channel in active:
                        active.remove(channel)
                    continue
                self._observe(channel.name, newest.meta)
                ready.append((channel, newest.meta))
            if not ready:
                return None
            due = [item for item in ready if item[0].name in share.owed]
            if not due:  # a new round: every live stream is owed a turn (those in a worker's hand too)
                share.owed = {channel.name for channel in offered}
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
            share.owed.discard(channel.name)
            share.claim_held(channel.ring)
            return channel, frame

    def _hold(self, best: FrameMeta, now: float) -> Hold | None:
        """A hold while the best frame is stale and an owed stream's next frame is near."""
        if self._hold_until is not None:
            if now < self._hold_until and self._stale(best, now):
                return Hold(self._hold_until)
            return None  # the hold is over (or a fresh frame came): take the best there is
        share = self._share
        if not self._stale(best, now) or share.forward is None:
            return None
        soonest: float | None = None
        for name in share.owed:
            seen, interval = share.seen.get(name), share.interval.get(name)
            if seen is None or interval is None:
                continue
            arrival = seen[1] + interval
            if now < arrival <= now + min(interval, share.forward) / 2 and (soonest is None or arrival < soonest):
                soonest = arrival
        if soonest is None:
            return None
        self._hold_until = soonest + HOLD_SLACK
        return Hold(self._hold_until)

    def _stale(self, meta: FrameMeta, now: float) -> bool:
        interval = self._share.interval.get(meta.stream)
        return interval is not None and now - meta.ready_at > interval / 2

    def _observe(self, name: str, meta: FrameMeta) -> None:
        share = self._share
        seen = share.seen.get(name)
        if seen is not None and meta.seq <= seen[0]:
            return
        share.seen[name] = (meta.seq, meta.ready_at)
        if seen is None:
            return
        step = (meta.ready_at - seen[1]) / (meta.seq - seen[0])
        if not 0 < step < _GAP:
            return  # a pause (reconnect, stall) says nothing about the frame rate
        known = share.interval.get(name)
        share.interval[name] = step if known is None else known + _SMOOTHING * (step - known)
