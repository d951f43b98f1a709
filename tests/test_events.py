"""Events (``events``/``webhook``/``snapshots``): zones entered and left with their dwell, lines
crossed, streams up and down; the events file, the webhook (a real HTTP receiver on
127.0.0.1, down for a while) and the annotated snapshots all say the same."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputsIncompleteError, SourceReadError
from streamyolo.frames import Crossing, Detections, Frame, FrameMeta, Image, LineTally, Result, ZoneTally, ZoneVisit
from streamyolo.inference.counting import CountingLine, Zone, ZoneWatch, occupancy, zone_tallies
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.restart import Backoff
from streamyolo.sinks import EventSink, VideoRecorder
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.export import recordings_of
from streamyolo.sinks.history import describe
from streamyolo.sinks.metrics import metrics_text
from streamyolo.sinks.mqtt import MqttPublisher, StatePublisher, StreamEntities
from streamyolo.sinks.web import WebViewer
from streamyolo.sinks.webhook import Webhook
from streamyolo.sources import RawFrame, SourceInfo, SourceKind, SourceSpec, SyntheticSource, open_source, read_stamp
from streamyolo.workers.capture import CapturePolicy
from tests.helpers import decode, files_aged, form_fields, make_clip, read_jsonl, until
from tests.servers import HookReceiver, MqttBroker, MqttSubscriber
from tests.test_counting import _boxes, _WalkerDetector

SQUARE = Zone("square", ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)))


def test_a_zone_sees_each_tracked_object_enter_and_leave_with_how_long_it_stayed() -> None:
    watch = ZoneWatch([SQUARE, Zone("right", ((100.0, 0.0), (200.0, 0.0), (200.0, 100.0), (100.0, 100.0)))],
                      gone_after=3)
    frames = [  # (track id, centre x, centre y, class) in frames at t = 0, 0.5, 1.0 …
        [(1, 150.0, 50.0, 0), (2, 50.0, 50.0, 2)],  # 1 in "right", 2 in "square" from the start
        [(1, 90.0, 50.0, 0), (2, 50.0, 50.0, 2)],  # 1 walks into "square"
        [(1, 80.0, 50.0, 0)],  # 2 not seen (occluded): still inside
        [(1, 70.0, 50.0, 0), (2, 55.0, 50.0, 2)],  # 2 seen again: the same stay
        [(1, 70.0, 150.0, 0)],  # 1 leaves below
        [], [], [],  # 2 unseen for 4 frames: gone (left at its last sighting)
    ]
    seen = [[(v.zone, v.event, v.id, v.name, v.dwell) for v in _see(watch, _boxes(*objects), t / 2)]
            for t, objects in enumerate(frames)]
    assert seen == [
        [("square", "enter", 2, "car", None), ("right", "enter", 1, "person", None)],
        [("square", "enter", 1, "person", None), ("right", "leave", 1, "person", 0.0)],
        [],
        [],
        [("square", "leave", 1, "person", 1.0)],
        [], [],
        [("square", "leave", 2, "car", 1.5)],
    ]
    untracked = Detections(np.array([[40, 40, 60, 60]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
    assert _see(watch, untracked, 9.0) == [], "an object without a track id cannot enter"
    # Each event says where the object was in its frame (a notification can crop it from the
    # snapshot); one gone unseen has no box.
    again = ZoneWatch([SQUARE], gone_after=1)
    boxes = [[v.to_record().get("xyxy") for v in _see(again, _boxes(*objects), t / 2)]
             for t, objects in enumerate([[(1, 50.0, 50.0, 0)], [(1, 150.0, 60.0, 0)], [(2, 40.0, 30.0, 2)], [], []])]
    assert boxes == [[[40.0, 40.0, 60.0, 60.0]], [[140.0, 50.0, 160.0, 70.0]], [[30.0, 20.0, 50.0, 40.0]], [], [None]]


def test_a_zone_with_classes_holds_and_sees_only_objects_of_those() -> None:
    driveway = Zone("driveway", SQUARE.points, classes=frozenset({2}))  # cars only
    watch = ZoneWatch([driveway, SQUARE])
    found = _boxes((1, 40.0, 50.0, 0), (2, 60.0, 50.0, 2))  # a person and a car, both inside
    held = occupancy(watch.zones, found)
    assert [dict(t.inside) for t in zone_tallies(watch.zones, found, held)] == [{"car": 1}, {"person": 1, "car": 1}]
    assert [(v.zone, v.event, v.id) for v in watch.update(found, 0.0, held)] == [
        ("driveway", "enter", 2), ("square", "enter", 1), ("square", "enter", 2)]
    # The car read as a person for a frame stays in the driveway; it leaves once seen outside.
    for t, objects in enumerate([[(2, 60.0, 50.0, 0)], [(2, 61.0, 50.0, 2)], [(2, 160.0, 50.0, 2)]], start=1):
        moved = _boxes(*objects)
        assert [(v.zone, v.event, v.id) for v in watch.update(moved, t, occupancy(watch.zones, moved))] == [
            [], [], [("driveway", "leave", 2), ("square", "leave", 2)]][t - 1]
    with pytest.raises(ConfigError, match=r"config key 'streams.0.zones.door.classes': class\(es\) \[2\] are not "
                                          r"among the stream's classes \[0\]: the zone would never hold them"):
        build_config({"streams": [{"source": "a.mp4", "classes": [0], "zones": {"door": {
            "points": [[0, 0], [9, 0], [9, 9]], "classes": [0, 2]}}}]})
    with pytest.raises(ConfigError, match=r"class\(es\) \[7\] are not among the stream's classes \[0, 2\]"):
        build_config({"streams": [{"source": "a.mp4", "zones": {"door": {"points": [[0, 0], [9, 0], [9, 9]],
                                                                           "classes": [7]}}}], "classes": [0, 2]})
    zoned = build_config({"streams": [{"source": "a.mp4", "zones": {"door": {"points": [[0, 0], [9, 0], [9, 9]],
                                                                             "classes": [2]}}}]})
    assert zoned.streams[0].zones is not None and zoned.streams[0].zones["door"].classes == [2]


def _see(watch: ZoneWatch, found: Detections, now: float) -> list[ZoneVisit]:
    return watch.update(found, now, occupancy(watch.zones, found))


@pytest.mark.timeout(60)
def test_events_reach_the_file_the_webhook_and_the_snapshots_alike(tmp_path: Path) -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    door = CountingLine("door", (0.0, 120.0), (320.0, 120.0))
    lobby = Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0)))
    path, shots = tmp_path / "events.jsonl", tmp_path / "shots"
    with HookReceiver() as hook:
        events = EventSink(path, hook.url, shots)
        web = WebViewer("127.0.0.1:0", events=events.recent, snapshots=shots)
        pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,), zones=(lobby,))],
                            _WalkerDetector, tracker=tracker_settings("bytetrack"), sinks=[events], web=web)
        pipeline.start()
        try:
            pipeline.wait(30)
            status = web.status()
            shown = _until_five(f"{web.url}events.json")
            name = shown[1]["snapshot"]
            with urllib.request.urlopen(f"{web.url}snapshots/{name}", timeout=10) as response:
                served = (response.headers["Content-Type"], response.read())
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"{web.url}snapshots/..%2Fevents.jsonl", timeout=10)
        finally:
            summary = pipeline.join()
        received = list(hook.events)
    written = read_jsonl(path)
    assert written == received, "the webhook got other events than the file"
    # The walker's centre (y = 20 + 8 x frame) is in the lobby in frames 11-22 and crosses the
    # door at frame 13; the synthetic stream's timeline is 25 frames a second.
    happened = [(e["event"], e.get("seq"), e.get("zone") or e.get("line") or e.get("state")) for e in written]
    # The stream's end comes after what its last frames made happen.
    assert happened == [("state", None, "streaming"), ("enter", 11, "lobby"), ("line", 13, "door"),
                        ("leave", 23, "lobby"), ("state", None, "ended")]
    enter, line, leave = (e for e in written if e["event"] != "state")
    assert leave["dwell"] == pytest.approx((22 - 11) / 25)
    assert "dwell" not in enter and line["direction"] == "in" and line["name"] == "person"
    assert enter["id"] == line["id"] == leave["id"] and enter["stream"] == "hall"
    assert all(isinstance(e["time"], float) and e["time"] > 1.7e9 for e in written)
    # Each frame with events is saved once, annotated (the lobby's yellow outline at x = 220),
    # and its events name it.
    names = [e["snapshot"] for e in written if e["event"] != "state"]
    assert len(set(names)) == 3 and sorted(p.name for p in shots.iterdir()) == sorted(names)
    picture = cv2.imread(str(shots / names[0]))
    assert picture.shape == (240, 320, 3)
    assert (picture[130:190, 220, 1] > 160).all() and (picture[130:190, 220, 0] < 80).all(), "not annotated"
    # The web page lists them, newest first, and serves their snapshots.
    assert shown == written[::-1]
    assert served == ("image/jpeg", (shots / name).read_bytes())
    # The summary, the status and /metrics count the zone's entries.
    assert summary.streams["hall"].zone_entries == {"lobby": {"person": 1}}
    assert summary.to_dict()["streams"]["hall"]["zone_entries"] == {"lobby": {"person": 1}}
    assert "zones of hall, entered: lobby: 1 person" in summary.table()
    assert next(s for s in status["streams"] if s["name"] == "hall")["zone_entries"] == {"lobby": {"person": 1}}
    assert ('streamyolo_zone_entries_total{stream="hall",zone="lobby",class="person"} 1'
            in metrics_text(status).splitlines())


def test_a_snapshot_never_replaces_an_earlier_file(tmp_path: Path) -> None:
    from streamyolo.sinks.events import _publish

    for n in range(3):
        (tmp_path / ".part").write_bytes(b"picture %d" % n)
        assert _publish(tmp_path / ".part", "cam-1.jpg") == ["cam-1.jpg", "cam-1-2.jpg", "cam-1-3.jpg"][n]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-1-2.jpg", "cam-1-3.jpg", "cam-1.jpg"]
    assert (tmp_path / "cam-1.jpg").read_bytes() == b"picture 0"


def _until_five(url: str) -> list[dict[str, object]]:
    """The web page's events once all five are there (the stream's end comes last)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=10) as response:
            shown: list[dict[str, object]] = json.load(response)["events"]
        if len(shown) >= 5:
            return shown
        time.sleep(0.05)
    raise AssertionError(f"the web page lists {len(shown)} events, not 5")


