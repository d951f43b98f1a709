"""The point of it all: many streams through per-thread models give exactly what a plain
sequential ``predict()`` loop gives on the same frames with the same model and settings —
with thread workers and with process workers (``worker_mode: process``, models in child
processes, frames through shared memory)."""

from __future__ import annotations

import locale
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamyolo.frames import Result
from streamyolo.inference import DetectSettings, UltralyticsFactory
from streamyolo.inference.detector import Detector
from streamyolo.inference.offline import import_ultralytics
from streamyolo.pipeline import Pipeline
from tests.helpers import assert_same_detections, cut_clip, read_stamp


@pytest.fixture(scope="module")
def four_streams(clips: list[Path], people_video: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real people, and three different synthetic scenes, all as H.264 files."""
    people = cut_clip(people_video, tmp_path_factory.mktemp("people") / "people.mp4", frames=12, width=640)
    return [people, *clips[:3]]


MODES = [("per-thread", "thread", 1), ("locked", "thread", 1), ("per-thread", "process", 1),
         ("per-thread", "thread", 2), ("per-thread", "process", 2), ("per-thread", "thread", "auto")]
"""(model_sharing, worker_mode, lanes): ``locked`` shares one model between threads, so it is
thread-only; 2 lanes split each worker's batches between two replicas of its model; ``auto``
(on 2 cores) has each worker lend its lane to the other once it is done."""


def _run(streams: list[Path], model: str, sharing: str, worker_mode: str, lanes: int | str, imgsz: int,
         conf: float, **more: Any) -> list[Result]:
    config = {"streams": [str(p) for p in streams], "model": model, "workers": 2, "device": "cpu",
              "model_sharing": sharing, "worker_mode": worker_mode, "lanes": lanes, "imgsz": imgsz, "conf": conf,
              "batch": 4, "display": False, **more}
    before = locale.setlocale(locale.LC_ALL)
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
    # Models compiled side by side must not leave the process in another locale (OpenVINO's
    # compile_model sets "C" and back; see runners._LocaleKeeper).
    assert locale.setlocale(locale.LC_ALL) == before
    return results


def _reference(model: str, imgsz: int, conf: float, results: list[Result]) -> dict[tuple[str, int], Any]:
    yolo = import_ultralytics().YOLO(model, task="detect")
    return {(r.stream, r.frame.seq): yolo.predict(r.frame.image, imgsz=imgsz, conf=conf, device="cpu",
                                                    verbose=False)[0]
            for r in results}


def _check(streams: list[Path], results: list[Result], reference: dict[tuple[str, int], Any], conf: float) -> None:
    by_stream: dict[str, list[int]] = defaultdict(list)
    for result in results:
        by_stream[result.stream].append(result.frame.seq)
    assert sorted(by_stream) == sorted(p.stem for p in streams)
    for name, seqs in by_stream.items():
        assert seqs == list(range(12)), f"{name}: frames missing or out of order: {seqs}"
    total = 0
    for result in results:
        where = f"{result.stream}#{result.frame.seq}"
        stamp = read_stamp(result.frame.image)
        if result.stream != "people":  # synthetic clips carry their own index
            assert stamp is not None and stamp[1] == result.frame.seq, f"{where}: wrong frame {stamp}"
        assert_same_detections(result.detections, reference[(result.stream, result.frame.seq)], conf, where)
        total += len(result.detections)
    assert total >= 12, f"too few detections ({total}) for the comparison to mean anything"


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("sharing", "worker_mode", "lanes"), MODES)
def test_random_weight_yolo26n_in_pytorch_matches_sequential_predict(
    four_streams: list[Path], random_model: Path, sharing: str, worker_mode: str, lanes: int | str
) -> None:
    results = _run(four_streams, str(random_model), sharing, worker_mode, lanes, imgsz=320, conf=0.25,
                   pytorch_cpu="torch")
    _check(four_streams, results, _reference(str(random_model), 320, 0.25, results), 0.25)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("sharing", "worker_mode", "lanes"),
                         [("per-thread", "thread", 2), ("locked", "thread", 1), ("per-thread", "process", 1),
                          ("per-thread", "thread", "auto")])
def test_random_weight_yolo26n_run_by_openvino_matches_sequential_predict(
    four_streams: list[Path], random_model: Path, sharing: str, worker_mode: str, lanes: int | str, tmp_path: Path
) -> None:
    # By default (pytorch_cpu: auto) the network is converted to OpenVINO once (workers, lanes
    # and processes at once) into the model cache; every replica runs that conversion, and
    # the results stay those of PyTorch's predict().
    results = _run(four_streams, str(random_model), sharing, worker_mode, lanes, imgsz=320, conf=0.25,
                   model_cache=str(tmp_path))
    _check(four_streams, results, _reference(str(random_model), 320, 0.25, results), 0.25)
    assert len(list((tmp_path / "pytorch").glob("*.xml"))) == 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("sharing", "worker_mode", "lanes"), MODES)
def test_real_openvino_yolo11n_matches_sequential_predict(
    four_streams: list[Path], shared_model: Path, sharing: str, worker_mode: str, lanes: int | str
) -> None:
    results = _run(four_streams, str(shared_model), sharing, worker_mode, lanes, imgsz=640, conf=0.25)
    _check(four_streams, results, _reference(str(shared_model), 640, 0.25, results), 0.25)
    people = [r for r in results if r.stream == "people"]
    assert all((r.detections.cls == 0).any() for r in people), "the real model must see persons in every frame"


@pytest.mark.timeout(240)
def test_each_streams_own_conf_and_classes_give_what_predict_gives_with_them(
    four_streams: list[Path], shared_model: Path
) -> None:
    """Streams with their own ``conf``/``classes`` share the workers' models, which detect at
    the loosest settings; each stream gets exactly what ``predict()`` gives with its own. One
    has thresholds by class (``class_conf``, by name), one of them below every ``conf``: the
    models detect at that, and it gets what ``predict()`` gives at it, each class kept above
    its own threshold."""
    people = str(four_streams[0])  # a real street
    own: dict[str, dict[str, Any]] = {
        "persons": {"conf": 0.25, "classes": [0]}, "sure": {"conf": 0.6},
        "two-wheels": {"conf": 0.3, "classes": [1, 3]}, "all": {"conf": 0.25},
        "by-class": {"conf": 0.5, "class_conf": {"person": 0.7, "bicycle": 0.15}}}
    by_class = {0: 0.7, 1: 0.15}
    streams = [{"name": name, "source": people, **{k: v for k, v in settings.items() if name != "all"}}
               for name, settings in own.items()]
    config = {"streams": streams, "model": str(shared_model), "workers": 2, "device": "cpu", "imgsz": 640,
              "conf": 0.25, "display": False}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
    assert sorted((r.stream, r.frame.seq) for r in results) == sorted((n, i) for n in own for i in range(12))
    yolo = import_ultralytics().YOLO(str(shared_model), task="detect")
    found: dict[str, set[int]] = defaultdict(set)
    low = 0
    for result in results:
        settings = own[result.stream]
        where = f"{result.stream}#{result.frame.seq}"
        if result.stream == "by-class":  # predict() at the lowest, each class then above its own
            reference = yolo.predict(result.frame.image, imgsz=640, device="cpu", verbose=False, conf=0.15)[0]
            classes = {int(c) for c in reference.boxes.cls} | {int(c) for c in result.detections.cls}
            for cls in classes:
                threshold = by_class.get(cls, 0.5)
                theirs = reference[(reference.boxes.cls == cls) & (reference.boxes.conf > threshold)]
                assert_same_detections(result.detections.select(result.detections.cls == cls), theirs, threshold,
                                       f"{where} class {cls}")
            low += int(((result.detections.cls == 1) & (result.detections.conf < 0.25)).sum())
        else:
            reference = yolo.predict(result.frame.image, imgsz=640, device="cpu", verbose=False, **settings)[0]
            assert_same_detections(result.detections, reference, float(settings["conf"]), where)
        found[result.stream].update(int(c) for c in result.detections.cls)
    # The clip's first frames hold people, bicycles, motorcycles and a suitcase.
    assert found["persons"] == {0} and {0, 1, 3} <= found["all"] and found["two-wheels"] <= {1, 3}
    assert found["two-wheels"], "no bicycle or motorcycle kept: the comparison would mean little"
    counts = {name: sum(len(r.detections) for r in results if r.stream == name) for name in own}
    assert counts["sure"] < counts["all"], counts
    assert low, "no bicycle kept below every stream's conf: the models would not have had to detect at 0.15"
    kept = [(int(c), float(f)) for r in results if r.stream == "by-class" for c, f in
            zip(r.detections.cls, r.detections.conf, strict=True)]
    assert kept and all(f > by_class.get(c, 0.5) for c, f in kept) and {c for c, _ in kept} >= {0, 1}, kept


class _RecordingFactory:
    """Wraps a factory and records which thread built each detector."""

    def __init__(self, inner: UltralyticsFactory) -> None:
        self.inner = inner
        self.built: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self) -> Detector:
        detector = self.inner()
        with self._lock:
            self.built.append((threading.current_thread().name, id(detector)))
        return detector


@pytest.mark.timeout(120)
def test_each_worker_builds_its_own_model_in_its_own_thread(clips: list[Path], random_model: Path) -> None:
    from streamyolo.buffering import Overflow
    from streamyolo.pipeline import StreamSetup
    from streamyolo.sources import SourceKind, SourceSpec, open_source

    factory = _RecordingFactory(UltralyticsFactory(str(random_model), DetectSettings(imgsz=160), "cpu"))
    setups = [StreamSetup(p.stem, open_source(SourceSpec(p.stem, str(p), SourceKind.FILE)), Overflow.BLOCK)
              for p in clips]
    with Pipeline(setups, factory, workers=2) as pipeline:
        results = list(pipeline.results())
    assert len(results) == 4 * 12
    threads = sorted(name for name, _ in factory.built)
    assert threads == ["inference:w0", "inference:w1"]
    assert len({ident for _, ident in factory.built}) == 2, "workers must not share a model instance"


@pytest.mark.timeout(120)
def test_building_a_model_keeps_the_workers_share_of_torch_threads(random_model: Path) -> None:
    """Ultralytics' select_device() sets torch's process-wide threads to its own NUM_THREADS
    (cores - 1) whenever a predictor is set up; a worker must keep the share it was given."""
    import torch
    from ultralytics.utils import NUM_THREADS

    wanted = 2 if NUM_THREADS != 2 else 3
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(wanted)
        detector = UltralyticsFactory(str(random_model), DetectSettings(imgsz=160), "cpu", pytorch_cpu="torch")()
        assert torch.get_num_threads() == wanted, "building a model without a share keeps the threads set"
        detector.close()
        torch.set_num_threads(1)
        detector = UltralyticsFactory(str(random_model), DetectSettings(imgsz=160), "cpu", threads=wanted,
                                      pytorch_cpu="torch")()
        assert torch.get_num_threads() == wanted, "building a model with a share applies it"
        detector.close()
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("which", ["real OpenVINO export", "PyTorch weights converted"])
def test_a_model_openvino_runs_leaves_torch_one_thread_for_its_post_processing(
    which: str, shared_model: Path, random_model: Path, tmp_path: Path
) -> None:
    """OpenVINO runs the network on the worker's share of the cores; torch only post-processes
    its output, on one thread: on more, every op starts an OpenMP team whose idle thread spins
    on a core OpenVINO needs. Checked in the worker's own thread, where the model is built."""
    import torch

    model = shared_model if which == "real OpenVINO export" else random_model
    saved = torch.get_num_threads()
    seen: list[int] = []

    def worker() -> None:
        detector = UltralyticsFactory(str(model), DetectSettings(imgsz=320), "cpu", threads=2,
                                      cache_dir=str(tmp_path))()
        try:
            detector.detect([np.full((720, 1280, 3), 90, np.uint8)])
            seen.append(torch.get_num_threads())
        finally:
            detector.close()

    try:
        thread = threading.Thread(target=worker, name="inference:w0")
        thread.start()
        thread.join(120)
        assert not thread.is_alive()
        assert seen == [1]
    finally:
        torch.set_num_threads(saved)
