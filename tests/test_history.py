"""Events of the past (``streamyolo.sinks.history``): searches of the events file find exactly
what reading it all finds, read little of a big file, and reach every run's events from the
web page (``/events.json?…``) and from ``streamyolo events``."""

from __future__ import annotations

import datetime
import gzip
import json
import logging
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamyolo import cli
from streamyolo.buffering import Overflow
from streamyolo.inference.counting import CountingLine, Zone
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks import EventSink, history
from streamyolo.sinks.history import SLACK, EventQuery, event_files, find_events, read_events
from streamyolo.sinks.web import WebViewer
from streamyolo.sources import SourceKind, SourceSpec, open_source
from tests.helpers import PYTHON, ROOT, env_for_subprocess, read_jsonl
from tests.test_counting import _WalkerDetector

T0 = 1_800_000_000.0
STREAMS = ("cam", "cam-2", "café", "door")
KINDS = ("line", "enter", "leave", "state")


def _write(path: Path, count: int, seed: int, lag: float = 30.0) -> list[dict[str, Any]]:
    """``count`` events a second or so apart, each written up to ``lag`` seconds out of time
    order (a stream's processing behind its camera), as the events sink writes them; then a
    line that is not an event and a last line cut short. Returns the events, in file order."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        kind = rng.choice(KINDS)
        event: dict[str, Any] = {"time": round(T0 + i - rng.uniform(0, lag), 3), "stream": rng.choice(STREAMS),
                                 "event": kind}
        if kind != "state":
            cls = rng.choice((0, 2))
            event.update(seq=i, cls=cls, name=("person", "car")[cls // 2])
        events.append(event)
    with path.open("w", encoding="utf-8") as file:
        for n, event in enumerate(events):
            file.write(json.dumps(event, separators=(",", ":")) + "\n")
            if n == count // 2:
                file.write("not an event\n")
        file.write('{"time": 18000')
    return events


def _newest(events: list[dict[str, Any]], query: EventQuery) -> list[dict[str, Any]]:
    indexed = [(e["time"], n, e) for n, e in enumerate(events) if query.matches(e)]  # ties: the later line first
    return [e for _, _, e in sorted(indexed, key=lambda item: item[:2], reverse=True)]


def test_a_search_finds_exactly_what_reading_the_whole_file_finds(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = _write(path, 20_000, seed=1)
    rng = random.Random(2)
    for _ in range(60):
        since = T0 + rng.uniform(-100, 20_100) if rng.random() < 0.8 else None
        until = (since or T0) + rng.uniform(0, 3000) if rng.random() < 0.8 else None
        query = EventQuery(since, until,
                           frozenset(rng.sample(STREAMS, rng.randint(1, 2))) if rng.random() < 0.6 else None,
                           frozenset(rng.sample(KINDS, 2)) if rng.random() < 0.5 else None,
                           frozenset({rng.choice(("person", "car", "2"))}) if rng.random() < 0.5 else None)
        limit = rng.choice((1, 10, 200, 5000))
        want = _newest(events, query)
        assert find_events(path, query, limit) == (want[:limit], len(want) > limit), query
        assert list(read_events(path, query)) == [e for e in events if query.matches(e)], query


def test_the_files_logrotate_made_are_searched_too_compressed_or_not(tmp_path: Path) -> None:
    """A weekly logrotate (``compress``, ``delaycompress``; and with ``dateext``): the events
    file's earlier weeks in ``events.jsonl.1``, ``events.jsonl.2.gz`` and
    ``events.jsonl-20270110.gz``; a search finds what reading them all in order finds, and
    other files beside them are not read."""
    whole = tmp_path / "whole.jsonl"
    events = _write(whole, 8000, seed=4)
    lines = whole.read_text().splitlines(keepends=True)[:-1]  # (not the line cut short: the rotated files are whole)
    parts = [lines[:2000], lines[2000:4000], lines[4000:6000], lines[6000:]]
    names = ["events.jsonl-20270110.gz", "events.jsonl.2.gz", "events.jsonl.1", "events.jsonl"]
    for n, (name, part) in enumerate(zip(names, parts, strict=True)):
        path = tmp_path / name
        data = "".join(part).encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        last = max(json.loads(line)["time"] for line in part if line.startswith("{"))
        os.utime(path, (last + n, last + n))  # each written last when its last event came
    (tmp_path / "events.jsonl.bak").write_text(json.dumps({"time": T0 + 5000, "stream": "cam", "event": "line"}) + "\n")
    (tmp_path / "events.jsonl.3").write_text("")  # logrotate's notifempty aside: an empty one is passed over
    path = tmp_path / "events.jsonl"
    # by their last write (the empty one's today, before the others' 2027)
    assert [p.name for p in event_files(path)] == [*names[::-1], "events.jsonl.3"]
    rng = random.Random(5)
    for _ in range(40):
        since = T0 + rng.uniform(-100, 8100) if rng.random() < 0.8 else None
        until = (since or T0) + rng.uniform(0, 3000) if rng.random() < 0.8 else None
        query = EventQuery(since, until, frozenset({rng.choice(STREAMS)}) if rng.random() < 0.5 else None)
        limit = rng.choice((1, 10, 200, 5000))
        want = _newest(events, query)
        assert find_events(path, query, limit) == (want[:limit], len(want) > limit), query
        assert list(read_events(path, query)) == [e for e in events if query.matches(e)], query
    path.unlink()  # rotated, not yet written again: the earlier files still answer
    assert find_events(path, EventQuery(), 1)[0] == _newest(events[:6000], EventQuery())[:1]


def test_a_stream_whose_events_come_late_by_less_than_the_slack_is_found(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    late = [{"time": T0 + i - (SLACK - 60 if i % 50 == 0 else 0), "stream": "slow" if i % 50 == 0 else "cam",
             "event": "line"} for i in range(5000)]
    path.write_text("".join(json.dumps(e) + "\n" for e in late))
    query = EventQuery(T0 + 1000, T0 + 2000, frozenset({"slow"}))
    want = [e for e in late if query.matches(e)]
    assert len(want) == 20 and find_events(path, query, 100) == (want[::-1], False)
    assert list(read_events(path, query)) == want


def test_a_search_of_a_minute_reads_a_few_lines_of_a_big_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    _write(path, 200_000, seed=3, lag=5.0)
    parsed = 0
    loads = json.loads

    def counting(line: str | bytes) -> Any:
        nonlocal parsed
        parsed += 1
        return loads(line)

    monkeypatch.setattr(history.json, "loads", counting)
    found, more = find_events(path, EventQuery(T0 + 150_000, T0 + 150_060), 500)
    assert 50 <= len(found) <= 70 and not more
    # bisection (about 22 halvings of 15 MB) and the minute with SLACK on either side
    assert parsed < 2 * SLACK + 60 + 200, parsed
    parsed = 0
    newest, more = find_events(path, EventQuery(), 10)
    assert len(newest) == 10 and more and parsed < 20 + SLACK, parsed


def test_an_empty_file_has_no_events_and_a_missing_one_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    assert find_events(tmp_path / "empty.jsonl", EventQuery(T0, T0 + 10), 10) == ([], False)
    assert list(read_events(tmp_path / "empty.jsonl", EventQuery(T0))) == []
    with pytest.raises(FileNotFoundError):
        find_events(tmp_path / "missing.jsonl", EventQuery(), 10)


def _run(events_file: Path) -> None:
    """A tracked stream whose walker enters the lobby, crosses the door and leaves: its events
    appended to ``events_file``; the page searched while it runs."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    door = CountingLine("door", (0.0, 120.0), (320.0, 120.0))
    lobby = Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0)))
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,), zones=(lobby,))],
                        _WalkerDetector, tracker=tracker_settings("bytetrack"), sinks=[EventSink(events_file)])
    pipeline.start()
    pipeline.join()


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.timeout(120)
def test_every_runs_events_are_searched_from_the_page_and_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    _run(path)
    _run(path)  # a second run appends to the file
    written = read_jsonl(path)
    lines = [e for e in written if e["event"] == "line"]
    assert len(lines) == 2 and len(written) == 10
    recent = [{"time": lines[1]["time"], "stream": "hall", "event": "line", "name": "person"}]
    web = WebViewer("127.0.0.1:0", events=lambda: recent, events_file=path)
    web.open()
    try:
        assert _get(f"{web.url}events.json") == (200, {"events": recent})  # no search: the run's recent ones
        assert _get(f"{web.url}events.json?event=line&class=person") == (200, {"events": lines[::-1], "more": False})
        assert _get(f"{web.url}events.json?stream=hall&limit=3") == (200, {"events": written[::-1][:3], "more": True})
        since, until = written[5]["time"], written[-1]["time"]  # the second run, but its end
        assert _get(f"{web.url}events.json?stream=hall,else&from={since}&to={until}") == (
            200, {"events": written[5:9][::-1], "more": False})
        for query, error in (("event=crossing", "event: no events are 'crossing'"),
                             ("from=yesterday", "from: 'yesterday' is not seconds since the epoch"),
                             ("limit=100000", "limit: '100000' is not a number from 1 to 5000")):
            kinds = "clip, crowd, enter, leave, line, linger, output, overload, speeding, state, switch"
            assert _get(f"{web.url}events.json?{query}") == (400, f"events search: {error} (they are {kinds})\n"
                                                             if "crossing" in query else f"events search: {error}\n")
    finally:
        web.close()
    # Without an events file, a search looks through the recent ones.
    web = WebViewer("127.0.0.1:0", events=lambda: written[::-1])
    web.open()
    try:
        assert _get(f"{web.url}events.json?event=enter") == (200, {"events": [written[6], written[1]], "more": False})
    finally:
        web.close()

    config = tmp_path / "cameras.yaml"
    config.write_text(f"streams: [synthetic:]\nevents: {path}\n")
    caplog.set_level(logging.INFO)

    def events(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        return cli.main(["events", *args]), capsys.readouterr().out

    assert events(str(config), "--event", "line") == (0, "".join(json.dumps(e, separators=(",", ":")) + "\n"
                                                               for e in lines))
    code, table = events(str(path), "--stream", "hall", "--count")
    assert code == 0 and table.splitlines() == [  # (how long it stayed in the lobby: 0.44 s)
        "stream  event  where      class   count  dwell median  dwell mean",
        "hall    enter  lobby      person      2",
        "hall    leave  lobby      person      2           0.4         0.4",
        "hall    line   door in    person      2",
        "hall    state  ended                  2",
        "hall    state  streaming              2",
        "total                                10"]
    assert events(str(path), "--from", str(since), "--to", str(until), "--class", "0")[1].count("\n") == 3
    assert events(str(path), "--newest", "3", "--stream", "hall") == (0, "".join(  # the newest 3, in time order
        json.dumps(e, separators=(",", ":")) + "\n" for e in written[-3:]))
    # As lines a person reads.
    code, text = events(str(path), "--text", "--newest", "5")
    stamps = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["time"])) for e in written[5:]]
    assert code == 0 and text.splitlines() == [
        f"{stamps[0]}  hall: streaming", f"{stamps[1]}  hall: person #1 entered lobby",
        f"{stamps[2]}  hall: person #1 crossed door (in)",
        f"{stamps[3]}  hall: person #1 left lobby after {written[8]['dwell']:.1f} s", f"{stamps[4]}  hall: ended"]
    caplog.clear()
    assert events(str(path), "--stream", "door") == (1, "")
    assert f"no events in {path} match: no event of stream 'door' then\n" in caplog.text
    # A name misspelt (in none of the events then): the one meant, of those that are.
    for given, said in (("--stream=hal", "stream 'hal' then (did you mean 'hall'?)"),
                        ("--class=persn", "class 'persn' then (did you mean 'person'?)"),
                        ("--where=loby", "zone or line 'loby' then (did you mean 'lobby'?)")):
        caplog.clear()
        assert events(str(path), given) == (1, "")
        assert caplog.text.rstrip().endswith(f"no events in {path} match: no event of {said}"), caplog.text
    caplog.clear()
    assert events(str(path), "--stream", "hall", "--event", "linger") == (1, "")  # (a name there: no guess)
    assert caplog.text.rstrip().endswith(f"no events in {path} match"), caplog.text