class _FlakyCamera:
    """A camera that sends 6 frames, drops the connection once, and sends 6 more."""

    def __init__(self) -> None:
        self.inner = SyntheticSource("cam", "synthetic:?size=64x48&frames=12")
        self.reads = 0
        self.broken = False
        self.info: SourceInfo | None = None

    def open(self) -> SourceInfo:
        self.info = self.info or self.inner.open()  # opened again after the drop: goes on where it was
        return self.info

    def read(self) -> RawFrame | None:
        if self.reads == 6 and not self.broken:
            self.broken = True
            raise SourceReadError("stream 'cam': connection reset by peer", stream="cam")
        self.reads += 1
        return self.inner.read()

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_a_camera_going_down_and_coming_back_is_announced_once_each_way(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    policy = CapturePolicy(backoff=Backoff(base=0.05, cap=0.1, jitter=0))
    pipeline = Pipeline([StreamSetup("cam", _FlakyCamera(), Overflow.BLOCK, policy=policy)], _WalkerDetector,
                        sinks=[EventSink(path)])
    summary = pipeline.run()
    assert summary.streams["cam"].processed == 12
    states = [(e["stream"], e["state"], e.get("error")) for e in read_jsonl(path)]
    assert states == [("cam", "streaming", None), ("cam", "reconnecting", "stream 'cam': connection reset by peer"),
                      ("cam", "streaming", None), ("cam", "ended", None)]


@pytest.mark.timeout(60)
def test_a_webhook_that_is_down_delays_events_and_loses_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="streamyolo")
    with HookReceiver(refuse_first=3) as hook:
        url = hook.url.replace("http://", "http://alarm:s3cret@")
        webhook = Webhook(url, backoff=(0.05, 0.2))
        webhook.start()
        for n in range(5):
            webhook.send({"event": "enter", "n": n})
        webhook.close()
    assert [e["n"] for e in hook.events] == [0, 1, 2, 3, 4], "events lost or out of order"
    assert hook.attempts == 8 and webhook.delivered == 5
    assert all(headers["Authorization"] == "Basic YWxhcm06czNjcmV0" and path == "/hook"
               for path, headers in hook.requests)
    logged = [r.getMessage() for r in caplog.records]
    assert any("cannot deliver events (HTTP 503" in m for m in logged) and any("delivering again" in m for m in logged)
    assert "s3cret" not in caplog.text and "alarm:***@127.0.0.1" in caplog.text


@pytest.mark.timeout(60)
def test_events_a_webhook_never_took_end_the_run_with_the_count() -> None:
    with HookReceiver() as hook:
        hook.refuse_all = True
        webhook = Webhook(hook.url, backoff=(0.05, 0.1), drain=0.5)
        webhook.start()
        webhook.send({"event": "enter"})
        webhook.send({"event": "leave"})
        with pytest.raises(OutputsIncompleteError, match=r"webhook http://127\.0\.0\.1:\d+/hook: 2 event\(s\) could "
                                                         r"not be delivered \(first: HTTP 503"):
            webhook.close()
    assert hook.events == [] and hook.attempts >= 2


@pytest.mark.timeout(60)
def test_an_event_refused_for_what_it_is_is_lost_alone_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    """A receiver that refuses one event for what it is (Telegram: 400, a message too long)
    while it takes the next: that one is logged and counted, the others go on in order instead
    of waiting behind it until the end; the end says it was lost. Refused every event alike,
    the refusal is the receiver's (a chat that does not exist): they all wait, none dropped."""
    caplog.set_level(logging.WARNING, logger="streamyolo")
    events = [{"time": 1765016100.0 + n, "stream": stream, "event": "enter", "zone": "yard", "id": n, "cls": 0,
               "name": "person"} for n, stream in enumerate(["door", "unread", "door", "door"])]
    with HookReceiver() as hook:
        hook.refuse_containing = b'"unread"'
        webhook = Webhook(hook.url, backoff=(0.05, 0.1))
        webhook.start()
        for event in events:
            webhook.send(event)
        until(lambda: len(hook.events) == 3, 10, "the events after the one refused")
        with pytest.raises(OutputsIncompleteError, match=r"1 event\(s\) could not be delivered \(first: HTTP 400 "
                                                         r"Bad Request: Bad Request: message is too long\)"):
            webhook.close()
        assert [e["id"] for e in hook.events] == [0, 2, 3] and (webhook.delivered, webhook.refused) == (3, 1)
        [said] = [r.getMessage() for r in caplog.records if "for good" in r.getMessage()]
        assert said == (f"webhook {hook.url}: refused an event for good (HTTP 400 Bad Request: Bad Request: message "
                        f"is too long), the next one taken: {describe(events[1])}")
        hook.refuse_containing, hook.events[:] = b"person", []  # every event
        webhook = Webhook(hook.url, backoff=(0.05, 0.1), drain=0.5)
        webhook.start()
        for event in events:
            webhook.send(event)
        until(lambda: hook.attempts >= 12, 10, "tries")
        with pytest.raises(OutputsIncompleteError, match=r"4 event\(s\) could not be delivered \(first: HTTP 400"):
            webhook.close()
    assert hook.events == [] and (webhook.refused, webhook.undelivered) == (0, 4)


@pytest.mark.parametrize(("value", "message"), [
    ("ftp://example.com/hook", "config key 'webhook': must be an http:// or https:// URL (got 'ftp://example.com/hook')"),
    ("https://me:s3cret@:99/x", "config key 'webhook': has no host (got 'https://me:***@:99/x')"),
    ("http://example.com:99999/", "config key 'webhook': not a URL"),
])
def test_a_bad_webhook_names_the_key_and_never_its_password(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        build_config({"streams": ["a.mp4"], "webhook": value})


@pytest.mark.parametrize(("value", "message"), [
    ("tcp://broker", "config key 'mqtt': must be an mqtt:// or mqtts:// URL (got 'tcp://broker')"),
    ("mqtt://me:s3cret@broker/cams/+", "config key 'mqtt': the topic prefix may not hold '+' or '#' "
                                       "(got 'mqtt://me:***@broker/cams/+')"),
])
def test_a_bad_mqtt_broker_names_the_key_and_never_its_password(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_config({"streams": ["a.mp4"], "mqtt": value})
    assert message in str(error.value) and "s3cret" not in str(error.value)


@pytest.mark.timeout(60)
def test_events_reach_an_mqtt_broker_with_a_login_and_its_topics(broker_folder: Path) -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    lobby = Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0)))
    path, shots = broker_folder / "events.jsonl", broker_folder / "shots"
    with MqttBroker(broker_folder, "cams", "pa:ss") as broker:
        subscriber = MqttSubscriber(broker.port, "cams", "pa:ss")
        try:
            sink = EventSink(path, mqtt=f"mqtt://cams:pa%3Ass@127.0.0.1:{broker.port}", snapshots=shots)
            Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(lobby,))], _WalkerDetector,
                     tracker=tracker_settings("bytetrack"), sinks=[sink]).run()
            _wait_for(lambda: len(subscriber.events()) >= 4 and subscriber.messages[-1][1] == b"offline")
        finally:
            subscriber.close()
        topics = [topic for topic, _, _ in subscriber.messages]
        assert subscriber.events() == read_jsonl(path), "the broker got other events than the file"
        assert [t for t in topics if not t.endswith(("available", "/run", "/stats", "/overloaded"))] == [
            "streamyolo/hall/state", "streamyolo/hall/snapshot", "streamyolo/hall/enter", "streamyolo/hall/snapshot",
            "streamyolo/hall/leave", "streamyolo/hall/state"]
        # Each frame's snapshot, as JPEG, before its events (which name it), for an MQTT camera.
        pictures = [payload for topic, payload, _ in subscriber.messages if topic.endswith("/snapshot")]
        named = [e["snapshot"] for e in read_jsonl(path) if e["event"] != "state"]
        assert pictures == [(shots / name).read_bytes() for name in named] and pictures[0][:2] == b"\xff\xd8"
        assert (topics[0], topics[-1]) == ("streamyolo/available", "streamyolo/available")
        assert (subscriber.messages[0][1], subscriber.messages[-1][1]) == (b"online", b"offline")
        # Retained: a client that comes later learns the stream's state and that the run is over.
        later = MqttSubscriber(broker.port, "cams", "pa:ss")
        try:
            _wait_for(lambda: len(later.messages) >= 5)
        finally:
            later.close()
        marker = next(json.loads(p) for t, p, r in later.messages if t == "streamyolo/run" and r)
        # How the stream kept up, as the run ended (a run shorter than the looks every 10 s has them too)
        stats = next(json.loads(p) for t, p, r in later.messages if t == "streamyolo/hall/stats" and r)
        assert (stats["captured"], stats["processed"], stats["dropped"], stats["skipped"]) == (30, 30, 0, 0.0), stats
        assert next(json.loads(p) for t, p, r in later.messages if t == "streamyolo/overloaded" and r) == {
            "overloaded": False}  # (a file, lossless: nothing skipped)
        assert marker["pid"] == os.getpid() and marker["host"] == socket.gethostname()  # which run published
        assert sorted((t, p, r) for t, p, r in later.messages
                      if t not in ("streamyolo/run", "streamyolo/hall/stats", "streamyolo/overloaded")) == [
            ("streamyolo/available", b"offline", True),
            ("streamyolo/hall/snapshot", pictures[-1], True),
            ("streamyolo/hall/state", json.dumps(read_jsonl(path)[-1], separators=(",", ":")).encode(), True)]


