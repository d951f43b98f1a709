"""Tracking per stream (``tracker:``): the same ids and boxes as Ultralytics' own
``model.track()`` on every stream, whatever worker, lane or process served it."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Image
from streamyolo.inference import DEMO_MODEL_PATH
from streamyolo.inference.counting import CountingLine, LineCounter, Zone
from streamyolo.inference.offline import import_ultralytics
from streamyolo.inference.tracking import StreamTracker, track_buffer, tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks import JsonlSink
from streamyolo.sinks.events import EventSink
from streamyolo.sources import SourceKind, SourceSpec, open_source, read_stamp
from streamyolo.sources.clips import Clip, write_clip
from tests.helpers import PYTHON, ROOT, env_for_subprocess, read_jsonl
from tests.test_counting import _WalkerDetector

FRAMES = 90
Tracks = list[dict[int, np.ndarray]]  # per frame: track id -> box


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """Two busy street scenes (people, cars and balls crossing and hiding each other)."""
    folder = tmp_path_factory.mktemp("tracking")
    return [write_clip(folder, f"cam{i}", seed=7 + i, frames=FRAMES) for i in range(2)]


@functools.cache  # the same clips for thread and process workers: tracked once
def _ultralytics_tracks(video: Path, tracker: str) -> Tracks:
    """What ``YOLO(model).track(video)`` returns: the tracked objects of each frame."""
    model = import_ultralytics().YOLO(str(DEMO_MODEL_PATH))
    out: Tracks = []
    for result in model.track(source=str(video), stream=True, tracker=f"{tracker}.yaml", imgsz=640, verbose=False):
        boxes = result.boxes
        out.append({} if boxes.id is None else {int(i): b for i, b in zip(boxes.id.numpy(), boxes.xyxy.numpy(),
                                                                         strict=True)})
    return out


def _same(ours: Tracks, theirs: Tracks, where: str) -> None:
    assert len(ours) == len(theirs) == FRAMES, where
    assert sum(len(frame) for frame in ours) > 3 * FRAMES, f"{where}: too few tracked objects to mean anything"
    for index, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        assert set(mine) == set(reference), f"{where} frame {index}: ids {sorted(mine)} != {sorted(reference)}"
        for track, box in mine.items():
            assert np.abs(box - reference[track]).max() <= 1.0, f"{where} frame {index} id {track}: {box} != " \
                                                                  f"{reference[track]}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("tracker", "mode"),
                         [("bytetrack", "thread"), ("bytetrack", "process"), ("botsort", "thread")])
def test_every_stream_gets_the_ids_ultralytics_track_gives_it(clips: list[Clip], tracker: str, mode: str,
                                                              tmp_path: Path) -> None:
    # Two streams on two workers (each with lanes that split its batches), or in processes.
    # Each stream counts what crosses a line down the middle of its picture (640 x 360).
    streams = [{"name": clip.video.stem, "source": str(clip.video), "lines": {"middle": [[320, 0], [320, 360]]}}
               for clip in clips]
    config = {"streams": streams, "model": "demo", "tracker": tracker,
              "workers": 2, "worker_mode": mode, "display": False, "status_interval": 0,
              "jsonl": str(tmp_path / "tracks.jsonl")}
    ours: dict[str, Tracks] = {clip.video.stem: [] for clip in clips}
    with Pipeline.from_config(config) as pipeline:
        for result in pipeline.results():
            found = result.detections
            assert found.ids is not None
            ours[result.stream].append({int(i): b for i, b in zip(found.ids, found.xyxy, strict=True)})
        summary = pipeline.summary()
    assert all(r.processed == FRAMES and r.dropped == 0 for r in summary.streams.values())
    crossed = 0
    for clip in clips:
        theirs = _ultralytics_tracks(clip.video, tracker)
        _same(ours[clip.video.stem], theirs, f"{tracker}/{mode} {clip.video.stem}")
        # The counts are those of Ultralytics' own tracks across the same line.
        counter = LineCounter([CountingLine("middle", (320.0, 0.0), (320.0, 360.0))])
        for frame in theirs:
            ids = sorted(frame)
            counter.update(Detections(np.array([frame[i] for i in ids], np.float32).reshape(-1, 4),
                                      np.ones(len(ids), np.float32), np.zeros(len(ids), np.int64), {}, np.array(ids)))
        counts = summary.streams[clip.video.stem].counts["middle"]
        assert {way: sum(counts[way].values()) for way in ("in", "out")} == counter.totals["middle"], clip.video.stem
        crossed += sum(counter.totals["middle"].values())
    assert crossed >= 4, "too few crossings for the comparison to mean much"
    # The JSONL carries each object's id.
    records = [r for r in read_jsonl(tmp_path / "tracks.jsonl") if r["stream"] == "cam0"]
    assert [{d["id"] for d in r["detections"]} for r in sorted(records, key=lambda r: r["seq"])] == \
        [set(frame) for frame in ours["cam0"]]


def test_a_live_stream_is_tracked_across_its_dropped_frames() -> None:
    config = {"streams": [{"name": "live", "source": "synthetic:scene?seed=5&size=640x360&fps=30", "realtime": True}],
              "model": "demo", "tracker": "bytetrack", "duration": 4, "display": False, "status_interval": 0}
    seen: list[dict[int, str]] = []
    with Pipeline.from_config(config) as pipeline:
        for result in pipeline.results():
            assert result.detections.ids is not None
            seen.append({int(i): result.detections.name(int(c))
                         for i, c in zip(result.detections.ids, result.detections.cls, strict=True)})
        summary = pipeline.summary()
    report = summary.streams["live"]
    assert report.captured == report.processed + report.dropped and report.processed > 20
    # Objects keep their id from frame to frame: most of what is seen belongs to ids that live
    # across many processed frames (a box that flickers for a frame or two under load, when the
    # camera's frames come far apart, makes a short id of its own, but few detections).
    lives: dict[int, int] = {}
    for frame in seen:
        for track in frame:
            lives[track] = lives.get(track, 0) + 1
    lasting = sum(n for n in lives.values() if n >= 5) / max(1, sum(lives.values()))
    assert lasting >= 0.8, lives


def test_tracking_detects_down_to_conf_0_1_unless_conf_is_set() -> None:
    streams = {"streams": ["synthetic:"]}
    assert build_config(overrides=streams).detect_conf() == 0.25
    assert build_config(overrides={**streams, "tracker": "bytetrack"}).detect_conf() == 0.1  # as model.track()
    assert build_config(overrides={**streams, "tracker": "botsort", "conf": 0.4}).detect_conf() == 0.4


@pytest.mark.parametrize(("value", "message"), [
    ("deepsort", "expected bytetrack or botsort, or a tracker YAML file (got 'deepsort')"),
    ("nowhere/tracker.yaml", "tracker file not found (got 'nowhere/tracker.yaml')"),
])
def test_a_bad_tracker_is_a_one_line_error_naming_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_config(overrides={"streams": ["synthetic:"], "tracker": value})
    assert str(error.value) == f"config key 'tracker': {message}"


_BYTETRACK = ("tracker_type: bytetrack\ntrack_high_thresh: 0.25\ntrack_low_thresh: 0.1\nnew_track_thresh: 0.25\n"
              "track_buffer: 30\nmatch_thresh: 0.8\nfuse_score: true\n")


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1\n", "the tracker file is not valid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>' "
                "(while parsing a flow sequence from line 1, column 4)"),
    ("track_high_thresh: 0.5\n", "it sets no tracker_type (one of bytetrack, botsort)"),
    ("tracker_type: bytetrack\n", "missing keys 'track_high_thresh', 'track_low_thresh', 'new_track_thresh', "
                                  "'track_buffer', 'match_thresh', 'fuse_score' for a bytetrack tracker "
                                  "(Ultralytics' bytetrack.yaml has them all)"),
    (_BYTETRACK + "trak_buffer: 60\n",
     "unknown key 'trak_buffer' for a bytetrack tracker (did you mean 'track_buffer'?)"),
    (_BYTETRACK.replace("track_buffer: 30", "track_buffer: lots"),
     "its track_buffer must be a whole number, not 'lots'"),
    ("tracker_type: botsort\nwith_reid: true\n", "with_reid is not supported (BoT-SORT's ReID would download a model)"),
    ("tracker_type: ocsort\n", "its tracker_type must be bytetrack or botsort, not 'ocsort'"),
    ("[1, 2]\n", "its tracker_type must be bytetrack or botsort, not None"),
])
def test_a_tracker_file_that_is_not_one_or_cannot_run_offline_here_is_refused(text: str, message: str,
                                                                             tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        build_config(overrides={"streams": ["synthetic:"], "tracker": str(path)})
    assert str(error.value) == f"config key 'tracker': {message} (got '{path}')"


def test_a_missing_solver_is_named_before_the_run_rather_than_pip_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_lap(name: str, *args: Any) -> Any:
        return None if name == "lap" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_lap)
    with pytest.raises(ConfigError, match=r"^config key 'tracker': tracking needs the 'lap' package \(pip install"):
        build_config(overrides={"streams": ["synthetic:"], "tracker": "bytetrack"})


def test_the_cli_tracks_and_writes_ids(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [PYTHON, "-m", "streamyolo", "run", "--source", "street=synthetic:scene?seed=2&size=640x360&frames=30",
         "--tracker", "bytetrack", "--jsonl", str(tmp_path / "d.jsonl"), "--no-display", "--status-interval", "0"],
        env=env_for_subprocess(), cwd=ROOT, capture_output=True, encoding="utf-8", timeout=200, check=False)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(tmp_path / "d.jsonl")
    assert len(records) == 30
    ids = [d["id"] for r in records for d in r["detections"]]
    assert ids and all(isinstance(i, int) and i > 0 for i in ids)


def _frames_of(tracker: StreamTracker, frames: list[list[tuple[float, float]]], confirm: int) -> list[set[int]]:
    """The ids ``tracker`` keeps in each frame, given each frame's objects (boxes 40 x 80 at these corners)."""
    image = np.zeros((480, 640, 3), np.uint8)
    kept = []
    for corners in frames:
        xyxy = np.array([[x, y, x + 40, y + 80] for x, y in corners], np.float32).reshape(-1, 4)
        found = Detections(xyxy, np.full(len(corners), 0.9, np.float32), np.zeros(len(corners), np.int64),
                           {0: "person"})
        tracked = tracker.update(found, image, confirm)
        assert tracked.ids is not None
        kept.append(set(tracked.ids.tolist()))
    return kept