def test_every_kind_of_event_reads_as_the_page_lists_it() -> None:
    moment = time.mktime((2026, 12, 5, 9, 10, 3, 0, 0, -1))
    who = {"time": moment + 0.5, "stream": "yard", "id": 7, "cls": 2, "name": "car"}
    assert [history.describe(event).partition("  ")[2] for event in (
        {**who, "event": "linger", "zone": "drive", "dwell": 30.04},
        {**who, "event": "speeding", "zone": "road", "speed": 61.6, "dwell": 2.0},
        {**who, "event": "clip", "state": "started"},
        {**who, "event": "clip", "state": "ended", "clip": "yard-20261205-091003.mp4", "seconds": 12.34},
        {**who, "event": "clip", "state": "failed", "clip": "yard-20261205-091003.mp4", "error": "disk full"},
        {"time": moment, "stream": "yard", "event": "state", "state": "reconnecting", "error": "connection refused"},
        {"time": moment, "stream": "yard", "event": "state", "state": "removed"},
        {"time": moment, "stream": "yard", "event": "output", "output": "recording of stream 'yard'",
         "state": "paused", "error": "No space left on device"},
        {"time": moment, "stream": "", "event": "output", "output": "JSONL file 'det.jsonl'", "state": "writing",
         "seconds": 20.2, "lost": 600, "unit": "line(s)"})] == [
        "yard: car #7 lingers in drive: 30.0 s", "yard: car #7 speeding in road: 62 km/h",
        "yard: something happened: a clip starts", "yard: clip finished (12.3 s): yard-20261205-091003.mp4",
        "yard: clip not made: disk full", "yard: reconnecting: connection refused", "yard: removed",
        "yard: recording of stream 'yard' paused: No space left on device",
        "JSONL file 'det.jsonl' writing again after 20 s (600 line(s) lost)"]
    assert history.describe(who | {"event": "enter", "zone": "drive"}).startswith("2026-12-05 09:10:03  ")