@pytest.mark.timeout(60)
def test_a_broker_down_at_first_holds_the_events_back_and_loses_none(broker_folder: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamyolo")
    broker = MqttBroker(broker_folder)
    publisher = MqttPublisher(f"mqtt://127.0.0.1:{broker.port}/site/cams")
    publisher.start()
    got: list[object] = []
    try:
        for n in range(3):  # while the broker is down
            publisher.send({"stream": "gate", "event": "enter", "n": n})
        _wait_for(lambda: "cannot reach the broker" in caplog.text)  # its first try failed: the next is 1 s away
        with broker:
            subscriber = MqttSubscriber(broker.port)  # subscribed before the publisher's next try
            for n in range(3, 5):
                publisher.send({"stream": "gate", "event": "enter", "n": n})
            _wait_for(lambda: len(subscriber.events()) >= 5)
            # (and the broker's acknowledgements are in: QoS 1 sends an event again, after a
            # reconnection, until the broker says it took it)
            _wait_for(lambda: publisher.published >= 5)
            subscriber.close()
        got += [event["n"] for event in subscriber.events()]
        publisher.send({"stream": "gate", "event": "enter", "n": 5})  # the broker restarts
        _wait_for(lambda: "connection lost" in caplog.text)  # the publisher noticed: its next try is 1 s away
        with broker:
            subscriber = MqttSubscriber(broker.port)
            publisher.send({"stream": "gate", "event": "enter", "n": 6})
            publisher.close()
            _wait_for(lambda: len(subscriber.events()) >= 2)
            subscriber.close()
        got += [event["n"] for event in subscriber.events()]
    finally:
        publisher.close()
    assert got == [0, 1, 2, 3, 4, 5, 6] and publisher.published == 7, "events lost or out of order"
    assert all(topic == "site/cams/gate/enter" for topic, _, _ in subscriber.messages
               if not topic.endswith(("/available", "/run")))
    assert f"MQTT mqtt://127.0.0.1:{broker.port}/site/cams: cannot reach the broker" in caplog.text
    assert "connection lost" in caplog.text and "connected again after" in caplog.text
    assert not [t for t in threading.enumerate() if t.name.startswith("paho")], "paho's thread outlived the run"


@pytest.mark.timeout(60)
def test_events_a_broker_never_took_end_the_run_with_the_count(broker_folder: Path) -> None:
    port = MqttBroker(broker_folder).port  # nobody listens there
    publisher = MqttPublisher(f"mqtt://u:secret@127.0.0.1:{port}", drain=0.5)
    publisher.start()
    publisher.send({"stream": "gate", "event": "enter"})
    with pytest.raises(OutputsIncompleteError, match=rf"MQTT mqtt://u:\*\*\*@127\.0\.0\.1:{port}: 1 event\(s\) could "
                                                     rf"not be delivered \(first: cannot reach the broker at "
                                                     rf"127\.0\.0\.1:{port}\)"):
        publisher.close()


def _wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_object_inside_a_zone_long_enough_lingers_once_per_stay() -> None:
    watch = ZoneWatch([Zone("queue", SQUARE.points, linger=1.0), Zone("right", ((100.0, 0.0), (200.0, 0.0),
                                                                             (200.0, 100.0), (100.0, 100.0)))])
    path = [50, 50, 50, 50, 150, 50, 50, 50]  # x at t = 0, 0.5 … 3.5: in the queue, out at 2.0, back at 2.5
    seen = [[(v.zone, v.event, v.dwell) for v in _see(watch, _boxes((1, float(x), 50.0, 0)), t / 2)]
            for t, x in enumerate(path)]
    assert seen == [[("queue", "enter", None)], [], [("queue", "linger", 1.0)], [],
                    [("queue", "leave", 1.5), ("right", "enter", None)],  # "right" has no linger
                    [("queue", "enter", None), ("right", "leave", 0.0)], [], [("queue", "linger", 1.0)]]


@pytest.mark.parametrize(("zones", "tracker", "error"), [
    ({"queue": {"points": [[0, 0], [10, 0], [0, 10]], "linger": "2m"}}, "bytetrack", None),
    ({"queue": {"points": [[0, 0], [10, 0], [0, 10]], "linger": 30}}, None,
     "config keys 'streams.0.zones' and 'tracker': a zone's linger follows track ids"),
    ({"queue": {"points": [[0, 0], [10, 0], [0, 10]], "linger": "soon"}}, "bytetrack",
     "config key 'streams.0.zones.queue.linger': must be seconds"),
    ({"queue": {"points": [[0, 0], [10, 0], [0, 10]], "wait": 3}}, "bytetrack",
     "unknown config key 'streams.0.zones.queue.wait'"),
])
def test_a_zones_linger_is_a_span_of_time_on_a_tracked_stream(zones: dict[str, object], tracker: str | None,
                                                             error: str | None) -> None:
    data = {"streams": [{"source": "a.mp4", "zones": zones}], "tracker": tracker}
    if error is None:
        assert build_config(data).streams[0].zones["queue"].linger == 120.0  # type: ignore[index]
    else:
        with pytest.raises(ConfigError) as raised:
            build_config(data)
        assert error in str(raised.value), str(raised.value)


@pytest.mark.timeout(30)
def test_snapshots_on_a_full_disk_pause_and_their_events_still_go_out(tmp_path: Path) -> None:
    import resource

    sink = EventSink(tmp_path / "events.jsonl", snapshots=tmp_path / "shots")
    sink.open()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)  # a JPEG of some 100 kB
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # the kernel refuses writes past 20 kB per file
    try:
        for seq in range(3):
            sink.write(Result(Frame(FrameMeta("cam", seq, time.monotonic()), noise), Detections.empty(),
                              time.monotonic(), crossings=(Crossing("door", "in", 1, 0, "person"),), lines=(
                                  LineTally("door", (0.0, 100.0), (320.0, 100.0), 1, 0),)))
        _wait_for(lambda: sink.written == 4)  # the three, and the snapshots' pause (an output event)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with pytest.raises(OutputsIncompleteError, match=r"snapshots folder '.*shots': 3 snapshot\(s\) could not be "
                                                     r"written \(first: OSError: \[Errno 27\] File too large\)"):
        sink.close()
    events = read_jsonl(tmp_path / "events.jsonl")
    assert [(e["seq"], e["event"], "snapshot" in e) for e in events if e["event"] == "line"] == [
        (0, "line", False), (1, "line", False), (2, "line", False)]
    assert [{k: v for k, v in e.items() if k != "time"} for e in events if e["event"] == "output"] == [
        {"stream": "", "event": "output", "output": f"snapshots folder '{tmp_path / 'shots'}'", "state": "paused",
         "error": "File too large"}]
    assert list((tmp_path / "shots").iterdir()) == [], "a cut picture was left behind"


@pytest.mark.timeout(60)
def test_a_webhook_gets_only_the_kinds_of_event_asked_for(tmp_path: Path) -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    lobby = Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0)), linger=0.2)
    with HookReceiver() as hook:
        sink = EventSink(tmp_path / "events.jsonl", hook.url, webhook_events=["state", "linger"])
        Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(lobby,))], _WalkerDetector,
                 tracker=tracker_settings("bytetrack"), sinks=[sink]).run()
    everything = read_jsonl(tmp_path / "events.jsonl")
    assert [e["event"] for e in everything] == ["state", "enter", "linger", "leave", "state"]
    assert hook.events == [e for e in everything if e["event"] in ("state", "linger")]
    assert hook.events[1]["seq"] == 16 and hook.events[1]["dwell"] == pytest.approx(0.2)  # inside from frame 11


