"""The streams' switches kept across runs (``switches_file``)."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamyolo.errors import OutputError
from streamyolo.pipeline import Pipeline
from streamyolo.pipeline.switches import SwitchFile
from streamyolo.sinks.history import describe
from tests.helpers import read_jsonl, until

STREET = "synthetic:scene?seed=3&size=416x240&fps=25"


def _config(tmp_path: Path, run: int, **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "display": False, "status_interval": 0, "record": str(tmp_path / f"rec{run}"),
            "jsonl": str(tmp_path / f"det{run}.jsonl"), "switches_file": str(tmp_path / "state" / "switches.json"),
            "events": str(tmp_path / f"events{run}.jsonl"), "web": "127.0.0.1:0",
            "streams": [{"name": name, "source": STREET, "realtime": True} for name in ("gate", "porch", "yard")],
            **extra}


@pytest.mark.timeout(120)
def test_a_stream_switched_off_stays_off_after_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A run switches the gate's detection and the porch's recording off (as the page or Home
    Assistant would) and the yard's detection off and on again; the next run, from the same
    config, starts with the gate's detection and the porch's recording off, before their first
    frames, and everything else on; a switch its schedule sets is the schedule's. Each change is
    a ``switch`` event, saying who made it."""
    caplog.set_level(logging.INFO)
    with Pipeline.from_config(_config(tmp_path, 1)) as pipeline:
        pipeline.start()
        until(lambda: sum(r.processed for r in pipeline.reports()) > 30, 30, "frames")
        pipeline.set_detection("gate", False)
        pipeline.set_recording("porch", False)
        page = pipeline.web_url
        for on in (False, True):  # the yard's, on the page
            request = urllib.request.Request(f"{page}streams/yard/detect", data=json.dumps({"on": on}).encode(),
                                             method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        pipeline.set_detection("yard", True)  # (as it is: no change, no event)
        pipeline.stop()
    saved = json.loads((tmp_path / "state" / "switches.json").read_text())
    assert saved == {"streams": {"gate": {"detect": False}, "porch": {"record": False}, "yard": {"detect": True}}}
    # The yard's detection is now scheduled (off now, on in two hours): the schedule's, not the file's.
    later = time.localtime(time.time() + 7200)
    window = f"{later.tm_hour:02d}:00-{later.tm_hour:02d}:30"
    config = _config(tmp_path, 2)
    config["streams"][2]["schedule"] = {"detect": window}
    with Pipeline.from_config(config) as pipeline:
        pipeline.start()
        switches = {name: pipeline.switches(name) for name in ("gate", "porch", "yard")}
        until(lambda: all(r.processed > 20 for r in pipeline.reports()), 30, "frames of every stream")
        pipeline.stop()
        summary = pipeline.join()
    assert switches == {"gate": {"detect": False, "record": True}, "porch": {"detect": True, "record": False},
                        "yard": {"detect": False, "record": True}}
    lines = read_jsonl(tmp_path / "det2.jsonl")
    assert all(line.get("detect") is False for line in lines if line["stream"] in ("gate", "yard"))
    assert any(line["detections"] for line in lines if line["stream"] == "porch")
    assert summary.recordings["porch"] == [] and len(summary.recordings["gate"]) == 1  # (none: off from the start)
    assert f"stream 'gate': detection off, as it was left ({tmp_path / 'state' / 'switches.json'})" in caplog.text
    # Who switched what: the events of both runs.
    switched = [[(e["stream"], e["switch"], e["state"], e["by"]) for e in read_jsonl(tmp_path / f"events{run}.jsonl")
                 if e["event"] == "switch"] for run in (1, 2)]
    assert switched[0] == [("gate", "detect", "off", "python"), ("porch", "record", "off", "python"),
                           ("yard", "detect", "off", "page"), ("yard", "detect", "on", "page")]
    assert sorted(switched[1]) == [("gate", "detect", "off", "switches file"),
                                   ("porch", "record", "off", "switches file"), ("yard", "detect", "off", "schedule")]
    said = describe(next(e for e in read_jsonl(tmp_path / "events2.jsonl") if e["event"] == "switch"
                         and e["by"] == "schedule"))
    assert said.endswith("  yard: detection switched off (schedule)"), said


@pytest.mark.timeout(120)
def test_a_switch_by_hand_against_its_schedule_holds_across_a_restart_until_the_schedules_next_change(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The gate's detection is scheduled (off now, on in two hours); switched on by hand, it
    holds until then, within the run and, with the switches file, in the next run too (on from
    its first frame); a run whose schedule has changed since (another next change) starts as
    its schedule says. A switch by hand that agrees with the schedule holds nothing."""
    caplog.set_level(logging.INFO)
    later = time.localtime(time.time() + 7200)
    window = f"{later.tm_hour:02d}:00-{later.tm_hour:02d}:30"
    path = tmp_path / "state" / "switches.json"

    def run(number: int, schedule: str, switch: bool | None = None) -> tuple[dict[str, bool], dict[str, Any]]:
        config = _config(tmp_path, number)
        config["streams"] = [{**config["streams"][0], "schedule": {"detect": schedule}}]
        del config["web"]
        with Pipeline.from_config(config) as pipeline:
            pipeline.start()
            first = pipeline.switches("gate")
            until(lambda: sum(r.processed for r in pipeline.reports()) > 5, 30, "frames")
            if switch is not None:
                pipeline.set_detection("gate", switch)
            state = pipeline.reports()[0].schedule
            pipeline.stop()
        return first, state

    first, state = run(1, window, switch=True)
    assert first["detect"] is False and state["detect"]["on"] is False
    saved = json.loads(path.read_text())["streams"]["gate"]
    assert saved == {"detect": True, "detect_until": state["detect"]["until"]}
    assert time.localtime(saved["detect_until"])[3:6] == (later.tm_hour, 0, 0)
    first, state = run(2, window)
    assert first["detect"] is True and state["detect"]["on"] is False  # held by hand, the schedule's off
    assert "stream 'gate': detection on by hand until its schedule's next change, " in caplog.text
    assert all(line.get("detect") is not False for line in read_jsonl(tmp_path / "det2.jsonl"))
    assert not [e for e in read_jsonl(tmp_path / "events2.jsonl") if e["event"] == "switch"]  # (on from the start)
    # The schedule changed between the runs: its own next change; the hand's hold is over.
    first, _ = run(3, f"{later.tm_hour:02d}:30-{later.tm_hour:02d}:45", switch=False)
    assert first["detect"] is False
    assert json.loads(path.read_text())["streams"]["gate"] == {"detect": False}  # (as the schedule: nothing held)


def test_a_switches_file_that_cannot_be_read_or_written_is_said_and_the_run_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "switches.json"
    path.write_text("{not json")
    switches = SwitchFile(path)
    assert switches.load() == {}
    assert f"switches file {path}: cannot be read" in caplog.text
    switches.set("gate", "detect", False)
    assert json.loads(path.read_text()) == {"streams": {"gate": {"detect": False}}}
    assert SwitchFile(path).load() == {"gate": {"detect": False}}
    path.unlink()
    path.mkdir()  # (a folder where the file should be: no write can replace it)
    switches.set("gate", "record", False)
    switches.set("porch", "record", False)
    assert caplog.text.count(f"switches file {path}: cannot be written") == 1
    assert switches.states("gate") == {"detect": False, "record": False}  # (kept, for the streams added later)
    with pytest.raises(OutputError, match=f"switches file '{path}' is a folder"):
        Pipeline.from_config(_config(tmp_path, 1, switches_file=str(path)))


def test_check_says_where_the_switches_are_kept_and_what_was_left_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from streamyolo import cli

    config = _config(tmp_path, 1)
    SwitchFile(config["switches_file"]).set("gate", "detect", False)
    SwitchFile(config["switches_file"]).set("porch", "record", True)  # (another writer: gate's line kept)
    (tmp_path / "cams.yaml").write_text(yaml.safe_dump(config))
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
    said = capsys.readouterr().out
    assert f"switches kept in {config['switches_file']} (as left: gate: detection off)\n" in said, said
