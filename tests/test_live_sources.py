"""Live sources against real servers on loopback: reconnects, stalls, dead cameras,
isolation, redaction, damaged files."""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.frames import Result
from streamyolo.pipeline import Pipeline, StreamSetup, StreamState
from streamyolo.pipeline.report import StatusPrinter, status_table
from streamyolo.pipeline.restart import Backoff
from streamyolo.sinks import VideoRecorder
from streamyolo.sources import NetworkOptions, SourceKind, SourceSpec, open_source, read_stamp, source_kind
from streamyolo.sources.base import PacketTap
from streamyolo.workers.capture import CapturePolicy
from tests.conftest import need
from tests.helpers import PYTHON, ROOT, StampDetector, env_for_subprocess, make_clip, read_jsonl, until
from tests.servers import MjpegCamera, RtspServer, SilentServer, TransportStreamCamera, free_port, rtsp_server_available

FAST_BACKOFF = Backoff(base=0.2, cap=1.0, jitter=0.2)


@pytest.fixture(scope="module")
def rtsp_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real H.264 file, one minute at 15 fps, stamped frame by frame."""
    return make_clip(tmp_path_factory.mktemp("rtsp") / "camera.mp4", "camera", frames=900, size=(320, 240), fps=15)


@pytest.fixture
def rtsp(rtsp_clip: Path) -> Iterator[RtspServer]:
    need(rtsp_server_available())
    server = RtspServer(rtsp_clip)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _network_stream(name: str, url: str, backoff: Backoff = FAST_BACKOFF, packets: PacketTap | None = None,
                    catch_up: bool = False, **timeouts: float) -> StreamSetup:
    options = NetworkOptions(**{"open_timeout": 5.0, "read_timeout": 2.0, "stall_timeout": 3.0, **timeouts})
    source = open_source(SourceSpec(name, url, source_kind(url)), options, packets=packets, catch_up=catch_up)
    return StreamSetup(name, source, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(backoff=backoff, live=True),
                       display_uri=url)


def _synthetic_camera(name: str, frames: int = 0) -> StreamSetup:
    uri = f"synthetic:?size=160x120&fps=30&frames={frames}"
    return StreamSetup(name, open_source(SourceSpec(name, uri, SourceKind.SYNTHETIC)), Overflow.DROP_OLDEST,
                       capacity=2, policy=CapturePolicy(realtime=True))


def _processed(pipeline: Pipeline, name: str) -> int:
    return pipeline.summary().streams[name].processed


def _identity(pipeline: Pipeline) -> None:
    for name, report in pipeline.summary().streams.items():
        assert report.captured == report.processed + report.dropped, f"{name}: {report}"


class _Moments:
    """A sink that notes when each of a stream's frames arrived and where it sits on its timeline."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.seen: list[tuple[float, float]] = []  # (t_capture, media_time)

    def open(self) -> None:
        pass

    def write(self, result: Result) -> None:
        if result.stream == self.stream:
            self.seen.append((result.frame.meta.t_capture, result.frame.meta.media_time))

    def close(self) -> None:
        pass


