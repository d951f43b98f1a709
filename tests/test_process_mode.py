"""``worker_mode: process``: each worker's model in a child process, frames through shared
memory. Same results and accounting as thread mode; a crashed child fails only its worker's
streams; nothing outlives the run — no child process, no shared-memory block.

Children that build the real model import torch and Ultralytics (seconds each), so those
runs are few and shared; the crash and protocol tests use fake detectors built in the child
from :mod:`tests.process_fakes`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from streamyolo.cli import build_parser, run_overrides
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, ModelError, WorkerError
from streamyolo.frames import Result
from streamyolo.inference.detector import Detector
from streamyolo.inference.lanes import IdleLanes, LanedFactory
from streamyolo.inference.models import resolve_model
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.assemble import Lanes, detector_factories
from streamyolo.pipeline.monitor import StatsWriter
from streamyolo.pipeline.report import StatusPrinter
from streamyolo.sinks.metrics import metrics_text
from streamyolo.sinks.web import WebViewer
from streamyolo.workers.process import (
    PROCESS_PREFIX,
    SEGMENT_PREFIX,
    SERVER_NAME,
    ChildProcessGone,
    ProcessDetectorFactory,
    RestartCounts,
    RestartingDetector,
)
from tests.helpers import PYTHON, ROOT, ScriptedSource, env_for_subprocess, read_jsonl, until
from tests.process_fakes import (
    ChecksumFactory,
    CrashingFactory,
    FailingFactory,
    HangingFactory,
    ImportedFactory,
    KilledBuildingFactory,
    PidStampFactory,
    PoisonedStampFactory,
    StampFactory,
    SuicidalFactory,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="looks into /proc and /dev/shm")

SHM = Path("/dev/shm")
TOKEN = "STREAMYOLO_TEST_TOKEN"


# -- what may be left behind -------------------------------------------------------------

def _is_helper(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker and the fork server children are forked from: one
    each per parent, for the parent's lifetime."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return "resource_tracker" in command or "forkserver" in command


def _children() -> dict[int, psutil.Process]:
    return {p.pid: p for p in psutil.Process().children(recursive=True) if not _is_helper(p)}


def _segments(pid: int) -> list[str]:
    return sorted(path.name for path in SHM.glob(f"{SEGMENT_PREFIX}{pid}_*"))


def _with_token(token: str) -> list[psutil.Process]:
    """Every process started under this test token (children inherit the environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(TOKEN) == token:
                found.append(process)
        except psutil.Error:
            continue
    return found


def _still_running(pids: list[int], timeout: float) -> list[int]:
    """Wait (on pidfds, no polling) for processes that are not our children to exit."""
    deadline = time.monotonic() + timeout
    running = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                running.append(pid)
        finally:
            os.close(fd)
    return running


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """No child process (reaped, not a zombie) and no shared-memory block outlives a test."""
    before = set(_children())
    yield
    left = {pid: p for pid, p in _children().items() if pid not in before}
    assert not left, f"processes outlived the test: {[(p.pid, p.name()) for p in left.values()]}"
    assert _segments(os.getpid()) == [], "shared memory outlived the test"


def _streamyolo(*args: str, token: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI; return its outcome and its pid (which names its shared-memory blocks)."""
    with subprocess.Popen([PYTHON, "-m", "streamyolo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          encoding="utf-8", env={**env_for_subprocess(), TOKEN: token}, cwd=ROOT) as run:
        try:
            out, err = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            raise
    return subprocess.CompletedProcess(run.args, run.returncode, out, err), run.pid


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _checksum_box(image: np.ndarray, batch: int) -> list[float]:
    import zlib

    crc = zlib.crc32(np.ascontiguousarray(image).tobytes())
    return [image.shape[0], image.shape[1], crc & 0xFFFF, crc >> 16, batch]


# -- config and CLI ----------------------------------------------------------------------

def test_worker_mode_is_a_config_key_and_a_flag() -> None:
    assert build_config().worker_mode == "thread"
    args = build_parser().parse_args(["run", "--source", "synthetic:", "--worker-mode", "process"])
    assert build_config(overrides=run_overrides(args)).worker_mode == "process"
    assert build_config(environ={"STREAMYOLO_WORKER_MODE": "process"}).worker_mode == "process"
    with pytest.raises(ConfigError, match="config key 'worker_mode'"):
        build_config(overrides={"worker_mode": "fork"})


def test_process_restarts_is_a_config_key_and_a_flag_and_reaches_every_child() -> None:
    assert build_config().process_restarts == 3
    args = build_parser().parse_args(["run", "--source", "synthetic:", "--worker-mode", "process",
                                      "--process-restarts", "0"])
    cfg = build_config(overrides=run_overrides(args))
    assert cfg.process_restarts == 0
    assert build_config(environ={"STREAMYOLO_PROCESS_RESTARTS": "5"}).process_restarts == 5
    with pytest.raises(ConfigError, match="config key 'process_restarts'"):
        build_config(overrides={"process_restarts": -1})
    cfg = build_config({"streams": ["a=synthetic:", "b=synthetic:"], "model": "demo", "device": "cpu",
                        "worker_mode": "process", "workers": 2, "lanes": 1, "process_restarts": 7})
    counts = RestartCounts(["w0", "w1"])
    factories = detector_factories(cfg, resolve_model(cfg.model), 2, Lanes(), counts)
    assert [(f.worker_name, f.restarts, f.restart_counts) for f in factories] == [  # type: ignore[attr-defined]
        ("w0", 7, counts), ("w1", 7, counts)]


def test_locked_sharing_cannot_cross_processes() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(overrides={"worker_mode": "process", "model_sharing": "locked"})
    message = str(caught.value)
    assert "'model_sharing'" in message and "'worker_mode'" in message and "\n" not in message


# -- the handle and its child, with fake detectors ---------------------------------------

@pytest.mark.timeout(120)
def test_children_are_forked_from_a_server_that_has_imported_what_they_need() -> None:
    """Each child starts with Ultralytics, torch and OpenVINO in memory, forked from the fork
    server (named so), instead of importing them again; so does a child started again."""
    first = ProcessDetectorFactory(ImportedFactory(), "t1")()
    try:
        again = ProcessDetectorFactory(ImportedFactory(), "t2")()
        try:
            for detector in (first, again):
                assert dict(detector.names) == {0: "yes", 1: "yes", 2: "yes"}, ImportedFactory.modules
                assert detector.pid is not None
                server = psutil.Process(detector.pid).parent()
                assert server is not None and server.name() == SERVER_NAME
                assert server.ppid() == os.getpid()
        finally:
            again.close()
    finally:
        first.close()


_APPLICATION_PRELOAD = """
import multiprocessing
from streamyolo.workers.process import ProcessDetectorFactory
from tests.process_fakes import ImportedFactory

if __name__ == "__main__":
    multiprocessing.set_forkserver_preload(["wave"])  # the application's own, set first
    detector = ProcessDetectorFactory(ImportedFactory(("wave", "ultralytics")), "t")()
    print(sorted(detector.names.values()))
    detector.close()
"""


@pytest.mark.timeout(120)
def test_an_applications_own_fork_server_preloads_stay_beside_ours(tmp_path: Path) -> None:
    """``multiprocessing`` keeps one preload list per process: ours is added to it, not put
    in its place, so an application's own fork-server children keep what it preloads."""
    script = tmp_path / "app.py"
    script.write_text(_APPLICATION_PRELOAD)
    done = subprocess.run([PYTHON, str(script)], cwd=ROOT, env=env_for_subprocess(), capture_output=True, check=False,
                          text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['yes', 'yes']", done.stdout + done.stderr


def test_the_fork_servers_boot_module_does_nothing_imported_elsewhere() -> None:
    """Only the fork server may ignore Ctrl-C and take the server's name; a collector or a
    documentation tool importing the module must not."""
    import importlib

    import streamyolo.workers.child_boot as boot

    # Ctrl-C heard, whatever the runner's (one started in the background from a script ignores it)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        handler, name = signal.getsignal(signal.SIGINT), psutil.Process().name()
        importlib.reload(boot)
        assert (signal.getsignal(signal.SIGINT), psutil.Process().name()) == (handler, name)
        assert handler is not signal.SIG_IGN and name != SERVER_NAME
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(60)
def test_pixels_reach_the_child_exactly_and_the_block_grows() -> None:
    detector = ProcessDetectorFactory(ChecksumFactory(), "t0")()
    try:
        assert detector.pid is not None
        assert psutil.Process(detector.pid).name() == f"{PROCESS_PREFIX}t0"
        assert detector.names[1] == "batch1"
        wide = _image(48, 130, seed=9)
        batches = [  # (images, whether the block must grow)
            ([_image(48, 64, seed=1)], True),                              # the first block: 1 MiB
            ([_image(48, 64, seed=s) for s in range(2, 6)], False),        # fits
            ([wide[:, ::2]], False),                                       # not contiguous
            ([_image(480, 640, seed=7), _image(480, 640, seed=8)], True),  # 1.8 MB: grows to 2 MiB
            ([_image(480, 640, seed=s) for s in range(11, 15)], True),     # 3.7 MB: grows to 4 MiB
            ([_image(48, 64, seed=10)], False),                            # small again: the block stays
        ]
        previous: list[str] = []
        for batch, grows in batches:
            found = detector.detect(batch)
            names = _segments(os.getpid())
            assert len(names) == 1, f"one block at a time: {names}"
            assert (names != previous) == grows, (names, previous)
            previous = names
            assert len(found) == len(batch)
            for image, detections in zip(batch, found, strict=True):
                assert [*detections.xyxy[0].tolist(), int(detections.cls[0])] == _checksum_box(image, len(batch))
        assert (SHM / previous[0]).stat().st_size == 4 << 20
        assert detector.detect([]) == []
    finally:
        detector.close()
    assert detector.closed
    detector.close()  # idempotent
    with pytest.raises(WorkerError, match="closed"):
        detector.detect([_image(8, 8, seed=0)])


@pytest.mark.timeout(60)
def test_a_full_dev_shm_is_a_clear_error_not_a_sigbus(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    detector = ProcessDetectorFactory(ChecksumFactory(), "t6")()
    try:
        monkeypatch.setattr(os, "posix_fallocate", no_space)
        with pytest.raises(WorkerError, match=r"worker 't6': cannot reserve 1 MiB of shared memory \(No space left"):
            detector.detect([_image(48, 64, seed=0)])
        assert _segments(os.getpid()) == []
    finally:
        detector.close()


def _kill(pid: int) -> None:
    """SIGKILL the child ``pid`` and wait for it to be dead (not yet reaped)."""
    child = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10, "the child's death")


@pytest.mark.timeout(60)
def test_a_killed_child_is_reported_with_its_signal_and_cleaned_up_at_once() -> None:
    detector = ProcessDetectorFactory(StampFactory(), "t1")()
    image = _image(48, 64, seed=0)
    assert len(detector.detect([image])) == 1
    assert _segments(os.getpid())
    assert detector.pid is not None
    _kill(detector.pid)
    with pytest.raises(WorkerError, match=r"^inference process of worker 't1' died while waiting for a batch "
                                          r"\(signal 9, SIGKILL\)$") as caught:
        detector.detect([image])
    assert isinstance(caught.value, ChildProcessGone) and caught.value.idle
    assert detector.closed
    assert _segments(os.getpid()) == [], "a crash must unlink the shared memory right away"
    detector.close()


@pytest.mark.timeout(60)
def test_with_restarts_a_killed_child_is_replaced_and_the_batch_runs_on_the_new_one(
        caplog: pytest.LogCaptureFixture) -> None:
    detector = ProcessDetectorFactory(ChecksumFactory(), "t7", restarts=2)()
    assert isinstance(detector, RestartingDetector)
    images = [_image(48, 64, seed=0), _image(48, 64, seed=1)]
    try:
        first = detector.pid
        assert first is not None and len(detector.detect(images)) == 2
        _kill(first)
        found = detector.detect(images)
        assert [[*d.xyxy[0].tolist(), int(d.cls[0])] for d in found] == [_checksum_box(i, 2) for i in images], \
            "the new child ran the very batch the dead one was sent"
        assert detector.restarted == 1 and detector.pid not in (None, first)
        assert psutil.Process(detector.pid).name() == f"{PROCESS_PREFIX}t7"
        assert "inference process of worker 't7' died while waiting for a batch (signal 9, SIGKILL); starting a new " \
               "one (restart 1 of at most 2 in a row)" in caplog.text
    finally:
        detector.close()


@pytest.mark.timeout(90)
def test_with_restarts_a_child_killed_as_it_builds_its_model_is_a_restart_too(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The first child built, killed mid-batch; the next two killed as they load their model
    # (the OOM killer strikes most then): restarts 1, 2 and 3 of 3, and the batch runs on the fourth.
    detector = ProcessDetectorFactory(KilledBuildingFactory(str(tmp_path / "built"), (2, 3)), "t9", restarts=3)()
    assert isinstance(detector, RestartingDetector)
    images = [_image(48, 64, seed=0)]
    try:
        first = detector.pid
        assert first is not None and len(detector.detect(images)) == 1
        os.kill(first, signal.SIGKILL)
        found = detector.detect(images)
        assert [[*d.xyxy[0].tolist(), int(d.cls[0])] for d in found] == [_checksum_box(images[0], 1)]
        assert detector.restarted == 3 and (tmp_path / "built").read_text() == "4"
        assert detector.names[1] == "batch1"
        for n in (2, 3):
            assert "inference process of worker 't9' died while building its model (signal 9, SIGKILL); starting a " \
                   f"new one (restart {n} of at most 3 in a row)" in caplog.text
        assert len(detector.detect(images)) == 1  # (the count starts again)
    finally:
        detector.close()
    # The very first child killed as it loads: started again; killed every time: a model error.
    detector = ProcessDetectorFactory(KilledBuildingFactory(str(tmp_path / "first"), (1,)), "t10", restarts=1)()
    try:
        assert isinstance(detector, RestartingDetector) and detector.restarted == 1
        assert len(detector.detect(images)) == 1
    finally:
        detector.close()
    with pytest.raises(ModelError, match=r"^inference process of worker 't11' died while building its model "
                                         r"\(signal 9, SIGKILL\); not restarted: 1 restart\(s\) in a row already "
                                         r"failed to build its model$"):
        ProcessDetectorFactory(KilledBuildingFactory(str(tmp_path / "never"), (1, 2)), "t11", restarts=1)()


@pytest.mark.timeout(60)
def test_a_batch_that_kills_every_child_fails_after_the_restarts_in_a_row() -> None:
    detector = ProcessDetectorFactory(SuicidalFactory(), "t8", restarts=2)()
    assert isinstance(detector, RestartingDetector)
    try:
        with pytest.raises(ChildProcessGone, match=r"^inference process of worker 't8' died while running a batch "
                                                   r"\(signal 9, SIGKILL\); not restarted: 2 restart\(s\) in a row "
                                                   r"already failed this batch$"):
            detector.detect([_image(48, 64, seed=0)])
        assert detector.restarted == 2
    finally:
        detector.close()


@pytest.mark.timeout(60)
def test_a_hung_child_is_killed_after_the_reply_timeout() -> None:
    detector = ProcessDetectorFactory(HangingFactory(), "t2", reply_timeout=1.0)()
    with pytest.raises(WorkerError, match="worker 't2' did not answer within 1 s while running a batch; killed it"):
        detector.detect([_image(48, 64, seed=0)])
    assert detector.closed


@pytest.mark.timeout(60)
def test_a_model_error_in_the_child_is_a_model_error_here() -> None:
    detector = ProcessDetectorFactory(StampFactory(fail_on=1), "t3")()
    try:
        with pytest.raises(ModelError, match="model of worker 't3' failed a batch: RuntimeError: fake detector"):
            detector.detect([_image(48, 64, seed=0)])
    finally:
        detector.close()


@pytest.mark.timeout(60)
def test_a_child_that_dies_while_building_is_a_model_error() -> None:
    with pytest.raises(ModelError, match=r"^inference process of worker 't4' died while building its model "
                                         r"\(signal 9, SIGKILL\)$"):
        ProcessDetectorFactory(CrashingFactory(), "t4")()


@pytest.mark.timeout(60)
def test_a_factory_that_cannot_be_sent_to_a_process_is_a_model_error() -> None:
    def local_factory() -> Detector:  # a local function does not pickle
        return ChecksumFactory()()

    with pytest.raises(ModelError, match="cannot start the inference process of worker 't5'"):
        ProcessDetectorFactory(local_factory, "t5")()


@pytest.mark.timeout(60)
def test_a_script_without_a_main_guard_gets_told(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from streamyolo.workers.process import ProcessDetectorFactory\n"
        "from tests.process_fakes import StampFactory\n"
        "ProcessDetectorFactory(StampFactory(), 'w0')()\n"
    )
    done = subprocess.run([PYTHON, str(script)], capture_output=True, encoding="utf-8", timeout=60,
                          env=env_for_subprocess(), cwd=ROOT, check=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "died while starting (exit code 1)" in last and "if __name__ == \"__main__\":" in last, done.stderr


@pytest.mark.timeout(60)
def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\n"
        "import numpy as np\n"
        "from streamyolo.workers.process import ProcessDetectorFactory\n"
        "from tests.process_fakes import StampFactory\n"
        "if __name__ == '__main__':\n"
        "    detector = ProcessDetectorFactory(StampFactory(), 'w9')()\n"
        "    detector.detect([np.zeros((48, 64, 3), np.uint8)])\n"
        "    print(detector.pid, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    token = uuid.uuid4().hex
    parent = subprocess.Popen([PYTHON, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, encoding="utf-8", env={**env_for_subprocess(), TOKEN: token},
                              cwd=ROOT)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), parent.communicate(timeout=30)[1]
        child = psutil.Process(int(line))
        assert child.name() == f"{PROCESS_PREFIX}w9"
        assert _segments(parent.pid)
        family = [p.pid for p in _with_token(token) if p.pid != parent.pid]  # child, fork server, tracker
        parent.kill()
        parent.communicate(timeout=30)
        assert _still_running(family, timeout=20) == [], "the child must not outlive its parent"
        assert _segments(parent.pid) == [], "the resource tracker unlinks what a killed parent left"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate(timeout=30)


# -- the pipeline in process mode --------------------------------------------------------

class _KillChildOnFirstResult:
    """A sink that SIGKILLs the inference process of ``worker`` when its first result arrives
    (from that worker's own thread, so the next batch is the one that finds it dead, before
    it is sent: the child is gone when it returns)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.killed = threading.Event()

    def open(self) -> None:
        pass

    def write(self, result: Result) -> None:
        if result.worker != self.worker or self.killed.is_set():
            return
        (child,) = [c for c in psutil.Process().children(recursive=True) if c.name() == PROCESS_PREFIX + self.worker]
        os.kill(child.pid, signal.SIGKILL)
        until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10, "the child's death")
        self.killed.set()

    def close(self) -> None:
        pass


@pytest.mark.timeout(90)
def test_sigkill_of_an_idle_child_without_restarts_fails_its_worker_whose_streams_go_on_with_the_other() -> None:
    """No restarts: w1's child killed between two batches fails w1; the batch that found it
    dead had no part in it, so no stream fails: w1's files go on with w0 (the frames of that
    batch lost and counted), and the run's end says why w1 failed."""
    sources = [ScriptedSource(f"s{i}", 40) for i in range(4)]
    factories = [ProcessDetectorFactory(StampFactory(delay=0.02), f"w{i}") for i in range(2)]  # (w0 still busy)
    killer = _KillChildOnFirstResult("w1")
    pipeline = Pipeline([StreamSetup(s.name, s) for s in sources], factories, workers=2, max_batch=2, sinks=[killer],
                        sharing=[0, 0])
    with pytest.raises(WorkerError, match=r"worker 'w1'.*died while waiting for a batch \(signal 9, SIGKILL\)"):
        pipeline.run()
    assert killer.killed.is_set()
    summary = pipeline.summary().streams
    for name in ("s0", "s2"):  # worker w0's streams
        assert (summary[name].state, summary[name].processed, summary[name].dropped, summary[name].error) == (
            "ended", 40, 0, None)
    for name in ("s1", "s3"):  # worker w1's streams, on w0 after w1 failed
        report = summary[name]
        assert (report.state, report.error) == ("ended", None), report
    lost = [summary[name].dropped for name in ("s1", "s3")]
    assert 1 <= sum(lost) <= 2, f"the batch that found the child dead: {lost}"
    for name, report in summary.items():
        assert report.captured == report.processed + report.dropped, f"{name}: {report}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("max_batch", [1, 2])
def test_a_files_frame_that_kills_every_child_fails_that_file_alone_and_the_worker_goes_on(
        max_batch: int, caplog: pytest.LogCaptureFixture) -> None:
    """With a restart, frames of ``bad`` from its 20th on kill the worker's child every time
    (and the new one the restart starts): the batch runs again stream by stream on new
    children (``bad``'s alone only when the batch had ``good``'s too), then the model on a
    picture it ran on before, which goes through: ``bad`` fails alone, ``good`` gets every
    frame, the worker goes on and nothing is raised."""
    sources = {name: ScriptedSource(name, 40, size=(160, 96)) for name in ("good", "bad")}
    factory = ProcessDetectorFactory(PoisonedStampFactory("bad", 20), "w0", restarts=1)
    pipeline = Pipeline([StreamSetup(name, s) for name, s in sources.items()], factory, workers=1,
                        max_batch=max_batch)
    with caplog.at_level(logging.ERROR):
        summary = pipeline.run()
    bad, good = summary.streams["bad"], summary.streams["good"]
    assert (good.state, good.processed, good.dropped) == ("ended", 40, 0), good
    assert (bad.state, bad.processed) == ("failed", 20), bad
    assert bad.error == ("the model of inference worker 'w0' fails on its frames: inference process of worker 'w0' "
                         "died while running a batch (signal 9, SIGKILL)")
    assert any(m.startswith("stream 'bad' failed: the model of inference worker 'w0' fails on its frames")
               for m in caplog.messages), caplog.messages
    for name, report in summary.streams.items():
        assert report.captured == report.processed + report.dropped, f"{name}: {report}"


@pytest.mark.timeout(90)
def test_with_restarts_sigkill_of_a_child_loses_no_frame(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    sources = [ScriptedSource(f"s{i}", 40) for i in range(4)]
    counts = RestartCounts(["w0", "w1"])
    factories = [ProcessDetectorFactory(StampFactory(), f"w{i}", restarts=1, restart_counts=counts) for i in range(2)]
    killer = _KillChildOnFirstResult("w1")
    web, status = WebViewer("127.0.0.1:0"), StatusPrinter(io.StringIO(), plain_every=0)
    pipeline = Pipeline([StreamSetup(s.name, s) for s in sources], factories, workers=2, max_batch=2, sinks=[killer],
                        restart_counts=counts, web=web, stats=StatsWriter(tmp_path / "stats.jsonl"),
                        status=status, status_interval=0.05)
    pipeline.run()
    assert killer.killed.is_set()
    summary = pipeline.summary()
    for name, report in summary.streams.items():
        assert (report.state, report.captured, report.processed, report.dropped, report.error) == (
            "ended", 40, 40, 0, None), name
    assert "worker 'w1' died while waiting for a batch (signal 9, SIGKILL); starting a new one" in caplog.text
    # The summary says so too: in its file, and under its table.
    assert summary.worker_restarts == {"w0": 0, "w1": 1}
    assert summary.to_dict()["workers"] == {"w0": {"restarts": 0}, "w1": {"restarts": 1}}
    assert summary.table().splitlines()[-1] == (
        "worker w1: its inference process was started again 1 time (it died or hung; see the log)")
    # And so do the live status (while the new child started), the stats file and the web page's status.
    assert "worker w1: its inference process was started again 1 time" in status.out.getvalue()  # type: ignore[attr-defined]
    assert read_jsonl(tmp_path / "stats.jsonl")[-1]["workers"] == {"w0": {"restarts": 0}, "w1": {"restarts": 1}}
    assert web.status()["workers"] == {"w0": {"restarts": 0}, "w1": {"restarts": 1}}
    metrics = metrics_text(web.status()).splitlines()
    assert 'streamyolo_worker_restarts_total{worker="w1"} 1' in metrics
    assert 'streamyolo_worker_restarts_total{worker="w0"} 0' in metrics


class _KillLentChild:
    """A sink that SIGKILLs worker ``lender``'s inference process when ``stream`` reaches frame
    ``at``: by then that worker has finished and lent its child to the other worker, which
    has given it back between batches (the sink runs on the borrower's thread)."""

    def __init__(self, lender: str, stream: str, at: int) -> None:
        self.lender, self.stream, self.at = lender, stream, at
        self.killed = threading.Event()

    def open(self) -> None:
        pass

    def write(self, result: Result) -> None:
        if result.stream != self.stream or result.frame.seq != self.at:
            return
        (child,) = [c for c in psutil.Process().children(recursive=True) if c.name() == PROCESS_PREFIX + self.lender]
        os.kill(child.pid, signal.SIGKILL)
        self.killed.set()

    def close(self) -> None:
        pass


def _lending(sinks: list[Any]) -> Pipeline:
    """Two process workers that lend: w0 gets a 4-frame stream and finishes at once, w1 an
    80-frame one (each batch takes 10 ms)."""
    sources = [ScriptedSource("short", 4), ScriptedSource("long", 80)]
    idle = IdleLanes()
    factories = [LanedFactory(ProcessDetectorFactory(PidStampFactory(delay=0.01), f"w{i}"), 1, idle)
                 for i in range(2)]
    return Pipeline([StreamSetup(s.name, s) for s in sources], factories, workers=2, max_batch=4, sinks=sinks)


@pytest.mark.timeout(90)
def test_a_finished_process_worker_lends_its_child_to_the_other_worker() -> None:
    with _lending([]) as pipeline:
        results = list(pipeline.results())
    pids = {name: {int(r.detections.xyxy[0, 1]) for r in results if r.stream == name} for name in ("short", "long")}
    (lender,) = pids["short"]
    assert lender in pids["long"] and len(pids["long"]) == 2, \
        f"w0's child ran part of w1's batches once w0 was done: {pids}"
    for name, count in (("short", 4), ("long", 80)):
        assert [r.frame.seq for r in results if r.stream == name] == list(range(count)), name
        report = pipeline.summary().streams[name]
        assert (report.state, report.processed, report.dropped, report.error) == ("ended", count, 0, None)


@pytest.mark.timeout(90)
def test_a_lent_child_that_dies_costs_the_borrower_nothing(caplog: pytest.LogCaptureFixture) -> None:
    killer = _KillLentChild("w0", "long", at=40)
    pipeline = _lending([killer])
    pipeline.run()
    assert killer.killed.is_set()
    for name, count in (("short", 4), ("long", 80)):
        report = pipeline.summary().streams[name]
        assert (report.state, report.processed, report.dropped, report.error) == ("ended", count, 0, None), name
    warned = [r.getMessage() for r in caplog.records if "a lent model replica failed" in r.getMessage()]
    assert len(warned) == 1 and "worker 'w0'" in warned[0] and "signal 9" in warned[0], caplog.text


@pytest.mark.timeout(90)
def test_a_model_that_fails_to_build_in_its_child_fails_start_with_its_message() -> None:
    sources = [ScriptedSource(f"s{i}", 10) for i in range(2)]
    factories = [ProcessDetectorFactory(StampFactory(), "w0"), ProcessDetectorFactory(FailingFactory(), "w1")]
    pipeline = Pipeline([StreamSetup(s.name, s) for s in sources], factories, workers=2)
    with pytest.raises(ModelError, match=r"^cannot load model 'broken\.pt': scripted failure$"):
        pipeline.start()
    assert all(s.reads == 0 for s in sources), "capture must not start when a model could not be built"


# -- real model: thread mode and process mode side by side -------------------------------

@dataclass
class _Runs:
    thread_summary: dict[str, Any]
    thread_lines: list[dict[str, Any]]
    process: subprocess.CompletedProcess[str]
    process_summary: dict[str, Any]
    process_lines: list[dict[str, Any]]
    left_running: list[int]
    left_segments: list[str]


@pytest.fixture(scope="module")
def both_modes(clips: list[Path], random_model: Path, tmp_path_factory: pytest.TempPathFactory) -> _Runs:
    """The four clips through the random-weight yolo26n, two workers: in this process with
    thread workers, and through the CLI with ``--worker-mode process``."""
    out = tmp_path_factory.mktemp("modes")
    Pipeline.from_config({"streams": [str(p) for p in clips], "model": str(random_model), "imgsz": 160,
                          "workers": 2, "batch": 4, "device": "cpu", "display": False,
                          "jsonl": str(out / "thread.jsonl"), "summary": str(out / "thread.json")}).run()
    token = uuid.uuid4().hex
    sources = [arg for p in clips for arg in ("--source", str(p))]
    done, pid = _streamyolo("run", *sources, "--model", str(random_model), "--imgsz", "160", "--workers", "2",
                       "--batch", "4", "--device", "cpu", "--no-display", "--status-interval", "0",
                       "--worker-mode", "process", "--jsonl", str(out / "process.jsonl"),
                       "--summary", str(out / "process.json"), token=token)
    left = _still_running([p.pid for p in _with_token(token)], timeout=20)
    return _Runs(
        thread_summary=json.loads((out / "thread.json").read_text()),
        thread_lines=read_jsonl(out / "thread.jsonl"),
        process=done,
        process_summary=json.loads((out / "process.json").read_text()) if (out / "process.json").exists() else {},
        process_lines=read_jsonl(out / "process.jsonl") if (out / "process.jsonl").exists() else [],
        left_running=left,
        left_segments=_segments(pid),
    )


def _same_frame(thread: dict[str, Any], process: dict[str, Any]) -> None:
    """Equal apart from timing; boxes may differ by float noise, and a box within 0.01 of
    the threshold may be missing on one side."""
    where = f"{thread['stream']}#{thread['seq']}"
    assert (process["stream"], process["seq"], process["pts"]) == (thread["stream"], thread["seq"], thread["pts"])
    unmatched = list(process["detections"])
    for box in thread["detections"]:
        match = next((b for b in unmatched if b["cls"] == box["cls"] and b["name"] == box["name"]
                      and max(abs(x - y) for x, y in zip(b["xyxy"], box["xyxy"], strict=True)) <= 0.05
                      and abs(b["conf"] - box["conf"]) <= 0.002), None)
        if match is not None:
            unmatched.remove(match)
        else:
            assert box["conf"] < 0.26, f"{where}: thread-mode box {box} missing in process mode"
    assert all(b["conf"] < 0.26 for b in unmatched), f"{where}: extra boxes in process mode: {unmatched}"


@pytest.mark.timeout(300)
def test_process_mode_gives_thread_mode_accounting_and_detections(both_modes: _Runs, clips: list[Path]) -> None:
    assert both_modes.process.returncode == 0, both_modes.process.stderr
    assert both_modes.process_summary["streams"] == both_modes.thread_summary["streams"]
    assert both_modes.process_summary["workers"] == {"w0": {"restarts": 0}, "w1": {"restarts": 0}}
    assert "workers" not in both_modes.thread_summary
    for report in both_modes.process_summary["streams"].values():
        assert (report["captured"], report["processed"], report["dropped"], report["state"]) == (12, 12, 0, "ended")
    key = lambda line: (line["stream"], line["seq"])  # noqa: E731
    thread_lines = sorted(both_modes.thread_lines, key=key)
    process_lines = sorted(both_modes.process_lines, key=key)
    assert [key(line) for line in process_lines] == [key(line) for line in thread_lines]
    assert len(thread_lines) == 4 * 12
    for thread, process in zip(thread_lines, process_lines, strict=True):
        _same_frame(thread, process)
    assert sum(len(line["detections"]) for line in process_lines) >= 12, "too few boxes to compare"
    for name in (p.stem for p in clips):  # per-stream order as written
        assert [line["seq"] for line in both_modes.process_lines if line["stream"] == name] == list(range(12))


@pytest.mark.timeout(300)
def test_a_process_mode_run_leaves_no_process_no_segment_and_no_tracker_warning(both_modes: _Runs) -> None:
    assert both_modes.process.returncode == 0, both_modes.process.stderr
    assert both_modes.left_running == [], "processes outlived the run"
    assert both_modes.left_segments == [], "shared memory outlived the run"
    assert "leaked" not in both_modes.process.stderr and "resource_tracker" not in both_modes.process.stderr, (
        both_modes.process.stderr)
    assert "Traceback" not in both_modes.process.stderr


@pytest.mark.timeout(240)
def test_cli_model_that_fails_to_load_in_the_children_is_one_line_and_exit_2(clips: list[Path],
                                                                              tmp_path: Path) -> None:
    from streamyolo.inference.models import DEMO_MODEL_PATH

    damaged = tmp_path / "damaged.pt"  # a checkpoint cut short: it looks like one until the children load it
    damaged.write_bytes(DEMO_MODEL_PATH.read_bytes()[:4096])
    token = uuid.uuid4().hex
    done, pid = _streamyolo("run", "--source", str(clips[0]), "--source", str(clips[1]), "--model", str(damaged),
                       "--workers", "2", "--worker-mode", "process", "--no-display", token=token)
    assert done.returncode == 2, (done.returncode, done.stderr)
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"model {str(damaged)!r}: not a PyTorch model file" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "leaked" not in done.stderr, done.stderr
    assert _still_running([p.pid for p in _with_token(token)], timeout=20) == []
    assert _segments(pid) == []


def _start_in_own_session(args: list[str], token: str) -> subprocess.Popen[str]:
    """The CLI in a process group of its own, so that a signal to the group reaches it and
    its children the way a terminal's Ctrl-C does — and nothing of pytest."""
    return subprocess.Popen([PYTHON, "-m", "streamyolo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            encoding="utf-8", env={**env_for_subprocess(), TOKEN: token}, cwd=ROOT,
                            start_new_session=True)


def _endless_run(model: Path, out: Path) -> list[str]:
    return ["run", "--source", "a=synthetic:?size=320x240", "--source", "b=synthetic:?size=320x240",
            "--model", str(model), "--imgsz", "96", "--workers", "2", "--worker-mode", "process",
            "--jsonl", str(out / "det.jsonl"), "--summary", str(out / "summary.json"), "--no-display",
            "--status-interval", "0"]


def _started_children(token: str) -> list[psutil.Process]:
    """The worker processes started under ``token``, from their first instruction on (before
    they name themselves): spawned, or forked by the fork server."""
    found = []
    for process in _with_token(token):
        try:
            parent = process.parent()
            if "spawn_main" in " ".join(process.cmdline()) or (
                    parent is not None and "forkserver" in " ".join(parent.cmdline())):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.timeout(180)
def test_ctrl_c_to_the_process_group_mid_run_stops_gracefully(random_model: Path, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    run = _start_in_own_session(_endless_run(random_model, tmp_path), token)
    try:
        jsonl = tmp_path / "det.jsonl"
        waiter = threading.Event()
        for _ in range(1200):  # frames flowing, from both workers' children
            if jsonl.exists() and {line.split('"')[3] for line in jsonl.read_text().splitlines()} == {"a", "b"}:
                break
            assert run.poll() is None, run.communicate()[1]
            waiter.wait(0.1)
        os.killpg(run.pid, signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "leaked" not in stderr, stderr
    streams = json.loads((tmp_path / "summary.json").read_text())["streams"]
    for name, report in streams.items():
        assert (report["state"], report["error"], report["dropped"]) == ("stopped", None, 0), f"{name}: {report}"
        assert report["captured"] == report["processed"] > 0
    assert _still_running([p.pid for p in _with_token(token)], timeout=20) == []
    assert _segments(run.pid) == []


@pytest.mark.timeout(180)
def test_ctrl_c_while_the_children_start_leaves_nothing_behind(random_model: Path, tmp_path: Path) -> None:
    """Ctrl-C reaches the children while they are still starting up (before they can
    ignore it): they must not die of it, and the run must end cleanly."""
    token = uuid.uuid4().hex
    run = _start_in_own_session(_endless_run(random_model, tmp_path), token)
    try:
        waiter = threading.Event()
        for _ in range(1200):
            if len(_started_children(token)) == 2:
                break
            assert run.poll() is None, run.communicate()[1]
            waiter.wait(0.05)
        os.killpg(run.pid, signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode in (0, 130), stderr  # 130: interrupted before the run started
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "leaked" not in stderr, stderr
    assert _still_running([p.pid for p in _with_token(token)], timeout=20) == []
    assert _segments(run.pid) == []
