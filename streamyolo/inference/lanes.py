"""Lanes: one worker's batch split across model replicas, each on its own thread.

A worker that has several cores to itself can run its model on all of them (intra-op
threads) or run several copies of the model side by side, one core each. For PyTorch models
on a CPU the copies win by far: measured on 2 cores with ``yolo26n`` (batch 4, 384x640),
one model on 2 torch threads ran 11-14 frames/s, two 1-thread replicas on 2 frames each
22-23 frames/s. A :class:`LanedDetector` is that: lane 0 is the worker's own thread, every
other lane a thread of its own; each lane builds its own model inside its own thread (the
rule of Ultralytics' thread-safe inference guide), and each batch is cut into contiguous
parts, one per lane, whose results come back in the batch's order. A one-frame batch runs on
lane 0 alone.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamyolo.errors import WorkerError
from streamyolo.frames import Detections, Image
from streamyolo.inference.detector import Detector, DetectorFactory

log = logging.getLogger(__name__)

_JOIN_TIMEOUT = 10.0  # seconds to wait for a lane thread to finish its batch and close its model


class SpareCores:
    """Lanes that workers which have finished hand over to those still working.

    Workers of one pipeline split the cores between them; a worker whose streams have all
    ended leaves its share idle, and with files of different lengths (or more streams on one
    worker than on another) the last worker would finish alone on its share. Each
    :class:`LanedDetector` given a ``SpareCores`` gives back its own lanes when it closes (its
    worker is done), and lends them to the others' spare replicas. Measured on 2 cores, 3
    files on 2 workers (2 + 1 streams): yolo26n in PyTorch 25.0-25.4 frames/s with spare
    replicas against 21.0-21.5 without, YOLO11n in OpenVINO 40.5-42.9 against 35.3-35.8.
    A spare replica costs memory and start-up but no CPU while every worker is busy.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free = 0

    def give(self, lanes: int) -> None:
        with self._lock:
            self._free += lanes

    def take(self, most: int) -> int:
        """Up to ``most`` free lanes, at once (never waits); :meth:`give` them back after use."""
        with self._lock:
            taken = max(0, min(most, self._free))
            self._free -= taken
            return taken


@dataclass(frozen=True, slots=True)
class LanedFactory:
    """Builds a :class:`LanedDetector` of ``lanes`` replicas made by ``inner``, and ``spare``
    more that run only on lanes borrowed from ``cores`` (see :class:`SpareCores`).

    Plain data, so it can also be sent to a worker process (whose lanes are then threads of
    that process; ``cores`` must then be ``None``). Like every factory, call it inside the
    thread that will use the detector.
    """

    inner: DetectorFactory
    lanes: int
    spare: int = 0
    cores: SpareCores | None = None

    def __call__(self) -> Detector:
        return LanedDetector.build(self.inner, self.lanes, self.spare, self.cores)


class _Lane:
    """A thread that builds one replica and runs the parts of batches handed to it."""

    def __init__(self, factory: DetectorFactory, name: str) -> None:
        self._factory = factory
        self._jobs: queue.SimpleQueue[Sequence[Image] | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[list[Detections] | BaseException] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name)

    def start(self) -> None:
        """Start the thread, which builds its replica first (see :meth:`wait_ready`)."""
        self.thread.start()

    def wait_ready(self) -> None:
        """Wait until the replica is built; raises what building raised."""
        reply = self._replies.get()
        if isinstance(reply, BaseException):
            self.thread.join(_JOIN_TIMEOUT)
            raise reply

    def submit(self, images: Sequence[Image]) -> None:
        self._jobs.put(images)

    def result(self) -> list[Detections]:
        reply = self._replies.get()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def stop(self) -> None:
        """Ask the thread to close its replica and end (after building it, if it still is)."""
        self._jobs.put(None)
        self.thread.join(_JOIN_TIMEOUT)
        if self.thread.is_alive():
            log.warning("lane thread %s did not stop within %.0f s", self.thread.name, _JOIN_TIMEOUT)

    def _run(self) -> None:
        try:
            detector = self._factory()
        except BaseException as exc:  # the lane owns its death: the worker re-raises it
            self._replies.put(exc)
            return
        try:
            self._replies.put([])  # ready
            while (images := self._jobs.get()) is not None:
                try:
                    self._replies.put(detector.detect(images))
                except BaseException as exc:
                    self._replies.put(exc)
        finally:
            try:
                detector.close()
            except Exception:
                log.debug("closing the detector of %s failed", self.thread.name, exc_info=True)


