"""Pipeline behaviour with fakes at the seams: ordering, accounting, isolation, shutdown."""

from __future__ import annotations

import json
import logging
import re
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.errors import ModelError, OutputsIncompleteError, SourceNotFoundError, WorkerError
from streamyolo.frames import Detections, Frame, FrameMeta, Image, Result
from streamyolo.inference.detector import Detector
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.monitor import StatsWriter
from streamyolo.sinks import JsonlSink, VideoRecorder
from streamyolo.sinks.jsonl import LineFile
from streamyolo.sources import SourceKind, SourceSpec, open_source, stream_tag
from streamyolo.sources.synthetic import read_stamp
from streamyolo.workers.capture import CapturePolicy
from tests.helpers import ScriptedSource, StampDetector, decode, make_clip, read_jsonl, stamps, until


def _file_setups(paths: list[Path]) -> list[StreamSetup]:
    return [StreamSetup(p.stem, open_source(SourceSpec(p.stem, str(p), SourceKind.FILE)), Overflow.BLOCK)
            for p in paths]


def _identity_holds(pipeline: Pipeline) -> None:
    for name, report in pipeline.summary().streams.items():
        assert report.captured == report.processed + report.dropped, f"{name}: {report}"


@pytest.mark.timeout(120)
def test_lossless_recorded_frames_equal_source_frames_equal_jsonl_lines(clips: list[Path], tmp_path: Path) -> None:
    record, jsonl = tmp_path / "rec", tmp_path / "out.jsonl"
    sinks = [VideoRecorder(record, preset="ultrafast"), JsonlSink(jsonl)]
    pipeline = Pipeline(_file_setups(clips), StampDetector, workers=2, max_batch=3, sinks=sinks)
    before = time.time()
    summary = pipeline.run()
    after = time.time()

    lines = read_jsonl(jsonl)
    for clip in clips:
        name = clip.stem
        source_frames, _ = decode(clip)
        recorded, info = decode(record / f"{name}.mp4")
        assert info["codec"] == "h264"
        assert (info["width"], info["height"]) == source_frames[0].shape[1::-1]
        expected = [(stream_tag(name), i) for i in range(len(source_frames))]
        assert stamps(source_frames) == expected
        assert stamps(recorded) == expected, f"{name}: recorded frames differ from the source's"
        mine = [line for line in lines if line["stream"] == name]
        assert [line["seq"] for line in mine] == list(range(len(source_frames)))
        # The fake detector reports the stamp it saw: proves each line describes its own frame.
        assert all(line["detections"][0]["cls"] == stream_tag(name) for line in mine)
        assert [line["detections"][0]["xyxy"][0] for line in mine] == list(range(len(source_frames)))
        report = summary.streams[name]
        assert (report.captured, report.processed, report.dropped, report.state) == (12, 12, 0, "ended")
    assert set(lines[0]) == {"stream", "seq", "time", "t_capture", "pts", "detections"}
    assert all(before - 0.01 <= line["time"] <= after + 0.01 for line in lines)  # the wall clock, rounded to ms
    assert summary.recordings == {clip.stem: [str(record / f"{clip.stem}.mp4")] for clip in clips}


def _frames_written(sink: JsonlSink, stream: str, count: int) -> None:
    sink.open()
    try:
        for seq in range(count):
            meta = FrameMeta(stream, seq, time.monotonic(), None, 25.0)
            sink.write(Result(Frame(meta, np.zeros((4, 4, 3), np.uint8)), Detections.empty(), t_done=meta.t_capture))
    finally:
        sink.close()


@pytest.mark.timeout(30)
def test_the_jsonl_and_stats_files_keep_an_earlier_runs_lines(tmp_path: Path) -> None:
    """A job restarted after a crash appends: nothing an earlier run wrote is lost, and a line
    a full disk cut short is removed, so every line of the file is whole JSON."""
    path = tmp_path / "det.jsonl"
    _frames_written(JsonlSink(path), "first", 3)
    whole = path.read_text()
    with path.open("a") as file:
        file.write('{"stream": "first", "seq": 3, "detec')  # cut short
    _frames_written(JsonlSink(path), "second", 2)
    assert path.read_text().startswith(whole)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["stream"], line["seq"]) for line in lines] == [("first", 0), ("first", 1), ("first", 2),
                                                                ("second", 0), ("second", 1)]
    assert all(abs(line["time"] - time.time()) < 5 for line in lines[3:])
    _frames_written(JsonlSink(path, overwrite=True), "third", 1)
    assert [json.loads(line)["stream"] for line in path.read_text().splitlines()] == ["third"]

    stats = tmp_path / "stats.jsonl"
    for _ in range(2):
        writer = StatsWriter(stats)
        writer.open()
        writer.write([], elapsed=1.0)
        writer.close()
    assert [abs(line["time"] - time.time()) < 5 for line in read_jsonl(stats)] == [True, True]


@pytest.mark.timeout(30)
def test_a_line_file_moved_away_by_logrotate_goes_on_in_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "det.jsonl"
    lines = LineFile(path, "JSONL file")
    lines.open()
    lines.write("1\n")
    path.rename(tmp_path / "det.jsonl.1")  # logrotate's default: move, then expect a new file
    lines.write("2\n")
    assert path.read_text() == "2\n"
    path.unlink()  # a clean-up
    lines.write("3\n")
    assert path.read_text() == "3\n"
    with path.open("r+") as file:  # copytruncate: the same file, emptied
        file.truncate(0)
    lines.write("4\n")
    lines.close()
    assert ((tmp_path / "det.jsonl.1").read_text(), path.read_text()) == ("1\n", "4\n")


@pytest.mark.timeout(30)
def test_a_line_file_that_cannot_be_written_pauses_and_goes_on_when_it_can(tmp_path: Path) -> None:
    """The kernel refuses the JSONL's writes (a file-size limit here; a full disk on a box):
    lines are lost, not the run; the file keeps whole lines only, takes lines again once the
    room is back and a retry is due, and says at the end how many it lost."""
    path, now = tmp_path / "det.jsonl", [0.0]
    lines = LineFile(path, "JSONL file", clock=lambda: now[0])
    lines.open()
    line = json.dumps({"seq": 0, "padding": "x" * 74}) + "\n"
    assert len(line) == 100
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (950, hard))  # room for 9 lines and half a 10th
    try:
        for _ in range(12):
            lines.write(line)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert lines.pause.paused and lines.pause.lost == 3  # the 10th failed, the 11th and 12th came before a retry
    assert path.read_text() == line * 9, "the cut 10th line must be gone"
    now[0] += 5.0
    lines.write(line)  # not yet time to try again
    assert lines.pause.lost == 4 and path.read_text() == line * 9
    now[0] += 5.0
    lines.write(line)  # the room is back: written
    assert not lines.pause.paused and path.read_text() == line * 10
    with pytest.raises(OutputsIncompleteError, match=r"JSONL file '.*det\.jsonl': 4 line\(s\) could not be written "
                                                     r"\(first: OSError: \[Errno 27\] File too large\)"):
        lines.close()


