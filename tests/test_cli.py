"""The command line as a user runs it: end to end, and every bad input's message and exit code."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import math
import re
import shutil
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamyolo import cli
from streamyolo.clock import file_stamp
from tests.conftest import need
from tests.helpers import PYTHON, ROOT, decode, env_for_subprocess, make_clip, read_jsonl, stamps
from tests.servers import HookReceiver, RtspServer, free_port, rtsp_server_available


def streamyolo(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "streamyolo", *args], capture_output=True, encoding="utf-8", timeout=timeout,
                          env=env_for_subprocess(), cwd=cwd or ROOT, check=False)


def in_process(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
               *args: str) -> subprocess.CompletedProcess[str]:
    """``streamyolo args`` in this process, as a program calls ``cli.main`` (the imports done:
    seconds less than a new process): its exit code, its stdout, and its log as the stderr."""
    caplog.set_level(logging.INFO)
    capsys.readouterr()
    caplog.clear()
    code = cli.main(list(args))
    return subprocess.CompletedProcess(list(args), code, capsys.readouterr().out, caplog.text)


@pytest.mark.timeout(300)
def test_run_two_files_with_record_jsonl_and_summary(clips: list[Path], random_model: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    with HookReceiver() as hook:
        done = streamyolo("run", "--source", f"left={clips[0]}", "--source", str(clips[1]), "--model",
                          str(random_model), "--imgsz", "160", "--record", str(out / "rec"), "--jsonl",
                          str(out / "det.jsonl"), "--summary", str(out / "summary.json"), "--stats",
                          str(out / "stats.jsonl"), "--events", str(out / "events.jsonl"), "--webhook", hook.url,
                          "--no-display")
    assert done.returncode == 0, done.stderr
    events = read_jsonl(out / "events.jsonl")
    assert hook.events == events, "the webhook got other events than the events file"
    for name in ("left", "clip1"):  # each file's stream came up, and ended
        assert [e["state"] for e in events if e["stream"] == name] == ["streaming", "ended"]
    last = read_jsonl(out / "stats.jsonl")[-1]["streams"]
    assert {name: report["processed"] for name, report in last.items()} == {"left": 12, "clip1": 12}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["streams"]) == {"left", "clip1"}
    for report in summary["streams"].values():
        assert (report["captured"], report["processed"], report["dropped"], report["state"], report["error"]) == (
            12, 12, 0, "ended", None)
    assert "left" in done.stdout and "processed" in done.stdout  # the summary table
    lines = read_jsonl(out / "det.jsonl")
    assert sorted((line["stream"], line["seq"]) for line in lines) == sorted(
        [("left", i) for i in range(12)] + [("clip1", i) for i in range(12)])
    for name in ("left", "clip1"):
        images, info = decode(out / "rec" / f"{name}.mp4")
        assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
        assert [s[1] for s in stamps(images) if s] == list(range(12))
        assert summary["streams"][name]["recordings"] == [str(out / "rec" / f"{name}.mp4")]

    # Run again (a job restarted): the first run's recordings and lines are kept. (This run and
    # the next are in this process, as a program calls ``main``: the import is done.)
    again = ["run", "--source", f"left={clips[0]}", "--model", str(random_model), "--imgsz", "160",
             "--record", str(out / "rec"), "--jsonl", str(out / "det.jsonl")]
    capsys.readouterr()
    caplog.set_level(logging.INFO)
    assert cli.main([*again, "--summary", str(out / "summary.json"), "--no-display"]) == 0
    assert f"recorded left: {out / 'rec' / 'left-2.mp4'}" in capsys.readouterr().out  # under the summary table
    assert json.loads((out / "summary.json").read_text())["streams"]["left"]["recordings"] == [
        str(out / "rec" / "left-2.mp4")]
    assert sorted(p.name for p in (out / "rec").iterdir()) == ["clip1.mp4", "left-2.mp4", "left.mp4"]
    assert len(read_jsonl(out / "det.jsonl")) == 36
    assert f"appending to JSONL file {out / 'det.jsonl'}" in caplog.text
    # --overwrite: this run's files replace the earlier ones
    assert cli.main([*again, "--overwrite", "--no-display"]) == 0
    assert sorted(p.name for p in (out / "rec").iterdir()) == ["clip1.mp4", "left-2.mp4", "left.mp4"]
    assert [(line["stream"], line["seq"]) for line in read_jsonl(out / "det.jsonl")] == [("left", i) for i in range(12)]


@pytest.mark.timeout(300)
def test_run_converts_the_pytorch_model_to_openvino_by_default_with_the_same_detections(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    # By default (--pytorch-cpu auto) the bundled demo model's network is converted into
    # --model-cache and run by OpenVINO; every frame's detections equal those of the run that
    # leaves it in PyTorch (--pytorch-cpu torch) on the same scene.
    runs = {}
    for runtime, more in (("torch", ["--pytorch-cpu", "torch"]), ("default", [])):
        jsonl = tmp_path / f"{runtime}.jsonl"
        done = in_process(capsys, caplog, "run", "--source", "synthetic:scene?seed=3&size=416x240&frames=12",
                          "--model", "demo", "--jsonl", str(jsonl), "--no-display", "--model-cache",
                          str(tmp_path / "cache"), *more)
        assert done.returncode == 0, done.stderr
        runs[runtime] = sorted(read_jsonl(jsonl), key=lambda line: line["seq"])
        converted = list((tmp_path / "cache" / "pytorch").glob("*.xml"))
        assert len(converted) == (0 if runtime == "torch" else 1), (runtime, converted)
    assert [line["seq"] for line in runs["default"]] == list(range(12))
    found = 0
    for ours, theirs in zip(runs["default"], runs["torch"], strict=True):
        assert [d["cls"] for d in ours["detections"]] == [d["cls"] for d in theirs["detections"]], ours["seq"]
        for a, b in zip(ours["detections"], theirs["detections"], strict=True):
            assert max(abs(p - q) for p, q in zip(a["xyxy"], b["xyxy"], strict=True)) <= 1.0
            assert abs(a["conf"] - b["conf"]) <= 0.01
        found += len(ours["detections"])
    assert found > 0, "no detections: the comparison would mean nothing"


@pytest.mark.timeout(120)
def test_a_street_with_classes_by_name_blur_crops_and_speeds_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """As a user runs it, on the synthetic street with the bundled model: ``--classes person car``
    (names, made the model's ids), ``--blur person`` (people blurred in the recording where the
    JSONL says they were, cars not; people never cropped; boxes drawn without labels), ``--crops``
    (the cars'), and a zone with its size in metres, the whole picture (drawn at its edges, over
    no object's middle): each object's speed in the JSONL, the cars faster than the people."""
    from streamyolo.sinks.crops import CROP_NAME
    from streamyolo.sources import SyntheticSource
    from tests.test_blur import _inner, _sharpness

    uri = "synthetic:scene?seed=3&size=416x240&fps=25&frames=50"
    config = _write(tmp_path / "street.yaml", f"model: demo\ntracker: bytetrack\nstreams:\n  - name: street\n"
                    f"    source: {uri}\n    zones:\n      road:\n"
                    "        points: [[0, 0], [416, 0], [416, 240], [0, 240]]\n        size: [20, 12]\n"
                    "        anchor: bottom\n")
    done = in_process(capsys, caplog, "run", str(config), "--classes", "person", "car", "--blur", "person",
                      "--hide-labels", "--hide-conf", "--crops", str(tmp_path / "crops"), "--record",
                      str(tmp_path / "rec"), "--jsonl", str(tmp_path / "det.jsonl"), "--no-display",
                      "--status-interval", "0")
    assert done.returncode == 0, done.stderr
    lines = read_jsonl(tmp_path / "det.jsonl")
    found = [(d["cls"], d["name"]) for line in lines for d in line["detections"]]
    assert set(found) == {(0, "person"), (1, "car")}, set(found)  # the demo model's ids; no ball
    speeds: dict[str, list[float]] = {"car": [], "person": []}
    for line in lines:
        for detection in line["detections"]:
            if "speed" in detection:
                speeds[detection["name"]].append(detection["speed"])
    assert len(speeds["car"]) >= 10 and len(speeds["person"]) >= 10, speeds
    assert np.median(speeds["person"]) < 10 < np.median(speeds["car"]) < 100, speeds
    crops = sorted((tmp_path / "crops").rglob("*.jpg"))
    assert crops and {p.parent.name for p in crops} == {"car"} and all(CROP_NAME.fullmatch(p.name) for p in crops)
    recorded, _ = decode(tmp_path / "rec" / "street.mp4")
    camera = SyntheticSource("street", uri)
    camera.open()
    raw = []
    while (frame := camera.read()) is not None and frame.image is not None:
        raw.append(frame.image)
    ratios: dict[str, list[float]] = {"person": [], "car": []}
    for line in lines:
        for detection in line["detections"]:
            rows, cols = _inner(detection["xyxy"])
            # Enough picture to tell blur from the video's compression noise, which the overlay's
            # changing numbers move from run to run: not a sliver of a person 10 pixels wide.
            sharp = _sharpness(raw[line["seq"]][rows, cols]) if rows.stop - rows.start >= 8 <= cols.stop - cols.start \
                else 0.0
            if sharp >= 100:  # enough detail to tell
                ratios[detection["name"]].append(_sharpness(recorded[line["seq"]][rows, cols]) / sharp)
    assert len(ratios["person"]) >= 10 and len(ratios["car"]) >= 10, ratios
    assert max(ratios["person"]) < 0.35 and min(ratios["car"]) > 0.5, ratios


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_misspelt_flag_is_named_with_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--source", "a.mp4", "--recrod", "rec", "--webhok-format=text", "--zzz"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "streamyolo run: error: unrecognized arguments: --recrod (did you mean --record?) "
        "--webhok-format=text (did you mean --webhook-format?) --zzz", "`streamyolo run --help` lists the options"]
    with pytest.raises(SystemExit):
        cli.main(["events", "runs/events.jsonl", "--folow"])
    assert capsys.readouterr().err.splitlines()[0].endswith("unrecognized arguments: --folow (did you mean --follow?)")


def test_a_webhook_or_broker_given_twice_is_refused_not_the_first_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    """``--webhook`` and ``--mqtt`` name one webhook, one broker: given twice, the first was
    silently dropped (argparse keeps the last); it is an error that says where more go."""
    for flag, url, told in (("--webhook", "http://127.0.0.1:9/", " (more webhooks, each with the events it gets: "
                                                                 "the config's webhooks)"),
                            ("--mqtt", "mqtt://127.0.0.1:9/", "")):
        with pytest.raises(SystemExit) as exited:
            cli.main(["run", "--source", "a.mp4", flag, url + "a", "--no-display", flag, url + "b"])
        assert exited.value.code == 2
        assert capsys.readouterr().err.splitlines() == [
            f"streamyolo run: error: argument {flag}: given twice; it takes one{told}",
            "`streamyolo run --help` lists the options"]
    assert cli.run_overrides(cli.build_parser().parse_args(["run", "--webhook", "http://127.0.0.1:9/a"]))[
        "webhook"] == "http://127.0.0.1:9/a"  # (once: taken)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing model", "model not found: 'no-such-model.pt'"),
        ("unreadable model", "not a PyTorch model file"),
        ("unknown config key", "unknown config key 'frobnicate'"),
        ("wrong type", "config key 'workers'"),
        ("unsupported scheme", "unsupported source scheme 'ftp'"),
        ("missing file", "stream 'ghost': file not found"),
        ("output not writable", "recording folder"),
        ("jsonl not writable", "JSONL file"),
        ("missing config file", "config file not found"),
        ("class the model lacks", "config key 'streams.0.zones.drive.classes': class 7 is not one of the model's "
                                  "3 classes (0 person, 1 car, 2 ball)"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_2(case: str, expected: str, clips: list[Path], tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    clip = str(clips[0])
    blocker = _write(tmp_path / "a-file", "not a folder")
    args = {
        "missing model": ["run", "--source", clip, "--model", "no-such-model.pt"],
        "unreadable model": ["run", "--source", clip, "--model", str(_write(tmp_path / "garbage.pt", "garbage"))],
        "unknown config key": ["run", str(_write(tmp_path / "key.yaml", f"streams: [{clip}]\nfrobnicate: 1\n"))],
        "wrong type": ["run", str(_write(tmp_path / "type.yaml", f"streams: [{clip}]\nworkers: many\n"))],
        "unsupported scheme": ["run", "--source", "ftp://example.com/cam.mp4"],
        "missing file": ["run", "--source", f"ghost={tmp_path / 'ghost.mp4'}"],
        "output not writable": ["run", "--source", clip, "--record", str(blocker / "rec")],
        "jsonl not writable": ["run", "--source", clip, "--jsonl", str(blocker / "x.jsonl")],
        "missing config file": ["run", str(tmp_path / "nope.yaml")],
        "class the model lacks": ["run", str(_write(tmp_path / "classes.yaml", json.dumps({
            "model": "demo", "streams": [{"source": clip, "zones": {"drive": {
                "points": [[0, 0], [9, 0], [9, 9]], "classes": [7]}}}]}))), "--jsonl", str(tmp_path / "no.jsonl")],
    }[case]
    if case == "unknown config key":  # as a user's shell runs it: the line on stderr
        done = streamyolo(*args, "--no-display")
        assert done.returncode == 2, (done.returncode, done.stderr)
        errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and errors[0].startswith("streamyolo: ERROR: "), done.stderr
        assert expected in errors[0] and "Traceback" not in done.stderr
    else:  # the others in this process, as a program calls ``main`` (the imports done: seconds less)
        caplog.set_level(logging.INFO)
        assert cli.main([*args, "--no-display"]) == 2
        errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1, caplog.text
        assert expected in errors[0].getMessage() and errors[0].exc_info is None
    if case == "class the model lacks":  # found once the model is loaded, before any frame is processed
        assert (tmp_path / "no.jsonl").read_text() == ""


@pytest.mark.timeout(120)
def test_check_shows_the_plan_and_with_connect_reads_every_source_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``streamyolo check``: what run checks before it starts, the plan, no run; with
    ``--connect`` each source opened and read once, a dead camera and a damaged file named;
    with ``--load-model`` the model built and run on the frames read (a bad one: exit 2)."""
    config = _write(tmp_path / "cams.yaml", json.dumps({
        "model": "demo", "tracker": "bytetrack", "record": str(tmp_path / "rec"),
        "streams": [{"name": "street", "source": "synthetic:scene?size=416x240", "max_fps": 5,
                     "zones": {"kerb": [[0, 0], [100, 0], [100, 100]]}, "masks": {"tree": [[0, 0], [9, 0], [9, 9]]},
                     "lines": {"gate": [[0, 540], [1920, 540]]}},  # drawn on a 1080p picture: beyond this one
                    {"name": "door", "source": f"rtsp://127.0.0.1:{free_port()}/stream", "record": False},
                    {"name": "old", "source": str(_write(tmp_path / "old.mp4", "not a video"))}]}))
    done = streamyolo("check", str(config))
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "rec").exists() or not list((tmp_path / "rec").iterdir()), "nothing recorded"
    plan = done.stdout
    assert re.search(r"street +synthetic:scene\?size=416x240 +\(synthetic; lossless, buffer 8; 5 fps at most; "
                     r"lines gate; zones kerb; masks tree\)", plan), plan
    assert re.search(r"door +rtsp://127\.0\.0\.1:\d+/stream +\(rtsp; live, buffer 2; not recorded\)", plan), plan
    assert re.search(r"model .*demo_model\.pt on auto \(cpu\): \d thread worker\(s\), tracked by bytetrack", plan)
    assert f"outputs: recordings in {tmp_path / 'rec'}" in plan
    # Without --load-model, on a box without a GPU, torch is not even imported (seconds on a
    # small box): nothing but the model's build needs it.
    script = ("import sys; from streamyolo import cli; from streamyolo.inference.models import no_gpu_here; "
              "cpu_only = no_gpu_here(); code = cli.main(['check', sys.argv[1]]); "
              "print(code, cpu_only, 'torch' in sys.modules, 'ultralytics' in sys.modules)")
    done = subprocess.run([PYTHON, "-c", script, str(config)], capture_output=True, encoding="utf-8", timeout=60,
                          env=env_for_subprocess(), cwd=ROOT, check=False)
    code, cpu_only, *imported = done.stdout.splitlines()[-1].split()
    assert code == "0" and imported == ["False", "False"] if cpu_only == "True" else ["True", "False"], done.stdout
    done = in_process(capsys, caplog, "check", str(config), "--connect", "--load-model")
    assert done.returncode == 1, done.stderr
    probes = done.stdout.split("sources, opened once:\n")[1].splitlines()
    # The model, loaded as a worker loads it, run on the first frame of each source read.
    assert re.search(r"model loaded in [\d.]+ s:\n  street: (\d+ \w+(, )?)+ in \d+ ms$", done.stdout), done.stdout
    assert re.fullmatch(r" +street +ok: 416x240 at 30 fps, synthetic", probes[0]), probes
    assert re.fullmatch(r" +door +FAILED: stream 'door' \(rtsp://.*\): cannot open: Connection refused", probes[1])
    assert re.fullmatch(r" +old +FAILED: stream 'old' .*", probes[2]), probes
    said = {(record.levelname, record.getMessage()) for record in caplog.records}
    assert ("ERROR", "2 of 3 source(s) could not be read: door, old") in said, said
    assert any(level == "WARNING" and message.startswith("stream 'street': line 'gate' reaches (0, 540), outside its "
                                                         "416x240 picture") for level, message in said), said
    done = streamyolo("check", "--source", f"ghost={tmp_path / 'ghost.mp4'}")
    assert done.returncode == 2 and "stream 'ghost': file not found" in done.stderr, done.stderr
    # Beside a stream that can run: the plan, the missing one marked (a run goes on without it), exit 2.
    done = streamyolo("check", "--source", "synthetic:", "--source", f"ghost={tmp_path / 'ghost.mp4'}")
    assert done.returncode == 2, done.stderr
    assert re.search(r"\n +ghost +\S+ghost\.mp4 +\(file; [^)]*\) FAILS: file not found: ", done.stdout), done.stdout
    assert done.stderr.strip().splitlines()[-1] == "streamyolo: ERROR: 1 of 2 stream(s) cannot be read: ghost"
    done = streamyolo("check", "--source", "synthetic:", "--model", str(_write(tmp_path / "bad.pt", "garbage")),
                      "--load-model")
    assert done.returncode == 2 and "bad.pt': not a PyTorch model file" in done.stderr, done.stderr


