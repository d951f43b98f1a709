"""Event clips (``clips``): the seconds before and after each moment with events, as an H.264
MP4 that its events name; on a scripted visitor frame by frame, and from the command line on
a synthetic street with the bundled model."""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest
import yaml

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputsIncompleteError
from streamyolo.frames import Detections, Frame, FrameMeta, Image, Result, ZoneVisit
from streamyolo.inference.counting import Zone
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.health import StreamState
from streamyolo.sinks import EventSink
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.recorder import H264, VideoRecorder
from streamyolo.sinks.web import WebViewer
from streamyolo.sources import SourceKind, SourceSpec, open_source, read_stamp
from streamyolo.sources.synthetic import stamp
from tests.helpers import decode, files_aged, kill_after, read_jsonl
from tests.servers import HookReceiver, free_port
from tests.test_cli import streamyolo
from tests.test_recorder import _decodable

LOBBY = Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0)))


class _Visitors:
    """A person walks down the picture (8 px a frame from y = 20) in frames 40-63 and again
    in frames 150-173: a function of the frame index stamped in each frame. Through the
    lobby, each is seen inside from its 11th frame and outside in its last (its box stays
    clear of the stamp at the bottom, which the clips are checked by)."""

    names: ClassVar[dict[int, str]] = {0: "person"}
    VISITS = ((40, 63), (150, 173))

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image in images:
            stamp = read_stamp(image)
            index = stamp[1] if stamp is not None else -1
            start = next((first for first, last in self.VISITS if first <= index <= last), None)
            if start is None:
                out.append(Detections.empty(self.names))
                continue
            y = 20.0 + 8 * (index - start)
            out.append(Detections(np.array([[140, y - 20, 180, y + 20]], np.float32), np.array([0.9], np.float32),
                                  np.array([0], np.int64), self.names))
        return out

    def close(self) -> None:
        pass


def _frames_in(path: Path) -> list[int]:
    images, info = decode(path)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p"), "not what browsers play"
    return [read_stamp(image)[1] for image in images]  # type: ignore[index]


@pytest.mark.timeout(60)
def test_a_clip_holds_the_seconds_before_and_after_its_events_and_the_events_name_it(tmp_path: Path) -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=200", SourceKind.SYNTHETIC))
    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=1.0, after=0.6)
    events = EventSink(tmp_path / "events.jsonl", clip_of=clips.clip_of)
    clips.on_end = events.clip_ended
    web = WebViewer("127.0.0.1:0", events=events.recent, clips=folder)
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,))], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[clips, events], web=web)
    pipeline.start()
    try:
        pipeline.wait(40)
        deadline = time.monotonic() + 20  # the stream's end is told after its last events, and ends its clip
        while len(events.recent()) < 10 or sum(len(_decodable(clip)) for clip in folder.iterdir()) < 54 + 64:
            assert time.monotonic() < deadline, "the events and clips did not come"
            time.sleep(0.1)
        served = {}
        for event in events.recent():
            if "clip" in event:
                with urllib.request.urlopen(f"{web.url}clips/{event['clip']}", timeout=10) as response:
                    served[event["clip"]] = (response.headers["Content-Type"], response.read())
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{web.url}clips/..%2Fevents.jsonl", timeout=10)
        with urllib.request.urlopen(f"{web.url}clips.json", timeout=10) as response:
            listed = json.loads(response.read())["files"]
    finally:
        summary = pipeline.join()
    written = read_jsonl(tmp_path / "events.jsonl")
    happened = [(e["event"], e.get("state"), e.get("seq"), e.get("clip")) for e in written]
    first, second = (Path(name).name for name in summary.clips["hall"])  # in the order they were made
    assert sorted(p.name for p in folder.iterdir()) == sorted([first, second])
    # A clip event as each moment starts (before its first events) and once its clip is whole.
    assert happened == [("state", "streaming", None, None),
                        ("clip", "started", 51, first), ("enter", None, 51, first), ("leave", None, 63, first),
                        ("clip", "ended", None, first),
                        ("clip", "started", 161, second), ("enter", None, 161, second), ("leave", None, 173, second),
                        ("clip", "ended", None, second), ("state", "ended", None, None)]
    assert [e["seconds"] for e in written if e.get("state") == "ended" and e["event"] == "clip"] == [
        pytest.approx(54 / 25), pytest.approx(64 / 25)]
    # Key frames come every second (25 frames): a clip starts at the last one at least a
    # second before its first event (frame 25 for 51, 125 for 161) and ends 0.6 s (15 frames)
    # after its last event, which came within 0.6 s of the one before.
    assert _frames_in(folder / first) == list(range(25, 79))
    assert _frames_in(folder / second) == list(range(125, 189))
    assert served == {name: ("video/mp4", (folder / name).read_bytes()) for name in (first, second)}
    assert sorted((f["name"], f["stream"], f["size"]) for f in listed) == sorted(
        (name, "hall", (folder / name).stat().st_size) for name in (first, second))
    assert summary.clips == {"hall": [str(folder / first), str(folder / second)]}, "a clip in the wrong place"
    assert summary.to_dict()["streams"]["hall"]["clips"] == summary.clips["hall"]
    assert "recordings" not in summary.to_dict()["streams"]["hall"] and "clips of hall: 2 files" in summary.table()