class _Losing:
    """A sink that says, as it closes, that it lost lines (as a full disk leaves one)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def open(self) -> None:
        pass

    def write(self, result: Result) -> None:
        pass

    def close(self) -> None:
        raise OutputsIncompleteError(f"{self.what}: 2 line(s) could not be written (first: OSError: disk full)")


@pytest.mark.timeout(30)
def test_what_every_output_lost_is_raised_and_in_the_summary_file(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    pipeline = Pipeline([StreamSetup("s", ScriptedSource("s", 5))], StampDetector, summary_path=summary,
                        sinks=[_Losing("JSONL file 'a.jsonl'"), _Losing("events file 'b.jsonl'")])
    with pytest.raises(OutputsIncompleteError) as raised:
        pipeline.run()
    lost = ["JSONL file 'a.jsonl': 2 line(s) could not be written (first: OSError: disk full)",
            "events file 'b.jsonl': 2 line(s) could not be written (first: OSError: disk full)"]
    assert raised.value.lost == lost and str(raised.value) == "; ".join(lost)  # (not the first alone)
    written = json.loads(summary.read_text())
    assert written["lost"] == lost and written["streams"]["s"]["processed"] == 5


@pytest.mark.timeout(120)
def test_live_frame_age_stays_bounded_and_accounting_is_exact() -> None:
    """A source at 400 fps against a 25 ms detector: most frames are dropped, every drop is
    counted, and the age of processed frames does not grow over the run."""
    delay = 0.025
    sources = [open_source(SourceSpec(f"fast{i}", "synthetic:?size=160x120&fps=400&frames=1200",
                                      SourceKind.SYNTHETIC)) for i in range(2)]
    setups = [StreamSetup(f"fast{i}", s, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for i, s in enumerate(sources)]
    pipeline = Pipeline(setups, lambda: StampDetector(delay=delay), workers=1, max_batch=2)
    ages: list[float] = []
    for result in pipeline.results():
        ages.append(result.age)
    summary = pipeline.summary()
    for report in summary.streams.values():
        assert report.captured == 1200
        assert report.captured == report.processed + report.dropped
        assert report.dropped > report.processed  # the source really was faster
    third = len(ages) // 3
    early, late = sorted(ages[:third]), sorted(ages[-third:])
    p90 = int(third * 0.9)
    assert late[p90] < max(4 * delay, 2 * early[p90] + delay), f"frame age grew: {early[p90]:.3f} → {late[p90]:.3f}"


class _Stalling(ScriptedSource):
    """A 30 fps synthetic camera whose ``stall_at``-th read takes ``stall`` seconds longer."""

    def __init__(self, name: str, frames: int, stall_at: int, stall: float) -> None:
        super().__init__(name, frames)
        self.synthetic = open_source(SourceSpec(name, f"synthetic:?size=64x48&fps=30&frames={frames}",
                                                SourceKind.SYNTHETIC))
        self.stall_at, self.stall = stall_at, stall

    def read(self):  # type: ignore[no-untyped-def]
        if self.reads == self.stall_at:
            threading.Event().wait(self.stall)
        return super().read()


@pytest.mark.timeout(60)
@pytest.mark.alone  # "on time": within 0.1 s, which another test beside it could take
def test_a_frame_played_late_is_as_old_as_its_lag() -> None:
    """A file played in real time is stamped when each frame was due, as a camera would
    have sent it: a frame that comes 0.3 s late is 0.3 s older, and the frames after it
    are stamped on time while the capture catches up."""
    source = _Stalling("cam", frames=20, stall_at=10, stall=0.3)
    setups = [StreamSetup("cam", source, Overflow.BLOCK, policy=CapturePolicy(realtime=True))]
    pipeline = Pipeline(setups, StampDetector, workers=1)
    metas = [(result.frame.meta, result.age) for result in pipeline.results()]
    _identity_holds(pipeline)
    assert [meta.seq for meta, _ in metas] == list(range(20))
    start = metas[0][0].t_capture
    assert all(abs(meta.t_capture - start - meta.seq / 30) < 1e-6 for meta, _ in metas), metas
    late = {meta.seq: meta.ready_at - meta.t_capture for meta, _ in metas}
    assert late[10] >= 0.25 and metas[10][1] >= 0.25, late  # its lag is in its age
    assert max(late[k] for k in range(8)) < 0.1, late  # on time before the stall
    assert late[19] < late[10] - 0.1, late  # caught up after it


class _SlowReads(ScriptedSource):
    """A 30 fps synthetic camera each of whose reads takes ``seconds`` (a decoder too slow for it)."""

    def __init__(self, name: str, frames: int, seconds: float) -> None:
        super().__init__(name, frames)
        self.synthetic = open_source(SourceSpec(name, f"synthetic:?size=64x48&fps=30&frames={frames}",
                                                SourceKind.SYNTHETIC))
        self.seconds = seconds

    def read(self):  # type: ignore[no-untyped-def]
        threading.Event().wait(self.seconds)
        return super().read()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("slow", ["model", "decoding", None])
def test_a_file_played_in_real_time_that_falls_behind_says_so(
        slow: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """A file played as a camera (30 fps) whose frames take 0.15 s each to process, every one
    of them asked for (``overflow: lossless``: the capture waits for the model), or to decode
    (a live buffer): it falls further and further behind real time (5 s after 45 frames), and
    says so once 2 s behind, and again at twice that, with why and what helps; a file that
    keeps up says nothing."""
    frames, overflow = 45, Overflow.DROP_OLDEST if slow == "decoding" else Overflow.BLOCK
    source = (_SlowReads("cam", frames, 0.15) if slow == "decoding" else
              open_source(SourceSpec("cam", f"synthetic:?size=64x48&fps=30&frames={frames}", SourceKind.SYNTHETIC)))
    setups = [StreamSetup("cam", source, overflow, capacity=2, policy=CapturePolicy(realtime=True))]
    pipeline = Pipeline(setups, lambda: StampDetector(delay=0.15 if slow == "model" else 0.0), workers=1, max_batch=1)
    summary = pipeline.run()
    assert summary.streams["cam"].state == "ended"
    told = [m for m in caplog.messages if "behind real time" in m]
    if slow is None:
        assert told == [], told
        return
    why = "every frame of it is processed (overflow: lossless)" if slow == "model" else "cannot all be decoded"
    assert len(told) >= 2 and all(why in m for m in told), told
    assert re.match(r"stream 'cam' is 2\.\d s behind real time: ", told[0]), told
    assert re.match(r"stream 'cam' is [45]\.\d s behind real time and falling further behind: ", told[1]), told


@pytest.mark.timeout(60)
def test_a_failing_stream_never_stops_the_others() -> None:
    setups = [
        StreamSetup("good0", ScriptedSource("good0", 30)),
        StreamSetup("dies", ScriptedSource("dies", 30, fail_at=5)),
        StreamSetup("never", ScriptedSource("never", 30, fail_open=True)),
        StreamSetup("good1", ScriptedSource("good1", 30)),
    ]
    pipeline = Pipeline(setups, StampDetector, workers=2)
    summary = pipeline.run()
    assert summary.streams["good0"].processed == summary.streams["good1"].processed == 30
    assert summary.streams["good0"].state == "ended"
    dies = summary.streams["dies"]
    assert dies.state == "failed" and dies.processed == 5 and "scripted read failure" in (dies.error or "")
    never = summary.streams["never"]
    assert never.state == "failed" and never.captured == 0 and "cannot open" in (never.error or "")
    _identity_holds(pipeline)


@pytest.mark.timeout(60)
def test_a_missing_file_fails_its_stream_and_the_others_go_on(tmp_path: Path, clips: list[Path],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    # A file not there (a share not mounted yet, a typo) is one stream's trouble, as a file
    # that does not decode is; every file missing: nothing could run, an error before the run.
    ghost = tmp_path / "ghost.mp4"
    config = {"streams": [str(clips[0]), f"ghost={ghost}"], "model": "yolo26n.yaml",
              "imgsz": 64, "device": "cpu", "display": False, "status_interval": 0}
    with caplog.at_level(logging.ERROR):
        pipeline = Pipeline.from_config(config)
    assert f"stream 'ghost': file not found: '{ghost}': the stream fails, the others go on" in caplog.messages
    summary = pipeline.run()
    good = summary.streams[Path(clips[0]).stem]
    assert good.state == "ended" and good.processed == good.captured > 0
    assert summary.streams["ghost"].state == "failed" and summary.streams["ghost"].captured == 0, summary.streams
    assert f"file not found: '{ghost}'" in (summary.streams["ghost"].error or "")
    with pytest.raises(SourceNotFoundError, match=f"^stream 'ghost': file not found: '{ghost}'$"):
        Pipeline.from_config({**config, "streams": config["streams"][1:]})


@pytest.mark.timeout(60)
def test_worker_failure_fails_its_streams_and_is_raised() -> None:
    setups = [StreamSetup(f"s{i}", ScriptedSource(f"s{i}", 50)) for i in range(2)]
    counted = [0]  # (broken for good: built again, it fails too)
    pipeline = Pipeline(setups, lambda: StampDetector(fail_on=3, counted=counted), workers=1, max_batch=1)
    with pytest.raises(WorkerError, match="fake detector failure") as caught:
        pipeline.run()
    assert isinstance(caught.value.__cause__, RuntimeError)
    summary = pipeline.summary()
    assert all(r.state == "failed" for r in summary.streams.values())
    assert sum(r.processed for r in summary.streams.values()) == 2
    _identity_holds(pipeline)


@pytest.mark.timeout(60)
def test_model_that_fails_to_build_stops_start_before_capture() -> None:
    source = ScriptedSource("s0", 10)

    def broken() -> Detector:
        raise ModelError("cannot load model 'broken.pt': scripted")

    pipeline = Pipeline([StreamSetup("s0", source)], broken)
    with pytest.raises(ModelError, match=r"broken\.pt"):
        pipeline.start()
    assert source.reads == 0, "capture must not start when no model could be built"


@pytest.mark.timeout(60)
def test_stop_drains_frames_in_flight_and_ends_blocked_sources() -> None:
    blocked = ScriptedSource("cam", 1000, block_at=5)
    pipeline = Pipeline([StreamSetup("cam", blocked, Overflow.DROP_OLDEST, capacity=2)], StampDetector)
    pipeline.start()
    assert pipeline.health("cam").wait_for(lambda s: s.value == "streaming", timeout=10)
    seen = 0
    while pipeline.summary().streams["cam"].processed + pipeline.summary().streams["cam"].dropped < 5:
        pipeline.wait(0.01)
        seen += 1
        assert seen < 2000
    pipeline.stop()
    summary = pipeline.join(timeout=10)
    report = summary.streams["cam"]
    assert report.state == "stopped"
    assert report.captured == 5 == report.processed + report.dropped
    assert blocked.closed.is_set()


@pytest.mark.timeout(60)
def test_leaving_the_results_loop_early_stops_everything() -> None:
    setups = [StreamSetup("endless", open_source(SourceSpec("endless", "synthetic:?size=64x48", SourceKind.SYNTHETIC)))]
    with Pipeline(setups, StampDetector) as pipeline:
        for count, result in enumerate(pipeline.results()):
            assert result.frame.seq == count
            if count == 20:
                break
    report = pipeline.summary().streams["endless"]
    assert report.state == "stopped"
    assert report.captured == report.processed + report.dropped
    assert not any(t.is_alive() for t in pipeline.threads)


@pytest.mark.timeout(60)
def test_duration_stops_an_endless_run() -> None:
    setups = [StreamSetup("endless", open_source(SourceSpec("endless", "synthetic:?size=64x48", SourceKind.SYNTHETIC)))]
    pipeline = Pipeline(setups, StampDetector, duration=0.5)
    summary = pipeline.run()
    assert summary.streams["endless"].state == "stopped"
    assert summary.streams["endless"].processed > 0
    _identity_holds(pipeline)


class _StuckOnThirdCall(StampDetector):
    """A detector whose third forward pass blocks until ``release`` is set, as a model
    runtime that deadlocks would."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        if self.calls == 2:
            self.stuck_in_the_runtime()
        return super().detect(images)

    def stuck_in_the_runtime(self) -> None:
        self.release.wait(60)