def test_snapshots_older_than_snapshots_keep_are_deleted_and_nothing_else(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    old, recent = "gate-20261101-101500-120-7.jpg", "gate-20261205-101500-120-8.jpg"
    files_aged(shots, [old, "gate-20261101-101500-120-7-2.jpg", "notes.jpg", "gate.mp4",
                       "back-20261101-090000-000-1.jpg"], [recent])
    sink = EventSink(snapshots=shots, snapshots_keep=3600)
    sink.open()
    sink.close()
    # Every snapshot (of any stream, copies with -2 too) older than an hour went; the rest stays.
    assert sorted(p.name for p in shots.iterdir()) == sorted([recent, "notes.jpg", "gate.mp4"])
    with pytest.raises(ConfigError, match="config keys 'snapshots_keep' and 'snapshots'"):
        build_config({"streams": ["a.mp4"], "snapshots_keep": "30d"})
    assert build_config({"streams": ["a.mp4"], "snapshots": "s", "snapshots_keep": "30d"}).snapshots_keep == 30 * 86400


@pytest.mark.timeout(60)
def test_home_assistant_finds_each_stream_with_its_zones_lines_and_snapshots(broker_folder: Path) -> None:
    """With ``mqtt_discovery``, the broker keeps (retained) what Home Assistant needs to show
    a stream as a device: each entity's config, and the states its templates read — here
    rendered with Jinja as Home Assistant renders them; an earlier run's entity this config
    no longer has is removed."""
    import jinja2

    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=26", SourceKind.SYNTHETIC))
    door = CountingLine("door", (0.0, 150.0), (320.0, 150.0))
    lower = Zone("lower", ((0.0, 120.0), (320.0, 120.0), (320.0, 240.0), (0.0, 240.0)))
    floor = Zone("floor", ((0.0, 60.0), (320.0, 60.0), (320.0, 220.0), (0.0, 220.0)), anchor="bottom",
                 size=(32.0, 16.0))  # 0.1 m a pixel: the walker's 8 px a frame at 25 fps are 72 km/h
    gone = "homeassistant/sensor/streamyolo_site/porch_zone_steps/config"  # an earlier run's stream, since removed
    with MqttBroker(broker_folder) as broker:
        earlier = MqttSubscriber(broker.port)
        try:
            earlier.client.publish(gone, json.dumps({"name": "steps objects"}), qos=1, retain=True).wait_for_publish(5)
        finally:
            earlier.close()
        clips = ClipRecorder(broker_folder / "clips", before=0.2, after=1.0)  # every event of the walk in one clip
        sink = EventSink(mqtt=f"mqtt://127.0.0.1:{broker.port}/site", snapshots=broker_folder / "shots",
                         mqtt_discovery="homeassistant", clip_of=clips.clip_of,
                         entities=[StreamEntities("hall", ("lower", "floor"), ("door",), snapshots=True, clips=True,
                                                  events=frozenset({"enter", "leave", "linger", "line", "clip"}),
                                                  speeds=("floor",), tracked=True)])
        clips.on_end = sink.clip_ended
        during = MqttSubscriber(broker.port)  # a Home Assistant running along
        try:
            Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,), zones=(lower, floor))],
                     _WalkerDetector, tracker=tracker_settings("bytetrack"), sinks=[clips, sink]).run()
            _wait_for(lambda: any(payload == b"offline" for _, payload, _ in during.messages))
        finally:
            during.close()
        later = MqttSubscriber(broker.port)  # what a Home Assistant started after the run learns

        def learnt() -> bool:  # every entity's config and every state they read (events are not kept)
            kept = {topic: payload for topic, payload, retained in list(later.messages) if retained}
            states = [json.loads(payload) for topic, payload in kept.items()
                      if topic.startswith("homeassistant/") and "/event/" not in topic]
            read = {config[key] for config in states for key in ("state_topic", "json_attributes_topic", "topic")
                    if key in config}
            return len(states) >= 20 and "site/available" in kept and read <= set(kept)

        try:
            _wait_for(learnt)
        finally:
            later.close()
    retained = {topic: payload for topic, payload, kept in later.messages if kept}
    configs = {topic: json.loads(payload) for topic, payload in retained.items() if topic.startswith("homeassistant/")}
    node = "homeassistant/{}/streamyolo_site/hall_{}/config"
    assert sorted(configs) == sorted([node.format("binary_sensor", "streaming"), node.format("sensor", "objects"),
                                      node.format("binary_sensor", "occupied"), node.format("camera", "snapshot"),
                                      node.format("event", "activity"), node.format("sensor", "zone_lower"),
                                      node.format("event", "zone_lower_visits"),
                                      node.format("binary_sensor", "zone_lower_occupied"),
                                      node.format("binary_sensor", "zone_lower_active"),
                                      node.format("binary_sensor", "zone_floor_active"),
                                      node.format("sensor", "line_door_in"), node.format("sensor", "line_door_out"),
                                      node.format("event", "line_door_crossings"), node.format("sensor", "zone_floor"),
                                      node.format("binary_sensor", "zone_floor_occupied"),
                                      node.format("event", "zone_floor_visits"),
                                      node.format("sensor", "zone_floor_speed"),
                                      node.format("binary_sensor", "outputs"), node.format("binary_sensor", "active"),
                                      *(node.format("sensor", sensor) for sensor in (
                                          "fps_in", "fps_out", "frame_age", "behind", "skipped")),
                                      "homeassistant/binary_sensor/streamyolo_site/-outputs/config",
                                      "homeassistant/binary_sensor/streamyolo_site/-overload/config"])
    assert gone not in retained, "an entity the config no longer has stays in Home Assistant"
    assert len({c["unique_id"] for c in configs.values()}) == 26
    devices = {c["device"]["name"]: json.dumps(c["device"], sort_keys=True) for c in configs.values()}
    assert sorted(devices) == ["hall", "streamyolo site"], "a device for the stream, one for the run"
    # What the camera sees now is unavailable while it is not streaming (not its last state); the
    # rest (its connection, counts, outputs) while the run is up.
    live = {topic.split("/")[-2] for topic, c in configs.items() if "availability" in c}
    assert live == {"hall_objects", "hall_occupied", "hall_active", "hall_zone_lower", "hall_zone_lower_occupied",
                    "hall_zone_floor", "hall_zone_floor_occupied", "hall_zone_lower_active",
                    "hall_zone_floor_active"}, live
    assert {c.get("availability_topic") for c in configs.values() if "availability" not in c} == {"site/available"}
    for config in (c for c in configs.values() if "availability" in c):
        run, camera = config["availability"]
        assert (run, config["availability_mode"], camera["topic"]) == ({"topic": "site/available"}, "all",
                                                                       "site/hall/state")
        assert [jinja2.Environment().from_string(camera["value_template"]).render(value_json={"state": state})
                for state in ("streaming", "reconnecting", "ended")] == ["online", "offline", "offline"]
        assert "availability_topic" not in config  # (Home Assistant takes one or the other)
    assert json.loads(retained["site/hall/state"])["state"] == "ended"  # (the walker "in" the zone: unknown now)
    assert retained["site/available"] == b"offline", "the run is over"

    def shown(kind: str, what: str) -> str:
        config = configs[node.format(kind, what)]
        state = json.loads(retained[config["state_topic"]])
        return jinja2.Environment().from_string(config["value_template"]).render(value_json=state)

    # The walker crossed the door (y = 150) downwards once and ends in the lower zone; the stream has ended.
    assert (shown("sensor", "line_door_in"), shown("sensor", "line_door_out")) == ("1", "0")
    assert shown("sensor", "zone_lower") == "1" and json.loads(retained["site/hall/zone/lower"]) == {
        "total": 1, "person": 1, "stationary": 0}
    assert shown("binary_sensor", "zone_lower_occupied") == "ON"
    assert shown("binary_sensor", "zone_lower_active") == "ON", "it walks"
    active = jinja2.Environment().from_string(configs[node.format("binary_sensor", "zone_lower_active")][
        "value_template"])
    assert [active.render(value_json=state) for state in (
        {"total": 1, "car": 1, "stationary": 1}, {"total": 2, "car": 1, "person": 1, "stationary": 1},
        {"total": 0, "stationary": 0})] == ["OFF", "ON", "OFF"], "a parked car alone is no activity"
    assert shown("sensor", "objects") == "1" and json.loads(retained["site/hall/objects"]) == {
        "total": 1, "person": 1, "stationary": 0}
    assert shown("binary_sensor", "occupied") == shown("binary_sensor", "active") == "ON"
    # The walker's speed through the floor, measured on leaving it: the speed sensor's state.
    assert abs(float(shown("sensor", "zone_floor_speed")) - 72.0) < 1.0
    speed = configs[node.format("sensor", "zone_floor_speed")]
    assert (speed["unit_of_measurement"], speed["device_class"]) == ("km/h", "speed")
    assert json.loads(retained[speed["json_attributes_topic"]])["name"] == "person"
    empty = configs[node.format("binary_sensor", "zone_lower_occupied")]["value_template"]
    assert jinja2.Environment().from_string(empty).render(value_json={"total": 0}) == "OFF"
    assert shown("binary_sensor", "streaming") == "OFF"
    assert shown("binary_sensor", "outputs") == "OFF" and json.loads(retained["site/hall/outputs"]) == {
        "paused": 0, "outputs": []}  # (its clips always wrote)
    assert retained[configs[node.format("camera", "snapshot")]["topic"]][:2] == b"\xff\xd8", "a JPEG"
    # The Activity event entity: each clip event as the event Home Assistant fires.
    activity = configs[node.format("event", "activity")]
    fired = [json.loads(jinja2.Environment().from_string(activity["value_template"]).render(
        value_json=json.loads(payload))) for topic, payload, _ in during.messages if topic == activity["state_topic"]]
    (clip,) = [path.name for path in (broker_folder / "clips").iterdir()]
    assert fired == [{"event_type": "started", "clip": clip}, {"event_type": "ended", "clip": clip}]
    assert {e["event_type"] for e in fired} <= set(activity["event_types"])

    def fired_by(what: str) -> list[dict[str, object]]:
        entity = configs[node.format("event", what)]
        events = [json.loads(jinja2.Environment().from_string(entity["value_template"]).render(
            value_json=json.loads(payload))) for topic, payload, _ in during.messages if topic == entity["state_topic"]]
        assert {e["event_type"] for e in events} <= set(entity["event_types"]), what
        return events

    # Each object event as its zone's or line's event entity fires it: the walker entered the
    # lower zone (and was still in it at the end) and crossed the door downwards, in one clip.
    (entered,) = fired_by("zone_lower_visits")
    (crossed,) = fired_by("line_door_crossings")
    assert {k: v for k, v in entered.items() if k not in ("id", "snapshot", "box")} == {
        "event_type": "enter", "object": "person", "class": 0, "dwell": None, "speed": None, "clip": clip}
    assert {k: v for k, v in crossed.items() if k not in ("id", "snapshot", "box")} == {
        "event_type": "in", "object": "person", "class": 0, "dwell": None, "speed": None, "clip": clip}
    # The walker's box (x 140-180, 40 px tall) where it entered the zone (y > 120) and crossed the door (y = 150).
    assert entered["box"][0::2] == [140.0, 180.0] and 120 <= (entered["box"][1] + entered["box"][3]) / 2 < 130
    assert crossed["box"][0::2] == [140.0, 180.0] and 150 <= (crossed["box"][1] + crossed["box"][3]) / 2 < 160
    assert entered["id"] == crossed["id"] and isinstance(entered["id"], int)
    assert str(entered["snapshot"]).endswith(".jpg") and (broker_folder / "shots" / str(entered["snapshot"])).exists()
    with pytest.raises(ConfigError, match="config keys 'mqtt_discovery' and 'mqtt': Home Assistant finds the"):
        build_config({"streams": ["a.mp4"], "mqtt_discovery": "homeassistant"})


