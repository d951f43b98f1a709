"""Process workers: each inference worker's model runs in a child process of its own.

``worker_mode: process`` keeps everything but the model in the main process — capture, the
ring buffers, the :class:`~streamyolo.workers.inference.InferenceWorker` threads with their
batching, ordering and accounting, the sinks. Only the detector changes:
:class:`ProcessDetectorFactory` wraps a worker's own factory, and calling it (inside the
worker thread, like any factory) starts a child process that builds and warms up the model
with that factory and then serves batches. What it returns, :class:`ProcessDetector`, is an
ordinary :class:`~streamyolo.inference.detector.Detector`::

    factory = ProcessDetectorFactory(UltralyticsFactory("yolo26n.pt"), "w0", torch_threads=2)
    detector = factory()                     # the child has built its model
    try:
        found = detector.detect([image])     # pixels go through shared memory
    finally:
        detector.close()                     # child gone, shared memory unlinked

**Shared memory.** Each handle owns one ``SharedMemory`` block, created by the parent and
named ``streamyolo_<parent pid>_<random>``. A batch is laid out in it image after image, each
at a 64-byte aligned offset. The block is sized (in whole MiB) for the first batch and
replaced by a larger one when a bigger batch (or bigger frames) arrives, so it ends up the
size of the largest batch; the old name is unlinked at once, and the child reattaches when a
request names a block it has not mapped. Only the parent creates and unlinks blocks, and it
allocates their pages up front (a full ``/dev/shm`` is an error, not a SIGBUS).

**Protocol** (one ``multiprocessing`` Pipe, strictly request → reply, pickled dataclasses):
the child first sends ``_Started()``, then ``_Ready(names)`` or ``_Failed(kind, message)``;
then for each ``_DetectRequest(segment, slots)`` — slots are (offset, shape, dtype), never
pixels — it answers ``_Found`` (per image: xyxy, conf, cls arrays) or ``_Failed``;
``_QuitRequest`` or end-of-file on the pipe ends it.

**Starting children.** On Linux they are forked from ``multiprocessing``'s fork server, a fresh
process that does nothing but fork (none of our threads, no CUDA) and has imported what a child
needs (:mod:`streamyolo.workers.child_boot`: Ultralytics, torch, OpenVINO) once; the pipeline
starts it first thing (:func:`start_fork_server`), so it imports while the main process sets
up. A child is then up in the time its model takes to build (YOLO11n OpenVINO: 0.7-0.9 s
against 2.4-2.8 s spawned, so a restart after a crash is quick too), and the imported modules'
memory is shared copy-on-write. The server stays, idle, until the main process ends. Elsewhere
children are spawned (a fresh interpreter each).

**Crashes and orphans.** The parent never blocks on a dead child: every wait is on the pipe
*and* the process sentinel, with a time-out, so a child killed by a signal (OOM killer,
segfault) turns into a :class:`ChildProcessGone` (a :class:`~streamyolo.errors.WorkerError`)
naming the worker and the signal, and the shared memory is unlinked right there. With
``restarts``, :class:`RestartingDetector` then starts a new child and runs the batch again. The
child dies with its parent: Linux ``PR_SET_PDEATHSIG`` (SIGKILL) set at child start (its parent
is the fork server, which exits when the main process ends), plus exit on end-of-file of the
pipe; the resource tracker of ``multiprocessing`` unlinks blocks left by a parent that was
killed. Children are named ``streamyolo:<worker>`` (as ``ps -o comm`` and ``psutil`` show
them). They are born with SIGINT ignored (forked: the fork server ignores it from its first
line) or blocked (spawned), and then ignore it: a terminal's Ctrl-C, which reaches the whole
process group, is the parent's to handle (it finishes the frames in flight first).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import re
import secrets
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
import numpy.typing as npt

from streamyolo.errors import ModelError, WorkerError
from streamyolo.frames import Detections, Image
from streamyolo.inference.detector import Detector, DetectorFactory
from streamyolo.inference.offline import set_ultralytics_level, ultralytics_level
from streamyolo.logsetup import log_to_stderr

log = logging.getLogger(__name__)

CHILD_BOOT = "streamyolo.workers.child_boot"
"""The module the fork server imports before it forks any child (see :func:`_start_context`)."""

PROCESS_PREFIX = "streamyolo:"
"""Child processes are named ``streamyolo:<worker>`` (the OS keeps the first 15 bytes)."""
SERVER_NAME = "streamyolo-fork"
"""The fork server's process name (Linux), beside its children's."""
SEGMENT_PREFIX = "streamyolo_"
"""Shared-memory blocks are named ``streamyolo_<parent pid>_<random hex>`` (``/dev/shm`` on Linux)."""

_ALIGN = 64  # bytes; every image starts on a cache line
_SEGMENT_STEP = 1 << 20  # blocks grow in whole MiB
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_COMM_LENGTH = 15


# -- messages ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one image of a batch lies in the shared block."""

    offset: int
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True, slots=True)
class _DetectRequest:
    segment: str
    slots: tuple[_Slot, ...]