@pytest.mark.timeout(90)
def test_a_worker_stuck_in_a_forward_pass_is_reported_with_its_stack_while_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    factories: list[Callable[[], Detector]] = [StampDetector, lambda: _StuckOnThirdCall(release)]
    setups = [StreamSetup(f"s{i}", ScriptedSource(f"s{i}", 30)) for i in range(2)]
    pipeline = Pipeline(setups, factories, workers=2, max_batch=1, status_interval=0, hang_warning=0.5)

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "streamyolo.pipeline.monitor"]

    with caplog.at_level(logging.WARNING, logger="streamyolo.pipeline.monitor"):
        pipeline.start()
        try:
            deadline = time.monotonic() + 30
            while not any("'w1'" in m for m in messages()) and time.monotonic() < deadline:
                time.sleep(0.05)
            hung = [m for m in messages() if "'w1'" in m]
            assert len(hung) == 1, messages()
            first_line, stacks = hung[0].split("\n", 1)
            assert "inference worker 'w1' (streams s1) has been inside one forward pass" in first_line
            assert stacks.startswith("thread 'inference:w") and "stuck_in_the_runtime" in stacks, stacks
            while pipeline.reports()[0].processed < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pipeline.reports()[0].processed == 30, "one hung worker must not stop the others"
            time.sleep(1.5)
            assert len([m for m in messages() if "'w1'" in m]) == 1, "one warning per stuck forward pass"
        finally:
            release.set()
            summary = pipeline.join(30)
    assert summary.streams["s1"].processed == 30
    assert any("'w1' is running again" in m for m in messages()), messages()
    assert not any("'w0'" in m for m in messages()), "a worker that keeps up is never reported"
    _identity_holds(pipeline)


@pytest.mark.timeout(60)
def test_a_model_that_takes_long_to_build_is_reported_with_where_its_thread_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    def building_for_long() -> Detector:
        release.wait(30)
        return StampDetector()

    pipeline = Pipeline([StreamSetup("s0", ScriptedSource("s0", 10))], building_for_long, status_interval=0,
                        hang_warning=0.5)
    starting = threading.Thread(target=pipeline.start)
    with caplog.at_level(logging.WARNING, logger="streamyolo.pipeline.pipeline"):
        starting.start()
        try:
            deadline = time.monotonic() + 20
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
            first_line, stacks = caplog.records[0].getMessage().split("\n", 1)
            assert "inference worker 'w0' has been building its model for" in first_line
            assert stacks.startswith("thread 'inference:w0'") and "building_for_long" in stacks, stacks
        finally:
            release.set()
            starting.join(20)
    summary = pipeline.join(30)
    assert summary.streams["s0"].processed == 10
    assert len(caplog.records) == 1, "one warning per start"