def test_zone_and_line_states_go_out_as_they_change_at_most_once_a_second() -> None:
    sent: list[tuple[float, dict[str, object]]] = []
    now = [0.0]

    class _Publisher:
        def send_state(self, stream: str, kind: str, name: str, state: dict[str, object]) -> None:
            if kind == "zone":
                sent.append((now[0], state))
            else:  # the whole picture's, here empty throughout: sent once
                assert (kind, name, state) == ("objects", "", {"total": 0}) and now[0] == 0.0

    states = StatePublisher(_Publisher(), clock=lambda: now[0])  # type: ignore[arg-type]
    image = np.zeros((8, 8, 3), np.uint8)
    for at, held in [(0.0, {}), (0.2, {"person": 1}), (0.5, {}), (0.7, {"car": 2}), (0.9, {"car": 2}),
                     (1.1, {"car": 2}), (1.5, {"car": 1}), (1.6, {"car": 1})]:
        now[0] = at
        zone = ZoneTally("lot", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)), held)
        states.update(Result(Frame(FrameMeta("cam", 0, at), image), Detections.empty(), at, zones=(zone,)))
    now[0] = 1.7
    states.flush()  # the end of the run: the newest state not sent yet
    assert sent == [(0.0, {"total": 0}), (1.1, {"total": 2, "car": 2}), (1.7, {"total": 1, "car": 1})]


@pytest.mark.timeout(90)
def test_each_stream_gets_the_event_entities_of_the_events_it_sends(broker_folder: Path) -> None:
    """From a config, as a user writes it: a tracked stream with a zone and a line gets a
    visits and a crossings event entity, with only the kinds ``mqtt_events`` lets through (but
    each stream's state, which the entities read, always goes; its
    zone, watched by a schedule, a ``watched`` switch); a stream without them gets none; without
    clips, no Activity entity."""
    street = "synthetic:scene?seed=3&size=416x240&fps=25&frames=8"
    with MqttBroker(broker_folder) as broker:
        config = {"model": "demo", "tracker": "bytetrack", "mqtt": f"mqtt://127.0.0.1:{broker.port}/yard",
                  "mqtt_discovery": "homeassistant", "mqtt_events": ["enter", "line"], "display": False,
                  "record": str(broker_folder / "rec"),
                  "streams": [{"name": "gate", "source": street, "zones": {"drive": {
                      "points": [[0, 0], [416, 0], [416, 240], [0, 240]], "size": [20, 12], "schedule": "mon-sun"}},
                               "lines": {"kerb": [[0, 200], [416, 200]]}},
                              {"name": "porch", "source": street, "record": False}]}
        Pipeline.from_config(config).run()
        later = MqttSubscriber(broker.port)
        try:
            _wait_for(lambda: sum(t.endswith("/config") for t, _, _ in later.messages) >= 36)
        finally:
            later.close()
    configs = {topic.split("/")[3]: (topic.split("/")[1], json.loads(payload))
               for topic, payload, kept in later.messages if topic.endswith("/config") and kept}
    assert sorted(configs) == ["-outputs", "-overload", "-recordings", "-recordings_days_left", "-recordings_free",
                               "gate_active", "gate_behind", "gate_detect", "gate_fps_in", "gate_fps_out",
                               "gate_frame_age",
                               "gate_line_kerb_crossings", "gate_line_kerb_in", "gate_line_kerb_out",
                               "gate_objects", "gate_occupied", "gate_outputs", "gate_record", "gate_skipped",
                               "gate_streaming", "gate_zone_drive", "gate_zone_drive_active",
                               "gate_zone_drive_occupied", "gate_zone_drive_speed",
                               "gate_zone_drive_visits", "gate_zone_drive_watch", "porch_active", "porch_behind",
                               "porch_detect", "porch_fps_in",
                               "porch_fps_out", "porch_frame_age", "porch_objects", "porch_occupied", "porch_skipped",
                               "porch_streaming"]
    assert configs["porch_detect"][0] == "switch" and {key: configs["porch_detect"][1][key] for key in (
        "command_topic", "state_topic", "payload_on", "payload_off")} == {
            "command_topic": "yard/porch/detect/set", "state_topic": "yard/porch/detect/state", "payload_on": "ON",
            "payload_off": "OFF"}
    # The recorded stream's Recording switch (porch is not recorded: none).
    assert configs["gate_record"][0] == "switch" and (configs["gate_record"][1]["name"],
                                                       configs["gate_record"][1]["command_topic"]) == (
        "Recording", "yard/gate/record/set")
    assert configs["gate_zone_drive_visits"][0] == configs["gate_line_kerb_crossings"][0] == "event"
    assert configs["gate_zone_drive_visits"][1]["event_types"] == ["enter"]  # leave and linger are not sent
    # Each stream's state goes whatever mqtt_events says: its entities' availability reads it.
    assert {topic for topic, _, kept in later.messages if kept and topic.endswith("/state")} >= {
        "yard/gate/state", "yard/porch/state"}
    assert configs["gate_line_kerb_crossings"][1]["event_types"] == ["in", "out"]