@pytest.mark.parametrize(("args", "message"), [
    (["--text", "--count"], "--text lists events as lines a person reads: not with --count"),
    (["--text", "--csv"], "--text lists events as lines a person reads: not with --csv"),
    (["--event", "crossing"], "--event: no events are 'crossing'"),
    (["--event", "entr"], "(they are clip, crowd, enter, leave, line, linger, output, overload, speeding, state, "
                          "switch) (did you mean 'enter'?)\n"),
    (["--stream", "a,"], "--stream: an empty name"),
    (["--from", "tomorrow"], "--from: 'tomorrow' is not a moment"),
    (["--last", "soon"], "--last: "),
    (["--newest", "0"], "--newest: 0 is not a number of events (1 or more)"),
    (["--where", "drive,"], "--where: an empty name"),
])
def test_a_bad_search_is_a_one_line_error_naming_its_flag(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          args: list[str], message: str) -> None:
    (tmp_path / "events.jsonl").write_text("")
    assert cli.main(["events", str(tmp_path / "events.jsonl"), *args]) == cli.EXIT_USAGE
    assert message in caplog.text


def test_an_events_file_that_is_not_there_or_not_written_is_a_one_line_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert cli.main(["events", str(tmp_path / "events.jsonl")]) == cli.EXIT_USAGE
    assert f"events file '{tmp_path / 'events.jsonl'}' does not exist" in caplog.text
    config = tmp_path / "cameras.yaml"
    config.write_text("streams: [synthetic:]\n")
    assert cli.main(["events", str(config)]) == cli.EXIT_USAGE
    assert f"config '{config}' writes no events file (no 'events' key): give the file" in caplog.text
    # A relative path in the config is looked for where the command runs, not where the run did.
    config.write_text("streams: [synthetic:]\nevents: logs/events.jsonl\nrecord: rec\n")
    for command in (["events", str(config)], ["export", str(config), "--stream", "cam", "--last", "1m"]):
        caplog.clear()
        assert cli.main(command) == cli.EXIT_USAGE
        what = "events file 'logs/events.jsonl'" if command[0] == "events" else "recordings folder 'rec'"
        assert (f"{what} does not exist (config '{config}' names it relative: looked for in the current folder "
                f"{os.getcwd()})") in caplog.text