@pytest.mark.timeout(90)
def test_live_streams_that_skip_most_frames_are_told_of_and_when_they_keep_up_again(
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    """Two 100 fps cameras against a 100 ms model: nearly every frame is skipped, and the log
    says so once, naming them (not the file beside them, which loses nothing); when the model
    gets fast the log says the run keeps up again. Both are ``overload`` events too (for a
    webhook: the box needs a lighter load)."""
    from streamyolo.sinks.events import EventSink
    from streamyolo.sinks.history import describe

    built: list[StampDetector] = []

    def detector() -> StampDetector:
        built.append(StampDetector(delay=0.1))
        return built[-1]

    cams = [StreamSetup(f"cam{i}", open_source(SourceSpec(f"cam{i}", "synthetic:?size=64x48&fps=100&frames=6000",
                                                          SourceKind.SYNTHETIC)),
                        Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True)) for i in range(2)]
    pipeline = Pipeline([*cams, StreamSetup("file", ScriptedSource("file", 40))], detector, workers=1,
                        max_batch=1, status_interval=0, overload_warning=1.5, sinks=[EventSink(tmp_path / "ev.jsonl")])

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "streamyolo.pipeline.overload"]

    with caplog.at_level(logging.INFO, logger="streamyolo.pipeline.overload"):
        pipeline.start()
        try:
            until(messages, 30, "a warning while nearly every frame is skipped")
            warning = messages()[0]
            assert warning.startswith("the machine cannot keep up with the live streams: "), warning
            share = int(warning.split(": ")[1].split("%")[0])
            assert share >= 80, warning
            assert "'cam0' " in warning and "'cam1' " in warning and "'file'" not in warning, warning
            assert "sub streams" in warning and "overload_warning: 0" in warning, warning
            time.sleep(1.0)
            assert len(messages()) == 1, "said once while it lasts"
            built[0].delay = 0.0
            until(lambda: len(messages()) == 2, 30, "word that it keeps up again")
            assert messages()[1].startswith("the live streams are kept up with again: "), messages()
        finally:
            pipeline.stop()
            summary = pipeline.join(30)
    assert summary.streams["file"].processed == 40
    _identity_holds(pipeline)
    started, ended = [e for e in read_jsonl(tmp_path / "ev.jsonl") if e["event"] == "overload"]
    assert (started["stream"], started["state"], sorted(started["streams"])) == ("", "started", ["cam0", "cam1"])
    assert started["skipped"] >= 80 and started["window"] >= 1.5, started
    assert (ended["state"], ended["stream"]) == ("ended", "") and 1.0 <= ended["seconds"] <= 60, ended
    assert describe(started).endswith(f"  the machine cannot keep up: {started['skipped']:.0f}% of the live streams' "
                                      f"frames skipped in the last {started['window']:.0f} s "
                                      f"({', '.join(started['streams'])})"), describe(started)
    assert describe(ended).endswith(f"  the machine keeps up again after {ended['seconds']:.0f} s")


@pytest.mark.timeout(60)
def test_threads_are_named_by_role_and_stream() -> None:
    names: list[str] = []
    release = threading.Event()

    class Source(ScriptedSource):
        def read(self):  # type: ignore[no-untyped-def]
            names.append(threading.current_thread().name)
            release.wait(5)
            return None

    setups = [StreamSetup("cam1", Source("cam1", 1))]
    pipeline = Pipeline(setups, lambda: StampDetector(built_in=names))
    pipeline.start()
    release.set()
    pipeline.join(timeout=10)
    assert sorted(names) == ["capture:cam1", "inference:w0"]


@pytest.mark.timeout(60)
def test_no_stream_starves_when_a_batch_is_smaller_than_the_streams() -> None:
    """Four endless lossless streams, one worker, batches of one: every stream advances."""
    setups = [StreamSetup(f"s{i}", open_source(SourceSpec(f"s{i}", "synthetic:?size=64x48", SourceKind.SYNTHETIC)))
              for i in range(4)]
    # The worker is the bottleneck (5 ms a frame), so every buffer always has frames waiting.
    pipeline = Pipeline(setups, lambda: StampDetector(delay=0.005), workers=1, max_batch=1)
    counts = dict.fromkeys(pipeline.stream_names, 0)
    for result in pipeline.results():
        counts[result.stream] += 1
        if sum(counts.values()) == 200:
            break
    assert min(counts.values()) >= 40, counts  # a fair share is 50; starving would be ~0


@pytest.mark.timeout(60)
def test_live_streams_share_a_slow_worker_fairly() -> None:
    sources = [open_source(SourceSpec(f"cam{i}", "synthetic:?size=64x48&fps=60&frames=120", SourceKind.SYNTHETIC))
               for i in range(4)]
    setups = [StreamSetup(f"cam{i}", s, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for i, s in enumerate(sources)]
    summary = Pipeline(setups, lambda: StampDetector(delay=0.02), workers=1).run()
    processed = [r.processed for r in summary.streams.values()]
    assert min(processed) >= 0.6 * max(processed), processed
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_three_live_streams_on_two_workers_get_even_shares_and_go_on_where_the_other_left_off(mode: str) -> None:
    """Three 60 fps cameras dealt 2 + 1 to the two workers of one model, which keep up with
    about 33 frames a second each: whichever worker is free takes the owed stream, so each
    stream gets a third of the frames processed (dealt for good, the one alone on its worker
    got twice the others'). Every stream is served by both workers, its frames in order, and
    its tracker and counting line go on from one worker to the other: the box that walks over
    the line (StampDetector's: x is the frame's number) keeps its track id and crosses it once."""
    from streamyolo.inference.counting import CountingLine
    from streamyolo.inference.tracking import StreamTracker, tracker_settings
    from streamyolo.workers.process import ProcessDetectorFactory
    from tests.process_fakes import StampFactory

    sources = [open_source(SourceSpec(f"cam{i}", "synthetic:?size=160x96&fps=60&frames=180", SourceKind.SYNTHETIC))
               for i in range(3)]
    line = CountingLine("gate", (90.0, -100.0), (90.0, 100.0))
    setups = [StreamSetup(f"cam{i}", s, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True),
                          lines=(line,)) for i, s in enumerate(sources)]
    factory = StampFactory(delay=0.03, width=60)  # (wide: it moves 2-4 px from one processed frame to the next)
    detectors = factory if mode == "thread" else [ProcessDetectorFactory(factory, f"w{i}") for i in range(2)]
    StreamTracker(tracker_settings("bytetrack"))  # Ultralytics imported first, as a run from a config has it
    pipeline = Pipeline(setups, detectors, workers=2, sharing=[0, 0], tracker=tracker_settings("bytetrack"))
    served: dict[str, list[tuple[int, str, tuple[int, ...]]]] = {name: [] for name in pipeline.stream_names}
    crossed: dict[str, list[int]] = {name: [] for name in pipeline.stream_names}
    for result in pipeline.results():
        ids = () if result.detections.ids is None else tuple(int(i) for i in result.detections.ids)
        served[result.stream].append((result.frame.meta.seq, result.worker, ids))
        crossed[result.stream] += [c.id for c in result.crossings]
    summary = pipeline.summary()
    processed = [summary.streams[name].processed for name in served]
    assert min(processed) >= 0.8 * max(processed), processed
    for name, results in served.items():
        seqs = [seq for seq, _, _ in results]
        assert seqs == sorted(set(seqs)), f"{name}: frames out of order"
        assert {worker for _, worker, _ in results} == {"w0", "w1"}, f"{name}: served by one worker only"
        tracks = {i for _, _, ids in results for i in ids}
        assert len(tracks) == 1, f"{name}: its one object got track ids {sorted(tracks)} (a tracker per worker?)"
        assert crossed[name] == [*tracks], f"{name}: crossed {crossed[name]}"
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_three_lossless_cameras_on_two_workers_get_even_shares_every_frame_in_order(mode: str) -> None:
    """Three cameras whose every frame is asked for (``overflow: lossless``, 30 fps, played in
    real time), dealt 2 + 1 to two workers that together keep up with about 60 frames a
    second: the workers take turns at them, whoever is free, so each camera falls behind as
    much as the others (dealt for good, the one alone on its worker kept up and the other two
    got half each). Every frame is processed, in order, each stream by both workers, its
    object one track all along."""
    from streamyolo.inference.tracking import StreamTracker, tracker_settings
    from streamyolo.workers.process import ProcessDetectorFactory
    from tests.process_fakes import StampFactory

    sources = [open_source(SourceSpec(f"cam{i}", "synthetic:?size=160x96&fps=30&frames=180", SourceKind.SYNTHETIC))
               for i in range(3)]
    setups = [StreamSetup(f"cam{i}", s, Overflow.BLOCK, capacity=4, policy=CapturePolicy(realtime=True))
              for i, s in enumerate(sources)]
    factory = StampFactory(delay=0.03, width=60)
    detectors = factory if mode == "thread" else [ProcessDetectorFactory(factory, f"w{i}") for i in range(2)]
    StreamTracker(tracker_settings("bytetrack"))  # Ultralytics imported first, as a run from a config has it
    pipeline = Pipeline(setups, detectors, workers=2, sharing=[0, 0], max_batch=1,
                        tracker=tracker_settings("bytetrack"))
    served: dict[str, list[tuple[int, str, tuple[int, ...]]]] = {name: [] for name in pipeline.stream_names}
    started = time.monotonic()
    early: dict[str, int] = dict.fromkeys(served, 0)  # processed in the first 4 s
    for result in pipeline.results():
        ids = () if result.detections.ids is None else tuple(int(i) for i in result.detections.ids)
        served[result.stream].append((result.frame.meta.seq, result.worker, ids))
        if time.monotonic() - started < 4:
            early[result.stream] += 1
    summary = pipeline.summary()
    assert min(early.values()) >= 0.8 * max(early.values()), early
    for name, results in served.items():
        assert [seq for seq, _, _ in results] == list(range(180)), f"{name}: not every frame, in order"
        assert {worker for _, worker, _ in results} == {"w0", "w1"}, f"{name}: served by one worker only"
        tracks = {i for _, _, ids in results for i in ids}
        assert len(tracks) == 1, f"{name}: its one object got track ids {sorted(tracks)}"
        assert summary.streams[name].processed == 180 and summary.streams[name].dropped == 0


