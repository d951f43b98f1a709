"""Event clips cut from the cameras' own video (``clip_mode: original``): the packets the
source sent around each moment with events, copied, never annotated nor encoded."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.clock import file_stamp, wall_time
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputsIncompleteError
from streamyolo.frames import Detections, Frame, FrameMeta, Result, ZoneVisit
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup, Summary
from streamyolo.pipeline.assemble import stream_setup
from streamyolo.pipeline.build import resolve_streams
from streamyolo.pipeline.check import Probe, describe, trouble
from streamyolo.sinks import EventSink, VideoRecorder
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.original import uncopied
from streamyolo.sinks.recorder import H264, RecorderError
from streamyolo.sources import NetworkOptions, SourceKind, SourceSpec, open_source, read_stamp
from streamyolo.sources.base import Taps
from streamyolo.sources.synthetic import stamp
from streamyolo.workers.capture import CapturePolicy
from tests.helpers import make_clip, make_mpeg4, read_jsonl, until
from tests.servers import RtspServer, free_port
from tests.test_clips import LOBBY, _result, _Visitors
from tests.test_original import _clip_with_sound, _packets, _until_written
from tests.test_recorder import _decodable


def _stamps(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [read_stamp(frame.to_ndarray(format="bgr24"))[1] for frame in container.decode(video=0)]  # type: ignore[index]


def _video_packets(path: Path) -> list[bytes]:
    return _packets(path, "video")


def _until_a_clip_ends(pipeline: Pipeline, ended: list[str]) -> Summary:
    """Run ``pipeline`` until ``ended`` (its clips' ``on_end``) has one, then stop it."""
    pipeline.start()
    try:
        until(lambda: ended, 30, "the clip to end")
    finally:
        pipeline.stop()
        summary = pipeline.join()
    return summary


def _stamped(clip: Path) -> tuple[list[av.VideoFrame], list[np.ndarray[Any, Any]], list[int]]:
    """A clip's frames, their pictures and the index stamped in each."""
    with av.open(str(clip)) as container:
        frames = list(container.decode(video=0))
    pictures = [frame.to_ndarray(format="bgr24") for frame in frames]
    return frames, pictures, [read_stamp(picture)[1] for picture in pictures]  # type: ignore[index]


@pytest.mark.timeout(60)
def test_a_clip_of_the_original_holds_the_cameras_packets_around_its_events(tmp_path: Path) -> None:
    """The moments of ``_Visitors`` (as in the annotated clips' test) on a real H.264 file
    (key frames every second): each clip holds the file's own packets, bit for bit, from the
    last key frame at least ``before`` seconds before its first event to ``after`` seconds
    past its last, while the stream is recorded as it came beside it: one tap each."""
    video = make_clip(tmp_path / "hall.mp4", "hall", frames=200, fps=25)
    folder, record = tmp_path / "clips", tmp_path / "rec"
    clips = ClipRecorder(folder, before=1.0, after=0.6, streams=[])
    recorder = VideoRecorder(record, streams=[])
    events = EventSink(tmp_path / "events.jsonl", clip_of=clips.clip_of)
    clips.on_end = events.clip_ended
    taps = Taps((recorder.original("hall", live=False), clips.original("hall", live=False)))
    source = open_source(SourceSpec("hall", str(video), SourceKind.FILE), packets=taps)
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,))], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[recorder, clips, events])
    pipeline.start()
    summary = pipeline.join()
    written = read_jsonl(tmp_path / "events.jsonl")
    first, second = (Path(name) for name in summary.clips["hall"])
    assert sorted(folder.iterdir()) == sorted([first, second])
    happened = [(e["event"], e.get("state"), e.get("seq"), e.get("clip")) for e in written]
    assert happened == [("state", "streaming", None, None),
                        ("clip", "started", 51, first.name), ("enter", None, 51, first.name),
                        ("leave", None, 63, first.name), ("clip", "ended", None, first.name),
                        ("clip", "started", 161, second.name), ("enter", None, 161, second.name),
                        ("leave", None, 173, second.name), ("clip", "ended", None, second.name),
                        ("state", "ended", None, None)]
    assert [e["seconds"] for e in written if e.get("state") == "ended" and e["event"] == "clip"] == [
        pytest.approx(54 / 25), pytest.approx(64 / 25)]
    assert _stamps(first) == list(range(25, 79)) and _stamps(second) == list(range(125, 189))
    theirs = _video_packets(video)
    assert _video_packets(first) == theirs[25:79] and _video_packets(second) == theirs[125:189]
    assert _video_packets(record / "hall.mp4") == theirs  # the recording, beside them, has them all
    for clip in (first, second):
        with av.open(str(clip)) as container:
            assert float(next(container.decode(video=0)).time or 0) == pytest.approx(0.0)