@dataclass(frozen=True, slots=True)
class _QuitRequest:
    pass


@dataclass(frozen=True, slots=True)
class _Started:
    """The child runs our code (its interpreter and the parent's main module are loaded)."""


@dataclass(frozen=True, slots=True)
class _Ready:
    names: dict[int, str]


@dataclass(frozen=True, slots=True)
class _Failed:
    """Building the model, or one batch, raised in the child."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class _Found:
    detections: tuple[Detections, ...]
    """Without their class names (the parent has them): a few small arrays each, pickled."""


class _ChildGone(Exception):
    """The child died or stopped answering; the message says which."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


class ChildProcessGone(WorkerError):
    """A worker's inference process died (a signal, an exit) or hung and was killed, while
    running a batch; the handle is closed. A new child may run the batch again (see
    :class:`RestartingDetector`). ``idle``: it had died before the batch was sent (killed
    between batches): the batch had no part in it. ``restarted``: new children ran the batch
    again and died too, as many as the restarts in a row allow."""

    def __init__(self, message: str, idle: bool = False, restarted: bool = False, death: str | None = None) -> None:
        super().__init__(message)
        self.idle = idle
        self.restarted = restarted
        self.death = message if death is None else death
        """How the child died (without what the restarts did)."""


class ChildModelError(ModelError):
    """The model in a worker's child process raised on a batch (the child lives on);
    ``cause``: what it raised, as ``Type: message``."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class ChildKilledBuilding(ModelError):
    """A worker's inference process was killed by a signal (the OOM killer, a ``kill``, a
    crash in native code) or hung while it built its model: a model error to whoever started
    it, but one a new child may not meet (see :class:`RestartingDetector`)."""


# -- the parent's side ---------------------------------------------------------------------

class RestartCounts:
    """How many times each worker's child process was started again, for the run's summary.
    Shared by the workers' factories and the pipeline; safe from any thread."""

    def __init__(self, workers: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(workers, 0)

    def add(self, worker: str, restarts: int = 1) -> None:
        """Count ``restarts`` more of ``worker``'s (0: a worker the run added, named from now on)."""
        with self._lock:
            self._counts[worker] = self._counts.get(worker, 0) + restarts

    def snapshot(self) -> dict[str, int]:
        """Restarts so far by worker name (every worker named at creation, restarted or not)."""
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True, slots=True)
class ProcessDetectorFactory:
    """Builds a :class:`ProcessDetector`: spawns a child process that calls ``inner()``.

    ``inner`` must be picklable (plain data such as
    :class:`~streamyolo.inference.models.UltralyticsFactory`); the child builds, warms up and
    keeps its own model, on the device ``inner`` names — nothing of the model exists in the
    parent. ``torch_threads`` sets the child's torch intra-op threads (its share of the
    cores). Raises :class:`~streamyolo.errors.ModelError` with the child's own one-line
    message when the model cannot be built. Like every factory it is called inside the
    inference thread that will use the detector; the child is tied to that thread (it is
    killed when the thread that started it ends).
    """

    inner: DetectorFactory
    worker_name: str
    torch_threads: int | None = None
    start_timeout: float = 600.0
    """Seconds the child may take to import, build and warm up its model."""
    reply_timeout: float = 300.0
    """Seconds one batch may take before the child is declared hung and killed."""
    stop_timeout: float = 10.0
    """Seconds to wait for the child at each step of shutting it down."""
    restarts: int = 0
    """When the child dies or hangs while running a batch, start a new one and run the batch
    again, up to this many times in a row (a batch that succeeds resets the count); 0: the
    batch fails (:class:`ChildProcessGone`). See :class:`RestartingDetector`."""
    restart_counts: RestartCounts | None = field(default=None, compare=False)
    """Where each restart is counted (the pipeline's summary reads it), if anywhere."""

    def __call__(self) -> Detector:
        if self.restarts > 0:
            return RestartingDetector(self)
        return self.start()

    def start(self) -> ProcessDetector:
        """A new child process with its model built (what ``__call__`` returns without restarts)."""
        context = _start_context()
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_child_main,
            args=(child_end, self.inner, self.worker_name, self.torch_threads, os.getpid(), ultralytics_level(),
                  logging.getLogger("streamyolo").getEffectiveLevel()),
            name=PROCESS_PREFIX + self.worker_name,
            daemon=True,
        )
        try:
            with _sigint_blocked():
                process.start()
        except Exception as exc:
            parent_end.close()
            raise ModelError(
                f"cannot start the inference process of worker {self.worker_name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            child_end.close()  # the child holds its own copy; ours would hide its end-of-file
        detector = ProcessDetector(self.worker_name, process, parent_end,
                                   reply_timeout=self.reply_timeout, stop_timeout=self.stop_timeout)
        try:
            detector.wait_ready(self.start_timeout)
        except BaseException:
            detector.close()
            raise
        return detector


class ProcessDetector:
    """The parent's handle on a model that runs in a child process; a
    :class:`~streamyolo.inference.detector.Detector`. Use it from one thread at a time.

    Built by :class:`ProcessDetectorFactory`. ``detect`` copies the batch's pixels into
    shared memory, sends their offsets and shapes, and waits for the detections; it raises
    :class:`~streamyolo.errors.WorkerError` if the child dies or hangs (the handle is then
    closed), and :class:`~streamyolo.errors.ModelError` if the model raised in the child.
    ``close`` asks the child to quit, waits, terminates or kills it if needed, and unlinks
    the shared memory; it is idempotent and also runs if the handle is garbage-collected.
    """

    def __init__(self, worker_name: str, process: BaseProcess, conn: Connection, *,
                 reply_timeout: float = 300.0, stop_timeout: float = 10.0) -> None:
        self.worker_name = worker_name
        self._process = process
        self._conn = conn
        self._reply_timeout = reply_timeout
        self._segments: list[SharedMemory] = []  # at most one; a list so the finalizer sees changes
        self._names: dict[int, str] = {}
        self._pid = process.pid
        self._finalizer = weakref.finalize(self, _shut_down, process, conn, self._segments, worker_name,
                                           stop_timeout)

    @property
    def names(self) -> Mapping[int, str]:
        return self._names

    @property
    def pid(self) -> int | None:
        """The child's process id (for monitoring and tests)."""
        return self._pid

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def wait_ready(self, timeout: float) -> None:
        """Wait for the child to build its model; raise :class:`ModelError` if it cannot."""
        deadline = time.monotonic() + timeout
        try:
            started = self._receive(timeout, "starting")
        except _ChildGone as gone:
            if gone.exitcode is None or gone.exitcode < 0:  # (hung, or a signal)
                raise ChildKilledBuilding(f"{gone}") from None
            if gone.exitcode != 1:
                raise ModelError(f"{gone}") from None
            # A Python error before our code ran. Spawned children import the parent's main
            # module first: a script without a main guard starts the pipeline again there.
            raise ModelError(f"{gone}; a script that uses worker_mode 'process' must start the pipeline "
                             "under `if __name__ == \"__main__\":` (see the child's error above)") from None
        if not isinstance(started, _Started):
            raise self._protocol_error(started)
        try:
            reply = self._receive(max(0.0, deadline - time.monotonic()), "building its model")
        except _ChildGone as gone:
            if gone.exitcode is None or gone.exitcode < 0:  # (hung, or a signal)
                raise ChildKilledBuilding(f"{gone}") from None
            raise ModelError(f"{gone}") from None
        if isinstance(reply, _Failed):
            self._finalizer()
            if reply.kind in ("ModelError", "ModelNotFoundError"):
                raise ModelError(reply.message)  # the child's own words, as in thread mode
            raise ModelError(f"worker {self.worker_name!r} cannot build its model: {reply.kind}: {reply.message}")
        if not isinstance(reply, _Ready):
            raise self._protocol_error(reply)
        self._names = dict(reply.names)

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        if self.closed:
            raise WorkerError(f"inference process of worker {self.worker_name!r} is closed")
        if not images:
            return []
        if not self._process.is_alive():  # (killed between batches: not this batch's doing)
            raise ChildProcessGone(f"{self._gone('waiting for a batch')}", idle=True)
        slots, size = _layout(images)
        segment = self._segment_for(size)
        _copy_in(segment, slots, images)
        try:
            self._conn.send(_DetectRequest(segment.name, slots))
            reply = self._receive(self._reply_timeout, "running a batch")
        except _ChildGone as gone:
            raise ChildProcessGone(f"{gone}") from None
        except OSError:  # the pipe broke as the child died: report how it died
            raise ChildProcessGone(f"{self._gone('running a batch')}") from None
        if isinstance(reply, _Failed):
            raise ChildModelError(f"model of worker {self.worker_name!r} failed a batch: {reply.kind}: {reply.message}",
                                  f"{reply.kind}: {reply.message}")
        if not isinstance(reply, _Found) or len(reply.detections) != len(images):
            raise self._protocol_error(reply)
        return [replace(found, names=self._names) for found in reply.detections]

    def close(self) -> None:
        """Stop the child (politely, then by force) and unlink the shared memory."""
        self._finalizer()

    # -- helpers --------------------------------------------------------------------------

    def _receive(self, timeout: float, doing: str) -> object:
        """The child's next message; raises :class:`_ChildGone` (having released everything)
        when it died or did not answer within ``timeout`` seconds."""
        ready = wait([self._conn, self._process.sentinel], timeout)
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass  # it died while we listened
        elif not ready:
            self._process.kill()
            self._finalizer()
            raise _ChildGone(f"inference process of worker {self.worker_name!r} did not answer within "
                             f"{timeout:g} s while {doing}; killed it")
        raise self._gone(doing)

    def _gone(self, doing: str) -> _ChildGone:
        self._process.join(5.0)  # it has exited or is exiting: collect its status
        exitcode = self._process.exitcode
        self._finalizer()
        return _ChildGone(f"inference process of worker {self.worker_name!r} died while {doing} "
                          f"({_describe_exit(exitcode)})", exitcode)

    def _protocol_error(self, reply: object) -> WorkerError:
        self._finalizer()
        return WorkerError(f"inference process of worker {self.worker_name!r} sent an unexpected "
                           f"{type(reply).__name__}")

    def _segment_for(self, size: int) -> SharedMemory:
        """The shared block, replaced by a larger one when ``size`` bytes do not fit."""
        current = self._segments[0] if self._segments else None
        if current is not None and current.size >= size:
            return current
        grown = _create_segment(-(-size // _SEGMENT_STEP) * _SEGMENT_STEP, self.worker_name)
        self._segments.insert(0, grown)
        if current is not None:
            self._segments.remove(current)
            _release_segment(current)  # the child still maps it until it reattaches; the name goes now
        return grown


class RestartingDetector:
    """A worker's model in a child process that is started again when it dies or hangs.

    ``factory.restarts`` bounds the restarts in a row: each one starts a new child (it
    imports, builds and warms up its model again, seconds on a CPU) and runs the failed batch
    on it, so no frame is lost; once a batch succeeds the count starts again. A child killed
    while it builds its model (:class:`ChildKilledBuilding`: the OOM killer strikes most as a
    model loads) counts as one of them, the first child too. A batch that kills
    ``restarts + 1`` children in a row (a frame that crashes the model every time) is a
    :class:`ChildProcessGone` naming the worker (whose batch then runs again stream by stream,
    to find the stream at fault: ``InferenceWorker._sift``). Errors the
    model raises (:class:`~streamyolo.errors.ModelError`) are not restarts: a new child would
    raise them too. Like the handle it wraps, use it from the thread that built it.
    """

    def __init__(self, factory: ProcessDetectorFactory) -> None:
        self._factory = factory
        self._detector: ProcessDetector | None = None
        self.restarted = 0
        """Children started again so far, over the whole run (for monitoring and tests)."""
        self._names: Mapping[int, str] = {}
        self._started(0, ChildKilledBuilding)  # (a model error to the worker, as without restarts)

    @property
    def names(self) -> Mapping[int, str]:
        return self._names

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        return None if self._detector is None else self._detector.pid

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        in_a_row = 0
        if self._detector is None:  # (the restarts ran out on an earlier batch: a new child for this one)
            self._count_restart()
        while True:
            if self._detector is None:  # (a restart's child that died building: start another)
                in_a_row = self._started(in_a_row)
            assert self._detector is not None
            try:
                return self._detector.detect(images)
            except ChildProcessGone as gone:
                in_a_row = self._restart(gone, in_a_row, "failed this batch")

    def _started(self, in_a_row: int, fails: type[Exception] = ChildProcessGone) -> int:
        """A new child with its model built, in place of none: started again while it is
        killed building, up to the restarts in a row (then ``fails``). Returns the restarts
        in a row now."""
        while True:
            try:
                self._detector = self._factory.start()
                self._names = self._detector.names
                return in_a_row
            except ChildKilledBuilding as gone:
                in_a_row = self._restart(gone, in_a_row, "failed to build its model", fails)

    def _restart(self, gone: Exception, in_a_row: int, failed: str,
                 fails: type[Exception] = ChildProcessGone) -> int:
        """Count a restart after ``gone`` (raised as ``fails`` once ``in_a_row`` restarts in
        a row have ``failed``); the dead child's handle dropped."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        if in_a_row >= self._factory.restarts:
            error = fails(f"{gone}; not restarted: {in_a_row} restart(s) in a row already {failed}")
            if isinstance(error, ChildProcessGone) and isinstance(gone, ChildProcessGone):
                error.idle, error.restarted, error.death = gone.idle, True, gone.death
            raise error from None
        in_a_row += 1
        self._count_restart()
        log.error("%s; starting a new one (restart %d of at most %d in a row)", gone, in_a_row, self._factory.restarts)
        return in_a_row

    def _count_restart(self) -> None:
        self.restarted += 1
        if self._factory.restart_counts is not None:
            self._factory.restart_counts.add(self._factory.worker_name)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()


def _describe_exit(exitcode: int | None) -> str:
    """``signal 9, SIGKILL`` / ``exit code 1`` for a child's ``exitcode``."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _shut_down(process: BaseProcess, conn: Connection, segments: list[SharedMemory], worker_name: str,
               timeout: float) -> None:
    """Quit → join → terminate → join → kill → join; then unlink the shared memory. Runs
    once per handle (a ``weakref.finalize``), also at interpreter exit."""
    try:
        if process.is_alive():
            try:
                conn.send(_QuitRequest())
            except OSError:
                pass  # already going
            process.join(timeout)
        for force in (process.terminate, process.kill):
            if process.exitcode is not None:
                break
            log.warning("inference process of worker %r did not quit in %.0f s: %s", worker_name, timeout,
                        force.__name__)
            force()
            process.join(timeout)
        if process.exitcode is None:
            log.error("inference process of worker %r (pid %s) is still running", worker_name, process.pid)
        else:
            process.close()
    finally:
        conn.close()
        while segments:
            _release_segment(segments.pop())


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while it starts a child: the child inherits the mask
    across fork and exec, so a Ctrl-C during its start-up (before it can ignore SIGINT)
    does not kill it. Python runs signal handlers in the main thread anyway."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # Starting the resource tracker unblocks SIGINT in the calling thread: do it first.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _layout(images: Sequence[Image]) -> tuple[tuple[_Slot, ...], int]:
    slots = []
    offset = 0
    for image in images:
        slots.append(_Slot(offset, tuple(image.shape), image.dtype.str))
        offset += -(-image.nbytes // _ALIGN) * _ALIGN
    return tuple(slots), max(offset, _ALIGN)


def _copy_in(segment: SharedMemory, slots: Sequence[_Slot], images: Sequence[Image]) -> None:
    for slot, image in zip(slots, images, strict=True):
        target: npt.NDArray[Any] = np.ndarray(slot.shape, dtype=np.dtype(slot.dtype), buffer=segment.buf,
                                              offset=slot.offset)
        try:
            np.copyto(target, image)
        finally:
            del target  # a view left in a traceback would keep the block from closing


def _create_segment(size: int, worker_name: str) -> SharedMemory:
    for _ in range(8):
        name = f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"  # ≤ 31 bytes, macOS's limit
        try:
            segment = SharedMemory(name=name, create=True, size=size)
        except FileExistsError:
            continue
        _reserve(segment, size, worker_name)
        return segment
    raise WorkerError(f"inference process of worker {worker_name!r}: cannot find a free shared-memory name")


def _reserve(segment: SharedMemory, size: int, worker_name: str) -> None:
    """Allocate the block's pages now. A full /dev/shm (Docker gives 64 MB by default) then
    fails here with a clear error instead of killing us with SIGBUS on the first copy."""
    fd: int = getattr(segment, "_fd", -1)
    if fd < 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        _release_segment(segment)
        raise WorkerError(
            f"inference process of worker {worker_name!r}: cannot reserve {size / 2**20:.0f} MiB of shared memory "
            f"({exc.strerror or exc}); give /dev/shm more room (docker run --shm-size) or lower 'batch'"
        ) from exc


def _release_segment(segment: SharedMemory) -> None:
    """Unlink first (the name must never leak), then unmap."""
    try:
        segment.unlink()
    except FileNotFoundError:
        pass
    try:
        segment.close()
    except BufferError:  # a view is still alive somewhere; the mapping goes with it
        log.debug("shared memory %s still has views; unmapped later", segment.name)


# -- the child's side ----------------------------------------------------------------------

def _child_main(conn: Connection, inner: DetectorFactory, worker_name: str, torch_threads: int | None,
                parent_pid: int, ultralytics_log_level: int | None = None, log_level: int | None = None) -> None:
    """The child process: build the model, report, serve batches until told to quit."""
    _die_with_parent(parent_pid)
    set_ultralytics_level(ultralytics_log_level)  # the parent's: its stdout is ours too
    _set_process_name(PROCESS_PREFIX + worker_name)
    threading.current_thread().name = f"inference:{worker_name}"  # (as its worker's thread: lanes log it)
    if log_level is not None:  # (as the parent does: nothing set logging up in a child of the fork server)
        log_to_stderr(log_level)
    # Ctrl-C reaches every process of the terminal's group; the parent handles it (finishing
    # the frames in flight) and tells us when to quit. SIGINT was blocked since our birth
    # (see _sigint_blocked); once ignored it can be unblocked.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        conn.send(_Started())
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
        detector = inner()
    except BaseException as exc:  # reported to the parent, which raises ModelError
        _send_quietly(conn, _Failed(type(exc).__name__, _one_line(exc)))
        conn.close()
        return
    try:
        conn.send(_Ready({int(key): str(value) for key, value in detector.names.items()}))
        _serve(conn, detector)
    except (EOFError, OSError):
        pass  # the parent is gone
    finally:
        detector.close()
        conn.close()


def _serve(conn: Connection, detector: Detector) -> None:
    segment: SharedMemory | None = None
    try:
        while True:
            request = conn.recv()  # end-of-file (parent gone) ends us
            if isinstance(request, _QuitRequest):
                return
            if not isinstance(request, _DetectRequest):
                raise TypeError(f"unexpected request {type(request).__name__}")
            reply: _Found | _Failed
            try:
                if segment is None or segment.name != request.segment:
                    if segment is not None:
                        _close_quietly(segment)
                    segment = _attach(request.segment)
                reply = _Found(_detect_in(segment, request.slots, detector))
            except Exception as exc:
                reply = _Failed(type(exc).__name__, _one_line(exc))
            conn.send(reply)
    finally:
        if segment is not None:
            _close_quietly(segment)


def _detect_in(segment: SharedMemory, slots: Sequence[_Slot], detector: Detector) -> tuple[Detections, ...]:
    images: list[Image] = [np.ndarray(s.shape, dtype=np.dtype(s.dtype), buffer=segment.buf, offset=s.offset)
                           for s in slots]
    try:
        found = detector.detect(images)
    finally:
        images.clear()
    return tuple(replace(d, names={}) for d in found)


def _attach(name: str) -> SharedMemory:
    # Python 3.13+ can attach without registering with the resource tracker; before that the
    # registration is harmless: the parent's unlink (always later) unregisters the name.
    options: dict[str, Any] = {"track": False} if sys.version_info >= (3, 13) else {}
    return SharedMemory(name=name, **options)


def _close_quietly(segment: SharedMemory) -> None:
    try:
        segment.close()
    except BufferError:
        log.debug("shared memory %s still has views; unmapped later", segment.name)


def _send_quietly(conn: Connection, message: object) -> None:
    try:
        conn.send(message)
    except OSError:
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s+", " ", line)


def _prctl(option: int, value: int | bytes) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("prctl(%d) not available", option)


def _die_with_parent(main_pid: int) -> None:
    """SIGKILL us when our parent ends: the fork server, which ends when the main process
    does, or (started with spawn) the main process's thread that started us. The pipe's
    end-of-file covers systems without ``prctl``."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = os.getppid()
    if parent != main_pid and _parent_of(parent) != main_pid:  # it died before the line above
        os._exit(1)


def _parent_of(pid: int) -> int | None:
    """The parent of process ``pid`` (Linux ``/proc``), or ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()  # after "pid (name)", which may hold spaces
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def start_fork_server() -> None:
    """Start the fork server now where children are forked from one, so that it imports what
    they need while the rest of the pipeline is set up; idempotent."""
    if _start_context().get_start_method() == "forkserver":
        with _sigint_blocked():
            multiprocessing.forkserver.ensure_running()


def _start_context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """How children are started. On Linux, forked from ``multiprocessing``'s fork server,
    which has imported what a child needs once (:mod:`streamyolo.workers.child_boot`); the
    server is a fresh process that runs nothing but forks (none of our threads), so forking it
    is safe where forking the busy main process is not. Elsewhere spawned: a fresh interpreter per child."""
    if sys.platform.startswith("linux"):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_preload_with(CHILD_BOOT))  # used when the server starts
        return context
    return multiprocessing.get_context("spawn")


def _preload_with(module: str) -> list[str]:
    """The fork server's preload list with ``module`` added. ``multiprocessing`` keeps one list
    for the whole process: an application's own modules stay in it, and only Python's default
    (``__main__``, which would import the application's script into the server) is replaced."""
    current = getattr(multiprocessing.forkserver._forkserver, "_preload_modules", None)
    if not isinstance(current, list) or current == ["__main__"]:
        return [module]
    return current if module in current else [*current, module]


def _set_process_name(name: str) -> None:
    _prctl(_PR_SET_NAME, name.encode()[:_COMM_LENGTH])