@pytest.mark.timeout(90)
def test_home_assistant_shows_how_each_stream_keeps_up_and_the_log_warns_of_overload(
        broker_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 200 fps camera against the demo model on this box: most of its frames are skipped. Its
    ``stats`` topic (retained) gives its frame rates, frame age and the share skipped, which
    Home Assistant's diagnostic sensors show (their templates rendered as Home Assistant does);
    a file beside it, processed whole, skips none; the log warns of the overload, as
    ``overload_warning`` (from the config) says."""
    import jinja2

    with MqttBroker(broker_folder) as broker:
        config = {"model": "demo", "mqtt": f"mqtt://127.0.0.1:{broker.port}/yard", "mqtt_discovery": "homeassistant",
                  "display": False, "status_interval": 0, "overload_warning": 1.5, "duration": 6,
                  "streams": [{"name": "gate", "source": "synthetic:scene?seed=3&size=320x240&fps=200",
                               "realtime": True},
                              {"name": "porch", "source": "synthetic:scene?seed=4&size=320x240&fps=25&frames=5000",
                               "realtime": True, "overflow": "lossless"}]}
        with caplog.at_level(logging.INFO, logger="streamyolo.pipeline.overload"):
            summary = Pipeline.from_config(config).run()
        later = MqttSubscriber(broker.port)
        try:
            _wait_for(lambda: {t for t, _, kept in later.messages if kept} >= {
                "yard/gate/stats", "yard/porch/stats", "homeassistant/sensor/streamyolo_yard/gate_skipped/config",
                "yard/overloaded", "homeassistant/binary_sensor/streamyolo_yard/-overload/config"})
        finally:
            later.close()
    kept = {topic: json.loads(payload) for topic, payload, retained in later.messages
            if retained and (topic.endswith(("/stats", "/overloaded")) or topic.startswith("homeassistant/"))}
    gate, porch = kept["yard/gate/stats"], kept["yard/porch/stats"]
    assert set(gate) == {"fps_in", "fps_out", "frame_age", "behind", "skipped", "captured", "processed", "dropped",
                         "reconnects"}, gate
    assert gate["fps_in"] > 25 and 0 < gate["fps_out"] < gate["fps_in"] and gate["skipped"] > 30, gate
    assert gate["dropped"] > 0 and porch["dropped"] == 0 and porch["skipped"] == 0, (gate, porch)
    shown = {}
    for sensor in ("fps_in", "fps_out", "frame_age", "skipped"):
        config = kept[f"homeassistant/sensor/streamyolo_yard/gate_{sensor}/config"]
        assert config["state_topic"] == "yard/gate/stats" and config["entity_category"] == "diagnostic", config
        shown[config["name"]] = float(jinja2.Environment().from_string(config["value_template"]).render(
            value_json=gate))
    assert shown == {"Frames in": gate["fps_in"], "Frames processed": gate["fps_out"],
                     "Frame age": pytest.approx(gate["frame_age"] * 1000), "Frames skipped": gate["skipped"]}
    behind = kept["homeassistant/sensor/streamyolo_yard/gate_behind/config"]  # (seconds; None, unknown, once stopped)
    assert (behind["state_topic"], behind["unit_of_measurement"], behind["device_class"]) == (
        "yard/gate/stats", "s", "duration"), behind
    assert gate["behind"] is None and [jinja2.Environment().from_string(behind["value_template"]).render(
        value_json=state) for state in (gate, {"behind": 2.53})] == ["None", "2.53"], gate
    assert 0 < shown["Frame age"] < 5000
    warned = [r.getMessage() for r in caplog.records if r.name == "streamyolo.pipeline.overload"]
    assert len(warned) == 1 and "'gate' " in warned[0] and "'porch'" not in warned[0], warned
    assert re.search(r"^the machine could not keep up: \d+% of the live streams' frames were skipped over the run "
                     r"\(gate\)$", summary.table(), re.MULTILINE), summary.table()  # (the summary says it too)
    # The run's device: Overloaded, as the run ended (still skipping most of the camera's frames).
    overload, sensor = kept["yard/overloaded"], kept["homeassistant/binary_sensor/streamyolo_yard/-overload/config"]
    assert overload["overloaded"] is True and overload["streams"] == ["gate"] and overload["skipped"] >= 50, overload
    assert (sensor["name"], sensor["device_class"], sensor["json_attributes_topic"]) == (
        "Overloaded", "problem", "yard/overloaded")
    assert [jinja2.Environment().from_string(sensor["value_template"]).render(value_json=state) for state in (
        overload, {"overloaded": False})] == ["ON", "OFF"]


@pytest.mark.timeout(90)
def test_home_assistants_switch_turns_a_streams_detection_off_and_on_as_it_runs(
        tmp_path: Path, broker_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``OFF`` on ``<prefix>/<stream>/detect/set`` (Home Assistant's Detection switch): the
    stream's frames go on (recorded, in the JSONL) with no objects, the state topic says
    ``OFF``; ``ON``: objects again. Then its Recording switch: off, its file ends; on, a new
    one starts. The other stream is untouched; a stream that is not there is said in the log."""
    street = "synthetic:scene?seed=3&size=416x240&fps=25"
    jsonl = tmp_path / "det.jsonl"
    with MqttBroker(broker_folder) as broker:
        config = {"model": "demo", "mqtt": f"mqtt://127.0.0.1:{broker.port}/yard", "display": False,
                  "status_interval": 0, "jsonl": str(jsonl), "record": str(tmp_path / "rec"),
                  "streams": [{"name": "gate", "source": street, "realtime": True},
                              {"name": "porch", "source": street, "realtime": True}]}
        pipeline = Pipeline.from_config(config)
        pipeline.start()
        ha = MqttSubscriber(broker.port)
        try:
            def gate_lines() -> list[dict[str, object]]:
                return [line for line in read_jsonl(jsonl) if line["stream"] == "gate"] if jsonl.exists() else []

            def state(stream: str, kind: str = "detect") -> bytes | None:
                said = [payload for topic, payload, _ in ha.messages if topic == f"yard/{stream}/{kind}/state"]
                return said[-1] if said else None

            _wait_for(lambda: len(gate_lines()) >= 10 and state("gate") == b"ON", 30)
            ha.client.publish("yard/gate/detect/set", "OFF", qos=1)
            _wait_for(lambda: state("gate") == b"OFF")
            off = len(gate_lines())
            _wait_for(lambda: len(gate_lines()) >= off + 15, 30)
            ha.client.publish("yard/gate/detect/set", "on", qos=1)
            ha.client.publish("yard/nowhere/detect/set", "OFF", qos=1)
            _wait_for(lambda: state("gate") == b"ON")
            on = len(gate_lines())
            _wait_for(lambda: len(gate_lines()) >= on + 15, 30)
            ha.client.publish("yard/gate/record/set", "OFF", qos=1)
            _wait_for(lambda: state("gate", "record") == b"OFF")
            assert pipeline.recording("gate") is False and pipeline.recording("porch") is True
            unrecorded = len(gate_lines())
            _wait_for(lambda: len(gate_lines()) >= unrecorded + 15, 30)
            ha.client.publish("yard/gate/record/set", "ON", qos=1)
            _wait_for(lambda: state("gate", "record") == b"ON")
            again = len(gate_lines())
            _wait_for(lambda: len(gate_lines()) >= again + 15, 30)
        finally:
            ha.close()
            pipeline.stop()
            summary = pipeline.join()
    lines = gate_lines()
    assert pipeline.detection("gate") and summary.streams["gate"].processed == len(lines)
    # The frames the worker had while it was off say so (the JSONL is written a moment after
    # the switch's state is published): one run of them, with no objects, between frames with some.
    undetected = [index for index, line in enumerate(lines) if line.get("detect") is False]
    assert len(undetected) >= 12 and undetected == list(range(undetected[0], undetected[-1] + 1)), undetected
    assert not any(lines[index]["detections"] for index in undetected), "objects while detection was off"
    assert undetected[-1] < len(lines) - 12, (off, on, undetected)  # on again, for a while
    assert any(line["detections"] for line in lines[:undetected[0]])
    assert any(line["detections"] for line in lines[undetected[-1] + 1:])
    porch = [line for line in read_jsonl(jsonl) if line["stream"] == "porch"]
    assert sum(bool(line["detections"]) for line in porch) > 0.8 * len(porch)  # untouched
    # Recording off, then on: two files of gate's, frames missing between them; porch's one, whole.
    assert summary.recordings["porch"] == [str(tmp_path / "rec" / "porch.mp4")]
    first, second = (Path(name) for name in summary.recordings["gate"])
    assert (first.name, second.name) == ("gate.mp4", "gate-2.mp4")
    recorded = len(decode(first)[0]) + len(decode(second)[0])
    assert len(decode(first)[0]) >= unrecorded - 5 and recorded <= len(lines) - 10, (recorded, len(lines))
    assert f"MQTT mqtt://127.0.0.1:{broker.port}/yard: nowhere/detect/set: no stream 'nowhere' is running" in (
        caplog.text)


@pytest.mark.timeout(60)
def test_two_runs_under_one_prefix_are_warned_of_and_leave_each_others_entities(
        broker_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two boxes publishing under the same prefix would share its availability and remove each
    other's Home Assistant entities as stale: the second run says so and leaves the first's
    entities alone, and the first hears of the second. A run under a prefix whose earlier run
    has ended cleans up as before."""
    caplog.set_level(logging.INFO)
    url_of = "mqtt://127.0.0.1:{}/site".format

    def publisher(port: int, stream: str) -> MqttPublisher:
        made = MqttPublisher(url_of(port), discovery="homeassistant", entities=[StreamEntities(stream)])
        made.start()
        _wait_for(lambda: made._ours_back)
        return made

    with MqttBroker(broker_folder) as broker:
        first = publisher(broker.port, "gate")
        try:
            second = publisher(broker.port, "porch")
            second.close()
            _wait_for(lambda: "has started publishing under 'site' too" in caplog.text)
        finally:
            first.close()
        assert f"another streamyolo run ({socket.gethostname()}, pid {os.getpid()}) publishes under 'site'" in (
            caplog.text)
        assert "no longer in the config: removed" not in caplog.text
        third = publisher(broker.port, "yard")  # both have ended: their entities are stale now
        # (their retained configs come back on a subscription of their own, after the run marker)
        _wait_for(lambda: caplog.text.count("no longer in the config: removed") == 16)
        third.close()
        later = MqttSubscriber(broker.port)
        try:
            _wait_for(lambda: any(t.endswith("yard_streaming/config") for t, _, _ in later.messages))
            time.sleep(0.3)
        finally:
            later.close()
    configs = sorted(t.split("/")[3] for t, payload, kept in later.messages if t.endswith("/config") and payload)
    assert configs == ["-outputs", "-overload", "yard_behind", "yard_fps_in", "yard_fps_out", "yard_frame_age",
                       "yard_objects", "yard_occupied", "yard_skipped", "yard_streaming"]
    assert caplog.text.count("no longer in the config: removed") == 16  # the gate's and the porch's eight


@pytest.mark.timeout(60)
def test_events_link_their_streams_recording_only_while_it_is_recorded(tmp_path: Path) -> None:
    """With ``public_url``, a recorded stream's events carry ``recording_url``, the page at
    that moment of its recording; while its recording is switched off (by hand, by its
    schedule) there is none of that moment, and its events link none."""
    door = CountingLine("door", (0.0, 120.0), (320.0, 120.0))
    linked: list[list[str | None]] = []
    for recording in (True, False):
        source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
        path = tmp_path / f"events-{recording}.jsonl"
        events = EventSink(path, public_url="https://box.lan/cams/",
                           entities=[StreamEntities("hall", recorded=True)])
        events.switched("record", "hall", False)
        events.switched("record", "hall", recording)  # (off, then on again: the last says)
        Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,))], _WalkerDetector,
                 tracker=tracker_settings("bytetrack"), sinks=[events]).run()
        linked.append([e.get("recording_url") for e in read_jsonl(path) if e["event"] == "line"])
    (crossed,), (unrecorded,) = linked
    assert re.fullmatch(r"https://box\.lan/cams/#recording=hall@\d+\.\d+", str(crossed)), crossed
    assert unrecorded is None


class _SlowWalker(_WalkerDetector):
    """The walker, seen at 5 frames a second at most (a model slower than the video plays)."""

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        time.sleep(0.2 * len(images))
        return super().detect(images)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("segment", [2.0, None])
def test_a_file_processed_slower_than_it_plays_is_recorded_and_linked_on_its_videos_clock(
        tmp_path: Path, segment: float | None) -> None:
    """A file (not played in real time) is processed at the model's pace, here half as fast as
    it plays: its recording is placed on its video's own clock from when its first frame came
    (segments of 2 s of video named 2 s apart, though each took 4 s; one file of the run placed
    over 6 s), and each event's ``recording_url`` moment is where the recording has its frame
    (not when the model got to it, seconds later)."""
    clip = make_clip(tmp_path / "hall.mp4", "hall", frames=60, size=(320, 480), fps=10)  # (its stamps clear of boxes)
    rec, path = tmp_path / "rec", tmp_path / "events.jsonl"
    recorder = VideoRecorder(rec, preset="ultrafast", segment=segment)
    recorder.paced = frozenset({"hall"})
    events = EventSink(path, public_url="https://box.lan/",
                       entities=[StreamEntities("hall", recorded=True, paced=True)])
    lobby = Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0)))
    door = CountingLine("door", (0.0, 220.0), (320.0, 220.0))  # the walker crosses it at frame 25
    source = open_source(SourceSpec("hall", str(clip), SourceKind.FILE))
    started = time.time()
    Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,), zones=(lobby,))], _SlowWalker,
             tracker=tracker_settings("bytetrack"), sinks=[recorder, events]).run()
    took = time.time() - started
    assert took > 10, "the model was not slower than the video"
    files = recordings_of(rec, "hall")
    linked = {(e["event"], e["seq"]): float(e["recording_url"].rpartition("@")[2])
              for e in read_jsonl(path) if "recording_url" in e and "seq" in e}  # (its frame's)
    assert {kind for kind, _ in linked} >= {"enter", "leave", "line"} and len(linked) >= 3, linked
    if segment is not None:
        assert len(files) == 3 and [b.start - a.start for a, b in itertools.pairwise(files)] == [2.0, 2.0], files
    else:
        assert len(files) == 1 and files[0].seconds == pytest.approx(6.0, abs=0.15)
        assert started - 1 < files[0].start < started + 2, (files[0].start - started)  # when the first frame came
    for (kind, seq), moment in linked.items():
        file = [f for f in files if f.start <= moment][-1]
        frames = [read_stamp(image)[1] for image in decode(file.path)[0]]  # type: ignore[index]
        found = frames[int((moment - file.start) * 10 + 1e-6)]  # (a file's start read back from its mtime: a float's)
        # At the event's moment the recording has the event's frame, or one up to a second later
        # (a segment's name counts whole seconds); on the model's clock it would be 2 s of frames or more later.
        assert seq <= found <= seq + 10 and (segment or found == seq), (kind, seq, found, moment - file.start)


def test_the_paced_streams_are_the_files_not_played_in_real_time(tmp_path: Path) -> None:
    from streamyolo.pipeline.assemble import paced, stream_entities
    from streamyolo.pipeline.build import resolve_streams

    clip = make_clip(tmp_path / "hall.mp4", "hall", frames=2)
    config = build_config({"streams": [str(clip), {"name": "played", "source": str(clip), "realtime": True},
                                       "rtsp://127.0.0.1:9/cam", "synthetic:?frames=2"]})
    streams = resolve_streams(config)
    assert [paced(s) for s in streams] == [True, False, False, True]
    assert [stream_entities(config, s).paced for s in streams] == [True, False, False, True]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("format", ["text", "slack", "discord", "telegram", "pushover"])
def test_a_webhook_can_take_each_event_as_the_message_a_person_reads(tmp_path: Path, format: str) -> None:
    """``webhook_format``: ``text`` sends each event's line (as ``streamyolo events --text``
    writes it) with ntfy's headers (its title, its kind as a tag), ``slack``, ``discord`` and
    ``telegram`` the message their webhooks and bots take, ``pushover`` Pushover's; all but
    ``slack`` carry the frame's snapshot itself, as the snapshots folder has it (ntfy's
    attachment, Discord's embedded file, Telegram's photo with the line as its caption,
    Pushover's attachment), ``slack`` links it."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    door = CountingLine("door", (0.0, 120.0), (320.0, 120.0))
    path, shots = tmp_path / "events.jsonl", tmp_path / "shots"
    with HookReceiver() as hook:
        url = {"telegram": hook.url.replace("/hook", "/bot123456:AAH-token/sendMessage?chat_id=-1001"),
               "pushover": f"{hook.url}?token=app-token&user=user-key"}.get(format, hook.url)
        events = EventSink(path, url, shots, public_url="https://box.lan/", webhook_format=format)
        Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,))], _WalkerDetector,
                 tracker=tracker_settings("bytetrack"), sinks=[events]).run()
    written = read_jsonl(path)
    assert [e["event"] for e in written] == ["state", "line", "state"] and len(hook.bodies) == 3
    crossed = written[1]
    name = crossed["snapshot"]
    jpeg = (shots / name).read_bytes()
    assert crossed["snapshot_url"] == f"https://box.lan/snapshots/{name}"
    headers = [dict(request[1]) for request in hook.requests]
    if format == "text":
        assert hook.methods == ["POST", "PUT", "POST"]
        assert [hook.bodies[0].decode(), hook.bodies[2].decode()] == [describe(written[0]), describe(written[2])]
        assert [(h["Content-Type"], h["Title"], h["Tags"], h.get("Attach")) for h in (headers[0], headers[2])] == [
            ("text/plain; charset=utf-8", "streamyolo: hall", "state", None)] * 2
        assert hook.bodies[1] == jpeg  # (ntfy's attachment: the picture is the body, the line a header)
        assert (headers[1]["Filename"], headers[1]["Message"], headers[1]["Title"], headers[1]["Tags"]) == (
            name, describe(crossed), "streamyolo: hall", "line")
        assert headers[1]["Message"].endswith("  hall: person #1 crossed door (in)")
    elif format == "slack":
        assert hook.events == [{"text": describe(written[0])},
                               {"text": f"{describe(crossed)}\nsnapshot: https://box.lan/snapshots/{name}"},
                               {"text": describe(written[2])}]
    elif format == "discord":
        assert hook.events == [{"content": describe(written[0])}, {"content": describe(written[2])}]
        fields = form_fields(hook.bodies[1], headers[1]["Content-Type"])
        assert json.loads(fields["payload_json"][1]) == {
            "content": describe(crossed), "embeds": [{"image": {"url": f"attachment://{name}"}}],
            "attachments": [{"id": 0, "filename": name}]}
        assert fields["files[0]"] == (name, jpeg)
    elif format == "pushover":  # (its app and user in the body, not the URL)
        assert [request[0] for request in hook.requests] == ["/hook"] * 3
        sent = [form_fields(body, h["Content-Type"]) for body, h in zip(hook.bodies, headers, strict=True)]
        assert [s.pop("attachment", None) for s in sent] == [None, (name, jpeg), None]
        assert sent == [{"token": (None, b"app-token"), "user": (None, b"user-key"),
                         "title": (None, b"streamyolo: hall"), "message": (None, describe(e).encode()),
                         "timestamp": (None, str(int(e["time"])).encode())} for e in written]
    else:  # telegram: the bot's methods, its chat
        assert [request[0] for request in hook.requests] == [
            "/bot123456:AAH-token/sendMessage", "/bot123456:AAH-token/sendPhoto", "/bot123456:AAH-token/sendMessage"]
        assert hook.events == [{"chat_id": "-1001", "text": describe(written[0])},
                               {"chat_id": "-1001", "text": describe(written[2])}]
        assert form_fields(hook.bodies[1], headers[1]["Content-Type"]) == {
            "chat_id": (None, b"-1001"), "caption": (None, describe(crossed).encode()), "photo": (name, jpeg)}