@pytest.mark.timeout(120)
def test_rtsp_server_killed_and_restarted_reconnects_while_others_keep_going(rtsp: RtspServer, tmp_path: Path) -> None:
    """… and the camera's timeline goes on through the reconnect (its clock starts again at 0):
    its recording holds the time it was down as a gap, not squeezed out. Its copy recorded as
    it came (``record: original``) goes on in the same file from the key frame the camera
    starts again with: every picture whole, the gap kept."""
    recorder = VideoRecorder(tmp_path, streams=["cam"])
    setups = [_network_stream("cam", rtsp.url()), _synthetic_camera("other0"), _synthetic_camera("other1"),
              _network_stream("copy", rtsp.url(), packets=recorder.original("copy", live=True))]
    moments = _Moments("cam")
    pipeline = Pipeline(setups, StampDetector, workers=2, sinks=[moments, recorder])
    pipeline.start()
    try:
        until(lambda: _processed(pipeline, "cam") >= 10, 30, "frames from the RTSP camera")
        before_kill = _processed(pipeline, "cam")
        until(lambda: _processed(pipeline, "copy") >= 10, 30, "frames from the copy")
        copy_before = _processed(pipeline, "copy")
        rtsp.kill()
        assert pipeline.health("cam").wait_for(lambda s: s is StreamState.RECONNECTING, timeout=10)
        others = {n: _processed(pipeline, n) for n in ("other0", "other1")}
        # While the camera is down (and its reconnects fail), the other streams keep processing.
        until(lambda: pipeline.health("cam").snapshot().reconnects >= 2, 15, "a failed reconnect attempt")
        until(lambda: all(_processed(pipeline, n) >= others[n] + 15 for n in others), 15, "the other streams")
        down = next(r for r in pipeline.reports() if r.name == "cam")  # (no result's age while down; how long)
        assert (down.state, down.frame_age, down.behind) == ("reconnecting", None, None), down
        assert down.last_frame_age is not None and down.last_frame_age > 0.1, down
        rtsp.start()
        restarted = time.monotonic()
        assert pipeline.health("cam").wait_for(lambda s: s is StreamState.STREAMING, timeout=20)
        back_after = time.monotonic() - restarted
        until(lambda: _processed(pipeline, "cam") >= before_kill + 10, 30, "frames after the reconnect")
        assert next(r for r in pipeline.reports() if r.name == "cam").frame_age is not None
        until(lambda: _processed(pipeline, "copy") >= copy_before + 10, 30, "the copy's frames after it")
    finally:
        pipeline.stop()
        summary = pipeline.join(timeout=30)
    # Back within one capped back-off delay (1.2 s at most) plus the time to connect.
    assert back_after <= FAST_BACKOFF.bound(10) + 5.0, f"reconnected only after {back_after:.1f} s"
    cam = summary.streams["cam"]
    assert cam.reconnects >= 2 and cam.state == "stopped"
    assert cam.error is not None and "cam" in cam.error
    assert all(summary.streams[n].state == "stopped" and summary.streams[n].error is None for n in others)
    _identity(pipeline)
    arrivals, places = zip(*moments.seen, strict=True)
    assert all(later >= earlier for earlier, later in itertools.pairwise(places)), f"the timeline went back: {places}"
    down = max(range(len(arrivals) - 1), key=lambda i: arrivals[i + 1] - arrivals[i])  # the reconnect
    assert places[down + 1] - places[down] >= arrivals[down + 1] - arrivals[down] - 0.01, "the downtime is not there"
    with av.open(str(tmp_path / "cam.mp4")) as recording:
        last = max(float(p.pts * p.time_base) for p in recording.demux(video=0) if p.pts is not None)
    assert abs(last - (places[-1] - places[0])) < 0.2, f"the recording holds {last:.1f} s of the camera's timeline"
    assert summary.recordings["copy"] == [str(tmp_path / "copy.mp4")]
    with av.open(str(rtsp.file)) as container:
        theirs = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(str(tmp_path / "copy.mp4")) as container:
        copied = [(f.to_ndarray(format="bgr24"), float(f.time or 0)) for f in container.decode(video=0)]
    indices = [stamp[1] if (stamp := read_stamp(image)) else None for image, _ in copied]
    restart = next(i for i in range(1, len(indices)) if (indices[i] or 0) < (indices[i - 1] or 0))
    assert indices[restart] == 0 and indices == [*range(indices[0] or 0, (indices[0] or 0) + restart),
                                                 *range(len(indices) - restart)], indices
    assert all(np.array_equal(image, theirs[index or 0]) for (image, _), index in zip(copied, indices, strict=True))
    times = [t for _, t in copied]
    assert all(b > a for a, b in itertools.pairwise(times)) and times[restart] - times[restart - 1] > 1.0


