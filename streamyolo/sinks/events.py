"""Events: what happened, when it happened, for alerts and for the record.

An event is a JSON object ``{"time", "stream", "event", …}`` (``time``: seconds since the
epoch, of the frame's arrival or of the change):

- ``"line"``: a tracked object crossed a counting line (``line``, ``direction``, ``id``,
  ``cls``, ``name``; also ``seq``, the frame);
- ``"enter"`` / ``"leave"``: a tracked object entered or left a zone (``zone``, ``id``,
  ``cls``, ``name``, and on leaving ``dwell``, the seconds it stayed; ``seq``); ``"linger"``:
  it has been inside for the zone's ``linger`` seconds (``dwell``), once per stay;
- ``"state"``: a stream came up or went down (``state``: ``streaming``, ``reconnecting``,
  ``failed`` or ``ended``; ``error`` when there is one): a camera that stops sending is
  ``reconnecting`` once, however many tries it takes, and ``streaming`` again when it is back;
- ``"clip"`` (with clips): a moment with events began (``state``: ``started``, with the frame's
  ``seq``, before its first events) or its clip is finished and whole (``ended``, with its
  ``seconds`` of video; ``"whole": false`` when a full disk cut it short), or its clip was not
  made (``failed``, with the ``error`` why: the camera's own video did not come, a full disk):
  one notification per moment instead of one per object, and ``ended`` or ``failed`` after each
  ``started``.

They go, in the order they happened per stream (a stream's end after the events of its last
frames), to any of: the events file (one JSON line each, appended;
:class:`~streamyolo.sinks.jsonl.LineFile`), a webhook (one POST each:
:class:`~streamyolo.sinks.webhook.Webhook`), and the snapshots folder: a frame with events is
saved once, annotated, as ``<stream>-YYYYmmdd-HHMMSS-mmm-<seq>.jpg`` (its arrival's local time
and its frame number; never over an earlier file), and its events name it (``"snapshot"``);
with clips (:mod:`streamyolo.sinks.clips`), they also name the clip they are in (``"clip"``).
All of it happens in the sink's own thread: the inference threads only hand over the frames
that have events.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import file_stamp, format_seconds, wall_time
from streamyolo.errors import OutputsIncompleteError
from streamyolo.frames import Result
from streamyolo.schedule import Schedule, zone_of
from streamyolo.sinks.base import (
    OutputPause,
    check_writable_folder,
    current_board,
    delete_older,
    listen_to_pauses,
    paused_outputs,
)
from streamyolo.sinks.jsonl import LineFile
from streamyolo.sinks.mqtt import MqttPublisher, StatePublisher, StreamEntities
from streamyolo.sinks.recorder import VideoClock
from streamyolo.sinks.storage import Storage
from streamyolo.sinks.webhook import Deliverer, Webhook

if TYPE_CHECKING:
    from streamyolo.pipeline.report import StreamReport

log = logging.getLogger(__name__)

ANNOUNCED = frozenset({"streaming", "reconnecting", "failed", "ended"})
"""The stream states an event announces (connecting again, and stopped at the end, are not news)."""
ENDS = frozenset({"failed", "ended", "removed", "restarting"})
"""A stream's states after which it has no more frames (its crowds are told over then)."""

RECENT = 200
"""Events kept for the web page (``/events.json``)."""

SNAPSHOT_BACKLOG = 64
"""Frames waiting for their snapshot beyond which a frame's events go out without one."""

PRUNE_SECONDS = 60.0
"""``snapshots_keep``: how often old snapshots are looked for (at most), as new ones are saved."""

SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*-\d{8}-\d{6}-\d{3}-\d+(-\d+)?\.jpg")
"""What a snapshot's file is called (``<stream>-YYYYmmdd-HHMMSS-mmm-<seq>[-n].jpg``): what
``snapshots_keep`` may delete, and nothing else in the folder."""

JOIN_SECONDS = 60.0
"""How long the end of the run waits for the events thread (it writes files, which a hung
network share could hold up)."""