@pytest.mark.timeout(60)
def test_a_stream_that_ends_within_a_clip_finishes_it_at_once(tmp_path: Path) -> None:
    """Not at the end of the run: the other streams may go on for days."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=60", SourceKind.SYNTHETIC))
    other = open_source(SourceSpec("yard", "synthetic:?size=320x240&fps=25", SourceKind.SYNTHETIC))  # endless
    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=1.0, after=5.0)
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,)),
                         StreamSetup("yard", other, Overflow.BLOCK)], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[clips])
    pipeline.start()
    try:
        deadline = time.monotonic() + 30
        made: list[int] = []
        while made != list(range(25, 60)):  # the visitor enters at frame 51: from 25 to the stream's end
            assert time.monotonic() < deadline, f"the clip was not finished: {made}"
            time.sleep(0.1)
            made = [index for clip in folder.iterdir() for index in _decodable(clip)]
        assert pipeline.health("hall").snapshot().state is StreamState.ENDED
        assert pipeline.health("yard").snapshot().state is StreamState.STREAMING
    finally:
        pipeline.stop()
        pipeline.join()


@pytest.mark.timeout(60)
def test_with_a_public_url_events_link_their_snapshot_and_clip_where_the_web_page_serves_them(
        tmp_path: Path) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}/"  # as a receiver would reach the box
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=80", SourceKind.SYNTHETIC))
    shots, folder = tmp_path / "shots", tmp_path / "clips"
    clips = ClipRecorder(folder, before=0.4, after=0.4)
    with HookReceiver() as hook:
        events = EventSink(None, hook.url, shots, clip_of=clips.clip_of, public_url=public)
        web = WebViewer(f"127.0.0.1:{port}", events=events.recent, snapshots=shots, clips=folder)
        pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,))], _Visitors,
                            tracker=tracker_settings("bytetrack"), sinks=[clips, events], web=web)
        pipeline.start()
        try:
            pipeline.wait(40)
            deadline = time.monotonic() + 20
            while not [e for e in hook.events if e["event"] == "enter"]:  # the webhook's thread posts it
                assert time.monotonic() < deadline, "no enter event reached the webhook"
                time.sleep(0.05)
            enter = next(e for e in hook.events if e["event"] == "enter")
            fetched = {}
            for key in ("snapshot_url", "clip_url"):
                with urllib.request.urlopen(enter[key], timeout=10) as response:
                    fetched[key] = (response.headers["Content-Type"], response.read(12))
        finally:
            pipeline.join()
    assert enter["snapshot_url"] == public + "snapshots/" + enter["snapshot"]
    assert enter["clip_url"] == public + "clips/" + enter["clip"]
    assert fetched["snapshot_url"][0] == "image/jpeg" and fetched["snapshot_url"][1][:2] == b"\xff\xd8"
    assert fetched["clip_url"][0] == "video/mp4" and fetched["clip_url"][1][4:8] == b"ftyp"
    assert [e for e in hook.events if e["event"] == "state"] and all(
        "snapshot_url" not in e for e in hook.events if e["event"] == "state"), "a state event has no picture"
    with pytest.raises(ConfigError, match="config key 'public_url': it is where the web page serves"):
        build_config({**ZONED, "clips": "c", "public_url": "https://box.lan/"})
    with pytest.raises(ConfigError, match=r"config key 'public_url': .*must hold no login") as refused:
        build_config({**ZONED, "clips": "c", "web": 8080, "public_url": "https://me:secret@box.lan/"})
    assert "secret" not in str(refused.value)
    assert build_config({**ZONED, "clips": "c", "web": 8080, "public_url": "https://box.lan:8443/cams"}
                        ).public_url == "https://box.lan:8443/cams/"


def _result(seq: int, at: float, image: Image, event: bool = False) -> Result:
    visits = (ZoneVisit("lobby", "enter", 1, 0, "person"),) if event else ()
    meta = FrameMeta("cam", seq, time.monotonic(), pts=at, fps=25.0)
    return Result(Frame(meta, image), Detections.empty(), time.monotonic(), visits=visits)


def test_key_frames_come_every_second_of_video_however_many_frames_were_dropped() -> None:
    """A live camera whose frames the box could not all take still gets a key frame (where a
    clip can start, where a fragment of a recording ends) every second of its timeline."""
    image = np.zeros((240, 320, 3), np.uint8)
    encoder = H264(VideoRecorder(Path(os.devnull)), _result(0, 0.0, image))
    moments = [0.0, 0.04, 0.3, 0.9, 1.0, 1.2, 1.9, 2.1, 2.2, 3.5, 3.54]  # 25 fps, most frames dropped
    keys = []
    for seq, at in enumerate(moments):
        packets = encoder.encode(image, _result(seq, at, image))
        assert len(packets) == 1, "each frame's packet comes out at once (nothing held back)"
        keys.append(packets[0].is_keyframe)
    assert [at for at, key in zip(moments, keys, strict=True) if key] == [0.0, 1.0, 2.1, 3.5]
    assert encoder.rate == Fraction(25)
    encoder.close()


def test_a_clip_after_a_gap_in_the_stream_starts_after_the_gap(tmp_path: Path) -> None:
    """A camera down for seconds (or a box that dropped them): the frames kept from before the
    gap are not the seconds before an event after it; the clip starts at the key frame the
    stream came back with (seen on a real RTSP camera that reconnected: clips began with 5
    frames from 7 s before)."""
    clips = ClipRecorder(tmp_path, before=1.0, after=0.2)
    clips.open()
    moments = [i / 25 for i in range(5)] + [7 + i / 25 for i in range(20)]  # 0-0.16 s, then 7-7.76 s
    for seq, at in enumerate(moments):
        image = np.zeros((240, 320, 3), np.uint8)
        stamp(image, 1, seq)
        clips.write(_result(seq, at, image, event=seq == 10))  # at 7.2 s
    clips.close()
    (clip,) = clips.files["cam"]
    assert _frames_in(clip) == list(range(5, 16)), "from the frame after the gap to 0.2 s after the event"


@pytest.mark.timeout(30)
def test_a_clip_cut_short_by_a_full_disk_keeps_what_it_got_and_the_run_says_so(tmp_path: Path) -> None:
    import resource

    clips = ClipRecorder(tmp_path, before=0.0, after=10.0)
    clips.open()
    # Noise: some 6 kB a frame in H.264, 150 kB a fragment (a second of video).
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))  # the kernel refuses writes past 200 kB per file
    try:
        for seq in range(60):
            image = noise.copy()
            stamp(image, 1, seq)
            clips.write(_result(seq, seq / 25, image, event=seq == 0))
        clips.writer("cam").finish()
        clips.writer("cam").join(20)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with pytest.raises(OutputsIncompleteError, match=r"clips of stream 'cam': \d+ frame\(s\) could not be written "
                                                     r"\(first: OSError: \[Errno 27\] File too large: '.*cam-.*mp4'\)"):
        clips.close()
    (clip,) = tmp_path.iterdir()
    kept = _decodable(clip)
    lost = clips.writer("cam").outputs[0].pause.lost
    assert kept == list(range(len(kept))) and kept, "the clip should play up to where the disk filled"
    # Every frame is in the clip, counted as lost, or in the fragment (a second of video, 25
    # frames) the disk cut short.
    assert 60 - 25 <= len(kept) + lost <= 60, (len(kept), lost)


@pytest.mark.timeout(60)
@pytest.mark.timeout(30)
def test_a_clip_asked_for_while_a_full_disk_pauses_the_clips_is_said_not_made_and_leaves_no_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The disk fills during a first clip: it keeps what it got (``ended``, not whole); a
    second moment comes while the clips are paused (for 10 s): its clip, which its events
    named, is said not made (``on_fail``) and leaves no empty file behind."""
    import resource

    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=0.0, after=1.0)
    events = EventSink(tmp_path / "events.jsonl", clip_of=clips.clip_of)
    clips.on_end, clips.on_fail = events.clip_ended, events.clip_failed
    clips.open()
    events.open()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)  # some 6 kB a frame
    named = []
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        for seq in range(120):  # events at frames 0 (0 s) and 60 (2.4 s): two moments, a second each
            image = noise.copy()
            stamp(image, 1, seq)
            result = _result(seq, seq / 25, image, event=seq in (0, 60))
            clips.write(result)
            events.write(result)
            if seq in (0, 60):
                named.append(clips.clip_of(result))
        clips.writer("cam").finish()
        clips.writer("cam").join(20)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with pytest.raises(OutputsIncompleteError):
        clips.close()
    events.close()
    first, second = named
    assert first is not None and second is not None and first != second
    assert [p.name for p in folder.iterdir()] == [first] and _decodable(folder / first)
    told = [(e["clip"], e["state"], e.get("whole"), e.get("error")) for e in read_jsonl(tmp_path / "events.jsonl")
            if e["event"] == "clip"]
    assert sorted(told, key=lambda e: (e[0] != first, e[1] != "started")) == [
        (first, "started", None, None), (first, "ended", False, None),
        (second, "started", None, None), (second, "failed", None, "the clips were paused after a failed write")]
    assert [r.getMessage() for r in caplog.records if "not made" in r.getMessage()] == [
        f"stream 'cam': clip {second} not made: the clips were paused after a failed write"]


