"""Reloading the config while the run goes on: streams added, removed and restarted with new
settings, the others untouched (their recordings one file, gapless), a bad config changing
nothing, what the running models cannot do refused, Home Assistant told. (``SIGHUP`` to a real
``streamyolo run``: ``tests/test_cli.py``.)"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamyolo.errors import ConfigError, ModelError
from streamyolo.pipeline import Pipeline
from streamyolo.workers.inference import Channel, InferenceWorker
from tests.conftest import need
from tests.helpers import CountingDetector, decode, make_clip, read_jsonl, stamps, until
from tests.servers import RtspServer, rtsp_server_available


def _camera(name: str, seed: int, **extra: Any) -> dict[str, Any]:
    """A synthetic camera: 160 × 120 at 10 frames a second, for as long as the run goes."""
    return {"name": name, "source": f"synthetic:?size=160x120&fps=10&seed={seed}", "realtime": True, **extra}


def _config(tmp_path: Path, streams: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"streams": streams, "model": "demo", "imgsz": 160, "workers": 2, "device": "cpu", "display": False,
            "status_interval": 0, "record": str(tmp_path / "rec"), "jsonl": str(tmp_path / "det.jsonl"), **extra}


def _processed(pipeline: Pipeline) -> dict[str, int]:
    return {report.name: report.processed for report in pipeline.reports()}


def test_a_reload_adds_removes_restarts_and_updates_streams_and_leaves_the_others_alone(tmp_path: Path) -> None:
    streams = [_camera("a", 1), _camera("b", 2), _camera("c", 3), _camera("e", 5)]
    outputs = {"web": "127.0.0.1:0", "summary": str(tmp_path / "s.json"), "events": str(tmp_path / "events.jsonl")}
    pipeline = Pipeline.from_config(_config(tmp_path, streams, **outputs))
    pipeline.start()
    try:
        until(lambda: min(_processed(pipeline).values()) >= 5, 30, "five frames of every stream")
        hall = {"hall": [[0, 0], [80, 0], [80, 120], [0, 120]]}
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1), _camera("c", 3, buffer=3), _camera("d", 4),
                                                    _camera("e", 5, conf=0.5, zones=hall, max_fps=5,
                                                            region=[0, 0, 120, 120])], **outputs))
        assert (report.added, report.removed, report.restarted, report.updated, report.refused,
                report.needs_restart) == (("d",), ("b",), ("c",), ("e",), {}, ())
        assert report.done() == ("config reloaded: added 'd'; removed 'b'; restarted with new settings 'c'; "
                                 "changed as it runs 'e'")
        # The removed stream's recording is whole at once, while the run goes on.
        b_images, _ = decode(tmp_path / "rec" / "b.mp4")
        b_seen = [line for line in read_jsonl(tmp_path / "det.jsonl") if line["stream"] == "b"]
        assert len(b_images) == len(b_seen) >= 5
        assert sorted(_processed(pipeline)) == ["a", "c", "d", "e"]
        e_then = _processed(pipeline)["e"]
        until(lambda: _processed(pipeline).get("d", 0) >= 5 and _processed(pipeline)["c"] >= 5
              and _processed(pipeline)["e"] >= e_then + 10, 30,
              "five frames of the added and the restarted stream, ten of the updated one")
        assert pipeline.web_url is not None
        with urllib.request.urlopen(pipeline.web_url + "status.json", timeout=10) as response:
            status = json.load(response)
        assert sorted(s["name"] for s in status["streams"]) == ["a", "c", "d", "e"]
        assert {k: v for k, v in status["config"].items() if k != "last_at"} == {
            "reloads": 1, "failed": 0, "last_ok": True, "last": report.done()}
        with urllib.request.urlopen(pipeline.web_url + "metrics", timeout=10) as response:
            assert 'streamyolo_config_reloads_total{result="ok"} 1' in response.read().decode().splitlines()
    finally:
        pipeline.stop()
        summary = pipeline.join()
    lines = read_jsonl(tmp_path / "det.jsonl")
    by_stream = {name: [line["seq"] for line in lines if line["stream"] == name] for name in "abcde"}
    # The untouched stream and the one updated as it ran: one file each, every frame processed
    # in it, none missing across the reload (each picture stamped with its camera's frame number).
    shown = {}
    for name in "ae":
        assert summary.recordings[name] == [str(tmp_path / "rec" / f"{name}.mp4")]
        images, _ = decode(tmp_path / "rec" / f"{name}.mp4")
        shown[name] = [stamp[1] for stamp in stamps(images) if stamp is not None]
        assert len(images) == len(shown[name]) == len(by_stream[name]) == summary.streams[name].processed
    assert shown["a"] == by_stream["a"]
    # The updated stream: its zone from a frame on, and from then its own conf; from about
    # then, every other frame of its 10 a second (max_fps 5), its connection going on.
    e_lines = [line for line in lines if line["stream"] == "e"]
    zoned = [index for index, line in enumerate(e_lines) if "zones" in line]
    assert zoned and zoned == list(range(zoned[0], len(e_lines))) and zoned[0] >= 5
    assert all(d["conf"] >= 0.5 for line in e_lines[zoned[0]:] for d in line["detections"])
    assert shown["e"][:zoned[0]] == by_stream["e"][:zoned[0]]  # before: its camera's frames as captured
    thinned = shown["e"][zoned[0] + 3:]  # after (the frames captured before it, processed):
    assert len(thinned) >= 5 and all(b - a == 2 for a, b in itertools.pairwise(thinned)), shown["e"]
    assert summary.streams["e"].reconnects == 0
    assert summary.streams["e"].zone_peaks.keys() == {"hall"}
    # The restarted stream: a file for each of its turns; the summary counts both.
    assert summary.recordings["c"] == [str(tmp_path / "rec" / "c.mp4"), str(tmp_path / "rec" / "c-2.mp4")]
    c_frames = sum(len(decode(Path(path))[0]) for path in summary.recordings["c"])
    assert c_frames == len(by_stream["c"]) == summary.streams["c"].processed
    again = next(i for i in range(1, len(by_stream["c"])) if by_stream["c"][i] < by_stream["c"][i - 1])
    assert by_stream["c"][again] <= 3, by_stream["c"]  # its second turn from its first frames again (a live
    # stream's first frame may be skipped while its worker is busy: its buffer holds the newest 3)
    assert summary.streams["b"].state == "removed" and summary.streams["b"].processed == len(by_stream["b"])
    assert summary.streams["d"].processed == len(by_stream["d"]) >= 5
    for name in "abcde":
        report = summary.streams[name]
        assert report.captured == report.processed + report.dropped, name
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["streams"]["b"]["state"] == "removed" and written["streams"]["b"]["recordings"] == [
        str(tmp_path / "rec" / "b.mp4")]
    # The events say which stream is gone and which is back with new settings.
    states = {name: [e["state"] for e in read_jsonl(tmp_path / "events.jsonl")
                     if e["event"] == "state" and e["stream"] == name] for name in "abcde"}
    assert states == {"a": ["streaming"], "b": ["streaming", "removed"], "c": ["streaming", "restarting", "streaming"],
                      "d": ["streaming"], "e": ["streaming"]}, states


def test_a_bad_config_changes_nothing_and_what_the_models_cannot_do_is_refused(tmp_path: Path,
                                                                              random_model: Path) -> None:
    """A config that does not validate, or names a class its model lacks, changes nothing; a
    stream asking its model for less than it detects at is refused; one on a model the run has
    not loaded gets a new worker, which builds that model."""
    pipeline = Pipeline.from_config(_config(tmp_path, [_camera("a", 1), _camera("b", 2, conf=0.4)]))
    pipeline.start()
    try:
        until(lambda: min(_processed(pipeline).values()) >= 3, 30, "three frames of each stream")
        with pytest.raises(ConfigError, match=r"config key 'conf'"):
            pipeline.reload(_config(tmp_path, [_camera("a", 1)], conf=7))
        with pytest.raises(ConfigError, match=r"config key 'streams.0.classes': class 99 is not one of"):
            pipeline.reload(_config(tmp_path, [_camera("a", 1, classes=[99])]))
        assert sorted(_processed(pipeline)) == ["a", "b"]
        with pytest.raises(ModelError, match=r"model not found: 'nope.pt' \(streamyolo never downloads weights"):
            pipeline.reload(_config(tmp_path, [_camera("a", 1), _camera("e", 5, model="nope.pt")]))
        with pytest.raises(ConfigError, match=r"'streams.1.classes': class 99 is not one of the 80 classes of model"):
            pipeline.reload(_config(tmp_path, [_camera("a", 1), _camera("e", 5, model=str(random_model),
                                                                        classes=[99])]))  # read off the model's file
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1, conf=0.1), _camera("b", 2, conf=0.3),
                                                     _camera("e", 5, model=str(random_model), imgsz=96)],
                                         batch=2, workers=1))
        assert report.needs_restart == ("workers", "batch")
        assert report.refused == {
            "a": "stream 'a': conf 0.1 is below the 0.25 its model detects at in this run: it stays as it was"}
        assert report.updated == ("b",)  # 0.3: within what its model detects
        assert report.added == ("e",) and report.loaded == (f"{str(random_model)!r} at imgsz 96 (w2)",)
        assert report.done().endswith(f"; new worker for model {str(random_model)!r} at imgsz 96 (w2)")
        assert pipeline.worker_streams()[2] == ["e"]
        until(lambda: _processed(pipeline).get("e", 0) >= 3, 60, "the new model's stream's frames")
        assert ("config reloaded, but stream 'a': conf 0.1 is below the 0.25 its model detects at in this run: it "
                "stays as it was") in report.warnings()
        assert "workers, batch changed, which apply only when the run starts again" in report.warnings()[-1]
        assert sorted(_processed(pipeline)) == ["a", "b", "e"]
        assert (pipeline.reloads["reloads"], pipeline.reloads["failed"], pipeline.reloads["last_ok"]) == (1, 4, True)
        until(lambda: _processed(pipeline)["b"] >= 3, 30, "the updated stream's frames")
        # Thresholds by class: within what the model detects at, in place; below, refused.
        streams = [_camera("a", 1), _camera("e", 5, model=str(random_model), imgsz=96)]
        report = pipeline.reload(_config(tmp_path, [*streams, _camera("b", 2, conf=0.3, class_conf={0: 0.5})]))
        assert report.updated == ("b",) and not report.refused  # a stayed as it was (above)
        report = pipeline.reload(_config(tmp_path, [*streams, _camera("b", 2, conf=0.3, class_conf={0: 0.1})]))
        assert report.refused == {"b": "stream 'b': class 0's conf 0.1 (class_conf) is below the 0.25 its model "
                                       "detects at in this run: it stays as it was"}
    finally:
        pipeline.stop()
        summary = pipeline.join()
    assert summary.recordings["a"] == [str(tmp_path / "rec" / "a.mp4")]  # never stopped
    kept = [line for line in read_jsonl(tmp_path / "det.jsonl") if line["stream"] == "b"]
    assert len(kept) == summary.streams["b"].processed
    assert summary.recordings["b"] == [str(tmp_path / "rec" / "b.mp4")]  # updated as it ran


@pytest.mark.parametrize("worker_mode", ["thread", "process"])
def test_a_new_model_for_the_run_gets_as_many_workers_as_a_start_would_give_it_and_the_old_ones_end(
        tmp_path: Path, random_model: Path, worker_mode: str) -> None:
    """The run's ``model`` changed (a model trained again, under a new name): every stream is
    restarted on the new model's workers, as many as a run started with the new config would
    have (2 here), each built in its own thread; the old model's workers end once their
    streams have gone, and a stream added later joins the new model."""
    streams = [_camera("a", 1), _camera("b", 2)]
    pipeline = Pipeline.from_config(_config(tmp_path, streams, worker_mode=worker_mode))
    pipeline.start()
    try:
        until(lambda: min(_processed(pipeline).values()) >= 3, 60, "three frames of each stream")
        assert pipeline.model_classes(0) == {0: "person", 1: "car", 2: "ball"}
        assert {"inference:w0", "inference:w1"} <= {t.name for t in threading.enumerate()}
        report = pipeline.reload(_config(tmp_path, streams, model=str(random_model), worker_mode=worker_mode))
        assert (report.restarted, report.needs_restart, report.refused) == (("a", "b"), (), {})
        assert report.loaded == (f"{str(random_model)!r} at imgsz 160 (w2-w3)",)
        assert report.done() == (f"config reloaded: restarted with new settings 'a', 'b'; new workers for model "
                                 f"{str(random_model)!r} at imgsz 160 (w2-w3)")
        assert pipeline.worker_streams() == [[], [], ["a"], ["b"]]
        before = _processed(pipeline)
        until(lambda: all(n > before[name] + 3 for name, n in _processed(pipeline).items()), 60,
              "frames of both streams from the new model's workers")
        assert len(pipeline.model_classes(2)) == len(pipeline.model_classes(3)) == 80  # the new model's
        until(lambda: not {"inference:w0", "inference:w1"} & {t.name for t in threading.enumerate()}, 30,
              "the old model's workers ended")
        report = pipeline.reload(_config(tmp_path, [*streams, _camera("c", 3)], model=str(random_model),
                                         worker_mode=worker_mode))
        assert report.added == ("c",) and not report.loaded and pipeline.worker_streams()[2:] == [["a", "c"], ["b"]]
    finally:
        pipeline.stop()
        summary = pipeline.join()
    assert {name: report.state for name, report in summary.streams.items()} == dict.fromkeys("abc", "stopped")


def test_a_stream_turned_off_in_the_config_is_removed_and_back_on_added(tmp_path: Path) -> None:
    pipeline = Pipeline.from_config(_config(tmp_path, [_camera("a", 1), _camera("b", 2)]))
    pipeline.start()
    try:
        until(lambda: min(_processed(pipeline).values()) >= 3, 30, "three frames of each stream")
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1), _camera("b", 2, enabled=False)]))
        assert (report.removed, report.added, report.restarted) == (("b",), (), ())
        assert sorted(_processed(pipeline)) == ["a"]
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1), _camera("b", 2)]))
        assert (report.removed, report.added, report.restarted) == ((), ("b",), ())
        until(lambda: _processed(pipeline).get("b", 0) >= 3, 30, "frames of the stream on again")
    finally:
        pipeline.stop()
        summary = pipeline.join()
    assert sorted(summary.streams) == ["a", "b"]


def test_a_streams_switches_hold_when_a_reload_restarts_it(tmp_path: Path) -> None:
    """Detection and recording switched off, then the stream restarted by a reload (a new
    buffer): it comes back with both off (no new recording file, no objects), not on."""
    pipeline = Pipeline.from_config(_config(tmp_path, [_camera("a", 1), _camera("b", 2)]))
    pipeline.start()
    try:
        until(lambda: min(_processed(pipeline).values()) >= 3, 30, "three frames of each stream")
        pipeline.set_detection("a", False)
        pipeline.set_recording("a", False)
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1, buffer=3), _camera("b", 2)]))
        assert report.restarted == ("a",)
        assert (pipeline.detection("a"), pipeline.recording("a")) == (False, False)
        assert pipeline.switches("b") == {"detect": True, "record": True}
        until(lambda: _processed(pipeline)["a"] >= 5, 30, "frames of the restarted stream")
    finally:
        pipeline.stop()
        summary = pipeline.join()
    assert [Path(f).name for f in summary.recordings["a"]] == ["a.mp4"]  # none after the restart
    after = [line for line in read_jsonl(tmp_path / "det.jsonl") if line["stream"] == "a"][-5:]
    assert all(line.get("detect") is False and not line["detections"] for line in after), after


def test_record_objects_changes_as_the_streams_run(tmp_path: Path) -> None:
    """``record_objects`` (the classes that mark a segment to keep longer) is a setting a reload
    changes in place, the run's for every stream, a stream's own for it: its recording goes on
    in the same file."""
    kept = {"record_segment": 60, "record_keep": "1d", "record_keep_objects": "30d"}
    pipeline = Pipeline.from_config(_config(tmp_path, [_camera("a", 1), _camera("b", 2)], **kept))
    pipeline.start()
    try:
        until(lambda: min(_processed(pipeline).values()) >= 3, 30, "three frames of each stream")
        recorder = pipeline._recorder
        assert recorder is not None and recorder.objects == {}  # any class marks a segment
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1, record_objects=["ball"]), _camera("b", 2)],
                                         record_objects=["person", "car"], **kept))
        assert (report.updated, report.restarted, report.needs_restart) == (("a", "b"), (), ())
        assert recorder.objects == {"a": {2}, "b": {0, 1}}
        report = pipeline.reload(_config(tmp_path, [_camera("a", 1, record_objects=["ball"]), _camera("b", 2)], **kept))
        assert report.updated == ("b",) and recorder.objects == {"a": {2}}
    finally:
        pipeline.stop()
        summary = pipeline.join()
    assert [len(files) for files in summary.recordings.values()] == [1, 1]


def test_a_worker_whose_streams_have_all_ended_is_started_again_for_a_stream_added(tmp_path: Path) -> None:
    """w0's one stream ends; w1's is lossless, which stays on w1 (a camera w0 would go on
    serving): w0 ends, and a stream added later gets a new w0."""
    finite = {"name": "short", "source": "synthetic:?size=160x120&fps=10&frames=3"}
    steady = _camera("a", 1, overflow="lossless")
    pipeline = Pipeline.from_config(_config(tmp_path, [finite, steady]))
    pipeline.start()
    try:
        until(lambda: pipeline.worker_streams() == [[], ["a"]], 30, "the short stream's worker to end")
        first = pipeline.threads
        report = pipeline.reload(_config(tmp_path, [finite, steady, _camera("b", 2)]))
        assert report.added == ("b",) and pipeline.worker_streams() == [["b"], ["a"]]
        assert [t for t in pipeline.threads if t not in first and t.name == "inference:w0"]  # a new one
        until(lambda: _processed(pipeline).get("b", 0) >= 3, 30, "the added stream's frames")
    finally:
        pipeline.stop()
        summary = pipeline.join()
    assert summary.streams["short"].processed == 3 and summary.streams["b"].processed >= 3


def test_a_worker_takes_no_stream_once_it_has_ended() -> None:
    import threading

    from streamyolo.buffering import Overflow, RingBuffer
    from streamyolo.frames import Frame
    from streamyolo.pipeline.health import StreamHealth
    from streamyolo.sinks.collect import QueueSink

    def channel(name: str) -> Channel:
        ring: RingBuffer[Frame] = RingBuffer(2, Overflow.BLOCK)
        return Channel(name, ring, False, StreamHealth(name))

    first = channel("first")
    worker = InferenceWorker("w0", CountingDetector, [first], QueueSink(), threading.Event())
    worker.start()
    assert worker.wait_ready(10)
    late = channel("late")
    assert worker.add(late) and worker.streams == ["first", "late"]
    late.ring.close()
    first.ring.close()
    assert worker.join(10) and worker.done
    assert late.health.wait_settled(0) and first.health.wait_settled(0)
    assert not worker.add(channel("too-late"))


@pytest.mark.timeout(90)
def test_home_assistant_learns_of_the_streams_added_changed_and_removed(broker_folder: Path) -> None:
    """With ``mqtt_discovery``: an added stream's entities are announced, a removed stream's
    deleted (an empty retained config), a stream given a zone as it runs gets the zone's (and
    keeps the others); the events say ``removed``. In process worker mode (the streams, their
    buffers and the outputs are the parent's, as in thread mode: a reload is the same)."""
    from tests.servers import MqttBroker, MqttSubscriber

    zone = {"hall": [[0, 0], [80, 0], [80, 120], [0, 120]]}
    with MqttBroker(broker_folder) as broker:
        outputs = {"mqtt": f"mqtt://127.0.0.1:{broker.port}/site", "mqtt_discovery": "homeassistant",
                   "events": str(broker_folder / "events.jsonl"), "worker_mode": "process"}
        pipeline = Pipeline.from_config(_config(broker_folder, [_camera("a", 1), _camera("b", 2)], **outputs))
        watcher = MqttSubscriber(broker.port)
        pipeline.start()
        try:
            node = "homeassistant/{}/streamyolo_site/{}/config"

            def configs() -> dict[str, bytes]:
                kept: dict[str, bytes] = {}
                for topic, payload, _ in list(watcher.messages):
                    if topic.startswith("homeassistant/"):
                        kept[topic] = payload  # the newest; empty: deleted
                return {topic: payload for topic, payload in kept.items() if payload}

            until(lambda: node.format("binary_sensor", "b_streaming") in configs(), 30, "b's entities")
            report = pipeline.reload(_config(broker_folder, [_camera("a", 1, zones=zone), _camera("c", 3)], **outputs))
            assert (report.added, report.removed, report.updated) == (("c",), ("b",), ("a",))
            until(lambda: node.format("binary_sensor", "c_streaming") in configs()
                   and node.format("sensor", "a_zone_hall") in configs()
                   and not any("/b_" in topic for topic in configs()), 30, "the entities of the new config")
            until(lambda: len(configs()) >= 30, 10, "all of them")
            assert sorted(topic.split("/")[-2] for topic in configs()) == sorted([
                "a_streaming", "a_detect", "a_record", "a_objects", "a_occupied", "a_zone_hall",
                "a_zone_hall_occupied", "a_zone_hall_watch", "a_outputs", "c_streaming", "c_detect", "c_record",
                "c_objects", "c_occupied", "c_outputs", *(f"{stream}_{sensor}" for stream in "ac" for sensor in (
                    "fps_in", "fps_out", "frame_age", "behind", "skipped")),
                "-outputs", "-overload", "-recordings", "-recordings_free", "-recordings_days_left"])
            until(lambda: any(topic == "site/b/state" and json.loads(payload)["state"] == "removed"
                               for topic, payload, _ in list(watcher.messages)), 30, "b's removed state")
            # Its retained states are deleted with it (its last state, removed, stays).
            until(lambda: ("site/b/detect/state", b"") in [(t, p) for t, p, _ in list(watcher.messages)], 30,
                  "b's switch state deleted")
            assert ("site/a/detect/state", b"") not in [(t, p) for t, p, _ in list(watcher.messages)]
            # A zone a reload takes away: its retained state goes too.
            until(lambda: any(t == "site/a/zone/hall" and p for t, p, _ in list(watcher.messages)), 30,
                  "the hall's state")
            pipeline.reload(_config(broker_folder, [_camera("a", 1), _camera("c", 3)], **outputs))
            until(lambda: ("site/a/zone/hall", b"") in [(t, p) for t, p, _ in list(watcher.messages)], 30,
                  "the hall's state deleted")
        finally:
            pipeline.stop()
            pipeline.join()
            watcher.close()
    assert not [topic for topic, payload, _ in watcher.messages if "/a_" in topic and "_zone_hall" not in topic
                and not payload], "a stream updated as it runs lost entities it kept"
    states = [(e["stream"], e["state"]) for e in read_jsonl(broker_folder / "events.jsonl") if e["event"] == "state"]
    assert ("b", "removed") in states and ("a", "removed") not in states


@pytest.mark.timeout(120)
def test_a_cameras_new_password_in_the_env_file_takes_with_a_reload(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The camera's password was changed: the run's ``env_file`` still has the old one, so the
    camera (a real RTSP server with a login) refuses it, the other stream going on; the new
    password written into the file and the config reloaded, the camera streams, with no restart
    and no password in the log."""
    need(rtsp_server_available())
    server = RtspServer(make_clip(tmp_path / "door.mp4", "door", frames=150, size=(160, 120), fps=15),
                        user="admin", password="n3w-Pa55")
    server.start()
    try:
        secrets = tmp_path / "secrets.env"
        secrets.write_text("# the cameras' logins\nDOOR_PASSWORD='0ld-Pa55'\n")
        login = "rtsp://admin:${DOOR_PASSWORD}@"
        door = {"name": "door", "source": server.url(credentials=False).replace("rtsp://", login)}
        config = tmp_path / "cams.yaml"
        config.write_text(json.dumps(_config(tmp_path, [_camera("a", 1), door], env_file=str(secrets))))
        pipeline = Pipeline.from_config(config)
        pipeline.start()
        try:
            until(lambda: _processed(pipeline)["a"] >= 10, 30, "frames of the synthetic camera")
            until(lambda: next(r for r in pipeline.reports() if r.name == "door").state == "failed", 30,
                  "the camera refusing the old password (a login refused is not tried again)")
            secrets.write_text("# the cameras' logins\nDOOR_PASSWORD='n3w-Pa55'\n")
            report = pipeline.reload()
            assert report.restarted == ("door",) and report.refused == {}
            until(lambda: _processed(pipeline)["door"] >= 10, 60, "frames of the camera with its new password")
        finally:
            pipeline.stop()
            pipeline.join()
    finally:
        server.kill()
    assert "0ld-Pa55" not in caplog.text and "n3w-Pa55" not in caplog.text
