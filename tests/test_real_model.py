"""The real COCO-pretrained YOLO11n (OpenVINO INT8) from ../shared on real pictures."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamyolo.inference.offline import import_ultralytics
from streamyolo.pipeline import Pipeline

PERSON, BUS = 0, 5


def _bus_jpg() -> Path:
    return Path(import_ultralytics().__file__).parent / "assets" / "bus.jpg"


@pytest.mark.timeout(120)
def test_bus_jpg_as_a_stream_yields_a_bus_and_at_least_four_persons(shared_model: Path) -> None:
    config = {"streams": [f"bus={_bus_jpg()}"], "model": str(shared_model), "device": "cpu", "display": False}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
    assert len(results) == 1
    found = results[0].detections
    classes = found.cls.tolist()
    assert classes.count(BUS) >= 1
    assert classes.count(PERSON) >= 4
    assert found.name(BUS) == "bus" and found.name(PERSON) == "person"
    height, width = results[0].frame.image.shape[:2]
    assert (found.xyxy[:, [0, 2]] <= width).all() and (found.xyxy[:, [1, 3]] <= height).all()


@pytest.mark.timeout(300)
def test_people_video_yields_persons_on_every_frame(shared_model: Path, people_video: Path) -> None:
    config = {"streams": [str(people_video)], "model": str(shared_model), "device": "cpu", "display": False}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
    assert len(results) == 302
    assert [r.frame.seq for r in results] == list(range(302))
    missing = [r.frame.seq for r in results if not (r.detections.cls == PERSON).any()]
    assert not missing, f"frames without a person: {missing[:10]}"
    assert results[0].frame.image.shape == (1080, 1920, 3)