def test_with_confirm_frames_an_object_is_kept_once_tracked_in_that_many_frames_in_a_row() -> None:
    """A person standing (from the first frame), a flicker (2 frames: a shadow), and a person
    coming who is missed for a frame on the way: with ``confirm_frames: 3`` each is kept from
    the third frame in a row the tracker follows it, the flicker never; the tracker's ids and
    boxes are its own, as without."""
    standing, shadow, coming = (100.0, 100.0), (400.0, 300.0), (250.0, 50.0)
    frames = [[standing] + ([shadow] if index in (3, 4) else [])
              + ([(coming[0], coming[1] + 4 * index)] if index >= 6 and index != 8 else []) for index in range(16)]
    settings = tracker_settings("bytetrack")
    plain = _frames_of(StreamTracker(settings), frames, 1)
    confirmed = _frames_of(StreamTracker(settings), frames, 3)
    # What the tracker follows, unconfirmed: the shadow for a frame (its second), the coming person
    # from its second frame, lost for a frame, found again under the same id.
    ids = sorted(set().union(*plain))
    assert len(ids) == 3, plain
    first, flicker, later = ids
    assert [index for index, frame in enumerate(plain) if flicker in frame] == [4]
    assert [index for index, frame in enumerate(plain) if later in frame] == [7, *range(9, 16)]
    # Kept from the third frame in a row: the standing person from frame 2, the coming one from
    # frame 11 (9, 10, 11: the frame missed broke the first run), the shadow never.
    assert [index for index, frame in enumerate(confirmed) if first in frame] == list(range(2, 16))
    assert [index for index, frame in enumerate(confirmed) if later in frame] == list(range(11, 16))
    assert not any(flicker in frame for frame in confirmed)
    assert all(frame <= whole for frame, whole in zip(confirmed, plain, strict=True))


