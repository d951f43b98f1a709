"""``tiles``: the model also runs on overlapping parts of each picture, whose objects are put
back in the picture's pixels and merged."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml

from streamyolo.buffering import Overflow, RingBuffer
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Frame, FrameMeta, Image, overlaps
from streamyolo.inference import Detector, DetectSettings, UltralyticsFactory
from streamyolo.inference.motion import MotionSettings
from streamyolo.inference.tiles import TileSettings, cut, detect_tiled, merge, tiles
from streamyolo.pipeline.health import StreamHealth
from streamyolo.sinks.jsonl import JsonlSink
from streamyolo.workers.inference import Channel, InferenceWorker
from tests.helpers import CountingDetector, decode, mosaic_clip, read_jsonl
from tests.test_cli import in_process


@pytest.mark.parametrize(("height", "width", "columns", "rows", "overlap"),
                         [(1080, 1920, 3, 2, 0.2), (2160, 3840, 4, 3, 0.25), (240, 320, 2, 2, 0.0),
                          (101, 203, 5, 1, 0.5), (100, 200, 1, 3, 0.1)])
def test_the_parts_cover_the_picture_and_neighbours_share_the_overlap(height: int, width: int, columns: int,
                                                                      rows: int, overlap: float) -> None:
    parts = tiles(TileSettings(columns, rows, overlap), height, width)
    assert len(parts) == columns * rows
    covered = np.zeros((height, width), np.int32)
    for part in parts:
        assert part.x >= 0 and part.y >= 0 and part.x + part.width <= width and part.y + part.height <= height
        covered[part.y:part.y + part.height, part.x:part.x + part.width] += 1
        assert part.inner == (part.x > 0, part.y > 0, part.x + part.width < width, part.y + part.height < height)
    assert covered.min() >= 1, "a pixel no part has"
    assert len({(p.width, p.height) for p in parts}) == 1, "parts of different sizes (one batch needs one shape)"
    for a, b in itertools.pairwise(parts):
        if a.y == b.y:  # neighbours in a row
            assert a.x + a.width - b.x >= overlap * a.width - 1
    picture = np.zeros((height, width, 3), np.uint8)
    pictures = cut(TileSettings(columns, rows, overlap), picture)
    assert pictures[0] is picture and len(pictures) == columns * rows + 1
    assert all(np.shares_memory(p, picture) for p in pictures[1:]), "a part was copied"


def test_auto_makes_parts_about_the_models_input_size_and_a_small_picture_runs_whole() -> None:
    auto = TileSettings(0, 0, size=(640, 640))
    assert {(t.width, t.height) for t in tiles(auto, 1080, 1920)} == {(739, 600)} and len(tiles(auto, 1080, 1920)) == 6
    assert len(tiles(TileSettings(0, 0, size=(1280, 1280)), 2160, 3840)) == 6  # a 4K camera at imgsz 1280: 3x2
    small = np.zeros((480, 640, 3), np.uint8)
    alone = TileSettings(0, 0, whole=False)
    assert tiles(auto, 480, 640) == () and len(cut(auto, small)) == 1 and cut(alone, small)[0] is small
    found = _found([(10, 10, 30, 50)], [0.5])
    assert merge(alone, small.shape, [found], {0: "person"}).xyxy.tolist() == [[10, 10, 30, 50]]
    # With motion too, a small picture is one picture a frame (no part has a gate).
    channel = Channel("near", RingBuffer(8, Overflow.BLOCK), False, StreamHealth("near"), motion=MotionSettings(),
                      tiles=alone)
    worker = InferenceWorker("w0", CountingDetector, [channel], JsonlSink(Path("unused")), threading.Event())
    worker.names = dict(CountingDetector.names)
    CountingDetector.ran = 0
    _, stills, pictures = worker._detect(CountingDetector(), [(channel, Frame(FrameMeta("near", 0, 0.0, pts=0.0),
                                                                            small))])
    assert stills == [False] and pictures == [1] and CountingDetector.ran == 1


def _found(boxes: Sequence[tuple[float, float, float, float]], conf: Sequence[float],
           cls: Sequence[int] | None = None) -> Detections:
    n = len(boxes)
    points = np.array([[[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 0.9]] for b in boxes], np.float32).reshape(n, 1, 3)
    return Detections(np.array(boxes, np.float32).reshape(n, 4), np.array(conf, np.float32),
                      np.array(cls if cls is not None else [0] * n, np.int64), {0: "person", 1: "car"},
                      keypoints=points)


def test_objects_found_twice_are_kept_once_and_objects_a_part_cuts_come_from_where_they_are_whole() -> None:
    """A 200 x 100 picture in two parts, 0-112 and 88-200 (they share 88-112)."""
    settings = TileSettings(2, 1, 0.2)
    assert [(t.x, t.width) for t in tiles(settings, 100, 200)] == [(0, 112), (88, 112)]
    whole = _found([(20, 10, 180, 90)], [0.8])  # C: too big for a part
    left = _found([(92, 40, 107, 70),  # A, in the shared strip: whole in both parts
                   (100, 40, 112, 70),  # B, cut by the left part's right edge
                   (20, 10, 112, 90),  # C, cut
                   (30, 40, 50, 70), (34, 40, 54, 70)],  # two people side by side (IoU 0.67): the model kept both
                  [0.6, 0.9, 0.9, 0.5, 0.5])
    right = _found([(4, 40, 19, 70),  # A
                    (12, 40, 42, 70),  # B, whole
                    (0, 10, 92, 90),  # C, cut by the right part's left edge
                    (60, 40, 80, 70), (60, 40, 80, 70)],  # a person and a car on one box: both stay
                   [0.7, 0.4, 0.9, 0.5, 0.45], [0, 0, 0, 0, 1])
    merged = merge(settings, (100, 200, 3), [whole, left, right], {0: "person", 1: "car"})
    got = sorted((int(k), [round(float(v)) for v in box], round(float(c), 2))
                 for k, box, c in zip(merged.cls, merged.xyxy, merged.conf, strict=True))
    assert got == [(0, [20, 10, 180, 90], 0.8),  # C, from the whole picture
                   (0, [30, 40, 50, 70], 0.5), (0, [34, 40, 54, 70], 0.5),
                   (0, [92, 40, 107, 70], 0.7),  # A once: the right part's, more confident
                   (0, [100, 40, 130, 70], 0.4),  # B, from the right part, in the picture's pixels
                   (0, [148, 40, 168, 70], 0.5), (1, [148, 40, 168, 70], 0.45)]
    assert list(merged.conf) == sorted(merged.conf, reverse=True)
    assert merged.keypoints is not None
    centres = (merged.xyxy[:, :2] + merged.xyxy[:, 2:]) / 2
    assert np.allclose(merged.keypoints[:, 0, :2], centres), "keypoints not moved with their boxes"
    # At most `most` objects (the run's max_det), the most confident.
    few = merge(TileSettings(2, 1, 0.2, most=2), (100, 200, 3), [whole, left, right], {0: "person", 1: "car"})
    assert [round(float(c), 2) for c in few.conf] == [0.8, 0.7]
    # Without the whole picture, the big object is lost (cut in both parts), the rest the same.
    alone = merge(TileSettings(2, 1, 0.2, whole=False), (100, 200, 3), [left, right], {0: "person", 1: "car"})
    assert len(alone) == len(merged) - 1 and 0.8 not in np.round(alone.conf, 2)


class _Script:
    """A scripted detector: one box a picture, 10 pixels in from its top-left corner, its
    confidence telling which picture of the call it was (1/100 each); remembers the shapes."""

    names: ClassVar[dict[int, str]] = {0: "person"}
    shapes: ClassVar[list[tuple[int, ...]]] = []

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        self.shapes.extend(image.shape for image in images)
        return [Detections(np.array([[10, 10, 30, 50]], np.float32), np.array([(i + 1) / 100], np.float32),
                           np.zeros(1, np.int64), self.names) for i, _ in enumerate(images)]

    def close(self) -> None:
        pass


def test_a_worker_runs_the_model_on_the_whole_picture_and_its_parts_and_still_frames_take_the_merged_ones() -> None:
    settings = TileSettings(2, 2, 0.2)
    channel = Channel("far", RingBuffer(8, Overflow.BLOCK), False, StreamHealth("far"), motion=MotionSettings(),
                      tiles=settings)
    plain = Channel("near", RingBuffer(8, Overflow.BLOCK), False, StreamHealth("near"))
    worker = InferenceWorker("w0", _Script, [channel, plain], JsonlSink(Path("unused")), threading.Event())
    worker.names = dict(_Script.names)
    picture = np.full((360, 640, 3), 90, np.uint8)
    batch = [(channel, Frame(FrameMeta("far", 0, 0.0, pts=0.0), picture)),
             (plain, Frame(FrameMeta("near", 0, 0.0, pts=0.0), picture[:240, :320].copy())),
             (channel, Frame(FrameMeta("far", 1, 0.0, pts=1 / 30), picture.copy()))]
    _Script.shapes.clear()
    detections, stills, pictures = worker._detect(_Script(), batch)
    part = tiles(settings, 360, 640)[0]
    assert sorted(_Script.shapes) == sorted([(360, 640, 3), (240, 320, 3)] + [(part.height, part.width, 3)] * 4)
    assert stills == [False, False, True] and pictures == [5, 1, 0]
    # The far stream: each part's box moved to where the part is (the model's box 10 px in
    # from each part's corner); the whole picture's is the first part's, kept once.
    corners = sorted((round(float(x)), round(float(y))) for x, y in detections[0].xyxy[:, :2])
    assert corners == sorted((t.x + 10, t.y + 10) for t in tiles(settings, 360, 640))
    assert len(detections[1]) == 1 and detections[2] is detections[0], "the still frame has other detections"


def test_with_motion_a_part_where_nothing_moved_takes_what_the_model_last_found_there() -> None:
    """Tiles and motion: a frame where nothing moved takes the last detections (no pass); where
    something moved in one part, the model runs on the whole picture and that part, and the
    other parts keep what it found on them last; a change where two parts overlap wakes both;
    every part runs again after ``refresh``."""
    settings = TileSettings(2, 2, 0.2)
    channel = Channel("far", RingBuffer(8, Overflow.BLOCK), False, StreamHealth("far"),
                      motion=MotionSettings(refresh=5.0), tiles=settings)
    worker = InferenceWorker("w0", CountingDetector, [channel], JsonlSink(Path("unused")), threading.Event())
    worker.names = dict(CountingDetector.names)
    parts = tiles(settings, 360, 640)
    street = np.full((360, 640, 3), 90, np.uint8)

    def walker(x: int, y: int) -> Image:
        picture = street.copy()
        picture[y:y + 48, x:x + 24] = 230
        return picture

    def run(picture: Image, at: float) -> tuple[dict[tuple[int, int], float], bool]:
        """Each box's confidence, by its top-left corner (the part it came from), and stillness."""
        frame = Frame(FrameMeta("far", 0, 0.0, pts=at), picture)
        (found,), (still,), _ = worker._detect(CountingDetector(), [(channel, frame)])
        return {(round(float(b[0])), round(float(b[1]))): round(float(c) * 1000)
                for b, c in zip(found.xyxy, found.conf, strict=True)}, still

    CountingDetector.ran = 0
    first, still = run(street, 0.0)
    assert not still and CountingDetector.ran == 5  # the whole picture and the 4 parts
    corners = [(t.x + 10, t.y + 10) for t in parts]
    assert sorted(first) == sorted(corners)  # the whole picture's box is the first part's: kept once
    again, still = run(street.copy(), 0.1)
    assert still and again == first and CountingDetector.ran == 5
    # Someone in the bottom-right part only (x 520-544 > the overlap's 284-356, y 250-298 > 200).
    moved, still = run(walker(520, 250), 0.2)
    assert not still and CountingDetector.ran == 7, "not the whole picture and one part"
    assert {c: moved[c] for c in corners[1:3]} == {c: first[c] for c in corners[1:3]}, "a still part ran"
    # The part with the walker ran; the first part's box (kept from the first frame, 2) and the
    # whole picture's (new, 6) are one object, the surer kept.
    assert moved[corners[3]] == 7 and moved[corners[0]] == 6 and first[corners[0]] == 2
    # Someone where the two top parts overlap (x 300-324): both wake, and the bottom-right part,
    # which the first walker left.
    _, still = run(walker(300, 40), 0.3)
    assert not still and CountingDetector.ran == 11
    # After refresh, everything runs again.
    _, still = run(walker(300, 40), 5.3)
    assert not still and CountingDetector.ran == 16
    # Two frames in one batch: the second's still parts take what the model finds on the
    # first's, in this very batch (someone steps into the bottom-left part, then the top-left).
    first_frame = walker(300, 40)
    first_frame[250:298, 40:64] = 230
    second = first_frame.copy()
    second[40:88, 40:64] = 230
    frames = [(channel, Frame(FrameMeta("far", seq, 0.0, pts=5.4 + seq / 30), picture))
              for seq, picture in enumerate([first_frame, second])]
    found, stills, pictures = worker._detect(CountingDetector(), frames)
    assert stills == [False, False] and pictures == [2, 2]  # the whole picture and one part, twice
    assert CountingDetector.ran == 16 + 2 + 2
    boxes = [{(round(float(b[0])), round(float(b[1]))): round(float(c) * 1000)
              for b, c in zip(f.xyxy, f.conf, strict=True)} for f in found]
    # The batch's pictures, in order: the first frame's whole (17) and part (18), the second's (19, 20).
    assert boxes[1][corners[2]] == boxes[0][corners[2]] == 18, "the second frame's still part ran"
    assert boxes[1][corners[0]] == 20


