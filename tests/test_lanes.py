"""Lanes: a worker's batch split across model replicas, each built and run on its own
thread, with the results back in the batch's order."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import auto_lanes, build_config, lends_lanes
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Image
from streamyolo.inference import DetectSettings, UltralyticsFactory
from streamyolo.inference.detector import Detector
from streamyolo.inference.lanes import IdleLanes, LanedDetector, LanedFactory
from streamyolo.inference.models import resolve_model
from streamyolo.inference.offline import import_ultralytics
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.assemble import Lanes, choose_lanes, choose_workers, detector_factories, torch_threads
from streamyolo.pipeline.build import resolve_streams
from streamyolo.sources import SourceKind, SourceSpec, open_source
from streamyolo.sources.synthetic import read_stamp, stamp
from streamyolo.workers.process import ProcessDetectorFactory
from tests.helpers import PYTHON, StampDetector, assert_same_detections, env_for_subprocess, until


def _images(count: int) -> list[Image]:
    out = []
    for index in range(count):
        image = np.zeros((64, 128, 3), dtype=np.uint8)
        stamp(image, 7, index)
        out.append(image)
    return out


class _Replicas:
    """A factory of :class:`StampDetector` s that remembers each one by its building thread.
    Replicas built on a helper lane's thread (``…/laneN``) fail on their ``fail_on``-th batch;
    the one built on ``fail_building`` 's thread cannot be built at all."""

    def __init__(self, fail_building: str | None = None, fail_on: int | None = None) -> None:
        self.built: dict[str, _Closing] = {}
        self.closed: list[str] = []
        self._fail_building = fail_building
        self._fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self) -> StampDetector:
        name = threading.current_thread().name
        if self._fail_building is not None and name.endswith(self._fail_building):
            raise RuntimeError("replica cannot be built")
        detector = _Closing(self, fail_on=self._fail_on if "/lane" in name else None)
        with self._lock:
            self.built[name] = detector
        return detector

    def batches(self) -> list[list[int]]:
        """Each replica's batch sizes, lane 0 first."""
        return [self.built[name].batches for name in sorted(self.built)]


class _Closing(StampDetector):
    def __init__(self, owner: _Replicas, fail_on: int | None) -> None:
        super().__init__(fail_on=fail_on)
        self._owner = owner
        self.threads: list[str] = []
        self.shapes: list[list[tuple[int, ...]]] = []

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        self.threads.append(threading.current_thread().name)
        self.shapes.append([image.shape for image in images])
        return super().detect(images)

    def close(self) -> None:
        with self._owner._lock:
            self._owner.closed.append(threading.current_thread().name)


@pytest.mark.timeout(30)
def test_each_lane_builds_its_replica_on_its_own_thread_and_results_keep_the_batch_order() -> None:
    replicas = _Replicas()
    detector = LanedDetector.build(replicas, 3)
    try:
        me = threading.current_thread().name
        lanes = [me, f"{me}/lane1", f"{me}/lane2"]
        assert sorted(replicas.built) == lanes
        assert detector.lanes == 3
        found = detector.detect(_images(5))
        assert [int(d.xyxy[0, 0]) for d in found] == [0, 1, 2, 3, 4]
        assert replicas.batches() == [[2], [2], [1]]  # contiguous, sizes differ by at most 1
        assert [replicas.built[name].threads for name in lanes] == [[name] for name in lanes]
        found = detector.detect(_images(1))  # one frame: lane 0 alone
        assert [int(d.xyxy[0, 0]) for d in found] == [0]
        assert replicas.batches() == [[2, 1], [2], [1]]
        assert dict(detector.names) == dict(replicas.built[me].names)
    finally:
        detector.close()
    assert not any(t.is_alive() for t in detector.threads)
    assert sorted(replicas.closed) == lanes, "each replica is closed on its own thread"


