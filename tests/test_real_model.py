"""The real COCO-pretrained YOLO11n (OpenVINO INT8) from ../shared on real pictures."""

from __future__ import annotations

import locale
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.errors import OutputError
from streamyolo.inference import DetectSettings, UltralyticsFactory, runners
from streamyolo.inference.offline import import_openvino, import_ultralytics
from streamyolo.inference.runners import DeferredCompiledModel, openvino_backend_setup
from streamyolo.pipeline import Pipeline
from streamyolo.pipeline.assemble import resolve_model_cache
from tests.helpers import assert_same_detections

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


@pytest.mark.timeout(180)
def test_a_second_start_loads_the_compiled_model_from_the_cache(
    shared_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache" / "openvino"  # made by the run
    config = {"streams": [f"bus={_bus_jpg()}"], "model": str(shared_model), "device": "cpu", "display": False,
              "workers": 1, "lanes": 2, "model_cache": str(cache)}
    found = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="streamyolo.inference.runners"), \
                Pipeline.from_config(config) as pipeline:
            (result,) = pipeline.results()
        found.append(result.detections)
        if len(found) == 1:
            # The two lanes start together; one compiles, the other waits and loads what it wrote.
            assert caplog.text.count("compiled into cache") == 1, caplog.text
            assert caplog.text.count("loaded from cache") == 1, caplog.text
            blobs = {p: p.stat().st_mtime_ns for p in cache.glob("*.blob")}
            # One compilation: the worker's own model. The one Ultralytics' backend would make
            # for itself is deferred, and never needed.
            assert len(blobs) == 1, f"the first start must leave the worker's compiled model in the cache: {blobs}"
    assert "loaded from cache" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.blob")} == blobs, "the second start must not rewrite it"
    first, second = found
    assert first.cls.tolist() == second.cls.tolist() and first.cls.tolist().count(BUS) >= 1
    assert (abs(first.xyxy - second.xyxy) <= 1e-3).all() and (abs(first.conf - second.conf) <= 1e-5).all()


def test_model_cache_off_and_unusable_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model_cache("off") is None
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_model_cache("auto") == str(tmp_path / "xdg" / "streamyolo" / "openvino")
    assert (tmp_path / "xdg" / "streamyolo" / "openvino").is_dir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert resolve_model_cache("auto") is None  # a run never fails for want of a cache
    with pytest.raises(OutputError, match=r"config key 'model_cache': folder '.*a-file/sub' cannot be created"):
        resolve_model_cache(str(blocker / "sub"))


def test_the_backend_cache_applies_only_inside_the_block_and_on_its_thread(tmp_path: Path) -> None:
    ov = import_openvino()
    seen: list[str] = []
    with openvino_backend_setup(str(tmp_path)):
        inside = ov.Core().get_property("CACHE_DIR")
        other = threading.Thread(target=lambda: seen.append(ov.Core().get_property("CACHE_DIR")))
        other.start()
        other.join()
    assert inside == str(tmp_path)
    assert seen == [""], "another thread's Core must not cache"
    assert ov.Core().get_property("CACHE_DIR") == "", "after the block Core must not cache"
    with openvino_backend_setup(None):
        assert ov.Core().get_property("CACHE_DIR") == ""


