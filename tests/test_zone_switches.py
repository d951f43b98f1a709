"""A zone watched or not by hand (``Pipeline.set_watch``; the page's button, Home Assistant's
switch): not watched, it sees no one; against its schedule, until the schedule's next change;
kept across a restart by the switches file."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jinja2
import pytest

from streamyolo.buffering import Overflow
from streamyolo.inference.counting import Zone
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.remote import read_status, status_text
from streamyolo.pipeline.switches import SwitchFile
from streamyolo.schedule import Schedule
from streamyolo.sinks.events import EventSink
from streamyolo.sinks.history import describe
from streamyolo.sources import RawFrame, SyntheticSource
from tests.helpers import read_jsonl, until
from tests.servers import MqttBroker, MqttSubscriber
from tests.test_counting import _WalkerDetector

UPPER = ((100.0, 0.0), (220.0, 0.0), (220.0, 110.0), (100.0, 110.0))  # the walker is in it in frames 0-11
LOWER = ((100.0, 130.0), (220.0, 130.0), (220.0, 200.0), (100.0, 200.0))  # ... and in this one in frames 14-22


class _Held(SyntheticSource):
    """The hall's camera, whose first frame waits for ``go``: a switch or a change of settings
    made after the run's start (and its switches file read) comes before any frame (its worker
    takes the changes before it takes a frame, and none has come)."""

    go = threading.Event()

    def read(self) -> RawFrame | None:
        assert self.go.wait(30)
        return super().read()


class _Zones:
    """A sink keeping each frame's zones as the worker told them."""

    def __init__(self) -> None:
        self.seen: list[dict[str, bool | None]] = []

    def open(self) -> None: ...

    def close(self) -> None: ...

    def write(self, result: Any) -> None:
        self.seen.append({zone.name: zone.watched for zone in result.zones})


def _run(tmp_path: Path, run: int, upper: Schedule | None = None, switch: tuple[str, bool] | None = None,
         reloaded: Schedule | None = None) -> tuple[Pipeline, list[dict[str, Any]], _Zones]:
    """The walker through the hall's two zones, with the switches file (read as the run
    starts); ``switch``: a zone switched by hand then, before the first frame; ``reloaded``:
    the upper zone's schedule then changed to it (a reload), after the switch."""
    source = _Held("hall", "synthetic:?size=320x240&fps=25&frames=30")
    events, zones = EventSink(tmp_path / f"events{run}.jsonl"), _Zones()
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK,
                                     zones=(Zone("upper", UPPER, schedule=upper), Zone("lower", LOWER)))],
                        _WalkerDetector, tracker=tracker_settings("bytetrack"), sinks=[events, zones])
    pipeline.switch_file = SwitchFile(tmp_path / "switches.json")
    pipeline.on_switch, pipeline.on_switched = events.switched, events.switch_changed
    _Held.go.clear()
    pipeline.start()
    if switch is not None:
        pipeline.set_watch("hall", *switch)
    if reloaded is not None:
        pipeline.update_stream("hall", zones=(Zone("upper", UPPER, schedule=reloaded), Zone("lower", LOWER)))
    _Held.go.set()
    pipeline.run()
    return pipeline, read_jsonl(tmp_path / f"events{run}.jsonl"), zones


