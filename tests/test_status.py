"""``streamyolo status``: a running run's streams, read from its web page, from a shell."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streamyolo import cli
from streamyolo.pipeline import Pipeline
from tests.helpers import until
from tests.servers import free_port

LOGIN = "admin:s3cr et"


def _config(tmp_path: Path, **web: Any) -> dict[str, Any]:
    return {"model": "demo", "imgsz": 160, "device": "cpu", "display": False, "status_interval": 0,
            "web": f"0.0.0.0:{free_port()}", "web_auth": LOGIN, **web,
            "streams": [{"name": "yard", "source": "synthetic:?size=160x120&fps=10", "realtime": True},
                        {"name": "dead", "source": f"rtsp://127.0.0.1:{free_port()}/none",
                         "reconnect": {"attempts": 1, "base": 0.1}}]}


def _status(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["status", *args])
    return code, capsys.readouterr().out


@pytest.mark.timeout(90)
def test_status_prints_a_running_runs_streams_from_its_page(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        tls_files: tuple[Path, Path]) -> None:
    """By the run's config (its page on every interface, asked on loopback, with its login) or
    by the page's address: the streams as the live status shows them, exit 1 for the failed
    camera; over HTTPS with the config's own certificate; a wrong login, a page not there and
    a config without a page are one line each, the password never shown."""
    cert, key = tls_files
    for secure in (False, True):
        config = _config(tmp_path, **({"web_cert": str(cert), "web_key": str(key)} if secure else {}))
        path = tmp_path / f"cams-{secure}.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")
        with Pipeline.from_config(config) as pipeline:
            pipeline.start()
            until(lambda: {r.name: (r.state, r.processed > 3) for r in pipeline.reports()} == {
                "yard": ("streaming", True), "dead": ("failed", False)}, 30, "the yard streaming, the dead failed")
            code, said = _status(str(path), capsys=capsys)
            assert code == 1, said
            lines = said.splitlines()
            assert lines[0] == "running, 2 stream(s)", said
            assert re.match(r"stream +state +fps in +fps out +processed +dropped +age ms +last frame +error", lines[1])
            assert re.match(r"yard +streaming +\d+\.\d +\d+\.\d +\d+ +\d+ +\d+ +\d+\.\ds ago", lines[2]), said
            assert re.match(r"dead +failed +0\.0 +0\.0 +0 +0 +- +- +.*127\.0\.0\.1", lines[3]), said
            assert "1 stream(s) failed: dead" in caplog.text
            if secure:
                continue
            port = config["web"].rsplit(":", 1)[1]
            user, password = LOGIN.split(":")
            code, said = _status(f"http://{user}:{password.replace(' ', '%20')}@127.0.0.1:{port}", capsys=capsys)
            assert code == 1 and said.splitlines()[0] == "running, 2 stream(s)", said
            code, said = _status(str(path), "--json", capsys=capsys)  # (for a script: the page's own JSON)
            assert code == 1 and [s["state"] for s in json.loads(said)["streams"]] == ["streaming", "failed"]
            caplog.clear()
            code, said = _status(f"http://{user}:n0tTh1s@127.0.0.1:{port}/", capsys=capsys)
            assert (code, said) == (1, "")
            assert (f"the run's page http://127.0.0.1:{port}/ answers HTTP 401 Unauthorized (a wrong or missing "
                    "login") in caplog.text
            assert "n0tTh1s" not in caplog.text and password not in caplog.text
    caplog.clear()
    assert _status(str(tmp_path / "cams-False.yaml"), capsys=capsys)[0] == 1  # (the run is over: no page)
    assert f"cannot reach the run's page http://127.0.0.1:{config_port(tmp_path)}/: " in caplog.text
    (tmp_path / "bare.yaml").write_text(json.dumps({"streams": ["synthetic:"]}), encoding="utf-8")
    assert _status(str(tmp_path / "bare.yaml"), capsys=capsys)[0] == 2
    assert f"config '{tmp_path / 'bare.yaml'}' serves no web page (no 'web' key)" in caplog.text


def config_port(tmp_path: Path) -> str:
    return str(json.loads((tmp_path / "cams-False.yaml").read_text())["web"]).rsplit(":", 1)[1]


@pytest.mark.timeout(90)
def test_status_reads_a_run_without_a_page_from_its_stats_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run without a page but with a stats file, as a service runs (no status table: status
    interval 0): its streams from the file's last line while it runs (exit 1 for the failed
    camera); once that line is old, not running (exit 1); a run that writes its stats only as
    it ends (stats_interval 0) is said so."""
    from streamyolo.pipeline import remote

    stats = tmp_path / "stats.jsonl"
    config = {**_config(tmp_path), "status_interval": 0, "stats_interval": 0.5, "stats": str(stats)}
    del config["web"], config["web_auth"]
    path = tmp_path / "cams.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")

    def last() -> dict[str, Any]:
        line = remote.last_line(stats) if stats.exists() else ""
        return {name: (s["state"], s["processed"] > 3) for name, s in json.loads(line)["streams"].items()} \
            if line else {}

    with Pipeline.from_config(config) as pipeline:
        pipeline.start()
        until(lambda: last() == {"yard": ("streaming", True), "dead": ("failed", False)}, 30,
              "the stats file's yard streaming, its dead failed")
        code, said = _status(str(path), capsys=capsys)
        assert code == 1, said
        lines = said.splitlines()
        assert lines[0] == f"running, 2 stream(s), from its stats file {stats}", said
        assert re.match(r"yard +streaming +\d+\.\d +\d+\.\d +\d+ +\d+ +\d+ ", lines[2]), said
        assert re.match(r"dead +failed +0\.0 +0\.0 +0 +0 +- +- +.*127\.0\.0\.1", lines[3]), said
        assert "1 stream(s) failed: dead" in caplog.text
        code, said = _status(str(path), "--json", capsys=capsys)
        assert json.loads(said)["stats"]["path"] == str(stats)
        pipeline.stop()
    caplog.clear()  # (its last line says it ended: not running at once)
    code, said = _status(str(path), capsys=capsys)
    assert code == 1 and re.match(r"not running \(it ended at \d{4}-\d\d-\d\d [\d:]{8}\), 2 stream\(s\), from its "
                                  r"stats file ", said), said
    assert f"the run is not running: it has ended (its stats file {stats} was last written" in caplog.text
    lines = stats.read_text(encoding="utf-8").splitlines()  # a run killed: its last line is one like the others
    stats.write_text("\n".join([*lines[:-1], json.dumps({**json.loads(lines[-1]), "ended": None})]) + "\n",
                     encoding="utf-8")
    monkeypatch.setattr(remote, "FRESH_LEAST", 0.0)  # (old after 3 intervals: 1.5 s)
    until(lambda: remote.stats_status(stats, 0.5)["running"] is False, 10, "the stats file's last line old")
    caplog.clear()
    code, said = _status(str(path), capsys=capsys)
    assert code == 1 and re.match(r"not running \(its stats file's last line is of \d{4}-\d\d-\d\d [\d:]{8}, \d+ s "
                                  r"ago\), 2 stream\(s\), from its stats file ", said), said
    assert f"the run is not running: its stats file {stats} was last written" in caplog.text
    (tmp_path / "quiet.yaml").write_text(json.dumps({**config, "stats_interval": 0}), encoding="utf-8")
    assert _status(str(tmp_path / "quiet.yaml"), capsys=capsys)[0] == 2
    assert "writes its stats file only as it ends (stats_interval 0)" in caplog.text
    # Its lines come every status interval, or every 5 s without a status table (a service).
    from streamyolo.config import build_config

    assert [build_config({"streams": ["a.mp4"], **given}).stats_every() for given in (
        {}, {"status_interval": 2}, {"status_interval": 0}, {"status_interval": 0, "stats_interval": 30})] == [
        1.0, 2.0, 5.0, 30.0]
    # A day's lines just moved away (stats_keep at midnight, logrotate): status waits for the next.
    moved = stats.read_text(encoding="utf-8")
    stats.rename(tmp_path / "stats.jsonl-20261206")
    later = threading.Timer(0.6, lambda: stats.write_text(moved, encoding="utf-8"))
    later.start()
    try:
        assert remote.stats_status(stats, 0.5, wait=1.5)["streams"][0]["name"] == "yard"
    finally:
        later.join()
    stats.unlink()
    started = time.monotonic()
    assert _status(str(path), capsys=capsys)[0] == 1
    assert time.monotonic() - started > 1.5  # (its interval and a second more)
    assert f"cannot read the run's stats file '{stats}': No such file or directory" in caplog.text