@pytest.mark.timeout(60)
def test_lossless_cameras_lose_no_frame_when_a_worker_whose_model_fails_had_one_in_hand() -> None:
    """Three lossless cameras taken in turns by two workers; w1's model fails from its 30th
    batch on (the model at fault: it fails on a picture it ran on before too). The camera whose
    frame was in that batch, whichever worker's, gets it back: w0 takes it first and goes on;
    every frame of every camera processed, in order."""
    sources = [open_source(SourceSpec(f"cam{i}", "synthetic:?size=160x96&fps=30&frames=90", SourceKind.SYNTHETIC))
               for i in range(3)]
    setups = [StreamSetup(f"cam{i}", s, Overflow.BLOCK, capacity=4, policy=CapturePolicy(realtime=True))
              for i, s in enumerate(sources)]
    counted = [0]  # (broken for good: built again, it fails too)
    factories: list[Callable[[], Detector]] = [lambda: StampDetector(delay=0.03, width=60),
                                               lambda: StampDetector(delay=0.03, width=60, fail_on=30,
                                                                     counted=counted)]
    pipeline = Pipeline(setups, factories, workers=2, sharing=[0, 0], max_batch=1)
    served: dict[str, list[int]] = {name: [] for name in pipeline.stream_names}
    with pytest.raises(WorkerError, match="inference worker 'w1' failed"):
        for result in pipeline.results():
            served[result.stream].append(result.frame.meta.seq)
    summary = pipeline.summary()
    for name, seqs in served.items():
        assert seqs == list(range(90)), f"{name}: not every frame, in order"
        report = summary.streams[name]
        assert (report.state, report.processed, report.dropped) == ("ended", 90, 0), report


@pytest.mark.timeout(60)
def test_a_file_read_fast_beside_lossless_cameras_that_are_behind_gets_its_share_of_the_batches() -> None:
    """Two cameras whose every frame is asked for, more than the two workers keep up with (they
    always have a batch's worth waiting), and a file read as fast as it goes on w0: a camera's
    turn leaves the file its share of w0's batches, so it is done long before the cameras (a
    turn filling the whole batch starved it until the cameras ended)."""
    cameras = [StreamSetup(name, open_source(SourceSpec(name, "synthetic:?size=160x96&fps=120&frames=480",
                                                        SourceKind.SYNTHETIC)),
                           Overflow.BLOCK, capacity=8, policy=CapturePolicy(realtime=True)) for name in ("c0", "c1")]
    setups = [*cameras, StreamSetup("file", ScriptedSource("file", 60, size=(160, 96)))]
    pipeline = Pipeline(setups, lambda: StampDetector(delay=0.05), workers=2, sharing=[0, 0], serving=[0, 1, 0],
                        max_batch=4)
    last: dict[str, float] = {}
    for result in pipeline.results():
        last[result.stream] = time.monotonic()
    summary = pipeline.summary()
    assert all(summary.streams[name].dropped == 0 for name in ("c0", "c1", "file")), summary.streams
    assert summary.streams["file"].processed == 60
    assert last["file"] < min(last["c0"], last["c1"]) - 1.0, last