@pytest.mark.timeout(60)
def test_a_clip_of_the_original_has_the_sound_and_a_stream_that_ends_within_one_finishes_it(
        tmp_path: Path) -> None:
    """A camera's AAC sound goes into its clips beside the video, on its clock; a stream that
    ends while a clip is open finishes the clip at once, with what it has."""
    video = _clip_with_sound(tmp_path / "hall.mp4", "aac", frames=60, fps=25)
    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=1.0, after=5.0, streams=[])
    source = open_source(SourceSpec("hall", str(video), SourceKind.FILE), packets=clips.original("hall", live=False))
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,))], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[clips])
    pipeline.start()
    deadline = time.monotonic() + 30
    while not any(folder.glob("*.mp4")) or pipeline.health("hall").snapshot().state.value != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    summary = pipeline.join()
    (clip,) = (Path(name) for name in summary.clips["hall"])
    assert _video_packets(clip) == _video_packets(video)[25:60]  # the visitor enters at 51: from 25 to the end
    theirs = _packets(video, "audio")
    ours = _packets(clip, "audio")
    assert len(ours) > 20 and b"".join(ours) in b"".join(theirs)  # a run of the file's own sound packets
    with av.open(str(clip)) as container:
        sound = [float(p.pts * p.time_base) for p in container.demux(audio=0) if p.size]
    assert 0 <= sound[0] < 0.1 and sound[-1] == pytest.approx(35 / 25, abs=0.1)


@pytest.mark.timeout(120)
def test_a_live_cameras_clip_of_the_original_holds_every_picture_it_sent_in_a_row(
        camera: tuple[RtspServer, Path], tmp_path: Path) -> None:
    """A real RTSP camera (GStreamer re-sending a file's H.264, 15 fps, a key frame every
    second; the tests' server sends a key frame's slices as packets of their own): the model
    sees the visitor of ``_Visitors`` go through the lobby (in at frame 51, out at 63); the
    clip holds the camera's pictures bit for bit, every one in a row, from a key frame at
    least a second before the first event to a second past the last."""
    server, video = camera
    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=1.0, after=1.0, streams=[])
    ended: list[str] = []
    clips.on_end = lambda stream, name, seconds, whole: ended.append(name)
    source = open_source(SourceSpec("porch", server.url(), SourceKind.RTSP),
                         NetworkOptions(open_timeout=5.0, read_timeout=2.0, stall_timeout=3.0),
                         packets=clips.original("porch", live=True))
    pipeline = Pipeline([StreamSetup("porch", source, Overflow.DROP_OLDEST, capacity=2, zones=(LOBBY,),
                                     policy=CapturePolicy(live=True))], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[clips])
    summary = _until_a_clip_ends(pipeline, ended)
    (clip,) = (Path(name) for name in summary.clips["porch"])
    assert ended == [clip.name]
    frames, pictures, stamps = _stamped(clip)
    assert frames[0].key_frame and stamps[0] % 15 == 0 and stamps[0] <= 51 - 15 < stamps[0] + 15, stamps
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps))) and stamps[-1] >= 63 + 14, stamps
    with av.open(str(video)) as container:
        theirs = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert all(np.array_equal(ours, theirs[index]) for ours, index in zip(pictures, stamps, strict=True))
    times = [float(frame.time or 0) for frame in frames]
    assert all(b - a == pytest.approx(1 / 15, abs=0.01) for a, b in itertools.pairwise(times))


