"""Recording the cameras' own video (``record: original``): their compressed packets copied as
they came, every frame they sent, never encoded again."""

from __future__ import annotations

import errno
import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputsIncompleteError
from streamyolo.frames import Detections, Frame, FrameMeta, Result
from streamyolo.pipeline import Pipeline
from streamyolo.pipeline.build import resolve_streams
from streamyolo.pipeline.check import Probe, describe, probe_recordings, trouble
from streamyolo.sinks import VideoRecorder
from streamyolo.sinks.base import OutputPause
from streamyolo.sinks.original import OriginalRecording
from streamyolo.sinks.recorder import Mp4File
from streamyolo.sources import SyntheticSource, read_stamp, stream_tag
from streamyolo.sources.base import turn
from tests.conftest import need
from tests.helpers import make_clip, make_mpeg4
from tests.servers import RtspServer, free_port, rtsp_server_available


def _frames(path: Path) -> tuple[list[np.ndarray[Any, Any]], list[float], list[bool]]:
    """Every picture of a video file as stored (no turning), its time and whether it is a key frame."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return ([f.to_ndarray(format="bgr24") for f in frames], [float(f.time or 0) for f in frames],
            [bool(f.key_frame) for f in frames])


def _run(config: dict[str, Any]) -> tuple[dict[str, list[Result]], Any]:
    base = {"model": "demo", "imgsz": 160, "display": False, "status_interval": 0}
    with Pipeline.from_config({**base, **config}) as pipeline:
        results = list(pipeline.results())
    by_stream: dict[str, list[Result]] = {}
    for result in results:
        by_stream.setdefault(result.stream, []).append(result)
    return by_stream, pipeline.summary()


@pytest.mark.timeout(120)
def test_a_file_is_recorded_as_it_came_every_frame_whatever_inference_keeps_turned_as_the_model_saw_it(
        tmp_path: Path) -> None:
    """The recording of a file is its own video, picture for picture and time for time,
    though inference kept every third frame (``stride: 3``); a phone's video keeps its display
    matrix, and ``rotate: 180`` becomes the recording's: players show it as the model saw it.
    A stream recorded annotated beside them is drawn on as ever."""
    thin = make_clip(tmp_path / "thin.mp4", "thin", frames=45, size=(320, 240))
    phone = make_clip(tmp_path / "phone.mp4", "phone", frames=12, shown_turned=90)
    record = tmp_path / "rec"
    results, summary = _run({"record": str(record), "record_mode": "original", "streams": [
        {"name": "thin", "source": str(thin), "stride": 3},
        {"name": "phone", "source": str(phone)},
        {"name": "upside", "source": str(phone), "rotate": 180},
        {"name": "drawn", "source": str(thin), "record": "annotated", "stride": 3}]})
    assert len(results["thin"]) == 15 and len(results["drawn"]) == 15
    assert summary.recordings == {name: [str(record / f"{name}.mp4")] for name in ("thin", "phone", "upside", "drawn")}
    for name, source in (("thin", thin), ("phone", phone), ("upside", phone)):
        theirs, times, _ = _frames(source)
        ours, our_times, keys = _frames(record / f"{name}.mp4")
        assert len(ours) == len(theirs) and keys[0], name
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)), name
        assert our_times == pytest.approx(times, abs=1e-3), name
    for name in ("phone", "upside"):  # as a player (OpenCV) shows the recording: as the model saw the stream
        capture = cv2.VideoCapture(str(record / f"{name}.mp4"))
        shown = [capture.read()[1] for _ in range(12)]
        capture.release()
        seen = sorted(results[name], key=lambda r: r.frame.seq)
        assert all(np.array_equal(a, r.frame.image) for a, r in zip(shown, seen, strict=True)), name
    assert np.array_equal(results["upside"][0].frame.image, turn(_frames(phone)[0][0], 180))
    drawn, _, _ = _frames(record / "drawn.mp4")
    change = np.abs(drawn[0].astype(int) - _frames(thin)[0][0].astype(int)).mean(axis=2)
    assert len(drawn) == 15 and change[:24].mean() > 30 > 5 > change[24:].mean()  # the overlay's top band


def _clip_with_sound(path: Path, sound: str, frames: int = 60, fps: int = 30) -> Path:
    """A stamped H.264 video with a tone beside it, in ``sound`` (AAC in MP4, G.711 in MOV)."""
    source = SyntheticSource(path.stem, f"synthetic:?size=160x120&fps={fps}&frames={frames}")
    source.open()
    rate = 48000 if sound == "aac" else 8000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        video.codec_context.gop_size = fps
        audio = container.add_stream(sound, rate=rate)
        audio.layout = "mono"
        samples, tone = 0, 0.3 * np.sin(np.arange(rate * frames // fps) * 2 * np.pi * 440 / rate)
        chunk = 1024 if sound == "aac" else 160
        for index in range(frames):
            raw = source.read()
            assert raw is not None
            frame = av.VideoFrame.from_ndarray(raw.image, format="bgr24")
            frame.pts = index
            container.mux(video.encode(frame))
            while samples < (index + 1) * rate // fps and samples + chunk <= len(tone):
                part = tone[None, samples:samples + chunk]
                piece = (av.AudioFrame.from_ndarray(part.astype(np.float32), format="fltp", layout="mono")
                         if sound == "aac" else
                         av.AudioFrame.from_ndarray((part * 32767).astype(np.int16), format="s16", layout="mono"))
                piece.sample_rate, piece.pts = rate, samples
                container.mux(audio.encode(piece))
                samples += chunk
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def _packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        streams = getattr(container.streams, kind)
        return [bytes(p) for p in container.demux(streams[0]) if p.size] if streams else []


@pytest.mark.timeout(120)
def test_a_cameras_sound_is_recorded_with_its_video_when_an_mp4_holds_it(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """AAC sound beside the video is copied with it, packet for packet, on the video's clock;
    G.711 (which an MP4 browsers play cannot hold) is made AAC: the same tone, as long, in time
    with the video."""
    caplog.set_level(logging.INFO, logger="streamyolo.sinks.original")
    aac, alaw = _clip_with_sound(tmp_path / "aac.mp4", "aac"), _clip_with_sound(tmp_path / "alaw.mov", "pcm_alaw")
    record = tmp_path / "rec"
    _run({"record": str(record), "record_mode": "original", "streams": [{"name": "aac", "source": str(aac)},
                                                                        {"name": "alaw", "source": str(alaw)}]})
    ours, theirs = _packets(record / "aac.mp4", "audio"), _packets(aac, "audio")
    assert len(theirs) > 40 and ours == theirs[1:]  # but the encoder's priming, before the first frame
    assert _packets(record / "aac.mp4", "video") == _packets(aac, "video")
    with av.open(str(record / "aac.mp4")) as mine, av.open(str(aac)) as source:
        assert [float(p.pts * p.time_base) for p in mine.demux(audio=0) if p.size] == pytest.approx(
            [float(p.pts * p.time_base) for p in source.demux(audio=0) if p.size][1:], abs=1e-3)
    assert _packets(record / "alaw.mp4", "video") == _packets(alaw, "video")
    with av.open(str(record / "alaw.mp4")) as made:
        assert made.streams.audio[0].codec_context.name == "aac"
        frames = list(made.decode(audio=0))
    sound = np.concatenate([f.to_ndarray()[0] for f in frames])
    assert abs(len(sound) - 2 * 8000) < 1024 and float(frames[0].time or 0) < 0.15  # 2 s of it, from the start
    spectrum = np.abs(np.fft.rfft(sound[2048:]))
    assert abs(np.argmax(spectrum) * 8000 / len(sound[2048:]) - 440) < 5  # the tone
    assert "stream 'alaw': its pcm_alaw sound is recorded as AAC" in caplog.text


@pytest.mark.timeout(120)
def test_a_cameras_sound_over_rtsp_is_recorded_with_its_video(tmp_path: Path) -> None:
    """Real RTSP cameras with a microphone (GStreamer sending a file's video and its sound:
    AAC as MPEG-4 generic RTP, G.711 as PCMA): the recording holds the camera's AAC packets as
    they came, and the G.711 made AAC (the same tone); either sound beside the video, from its
    start to its end."""
    need(rtsp_server_available())
    files = {"aac": _clip_with_sound(tmp_path / "aac.mp4", "aac", frames=150, fps=15),
             "alaw": _clip_with_sound(tmp_path / "alaw.mov", "pcm_alaw", frames=150, fps=15)}
    servers = {name: RtspServer(path, sound=name) for name, path in files.items()}
    record = tmp_path / "rec"
    try:
        for server in servers.values():
            server.start()
        _, summary = _run({"record": str(record), "record_mode": "original", "duration": 3,
                           "streams": [{"name": name, "source": server.url()} for name, server in servers.items()]})
    finally:
        for server in servers.values():
            server.kill()
    assert all(report.error is None for report in summary.streams.values()), summary.streams
    ours, theirs = _packets(record / "aac.mp4", "audio"), _packets(files["aac"], "audio")
    assert len(ours) > 80 and b"".join(ours) in b"".join(theirs)  # 48 kHz: 47 packets a second
    for name in files:
        with av.open(str(record / f"{name}.mp4")) as container:
            assert container.streams.audio[0].codec_context.name == "aac", name
            times = [(p.stream.type, float(p.pts * p.time_base)) for p in container.demux() if p.size]
        video = [at for kind, at in times if kind == "video"]
        sound = [at for kind, at in times if kind == "audio"]
        assert len(video) >= 30 and min(video) == 0.0, name
        assert abs(min(sound)) < 0.1 and abs(max(sound) - max(video)) < 0.15, (name, sound[:3], sound[-3:], video[-1])
    with av.open(str(record / "alaw.mp4")) as made:
        sound = np.concatenate([f.to_ndarray()[0] for f in made.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(sound[2048:]))
    assert abs(np.argmax(spectrum) * 8000 / len(sound[2048:]) - 440) < 5  # the tone


@pytest.mark.timeout(120)
def test_original_segments_are_cut_at_key_frames_and_a_looped_file_goes_on_in_them(tmp_path: Path) -> None:
    """With ``record_segment: 1``, a file looped over and over (key frames every second) is
    recorded in one-second files, each from a key frame, named a second apart, that together
    hold the file's frames again and again in order, on a timeline that never goes back."""
    clip = make_clip(tmp_path / "loop.mp4", "loop", frames=60, size=(160, 120))
    record = tmp_path / "rec"
    _, summary = _run({"record": str(record), "record_mode": "original", "record_segment": 1, "duration": 2.5,
                       "streams": [{"name": "loop", "source": str(clip), "loop": True}]})
    files = [Path(f) for f in summary.recordings["loop"]]
    assert len(files) >= 4 and sorted(files) == files and files == sorted(record.iterdir())
    indices: list[int] = []
    for number, path in enumerate(files):
        images, times, keys = _frames(path)
        assert keys[0] and times[0] == pytest.approx(0.0), path.name
        assert all(b - a == pytest.approx(1 / 30, abs=1e-3) for a, b in itertools.pairwise(times)), path.name
        if number < len(files) - 1:
            assert len(images) == 30, path.name  # cut at the first key frame a second on
        indices += [read_stamp(image)[1] for image in images]  # type: ignore[index]
    assert indices == [i % 60 for i in range(len(indices))]
    assert all(read_stamp(image) == (stream_tag("loop"), i) for i, image in enumerate(_frames(clip)[0]))
    assert summary.streams["loop"].processed >= len(indices) - 30  # capture reads a few packets ahead at the end


