"""A line file that keeps its days itself (``events_keep``, ``jsonl_keep``, ``stats_keep``):
moved away at midnight under the day's name, compressed, deleted when old; what it keeps is
searched and followed as one file."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from pathlib import Path

import pytest

from streamyolo.sinks import days, history
from streamyolo.sinks.history import EventQuery, read_events
from streamyolo.sinks.jsonl import LineFile
from tests.helpers import read_jsonl
from tests.test_cli import in_process

DAY = 86400.0


def _aged(path: Path, text: str, age: float) -> Path:
    """``path`` with ``text`` in it, last written ``age`` seconds ago."""
    path.write_text(text)
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return path


def test_at_midnight_the_days_lines_move_away_compressed_and_old_days_go(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    gone = _aged(tmp_path / "events.jsonl-20261201.gz", "", 3 * DAY)
    kept = _aged(tmp_path / "events.jsonl-20261203.gz", "", 1 * DAY)
    others = [_aged(tmp_path / name, "x", 9 * DAY) for name in ("events.jsonl.1", "other.jsonl-20261201.gz",
                                                                  "events.jsonl-notes")]
    left = tmp_path / "events.jsonl-20261130"  # a day an earlier run moved away but did not compress
    _aged(left, '{"time": 1}\n', 1.5 * DAY)
    _aged(tmp_path / "events.jsonl-20261130.gz.part", "half", 1.5 * DAY)  # ... or was compressing
    now = [time.mktime((2026, 12, 5, 23, 59, 0, 0, 0, -1))]
    lines = LineFile(path, "events file", keep=2 * DAY, wall=lambda: now[0])
    lines.open()
    lines.write("a\n")
    now[0] += 30
    lines.write("b\n")
    now[0] += 60  # 00:00:30: a new day
    lines.write("c\n")
    now[0] += DAY  # the next midnight, and a day's name taken (a clock set back)
    _aged(tmp_path / "events.jsonl-20261206.gz", "taken", 0)
    lines.write("d\n")
    lines.close()
    assert path.read_text() == "d\n"
    assert gzip.decompress((tmp_path / "events.jsonl-20261205.gz").read_bytes()) == b"a\nb\n"
    assert gzip.decompress((tmp_path / "events.jsonl-2026120600.gz").read_bytes()) == b"c\n"
    assert gzip.decompress((tmp_path / "events.jsonl-20261130.gz").read_bytes()) == b'{"time": 1}\n'
    assert abs((tmp_path / "events.jsonl-20261130.gz").stat().st_mtime - (time.time() - 1.5 * DAY)) < 5  # its time
    assert not gone.exists() and kept.exists() and all(other.exists() for other in others)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["events.jsonl", "events.jsonl-20261203.gz", "events.jsonl-20261205.gz", "events.jsonl-20261206.gz",
         "events.jsonl-2026120600.gz", "events.jsonl-20261130.gz", *(other.name for other in others)])


def test_an_earlier_runs_file_of_an_earlier_day_moves_away_at_the_first_line(tmp_path: Path) -> None:
    path = _aged(tmp_path / "stats.jsonl", "old\n", DAY)
    yesterday = time.strftime("%Y%m%d", time.localtime(time.time() - DAY))
    lines = LineFile(path, "stats file", keep=30 * DAY)
    lines.open()
    lines.write("new\n")
    lines.close()
    assert path.read_text() == "new\n"
    assert gzip.decompress((tmp_path / f"stats.jsonl-{yesterday}.gz").read_bytes()) == b"old\n"


def test_a_day_that_cannot_be_moved_is_written_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    now = [time.mktime((2026, 12, 5, 23, 59, 0, 0, 0, -1))]
    lines = LineFile(path, "events file", keep=30 * DAY, wall=lambda: now[0])
    lines.open()
    lines.write("old\n")
    for name in ("events.jsonl-20261205.gz", "events.jsonl-2026120500"):  # the day's names taken (clocks set back)
        (tmp_path / name).write_text("taken")
    now[0] += 120
    lines.write("new\n")
    lines.close()
    assert path.read_text() == "old\nnew\n"
    assert ("events file " + str(path) + ": cannot move the day's lines away, writing on in it: "
            "events.jsonl-20261205 and events.jsonl-2026120500 are taken") in caplog.text


@pytest.mark.timeout(180)
def test_a_run_keeps_its_files_days_and_the_search_reads_them_as_one(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """``streamyolo run --events-keep … --jsonl-keep … --stats-keep …`` after a run of
    yesterday's: yesterday's lines are each file's ``-YYYYmmdd.gz``, today's the file;
    ``streamyolo events`` and a follower read the events file's days as one."""
    yesterday = time.time() - DAY
    day = time.strftime("%Y%m%d", time.localtime(yesterday))
    earlier = {"time": round(yesterday, 3), "stream": "street", "event": "state", "state": "streaming"}
    files = {name: tmp_path / f"{name}.jsonl" for name in ("events", "jsonl", "stats")}
    _aged(files["events"], json.dumps(earlier) + "\n", DAY)
    _aged(files["jsonl"], '{"stream": "street", "seq": 0}\n', DAY)
    _aged(files["stats"], '{"elapsed": 1}\n', DAY)
    _aged(tmp_path / "events.jsonl-20200101.gz", "", 400 * DAY)  # older than kept
    follower = history.Follower(files["events"], EventQuery())
    keep = [arg for name, path in files.items() for arg in (f"--{name}", str(path), f"--{name}-keep", "30d")]
    plan = in_process(capsys, caplog, "check", "--source", "street=synthetic:scene?size=160x120&frames=10", *keep)
    assert plan.returncode == 0 and f"events to {files['events']} (its days kept 30d)" in plan.stdout, plan
    done = in_process(capsys, caplog, "run", "--source", "street=synthetic:scene?size=160x120&frames=10", "--model",
                      "demo", "--pytorch-cpu", "torch", "--no-display", "--status-interval", "0.2", *keep)
    assert done.returncode == 0, done.stderr
    for name, path in files.items():
        assert (tmp_path / f"{name}.jsonl-{day}.gz").exists(), name  # yesterday's, compressed
        assert not (tmp_path / f"{name}.jsonl-{day}").exists(), name
        today = read_jsonl(path)
        assert today and all(line.get("time", time.time()) > yesterday + 1 for line in today), (name, today)
    assert len(read_jsonl(files["jsonl"])) == 10
    assert not (tmp_path / "events.jsonl-20200101.gz").exists()
    events = list(read_events(files["events"], EventQuery()))
    assert events[0] == earlier and [e["state"] for e in events[1:]] == ["streaming", "ended"]
    assert follower.events() == events[1:]  # the run's, through the move: nothing twice, nothing left out
    follower.close()
    listed = in_process(capsys, caplog, "events", str(files["events"]), "--text")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3
    # Days kept need their file.
    wrong = in_process(capsys, caplog, "run", "--source", "synthetic:", "--events-keep", "30d")
    assert wrong.returncode == 2
    assert "config keys 'events_keep' and 'events': events_keep keeps the events file's days; give events too" in (
        wrong.stderr)