@pytest.mark.parametrize("anchor", ["center", "bottom"])
def test_a_line_crossed_before_an_object_is_kept_counts_it_when_it_is_kept(anchor: str) -> None:
    """Two people walking fast down across a line, one from the first frame, one coming later:
    with ``confirm_frames: 4`` both cross it before they are kept; each is counted once, in
    the frame it is kept, the way it went (as without confirm_frames, a frame or two later)."""
    line = CountingLine("kerb", (0.0, 225.0), (640.0, 225.0), anchor=anchor)
    frames = [[(100.0, 140.0 + 30 * index)] + ([(400.0, 120.0 + 30 * (index - 5))] if index >= 5 else [])
              for index in range(14)]
    counted: dict[int, list[tuple[int, str]]] = {}
    for confirm in (1, 4):
        tracker, counter = StreamTracker(tracker_settings("bytetrack")), LineCounter([line])
        image, seen = np.zeros((480, 640, 3), np.uint8), []
        for index, corners in enumerate(frames):
            xyxy = np.array([[x, y, x + 40, y + 80] for x, y in corners], np.float32)
            found = Detections(xyxy, np.full(len(corners), 0.9, np.float32), np.zeros(len(corners), np.int64),
                               {0: "person"})
            seen += [(index, crossing.direction) for crossing in
                     counter.update(tracker.update(found, image, confirm), tracker.origins)]
        counted[confirm] = seen
    assert [way for _, way in counted[1]] == [way for _, way in counted[4]] == ["in", "in"], counted
    # Kept in their 4th frame in a row tracked: frame 3, and frame 9 (the tracker follows a newcomer
    # from its second frame, 6); both crossed the line before that.
    assert [index for index, _ in counted[4]] == [3, 9], counted
    assert all(plain < later for (plain, _), (later, _) in zip(counted[1], counted[4], strict=True)), counted


