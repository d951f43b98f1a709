"""Schedules: a stream's detection and recording on at some hours of some days only."""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections
from streamyolo.inference.counting import Zone, ZoneWatch, occupancy
from streamyolo.pipeline import Pipeline
from streamyolo.schedule import Schedule, Scheduler, parse_window
from tests.helpers import decode, read_jsonl, until


@pytest.fixture
def berlin() -> Iterator[None]:
    """The box's local time is Berlin's (summer time from 2026-03-29 02:00, to 2026-10-25 03:00)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _at(text: str) -> float:
    """Seconds since the epoch of local ``YYYY-mm-dd HH:MM:SS``."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp()


def _said(schedule: Schedule, moment: str) -> tuple[bool, str]:
    on, until = schedule.at(_at(moment))
    return on, time.strftime("%a %Y-%m-%d %H:%M:%S", time.localtime(until))


def test_a_schedule_says_whether_it_is_on_and_until_when_on_the_local_clock(berlin: None) -> None:
    nights = Schedule(["22:00-06:00"])
    assert _said(nights, "2026-12-07 21:59:59") == (False, "Mon 2026-12-07 22:00:00")
    assert _said(nights, "2026-12-07 22:00:00") == (True, "Tue 2026-12-08 06:00:00")
    assert _said(nights, "2026-12-08 05:59:59") == (True, "Tue 2026-12-08 06:00:00")
    assert _said(nights, "2026-12-08 06:00:00") == (False, "Tue 2026-12-08 22:00:00")
    # Office hours on weekdays, and the whole weekend (from Saturday's midnight to Monday's).
    shop = Schedule(["mon-fri 07:30-18:00", "sat,sun"])
    assert _said(shop, "2026-12-04 12:00:00") == (True, "Fri 2026-12-04 18:00:00")  # a Friday
    assert _said(shop, "2026-12-04 18:00:00") == (False, "Sat 2026-12-05 00:00:00")
    assert _said(shop, "2026-12-06 23:00:00") == (True, "Mon 2026-12-07 00:00:00")
    assert _said(shop, "2026-12-07 00:00:00") == (False, "Mon 2026-12-07 07:30:00")
    # A window past midnight belongs to the day it starts: Friday night into Saturday.
    party = Schedule(["fri 22:00-04:00"])
    assert _said(party, "2026-12-05 03:00:00") == (True, "Sat 2026-12-05 04:00:00")
    assert _said(party, "2026-12-06 03:00:00") == (False, "Fri 2026-12-11 22:00:00")
    # Windows that touch or overlap are one stretch; 24:00 is midnight.
    joined = Schedule(["08:00-12:00", "12:00-24:00", "tue 10:00-14:00"])
    assert _said(joined, "2026-12-08 09:00:00") == (True, "Wed 2026-12-09 00:00:00")
    # Summer time: the night of 2026-03-29 lasts an hour less (02:00 is 03:00), and the clock says so.
    assert _said(nights, "2026-03-28 23:00:00") == (True, "Sun 2026-03-29 06:00:00")
    assert nights.at(_at("2026-03-28 22:00:00"))[1] - _at("2026-03-28 22:00:00") == 7 * 3600
    assert Schedule(["sun 01:00-05:00"]).at(_at("2026-03-29 01:30:00"))[1] == _at("2026-03-29 05:00:00")


