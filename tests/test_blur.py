"""``blur``: the objects of some classes blurred in every picture the outputs show."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.annotation import BoxAnnotator
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Frame, FrameMeta, Image, Result
from streamyolo.sinks.crops import CropSink


def _sharpness(image: Image) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def _inner(box: list[float] | np.ndarray, margin: float = 0.25) -> tuple[slice, slice]:
    """The middle of a box (clear of its drawn sides and label)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    return slice(int(y1 + h * margin), int(y2 - h * margin)), slice(int(x1 + w * margin), int(x2 - w * margin))


def test_the_blurred_classes_objects_are_blurred_on_their_streams_only() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    found = Detections(np.array([[40, 60, 140, 200], [180, 60, 300, 200], [-20, 230, 10, 260]], np.float32),
                       np.full(3, 0.8, np.float32), np.array([0, 2, 0], np.int64), {0: "person", 2: "car"})
    annotator = BoxAnnotator(overlay=False, blur={"door": [0], "lot": []})
    door = annotator.annotate(image, found, stream="door")
    person, car = _inner(found.xyxy[0]), _inner(found.xyxy[1])
    assert _sharpness(door[person]) < 0.01 * _sharpness(image[person])
    assert np.array_equal(door[car], image[car])  # a car: as it was (its box and label drawn around)
    assert np.array_equal(door[150:, 150:170], image[150:, 150:170])  # between the boxes: untouched
    for stream in ("lot", "street"):  # no blur there
        shown = annotator.annotate(image, found, stream=stream)
        assert np.array_equal(shown[person], image[person]), stream


def test_blur_takes_class_names_and_only_classes_the_stream_keeps() -> None:
    config = build_config({"blur": ["person"], "streams": ["a", {"source": "b", "blur": []},
                                                          {"source": "c", "blur": ["car", 2]}]})
    assert [config.blur_of(s) for s in config.streams] == [[0], [], [1, 2]]
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.blur': class\(es\) \[0\] are not among the "
                                          r"stream's classes \[1\]: they would never be found, so never blurred"):
        build_config({"streams": [{"source": "a", "classes": ["car"], "blur": ["person"]}]})
    with pytest.raises(ConfigError, match=r"config key 'blur': 'face' is not one of the model's 3 classes"):
        build_config({"blur": ["face"], "streams": ["a"]})


def test_record_objects_takes_class_names_and_only_classes_the_stream_keeps() -> None:
    """``record_objects`` (the classes that keep a segment longer) as ``blur``: by id or name,
    the run's or a stream's own, a class the stream never keeps refused; and it needs
    ``record_keep_objects``."""
    kept = {"record_segment": 60, "record_keep": "2d", "record_keep_objects": "30d"}
    config = build_config({**kept, "record_objects": ["person"],
                           "streams": ["a", {"source": "b", "record_objects": []},
                                       {"source": "c", "record_objects": ["car", 2]}]})
    assert [config.record_objects_of(s) for s in config.streams] == [{0}, set(), {1, 2}]
    anything = build_config({**kept, "streams": ["a"]})
    assert anything.record_objects_of(anything.streams[0]) is None  # any class
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.record_objects': class\(es\) \[0\] are not "
                                          r"among the stream's classes \[1\]: they would never be found, so never "
                                          r"recorded as objects"):
        build_config({**kept, "streams": [{"source": "a", "classes": ["car"], "record_objects": ["person"]}]})
    with pytest.raises(ConfigError, match=r"config key 'record_objects': 'face' is not one of the model's 3 classes"):
        build_config({**kept, "record_objects": ["face"], "streams": ["a"]})
    with pytest.raises(ConfigError, match=r"config keys 'record_objects' and 'record_keep_objects': record_objects "
                                          r"says which objects keep a segment longer; give record_keep_objects too"):
        build_config({"record_segment": 60, "streams": [{"source": "a", "record_objects": ["person"]}]})
    with pytest.raises(ConfigError, match=r"config keys 'record_objects' and 'record_keep_objects'.* too$"):
        build_config({"record_segment": 60, "record_objects": ["person"], "streams": ["a"]})
    # A stream's own record_keep_objects: the others' record_objects still need one.
    with pytest.raises(ConfigError, match=r"config keys 'record_objects' and 'record_keep_objects'.* too "
                                          r"\(stream 1\)$"):
        build_config({"record": "rec", "record_segment": 60, "record_objects": ["person"],
                      "streams": [{"source": "a", "record_keep": "1d", "record_keep_objects": "2d"}, "b"]})


def test_blurred_objects_are_never_cropped(tmp_path: Path) -> None:
    crops = CropSink(tmp_path, blurred={"lot": [2]})
    crops.open()
    image = np.full((120, 160, 3), 80, np.uint8)
    found = Detections(np.array([[10, 10, 40, 50], [60, 10, 90, 50]], np.float32), np.full(2, 0.7, np.float32),
                       np.array([2, 0], np.int64), {0: "person", 2: "car"}, np.array([1, 2], np.int64))
    for stream in ("lot", "road"):
        crops.write(Result(Frame(FrameMeta(stream, 0, 1.0), image), found, 1.0))
    crops.close()
    assert sorted(p.relative_to(tmp_path).parent.as_posix() + " " + p.name.split("-")[0] for p in crops.saved) == [
        "car road", "person lot", "person road"]


def test_boxes_labels_confidence_and_line_width_are_drawn_as_asked() -> None:
    """Ultralytics' ``show_boxes``, ``show_labels``, ``show_conf`` and ``line_width``: a label
    without its confidence is narrower, one without its class too, none at all leaves the
    picture above the box untouched; no boxes draws nothing; a wider line covers more."""
    image = np.zeros((240, 320, 3), np.uint8)
    found = Detections(np.array([[100, 120, 220, 200]], np.float32), np.full(1, 0.8, np.float32),
                       np.array([0], np.int64), {0: "person"})

    def drawn(**options: object) -> np.ndarray:
        shown = BoxAnnotator(overlay=False, **options).annotate(image, found, stream="cam")  # type: ignore[arg-type]
        shown[:40] = 0  # not the header
        return shown.any(axis=2)

    def label_width(painted: np.ndarray) -> int:
        above = np.flatnonzero(painted[95:118].any(axis=0))  # the label sits above the box's top edge
        return 0 if not len(above) else int(above.max() - above.min())

    full, no_conf = drawn(), drawn(conf=False)
    no_label, bare = drawn(labels=False), drawn(labels=False, conf=False)
    assert label_width(full) > label_width(no_conf) > 0 and label_width(full) > label_width(no_label) > 0
    assert label_width(bare) == 0 and bare[120:201, 100].all(), "the box alone"
    assert not drawn(boxes=False).any()
    assert drawn(line_width=6).sum() > drawn(line_width=1).sum() + 4 * 2 * (120 + 80)
    from streamyolo.cli import build_parser, run_overrides

    flags = build_parser().parse_args(["run", "--source", "a", "--hide-conf", "--line-width", "3"])
    config = build_config(overrides=run_overrides(flags))
    assert (config.show_boxes, config.show_labels, config.show_conf, config.line_width) == (True, True, False, 3)
