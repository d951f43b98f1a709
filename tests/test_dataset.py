"""``dataset``: frames of each stream with their detections as YOLO labels, to train on."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Frame, FrameMeta, Result
from streamyolo.inference.offline import import_ultralytics
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks.dataset import DatasetSink, label_lines
from streamyolo.sources import SourceKind, SourceSpec, open_source
from tests.test_counting import _WalkerDetector


def _ultralytics_lines(tmp_path: Path, **results: object) -> list[str]:
    """What Ultralytics' ``Results.save_txt`` writes for a 100 x 200 picture with ``results``."""
    from ultralytics.engine.results import Results

    import_ultralytics()
    out = tmp_path / "labels.txt"
    out.unlink(missing_ok=True)
    Results(np.zeros((200, 100, 3), np.uint8), path="x.jpg", names={0: "a", 2: "c"}, **results).save_txt(out)
    return out.read_text().splitlines()


def test_labels_are_written_as_ultralytics_save_txt_writes_them(tmp_path: Path) -> None:
    import torch

    boxes = np.array([[10, 20, 30, 60], [0.5, 101.25, 99.5, 199]], np.float32)
    conf, cls = np.array([0.9, 0.4], np.float32), np.array([2, 0])
    found = Detections(boxes, conf, cls)
    table = torch.tensor(np.column_stack([boxes, conf, cls]), dtype=torch.float32)
    assert label_lines(found, 100, 200) == _ultralytics_lines(tmp_path, boxes=table)
    points = np.array([[[15, 25, 0.8], [20, 50, 0.3]], [[1, 110, 0.9], [90, 190, 0.0]]], np.float32)
    posed = Detections(boxes, conf, cls, keypoints=points)
    assert label_lines(posed, 100, 200) == _ultralytics_lines(tmp_path, boxes=table, keypoints=torch.tensor(points))
    rotated = np.array([[20, 40, 20, 10, 0.3], [50, 150, 60, 20, 1.2]], np.float32)
    oriented = Detections(boxes, conf, cls, xywhr=rotated)
    assert label_lines(oriented, 100, 200) == _ultralytics_lines(
        tmp_path, obb=torch.tensor(np.column_stack([rotated, conf, cls]), dtype=torch.float32))
    outline = np.array([[10, 20], [30, 20], [30, 60]], np.float32)
    outlined = Detections(boxes[:1], conf[:1], cls[:1], segments=(outline,))
    assert label_lines(outlined, 100, 200) == ["2 0.1 0.1 0.3 0.1 0.3 0.3"]  # the outline, as segment labels


