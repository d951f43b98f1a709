"""Lanes: one worker's batch split across model replicas, each on its own thread.

A worker that has several cores to itself can run its model on all of them (intra-op
threads) or run several copies of the model side by side, one core each. On 2 cores the
copies ran YOLO11n in OpenVINO 1.12-1.14 x faster and yolo26n in PyTorch level (see
:func:`streamyolo.config.auto_lanes`), and they let a finished worker lend its cores to the
others (:class:`IdleLanes`). A :class:`LanedDetector` is that: lane 0 is the worker's own
thread, every other lane a thread of its own; each lane builds its own model inside its own thread (the
rule of Ultralytics' thread-safe inference guide), and each batch is cut into contiguous
parts, one per lane, whose results come back in the batch's order. A one-frame batch runs on
lane 0 alone. With :class:`IdleLanes`, lane 0 is a thread of its own too, so that a worker
that has finished can lend all its lanes to the others.
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


class IdleLanes:
    """Lanes of workers that have finished, lent to the workers still working.

    Workers of one pipeline split the cores between them; a worker whose streams have all
    ended leaves its share idle, and with files of different lengths (or more streams on one
    worker than on another) the last worker would finish alone on its share. A
    :class:`LanedDetector` given an ``IdleLanes`` runs every replica on a lane thread of its
    own, and when it closes (its worker is done) hands those lanes, replicas and all, to the
    others, who borrow them batch by batch without waiting. Each replica still runs on the
    one thread that built it; nothing is built for lending, so it costs no start-up or memory.
    In ``worker_mode: process`` a lane is a thread that drives a worker's child process, and
    the child, with the replicas inside it, is what is lent.
    The last worker to close stops every lane. Measured on 2 cores, 3 files on 2 workers
    (2 + 1 streams), 2 interleaved rounds against ``lanes: 1``: yolo26n in PyTorch 25.9-28.1
    frames/s against 20.8-24.3, YOLO11n in OpenVINO 44.4-45.1 against 36.4-36.5.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[_Lane] = []
        self._members = 0

    def enter(self) -> None:
        """A worker's detector joins (its lanes come when it :meth:`leave` s)."""
        with self._lock:
            self._members += 1

    def leave(self, lanes: Sequence[_Lane]) -> None:
        """A worker is done: its ``lanes`` serve the others (but not one whose replica failed);
        the last to leave stops them all."""
        healthy = _healthy(lanes)
        with self._lock:
            self._members -= 1
            self._free.extend(healthy)
            if self._members > 0:
                return
            finished, self._free = self._free, []
        for lane in finished:
            lane.stop()

    def take(self, most: int) -> list[_Lane]:
        """Up to ``most`` free lanes, at once (never waits); :meth:`give` them back after use."""
        with self._lock:
            taken = self._free[:max(0, most)]
            del self._free[:len(taken)]
            return taken

    def give(self, lanes: Sequence[_Lane]) -> None:
        """Borrowed lanes back; one whose replica failed is stopped instead of lent again."""
        healthy = _healthy(lanes)
        with self._lock:
            self._free.extend(healthy)


def _healthy(lanes: Sequence[_Lane]) -> list[_Lane]:
    """``lanes`` whose replica has never failed; the others are stopped."""
    for lane in lanes:
        if lane.failed:
            lane.stop()
    return [lane for lane in lanes if not lane.failed]


@dataclass(frozen=True, slots=True)
class LanedFactory:
    """Builds a :class:`LanedDetector` of ``lanes`` replicas made by ``inner``; with ``idle``,
    the worker lends them to the others once it is done and borrows theirs (see
    :class:`IdleLanes`).

    Plain data, so it can also be sent to a worker process (whose lanes are then threads of
    that process; ``idle`` must then be ``None``). Like every factory, call it inside the
    thread that will use the detector.
    """

    inner: DetectorFactory
    lanes: int
    idle: IdleLanes | None = None

    def __call__(self) -> Detector:
        return LanedDetector.build(self.inner, self.lanes, self.idle)