@pytest.mark.timeout(120)
def test_cameras_are_recorded_as_they_came_and_a_main_stream_while_the_model_watches_the_sub_stream(
        camera: tuple[RtspServer, Path], tmp_path: Path) -> None:
    """Real RTSP cameras (GStreamer re-sending a file's H.264), the model seeing 3 frames a
    second of their 15. ``porch``, recorded as it came: the recording is the camera's pictures
    bit for bit, every one of them in a row from its first key frame, 15 a second. ``door``
    with ``record_source``: the model watches the camera's 320x240 sub stream, and its 640x480
    main stream (the same moments, a second RTSP server) is recorded, bit for bit, never
    decoded. ``yard``'s record source cannot be reached: the stream's error once its
    reconnects give up, while its sub stream is watched all the same; no file is made of it.
    ``check --connect`` reads the record sources too."""
    sub, sub_clip = camera
    main_clip = make_clip(tmp_path / "main.mp4", "camera", frames=300, size=(640, 480), fps=15)
    main = RtspServer(main_clip)
    main.start()
    try:
        record = tmp_path / "rec"
        config = {"record": str(record), "duration": 3, "streams": [
            {"name": "porch", "source": sub.url(), "max_fps": 3, "record": "original"},
            {"name": "door", "source": sub.url(), "max_fps": 3, "record_source": main.url()},
            {"name": "yard", "source": sub.url(), "max_fps": 3, "record_source": f"rtsp://127.0.0.1:{free_port()}/x",
             "reconnect": {"base": 0.2, "cap": 0.2, "attempts": 2}}]}
        found = probe_recordings(resolve_streams(build_config(config)))
        results, summary = _run(config)
    finally:
        main.kill()
    assert [(p.stream, p.width, p.height, p.codec) for p in found] == [("door", 640, 480, "h264"),
                                                                      ("yard", 0, 0, None)]
    assert found[0].error is None and "cannot open" in (found[1].error or "")
    assert {r.frame.image.shape for name in ("door", "yard") for r in results[name]} == {(240, 320, 3)}
    for name in ("porch", "door"):
        assert summary.streams[name].error is None and summary.recordings[name] == [str(record / f"{name}.mp4")]
        assert len(results[name]) <= 12
    assert not summary.recordings.get("yard") and sorted(record.iterdir()) == [record / "door.mp4",
                                                                               record / "porch.mp4"]
    for name, clip, shape in (("porch", sub_clip, (240, 320, 3)), ("door", main_clip, (480, 640, 3))):
        theirs, _, _ = _frames(clip)
        ours, times, keys = _frames(record / f"{name}.mp4")
        first = read_stamp(ours[0])
        assert keys[0] and len(ours) >= 30 and first is not None and ours[0].shape == shape, name
        assert first[0] == stream_tag("camera")
        assert all(np.array_equal(a, theirs[first[1] + i]) for i, a in enumerate(ours)), name
        assert all(b - a == pytest.approx(1 / 15, abs=0.01) for a, b in itertools.pairwise(times)), name
    yard = summary.streams["yard"]
    assert yard.processed >= 3 and yard.error is not None
    assert yard.error.startswith("recording source: stream 'yard' (rtsp://127.0.0.1:") and "(gave up)" in yard.error