@pytest.mark.timeout(60)
def test_a_stream_keeps_a_frame_every_so_often_with_labels_ultralytics_loads(tmp_path: Path) -> None:
    """The walker's stream at 25 fps, a frame kept every 0.2 s: frames 0, 5, … 25, each with its
    label (the walker's box); Ultralytics' own dataset check and loader read them back."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=26", SourceKind.SYNTHETIC))
    dataset = DatasetSink(tmp_path / "data", every=0.2)
    with Pipeline([StreamSetup("hall", source, Overflow.BLOCK)], _WalkerDetector, sinks=[dataset]) as pipeline:
        results = {r.frame.seq: r for r in pipeline.results()}
    kept = sorted(int(p.stem.rsplit("-", 1)[1]) for p in dataset.saved)
    assert kept == [0, 5, 10, 15, 20, 25]
    for picture in dataset.saved:
        seq = int(picture.stem.rsplit("-", 1)[1])
        label = tmp_path / "data" / "labels" / f"{picture.stem}.txt"
        assert label.read_text().splitlines() == label_lines(results[seq].detections, 320, 240)
        assert np.abs(cv2.imread(str(picture)).astype(int) - results[seq].frame.image).mean() < 3  # JPEG
    data = yaml.safe_load((tmp_path / "data" / "data.yaml").read_text())
    assert data["names"] == {0: "person"} and data["train"] == "images"
    import_ultralytics()
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    checked = check_det_dataset(str(tmp_path / "data" / "data.yaml"))
    loaded = YOLODataset(img_path=checked["train"], data=checked, task="detect", augment=False)
    assert len(loaded.labels) == 6
    for entry in loaded.labels:
        seq = int(Path(entry["im_file"]).stem.rsplit("-", 1)[1])
        x1, y1, x2, y2 = results[seq].detections.xyxy[0]
        expected = [(x1 + x2) / 640, (y1 + y2) / 480, (x2 - x1) / 320, (y2 - y1) / 240]
        assert entry["cls"].ravel().tolist() == [0]
        assert np.allclose(entry["bboxes"][0], expected, atol=1e-5)


def test_a_streams_region_is_what_it_keeps_with_labels_in_its_pixels(tmp_path: Path) -> None:
    """A stream whose model looks at a region only: its frames are kept cut to that region (the
    objects outside it were not looked for: unlabelled, they would teach "nothing there"),
    and the labels are the region's."""
    from streamyolo.inference.tiles import TileSettings

    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=26", SourceKind.SYNTHETIC))
    dataset = DatasetSink(tmp_path / "data", every=0.2)
    region = TileSettings(1, 1, whole=False, region=(100, 0, 260, 240))  # (the walker's x: 140-180)
    with Pipeline([StreamSetup("hall", source, Overflow.BLOCK, tiles=region)], _WalkerDetector,
                  sinks=[dataset]) as pipeline:
        results = {r.frame.seq: r for r in pipeline.results()}
    assert len(dataset.saved) == 6
    for picture in dataset.saved:
        seq = int(picture.stem.rsplit("-", 1)[1])
        assert results[seq].region == (100, 0, 260, 240)
        saved = cv2.imread(str(picture)).astype(int)
        assert saved.shape == (240, 160, 3) and np.abs(saved - results[seq].frame.image[:, 100:260]).mean() < 3
        (x1, y1, x2, y2), = results[seq].detections.xyxy.tolist()
        label = (tmp_path / "data" / "labels" / f"{picture.stem}.txt").read_text().split()
        assert label[0] == "0" and np.allclose([float(v) for v in label[1:]], [
            (x1 + x2 - 200) / 320, (y1 + y2) / 480, (x2 - x1) / 160, (y2 - y1) / 240], atol=1e-5), label


def test_what_the_run_ignores_is_black_in_the_dataset(tmp_path: Path) -> None:
    """A region given as an outline (the lower-left half of the rectangle around it) and a mask
    (a tree in its corner): the pictures kept are the rectangle, black outside the outline and
    inside the mask, where objects were ignored and so not labelled."""
    from streamyolo.frames import Mask
    from streamyolo.inference.tiles import TileSettings

    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=6", SourceKind.SYNTHETIC))
    dataset = DatasetSink(tmp_path / "data", every=0.2)
    half = TileSettings(1, 1, whole=False, region=(100, 0, 260, 240), outline=((100, 0), (260, 240), (100, 240)))
    tree = Mask("tree", ((100, 200), (140, 200), (140, 240), (100, 240)))
    with Pipeline([StreamSetup("hall", source, Overflow.BLOCK, masks=(tree,), tiles=half)], _WalkerDetector,
                  sinks=[dataset]) as pipeline:
        results = {r.frame.seq: r for r in pipeline.results()}
    assert len(dataset.saved) == 2
    for picture in dataset.saved:
        saved = cv2.imread(str(picture)).astype(int)
        frame = results[int(picture.stem.rsplit("-", 1)[1])].frame.image[:, 100:260].astype(int)
        assert saved.shape == (240, 160, 3)
        ys, xs = np.mgrid[0:240, 0:160]
        kept = (ys * 160 > xs * 240 + 240) & ~((xs <= 40) & (ys >= 200))  # (under the diagonal, off the tree)
        ignored = (ys * 160 < xs * 240 - 240) | ((xs < 38) & (ys > 202))
        assert saved[ignored].max() < 40, "what the run ignores is in the picture"
        assert np.abs(saved[kept] - frame[kept]).mean() < 3 and frame[kept].mean() > 40


