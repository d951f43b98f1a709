"""``model_names``: a model's class names, equal to ``YOLO(model).names``, read without building
the model (``YOLO`` refuses to be called while they are read) and without the network (every
Ultralytics download raises)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from streamyolo.errors import ModelError
from streamyolo.inference.models import DEMO_MODEL_PATH
from streamyolo.inference.names import model_names
from streamyolo.inference.offline import import_ultralytics


@pytest.fixture(scope="module")
def ultralytics() -> ModuleType:
    return import_ultralytics()


@pytest.fixture(autouse=True)
def no_downloads(ultralytics: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any weight download Ultralytics tries fails the test."""
    from ultralytics.utils import downloads

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"Ultralytics tried the network: {args} {kwargs}")

    for name in ("safe_download", "get_github_assets"):
        monkeypatch.setattr(downloads, name, refuse)


def _refuse_to_build(ultralytics: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, building a model (``YOLO``, or an export's ``AutoBackend``) raises."""
    from ultralytics.nn.autobackend import AutoBackend

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was built")

    monkeypatch.setattr(ultralytics, "YOLO", refuse)
    monkeypatch.setattr(AutoBackend, "__init__", refuse)


def _model(kind: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """The string given to model_names, and the one given to YOLO for reference."""
    if kind == "demo":
        return "demo", str(DEMO_MODEL_PATH)
    if kind == "random yolo26n .pt":
        path = str(request.getfixturevalue("random_model"))
        return path, path
    if kind == "OpenVINO folder":
        path = str(request.getfixturevalue("shared_model"))
        return path, path
    return kind, kind  # a YAML shipped with Ultralytics


@pytest.mark.parametrize("kind", ["demo", "random yolo26n .pt", "yolo26n.yaml", "yolo11n-pose.yaml",
                                  "OpenVINO folder"])
def test_names_equal_what_yolo_gives_without_building_the_model(
        kind: str, ultralytics: ModuleType, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    model, reference = _model(kind, request)
    expected = ultralytics.YOLO(reference).names
    _refuse_to_build(ultralytics, monkeypatch)
    names = model_names(model)
    assert names == expected
    assert all(type(index) is int and type(name) is str for index, name in names.items())


def test_an_engine_is_named_from_its_metadata_header(tmp_path: Path, ultralytics: ModuleType,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT is not here to compare with; the header is what its backend reads (JSON keys are text)."""
    header = json.dumps({"task": "detect", "names": {"0": "person", "1": "car"}}).encode()
    engine = tmp_path / "model.engine"
    engine.write_bytes(len(header).to_bytes(4, "little") + header + b"\x00not a real engine")
    _refuse_to_build(ultralytics, monkeypatch)
    assert model_names(str(engine)) == {0: "person", 1: "car"}


def _garbage_pt(folder: Path) -> Path:
    path = folder / "garbage.pt"
    path.write_bytes(b"not a checkpoint" * 64)
    return path


def _broken_openvino(folder: Path) -> Path:
    """An export whose metadata has no names, so the model is built, and fails."""
    path = folder / "broken_openvino_model"
    path.mkdir()
    (path / "model.xml").write_text("<net")
    (path / "metadata.yaml").write_text("task: detect\n")
    return path


@pytest.mark.parametrize("make", [lambda folder: folder / "missing.pt", _garbage_pt, _broken_openvino],
                         ids=["missing", "garbage .pt", "broken OpenVINO"])
def test_a_model_that_cannot_be_read_raises_one_line_naming_it(make: Any, tmp_path: Path) -> None:
    path = str(make(tmp_path))
    with pytest.raises(ModelError) as caught:
        model_names(path)
    message = str(caught.value)
    assert repr(path) in message
    assert "\n" not in message


def test_a_legacy_yolov5_name_is_refused_rather_than_downloaded(tmp_path: Path, ultralytics: ModuleType,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ultralytics would load (and download) yolov5nu.pt when given yolov5n.pt: neither the
    names nor a run's model load go there."""
    from streamyolo.inference.models import load_yolo

    monkeypatch.chdir(tmp_path)
    shutil.copy(DEMO_MODEL_PATH, "yolov5n.pt")
    _refuse_to_build(ultralytics, monkeypatch)
    with pytest.raises(ModelError, match=r"'yolov5n\.pt'.*'yolov5nu\.pt'"):
        model_names("yolov5n.pt")
    with pytest.raises(ModelError, match=r"'yolov5n\.pt'.*'yolov5nu\.pt'"):
        load_yolo("yolov5n.pt", "cpu")