def test_a_stream_recorded_and_clipped_is_encoded_once_for_both(tmp_path: Path) -> None:
    """With ``record`` and ``clips``, a stream's frames are annotated and encoded once, in
    its recording thread, and the packets go to both: the recording's segments (each from a
    key frame asked for where it starts) and the clips (from the regular key frames)."""
    recorder = VideoRecorder(tmp_path / "rec", segment=1.7, streams=["cam"])  # "door": record: false
    clips = ClipRecorder(tmp_path / "clips", before=1.0, after=0.6)
    recorder.share_with(clips)
    recorder.open()
    clips.open()
    threads: set[str] = set()
    for seq in range(150):  # 6 s at 25 fps; one event, at frame 50 (2 s)
        image = np.zeros((240, 320, 3), np.uint8)
        stamp(image, 1, seq)
        result = _result(seq, seq / 25, image, event=seq == 50)
        recorder.write(result)
        clips.write(result)  # the recorder has it already: nothing more
        if seq < 30:  # a stream not recorded, clipped: an event at its first frame
            door = _result(seq, seq / 25, image, event=seq == 0)
            door = replace(door, frame=Frame(replace(door.frame.meta, stream="door"), image))
            recorder.write(door)
            clips.write(door)
        threads |= {t.name for t in threading.enumerate() if t.name.endswith((":cam", ":door"))}
    clips.stream_changed("cam", "ended", None)  # ends the clips, not the recording
    clips.close()
    recorder.close()
    assert threads == {"record:cam", "record:door"}, "one thread encodes each stream"
    assert list(recorder.files) == ["cam"] and [_frames_in(p) for p in clips.files["door"]] == [list(range(16))]
    segments = recorder.files["cam"]
    assert [index for path in segments for index in _frames_in(path)] == list(range(150))
    assert [len(_frames_in(path)) for path in segments] == [43, 43, 43, 21]  # 1.7 s: a frame cut at 42.5
    for path in segments:
        with av.open(str(path)) as container:
            assert next(container.demux(video=0)).is_keyframe, f"{path.name} must start with a key frame"
    # The clip: from the last regular key frame a second or more before the event (frame 25;
    # the segment's at 43 is too late) to 0.6 s after it.
    (clip,) = clips.files["cam"]
    assert _frames_in(clip) == list(range(25, 66))
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == sorted([clip.name, clips.files["door"][0].name])