@pytest.mark.timeout(90)
def test_status_says_while_the_machine_cannot_keep_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 200 fps camera against the demo model, as a service runs it (a stats file, no page):
    its stats lines carry the overload, and ``streamyolo status`` says it under the table."""
    stats = tmp_path / "stats.jsonl"
    config = {"model": "demo", "device": "cpu", "display": False, "status_interval": 0, "stats_interval": 0.5,
              "stats": str(stats), "overload_warning": 1.5,
              "streams": [{"name": "yard", "source": "synthetic:?size=320x240&fps=200", "realtime": True}]}
    path = tmp_path / "cams.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    from streamyolo.pipeline import remote

    with Pipeline.from_config(config) as pipeline:
        pipeline.start()
        said = until(lambda: stats.exists() and json.loads(remote.last_line(stats) or "{}").get("overload"), 60,
                     "a stats line with the overload")
        assert said["streams"] == ["yard"] and said["skipped"] >= 50, said
        code, text = _status(str(path), capsys=capsys)
        pipeline.stop()
    assert code == 0, text
    assert re.search(r"^the machine cannot keep up: \d+% of the live streams' frames skipped in the last \d+ s "
                     r"\(yard\), since \d{4}-\d\d-\d\d [\d:]{8} \(see the run's log\)$", text, re.MULTILINE), text


def test_status_says_each_folders_use_in_its_own_unit_and_when_it_was_looked_at() -> None:
    """A folder of 15 MB was "0.0 GB": sizes in the unit that shows them, as the page does, and
    when the folders were last looked at (every 30 s: a file being written grows meanwhile)."""
    from streamyolo.pipeline.remote import status_text
    from streamyolo.sinks.history import local_time

    looked = time.time() - 20
    text = status_text({"streams": [], "storage": {
        "recordings": {"bytes": 15_500_000, "files": 1, "free": 63_000_000_000, "days_left": None},
        "clips": {"bytes": 0, "files": 0, "free": 63_000_000_000, "days_left": 12.5}, "looked": looked}})
    when = local_time(looked)
    assert text.splitlines()[-2:] == [
        f"recordings: 15.5 MB in 1 file(s); disk 63 GB free (as of {when})",
        f"clips: 0 B in 0 file(s); disk 63 GB free, about 12.5 days at the last day's rate (as of {when})"]