@pytest.mark.timeout(30)
def test_a_batch_of_mixed_shapes_is_shared_evenly() -> None:
    """A frame and its tiles (``tiles``) are pictures of two shapes: the lanes share them all (5
    and 5 of 1 + 9), each replica running its part whole (the model runs it shape by shape)."""
    replicas = _Replicas()
    detector = LanedDetector.build(replicas, 2)
    try:
        small = _images(10)
        big = np.zeros((96, 160, 3), np.uint8)
        stamp(big, 7, 99)
        found = detector.detect([big, *small[1:]])
        assert [int(d.xyxy[0, 0]) for d in found] == [99, *range(1, 10)]
        me = threading.current_thread().name
        assert replicas.built[me].shapes == [[(96, 160, 3)] + [(64, 128, 3)] * 4]
        assert replicas.built[f"{me}/lane1"].shapes == [[(64, 128, 3)] * 5]
    finally:
        detector.close()


@pytest.mark.timeout(30)
def test_a_replica_that_fails_on_frames_another_runs_is_closed_built_again_and_the_worker_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """A helper lane's replica that has run a batch fails on frames lane 0 then runs: it is
    closed, and built again in a lane thread of its own while the worker goes on with lane 0;
    once built, it joins (and, failing its second batch as every helper replica here does, is
    closed and built again in turn)."""
    replicas = _Replicas(fail_on=2)  # a helper lane's replica fails from its second batch on
    detector = LanedDetector.build(replicas, 2)
    me = threading.current_thread().name
    threads = list(detector.threads)
    try:
        assert len(detector.detect(_images(4))) == 4
        found = detector.detect(_images(4))
        assert [int(d.xyxy[0, 0]) for d in found] == [0, 1, 2, 3], "lane 0 ran the failed part too, in order"
        assert replicas.batches()[:2] == [[2, 2, 2], [2, 2]]
        assert detector.lanes == 1 and replicas.closed == [f"{me}/lane1"]
        assert ("a model replica failed (RuntimeError: fake detector failure) on 2 frame(s) another one ran: it is "
                "closed and built again, the worker goes on with 1 replica(s) meanwhile") in caplog.text
        until(lambda: detector.detect(_images(4)) and detector.lanes == 2, 10, "the replica built again to join")
        assert f"{me}/lane2" in replicas.built
        assert "a model replica is built again: the worker goes on with 2 replica(s)" in caplog.text
        threads += detector.threads
        for _ in range(3):
            assert [int(d.xyxy[0, 0]) for d in detector.detect(_images(4))] == [0, 1, 2, 3]
        assert caplog.text.count("closed and built again") >= 2
    finally:
        detector.close()
    assert not any(t.is_alive() for t in threads)
    assert not [t for t in threading.enumerate() if t.name.startswith(f"{me}/lane")], "a lane left running"


class _Poisoned(StampDetector):
    """Fails on any batch with the frame stamped 3."""

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        if any(read_stamp(image) == (7, 3) for image in images):
            raise RuntimeError("poisoned frame")
        return super().detect(images)


@pytest.mark.timeout(30)
def test_frames_that_fail_every_replica_are_raised_after_every_lane_answered_and_no_replica_is_closed() -> None:
    detector = LanedDetector.build(_Poisoned, 2)
    try:
        with pytest.raises(RuntimeError, match="poisoned frame"):
            detector.detect(_images(4))  # (lane 1's part [2, 3], then on lane 0 too)
        assert detector.lanes == 2
        assert [int(d.xyxy[0, 0]) for d in detector.detect(_images(3))] == [0, 1, 2]
    finally:
        detector.close()
    assert not any(t.is_alive() for t in detector.threads)


@pytest.mark.timeout(30)
def test_a_worker_whose_lane_zero_replica_fails_goes_on_with_its_other_lane(caplog: pytest.LogCaptureFixture) -> None:
    """One frame a batch runs on lane 0 alone: when its replica fails on a frame lane 1 then
    runs, lane 0's is closed and lane 1 serves from then on."""
    built: list[StampDetector] = []

    def factory() -> Detector:
        detector = StampDetector(fail_on=2 if not threading.current_thread().name.endswith("/lane1") else None)
        built.append(detector)
        return detector

    detector = LanedDetector.build(factory, 2)
    try:
        assert [int(d.xyxy[0, 0]) for d in detector.detect(_images(1))] == [0]
        assert [int(d.xyxy[0, 0]) for d in detector.detect(_images(1))] == [0]
        assert detector.lanes == 1 and "another one ran: it is closed and built again" in caplog.text
        assert len(detector.detect(_images(2))) == 2
    finally:
        detector.close()