@pytest.mark.timeout(30)
def test_a_recording_the_disk_refuses_pauses_while_the_clips_encoded_with_it_go_on(tmp_path: Path) -> None:
    """Recorded and clipped, one encoder: when the recording's file cannot grow (here a limit
    of 200 kB a file; on a box, its disk full), the recording pauses, counts what it lost and
    says so at the end, and the clips (short files) are still made, frame for frame."""
    import resource

    recorder = VideoRecorder(tmp_path / "rec")
    clips = ClipRecorder(tmp_path / "clips", before=0.0, after=0.2)
    recorder.share_with(clips)
    recorder.open()
    clips.open()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)  # some 6 kB a frame
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
    try:
        for seq in range(125):  # 5 s at 25 fps: the recording's file is full after about a second
            image = noise.copy()
            stamp(image, 1, seq)
            result = _result(seq, seq / 25, image, event=seq in (30, 80, 110))
            recorder.write(result)
            clips.write(result)
        clips.close()
        with pytest.raises(OutputsIncompleteError, match=r"recording of stream 'cam': \d+ frame\(s\) could not be "
                                                         r"written \(first: OSError: \[Errno 27\] File too large"):
            recorder.close()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert recorder.writer("cam").error is None, "the stream's writer went on"
    recorded = _decodable(tmp_path / "rec" / "cam.mp4")
    assert recorded == list(range(len(recorded))) and 10 < len(recorded) < 60
    # Each clip from the key frame before its event (one a second: 25, 75, 100) to 0.2 s after it.
    assert [_frames_in(path) for path in clips.files["cam"]] == [list(range(25, 36)), list(range(75, 86)),
                                                                  list(range(100, 116))]