@pytest.mark.timeout(60)
def test_a_worker_whose_own_camera_has_ended_goes_on_serving_the_others() -> None:
    """c1, the one camera dealt to w1, ends after 2 s; c0 and c2 go on for 4 s more: w1 goes
    on taking their frames (it does not end for want of cameras of its own), and the run
    ends when they do."""
    fps, seconds = 30, {"c0": 6, "c1": 2, "c2": 6}
    sources = [open_source(SourceSpec(name, f"synthetic:?size=160x96&fps={fps}&frames={fps * n}",
                                      SourceKind.SYNTHETIC)) for name, n in seconds.items()]
    setups = [StreamSetup(s.name, s, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for s in sources]
    pipeline = Pipeline(setups, lambda: StampDetector(delay=0.03), workers=2)
    started = time.monotonic()
    late: dict[tuple[str, str], int] = {}  # (worker, stream): frames processed after c1 ended
    for result in pipeline.results():
        if time.monotonic() - started > 3.5:
            late[result.worker, result.stream] = late.get((result.worker, result.stream), 0) + 1
    summary = pipeline.summary()
    assert {stream for _, stream in late} == {"c0", "c2"}, late
    assert sum(n for (worker, _), n in late.items() if worker == "w1") >= 30, f"w1 ended: {late}"
    each = [sum(n for (_, stream), n in late.items() if stream == name) for name in ("c0", "c2")]
    assert min(each) >= 0.8 * max(each), late
    assert summary.streams["c1"].state == "ended" and all(r.captured == r.processed + r.dropped
                                                          for r in summary.streams.values())


class _StuckOnAFrameOf(StampDetector):
    """A detector whose forward pass blocks until ``release`` on the first frame of stream
    ``name`` it gets after its second call."""

    def __init__(self, name: str, release: threading.Event) -> None:
        super().__init__()
        self.tag = stream_tag(name)
        self.release = release

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        stamp = read_stamp(images[0])
        if self.calls >= 2 and stamp is not None and stamp[0] == self.tag and not self.release.is_set():
            self.release.wait(60)
        return super().detect(images)


@pytest.mark.timeout(90)
def test_a_worker_stuck_on_a_live_frame_holds_up_that_camera_alone_and_names_it(
        caplog: pytest.LogCaptureFixture) -> None:
    """Three cameras dealt 2 + 1 to two workers of one model (c0 and c2 to w0, c1 to w1);
    w1's model hangs on a frame of c0: the warning names c0, the camera it has in hand, and
    the other two go on with w0, w1's own c1 among them."""
    release = threading.Event()
    factories: list[Callable[[], Detector]] = [lambda: StampDetector(delay=0.01),
                                               lambda: _StuckOnAFrameOf("c0", release)]
    sources = [open_source(SourceSpec(f"c{i}", "synthetic:?size=160x96&fps=30&frames=900", SourceKind.SYNTHETIC))
               for i in range(3)]
    setups = [StreamSetup(f"c{i}", s, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for i, s in enumerate(sources)]
    pipeline = Pipeline(setups, factories, workers=2, sharing=[0, 0], status_interval=0, hang_warning=0.5)
    with caplog.at_level(logging.WARNING, logger="streamyolo.pipeline.monitor"):
        pipeline.start()
        try:
            hung = until(lambda: [r.getMessage() for r in caplog.records if "'w1' (streams" in r.getMessage()], 30,
                         "the warning")
            assert "inference worker 'w1' (streams c1, c0) has been inside one forward pass" in hung[0], hung[0]
            before = {r.name: r.processed for r in pipeline.reports()}
            time.sleep(1.5)
            after = {r.name: r.processed for r in pipeline.reports()}
            assert after["c0"] == before["c0"], "its frame is still in the hung pass"
            assert after["c1"] >= before["c1"] + 10 and after["c2"] >= before["c2"] + 10, (before, after)
        finally:
            release.set()
            pipeline.stop()
            summary = pipeline.join(30)
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


def _three_cameras(mode: str, failing: Callable[[], Detector]) -> Pipeline:
    """Three 30 fps cameras on two workers of one model, dealt 2 + 1 (c0 and c2 to w0, c1 to
    w1), w0's model slow but sound, w1's ``failing`` (in ``mode``, thread or process)."""
    from streamyolo.workers.process import ProcessDetectorFactory
    from tests.process_fakes import StampFactory

    factories: list[Callable[[], Detector]] = [StampFactory(delay=0.01), failing]
    if mode == "process":
        factories = [ProcessDetectorFactory(factory, f"w{i}") for i, factory in enumerate(factories)]
    sources = [open_source(SourceSpec(f"c{i}", "synthetic:?size=160x96&fps=30&frames=150", SourceKind.SYNTHETIC))
               for i in range(3)]
    setups = [StreamSetup(f"c{i}", s, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for i, s in enumerate(sources)]
    return Pipeline(setups, factories, workers=2, sharing=[0, 0])


@pytest.mark.timeout(90)
def test_a_worker_whose_model_fails_hands_its_camera_to_another_and_no_camera_fails() -> None:
    """w1's model fails on every batch from its 20th on (it, not a camera, is at fault: it
    fails on a picture it ran on before, too): w1 fails, no camera does; c1, w1's own, goes on
    with w0, as do the others; the run's end raises the worker's error. (In process mode the
    model's error comes from the child the same way: the next test.)"""
    counted = [0]  # (broken for good: built again, it fails too)
    pipeline = _three_cameras("thread", lambda: StampDetector(delay=0.01, fail_on=20, counted=counted))
    served: dict[str, list[tuple[float, str]]] = {name: [] for name in pipeline.stream_names}
    failed_at: list[float] = []
    with pytest.raises(WorkerError, match=r"inference worker 'w1' failed: .*fake detector failure"):
        for result in pipeline.results():
            served[result.stream].append((time.monotonic(), result.worker))
            if not failed_at and pipeline.worker_streams()[1] == []:
                failed_at.append(time.monotonic())
    summary = pipeline.summary()
    assert failed_at, "w1 did not fail before the cameras ended"
    for name in ("c0", "c1", "c2"):
        report = summary.streams[name]
        assert report.state == "ended" and report.error is None, report
        after = [worker for at, worker in served[name] if at > failed_at[0]]
        assert len(after) >= 30 and set(after) == {"w0"}, f"{name} after w1 failed: {len(after)} by {set(after)}"
    assert {worker for _, worker in served["c1"]} == {"w0", "w1"}
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_camera_whose_frames_fail_the_model_fails_alone_and_its_worker_goes_on(
        mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """w1's model fails on c0's frames from its 20th batch on (on a CPU, a batch of one live
    frame), and still runs on the others' (on a picture of c1 or c2 it ran on before): c0
    fails, alone; w1 goes on serving c1, its own; nothing is raised at the end."""
    from tests.process_fakes import StampFactory

    pipeline = _three_cameras(mode, StampFactory(delay=0.01, fail_on=20, fail_stream="c0"))
    served: dict[str, list[tuple[float, str]]] = {name: [] for name in pipeline.stream_names}
    failed_at: list[float] = []
    with caplog.at_level(logging.ERROR):
        for result in pipeline.results():
            served[result.stream].append((time.monotonic(), result.worker))
            if not failed_at and pipeline.summary().streams["c0"].state == "failed":
                failed_at.append(time.monotonic())
    summary = pipeline.summary()
    c0 = summary.streams["c0"]
    assert c0.state == "failed", c0
    assert c0.error == "the model of inference worker 'w1' fails on its frames: RuntimeError: fake detector failure"
    assert any("stream 'c0' failed: the model of inference worker 'w1' fails on its frames" in m
               and m.endswith("(the worker goes on with its other streams)") for m in caplog.messages)
    assert failed_at, "c0 did not fail before the cameras ended"
    for name in ("c1", "c2"):
        report = summary.streams[name]
        assert report.state == "ended" and report.error is None, report
    after = [worker for at, worker in served["c1"] if at > failed_at[0]]
    assert after.count("w1") >= 15, f"c1 after c0 failed: {len(after)} frames, {after.count('w1')} by w1"
    assert pipeline.worker_streams()[1] == [] and summary.processed > 300
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


@pytest.mark.timeout(60)
def test_a_file_whose_frames_fail_the_model_fails_alone_and_its_batch_mates_lose_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """w1 serves two files two frames a batch, a frame of each; its model fails on batches
    with a frame of ``bad`` from its 10th on: run again stream by stream, ``good``'s frames go
    through and ``bad`` fails; w1 goes on with ``good`` to its last frame; nothing is raised."""
    sources = {name: ScriptedSource(name, 60, size=(160, 96)) for name in ("other", "bad", "good")}
    setups = [StreamSetup(name, source) for name, source in sources.items()]
    factories: list[Callable[[], Detector]] = [lambda: StampDetector(delay=0.01),
                                               lambda: StampDetector(delay=0.01, fail_on=10, fail_stream="bad")]
    pipeline = Pipeline(setups, factories, workers=2, sharing=[0, 0], serving=[0, 1, 1], max_batch=2)
    workers: dict[str, set[str]] = {name: set() for name in sources}
    indices: dict[str, list[int]] = {name: [] for name in sources}
    with caplog.at_level(logging.ERROR):
        for result in pipeline.results():
            workers[result.stream].add(result.worker)
            indices[result.stream].append(result.frame.meta.seq)
    summary = pipeline.summary()
    bad = summary.streams["bad"]
    assert bad.state == "failed" and 5 <= bad.processed < 60, bad
    assert bad.error == "the model of inference worker 'w1' fails on its frames: RuntimeError: fake detector failure"
    for name in ("good", "other"):
        report = summary.streams[name]
        assert (report.state, report.processed, report.dropped) == ("ended", 60, 0), report
        assert indices[name] == list(range(60)), f"{name}: frames out of order or missing"
    assert workers == {"other": {"w0"}, "bad": {"w1"}, "good": {"w1"}}, workers
    assert [m for m in caplog.messages if "fails on its frames" in m] == [
        "stream 'bad' failed: the model of inference worker 'w1' fails on its frames: RuntimeError: fake detector "
        "failure (the worker goes on with its other streams)"]
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


@pytest.mark.timeout(60)
def test_a_stream_that_fails_the_model_on_its_first_frame_fails_alone() -> None:
    """w1's first batch is a frame of ``bad``, which fails its model: with no picture of its
    own run yet, the model is tried on a plain grey one, which goes through: ``bad`` fails
    alone; nothing is raised."""
    sources = {name: ScriptedSource(name, 30, size=(160, 96)) for name in ("good", "bad")}
    factories: list[Callable[[], Detector]] = [StampDetector, lambda: StampDetector(fail_on=1, fail_stream="bad")]
    pipeline = Pipeline([StreamSetup(name, s) for name, s in sources.items()], factories, workers=2,
                        sharing=[0, 0], serving=[0, 1], max_batch=1)
    summary = pipeline.run()
    bad, good = summary.streams["bad"], summary.streams["good"]
    assert (bad.state, bad.processed, bad.error) == (
        "failed", 0, "the model of inference worker 'w1' fails on its frames: RuntimeError: fake detector failure"), bad
    assert (good.state, good.processed, good.dropped) == ("ended", 30, 0), good


@pytest.mark.timeout(60)
def test_frames_the_model_did_not_run_on_do_not_clear_it() -> None:
    """w0's model fails from its 10th batch on, on every picture; its batches hold a frame of
    ``a`` and one of ``dark``, whose detection is off (the model does not run on it): that
    ``dark``'s frame goes through says nothing of the model, so ``a`` is not blamed: w0 fails
    and ``a`` goes on with w1, every frame."""
    sources = {name: ScriptedSource(name, 60, size=(160, 96)) for name in ("a", "dark", "b")}
    setups = [StreamSetup(name, s, detect=name != "dark") for name, s in sources.items()]
    counted = [0]  # (broken for good: built again, it fails too)
    factories: list[Callable[[], Detector]] = [lambda: StampDetector(delay=0.01, fail_on=10, counted=counted),
                                               lambda: StampDetector(delay=0.01)]
    pipeline = Pipeline(setups, factories, workers=2, sharing=[0, 0], serving=[0, 0, 1], max_batch=2)
    with pytest.raises(WorkerError, match="inference worker 'w0' failed"):
        pipeline.run()
    for report in pipeline.summary().streams.values():
        assert (report.state, report.processed, report.dropped, report.error) == ("ended", 60, 0, None), report


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_model_that_breaks_after_working_is_built_again_and_its_worker_goes_on(
        mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """The worker's model fails every batch from its 10th on, on a picture it had run on before
    too (broken, not by a frame): it is built again (a new child process in process mode),
    the failing batch's frames go first, and the worker goes on: every frame of both files, in
    order, nothing raised. Built again, it breaks again after 9 batches: built again again."""
    from streamyolo.workers.process import ProcessDetectorFactory
    from tests.process_fakes import StampFactory

    factory: Callable[[], Detector] = StampFactory(fail_on=10)
    if mode == "process":
        factory = ProcessDetectorFactory(factory, "w0")
    sources = {name: ScriptedSource(name, 40, size=(160, 96)) for name in ("a", "b")}
    pipeline = Pipeline([StreamSetup(name, s) for name, s in sources.items()], factory, workers=1, max_batch=2)
    seqs: dict[str, list[int]] = {name: [] for name in sources}
    with caplog.at_level(logging.WARNING):
        for result in pipeline.results():
            seqs[result.stream].append(result.frame.meta.seq)
    for name, report in pipeline.summary().streams.items():
        assert (report.state, report.processed, report.dropped, report.error) == ("ended", 40, 0, None), report
        assert seqs[name] == list(range(40)), f"{name}: not every frame, in order"
    rebuilt = [m for m in caplog.messages if m.startswith("the model of inference worker 'w0' failed")]
    assert len(rebuilt) >= 2 and rebuilt[0] == (
        "the model of inference worker 'w0' failed (RuntimeError: fake detector failure) on a picture it had run on "
        "before: it is built again, and its streams wait for it")
    assert caplog.messages.count("inference worker 'w0': its model is built again; it goes on") == len(rebuilt)


@pytest.mark.timeout(60)
def test_a_model_built_again_slowly_is_told_of_and_one_that_cannot_be_built_again_fails_its_worker(
        caplog: pytest.LogCaptureFixture) -> None:
    """The first model breaks after 4 batches; building it again takes 1.5 s, longer than
    ``hang_warning``: the monitor says so, and that it came back. The third build fails: the
    worker fails, saying why, and its file goes on with the other worker, every frame."""
    builds: list[int] = []

    def factory() -> Detector:
        builds.append(len(builds) + 1)
        if len(builds) == 2:
            threading.Event().wait(1.5)
        if len(builds) == 3:
            raise RuntimeError("no memory left for another copy")
        return StampDetector(delay=0.01, fail_on=5)

    sources = {name: ScriptedSource(name, 60, size=(160, 96)) for name in ("a", "b")}
    pipeline = Pipeline([StreamSetup(name, s) for name, s in sources.items()],
                        [lambda: StampDetector(delay=0.05), factory],  # (w0 still at work when w1 fails)
                        workers=2, sharing=[0, 0], max_batch=1, status_interval=0, hang_warning=0.5)
    with caplog.at_level(logging.WARNING), pytest.raises(
            WorkerError, match=r"^inference worker 'w1' failed: its model could not be built again: RuntimeError: no "
                               r"memory left for another copy$"):
        pipeline.run()
    assert any(m.startswith("inference worker 'w1' (streams b) has been building its model again for ")
               for m in caplog.messages), caplog.messages
    assert any(m.startswith("inference worker 'w1' is running again") for m in caplog.messages)
    for report in pipeline.summary().streams.values():
        assert (report.state, report.processed, report.dropped, report.error) == ("ended", 60, 0, None), report


@pytest.mark.timeout(60)
def test_a_failed_workers_files_go_on_with_another_worker_every_frame() -> None:
    """w1 serves two files, a frame of each a batch, and its model fails from its 10th batch
    on: w1 fails, neither file does (the model fails on a picture it ran on before too); both
    go on with w0 from the frame they had reached, the failing batch's frames first: every
    frame processed, in order."""
    sources = {name: ScriptedSource(name, 60, size=(160, 96)) for name in ("other", "f1", "f2")}
    setups = [StreamSetup(name, source) for name, source in sources.items()]
    counted = [0]  # (broken for good: built again, it fails too)
    factories: list[Callable[[], Detector]] = [lambda: StampDetector(delay=0.01),
                                               lambda: StampDetector(delay=0.01, fail_on=10, counted=counted)]
    pipeline = Pipeline(setups, factories, workers=2, sharing=[0, 0], serving=[0, 1, 1], max_batch=2)
    workers: dict[str, set[str]] = {name: set() for name in sources}
    indices: dict[str, list[int]] = {name: [] for name in sources}
    with pytest.raises(WorkerError, match="inference worker 'w1' failed"):
        for result in pipeline.results():
            workers[result.stream].add(result.worker)
            indices[result.stream].append(result.frame.meta.seq)
    summary = pipeline.summary()
    for name in sources:
        report = summary.streams[name]
        assert (report.state, report.processed, report.dropped, report.error) == ("ended", 60, 0, None), report
        assert indices[name] == list(range(60)), f"{name}: frames out of order or missing"
    assert workers["f1"] == workers["f2"] == {"w0", "w1"}, workers
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("failing", ["once", "more than a frame at once"])
def test_a_batch_that_fails_and_goes_through_stream_by_stream_or_frame_by_frame_loses_nothing(
        failing: str, caplog: pytest.LogCaptureFixture) -> None:
    """A model that fails one batch (of two files' frames) and not again, or every batch of
    more than one frame: the batch runs again stream by stream (then a stream's frames one by
    one) and goes through; no stream fails, no frame is lost, the log says so once."""
    class Failing(StampDetector):
        def detect(self, images: Sequence[Image]) -> list[Detections]:
            if (self.calls == 4) if failing == "once" else len(images) > 1:
                self.calls += 1
                raise RuntimeError("a passing failure" if failing == "once" else "one frame at a time")
            return super().detect(images)

    setups = [StreamSetup(name, ScriptedSource(name, 30, size=(160, 96))) for name in ("a", "b")]
    with caplog.at_level(logging.WARNING):
        summary = Pipeline(setups, Failing, workers=1, max_batch=4).run()
    assert all((r.state, r.processed, r.dropped) == ("ended", 30, 0) for r in summary.streams.values()), summary
    error = "a passing failure" if failing == "once" else "one frame at a time"
    assert [m for m in caplog.messages if "went through" in m] == [
        f"inference worker 'w0': a batch failed (RuntimeError: {error}) and went through stream by stream (told "
        "once; more with --log-level debug)"]


@pytest.mark.timeout(60)
def test_a_slow_live_camera_among_fast_ones_gets_nearly_every_frame_served() -> None:
    """A 10 fps camera beside three 60 fps ones on a worker that keeps up with about
    50 frames a second: the slow camera's frames are few, so fair share means each of them
    gets its turn, while the fast ones share the rest."""
    rates = {"fast0": 60, "fast1": 60, "fast2": 60, "slow": 10}
    sources = {name: open_source(SourceSpec(name, f"synthetic:?size=64x48&fps={fps}&frames={fps * 2}",
                                            SourceKind.SYNTHETIC)) for name, fps in rates.items()}
    setups = [StreamSetup(name, source, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for name, source in sources.items()]
    summary = Pipeline(setups, lambda: StampDetector(delay=0.02), workers=1).run()
    slow = summary.streams["slow"]
    assert slow.processed >= 0.8 * slow.captured, slow
    fast = [summary.streams[name].processed for name in rates if name != "slow"]
    assert min(fast) >= 0.6 * max(fast), fast
    assert all(r.captured == r.processed + r.dropped for r in summary.streams.values())


def _pickup_ages(hold: bool) -> list[float]:
    """One 10 fps camera on a worker that needs 130 ms a frame: how old each frame was when
    the worker took it (capture to the start of its forward pass)."""
    starts: list[float] = []

    class Timed(StampDetector):
        def detect(self, images: Sequence[Image]) -> list[Detections]:
            starts.append(time.monotonic())
            return super().detect(images)

    source = open_source(SourceSpec("cam", "synthetic:?size=64x48&fps=10&frames=45", SourceKind.SYNTHETIC))
    setups = [StreamSetup("cam", source, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))]
    pipeline = Pipeline(setups, lambda: Timed(delay=0.13), workers=1, live_hold=hold)
    captured = [result.frame.meta.t_capture for result in pipeline.results()]
    _identity_holds(pipeline)
    assert len(captured) == len(starts) >= 20
    return [start - t for start, t in zip(starts, captured, strict=True)][2:]  # the interval is known by then


@pytest.mark.timeout(60)
@pytest.mark.alone  # milliseconds of frame age: another test beside it would add its own
def test_a_worker_behind_a_live_camera_holds_for_the_next_frame_rather_than_take_a_stale_one() -> None:
    """Without holding, the frame taken after each 130 ms pass is 0-100 ms old (50 on
    average); holding for a frame due within half an interval keeps it under about 50 ms."""
    held, plain = _pickup_ages(True), _pickup_ages(False)
    mean = statistics.mean
    assert mean(held) < 0.6 * mean(plain), (held, plain)
    assert sorted(held)[int(0.9 * len(held))] <= 0.065, held
    assert max(plain) > 0.065, plain  # the case holding is for did arise


@pytest.mark.timeout(10)
def test_capture_threads_run_below_the_callers_priority() -> None:
    import os

    from streamyolo.workers.capture import CAPTURE_NICENESS, lower_priority

    seen: dict[str, int] = {}

    def body() -> None:
        tid = threading.get_native_id()
        seen["before"] = os.getpriority(os.PRIO_PROCESS, tid)
        lower_priority(CAPTURE_NICENESS)
        seen["after"] = os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen["after"] == min(19, seen["before"] + CAPTURE_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == seen["before"]  # only that thread


def _conversions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that convert decoded pictures to BGR, one per conversion."""
    import streamyolo.sources.pyav as pyav

    threads: list[str] = []
    to_bgr = pyav._bgr

    def counting(frame, clockwise=0):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return to_bgr(frame, clockwise)

    monkeypatch.setattr(pyav, "_bgr", counting)
    return threads


def _live_clip(clip: Path, detector: Callable[[], StampDetector]) -> tuple[Pipeline, list[Result]]:
    source = open_source(SourceSpec("cam", str(clip), SourceKind.FILE), defer_conversion=True)
    setups = [StreamSetup("cam", source, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))]
    pipeline = Pipeline(setups, detector, workers=1)
    results = list(pipeline.results())
    for result in results:  # the stamp the detector read off the converted picture is the frame's own
        assert (result.detections.cls[0], result.detections.xyxy[0][0]) == (stream_tag("cam"), result.frame.seq)
    _identity_holds(pipeline)
    return pipeline, results


@pytest.mark.timeout(60)
def test_a_live_stream_that_drops_frames_converts_only_the_frames_the_worker_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under overload a live buffer drops most frames; those are never converted from the
    decoder's YUV to BGR: the worker converts the ones it takes, on first use."""
    converted = _conversions(monkeypatch)
    clip = make_clip(tmp_path / "cam.mp4", "cam", frames=90, fps=60)
    pipeline, _ = _live_clip(clip, lambda: StampDetector(delay=0.05))
    report = pipeline.summary().streams["cam"]
    assert report.captured == 90 and report.dropped > report.processed
    assert len(converted) < report.processed + 5, f"{len(converted)} conversions for {report.processed} frames taken"
    taken = [name for name in converted if name.startswith("inference")]
    assert len(taken) >= report.processed - 5, converted


@pytest.mark.timeout(60)
def test_frames_are_converted_on_the_capture_thread_while_the_worker_keeps_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live stream the worker keeps up with, and a lossless one, have their frames made BGR
    by the capture thread, beside the worker, not in its way."""
    converted = _conversions(monkeypatch)
    clip = make_clip(tmp_path / "cam.mp4", "cam", frames=60, fps=30)
    pipeline, results = _live_clip(clip, StampDetector)
    assert pipeline.summary().streams["cam"].processed == len(results) >= 50
    on_capture = [name for name in converted if name.startswith("capture")]
    assert len(converted) == 60 and len(on_capture) >= 50, converted

    converted.clear()
    source = open_source(SourceSpec("cam", str(clip), SourceKind.FILE), defer_conversion=True)
    summary = Pipeline([StreamSetup("cam", source, Overflow.BLOCK)], lambda: StampDetector(delay=0.01),
                       workers=1).run()
    assert summary.streams["cam"].processed == len(converted) == 60
    assert all(name.startswith("capture") for name in converted), set(converted)


_IMPORT_EACH = """
import os, pathlib
import streamyolo  # (OpenCV alone: the rest is imported when used)
root = pathlib.Path(streamyolo.__file__).parent
names = [f"streamyolo.{folder}.{path.stem}" for folder in ("pipeline", "workers")
         for path in sorted((root / folder).glob("*.py")) if path.stem != "__init__"]
failed = []
for name in names:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(name)
print(len(names), "modules;", "failed:", failed)
"""


@pytest.mark.timeout(120)
def test_every_module_of_the_pipeline_and_the_workers_imports_first_on_its_own() -> None:
    """A script may import any of them first (``from streamyolo.workers.inference import
    InferenceWorker``): none may meet an import cycle (the workers import ``pipeline.health``,
    whose package imported the whole pipeline, which imports the workers)."""
    import subprocess

    from tests.helpers import PYTHON, ROOT, env_for_subprocess

    done = subprocess.run([PYTHON, "-c", _IMPORT_EACH], check=False, cwd=ROOT, env=env_for_subprocess(),
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0 and done.stdout.strip().endswith("failed: []"), done.stdout + done.stderr