def test_a_window_is_days_and_hours_and_a_wrong_one_is_said() -> None:
    assert parse_window("Mon-Fri 7:30-18:00:30").days == frozenset(range(5))
    assert parse_window("saturday, sunday").days == frozenset({5, 6})
    assert parse_window("sun-tue").days == frozenset({6, 0, 1})
    assert (parse_window("12:00-24:00").start, parse_window("12:00-24:00").end) == (43200, 86400)
    for bad, said in [("8:00-8:00", "starts and ends at the same time"), ("8:60-9:00", "is not a time of day"),
                      ("moon 8:00-9:00", "'moon' is not a day"), ("8:00", "is not a window"),
                      ("mon-fri-sat", "is not a day"), ("mo 8:00-9:00", "'mo' is not a day")]:
        with pytest.raises(ValueError, match=said):
            parse_window(bad)
    with pytest.raises(ConfigError, match=r"config key 'streams.0.schedule.detect': '25:00' is not a time of day"):
        build_config({"streams": [{"source": "a.mp4", "schedule": {"detect": "mon 25:00-26:00"}}]})
    with pytest.raises(ConfigError, match=r"config key 'streams.1.schedule.record': it says when the stream's "
                                          r"recording is on, and the stream is not recorded \(record: false\)"):
        build_config({"streams": ["a.mp4", {"source": "b.mp4", "record": False, "schedule": {"record": "sat"}}],
                      "record": "rec"})
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.schedule': says what it switches when: "
                                          r"\{detect: '22:00-06:00'\}"):
        build_config({"streams": [{"source": "a.mp4", "schedule": "22:00-06:00"}]})
    with pytest.raises(ConfigError, match=r"unknown config key 'streams\.0\.schedule\.lights'"):
        build_config({"streams": [{"source": "a.mp4", "schedule": {"lights": "sat"}}]})
    config = build_config({"streams": ["a.mp4", {"source": "b.mp4", "schedule": {"detect": ["sat", "sun"]}}],
                           "stream_defaults": {"schedule": {"detect": "22:00-06:00"}}})
    assert [s.schedule.schedules() for s in config.streams if s.schedule is not None] == [
        {"detect": Schedule(["22:00-06:00"])}, {"detect": Schedule(["sat", "sun"])}]


def test_the_scheduler_switches_at_each_change_and_a_switch_by_hand_holds_until_the_next(berlin: None) -> None:
    now = [_at("2026-12-07 21:00:00")]
    switched: list[tuple[str, str, bool]] = []
    running = {"gate", "porch"}

    def switch(kind: str, stream: str, on: bool) -> None:
        if stream not in running:
            raise ValueError(f"no stream {stream!r} is running")
        switched.append((kind, stream, on))

    scheduler = Scheduler(switch, clock=lambda: now[0])
    nights = Schedule(["22:00-06:00"])
    scheduler.configure({"gate": {"detect": nights, "record": Schedule(["mon-fri 07:30-18:00"])}, "porch": {}})
    scheduler._look()  # (the run starts: each switch as its schedule says now)
    assert switched == [("detect", "gate", False), ("record", "gate", False)]
    assert scheduler.state("gate") == {
        "detect": {"on": False, "until": _at("2026-12-07 22:00:00"), "windows": ["22:00-06:00"]},
        "record": {"on": False, "until": _at("2026-12-08 07:30:00"), "windows": ["mon-fri 07:30-18:00"]}}
    assert scheduler.state("porch") == {}
    switched.clear()
    now[0] = _at("2026-12-07 21:30:00")
    assert scheduler._look() == _at("2026-12-07 21:31:00")  # nothing changes: looked at again within a minute
    assert switched == []  # (someone switched gate's detection on by hand meanwhile: it stays on)
    now[0] = _at("2026-12-07 22:00:00")
    scheduler._look()
    assert switched == [("detect", "gate", True)]
    now[0] = _at("2026-12-08 06:00:30")
    scheduler._look()
    now[0] = _at("2026-12-08 07:30:00")
    scheduler._look()
    assert switched[1:] == [("detect", "gate", False), ("record", "gate", True)]
    # A reload: gate's detection schedule changed (applied at once), its recording's gone (left as
    # it is), porch's new (porch is not running yet: switched when it is added).
    switched.clear()
    running.discard("porch")
    scheduler.configure({"gate": {"detect": Schedule(["07:00-09:00"])}, "porch": {"detect": nights}})
    scheduler._look()
    assert switched == [("detect", "gate", True)]
    running.add("porch")
    scheduler.apply("porch")
    assert switched == [("detect", "gate", True), ("detect", "porch", False)]
    scheduler.apply("porch")  # (once)
    scheduler._look()
    assert len(switched) == 2