@pytest.mark.timeout(60)
def test_a_live_camera_whose_recording_falls_behind_loses_packets_to_its_next_key_frame_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that stalls: the writer's queue fills, and a camera's packets (which cannot
    wait) are dropped up to its next key frame, so the file still plays, with a gap; the
    frames lost are counted and the recording reported incomplete at the end."""
    clip = make_clip(tmp_path / "camera.mp4", "camera", frames=90, size=(160, 120))
    recorder = VideoRecorder(tmp_path / "rec")
    recorder.open()
    stalled, stalling = threading.Event(), threading.Event()
    claim = recorder.claim

    def slow_claim(stream: str, started: float) -> Path:
        stalling.set()
        assert stalled.wait(30)
        return claim(stream, started)

    monkeypatch.setattr(recorder, "claim", slow_claim)
    tap = OriginalRecording(recorder, "cam", live=True, queue_size=4)
    try:
        with av.open(str(clip)) as container:
            video = container.streams.video[0]
            tap.opened(video)
            packets = [p for p in container.demux(video) if p.size]
            assert [i for i, p in enumerate(packets) if p.is_keyframe] == [0, 30, 60]
            now = time.monotonic()
            tap.packet(packets[0], now)
            tap.packet(packets[1], now + 1 / 30)  # the writer knows packet 0 is a whole frame: it writes it
            assert stalling.wait(10)  # and waits for the disk, holding packet 1
            for index in range(2, 20):  # 4 queued, 14 dropped
                tap.packet(packets[index], now + index / 30)
            stalled.set()
            for index in range(20, 90):  # 20-29 dropped until the key frame at 30
                _until_written(tap)  # the disk keeps up again
                tap.packet(packets[index], now + index / 30)
    finally:
        stalled.set()
        tap.finish()
        assert tap.join(10)
    images, times, _ = _frames(tmp_path / "rec" / "cam.mp4")
    assert [read_stamp(image)[1] for image in images] == [*range(6), *range(30, 90)]  # type: ignore[index]
    assert times[6] - times[5] == pytest.approx(25 / 30, abs=1e-3)  # the gap kept
    with pytest.raises(OutputsIncompleteError, match=r"recording of stream 'cam': 24 frame\(s\) could not be written "
                                                     r"\(first: the disk did not keep up with the camera\)"):
        tap.pause.check()


@pytest.mark.timeout(60)
def test_a_full_disk_pauses_the_original_recording_which_goes_on_in_a_new_file_from_a_key_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses a write mid-file: the file is closed as far as it got (it plays), the
    recording pauses and starts again in a new file at the first key frame once it may try
    again (here at once), the frames in between are counted lost, and the stream is told."""
    clip = make_clip(tmp_path / "camera.mp4", "camera", frames=90, size=(160, 120))
    recorder = VideoRecorder(tmp_path / "rec")
    recorder.open()
    told: list[tuple[str, str]] = []
    recorder.report_errors_to(lambda stream, message: told.append((stream, message)))
    tap = OriginalRecording(recorder, "cam", live=False)
    tap.pause = OutputPause(tap.pause.what, "frame(s)", retry=0.0)
    add = Mp4File.add
    writes = itertools.count()

    def full_disk(self: Mp4File, packets: list[Any]) -> None:
        if next(writes) == 39:  # the 40th packet: frame 39
            raise OSError(errno.ENOSPC, "No space left on device")
        add(self, packets)

    monkeypatch.setattr(Mp4File, "add", full_disk)
    try:
        with av.open(str(clip)) as container:
            video = container.streams.video[0]
            tap.opened(video)
            for packet in container.demux(video):
                tap.packet(packet, None)
    finally:
        tap.finish()
        assert tap.join(10)
    first, second = (_frames(tmp_path / "rec" / name)[0] for name in ("cam.mp4", "cam-2.mp4"))
    assert [read_stamp(image)[1] for image in first] == list(range(39))  # type: ignore[index]
    assert [read_stamp(image)[1] for image in second] == list(range(60, 90))  # type: ignore[index]
    assert tap.files == [tmp_path / "rec" / "cam.mp4", tmp_path / "rec" / "cam-2.mp4"]
    assert told == [("cam", "recording of stream 'cam': cannot write ([Errno 28] No space left on device); paused, "
                            "trying again every 0 s")]
    with pytest.raises(OutputsIncompleteError, match=r"recording of stream 'cam': 21 frame\(s\) could not be written"):
        tap.pause.check()