@pytest.mark.timeout(120)
def test_check_says_how_much_of_the_live_streams_the_model_can_take(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``check --connect --load-model`` times the model on each live stream's first frame and
    says what share of the model's time their frames ask: two 400 fps cameras ask far more
    than it has (so much of them processed, the rest skipped); one thinned to 1 frame a second
    (and a file beside it, which waits for the model) asks a small share."""
    def check(*streams: dict[str, object]) -> str:
        config = _write(tmp_path / "cams.yaml", json.dumps({"model": "demo", "streams": list(streams)}))
        done = in_process(capsys, caplog, "check", str(config), "--connect", "--load-model")
        assert done.returncode == 0, done.stderr
        return done.stdout

    fast = [{"name": f"cam{i}", "source": "synthetic:scene?size=416x240&fps=400", "realtime": True} for i in range(2)]
    said = check(*fast)
    took = [int(ms) for ms in re.findall(r"^  cam\d: .* in (\d+) ms$", said, re.MULTILINE)]
    assert len(took) == 2, said
    share = re.search(r"^capacity, at best \(the model alone; decoding takes its share of the cores too\): the live "
                      r"streams send 800 frames/s, which take (\d+)% of the model's time: about (\d+)% of their "
                      r"frames can be processed, the others skipped .*sub streams.*`streamyolo bench`", said,
                      re.MULTILINE)
    assert share is not None, said
    asked = int(share.group(1))
    assert abs(asked - sum(400 * ms / 10 for ms in took)) <= 0.1 * asked + 5, (asked, took)  # (ms rounded)
    assert abs(int(share.group(2)) - 10000 / asked) <= 1, said  # (the share of the time asked it has)
    slow = {"name": "gate", "source": "synthetic:scene?size=416x240&fps=25", "realtime": True, "max_fps": 1}
    said = check(slow, {"name": "file", "source": "synthetic:scene?size=416x240&frames=50"})
    assert re.search(r"^capacity, .*: the live streams send 1 frames/s, which take \d+% of the model's time: every "
                     r"frame can be processed", said, re.MULTILINE), said


@pytest.mark.timeout(60)
def test_a_disabled_stream_is_checked_but_not_run(tmp_path: Path) -> None:
    """``enabled: false`` (here through ``stream_defaults``, one stream turning itself back on):
    the stream is not run, its file and model need not be there (nor its classes' names be
    read from it), check lists it apart; its keys are still checked; every stream disabled is
    an error."""
    door = {"points": [[0, 0], [50, 0], [50, 50]], "classes": ["person"]}
    streams = [{"name": "porch", "source": str(tmp_path / "gone.mp4"), "model": "missing.pt", "classes": ["person"],
                "zones": {"door": door}},
               {"name": "gate", "source": "synthetic:?size=160x120&frames=5", "enabled": True},
               {"name": "yard", "source": "synthetic:?size=160x120&frames=5"}]
    config = _write(tmp_path / "cams.yaml", json.dumps({"model": "demo", "stream_defaults": {"enabled": False},
                                                        "streams": streams, "summary": str(tmp_path / "s.json")}))
    done = streamyolo("check", str(config))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^1 stream\(s\):\n  gate +synthetic:", done.stdout, re.M), done.stdout
    assert "  disabled (enabled: false): porch, yard" in done.stdout, done.stdout
    done = streamyolo("run", str(config), "--no-display", "--imgsz", "64")
    assert done.returncode == 0, done.stderr
    assert list(json.loads((tmp_path / "s.json").read_text())["streams"]) == ["gate"]
    config.write_text(json.dumps({"stream_defaults": {"enabled": False}, "streams": streams[2:]}))
    done = streamyolo("check", str(config))
    assert done.returncode == 2 and "every stream is disabled (enabled: false): nothing to watch" in done.stderr
    config.write_text(json.dumps({"streams": [{**streams[2], "enabled": False, "buffer": 0}, streams[1]]}))
    done = streamyolo("check", str(config))
    assert done.returncode == 2 and "config key 'streams.0.buffer'" in done.stderr, done.stderr


@pytest.mark.timeout(60)
def test_thresholds_by_class_from_the_command_line(tmp_path: Path) -> None:
    """``--class-conf person=0.6 ball=0.2``: names as the model names them, shown by check
    (beside how long recordings are kept, with objects and without); a threshold without its
    class, or not a number, is a usage error naming it."""
    done = streamyolo("check", "--source", "synthetic:", "--class-conf", "person=0.6", "2=0.2", "--record",
                      str(tmp_path / "rec"), "--record-segment", "10m", "--record-keep", "2d", "--record-keep-objects",
                      "30d")
    assert done.returncode == 0, done.stderr
    assert f"recordings in {tmp_path / 'rec'}, 10m files, kept 2d (30d those with objects), " in done.stdout, (
        done.stdout)
    room = re.search(r"those with objects\), ([\d.]+) ([KMGT]?B) free", done.stdout)  # the room on its disk
    assert room is not None, done.stdout
    free = float(room[1]) * {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[room[2]]
    assert abs(free - shutil.disk_usage(tmp_path).free) / free < 0.01
    assert re.search(r"synthetic: +\(synthetic; .*; class 0 above 0\.6, class 2 above 0\.2\)", done.stdout), done.stdout
    # --record-objects: which objects keep a segment longer (by name: each stream's, as its model numbers them).
    done = streamyolo("check", "--source", "synthetic:", "--record", str(tmp_path / "rec"), "--record-segment", "10m",
                      "--record-keep", "2d", "--record-keep-objects", "30d", "--record-objects", "person", "ball")
    assert done.returncode == 0, done.stderr
    marked = r"synthetic: +\(synthetic; .*; segments kept longer for class\(es\) 0, 2\)"
    assert re.search(marked, done.stdout), done.stdout
    # Segments and nothing that deletes them: said (a 24/7 box's disk fills up).
    done = streamyolo("check", "--source", "synthetic:", "--record", str(tmp_path / "rec"), "--record-segment", "10m")
    assert (f"recordings in {tmp_path / 'rec'}, 10m files, none deleted (no record_keep or record_max_size: once the "
            "disk is full, recording pauses), ") in done.stdout, done.stdout
    done = streamyolo("check", "--source", "synthetic:", "--record-objects", "person")
    assert done.returncode == 2 and "config keys 'record_objects' and 'record_keep_objects'" in done.stderr
    for wrong in ("person", "person=high", "=0.5"):
        done = streamyolo("check", "--source", "synthetic:", "--class-conf", wrong)
        assert done.returncode == 2 and f"argument --class-conf: {wrong!r}: expected CLASS=CONF, as person=0.6" in \
            done.stderr, done.stderr
    done = streamyolo("check", "--source", "synthetic:", "--class-conf", "unicorn=0.5")
    assert done.returncode == 2 and "config key 'class_conf': 'unicorn' is not one of the model's 3 classes" in \
        done.stderr, done.stderr


@pytest.mark.timeout(120)
def test_the_config_file_takes_secrets_and_paths_from_the_environment(tmp_path: Path, people_video: Path) -> None:
    """``${NAME}`` in the config file is environment variable ``NAME``: a camera's password
    kept out of the file reaches the camera (a real RTSP server that asks for it), and is never
    shown; a file is found where a variable says; a variable not set is an error naming the key
    and the variable."""
    need(rtsp_server_available())
    secret = "s3cr3t-Pa55"
    server = RtspServer(make_clip(tmp_path / "door.mp4", "door", frames=60, size=(320, 240), fps=15),
                        user="admin", password=secret)
    server.start()
    try:
        config = _write(tmp_path / "cams.yaml", json.dumps({
            "model": "demo", "streams": [{"name": "street", "source": "${VIDEOS}/" + people_video.name},
                                         {"name": "door", "source": server.url(credentials=False).replace(
                                             "rtsp://", "rtsp://admin:${DOOR_PASSWORD}@")}],
            "summary": "$${NOT_A_VARIABLE}.json"}))

        def check(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run([PYTHON, "-m", "streamyolo", "check", str(config), "--connect"], capture_output=True,
                                  encoding="utf-8", timeout=60, env={**env_for_subprocess(), **environ},
                                  cwd=tmp_path, check=False)

        done = check({"VIDEOS": str(people_video.parent), "DOOR_PASSWORD": secret})
        assert done.returncode == 0, done.stderr
        assert re.search(r"street +ok: 1920x1080 at [\d.]+ fps, h264", done.stdout), done.stdout
        assert re.search(r"door +ok: 320x240 at 15 fps, h264", done.stdout), done.stdout
        assert re.search(rf"door +rtsp://admin:\*\*\*@127\.0\.0\.1:{server.port}/stream ", done.stdout), done.stdout
        assert "summary to ${NOT_A_VARIABLE}.json" in done.stdout, done.stdout
        assert secret not in done.stdout + done.stderr
        done = check({"VIDEOS": str(people_video.parent), "DOOR_PASSWORD": "wrong"})
        assert done.returncode == 1 and re.search(r"door +FAILED: .*(401|[Uu]nauthori[sz]ed)", done.stdout), done.stdout
        done = check({"VIDEOS": str(people_video.parent)})
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == (
            f"streamyolo: ERROR: config key 'streams.1.source': environment variable 'DOOR_PASSWORD' is not set "
            f"(in {config})"), done.stderr
    finally:
        server.kill()


@pytest.mark.timeout(120)
def test_all_streams_dead_at_runtime_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    config = _write(tmp_path / "dead.yaml", f"streams: ['broken={bad}', 'dead=rtsp://127.0.0.1:9/none']\n"
                    "stream_defaults: {reconnect: {attempts: 2, base: 0.05}}\n")
    done = in_process(capsys, caplog, "run", str(config), "--model", "yolo26n.yaml", "--imgsz", "64", "--no-display")
    assert done.returncode == 1, done.stderr
    assert "no stream could be processed" in done.stderr
    assert "broken" in done.stdout and "failed" in done.stdout


@pytest.mark.timeout(60)
def test_python_dash_m_and_help() -> None:
    done = streamyolo("run", "--help")
    assert done.returncode == 0
    for flag in ("--source", "--model", "--workers", "--device", "--record", "--jsonl", "--summary",
                 "--display", "--no-display", "--duration", "--conf", "--iou", "--imgsz", "--classes", "--half"):
        assert flag in done.stdout


def _while_running(process: subprocess.Popen[str], done: Callable[[], bool]) -> None:
    """Wait (at most a minute) until ``done()``, the streamyolo ``process`` running all the while."""
    for _ in range(600):
        if done():
            return
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.timeout(120)
def test_watch_config_reloads_the_config_file_when_it_changes(tmp_path: Path) -> None:
    """``--watch-config``: a camera added to the file (written as editors do: a new file renamed
    over it) starts without a signal, and one whose source takes a variable of the ``env_file``
    restarts when that file changes; a broken file changes nothing; the run goes on, and
    SIGTERM ends it as ever. Without a config file there is nothing to watch (exit 2)."""
    import signal

    out = tmp_path / "out"
    config, secrets = tmp_path / "cams.yaml", tmp_path / "secrets.env"
    jsonl = out / "det.jsonl"

    def write(text: str, path: Path = config) -> None:
        fresh = tmp_path / ".new"
        fresh.write_text(text)
        fresh.replace(path)

    def streams(*names: str) -> str:
        return json.dumps({"streams": [{"name": name, "source": f"synthetic:?size=160x120&fps=${{{name.upper()}_FPS}}",
                                        "realtime": True} for name in names], "env_file": str(secrets),
                           "model": "demo", "imgsz": 96, "jsonl": str(jsonl),
                           "summary": str(out / "summary.json"), "display": False, "status_interval": 0})

    def late_started_again() -> bool:
        seqs = [line["seq"] for line in read_jsonl(jsonl) if line["stream"] == "late"]
        return any(later < earlier for earlier, later in itertools.pairwise(seqs))

    write("CAM_FPS=10\nLATE_FPS=10\n", secrets)
    write(streams("cam"))
    process = subprocess.Popen([PYTHON, "-m", "streamyolo", "run", str(config), "--watch-config"],
                               env=env_for_subprocess(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               encoding="utf-8")

    try:
        _while_running(process, lambda: jsonl.exists() and jsonl.read_text().count("\n") >= 10)
        write(streams("cam", "late"))
        _while_running(process, lambda: '"stream":"late"' in jsonl.read_text())
        write("CAM_FPS=10\nLATE_FPS=12\n", secrets)
        _while_running(process, late_started_again)
        write("streams: [")  # broken: the run goes on as it was
        time.sleep(3)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"watching {config} and {secrets}: the config is read again whenever one changes" in stderr
    assert stderr.count("the config file changed: reloading the config") == 3, stderr
    assert "config reloaded: added 'late'" in stderr and "config not reloaded: config file" in stderr, stderr
    assert "config reloaded: restarted with new settings 'late'" in stderr, stderr
    assert sorted(json.loads((out / "summary.json").read_text())["streams"]) == ["cam", "late"]
    done = streamyolo("run", "--source", "synthetic:?frames=5", "--watch-config")
    assert done.returncode == 2 and "--watch-config: nothing to watch: the run has no config file" in done.stderr


@pytest.mark.timeout(180)
def test_sighup_reloads_the_config_and_sigterm_stops_gracefully_with_recordings_and_summary(
        tmp_path: Path, systemd: tuple[str, list[tuple[float, str]]]) -> None:
    """SIGHUP mid-run reads the config file again: a camera added to it starts, a broken file
    changes nothing (the run goes on). SIGTERM then: capture stops, frames in flight are
    processed, the recording holds exactly the processed frames, the summary is written, and
    the exit code is 0. The run is a systemd service's (``Type=notify``, ``WatchdogSec``): the
    test is its systemd, on the socket ``$NOTIFY_SOCKET`` names, and hears it get ready, feed
    the watchdog, reload and stop."""
    import signal

    out = tmp_path / "out"
    config = tmp_path / "cams.yaml"

    def write(streams: list[Any], **extra: Any) -> None:
        config.write_text(json.dumps({
            "streams": streams, "model": "demo", "imgsz": 96, "record": str(out / "rec"),
            "jsonl": str(out / "det.jsonl"), "summary": str(out / "summary.json"), "display": False,
            "status_interval": 0, **extra}))

    write(["cam=synthetic:?size=320x240&fps=30"])  # a lossless stream: every frame
    address, heard = systemd
    env = {**env_for_subprocess(), "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}  # WatchdogSec=1
    process = subprocess.Popen([PYTHON, "-m", "streamyolo", "run", str(config)], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8")
    jsonl = out / "det.jsonl"

    try:
        _while_running(process, lambda: jsonl.exists() and jsonl.read_text().count("\n") >= 40)
        write(["cam=synthetic:?size=320x240&fps=30",
               {"name": "late", "source": "synthetic:?size=160x120&fps=10", "realtime": True}], batch=2)
        process.send_signal(signal.SIGHUP)
        _while_running(process, lambda: '"stream":"late"' in jsonl.read_text())
        config.write_text("streams: [")  # broken: the run goes on as it was
        process.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    said = [message for _, message in heard if message != "WATCHDOG=1"]
    assert re.fullmatch(r"READY=1\nSTATUS=1 stream: 1 (streaming|connecting); [\d.]+ frames/s", said[0]), said
    reloads = [index for index, message in enumerate(said) if message.startswith("RELOADING=1\nMONOTONIC_USEC=")]
    assert len(reloads) == 2, said  # the good config and the broken one: each followed by READY=1
    assert all(said[index + 1].startswith("READY=1\nSTATUS=2 streams: ") for index in reloads), said
    stopping = said.index("STOPPING=1\nSTATUS=stopping")
    assert stopping > reloads[-1] + 1 and all(message.startswith("STATUS=") for message in said[stopping + 1:]), said
    # and, between those, how it goes as it changes
    assert any(re.fullmatch(r"STATUS=(1 stream: 1|2 streams: 2) streaming; [\d.]+ frames/s", message)
               for message in said), said
    pings = [at for at, message in heard if message == "WATCHDOG=1"]
    assert len(pings) >= 3 and max(b - a for a, b in itertools.pairwise(pings)) < 1.0, pings  # within WatchdogSec
    assert "config reloaded: added 'late'" in stderr
    assert "config reloaded, but batch changed, which apply only when the run starts again" in stderr
    assert "config not reloaded: " in stderr and "; the run goes on as it was" in stderr
    summary = json.loads((out / "summary.json").read_text())["streams"]
    report = summary["cam"]
    assert report["state"] == "stopped"
    assert report["captured"] == report["processed"] + report["dropped"]
    assert report["dropped"] == 0  # lossless: frames in flight were finished, not thrown away
    lines = read_jsonl(jsonl)
    assert len([line for line in lines if line["stream"] == "cam"]) == report["processed"]
    images, _ = decode(out / "rec" / "cam.mp4")
    assert [s[1] for s in stamps(images) if s] == list(range(report["processed"]))
    assert summary["late"]["recordings"] == [str(out / "rec" / "late.mp4")] and "\nlate " in stdout
    assert "stopping" in stderr


@pytest.mark.timeout(60)
def test_second_interrupt_exits_at_once(tmp_path: Path) -> None:
    """The first SIGINT asks for a graceful stop; a second one during the stop quits with 130."""
    import signal

    script = tmp_path / "slow_stop.py"
    script.write_text(
        "import sys, threading\n"
        "from streamyolo.cli import _Interrupts\n"
        "_Interrupts().install()\n"
        "try:\n"
        "    print('ready', flush=True)  # inside the try: the signal may come at once\n"
        "    threading.Event().wait(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('stopping', flush=True)\n"
        "    threading.Event().wait(60)  # a slow graceful stop\n"
        "sys.exit(0)\n"
    )
    process = subprocess.Popen([PYTHON, str(script)], env=env_for_subprocess(), stdout=subprocess.PIPE,
                               encoding="utf-8")
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGINT)
    assert process.stdout.readline().strip() == "stopping"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130


@pytest.mark.timeout(300)
def test_bench_reports_the_limit_and_the_capacity_for_the_users_own_files(clips: list[Path]) -> None:
    done = streamyolo("bench", "--model", "yolo26n.yaml", "--imgsz", "160", "--seconds", "0.2", "--max-streams", "2",
                      "--source", str(clips[0]), "--source", str(clips[1]), "--region", "0,0,200,160")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert {"model", "decode", "limit", "streamyolo", "capacity:", "live:"} <= set(lines), done.stdout
    assert lines["region"] == ("region (0, 0)-(200, 160): the model on that part of each picture only (M on whole "
                               "pictures, at the same input size)"), done.stdout
    assert "P/L = " in lines["streamyolo"] and "every frame processed" in lines["streamyolo"]
    assert re.search(r"^capacity: \d+ streams? like these", lines["capacity:"]), done.stdout
    # Live mode, measured: 1 stream, then 2 (the most asked for), unless 1 already fell short.
    live = re.findall(r"^ +(\d+) streams? *: +([\d.]+) frames/s detected in each, p99 frame age (\d+) ms",
                      done.stdout, re.MULTILINE)
    assert [count for count, _, _ in live] in (["1", "2"], ["1"]), done.stdout
    assert all(float(rate) > 0 and int(age) > 0 for _, rate, age in live), done.stdout


@pytest.mark.timeout(300)
@pytest.mark.alone  # which of PyTorch and the converted network measures faster: another test beside it could tip it
def test_bench_with_the_pytorch_model_on_openvino_measures_the_converted_network(tmp_path: Path) -> None:
    clip = tmp_path / "scene.mp4"
    make_clip(clip, "scene", frames=30, size=(416, 240))
    done = streamyolo("bench", "--model", "demo", "--imgsz", "320", "--seconds", "0.2", "--max-streams", "1",
                      "--pytorch-cpu", "openvino", "--motion", "--tiles", "2x2", "--source", str(clip))
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "converted to OpenVINO" in lines["model"], done.stdout
    # --motion: the scene's people and cars always move, so the model ran on (nearly) every frame.
    assert re.fullmatch(r"motion: the model ran on (9\d|100)% of the frames; the others were still", lines["motion:"])
    assert lines["tiles"] == ("tiles 2x2 (overlap 20%) and the whole picture: 5 passes a frame; "
                              "M and L count pictures, P frames"), done.stdout
    assert "P/L = " in lines["streamyolo"] and re.search(r"^ +1 stream *: ", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("option", "value"), [("--seconds", "0"), ("--max-streams", "0"), ("--workers", "0")])
def test_bench_refuses_a_count_or_duration_that_is_not_positive(clips: list[Path], option: str, value: str) -> None:
    done = streamyolo("bench", "--model", "yolo26n.yaml", "--source", str(clips[0]), option, value)
    assert done.returncode == 2
    assert f"bench {option} must be positive, got {value}" in done.stderr and "Traceback" not in done.stderr
    if option == "--seconds":  # (and a region that is none)
        done = streamyolo("bench", "--model", "yolo26n.yaml", "--source", str(clips[0]), "--region", "50,0,10,90")
        assert done.returncode == 2 and "bench --region '50,0,10,90': must be x1,y1,x2,y2 in pixels" in done.stderr


@pytest.mark.timeout(60)
def test_bench_refuses_what_is_not_a_local_video_file(tmp_path: Path) -> None:
    done = streamyolo("bench", "--model", "yolo26n.yaml", "--source", "rtsp://127.0.0.1:9/cam")
    assert done.returncode == 2
    assert "bench needs local video files" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_bench_refuses_a_file_that_is_not_a_video_it_can_read(
        clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A config given as a source, a recording cut short, a sound file: one line naming it
    (as ``check --connect`` says of them), before anything is measured."""
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clips[0].read_bytes()[:100])
    sound = tmp_path / "sound.wav"
    with wave.open(str(sound), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(bytes(1600))
    for path, said in ((_write(tmp_path / "cams.yaml", f"streams: [{clips[0]}]\n"), "cannot open: Invalid data"),
                       (cut, "cannot open: Invalid data"), (sound, "has no video stream")):
        _one_error(in_process(capsys, caplog, "bench", "--model", "demo", "--source", str(path), "--seconds", "1",
                              "--max-streams", "1"), f"bench --source '{path}': {said}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_stdout_holds_the_report_alone_without_ultralytics_chatter(shared_model: Path, mode: str) -> None:
    """Ultralytics prints "Loading … for OpenVINO inference..." to stdout when it loads an
    OpenVINO model (in every worker, and in process mode in every child); the command line
    keeps its logger at WARNING, so that stdout is the summary table alone. ``--log-level
    DEBUG`` lets it through, to stderr with the rest of the log."""
    args = ("run", "--model", str(shared_model), "--source", "synthetic:scene?frames=6&size=320x240",
            "--no-display", "--status-interval", "0", "--worker-mode", mode)
    done = streamyolo(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "stream  state  captured  processed  dropped  reconnects  error",
        "cam0    ended  6         6          0        0"], done.stdout
    assert "for OpenVINO inference" not in done.stderr
    if mode == "thread":  # what the default keeps quiet (once is enough: a child costs seconds)
        chatty = streamyolo("--log-level", "DEBUG", *args)
        assert chatty.returncode == 0, chatty.stderr
        assert "for OpenVINO inference" in chatty.stderr and "for OpenVINO inference" not in chatty.stdout


@pytest.mark.timeout(120)
def test_ultralytics_warnings_go_to_stderr_beside_ours() -> None:
    done = streamyolo("run", "--model", "demo", "--source", "synthetic:scene?frames=3&size=320x240", "--imgsz", "650",
                      "--no-display", "--status-interval", "0")
    assert done.returncode == 0, done.stderr
    assert "imgsz=[650] must be multiple of max stride 32" in done.stderr
    assert done.stdout.splitlines()[0].startswith("stream  state"), done.stdout


def _one_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit code 2 and, in the log, one error line, which holds ``expected``, and no traceback."""
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert done.returncode == 2 and len(errors) == 1, (done.returncode, done.stderr)
    assert expected in errors[0] and "Traceback" not in done.stderr, done.stderr


@pytest.mark.timeout(60)
def test_a_config_file_that_is_not_utf8_is_one_line_in_every_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes(b"# cam\xe9ra\nmodel: demo\nstreams:\n  - people.mp4\n")
    said = f"cannot read config file '{config}': not UTF-8 text"
    for command in (["run"], ["check"], ["events"], ["status"], ["export", "--stream", "a", "--last", "1h"]):
        _one_error(in_process(capsys, caplog, command[0], str(config), *command[1:]), said)
    config.write_bytes("model: demo\nstreams:\n  - people.mp4\n".encode("utf-16"))
    done = streamyolo("check", str(config))  # as a user's shell runs it
    _one_error(done, f"cannot read config file '{config}': not UTF-8 text")


@pytest.mark.timeout(60)
def test_outputs_on_one_path_are_refused_before_anything_is_written(
        clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    same = tmp_path / "same.jsonl"
    for command in ("run", "check"):
        _one_error(in_process(capsys, caplog, command, "--source", str(clips[0]), "--jsonl", str(same), "--summary",
                              str(same), "--no-display"),
                   f"config keys 'jsonl' and 'summary': both are '{same}'; give each a file of its own")
    assert not same.exists()
    victim = _write(tmp_path / "victim.yaml", f"streams: [{clips[0]}]\nsummary: {tmp_path / 'victim.yaml'}\n")
    before = victim.read_text()
    _one_error(in_process(capsys, caplog, "run", str(victim), "--no-display"),
               f"config key 'summary': '{victim}' is the config file, which the run reads")
    assert victim.read_text() == before
    _one_error(in_process(capsys, caplog, "check", "--source", str(clips[0]), "--jsonl", str(clips[0])),
               f"config key 'jsonl': '{clips[0]}' is the source of streams.0, which the run reads")
    _one_error(in_process(capsys, caplog, "check", "--source", str(clips[0]), "--record", str(tmp_path / "d"),
                          "--snapshots", str(tmp_path / "d")),
               f"config keys 'record' and 'snapshots': both are '{tmp_path / 'd'}'; give each a folder of its own")


@pytest.mark.timeout(60)
def test_export_to_a_folder_is_one_line_and_to_a_missing_folder_makes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``export --out`` naming a folder (with ``--overwrite`` too) or a file under a file: one
    line naming it, exit 2; a folder not made yet is made, as a run makes its outputs'."""
    start = float(math.floor(time.time()) - 60)
    recordings = tmp_path / "rec"
    recordings.mkdir()
    make_clip(recordings / f"cam-{file_stamp(start)}.mp4", "cam", frames=12)
    span = ("--stream", "cam", "--from", str(start - 1), "--to", str(start + 10))
    taken = tmp_path / "taken"
    taken.mkdir()
    for overwrite in ((), ("--overwrite",)):
        _one_error(in_process(capsys, caplog, "export", str(recordings), *span, "--out", str(taken), *overwrite),
                   f"export file '{taken}' is a folder")
    blocker = _write(tmp_path / "a-file", "not a folder")
    _one_error(in_process(capsys, caplog, "export", str(recordings), *span, "--out", str(blocker / "j.mp4")),
               f"export file '{blocker / 'j.mp4'}': folder cannot be created")
    out = tmp_path / "missing" / "dir" / "j.mp4"
    done = in_process(capsys, caplog, "export", str(recordings), *span, "--out", str(out))
    assert done.returncode == 0 and done.stdout.rstrip().endswith(f"to {out}"), done.stderr
    assert len(decode(out)[0]) == 12


@pytest.mark.timeout(60)
def test_status_json_into_head_ends_quietly(tmp_path: Path) -> None:
    """``status --json | head -c 600``, a long status (many streams): what head took, no
    traceback when it goes away, and the exit code the run's state gives."""
    stats = tmp_path / "stats.jsonl"
    streams = {f"cam{i}": {"state": "streaming", "captured": i, "processed": i, "dropped": 0} for i in range(3000)}
    stats.write_text(json.dumps({"time": time.time(), "streams": streams}) + "\n", encoding="utf-8")
    config = _write(tmp_path / "cams.yaml", f"streams: ['synthetic:']\nstats: {stats}\nstats_interval: 60\n")
    done = subprocess.run(["bash", "-c", f"set -o pipefail; '{PYTHON}' -m streamyolo status '{config}' --json | "
                           "head -c 600"], capture_output=True, encoding="utf-8", timeout=60, env=env_for_subprocess(),
                          cwd=ROOT, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert len(done.stdout) == 600 and done.stdout.startswith('{\n "running": true'), done.stdout[:100]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("given", ["environment", "env file"])
def test_events_of_a_file_follow_the_timezone_variable(tmp_path: Path, given: str) -> None:
    """``STREAMYOLO_TIMEZONE`` sets the zone of ``streamyolo events`` given the events file,
    as given the config: on a UTC box, Kathmandu's time (5:45 ahead); set in the environment,
    or in ``STREAMYOLO_ENV_FILE`` (a service's, which wins, as a config takes it)."""
    from zoneinfo import ZoneInfo

    if given == "env file":
        variables = {"STREAMYOLO_ENV_FILE": str(_write(tmp_path / "cams.env", "STREAMYOLO_TIMEZONE=Asia/Kathmandu\n")),
                     "STREAMYOLO_TIMEZONE": "Europe/Berlin"}
    else:
        variables = {"STREAMYOLO_TIMEZONE": "Asia/Kathmandu"}

    moment = 1796457794.0
    path = _write(tmp_path / "events.jsonl", json.dumps({"time": moment, "stream": "gate", "event": "line",
                                                         "line": "door", "direction": "in", "id": 4,
                                                         "name": "person"}) + "\n")
    done = subprocess.run([PYTHON, "-m", "streamyolo", "events", str(path), "--newest", "1", "--text"],
                          capture_output=True, encoding="utf-8", timeout=60, cwd=ROOT, check=False,
                          env={**env_for_subprocess(), "TZ": "UTC", **variables})
    shown = dt.datetime.fromtimestamp(moment, ZoneInfo("Asia/Kathmandu")).strftime("%Y-%m-%d %H:%M:%S")
    assert (done.returncode, done.stdout) == (0, f"{shown}  gate: person #4 crossed door (in)\n"), done.stderr


@pytest.mark.timeout(60)
def test_events_and_export_refuse_an_end_before_the_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "events.jsonl", json.dumps({"time": time.time(), "stream": "gate", "event": "up"}) + "\n")
    (tmp_path / "rec").mkdir()
    day = time.strftime("%Y-%m-%d")
    said = f"--to: the end ({day} 12:11:30) is not after the start ({day} 12:11:40)"
    span = ("--from", "12:11:40", "--to", "12:11:30")
    _one_error(in_process(capsys, caplog, "events", str(path), *span), said)
    _one_error(in_process(capsys, caplog, "export", str(tmp_path / "rec"), "--stream", "gate", *span), said)


@pytest.mark.timeout(60)
def test_demo_frames_must_be_at_least_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    for frames in ("0", "-5"):
        _one_error(in_process(capsys, caplog, "demo", "--frames", frames, "--out", str(tmp_path / "demo")),
                   f"demo option 'frames': must be between 1 and 100000 (got {frames})")
    assert not (tmp_path / "demo").exists()


@pytest.mark.timeout(60)
def test_a_bad_value_is_blamed_on_the_flag_or_variable_that_gave_it(
        clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    ok = _write(tmp_path / "ok.yaml", f"streams: [{clips[0]}]\n")
    monkeypatch.setenv("STREAMYOLO_WORKERS", "two")
    done = in_process(capsys, caplog, "check", str(ok))
    _one_error(done, "config key 'workers': must be a whole number from 1 to 64, or 'auto' (got 'two') (from "
                     "environment variable STREAMYOLO_WORKERS)")
    assert str(ok) not in done.stderr
    monkeypatch.delenv("STREAMYOLO_WORKERS")
    done = in_process(capsys, caplog, "check", str(ok), "--class-conf", "person=2")
    _one_error(done, "config key 'class_conf.person': Input should be less than or equal to 1 (got 2.0)")
    assert "streams.0" not in done.stderr and str(ok) not in done.stderr
    for name in ("a/b", "with space", ".hidden"):
        done = in_process(capsys, caplog, "check", "--source", f"{name}={clips[0]}")
        _one_error(done, f"config key 'streams.0': stream name '{name}' is not valid: a name is letters, digits, _, . "
                         "and -, beginning with a letter, digit or _")
        assert "file not found" not in done.stderr


@pytest.mark.timeout(60)
def test_what_a_run_cannot_use_is_refused_by_check(clips: list[Path], capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    for args, said in (
            (["--source", "rtsp://"], "config key 'streams.0.source': names no host: give rtsp://host[:port]/path"),
            (["--source", "cam=http://127.0.0.1:99999/x"],
             "config key 'streams.0.source': its port must be a number from 1 to 65535"),
            (["--source", str(clips[0]), "--model", ""], "config key 'model': names no model"),
            (["--source", str(clips[0]), "--record-segment", "2d"],
             "config key 'record_segment': must be from 1 second to 1 day (got '2d')"),
            (["--source", str(clips[0]), "--record-segment", "0"],
             "config key 'record_segment': must be from 1 second to 1 day (got '0')")):
        _one_error(in_process(capsys, caplog, "check", *args), said)


@pytest.mark.timeout(60)
def test_workers_auto_logs_the_workers_used(clips: list[Path], monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    """``workers: auto`` on one lossless stream chooses 2 on a 4-core box, of which one is
    used (never more workers than streams): the log says the one."""
    monkeypatch.setattr("streamyolo.pipeline.pipeline.cpu_count", lambda: 4)
    done = in_process(capsys, caplog, "check", "--source", str(clips[0]), "--workers", "auto")
    assert done.returncode == 0, done.stderr
    chose = [r.getMessage() for r in caplog.records if r.getMessage().startswith("workers: auto chose")]
    assert len(chose) == 1 and chose[0].startswith("workers: auto chose 1 (lossless streams, "), chose
    assert re.search(r"\): 1 thread worker\(s\)", done.stdout), done.stdout


def test_a_webcam_index_written_as_a_number_is_a_webcam(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    for streams in ("[{name: w, source: 0}]", "[0]"):
        done = in_process(capsys, caplog, "check", str(_write(tmp_path / "w.yaml", f"streams: {streams}\n")))
        assert done.returncode == 0, done.stderr
        assert re.search(r"^  (w|cam0) +0 +\(webcam", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.timeout(120)
def test_log_level_goes_before_or_after_the_command_in_any_case() -> None:
    run = ["run", "--source", "synthetic:?size=64x48&frames=3", "--imgsz", "64", "--no-display",
           "--status-interval", "0"]
    done = streamyolo(*run, "--log-level", "debug")
    assert done.returncode == 0 and "streamyolo: DEBUG: " in done.stderr, done.stderr
    done = streamyolo("--log-level", "debug", *run, "--log-level", "Error")  # (the later one)
    assert done.returncode == 0 and "DEBUG" not in done.stderr and "INFO" not in done.stderr, done.stderr
    assert cli.build_parser().parse_args(["--log-level", "warning", "check"]).log_level == "WARNING"


def test_a_flag_error_is_one_line_and_where_the_options_are(capsys: pytest.CaptureFixture[str]) -> None:
    for args, prog in ((["run", "--source", "a.mp4", "--conf", "x"], "streamyolo run"),
                       (["check", "--log-level", "loud"], "streamyolo check"), ([], "streamyolo")):
        with pytest.raises(SystemExit) as exited:
            cli.main(args)
        assert exited.value.code == 2
        error, where = capsys.readouterr().err.splitlines()
        assert error.startswith(f"{prog}: error: ") and where == f"`{prog} --help` lists the " + (
            "options" if " " in prog else "commands and options")


def test_the_help_says_what_the_code_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from streamyolo.config import build_config
    from streamyolo.pipeline.assemble import models_running, resolve_model_cache, torch_threads
    from streamyolo.pipeline.pipeline import cpu_count

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_model_cache("auto") == str(tmp_path / "streamyolo" / "openvino")
    assert "(auto: $XDG_CACHE_HOME or ~/.cache, then streamyolo/openvino; off: none kept)" in shown
    config = build_config({"streams": ["a.mp4"]})
    assert torch_threads(config, models_running(config, workers=2, lanes=2), "cpu") == max(1, cpu_count() // 4)
    assert ("--threads THREADS each model's CPU threads: torch intra-op threads, or OpenVINO's inference threads "
            "(default: the cores / (workers × lanes); on a GPU, torch's own)") in shown
