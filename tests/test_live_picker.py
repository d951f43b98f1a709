"""The live picker: fair rounds, freshest first, and holding for a frame about to arrive.

Driven by hand with real ring buffers and frames on an explicit clock (``now``), so every
case is exact; the pipeline tests check the same behaviour with threads and real time.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from streamyolo.buffering import Overflow, RingBuffer
from streamyolo.frames import Frame, FrameMeta
from streamyolo.pipeline.health import StreamHealth
from streamyolo.workers.inference import Channel
from streamyolo.workers.live import HOLD_SLACK, Hold, LivePicker, LiveShare

INTERVAL = 1 / 30
_PIXELS = np.zeros((2, 2, 3), np.uint8)


class Cameras:
    """Live channels whose frames the test delivers at chosen capture times (``pick``: by a
    picker of its own, each stream given back as soon as it is picked)."""

    def __init__(self, *names: str) -> None:
        self.channels = [Channel(n, RingBuffer(2, Overflow.DROP_OLDEST), True, StreamHealth(n)) for n in names]
        self._seq = dict.fromkeys(names, 0)

    def deliver(self, name: str, t_capture: float) -> None:
        channel = next(c for c in self.channels if c.name == name)
        channel.ring.put(Frame(FrameMeta(name, self._seq[name], t_capture), _PIXELS))
        self._seq[name] += 1

    def pick(self, picker: LivePicker, now: float, may_hold: bool = True) -> tuple[str, float] | Hold | None:
        picked = picker.pick(self.channels, list(self.channels), now, may_hold)
        if picked is None or isinstance(picked, Hold):
            return picked
        picker.share.release(picked[0].ring)  # (its result written at once)
        return picked[0].name, picked[1].meta.t_capture


def _warm(cameras: Cameras, picker: LivePicker, phases: dict[str, float], frames: int = 3) -> float:
    """Deliver ``frames`` frames per camera at 30 fps (camera ``n`` at ``phases[n]`` into each
    interval), draining them without holding, so the picker knows every frame interval."""
    for k in range(frames):
        for name, phase in sorted(phases.items(), key=lambda item: item[1]):
            cameras.deliver(name, k * INTERVAL + phase)
        while isinstance(cameras.pick(picker, now=k * INTERVAL + max(phases.values()), may_hold=False), tuple):
            pass
    picker.forward_took(0.025)
    return frames * INTERVAL


def test_every_stream_gets_one_turn_per_round_freshest_first() -> None:
    cameras = Cameras("a", "b", "c")
    picker = LivePicker(hold=False)
    for name, t in (("a", 0.010), ("b", 0.030), ("c", 0.020)):
        cameras.deliver(name, t)
    assert cameras.pick(picker, 0.031) == ("b", 0.030)
    # b's next frame is the freshest of all, but b had its turn this round: c and a come first.
    cameras.deliver("b", 0.063)
    assert cameras.pick(picker, 0.064) == ("c", 0.020)
    assert cameras.pick(picker, 0.065) == ("a", 0.010)
    assert cameras.pick(picker, 0.066) == ("b", 0.063)  # a new round
    assert cameras.pick(picker, 0.067) is None  # nothing new anywhere


def test_a_stream_without_new_frames_does_not_block_the_round() -> None:
    cameras = Cameras("fast", "slow")
    picker = LivePicker(hold=False)
    cameras.deliver("slow", 0.0)
    cameras.deliver("fast", 0.001)
    assert cameras.pick(picker, 0.002) == ("fast", 0.001)
    assert cameras.pick(picker, 0.003) == ("slow", 0.0)
    cameras.deliver("fast", 0.034)
    assert cameras.pick(picker, 0.035) == ("fast", 0.034)  # slow has nothing: the next round starts
    cameras.deliver("fast", 0.067)
    cameras.deliver("slow", 0.068)
    assert cameras.pick(picker, 0.069) == ("slow", 0.068)  # fast had this round's turn


def test_holds_for_a_frame_due_soon_instead_of_taking_a_stale_one() -> None:
    cameras = Cameras("a", "b")
    picker = LivePicker()
    start = _warm(cameras, picker, {"a": 0.0, "b": 0.020})
    assert picker.interval("a") is not None and abs(picker.interval("a") - INTERVAL) < 1e-9  # type: ignore[operator]
    cameras.deliver("a", start)  # a: captured at start; b's next frame is due at start + 0.020
    now = start + 0.019  # a's frame is 19 ms old, more than half an interval
    hold = cameras.pick(picker, now)
    assert isinstance(hold, Hold) and hold.until == pytest.approx(start + 0.020 + HOLD_SLACK)
    assert cameras.pick(picker, now + 0.0005) == hold  # still holding
    cameras.deliver("b", start + 0.020)
    assert cameras.pick(picker, start + 0.0201) == ("b", start + 0.020)  # the fresh frame, at once
    assert cameras.pick(picker, start + 0.0202) == ("a", start)  # a keeps its turn in the round


def test_a_hold_ends_at_its_deadline_with_the_best_frame_there_is() -> None:
    cameras = Cameras("a", "b")
    picker = LivePicker()
    start = _warm(cameras, picker, {"a": 0.0, "b": 0.020})
    cameras.deliver("a", start)
    hold = cameras.pick(picker, start + 0.019)
    assert isinstance(hold, Hold)
    assert cameras.pick(picker, hold.until) == ("a", start)  # b's frame never came


def test_when_the_frame_held_for_is_late_a_fresh_frame_of_a_served_stream_goes_first() -> None:
    """The hold ran out and the owed streams have only stale frames; a stream already served
    this round has a fresh one: it is taken, and the owed streams keep their turns."""
    cameras = Cameras("a", "b", "c")
    picker = LivePicker()
    start = _warm(cameras, picker, {"a": 0.0, "c": 0.010, "b": 0.020})
    cameras.deliver("a", start)
    cameras.deliver("c", start + 0.010)
    assert cameras.pick(picker, start + 0.0101) == ("c", start + 0.010)  # the freshest: c's turn is used
    hold = cameras.pick(picker, start + 0.019)  # a's frame is stale; b's is due at start + 0.020
    assert isinstance(hold, Hold)
    cameras.deliver("c", start + 0.022)  # c again, while b's frame is late
    assert cameras.pick(picker, start + 0.0221) == hold  # still holding for b
    assert cameras.pick(picker, hold.until) == ("c", start + 0.022)  # not a's frame, 23 ms old
    cameras.deliver("b", start + 0.026)
    assert cameras.pick(picker, start + 0.0261) == ("b", start + 0.026)  # b kept its turn
    assert isinstance(cameras.pick(picker, start + 0.0262), Hold)  # so did a: its next frame is near
    cameras.deliver("a", start + INTERVAL)
    assert cameras.pick(picker, start + INTERVAL + 0.0001) == ("a", start + INTERVAL)


def test_no_hold_for_a_fresh_frame_a_distant_one_or_when_turned_off() -> None:
    cameras = Cameras("a", "b")
    picker = LivePicker()
    start = _warm(cameras, picker, {"a": 0.0, "b": 0.020})
    cameras.deliver("a", start)
    assert cameras.pick(picker, start + 0.010) == ("a", start)  # 10 ms old: fresh enough

    cameras = Cameras("a", "b")
    picker = LivePicker()
    start = _warm(cameras, picker, {"a": 0.0, "b": 0.030})
    for _ in range(40):  # a fast model: holding for more than half a forward pass is not worth it
        picker.forward_took(0.005)
    cameras.deliver("a", start)
    assert cameras.pick(picker, start + 0.020) == ("a", start)  # b's frame is 10 ms away: too far

    cameras = Cameras("a", "b")
    picker = LivePicker(hold=False)
    start = _warm(cameras, picker, {"a": 0.0, "b": 0.020})
    cameras.deliver("a", start)
    assert cameras.pick(picker, start + 0.019) == ("a", start)


def test_no_hold_before_the_frame_interval_is_known() -> None:
    cameras = Cameras("a", "b")
    picker = LivePicker()
    picker.forward_took(0.025)
    cameras.deliver("a", 0.0)
    assert cameras.pick(picker, 0.030) == ("a", 0.0)


def test_a_pause_in_a_stream_does_not_change_its_measured_interval() -> None:
    cameras = Cameras("a")
    picker = LivePicker(hold=False)
    _warm(cameras, picker, {"a": 0.0})
    cameras.deliver("a", 10.0)  # the camera reconnected ten seconds later
    assert cameras.pick(picker, 10.001) == ("a", 10.0)
    assert abs(picker.interval("a") - INTERVAL) < 1e-9  # type: ignore[operator]


def _shared(cameras: Cameras, owners: dict[str, list[str]]) -> tuple[LiveShare, dict[str, LivePicker],
                                                                    dict[str, threading.Event]]:
    """One picker per worker of ``owners`` (worker: its own cameras), all on one share."""
    share = LiveShare()
    pickers, doorbells = {}, {}
    for worker, names in owners.items():
        doorbells[worker] = threading.Event()
        share.enter(worker, doorbells[worker])
        share.publish(worker, [c for c in cameras.channels if c.name in names])
        pickers[worker] = LivePicker(hold=False, share=share, member=worker)
    return share, pickers, doorbells


def _own(cameras: Cameras, names: list[str]) -> list[Channel]:
    return [c for c in cameras.channels if c.name in names]


def test_workers_sharing_their_live_streams_take_turns_over_all_of_them() -> None:
    """Cameras dealt 2 + 1 to two workers: the rounds span both, a camera a worker has in hand
    is not offered to the other until given back, and then its next frame is anyone's."""
    cameras = Cameras("a", "b", "c")
    owners = {"w0": ["a", "c"], "w1": ["b"]}
    share, pickers, doorbells = _shared(cameras, owners)

    def pick(worker: str, now: float) -> tuple[str, float] | None:
        own = _own(cameras, owners[worker])
        picked = pickers[worker].pick(own, list(own), now, may_hold=False)
        assert not isinstance(picked, Hold)
        return None if picked is None else (picked[0].name, picked[1].meta.t_capture)

    for name, t in (("a", 0.010), ("b", 0.030), ("c", 0.020)):
        cameras.deliver(name, t)
    assert pick("w0", 0.031) == ("b", 0.030)  # the freshest of all: w1's camera
    assert pick("w1", 0.032) == ("c", 0.020)  # b is in w0's hand; c is owed
    cameras.deliver("b", 0.063)
    assert pick("w1", 0.064) == ("a", 0.010)  # b's new frame waits: b had its turn, and is in hand
    doorbells["w1"].clear()
    pickers["w0"].share.release(_own(cameras, ["b"])[0].ring)
    assert doorbells["w1"].is_set(), "a stream given back wakes the others"
    assert pick("w0", 0.065) == ("b", 0.063)  # a new round
    assert pick("w1", 0.066) is None  # a and c are in hand (w1's), b in w0's
    assert not share.claim(_own(cameras, ["a"])[0].ring)  # in w1's hand: its settings wait