class EventOutput(Protocol):
    """Somewhere events are delivered from a thread of its own (a webhook, an MQTT broker)."""

    def start(self) -> None: ...

    def send(self, event: dict[str, Any]) -> None:
        """Take ``event`` for delivery; never blocks."""
        ...

    def close(self) -> None:
        """Deliver what waits (for a while), stop; :class:`OutputsIncompleteError` if events were lost."""
        ...


DOWN = frozenset({"reconnecting", "failed"})
"""The stream states that say a camera is down (``down_after``)."""

SKIPPED_SPAN = 10.0
"""Seconds over which the share of a stream's frames skipped is told (its ``stats``)."""

OBJECT_EVENTS = frozenset({"line", "enter", "leave", "linger", "speeding"})
"""The events about an object (a line crossed, a zone's visit): those ``classes`` and
``cooldown`` apply to."""


class EventFilter:
    """Which events an output gets (``webhooks``): of some ``kinds``, ``streams``, ``places``
    (zones, lines) and, for object events, ``classes``; with ``cooldown``, a stream's object events at most one per that
    many seconds (by their own times: one notification per visit, not one per step). Events
    that are not about an object (a camera down, a clip, a switch) go whatever the classes and
    cooldown. With ``down_after``, a camera down (``reconnecting``, ``failed``) is told only once
    it has been down that long (:meth:`due`), and its coming back only if its going down was: a
    Wi-Fi camera's blip of a few seconds is no notification. Used by the events thread alone."""

    def __init__(self, kinds: Collection[str] | None = None, streams: Collection[str] | None = None,
                 classes: Collection[int] | None = None, cooldown: float | None = None,
                 down_after: float | None = None, schedule: Schedule | None = None,
                 places: Collection[str] | None = None) -> None:
        """``schedule``: only the events that happen in its windows (by their own times);
        ``places``: of the events in a zone or at a line, only those of these (their names)."""
        self.schedule = schedule
        self.places = None if places is None else frozenset(places)
        self.kinds = None if kinds is None else frozenset(kinds)
        self.streams = None if streams is None else frozenset(streams)
        self.classes = None if classes is None else frozenset(classes)
        self.cooldown = cooldown
        self.down_after = down_after
        self._last: dict[str, float] = {}  # stream -> the time of its last object event let through
        self._down: dict[str, tuple[float, dict[str, Any]]] = {}  # stream -> (down since, its newest down event)
        self._told: set[str] = set()  # streams whose going down was told (their coming back will be)

    def takes(self, kind: str) -> bool:
        """Whether events of ``kind`` go to the output at all."""
        return self.kinds is None or kind in self.kinds

    def passes(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` goes to the output (now: a cooldown starts with it)."""
        stream = event.get("stream")
        if not self.takes(event["event"]) or (self.streams is not None and stream is not None
                                              and stream not in self.streams):
            return False
        if self.schedule is not None and not self.schedule.at(float(event.get("time", 0.0)))[0]:
            return False
        place = event.get("zone", event.get("line"))
        if self.places is not None and place is not None and place not in self.places:
            return False
        if event["event"] == "state" and self.down_after is not None:
            return self._state(event)
        if event["event"] not in OBJECT_EVENTS:
            return True
        if self.classes is not None and event.get("cls") not in self.classes:
            return False
        if self.cooldown is not None:
            at, last = float(event.get("time", 0.0)), self._last.get(str(stream))
            if last is not None and 0 <= at - last < self.cooldown:
                return False
            self._last[str(stream)] = at
        return True


    def _state(self, event: Mapping[str, Any]) -> bool:
        stream, state = str(event.get("stream")), event.get("state")
        if state in DOWN:
            if stream in self._told:
                return True
            since = self._down[stream][0] if stream in self._down else float(event.get("time", 0.0))
            self._down[stream] = (since, dict(event))  # (held: told when down long enough, by due)
            return False
        held = self._down.pop(stream, None)
        if state == "streaming" and held is not None:
            return False  # back before it was told down: neither is told
        self._told.discard(stream)
        return True

    def due(self, now: float) -> list[dict[str, Any]]:
        """The cameras down for ``down_after`` by ``now`` (seconds since the epoch) and not told
        yet: each one's newest down event, with ``down_since``, to send now."""
        if self.down_after is None:
            return []
        ready = [stream for stream, (since, _) in self._down.items() if now - since >= self.down_after]
        told = []
        for stream in ready:
            since, event = self._down.pop(stream)
            self._told.add(stream)
            told.append({**event, "down_since": since})
        return told


def frame_events(result: Result) -> list[dict[str, Any]]:
    """The events of one processed frame: its line crossings, then what entered, lingered in or
    left its zones, then its zones crowded or no longer."""
    if not result.crossings and not result.visits and not result.crowds:
        return []
    meta = result.frame.meta
    base = {"time": round(wall_time(meta.t_capture), 3), "stream": meta.stream, "seq": meta.seq}
    events = [{**base, "event": "line", **crossing.to_record()} for crossing in result.crossings]
    events += [{**base, "event": visit.event, **visit.to_record()} for visit in result.visits]
    events += [{**base, "event": "crowd", **crowd.to_record()} for crowd in result.crowds]
    return events


_RECORDED_AT = "_recorded_at"
"""An event's own key while it waits to go out: where its paced stream's recording has its
frame (:class:`~streamyolo.sinks.recorder.VideoClock`), for its ``recording_url``."""


class EventSink:
    """Writes events to a file, a webhook, an MQTT broker and snapshots (any of them); see the module."""

    def __init__(self, path: Path | None = None, webhook: str | None = None, snapshots: Path | None = None,
                 annotator: BoxAnnotator | None = None, overwrite: bool = False, quality: int = 90,
                 mqtt: str | None = None, webhook_events: Collection[str] | None = None,
                 mqtt_events: Collection[str] | None = None, snapshots_keep: float | None = None,
                 clip_of: Callable[[Result], str | None] | None = None, public_url: str | None = None,
                 mqtt_discovery: str | None = None, entities: Sequence[StreamEntities] = (),
                 mqtt_controls: bool = False, events_keep: float | None = None,
                 storage: Storage | None = None, webhook_format: str = "json",
                 webhooks: Sequence[tuple[Deliverer, EventFilter]] = ()) -> None:
        """``webhooks``: more webhooks (or emails: any :class:`~streamyolo.sinks.webhook.Deliverer`),
        each with the events it gets (``webhook``, with ``webhook_events`` and ``webhook_format``,
        is one more, first);
        ``events_keep``: the events file's days kept that long (:mod:`streamyolo.sinks.days`);
        ``mqtt_discovery``: Home Assistant's discovery prefix, to announce ``entities`` (each
        stream's zones and lines) there and publish their states (:mod:`streamyolo.sinks.mqtt`),
        and the run's outputs and the use of ``storage``'s folders;
        ``mqtt_controls``: each stream's detection and recording switched over MQTT (:meth:`control`)."""
        self.path = Path(path) if path is not None else None
        self.snapshots = Path(snapshots) if snapshots is not None else None
        self.snapshots_keep = snapshots_keep
        self._pruned_at = -math.inf
        self._lines = (LineFile(self.path, "events file", overwrite, keep=events_keep) if self.path is not None
                       else None)
        # each output with the events it takes
        self._outputs: list[tuple[EventOutput, EventFilter]] = []
        if webhook is not None:
            self._outputs.append((Webhook(webhook, format=webhook_format, snapshots=self.snapshots),
                                  EventFilter(webhook_events)))
        self._outputs += webhooks
        self._states: StatePublisher | None = None
        self._publisher: MqttPublisher | None = None
        if mqtt is not None:
            publisher = self._publisher = MqttPublisher(mqtt, discovery=mqtt_discovery, entities=entities,
                                                        controls=mqtt_controls,
                                                        folders=list(storage.folders) if storage is not None else [])
            if mqtt_events is not None and mqtt_discovery is not None:  # (each stream's state: its entities')
                mqtt_events = {*mqtt_events, "state"}
            self._outputs.append((publisher, EventFilter(mqtt_events)))
            if mqtt_discovery is not None:
                self._states = StatePublisher(publisher)
        self._storage = storage if self._states is not None else None  # (Home Assistant's sensors of it)
        self._annotator = annotator or BoxAnnotator(overlay=False)
        self.quality = quality
        self._clip_of = clip_of  # the clip a frame's events are in (the clips sink writes before this one)
        self.public_url = public_url  # where the web page serves snapshots and clips, for the events' receivers
        self._recorded = frozenset(e.stream for e in entities if e.recorded)  # recording_url: swapped whole
        self._paced = frozenset(e.stream for e in entities if e.paced)  # their recording_url: on VideoClocks
        self._clocks: dict[str, VideoClock] = {}
        self._unrecorded: frozenset[str] = frozenset()  # recorded streams whose recording is switched off now
        self._queue: queue.SimpleQueue[tuple[Result | None, list[dict[str, Any]]] | None] = queue.SimpleQueue()
        self._waiting = 0  # frames queued for a snapshot
        self._skipped = 0
        self._lock = threading.Lock()
        self._announced: dict[str, str] = {}
        self._clip_started: dict[str, str] = {}  # each stream's newest clip (its inference thread's alone)
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._crowds: dict[tuple[str, str], dict[str, Any]] = {}  # (stream, zone) -> its crowd's start, told
        from streamyolo.pipeline.overload import Lately  # (the pipeline package imports this one)

        self._lately = Lately(SKIPPED_SPAN, from_start=True)  # each stream's frames at the looks (:meth:`look`)
        self._looking = threading.Lock()
        self._overloaded: Mapping[str, Any] | None = None  # the overload at the last look (:meth:`look`)
        self._overloading: set[str] = set()  # the streams it has been about so far
        self._open = False
        self._unlisten: Callable[[], None] = lambda: None  # (from open on: stops hearing of outputs' pauses)
        self._board = current_board()  # (the run's outputs, whose pauses it tells)
        self._snap_pause = OutputPause(f"snapshots folder {str(self.snapshots)!r}", "snapshot(s)")
        self._thread = threading.Thread(target=self._run, name="events")
        self.written = 0  # events handed to every output

    def check(self) -> None:
        if self.snapshots is not None:
            check_writable_folder(self.snapshots, "snapshots folder")

    def open(self) -> None:
        self.check()
        if self.snapshots is not None:
            self._prune()
        if self._lines is not None:
            self._lines.open()
            self._recall()
        for output, _ in self._outputs:
            output.start()
        self._thread.start()
        with self._lock:
            self._open = True
        self._unlisten = listen_to_pauses(self.output_changed, self._board)
        if self._storage is not None and self._publisher is not None:
            self._storage.listen(self._publisher.storage_changed)
            self._storage.start()

    def _recall(self) -> None:
        """Cooldowns go on across a restart: each output's filter with a ``cooldown`` sees again
        the object events of the events file's last cooldown (an earlier run's), as it saw them
        then, so that a restart's first events (the car parked in the drive, entering as the
        run starts) are not told again within it."""
        longest = max((events_filter.cooldown or 0.0 for _, events_filter in self._outputs), default=0.0)
        if self.path is None or not longest:
            return
        from streamyolo.sinks.history import EventQuery, read_events

        try:
            for event in read_events(self.path, EventQuery(since=time.time() - longest, kinds=OBJECT_EVENTS)):
                for _, events_filter in self._outputs:
                    if events_filter.cooldown is not None:
                        events_filter.passes(event)
        except OSError as exc:  # (the run goes on: a notification more, at worst)
            log.warning("events file %s: cannot read its last events to go on with the cooldowns: %s", self.path,
                        exc.strerror or exc)

    def look(self, reports: list[StreamReport], now: float, overload: Mapping[str, Any] | None = None) -> None:
        """Publish each stream's frame rates, frame age and the share of its frames skipped
        over the last :data:`SKIPPED_SPAN` seconds (or since it started) to
        ``<prefix>/<stream>/stats`` (retained; Home Assistant's diagnostic sensors of the
        stream), and whether the machine keeps up with the live streams (``overload``:
        :meth:`~streamyolo.sinks.mqtt.MqttPublisher.overload_changed`): how the run keeps up,
        for a box without a status table."""
        with self._lock:
            if not self._open:
                return
            publisher = self._publisher
        self._overload_event(overload)
        if publisher is None:
            return
        publisher.overload_changed(overload)
        with self._looking:  # (the monitor's looks, and the last one as the run ends)
            _, lately = self._lately.moved(reports, now)
        for report in reports:
            captured, dropped = lately[report.name]
            publisher.send_state(report.name, "stats", "", {
                "fps_in": round(report.fps_in, 2), "fps_out": round(report.fps_out, 2),
                "frame_age": None if report.frame_age is None else round(report.frame_age, 4),
                "behind": None if report.behind is None else round(report.behind, 2),
                "skipped": round(100 * dropped / captured, 1) if captured else 0.0,
                "captured": report.captured, "processed": report.processed, "dropped": report.dropped,
                "reconnects": report.reconnects})

    def _overload_event(self, overload: Mapping[str, Any] | None, stopped: bool = False) -> None:
        """An ``overload`` event when the machine stops keeping up (``started``: how much of the
        live streams' frames is skipped, which streams, which are behind) and when it keeps up
        again (``ended``, after how long, and the streams it was about; ``stopped``: the run
        ended first): a notification that the box needs a lighter load."""
        with self._looking:
            before, self._overloaded = self._overloaded, overload
            if before is None:
                self._overloading = set()
            if overload is not None:  # (the streams it was about, from its start to its end)
                self._overloading |= {*overload.get("streams", ()), *overload.get("behind", {})}
            about = sorted(self._overloading)
        if (before is None) == (overload is None):
            return
        event: dict[str, Any] = {"time": round(time.time(), 3), "stream": "", "event": "overload"}
        if overload is not None:
            event |= {"state": "started", **{key: overload[key] for key in ("skipped", "window", "streams")
                                             if key in overload}}
            if overload.get("behind"):  # (the streams said to be behind: seconds)
                event["behind"] = overload["behind"]
        else:
            assert before is not None
            event |= {"state": "ended", "seconds": round(max(0.0, event["time"] - float(before.get("since", 0.0))), 1),
                      "streams": about}
            if stopped:
                event["stopped"] = True
        self._queue.put((None, [event]))

    def output_changed(self, event: dict[str, Any]) -> None:
        """An output paused (a full disk) or writes again: an ``output`` event
        (:func:`~streamyolo.sinks.base.listen_to_pauses`)."""
        with self._lock:
            if not self._open:
                return
        if self._publisher is not None:  # (Home Assistant's Outputs sensors)
            self._publisher.outputs_changed(event["stream"], paused_outputs(self._board))
        self._queue.put((None, [event]))

    def write(self, result: Result) -> None:
        if self._states is not None:
            self._states.update(result)
        paced = result.stream in self._paced and self.public_url is not None
        if paced:
            self._clocks.setdefault(result.stream, VideoClock()).see(result.frame.meta)
        events = frame_events(result)
        if not events:
            return
        if paced:  # where its recording has this frame: on its video's clock (taken out as it goes out)
            at = self._clocks[result.stream].at(result.frame.meta)
            for event in events:  # (to the millisecond, not before the frame: a player seeking there shows it)
                event[_RECORDED_AT] = math.ceil(at * 1000) / 1000
        clip = self._clip_of(result) if self._clip_of is not None else None
        if clip is not None:
            if self._clip_started.get(result.stream) != clip:  # the first events of a clip: it starts
                self._clip_started[result.stream] = clip
                first = events[0]
                events.insert(0, {"time": first["time"], "stream": first["stream"], "seq": first["seq"],
                                  "event": "clip", "state": "started"})
            for event in events:
                event["clip"] = clip
                self._link(event, "clip", "clips")
        with self._lock:
            if not self._open:
                return
            keep = self.snapshots is not None and self._waiting < SNAPSHOT_BACKLOG
            if keep:
                self._waiting += 1
            elif self.snapshots is not None:
                if not self._skipped:
                    log.warning("snapshots: more than %d frames waiting to be saved; events go out without one "
                                "until they catch up", SNAPSHOT_BACKLOG)
                self._skipped += 1
        self._queue.put((result if keep else None, events))

    def clip_ended(self, stream: str, name: str, seconds: float, whole: bool) -> None:
        """A clip was finished (by the clips sink's writer): a ``clip`` event, ``ended``, with
        its length, and ``"whole": false`` when a failed write cut it short."""
        with self._lock:
            if not self._open:
                return
        event: dict[str, Any] = {"time": round(time.time(), 3), "stream": stream, "event": "clip", "state": "ended",
                                 "clip": name, "seconds": round(seconds, 3)}
        if not whole:
            event["whole"] = False
        self._link(event, "clip", "clips")
        self._queue.put((None, [event]))

    def clip_failed(self, stream: str, name: str, why: str) -> None:
        """A clip its events named is not made (the clips sink's ``on_fail``): a ``clip`` event,
        ``failed``, with the ``error`` why."""
        with self._lock:
            if not self._open:
                return
        self._queue.put((None, [{"time": round(time.time(), 3), "stream": stream, "event": "clip",
                                 "state": "failed", "clip": name, "error": why}]))

    def recent(self) -> list[dict[str, Any]]:
        """The newest events handed out (up to ``RECENT``), newest first: for the web page."""
        with self._lock:
            return list(reversed(self._recent))

    def stream_changed(self, stream: str, state: str, error: str | None) -> None:
        """A stream's new state (from its health): an event when it is news."""
        with self._lock:
            if not self._open or state not in ANNOUNCED or self._announced.get(stream) == state:
                return
            self._announced[stream] = state
        event: dict[str, Any] = {"time": round(time.time(), 3), "stream": stream, "event": "state", "state": state}
        if error is not None:
            event["error"] = error
        self._queue.put((None, [event]))

    def control(self, set_switch: Callable[[str, str, bool], None]) -> None:
        """What switches a stream's detection or recording on or off when the broker says so
        (``mqtt_controls``): ``set_switch(kind, stream, on)``, ``kind`` ``detect`` or ``record``."""
        if self._publisher is not None:
            self._publisher.on_switch = set_switch

    def switched(self, kind: str, stream: str, on: bool) -> None:
        """``stream``'s detection (``kind`` ``detect``) or recording (``record``) is now on or
        off (a zone's watching, ``watch:<zone>``: its state says it): the broker is told
        (``mqtt_controls``); while its recording is off, its events link no recording
        (``recording_url``)."""
        if kind == "record":
            self._unrecorded = self._unrecorded - {stream} if on else self._unrecorded | {stream}
        if self._publisher is not None:
            self._publisher.switched(kind, stream, on)

    def switch_changed(self, kind: str, stream: str, on: bool, by: str) -> None:
        """``stream``'s detection (``kind`` ``detect``), recording (``record``) or a zone's
        watching (``watch:<zone>``: ``"switch": "watch"`` with its ``"zone"``) was switched ``on``
        or off ``by`` the page, the broker, its schedule …: a ``switch`` event (who turned the
        camera off, and when)."""
        with self._lock:
            if not self._open:
                return
        zone = zone_of(kind)
        what = {"switch": kind} if zone is None else {"switch": "watch", "zone": zone}
        self._queue.put((None, [{"time": round(time.time(), 3), "stream": stream, "event": "switch", **what,
                                 "state": "on" if on else "off", "by": by}]))

    def announce(self, stream: str, entities: StreamEntities | None) -> None:
        """A stream added, changed (``entities``) or removed (``None``) as the run goes: its Home
        Assistant entities (``mqtt_discovery``) now."""
        recorded = entities is not None and entities.recorded
        self._recorded = self._recorded | {stream} if recorded else self._recorded - {stream}
        self._paced = self._paced | {stream} if entities is not None and entities.paced else self._paced - {stream}
        if self._publisher is not None:
            self._publisher.announce(stream, entities)

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        """``stream`` was removed as the run went (a reload): that is news, a ``removed`` state
        event, or ``restarting`` when the reload restarts it with new settings (a new source, a
        new model …); one added again under its name is announced afresh."""
        with self._lock:
            if not self._open:
                return
            self._announced.pop(stream, None)
        self._queue.put((None, [{"time": round(time.time(), 3), "stream": stream, "event": "state",
                                 "state": "restarting" if restarting else "removed"}]))

    def close(self) -> None:
        self._unlisten()
        with self._lock:
            was_open, self._open = self._open, False
        if was_open:
            self._overload_event(None, stopped=True)  # (one still on as the run ends: ended with it)
            if self._storage is not None:
                self._storage.stop()
            self._queue.put(None)
            self._thread.join(JOIN_SECONDS)
            if self._thread.is_alive():
                log.error("events: the thread writing them did not end within %.0f s", JOIN_SECONDS)
            if self._states is not None:
                self._states.flush()
        errors: list[OSError] = []
        closes = [self._lines.close] if self._lines is not None else []
        for close in [*closes, *(output.close for output, _ in self._outputs), self._snap_pause.check]:
            try:
                close()
            except OSError as exc:  # what each lost (OutputsIncompleteError), or a file that would not close
                errors.append(exc)
        if self._skipped:
            log.warning("snapshots: %d frame(s) with events were not saved (too many waiting)", self._skipped)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise OutputsIncompleteError("; ".join(str(error) for error in errors))

    def _run(self) -> None:
        waits = any(wanted.down_after is not None for _, wanted in self._outputs)  # (down cameras told later)
        while True:
            try:
                item = self._queue.get(timeout=0.25 if waits else None)
            except queue.Empty:
                item = (None, [])
            if item is None:
                return
            for output, wanted in self._outputs:
                for event in wanted.due(time.time()):
                    output.send(event)
            result, events = item
            try:
                if result is not None:
                    with self._lock:
                        self._waiting -= 1
                    saved = self._snapshot(result)
                    if saved is not None:
                        name, picture = saved
                        for event in events:
                            event["snapshot"] = name
                            self._link(event, "snapshot", "snapshots")
                        for output, wanted in self._outputs:  # the picture first: the events may name it
                            if isinstance(output, MqttPublisher) and any(wanted.takes(e["event"]) for e in events):
                                output.send_picture(result.stream, picture)
                for event in self._crowds_closed(events):
                    moment = event.pop(_RECORDED_AT, event["time"])
                    if self.public_url is not None and event["stream"] in self._recorded - self._unrecorded:
                        event["recording_url"] = (f"{self.public_url}#recording="
                                                  f"{urllib.parse.quote(event['stream'])}@{moment}")
                    if self._lines is not None:
                        self._lines.record(event)
                    for output, wanted in self._outputs:
                        if wanted.passes(event):
                            output.send(event)
                    with self._lock:
                        self._recent.append(event)
                    self.written += 1
            except Exception:  # one frame's trouble never ends the events of the run
                log.exception("events: could not hand out %d event(s)", len(events))

    def _crowds_closed(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``events``, with a ``crowd`` ``ended`` before a stream's end (``ended``, ``failed``, ``restarting``,
        ``removed``) for each of its zones still crowded then (``"stream": "ended"`` says why):
        every crowd told of is told over (the events thread's alone)."""
        told: list[dict[str, Any]] = []
        for event in events:
            key = (str(event.get("stream")), str(event.get("zone")))
            if event["event"] == "crowd":
                if event.get("state") == "started":
                    self._crowds[key] = event
                else:
                    self._crowds.pop(key, None)
            elif event["event"] == "state" and event.get("state") in ENDS:
                for (stream, zone), began in sorted(self._crowds.items()):
                    if stream == event["stream"]:
                        del self._crowds[(stream, zone)]
                        told.append({"time": event["time"], "stream": stream, "event": "crowd", "zone": zone,
                                     "state": "ended", "count": 0, "limit": began.get("limit"), "inside": {},
                                     "seconds": round(max(0.0, float(event["time"]) - float(began["time"])), 3),
                                     "stream_state": event["state"]})
            told.append(event)
        return told

    def _link(self, event: dict[str, Any], key: str, folder: str) -> None:
        """With ``public_url``: ``event[key + "_url"]``, where the web page serves the file ``event[key]``."""
        if self.public_url is not None:
            event[f"{key}_url"] = f"{self.public_url}{folder}/{urllib.parse.quote(event[key])}"

    def _snapshot(self, result: Result) -> tuple[str, bytes] | None:
        """Save ``result``'s frame, annotated, as a JPEG in the snapshots folder; its name and
        the JPEG, or ``None`` if it could not be saved (a full disk: paused as the other
        outputs are)."""
        assert self.snapshots is not None
        if not self._snap_pause.due():
            return None
        if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
            self._prune()
        meta = result.frame.meta
        moment = wall_time(meta.t_capture)
        name = f"{meta.stream}-{file_stamp(moment, millis=True)}-{meta.seq}.jpg"
        image = self._annotator.annotate(result.frame.image, result.detections, stream=meta.stream, when=moment,
                                         lines=result.lines, zones=result.zones, masks=result.masks,
                                         speeds=dict(result.speeds))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            log.error("snapshot of stream %r: JPEG encoding failed", meta.stream)
            return None
        data = encoded.tobytes()
        part = self.snapshots / f".{name}.part"
        try:
            self.snapshots.mkdir(parents=True, exist_ok=True)
            part.write_bytes(data)
            name = _publish(part, name)  # whole or not there: a receiver told of it never reads half a picture
        except OSError as exc:
            part.unlink(missing_ok=True)
            self._snap_pause.failed(exc)
            return None
        self._snap_pause.succeeded()
        return name, data


    def _prune(self) -> None:
        """``snapshots_keep``: delete the snapshots (this run's and earlier runs') older than that."""
        self._pruned_at = time.monotonic()
        if self.snapshots is None or self.snapshots_keep is None:
            return
        try:
            deleted = delete_older(self.snapshots, self.snapshots_keep,
                                   lambda name: SNAPSHOT_NAME.fullmatch(name) is not None)
        except OSError as exc:
            log.warning("snapshots folder %s: could not delete old snapshots: %s", self.snapshots, exc)
            return
        if deleted:
            log.info("snapshots folder %s: deleted %d snapshot(s) older than %s (snapshots_keep)", self.snapshots,
                     len(deleted), format_seconds(self.snapshots_keep))


def _publish(part: Path, name: str) -> str:
    """Give the finished file ``part`` its ``name`` in its folder, or the first free of
    ``-2``, ``-3`` … (never over an earlier run's file); the name it got."""
    stem, suffix = name.rsplit(".", 1)
    for n in range(1, 1000):
        taken = name if n == 1 else f"{stem}-{n}.{suffix}"
        try:
            os.link(part, part.with_name(taken))
        except FileExistsError:
            continue
        part.unlink()
        return taken
    raise FileExistsError(f"{part.parent / name} and 998 more names are taken")
