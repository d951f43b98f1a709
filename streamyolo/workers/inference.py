"""Inference threads: each builds its own model inside itself and serves a set of streams,
one stream's frames in order. A file read as fast as it goes stays on its worker; a live
stream, or a paced lossless one, is taken by whichever worker of its model is free
(:class:`~streamyolo.workers.live.LiveShare`), a turn at a time, with what is kept of it from
frame to frame (:class:`Kept`). A worker that fails fails the streams of the pass it failed
in; its other streams go on with the model's other workers."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.buffering import BufferClosed, Empty, RingBuffer
from streamyolo.errors import ModelError
from streamyolo.frames import (
    Crossing,
    DetectionFilter,
    Detections,
    Frame,
    Image,
    LineTally,
    Mask,
    Result,
    ZoneCrowd,
    ZoneTally,
    ZoneVisit,
)
from streamyolo.inference.counting import (
    CountingLine,
    CrowdWatch,
    LineCounter,
    Standing,
    Zone,
    ZoneSwitches,
    ZoneWatch,
    occupancy,
    unmasked,
    zone_tallies,
)
from streamyolo.inference.detector import Detector, DetectorFactory
from streamyolo.inference.motion import MotionGate, MotionSettings
from streamyolo.inference.tiles import Tile, TileSettings, area, cut, merge, tiles, with_whole
from streamyolo.inference.tracking import StreamTracker, track_buffer
from streamyolo.pipeline.health import StreamHealth
from streamyolo.schedule import Schedule
from streamyolo.sinks.base import Sink
from streamyolo.sources.redact import redact_text
from streamyolo.workers.live import Hold, LivePicker, LiveShare
from streamyolo.workers.process import ChildModelError, ChildProcessGone

log = logging.getLogger(__name__)

_PartGate = tuple[MotionGate[Detections | int], Tile]
"""A part's motion gate (``tiles`` and ``motion``) and where the part is."""

_IDLE_WAIT = 0.5  # seconds; the doorbell normally wakes the worker long before this
_MAX_HOLD = 0.1  # seconds; a hold is far shorter, this only bounds a clock that jumps
_CONTROLS = 2  # pictures of different streams a worker keeps, to tell a failing model from a failing stream
_CONTROL_SIDE = 640  # pixels; they are kept scaled down to this
_GREY = np.full((360, 640, 3), 114, np.uint8)  # the control of a worker whose model has not run on any picture yet
_GREY.flags.writeable = False


@dataclass(slots=True)
class Kept:
    """What the workers keep of one stream from frame to frame: its tracker, line counter,
    zone watches and motion gates. It goes with the stream (:attr:`Channel.kept`, carried over
    when its settings change), not with a worker, so that whichever worker takes a live
    stream's next frame goes on from there; only the worker that has the stream in hand (its
    claim: :class:`~streamyolo.workers.live.LiveShare`) touches it."""

    tracker: StreamTracker | None = None
    counter: LineCounter | None = None
    watch: ZoneWatch | None = None
    standing: Standing | None = None
    crowd: CrowdWatch | None = None
    gate: MotionGate[Detections | int] | None = None
    parts: tuple[tuple[int, ...], list[_PartGate | None]] | None = None
    """The parts' motion gates (``tiles`` and ``motion``), for frames of one shape."""
    pending: list[Frame] = field(default_factory=list)
    """A lossless stream's frames taken from its buffer by a worker whose model then failed
    (the model at fault, not the stream: see ``InferenceWorker._sift``): whoever takes the
    stream next takes them first."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A stream as its inference worker sees it."""

    name: str
    ring: RingBuffer[Frame]
    live: bool
    health: StreamHealth
    keep: DetectionFilter | None = None
    """What the stream keeps of the detections (its own ``conf``/``classes``), before tracking."""
    lines: tuple[CountingLine, ...] = ()
    """The stream's counting lines, counted after tracking."""
    zones: tuple[Zone, ...] = ()
    """The stream's zones, whose occupancy every frame counts (and, on a tracked stream, who
    enters and leaves them)."""
    masks: tuple[Mask, ...] = ()
    """The stream's masks (and its region's outline, which keeps only its area): their
    detections are dropped, before tracking."""
    motion: MotionSettings | None = None
    """The model runs only on frames where something moved (:mod:`streamyolo.inference.motion`)."""
    tiles: TileSettings | None = None
    """The model also runs on parts of each frame (:mod:`streamyolo.inference.tiles`)."""
    detect: bool = True
    """False: detection is switched off (a camera's privacy, say): its frames go on to every
    output without a forward pass, with no objects."""
    confirm: int = 1
    """With a tracker: the frames in a row an object is tracked in before it is kept."""
    paced: bool = False
    """A lossless stream whose frames come at its source's pace (a camera, a file played in real
    time): the workers of its model take turns at it, as at live streams."""
    kept: Kept = field(default_factory=Kept, compare=False, repr=False)
    """What is kept of the stream from frame to frame (its worker carries it over to the
    stream's new settings: :meth:`InferenceWorker.update`)."""