@pytest.mark.timeout(30)
def test_a_replica_that_fails_before_it_has_run_a_batch_is_not_built_again(caplog: pytest.LogCaptureFixture) -> None:
    replicas = _Replicas(fail_on=1)  # the helper lane's replica fails on its first batch
    detector = LanedDetector.build(replicas, 2)
    threads = detector.threads
    try:
        assert len(detector.detect(_images(4))) == 4
        assert detector.lanes == 1
        assert ("on 2 frame(s) another one ran: it is closed, the worker goes on with 1 replica(s)\n"
                in caplog.text), caplog.text
        assert len(detector.detect(_images(4))) == 4 and detector.lanes == 1
    finally:
        detector.close()
    assert not any(t.is_alive() for t in threads)


@pytest.mark.timeout(30)
def test_a_replica_that_cannot_be_built_fails_the_build_and_closes_the_others() -> None:
    replicas = _Replicas(fail_building="/lane2")
    with pytest.raises(RuntimeError, match="replica cannot be built"):
        LanedFactory(replicas, 3)()
    me = threading.current_thread().name
    assert sorted(replicas.built) == [me, f"{me}/lane1"]
    assert sorted(replicas.closed) == [me, f"{me}/lane1"]
    assert not [t for t in threading.enumerate() if t.name.startswith(f"{me}/lane")]


@pytest.mark.timeout(30)
def test_a_finished_worker_lends_its_lanes_replicas_and_all_to_the_others() -> None:
    idle = IdleLanes()
    first, second = _Replicas(), _Replicas()
    busy = LanedDetector.build(first, 1, idle)
    done = LanedDetector.build(second, 1, idle)
    threads = busy.threads + done.threads
    me = threading.current_thread().name
    try:
        assert sorted(first.built) == sorted(second.built) == [f"{me}/lane0"], \
            "with lending, each replica is built on a lane thread of its own, and no spare one is"
        assert busy.lanes == 1
        assert [int(d.xyxy[0, 0]) for d in busy.detect(_images(4))] == [0, 1, 2, 3]
        assert (first.batches(), second.batches()) == ([[4]], [[]]), "no lane is free while the other worker runs"
        done.close()  # that worker has finished: its lane, with its own replica, is free
        assert [int(d.xyxy[0, 0]) for d in busy.detect(_images(4))] == [0, 1, 2, 3]
        assert [int(d.xyxy[0, 0]) for d in busy.detect(_images(3))] == [0, 1, 2]
        assert first.batches() == [[4, 2, 2]] and second.batches() == [[2, 1]], \
            "the finished worker's replica runs the borrowed parts"
        assert second.built[f"{me}/lane0"].threads == [f"{me}/lane0"] * 2, "on the thread that built it"
        assert len(busy.detect(_images(1))) == 1 and second.batches() == [[2, 1]], "one frame needs no second lane"
        lent = idle.take(5)
        assert len(lent) == 1, "exactly the finished worker's lane is free between batches"
        idle.give(lent)
        assert second.closed == [], "a lent replica stays open while a worker is still running"
    finally:
        busy.close()
        done.close()
    assert idle.take(5) == [], "the last worker to close stops every lane"
    assert not any(t.is_alive() for t in threads)
    assert first.closed == second.closed == [f"{me}/lane0"], "each replica is closed on its own thread"


@pytest.mark.timeout(30)
def test_a_worker_whose_model_is_at_fault_lends_no_lane() -> None:
    """Discarded (its model at fault), a worker's detector stops its lanes instead of lending
    them; the other worker's lanes are still lent once it finishes."""
    idle = IdleLanes()
    busy = LanedDetector.build(_Replicas(), 1, idle)
    broken = LanedDetector.build(_Replicas(), 1, idle)
    threads = busy.threads + broken.threads
    try:
        broken.discard()
        assert idle.take(5) == [] and not any(t.is_alive() for t in broken.threads)
        assert len(busy.detect(_images(4))) == 4
    finally:
        busy.close()
    assert not any(t.is_alive() for t in threads)


