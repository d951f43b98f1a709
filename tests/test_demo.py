"""The bundled demo model, the demo's pipeline run and ``streamyolo demo`` end to end."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from streamyolo.demo import DEFAULT_FRAMES, DEMO_CONF
from streamyolo.evaluation import Score, score_frames
from streamyolo.frames import Detections
from streamyolo.inference import DEMO_MODEL, DEMO_MODEL_PATH, DetectSettings, UltralyticsFactory, resolve_model
from streamyolo.pipeline import Pipeline
from streamyolo.sources import read_stamp, stream_tag
from streamyolo.sources.clips import Clip, ClipTruth, scene_frames, write_clip
from streamyolo.sources.figures import CLASS_NAMES
from streamyolo.sources.scenes import HELD_OUT_SEEDS, TRAIN_SEEDS, VALIDATION_SEEDS
from tests.helpers import PYTHON, ROOT, decode, env_for_subprocess, read_jsonl

STREAMS = 4
CLIP_FRAMES = 40


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """Four held-out camera scenes as real H.264 clips with their ground truth."""
    folder = tmp_path_factory.mktemp("demo-clips")
    return [write_clip(folder, f"cam{i}", seed=HELD_OUT_SEEDS[-1 - i], frames=CLIP_FRAMES) for i in range(STREAMS)]


def test_the_bundled_model_is_the_default_and_ships_inside_the_package() -> None:
    from streamyolo.cli import DEMO_FRAMES
    from streamyolo.config import DEFAULT_MODEL, build_config

    assert DEMO_FRAMES == DEFAULT_FRAMES  # the CLI's help text states the default

    assert DEFAULT_MODEL == DEMO_MODEL == build_config(overrides={"streams": ["synthetic:"]}).model
    assert resolve_model(DEMO_MODEL) == str(DEMO_MODEL_PATH)
    assert DEMO_MODEL_PATH.parent == ROOT / "streamyolo" / "assets"
    assert DEMO_MODEL_PATH.stat().st_size < 5_000_000


@pytest.mark.timeout(240)
def test_bundled_model_finds_people_cars_and_balls_in_held_out_scenes() -> None:
    detector = UltralyticsFactory(resolve_model(DEMO_MODEL), DetectSettings(conf=DEMO_CONF), "cpu")()
    assert dict(detector.names) == CLASS_NAMES
    score = Score()
    for seed in HELD_OUT_SEEDS[1000:1012]:
        assert seed not in TRAIN_SEEDS and seed not in VALIDATION_SEEDS
        frames = list(scene_frames("cam0", seed, range(7, 1500, 90)))
        found = [detector.detect([frame.image])[0] for frame in frames]
        score += score_frames(found, [frame.truth for frame in frames])
    detector.close()
    assert score.tp + score.fn > 500  # enough figures for the numbers to mean something
    assert score.precision >= 0.9, score
    assert score.recall >= 0.9, score


@pytest.mark.timeout(240)
def test_four_streams_on_two_workers_score_as_one_model_run_sequentially(demo_clips: list[Clip]) -> None:
    config = {"streams": [str(clip.video) for clip in demo_clips], "model": DEMO_MODEL, "workers": 2,
              "conf": DEMO_CONF, "device": "cpu", "display": False, "status_interval": 0}
    results: dict[str, list[Detections]] = defaultdict(list)
    images: dict[str, list[np.ndarray]] = defaultdict(list)
    with Pipeline.from_config(config) as pipeline:
        for result in pipeline.results():
            assert result.frame.seq == len(results[result.stream])  # in order, none lost
            assert read_stamp(result.frame.image) == (stream_tag(result.stream), result.frame.seq)
            results[result.stream].append(result.detections)
            images[result.stream].append(result.frame.image)
    truths = {clip.video.stem: ClipTruth.load(clip.truth).frames for clip in demo_clips}
    assert {name: len(found) for name, found in results.items()} == {name: CLIP_FRAMES for name in truths}

    reference = UltralyticsFactory(resolve_model(DEMO_MODEL), DetectSettings(conf=DEMO_CONF), "cpu")()
    for clip in demo_clips:
        name = clip.video.stem
        decoded, _ = decode(clip.video)
        assert all(np.array_equal(a, b) for a, b in zip(images[name], decoded, strict=True))
        sequential = [reference.detect([image])[0] for image in decoded]
        assert score_frames(results[name], truths[name]) == score_frames(sequential, truths[name]), name
    reference.close()

    own = {name: score_frames(results[name], truths[name]) for name in truths}
    for name, score in own.items():
        assert score.f1 >= 0.85, (name, score)
        for other, truth in truths.items():
            if other != name:
                crossed = score_frames(results[name], truth)
                assert crossed.f1 < score.f1 - 0.5, (name, other, score, crossed)


@pytest.mark.timeout(300)
def test_streamyolo_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    frames = 24
    done = subprocess.run([PYTHON, "-m", "streamyolo", "demo", "--out", str(out), "--frames", str(frames),
                           "--no-display"], capture_output=True, encoding="utf-8", timeout=280,
                          env=env_for_subprocess(), cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    names = [f"cam{i}" for i in range(4)]
    for name in names:
        assert (out / "clips" / f"{name}.mp4").is_file() and (out / "clips" / f"{name}.json").is_file()
        recorded, info = decode(out / "videos" / f"{name}.mp4")
        clip, _ = decode(out / "clips" / f"{name}.mp4")
        assert len(recorded) == len(clip) == frames
        assert (info["codec"], info["width"], info["height"]) == ("h264", 640, 360)
    summary = json.loads((out / "summary.json").read_text())
    assert {name: (r["captured"], r["processed"], r["dropped"]) for name, r in summary["streams"].items()} == {
        name: (frames, frames, 0) for name in names}
    lines = read_jsonl(out / "detections.jsonl")
    assert sorted((line["stream"], line["seq"]) for line in lines) == [(n, i) for n in names for i in range(frames)]
    stdout = done.stdout
    assert "processed" in stdout  # the run summary
    table = stdout[stdout.index("precision@0.5"):].splitlines()
    assert [row.split()[0] for row in table[1:6]] == [*names, "all"]
    for row in table[1:6]:
        precision, recall = (float(v) for v in row.split()[-2:])
        assert 0 <= precision <= 1 and 0 <= recall <= 1
    assert "fps in" in done.stderr  # the live status table