def test_clips_older_than_clips_keep_are_deleted_and_nothing_else(tmp_path: Path) -> None:
    old, recent = "gate-20261101-101500.mp4", "gate-20261205-101500.mp4"
    files_aged(tmp_path, [old, "gate-20261101-101500-2.mp4", "notes.mp4", "gate.mp4", "back-20261101-090000.jpg"],
               [recent])
    clips = ClipRecorder(tmp_path, keep=3600)
    clips.open()
    # Every clip (of any stream, copies with -2 too) older than an hour went; the rest stays.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recent, "notes.mp4", "gate.mp4",
                                                                 "back-20261101-090000.jpg"])
    # A clip of this run, once deleted, is no longer listed (the summary lists what is there).
    image = np.zeros((240, 320, 3), np.uint8)
    clips.write(_result(0, 0.0, image, event=True))
    clips.stream_changed("cam", "ended", None)
    deadline = time.monotonic() + 10
    while not clips.files.get("cam") or not decode(clips.files["cam"][0])[0]:
        assert time.monotonic() < deadline, "the clip was not written"
        time.sleep(0.05)
    (made,) = clips.files["cam"]
    os.utime(made, (time.time() - 7200, time.time() - 7200))
    clips._pruned_at = -math.inf  # as a minute later
    assert clips.prune(None) == [made] and clips.files == {"cam": []}
    clips.close()