@pytest.mark.timeout(120)
def test_a_stalled_stream_is_detected_and_reconnected(rtsp: RtspServer) -> None:
    setups = [_network_stream("cam", rtsp.url(), read_timeout=1.0, stall_timeout=1.0)]
    pipeline = Pipeline(setups, StampDetector)
    pipeline.start()
    try:
        until(lambda: _processed(pipeline, "cam") >= 10, 30, "frames from the RTSP camera")
        rtsp.command("stall")  # the connection stays up, but no frame comes any more
        assert pipeline.health("cam").wait_for(lambda s: s is StreamState.RECONNECTING, timeout=10)
        stalled_at = _processed(pipeline, "cam")
        assert pipeline.health("cam").wait_for(lambda s: s is StreamState.STREAMING, timeout=20)
        until(lambda: _processed(pipeline, "cam") >= stalled_at + 10, 30, "frames after the stall")
    finally:
        pipeline.stop()
        summary = pipeline.join(timeout=30)
    assert summary.streams["cam"].reconnects >= 1
    assert "time-out" in (summary.streams["cam"].error or "")
    _identity(pipeline)


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_times_out_and_shutdown_is_immediate() -> None:
    with SilentServer() as silent:
        url = f"rtsp://127.0.0.1:{silent.port}/cam"
        # A short open time-out: the hang is detected and the stream goes on trying.
        pipeline = Pipeline([_network_stream("hung", url, open_timeout=0.5)], StampDetector)
        pipeline.start()
        until(lambda: pipeline.health("hung").snapshot().reconnects >= 2, 20, "repeated open time-outs")
        pipeline.stop()
        summary = pipeline.join(timeout=10)
        assert "open time-out" in (summary.streams["hung"].error or "")

        # A long open time-out: stopping during the hang does not wait for it.
        pipeline = Pipeline([_network_stream("hung", url, open_timeout=60.0)], StampDetector)
        connections = silent.connections
        pipeline.start()
        until(lambda: silent.connections > connections, 10, "the connection to the silent server")
        stopping = time.monotonic()
        pipeline.stop()
        pipeline.join(timeout=30)
        assert time.monotonic() - stopping < 2.0
        assert pipeline.summary().streams["hung"].state == "stopped"


@pytest.mark.timeout(90)
def test_dead_sources_are_reported_per_stream_and_the_others_finish(rtsp: RtspServer) -> None:
    once = Backoff(base=0.05, cap=0.1, attempts=1)
    setups = [
        _network_stream("refused", f"rtsp://127.0.0.1:{free_port()}/cam", once),
        _network_stream("unknown", "rtsp://no-such-camera.invalid/cam", once),
        _network_stream("wrongpath", rtsp.url("/nothing-here"), once),
        _synthetic_camera("good", frames=60),
    ]
    pipeline = Pipeline(setups, StampDetector, workers=2)
    started = time.monotonic()
    summary = pipeline.run()
    assert time.monotonic() - started < 60
    assert summary.streams["good"].processed + summary.streams["good"].dropped == 60
    assert summary.streams["good"].state == "ended"
    expected = {"refused": "refused", "unknown": "cannot open", "wrongpath": "404"}
    for name, words in expected.items():
        report = summary.streams[name]
        assert report.state == "failed" and report.captured == 0, report
        assert words in (report.error or "").lower() or words in (report.error or ""), report.error
    assert summary.streams["wrongpath"].reconnects == 0  # a 404 is permanent: no retries


@pytest.mark.timeout(60)
def test_mjpeg_http_camera() -> None:
    with MjpegCamera() as camera:
        pipeline = Pipeline([_network_stream("mjpeg", camera.url)], StampDetector)
        seen: list[int] = []
        for result in pipeline.results():
            seen.append(int(result.detections.xyxy[0][0]))  # the fake detector reports the stamped index
            if len(seen) == 20:
                break
    assert seen == sorted(seen) and len(set(seen)) == 20, seen
    assert pipeline.summary().streams["mjpeg"].error is None


