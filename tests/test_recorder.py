"""Recordings: real H.264 MP4s that decode, at the right size and count, even after SIGKILL."""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from streamyolo.annotation import BoxAnnotator, boxes
from streamyolo.clock import wall_time
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputsIncompleteError
from streamyolo.frames import Detections, Frame, FrameMeta, Result
from streamyolo.sinks import VideoRecorder
from streamyolo.sinks.recorder import Mp4File, with_objects
from streamyolo.sources import SyntheticSource, read_stamp, stream_tag
from streamyolo.sources.clips import write_clip
from tests.helpers import PYTHON, ROOT, decode, env_for_subprocess, kill_after, read_jsonl, stamps, until
from tests.servers import HookReceiver, MqttBroker, MqttSubscriber, free_port


def _results(name: str, count: int, size: str = "320x240", fps: float = 25.0) -> list[Result]:
    source = SyntheticSource(name, f"synthetic:?size={size}&fps={fps}&frames={count}")
    source.open()
    out = []
    while (raw := source.read()) is not None:
        meta = FrameMeta(name, len(out), float(len(out)), raw.pts, fps)
        out.append(Result(Frame(meta, raw.image), Detections.empty(), t_done=float(len(out)) + 0.01))
    return out


@pytest.mark.timeout(60)
def test_recording_decodes_as_h264_at_source_size_rate_and_count(tmp_path: Path) -> None:
    recorder = VideoRecorder(tmp_path, preset="ultrafast")
    recorder.open()
    for result in _results("cam", 40, size="322x181", fps=25.0):
        recorder.write(result)
    recorder.close()
    images, info = decode(tmp_path / "cam.mp4")
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (322, 180)  # yuv420p needs even sizes: one row is cut
    assert len(images) == 40
    assert [read_stamp(image)[1] for image in images] == list(range(40))  # type: ignore[index]
    with av.open(str(tmp_path / "cam.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(25.0)
        assert container.format.name.startswith("mov,mp4")


def _record(folder: Path, results: list[Result], **options: object) -> VideoRecorder:
    recorder = VideoRecorder(folder, preset="ultrafast", **options)  # type: ignore[arg-type]
    recorder.open()
    for result in results:
        recorder.write(result)
    recorder.close()
    return recorder


def test_recordings_are_stamped_with_each_frames_date_and_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a camera or an NVR stamps its video: the header of every recorded frame holds the
    local date and time the frame arrived, after the stream's name."""
    drawn: list[str] = []
    real_label = boxes._label
    monkeypatch.setattr(boxes, "_label", lambda canvas, text, *rest, **more: (
        drawn.append(text), real_label(canvas, text, *rest, **more))[1])
    results = _results("cam", 5)
    recorder = VideoRecorder(tmp_path, preset="ultrafast", annotator=BoxAnnotator(overlay=False))
    recorder.open()
    for result in results:
        recorder.write(result)
    recorder.close()
    assert drawn == [f"cam  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(wall_time(r.frame.meta.t_capture)))}"
                     for r in results]


def test_only_the_streams_that_say_record_are_recorded(tmp_path: Path) -> None:
    config = build_config({"record": "rec", "streams": ["a=a.mp4", {"name": "b", "source": "b.mp4", "record": False}]})
    assert [s.record for s in config.streams] == [True, False]
    with pytest.raises(ConfigError, match="config key 'record': every stream says record: false"):
        build_config({"record": "rec", "streams": [{"source": "a.mp4", "record": False}]})
    recorder = _record(tmp_path, _results("a", 10) + _results("b", 10), streams=["a"])
    assert recorder.files == {"a": [tmp_path / "a.mp4"]} and list(tmp_path.iterdir()) == [tmp_path / "a.mp4"]
    assert len(decode(tmp_path / "a.mp4")[0]) == 10


def _stamps_in(path: Path) -> list[int]:
    images, _ = decode(path)
    return [read_stamp(image)[1] for image in images]  # type: ignore[index]


@pytest.mark.timeout(60)
def test_an_earlier_runs_recording_is_kept_and_the_new_one_takes_the_next_free_name(tmp_path: Path) -> None:
    """A job restarted after a crash must not write over the crash's recording."""
    first = _record(tmp_path, _results("cam", 20))
    assert first.files == {"cam": [tmp_path / "cam.mp4"]}
    # The next run: "cam" finds cam.mp4 taken and takes cam-2.mp4, so a stream named "cam-2"
    # (whose own name is now taken) takes cam-2-2.mp4; no two writers ever share a file.
    # ("cam" first: each stream's writer claims its name in its own thread, in either order.)
    second = VideoRecorder(tmp_path, preset="ultrafast")
    second.open()
    pairs = list(zip(_results("cam", 30), _results("cam-2", 30), strict=True))
    second.write(pairs[0][0])
    deadline = time.monotonic() + 10
    while not second.files.get("cam"):
        assert time.monotonic() < deadline, "cam's recording never started"
        time.sleep(0.01)
    for index, (cam, other) in enumerate(pairs):
        if index:
            second.write(cam)
        second.write(other)
    second.close()
    assert second.files == {"cam": [tmp_path / "cam-2.mp4"], "cam-2": [tmp_path / "cam-2-2.mp4"]}
    assert _stamps_in(tmp_path / "cam.mp4") == list(range(20)), "the earlier recording must be untouched"
    assert _stamps_in(tmp_path / "cam-2.mp4") == list(range(30))
    assert stamps(decode(tmp_path / "cam-2-2.mp4")[0]) == [(stream_tag("cam-2"), i) for i in range(30)]
    # overwrite: the name is used again and the earlier file replaced
    third = _record(tmp_path, _results("cam", 10), overwrite=True)
    assert third.files == {"cam": [tmp_path / "cam.mp4"]}
    assert _stamps_in(tmp_path / "cam.mp4") == list(range(10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-2-2.mp4", "cam-2.mp4", "cam.mp4"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("segment", [None, 1.0])
def test_a_recording_switched_off_ends_its_file_and_switched_on_starts_a_new_one(
        tmp_path: Path, segment: float | None) -> None:
    """Recording off after frame 29 (the switch in order with the frames given before it, as
    the writer takes them): its file holds frames 0-29, whole; nothing of 30-59 is recorded;
    on again, a new file from frame 60, which starts with a key frame. The clips it shares
    the encoder with would go on."""
    results = _results("cam", 90)
    recorder = VideoRecorder(tmp_path, preset="ultrafast", segment=segment)
    recorder.open()
    for index, result in enumerate(results):
        if index == 30:
            recorder.switch("cam", False)
        if index == 60:
            recorder.switch("cam", True)
        recorder.write(result)
    recorder.close()
    files = recorder.files["cam"]
    stamps = [_stamps_in(path) for path in files]
    assert [stamp for found in stamps for stamp in found] == [*range(30), *range(60, 90)]
    assert next(found for found in stamps if 60 in found)[0] == 60, "a new file starts at frame 60"
    assert next(found for found in stamps if 29 in found)[-1] == 29, "the file ends at frame 29"
    assert len(files) == (2 if segment is None else 4)  # 0-24, 25-29; 60-84, 85-89
    for path in files:
        with av.open(str(path)) as container:
            assert next(container.demux(video=0)).is_keyframe, path.name


@pytest.mark.timeout(60)
def test_a_stream_whose_frame_size_changes_goes_on_in_a_new_file_at_its_new_size(tmp_path: Path) -> None:
    """A camera reconfigured (or reconnected) at another resolution: each file keeps one size,
    whole pictures, rather than the new frames squeezed or cropped into the old size."""
    small, large = _results("cam", 20, size="320x240"), _results("cam", 40, size="640x480")[20:]
    recorder = _record(tmp_path, [*small, *large])
    assert recorder.files == {"cam": [tmp_path / "cam.mp4", tmp_path / "cam-2.mp4"]}
    for path, size, stamps_expected in ((tmp_path / "cam.mp4", (320, 240), range(20)),
                                        (tmp_path / "cam-2.mp4", (640, 480), range(20, 40))):
        images, info = decode(path)
        assert (info["width"], info["height"]) == size
        assert [read_stamp(image)[1] for image in images] == list(stamps_expected)  # type: ignore[index]


def _retimed(results: list[Result], pts: list[float]) -> list[Result]:
    """``results`` with the source's presentation times replaced by ``pts``."""
    out = []
    for result, t in zip(results, pts, strict=True):
        meta = result.frame.meta
        out.append(Result(Frame(FrameMeta(meta.stream, meta.seq, meta.t_capture, t, meta.fps), result.frame.image),
                          result.detections, t_done=result.t_done))
    return out


SEGMENT_NAME = re.compile(r"^cam-(\d{8}-\d{6})\.mp4$")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kept", "pts", "per_file"), [
    # 130 frames of 25 fps in 2-second files: 50, 50 and 30 frames
    (range(130), [i / 25 for i in range(130)], [50, 50, 30]),
    # a live stream that lost every other frame: the gaps count as time, 25 frames a file
    (range(0, 130, 2), [i / 25 for i in range(0, 130, 2)], [25, 25, 15]),
    # a camera whose timeline starts again after 40 frames (a reconnect): the video goes on
    (range(100), [i / 25 for i in range(40)] + [i / 25 for i in range(60)], [50, 50]),
], ids=["every frame", "dropped frames", "timeline restarts"])
def test_segments_cut_the_recording_into_files_of_the_given_length(
        tmp_path: Path, kept: range, pts: list[float], per_file: list[int]) -> None:
    results = _retimed([r for i, r in enumerate(_results("cam", 130)) if i in kept], pts)
    before = time.time()
    recorder = _record(tmp_path, results, segment=2.0)
    files = recorder.files["cam"]
    assert sorted(tmp_path.iterdir()) == sorted(files) == files, "file names must sort in recording order"
    assert [len(decode(path)[0]) for path in files] == per_file
    assert [stamp for path in files for stamp in _stamps_in(path)] == list(kept), "every frame once, in order"
    starts = []
    for path in files:
        match = SEGMENT_NAME.match(path.name)
        assert match, path.name
        starts.append(time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S")))
        with av.open(str(path)) as container:
            first = next(container.demux(video=0))
            assert first.is_keyframe, f"{path.name} must start with a key frame to play on its own"
            assert container.duration is None or container.duration / 1e6 <= 2.0 + 1e-6
    # The frames arrived (t_capture) long ago and the file was written faster than real time:
    # named after the first frame's arrival, then a segment later each.
    arrival = time.time() - (time.monotonic() - results[0].frame.meta.t_capture)
    assert abs(starts[0] - arrival) <= 1.5 and starts[0] < before
    assert all(later - earlier >= 2 for earlier, later in itertools.pairwise(starts))


@pytest.mark.timeout(60)
def test_record_keep_deletes_the_streams_old_segments_and_nothing_else(tmp_path: Path) -> None:
    """Retention for a recording that runs for months: a stream's segment files finished more
    than ``keep`` ago go, earlier runs' too; anything else in the folder stays."""
    old, recent = time.time() - 7200, time.time() - 60
    planted = {
        "cam-20200101-000000.mp4": old,  # an earlier run's old segments: deleted
        "cam-20200101-000010-2.mp4": old,
        "cam-20200101-000020.mp4": recent,  # finished a minute ago: kept
        "cam.mp4": old,  # a whole run's file (no segments then): kept
        "camera-20200101-000000.mp4": old,  # another stream's: kept
        "cam-2-20200101-000000.mp4": old,  # and another's
        "cam-20200101-000000.mp4.bak": old,  # not a recording
        "notes.txt": old,
    }
    for name, mtime in planted.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    recorder = VideoRecorder(tmp_path, preset="ultrafast", segment=1.0, keep=3600)
    recorder.open()
    results = _results("cam", 75)  # 25 frames (1 second) a segment
    for result in results[:50]:  # two segments
        recorder.write(result)
    gone = {"cam-20200101-000000.mp4", "cam-20200101-000010-2.mp4"}
    assert not any((tmp_path / name).exists() for name in gone)
    assert (tmp_path / "cam-20200101-000020.mp4").exists()
    # This run's own segments go too once they are old enough: a keep of 1 second, then a pause.
    recorder.keep = 1.0
    time.sleep(1.5)
    for result in results[50:]:  # the third segment starts: the first was finished 1.5 s ago
        recorder.write(result)
    recorder.close()
    files = recorder.files["cam"]
    assert len(files) == 2 and _stamps_in(files[0]) == list(range(25, 50)), "the first segment is deleted"
    assert _stamps_in(files[1]) == list(range(50, 75))

    assert (tmp_path / "cam-20200101-000020.mp4").exists() is False  # a minute old: past a 1-second keep
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in files] + [name for name in planted if name not in gone and name != "cam-20200101-000020.mp4"])


@pytest.mark.timeout(120)
def test_a_stream_keeps_its_segments_as_long_as_its_own_record_keep_says(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A stream's own ``record_keep`` and ``record_keep_objects`` (the front door's kept longer
    or shorter than the garden's): a real run deletes each stream's old segments by its own,
    the others' by the run's; a reload changes them in place; ``check`` says them; what cannot
    be is refused, naming the stream's key."""
    from streamyolo import cli
    from streamyolo.pipeline import Pipeline

    folder = tmp_path / "rec"
    folder.mkdir()
    hours = {"door-20200101-000000.mp4": 2, "door-20200101-000010-objects.mp4": 10,  # door: 1h, 2d
             "garden-20200101-000000.mp4": 2, "garden-20200101-000010.mp4": 4,  # the run's: 3h, 6h
             "garden-20200101-000020-objects.mp4": 10, "garden-20200101-000030-objects.mp4": 5}
    for name, age in hours.items():
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (time.time() - age * 3600, time.time() - age * 3600))
    config = {"model": "demo", "imgsz": 160, "device": "cpu", "display": False, "status_interval": 0,
              "record": str(folder), "record_segment": 1, "record_keep": "3h", "record_keep_objects": "6h",
              "streams": [{"name": "door", "source": "synthetic:?size=160x120&fps=10&frames=15",
                           "record_keep": "1h", "record_keep_objects": "2d"},
                          {"name": "garden", "source": "synthetic:?size=160x120&fps=10&frames=15&seed=2"}]}
    (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
    plan = capsys.readouterr().out
    assert re.search(r"door +synthetic:\S+ +\(.*; segments kept 1h \(2d those with objects\)\)", plan), plan
    assert re.search(r"garden +synthetic:\S+ +\((?!.*segments kept)", plan), plan
    pipeline = Pipeline.from_config(config)
    pipeline.run()
    left = {path.name for path in folder.iterdir() if path.name in hours}
    assert left == {"door-20200101-000010-objects.mp4", "garden-20200101-000000.mp4",
                    "garden-20200101-000030-objects.mp4"}
    assert all(len(files) >= 1 for files in pipeline.summary().recordings.values())

    live = {**config, "streams": [{**stream, "source": stream["source"].replace("frames=15", "frames=0"),
                                   "realtime": True} for stream in config["streams"]]}
    pipeline = Pipeline.from_config(live)
    pipeline.start()
    try:
        recorder = pipeline._recorder
        assert recorder is not None and recorder.keep_of("door") == (3600, 172800)
        assert recorder.keep_of("garden") == (10800, 21600)
        door, garden = live["streams"]
        report = pipeline.reload({**live, "streams": [{**door, "record_keep": "30m"},
                                                      {**garden, "record_keep_objects": "1d"}]})
        assert (report.updated, report.restarted) == (("door", "garden"), ())
        assert (recorder.keep_of("door"), recorder.keep_of("garden")) == ((1800, 172800), (10800, 86400))
    finally:
        pipeline.stop()
        pipeline.join()

    for stream, message in (
            ({"source": "a", "record": False, "record_keep": "1d"},
             r"config key 'streams\.1\.record_keep': the stream is not recorded \(record: false\)"),
            ({"source": "a", "record_keep": "1d", "record_keep_objects": "12h"},
             r"config keys 'streams\.1\.record_keep_objects' and 'streams\.1\.record_keep': record_keep_objects "
             r"keeps the segments with objects longer"),
            ({"source": "a", "record_keep": "10h"},  # the run's record_keep_objects, 6h: shorter
             r"config keys 'streams\.1\.record_keep_objects' and 'streams\.1\.record_keep'")):
        with pytest.raises(ConfigError, match=message):
            build_config({**config, "streams": ["b", stream]})
    with pytest.raises(ConfigError, match=r"config keys 'streams\.0\.record_keep' and 'record_segment': record_keep "
                                          r"deletes old segment files"):
        build_config({"record": str(folder), "streams": [{"source": "a", "record_keep": "1d"}]})


def _with_a_person(result: Result, cls: int = 0) -> Result:
    found = Detections(np.array([[10, 10, 60, 110]], np.float32), np.array([0.9], np.float32), np.array([cls]),
                       {0: "person", 2: "car"})
    return replace(result, detections=found)


@pytest.mark.timeout(60)
def test_segments_in_which_objects_were_seen_are_named_so_and_kept_longer(tmp_path: Path) -> None:
    """``record_keep_objects``: the segment in which the model saw a person (frames 60-64 of
    four 1-second segments) ends as ``…-objects.mp4``, the others as they are; then retention
    deletes the segments without objects older than ``keep`` (1 h), and those with objects only
    once older than ``keep_objects`` (3 h), this stream's alone; a name whose ``-objects`` file
    exists is taken."""
    results = [_with_a_person(r) if 60 <= index < 65 else r for index, r in enumerate(_results("cam", 100))]
    recorder = _record(tmp_path / "rec", results, segment=1.0, keep=3600.0, keep_objects=10800.0)
    files = recorder.files["cam"]
    assert [path.name.endswith("-objects.mp4") for path in files] == [False, False, True, False]
    assert sorted((tmp_path / "rec").iterdir()) == files and _stamps_in(files[2]) == list(range(50, 75))
    # Retention, as the next segment starts: by age and by whether objects were seen.
    folder = tmp_path / "old"
    folder.mkdir()
    hours = {"cam-20200101-000000.mp4": 2, "cam-20200101-000010-objects.mp4": 2,
             "cam-20200101-000020-objects.mp4": 4, "cam-20200101-000030-2-objects.mp4": 2,
             "cam-20200101-000040.mp4": 0.5, "gate-20200101-000010-objects.mp4": 4, "cam-objects.mp4": 4}
    for name, age in hours.items():
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (time.time() - age * 3600, time.time() - age * 3600))
    recorder = _record(folder, _results("cam", 30), segment=1.0, keep=3600.0, keep_objects=10800.0)
    left = {path.name for path in folder.iterdir()} - {path.name for path in recorder.files["cam"]}
    assert left == set(hours) - {"cam-20200101-000000.mp4", "cam-20200101-000020-objects.mp4"}
    claimed = recorder.claim("cam", time.time())
    with_objects(claimed).write_bytes(b"x")
    recorder.release(claimed)
    assert recorder.claim("cam", time.time()).name == claimed.name.replace(".mp4", "-2.mp4")


@pytest.mark.timeout(60)
def test_record_objects_says_which_classes_mark_a_segment(tmp_path: Path) -> None:
    """``record_objects``: on a stream that keeps its segments longer for people only, the
    segment in which a car went by (frames 30-34) is not marked, the one with a person (60-64)
    is; a stream without ``record_objects`` of its own is marked by any object, the car too."""
    def scene(name: str) -> list[Result]:
        return [_with_a_person(r, cls=2) if 30 <= index < 35 else _with_a_person(r) if 60 <= index < 65 else r
                for index, r in enumerate(_results(name, 100))]

    recorder = _record(tmp_path / "rec", [r for pair in zip(scene("door"), scene("lot"), strict=True) for r in pair],
                       segment=1.0, keep=3600.0, keep_objects=10800.0, objects={"door": frozenset({0})})
    marked = {stream: [path.name.endswith("-objects.mp4") for path in files]
              for stream, files in recorder.files.items()}
    assert marked == {"door": [False, False, True, False], "lot": [False, True, True, False]}
    assert sorted((tmp_path / "rec").iterdir()) == sorted(recorder.files["door"] + recorder.files["lot"])


@pytest.mark.timeout(60)
def test_record_max_size_keeps_the_folders_segments_under_it_deleting_the_oldest_of_any_stream(
        tmp_path: Path) -> None:
    """Retention by size, for a disk shared by many cameras: as each segment starts, the oldest
    segment files of the folder (any stream's, earlier runs' too) go until the rest take at most
    ``max_size`` bytes; files being written and anything that is not a segment stay."""
    now = time.time()
    planted = {  # name: (bytes, seconds ago)
        "door-20200101-000000.mp4": (300_000, 400),  # the oldest: deleted first
        "door-20200101-000010-2.mp4": (300_000, 300),
        "cam-20200101-000020.mp4": (300_000, 200),
        "cam.mp4": (2_000_000, 500),  # a whole run's file (no segments then): stays, counts for nothing
        "notes.txt": (1_000_000, 600),
    }
    for name, (size, ago) in planted.items():
        (tmp_path / name).write_bytes(b"x" * size)
        os.utime(tmp_path / name, (now - ago, now - ago))
    recorder = _record(tmp_path, _results("cam", 100), segment=1.0, max_size=650_000)
    made = recorder.files["cam"]
    segments = sorted((p for p in tmp_path.iterdir() if SEGMENT_NAME.match(p.name) or p.name.startswith("door-")),
                      key=lambda p: p.stat().st_mtime)
    assert [p.name for p in segments[:1]] == ["cam-20200101-000020.mp4"], "the two oldest went, the third stays"
    assert not any((tmp_path / name).exists() for name in ("door-20200101-000000.mp4", "door-20200101-000010-2.mp4"))
    assert (tmp_path / "cam.mp4").stat().st_size == 2_000_000 and (tmp_path / "notes.txt").exists()
    assert len(made) == 4 and all(path.exists() for path in made), "this run's own segments were all kept"
    # What was there when the last segment started fits; the last one came after.
    assert sum(p.stat().st_size for p in segments[:-1]) <= 650_000
    # With a limit this run's own segments exceed, its oldest go too (and are no longer listed).
    recorder = _record(tmp_path / "small", _results("cam", 100), segment=1.0, max_size=1)
    kept = recorder.files["cam"]
    assert [p.name for p in (tmp_path / "small").iterdir()] == [kept[-1].name] and len(kept) == 1
    assert _stamps_in(kept[0]) == list(range(75, 100)), "the newest segment stays"


@pytest.mark.timeout(60)
def test_a_recording_folder_removed_mid_run_is_made_again_for_the_next_file(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    recorder = VideoRecorder(folder, preset="ultrafast", segment=1.0, keep=3600)  # retention looks first
    recorder.open()
    results = _results("cam", 50)  # two 1-second segments
    for result in results[:25]:
        recorder.write(result)
    shutil.rmtree(folder)  # a clean-up script; the first segment goes with it
    for result in results[25:]:
        recorder.write(result)
    recorder.close()
    assert [_stamps_in(path) for path in sorted(folder.iterdir())] == [list(range(25, 50))]


def test_at_the_end_every_streams_recording_that_lost_frames_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A full disk for every stream: each lost frames; the error at the end names them all.
    add = Mp4File.add
    full = threading.Event()

    def full_disk(self: Mp4File, packets: list[Any]) -> None:
        if full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        add(self, packets)

    monkeypatch.setattr(Mp4File, "add", full_disk)
    recorder = VideoRecorder(tmp_path, preset="ultrafast")
    recorder.open()
    results = {name: _results(name, 30) for name in ("gate", "yard", "door")}
    for index in range(30):
        if index == 10:
            until(lambda: all((tmp_path / f"{name}.mp4").exists() for name in results), 10, "every file begun")
            full.set()
        for name in results:
            recorder.write(results[name][index])
    with pytest.raises(OutputsIncompleteError) as raised:
        recorder.close()
    lost = re.findall(r"recording of stream '(\w+)': \d+ frame\(s\) could not be written \(first: OSError: "
                      r"\[Errno 28\] No space left on device\)", str(raised.value))
    assert sorted(lost) == ["door", "gate", "yard"], str(raised.value)  # (not the first alone)
    assert len(raised.value.lost) == 3 and all(line in str(raised.value) for line in raised.value.lost)


FILE_LIMIT = 600_000
"""Bytes a file of the process below may grow to: past that the kernel refuses the write
(EFBIG), as a full disk refuses it (ENOSPC): the recording's file cannot grow, a new one can.
(About 5 s of its camera's frames: the new file, stopped 1.5 s in, stays well under it even
when a busy box is slow to stop.)"""




@pytest.mark.timeout(180)
def test_a_recording_that_cannot_be_written_pauses_and_goes_on_in_a_new_file(
        tmp_path: Path, random_model: Path, broker_folder: Path) -> None:
    """The kernel refuses a write mid-run (here a file-size limit; on a box, a full disk): the
    stream goes on being processed, its recording pauses, tries again ``RETRY_SECONDS`` later
    (made 5 s here) in a new file, and the run, stopped 1.5 s after that (SIGTERM), ends saying
    what was lost, with exit code 1. Each file plays, in order. While paused, the web page's
    status says so; the webhook and the events file get an ``output`` event when it pauses and
    when it writes again; Home Assistant's ``Outputs`` problem sensors (the stream's, the run's)
    are on while it is paused, and its recordings' sensors have the folder's use."""
    import jinja2

    rec, jsonl, summary = tmp_path / "rec", tmp_path / "det.jsonl", tmp_path / "summary.json"
    config = tmp_path / "camera.yaml"  # a camera: 30 frames a second, as they come
    config.write_text('streams: [{name: cam, source: "synthetic:?size=320x240&fps=30", realtime: true}]\n')
    retry, port, events = 5.0, free_port(), tmp_path / "events.jsonl"
    hook = HookReceiver().__enter__()
    broker = MqttBroker(broker_folder).__enter__()
    assistant = MqttSubscriber(broker.port)  # a Home Assistant running along
    process = subprocess.Popen(
        [PYTHON, "-c", "import resource, runpy, streamyolo.sinks.base as base; "
         f"resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_LIMIT}, resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
         f"base.RETRY_SECONDS = {retry}; runpy.run_module('streamyolo', run_name='__main__', alter_sys=True)",
         "run", str(config), "--model", str(random_model), "--imgsz", "96",
         "--pytorch-cpu", "torch", "--model-cache", "off",
         "--record", str(rec), "--jsonl", str(jsonl), "--summary", str(summary),
         "--no-display", "--status-interval", "0", "--web", f"127.0.0.1:{port}", "--events", str(events),
         "--webhook", hook.url, "--webhook-events", "output", "--mqtt", f"mqtt://127.0.0.1:{broker.port}/site",
         "--mqtt-discovery", "homeassistant"],
        env=env_for_subprocess(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8",
    )
    # However busy the box (a slow start, frames dropped), the run goes on until the recording
    # has started again, and 1.5 s more (not much more: the new file too would reach the limit).
    stopper = threading.Timer(150, process.kill)
    stopper.start()
    assert process.stderr is not None
    said, paused = [], None
    for line in process.stderr:
        said.append(line)
        if paused is None and "recording of stream 'cam': cannot write" in line:  # (for 5 s)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=4) as response:
                paused = json.loads(response.read()).get("paused")
        if re.search(r"recording of stream 'cam': writing again after", line):
            stopper.cancel()
            stopper = threading.Timer(1.5, process.terminate)
            stopper.start()
    returncode = process.wait()
    stopper.cancel()
    hook.__exit__(None, None, None)
    until(lambda: ("site/available", b"offline", False) in assistant.messages, 10, "the run's offline")
    assistant.close()
    broker.__exit__(None, None, None)
    stderr = "".join(said)
    assert returncode == 1, stderr
    assert "recording of stream 'cam': cannot write ([Errno 27] File too large" in stderr
    assert re.search(r"recording of stream 'cam': writing again after [56] s", stderr), stderr
    assert paused is not None and [(p["output"], p["error"], p["unit"]) for p in paused] == [
        ("recording of stream 'cam'", "File too large", "frame(s)")], paused
    told = [{k: v for k, v in event.items() if k != "time"} for event in read_jsonl(events)
            if event["event"] == "output"]
    assert [event.pop("seconds") for event in told[1:]] == [pytest.approx(retry, abs=1.5)], told
    lost = told[1].pop("lost")
    assert lost > 0 and told == [  # (how many: as many frames as came, on a busy box fewer than 30 a second)
        {"stream": "cam", "event": "output", "output": "recording of stream 'cam'", "state": "paused",
         "error": "File too large"},
        {"stream": "cam", "event": "output", "output": "recording of stream 'cam'", "state": "writing",
         "unit": "frame(s)"}], told
    assert [(e["event"], e["state"]) for e in hook.events] == [("output", "paused"), ("output", "writing")]
    # Home Assistant: the Outputs sensors off, on while paused (which output, since when, why), off again.
    configs = {topic.split("/")[3]: json.loads(payload) for topic, payload, _ in assistant.messages
               if topic.startswith("homeassistant/") and payload}

    def shown(entity: str, payload: bytes) -> str:
        return jinja2.Environment().from_string(configs[entity]["value_template"]).render(
            value_json=json.loads(payload))

    for entity, topic in (("cam_outputs", "site/cam/outputs"), ("-outputs", "site/outputs")):
        assert configs[entity]["state_topic"] == configs[entity]["json_attributes_topic"] == topic
        assert configs[entity]["device_class"] == "problem"
        states = [json.loads(payload) for at, payload, _ in assistant.messages if at == topic]
        assert [shown(entity, payload) for at, payload, _ in assistant.messages if at == topic] == ["OFF", "ON", "OFF"]
        assert [state["paused"] for state in states] == [0, 1, 0] and states[0]["outputs"] == states[2]["outputs"] == []
        assert [(p["output"], p["error"]) for p in states[1]["outputs"]] == [("recording of stream 'cam'",
                                                                             "File too large")], states
        assert abs(states[1]["outputs"][0]["since"] - paused[0]["since"]) < 1.5, (states, paused)
    # The recordings' sensors: their folder, looked at as the run started (every 30 s).
    (use, *_) = [json.loads(payload) for topic, payload, _ in assistant.messages if topic == "site/storage/recordings"]
    assert use["path"] == str(rec) and use["free"] > 0 and use["days_left"] is None  # (no day of files yet)
    assert float(shown("-recordings_free", json.dumps(use).encode())) == pytest.approx(use["free"] / 1e9)
    assert float(shown("-recordings", json.dumps(use).encode())) == use["bytes"] / 1e9
    assert shown("-recordings_days_left", json.dumps(use).encode()) == "None"  # (unknown, to Home Assistant)
    assert configs["-recordings_free"]["unit_of_measurement"] == "GB"
    assert re.search(r"recording of stream 'cam': \d+ frame\(s\) could not be written", stderr), stderr
    (lost,) = json.loads(summary.read_text())["lost"]  # what the outputs lost, in the summary file too
    assert re.fullmatch(r"recording of stream 'cam': \d+ frame\(s\) could not be written \(first: .*File too large.*\)",
                        lost), lost
    report = json.loads(summary.read_text())["streams"]["cam"]
    # a busy box (the suite's other tests beside it) may drop some of a live camera's frames
    assert report["captured"] == report["processed"] + report["dropped"] and report["state"] == "stopped"
    assert report["recordings"] == [str(rec / "cam.mp4"), str(rec / "cam-2.mp4")]
    assert "cannot write" in report["error"]
    lines = read_jsonl(jsonl)
    assert len(lines) == report["processed"]
    first, second = (_decodable(rec / name) for name in ("cam.mp4", "cam-2.mp4"))
    processed = sorted(line["seq"] for line in lines)  # a live camera may drop a frame on a busy box
    assert first == [seq for seq in processed if seq <= first[-1]] and len(first) > 10
    assert second == [seq for seq in processed if seq >= second[0]] and len(second) > 3  # (fewer on a busy box)
    assert second[0] > first[-1] + 0.8 * 30 * retry, "about 5 s of frames were not recorded"
    # The frames the recording could not take were processed all the same: about as large a
    # share of them as of those before (a box as busy as the suite's skips most of a live
    # camera's frames, before as while paused; none while paused if processing stopped with it).
    paused = set(range(first[-1] + 1, second[0]))
    before = len(first) / (first[-1] - first[0] + 1)
    assert len(paused & set(processed)) / len(paused) > 0.25 * before, ("processing stopped with the recording",
                                                                        before)
    for name in ("cam.mp4", "cam-2.mp4"):
        with av.open(str(rec / name)) as container:
            assert next(container.demux(video=0)).is_keyframe
    # The file the full disk ended was cut after its last whole fragment: it decodes to its
    # end (no torn frame), every frame of it.
    assert [read_stamp(image)[1] for image in decode(rec / "cam.mp4")[0]] == first  # type: ignore[index]


def _decodable(path: Path) -> list[int]:
    """Indices stamped in every frame that decodes, stopping quietly at a damaged tail."""
    found: list[int] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                stamp = read_stamp(frame.to_ndarray(format="bgr24"))
                if stamp is not None:
                    found.append(stamp[1])
    except av.error.FFmpegError:
        pass
    return found


@pytest.mark.timeout(180)
@pytest.mark.parametrize("segment", [None, 1], ids=["one file", "1-second segments"])
def test_recording_survives_sigkill(tmp_path: Path, random_model: Path, segment: int | None) -> None:
    """Kill -9 mid-run: the MP4 still decodes, in order, up to about a second before the kill
    (with segments: every finished segment whole, and the one being written up to then)."""
    jsonl = tmp_path / "det.jsonl"
    kill_after(["run", "--source", "cam=synthetic:?size=320x240&fps=30", "--model", str(random_model), "--imgsz",
                "96", "--record", str(tmp_path / "rec"), "--no-display", "--status-interval", "0",
                *(["--record-segment", str(segment)] if segment else [])], jsonl, 150, seconds=120)
    processed = len(read_jsonl(jsonl))
    files = sorted((tmp_path / "rec").iterdir())
    if segment is None:
        assert [path.name for path in files] == ["cam.mp4"]
    else:
        assert len(files) >= 3 and all(SEGMENT_NAME.match(path.name) for path in files), files
        for path in files[:-1]:  # finished segments are whole files, a second each
            assert len(decode(path)[0]) == 30, path.name
    indices = [index for path in files for index in _decodable(path)]
    assert indices == list(range(len(indices))), "recorded frames must be the first frames, in order"
    assert len(indices) >= processed - 75, f"only {len(indices)} of {processed} processed frames survived"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["annotated", "original"])
def test_a_segment_with_objects_keeps_its_mark_when_the_process_is_killed(tmp_path: Path, mode: str) -> None:
    """``record_keep_objects``: the segment being written is named ``…-objects.mp4`` as soon
    as the model sees an object in it, not when it ends, so kill -9 (a crash, a power cut)
    cannot leave it under its plain name, to be deleted with the segments without objects."""
    jsonl = tmp_path / "det.jsonl"
    camera = write_clip(tmp_path, "camera", seed=3, width=416, height=240, fps=25, frames=400).video
    config = tmp_path / "cameras.json"  # played as a camera sends it: 16 s, killed after about 3
    config.write_text(json.dumps({"streams": [{"name": "cam", "source": str(camera), "realtime": True}]}))
    kill_after(["run", str(config), "--model", "demo", "--record", str(tmp_path / "rec"), "--record-mode", mode,
                "--record-segment", "1h", "--record-keep", "1d", "--record-keep-objects", "30d", "--no-display",
                "--status-interval", "0"], jsonl, 75)
    lines = read_jsonl(jsonl)
    assert sum(bool(line["detections"]) for line in lines[:30]) >= 20, "the scene has objects"
    files = sorted((tmp_path / "rec").iterdir())
    assert len(files) == 1 and re.fullmatch(r"cam-\d{8}-\d{6}-objects\.mp4", files[0].name), files
    # It plays up to a second or two before the kill: the camera's own video too, whose key
    # frames come 10 s apart (a fragment at least every second).
    assert len(decode(files[0])[0]) >= len(lines) - 50