@pytest.mark.timeout(120)
def test_each_webhook_gets_the_events_it_asks_for_with_a_cooldown_per_stream(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``webhooks``: beside ``webhook`` (every event), a phone's (``text``: only people entering
    at the gate, one per minute at most) and another's (the porch's streaming state and its
    entering objects, one per minute): each gets just those of the run's events, as the events
    file has them, also when the run is started again within the minute (its cooldowns go on
    from the events file); ``check`` says each; what cannot be is refused, naming the key."""
    from streamyolo import cli

    street = "synthetic:scene?seed={}&size=416x240&fps=25&frames=60"
    everything = [[0, 0], [416, 0], [416, 240], [0, 240]]
    with HookReceiver() as every, HookReceiver() as phone, HookReceiver() as porch:
        config = {"model": "demo", "tracker": "bytetrack", "display": False, "status_interval": 0,
                  "events": str(tmp_path / "events.jsonl"), "webhook": every.url,
                  "webhooks": [{"url": phone.url, "format": "text", "events": ["enter"], "streams": ["gate"],
                                "classes": ["person"], "cooldown": "1m"},
                               {"url": porch.url, "events": ["enter", "state"], "streams": ["porch"],
                                "cooldown": 60}],
                  "streams": [{"name": name, "source": street.format(seed), "zones": {"all": everything}}
                              for name, seed in (("gate", 3), ("porch", 5))]}
        (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
        assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
        plan = capsys.readouterr().out
        Pipeline.from_config(config).run()
        restarted = time.time()
        Pipeline.from_config(config).run()  # started again within the minute: the cooldowns go on
    written = read_jsonl(tmp_path / "events.jsonl")
    assert any(e["event"] == "enter" and e["time"] >= restarted for e in written), "the second run saw no one"

    def key(event: dict[str, object]) -> tuple[object, ...]:
        return event["stream"], event["event"], event.get("seq"), event.get("id"), event.get("state")

    entering = [e for e in written if e["event"] == "enter"]
    assert {e["name"] for e in entering if e["stream"] == "gate"} >= {"person", "car"}, "the scene has changed"
    assert sorted(map(key, every.events)) == sorted(map(key, written))  # type: ignore[arg-type]
    first_person = next(e for e in entering if e["stream"] == "gate" and e["name"] == "person")
    assert [body.decode() for body in phone.bodies] == [describe(first_person)]
    porch_states = [e for e in written if e["stream"] == "porch" and e["event"] == "state"]
    first_porch = next(e for e in entering if e["stream"] == "porch")
    assert sorted(map(key, porch.events)) == sorted(map(key, [*porch_states, first_porch]))  # type: ignore[arg-type]
    assert len([e for e in entering if e["stream"] == "porch"]) > 1, "the cooldown held none back"
    assert f"events to webhook {every.url}; " in plan
    assert (f"events to webhook {phone.url} (text; enter; streams gate; objects of class(es) 0; a stream's "
            "objects at most every 1m)") in plan, plan
    # A phone's notifications carry their snapshots; with clips but no address to link them by: said.
    (tmp_path / "cams.yaml").write_text(json.dumps({**config, "snapshots": str(tmp_path / "shots"),
                                                    "clips": str(tmp_path / "clips")}))
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
    plan = capsys.readouterr().out
    assert ("1m; each with its snapshot; no clips linked: set public_url, the page's address as the phone "
            "reaches it)") in plan, plan
    assert f"events to webhook {porch.url} (enter, state; streams porch; a stream's objects at most every 1m)" \
        in plan, plan  # (JSON: the snapshot's name, for a program)
    for hook, message in (({"url": phone.url, "streams": ["gat"]},
                           r"config key 'webhooks\.0\.streams': no stream 'gat' in the config \(its streams: gate, "
                           r"porch\) \(did you mean 'gate'\?\)$"),
                          ({"url": phone.url, "classes": ["unicorn"]},
                           r"config key 'webhooks\.0\.classes': 'unicorn' is not one of the model's 3 classes"),
                          ({"url": "ftp://box/hook"}, r"config key 'webhooks\.0\.url': "),
                          ({"url": phone.url, "cooldown": "soon"}, r"config key 'webhooks\.0\.cooldown': must be"),
                          ({"url": phone.url, "events": ["knock"]}, r"config key 'webhooks\.0\.events\.0': ")):
        with pytest.raises(ConfigError, match=message):
            Pipeline.from_config({**config, "webhook": None, "webhooks": [hook]})


@pytest.mark.timeout(60)
def test_check_notify_sends_a_test_event_to_each_webhook_and_the_broker_and_says_which_took_it(
        broker_folder: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``streamyolo check --notify``: a ``test`` event to each webhook, in its own format
    (a phone's ``text``, whatever events it takes), and to the broker; each said taken, and a
    webhook nobody answers and a broker refusing the login said as what went wrong (exit 1)."""
    from streamyolo import cli
    from tests.servers import free_port

    with MqttBroker(broker_folder, "cam", "secret") as broker, HookReceiver() as every, HookReceiver() as phone:
        subscriber = MqttSubscriber(broker.port, "cam", "secret")
        config = {"streams": ["synthetic:"], "webhook": every.url,
                  "mqtt": f"mqtt://cam:secret@127.0.0.1:{broker.port}/home",
                  "webhooks": [{"url": phone.url, "format": "text", "events": ["enter"], "classes": [0]}]}
        path = broker_folder / "cams.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")
        try:
            assert cli.main(["check", str(path), "--notify"]) == 0
            said = capsys.readouterr().out
            _wait_for(lambda: bool(subscriber.events()))
            assert [(topic, json.loads(body)["event"]) for topic, body, _ in subscriber.messages] == [
                ("home/test", "test")]
        finally:
            subscriber.close()
        assert (f"a test event sent:\n  webhook {every.url}: taken\n  webhook {phone.url}: taken\n"
                f"  MQTT broker mqtt://cam:***@127.0.0.1:{broker.port}/home: taken\n") in said, said
        assert [e["event"] for e in every.events] == ["test"]
        assert phone.bodies[0].decode().endswith("  a test from streamyolo check --notify: this is where the events go")
        assert dict(phone.requests[0][1])["Tags"] == "test"
        nobody = f"http://127.0.0.1:{free_port()}/hook"
        config |= {"webhook": nobody, "webhooks": [], "mqtt": f"mqtt://cam:wrong@127.0.0.1:{broker.port}/home"}
        path.write_text(json.dumps(config), encoding="utf-8")
        assert cli.main(["check", str(path), "--notify"]) == 1
        said = capsys.readouterr().out
    assert re.search(rf"  webhook {re.escape(nobody)}: ConnectionRefusedError: .*\n", said), said
    assert re.search(r"  MQTT broker mqtt://cam:\*\*\*@127\.0\.0\.1:\d+/home: not taken", said), said
    assert "2 of 2 event output(s) did not take the test event" in caplog.text
    assert "wrong" not in said + caplog.text