@pytest.mark.timeout(120)
def test_a_run_detects_and_records_only_in_its_schedules_windows(tmp_path: Path) -> None:
    """A real run, from a config: the gate given a schedule as it runs (a reload) for its
    detection and recording, a window of 3 s beginning 3 s later (on the box's clock): switched
    off at once, on in the window, off after it; its JSONL says ``detect: false`` outside, its
    recording is two files (before the schedule, and the window's frames); the status says what
    the schedule says and until when; the other stream is untouched; the reload restarts nothing."""
    jsonl, rec = tmp_path / "det.jsonl", tmp_path / "rec"
    street = "synthetic:scene?seed=3&size=416x240&fps=25"
    config: dict[str, Any] = {
        "model": "demo", "display": False, "status_interval": 0, "jsonl": str(jsonl), "record": str(rec),
        "streams": [{"name": "gate", "source": street, "realtime": True},
                    {"name": "porch", "source": street, "realtime": True}]}
    pipeline = Pipeline.from_config(config)
    pipeline.start()
    try:
        until(lambda: jsonl.exists() and len(read_jsonl(jsonl)) > 40, 30, "frames before the schedule")
        begin = int(time.time()) + 3
        window = (time.strftime("%H:%M:%S", time.localtime(begin)) + "-"
                  + time.strftime("%H:%M:%S", time.localtime(begin + 3)))
        config["streams"][0]["schedule"] = {"detect": window, "record": window}
        report = pipeline.reload(config)
        assert not report.changed, report  # (nothing restarted, nothing updated)
        gate = next(r for r in pipeline.reports() if r.name == "gate")
        assert gate.schedule == {kind: {"on": False, "until": begin, "windows": [window]}
                                 for kind in ("detect", "record")}
        assert (gate.detect, gate.record) == (False, False)
        until(lambda: time.time() > begin + 1, 10, "the window")
        gate = next(r for r in pipeline.reports() if r.name == "gate")
        assert (gate.detect, gate.record, gate.schedule["detect"]) == (
            True, True, {"on": True, "until": begin + 3, "windows": [window]})
        until(lambda: time.time() > begin + 5, 10, "the end of the window")
        assert next(r for r in pipeline.reports() if r.name == "gate").detect is False
    finally:
        pipeline.stop()
        summary = pipeline.join()
    lines: list[dict[str, Any]] = [line for line in read_jsonl(jsonl) if line["stream"] == "gate"]
    runs: list[tuple[bool, float, float, int]] = []  # (detected, first time, last time, frames) in a row
    for line in lines:
        detected = line.get("detect") is not False
        if runs and runs[-1][0] == detected:
            runs[-1] = (detected, runs[-1][1], line["time"], runs[-1][3] + 1)
        else:
            runs.append((detected, line["time"], line["time"], 1))
    assert [run[0] for run in runs] == [True, False, True, False], runs
    _, began, ended, frames = runs[2]
    assert abs(began - begin) < 0.5 and abs(ended - (begin + 3)) < 0.5 and frames >= 10, runs  # (a busy box drops some)
    assert all(line.get("detect") is not False for line in read_jsonl(jsonl) if line["stream"] == "porch")
    _, second = summary.recordings["gate"]
    assert abs(len(decode(Path(second))[0]) - frames) <= 30, (second, frames)  # (from a key frame on)
    assert len(summary.recordings["porch"]) == 1


def test_check_says_each_streams_schedules_and_what_they_say_now(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], berlin: None) -> None:
    from streamyolo import cli

    config = tmp_path / "cams.yaml"
    now = time.time()
    window = time.strftime("%H:%M-", time.localtime(now + 7200)) + time.strftime("%H:%M", time.localtime(now + 10800))
    config.write_text(yaml.safe_dump({"record": str(tmp_path / "rec"), "tracker": "bytetrack", "streams": [
        {"name": "yard", "source": "synthetic:scene", "schedule": {"detect": window, "record": ["sat,sun", window]},
         "zones": {"lawn": {"points": [[0, 0], [99, 0], [99, 99]], "schedule": ["22:00-06:00", "sat,sun"]},
                   "gate": [[0, 0], [9, 0], [9, 9]]}},
        {"name": "road", "source": "synthetic:scene?seed=3"}]}))
    assert cli.main(["check", str(config)]) == 0
    said = capsys.readouterr().out
    plan = {line.split()[0]: line for line in said.splitlines() if line.startswith("  ")}
    at = time.strftime("%a %H:%M", time.localtime(now + 7200))
    assert f"detection {window} (off now, on at {at})" in plan["yard"], plan
    weekend = time.localtime(now).tm_wday >= 5
    assert ("recording sat,sun, " + window + (" (on now, " if weekend else " (off now, ")) in plan["yard"], plan
    assert "detection" not in plan["road"] and "recording" not in plan["road"], plan
    assert "zones gate, lawn (watched 22:00-06:00, sat,sun);" in plan["yard"], plan
    clock = re.search(r"\n  schedules by this box's clock: (\w{3} \d\d:\d\d \w+) now\n", said)
    assert clock is not None and clock[1].endswith(time.strftime(" %Z")), said  # (Berlin's: CET or CEST)
    os.environ["TZ"] = "UTC"
    time.tzset()
    assert cli.main(["check", str(config)]) == 0
    assert " now (UTC: set timezone, or TZ, for local hours)\n" in capsys.readouterr().out


