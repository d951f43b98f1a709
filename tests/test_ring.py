"""RingBuffer: a Hypothesis state machine against a deque model, and threaded stress."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streamyolo.buffering import BufferClosed, Empty, Full, Overflow, RingBuffer


class RingMachine(RuleBasedStateMachine):
    """Single-threaded behaviour of both overflow policies, step by step, against a model:
    ``deque(maxlen=N)`` for drop-oldest, a plain deque that refuses when full for block."""

    @initialize(capacity=st.integers(1, 6), overflow=st.sampled_from(list(Overflow)))
    def setup(self, capacity: int, overflow: Overflow) -> None:
        self.ring: RingBuffer[int] = RingBuffer(capacity, overflow)
        self.model: deque[int] = deque(maxlen=capacity if overflow is Overflow.DROP_OLDEST else None)
        self.capacity = capacity
        self.overflow = overflow
        self.closed = False
        self.next_item = 0
        self.put = self.got = self.dropped = 0

    @rule()
    def put_item(self) -> None:
        item = self.next_item
        self.next_item += 1
        if self.closed:
            with pytest.raises(BufferClosed):
                self.ring.put(item, timeout=0)
            return
        if self.overflow is Overflow.BLOCK and len(self.model) == self.capacity:
            with pytest.raises(Full):
                self.ring.put(item, timeout=0)
            return
        if len(self.model) == self.capacity:
            self.dropped += 1
        self.ring.put(item, timeout=0)
        self.model.append(item)
        self.put += 1

    @rule()
    def get_oldest(self) -> None:
        if not self.model:
            with pytest.raises(BufferClosed if self.closed else Empty):
                self.ring.get(timeout=0)
            return
        assert self.ring.get(timeout=0) == self.model.popleft()
        self.got += 1

    @rule()
    def get_newest(self) -> None:
        if not self.model:
            with pytest.raises(BufferClosed if self.closed else Empty):
                self.ring.get_latest()
            return
        assert self.ring.get_latest() == self.model[-1]
        self.dropped += len(self.model) - 1
        self.model.clear()
        self.got += 1

    @rule()
    def discard(self) -> None:
        assert self.ring.discard() == len(self.model)
        self.dropped += len(self.model)
        self.model.clear()

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.ring.close()
        self.closed = True

    @invariant()
    def counts_agree(self) -> None:
        counts = self.ring.counts()
        assert (counts.put, counts.got, counts.dropped, counts.size) == (
            self.put, self.got, self.dropped, len(self.model))
        assert counts.put == counts.got + counts.dropped + counts.size
        assert len(self.ring) <= self.capacity
        assert self.ring.exhausted() == (self.closed and not self.model)
        assert self.ring.newest() == (self.model[-1] if self.model else None)


TestRingMachine = RingMachine.TestCase
TestRingMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@pytest.mark.timeout(30)
def test_close_wakes_a_blocked_producer_and_consumer() -> None:
    full: RingBuffer[int] = RingBuffer(1, Overflow.BLOCK)
    full.put(0)
    empty: RingBuffer[int] = RingBuffer(1, Overflow.BLOCK)
    outcomes: list[str] = []
    started = threading.Barrier(3)

    def producer() -> None:
        started.wait()
        try:
            full.put(1)
        except BufferClosed:
            outcomes.append("put closed")

    def consumer() -> None:
        started.wait()
        try:
            empty.get()
        except BufferClosed:
            outcomes.append("get closed")

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    started.wait()
    full.close()
    empty.close()
    for t in threads:
        t.join(timeout=5)
    assert sorted(outcomes) == ["get closed", "put closed"]
    assert full.get() == 0  # a closed buffer still drains
    with pytest.raises(BufferClosed):
        full.get()


def test_on_ready_rings_after_put_and_close() -> None:
    bell = threading.Event()
    ring: RingBuffer[int] = RingBuffer(2, Overflow.DROP_OLDEST, on_ready=bell.set)
    ring.put(1)
    assert bell.is_set()
    bell.clear()
    ring.close()
    assert bell.is_set()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("overflow", list(Overflow))
def test_threaded_stress_keeps_order_and_accounting(overflow: Overflow) -> None:
    """4 producers × 2 consumers on one small buffer: no duplicates, each producer's items
    in order in each consumer's view, and put == got + dropped + size exactly."""
    ring: RingBuffer[tuple[int, int]] = RingBuffer(3, overflow)
    producers, per_producer = 4, 3000
    received: list[list[tuple[int, int]]] = [[], []]
    go = threading.Barrier(producers + 2)

    def produce(pid: int) -> None:
        go.wait()
        for i in range(per_producer):
            ring.put((pid, i))

    def take(slot: int) -> tuple[int, int]:
        # On a live buffer the second consumer takes the newest, as live inference does.
        if slot == 1 and overflow is Overflow.DROP_OLDEST:
            try:
                return ring.get_latest()
            except Empty:
                pass
        return ring.get(timeout=0.5)

    def consume(slot: int) -> None:
        go.wait()
        while True:
            try:
                item = take(slot)
            except Empty:
                continue
            except BufferClosed:
                return
            received[slot].append(item)

    producer_threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    consumer_threads = [threading.Thread(target=consume, args=(s,)) for s in range(2)]
    for t in producer_threads + consumer_threads:
        t.start()
    for t in producer_threads:
        t.join(timeout=30)
    ring.close()
    for t in consumer_threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in producer_threads + consumer_threads)

    everything = received[0] + received[1]
    assert len(everything) == len(set(everything)), "an item was delivered twice"
    for view in received:
        for pid in range(producers):
            seen = [i for p, i in view if p == pid]
            assert seen == sorted(seen), "a consumer saw one producer's items out of order"
    counts = ring.counts()
    assert counts.put == producers * per_producer
    assert counts.put == counts.got + counts.dropped + counts.size
    assert counts.got == len(everything)
    if overflow is Overflow.BLOCK:
        assert counts.dropped == 0
        assert len(everything) == producers * per_producer