class InferenceWorker:
    """Owns one detector (built by ``factory`` in this thread) and the streams in ``channels``.

    It takes the ready frames of its streams — the oldest of a lossless stream, the newest
    of a live one (chosen by a :class:`~streamyolo.workers.live.LivePicker`; ``live_hold``
    lets it wait briefly for a fresher frame) — up to ``max_batch`` per forward pass, and
    writes each result to ``sink`` in stream order. With a ``share`` (the workers of its
    model), it takes frames of the other workers' live streams too, and they of its own. It
    ends when every channel's buffer is closed and drained.
    """

    def __init__(
        self,
        name: str,
        factory: DetectorFactory,
        channels: Sequence[Channel],
        sink: Sink,
        doorbell: threading.Event,
        *,
        max_batch: int = 4,
        live_batch: int = 1,
        live_hold: bool = True,
        tracker: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_done: Callable[[], None] | None = None,
        zone_switches: ZoneSwitches | None = None,
        share: LiveShare | None = None,
        adopt: Callable[[InferenceWorker, list[Channel]], list[Channel]] | None = None,
    ) -> None:
        """``zone_switches``: the zones switched by hand, read at each frame; ``share``: the
        live streams of the workers of its model, which it takes turns at with them (and
        whose buffers ring its ``doorbell`` through the share); ``adopt``: should it fail once
        its model is built, who takes its streams that were not in the failing pass (the
        model's other workers: :meth:`Pipeline._adopt
        <streamyolo.pipeline.pipeline.Pipeline._adopt>`), returning those taken; the others
        fail with it."""
        self.name = name
        self._zone_switches = zone_switches
        self._factory = factory
        self._channels = list(channels)
        self._sink = sink
        self._doorbell = doorbell
        self._max_batch = max_batch
        self._live_batch = max(1, min(live_batch, max_batch))
        self._clock = clock
        self._on_done = on_done
        self._adopt = adopt
        self._ready = threading.Event()
        self._done = threading.Event()
        self.error: BaseException | None = None
        self.names: dict[int, str] = {}
        self._cursor = 0  # where the next lossless round-robin starts
        self._busy: tuple[float, tuple[str, ...]] | None = None  # the pass running: since when, its streams
        self._pass: tuple[Channel, ...] = ()  # the streams of the batch being processed (if it fails: suspects)
        self._controls: dict[str, Image] = {}  # pictures the model ran on, a stream's each (see _sift)
        self._sifted = 0  # batches that failed and went through stream by stream
        self._served = False  # its model (as last built) has processed a batch
        self._building: float | None = None  # since when it has been building its model again
        self._at_fault = False  # its model failed on a picture it had run on before
        self._picker = LivePicker(hold=live_hold, share=share, member=self)
        self._share = self._picker.share
        self._published: tuple[Channel, ...] = ()  # its live and paced streams as the share has them
        self._tracker = tracker
        self._schedules: dict[Schedule, tuple[bool, float]] = {}  # zones' schedules: on or off, until when
        self._added: list[Channel] = []  # streams added while it runs (:meth:`add`), not yet served
        self._updates: list[Channel] = []  # streams' new settings (:meth:`update`), not yet applied
        self._adding = threading.Lock()
        self._closing = False  # it serves no stream and takes no more: it is ending
        self._holds = 0  # while held (a reload), it does not end for want of streams
        self._thread = threading.Thread(target=self._run, name=f"inference:{name}")

    @property
    def streams(self) -> list[str]:
        return [channel.name for channel in [*self._channels, *self._added]]

    def add(self, channel: Channel) -> bool:
        """Serve ``channel`` too from now on (a stream added while the run goes: a reload).
        False when the worker has ended or is ending (it had no stream left), or failed."""
        with self._adding:
            if self._closing:
                return False
            self._added.append(channel)
        self._doorbell.set()
        return True

    def update(self, channel: Channel) -> bool:
        """Serve the stream ``channel`` is (the same buffer) with ``channel``'s settings from its
        next frame on (a reload changed its zones, lines, masks, ``conf`` …): its tracker goes
        on; its lines, zones and motion start afresh if they changed (a zone: if it is not the
        same place), and go on if not (a ``conf`` changed does not make those inside a zone
        enter it again). False when the worker has ended."""
        with self._adding:
            if self._closing:
                return False
            self._added = [channel if c.ring is channel.ring else c for c in self._added]
            self._updates.append(channel)
        self._doorbell.set()
        return True

    def hold(self) -> bool:
        """Keep serving, even with no stream left, until :meth:`release` (a reload removes
        streams before it adds others). False when it has ended or is ending."""
        with self._adding:
            if self._closing:
                return False
            self._holds += 1
            return True

    def release(self) -> None:
        """Undo a :meth:`hold`: with no stream left, it ends."""
        with self._adding:
            self._holds -= 1
        self._doorbell.set()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once the model is built (or building failed: check ``error``)."""
        return self._ready.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def in_hand(self) -> tuple[str, ...]:
        """The streams of the batch in its forward pass now (a live stream may be another
        worker's); empty between batches."""
        busy = self._busy
        return () if busy is None else busy[1]

    @property
    def busy_since(self) -> float | None:
        """When (on the pipeline's clock) the forward pass now running began (or the building
        of its model again, :attr:`doing` says which); ``None`` between batches. What
        :class:`~streamyolo.pipeline.monitor.Monitor` watches for hangs."""
        busy = self._busy
        return self._building if busy is None else busy[0]

    @property
    def doing(self) -> str:
        """What it has been doing since :attr:`busy_since`."""
        return "inside one forward pass" if self._busy is not None or self._building is None else \
            "building its model again"

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- thread body ---------------------------------------------------------------------

    def _run(self) -> None:
        detector: Detector | None = None
        self._share.enter(self, self._doorbell)
        try:
            detector = self._factory()
            self.names = dict(detector.names)
            self._ready.set()
            while True:
                try:
                    self._serve(detector)
                    break
                except _BuildAgain as again:  # (its model failed on a picture it had run on before)
                    error = again.error
                log.error("%s", redact_text(f"the model of inference worker {self.name!r} failed ({_cause(error)}) "
                                            f"on a picture it had run on before: it is built again, and its streams "
                                            f"wait for it"))
                _discard(detector)
                detector = None
                self._building = self._clock()
                try:
                    detector = self._factory()
                except Exception as exc:
                    raise ModelError(f"its model could not be built again: {_cause(exc)}") from exc
                finally:
                    self._building = None
                log.warning("inference worker %r: its model is built again; it goes on", self.name)
        except BaseException as exc:  # the worker owns its death: record, fail its streams, close inputs
            self.error = exc
            message = redact_text(f"inference worker {self.name!r} failed: {_cause(exc)}")
            if self._ready.is_set():  # a model that fails to build is reported by Pipeline.start
                log.error("%s", message, exc_info=exc)
            self._fail(message, exc)
        finally:
            self._share.leave(self)
            with self._adding:
                self._closing = True
            self._ready.set()
            if detector is not None:
                try:
                    if self._at_fault:  # (its model copies are not lent to the others)
                        _discard(detector)
                    else:
                        detector.close()
                except Exception:
                    log.debug("closing detector of %s failed", self.name, exc_info=True)
            self._done.set()
            if self._on_done is not None:
                self._on_done()

    def _fail(self, message: str, error: BaseException) -> None:
        """It failed (``message`` says how): the streams of the pass it failed in fail (what
        failed it may be one of theirs, whichever worker's they are; not when its process was
        found dead before the pass was sent, ``error`` says so, nor when its model failed on a
        picture it had run on before, :meth:`_sift` says so); once its model was built, its
        other streams go on with the model's other workers (``adopt``), with what is kept of
        them; those nobody takes fail too."""
        with self._adding:
            self._closing = True
            newest = {update.ring: update for update in self._updates}  # (settings not applied yet: theirs)
            own = [replace(newest[c.ring], kept=c.kept) if c.ring in newest else c for c in self._channels]
            own, self._added, self._updates = [*own, *self._added], [], []
        self._share.leave(self)  # (its live streams are no longer offered as its)
        innocent = isinstance(error, ChildProcessGone) and error.idle
        suspects = {} if innocent else {channel.ring: channel for channel in self._pass}
        for channel in suspects.values():  # (another worker's is settled by that worker, as it ends)
            _failed(channel, message)
        leaving = [channel for channel in own if channel.ring not in suspects]
        adopted = self._adopt(self, leaving) if self._adopt is not None and self._ready.is_set() and leaving else []
        taken = {channel.ring for channel in adopted}
        for channel in own:
            if channel.ring in taken:
                continue
            if channel.ring not in suspects:
                _failed(channel, message)
            channel.health.settled()  # nothing more comes of it

    def _serve(self, detector: Detector) -> None:
        active = list(self._channels)
        while True:
            with self._adding:
                waiting: list[Channel] = []  # new settings of streams another worker has in hand
                for update in self._updates:  # streams given new settings
                    if not self._share.claim(update.ring):
                        waiting.append(update)
                        continue
                    old = next((c for c in self._channels if c.ring is update.ring), None)
                    channel = update if old is None else replace(update, kept=old.kept)  # (its tracks go on)
                    self._channels = [channel if c.ring is channel.ring else c for c in self._channels]
                    active[:] = [channel if c.ring is channel.ring else c for c in active]
                    self._refresh(old, channel)
                    self._share.release(channel.ring)
                self._updates = waiting
                if self._added:  # streams added while the run goes
                    self._channels += self._added
                    active += self._added
                    self._added = []
                elif not self._channels and not self._holds and not self._share.offers(self):
                    self._closing = True  # (while the model's other workers have cameras, it serves them)
                    return
            self._publish(active)
            self._doorbell.clear()  # before looking, so a put after the look still wakes us
            batch, hold = self._collect(active)
            if batch:
                try:
                    self._pass = tuple(channel for channel, _ in batch)
                    self._process(detector, batch)
                    self._pass = ()
                    self._served = True
                finally:
                    for channel in {c.ring: c for c, _ in batch if c.live or c.paced}.values():
                        self._share.release(channel.ring)
            if len(active) < len(self._channels):  # a stream's last frame is done
                for channel in [c for c in self._channels if c not in active]:
                    if not self._share.claim(channel.ring):
                        continue  # another worker has its last frame in hand: once it is written
                    self._channels.remove(channel)
                    self._picker.forget(channel.name)
                    channel.health.settled()
                    self._share.release(channel.ring)
            if batch:
                continue
            if hold is not None:  # a fresher live frame is due: wait for it (or any put)
                self._doorbell.wait(min(_MAX_HOLD, max(0.0, hold.until - self._clock())))
            elif self._channels or self._holds or self._share.offers(self):  # (held with no stream: a reload
                self._doorbell.wait(_IDLE_WAIT)  # is adding some; a stream ended whose last frame is in another's
                # hand: until it is given back; the model's other workers' cameras)

    def _publish(self, active: list[Channel]) -> None:
        """Tell the share this worker's live and paced lossless streams, when they changed."""
        shared = tuple(c for c in active if c.live or c.paced)
        if len(shared) != len(self._published) or any(
                a is not b for a, b in zip(shared, self._published, strict=True)):
            self._published = shared
            self._share.publish(self, [c for c in shared if c.live], [c for c in shared if c.paced])

    def _refresh(self, old: Channel | None, new: Channel) -> None:
        """A stream's settings were ``old`` and are ``new`` (a reload): drop what is kept of it
        of what changed (its line counters, motion gates; of its zones, those that are not the
        same places any more: :meth:`ZoneWatch.going_on
        <streamyolo.inference.counting.ZoneWatch.going_on>`), keep the rest and its tracker (its
        tracks go on)."""
        kept = new.kept
        if old is None or old.lines != new.lines:
            kept.counter = None
        if old is None or (old.motion, old.masks, old.tiles) != (new.motion, new.masks, new.tiles):
            kept.gate = kept.parts = None
        if old is not None and old.zones != new.zones:  # (the zones that are the same places go on)
            if kept.watch is not None:
                kept.watch = ZoneWatch(new.zones, track_buffer(self._tracker)).going_on(kept.watch)
            if kept.crowd is not None:
                kept.crowd = CrowdWatch(new.zones).going_on(kept.crowd)
        elif old is None:
            kept.watch = kept.crowd = None

    def _collect(self, active: list[Channel]) -> tuple[list[tuple[Channel, Frame]], Hold | None]:
        """The next batch: up to ``live_batch`` live frames, one per stream (one on a CPU,
        where a batch only adds waiting, more on a GPU, where it is nearly free), then
        lossless frames round-robin from a rotating start, up to ``max_batch``. Paced lossless
        streams (cameras, files played in real time), when the model has other workers, are
        theirs too: it takes the frames of those owed a turn (:meth:`LiveShare.take_paced
        <streamyolo.workers.live.LiveShare.take_paced>`; as many streams as live frames, one on a
        CPU), whichever worker's they are. Removes channels whose buffers are closed and drained.
        An empty batch may come with a :class:`Hold`: the live picker waits for a fresher frame.
        The live and paced streams of the batch are in its hand until given back."""
        batch: list[tuple[Channel, Frame]] = []
        hold: Hold | None = None
        live = [c for c in active if c.live]
        now = self._clock()
        while len(batch) < self._live_batch:  # (its own live streams, or the model's other workers')
            picked = self._picker.pick(live, active, now, may_hold=not batch)
            if picked is None:
                break
            if isinstance(picked, Hold):
                hold = picked
                break
            batch.append(picked)
            if picked[0] in live:  # (not one of another worker's)
                live.remove(picked[0])
        lossless = [c for c in active if not c.live]
        if self._share.pacing():
            for channel in [c for c in lossless if c.paced and c.ring.exhausted() and not c.kept.pending]:
                active.remove(channel)
            lossless = [c for c in lossless if not c.paced]
            if len(batch) < self._max_batch:
                taken = self._share.take_paced(self._live_batch)
                if taken:  # (its files' frames get their share of the batch: a turn does not crowd them out)
                    room = self._max_batch - len(batch)
                    turn = max(1, room * len(taken) // (len(taken) + len(lossless)))
                    self._take_lossless(taken, [], batch, {channel.ring for channel in taken}, len(batch) + turn)
        if lossless and len(batch) < self._max_batch:
            self._take_lossless(lossless, active, batch)
            inhand = {channel.ring: channel for channel, _ in batch if channel.paced}
            if inhand and len(batch) < self._max_batch:  # (its files had fewer waiting: the turn takes the rest)
                self._take_lossless(list(inhand.values()), [], batch, set(inhand))
        return batch, hold

    def _take_lossless(self, lossless: list[Channel], active: list[Channel], batch: list[tuple[Channel, Frame]],
                       held: set[object] | None = None, limit: int | None = None) -> None:
        """Add frames of ``lossless`` to ``batch``, oldest first, round-robin from a rotating
        start, up to ``limit`` frames in the batch (``max_batch``); a paced stream only once in
        hand (``held``: the buffers of those in hand already), kept in hand with a frame in the
        batch, given back without. Removes from ``active`` those closed and drained."""
        limit = self._max_batch if limit is None else limit
        start = self._cursor % len(lossless)
        self._cursor += 1
        order = lossless[start:] + lossless[:start]
        held = set() if held is None else held
        progressed = True
        while progressed and len(batch) < limit:
            progressed = False
            for channel in order:
                if len(batch) >= limit:
                    break
                if channel.paced and channel.ring not in held:
                    if not self._share.claim(channel.ring):
                        continue
                    held.add(channel.ring)
                try:
                    frame = channel.kept.pending.pop(0) if channel.kept.pending else channel.ring.get_nowait()
                except Empty:
                    continue
                except BufferClosed:
                    if channel in active:
                        active.remove(channel)
                    continue
                batch.append((channel, frame))
                progressed = True
        taken = {channel.ring for channel, _ in batch}
        for ring in held - taken:
            self._share.release(ring)

    def _process(self, detector: Detector, batch: list[tuple[Channel, Frame]]) -> None:
        try:
            detections, stills, counts = self._detect(detector, batch)
        except Exception as error:  # the model's fault, or a stream's? (raises if the model's)
            batch, detections, stills, counts = self._sift(detector, batch, error)
        except BaseException:
            _lose(batch)
            raise
        now = self._clock()
        for index, ((channel, frame), found, still, pictures) in enumerate(
                zip(batch, detections, stills, counts, strict=True)):
            try:
                kept = found if channel.keep is None else channel.keep.apply(found)
                if channel.masks:
                    kept = unmasked(channel.masks, kept)
                shown = kept if self._tracker is None else self._track(channel, kept, frame.image)
                crossings, lines = self._cross(channel, shown) if channel.lines else ((), ())
                zones: tuple[ZoneTally, ...] = ()
                visits: tuple[ZoneVisit, ...] = ()
                crowds: Sequence[ZoneCrowd] = ()
                speeds: tuple[tuple[int, float], ...] = ()
                if channel.zones:
                    held = occupancy(channel.zones, shown)
                    armed = self._armed(channel)
                    stationary = None
                    if self._tracker is not None:
                        visits = self._visit(channel, shown, frame, held, armed)
                        watch = channel.kept.watch
                        assert watch is not None
                        speeds, stationary = tuple(watch.speeds.items()), watch.stationary
                    zones = zone_tallies(channel.zones, shown, held, armed, stationary)
                    if any(zone.crowd for zone in channel.zones):
                        crowds, zones = self._crowd(channel).update(zones, frame.meta.media_time)
                    channel.health.zoned(zones, visits)
                region = (None if channel.tiles is None or channel.tiles.region is None
                          else area(channel.tiles, *frame.image.shape[:2]))
                standing = None if self._tracker is None else self._standing(channel).update(
                    shown, frame.meta.media_time)
                result = Result(frame, shown, now, self.name, crossings, lines, zones, visits, tuple(crowds),
                                _outlined(channel, region), speeds, still, pictures if _tiled(channel.tiles) else None,
                                channel.detect, region, standing)
                self._sink.write(result)
            except BaseException:
                _lose(batch[index:])
                raise
            channel.health.processed(result.age, now, still, pictures)

    def _detect(self, detector: Detector, batch: list[tuple[Channel, Frame]]
                ) -> tuple[list[Detections], list[bool], list[int]]:
        """Each frame's detections, whether it was still (``motion``: nothing moved since the
        frame the model last ran on, in this batch or before, whose detections it takes with
        no forward pass of its own), and how many pictures the model ran on for it. A stream
        with ``tiles`` has the model run on the frame's parts too, every picture of the batch
        in one call, and its objects merged; with ``motion`` as well, a part where nothing
        moved takes what the model last found on it."""
        takes: list[Detections | int] = []  # detections from before, or the index of the frame's run in `runs`
        stills: list[bool] = []
        runs: list[tuple[Channel, Image, list[Detections | int], int]] = []  # and how many pictures it added
        pictures: list[Image] = []  # what the model runs on: frames, or their parts
        gated: list[MotionGate[Detections | int]] = []  # frames' gates, their `found` an index in `runs`
        parts_gated: list[MotionGate[Detections | int]] = []  # parts' gates, `found` an index in `pictures`
        for channel, frame in batch:
            if not channel.detect:  # switched off: no objects, no forward pass
                takes.append(Detections.empty(self.names))
                stills.append(False)
                continue
            gate = self._gate(channel)
            last: Detections | int | None = None
            small: npt.NDArray[np.uint8] | None = None
            if gate is not None:
                small, at = gate.small(frame.image), frame.meta.media_time
                last = gate.still(small, at)
            stills.append(last is not None)
            if last is None:
                last, before = len(runs), len(pictures)
                plan = self._plan(channel, frame, small, pictures, parts_gated)
                runs.append((channel, frame.image, plan, len(pictures) - before))
                if gate is not None and small is not None:
                    gate.ran(small, at, last)  # this batch's later frames of the stream compare with it
                    gated.append(gate)
            takes.append(last)
        ran: list[Detections] = []
        if runs:
            started = self._clock()
            self._busy = (started, tuple(dict.fromkeys(channel.name for channel, _ in batch)))
            try:
                found = detector.detect(pictures) if pictures else []
            except BaseException:
                for gate in gated + parts_gated:
                    gate.forget()
                raise
            finally:
                self._busy = None
            if pictures:
                self._picker.forward_took(self._clock() - started)
            if len(self._controls) < _CONTROLS:
                for channel, image, _, _ in runs:
                    if channel.name not in self._controls and len(self._controls) < _CONTROLS:
                        self._controls[channel.name] = _shrunk(image)
            for gate in parts_gated:
                if isinstance(gate.found, int):
                    gate.settle(found[gate.found])
            ran = [self._merged(channel, image, [found[p] if isinstance(p, int) else p for p in plan])
                   for channel, image, plan, _ in runs]
        for gate in gated:
            if isinstance(gate.found, int):
                gate.settle(ran[gate.found])
        counts = [0 if still or not isinstance(take, int) else runs[take][3]
                  for take, still in zip(takes, stills, strict=True)]
        return [ran[take] if isinstance(take, int) else take for take in takes], stills, counts

    def _sift(self, detector: Detector, batch: list[tuple[Channel, Frame]], error: Exception
              ) -> tuple[list[tuple[Channel, Frame]], list[Detections], list[bool], list[int]]:
        """The model raised ``error`` on ``batch``: run it again stream by stream, to tell a
        stream whose frames fail it (which fails, alone) from a model that fails; a stream's
        frames that fail together run again one by one (were they too many at once?). A stream
        whose frames fail again fails when the model still runs: on another stream's frames of
        the batch, or else on a picture it ran on before (a ``control``, of another stream if it
        has one; a plain grey one if it has run on none yet). When it fails there too, the model
        is at fault and the streams of the batch are not (a lossless stream's frames go back to
        it): a model that has processed a batch since it was built is built again
        (:class:`_BuildAgain`); else ``error`` is raised, the worker fails and its streams go
        on with the model's other workers (``_pass`` is emptied). Frames the model did not run
        on (still, or with detection off) tell nothing of it. A batch that killed the worker's
        child process and the new ones its restarts started (``process_restarts``) is sifted
        the same way, on new children (but for a batch of one stream, which they ran already);
        one that killed a child with no restarts is not (the worker fails at the first death,
        as asked). Returns what went through: the frames, their detections, stills and counts."""
        dead = isinstance(error, ChildProcessGone)
        if isinstance(error, ChildProcessGone) and (error.idle or not error.restarted):  # (no restarts: as asked)
            _lose(batch)
            raise error
        runs: dict[int, list[tuple[Channel, Frame]]] = {}
        for entry in batch:
            runs.setdefault(id(entry[0].ring), []).append(entry)
        again = not dead or len(runs) > 1  # (the restarts ran a one-stream batch that killed them again already)
        if dead:
            log.warning("inference worker %r: a batch killed its process and the new ones its restarts started; "
                        "it runs again stream by stream, on new processes, to find what is at fault", self.name)
        ran = False  # whether the model ran on any of it (not only frames still or with detection off)
        went: list[tuple[Channel, Frame]] = []
        found: list[Detections] = []
        stills: list[bool] = []
        counts: list[int] = []
        failing: list[tuple[list[tuple[Channel, Frame]], Exception]] = []
        for entries in runs.values():
            tries = [entries] if again else []  # the stream's frames, then one by one (too many at once?)
            tries += [[entry] for entry in entries] if len(entries) > 1 else []
            if not tries:
                failing.append((entries, error))
            for part in tries:
                try:
                    detections, still, count = self._detect(detector, part)
                except Exception as exc:  # (a child that dies here is what the restarts tell of)
                    if part is entries and len(entries) > 1:
                        continue
                    failing.append((entries[next(i for i, e in enumerate(entries) if e is part[0]):], exc))
                    break
                went += part
                found += detections
                stills += still
                counts += count
                ran = ran or any(count)
                if part is entries:
                    break
        if failing and not ran and not self._sound(detector, {entries[0][0].name for entries, _ in failing}):
            self._pass = ()  # the model's fault: the streams go on (a lossless one's frames too)
            _hand_back(batch)
            self._at_fault = True
            if self._served:  # (built again: the first batch of a model built again is not)
                self._served = self._at_fault = False
                raise _BuildAgain(error) from error
            raise error
        for entries, failure in failing:
            channel = entries[0][0]
            message = redact_text(f"the model of inference worker {self.name!r} fails on its frames: {_cause(failure)}")
            log.error("stream %r failed: %s (the worker goes on with its other streams)", channel.name, message)
            log.debug("what stream %r's frames raised", channel.name, exc_info=failure)
            _lose(entries)
            _failed(channel, message)
        if not failing:
            self._sifted += 1  # (told once: a model that fails every batch of many frames would say it every batch)
            log.log(logging.WARNING if self._sifted == 1 else logging.DEBUG,
                    "inference worker %r: a batch failed (%s: %s) and went through stream by stream%s", self.name,
                    type(error).__name__, redact_text(str(error)), "" if self._sifted > 1 else
                    " (told once; more with --log-level debug)")
        return went, found, stills, counts

    def _sound(self, detector: Detector, suspects: set[str]) -> bool:
        """Whether the model still runs on a picture it ran on before, of a stream not among
        ``suspects`` if it has one (else on a plain grey picture: it has not run on any yet)."""
        controls = [image for name, image in self._controls.items() if name not in suspects]
        controls = controls or list(self._controls.values()) or [_GREY]
        self._busy = (self._clock(), tuple(sorted(suspects)))
        try:
            detector.detect(controls[:1])
        except Exception:
            return False
        finally:
            self._busy = None
        return True

    def _plan(self, channel: Channel, frame: Frame, small: npt.NDArray[np.uint8] | None, pictures: list[Image],
              parts_gated: list[MotionGate[Detections | int]]) -> list[Detections | int]:
        """What the model gives for each of a frame's pictures (the frame, or its :func:`cut`):
        the index of the picture added to ``pictures`` for it to run on, or, for a part where
        nothing moved since the model last ran on it (``small``: the frame as the stream's
        motion gate compares it), what it gave there."""
        cuts = [frame.image] if channel.tiles is None else cut(channel.tiles, frame.image)
        gates = [] if small is None or not _tiled(channel.tiles) else self._part_gates(channel, frame.image.shape)
        plan: list[Detections | int] = []
        for index, picture in enumerate(cuts):
            gated = gates[index] if gates else None
            if gated is not None:
                assert small is not None
                gate, where = gated
                part = _small_part(small, frame.image.shape, where)
                last = gate.still(part, frame.meta.media_time)
                if last is not None:
                    plan.append(last)
                    continue
                gate.ran(part, frame.meta.media_time, len(pictures))
                parts_gated.append(gate)
            plan.append(len(pictures))
            pictures.append(picture)
        return plan

    def _merged(self, channel: Channel, image: Image, found: list[Detections]) -> Detections:
        return found[0] if channel.tiles is None else merge(channel.tiles, image.shape, found, self.names)

    def _gate(self, channel: Channel) -> MotionGate[Detections | int] | None:
        """``channel``'s motion gate (``None``: the model runs on every frame)."""
        if channel.motion is None:
            return None
        gate = channel.kept.gate
        if gate is None:
            gate = channel.kept.gate = MotionGate(channel.motion, _outlined(channel))  # (the region's only)
        return gate

    def _part_gates(self, channel: Channel, shape: tuple[int, ...]) -> list[_PartGate | None]:
        """For each of ``channel``'s pictures of a frame of ``shape`` (:func:`cut`'s), a part's
        motion gate and where the part is, or ``None`` for the whole picture (which runs
        whenever the frame does: what is too big for a part)."""
        known = channel.kept.parts
        if known is not None and known[0] == shape:
            return known[1]
        assert channel.motion is not None and channel.tiles is not None
        parts = tiles(channel.tiles, *shape[:2])
        gates: list[_PartGate | None] = [None] if with_whole(channel.tiles, *shape[:2]) else []
        if parts:
            # A part's `area` is as many pixels as the frame's: as sensitive to what moves.
            settings = replace(channel.motion, area=min(1.0, channel.motion.area * shape[0] * shape[1]
                                                        / (parts[0].width * parts[0].height)))
            gates += [(MotionGate(settings), part) for part in parts]
        channel.kept.parts = (shape, gates)
        return gates

    def _cross(self, channel: Channel, shown: Detections) -> tuple[tuple[Crossing, ...], tuple[LineTally, ...]]:
        """The crossings of ``channel``'s counting lines in this frame, and the lines' totals."""
        counter = channel.kept.counter
        if counter is None:
            counter = channel.kept.counter = LineCounter(channel.lines)
        tracker = channel.kept.tracker
        crossings = tuple(counter.update(shown, tracker.origins if tracker is not None else None))
        if crossings:
            channel.health.counted(crossings)
        return crossings, counter.tallies()

    def _visit(self, channel: Channel, shown: Detections, frame: Frame, held: Sequence[npt.NDArray[np.bool_]],
               armed: Sequence[bool | None] | None) -> tuple[ZoneVisit, ...]:
        """The tracked objects that entered, lingered in or left ``channel``'s zones in this frame
        (``armed``: which are watched now, for zones with schedules)."""
        watch = channel.kept.watch
        if watch is None:
            watch = channel.kept.watch = ZoneWatch(channel.zones, track_buffer(self._tracker))
        return tuple(watch.update(shown, frame.meta.media_time, held, armed))

    def _standing(self, channel: Channel) -> Standing:
        standing = channel.kept.standing
        if standing is None:
            standing = channel.kept.standing = Standing(track_buffer(self._tracker))
        return standing

    def _crowd(self, channel: Channel) -> CrowdWatch:
        watch = channel.kept.crowd
        if watch is None:
            watch = channel.kept.crowd = CrowdWatch(channel.zones)
        return watch

    def _armed(self, channel: Channel) -> list[bool | None] | None:
        """Whether each of ``channel``'s zones is watched now: as switched by hand, else as its
        schedule says (looked at again when it changes); ``None`` for a zone with neither (always
        watched), and for all when none has either."""
        hands = self._zone_switches
        handled = hands is not None and hands.any(channel.name)
        if not handled and not any(zone.schedule for zone in channel.zones):
            return None
        now = time.time()
        armed: list[bool | None] = []
        for zone in channel.zones:
            hand = hands.get(channel.name, zone.name, now) if hands is not None and handled else None
            if hand is not None or zone.schedule is None:
                armed.append(hand)
                continue
            said = self._schedules.get(zone.schedule)
            if said is None or now >= said[1]:
                said = self._schedules[zone.schedule] = zone.schedule.at(now)
            armed.append(said[0])
        return armed

    def _track(self, channel: Channel, found: Detections, image: Image) -> Detections:
        tracker = channel.kept.tracker
        if tracker is None:
            assert self._tracker is not None
            tracker = channel.kept.tracker = StreamTracker(self._tracker)
        return tracker.update(found, image, channel.confirm)


class _BuildAgain(Exception):
    """A worker's model failed on a picture it had run on before, after processing batches:
    built again, it may go on (``error``: what it raised)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _cause(error: BaseException) -> str:
    """What a model raised, as ``Type: message`` (a child process's model: its own; a child
    process that died: how)."""
    if isinstance(error, ChildModelError):
        return error.cause
    if isinstance(error, ChildProcessGone):
        return error.death
    return f"{type(error).__name__}: {error}"


def _discard(detector: Detector) -> None:
    """Close ``detector``, whose model is at fault: its model copies are not lent to other
    workers (:meth:`LanedDetector.discard <streamyolo.inference.lanes.LanedDetector.discard>`)."""
    discard = getattr(detector, "discard", None)
    if callable(discard):
        discard()
    else:
        detector.close()


def _lose(batch: Sequence[tuple[Channel, Frame]]) -> None:
    """The frames of ``batch`` are lost (counted as such)."""
    for channel, _ in batch:
        channel.health.lose(1)


def _hand_back(batch: Sequence[tuple[Channel, Frame]]) -> None:
    """The frames of ``batch`` go back to their streams, a lossless stream's to be taken
    first by whoever takes it next (:attr:`Kept.pending`); a live stream's are lost."""
    back: dict[int, tuple[Channel, list[Frame]]] = {}
    for channel, frame in batch:
        if channel.live:
            channel.health.lose(1)
        else:
            back.setdefault(id(channel.kept), (channel, []))[1].append(frame)
    for channel, frames in back.values():
        channel.kept.pending[:0] = frames


def _shrunk(image: Image) -> Image:
    """A copy of ``image``, scaled down to at most ``_CONTROL_SIDE`` pixels a side."""
    height, width = image.shape[:2]
    scale = _CONTROL_SIDE / max(height, width)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cast(Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def _failed(channel: Channel, message: str) -> None:
    """``channel``'s stream fails with ``message``: its capture ends, what it had buffered is
    counted as dropped. (Failed first: a capture that finds its buffer closed would say
    ``stopped``, and the first end a stream is told is the one it keeps.)"""
    channel.health.fail(message)
    channel.ring.close()
    channel.ring.discard()  # counted as dropped by the buffer
    if channel.kept.pending:
        channel.health.lose(len(channel.kept.pending))
        channel.kept.pending.clear()


def _tiled(settings: TileSettings | None) -> bool:
    """Whether the model runs on several pictures a frame (whose count each result says)."""
    return settings is not None and not settings.one_picture


def _outlined(channel: Channel, region: tuple[int, int, int, int] | None = None) -> tuple[Mask, ...]:
    """``channel``'s masks, and the region the model looks at as a mask that keeps only its area
    (``region``: as cut to a frame, :func:`~streamyolo.inference.tiles.area`): what the pictures
    outline, and where motion counts."""
    if channel.tiles is None or channel.tiles.region is None or channel.tiles.outline is not None:
        return channel.masks  # (a region's outline is one of them)
    x1, y1, x2, y2 = region or channel.tiles.region
    return (*channel.masks, Mask("region", ((x1, y1), (x2, y1), (x2, y2), (x1, y2)), outside=True))


def _small_part(small: npt.NDArray[np.uint8], shape: tuple[int, ...], where: Tile) -> npt.NDArray[np.uint8]:
    """Where the part ``where`` of a frame of ``shape`` is on the frame's ``small`` picture.

    >>> _small_part(np.zeros((180, 320), np.uint8), (1080, 1920, 3), Tile(960, 540, 960, 540, (True,) * 4)).shape
    (90, 160)
    """
    sy, sx = small.shape[0] / shape[0], small.shape[1] / shape[1]
    return small[int(where.y * sy):math.ceil((where.y + where.height) * sy),
                 int(where.x * sx):math.ceil((where.x + where.width) * sx)]
