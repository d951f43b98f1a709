"""``crops``: one picture of each tracked object, from the frame it was seen best in."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Frame, FrameMeta, Image, Result
from streamyolo.inference.offline import import_ultralytics
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks.crops import CROP_NAME, CropSink, crop_box
from streamyolo.sources import SourceKind, SourceSpec, open_source, read_stamp
from tests.helpers import files_aged


def test_a_crop_is_cut_as_ultralytics_save_one_box_cuts_it() -> None:
    import torch

    import_ultralytics()
    from ultralytics.utils.plotting import save_one_box
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = [[0, 0, 320, 240], [-5, -5, 10, 10], [300, 200, 330, 250], [12.4, 30.7, 55.2, 99.9]]
    boxes += [sorted(rng.uniform(0, 320, 2).tolist()) + sorted(rng.uniform(0, 240, 2).tolist()) for _ in range(20)]
    for x1, x2, y1, y2 in [(b[0], b[2], b[1], b[3]) for b in boxes[:4]] + [tuple(b) for b in boxes[4:]]:
        xyxy = np.array([x1, y1, x2, y2], np.float32)
        theirs = save_one_box(torch.tensor(xyxy), image, save=False, BGR=True)
        assert np.array_equal(crop_box(image, xyxy), theirs), xyxy


class _ApproachingDetector:
    """A person walking down the picture (8 px a frame, as the walker of the counting tests)
    and coming closer (its box 4 px taller each frame), seen surest at frame 7 (conf 0.9; 0.5
    before and after), gone from frame 12 on."""

    names: ClassVar[dict[int, str]] = {0: "person"}

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image in images:
            stamp = read_stamp(image)
            seq = stamp[1] if stamp is not None else 0
            y = 20.0 + 8 * seq
            if seq >= 12:
                out.append(Detections.empty(self.names))
                continue
            out.append(Detections(np.array([[140, y - 20 - 2 * seq, 180, y + 20 + 2 * seq]], np.float32),
                                  np.array([0.9 if seq == 7 else 0.5], np.float32), np.array([0], np.int64),
                                  self.names))
        return out

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_each_tracked_object_gets_one_crop_from_the_frame_it_was_seen_surest_in(tmp_path: Path) -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=20", SourceKind.SYNTHETIC))
    crops = CropSink(tmp_path / "crops")
    with Pipeline([StreamSetup("hall", source, Overflow.BLOCK)], _ApproachingDetector,
                  tracker=tracker_settings("bytetrack"), sinks=[crops]) as pipeline:
        results = {r.frame.seq: r for r in pipeline.results()}
    (saved,) = crops.saved
    assert saved.parent == tmp_path / "crops" / "person" and CROP_NAME.fullmatch(saved.name)
    assert saved.name.startswith("hall-") and saved.name.endswith(f"-id{int(results[7].detections.ids[0])}.jpg")
    best = results[7]
    expected = crop_box(best.frame.image, best.detections.xyxy[0])
    picture = cv2.imread(str(saved))
    assert picture is not None and picture.shape == expected.shape
    assert np.abs(picture.astype(int) - expected).mean() < 3  # JPEG at quality 95
    assert all(crop_box(results[seq].frame.image, results[seq].detections.xyxy[0]).shape != expected.shape
               for seq in (6, 8))  # the neighbouring frames' crops are of another size
    assert sorted(p.name for p in (tmp_path / "crops").rglob("*")) == sorted(["person", saved.name])


def _result(stream: str, t: float, ids: Sequence[int], conf: float = 0.6) -> Result:
    image = np.full((120, 160, 3), 80, np.uint8)
    found = Detections(np.array([[10.0 + 20 * i, 10, 30 + 20 * i, 50] for i in range(len(ids))], np.float32)
                       .reshape(-1, 4),
                       np.full(len(ids), conf, np.float32), np.full(len(ids), 2, np.int64), {2: "car"},
                       np.array(ids, np.int64))
    return Result(Frame(FrameMeta(stream, int(t * 10), t), image), found, t)


def test_an_objects_crop_is_saved_once_it_is_gone_and_the_rest_at_the_end(tmp_path: Path) -> None:
    """An object not seen for 3 s of its stream's frames is saved then, while the others stay
    until they go too, or the run ends; an untracked stream gives none."""
    crops = CropSink(tmp_path, gone_after=3.0, save_every=60.0)
    crops.open()
    try:
        crops.write(_result("lot", 0.0, [1, 2]))
        crops.write(_result("lot", 2.0, [2]))
        crops.write(Result(Frame(FrameMeta("road", 0, 2.0), np.zeros((8, 8, 3), np.uint8)),
                           Detections(np.array([[0, 0, 4, 4]], np.float32), np.ones(1, np.float32),
                                      np.zeros(1, np.int64)), 2.0))
        assert crops.saved == []
        crops.write(_result("lot", 3.5, [2]))  # car 1 unseen for 3.5 s: gone
        deadline = time.monotonic() + 5
        while not crops.saved and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [p.name.rpartition("-")[2] for p in crops.saved] == ["id1.jpg"]
    finally:
        crops.close()
    assert sorted(p.name.rpartition("-")[2] for p in crops.saved) == ["id1.jpg", "id2.jpg"]
    assert {p.parent for p in crops.saved} == {tmp_path / "car"}


def _files_once_written(crops: CropSink) -> list[str]:
    """The crops folder's files once the writer (a thread) has done what it was given."""
    import threading

    done = threading.Event()

    def mark() -> None:
        done.set()

    crops._writer.put(mark)
    assert done.wait(5)
    return sorted(p.name for p in crops.folder.rglob("*.jpg"))