def test_clips_beyond_clips_max_size_are_deleted_oldest_first_and_nothing_else(tmp_path: Path) -> None:
    names = ["gate-20261101-101500.mp4", "gate-20261101-101500-2.mp4", "back-20261102-090000.mp4"]
    for age, name in enumerate(reversed(names)):  # the first the oldest
        (tmp_path / name).write_bytes(b"x" * 400_000)
        os.utime(tmp_path / name, (time.time() - 3600 * (age + 1), time.time() - 3600 * (age + 1)))
    files_aged(tmp_path, ["notes.mp4", "gate.mp4"], [])
    (tmp_path / "gate.mp4").write_bytes(b"x" * 3_000_000)  # not a clip: neither counted nor deleted
    clips = ClipRecorder(tmp_path, max_size=900_000)
    clips.open()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[1:], "notes.mp4", "gate.mp4"])
    clips.close()


ZONED = {"streams": [{"source": "a.mp4", "zones": {"all": [[0, 0], [9, 0], [9, 9]]}}], "tracker": "bytetrack"}
"""A config whose stream can have events."""


@pytest.mark.parametrize(("settings", "message"), [
    ({"clip_before": 3}, "config keys 'clip_before' and 'clips': clip_before is about event clips; give clips too"),
    ({"clips_keep": "30d"}, "config keys 'clips_keep' and 'clips'"),
    ({"clips": "runs/rec", "record": "runs/rec/"}, "config keys 'clips' and 'record': both are 'runs/rec'"),
    ({"clips": "c", "clip_after": -1}, "config key 'clip_after': .*must be from 0 s to 10 years"),
    ({"clips": "c", "clip_before": "2 minutes"}, "config key 'clip_before': .*must be seconds"),
    ({"clips": "c", "clip_before": "2m"}, "config key 'clip_before': .*less than or equal to 60"),
    ({"clips": "c", "tracker": None}, "config key 'clips': a clip is made around a stream's events .* set tracker"),
    ({"clips": "c", "streams": ["a.mp4"]}, "config key 'clips': .*give a stream lines or zones"),
])
def test_clip_settings_that_cannot_work_name_their_key(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config({**ZONED, **settings})


def test_clip_spans_may_be_written_with_units() -> None:
    config = build_config({**ZONED, "clips": "c", "clip_before": "1.5s", "clip_after": "2m"})
    assert (config.clip_before, config.clip_after, config.clips_keep) == (1.5, 120.0, None)
    assert build_config({**ZONED, "clips": "c"}).clip_before == 5.0


def test_only_the_streams_that_can_have_events_are_encoded_for_clips(tmp_path: Path) -> None:
    clips = ClipRecorder(tmp_path, streams=["door"])
    clips.open()
    image = np.zeros((240, 320, 3), np.uint8)
    clips.write(_result(0, 0.0, image, event=True))  # stream "cam": no lines or zones
    assert clips.files == {} and list(tmp_path.iterdir()) == []
    clips.close()


@pytest.mark.timeout(180)
def test_the_command_line_clips_a_synthetic_street_around_its_events(tmp_path: Path) -> None:
    """As a user runs it: the bundled model tracks the scene's walkers and cars into a zone
    over the whole picture; every event names a clip that holds its frame, with at least the
    second before it and exactly the second after the clip's last event; the stream is
    recorded as well (encoded once for both)."""
    config = tmp_path / "street.yaml"
    config.write_text(yaml.safe_dump({
        "streams": [{"name": "street", "source": "synthetic:scene?seed=3&size=416x240&fps=25&frames=150",
                     "zones": {"all": [[0, 0], [416, 0], [416, 240], [0, 240]]}}],
        "model": "demo", "tracker": "bytetrack"}))
    out = tmp_path / "out"
    done = streamyolo("run", str(config), "--clips", str(out / "clips"), "--clip-before", "1", "--clip-after", "1s",
                      "--record", str(out / "rec"), "--record-segment", "2",
                      "--events", str(out / "events.jsonl"), "--summary", str(out / "summary.json"), "--no-display")
    assert done.returncode == 0, done.stderr
    # Recorded too, with the clips' packets: every frame once, in files of 2 s of video.
    recordings = json.loads((out / "summary.json").read_text())["streams"]["street"]["recordings"]
    assert [len(_frames_in(Path(path))) for path in recordings] == [50, 50, 50]
    assert [index for path in recordings for index in _frames_in(Path(path))] == list(range(150))
    written = read_jsonl(out / "events.jsonl")
    events = [e for e in written if e["event"] not in ("state", "clip")]
    assert len(events) >= 3, "the scene's objects should enter the zone"
    moments = [(e["clip"], e["state"], e.get("seq"), e.get("seconds")) for e in written if e["event"] == "clip"]
    by_clip: dict[str, list[int]] = {}
    for event in events:
        by_clip.setdefault(event["clip"], []).append(event["seq"])
    assert sorted(by_clip) == sorted(p.name for p in (out / "clips").iterdir())
    for name, seqs in by_clip.items():
        frames = _frames_in(out / "clips" / name)
        # One clip event as it starts, at its first events, and one when it is whole, with its length.
        assert [m[1:] for m in moments if m[0] == name] == [("started", min(seqs), None),
                                                             ("ended", None, pytest.approx(len(frames) / 25))]
        assert frames == list(range(frames[0], frames[-1] + 1)), f"{name}: frames missing"
        assert max(0, min(seqs) - 50) <= frames[0] <= min(seqs) - 25 or frames[0] == 0, f"{name}: {frames[0]}"
        assert frames[-1] == min(max(seqs) + 25, 149), f"{name} ends at {frames[-1]}, its last event at {max(seqs)}"


@pytest.mark.timeout(120)
def test_a_clip_being_written_when_the_process_is_killed_plays_up_to_about_a_second_before(tmp_path: Path) -> None:
    """A crash or a power cut: the clip being written plays, and each object in view for 2 s
    (``crops.SAVE_EVERY``) has its crop so far, one file each."""
    import cv2

    from streamyolo.sinks.crops import SAVE_EVERY

    config = tmp_path / "street.yaml"
    config.write_text(yaml.safe_dump({
        "streams": [{"name": "street", "source": "synthetic:scene?seed=3&size=416x240&fps=25", "realtime": True,
                     "zones": {"all": [[0, 0], [416, 0], [416, 240], [0, 240]]}}],
        "model": "demo", "tracker": "bytetrack"}))
    jsonl, folder, crops = tmp_path / "det.jsonl", tmp_path / "clips", tmp_path / "crops"
    # A clip that never ends (every object in the picture is an event), killed after 4 s of the street.
    kill_after(["run", str(config), "--clips", str(folder), "--clip-after", "60", "--crops", str(crops),
                "--no-display", "--status-interval", "0"], jsonl, 100)
    lines = read_jsonl(jsonl)
    processed = [line["seq"] for line in lines]  # a live stream's: some may have been dropped
    (clip,) = folder.iterdir()
    kept = _decodable(clip)
    # The street's first objects are there from its first frame: the clip starts with it.
    assert kept == processed[:len(kept)], "the clip's frames must be the stream's processed frames, in order"
    assert len(kept) >= len(processed) - 2 * 25, f"only {len(kept)} of {len(processed)} processed frames survived"

    first_seen: dict[int, float] = {}
    for line in lines:
        for found in line["detections"]:
            first_seen.setdefault(found["id"], line["t_capture"])
    end = lines[-1]["t_capture"]
    long_seen = {track for track, t in first_seen.items() if end - t >= SAVE_EVERY + 0.5}
    saved = [path.name for path in crops.rglob("*") if path.is_file()]
    ids = [int(name.rpartition("-id")[2].removesuffix(".jpg")) for name in saved]
    assert long_seen and long_seen <= set(ids), f"objects in view for {SAVE_EVERY + 0.5} s {long_seen}, crops {saved}"
    assert len(ids) == len(set(ids)) and set(ids) <= set(first_seen), saved
    assert all(cv2.imread(str(path)) is not None for path in crops.rglob("*.jpg"))