def test_the_runs_timezone_is_the_clock_its_schedules_names_and_events_follow(
        tmp_path: Path, berlin: None) -> None:
    """``timezone: Asia/Kathmandu`` (5:45 ahead of UTC) on a box whose clock is UTC (a
    container's): ``check`` works its schedules out in Kathmandu's hours, a real run names
    its recording by Kathmandu's time, ``streamyolo events`` of its config shows Kathmandu's;
    a zone the box does not know is refused, naming the key."""
    import subprocess
    from zoneinfo import ZoneInfo

    from tests.helpers import PYTHON, ROOT, env_for_subprocess

    def streamyolo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "streamyolo", *args], capture_output=True, encoding="utf-8",
                              timeout=120, env={**env_for_subprocess(), "TZ": "UTC"}, cwd=ROOT, check=False)

    zone = ZoneInfo("Asia/Kathmandu")
    now = datetime.datetime.now(zone)
    soon, later = now + datetime.timedelta(hours=2), now + datetime.timedelta(hours=3)
    window = f"{soon:%H:%M}-{later:%H:%M}"
    config = tmp_path / "cams.yaml"
    config.write_text(yaml.safe_dump({
        "timezone": "Asia/Kathmandu", "record": str(tmp_path / "rec"), "record_segment": 60,
        "events": str(tmp_path / "events.jsonl"), "display": False, "status_interval": 0,
        "streams": [{"name": "yard", "source": "synthetic:?size=160x120&fps=10&frames=20",
                     "schedule": {"detect": window}}]}))
    done = streamyolo("check", str(config))
    assert done.returncode == 0, done.stderr
    assert f"detection {window} (off now, on at {soon:%a %H:%M})" in done.stdout, done.stdout
    assert re.search(r"\n  schedules by time zone Asia/Kathmandu: \w{3} \d\d:\d\d \+0545 now\n", done.stdout), \
        done.stdout
    started = time.time()
    done = streamyolo("run", str(config))
    assert done.returncode == 0, done.stderr
    [recording] = (tmp_path / "rec").iterdir()
    named = datetime.datetime.strptime(recording.name, "yard-%Y%m%d-%H%M%S.mp4").replace(tzinfo=zone)
    assert abs(named.timestamp() - started) < 60, (recording.name, started)  # (UTC's name would be 5:45 off)
    first = read_jsonl(tmp_path / "events.jsonl")[0]
    done = streamyolo("events", str(config), "--text")
    assert done.returncode == 0, done.stderr
    shown = datetime.datetime.fromtimestamp(first["time"], zone)
    assert done.stdout.startswith(f"{shown:%Y-%m-%d %H:%M:%S}  yard: "), done.stdout
    done = streamyolo("check", str(config), "--timezone", "Europe/Atlantis")
    assert done.returncode == 2
    assert "config key 'timezone': 'Europe/Atlantis' is not a time zone this box knows" in done.stderr, done.stderr
    with pytest.raises(ConfigError, match=r"config key 'timezone': '\.\./\.\./etc/passwd' is not a time zone"):
        build_config({"streams": ["a"], "timezone": "../../etc/passwd"})