@pytest.mark.timeout(30)
def test_a_borrowed_lane_whose_replica_fails_costs_the_borrower_nothing_and_is_not_lent_again(
        caplog: pytest.LogCaptureFixture) -> None:
    idle = IdleLanes()
    healthy, failing = _Replicas(), _Replicas(fail_on=1)  # the lent replica fails on its first batch
    busy = LanedDetector.build(healthy, 1, idle)
    done = LanedDetector.build(failing, 1, idle)
    threads = busy.threads + done.threads
    try:
        done.close()
        assert [int(d.xyxy[0, 0]) for d in busy.detect(_images(4))] == [0, 1, 2, 3], \
            "the borrower's own lane ran the failed part, in the batch's order"
        assert healthy.batches() == [[2, 2]] and failing.batches() == [[2]]
        assert "a lent model replica failed (RuntimeError: fake detector failure)" in caplog.text
        assert idle.take(5) == [], "the failed lane was stopped, not given back"
        assert [int(d.xyxy[0, 0]) for d in busy.detect(_images(4))] == [0, 1, 2, 3]
        assert healthy.batches() == [[2, 2, 4]]
    finally:
        busy.close()
    assert not any(t.is_alive() for t in threads)


@pytest.mark.timeout(30)
def test_a_part_that_fails_on_the_borrowers_own_lane_too_is_raised() -> None:
    idle = IdleLanes()
    # The lent replica fails its first batch; the borrower's own fails its second (the rerun).
    busy = LanedDetector.build(_Replicas(fail_on=2), 1, idle)
    done = LanedDetector.build(_Replicas(fail_on=1), 1, idle)
    threads = busy.threads + done.threads
    try:
        done.close()
        with pytest.raises(RuntimeError, match="fake detector failure"):
            busy.detect(_images(4))
    finally:
        busy.close()
    assert not any(t.is_alive() for t in threads)


