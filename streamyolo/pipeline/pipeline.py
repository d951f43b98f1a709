"""The pipeline: build, start, watch, stop, join.

Data flows one way — source → ring buffer → inference worker → sinks — and the pipeline
owns the one stop event every thread watches. It starts downstream first (sinks, then
inference workers, which build their models, then capture) and stops upstream first
(capture, buffers, inference, sinks).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from streamyolo.buffering import Overflow, RingBuffer
from streamyolo.errors import ConfigError, ModelError, OutputsIncompleteError, WorkerError
from streamyolo.frames import DetectionFilter, Frame, Mask, Result
from streamyolo.inference.counting import CountingLine, Zone, ZoneSwitches
from streamyolo.inference.detector import DetectorFactory
from streamyolo.inference.motion import MotionSettings
from streamyolo.inference.tiles import TileSettings
from streamyolo.pipeline.check import Plan
from streamyolo.pipeline.health import StreamHealth, StreamState
from streamyolo.pipeline.monitor import Monitor, StatsWriter, inference_stacks
from streamyolo.pipeline.report import StatusPrinter, StreamReport, Summary, combined, workers_json
from streamyolo.pipeline.service import Notifier, service_status
from streamyolo.pipeline.switches import SwitchFile
from streamyolo.schedule import SWITCHED, Scheduler, watch_kind, when, zone_of
from streamyolo.sinks.base import (
    ChecksItself,
    FanOut,
    FileSink,
    LooksAtStreams,
    PauseBoard,
    Sink,
    WatchesStreams,
    current_board,
    pauses_of,
)
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.collect import QueueSink
from streamyolo.sinks.display import TiledDisplay
from streamyolo.sinks.recorder import VideoRecorder
from streamyolo.sinks.web import WebViewer
from streamyolo.sources.base import FrameSource, PacketSource
from streamyolo.workers.capture import CapturePolicy, CaptureWorker
from streamyolo.workers.inference import Channel, InferenceWorker
from streamyolo.workers.live import LiveShare

if TYPE_CHECKING:
    from streamyolo.pipeline.reload import Reloader, ReloadReport
    from streamyolo.workers.process import RestartCounts

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 20.0  # seconds per thread; a network read is bounded by its read time-out
_NO_FRAMES = frozenset({StreamState.CONNECTING, StreamState.RECONNECTING, StreamState.FAILED})
"""A stream's states while its source gives no frames: its report has no frame age then."""


@dataclass(frozen=True, slots=True)
class StreamSetup:
    """A stream ready to run: its name, an unopened source, and its buffer policy."""

    name: str
    source: FrameSource
    overflow: Overflow = Overflow.BLOCK
    capacity: int = 8
    policy: CapturePolicy = field(default_factory=CapturePolicy)
    display_uri: str = ""
    keep: DetectionFilter | None = None
    """What this stream keeps of its worker's detections (its own ``conf``/``classes``)."""
    lines: tuple[CountingLine, ...] = ()
    """Counting lines (the stream is tracked): see :mod:`streamyolo.inference.counting`."""
    zones: tuple[Zone, ...] = ()
    """Zones whose occupancy every frame counts: see :mod:`streamyolo.inference.counting`."""
    masks: tuple[Mask, ...] = ()
    """Areas whose detections are dropped (:class:`~streamyolo.frames.Mask`)."""
    recording: PacketSource | None = None
    """The camera's other stream, read only to be recorded as it came (``record_source``)."""
    motion: MotionSettings | None = None
    """Run the model only on frames where something moved (:mod:`streamyolo.inference.motion`)."""
    tiles: TileSettings | None = None
    """Also run the model on parts of each frame (:mod:`streamyolo.inference.tiles`)."""
    detect: bool = True
    """False: detection switched off (:meth:`Pipeline.set_detection`)."""
    confirm: int = 1
    """With a tracker: the frames in a row an object is tracked in before it is kept (``confirm_frames``)."""


class _Stream:
    """The runtime parts of one stream."""

    def __init__(self, setup: StreamSetup, doorbell: threading.Event, share: LiveShare, clock: Callable[[], float],
                 tracked: bool = False) -> None:
        """``doorbell``: its worker's; ``share``: the live streams of the workers of its model,
        whose doorbells a live stream's frames ring (any of them may take it)."""
        self.setup = setup
        self.name = setup.name
        self.stop = threading.Event()
        """Set when the run stops, or this stream alone is removed (:meth:`Pipeline.remove_stream`)."""
        self.doorbell = doorbell
        """Its worker's (a lossless stream's: the worker that takes its streams when it fails is its next)."""
        self.paced = setup.overflow is not Overflow.DROP_OLDEST and (setup.policy.live or setup.policy.realtime)
        """Lossless, its frames coming at its source's pace: the model's workers share it as they do live streams."""
        ready = share.ring if setup.overflow is Overflow.DROP_OLDEST or self.paced else self._ring
        self.ring: RingBuffer[Frame] = RingBuffer(setup.capacity, setup.overflow, on_ready=ready)
        self.health = StreamHealth(setup.name, clock)
        self.health.counts_on([line.name for line in setup.lines], [zone.name for zone in setup.zones], tracked)
        self.capture = CaptureWorker(setup.name, setup.source, self.ring, self.health, self.stop,
                                     policy=setup.policy, clock=clock, recording=setup.recording)

    def _ring(self) -> None:
        self.doorbell.set()

    def end(self) -> None:
        """Stop capture (a blocking open or read cut short); what is buffered is still processed."""
        self.stop.set()
        self.capture.interrupt()
        self.ring.close()

    def channel(self) -> Channel:
        """The stream as its inference worker sees it."""
        setup = self.setup
        masks = setup.masks
        if setup.tiles is not None and setup.tiles.outline is not None:  # a region's outline: what lies outside
            masks = (*masks, Mask("region", setup.tiles.outline, outside=True))  # it is ignored
        return Channel(self.name, self.ring, setup.overflow is Overflow.DROP_OLDEST, self.health, setup.keep,
                       setup.lines, setup.zones, masks, setup.motion, setup.tiles, setup.detect, setup.confirm,
                       self.paced)

    def report(self, now: float, final: bool = False) -> StreamReport:
        if final:
            self.ring.discard()  # leftovers count as dropped
        counts = self.ring.counts()
        snap = self.health.snapshot()
        return StreamReport(
            name=self.name,
            source=self.setup.display_uri,
            state=snap.state.value,
            captured=counts.put,
            processed=snap.processed,
            dropped=counts.dropped + snap.lost,
            still=snap.still if self.setup.motion is not None else None,
            pictures=snap.pictures if self.setup.tiles is not None and not self.setup.tiles.one_picture else None,
            error=snap.error,
            reconnects=snap.reconnects,
            fps_in=snap.fps_in,
            fps_out=snap.fps_out,
            frame_age=None if snap.state in _NO_FRAMES else snap.last_age,  # (not a result's age now)
            last_frame_age=None if snap.last_frame_at is None else max(0.0, now - snap.last_frame_at),
            counts=snap.counts,
            zone_peaks=snap.zone_peaks,
            zone_entries=snap.zone_entries,
            zone_stays=snap.zone_stays,
            detect=self.setup.detect,
            live=self.setup.overflow is Overflow.DROP_OLDEST,
            behind=snap.behind,
            lagging=snap.lagging,
            worst_behind=snap.worst_behind,
        )