class LanedDetector:
    """A :class:`~streamyolo.inference.detector.Detector` over several replicas of one model.

    Use it from one thread at a time, like any detector. ``detect`` gives lane ``i`` the
    ``i``-th contiguous part of the batch (parts differ by at most one frame) and returns the
    results in the batch's order; an error in any lane is raised after every lane has
    answered, so no lane is left working on a batch nobody waits for.
    """

    def __init__(self, own: Detector, helpers: Sequence[_Lane], spare: int = 0,
                 cores: SpareCores | None = None) -> None:
        self._own = own
        self._helpers = list(helpers)
        self._spare = spare if cores is not None else 0
        """The last ``spare`` helpers run only on lanes borrowed from ``cores``."""
        self._cores = cores

    @classmethod
    def build(cls, factory: DetectorFactory, lanes: int, spare: int = 0,
              cores: SpareCores | None = None) -> LanedDetector:
        """Lane 0's replica is built on the calling thread, the others on their own threads,
        all at the same time. ``spare`` more replicas run only on lanes borrowed from
        ``cores``; with ``cores`` the detector gives its ``lanes`` to the others on closing."""
        if lanes < 1 or spare < 0:
            raise ValueError(f"lanes must be at least 1 and spare at least 0, not {lanes} and {spare}")
        if cores is None:
            spare = 0
        base = threading.current_thread().name
        helpers = [_Lane(factory, f"{base}/lane{index}") for index in range(1, lanes + spare)]
        own: Detector | None = None
        try:
            for lane in helpers:
                lane.start()
            own = factory()
            for lane in helpers:
                lane.wait_ready()
        except BaseException:
            for lane in helpers:
                if lane.thread.ident is not None:
                    lane.stop()
            if own is not None:
                own.close()
            raise
        return cls(own, helpers, spare, cores)

    @property
    def lanes(self) -> int:
        """Lanes always in use (the borrowed ones come on top)."""
        return 1 + len(self._helpers) - self._spare

    @property
    def names(self) -> Mapping[int, str]:
        return self._own.names

    @property
    def threads(self) -> list[threading.Thread]:
        """The helper lanes' threads (lane 0 is the caller's)."""
        return [lane.thread for lane in self._helpers]

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        own = min(self.lanes, len(images))
        borrowed = self._cores.take(min(self._spare, len(images) - own)) if self._cores is not None else 0
        try:
            return self._detect(images, own + borrowed)
        finally:
            if borrowed:
                assert self._cores is not None
                self._cores.give(borrowed)

    def _detect(self, images: Sequence[Image], lanes: int) -> list[Detections]:
        parts = _split(images, lanes)
        if len(parts) <= 1:
            return self._own.detect(images)
        helpers = self._helpers[:len(parts) - 1]
        for lane, part in zip(helpers, parts[1:], strict=True):
            lane.submit(part)
        failure: BaseException | None = None
        out: list[Detections] = []
        try:
            out.extend(self._own.detect(parts[0]))
        except BaseException as exc:
            failure = exc
        for lane in helpers:
            try:
                out.extend(lane.result())
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        if len(out) != len(images):
            raise WorkerError(f"lanes returned {len(out)} results for {len(images)} images")
        return out

    def close(self) -> None:
        lanes = self.lanes
        for lane in self._helpers:
            lane.stop()
        self._helpers = []
        self._own.close()
        if self._cores is not None:
            self._cores.give(lanes)  # this worker is done: its cores serve the others' spare replicas
            self._cores = None
        self._spare = 0


def _split(images: Sequence[Image], parts: int) -> list[Sequence[Image]]:
    """``images`` cut into ``parts`` contiguous runs whose lengths differ by at most one.

    >>> [len(p) for p in _split(list(range(5)), 2)]
    [3, 2]
    """
    if parts <= 1:
        return [images]
    size, extra = divmod(len(images), parts)
    out: list[Sequence[Image]] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(images[start:end])
        start = end
    return out