@pytest.mark.parametrize(
    ("config", "cores", "expected", "expected_threads"),
    [
        ({"streams": ["a=synthetic:"], "model": "demo"}, 2, Lanes(2, 0), 1),  # one worker, two 1-thread replicas
        # 2 workers, 1 core each, and each lends its lane to the other once it is done
        ({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo"}, 2, Lanes(1, True), 1),
        # process workers lend their child processes (with the lanes inside them)
        ({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo", "worker_mode": "process"}, 2,
         Lanes(1, True), 1),
        ({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo", "worker_mode": "process"}, 8,
         Lanes(4, True), 1),
        ({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo"}, 8, Lanes(4), 1),  # 4 cores each, batch 4
        ({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo", "batch": 2}, 8, Lanes(2), 2),
        ({"streams": ["a=synthetic:", "b=synthetic:", "c=synthetic:"], "model": "demo"}, 4, Lanes(2, True), 1),
        ({"streams": ["a=rtsp://h/a"], "model": "demo"}, 2, Lanes(1), 2),  # live: one frame per pass, all threads
        ({"streams": ["a=rtsp://h/a", "b=rtsp://h/b"], "model": "demo"}, 2, Lanes(1), 2),  # 1 worker (OpenVINO)
        ({"streams": ["a=rtsp://h/a", "b=rtsp://h/b"], "model": "demo", "pytorch_cpu": "torch"}, 2, Lanes(1), 1),
        ({"streams": ["a=synthetic:"], "model": "demo", "threads": 2}, 2, Lanes(1), 2),  # the user divided the cores
        ({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo", "lanes": 1}, 2, Lanes(1), 1),
        ({"streams": ["a=synthetic:"], "model": "demo", "lanes": 3}, 6, Lanes(3), 2),
        ({"streams": ["a=synthetic:"], "model": "demo", "model_sharing": "locked"}, 2, Lanes(1), 2),
        ({"streams": ["a=synthetic:"], "model": "OV"}, 2, Lanes(2), 1),  # OpenVINO gains from replicas too
        ({"streams": ["a=rtsp://h/a"], "model": "OV"}, 2, Lanes(1), 2),
        ({"streams": ["a=rtsp://h/a"], "model": "OV", "tiles": "3x2"}, 2, Lanes(2), 1),  # 7 pictures a pass
        ({"streams": ["a=synthetic:"], "model": "m.onnx"}, 2, Lanes(1), 2),  # not measured: one model
    ],
)
def test_auto_lanes_and_the_threads_each_replica_gets(config: dict[str, object], cores: int, expected: Lanes,
                                                      expected_threads: int, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamyolo.pipeline.pipeline.cpu_count", lambda: cores)
    if config["model"] == "OV":
        folder = tmp_path / "m_openvino_model"
        folder.mkdir()
        (folder / "m.xml").write_text("<net/>")  # only its name is looked at here
        config = {**config, "model": str(folder)}
    elif config["model"] == "m.onnx":
        (tmp_path / "m.onnx").write_bytes(b"onnx")
        config = {**config, "model": str(tmp_path / "m.onnx")}
    cfg = build_config({**config, "device": "cpu"})
    streams, model = resolve_streams(cfg), resolve_model(cfg.model)
    workers = choose_workers(cfg, streams, model)
    lanes = choose_lanes(cfg, streams, model, workers)
    assert lanes == expected
    models = 1 if cfg.model_sharing == "locked" else workers * lanes.own
    assert torch_threads(cfg, models, "cpu") == expected_threads
    factories = detector_factories(cfg, model, workers, lanes)
    if cfg.worker_mode == "process":
        # Each worker: a lane here that drives its child process, lent to the others when done
        assert all(isinstance(f, LanedFactory) and f.lanes == 1 for f in factories)
        assert len({id(f.idle) for f in factories}) == 1 and None not in {f.idle for f in factories}  # type: ignore[attr-defined]
        children = [f.inner for f in factories]  # type: ignore[attr-defined]
        assert all(isinstance(c, ProcessDetectorFactory) for c in children)
        assert [c.worker_name for c in children] == [f"w{i}" for i in range(workers)]
        factories = [c.inner for c in children]  # what each child builds
        lanes = Lanes(lanes.own, False)  # inside a child, lanes are not lent
    laned = [f for f in factories if isinstance(f, LanedFactory)]
    if lanes == Lanes():
        assert not laned
    else:
        assert len(laned) == workers
        assert {f.lanes for f in laned} == {lanes.own}
        assert len({id(f.idle) for f in laned}) == 1 and (None in {f.idle for f in laned}) != lanes.lend, \
            "workers that lend their lanes share one pool of idle lanes"


def test_auto_lanes_rule_and_bad_lane_counts() -> None:
    assert auto_lanes("pytorch", cuda=True, live_only=False, share=8, batch=4) == 1
    assert auto_lanes("other", cuda=False, live_only=False, share=2, batch=4) == 1
    assert auto_lanes("pytorch", cuda=False, live_only=False, share=2, batch=1) == 1
    assert auto_lanes("openvino", cuda=False, live_only=False, share=3, batch=4) == 3
    assert lends_lanes(lanes=1, workers=3, batch=4, thread_workers=True)
    assert not lends_lanes(lanes=1, workers=1, batch=4, thread_workers=True)
    assert lends_lanes(lanes=2, workers=2, batch=4, thread_workers=False), "a child is lent whole: one lane"
    assert not lends_lanes(lanes=1, workers=2, batch=1, thread_workers=False)
    assert build_config({"streams": ["a"]}, environ={"STREAMYOLO_LANES": "2"}).lanes == 2
    for bad in ("several", 0, 65, 1.5):
        with pytest.raises(ConfigError, match=r"config key 'lanes': must be a whole number from 1 to 64, or 'auto'"):
            build_config({"streams": ["a"], "lanes": bad})
    with pytest.raises(ConfigError, match=r"config keys 'lanes' and 'model_sharing'"):
        build_config({"streams": ["a"], "lanes": 2, "model_sharing": "locked"})


class _Recording:
    """Wraps a factory and records which thread built each detector."""

    def __init__(self, inner: UltralyticsFactory) -> None:
        self.inner = inner
        self.built: list[str] = []
        self._lock = threading.Lock()

    def __call__(self) -> Detector:
        detector = self.inner()
        with self._lock:
            self.built.append(threading.current_thread().name)
        return detector


@pytest.mark.timeout(120)
def test_a_worker_on_two_lanes_builds_each_model_in_its_own_thread_and_matches_predict(
        clips: list[Path], random_model: Path) -> None:
    """End to end on real H.264 clips with a saved yolo26n: every frame once, in order, with
    the detections of a plain ``predict()`` on the same frame (same classes, 1 px, 0.01 conf).
    The clips differ in size, so a lane's part of a batch mixes shapes: the model runs each
    shape apart."""
    model = str(random_model)
    recorded = _Recording(UltralyticsFactory(model, DetectSettings(imgsz=320), "cpu"))
    setups = [StreamSetup(p.stem, open_source(SourceSpec(p.stem, str(p), SourceKind.FILE)), Overflow.BLOCK)
              for p in clips]
    with Pipeline(setups, LanedFactory(recorded, 2), workers=1, max_batch=4, torch_threads=1) as pipeline:
        results = list(pipeline.results())
    assert sorted(recorded.built) == ["inference:w0", "inference:w0/lane1"]
    for path in clips:
        assert [r.frame.seq for r in results if r.stream == path.stem] == list(range(12)), path.stem
    yolo = import_ultralytics().YOLO(model, task="detect")
    for result in results:
        reference = yolo.predict(result.frame.image, imgsz=320, conf=0.25, device="cpu", verbose=False)[0]
        assert_same_detections(result.detections, reference, 0.25, f"{result.stream}#{result.frame.seq}")
    assert sum(len(r.detections) for r in results) >= 12, "too few detections for the comparison to mean anything"


def test_the_lanes_flag_reaches_the_config() -> None:
    from streamyolo.cli import build_parser, run_overrides

    for given, expected in (("2", 2), ("auto", "auto")):
        args = build_parser().parse_args(["run", "--source", "synthetic:", "--lanes", given])
        assert build_config(overrides=run_overrides(args)).lanes == expected
    args = build_parser().parse_args(["run", "--source", "synthetic:", "--lanes", "0"])
    with pytest.raises(ConfigError, match=r"config key 'lanes'"):
        build_config(overrides=run_overrides(args))


_FIRST_RUNS_AT_ONCE = """
import threading
import numpy as np
from streamyolo.inference.offline import import_openvino
ov = import_openvino()
import openvino.opset13 as ops
image = ops.parameter([1, 3, 8, 8], ov.Type.u8)
model = ov.Model([ops.relu(ops.convert(image, ov.Type.f32))], [image])
compiled = [ov.Core().compile_model(model, "CPU") for _ in range(4)]
together = threading.Barrier(len(compiled))
def first_run(network):
    request = network.create_infer_request()
    frames = np.ones((1, 3, 8, 8), np.uint8)
    together.wait()
    request.infer({0: frames})
threads = [threading.Thread(target=first_run, args=(c,)) for c in compiled]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


@pytest.mark.timeout(300)
def test_threads_running_their_first_openvino_inference_at_once_never_deadlock(tmp_path: Path) -> None:
    # OpenVINO's binding sets up its numpy support on first use in a way that deadlocks two
    # threads that first use it at the same moment (lanes and workers warming up: see
    # streamyolo.inference.offline._ready_numpy_bridge). Without import_openvino readying it,
    # 5 of 30 fresh processes of this script hung, so 40 in a row all finish about 1 time in
    # 1000 (the old code failed here at the 7th and at the 5th). Each takes about 0.3 s; two
    # run at a time.
    script = tmp_path / "first_runs_at_once.py"
    script.write_text(_FIRST_RUNS_AT_ONCE)
    runs = 40

    def fresh_process(run: int) -> None:
        try:
            done = subprocess.run([PYTHON, str(script)], check=False, env=env_for_subprocess(), capture_output=True,
                                  text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fresh process {run} of {runs}: 4 threads running their first OpenVINO inference at once "
                        "deadlocked")
        assert done.returncode == 0, f"fresh process {run} of {runs} failed: {done.stderr}"

    with ThreadPoolExecutor(2) as pool:
        for outcome in [pool.submit(fresh_process, run) for run in range(1, runs + 1)]:
            outcome.result()