def test_with_motion_a_region_runs_only_when_something_moved_in_it() -> None:
    region = TileSettings(1, 1, whole=False, region=(320, 0, 640, 360))
    channel = Channel("far", RingBuffer(8, Overflow.BLOCK), False, StreamHealth("far"),
                      motion=MotionSettings(refresh=5.0), tiles=region)
    worker = InferenceWorker("w0", CountingDetector, [channel], JsonlSink(Path("unused")), threading.Event())
    worker.names = dict(CountingDetector.names)
    street = np.full((360, 640, 3), 90, np.uint8)

    def run(x: int, at: float) -> tuple[bool, int]:
        picture = street.copy()
        picture[100:148, x:x + 24] = 230
        (_,), (still,), (pictures,) = worker._detect(CountingDetector(), [(channel, Frame(FrameMeta(
            "far", 0, 0.0, pts=at), picture))])
        return still, pictures

    CountingDetector.ran = 0
    assert run(40, 0.0) == (False, 1) and CountingDetector.ran == 1
    assert run(120, 0.1) == (True, 0), "something moved outside the region: the model ran"
    assert run(400, 0.2) == (False, 1) and CountingDetector.ran == 2  # inside it: once, on the region alone


def _reference(detector: Detector, nine: Sequence[Image], shape: tuple[int, ...]) -> Detections:
    """What ``detector`` finds on the nine pictures of a mosaic, moved to where they are on it."""
    h, w = shape[0] // 3, shape[1] // 3
    return Detections.joined([found.placed(1 / 3, (k % 3) * w, (k // 3) * h)
                              for k, found in enumerate(detector.detect(nine))], detector.names)


def _recall_precision(reference: Detections, found: Detections, iou: float = 0.5) -> tuple[float, float]:
    """The shares of ``reference``'s boxes found (same class, intersection over union at least
    ``iou``) and of ``found``'s that are in ``reference``."""
    match = (overlaps(reference.xyxy, found.xyxy) >= iou) & (reference.cls[:, None] == found.cls[None])
    return float(match.any(1).mean()), float(match.any(0).mean()) if len(found) else 0.0


@pytest.mark.timeout(180)
def test_the_real_model_finds_far_people_on_parts_it_misses_on_the_whole_picture(
        people_video: Path, shared_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """YOLO11n on the mosaic: on the whole picture (640 pixels across for 1920) its people are
    a ninth of their size and most are missed; with ``tiles: 3x3`` each part shrinks a little,
    and the model finds what it finds on the nine pictures themselves (moved to where they are
    on the mosaic). Then a run of the mosaic's video with ``--tiles 3x3`` on a process worker
    writes what the same model, parts and merge give in this process, frame by frame."""
    clip, parts = mosaic_clip(people_video, tmp_path / "mosaic.mp4", 2)
    decoded, _ = decode(clip)
    detector = UltralyticsFactory(str(shared_model), DetectSettings())()
    settings = TileSettings(3, 3)
    try:
        canvas = decoded[0]
        reference = _reference(detector, parts[0], canvas.shape)
        assert len(reference) > 60, "people.mp4's pictures have fewer people than the test needs"
        plain_recall, _ = _recall_precision(reference, detector.detect([canvas])[0])
        tiled = detect_tiled(detector, canvas, settings)
        recall, precision = _recall_precision(reference, tiled)
        assert plain_recall < 0.3 and recall > 0.75 and precision > 0.75, (plain_recall, recall, precision)

        done = in_process(capsys, caplog, "run", "--source", f"far={clip}", "--model", str(shared_model),
                          "--tiles", "3x3", "--worker-mode", "process", "--workers", "1",
                          "--jsonl", str(tmp_path / "det.jsonl"), "--summary", str(tmp_path / "summary.json"),
                          "--no-display")
        assert done.returncode == 0, done.stderr
        lines = read_jsonl(tmp_path / "det.jsonl")
        assert len(lines) == len(decoded) == 2 and [line["pictures"] for line in lines] == [10, 10]
        assert json.loads((tmp_path / "summary.json").read_text())["streams"]["far"]["pictures"] == 20
        assert "tiles of far: the model ran on 20 pictures for 2 frames (10.0 a frame)" in done.stdout
        for line, picture in zip(lines, decoded, strict=True):
            expected = detect_tiled(detector, picture, settings)
            # The run's models have other thread counts: OpenVINO's sums may differ in the last
            # bits, and where two parts found one object equally sure (INT8 confidences come in
            # steps), the merge may keep the other part's box: the same objects, nearly the same boxes.
            got = line["detections"]
            ran = Detections(np.array([d["xyxy"] for d in got], np.float32).reshape(-1, 4),
                             np.array([d["conf"] for d in got], np.float32), np.array([d["cls"] for d in got]))
            assert len(ran) == len(expected) > 60, f"frame {line['seq']}"
            assert _recall_precision(expected, ran, 0.8) == (1.0, 1.0), f"frame {line['seq']}"
        # `check` runs the model on the first frame as the run would: on its parts too.
        done = in_process(capsys, caplog, "check", "--source", f"far={clip}", "--model", str(shared_model),
                          "--tiles", "3x3", "--connect", "--load-model")
        assert done.returncode == 0, done.stderr
        found = re.search(r"^  far: (\d+) person.* in \d+ ms \(10 passes; on the whole picture alone: "
                          r"(\d+) person.*\)$", done.stdout, re.MULTILINE)
        assert found and int(found[1]) > 60 and int(found[2]) < 30, done.stdout
    finally:
        detector.close()


@pytest.mark.timeout(180)
def test_a_region_is_seen_at_the_models_size_and_nothing_else_is(
        people_video: Path, shared_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """YOLO11n on the mosaic's middle picture as a stream's ``region``: the run finds there what
    the model finds on that part of the frame alone (moved to where it is), far more than the
    whole picture's pass finds in it, and nothing elsewhere; one picture a frame."""
    clip, _ = mosaic_clip(people_video, tmp_path / "mosaic.mp4", 2)
    decoded, _ = decode(clip)
    height, width = decoded[0].shape[0] // 3, decoded[0].shape[1] // 3
    region = (width, height, 2 * width, 2 * height)
    detector = UltralyticsFactory(str(shared_model), DetectSettings())()
    try:
        alone = [found.placed(1.0, width, height) for found in detector.detect(
            [picture[height:2 * height, width:2 * width] for picture in decoded])]
        centres = (detector.detect([decoded[0]])[0].xyxy.reshape(-1, 2, 2).mean(1) - region[:2]) / (width, height)
        in_middle = int(((centres >= 0) & (centres < 1)).all(1).sum())
    finally:
        detector.close()
    assert len(alone[0]) > max(8, 2 * in_middle), (len(alone[0]), in_middle)  # (at a third of its size: missed)
    config = tmp_path / "far.yaml"
    config.write_text(yaml.safe_dump({"streams": [{"name": "far", "source": str(clip), "region": list(region)}],
                                      "model": str(shared_model), "jsonl": str(tmp_path / "det.jsonl"),
                                      "record": str(tmp_path / "rec"), "summary": str(tmp_path / "summary.json")}))
    done = in_process(capsys, caplog, "run", str(config), "--no-display")
    assert done.returncode == 0, done.stderr
    lines = read_jsonl(tmp_path / "det.jsonl")
    assert len(lines) == 2 and all("pictures" not in line for line in lines)  # (one picture a frame: no count)
    assert "pictures" not in json.loads((tmp_path / "summary.json").read_text())["streams"]["far"]
    for line, expected in zip(lines, alone, strict=True):
        got = line["detections"]
        ran = Detections(np.array([d["xyxy"] for d in got], np.float32).reshape(-1, 4),
                         np.array([d["conf"] for d in got], np.float32), np.array([d["cls"] for d in got]))
        assert len(ran) == len(expected) and _recall_precision(expected, ran, 0.8) == (1.0, 1.0), line["seq"]
        assert (ran.xyxy >= np.array(region[:2] * 2) - 0.5).all() and (ran.xyxy <= np.array(region[2:] * 2) + 0.5).all()
    assert len(decode(tmp_path / "rec" / "far.mp4")[0]) == 2
    # `check` runs the model on the first frame's region as the run would, and says so.
    done = in_process(capsys, caplog, "check", str(config), "--connect", "--load-model")
    assert done.returncode == 0, done.stderr
    found = re.search(r"^  far: (\d+) person.* in \d+ ms \(in its region; on the whole picture: .*\)$", done.stdout,
                      re.MULTILINE)
    assert found and abs(int(found[1]) - int((alone[0].cls == 0).sum())) <= 1, done.stdout


def test_a_worker_runs_the_model_on_a_streams_region_alone_and_outlines_it() -> None:
    from streamyolo.frames import Mask
    from streamyolo.pipeline import Pipeline, StreamSetup
    from streamyolo.sources import SourceKind, SourceSpec, open_source

    source = open_source(SourceSpec("gate", "synthetic:?size=640x360&frames=3", SourceKind.SYNTHETIC))
    region = TileSettings(1, 1, whole=False, region=(100, 50, 300, 200))
    _Script.shapes.clear()
    results = list(Pipeline([StreamSetup("gate", source, Overflow.BLOCK, tiles=region)], _Script).results())
    assert _Script.shapes == [(150, 200, 3)] * 3, "the model saw more than the region"
    assert [r.detections.xyxy.tolist() for r in results] == [[[110, 60, 130, 100]]] * 3  # (10 px into the region)
    assert all(r.pictures is None for r in results)
    assert all(r.masks == (Mask("region", ((100, 50), (300, 50), (300, 200), (100, 200)), outside=True),)
               for r in results), "the pictures outline the region"


def test_a_region_given_as_an_outline_is_seen_whole_and_what_lies_outside_it_ignored() -> None:
    """A region's outline: the model looks at the rectangle around it, one pass, and the objects
    whose centres lie outside the outline are ignored; the pictures outline it. The same box
    (centre (120, 80)) is outside the upper triangle and inside the lower one."""
    from streamyolo.frames import Mask
    from streamyolo.pipeline import Pipeline, StreamSetup
    from streamyolo.sources import SourceKind, SourceSpec, open_source

    upper = ((100.0, 50.0), (300.0, 50.0), (300.0, 200.0))
    lower = ((100.0, 50.0), (300.0, 200.0), (100.0, 200.0))
    def setup(name: str, outline: tuple[tuple[float, float], ...]) -> StreamSetup:
        source = open_source(SourceSpec(name, "synthetic:?size=640x360&frames=3", SourceKind.SYNTHETIC))
        return StreamSetup(name, source, Overflow.BLOCK,
                           tiles=TileSettings(1, 1, whole=False, region=(100, 50, 300, 200), outline=outline))

    setups = [setup("upper", upper), setup("lower", lower)]
    _Script.shapes.clear()
    results = list(Pipeline(setups, _Script).results())
    assert _Script.shapes == [(150, 200, 3)] * 6, "the model saw more, or less, than the rectangle around it"
    found = {name: [r.detections.xyxy.tolist() for r in results if r.stream == name] for name in ("upper", "lower")}
    assert found == {"upper": [[]] * 3, "lower": [[[110, 60, 130, 100]]] * 3}, found
    assert all(r.masks == (Mask("region", upper if r.stream == "upper" else lower, outside=True),) for r in results)
    cfg = build_config({"streams": [{"source": "synthetic:", "region": [[100, 50], [300, 200.5], [100, 200]]}]})
    assert cfg.tiles_of(cfg.streams[0]) == TileSettings(1, 1, whole=False, region=(100, 50, 300, 201),
                                                        outline=((100, 50), (300, 200.5), (100, 200)))


def test_a_region_is_checked_and_cut_by_tiles(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    cfg = build_config({"streams": [{"source": "synthetic:", "region": [100, 50, 740, 410], "tiles": False},
                                    {"source": "synthetic:?seed=2", "region": [0, 0, 1280, 360], "tiles": "2x1"},
                                    {"source": "synthetic:?seed=3", "region": [0, 0, 1280, 360]}],
                        "tiles": "3x3"})
    alone, cut_up, run_tiles = (cfg.tiles_of(s) for s in cfg.streams)
    assert alone == TileSettings(1, 1, whole=False, region=(100, 50, 740, 410)) and alone.one_picture
    assert cut_up == TileSettings(2, 1, whole=False, region=(0, 0, 1280, 360)) and not cut_up.one_picture
    assert run_tiles == TileSettings(3, 3, whole=False, region=(0, 0, 1280, 360))  # (the run's tiles cut it)
    assert [(t.x, t.y, t.width, t.height) for t in tiles(alone, 720, 1280)] == [(100, 50, 640, 360)]
    assert [(t.x, t.y, t.inner) for t in tiles(cut_up, 720, 1280)] == [
        (0, 0, (False, False, True, False)), (568, 0, (True, False, False, False))]  # (the region's bottom: no edge)
    for bad, message in (([10, 10, 5, 20], r"region \[10, 10, 5, 20\]: x2 must be right of x1"),
                         ([0, 0, 10], r"config key 'streams\.0\.region': must be the region's corners \[x1, y1, "
                                      r"x2, y2\], or its outline \[\[x, y\], …\] of 3 points or more, in pixels "
                                      r"\(got \[0, 0, 10\]\)"),
                         ([-1, 0, 10, 10], r"config key 'streams\.0\.region': \[-1, 0, 10, 10\]: the region's "
                                           r"corners are pixels, whole numbers of 0 or more"),
                         ([[0, 0], [50, 50], [100, 100]], r"config key 'streams\.0\.region': \[\[0, 0\], \[50, 50\], "
                                                          r"\[100, 100\]\]: the region's outline holds no area"),
                         ([[0, 0], [50, -5], [100, 100]], r"the region's points are pixels, numbers of 0 or more")):
        with pytest.raises(ConfigError, match=message):
            build_config({"streams": [{"source": "synthetic:", "region": bad}]})
    # The plan says so; check --connect warns of a region beyond the picture read.
    config = tmp_path / "cams.yaml"
    config.write_text(yaml.safe_dump({"streams": [{"name": "gate", "source": "synthetic:?size=640x360",
                                                   "region": [320, 100, 960, 460]},
                                                  {"name": "yard", "source": "synthetic:?size=640x360",
                                                   "region": [[0, 0], [700, 50], [300, 300]]}]}))
    done = in_process(capsys, caplog, "check", str(config), "--connect")
    assert done.returncode == 0, done.stderr
    assert "region (320, 100)-(960, 460) alone: the model looks at that part of the picture only" in done.stdout
    assert "stream 'gate': the region reaches (960, 460), outside its 640x360 picture" in caplog.text + done.stdout
    assert ("region (0, 0)-(700, 300), around its outline of 3 points (what lies outside it ignored) alone"
            in done.stdout), done.stdout
    assert "stream 'yard': the region reaches (700, 50), outside its 640x360 picture" in caplog.text + done.stdout


def test_tiles_are_checked_and_a_stream_may_go_without() -> None:
    cfg = build_config({"streams": ["synthetic:scene", {"source": "synthetic:scene?seed=2", "tiles": False},
                                    {"source": "synthetic:scene?seed=3",
                                     "tiles": {"grid": "4X3", "overlap": 0.1, "whole": False}}],
                        "tiles": "3x2"})
    assert [cfg.tiles_of(s) for s in cfg.streams] == [TileSettings(3, 2), None, TileSettings(4, 3, 0.1, False)]
    assert build_config({"streams": ["synthetic:"], "tiles": "2x2", "max_det": 50}).tiles_of(
        cfg.streams[0]) == TileSettings(2, 2, most=50)
    auto = build_config({"streams": ["synthetic:", {"source": "synthetic:?seed=2", "imgsz": 1280}], "tiles": "Auto",
                         "imgsz": [384, 640]})
    assert [auto.tiles_of(s) for s in auto.streams] == [TileSettings(0, 0, size=(384, 640)),
                                                        TileSettings(0, 0, size=(1280, 1280))]
    for bad, key in [("1x1", r"streams\.0\.tiles\.grid"), ("9x2", r"streams\.0\.tiles\.grid"),
                     ("wide", r"streams\.0\.tiles\.grid"),
                     ({"grid": "2x2", "overlap": 0.6}, r"streams\.0\.tiles\.overlap"),
                     ({"grid": "2x2", "size": 3}, r"unknown config key 'streams\.0\.tiles\.size'")]:
        with pytest.raises(ConfigError, match=key):
            build_config({"streams": [{"source": "synthetic:scene", "tiles": bad}]})


def test_the_plan_says_which_streams_run_the_model_on_parts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "cams.yaml"
    config.write_text(yaml.safe_dump({"streams": [{"name": "far", "source": "synthetic:scene"},
                                                  {"name": "near", "source": "synthetic:scene?seed=2",
                                                   "tiles": False}]}))
    done = in_process(capsys, caplog, "check", str(config), "--tiles", "2x2")
    assert done.returncode == 0, done.stderr
    far, near = (next(line for line in done.stdout.splitlines() if line.strip().startswith(name))
                 for name in ("far", "near"))
    assert "tiles 2x2 (overlap 20%) and the whole picture: 5 passes a frame" in far and "tiles" not in near
    done = in_process(capsys, caplog, "check", str(config), "--tiles", "auto")
    assert "tiles auto (parts about 640x640, overlap 20%) and the whole picture" in done.stdout, done.stdout
    assert in_process(capsys, caplog, "check", str(config), "--tiles", "3").returncode == 2
    assert "config key 'tiles.grid'" in caplog.text
