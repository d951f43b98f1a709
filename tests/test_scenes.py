"""Camera scenes: deterministic, different per seed, with sane ground truth; the
``synthetic:scene`` source and the clip writer deliver exactly the rendered frames."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.errors import UnsupportedSourceError
from streamyolo.sources import SyntheticSource, read_stamp, stream_tag
from streamyolo.sources.clips import ClipTruth, scene_frames, write_clip
from streamyolo.sources.figures import CLASS_NAMES
from streamyolo.sources.scenes import LABEL_VISIBLE, OPTIONAL_VISIBLE, CameraScene, TruthBox
from streamyolo.sources.synthetic import SyntheticParams, stamp_height
from tests.helpers import decode

WIDTH, HEIGHT = 320, 180


def _truth_over(seed: int, frames: range, width: int = WIDTH, height: int = HEIGHT) -> list[tuple[TruthBox, ...]]:
    scene = CameraScene(seed, width, height, reserve_bottom=stamp_height(width))
    return [scene.frame(i).truth for i in frames]


def test_a_frame_is_a_pure_function_of_seed_and_index() -> None:
    first = CameraScene(11, WIDTH, HEIGHT)
    second = CameraScene(11, WIDTH, HEIGHT)
    in_order = [first.frame(i) for i in range(0, 120, 7)]
    backwards = [second.frame(i) for i in reversed(range(0, 120, 7))][::-1]
    for a, b in zip(in_order, backwards, strict=True):
        assert np.array_equal(a.image, b.image)
        assert a.truth == b.truth
    far = CameraScene(11, WIDTH, HEIGHT).frame(100_000)  # random access far into an endless stream
    assert far.image.shape == (HEIGHT, WIDTH, 3)


def test_every_seed_is_a_different_scene() -> None:
    images = [CameraScene(seed, WIDTH, HEIGHT).frame(30).image for seed in range(6)]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            difference = np.abs(images[i].astype(np.int16) - images[j].astype(np.int16)).mean()
            assert difference > 10, f"seeds {i} and {j} look alike"


def test_frames_change_over_time_even_without_figures() -> None:
    scene = CameraScene(3, WIDTH, HEIGHT)
    a, b = scene.frame(0).image, scene.frame(200).image
    assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() > 2  # light, clouds, noise, figures
    noise = np.abs(scene.frame(1).image.astype(np.int16) - scene.frame(2).image.astype(np.int16))
    assert noise[:20].mean() > 0.5  # the sky holds no figures: consecutive frames still differ (noise)


def test_ground_truth_is_inside_the_frame_with_known_classes() -> None:
    for seed in range(4):
        for truth in _truth_over(seed, range(0, 300, 5)):
            for box in truth:
                x1, y1, x2, y2 = box.xyxy
                assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT - stamp_height(WIDTH), box
                assert box.cls in CLASS_NAMES and box.name == CLASS_NAMES[box.cls]
                assert OPTIONAL_VISIBLE <= box.visible <= 1.0
                assert box.labelled == (box.visible >= LABEL_VISIBLE)


def test_all_classes_appear_and_most_frames_have_objects() -> None:
    counts: dict[int, int] = defaultdict(int)
    frames_with_objects = 0
    total = 0
    for seed in range(4):
        for truth in _truth_over(seed, range(0, 600, 10)):
            total += 1
            labelled = [box for box in truth if box.labelled]
            frames_with_objects += bool(labelled)
            for box in labelled:
                counts[box.cls] += 1
    assert set(counts) == set(CLASS_NAMES), counts
    assert min(counts.values()) >= 20, counts
    assert frames_with_objects / total > 0.8


def test_figures_enter_and_leave_and_change_scale() -> None:
    seed, frames = 5, range(0, 900, 3)
    tracks: dict[int, list[tuple[int, TruthBox]]] = defaultdict(list)
    for index, truth in zip(frames, _truth_over(seed, frames), strict=True):
        for box in truth:
            assert box.track is not None
            tracks[box.track].append((index, box))
    complete = [seen for seen in tracks.values() if seen[0][0] > 0 and seen[-1][0] < frames[-1]]
    assert len(complete) >= 3, "too few figures both entered and left during the clip"
    entered_at_edge = [seen for seen in complete if seen[0][1].xyxy[0] <= 0 or seen[0][1].xyxy[2] >= WIDTH]
    left_at_edge = [seen for seen in complete if seen[-1][1].xyxy[0] <= 0 or seen[-1][1].xyxy[2] >= WIDTH]
    assert len(entered_at_edge) >= 3 and len(left_at_edge) >= 3
    growth = []
    for seen in tracks.values():
        heights = [box.xyxy[3] - box.xyxy[1] for _, box in seen if box.visible > 0.95]
        if len(heights) > 10:
            growth.append(max(heights) / min(heights))
    assert max(growth) > 1.4, f"no figure changed its size much: {sorted(growth)[-3:]}"


def test_figures_hide_each_other() -> None:
    occluded = 0
    for seed in range(3):
        for truth in _truth_over(seed, range(0, 600, 5)):
            for box in truth:
                x1, _, x2, _ = box.xyxy
                inside = x1 > 0 and x2 < WIDTH
                overlaps = any(other is not box and _overlap(box, other) for other in truth)
                if inside and box.visible < 0.9 and overlaps:
                    occluded += 1
    assert occluded >= 20


def _blurred_difference(a: np.ndarray, b: np.ndarray) -> float:
    small = [cv2.resize(image, (image.shape[1] // 4, image.shape[0] // 4), interpolation=cv2.INTER_AREA).astype(float)
             for image in (a, b)]
    return float(np.abs(small[0] - small[1]).mean())


def _overlap(a: TruthBox, b: TruthBox) -> bool:
    return min(a.xyxy[2], b.xyxy[2]) > max(a.xyxy[0], b.xyxy[0]) and min(a.xyxy[3], b.xyxy[3]) > max(
        a.xyxy[1], b.xyxy[1])


def test_the_scene_source_delivers_the_rendered_frames_stamped() -> None:
    source = SyntheticSource("front", f"synthetic:scene?seed=9&size={WIDTH}x{HEIGHT}&fps=25&frames=6")
    info = source.open()
    assert (info.width, info.height, info.fps) == (WIDTH, HEIGHT, 25)
    delivered = []
    while (raw := source.read()) is not None:
        delivered.append(raw.image)
    source.close()
    expected = [frame.image for frame in scene_frames("front", 9, range(6), WIDTH, HEIGHT)]
    assert len(delivered) == 6
    for index, (got, want) in enumerate(zip(delivered, expected, strict=True)):
        assert np.array_equal(got, want)
        assert read_stamp(got) == (stream_tag("front"), index)


def test_scene_parameters_parse_and_bad_ones_are_named() -> None:
    params = SyntheticParams.parse("synthetic:scene?seed=4&size=640x360&fps=30&frames=90")
    assert (params.scene, params.seed, params.width, params.height, params.frames) == ("scene", 4, 640, 360, 90)
    assert SyntheticParams.parse("synthetic:").scene == "pattern"
    with pytest.raises(UnsupportedSourceError, match=r"unknown synthetic scene 'street' \(known: pattern, scene\)"):
        SyntheticParams.parse("synthetic:street")


@pytest.mark.timeout(60)
def test_clip_writer_round_trip(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clips", "cam7", seed=21, width=WIDTH, height=HEIGHT, fps=15, frames=24)
    assert clip.video == tmp_path / "clips" / "cam7.mp4" and clip.truth == tmp_path / "clips" / "cam7.json"
    images, info = decode(clip.video)
    assert (info["codec"], info["pix_fmt"], info["width"], info["height"]) == ("h264", "yuv420p", WIDTH, HEIGHT)
    assert [read_stamp(image) for image in images] == [(stream_tag("cam7"), i) for i in range(24)]
    expected = list(scene_frames("cam7", 21, range(24), WIDTH, HEIGHT))
    for got, want in zip(images, expected, strict=True):
        assert _blurred_difference(got, want.image) < 3  # H.264 at crf 18 keeps the picture, not the noise
    truth = ClipTruth.load(clip.truth)
    assert (truth.stream, truth.seed, truth.width, truth.height, truth.fps) == ("cam7", 21, WIDTH, HEIGHT, 15)
    assert len(truth.frames) == 24
    for loaded, want in zip(truth.frames, expected, strict=True):
        assert [(b.cls, b.track) for b in loaded] == [(b.cls, b.track) for b in want.truth]
        for a, b in zip(loaded, want.truth, strict=True):
            assert np.allclose(a.xyxy, b.xyxy, atol=0.05) and abs(a.visible - b.visible) < 0.001
    raw = json.loads(clip.truth.read_text())
    assert raw["classes"] == {"0": "person", "1": "car", "2": "ball"}
    assert raw["frame_count"] == 24
    assert all(set(box) >= {"cls", "name", "xyxy"} for frame in raw["frames"] for box in frame)
