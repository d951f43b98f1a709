"""Precision and recall at IoU 0.5: the matching rules, one case each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamyolo.errors import SourceError
from streamyolo.evaluation import (
    Score,
    detections_from_records,
    read_jsonl_detections,
    score_frame,
    score_frames,
    score_table,
)
from streamyolo.frames import Detections, overlaps
from streamyolo.sources.scenes import TruthBox

PERSON, CAR = 0, 1


def found(*boxes: tuple[tuple[float, float, float, float], float, int]) -> Detections:
    return detections_from_records([{"xyxy": list(xyxy), "conf": conf, "cls": cls} for xyxy, conf, cls in boxes])


def test_box_iou() -> None:
    iou = overlaps(np.array([[0, 0, 10, 10], [0, 0, 10, 10]]),
                   np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert np.allclose(iou, [[1, 1 / 3, 0], [1, 1 / 3, 0]])


def test_a_good_box_of_the_right_class_is_a_true_positive() -> None:
    truth = [TruthBox(PERSON, (10, 10, 50, 90), 1.0)]
    assert score_frame(found(((12, 12, 50, 88), 0.9, PERSON)), truth) == Score(tp=1)


def test_wrong_class_or_poor_overlap_is_a_false_positive_and_a_miss() -> None:
    truth = [TruthBox(PERSON, (10, 10, 50, 90), 1.0)]
    assert score_frame(found(((10, 10, 50, 90), 0.9, CAR)), truth) == Score(fp=1, fn=1)
    assert score_frame(found(((30, 10, 70, 90), 0.9, PERSON)), truth) == Score(fp=1, fn=1)  # IoU 1/3


def test_a_duplicate_is_a_false_positive_and_the_most_confident_box_matches_first() -> None:
    truth = [TruthBox(PERSON, (0, 0, 10, 10), 1.0), TruthBox(PERSON, (4, 0, 14, 10), 1.0)]
    # The confident box fits the first figure best; the weaker one can still take the second.
    detections = found(((0, 0, 10, 10), 0.9, PERSON), ((3, 0, 13, 10), 0.5, PERSON))
    assert score_frame(detections, truth) == Score(tp=2)
    assert score_frame(found(((0, 0, 10, 10), 0.9, PERSON), ((0, 0, 10, 10), 0.8, PERSON)),
                       truth[:1]) == Score(tp=1, fp=1)


def test_optional_figures_are_neither_required_nor_wrong() -> None:
    hidden = TruthBox(CAR, (100, 100, 160, 130), 0.3)
    assert not hidden.labelled
    assert score_frame(found(), [hidden]) == Score()
    assert score_frame(found(((100, 100, 160, 130), 0.7, CAR)), [hidden]) == Score()
    assert score_frame(found(((100, 100, 160, 130), 0.7, CAR), ((101, 100, 160, 130), 0.6, CAR)),
                       [hidden]) == Score(fp=1)


def test_precision_and_recall_and_the_table() -> None:
    score = Score(tp=9, fp=1, fn=3)
    assert (score.precision, score.recall) == (0.9, 0.75)
    assert Score().precision == 1.0 and Score().recall == 1.0
    assert Score(fn=2).recall == 0.0 and Score(fp=2).precision == 0.0
    table = score_table({"cam0": score, "cam1": Score(tp=1), "cam2": Score(fn=4)})
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["stream", "objects", "found"] and "precision@0.5" in lines[0]
    assert lines[1].split() == ["cam0", "12", "10", "9", "1", "3", "0.900", "0.750"]
    assert lines[3].split() == ["cam2", "4", "0", "0", "0", "4", "-", "0.000"]  # nothing found: no precision
    assert lines[-1].split()[0] == "all" and lines[-1].split()[3] == "10"


def test_frames_must_line_up() -> None:
    with pytest.raises(ValueError, match="2 frames of detections for 1 frames"):
        score_frames([found(), found()], [[]])


def test_jsonl_detections_are_read_back_per_stream_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "det.jsonl"
    lines = [{"stream": "a", "seq": 1, "t_capture": 0.0, "pts": None,
              "detections": [{"xyxy": [1, 2, 3, 4], "conf": 0.5, "cls": 2, "name": "ball"}]},
             {"stream": "b", "seq": 0, "t_capture": 0.0, "pts": 0.0, "detections": []}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = read_jsonl_detections(path)
    assert set(read) == {"a", "b"} and set(read["a"]) == {1}
    assert read["a"][1].xyxy.tolist() == [[1, 2, 3, 4]] and read["a"][1].name(2) == "ball"
    assert len(read["b"][0]) == 0
    path.write_text("not json\n")
    with pytest.raises(SourceError, match="line 1: not a detection record"):
        read_jsonl_detections(path)
