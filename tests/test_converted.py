"""``pytorch_cpu: auto`` (the default) and ``openvino``: a PyTorch model's network converted
once, kept in the model cache, run by OpenVINO with PyTorch's results; anything that cannot
be converted runs in PyTorch, and so does everything where OpenVINO is not installed.
(Equality with ``predict()`` through the pipeline, in every worker mode, is in
``test_thread_safety.py``.)"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from streamyolo.inference import DetectSettings, UltralyticsFactory, converted
from streamyolo.inference.models import UltralyticsDetector, resolve_model
from streamyolo.inference.offline import import_ultralytics
from streamyolo.inference.runners import OpenVINORunner, TorchRunner
from streamyolo.sources.scenes import CameraScene
from tests.helpers import assert_same_detections


def _frames() -> list[np.ndarray]:
    scene = CameraScene(seed=3, width=416, height=240)
    return [scene.render(index) for index in range(0, 40, 10)]


def _runner(detector: object) -> object:
    assert isinstance(detector, UltralyticsDetector)
    return detector._runner


@pytest.mark.timeout(120)
def test_the_network_is_converted_once_and_then_loaded_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = resolve_model("demo")  # real weights: it finds the people and cars of these scenes
    settings = DetectSettings(imgsz=416, conf=0.25)
    torch_detector = UltralyticsFactory(model, settings, "cpu", 1, pytorch_cpu="torch")()
    assert isinstance(_runner(torch_detector), TorchRunner)
    first = UltralyticsFactory(model, settings, "cpu", 1, str(tmp_path))()  # the default: auto
    assert isinstance(_runner(first), OpenVINORunner)
    assert isinstance(_runner(first), OpenVINORunner)
    assert len(list((tmp_path / "pytorch").glob("*.xml"))) == 1

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted again instead of loading the cache")

    monkeypatch.setattr(converted, "_convert", no_conversion)
    second = UltralyticsFactory(model, settings, "cpu", 1, str(tmp_path), "openvino")()
    assert isinstance(_runner(second), OpenVINORunner)
    frames = _frames()
    yolo = import_ultralytics().YOLO(model, task="detect")
    total = 0
    for index, (theirs, ours) in enumerate(zip(torch_detector.detect(frames), second.detect(frames), strict=True)):
        reference = yolo.predict(frames[index], imgsz=416, conf=0.25, device="cpu", verbose=False)[0]
        assert_same_detections(ours, reference, 0.25, f"frame {index}")
        assert_same_detections(theirs, reference, 0.25, f"frame {index} (PyTorch)")
        total += len(ours.cls)
    assert total >= 4, f"too few detections ({total}) for the comparison to mean anything"
    for detector in (torch_detector, first, second):
        detector.close()


@pytest.mark.timeout(120)
def test_other_weights_get_a_conversion_of_their_own(random_model: Path, tmp_path: Path) -> None:
    settings = DetectSettings(imgsz=160)
    for model in (resolve_model("demo"), str(random_model), str(random_model)):
        UltralyticsFactory(model, settings, "cpu", 1, str(tmp_path), "openvino")().close()
    assert len(list((tmp_path / "pytorch").glob("*.xml"))) == 2
    from ultralytics import YOLO

    a, b = YOLO("yolo26n.yaml").model, YOLO("yolo26n.yaml").model  # random weights, each its own
    assert converted.weights_key(a) == converted.weights_key(a)
    assert converted.weights_key(a) != converted.weights_key(b)


@pytest.mark.timeout(120)
def test_a_network_that_cannot_be_converted_runs_in_pytorch_with_a_warning(
    random_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unconvertible(*args: object) -> None:
        raise RuntimeError("unsupported operation aten::frobnicate\nmore detail")

    monkeypatch.setattr(converted, "_convert", unconvertible)
    with caplog.at_level(logging.WARNING, logger="streamyolo.inference.runners"):
        detector = UltralyticsFactory(str(random_model), DetectSettings(imgsz=160), "cpu", 1, str(tmp_path),
                                      "openvino")()
    assert isinstance(_runner(detector), TorchRunner)
    message = [r.getMessage() for r in caplog.records if "pytorch_cpu" in r.getMessage()]
    assert message == [f"OpenVINO unavailable for {random_model} (RuntimeError: unsupported operation "
                       "aten::frobnicate); PyTorch runs it (pytorch_cpu: openvino)"]
    assert len(detector.detect(_frames())) == 4
    detector.close()


@pytest.mark.parametrize(("setting", "model", "installed", "where", "converts"), [
    ("auto", "yolo26n-random.pt", True, "cpu", True),
    ("auto", "yolo26n-random.pt", False, "cpu", False),  # OpenVINO is an optional dependency
    ("openvino", "yolo26n-random.pt", False, "cpu", True),  # asked for: tried, and a warning if it fails
    ("torch", "yolo26n-random.pt", True, "cpu", False),
    ("auto", "yolo26n.yaml", True, "cpu", False),  # random weights in every replica: nothing to convert once
    ("openvino", "yolo26n.YML", True, "cpu", False),
    ("auto", "yolo26n-random.pt", True, "cuda:0", False),  # GPUs keep PyTorch
    ("openvino", "yolo26n-random.pt", True, "cpu half", False),  # so does half precision
])
def test_which_settings_convert_which_models(
    setting: str, model: str, installed: bool, where: str, converts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(converted, "openvino_installed", lambda: installed)
    device, *half = where.split()
    assert converted.converting(setting, model, device, half=bool(half)) is converts


@pytest.mark.timeout(120)
def test_without_openvino_installed_auto_runs_pytorch_quietly(
    random_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(converted, "openvino_installed", lambda: False)

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted although OpenVINO is not installed")

    monkeypatch.setattr(converted, "_convert", no_conversion)
    with caplog.at_level(logging.INFO, logger="streamyolo"):
        detector = UltralyticsFactory(str(random_model), DetectSettings(imgsz=160), "cpu", 1, str(tmp_path))()
    assert isinstance(_runner(detector), TorchRunner)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(detector.detect(_frames())) == 4
    detector.close()


@pytest.mark.timeout(300)
def test_without_tracing_the_network_is_exported_with_torch_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``torch.jit.trace`` is deprecated (torch 2.14): where it fails, or a later torch drops it,
    ``torch.export`` makes the same network, with batch and input size still dynamic."""
    import torch

    def gone(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torch.jit.trace is no more")

    monkeypatch.setattr(torch.jit, "trace", gone)
    model = resolve_model("demo")
    settings = DetectSettings(imgsz=416, conf=0.25)
    with caplog.at_level(logging.INFO, logger="streamyolo"):
        detector = UltralyticsFactory(model, settings, "cpu", 1, str(tmp_path))()
    assert isinstance(_runner(detector), OpenVINORunner)
    assert any("exporting it with torch.export" in r.getMessage() and "torch.jit.trace is no more" in r.getMessage()
               for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    yolo = import_ultralytics().YOLO(model, task="detect")
    total = 0
    wide = CameraScene(seed=5, width=640, height=240).render(7)  # another aspect ratio: another input size
    frames = [*_frames(), wide]
    for batch in (frames[:4], frames[4:]):  # batches of 4 and 1
        for index, (frame, ours) in enumerate(zip(batch, detector.detect(batch), strict=True)):
            reference = yolo.predict(frame, imgsz=416, conf=0.25, device="cpu", verbose=False)[0]
            assert_same_detections(ours, reference, 0.25, f"frame {index} of a batch of {len(batch)}")
            total += len(ours.cls)
    assert total >= 4, f"too few detections ({total}) for the comparison to mean anything"
    detector.close()