@pytest.mark.timeout(60)
def test_an_original_recording_switched_off_ends_its_file_and_on_again_starts_one_at_a_key_frame(
        tmp_path: Path) -> None:
    """Switched off after packet 39 (in order with the packets before it), on again at packet 45:
    the first file holds frames 0-39, whole; the next starts at the next key frame (60)."""
    clip = make_clip(tmp_path / "camera.mp4", "camera", frames=90, size=(160, 120))
    recorder = VideoRecorder(tmp_path / "rec")
    recorder.open()
    tap = recorder.original("cam", live=False)
    try:
        with av.open(str(clip)) as container:
            video = container.streams.video[0]
            tap.opened(video)
            for index, packet in enumerate(container.demux(video)):
                if index == 40:
                    recorder.switch("cam", False)
                if index == 45:
                    recorder.switch("cam", True)
                tap.packet(packet, None)
    finally:
        recorder.close()
    first, second = (_frames(tmp_path / "rec" / name)[0] for name in ("cam.mp4", "cam-2.mp4"))
    assert [read_stamp(image)[1] for image in first] == list(range(40))  # type: ignore[index]
    assert [read_stamp(image)[1] for image in second] == list(range(60, 90))  # type: ignore[index]


@pytest.mark.timeout(60)
def test_an_original_segment_in_which_objects_were_seen_is_named_so(tmp_path: Path) -> None:
    """``record_keep_objects`` with the camera's own video: a frame with a person, while the
    first second's segment is being written, names that segment ``…-objects.mp4`` at once."""
    clip = make_clip(tmp_path / "camera.mp4", "camera", frames=90, size=(160, 120))
    recorder = VideoRecorder(tmp_path / "rec", streams=[], segment=1.0, keep=60.0, keep_objects=120.0)
    recorder.open()
    tap = recorder.original("cam", live=False)
    person = Detections(np.array([[10, 10, 60, 110]], np.float32), np.array([0.9], np.float32), np.array([0]))
    image = np.zeros((120, 160, 3), np.uint8)
    try:
        with av.open(str(clip)) as container:
            video = container.streams.video[0]
            tap.opened(video)
            for index, packet in enumerate(container.demux(video)):
                tap.packet(packet, None)
                if index == 15:
                    _until_written(tap)
                    meta = FrameMeta("cam", 15, time.monotonic(), pts=0.5, fps=30.0)
                    recorder.write(Result(Frame(meta, image), person, time.monotonic()))
                if index == 20:  # named so at its next packet, while it is written (a crash keeps the mark)
                    _until_written(tap)
                    assert [path.name.endswith("-objects.mp4") for path in (tmp_path / "rec").iterdir()] == [True]
    finally:
        recorder.close()
    names = [path.name for path in recorder.files["cam"]]
    assert [name.endswith("-objects.mp4") for name in names] == [True, False, False], names
    assert sorted(path.name for path in (tmp_path / "rec").iterdir()) == sorted(names)