class Pipeline:
    """Runs many streams through YOLO at once.

    Build one from a config (a :class:`~streamyolo.config.PipelineConfig`, a mapping or a
    YAML path) and run it to the end::

        summary = Pipeline.from_config({"streams": ["a.mp4", "b.mp4"], "record": "runs/rec"}).run()

    or iterate over results as they come (the pipeline starts on the first ``next``)::

        with Pipeline.from_config("configs/cameras.yaml") as pipeline:
            for result in pipeline.results():
                print(result.stream, result.frame.seq, len(result.detections))

    The plain constructor takes built parts (sources, detector factory, sinks, clock), for
    tests and embedding. ``serving`` gives each stream's worker (default: dealt in turn): a
    lossless stream stays there; a live stream is taken, frame by frame, by whichever worker
    of its model is free. ``sharing`` gives, for each worker, the first worker of its model
    (default: all one model with one factory, a model each with a factory per worker).
    """

    def __init__(
        self,
        streams: Sequence[StreamSetup],
        detector_factory: DetectorFactory | Sequence[DetectorFactory],
        *,
        workers: int = 1,
        max_batch: int = 4,
        live_batch: int = 1,
        live_hold: bool = True,
        tracker: Mapping[str, Any] | None = None,
        sinks: Sequence[Sink] = (),
        display: TiledDisplay | None = None,
        web: WebViewer | None = None,
        status: StatusPrinter | None = None,
        status_interval: float = 1.0,
        stats: StatsWriter | None = None,
        duration: float | None = None,
        torch_threads: int | None = None,
        summary_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        prepare: Sequence[Callable[[], None]] = (),
        on_close: Sequence[Callable[[], None]] = (),
        restart_counts: RestartCounts | None = None,
        hang_warning: float = 60.0,
        overload_warning: float = 60.0,
        serving: Sequence[int] | None = None,
        sharing: Sequence[int] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        if not streams:
            raise ValueError("a pipeline needs at least one stream")
        names = [s.name for s in streams]
        if len(set(names)) != len(names):
            raise ValueError(f"stream names must be unique: {names}")
        workers = max(1, min(workers, len(streams)))
        if serving is None:  # round robin
            serving = [i % workers for i in range(len(streams))]
        elif len(serving) != len(streams) or set(serving) != set(range(workers)):
            raise ValueError(f"serving must name one of the {workers} workers for each stream, each worker at least "
                             f"once: {list(serving)}")
        self._serving = list(serving)
        if sharing is None:  # one model: they share its live streams; models of their own: none
            sharing = [0 if callable(detector_factory) else i for i in range(workers)]
        elif len(sharing) != workers or any(not 0 <= first <= i for i, first in enumerate(sharing)):
            raise ValueError(f"sharing must name, for each of the {workers} workers, the first worker of its "
                             f"model: {list(sharing)}")
        self._shares: list[LiveShare] = []
        for first in sharing:
            self._shares.append(self._shares[first] if first < len(self._shares) else LiveShare())
        factories = [detector_factory] * workers if callable(detector_factory) else list(detector_factory)
        if len(factories) < workers:
            raise ValueError(f"{workers} workers need {workers} detector factories, got {len(factories)}")
        self._clock = clock
        self._max_batch = max_batch
        self._live_batch = live_batch
        self._live_hold = live_hold
        self._tracker = tracker
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._display = display
        self._stats = stats
        self._torch_threads = torch_threads
        self._saved_threads: int | None = None
        self._preparations = list(prepare)  # on the main thread before the workers start (imports)
        self._on_close = list(on_close)
        self._summary_path = summary_path
        self._restart_counts = restart_counts
        self._collector: QueueSink | None = None
        self._web = web
        self._extra_sinks: list[Sink] = list(sinks) + [v for v in (display, web) if v is not None]
        self._fanout: FanOut | None = None
        self._doorbells = [threading.Event() for _ in range(workers)]
        self._streams = [_Stream(s, self._doorbells[worker], self._shares[worker], clock, tracker is not None)
                         for s, worker in zip(streams, self._serving, strict=True)]
        self._by_name = {s.name: s for s in self._streams}
        self._removed: dict[str, StreamReport] = {}  # streams removed as the run went, as they ended
        self.reloader: Reloader | None = None
        """What :meth:`reload` asks (built from a config: :meth:`from_config`)."""
        self.on_switch: Callable[[str, str, bool], None] | None = None
        """Told when a stream's detection or recording is switched (:meth:`set_switch`), and of
        a stream's switches when it is added as the run goes: ``on_switch(kind, stream, on)``,
        ``kind`` ``detect`` or ``record`` (the broker's switch states)."""
        self.on_switched: Callable[[str, str, bool, str], None] | None = None
        """Told of each switch that changed, and by whom: ``on_switched(kind, stream, on, by)``,
        ``by`` ``page``, ``mqtt``, ``schedule``, ``switches file`` or ``python`` (a ``switch`` event)."""
        self._undetected: set[str] = set()  # streams whose detection is switched off, by name
        self.zone_switches = ZoneSwitches()
        """The zones switched by hand (:meth:`set_watch`), which the workers read at each frame."""
        self.scheduler = Scheduler(functools.partial(self.set_switch, by="schedule"))
        """Switches the streams' detection and recording as their ``schedule`` says (its
        :meth:`~streamyolo.schedule.Scheduler.configure`)."""
        self.pause_board = current_board()
        """Where this run's outputs say they are paused (its own, built from a config)."""
        self.switch_file: SwitchFile | None = None
        """Where the switches are kept across runs (``switches_file``): read at the start, each
        stream switched as it says; written at each change."""
        recorders = [sink for sink in sinks if isinstance(sink, VideoRecorder) and not isinstance(sink, ClipRecorder)]
        self._recorder: VideoRecorder | None = recorders[0] if recorders else None
        self._factories = factories[:workers]
        self._workers: list[InferenceWorker] = []
        self._replaced: list[InferenceWorker] = []  # workers that had ended when new ones took their places
        self._pending_workers = workers
        self._pending_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reloading = threading.Lock()  # held by a reload; the end of the run waits for it (its files)
        self._started = False
        self._up = threading.Event()  # start() has built every worker's model and started the captures
        self._joined = False
        self._summary: Summary | None = None
        self._started_at: float | None = None
        self._reloads: dict[str, Any] = {}  # what the reloads did, once there has been one (:attr:`reloads`)
        if web is not None:
            web.bind(self.reports, running=lambda: not self._finished.is_set(),
                     workers=lambda: workers_json(self._restarts()), config=lambda: self.reloads,
                     health=self.liveness, switch=functools.partial(self.set_switch, by="page"),
                     overload=lambda: self.overload)
        self._hang_warning = hang_warning
        self.plan: Plan | None = None
        """What the config asked for, when built from one (:meth:`from_config`)."""
        self._notifier = notifier
        """systemd's notifications (a service with ``Type=notify``: :mod:`~streamyolo.pipeline.service`)."""
        self._monitor = Monitor(self.reports, self._finished, self.stop, clock, interval=status_interval,
                                duration=duration, status=status, stats=stats, restarts=self._restarts,
                                workers=lambda: self._workers, hang_warning=hang_warning,
                                overload_warning=overload_warning, notifier=notifier,
                                looks=[sink.look for sink in sinks if isinstance(sink, LooksAtStreams)],
                                hangs_recovered=restart_counts is not None)

    # -- construction from config -----------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Any = None,
        *,
        status: StatusPrinter | None = None,
        notifier: Notifier | None = None,
        **overrides: Any,
    ) -> Pipeline:
        """Build a pipeline from a :class:`~streamyolo.config.PipelineConfig`, a mapping,
        or a YAML file path, with config keys as keyword overrides (the CLI's flags).
        Checks the model, every source and every output path before anything starts;
        ``status`` prints the live status table while :meth:`run` runs; ``notifier`` tells
        systemd how the run goes (:meth:`Notifier.from_environment
        <streamyolo.pipeline.service.Notifier.from_environment>`: a service's)."""
        from streamyolo.pipeline.assemble import assemble

        with pauses_of(PauseBoard()):  # (its outputs' pauses its own, beside another run's in this program)
            return assemble(cls, config, {**overrides, "status": status, "notifier": notifier})

    # -- lifecycle --------------------------------------------------------------------

    @property
    def stream_names(self) -> list[str]:
        return [s.name for s in self._streams]

    @property
    def web_url(self) -> str | None:
        """The web page's address (``web:``), once the pipeline has started."""
        return self._web.url if self._web is not None else None

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def start(self) -> None:
        """Open the sinks, start the inference workers and wait until each has built its
        model, then start capture. Raises (having cleaned up) if any of that fails."""
        with self._state_lock:
            if self._started:
                raise RuntimeError("pipeline already started")
            self._started = True
        self._started_at = self._clock()
        sinks = self._extra_sinks + ([self._collector] if self._collector is not None else [])
        self._fanout = FanOut(sinks, on_error=self._sink_failed)
        self._fanout.open()
        for sink in sinks:
            if isinstance(sink, WatchesStreams):
                for stream in self._streams:
                    stream.health.watch(sink.stream_changed)
        try:
            self.prepare()
            if self._stats is not None:
                self._stats.open()
            self._set_threads()
            self._start_workers()
            # The switches as they were left (the switches file), then as the schedules say, before the first frames
            if self.switch_file is not None:
                self.switch_file.load()
            for stream in self._streams:
                self._restore(stream.name)
            self.scheduler.start()
            for stream in self._streams:
                stream.capture.start()
            if self._monitor.needed:
                self._monitor.start()
            self._up.set()
            if self._notifier is not None:
                self._notifier.ready(service_status(self.reports()))
        except BaseException:
            self.stop()
            self._teardown(raise_errors=False)
            raise

    def prepare(self) -> None:
        """What starting the workers needs done first, on this thread (the imports building a
        model does, so that inference threads do not take turns at Python's import lock):
        done by :meth:`start`, or before it (a benchmark's clock starts after it)."""
        preparations, self._preparations = self._preparations, []
        for preparation in preparations:
            preparation()

    def check_outputs(self) -> None:
        """Whether the outputs will be able to write, before a run (``streamyolo check``):
        each sink's own check (:class:`~streamyolo.sinks.base.ChecksItself`)."""
        for sink in self._extra_sinks:
            if isinstance(sink, ChecksItself):
                sink.check()

    def _start_workers(self) -> None:
        assert self._fanout is not None
        for index in range(len(self._factories)):
            channels = [s.channel() for s, worker in zip(self._streams, self._serving, strict=True) if worker == index]
            worker = self._new_worker(index, channels)
            self._workers.append(worker)
            worker.start()
        began, warned = self._clock(), False
        for worker in self._workers:
            while not worker.wait_ready(0.1):
                if self._stop.is_set():
                    return
                waited = self._clock() - began
                if not warned and 0 < self._hang_warning <= waited:
                    warned = True
                    log.warning("inference worker %r has been building its model for %.0f s (a first conversion or "
                                "compilation can take minutes on a slow CPU; if it never ends, the model runtime may "
                                "be hung); where the inference threads are:\n%s", worker.name, waited,
                                inference_stacks())
        failed = [w for w in self._workers if w.error is not None]
        if failed:
            error = failed[0].error
            assert error is not None
            if isinstance(error, ModelError):
                raise error
            raise ModelError(f"model failed to load in worker {failed[0].name!r}: {error}") from error
        if self.plan is not None and self._workers and not self._stop.is_set():
            # Class ids the config gives that a model does not have would find nothing, silently.
            for group in self.plan.groups:
                problem = self.plan.config.unknown_classes(self._workers[group.first].names, group.name)
                if problem is not None:
                    raise ConfigError(problem)

    def _new_worker(self, index: int, channels: Sequence[Channel]) -> InferenceWorker:
        assert self._fanout is not None
        return InferenceWorker(
            f"w{index}", self._factories[index], channels, self._fanout, self._doorbells[index],
            max_batch=self._max_batch, live_batch=self._live_batch, live_hold=self._live_hold,
            tracker=self._tracker, clock=self._clock, on_done=self._worker_finished,
            zone_switches=self.zone_switches, share=self._shares[index], adopt=self._adopt,
        )

    def _adopt(self, failed: InferenceWorker, channels: list[Channel]) -> list[Channel]:
        """Worker ``failed`` failed: its streams ``channels`` go on with the other workers of its
        model, each with the one that has the fewest streams. Returns those taken."""
        taken: list[Channel] = []
        with self._state_lock:
            if failed not in self._workers:
                return taken
            index = self._workers.index(failed)
            heirs = [i for i, share in enumerate(self._shares[:len(self._workers)])
                     if i != index and share is self._shares[index]]
            for channel in channels:
                stream = self._by_name.get(channel.name)
                if stream is None or stream.ring is not channel.ring:  # (removed meanwhile)
                    continue
                for heir in sorted(heirs, key=lambda i: len(self._workers[i].streams)):
                    if self._workers[heir].add(channel):
                        taken.append(channel)
                        self._serving[self._streams.index(stream)] = heir
                        stream.doorbell = self._doorbells[heir]
                        stream.doorbell.set()
                        log.warning("stream %r goes on with worker %r (%r failed)", channel.name,
                                    self._workers[heir].name, failed.name)
                        break
        return taken

    def _worker_finished(self) -> None:
        with self._pending_lock:
            self._pending_workers -= 1
            if self._pending_workers <= 0:
                self._finished.set()
                if self._collector is not None:
                    self._collector.close()  # every result is written: end the iterator

    def stop(self) -> None:
        """Ask everything to stop: capture ends, frames already buffered are still
        processed, recordings are finalised by :meth:`join`. Safe to call from any thread,
        any number of times."""
        with self._state_lock:
            stopping = not self._stop.is_set()
            self._stop.set()
        if stopping and self._notifier is not None and self._started:
            self._notifier.stopping()
        for stream in self._streams:
            stream.end()
        if self._collector is not None and not self._started:
            self._collector.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every inference worker has finished (True), or ``timeout`` passes."""
        return self._finished.wait(timeout)

    def join(self, timeout: float | None = None) -> Summary:
        """Wait for the run to end (up to ``timeout`` seconds, then stop it), close the
        sinks, and return the summary. Re-raises the first worker failure, chained; then
        :class:`~streamyolo.errors.OutputsIncompleteError` if an output lost something (frames
        a full disk kept out of a recording, lines of the JSONL) or could not be finished."""
        if not self._started:
            raise RuntimeError("pipeline not started")
        if not self._finished.wait(timeout):
            self.stop()
        return self._teardown(raise_errors=True)

    def run(self) -> Summary:
        """Start, wait until every stream is done or the run is stopped (Ctrl-C, SIGTERM,
        ``q`` in the window, the duration), then stop and join. The calling thread draws
        the window, if there is one (OpenCV's GUI belongs to the main thread)."""
        if not self._started:
            self.start()
        try:
            self._wait_drawing()
        except KeyboardInterrupt:
            log.warning("stopping: finishing frames in flight and closing recordings (Ctrl-C again to quit at once)")
        finally:
            self.stop()
        return self.join()

    def _wait_drawing(self) -> None:
        wait = 1 / 30 if self._display is not None else 0.2
        while not self._finished.wait(wait):
            if self._display is not None and not self._display.render():
                log.info("window closed: stopping")
                return

    def results(self) -> Iterator[Result]:
        """Every processed frame, as it comes; starts the pipeline if needed. Results of one
        stream arrive in order. Leaving the loop early stops the pipeline."""
        if self._started and self._collector is None:
            raise RuntimeError("results() must be called before start()")
        if self._collector is None:
            self._collector = QueueSink()
        collector = self._collector
        return self._iterate(collector)

    def _iterate(self, collector: QueueSink) -> Iterator[Result]:
        if not self._started:
            self.start()
        completed = False
        try:
            yield from collector.results()
            completed = True
        finally:
            collector.abandon()
            self.stop()
            self._teardown(raise_errors=completed)

    # -- teardown ---------------------------------------------------------------------

    def _teardown(self, raise_errors: bool) -> Summary:
        with self._state_lock:
            if self._joined:
                assert self._summary is not None
                return self._summary
            self._joined = True
        with self._reloading:  # a reload under way finishes first (a stream it removes finishes its files)
            pass
        self.scheduler.stop()
        for stream in self._streams:
            if stream.capture.thread.ident is not None and not stream.capture.join(JOIN_TIMEOUT):
                log.error("capture thread %s still running after %.0f s", stream.name, JOIN_TIMEOUT)
        for stream in self._streams:
            stream.ring.close()  # a capture that never started leaves its buffer open
        for worker in [*self._replaced, *self._workers]:
            if not worker.join(JOIN_TIMEOUT * 3):
                log.error("inference thread %s still running after %.0f s", worker.name, JOIN_TIMEOUT * 3)
        sink_error: BaseException | None = None
        if self._fanout is not None:
            self._monitor.hand_over(self.reports(), self._clock())
            try:
                self._fanout.close()
            except BaseException as exc:
                sink_error = exc
        self._restore_threads()
        for callback in self._on_close:
            try:
                callback()
            except Exception:
                log.exception("cleanup failed")
        now = self._clock()
        for stream in self._streams:
            stream.health.finish()
        self._summary = Summary(self._with_removed({s.name: s.report(now, final=True) for s in self._streams}),
                                self._restarts(), self._files("recordings"), self._files("clips"),
                                _lost(sink_error))
        self._finished.set()  # also ends the monitor when start() failed half-way
        if not self._monitor.join(JOIN_TIMEOUT):
            log.error("monitor thread still running after %.0f s", JOIN_TIMEOUT)
        if self._stats is not None:
            self._monitor.final(list(self._summary.streams.values()), now - (self._started_at or now))
            try:
                self._stats.close()
            except BaseException as exc:
                sink_error = sink_error or exc
                self._summary = replace(self._summary, lost=[*self._summary.lost, *_lost(exc)])
        if self._summary_path is not None:
            try:
                self._summary.write(self._summary_path)
            except BaseException as exc:
                sink_error = sink_error or exc
        if raise_errors:
            failed = [w for w in [*self._replaced, *self._workers] if w.error is not None]
            if failed:
                first = failed[0]
                raise WorkerError(f"inference worker {first.name!r} failed: {first.error}") from first.error
            if isinstance(sink_error, OutputsIncompleteError):
                raise sink_error
            if sink_error is not None:  # an output that failed as the run ended (a full disk)
                raise OutputsIncompleteError(str(sink_error)) from sink_error
        return self._summary

    # -- observation ------------------------------------------------------------------

    def reports(self) -> list[StreamReport]:
        """Live per-stream numbers (state, fps in/out, dropped, frame age, last error)."""
        now = self._clock()
        reports = [replace(report, record=self.recording(report.name)) if self._recorder is not None else report
                   for report in (s.report(now) for s in self._streams)]
        return [replace(report, schedule=schedule) if (schedule := self._schedules(report.name)) else report
                for report in reports]

    @property
    def overload(self) -> dict[str, Any] | None:
        """While the machine is said not to keep up (most of the live streams' frames skipped
        lately, or a stream behind): ``{"skipped", "window", "since", "streams", "behind"}``
        (:attr:`Overload.state <streamyolo.pipeline.overload.Overload.state>`); else ``None``
        (and always, with ``overload_warning: 0``). From any thread."""
        return self._monitor.overload

    def _schedules(self, name: str) -> dict[str, dict[str, Any]]:
        """Stream ``name``'s schedules now (its report's ``schedule``): its own, by the scheduler,
        and its zones' (``watch:<zone>``)."""
        states: dict[str, dict[str, Any]] = dict(self.scheduler.state(name))
        stream = self._by_name.get(name)
        now = time.time()
        for zone in stream.setup.zones if stream is not None else ():
            if zone.schedule is not None:
                on, until = zone.schedule.at(now)
                states[watch_kind(zone.name)] = {"on": on, "until": round(until, 3),
                                                 "windows": list(zone.schedule.text)}
        return states

    def summary(self) -> Summary:
        """The final summary (after :meth:`join`), or a live one before."""
        if self._summary is not None:
            return self._summary
        now = self._clock()
        return Summary(self._with_removed({s.name: s.report(now) for s in self._streams}), self._restarts(),
                       self._files("recordings"), self._files("clips"))

    def _with_removed(self, reports: dict[str, StreamReport]) -> dict[str, StreamReport]:
        """The streams' ``reports``, and those removed as the run went (a stream removed and
        added again, changed, counts what each of its turns did)."""
        removed = self._removed
        return {**{name: combined(removed[name], report) if name in removed else report
                   for name, report in reports.items()},
                **{name: report for name, report in removed.items() if name not in reports}}

    def _files(self, kind: str) -> dict[str, list[str]]:
        """Every stream's files of one ``kind`` (recordings, clips), from the sinks that write files per stream."""
        out: dict[str, list[str]] = {}
        for sink in self._extra_sinks:
            if isinstance(sink, FileSink) and sink.files_kind == kind:
                for name, files in sink.files.items():
                    out.setdefault(name, []).extend(str(path) for path in files)
        return out

    def _restarts(self) -> dict[str, int]:
        return self._restart_counts.snapshot() if self._restart_counts is not None else {}

    # -- streams added and removed as the run goes -------------------------------------------

    def add_worker(self, make: Callable[[int], DetectorFactory], sharing: int | None = None) -> int:
        """A new worker, for a model the run has not loaded (a reload's): ``make(number)`` gives
        the factory of ``w<number>``'s model; ``sharing``: the first worker of that model, whose
        live streams it shares (none: it is the first). Returns its number; it starts (and
        builds its model, in its own thread) with the first stream :meth:`add_stream` gives it.
        Raises ``RuntimeError`` when the run has ended."""
        with self._state_lock:
            if not self._started or self._stop.is_set() or self._finished.is_set():
                raise RuntimeError("no worker can be added: the run has ended")
            # After the running workers' (one added whose stream did not come, the run
            # ending meanwhile, has its place taken).
            index = len(self._workers)
            factory = make(index)
            self._factories = [*self._factories[:index], factory]
            self._doorbells = [*self._doorbells[:index], threading.Event()]
            share = LiveShare() if sharing is None or sharing >= index else self._shares[sharing]
            self._shares = [*self._shares[:index], share]
        if self._restart_counts is not None:
            self._restart_counts.add(f"w{index}", 0)
        close = getattr(factory, "close", None)
        if callable(close):
            self._on_close.append(close)
        return index

    def add_stream(self, setup: StreamSetup, worker: int) -> None:
        """Start ``setup`` while the run goes, served by worker ``worker`` (``w<worker>``), which
        must run the model the stream is meant for (:meth:`reload` chooses; a worker
        :meth:`add_worker` gave, not yet started, starts with it). Raises ``ValueError`` for a
        name in use, ``RuntimeError`` when the run (or that worker) has ended."""
        if setup.name in self._undetected:  # switched off earlier in the run: it stays so
            setup = replace(setup, detect=False)
        stream = _Stream(setup, self._doorbells[worker], self._shares[worker], self._clock, self._tracker is not None)
        if self._fanout is not None:
            for sink in self._fanout.sinks:
                if isinstance(sink, WatchesStreams):
                    stream.health.watch(sink.stream_changed)
        with self._state_lock:
            if setup.name in self._by_name:
                raise ValueError(f"stream {setup.name!r} is running already")
            if not self._started or self._stop.is_set() or self._finished.is_set():
                raise RuntimeError(f"stream {setup.name!r} cannot be added: the run has ended")
            started = None
            new = worker == len(self._workers)  # added by add_worker: its first stream
            if new or not self._workers[worker].add(stream.channel()):
                # Its streams had all ended (or it failed): a new worker, with a model of its own, takes its place.
                with self._pending_lock:
                    if self._finished.is_set():
                        raise RuntimeError(f"stream {setup.name!r} cannot be added: the run has ended")
                    self._pending_workers += 1
                started = self._new_worker(worker, [stream.channel()])
                if new:
                    self._workers = [*self._workers, started]
                else:
                    self._replaced.append(self._workers[worker])
                    self._workers[worker] = started
            self._streams = [*self._streams, stream]
            self._serving = [*self._serving, worker]
            self._by_name = {**self._by_name, setup.name: stream}
        if started is not None:
            log.info("%s: it starts (building its model) for stream %r",
                     f"worker w{worker} is new" if new else f"worker w{worker} had ended: a new one", setup.name)
            started.start()
        self._restore(setup.name)
        self.scheduler.apply(setup.name)
        stream.capture.start()
        if self.on_switch is not None:
            for kind, on in self.switches(setup.name).items():
                self.on_switch(kind, setup.name, on)

    def update_stream(self, name: str, **rules: Any) -> None:
        """Give running stream ``name`` new settings that its worker applies (``keep``, ``lines``,
        ``zones``, ``masks``, ``motion``, ``tiles``: :class:`StreamSetup`'s), from its next frame
        on, and its capture (``policy``: its ``max_fps`` and ``stride``, from its next frame
        read); its connection, buffer, recording and tracks go on (its lines, zones and motion
        too, unless they changed: then they start afresh)."""
        with self._state_lock:
            stream = self._by_name.get(name)
            if stream is None:
                raise ValueError(f"no stream {name!r} is running")
            worker = self._workers[self._serving[self._streams.index(stream)]]
            before, stream.setup = stream.setup, replace(stream.setup, **rules)
        policy = stream.setup.policy
        if (policy.max_fps, policy.stride) != (before.policy.max_fps, before.policy.stride):
            stream.capture.thin(policy.max_fps, policy.stride)
        stream.health.counts_on([line.name for line in stream.setup.lines], [zone.name for zone in stream.setup.zones],
                                self._tracker is not None)
        if not worker.update(stream.channel()):
            raise RuntimeError(f"stream {name!r} cannot be changed: its worker has ended")
        self._rescheduled(name, before.zones, stream.setup.zones)

    def _rescheduled(self, name: str, before: Sequence[Zone], zones: Sequence[Zone]) -> None:
        """Stream ``name``'s zones were ``before`` and are now ``zones`` (a reload): a zone
        switched by hand whose schedule changed (was given, or taken away) is watched as its
        new schedule says (as a switches file's does, read with a schedule changed since)."""
        was = {zone.name: zone.schedule for zone in before}
        for zone in zones:
            if zone.name not in was or was[zone.name] == zone.schedule:
                continue
            if self.zone_switches.get(name, zone.name, time.time()) is None:
                continue
            held = self.watching(name, zone.name)
            self.zone_switches.set(name, zone.name, None)
            on = self.watching(name, zone.name)
            log.info("stream %r: zone %r's schedule changed: %s as it says, no longer by hand", name, zone.name,
                     "watched" if on else "not watched")
            if on != held:
                self._switched(watch_kind(zone.name), name, on, "schedule")
            elif self.switch_file is not None:
                self.switch_file.set(name, watch_kind(zone.name), on, None)

    def set_detection(self, name: str, on: bool, by: str = "python") -> None:
        """Switch stream ``name``'s detection on or off from its next frame (Home Assistant's
        switch, over MQTT, or the web page's): off, its frames go on to every output (recordings,
        the page, the window) with no objects and no forward pass: no events, no counts. Its
        connection and recording go on. The switch holds for the stream's name while the run
        goes (a reload that restarts the stream, or adds it again, keeps it off); ``by``: who
        switched it (:attr:`on_switched`). Raises
        ``ValueError`` for a stream not running, ``RuntimeError`` once its worker has ended."""
        with self._state_lock:
            stream = self._by_name.get(name)
        if stream is None:
            raise ValueError(f"no stream {name!r} is running")
        if stream.setup.detect != on:
            self.update_stream(name, detect=on)
            if on:
                self._undetected.discard(name)
            else:
                self._undetected.add(name)
            log.info("stream %r: detection switched %s (%s)", name, "on" if on else "off", by)
            self._switched("detect", name, on, by)

    def detection(self, name: str) -> bool:
        """Whether stream ``name``'s detection is on (:meth:`set_detection`)."""
        return self._by_name[name].setup.detect

    def set_recording(self, name: str, on: bool, by: str = "python") -> None:
        """Switch stream ``name``'s recording off (its open file ends, whole, with the frame
        before the next its recorder gets: privacy while someone is home) or on again (a new
        file, from its next key frame). Its detection, events and clips go on. The switch
        holds for the stream's name while the run goes; ``by``: who switched it. Raises
        ``ValueError`` for a stream not running or not recorded."""
        with self._state_lock:
            stream = self._by_name.get(name)
        if stream is None:
            raise ValueError(f"no stream {name!r} is running")
        if self._recorder is None or not self._recorder.records(name):
            raise ValueError(f"stream {name!r} is not recorded")
        if (name not in self._recorder.off) != on:
            self._recorder.switch(name, on)
            log.info("stream %r: recording switched %s (%s)", name, "on" if on else "off", by)
            self._switched("record", name, on, by)

    def recording(self, name: str) -> bool | None:
        """Whether stream ``name``'s recording is on (:meth:`set_recording`); ``None``: it is not recorded."""
        if self._recorder is None or not self._recorder.records(name):
            return None
        return name not in self._recorder.off

    def set_watch(self, name: str, zone: str, on: bool, by: str = "python") -> None:
        """Watch stream ``name``'s ``zone`` or not, from its next frame (the page's switch, Home
        Assistant's, an automation's: the garden watched while nobody is home): not watched, it
        sees no one (no ``enter``, ``leave``, ``linger``, ``speeding`` or ``crowd`` events; those
        inside leave then) and Home Assistant's ``<zone> occupied`` stays off. Against the zone's
        ``schedule`` the switch holds until the schedule's next change, then the schedule says
        again; for a zone without one, until switched again. Raises ``ValueError`` for a stream
        not running or a zone it does not have."""
        with self._state_lock:
            stream = self._by_name.get(name)
        if stream is None:
            raise ValueError(f"no stream {name!r} is running")
        found = self._zone(name, zone)
        if found is None:
            zones = ", ".join(z.name for z in stream.setup.zones) or "none"
            raise ValueError(f"stream {name!r} has no zone {zone!r} (its zones: {zones})")
        scheduled, change = found.schedule.at(time.time()) if found.schedule is not None else (True, None)
        was = self.watching(name, zone)
        until = change if on != scheduled else None
        self.zone_switches.set(name, zone, None if on == scheduled else on, until)
        if was != on:
            held = f" by hand until its schedule's next change, {when(until)}" if until is not None else ""
            log.info("stream %r: zone %r %s%s (%s)", name, zone, "watched" if on else "not watched", held, by)
            self._switched(watch_kind(zone), name, on, by, until)

    def watching(self, name: str, zone: str) -> bool:
        """Whether stream ``name``'s ``zone`` is watched now (:meth:`set_watch`, its schedule)."""
        hand = self.zone_switches.get(name, zone, time.time())
        if hand is not None:
            return hand
        found = self._zone(name, zone)
        return found is None or found.schedule is None or found.schedule.at(time.time())[0]

    def _zone(self, name: str, zone: str) -> Zone | None:
        """Stream ``name``'s zone ``zone`` now (``None``: no such stream running, or no such zone)."""
        with self._state_lock:
            stream = self._by_name.get(name)
        return next((z for z in stream.setup.zones if z.name == zone), None) if stream is not None else None

    def _switched(self, kind: str, name: str, on: bool, by: str, until: float | None = None) -> None:
        """``until``: a zone's switch by hand holds until then (a stream's: its schedule's next
        change, asked of the scheduler)."""
        if self.switch_file is not None:
            if zone_of(kind) is None:
                said = self.scheduler.next_change(name, kind) if by != "schedule" else None
                until = said[1] if said is not None and said[0] != on else None
            self.switch_file.set(name, kind, on, until)
        if self.on_switch is not None:
            self.on_switch(kind, name, on)
        if self.on_switched is not None:
            self.on_switched(kind, name, on, by)

    def _restore(self, name: str) -> None:
        """Switch stream ``name`` as the switches file says (but for what its schedule switches,
        unless switched by hand until the schedule's next change, which has not come): as the
        last run left it, or this run, when it was removed and is added again."""
        if self.switch_file is None:
            return
        scheduled, held = self.scheduler.kinds(name), self.switch_file.held(name)
        for kind, on in self.switch_file.states(name).items():
            zone = zone_of(kind)
            if zone is not None:
                self._restore_zone(name, zone, on, held.get(kind))
                continue
            by_hand = kind in held and self.scheduler.hold(name, kind, held[kind])
            if kind in scheduled and not by_hand:
                continue
            changes = on != self.switches(name).get(kind, on)
            if changes or by_hand:  # (held by hand: said even when it is as a new run starts)
                until = f" by hand until its schedule's next change, {when(held[kind])}" if by_hand else ""
                log.info("stream %r: %s %s%s, as it was left (%s)", name, SWITCHED[kind], "on" if on else "off",
                         until, self.switch_file.path)
            if not changes:
                continue
            try:
                self.set_switch(kind, name, on, by="switches file")
            except (ValueError, RuntimeError) as exc:  # not recorded any more; its worker has ended
                log.debug("stream %r: its %s could not be switched as it was left: %s", name, SWITCHED[kind], exc)

    def _restore_zone(self, name: str, zone: str, on: bool, until: float | None) -> None:
        """Switch stream ``name``'s ``zone`` as the switches file says: a zone without a schedule
        not watched; one with, switched by hand until its schedule's next change, which has not
        come (else, or when its schedule changed since, its schedule says)."""
        found = self._zone(name, zone)
        if found is None:  # (a zone since removed: its line is left, it may come back)
            return
        if found.schedule is not None:
            scheduled, change = found.schedule.at(time.time())
            if on == scheduled or until is None or until != change:
                return
        elif on:
            return
        if self.watching(name, zone) == on:  # (switched so already, before the run)
            return
        assert self.switch_file is not None
        log.info("stream %r: zone %r %s by hand, as it was left (%s)", name, zone, "watched" if on else "not watched",
                 self.switch_file.path)
        self.set_watch(name, zone, on, by="switches file")

    def set_switch(self, kind: str, name: str, on: bool, by: str = "python") -> None:
        """:meth:`set_detection` (``kind`` ``detect``), :meth:`set_recording` (``record``) or
        :meth:`set_watch` (``watch:<zone>``)."""
        zone = zone_of(kind)
        if zone is not None:
            self.set_watch(name, zone, on, by)
            return
        if kind not in ("detect", "record"):
            raise ValueError(f"no switch {kind!r} (detect, record, watch:<zone>)")
        {"detect": self.set_detection, "record": self.set_recording}[kind](name, on, by)

    def switches(self, name: str) -> dict[str, bool]:
        """Stream ``name``'s switches: ``{"detect": on}``, and ``"record"`` when it is recorded."""
        recording = self.recording(name)
        return {"detect": self.detection(name), **({} if recording is None else {"record": recording})}

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """While in it, no worker ends for want of streams (a reload removes streams before
        it adds others); one with none left when it ends, ends then."""
        held = [worker for worker in self._workers if worker.hold()]
        try:
            yield
        finally:
            for worker in held:
                worker.release()

    def remove_stream(self, name: str, timeout: float = JOIN_TIMEOUT, restarting: bool = False) -> None:
        """Stop stream ``name`` while the others go on: its capture ends, what it had buffered
        is processed, and its outputs are finished (its recording and clip are whole files
        now); the summary keeps its numbers, as ``removed``. Waits for all that (at most about
        ``timeout`` seconds for each step). ``restarting``: it is added again next, with new
        settings (a reload), which its state event says."""
        with self._state_lock:
            if self._joined or self._finished.is_set():
                raise RuntimeError(f"stream {name!r} cannot be removed: the run has ended")
            stream = self._by_name.get(name)
            if stream is None:
                raise ValueError(f"no stream {name!r} is running")
            kept = [(s, w) for s, w in zip(self._streams, self._serving, strict=True) if s is not stream]
            self._streams, self._serving = [s for s, _ in kept], [w for _, w in kept]
            self._by_name = {s.name: s for s in self._streams}
        stream.end()
        if stream.capture.thread.ident is not None and not stream.capture.join(timeout):
            log.error("stream %r: capture thread still running after %.0f s", name, timeout)
        if not stream.health.wait_settled(timeout):
            log.error("stream %r: its last frames were not processed within %.0f s", name, timeout)
        stream.health.finish()
        if self._fanout is not None:
            self._fanout.end_stream(name, restarting)
        report = replace(stream.report(self._clock(), final=True), state="removed")
        with self._state_lock:
            earlier = self._removed.get(name)
            self._removed = {**self._removed, name: report if earlier is None else combined(earlier, report)}

    def worker_streams(self) -> list[list[str]]:
        """Each worker's streams now (``w0``'s first; none for one that has ended)."""
        return [[] if worker.done else worker.streams for worker in self._workers]

    def model_classes(self, worker: int) -> dict[int, str]:
        """The classes of worker ``worker``'s model (once it has loaded), by id."""
        return dict(self._workers[worker].names) if worker < len(self._workers) else {}

    def reload(self, config: Any = None) -> ReloadReport:
        """Apply ``config`` (default: the config file the run was built from, read again, with
        the same overrides) to the running streams: see :mod:`streamyolo.pipeline.reload`.
        Raises :class:`~streamyolo.errors.ConfigError` (nothing changed) for a config that
        does not validate."""
        if self.reloader is None:
            raise RuntimeError("only a pipeline built from a config (Pipeline.from_config) can reload one")
        if not self._started:
            raise RuntimeError("a pipeline reloads its config once it has started")
        while not self._up.wait(0.5):  # a reload that comes while the models are being built waits for them
            if self._stop.is_set():
                raise RuntimeError("the run has ended")
        with self._reloading:
            if self._notifier is not None:
                self._notifier.reloading()
            try:
                report = self.reloader.reload(self, config)
            except BaseException as exc:
                self._reloaded(False, f"config not reloaded: {exc}")
                raise
            else:
                self._reloaded(True, report.done())
            finally:
                if self._notifier is not None:
                    self._notifier.ready(service_status(self.reports()))
            return report

    @property
    def reloads(self) -> dict[str, Any]:
        """What the reloads did (``/status.json``'s ``"config"``): ``{"reloads": ok, "failed":
        n, "last_ok": bool, "last_at": epoch seconds, "last": what it said}``; empty before the first."""
        return dict(self._reloads)

    def _reloaded(self, ok: bool, said: str) -> None:
        before = self._reloads
        self._reloads = {"reloads": before.get("reloads", 0) + ok, "failed": before.get("failed", 0) + (not ok),
                         "last_ok": ok, "last_at": round(time.time(), 3), "last": said}

    def liveness(self) -> dict[str, Any]:
        """Whether the run is well, for a container's probes (the web page's ``/healthz`` and
        ``/readyz``): ``{"ok": bool, "ready": bool, "hung": [worker, …]}``. ``ok``: it runs,
        and no thread worker is hung (inside one forward pass for ``hang_warning`` seconds: it
        cannot be stopped, its streams get no frame again; restarting the run is the cure);
        ``ready``: every worker has built its model and the streams are being read."""
        hung = list(self._monitor.stuck)
        running = not self._finished.is_set()
        return {"ok": running and not hung, "ready": running and self._up.is_set(), "hung": hung}

    def health(self, stream: str) -> StreamHealth:
        return self._by_name[stream].health

    @property
    def threads(self) -> list[threading.Thread]:
        """Every thread the pipeline started (for tests that check none outlives it)."""
        found = [s.capture.thread for s in self._streams] + [w.thread for w in [*self._replaced, *self._workers]]
        found.append(self._monitor.thread)
        return [t for t in found if t.ident is not None]

    # -- helpers ----------------------------------------------------------------------

    def _sink_failed(self, stream: str, message: str) -> None:
        target = self._by_name.get(stream)
        if target is not None:
            target.health.note_error(message)

    def _set_threads(self) -> None:
        if self._torch_threads is None:
            return
        import torch

        self._saved_threads = torch.get_num_threads()
        torch.set_num_threads(self._torch_threads)

    def _restore_threads(self) -> None:
        if self._saved_threads is None:
            return
        import torch

        torch.set_num_threads(self._saved_threads)
        self._saved_threads = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._started:
            self.stop()
            self._teardown(raise_errors=exc is None)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


__all__ = ["Pipeline", "StreamSetup", "cpu_count"]


def _lost(error: BaseException | None) -> list[str]:
    """What outputs lost, as ``error`` (closing them) says: an :class:`OutputsIncompleteError`'s
    each, another error's words (an output that failed as the run ended: a full disk)."""
    if isinstance(error, OutputsIncompleteError):
        return error.lost
    return [str(error)] if isinstance(error, Exception) else []
