"""Restart policy, stream state machine, thinning, looping: the small rules behind live sources."""

from __future__ import annotations

import functools
import itertools
import random
import threading
from pathlib import Path

import pytest

from streamyolo.buffering import Overflow
from streamyolo.clock import Timeline
from streamyolo.errors import SourceOpenError
from streamyolo.pipeline import Pipeline, StreamSetup, StreamState
from streamyolo.pipeline.health import IllegalTransition, StreamHealth
from streamyolo.pipeline.restart import Backoff
from streamyolo.sources import SourceKind, SourceSpec, open_source, redact_text
from streamyolo.sources.base import SourceInfo
from streamyolo.workers.capture import CapturePolicy, Decimator, PacketCapture
from tests.helpers import StampDetector


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    assert Backoff(base=0.5, cap=4, jitter=0).delays(6) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(7)
    jittery = Backoff(base=1, cap=10, jitter=0.2)
    for attempt in range(8):
        raw = min(10, 2**attempt)
        delays = [jittery.delay(attempt, rng) for _ in range(200)]
        assert all(0.8 * raw <= d <= 1.2 * raw for d in delays)
        assert max(delays) - min(delays) > 0.1 * raw  # the jitter really spreads
        assert max(delays) <= jittery.bound(attempt)
    assert not Backoff(attempts=None).exhausted(10**6)
    assert Backoff(attempts=3).exhausted(3) and not Backoff(attempts=3).exhausted(2)


def test_stream_state_machine_refuses_illegal_transitions() -> None:
    health = StreamHealth("cam")
    assert health.state is StreamState.CONNECTING
    with pytest.raises(IllegalTransition):
        health.transition(StreamState.ENDED)  # a stream that never streamed cannot end
    for state in (StreamState.STREAMING, StreamState.RECONNECTING, StreamState.CONNECTING, StreamState.STREAMING,
                  StreamState.ENDED):
        health.transition(state)
    assert health.snapshot().reconnects == 1
    with pytest.raises(IllegalTransition):
        health.transition(StreamState.STREAMING)  # terminal states are final
    health.finish()
    assert health.state is StreamState.ENDED


def test_decimator_keeps_stride_and_max_fps_across_a_clock_reset() -> None:
    stride = Decimator(stride=3)
    assert [stride.keep(i / 30) for i in range(7)] == [True, False, False, True, False, False, True]
    capped, timeline = Decimator(max_fps=10), Timeline(live=True)  # as the capture thread reads its frames
    kept = [i for i in range(60) if capped.keep(timeline.place(i / 30, 100 + i / 30, 30.0))]  # 2 s at 30 fps
    assert len(kept) == 20 and kept[:3] == [0, 3, 6]
    # The camera reconnected and its clock started again at 0: the timeline goes on, and so does the cap.
    again = [i for i in range(30) if capped.keep(timeline.place(i / 30, 102.5 + i / 30, 30.0))]
    assert len(again) == 10


def test_redact_text_removes_passwords_from_free_text() -> None:
    text = "error opening rtsp://admin:hunter2@10.0.0.5/s and http://u:p@x/y"
    assert redact_text(text) == "error opening rtsp://admin:***@10.0.0.5/s and http://u:***@x/y"
    assert redact_text("token abc123 failed", ["abc123"]) == "token *** failed"


@pytest.mark.timeout(60)
def test_max_fps_thins_a_fast_camera() -> None:
    source = open_source(SourceSpec("fast", "synthetic:?size=64x48&fps=120&frames=240", SourceKind.SYNTHETIC))
    setup = StreamSetup("fast", source, Overflow.BLOCK, policy=CapturePolicy(realtime=True, max_fps=15))
    summary = Pipeline([setup], StampDetector).run()
    assert summary.streams["fast"].captured == 30  # 2 s of media time at 15 fps


@pytest.mark.timeout(60)
def test_a_looping_file_starts_again_with_time_running_forward(clips: list[Path]) -> None:
    source = open_source(SourceSpec("loop", str(clips[0]), SourceKind.FILE), loop=True)
    pipeline = Pipeline([StreamSetup("loop", source)], StampDetector)
    results = []
    for result in pipeline.results():
        results.append(result)
        if len(results) == 30:
            break
    assert [r.frame.seq for r in results] == list(range(30))
    assert [int(r.detections.xyxy[0][0]) for r in results] == [i % 12 for i in range(30)]
    times = [r.frame.meta.pts for r in results]
    assert all(b is not None and a is not None and b > a for a, b in itertools.pairwise(times))


@pytest.mark.timeout(60)
def test_a_missing_webcam_fails_only_its_own_stream() -> None:
    setups = [StreamSetup("webcam", open_source(SourceSpec("webcam", "/dev/video97", SourceKind.WEBCAM)),
                          policy=CapturePolicy(backoff=Backoff(base=0.05, attempts=1))),
              StreamSetup("ok", open_source(SourceSpec("ok", "synthetic:?size=64x48&frames=10", SourceKind.SYNTHETIC)))]
    summary = Pipeline(setups, StampDetector).run()
    assert summary.streams["webcam"].state == "failed"
    assert "cannot open camera" in (summary.streams["webcam"].error or "")
    assert summary.streams["ok"].processed == 10


class _MainStream:
    """A camera's main stream read for its recording: refuses the first ``refusals`` opens,
    then sends packets until stopped."""

    display_uri = "rtsp://cam/main"

    def __init__(self, refusals: int, stop: threading.Event) -> None:
        self.refusals = refusals
        self.stop = stop
        self.opens = 0
        self.packets = 0
        self.sending = threading.Event()

    def open(self) -> SourceInfo:
        self.opens += 1
        if self.opens <= self.refusals:
            raise SourceOpenError(f"stream 'door' ({self.display_uri}): cannot open: Connection refused")
        return SourceInfo(1920, 1080, 25.0, "h264")

    def read_packet(self) -> bool:
        self.packets += 1
        self.sending.set()
        return not self.stop.wait(0.01)

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        self.stop.set()


def test_a_record_source_that_is_down_is_the_streams_error_while_it_reconnects() -> None:
    """The camera's main stream refuses twice: the stream's error says its recording source is
    down and being reconnected (its recording is not being made) from the first refusal; once
    back, it is read again. One that gives up says so last."""
    stop, health = threading.Event(), StreamHealth("door")
    main = _MainStream(refusals=2, stop=stop)
    capture = PacketCapture("door", main, stop, Backoff(base=0.05, cap=0.05, jitter=0),
                            functools.partial(health.note_error, replace=True), random.Random(1))
    capture.start()
    assert main.sending.wait(10) and main.opens == 3
    stop.set()
    capture.thread.join(10)
    assert health.snapshot().error == ("recording source: stream 'door' (rtsp://cam/main): cannot open: Connection "
                                       "refused; reconnecting")
    stop, health = threading.Event(), StreamHealth("door")
    gone = PacketCapture("door", _MainStream(refusals=9, stop=stop), stop, Backoff(base=0.01, cap=0.01, jitter=0,
                                                                                     attempts=2),
                         functools.partial(health.note_error, replace=True), random.Random(1))
    gone.start()
    gone.thread.join(10)
    assert not gone.thread.is_alive() and (health.snapshot().error or "").endswith("Connection refused (gave up)")
