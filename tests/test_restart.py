"""Restart policy, stream state machine, thinning, looping: the small rules behind live sources."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from streamyolo.buffering import Overflow
from streamyolo.clock import Timeline
from streamyolo.pipeline import Pipeline, StreamSetup, StreamState
from streamyolo.pipeline.health import IllegalTransition, StreamHealth
from streamyolo.pipeline.restart import Backoff
from streamyolo.sources import SourceKind, SourceSpec, open_source, redact_text
from streamyolo.workers.capture import CapturePolicy, Decimator
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