def test_an_object_in_view_has_its_best_crop_so_far_on_disk_one_file_all_along(tmp_path: Path) -> None:
    """What a crash leaves: an object in view for 2 s of its stream's frames has its best crop
    so far saved, and a better one later replaces it (at most every 2 s), so there is one file
    per object at any time, and the end saves nothing it already has."""
    crops = CropSink(tmp_path, save_every=2.0)
    crops.open()
    try:
        crops.write(_result("lot", 0.0, [1]))
        crops.write(_result("lot", 1.9, [1]))
        assert _files_once_written(crops) == [] and crops.saved == []
        crops.write(_result("lot", 2.0, [1]))  # 2 s in view
        (first,) = _files_once_written(crops)
        crops.write(_result("lot", 2.5, [1], conf=0.9))  # a better crop: saved 2 s after the first save
        crops.write(_result("lot", 3.9, [1], conf=0.5))
        assert _files_once_written(crops) == [first]
        crops.write(_result("lot", 4.0, [1], conf=0.5))
        (second,) = _files_once_written(crops)
        assert second != first and second.endswith("-id1.jpg")
        crops.write(_result("lot", 6.5, [1], conf=0.5))  # nothing better: nothing more to save
        assert _files_once_written(crops) == [second]
    finally:
        crops.close()
    assert [p.name for p in crops.saved] == [second] and len(crops._writer.saved) == 2
    assert sorted(p.name for p in tmp_path.rglob("*.jpg")) == [second]


def test_a_parked_car_found_again_where_it_stood_under_a_new_id_is_still_one_crop(tmp_path: Path) -> None:
    """A car that stood still and is lost (unseen 3 s) is saved then; found again where it
    stood under the tracker's new id within 30 s, it is the same object: its one file (named by
    its first id) replaced by a better sight, not a second file. Lost for longer, a car found
    there later is another."""
    crops = CropSink(tmp_path, save_every=60.0)
    crops.open()
    try:
        for t in (0.0, 1.0, 2.5):
            crops.write(_result("lot", t, [1]))
        crops.write(_result("lot", 6.0, []))  # unseen 3.5 s: lost, saved (it may not come back)
        (first,) = _files_once_written(crops)
        assert first.endswith("-id1.jpg")
        crops.write(_result("lot", 9.0, [7], conf=0.9))  # found again where it stood, seen better
        crops.write(_result("lot", 9.5, [7]))
        crops.write(_result("lot", 14.0, []))  # lost again
        (second,) = _files_once_written(crops)
        assert second.endswith("-id1.jpg") and second != first
        crops.write(_result("lot", 50.0, []))  # 40 s unseen: not found again
        crops.write(_result("lot", 51.0, [8]))  # a car where it stood, later: another
    finally:
        crops.close()
    assert sorted(p.name for p in tmp_path.rglob("*.jpg")) == sorted(p.name for p in crops.saved)
    assert sorted(p.name.rpartition("-")[2] for p in crops.saved) == ["id1.jpg", "id8.jpg"]
    assert second in [p.name for p in crops.saved]


def test_a_save_while_in_view_that_fails_is_not_counted_lost_and_skipped_while_paused(tmp_path: Path) -> None:
    """A crop saved while its object is in view is saved again when it goes: a disk that
    refuses it pauses the crops, but only what is lost for good is counted."""
    from streamyolo.errors import OutputsIncompleteError
    from streamyolo.sinks.base import BackgroundWriter

    writer = BackgroundWriter("test-writer", "crops folder 'x'", "crop(s)")
    writer.start()
    tried: list[str] = []

    def refused(what: str) -> Path:
        tried.append(what)
        raise OSError(28, "No space left on device")

    writer.put(lambda: refused("in view"), optional=True)  # fails: pauses, not lost
    writer.put(lambda: refused("in view again"), optional=True)  # paused: skipped, not lost
    writer.put(lambda: refused("gone"))  # paused: lost
    with pytest.raises(OutputsIncompleteError, match=r"crops folder 'x': 1 crop\(s\) could not be written"):
        writer.close()
    assert tried == ["in view"]


def test_crops_keep_deletes_old_crops_and_nothing_else(tmp_path: Path) -> None:
    files_aged(tmp_path / "car", old=["lot-20250101-000000-000-id3.jpg", "notes.txt"],
               recent=["lot-20261201-000000-000-id4.jpg"])
    files_aged(tmp_path, old=["lot-20250101-000000-000-id5.jpg"], recent=[])
    crops = CropSink(tmp_path, keep=3600)
    crops.open()
    crops.close()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*")) == [
        "car/lot-20261201-000000-000-id4.jpg", "car/notes.txt"]


def test_crops_need_a_tracker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config keys 'crops' and 'tracker': one picture of each object follows "
                                          "its track id; set tracker"):
        build_config({"streams": ["synthetic:scene"], "crops": str(tmp_path)})