def test_a_midnight_never_waits_for_a_day_being_compressed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big day an earlier run left is still being compressed when midnight comes: the line
    after midnight is written at once (the writer may be an inference thread), and the day
    just moved away is compressed once the big one is done."""
    _aged(tmp_path / "det.jsonl-20261201", "big\n", 4 * DAY)  # left by an earlier run, uncompressed
    release, compressing = threading.Event(), threading.Event()
    compress = days.DailyFiles._compress

    def slow(self: days.DailyFiles, day: Path) -> None:
        if day.name.endswith("20261201"):
            compressing.set()
            release.wait(30)
        compress(self, day)

    monkeypatch.setattr(days.DailyFiles, "_compress", slow)
    now = [time.mktime((2026, 12, 5, 23, 59, 0, 0, 0, -1))]
    lines = LineFile(tmp_path / "det.jsonl", "JSONL file", keep=30 * DAY, wall=lambda: now[0])
    lines.open()
    assert compressing.wait(30)
    lines.write("a\n")
    now[0] += 120
    began = time.monotonic()
    lines.write("b\n")  # after midnight: the day moved away, while the big one is compressed still
    assert time.monotonic() - began < 5 and (tmp_path / "det.jsonl-20261205").exists()
    release.set()
    lines.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.jsonl", "det.jsonl-20261201.gz",
                                                          "det.jsonl-20261205.gz"]
    assert gzip.decompress((tmp_path / "det.jsonl-20261205.gz").read_bytes()) == b"a\n"