class _Lane:
    """A thread that builds one replica and runs the parts of batches handed to it."""

    def __init__(self, factory: DetectorFactory, name: str) -> None:
        self._factory = factory
        self._jobs: queue.SimpleQueue[Sequence[Image] | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[list[Detections] | BaseException] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=name)
        self.names: Mapping[int, str] = {}
        """The replica's class names, once it is built."""
        self.failed = False
        """Whether the replica has raised on a batch (read after :meth:`result`)."""
        self.served = False
        """Whether the replica has run a batch (read after :meth:`result`)."""

    def start(self) -> None:
        """Start the thread, which builds its replica first (see :meth:`wait_ready`)."""
        self.thread.start()

    def wait_ready(self) -> None:
        """Wait until the replica is built; raises what building raised."""
        reply = self._replies.get()
        if isinstance(reply, BaseException):
            self.thread.join(_JOIN_TIMEOUT)
            raise reply

    def ready(self) -> bool | BaseException:
        """Without waiting: whether the replica is built (or what building it raised)."""
        try:
            reply = self._replies.get_nowait()
        except queue.Empty:
            return False
        if isinstance(reply, BaseException):
            self.thread.join(_JOIN_TIMEOUT)
            return reply
        return True

    def submit(self, images: Sequence[Image]) -> None:
        self._jobs.put(images)

    def result(self) -> list[Detections]:
        reply = self._replies.get()
        if isinstance(reply, BaseException):
            raise reply
        self.served = True
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
            self.names = dict(detector.names)
        except BaseException as exc:  # the lane owns its death: the worker re-raises it
            self._replies.put(exc)
            return
        try:
            self._replies.put([])  # ready
            while (images := self._jobs.get()) is not None:
                try:
                    self._replies.put(detector.detect(images))
                except BaseException as exc:
                    self.failed = True
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
    answered, so no lane is left working on a batch nobody waits for. A lane borrowed from a
    finished worker that fails (its replica raised, or its child process died) is not this
    worker's fault: its part runs again on the worker's own lanes, and only an error there
    is raised. One of its own replicas that fails on frames another of them then runs is at
    fault: it is closed, and built again in a lane thread of its own (unless it had never run
    a batch), which joins the lanes once built. A batch may mix shapes (a frame and its
    tiles): the lanes share it whole.
    """

    def __init__(self, own: Detector | None, helpers: Sequence[_Lane], idle: IdleLanes | None = None,
                 factory: DetectorFactory | None = None) -> None:
        if own is None and not helpers:
            raise ValueError("a laned detector needs at least one lane")
        self._own = own
        """Lane 0 on the caller's thread; ``None`` when every lane is a thread of its own."""
        self._helpers = list(helpers)
        self._names = own.names if own is not None else helpers[0].names
        self._idle = idle
        self._factory = factory  # (builds a replica again in place of one closed)
        self._coming: list[_Lane] = []  # replicas being built again, in lane threads of their own
        self._served_own = False  # lane 0 on the caller's thread has run a batch
        self._numbered = len(self._helpers) + (own is not None)  # lanes numbered so far (for their threads' names)
        if idle is not None:
            idle.enter()

    @classmethod
    def build(cls, factory: DetectorFactory, lanes: int, idle: IdleLanes | None = None) -> LanedDetector:
        """Build ``lanes`` replicas at the same time, each inside the thread that will run it:
        lane 0's on the calling thread and the others on threads of their own, or, with
        ``idle`` (so that all of them can serve other workers later), every one on a lane thread."""
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        base = threading.current_thread().name
        helpers = [_Lane(factory, f"{base}/lane{index}") for index in range(0 if idle is not None else 1, lanes)]
        own: Detector | None = None
        try:
            for lane in helpers:
                lane.start()
            if idle is None:
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
        return cls(own, helpers, idle, factory)

    @property
    def lanes(self) -> int:
        """Lanes of this worker's own (borrowed ones come on top)."""
        return len(self._helpers) + (self._own is not None)

    @property
    def names(self) -> Mapping[int, str]:
        return self._names

    @property
    def threads(self) -> list[threading.Thread]:
        """The lane threads (without an :class:`IdleLanes`, lane 0 is the caller's)."""
        return [lane.thread for lane in self._helpers]

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        if self._coming:
            self._welcome()
        own = min(self.lanes, len(images))
        borrowed = self._idle.take(len(images) - own) if self._idle is not None else []
        mine = self._own_lanes()[:own]
        try:
            parts = _split(images, len(mine) + len(borrowed))
            if len(parts) == 1 and self._own is not None:
                results: list[list[Detections] | BaseException] = [_attempt(self._own, images)]
                self._served_own = self._served_own or not isinstance(results[0], BaseException)
            else:
                results = self._run(parts, [lane for lane in [*mine, *borrowed] if isinstance(lane, _Lane)])
            for index, lane in enumerate(mine):  # (one of its own replicas failed: it, or its frames?)
                failed = results[index]
                if isinstance(failed, BaseException):
                    results[index] = self._elsewhere(lane, parts[index], failed)
            for index, lane in enumerate(borrowed, start=len(mine)):
                failed = results[index]
                if isinstance(failed, BaseException):
                    # A replica lent by a finished worker failed (its child process died, say):
                    # not this worker's fault, so its own lanes run that part (and raise if it
                    # fails there too: then the frames are at fault, not the lent replica).
                    log.warning("%s: a lent model replica failed (%s: %s); its own lanes run those %d frame(s)",
                                threading.current_thread().name, type(failed).__name__, failed, len(parts[index]))
                    try:
                        results[index] = self._own_lanes_detect(parts[index])
                    except BaseException:
                        lane.failed = False
                        raise
        finally:
            if borrowed:
                assert self._idle is not None
                self._idle.give(borrowed)
        out = [found for result in results if not isinstance(result, BaseException) for found in result]
        if len(out) != len(images):
            raise WorkerError(f"lanes returned {len(out)} results for {len(images)} images")
        return out

    def _own_lanes(self) -> list[Detector | _Lane]:
        """This worker's own lanes, lane 0 first (the model on the caller's thread, if it has one)."""
        return [*([self._own] if self._own is not None else []), *self._helpers]

    def _elsewhere(self, lane: Detector | _Lane, images: Sequence[Image], error: BaseException) -> list[Detections]:
        """``lane``, one of this worker's own, raised ``error`` on ``images``: run them on
        another of its own lanes. If they go through there, ``lane``'s replica is at fault: it
        is closed and the worker goes on with the others; if not (or it has no other), the
        frames are (or the model): ``error`` is raised."""
        others = [other for other in self._own_lanes() if other is not lane]
        if not others or not isinstance(error, Exception):
            raise error
        try:
            found = _attempt(others[0], images)
        finally:
            if isinstance(lane, _Lane):
                lane.failed = False  # (told below if it is at fault)
        if isinstance(found, BaseException):
            raise error
        worked = lane.served if isinstance(lane, _Lane) else self._served_own
        again = worked and self._factory is not None
        log.error("%s: a model replica failed (%s: %s) on %d frame(s) another one ran: it is closed%s, the worker "
                  "goes on with %d replica(s)%s", threading.current_thread().name, type(error).__name__, error,
                  len(images), " and built again" if again else "", len(others), " meanwhile" if again else "")
        if lane is self._own:
            self._own = None
            try:
                lane.close()
            except Exception:
                log.debug("closing a failed model replica failed", exc_info=True)
        elif isinstance(lane, _Lane):
            self._helpers.remove(lane)
            lane.stop()
        if again:  # (one that fails before it runs a batch is not built again: broken for good)
            assert self._factory is not None
            base = threading.current_thread().name
            coming = _Lane(self._factory, f"{base}/lane{self._numbered}")
            self._numbered += 1
            coming.start()
            self._coming.append(coming)
        return found

    def _welcome(self) -> None:
        """Replicas built again that are ready join the lanes; one that failed to build is
        dropped (said once)."""
        for lane in list(self._coming):
            ready = lane.ready()
            if ready is False:
                continue
            self._coming.remove(lane)
            if ready is True:
                self._helpers.append(lane)
                log.warning("%s: a model replica is built again: the worker goes on with %d replica(s)",
                            threading.current_thread().name, self.lanes)
            else:
                log.error("%s: a model replica could not be built again (%s: %s); the worker goes on with %d "
                          "replica(s)", threading.current_thread().name, type(ready).__name__, ready, self.lanes)

    def _own_lanes_detect(self, images: Sequence[Image]) -> list[Detections]:
        """``images`` on this worker's own lanes alone."""
        parts = _split(images, min(self.lanes, len(images)))
        if len(parts) == 1 and self._own is not None:
            return self._own.detect(images)
        results = self._run(parts, self._helpers[:len(parts) - (self._own is not None)])
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [found for result in results if not isinstance(result, BaseException) for found in result]

    def _run(self, parts: Sequence[Sequence[Image]],
             helpers: Sequence[_Lane]) -> list[list[Detections] | BaseException]:
        """Part ``i`` on lane ``i`` (lane 0 the caller's own model, if it has one), side by
        side; each part's detections or what its lane raised, once every lane has answered
        (so no lane is left working on a batch nobody waits for)."""
        local = self._own is not None
        for lane, part in zip(helpers, parts[local:], strict=True):
            lane.submit(part)
        results: list[list[Detections] | BaseException] = []
        if self._own is not None:
            try:
                results.append(self._own.detect(parts[0]))
                self._served_own = True
            except BaseException as exc:
                results.append(exc)
        for lane in helpers:
            try:
                results.append(lane.result())
            except BaseException as exc:
                results.append(exc)
        return results

    def discard(self) -> None:
        """Close it, its model at fault: its lanes are stopped, not lent to other workers."""
        self.close(lend=False)

    def close(self, lend: bool = True) -> None:
        """Close it: with an :class:`IdleLanes` (and ``lend``), its lanes serve the other
        workers from now on; else they stop. (Lanes still being built again always stop.)"""
        helpers, self._helpers = self._helpers, []
        stopped, self._coming = self._coming, []
        idle, self._idle = self._idle, None
        lent = helpers if idle is not None and lend else []
        if idle is not None:
            idle.leave(lent)  # this worker is done: its lanes serve the others
        for lane in stopped + [lane for lane in helpers if lane not in lent]:
            lane.stop()
        if self._own is not None:
            self._own.close()
            self._own = None


def _attempt(lane: Detector | _Lane, images: Sequence[Image]) -> list[Detections] | BaseException:
    """``images`` on ``lane`` (a model on the calling thread, or a lane thread): the
    detections, or what it raised."""
    try:
        if isinstance(lane, _Lane):
            lane.submit(images)
            return lane.result()
        return lane.detect(images)
    except BaseException as exc:
        return exc


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