def _until_written(tap: OriginalRecording) -> None:
    deadline = time.monotonic() + 10
    while not tap._queue.empty():
        assert time.monotonic() < deadline, "the writer took no packet for 10 s"
        time.sleep(0.002)


@pytest.mark.timeout(60)
def test_video_that_cannot_be_copied_stops_its_recording_with_a_clear_error_and_nothing_else(tmp_path: Path) -> None:
    """An MPEG-4 Part 2 file (an old camera's) cannot go into an MP4 browsers play: its
    recording says so, naming the stream, the run ends with the error, and its frames, and
    the other stream's recording, go on."""
    old = make_mpeg4(tmp_path / "old.mp4", 30)
    good = make_clip(tmp_path / "good.mp4", "good", frames=30, size=(160, 120))
    config = {"model": "demo", "imgsz": 160, "display": False, "status_interval": 0, "record": str(tmp_path / "rec"),
              "record_mode": "original", "streams": [{"name": "old", "source": str(old)},
                                                     {"name": "good", "source": str(good)}]}
    pipeline = Pipeline.from_config(config)
    with pytest.raises(Exception, match=r"recording of stream 'old': its mpeg4 video cannot be copied into an MP4 "
                                        r"browsers play .*record it annotated"):
        pipeline.run()
    summary = pipeline.summary()
    assert summary.streams["old"].processed == 30 and summary.streams["good"].processed == 30
    assert "mpeg4 video cannot be copied" in (summary.streams["old"].error or "")
    assert len(_frames(tmp_path / "rec" / "good.mp4")[0]) == 30 and not (tmp_path / "rec" / "old.mp4").exists()