@pytest.mark.timeout(60)
def test_a_webhook_with_down_after_hears_of_a_camera_down_only_once_it_has_been_down_that_long(
        tmp_path: Path) -> None:
    """``down_after``: a camera's blip (down, back 0.2 s later) sends nothing; down for longer
    sends its going down once it has been down that long, then its coming back; the events
    file has every state as it came."""
    from streamyolo.sinks.events import EventFilter

    with HookReceiver() as phone:
        sink = EventSink(tmp_path / "events.jsonl", webhooks=[(Webhook(phone.url), EventFilter({"state"},
                                                                                              down_after=1.0))])
        sink.open()
        try:
            sink.stream_changed("gate", "streaming", None)
            _wait_for(lambda: len(phone.events) == 1)
            sink.stream_changed("gate", "reconnecting", "connection refused")
            time.sleep(0.2)
            sink.stream_changed("gate", "streaming", None)  # (a blip)
            time.sleep(1.5)
            assert [e["state"] for e in phone.events] == ["streaming"]
            down = time.time()
            sink.stream_changed("gate", "reconnecting", "connection refused")
            _wait_for(lambda: len(phone.events) == 2, 5)
            told = time.time() - down
            sink.stream_changed("gate", "streaming", None)
            sink.stream_changed("gate", "ended", None)
            _wait_for(lambda: len(phone.events) == 4, 5)
        finally:
            sink.close()
    assert 0.9 <= told < 3, told
    assert [(e["state"], "down_since" in e) for e in phone.events] == [
        ("streaming", False), ("reconnecting", True), ("streaming", False), ("ended", False)]
    assert abs(float(phone.events[1]["down_since"]) - down) < 0.1  # type: ignore[arg-type]
    assert [e["state"] for e in read_jsonl(tmp_path / "events.jsonl")] == [
        "streaming", "reconnecting", "streaming", "reconnecting", "streaming", "ended"]


def test_a_webhook_format_needs_a_webhook_and_is_one_of_six() -> None:
    """A format without a webhook, one not known, a Telegram bot's URL without its chat, Pushover's
    without its user: refused, naming the key."""
    with pytest.raises(ConfigError, match="config keys 'webhook_format' and 'webhook'"):
        build_config({"streams": ["a.mp4"], "webhook_format": "text"})
    with pytest.raises(ConfigError, match="config key 'webhook_format': Input should be 'json', 'text', 'slack', "
                                          "'discord', 'telegram' or 'pushover' \\(got 'teams'\\)"):
        build_config({"streams": ["a.mp4"], "webhook": "http://127.0.0.1:9/hook", "webhook_format": "teams"})
    bot = "https://api.telegram.org/bot123:abc/sendMessage"
    chat = r"a telegram webhook is the bot's URL with its chat: https://api\.telegram\.org/bot<token>\?chat_id=<chat>"
    with pytest.raises(ConfigError, match=f"config key 'webhook': {chat}"):
        build_config({"streams": ["a.mp4"], "webhook": bot, "webhook_format": "telegram"})
    with pytest.raises(ConfigError, match=f"config key 'webhooks.0': url: {chat}"):
        build_config({"streams": ["a.mp4"], "webhooks": [{"url": bot, "format": "telegram"}]})
    with pytest.raises(ConfigError, match=r"config key 'webhooks.0': url: a pushover webhook is Pushover's with the "
                                          r"app's token and the user's key: https://api\.pushover\.net/1/messages\.json"
                                          r"\?token=<app>&user=<user>"):
        build_config({"streams": ["a.mp4"], "webhooks": [{"url": "https://api.pushover.net/1/messages.json?token=a",
                                                          "format": "pushover"}]})
    assert build_config({"streams": ["a.mp4"], "webhooks": [{"url": f"{bot}?chat_id=42", "format": "telegram"}]})


def test_the_webhook_flag_takes_a_cooldown_and_down_after_as_a_webhooks_entry_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--webhook-cooldown``, ``--webhook-down-after`` and ``--webhook-priority``: the one
    webhook of the flags gets them (``check`` says so); without a webhook they are refused,
    naming the key, and a priority for a format without one too."""
    from streamyolo import cli

    assert cli.main(["check", "--source", "synthetic:", "--webhook", "https://ntfy.sh/gate", "--webhook-format",
                     "text", "--webhook-cooldown", "5m", "--webhook-down-after", "120", "--webhook-priority",
                     "high"]) == 0
    assert ("events to webhook https://ntfy.sh/gate (text; priority high; a stream's objects at most every 5m; a "
            "camera down once down 2m)") in capsys.readouterr().out
    with pytest.raises(ConfigError, match="config keys 'webhook_priority' and 'webhook_format': a json webhook's "):
        build_config({"streams": ["a.mp4"], "webhook": "https://ntfy.sh/gate", "webhook_priority": "high"})
    for key in ("webhook_cooldown", "webhook_down_after"):
        with pytest.raises(ConfigError, match=f"config keys '{key}' and 'webhook': {key} says how the webhook is"):
            build_config({"streams": ["a.mp4"], key: "5m"})


def test_a_webhook_with_a_schedule_gets_only_the_events_of_its_windows(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``schedule`` on a webhook (or an email): the events that happen in its windows, by their
    own times, whatever their kind; ``check`` says it; a wrong window names the key."""
    from streamyolo import cli
    from streamyolo.schedule import Schedule
    from streamyolo.sinks.events import EventFilter

    night = EventFilter(schedule=Schedule(["22:00-06:00"]))
    at = [time.mktime((2026, 12, 5, hour, minute, 0, 0, 0, -1)) for hour, minute in
          ((21, 59), (22, 0), (3, 30), (6, 0), (12, 0))]
    events = [{"time": moment, "stream": "yard", "event": kind, "cls": 0, "name": "person"}
              for moment, kind in zip(at, ["enter", "enter", "state", "line", "enter"], strict=True)]
    assert [night.passes(event) for event in events] == [False, True, True, False, False]
    config = {"streams": ["yard=synthetic:"], "webhooks": [{"url": "https://ntfy.sh/yard", "format": "text",
                                                            "schedule": ["22:00-06:00", "sat,sun"]}]}
    (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
    assert "events to webhook https://ntfy.sh/yard (text; only 22:00-06:00, sat,sun)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"config key 'webhooks\.0\.schedule': '25:00' is not a time of day"):
        build_config({**config, "webhooks": [{"url": "https://ntfy.sh/yard", "schedule": "25:00-06:00"}]})
