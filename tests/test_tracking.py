"""Tracking per stream (``tracker:``): the same ids and boxes as Ultralytics' own
``model.track()`` on every stream, whatever worker, lane or process served it."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections
from streamyolo.inference import DEMO_MODEL_PATH
from streamyolo.inference.counting import CountingLine, LineCounter
from streamyolo.inference.offline import import_ultralytics
from streamyolo.pipeline import Pipeline
from streamyolo.sources.clips import Clip, write_clip
from tests.helpers import PYTHON, ROOT, env_for_subprocess, read_jsonl

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
    # Objects keep their id from frame to frame: most ids live across many processed frames.
    lives: dict[int, int] = {}
    for frame in seen:
        for track in frame:
            lives[track] = lives.get(track, 0) + 1
    assert lives and sorted(lives.values())[len(lives) // 2] >= 5, lives


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


@pytest.mark.parametrize(("text", "message"), [
    ("tracker_type: botsort\nwith_reid: true\n", "with_reid is not supported (BoT-SORT's ReID would download a model)"),
    ("tracker_type: ocsort\n", "its tracker_type must be bytetrack or botsort, not 'ocsort'"),
    ("[1, 2]\n", "its tracker_type must be bytetrack or botsort, not None"),
])
def test_a_tracker_file_that_cannot_run_offline_here_is_refused(text: str, message: str, tmp_path: Path) -> None:
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
