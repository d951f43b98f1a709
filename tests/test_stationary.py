"""Objects that stand still in a zone: a parked car the model misses for a while, or that a
passing bus hides, is found again where it stood under the tracker's new id and stays the same
stay (no leave and enter; its ``linger`` not started again), within the zone's ``hidden``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Image, Result
from streamyolo.inference.counting import GONE_AFTER, Zone, ZoneWatch, occupancy
from streamyolo.inference.tracking import track_buffer, tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks import JsonlSink
from streamyolo.sinks.events import EventSink
from streamyolo.sources import SourceKind, SourceSpec, open_source, read_stamp
from tests.helpers import read_jsonl, until

DRIVE = Zone("drive", ((0.0, 0.0), (320.0, 0.0), (320.0, 240.0), (0.0, 240.0)), linger=4.0, hidden=2.5)
NAMES = {0: "person", 2: "car"}


def _seen(*objects: tuple[int, tuple[float, float, float, float], int]) -> Detections:
    """Tracked detections: (track id, box, class)."""
    xyxy = np.array([box for _, box, _ in objects], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(len(objects), 0.9, np.float32), np.array([c for *_, c in objects], np.int64),
                      NAMES, np.array([i for i, *_ in objects], np.int64))


def _events(watch: ZoneWatch, frames: Sequence[Detections], fps: float = 25.0) -> list[tuple[int, str, int, str]]:
    """(frame, event, id, class) of each zone visit as ``frames`` go by."""
    out = []
    for seq, found in enumerate(frames):
        out += [(seq, v.event, v.id, v.name) for v in watch.update(found, seq / fps, occupancy(watch.zones, found))]
    return out


CAR = (200.0, 150.0, 280.0, 200.0)
NOTHING = _seen()


def test_a_car_that_stood_still_and_is_found_again_where_it_stood_is_the_same_stay() -> None:
    # Parked for 3 s as track 1, unseen for 2 s (beyond the tracker's 30 frames: a new id), then
    # track 9 a pixel off where it stood: no leave, no enter; its linger counts from the first.
    frames = [_seen((1, CAR, 2))] * 75 + [NOTHING] * 50 + [_seen((9, (201, 151, 281, 199), 2))] * 50 + [NOTHING] * 120
    events = _events(ZoneWatch([DRIVE]), frames)
    assert events == [(0, "enter", 1, "car"), (125, "linger", 1, "car"), (237, "leave", 1, "car")]
    # Last seen at frame 174 (6.96 s), it left once 2.5 s had gone by unseen: at 9.48 s.
    # Without hidden: a leave once the tracker drops it, and an enter when found again.
    plain = _events(ZoneWatch([replace(DRIVE, hidden=0.0)]), frames)
    assert plain == [(0, "enter", 1, "car"), (75 + GONE_AFTER, "leave", 1, "car"), (125, "enter", 9, "car"),
                     (175 + GONE_AFTER, "leave", 9, "car")]


def test_only_what_stood_still_where_it_is_found_of_its_class_within_hidden_is_the_same() -> None:
    lost = [_seen((1, CAR, 2))] * 75 + [NOTHING] * 50
    # Found elsewhere, of another class, or too late: a new stay (the old one left when hidden ran out).
    elsewhere = _events(ZoneWatch([DRIVE]), [*lost, _seen((9, (20.0, 150.0, 100.0, 200.0), 2))])
    assert elsewhere == [(0, "enter", 1, "car"), (125, "enter", 9, "car")]
    person = _events(ZoneWatch([DRIVE]), [*lost, _seen((9, CAR, 0))])
    assert person == [(0, "enter", 1, "car"), (125, "enter", 9, "person")]
    late = _events(ZoneWatch([DRIVE]), lost + [NOTHING] * 30 + [_seen((9, CAR, 2))])
    assert late == [(0, "enter", 1, "car"), (137, "leave", 1, "car"), (155, "enter", 9, "car")]
    # One that moved (a person walking, 4 px a frame) is gone when the tracker drops it, as before.
    walk = [_seen((3, (10.0 + 4 * n, 100.0, 40.0 + 4 * n, 180.0), 0)) for n in range(60)] + [NOTHING] * 40
    assert _events(ZoneWatch([DRIVE]), walk) == [(0, "enter", 3, "person"), (60 + GONE_AFTER, "leave", 3, "person")]
    # A car that stood still only a moment (1 s) too.
    brief = [_seen((1, CAR, 2))] * 25 + [NOTHING] * 40
    assert _events(ZoneWatch([DRIVE]), brief) == [(0, "enter", 1, "car"), (25 + GONE_AFTER, "leave", 1, "car")]
    # A zone no longer watched lets it leave, hidden or not.
    watch = ZoneWatch([DRIVE])
    _events(watch, lost)
    assert [(v.event, v.id) for v in watch.update(NOTHING, 5.0, occupancy(watch.zones, NOTHING), [False])] == [
        ("leave", 1)]


def test_hidden_in_a_config_and_the_trackers_own_buffer() -> None:
    points = [[0, 0], [9, 0], [9, 9]]
    config = build_config({"tracker": "bytetrack", "streams": [{"source": "a.mp4", "zones": {
        "drive": {"points": points, "hidden": "2m"}, "door": {"points": points, "hidden": 0}, "yard": points}}]})
    zones = config.streams[0].zones or {}
    assert [zone.hidden for zone in zones.values()] == [120.0, 0.0, 30.0]  # (30 s unless said)
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.zones\.drive\.hidden': .*must be from 0 s"):
        build_config({"streams": [{"source": "a.mp4", "zones": {"drive": {"points": points, "hidden": "-5s"}}}]})
    # A zone forgets an unseen object when its tracker does: its track_buffer.
    assert track_buffer(tracker_settings("bytetrack")) == GONE_AFTER == 30
    assert track_buffer(None) == 30


class _ParkedDetector:
    """A car parked in the drive (a pixel this way or that from frame to frame), missed by the
    model from frame 75 to 129 (a bus in front), seen again until frame 199, then gone; a person
    walking in at the left, lost mid-picture after frame 40."""

    names: ClassVar[dict[int, str]] = NAMES

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image in images:
            stamp = read_stamp(image)
            seq = stamp[1] if stamp is not None else 0
            boxes, classes = [], []
            if seq < 75 or 130 <= seq < 200:
                boxes.append([200 + seq % 2, 150, 280 + seq % 2, 200])
                classes.append(2)
            if seq <= 40:
                boxes.append([4 * seq, 60, 4 * seq + 30, 140])
                classes.append(0)
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32),
                                  np.array(classes, np.int64), self.names))
        return out

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_a_parked_car_hidden_for_two_seconds_is_one_stay_through_the_real_tracker(tmp_path: Path) -> None:
    """Ultralytics' ByteTrack drops the car's track while it is missed (55 frames, beyond its
    30) and gives it a new id when it is seen again: the JSONL shows both ids, the events one
    stay (its enter, its linger once found again, its leave 2.5 s after it was last seen); the
    person lost mid-picture leaves when the tracker drops it."""
    source = open_source(SourceSpec("drive", "synthetic:?size=320x240&fps=25&frames=300", SourceKind.SYNTHETIC))
    events, jsonl = tmp_path / "events.jsonl", tmp_path / "det.jsonl"
    Pipeline([StreamSetup("drive", source, Overflow.BLOCK, zones=(DRIVE,))], _ParkedDetector,
             tracker=tracker_settings("bytetrack"), sinks=[EventSink(events), JsonlSink(jsonl)]).run()
    ids = sorted({d["id"] for r in read_jsonl(jsonl) for d in r["detections"] if d["name"] == "car"})
    assert len(ids) == 2, f"the tracker kept the car's id through the gap: {ids}"
    visits = [(e["seq"], e["event"], e["name"], e["id"], e.get("dwell")) for e in read_jsonl(events)
              if e["event"] in ("enter", "leave", "linger")]
    car = [v for v in visits if v[2] == "car"]
    assert car == [(0, "enter", "car", ids[0], None), (131, "linger", "car", ids[0], 5.24),
                   (262, "leave", "car", ids[0], 7.96)], visits
    person = [v for v in visits if v[2] == "person"]
    assert [v[:3] for v in person] == [(0, "enter", "person"), (40 + GONE_AFTER + 1, "leave", "person")], visits
    assert person[1][4] == 1.6
    # The car stands still 2 s after it came: from then on (and again at once when found again
    # where it stood) the zone's stationary objects hold it; the person walking, never.
    stationary = {r["seq"]: r["stationary"]["drive"] for r in read_jsonl(jsonl)}
    assert {seq for seq, still in stationary.items() if still} == {*range(50, 75), *range(131, 200)}, stationary
    assert all(still in ({}, {"car": 1}) for still in stationary.values())
    # Each detection standing still, wherever it is, says so: the car 2 s after it came, and at
    # once when found again where it stood under its new id; the person walking, never.
    flagged = {(r["seq"], d["name"]) for r in read_jsonl(jsonl) for d in r["detections"] if d.get("stationary")}
    assert flagged == {(seq, "car") for seq in [*range(50, 75), *range(131, 200)]}, sorted(flagged)


def test_the_objects_standing_still_in_a_zone_are_told_apart() -> None:
    """A zone's ``stationary``: those inside whose box has stayed on its place 2 s (a parked
    car), by class; in a zone watched now only."""
    watch = ZoneWatch([DRIVE])
    walker = [(3, (10.0 + 4 * n, 100.0, 40.0 + 4 * n, 180.0), 0) for n in range(60)]
    stills = []
    for seq, person in enumerate(walker):
        found = _seen((1, CAR, 2), person)
        watch.update(found, seq / 25, occupancy(watch.zones, found))
        stills.append(watch.stationary)
    assert stills[49] == {"drive": {}} and stills[50] == stills[59] == {"drive": {"car": 1}}
    found = _seen((1, CAR, 2))
    watch.update(found, 60 / 25, occupancy(watch.zones, found), [False])
    assert watch.stationary == {}


@pytest.mark.timeout(60)
def test_home_assistants_active_sensor_is_off_for_a_parked_car_alone(tmp_path: Path) -> None:
    """A tracked stream's ``Active`` motion sensor, from its objects' state (``"stationary"``,
    rendered as Home Assistant renders it): on while the person walks by the car, off while
    the car stands alone (parked 2 s), and off again as soon as it is found where it stood after
    the bus."""
    import jinja2

    from streamyolo.sinks.mqtt import StatePublisher, StreamEntities, discovery_messages

    source = open_source(SourceSpec("drive", "synthetic:?size=320x240&fps=25&frames=200", SourceKind.SYNTHETIC))
    states: list[tuple[int, dict[str, Any]]] = []
    seq = [0]

    class Publisher:
        def send_state(self, stream: str, kind: str, name: str, state: dict[str, Any]) -> None:
            if kind == "objects":
                states.append((seq[0], state))

    publisher = StatePublisher(Publisher(), clock=lambda: seq[0] * 2.0)  # (every state sent: 2 s a frame)

    class Told:  # (a sink)
        def open(self) -> None: ...

        def close(self) -> None: ...

        def write(self, result: Result) -> None:
            seq[0] = result.frame.meta.seq
            publisher.update(result)

    Pipeline([StreamSetup("drive", source, Overflow.BLOCK)], _ParkedDetector, tracker=tracker_settings("bytetrack"),
             sinks=[Told()]).run()
    config = next(json.loads(payload) for topic, payload in discovery_messages(
        "home", "homeassistant", [StreamEntities("drive", tracked=True)]) if topic.endswith("/drive_active/config"))
    assert (config["name"], config["device_class"], config["state_topic"]) == ("Active", "motion", "home/drive/objects")
    template = jinja2.Environment().from_string(config["value_template"])

    def at(frame: int) -> tuple[dict[str, Any], str]:  # the state after that frame (sent as it changes)
        state = [state for seq, state in states if seq <= frame][-1]
        return state, template.render(value_json=state)

    assert at(30) == ({"total": 2, "car": 1, "person": 1, "stationary": 0}, "ON")  # the person walking by
    assert at(60) == ({"total": 1, "car": 1, "stationary": 1}, "OFF")  # the car parked, alone
    assert at(100) == ({"total": 0, "stationary": 0}, "OFF")  # (hidden by the bus)
    assert at(150) == ({"total": 1, "car": 1, "stationary": 1}, "OFF")  # found again where it stood
    assert at(190) == ({"total": 1, "car": 1, "stationary": 1}, "OFF")
    untracked = [topic for topic, _ in discovery_messages("home", "homeassistant", [StreamEntities("drive")])]
    assert not any(topic.endswith("/drive_active/config") for topic in untracked)


@pytest.mark.timeout(90)
def test_the_page_status_and_metrics_say_which_objects_stand_still(tmp_path: Path) -> None:
    """The car parked in the drive (found again after the bus) at the run's last frame: the
    page's tile says it stands still, as ``/status.json`` and ``/metrics`` do, and the video's
    picture (drawn on it: ``1 car (1 stationary)``)."""
    from selenium.webdriver.common.by import By

    from streamyolo.sinks.metrics import metrics_text
    from streamyolo.sinks.web import WebViewer
    from tests.test_web import _chromium, _driver

    browser, driver_path = _chromium()
    source = open_source(SourceSpec("drive", "synthetic:?size=320x240&fps=25&frames=180", SourceKind.SYNTHETIC))
    web = WebViewer("127.0.0.1:0")
    pipeline = Pipeline([StreamSetup("drive", source, Overflow.BLOCK, zones=(DRIVE,))], _ParkedDetector,
                        tracker=tracker_settings("bytetrack"), web=web)
    pipeline.start()
    try:
        pipeline.wait(30)
        status = web.status()
        assert status["streams"][0]["zones"] == {"drive": {"car": 1}}
        assert status["streams"][0]["stationary"] == {"drive": {"car": 1}}
        assert status["streams"][0]["standing"] == 1  # (wherever it stands: the picture's objects)
        assert status["streams"][0]["zone_stays"] == {"drive": {"person": {"left": 1, "mean": 1.6, "longest": 1.6}}}
        assert {'streamyolo_zone_stationary_objects{stream="drive",zone="drive",class="car"} 1',
                'streamyolo_stream_stationary_objects{stream="drive"} 1'} <= set(metrics_text(status).splitlines())
        driver = _driver(browser, driver_path)
        try:
            assert pipeline.web_url is not None
            driver.get(pipeline.web_url)
            text = until(lambda: "".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "figure .zones")), 30,
                         "the zone's line under the tile")
            assert text == "drive: 1 car (2 entered, 1 left after 1.6 s on average) · 1 stationary", text
            shown = "".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "figure .detections"))
            assert shown == "1 car (1 stationary)", shown
        finally:
            driver.quit()
    finally:
        pipeline.join()