def test_a_zone_outside_its_schedule_sees_no_one_and_those_inside_leave_when_it_stops() -> None:
    square = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))
    yard = Zone("yard", square, schedule=Schedule(["22:00-06:00"]))
    door = Zone("door", square)  # (always watched)
    watch = ZoneWatch([yard, door])
    person = Detections(np.array([[45, 45, 55, 55]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64),
                        {0: "person"}, np.array([7]))
    said = []
    for moment, armed in enumerate([False, True, True, False, False, True]):
        visits = watch.update(person, float(moment), occupancy([yard, door], person), [armed, True])
        said.append([(v.zone, v.event, v.dwell) for v in visits])
    assert said == [[("door", "enter", None)], [("yard", "enter", None)], [], [("yard", "leave", 1.0)], [],
                    [("yard", "enter", None)]]


@pytest.mark.timeout(60)
def test_a_run_makes_events_only_in_the_zones_watched_now(tmp_path: Path) -> None:
    """The walker goes through two zones of the same place: one watched now (every day, all
    day), one only from two hours from now: only the first's events come; both count what they
    hold. Home Assistant's ``<zone> occupied`` is on only for the zone watched, and its
    ``<zone> watched`` says which is."""
    import jinja2

    from streamyolo.buffering import Overflow
    from streamyolo.inference.tracking import tracker_settings
    from streamyolo.pipeline import StreamSetup
    from streamyolo.sinks.events import EventSink
    from streamyolo.sinks.mqtt import StatePublisher, StreamEntities, discovery_messages
    from streamyolo.sources import SourceKind, SourceSpec, open_source
    from tests.test_counting import _WalkerDetector

    class Results:  # (a sink)
        def __init__(self) -> None:
            self.results: list[Any] = []

        def open(self) -> None: ...

        def close(self) -> None: ...

        def write(self, result: Any) -> None:
            self.results.append(result)

    later = time.localtime(time.time() + 7200)
    lobby = ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0))
    zones = (Zone("now", lobby, schedule=Schedule(["mon-sun"])),
             Zone("later", lobby, schedule=Schedule([f"{later.tm_hour:02d}:00-{later.tm_hour:02d}:30"])))
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    path = tmp_path / "events.jsonl"
    seen = Results()
    summary = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=zones)], _WalkerDetector,
                       tracker=tracker_settings("bytetrack"), sinks=[EventSink(path), seen]).run()
    assert [(e["event"], e["zone"], e["seq"]) for e in read_jsonl(path) if e["event"] != "state"] == [
        ("enter", "now", 11), ("leave", "now", 23)]
    assert summary.streams["hall"].zone_peaks == {"now": {"person": 1}, "later": {"person": 1}}
    assert len(seen.results) == 30 and all([(z.name, z.watched) for z in r.zones] == [("now", True), ("later", False)]
                                           for r in seen.results)
    # What Home Assistant makes of the zones' states while the walker is in both (frame 15).
    sent: dict[str, dict[str, Any]] = {}

    class Publisher:
        def send_state(self, stream: str, kind: str, name: str, state: dict[str, Any]) -> None:
            sent[f"site/{stream}/{kind}/{name}"] = state

    StatePublisher(Publisher()).update(next(r for r in seen.results if r.frame.meta.seq == 15))  # type: ignore[arg-type]
    assert sent["site/hall/zone/now"] == {"total": 1, "person": 1, "watched": True, "stationary": 0}
    assert sent["site/hall/zone/later"] == {"total": 1, "person": 1, "watched": False, "stationary": 0}
    configs = {topic.split("/")[-2]: json.loads(config) for topic, config in discovery_messages(
        "site", "homeassistant", [StreamEntities("hall", ("now", "later"), watched=("now", "later"), tracked=True)])}
    shown = {name: jinja2.Environment().from_string(config["value_template"]).render(
        value_json=sent[config["state_topic"]]) for name, config in configs.items() if "_zone_" in name}
    assert shown == {"hall_zone_now": "1", "hall_zone_now_occupied": "ON", "hall_zone_now_watched": "ON",
                     "hall_zone_now_active": "ON", "hall_zone_later": "1", "hall_zone_later_occupied": "OFF",
                     "hall_zone_later_watched": "OFF", "hall_zone_later_active": "OFF"}
    with pytest.raises(ConfigError, match=r"config keys 'streams\.0\.zones' and 'tracker': a zone's schedule"):
        build_config({"streams": [{"source": "a.mp4", "zones": {"yard": {"points": [[0, 0], [9, 0], [9, 9]],
                                                                         "schedule": "22:00-06:00"}}}]})