def test_a_frame_put_into_a_shared_stream_wakes_every_worker_of_the_share() -> None:
    share = LiveShare()
    doorbells = [threading.Event(), threading.Event()]
    for i, doorbell in enumerate(doorbells):
        share.enter(f"w{i}", doorbell)
    ring: RingBuffer[Frame] = RingBuffer(2, Overflow.DROP_OLDEST, on_ready=share.ring)
    ring.put(Frame(FrameMeta("cam", 0, 0.0), _PIXELS))
    assert all(doorbell.is_set() for doorbell in doorbells)
    share.leave("w1")
    doorbells[1].clear()
    ring.put(Frame(FrameMeta("cam", 1, 0.1), _PIXELS))
    assert not doorbells[1].is_set(), "a worker that has ended is not rung"


def test_workers_take_turns_at_paced_lossless_streams_whoever_publishes_them() -> None:
    """Paced lossless streams (cameras whose every frame is asked for), published by two
    workers: each round gives every stream with frames waiting one turn, the one with the most
    waiting first; one in a worker's hand is not offered until given back."""
    share = LiveShare()
    w0, w1 = object(), object()
    share.enter(w0, threading.Event())
    share.enter(w1, threading.Event())
    channels = {n: Channel(n, RingBuffer(8, Overflow.BLOCK), False, StreamHealth(n), paced=True) for n in "abc"}
    assert not share.pacing()  # (none published yet)
    share.publish(w0, [], [channels["a"], channels["c"]])
    share.publish(w1, [], [channels["b"]])
    for name, frames in (("a", 1), ("b", 3), ("c", 2)):
        for seq in range(frames):
            channels[name].ring.put(Frame(FrameMeta(name, seq, 0.0), _PIXELS))
    assert share.pacing()
    turns = []
    for _ in range(3):
        [taken] = share.take_paced(1)
        turns.append(taken.name)
    assert turns == ["b", "c", "a"]  # one round, the most frames waiting first
    assert share.take_paced(1) == []  # all three in hand
    share.release(channels["a"].ring)
    share.release(channels["b"].ring)
    assert [c.name for c in share.take_paced(2)] == ["b", "a"]  # a new round: b has 3 waiting, a 1
    share.release(channels["c"].ring)
    assert [c.name for c in share.take_paced(1)] == ["c"]
    channels["a"].ring.get_nowait()
    share.release(channels["a"].ring)
    assert share.take_paced(1) == []  # a has none waiting; b and c are in hand