@pytest.mark.timeout(60)
def test_a_network_frame_is_stamped_when_its_packet_arrived(rtsp: RtspServer, rtsp_clip: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An RTSP frame arrives when its packet is read, before decoding and colour conversion
    (made 30 ms slow here), so its age counts both; a file's frames leave the stamp to the
    capture thread."""
    import streamyolo.sources.pyav as pyav

    to_bgr = pyav._bgr

    def slow(frame, clockwise=0):  # type: ignore[no-untyped-def]
        threading.Event().wait(0.03)
        return to_bgr(frame, clockwise)

    monkeypatch.setattr(pyav, "_bgr", slow)
    options = NetworkOptions(open_timeout=5.0, read_timeout=2.0)
    camera = open_source(SourceSpec("cam", rtsp.url(), SourceKind.RTSP), options)
    camera.open()
    try:
        for _ in range(10):
            raw = camera.read()
            returned = time.monotonic()
            assert raw is not None and raw.arrived is not None
            assert returned - 1.0 < raw.arrived <= returned - 0.03
    finally:
        camera.close()
    clip = open_source(SourceSpec("clip", str(rtsp_clip), SourceKind.FILE))
    clip.open()
    try:
        raw = clip.read()
        assert raw is not None and raw.arrived is None
    finally:
        clip.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("slow", [False, True], ids=["keeping-up", "falling-behind"])
def test_a_camera_whose_clock_starts_again_is_as_late_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, slow: bool) -> None:
    """An MPEG-TS camera over HTTP whose timestamps start again halfway (its encoder restarted:
    two 6 s videos one after the other, each from its own 0), read as it plays. Decoded in time,
    none of its frames is skipped as if it had fallen 6 s behind (every frame of the second half
    was). Read at 10 of its 15 frames a second, every frame asked for (``overflow: lossless``),
    it is as far behind after the restart as before, and further (it was "up with its camera
    again" at the restart, seconds behind)."""
    import streamyolo.sources.pyav as pyav

    if slow:
        to_bgr = pyav._bgr

        def slowly(frame, clockwise=0):  # type: ignore[no-untyped-def]
            threading.Event().wait(0.1)
            return to_bgr(frame, clockwise)

        monkeypatch.setattr(pyav, "_bgr", slowly)
    halves = [make_clip(tmp_path / f"{half}.ts", "cam", frames=90, size=(320, 240), fps=15) for half in "ab"]
    with TransportStreamCamera(b"".join(path.read_bytes() for path in halves), seconds=12) as server:
        camera = open_source(SourceSpec("cam", server.url, source_kind(server.url)), NetworkOptions(open_timeout=5.0),
                             catch_up=not slow)
        camera.open()
        seen, times, behind = [], [], []
        try:
            while len(seen) < 170:
                raw = camera.read()
                assert raw is not None and raw.image is not None and raw.pts is not None
                seen.append(read_stamp(raw.image)[1])  # type: ignore[index]
                times.append(raw.pts)
                assert isinstance(camera, pyav.PyAVSource) and camera.behind is not None
                behind.append(camera.behind.seconds)
        finally:
            camera.close()
    assert isinstance(camera, pyav.PyAVSource) and camera.skipped == 0, camera.skipped
    back = next(i for i in range(1, len(times)) if times[i] < times[i - 1])  # (the clock did start again)
    assert seen[:back] == list(range(back)) and seen[back:] == list(range(len(seen) - back)), seen
    assert camera.behind is not None
    if not slow:
        assert max(behind) < 1.0 and not camera.behind.lagging, behind
        return
    assert 1.5 < behind[back - 1] < behind[back] + 0.5 and behind[-1] > behind[back - 1] + 1.0, (back, behind)
    assert camera.behind.lagging and not [m for m in caplog.messages if "up with its camera" in m], caplog.messages


@pytest.mark.timeout(90)
def test_a_camera_whose_frames_cannot_all_be_decoded_in_time_is_kept_near_the_present(
        rtsp: RtspServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A capture that takes 0.1 s a frame (a box decoding more 1080p streams than it can) of a
    15 fps camera: the rest waits in the network's buffers, each frame read later than the one
    before (7 s behind after 14 s). It skips, undecoded, up to a key frame near the present
    once 2 s behind, and says so; its frames stay in order, the skipped ones counted; in a
    pipeline, they are captured and dropped."""
    import streamyolo.sources.pyav as pyav

    to_bgr = pyav._bgr

    def slow(frame, clockwise=0):  # type: ignore[no-untyped-def]
        threading.Event().wait(0.1)
        return to_bgr(frame, clockwise)

    monkeypatch.setattr(pyav, "_bgr", slow)
    camera = open_source(SourceSpec("door", rtsp.url(), SourceKind.RTSP), NetworkOptions(open_timeout=5.0),
                         catch_up=True)
    camera.open()
    late, seen = [], []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 14:
            raw = camera.read()
            assert raw is not None and raw.arrived is not None and raw.pts is not None and raw.image is not None
            late.append(raw.arrived - raw.pts)
            seen.append(read_stamp(raw.image)[1])  # type: ignore[index]
    finally:
        camera.close()
    behind = [at - min(late) for at in late]  # (4.8 s at the end without catching up)
    assert isinstance(camera, pyav.PyAVSource) and camera.skipped > 0
    # Never further behind than that and a few frames' reads (a busy box's: once the first
    # frames' own delay, as the connection opened, is gone), nor at the end.
    assert max(behind) < pyav.BEHIND + 1.0 and behind[-1] < pyav.BEHIND + 1.0, behind
    assert seen == sorted(set(seen))
    assert seen[-1] - seen[0] + 1 == len(seen) + camera.skipped  # every frame decoded or counted skipped
    assert any("stream 'door' is 2." in m and "behind its camera" in m for m in caplog.messages), caplog.messages
    # In a pipeline: the skipped frames are captured and dropped (the accounting exact).
    pipeline = Pipeline([_network_stream("door", rtsp.url(), catch_up=True)], StampDetector, workers=1)
    pipeline.start()
    until(lambda: pipeline.summary().streams["door"].dropped > 10, 40, "frames skipped to catch up")
    pipeline.stop()
    pipeline.join()
    _identity(pipeline)


@pytest.mark.timeout(60)
def test_a_camera_whose_every_frame_is_asked_for_waits_and_says_it_is_behind(
        rtsp: RtspServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """``overflow: lossless`` on a camera read at 5 frames a second (0.2 s a frame) of its 15:
    every frame is decoded, none skipped, in order, later and later; once 2 s behind its
    camera it says so, and why (every frame asked for) and what helps."""
    import streamyolo.sources.pyav as pyav

    to_bgr = pyav._bgr

    def slow(frame, clockwise=0):  # type: ignore[no-untyped-def]
        threading.Event().wait(0.2)
        return to_bgr(frame, clockwise)

    monkeypatch.setattr(pyav, "_bgr", slow)
    camera = open_source(SourceSpec("door", rtsp.url(), SourceKind.RTSP), NetworkOptions(open_timeout=5.0))
    camera.open()
    seen = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 5:
            raw = camera.read()
            assert raw is not None and raw.image is not None
            seen.append(read_stamp(raw.image)[1])  # type: ignore[index]
    finally:
        camera.close()
    assert isinstance(camera, pyav.PyAVSource) and camera.skipped == 0
    assert seen == list(range(seen[0], seen[0] + len(seen))), seen  # every frame, in order
    told = [m for m in caplog.messages if "behind its camera" in m]
    assert len(told) == 1 and re.match(r"stream 'door' is 2\.\d s behind its camera: every frame of it is processed "
                                       r"\(overflow: lossless\).*overflow: live keeps it current", told[0]), told
    # In a pipeline whose model takes 0.2 s a frame: its report says how far behind (the status
    # table, under it the overload, within a look of the watch), the events file an overload that
    # ends with the run, and the summary how far it fell.
    from streamyolo.sinks.events import EventSink
    from streamyolo.sinks.history import describe

    setup = _network_stream("door", rtsp.url())
    pipeline = Pipeline([replace(setup, overflow=Overflow.BLOCK, policy=CapturePolicy(backoff=FAST_BACKOFF))],
                        lambda: StampDetector(delay=0.2), workers=1, overload_warning=60,
                        sinks=[EventSink(tmp_path / "ev.jsonl")])
    pipeline.start()
    try:
        report = until(lambda: next((r for r in pipeline.reports() if r.lagging), None), 30, "the stream lagging")
        assert report.behind is not None and report.behind > 0.5 and report.dropped == 0, report
        assert re.search(r"^door +streaming, \d+\.\d s behind ", status_table(pipeline.reports()), re.MULTILINE)
        overload = until(lambda: pipeline.overload, 3, "the run said not to keep up (a 60 s window: lag at once)")
        assert overload["streams"] == [] and overload["behind"]["door"] > 0.5, overload
        shown = io.StringIO()
        StatusPrinter(shown).show(pipeline.reports(), 0.0, None, pipeline.overload)
        assert re.search(r"^door +streaming, (\d+\.\d) s behind .*\nthe machine cannot keep up: door \1 s behind$",
                         shown.getvalue().strip(), re.MULTILINE | re.DOTALL), shown.getvalue()
    finally:
        pipeline.stop()
        summary = pipeline.join()
    worst = summary.streams["door"].worst_behind
    assert worst is not None and worst >= 2.0 and summary.streams["door"].dropped == 0, summary.streams
    assert f"door fell up to {worst:.1f} s behind: the machine could not keep up with it (see the log)" in (
        summary.table())
    started, ended = [e for e in read_jsonl(tmp_path / "ev.jsonl") if e["event"] == "overload"]
    assert started["state"] == "started" and started["behind"]["door"] > 0.5 and started["streams"] == [], started
    assert ended["state"] == "ended" and ended["stopped"] is True and ended["streams"] == ["door"], ended
    assert describe(started).endswith(f"  the machine cannot keep up: door {started['behind']['door']:.1f} s behind")
    assert describe(ended).endswith(f"  the run ended after {ended['seconds']:.0f} s of not keeping up")


@pytest.mark.timeout(60)
def test_a_camera_that_sends_a_frames_slices_in_packets_of_their_own_gives_whole_pictures(
        rtsp: RtspServer, rtsp_clip: Path) -> None:
    """The test camera's key frames have two slices, and GStreamer's payloader sends the
    parameter sets before each, so FFmpeg hands them over as two packets with the frame's time
    (the very first without a time yet). Decoded apart, each is half a picture; joined, every
    picture is the file's own, one after the other across the key frames."""
    with av.open(str(rtsp_clip)) as container:
        theirs = [f.to_ndarray(format="bgr24") for f, _ in zip(container.decode(video=0), range(40), strict=False)]
    camera = open_source(SourceSpec("cam", rtsp.url(), SourceKind.RTSP), NetworkOptions(open_timeout=5.0))
    camera.open()
    try:
        ours = []
        for _ in range(20):
            raw = camera.read()
            assert raw is not None
            ours.append(raw.image if raw.image is not None else raw.convert())  # type: ignore[misc]
    finally:
        camera.close()
    indices = [stamp[1] if (stamp := read_stamp(image)) else None for image in ours]
    assert indices == list(range(indices[0] or 0, (indices[0] or 0) + 20)), indices
    assert all(np.array_equal(image, theirs[index]) for image, index in zip(ours, indices, strict=True))


@pytest.mark.timeout(60)
def test_a_truncated_mp4_processes_the_frames_before_the_damage(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as out:  # index first, as cameras write
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        source = open_source(SourceSpec("t", "synthetic:?size=160x120&frames=90", SourceKind.SYNTHETIC))
        source.open()
        while (raw := source.read()) is not None:
            for packet in stream.encode(av.VideoFrame.from_ndarray(raw.image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    damaged = tmp_path / "damaged.mp4"
    data = whole.read_bytes()
    damaged.write_bytes(data[: len(data) * 6 // 10])
    setups = [StreamSetup("damaged", open_source(SourceSpec("damaged", str(damaged), SourceKind.FILE)))]
    summary = Pipeline(setups, StampDetector).run()
    report = summary.streams["damaged"]
    assert 10 < report.processed < 90, report
    assert report.state == "failed"
    assert "truncated" in (report.error or "") or "read failed" in (report.error or ""), report.error


@pytest.mark.timeout(180)
def test_passwords_never_appear_in_output(rtsp_clip: Path, tmp_path: Path) -> None:
    need(rtsp_server_available())
    secret = "s3cr3t-PW"
    server = RtspServer(rtsp_clip, user="admin", password=secret)
    server.start()
    try:
        config = tmp_path / "cameras.yaml"
        config.write_text(json.dumps({
            "streams": [
                f"good={server.url()}",
                f"wrongpw=rtsp://admin:{secret}x@127.0.0.1:{server.port}/stream",
                f"refused=rtsp://admin:{secret}@127.0.0.1:{free_port()}/stream?token={secret}",
            ],
            "stream_defaults": {"reconnect": {"attempts": 1, "base": 0.1}},
            "model": "yolo26n.yaml", "imgsz": 64, "display": False, "duration": 3, "status_interval": 0.5,
            "jsonl": str(tmp_path / "det.jsonl"), "summary": str(tmp_path / "summary.json"),
            "stats": str(tmp_path / "stats.jsonl"),
        }))
        done = subprocess.run([PYTHON, "-m", "streamyolo", "--log-level", "DEBUG", "run", str(config)],
                              env=env_for_subprocess(), cwd=ROOT, capture_output=True, encoding="utf-8", timeout=150,
                              check=False)
    finally:
        server.kill()
    assert done.returncode == 0, done.stderr
    outputs = {"stdout": done.stdout, "stderr": done.stderr}
    for name in ("det.jsonl", "summary.json", "stats.jsonl"):
        outputs[name] = (tmp_path / name).read_text()
    for where, text in outputs.items():
        assert secret not in text, f"the password leaked into {where}"
    summary = json.loads(outputs["summary.json"])["streams"]
    assert summary["good"]["processed"] > 0
    assert summary["good"]["source"] == f"rtsp://admin:***@127.0.0.1:{server.port}/stream"
    assert summary["wrongpw"]["state"] == "failed" and "401" in summary["wrongpw"]["error"]
    assert summary["refused"]["state"] == "failed"
    stats = [json.loads(line) for line in outputs["stats.jsonl"].splitlines()]
    assert {"state", "error", "reconnects", "last_frame_age"} <= set(stats[-1]["streams"]["good"])
    assert read_jsonl(tmp_path / "det.jsonl")