def test_confirm_frames_needs_a_tracker_and_a_stream_may_have_its_own() -> None:
    with pytest.raises(ConfigError, match=r"config keys 'confirm_frames' and 'tracker': an object is confirmed"):
        build_config({"streams": ["a.mp4"], "confirm_frames": 3})
    with pytest.raises(ConfigError, match=r"config keys 'streams\.1\.confirm_frames' and 'tracker'"):
        build_config({"streams": ["a.mp4", {"source": "b.mp4", "confirm_frames": 2}]})
    config = build_config({"streams": ["a.mp4", {"source": "b.mp4", "confirm_frames": 1}], "tracker": "bytetrack",
                           "confirm_frames": 5})
    assert [config.confirm_frames_of(stream) for stream in config.streams] == [5, 1]


class _FlickerDetector(_WalkerDetector):
    """The walker, and a "person" in the lobby for two frames (5 and 6): a shadow."""

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image, walker in zip(images, super().detect(images), strict=True):
            stamp = read_stamp(image)
            out.append(walker if stamp is None or stamp[1] not in (5, 6) else Detections(
                np.vstack([walker.xyxy, [[200, 150, 230, 190]]]).astype(np.float32), np.array([0.9, 0.8], np.float32),
                np.array([0, 0], np.int64), self.names))
        return out


@pytest.mark.parametrize("confirm", [1, 3, 16])
def test_a_shadow_of_two_frames_makes_no_event_with_confirm_frames(tmp_path: Path, confirm: int) -> None:
    """The walker enters the lobby and crosses the door; a shadow taken for a person for two
    frames is in the lobby too: an event, an object in the JSONL, unless ``confirm_frames`` is
    3, when only the walker's events come, the same as without the shadow. With 16, the walker
    is kept only after it has crossed the door (frame 15): it is counted then, and enters then."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    door = CountingLine("door", (0.0, 120.0), (320.0, 120.0))
    lobby = Zone("lobby", ((100.0, 100.0), (240.0, 100.0), (240.0, 200.0), (100.0, 200.0)))
    path, jsonl = tmp_path / "events.jsonl", tmp_path / "det.jsonl"
    Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,), zones=(lobby,), confirm=confirm)],
             _FlickerDetector, tracker=tracker_settings("bytetrack"), sinks=[EventSink(path), JsonlSink(jsonl)]).run()
    happened = [(e["event"], e.get("seq"), e.get("zone") or e.get("line")) for e in read_jsonl(path)
                if e["event"] != "state"]
    walker = [("enter", 11, "lobby"), ("line", 13, "door"), ("leave", 23, "lobby")] if confirm < 16 else [
        ("line", 15, "door"), ("enter", 15, "lobby"), ("leave", 23, "lobby")]
    shadow = [("enter", 6, "lobby")]  # (tracked in its second frame only; gone, never seen to leave)
    assert sorted(happened, key=lambda e: e[1] or 0) == (walker if confirm > 1 else sorted(
        walker + shadow, key=lambda e: e[1] or 0)), happened
    objects = [len(line["detections"]) for line in read_jsonl(jsonl)]
    assert max(objects) == (1 if confirm > 1 else 2), objects


def test_a_tracker_file_of_its_own_with_every_key_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(_BYTETRACK.replace("track_buffer: 30", "track_buffer: 60").replace("match_thresh: 0.8",
                                                                                       "match_thresh: 1"))
    settings = tracker_settings(str(path))
    assert track_buffer(settings) == 60
    StreamTracker(settings)  # Ultralytics' tracker is built from it


def test_the_cli_says_in_one_line_where_a_tracker_file_is_broken(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "tr.yaml"
    path.write_text("a: [1\n")
    done = subprocess.run([PYTHON, "-m", "streamyolo", "run", "--source", "synthetic:", "--tracker", str(path),
                           "--no-display"], env=env_for_subprocess(), cwd=ROOT, capture_output=True,
                          encoding="utf-8", timeout=200, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "streamyolo: ERROR: config key 'tracker': the tracker file is not valid YAML: line 2, column 1: expected ',' "
        f"or ']', but got '<stream end>' (while parsing a flow sequence from line 1, column 4) (got '{path}')"]