def test_what_the_original_video_would_show_or_cannot_hold_is_refused_naming_the_stream(tmp_path: Path) -> None:
    area = [[0, 0], [10, 0], [10, 10]]
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.record': the original video would show the "
                                          r"stream's privacy areas; record this stream annotated"):
        build_config({"record": str(tmp_path), "streams": [{"source": "a.mp4", "record": "original",
                                                             "privacy": {"window": area}}]})
    with pytest.raises(ConfigError, match=r"config key 'record_mode': the original video would show the stream's "
                                          r"blurred objects"):
        build_config({"record": str(tmp_path), "record_mode": "original", "blur": [0], "streams": ["a.mp4"]})
    build_config({"record": str(tmp_path), "record_mode": "original", "blur": [0],
                  "streams": [{"source": "a.mp4", "record": "annotated"}, {"source": "b.mp4", "blur": []}]})
    config = build_config({"record": str(tmp_path), "streams": [{"name": "cam", "source": "synthetic:",
                                                                  "record": "original"}]})
    with pytest.raises(ConfigError, match=r"stream 'cam': record: original copies the video its source sends, and a "
                                          r"synthetic source sends pictures, not video"):
        resolve_streams(config)
    watched = {"name": "cam", "source": "synthetic:", "record_source": "rtsp://u:secret@cam/main"}
    assert resolve_streams(build_config({"record": str(tmp_path), "streams": [watched]}))[0].spec.name == "cam"
    with pytest.raises(ConfigError, match=r"stream 'cam': record_source '/srv/main.mp4' is a file; give a camera's "
                                          r"stream \(rtsp://, rtmp://, http\(s\)://\)"):
        resolve_streams(build_config({"record": str(tmp_path), "streams": [{**watched, "record_source":
                                                                             "/srv/main.mp4"}]}))
    for given, said in (({}, "no record folder"), ({"record": str(tmp_path), "streams": [{**watched, "record": False}]},
                                                    "record: false")):
        with pytest.raises(ConfigError, match=rf"config key 'streams\.0\.record_source': it is recorded as it comes, "
                                              rf"into the record folder, and the stream has {said}"):
            build_config({"streams": [watched], **given})