def _visits(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event"], e["zone"]) for e in events if e["event"] in ("enter", "leave")]


@pytest.mark.timeout(120)
def test_a_zone_switched_off_by_hand_sees_no_one_and_stays_so_after_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Switched off by hand, the upper zone sees the walker pass through it no more (no
    ``enter``, ``leave``; its state says ``watched: false``) while the lower one does; the
    switch is a ``switch`` event and stays in the switches file, so the next run starts with it
    off; a zone with a schedule is its schedule's unless switched against it."""
    caplog.set_level(logging.INFO)
    _, events, _ = _run(tmp_path, 0)
    assert _visits(events) == [("enter", "upper"), ("leave", "upper"), ("enter", "lower"), ("leave", "lower")]
    pipeline, events, zones = _run(tmp_path, 1, switch=("upper", False))
    assert _visits(events) == [("enter", "lower"), ("leave", "lower")]
    assert zones.seen and all(seen == {"upper": False, "lower": None} for seen in zones.seen)
    assert pipeline.watching("hall", "upper") is False and pipeline.watching("hall", "lower") is True
    [switched] = [e for e in events if e["event"] == "switch"]
    assert (switched["switch"], switched["zone"], switched["state"], switched["by"]) == ("watch", "upper", "off",
                                                                                        "python")
    assert json.loads((tmp_path / "switches.json").read_text()) == {"streams": {"hall": {"watch:upper": False}}}
    # The next run, as it was left: off before its first frame.
    _, events, zones = _run(tmp_path, 2)
    assert _visits(events) == [("enter", "lower"), ("leave", "lower")]
    assert all(seen["upper"] is False for seen in zones.seen)
    [switched] = [e for e in events if e["event"] == "switch"]
    assert (switched["switch"], switched["zone"], switched["state"], switched["by"]) == (
        "watch", "upper", "off", "switches file")
    assert describe(switched).endswith("hall: zone upper not watched (switches file)")
    assert f"stream 'hall': zone 'upper' not watched by hand, as it was left ({tmp_path / 'switches.json'})" \
        in caplog.text
    # Its schedule says now: watched (the file's switch was not against it, and holds nothing).
    now = time.localtime()
    window = f"{now.tm_hour:02d}:00-{(now.tm_hour + 2) % 24:02d}:00"
    _, events, zones = _run(tmp_path, 3, upper=Schedule([window]))
    assert _visits(events)[:2] == [("enter", "upper"), ("leave", "upper")]
    assert all(seen["upper"] is True for seen in zones.seen)
    # Watched again by hand: without a schedule, as if never switched.
    pipeline, events, zones = _run(tmp_path, 4, switch=("upper", True))
    assert _visits(events)[:2] == [("enter", "upper"), ("leave", "upper")]
    assert all(seen == {"upper": None, "lower": None} for seen in zones.seen)
    assert json.loads((tmp_path / "switches.json").read_text()) == {"streams": {"hall": {"watch:upper": True}}}
    with pytest.raises(ValueError, match=r"stream 'hall' has no zone 'garden' \(its zones: upper, lower\)"):
        pipeline.set_switch("watch:garden", "hall", False)


@pytest.mark.timeout(120)
def test_a_zone_switched_against_its_schedule_holds_until_its_next_change_across_a_restart(tmp_path: Path) -> None:
    """A zone whose schedule watches it now (until two hours from the hour) switched off by hand:
    the file says until the schedule's next change, and the next run keeps it off; once the
    schedule is another, its own says again."""
    now = time.localtime()
    window = f"{now.tm_hour:02d}:00-{(now.tm_hour + 2) % 24:02d}:00"
    schedule = Schedule([window])
    _, events, zones = _run(tmp_path, 1, upper=schedule, switch=("upper", False))
    change = schedule.at(time.time())[1]
    assert json.loads((tmp_path / "switches.json").read_text()) == {
        "streams": {"hall": {"watch:upper": False, "watch:upper_until": change}}}
    assert _visits(events) == [("enter", "lower"), ("leave", "lower")]
    assert all(seen["upper"] is False for seen in zones.seen)
    pipeline, events, zones = _run(tmp_path, 2, upper=schedule)
    assert _visits(events) == [("enter", "lower"), ("leave", "lower")]
    assert pipeline.zone_switches.until("hall", "upper") == change
    # The schedule changed in between: its own next change is not the one held: watched.
    later = Schedule([f"{now.tm_hour:02d}:00-{(now.tm_hour + 3) % 24:02d}:00"])
    _, events, zones = _run(tmp_path, 3, upper=later)
    assert _visits(events)[:2] == [("enter", "upper"), ("leave", "upper")]
    # Switched off against its schedule, then the schedule changed by a reload as the run goes:
    # the new schedule says (watched), a switch by the schedule; the file holds nothing by hand.
    (tmp_path / "reload").mkdir()
    pipeline, events, zones = _run(tmp_path / "reload", 4, upper=schedule, switch=("upper", False), reloaded=later)
    assert _visits(events)[:2] == [("enter", "upper"), ("leave", "upper")]
    assert pipeline.zone_switches.until("hall", "upper") is None and pipeline.watching("hall", "upper") is True
    assert [(e["zone"], e["state"], e["by"]) for e in events if e["event"] == "switch"] == [
        ("upper", "off", "python"), ("upper", "on", "schedule")]
    left = json.loads((tmp_path / "reload" / "switches.json").read_text())
    assert left == {"streams": {"hall": {"watch:upper": True}}}


@pytest.mark.timeout(120)
def test_home_assistants_zone_switch_watches_a_zone_or_not(broker_folder: Path) -> None:
    """Each zone is a ``<zone> watched`` switch in Home Assistant: ``OFF`` on
    ``<prefix>/<stream>/zone/<zone>/watch/set`` stops the zone watching (its state says so, its
    ``occupied`` is off while it holds someone), ``ON`` watches it again."""
    street = "synthetic:scene?seed=3&size=416x240&fps=25"
    everything = [[0, 0], [416, 0], [416, 240], [0, 240]]
    with MqttBroker(broker_folder) as broker:
        config = {"model": "demo", "tracker": "bytetrack", "mqtt": f"mqtt://127.0.0.1:{broker.port}/yard",
                  "mqtt_discovery": "homeassistant", "display": False, "status_interval": 0,
                  "streams": [{"name": "gate", "source": street, "realtime": True, "zones": {"drive": everything}}]}
        with Pipeline.from_config(config) as pipeline:
            pipeline.start()
            ha = MqttSubscriber(broker.port)
            try:
                def zone() -> dict[str, Any]:
                    said = [payload for topic, payload, _ in ha.messages if topic == "yard/gate/zone/drive"]
                    return json.loads(said[-1]) if said else {}

                until(lambda: zone().get("total"), 30, "someone in the drive")
                ha.client.publish("yard/gate/zone/drive/watch/set", "OFF", qos=1)
                until(lambda: zone().get("watched") is False, 10, "the drive not watched")
                assert pipeline.watching("gate", "drive") is False
                unwatched = zone()
                configs = {topic.split("/")[3]: (topic.split("/")[1], json.loads(payload))
                           for topic, payload, _ in ha.messages if topic.endswith("/config")}
                ha.client.publish("yard/gate/zone/drive/watch/set", "ON", qos=1)
                until(lambda: "watched" not in zone(), 10, "the drive watched again")
                assert pipeline.watching("gate", "drive") is True
            finally:
                ha.close()
            pipeline.stop()
    component, switch = configs["gate_zone_drive_watch"]
    assert component == "switch" and (switch["name"], switch["command_topic"], switch["state_topic"]) == (
        "drive watched", "yard/gate/zone/drive/watch/set", "yard/gate/zone/drive")
    occupied = configs["gate_zone_drive_occupied"][1]
    shown = {name: jinja2.Environment().from_string(config["value_template"]).render(value_json=value)
             for name, config in (("switch", switch), ("occupied", occupied))
             for value in [unwatched]}
    assert shown == {"switch": "OFF", "occupied": "OFF"} and unwatched["total"] > 0
    assert {name: jinja2.Environment().from_string(config["value_template"]).render(
        value_json={"total": 2, "person": 2}) for name, config in (("switch", switch), ("occupied", occupied))} == {
        "switch": "ON", "occupied": "ON"}
    assert "gate_zone_drive_watched" not in configs  # (the switch says it)


@pytest.mark.timeout(180)
def test_a_real_browser_switches_a_zone_off_and_on(tmp_path: Path) -> None:
    """With the page's switches, each zone has a button under its tile: a click, not watched
    (the tile's zone says so, and ``streamyolo status``); another, watched again; a zone with a
    schedule says when it switches next, and a click holds until then. A zone the stream has
    not: 404."""
    from selenium.webdriver.common.by import By

    from tests.test_web import NAMES, _config, _page, _streets

    streams = _streets(fps=10)
    now = time.localtime()
    window = f"{now.tm_hour:02d}:00-{(now.tm_hour + 2) % 24:02d}:00"  # (on now, for an hour or two)
    streams[0]["zones"] = {"whole": [[0, 0], [320, 0], [320, 240], [0, 240]],
                           "half": {"points": [[0, 0], [160, 0], [160, 240], [0, 240]], "schedule": window}}
    config = _config(model="demo", imgsz=320, conf=0.5, streams=streams, tracker="bytetrack")
    with _page(config) as (pipeline, driver):

        def button(zone: str = "whole") -> Any:
            return next((b for b in driver.find_elements(By.CSS_SELECTOR, "button.watch")
                         if b.get_attribute("data-zone") == zone), None)

        until(lambda: button() is not None and button().text == "whole watched", 60, "the zone's button")
        assert not next(f for f in driver.find_elements(By.CSS_SELECTOR, "figure")
                        if f.get_attribute("data-stream") == NAMES[1]).find_elements(By.CSS_SELECTOR, "button.watch")
        button().click()
        until(lambda: button().text == "whole not watched", 10, "the button showing the zone not watched")
        assert pipeline.watching(NAMES[0], "whole") is False
        until(lambda: driver.execute_script(
            "return [...document.querySelectorAll('figure')].find(f => f.dataset.stream === arguments[0])"
            ".querySelector('.zones').textContent", NAMES[0]).split("; ")[0].endswith(" · not watched"), 10,
            "the tile's zone")
        assert all(f.is_displayed() for f in driver.find_elements(By.CSS_SELECTOR, "figure")), \
            "a click on the button is not a click on the picture"
        assert pipeline.web_url is not None  # ... and streamyolo status says so
        assert f"{NAMES[0]}: zone whole not watched" in status_text(read_status(pipeline.web_url)).splitlines()
        button().click()
        until(lambda: button().text == "whole watched", 10, "the button showing the zone watched")
        assert pipeline.watching(NAMES[0], "whole") is True
        # A zone with a schedule says when the schedule switches it next; a click holds until then.
        at = driver.execute_script("return hourOf(arguments[0])", Schedule([window]).at(time.time())[1])

        def half() -> Any:
            return button("half")

        until(lambda: half().text == f"half watched · not watched from {at}", 10, "the scheduled zone's button")
        assert half().get_attribute("title").endswith(f"\nschedule: {window} (a click holds until its next change)")
        half().click()
        until(lambda: half().text == f"half not watched · by hand until {at}", 10, "the zone switched by hand")
        assert pipeline.watching(NAMES[0], "half") is False
        request = urllib.request.Request(f"{pipeline.web_url}streams/{NAMES[0]}/zones/garden/watch",
                                         data=b'{"on": false}', method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 404
        assert refused.value.read().decode().strip() == (f"stream {NAMES[0]!r} has no zone 'garden' "
                                                         "(its zones: whole, half)")


class _Paused(SyntheticSource):
    """The hall's camera, whose 7th frame waits for ``resume`` (the walker in the upper zone)."""

    def __init__(self, name: str, uri: str) -> None:
        super().__init__(name, uri)
        self.resume, self.reads = threading.Event(), 0

    def read(self) -> RawFrame | None:
        self.reads += 1
        if self.reads == 7:
            assert self.resume.wait(30)
        return super().read()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("change", ["conf", "watching", "moved"])
def test_a_reload_that_leaves_the_zones_as_they_were_does_not_make_anyone_enter_again(
        tmp_path: Path, change: str) -> None:
    """The walker in the upper zone (6 frames in) as the stream's settings change as it runs:
    its ``conf`` (and a mask elsewhere) alone, or how the upper zone is watched (its ``linger``)
    and the lower zone moved, the upper zone goes on (one enter, one leave each: no
    notification again for the person already in the drive); the upper zone moved, it starts
    afresh (the walker enters it again), as the README says."""
    from streamyolo.frames import DetectionFilter, Mask

    source = _Paused("hall", "synthetic:?size=320x240&fps=25&frames=30")
    zones = (Zone("upper", UPPER), Zone("lower", LOWER))
    seen = _Zones()
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=zones)], _WalkerDetector,
                        tracker=tracker_settings("bytetrack"), sinks=[EventSink(tmp_path / "events.jsonl"), seen])
    pipeline.start()
    try:
        until(lambda: len(seen.seen) == 6, 30, "the walker's first 6 frames")
        if change == "conf":
            pipeline.update_stream("hall", keep=DetectionFilter(conf=0.5),
                                   masks=(Mask("sign", ((300.0, 0.0), (320.0, 0.0), (320.0, 20.0))),))
        elif change == "watching":
            pipeline.update_stream("hall", zones=(Zone("upper", UPPER, linger=60.0),
                                                  Zone("lower", tuple((x, y + 1) for x, y in LOWER))))
        else:
            pipeline.update_stream("hall", zones=(Zone("upper", tuple((x, y + 1) for x, y in UPPER)), zones[1]))
    finally:
        source.resume.set()
        pipeline.join(30)
    visits = _visits(read_jsonl(tmp_path / "events.jsonl"))
    if change in ("conf", "watching"):
        assert visits == [("enter", "upper"), ("leave", "upper"), ("enter", "lower"), ("leave", "lower")], visits
    else:
        assert visits[:2] == [("enter", "upper"), ("enter", "upper")], visits