@pytest.mark.timeout(120)
def test_a_clip_of_a_camera_with_a_record_source_is_cut_from_its_main_stream_around_the_sub_streams_events(
        camera: tuple[RtspServer, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A camera's two streams (two real RTSP servers sending the same moments): the model
    watches the 320x240 sub stream, where the visitor of ``_Visitors`` goes through the lobby
    (in at frame 51, out at 63); the clip is the 640x480 main stream's (its ``record_source``),
    bit for bit, every picture in a row, from a key frame about a second before the first
    event to about a second past the last (the two streams matched by when their packets
    arrived, each server starting its file as the run connects, a moment apart). The sub
    stream is neither recorded nor clipped; the main stream is recorded beside the clip.
    ``yard`` watches the same sub stream, its record source never reached: its clip is not
    made, and the log says so (no empty file is left)."""
    sub, _ = camera
    main_clip = make_clip(tmp_path / "main.mp4", "camera", frames=300, size=(640, 480), fps=15)
    main = RtspServer(main_clip)
    main.start()
    folder, record = tmp_path / "clips", tmp_path / "rec"
    lobby = {"lobby": [list(point) for point in LOBBY.points]}
    cfg = build_config({"model": "demo", "tracker": "bytetrack", "record": str(record), "clips": str(folder),
                        "clip_mode": "original", "clip_before": 1, "clip_after": 1,
                        "streams": [{"name": "door", "source": sub.url(), "record_source": main.url(), "zones": lobby},
                                    {"name": "yard", "source": sub.url(), "zones": lobby,
                                     "record_source": f"rtsp://127.0.0.1:{free_port()}/x"}]})
    door, yard = resolve_streams(cfg)
    recorder = VideoRecorder(record, streams=[])
    clips = ClipRecorder(folder, before=1.0, after=1.0, streams=[])
    ended: list[str] = []
    failed: list[tuple[str, str]] = []
    clips.on_end = lambda stream, name, seconds, whole: ended.append(name)
    clips.on_fail = lambda stream, name, why: failed.append((stream, why))
    pipeline = Pipeline([stream_setup(cfg, door, recorder, clips), stream_setup(cfg, yard, recorder, clips)],
                        _Visitors, tracker=tracker_settings("bytetrack"), sinks=[recorder, clips])
    try:
        summary = _until_a_clip_ends(pipeline, ended)
    finally:
        main.kill()
    (clip,) = (Path(name) for name in summary.clips["door"])
    assert ended == [clip.name] and summary.recordings["door"] == [str(record / "door.mp4")]
    assert not summary.clips.get("yard") and list(folder.iterdir()) == [clip]
    assert ("yard", "none of its seconds came from the camera") in failed and {s for s, _ in failed} == {"yard"}
    assert any(re.fullmatch(r"stream 'yard': clip yard-\d{8}-\d{6}\.mp4 not made: none of its seconds came from "
                            "the camera", r.getMessage()) for r in caplog.records)
    frames, pictures, stamps = _stamped(clip)
    assert {picture.shape for picture in pictures} == {(480, 640, 3)}
    # Frame 51 less a second is frame 36 of both streams; their servers started a moment apart.
    assert frames[0].key_frame and stamps[0] % 15 == 0 and 36 - 15 < stamps[0] <= 36 + 5, stamps
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps))) and 78 - 5 <= stamps[-1] <= 78 + 5, stamps
    with av.open(str(main_clip)) as container:
        theirs = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert all(np.array_equal(ours, theirs[index]) for ours, index in zip(pictures, stamps, strict=True))


@pytest.mark.timeout(60)
def test_a_clip_whose_seconds_the_record_source_never_sent_is_not_made_of_what_came_before(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A record source down from 2 s to 20 s of the run: the moment at 10 s has no clip (not
    the seconds before the camera went down, the last it sent), said in the log; the moment at
    21 s gets the packets that arrived from 20 s (its first second before) to 21.5 s. The
    watched stream's timeline starts at 0, its packets' arrivals at 1000: the spans are found
    by arrival."""
    main = make_clip(tmp_path / "main.mp4", "main", frames=45, size=(160, 120), fps=15)
    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=1.0, after=0.5, streams=[])
    made: list[str] = []
    failed: list[tuple[str, str]] = []
    clips.on_end = lambda stream, name, seconds, whole: made.append(name)
    clips.on_fail = lambda stream, name, why: failed.append((name, why))
    clips.open()
    tap = clips.original("cam", live=True, other=True)
    image = np.zeros((120, 160, 3), np.uint8)

    def watched(at: float, event: bool = False) -> None:  # the sub stream's frame at `at` s, arrived at 1000 + at
        meta = FrameMeta("cam", round(at * 15), 1000.0 + at, pts=at, fps=15.0)
        visits = (ZoneVisit("lobby", "enter", 1, 0, "person"),) if event else ()
        clips.write(Result(Frame(meta, image), Detections.empty(), meta.t_capture, visits=visits))

    def connection(since: float) -> list[bytes]:  # the main stream (re)connects and sends its 45 packets
        with av.open(str(main)) as container:
            tap.opened(container.streams.video[0])
            packets = [packet for packet in container.demux(video=0) if packet.size]
            for index, packet in enumerate(packets):
                tap.packet(packet, since + index / 15)
            return [bytes(packet) for packet in packets]

    def told(ending: bool) -> None:
        deadline = time.monotonic() + 10
        while not tap._cuts.empty() or (tap._making is not None) != ending or tap._ending != ending:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    try:
        connection(1000.0)  # 0 to 3 s: the first 2 s are kept, before its span's second
        watched(10.0, event=True)
        watched(10.6)
        told(ending=True)  # the writer has the span from 9 to 10.5 s, ended, and waits for a packet past it
        sent = connection(1020.0)
        _until_written(tap)
        watched(21.0, event=True)
        watched(21.6)
        _until_written(tap)
        told(ending=False)
        clips.stream_changed("cam", "ended", None)
    finally:
        clips.close()
    (clip,) = folder.iterdir()
    assert made == [clip.name] and _video_packets(clip) == sent[:23]  # 20 s to 21.5 s: packets 0-22
    assert failed == [(f"cam-{file_stamp(wall_time(1010.0))}.mp4", "none of its seconds came from the camera")]
    assert [r.getMessage() for r in caplog.records if "not made" in r.getMessage()] == [
        f"stream 'cam': clip cam-{file_stamp(wall_time(1010.0))}.mp4 not made: none of its seconds came from the "
        "camera"]


@pytest.mark.timeout(120)
def test_clip_mode_original_from_a_config_clips_the_street_and_encodes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``clip_mode: original`` in a config, as a user writes it, on a video of the synthetic
    street (the bundled model, a zone over all of it): its clips are its own packets from a
    key frame on, and no frame is encoded for them (nor for the recording of the original)."""
    video = make_clip(tmp_path / "street.mp4", "street", frames=100, size=(416, 240), fps=25, seed=3, scene=True)
    folder, record = tmp_path / "clips", tmp_path / "rec"

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("a frame was encoded")

    monkeypatch.setattr(H264, "__init__", no_encoder)
    config = {"model": "demo", "imgsz": 320, "display": False, "status_interval": 0, "tracker": "bytetrack",
              "clips": str(folder), "clip_mode": "original", "clip_before": 1, "clip_after": 0.5,
              "record": str(record), "record_mode": "original",
              "streams": [{"name": "street", "source": str(video),
                           "zones": {"all": [[0, 0], [416, 0], [416, 240], [0, 240]]}}]}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
    summary = pipeline.summary()
    assert any(result.visits for result in results), "no events: nothing to clip"
    theirs = _video_packets(video)
    assert summary.clips["street"] and sorted(folder.iterdir()) == sorted(Path(n) for n in summary.clips["street"])
    for name in summary.clips["street"]:
        ours = _video_packets(Path(name))
        start = theirs.index(ours[0])
        assert ours == theirs[start:start + len(ours)] and start % 25 == 0, name
    assert _video_packets(record / "street.mp4") == theirs


@pytest.mark.parametrize(("settings", "message"), [
    ({"clip_mode": "original"}, "config keys 'clip_mode' and 'clips': clip_mode is about event clips; give clips"),
    ({"clips": "CLIPS", "clip_mode": "original", "blur": ["person"]},
     "config key 'clip_mode': the original video would show the stream's blurred objects"),
])
def test_clip_mode_original_settings_that_cannot_work_name_their_key(settings: dict[str, object], message: str,
                                                                      tmp_path: Path) -> None:
    config = {"model": "demo", "tracker": "bytetrack",
              "streams": [{"name": "door", "source": "rtsp://127.0.0.1:9/door",
                           "zones": {"all": [[0, 0], [9, 0], [9, 9]]}}],
              **{key: str(tmp_path / "clips") if value == "CLIPS" else value for key, value in settings.items()}}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_config(config)


def test_clip_mode_original_on_a_synthetic_source_is_refused_naming_the_stream(tmp_path: Path) -> None:
    """Unless the stream has a record source, which its clips are cut from."""
    config = {"model": "demo", "tracker": "bytetrack", "clips": str(tmp_path / "clips"), "clip_mode": "original",
              "record": str(tmp_path / "rec"),
              "streams": [{"name": "street", "source": "synthetic:scene", "lines": {"gate": [[0, 10], [100, 10]]}}]}
    with pytest.raises(ConfigError, match="stream 'street': clip_mode: original copies the video its source sends"):
        resolve_streams(build_config(config))
    config["streams"][0]["record_source"] = "rtsp://127.0.0.1:9/main"  # type: ignore[index]
    assert [s.spec.name for s in resolve_streams(build_config(config))] == ["street"]


def test_video_that_cannot_be_copied_stops_the_streams_clips_naming_it(tmp_path: Path) -> None:
    """An MPEG-4 Part 2 camera (an old one): its clips of the original cannot be made, said
    once naming the stream (the stream's error), and the run ends with it."""
    old = make_mpeg4(tmp_path / "old.mp4", 3)
    clips = ClipRecorder(tmp_path / "clips", streams=[])
    said: list[tuple[str, str]] = []
    clips.report_errors_to(lambda stream, message: said.append((stream, message)))
    tap = clips.original("old", live=False)
    with av.open(str(old)) as container:
        tap.opened(container.streams.video[0])
        for packet in container.demux(video=0):
            tap.packet(packet, None)
    expected = ("clips of stream 'old': its mpeg4 video cannot be copied into an MP4 browsers play (H.264, H.265, "
                "VP9 and AV1 can); cut them from the pictures as shown (clip_mode: annotated)")
    assert said == [("old", expected)]
    with pytest.raises(RecorderError, match=re.escape(expected)):
        clips.close()


def test_check_says_the_clips_are_cut_from_the_original_and_warns_of_video_that_cannot_be(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "a.mp4", "a", frames=2, size=(160, 120))
    pipeline = Pipeline.from_config({"model": "demo", "tracker": "bytetrack", "clips": str(tmp_path / "clips"),
                                     "clip_mode": "original", "record": str(tmp_path / "rec"),
                                     "streams": [{"name": "a", "source": str(video), "lines": {"l": [[0, 9], [9, 9]]}},
                                                 {"name": "b", "source": str(video)},
                                                 {"name": "c", "source": str(video), "lines": {"l": [[0, 9], [9, 9]]},
                                                  "record_source": "rtsp://127.0.0.1:9/main"}]})
    plan = pipeline.plan
    assert plan is not None
    text = describe(plan)
    assert f"clips (cut from the cameras' original video) in {tmp_path / 'clips'}" in text
    assert "records rtsp://127.0.0.1:9/main as it comes, its clips cut from it" in text
    mjpeg = Probe("a", None, 160, 120, 15.0, "mjpeg")
    assert trouble(plan.config, plan.streams[0], mjpeg) == [uncopied("a", "mjpeg", clips=True)]
    assert trouble(plan.config, plan.streams[1], replace(mjpeg, stream="b")) == []  # no events: no clips
    assert trouble(plan.config, plan.streams[0], Probe("a", None, 160, 120, 15.0, "h264")) == []
    # c's clips, as its recording, are cut from its record source, not from what the model watches
    assert trouble(plan.config, plan.streams[2], replace(mjpeg, stream="c")) == []
    assert trouble(plan.config, plan.streams[2], replace(mjpeg, stream="c", recording=True)) == [
        uncopied("c", "mjpeg"), uncopied("c", "mjpeg", clips=True)]


@pytest.mark.timeout(60)
def test_a_clip_of_the_original_cut_short_by_a_full_disk_keeps_what_it_got_and_the_run_says_so(
        tmp_path: Path) -> None:
    """The kernel refuses the clip's writes past 1 MB (a full disk): the clip keeps the
    frames it got, in order, its end is told (``whole``: false), the frames it lost are
    counted and the run ends saying so."""
    import resource

    video = tmp_path / "noise.mp4"  # noise: some 25 kB a frame in H.264, a key frame every second
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (120, 160, 3), np.uint8)
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options, stream.codec_context.gop_size = {"preset": "ultrafast"}, 25
        for seq in range(150):
            image = rng.integers(0, 255, (120, 160, 3), np.uint8)
            stamp(image, 1, seq)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = seq
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    clips = ClipRecorder(tmp_path / "clips", before=0.0, after=10.0, streams=[])
    clips.open()
    ended: list[tuple[str, bool]] = []
    clips.on_end = lambda stream, name, seconds, whole: ended.append((name, whole))
    tap = clips.original("cam", live=False)
    for seq in range(150):  # what the model saw: an event at the first frame
        clips.write(_result(seq, seq / 25, noise, event=seq == 0))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    try:
        with av.open(str(video)) as container:
            tap.opened(container.streams.video[0])
            for packet in container.demux(video=0):
                tap.packet(packet, None)
        tap.finish()
        assert tap.join(20)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with pytest.raises(OutputsIncompleteError, match=r"clips of stream 'cam': \d+ frame\(s\) could not be written "
                                                     r"\(first: OSError: \[Errno 27\] File too large"):
        clips.close()
    (clip,) = (tmp_path / "clips").iterdir()
    kept = _decodable(clip)
    assert kept == list(range(len(kept))) and len(kept) >= 25, "the clip should play up to where the disk filled"
    assert ended == [(clip.name, False)]
    assert 150 - 25 <= len(kept) + tap.pause.lost <= 150, (len(kept), tap.pause.lost)
