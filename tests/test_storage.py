"""What the run's folders take and how much room their disks have (``/status.json``'s
``"storage"``, ``/metrics``): each stream's recordings, the last day's, since when; looked at
every half minute at most."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamyolo.errors import OutputsIncompleteError
from streamyolo.sinks.base import PauseBoard, listen_to_pauses, pauses_of
from streamyolo.sinks.jsonl import LineFile
from streamyolo.sinks.storage import Storage, folder_use
from streamyolo.sinks.web import WebViewer
from tests.helpers import until

DAY = 86400.0


def _file(path: Path, size: int, age: float) -> Path:
    """A file of ``size`` bytes (sparse: no room taken) last written ``age`` seconds ago."""
    with path.open("wb") as file:
        file.truncate(size)
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return path


def _folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    rec, clips, shots = tmp_path / "rec", tmp_path / "clips", tmp_path / "shots"
    for folder in (rec, clips, shots):
        folder.mkdir()
    _file(rec / "gate-20261201-100000.mp4", 2_000_000_000, 5 * DAY)
    _file(rec / "gate-20261206-100000-objects.mp4", 500_000_000, 3600)
    _file(rec / "gate-2-20261206-100000.mp4", 300_000_000, 60)  # another stream, named as gate's prefix
    _file(rec / "old.mp4", 1000, 9 * DAY)  # no stream's
    _file(rec / "notes.txt", 10, 0)  # not a video
    (rec / "gate-link.mp4").symlink_to(rec / "old.mp4")  # a link: not counted twice
    (rec / "sub").mkdir()
    _file(rec / "sub" / "gate-20261202-100000.mp4", 10, 0)  # in a folder of its own: not the folder's
    _file(clips / "gate-20261206-101010.mp4", 4_000_000, 7200)
    _file(shots / "gate-20261206-101010-123-45.jpg", 80_000, 7200)
    return rec, clips, shots


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_the_status_and_metrics_say_what_each_folder_and_stream_takes(tmp_path: Path) -> None:
    rec, clips, shots = _folders(tmp_path)
    web = WebViewer("127.0.0.1:0", recordings=rec, clips=clips, snapshots=shots)
    web.open()
    try:
        storage = json.loads(_get(f"{web.url}status.json"))["storage"]
        metrics = _get(f"{web.url}metrics").decode().splitlines()
    finally:
        web.close()
    disk = shutil.disk_usage(tmp_path)
    recordings = storage["recordings"]
    free = recordings.pop("free")
    assert abs(free - disk.free) < 100_000_000 and recordings.pop("total") == disk.total
    assert recordings.pop("days_left") == math.floor(free / 800_000_000 * 10) / 10  # (at the last day's rate)
    oldest = recordings.pop("oldest")
    assert abs(oldest - (time.time() - 9 * DAY)) < 60
    assert recordings == {"path": str(rec), "bytes": 2_800_001_000, "files": 4, "last_day": 800_000_000,
                          "streams": {}}  # (no stream is running: none of the files is a stream's)
    assert storage["clips"]["bytes"] == 4_000_000 and storage["clips"]["last_day"] == 4_000_000
    assert storage["snapshots"]["files"] == 1 and "streams" not in storage["snapshots"]
    assert abs(storage["looked"] - time.time()) < 60
    assert 'streamyolo_storage_bytes{folder="recordings"} 2800001000' in metrics
    assert 'streamyolo_storage_files{folder="snapshots"} 1' in metrics
    assert 'streamyolo_storage_last_day_bytes{folder="recordings"} 800000000' in metrics
    assert f'streamyolo_storage_size_bytes{{folder="clips"}} {disk.total}' in metrics
    assert any(line.startswith('streamyolo_storage_free_bytes{folder="recordings"} ') for line in metrics)
    assert "# TYPE streamyolo_storage_oldest_timestamp_seconds gauge" in metrics


def test_each_streams_recordings_are_its_own(tmp_path: Path) -> None:
    rec, _, _ = _folders(tmp_path)
    use = folder_use(rec, ".mp4", ["gate", "gate-2", "door"], time.time())
    assert {stream: (numbers["bytes"], numbers["files"]) for stream, numbers in use["streams"].items()} == {
        "gate": (2_500_000_000, 2), "gate-2": (300_000_000, 1)}
    assert abs(use["streams"]["gate"]["oldest"] - (time.time() - 5 * DAY)) < 60
    gone = folder_use(tmp_path / "nowhere", ".mp4", [], time.time())
    assert gone == {"path": str(tmp_path / "nowhere"), "bytes": 0, "files": 0, "oldest": None, "last_day": 0,
                    "free": None, "total": None, "days_left": None, "streams": {}}


def test_the_folders_are_looked_at_every_half_minute_at_most_and_a_slow_look_less_often(tmp_path: Path) -> None:
    rec, _, _ = _folders(tmp_path)
    now, tick = [0.0], [0.0]

    def clock() -> float:
        now[0] += tick[0]  # (each reading of the clock: time passing as the look goes)
        return now[0]

    storage = Storage({"recordings": (rec, ".mp4")}, lambda: ["gate"], clock=clock)
    assert storage.use()["recordings"]["files"] == 4
    _file(rec / "gate-20261206-110000.mp4", 1, 0)
    now[0] = 29.9
    assert storage.use()["recordings"]["files"] == 4  # as looked at before
    now[0] = 30.0
    assert storage.use()["recordings"]["streams"]["gate"]["files"] == 3
    # A look that takes a second (a slow network share): the next one 100 s later, not 30.
    now[0], tick[0] = 60.0, 1.0
    assert storage.use()["recordings"]["files"] == 5  # looked at from 62 to 63
    _file(rec / "gate-20261206-120000.mp4", 1, 0)
    now[0], tick[0] = 150.0, 0.0
    assert storage.use()["recordings"]["files"] == 5
    now[0] = 162.0
    assert storage.use()["recordings"]["files"] == 6


def test_an_output_that_cannot_write_is_in_the_status_and_metrics_until_it_writes_again(tmp_path: Path) -> None:
    """A JSONL file refused by the kernel (a file-size limit here; a full disk on a box) is
    paused: the status and /metrics say so, with why and what it lost, until it writes again;
    and its listeners are told. Another run in the same program (its own pause board, as each
    run built from a config has) sees nothing of it."""
    now = [0.0]
    path = tmp_path / "det.jsonl"
    heard: list[dict[str, Any]] = []
    elsewhere: list[dict[str, Any]] = []
    with pauses_of(PauseBoard()):
        lines = LineFile(path, "JSONL file", clock=lambda: now[0])
        web = WebViewer("127.0.0.1:0")
        listen_to_pauses(heard.append)
    with pauses_of(PauseBoard()):
        other = WebViewer("127.0.0.1:0")
        listen_to_pauses(elsewhere.append)
    lines.open()
    lines.write("{}\n")
    web.open()
    other.open()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    mine = f"JSONL file '{path}'"

    def paused() -> list[dict[str, Any]]:
        return list(json.loads(_get(f"{web.url}status.json")).get("paused", []))

    def pauses() -> int:
        counted = [line for line in _get(f"{web.url}metrics").decode().splitlines()
                   if line.startswith("streamyolo_outputs_paused ")]
        return int(counted[0].split()[1])

    try:
        before = pauses()
        assert paused() == [] and before == 0
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 10, hard))  # the kernel refuses the line
        try:
            lines.write('{"detections": [' + "0, " * 50 + "0]}\n")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        lines.write("{}\n")  # while paused: lost too
        now_paused = paused()
        assert len(now_paused) == 1 and abs(now_paused[0].pop("since") - time.time()) < 60
        assert now_paused == [{"output": mine, "stream": "", "error": "File too large", "lost": 2, "unit": "line(s)"}]
        assert pauses() == before + 1
        assert "paused" not in json.loads(_get(f"{other.url}status.json"))  # (the other run's)
        metrics = _get(f"{web.url}metrics").decode().splitlines()
        since = f'streamyolo_output_paused_since_timestamp_seconds{{output="JSONL file \'{path}\'"}} '
        assert any(line.startswith(since) for line in metrics), metrics
        now[0] += 10.0  # time to try again: it writes
        lines.write("{}\n")
        assert paused() == [] and pauses() == before
    finally:
        web.close()
        other.close()
    assert [(e["event"], e["output"], e["state"]) for e in heard] == [("output", mine, "paused"),
                                                                      ("output", mine, "writing")]
    assert elsewhere == []
    assert path.read_text() == "{}\n{}\n"
    with pytest.raises(OutputsIncompleteError, match=r"2 line\(s\) could not be written"):
        lines.close()


def test_a_thread_of_its_own_looks_and_tells_and_a_request_never_waits_for_it(tmp_path: Path) -> None:
    """Started (by the web page, by Home Assistant's sensors), the folders are looked at on a
    thread of their own every ``every`` seconds, each look told to the listeners; a request
    meanwhile gets the last look at once, even while a slow one goes on; the last ``stop``
    ends the thread."""
    rec, _, _ = _folders(tmp_path)
    slow, looking = threading.Event(), threading.Event()
    slow.set()

    def streams() -> list[str]:
        looking.set()
        assert slow.wait(30)
        return ["gate"]

    told: list[dict[str, Any]] = []
    storage = Storage({"recordings": (rec, ".mp4")}, streams, every=0.2)
    storage.listen(told.append)
    storage.listen(lambda use: 1 / 0)  # (a listener's trouble: logged, the looks go on)
    storage.start()
    storage.start()  # (a second user: the same thread)
    try:
        assert [thread.name for thread in threading.enumerate()].count("storage") == 1
        until(lambda: len(told) >= 2, 10, "two looks told")
        assert told[0]["recordings"]["streams"]["gate"]["files"] == 2 and told[0]["looked"] <= told[1]["looked"]
        _file(rec / "gate-20261206-110000.mp4", 1, 0)
        until(lambda: told[-1]["recordings"]["files"] == 5, 10, "the new file seen")
        slow.clear()  # the next look hangs (a slow share) ...
        looking.clear()
        assert looking.wait(10)
        began = time.monotonic()
        assert storage.use()["recordings"]["files"] == 5  # ... and a request gets the last one at once
        assert time.monotonic() - began < 0.1
        slow.set()
        storage.stop()
        assert [thread.name for thread in threading.enumerate()].count("storage") == 1  # (one user left)
    finally:
        slow.set()
        storage.stop()
    until(lambda: "storage" not in [thread.name for thread in threading.enumerate()], 10, "the thread ended")
    looks = len(told)
    time.sleep(0.5)
    assert len(told) == looks  # no more looks