def _listed(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> list[str]:
    """What ``streamyolo events <path> <args>`` prints, line by line (it must find some)."""
    capsys.readouterr()
    assert cli.main(["events", str(path), *args]) == 0
    return capsys.readouterr().out.splitlines()


def _gate(path: Path, start: float | None = None) -> float:
    """A gate's line crossed ten times between 08:10 and 11:55 (local time; or from ``start``),
    every third time out, written to ``path``; returns 08:10."""
    start = time.mktime((2026, 12, 5, 8, 10, 0, 0, 0, -1)) if start is None else start
    path.write_text("".join(json.dumps({"time": start + n * 1500, "stream": "gate", "event": "line", "line": "gate",
                                        "direction": "out" if n % 3 == 0 else "in", "cls": 0, "name": "person"}) + "\n"
                            for n in range(10)))
    return start



def test_counts_say_how_long_they_stayed_and_how_fast_they_went_by_the_hour(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A queue's leaves, by the hour: how long people waited (the median and the mean of the
    leaves' dwell), and a road's, how fast cars went (the mean of their speed): in the table and
    the CSV; counts of events without them have none."""
    start = time.mktime((2026, 12, 5, 8, 10, 0, 0, 0, -1))
    waits = [(0, 60.0), (600, 90.0), (1200, 300.0), (3600, 30.0)]  # (seconds after 08:10, dwell)
    lines = [{"time": start + after, "stream": "shop", "event": "leave", "zone": "queue", "id": n, "cls": 0,
              "name": "person", "dwell": dwell} for n, (after, dwell) in enumerate(waits)]
    lines += [{"time": start + 60 * n, "stream": "street", "event": "leave", "zone": "road", "id": 9 + n, "cls": 2,
               "name": "car", "dwell": 2.0, "speed": speed} for n, speed in enumerate((48.0, 52.5))]
    lines.append({"time": start, "stream": "shop", "event": "enter", "zone": "queue", "id": 0, "cls": 0,
                  "name": "person"})
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in sorted(lines, key=lambda e: e["time"])))
    assert _listed(capsys, path, "--by", "hour", "--event", "leave") == [
        "hour              stream  event  where  class   count  dwell median  dwell mean  speed mean",
        "2026-12-05 08:00  shop    leave  queue  person      3          90.0       150.0",
        "2026-12-05 08:00  street  leave  road   car         2           2.0         2.0        50.2",
        "2026-12-05 09:00  shop    leave  queue  person      1          30.0        30.0",
        "2026-12-05 09:00  street  leave  road   car         0",
        "total                                               6"]
    assert _listed(capsys, path, "--count", "--csv", "--stream", "shop") == [
        "stream,event,where,class,count,dwell median,dwell mean", "shop,enter,queue,person,1,,",
        "shop,leave,queue,person,4,75.0,120.0"]
    assert _listed(capsys, path, "--count", "--event", "enter") == [
        "stream  event  where  class   count", "shop    enter  queue  person      1",
        "total                             1"]


def test_counts_by_the_hour_or_the_day_and_as_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    _gate(path)

    def events(*args: str) -> list[str]:
        return _listed(capsys, path, *args)

    assert events("--by", "hour", "--event", "line") == [
        "hour              stream  event  where     class   count",
        "2026-12-05 08:00  gate    line   gate in   person      1",
        "2026-12-05 08:00  gate    line   gate out  person      1",
        "2026-12-05 09:00  gate    line   gate in   person      2",
        "2026-12-05 09:00  gate    line   gate out  person      1",
        "2026-12-05 10:00  gate    line   gate in   person      1",
        "2026-12-05 10:00  gate    line   gate out  person      1",
        "2026-12-05 11:00  gate    line   gate in   person      2",
        "2026-12-05 11:00  gate    line   gate out  person      1",
        "total                                                 10"]
    # Asked for a span, every hour of it has its rows, 0 where nobody came.
    hours = events("--by", "hour", "--from", "2026-12-05 07:00", "--to", "2026-12-05 10:00", "--csv")
    assert hours == ["hour,stream,event,where,class,count",
                     "2026-12-05 07:00,gate,line,gate in,person,0", "2026-12-05 07:00,gate,line,gate out,person,0",
                     "2026-12-05 08:00,gate,line,gate in,person,1", "2026-12-05 08:00,gate,line,gate out,person,1",
                     "2026-12-05 09:00,gate,line,gate in,person,2", "2026-12-05 09:00,gate,line,gate out,person,1"]
    assert events("--by", "day", "--csv", "--from", "2026-12-05 09:00") == [
        "day,stream,event,where,class,count", "2026-12-05,gate,line,gate in,person,5",
        "2026-12-05,gate,line,gate out,person,3"]
    # By the week (ISO 8601's, from Monday: 2026-12-05 is a Saturday of week 49) and the month,
    # every one of the span with its rows.
    assert events("--by", "week", "--csv", "--from", "2026-11-20", "--to", "2026-12-08") == [
        "week,stream,event,where,class,count",
        "2026-W47,gate,line,gate in,person,0", "2026-W47,gate,line,gate out,person,0",
        "2026-W48,gate,line,gate in,person,0", "2026-W48,gate,line,gate out,person,0",
        "2026-W49,gate,line,gate in,person,6", "2026-W49,gate,line,gate out,person,4",
        "2026-W50,gate,line,gate in,person,0", "2026-W50,gate,line,gate out,person,0"]
    assert events("--by", "month", "--csv", "--from", "2026-11-30", "--to", "2027-01-02") == [
        "month,stream,event,where,class,count",
        "2026-11,gate,line,gate in,person,0", "2026-11,gate,line,gate out,person,0",
        "2026-12,gate,line,gate in,person,6", "2026-12,gate,line,gate out,person,4",
        "2027-01,gate,line,gate in,person,0", "2027-01,gate,line,gate out,person,0"]


def test_events_listed_as_csv_for_a_spreadsheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--csv`` without a count: each event a row under a header, its local time and the
    columns a spreadsheet filters on (``--count --csv``: the counts, above)."""
    import csv

    path = tmp_path / "events.jsonl"
    start = _gate(path)
    with path.open("a") as file:
        file.write(json.dumps({"time": start + 15000.5, "stream": "yard", "event": "leave", "zone": "drive", "id": 7,
                               "cls": 2, "name": "car", "dwell": 31.25, "snapshot": "yard-1.jpg"}) + "\n")
        file.write(json.dumps({"time": start + 15001, "stream": "yard", "event": "clip", "state": "ended",
                               "clip": "yard-20261205-121010.mp4", "seconds": 12.0}) + "\n")
    assert cli.main(["events", str(path), "--csv", "--newest", "3"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows == [
        ["time", "epoch", "stream", "event", "where", "class", "id", "dwell", "speed", "what", "snapshot", "clip"],
        ["2026-12-05 11:55:00", str(start + 13500), "gate", "line", "gate out", "person", "", "", "",
         "person crossed gate (out)", "", ""],
        ["2026-12-05 12:20:00", str(start + 15000.5), "yard", "leave", "drive", "car", "7", "31.25", "",
         "car #7 left drive after 31.2 s", "yard-1.jpg", ""],
        ["2026-12-05 12:20:01", str(start + 15001), "yard", "clip", "ended", "", "", "", "",
         "clip finished (12.0 s): yard-20261205-121010.mp4", "", "yard-20261205-121010.mp4"]]
    assert cli.main(["events", str(path), "--csv", "--count"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "stream,event,where,class,count,dwell median,dwell mean"


def test_events_in_one_zone_or_at_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--where``: only the events of a zone or a line, by its name (of any stream), listed or
    counted; the events file's other events (a camera's state, another zone's) left out."""
    path = tmp_path / "events.jsonl"
    start = _gate(path)  # the gate's line, ten times
    with path.open("a") as file:
        for n, (zone, name) in enumerate([("drive", "car"), ("porch", "person"), ("drive", "person")]):
            file.write(json.dumps({"time": start + 16000 + n, "stream": "yard", "event": "enter", "zone": zone,
                                   "id": n, "cls": 0, "name": name}) + "\n")
        file.write(json.dumps({"time": start + 16010, "stream": "yard", "event": "state", "state": "failed"}) + "\n")
    assert cli.main(["events", str(path), "--where", "drive", "--text"]) == 0
    assert [line.split("  ", 1)[1] for line in capsys.readouterr().out.splitlines()] == [
        "yard: car #0 entered drive", "yard: person #2 entered drive"]
    assert cli.main(["events", str(path), "-w", "porch,gate", "--count"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "gate    line   gate in   person      6", "gate    line   gate out  person      4",
        "yard    enter  porch     person      1", "total                               11"]
    assert cli.main(["events", str(path), "--where", "kerb"]) == 1  # (none there: as grep)


def test_a_streams_events_include_the_runs_overloads_that_name_it(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``--stream yard``: the overloads that yard skipped frames or fell behind in are among
    its events (a run's event, ``"stream": ""``), their ends too, which name every stream the
    overload was about; one about other streams is not."""
    from streamyolo.sinks.events import EventSink

    path = tmp_path / "events.jsonl"
    sink = EventSink(path)
    sink.open()
    for overload in ({"skipped": 70.0, "window": 60.0, "streams": ["gate"]},
                     {"skipped": 60.0, "window": 60.0, "streams": [], "behind": {"yard": 4.0}},  # (no event)
                     None, {"skipped": 50.0, "window": 60.0, "streams": ["gate"]}, None):
        sink.look([], time.monotonic(), overload if overload is None else {**overload, "since": time.time()})
    sink.close()
    written = [e for e in read_jsonl(path) if e["event"] == "overload"]
    assert [(e["state"], e["streams"]) for e in written] == [
        ("started", ["gate"]), ("ended", ["gate", "yard"]), ("started", ["gate"]), ("ended", ["gate"])]
    assert cli.main(["events", str(path), "--stream", "yard", "--text"]) == 0
    assert [line.split("  ", 1)[1] for line in capsys.readouterr().out.splitlines()] == [
        "the machine keeps up again after 0 s"]
    assert cli.main(["events", str(path), "--stream", "gate", "--count"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "        overload  ended               2", "        overload  started             2",
        "total                                 4"]


def test_the_page_counts_a_span_by_the_hour_or_the_day(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    start = _gate(path)
    seven, noon = start - 4200, start + 13800  # 07:00 and 12:00
    web = WebViewer("127.0.0.1:0", events=lambda: [], events_file=path)
    web.open()
    try:
        hours = [f"2026-12-05 {hour:02}:00" for hour in range(7, 12)]
        assert _get(f"{web.url}counts.json?by=hour&from={seven}&to={noon}") == (200, {
            "by": "hour", "periods": hours, "total": 10, "series": [
                {"stream": "gate", "event": "line", "where": "gate in", "class": "person", "counts": [0, 1, 2, 1, 2],
                 "total": 6},
                {"stream": "gate", "event": "line", "where": "gate out", "class": "person", "counts": [0, 1, 1, 1, 1],
                 "total": 4}], "zone": None})  # (on the box's clocks: no tz asked for)
        # Only what the search asks for: the hour from 09:00 has two in, one out; nothing of another stream.
        assert _get(f"{web.url}counts.json?by=hour&from={start + 3000}&to={start + 6600}&class=0")[1]["series"][0][
            "counts"] == [2]
        assert _get(f"{web.url}counts.json?by=day&from={seven}&to={seven + 3 * 86400}&stream=door") == (200, {
            "by": "day", "periods": ["2026-12-05", "2026-12-06", "2026-12-07", "2026-12-08"], "total": 0, "series": [],
            "zone": None})
        for query, error in (("by=year&from=1&to=2", "by: 'year' is not one of hour, day, week, month"),
                             ("by=hour&from=1", "from and to: a count needs both, its span"),
                             ("by=day&from=0&to=5000000", "a count from the page is up to 32 days long, after its "
                                                          "start (streamyolo events --count counts longer ones)"),
                             ("by=hour&from=5&to=5", "a count from the page is up to 32 days long"),
                             ("by=hour&from=1&to=2&event=crossing", "event: no events are 'crossing'")):
            status, said = _get(f"{web.url}counts.json?{query}")
            assert status == 400 and said.startswith(f"count: {error}") and said.count("\n") == 1, said
        path.unlink()  # nothing written yet: nothing counted
        assert _get(f"{web.url}counts.json?by=hour&from={seven}&to={noon}")[1]["total"] == 0
    finally:
        web.close()
    # On the page's clocks: hours of another time zone (India's, 5:30 ahead of UTC), whatever the box's.
    path = tmp_path / "utc.jsonl"
    start = _gate(path, datetime.datetime(2026, 12, 5, 8, 10, tzinfo=datetime.timezone.utc).timestamp())
    web = WebViewer("127.0.0.1:0", events=lambda: [], events_file=path)
    web.open()
    try:
        span = f"from={start - 4200}&to={start + 13800}"  # 07:00 to 12:00 UTC
        for zone, hours, ins, outs in (("UTC", range(7, 12), [0, 1, 2, 1, 2], [0, 1, 1, 1, 1]),
                                       ("Asia/Kolkata", range(12, 18), [0, 0, 2, 2, 1, 1], [0, 1, 1, 0, 1, 1])):
            chart = _get(f"{web.url}counts.json?by=hour&{span}&tz={zone}")[1]
            assert (chart["zone"], chart["periods"]) == (zone, [f"2026-12-05 {hour:02}:00" for hour in hours])
            assert [s["counts"] for s in chart["series"]] == [ins, outs], zone
        for unknown in ("Mars/Olympus_Mons", "../../etc/passwd"):  # the box's clocks then, and said so
            chart = _get(f"{web.url}counts.json?by=day&{span}&tz={unknown}")[1]
            assert chart["zone"] is None and chart["total"] == 10
    finally:
        web.close()
    # Without an events file, the recent events the page lists are counted.
    _gate(path)
    web = WebViewer("127.0.0.1:0", events=lambda: read_jsonl(path)[::-1])
    web.open()
    try:
        assert _get(f"{web.url}counts.json?by=day&from={seven}&to={noon}")[1]["series"][1]["counts"] == [4]
    finally:
        web.close()


def _line(moment: float, stream: str = "gate", kind: str = "line", **more: Any) -> str:
    return json.dumps({"time": moment, "stream": stream, "event": kind, **more}, separators=(",", ":")) + "\n"


def test_a_follower_reads_each_new_event_once_through_logrotate_and_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_line(T0) + _line(T0 + 1, "door"))
    follower = history.Follower(path, EventQuery(streams=frozenset({"gate"})))
    assert follower.mark is not None and follower.mark[2] == path.stat().st_size
    assert follower.events() == []  # what was there before is not new
    with path.open("a") as writer:
        writer.write(_line(T0 + 2) + _line(T0 + 3, "door") + _line(T0 + 4)[:20])  # a line being written
        writer.flush()
        assert [e["time"] for e in follower.events()] == [T0 + 2]
        writer.write(_line(T0 + 4)[20:])
        writer.flush()
        assert [e["time"] for e in follower.events()] == [T0 + 4]
        # A full disk cuts a line short; the writer removes it and writes it again.
        writer.write(_line(T0 + 5)[:30])
        writer.flush()
        assert follower.events() == []
        writer.truncate(writer.tell() - 30)
        writer.seek(0, 2)
        writer.write(_line(T0 + 5) + _line(T0 + 6))
        writer.flush()
        assert [e["time"] for e in follower.events()] == [T0 + 5, T0 + 6]
        # logrotate (create): the file moved away, a line written to it just as it moved, then a new file.
        path.rename(tmp_path / "events.jsonl.1")
        assert follower.events() == []
        writer.write(_line(T0 + 7))
    path.write_text(_line(T0 + 8) + _line(T0 + 9, "door"))
    assert [e["time"] for e in follower.events()] == [T0 + 7, T0 + 8]
    with path.open("a") as writer:
        writer.write(_line(T0 + 10))
    assert [e["time"] for e in follower.events()] == [T0 + 10]
    # logrotate (copytruncate): emptied where it is, then written from the start.
    with path.open("r+") as writer:
        writer.truncate(0)
    assert follower.events() == []
    path.write_text(_line(T0 + 11))
    assert [e["time"] for e in follower.events()] == [T0 + 11]
    with path.open("r+") as writer:  # ... and written again past where it was read to before a look
        writer.truncate(0)
        writer.write(_line(T0 + 12.5) + _line(T0 + 13) + _line(T0 + 14, "door"))
    assert [e["time"] for e in follower.events()] == [T0 + 12.5, T0 + 13]
    # Removed, then made again by the writer's next line.
    path.unlink()
    assert follower.events() == []
    path.write_text(_line(T0 + 12))
    assert [e["time"] for e in follower.events()] == [T0 + 12]
    follower.close()
    # A file not there yet is followed from its first line.
    later = history.Follower(tmp_path / "later.jsonl", EventQuery())
    assert later.mark is None and later.events() == []
    (tmp_path / "later.jsonl").write_text(_line(T0))
    assert [e["time"] for e in later.events()] == [T0]
    later.close()


def test_a_search_given_a_followers_mark_reads_up_to_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(_line(T0 + n) for n in range(5)))
    follower = history.Follower(path, EventQuery())
    with path.open("a") as writer:
        writer.write(_line(T0 + 5))
    assert [e["time"] for e in read_events(path, EventQuery(T0 + 2), follower.mark)] == [T0 + 2, T0 + 3, T0 + 4]
    assert [e["time"] for e in find_events(path, EventQuery(), 2, follower.mark)[0]] == [T0 + 4, T0 + 3]
    assert [e["time"] for e in follower.events()] == [T0 + 5]  # nothing twice, nothing left out
    assert len(list(read_events(path, EventQuery()))) == 6  # without the mark: all of it
    follower.close()


@pytest.mark.timeout(180)
def test_events_follow_prints_a_runs_events_as_they_come_until_interrupted(tmp_path: Path) -> None:
    """``streamyolo events --follow``, a process of its own as a user runs it: the newest earlier
    event asked for, then the crossings of runs appending to the events file, through a
    logrotate between them; Ctrl-C ends it (exit 0); ``| head -1`` ends it quietly."""
    path = tmp_path / "events.jsonl"
    _run(path)
    earlier = [e for e in read_jsonl(path) if e["event"] == "line"]
    follow = subprocess.Popen([PYTHON, "-m", "streamyolo", "events", str(path), "--follow", "--event", "line",
                               "--newest", "1"], env=env_for_subprocess(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, encoding="utf-8")
    try:
        assert follow.stdout is not None
        assert json.loads(follow.stdout.readline()) == earlier[-1]  # printed before any new one
        _run(path)
        path.rename(tmp_path / "events.jsonl.1")  # logrotate's create mode; the next run makes a new file
        _run(path)
        later = [e for e in read_jsonl(tmp_path / "events.jsonl.1") + read_jsonl(path) if e["event"] == "line"]
        assert len(later) == 3 and later[0] == earlier[0]
        got = [json.loads(follow.stdout.readline()) for _ in range(2)]  # each as it came (waits if not yet)
        assert got == later[1:]
        assert follow.poll() is None  # still following
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert (follow.returncode, out) == (0, ""), err
    assert "Traceback" not in err
    # | head -1: the reader goes away after the first line; the follower ends quietly at its next.
    head = subprocess.run(f"'{PYTHON}' -m streamyolo events '{path}' --follow --from 0 | head -1", shell=True,
                          env=env_for_subprocess(), cwd=ROOT, capture_output=True, encoding="utf-8", timeout=60,
                          check=False)
    assert head.returncode == 0 and json.loads(head.stdout)["stream"] == "hall" and head.stderr == "", head


def test_events_follow_says_at_once_of_a_stream_the_config_has_not(tmp_path: Path) -> None:
    """Following a config's events for a stream it has not (misspelt): said as it starts, with
    the one meant, rather than waiting for what will never come."""
    config = tmp_path / "cams.yaml"
    config.write_text(f"streams: [{{name: gate, source: 'synthetic:'}}]\nevents: {tmp_path / 'events.jsonl'}\n")
    follow = subprocess.Popen([PYTHON, "-m", "streamyolo", "events", str(config), "--follow", "--stream", "gat"],
                              env=env_for_subprocess(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              encoding="utf-8")
    try:
        assert follow.stderr is not None
        said = follow.stderr.readline()
    finally:
        follow.kill()
        follow.communicate(timeout=30)
    assert said.rstrip() == (f"streamyolo: WARNING: --stream: no stream 'gat' in {config} (did you mean 'gate'?): "
                             "none of its events will come"), said


@pytest.mark.parametrize(("args", "message"), [
    (["--count"], "--follow lists events as they come: not with --count"),
    (["--by", "hour"], "--follow lists events as they come: not with --by"),
    (["--to", "10:00"], "--follow lists events as they come: not with --to"),
])
def test_events_follow_does_not_count(tmp_path: Path, caplog: pytest.LogCaptureFixture, args: list[str],
                                      message: str) -> None:
    (tmp_path / "events.jsonl").write_text("")
    assert cli.main(["events", str(tmp_path / "events.jsonl"), "--follow", *args]) == cli.EXIT_USAGE
    assert message in caplog.text
    caplog.clear()
    assert cli.main(["events", str(tmp_path / "nowhere" / "events.jsonl"), "--follow"]) == cli.EXIT_USAGE
    assert f"events file '{tmp_path / 'nowhere' / 'events.jsonl'}' does not exist" in caplog.text