def test_the_backends_model_compiles_on_first_use_and_then_runs_as_compiled(shared_model: Path) -> None:
    ov = import_openvino()
    xml = runners.openvino_xml(str(shared_model))
    with openvino_backend_setup(None):
        core = ov.Core()
        deferred = core.compile_model(core.read_model(xml), device_name="CPU", config={"PERFORMANCE_HINT": "LATENCY"})
    assert isinstance(deferred, DeferredCompiledModel) and not deferred.compiled
    assert deferred.get_property("EXECUTION_DEVICES") == ["CPU"] and not deferred.compiled
    plain = ov.Core().compile_model(ov.Core().read_model(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    assert not isinstance(plain, DeferredCompiledModel), "outside the block Core compiles as always"
    image = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    ours = next(iter(deferred(image).values()))
    assert deferred.compiled
    assert np.allclose(ours, next(iter(plain(image).values())), atol=1e-4)
    assert deferred.input().get_partial_shape() == plain.input().get_partial_shape()


@pytest.mark.timeout(120)
def test_without_the_fast_path_the_backend_compiles_and_runs_every_frame(
    shared_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An export the fast path cannot take still runs, through Ultralytics' own backend,
    whose compilation was deferred while the predictor was set up; same boxes as predict()."""
    image = cv2.imread(str(_bus_jpg()))
    reference = import_ultralytics().YOLO(str(shared_model), task="detect").predict(image, device="cpu",
                                                                                   verbose=False)[0]

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("an unusual export")

    monkeypatch.setattr(runners.OpenVINORunner, "__init__", unavailable)
    with caplog.at_level(logging.WARNING, logger="streamyolo.inference.runners"):
        detector = UltralyticsFactory(str(shared_model), DetectSettings(), "cpu", threads=1)()
    assert "OpenVINO fast path unavailable (an unusual export)" in caplog.text
    try:
        (found,) = detector.detect([image])
    finally:
        detector.close()
    assert found.cls.tolist().count(BUS) >= 1
    assert_same_detections(found, reference, 0.25, "bus.jpg through the backend")


@pytest.mark.timeout(60)
def test_a_model_once_compiled_into_the_cache_later_loads_beside_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first compilation of a model into a cache folder goes alone; once it is there, a
    later process (here: the registry of first compilations emptied) lets its lanes load at once."""
    from streamyolo.inference import runners

    folder = str(tmp_path)
    both_inside = threading.Barrier(2, timeout=5)
    outcomes: list[str] = []

    def compile_beside() -> None:
        with runners.compiling_into(folder, "model.xml CPU {}"):
            try:
                both_inside.wait()
                outcomes.append("together")
            except threading.BrokenBarrierError:
                outcomes.append("alone")

    def two_at_once() -> list[str]:
        outcomes.clear()
        both_inside.reset()
        threads = [threading.Thread(target=compile_beside) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sorted(outcomes)

    monkeypatch.setattr(runners, "_first_compiles", {})
    assert two_at_once() == ["alone", "alone"], "a first compilation must not run beside another"
    with pytest.raises(RuntimeError), runners.compiling_into(folder, "broken.xml CPU {}"):
        raise RuntimeError("cannot compile")  # a failed compilation leaves no mark
    monkeypatch.setattr(runners, "_first_compiles", {})  # as in a new process
    assert two_at_once() == ["together", "together"]
    assert len(list(tmp_path.glob(".streamyolo-compiled-*"))) == 1


@pytest.mark.timeout(60)
def test_overlapping_compilations_leave_the_process_locale_as_it_was() -> None:
    """OpenVINO's compile_model sets the locale to "C" and restores what it saved. Two at once
    on two threads, interleaved as below, leave "C" behind unless the keeper puts it back.
    The two compilations here do exactly what OpenVINO does, step by step."""
    original = locale.setlocale(locale.LC_ALL)
    locale.setlocale(locale.LC_CTYPE, "C.UTF-8")  # whatever the environment: a locale that is not "C"
    before = locale.setlocale(locale.LC_ALL)
    a_set_c, b_saved, a_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def compile_like_openvino(what: str, after: threading.Event | None, set_c: threading.Event,
                              restore_after: threading.Event, done: threading.Event | None) -> None:
        try:
            assert after is None or after.wait(5)
            with runners.compiling_into(None, what):
                saved = locale.setlocale(locale.LC_ALL)  # the second one saves the first's "C"
                locale.setlocale(locale.LC_ALL, "C")
                set_c.set()
                assert restore_after.wait(5)
                locale.setlocale(locale.LC_ALL, saved)
        except BaseException as exc:
            errors.append(exc)
        finally:
            if done is not None:
                done.set()

    threads = [threading.Thread(target=compile_like_openvino, args=("a.xml CPU {}", None, a_set_c, b_saved, a_done)),
               threading.Thread(target=compile_like_openvino, args=("b.xml CPU {}", a_set_c, b_saved, a_done, None))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert locale.setlocale(locale.LC_ALL) == before
    finally:
        locale.setlocale(locale.LC_ALL, original)