def test_blurred_classes_are_blurred_in_the_dataset_and_an_empty_frame_has_an_empty_label(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ys, xs = np.mgrid[0:120, 0:160]
    image = np.repeat((xs + ys)[..., None], 3, axis=2).astype(np.uint8)  # a smooth picture…
    image[:, :90][((xs[:, :90] // 8 + ys[:, :90] // 8) % 2) == 1] = 255  # …with a checkerboard where the person is
    found = Detections(np.array([[20, 20, 80, 100]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64),
                       {0: "person"})
    dataset = DatasetSink(tmp_path, every=1.0, blurred={"door": [0]})
    dataset.open()
    dataset.write(Result(Frame(FrameMeta("door", 0, 1.0, pts=0.0), image), found, 1.0))
    dataset.write(Result(Frame(FrameMeta("door", 1, 1.1, pts=0.5), image), found, 1.1))  # within the second: not kept
    dataset.write(Result(Frame(FrameMeta("door", 2, 1.2, pts=1.0), image), Detections.empty({0: "person"}), 1.2))
    with caplog.at_level(logging.WARNING):  # another stream's model calls class 0 otherwise
        dataset.write(Result(Frame(FrameMeta("lot", 0, 1.3, pts=0.0), image), Detections.empty({0: "car"}), 1.3))
    assert "the streams' models name classes differently (0: person or car)" in caplog.text
    dataset.close()
    assert yaml.safe_load((tmp_path / "data.yaml").read_text())["names"] == {0: "person"}
    first, empty, _ = dataset.saved
    saved = cv2.imread(str(first)).astype(int)
    assert np.abs(saved[40:80, 30:70] - image[40:80, 30:70]).mean() > 30, "the person is blurred"
    assert np.abs(saved[:, 100:] - image[:, 100:]).mean() < 8, "the rest is the picture"
    assert (tmp_path / "labels" / f"{empty.stem}.txt").read_text() == ""
    with pytest.raises(ConfigError, match="config keys 'dataset_every' and 'dataset'"):
        build_config({"streams": ["a"], "dataset_every": "30s"})
    assert build_config({"streams": ["a"], "dataset": "d", "dataset_every": "1m"}).dataset_every == 60


def test_a_dataset_that_reaches_its_size_keeps_no_more_frames_and_deletes_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``dataset_max_size``: earlier runs' pictures and labels count; once the folder holds
    that much, frames are no longer kept (said once), and nothing already there is deleted."""
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)  # some 15 kB as a JPEG
    found = Detections.empty({0: "person"})

    def run(frames: int, max_size: int | None) -> DatasetSink:
        dataset = DatasetSink(tmp_path, every=1.0, max_size=max_size)
        dataset.open()
        for seq in range(frames):
            kept = len(dataset.saved)
            dataset.write(Result(Frame(FrameMeta("door", seq, 1.0, pts=float(seq)), noise), found, 1.0))
            deadline = time.monotonic() + 10  # its writer's turn (the size counts what is written)
            while len(dataset.saved) == kept and not dataset._full and time.monotonic() < deadline:
                time.sleep(0.01)
        dataset.close()
        return dataset

    earlier = run(3, None)
    held = sum(path.stat().st_size for path in tmp_path.rglob("*") if path.is_file() and path.name != "data.yaml")
    assert len(earlier.saved) == 3
    with caplog.at_level(logging.WARNING):
        later = run(10, held + 1)  # room for one frame more
    assert len(later.saved) == 1
    assert f"dataset folder {tmp_path} holds " in caplog.text and "no more frames are kept" in caplog.text
    assert all(path.exists() for path in earlier.saved + later.saved)
    assert build_config({"streams": ["a"], "dataset": "d", "dataset_max_size": "20GB"}).dataset_max_size == 20 * 10**9
    with pytest.raises(ConfigError, match="config keys 'dataset_max_size' and 'dataset'"):
        build_config({"streams": ["a"], "dataset_max_size": "20GB"})