def test_check_says_how_each_stream_is_recorded_and_warns_of_video_that_cannot_be_copied(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", "a", frames=2, size=(160, 120))
    pipeline = Pipeline.from_config({"model": "demo", "record": str(tmp_path / "rec"), "record_mode": "original",
                                     "streams": [{"name": "a", "source": str(clip)},
                                                 {"name": "b", "source": str(clip), "record": "annotated"},
                                                 {"name": "c", "source": str(clip), "record": False},
                                                 {"name": "d", "source": str(clip),
                                                  "record_source": "rtsp://u:secret@cam/main"}]})
    plan = pipeline.plan
    assert plan is not None
    text = describe(plan)
    assert f"recordings in {tmp_path / 'rec'} (the cameras' original video)" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "recorded" not in rows["a"] and "recorded annotated" in rows["b"] and "not recorded" in rows["c"]
    assert "records rtsp://u:***@cam/main as it comes" in rows["d"] and "secret" not in text
    mjpeg = Probe("a", None, 160, 120, 15.0, "mjpeg")
    assert trouble(plan.config, plan.streams[0], mjpeg) == [
        "recording of stream 'a': its mjpeg video cannot be copied into an MP4 browsers play (H.264, H.265, VP9 and "
        "AV1 can); record it annotated (record: annotated)"]
    assert trouble(plan.config, plan.streams[1], mjpeg) == [] == trouble(plan.config, plan.streams[3], mjpeg)
    assert trouble(plan.config, plan.streams[0], Probe("a", None, 160, 120, 15.0, "h264")) == []


def test_check_reads_a_record_sources_first_video_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check --connect`` reads a record source until its first video packet (an MJPEG camera
    over HTTP here): one that opens but sends none fails, naming the stream."""
    from streamyolo.sources.pyav import PyAVSource
    from tests.servers import MjpegCamera

    with MjpegCamera() as camera:
        config = {"record": "rec", "streams": [{"name": "door", "source": "synthetic:", "record_source": camera.url}]}
        (found,) = probe_recordings(resolve_streams(build_config(config)))
        assert (found.error, found.codec, found.width) == (None, "mjpeg", 320)
        monkeypatch.setattr(PyAVSource, "read_packet", lambda self: False)  # a stream that ends at once
        (found,) = probe_recordings(resolve_streams(build_config(config)))
    assert found.error is not None and found.error.startswith("stream 'door' (http://127.0.0.1:")
    assert found.error.endswith("): opened, but no video came")
