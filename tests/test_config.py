"""Config: the example files validate, precedence is file < env < flags, errors name the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streamyolo import cli
from streamyolo.config import auto_workers, build_config, load_yaml
from streamyolo.errors import ConfigError, SourceNotFoundError, UnsupportedSourceError
from streamyolo.inference.models import resolve_model
from streamyolo.inference.tiles import TileSettings
from streamyolo.pipeline import Pipeline
from streamyolo.pipeline.assemble import choose_workers, torch_threads
from streamyolo.pipeline.build import resolve_streams
from streamyolo.sources import redact_url, split_name
from tests.helpers import ROOT


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_validate(path: Path) -> None:
    config = build_config(path)
    assert config.streams


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("streams: [synthetic:]\nconf: 0.3\nworkers: 3\nimgsz: 320\n")
    config = build_config(path, overrides={"conf": 0.5}, environ={"STREAMYOLO_CONF": "0.4", "STREAMYOLO_WORKERS": "4"})
    assert (config.conf, config.workers, config.imgsz) == (0.5, 4, 320)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"streams": ["a"], "colour": 1}, "unknown config key 'colour'"),
        ({"streams": [{"source": "a", "speed": 2}]}, "unknown config key 'streams.0.speed'"),
        ({"streams": [{"source": "a", "recrod": "original"}]},
         r"unknown config key 'streams.0.recrod' \(did you mean 'record'\?\)$"),
        ({"streams": [{"source": "a", "zones": {"drive": {"points": [[0, 0], [9, 0], [9, 9]], "hiden": "2m"}}}]},
         r"unknown config key 'streams.0.zones.drive.hiden' \(did you mean 'hidden'\?\)$"),
        ({"streams": ["a"], "webhooks": [{"url": "http://127.0.0.1/", "cooldwn": "5m"}]},
         r"unknown config key 'webhooks.0.cooldwn' \(did you mean 'cooldown'\?\)$"),
        ({"streams": ["a"], "zones": 1}, "unknown config key 'zones'$"),  # (a stream's, not the run's: no guess)
        ({"streams": ["a"], "conf": 1.5}, "config key 'conf'"),
        ({"streams": ["a"], "workers": 0}, "config key 'workers'"),
        ({"streams": [{"source": "a", "overflow": "fast"}]}, "config key 'streams.0.overflow'"),
        ({"streams": ["a"], "device": "gpu"}, "config key 'device'"),
        ({"streams": ["a"], "pytorch_cpu": "onnx"}, "config key 'pytorch_cpu'"),
        ({"streams": ["a"], "record_segment": 0}, "config key 'record_segment'"),
        ({"streams": [{"source": "a", "conf": 2}]}, "config key 'streams.0.conf'"),
        ({"streams": [{"source": "a", "classes": [-1]}]}, "config key 'streams.0.classes.0'"),
        ({"streams": ["a"], "record_segment": 60, "record_keep": "soon"}, "config key 'record_keep'"),
        ({"streams": ["a"], "record_keep": "30d"}, "config keys 'record_keep' and 'record_segment'"),
        ({"streams": ["a"], "record_segment": 60, "record_keep_objects": "30d"},
         "config keys 'record_keep_objects' and 'record_keep'"),
        ({"streams": ["a"], "record_segment": 60, "record_keep": "30d", "record_keep_objects": "2d"},
         "config keys 'record_keep_objects' and 'record_keep': record_keep_objects keeps the segments with objects "
         "longer"),
        ({"streams": ["a"], "record_max_size": "50GB"}, "config keys 'record_max_size' and 'record_segment'"),
        ({"streams": ["a"], "record_segment": 60, "record_max_size": "lots"},
         "config key 'record_max_size': must be bytes, or a number with KB, MB, GB or TB"),
        ({"streams": ["a"], "record_segment": 60, "record_max_size": "5kB"},
         "config key 'record_max_size': must be 1 MB or more"),
        ({"streams": ["a"], "clips_max_size": "5GB"}, "config keys 'clips_max_size' and 'clips'"),
        ({"streams": [{"source": "a", "imgsz": 16}]}, "config key 'streams.0.imgsz': image size must be between 32"),
        ({"streams": [{"source": "a", "model": ""}]}, "config key 'streams.0.model'"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_config(data)


def test_a_streams_min_and_max_area_keep_the_boxes_of_those_sizes() -> None:
    import numpy as np

    from streamyolo.frames import DetectionFilter, Detections

    config = build_config({"streams": [{"source": "a", "min_area": 100, "max_area": 5000}, "b"],
                           "stream_defaults": {"conf": 0.25}})
    keep = config.stream_filter(config.streams[0])
    assert keep == DetectionFilter(0.25, None, 100.0, 5000.0) and config.stream_filter(config.streams[1]) is None
    # 5 x 10 px (50), 10 x 10 (100), 70 x 70 (4900), 80 x 80 (6400)
    found = Detections(np.array([[0, 0, 5, 10], [0, 0, 10, 10], [0, 0, 70, 70], [0, 0, 80, 80]], np.float32),
                       np.full(4, 0.9, np.float32), np.zeros(4, np.int64))
    assert keep.apply(found).xyxy[:, 2].tolist() == [10.0, 70.0]
    with pytest.raises(ConfigError, match=r"config key 'streams\.0': .*min_area 900 is more than max_area 400"):
        build_config({"streams": [{"source": "a", "min_area": 900, "max_area": 400}]})


def test_streams_own_conf_and_classes_set_what_the_models_detect_and_what_each_keeps() -> None:
    from streamyolo.frames import DetectionFilter

    config = build_config({"conf": 0.3, "streams": [{"source": "a", "classes": [2]}, {"source": "b", "conf": 0.6},
                                                    "c"]})
    assert (config.detect_conf(), config.detect_classes()) == (0.3, None)  # c keeps every class
    assert [config.stream_filter(s) for s in config.streams] == [
        DetectionFilter(0.3, frozenset({2})), DetectionFilter(0.6), None]
    config = build_config({"classes": [5], "stream_defaults": {"conf": 0.5},
                           "streams": [{"source": "a", "classes": [2]},
                                       {"source": "b", "classes": [0, 2], "conf": 0.1}]})
    assert (config.detect_conf(), config.detect_classes()) == (0.1, (0, 2))
    assert [config.stream_filter(s) for s in config.streams] == [DetectionFilter(0.5, frozenset({2})), None]
    # Tracked: 0.1 unless set (as model.track()), here by the only stream.
    assert build_config({"tracker": "bytetrack", "streams": ["a"]}).detect_conf() == 0.1
    tracked = build_config({"tracker": "bytetrack", "streams": [{"source": "a", "conf": 0.5}]})
    assert tracked.detect_conf() == 0.5 and tracked.stream_filter(tracked.streams[0]) is None


def test_thresholds_by_class_are_named_as_the_model_names_them_and_set_what_the_model_detects_at(
        shared_model: Path) -> None:
    """``class_conf`` (the run's, a stream's, by name or id): each stream keeps those classes
    above their own thresholds, its others above its ``conf``; the model detects at the lowest
    of every stream's; a stream's own replaces the run's (``{}``: none); a name the model
    lacks, or a threshold beyond 0-1, is refused naming the key."""
    from streamyolo.frames import DetectionFilter

    config = build_config({"model": str(shared_model), "conf": 0.4, "class_conf": {"person": 0.6, "bicycle": 0.2},
                           "streams": ["a", {"source": "b", "class_conf": {3: 0.1}}, {"source": "c", "class_conf": {}},
                                       {"source": "d", "model": "demo", "class_conf": {"Car": 0.7}}]})
    assert [config.class_conf_of(s) for s in config.streams] == [{0: 0.6, 1: 0.2}, {3: 0.1}, {}, {1: 0.7}]
    assert config.detect_conf(str(shared_model)) == 0.1 and config.detect_conf("demo") == 0.4
    assert [config.stream_filter(s) for s in config.streams] == [
        DetectionFilter(0.4, class_conf=((0, 0.6), (1, 0.2))), DetectionFilter(0.4, class_conf=((3, 0.1),)),
        DetectionFilter(0.4), DetectionFilter(0.4, class_conf=((1, 0.7),))]
    with pytest.raises(ConfigError, match=r"config key 'class_conf': 'unicorn' is not one of the model's 80 classes"):
        build_config({"model": str(shared_model), "streams": ["a"], "class_conf": {"unicorn": 0.5}})
    with pytest.raises(ConfigError, match=r"'motorcyle' is not one of the model's 80 classes \(0 person, .*, …\) "
                                          r"\(did you mean 'motorcycle'\?\)$"):  # (beyond the 10 shown)
        build_config({"model": str(shared_model), "streams": [{"source": "a", "classes": ["person", "motorcyle"]}]})
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.class_conf\.0'"):
        build_config({"streams": [{"source": "a", "class_conf": {0: 1.5}}]})
    assert build_config({"streams": ["a"], "class_conf": {7: 0.5}}).unknown_classes({0: "person"}) == (
        "config key 'class_conf': class 7 is not one of the model's 1 classes (0 person)")


def test_each_model_detects_at_what_its_own_streams_keep() -> None:
    """With streams on models of their own, each model's threshold and classes come from its
    streams only, and so does what it is asked about the classes it has."""
    from streamyolo.frames import DetectionFilter

    config = build_config({"conf": 0.3, "classes": [1], "stream_defaults": {"model": "cars.pt"},
                           "streams": [{"source": "a", "model": "pose.pt", "conf": 0.6, "classes": [0]},
                                       {"source": "b", "classes": [2]}, "c", {"source": "d", "model": "demo"}]})
    assert config.models == ["pose.pt", "cars.pt", "demo"]
    assert [config.model_of(s) for s in config.streams] == ["pose.pt", "cars.pt", "cars.pt", "demo"]
    assert [(config.detect_conf(m), config.detect_classes(m)) for m in config.models] == [
        (0.6, (0,)), (0.3, (1, 2)), (0.3, (1,))]
    assert (config.detect_conf(), config.detect_classes()) == (0.3, (0, 1, 2))
    assert [config.stream_filter(s) for s in config.streams] == [
        None, DetectionFilter(0.3, frozenset({2})), DetectionFilter(0.3, frozenset({1})), None]
    pose = {0: "person"}
    assert config.unknown_classes(pose, "pose.pt") is None  # the run's classes are not the pose streams'
    assert config.unknown_classes(pose, "demo") == (
        "config key 'classes': class 1 is not one of the 1 classes of model 'demo' (0 person)")
    assert config.unknown_classes(pose) == (
        "config key 'streams.1.classes': class 2 is not one of the model's 1 classes (0 person)")


def test_classes_may_be_named_as_each_streams_model_names_them(shared_model: Path) -> None:
    """Class names become the ids of the model that reads them: a stream's own model numbers
    ``car`` 1 (the demo model), the run's COCO model 2; a name the model lacks is refused
    naming the key and the model's classes; ids and digits stay as they are."""
    given = {"model": str(shared_model), "classes": ["car", "Person"],
             "streams": ["a", {"source": "b", "model": "demo"}, {"source": "c", "classes": ["bus", 9, "4"],
                                                                  "zones": {"z": {"points": [[0, 0], [9, 0], [0, 9]],
                                                                                  "classes": ["bus"]}}}]}
    config = build_config(given)
    assert [s.classes for s in config.streams] == [[2, 0], [1, 0], [5, 9, 4]]
    assert config.streams[2].zones is not None and config.streams[2].zones["z"].classes == [5]
    assert given["streams"][2]["classes"] == ["bus", 9, "4"]  # the caller's mapping is left as it was
    assert build_config({"classes": ["ball"], "streams": ["a"]}).streams[0].classes == [2]  # the demo model's
    assert build_config({"classes": [1], "streams": ["a"]}).classes == [1]  # ids alone: nothing read
    with pytest.raises(ConfigError) as refused:
        build_config({**given, "streams": ["a", {"source": "b", "model": "demo", "classes": ["bus"]}]})
    assert str(refused.value) == ("config key 'streams.1.classes': 'bus' is not one of the 3 classes of model 'demo' "
                                  "(0 person, 1 car, 2 ball)")
    with pytest.raises(ConfigError, match=r"^config key 'streams\.0\.lines\.door\.classes': 'cat' is not one of the "
                       r"model's 3 classes \(0 person, 1 car, 2 ball\)$"):
        build_config({"tracker": "bytetrack", "streams": [
            {"source": "a", "lines": {"door": {"points": [[0, 0], [9, 9]], "classes": ["cat"]}}}]})


def test_workers_are_shared_between_the_models_by_their_streams() -> None:
    from streamyolo.pipeline.assemble import split_workers

    assert split_workers(2, [1]) == [1] and split_workers(4, [1]) == [1]
    assert split_workers(4, [6, 2]) == [3, 1] and split_workers(5, [6, 2]) == [4, 1]
    assert split_workers(2, [1, 1, 1]) == [1, 1, 1]  # one each at least
    assert split_workers(6, [1, 1, 1]) == [1, 1, 1]  # one per stream at most
    assert split_workers(3, [2, 2, 1]) == [1, 1, 1] and split_workers(4, [2, 2, 1]) == [2, 1, 1]


def test_spans_of_time_are_read_with_their_units() -> None:
    config = build_config({"streams": ["a"], "record_segment": "10m", "record_keep": "30d"})
    assert (config.record_segment, config.record_keep) == (600, 30 * 86400)
    assert build_config({"streams": ["a"], "record_segment": 90, "record_keep": "1.5h"}).record_keep == 5400


def test_streams_get_names_defaults_and_checks(tmp_path: Path) -> None:
    clip = tmp_path / "front door.mp4"
    clip.write_bytes(b"x")
    config = build_config({"streams": [str(clip), "rtsp://h/x", "named=synthetic:?frames=3", str(clip),
                                       {"source": "rtsp://h/y", "overflow": "lossless"}]})
    streams = resolve_streams(config)
    assert [s.spec.name for s in streams] == ["front_door", "cam1", "named", "front_door-2", "cam4"]
    assert [s.overflow.value for s in streams] == ["lossless", "live", "lossless", "lossless", "lossless"]
    with pytest.raises(SourceNotFoundError, match="stream 'ghost': file not found"):
        resolve_streams(build_config({"streams": [f"ghost={tmp_path / 'ghost.mp4'}"]}))
    with pytest.raises(UnsupportedSourceError, match=r"'gopher' in 'gopher://h/x' \(use a file path, .*synthetic:\)$"):
        resolve_streams(build_config({"streams": ["gopher://h/x"]}))
    with pytest.raises(UnsupportedSourceError, match=r"'rstp' in 'rstp://h/x' .* \(did you mean rtsp://\?\)$"):
        resolve_streams(build_config({"streams": ["rstp://h/x"]}))
    with pytest.raises(UnsupportedSourceError, match=r"unknown synthetic scene 'scen' .* \(did you mean 'scene'\?\)$"):
        resolve_streams(build_config({"streams": ["synthetic:scen"]}))
    with pytest.raises(ConfigError, match="used twice"):
        resolve_streams(build_config({"streams": ["a=synthetic:", "a=synthetic:"]}))


def test_a_folder_expands_to_its_videos(tmp_path: Path) -> None:
    for name in ("b.mp4", "a.mkv", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    streams = resolve_streams(build_config({"streams": [str(tmp_path)]}))
    assert [s.spec.name for s in streams] == ["a", "b"]


def test_names_and_redaction() -> None:
    assert split_name("cam1=rtsp://u:p@h/x?a=b") == ("cam1", "rtsp://u:p@h/x?a=b")
    assert split_name("rtsp://h/x?a=b") == (None, "rtsp://h/x?a=b")
    assert redact_url("rtsp://admin:hunter2@10.0.0.5:554/s?token=abc&ch=1") == (
        "rtsp://admin:***@10.0.0.5:554/s?token=***&ch=1")
    assert redact_url("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("streams: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_yaml(path)


def test_stream_defaults_apply_unless_a_stream_sets_the_key() -> None:
    config = build_config({
        "streams": ["a=rtsp://h/a", {"name": "b", "source": "rtsp://h/b", "open_timeout": 3}, "synthetic:"],
        "stream_defaults": {"open_timeout": 7, "reconnect": {"attempts": 2}},
    })
    assert [s.open_timeout for s in config.streams] == [7, 3, 7]
    assert all(s.reconnect.attempts == 2 for s in config.streams)
    assert config.streams[2].source == "synthetic:"
    # A key a stream took from stream_defaults is named where it was written
    with pytest.raises(ConfigError, match=r"^unknown config key 'stream_defaults\.colour'$"):
        build_config({"streams": ["x"], "stream_defaults": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"^unknown config key 'stream_defaults\.bufr' \(did you mean 'buffer'\?\)$"):
        build_config({"streams": ["x", {"source": "y", "bufr": 2}], "stream_defaults": {"bufr": 3}})
    with pytest.raises(ConfigError, match=r"^config key 'stream_defaults\.buffer': .* \(got 0\)$"):
        build_config({"streams": ["x"], "stream_defaults": {"buffer": 0}})
    with pytest.raises(ConfigError, match=r"^config key 'streams\.1\.buffer'"):  # (the stream's own: its own)
        build_config({"streams": ["x", {"source": "y", "buffer": 0}], "stream_defaults": {"buffer": 3}})


LIVE = ["a=rtsp://h/a", "b=rtsp://h/b", "c=rtsp://h/c"]


@pytest.mark.parametrize(
    ("streams", "cores", "model", "expected"),
    [
        # live cameras, an OpenVINO model, a small CPU: one worker with every core (fresher results)
        (LIVE, 2, "openvino", 1),
        (LIVE, 8, "openvino", 2),  # one per 4 cores
        (LIVE, 2, "demo", 1),  # a PyTorch weights file runs converted to OpenVINO by default: the same
        (LIVE, 2, "demo in PyTorch", 2),  # PyTorch: 2 threads are no faster than 1
        (LIVE, 2, "yolo26n.yaml", 2),  # an architecture is not converted
        (["a=synthetic:", "b=synthetic:", "c=synthetic:"], 2, "openvino", 2),  # lossless: both cores busy
        (["a=synthetic:", "b=rtsp://h/b"], 2, "openvino", 2),  # any lossless stream counts as throughput work
        ([{"source": "synthetic:", "realtime": True}, "b=rtsp://h/b"], 2, "openvino", 1),  # realtime files are live
        (["a=synthetic:"], 8, "openvino", 1),  # never more workers than streams
    ],
)
def test_auto_workers_fit_the_streams_cores_and_model(streams: list[object], cores: int, model: str, expected: int,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamyolo.pipeline.pipeline.cpu_count", lambda: cores)
    keys: dict[str, object] = {"model": model}
    if model == "openvino":
        folder = tmp_path / "m_openvino_model"
        folder.mkdir()
        (folder / "m.xml").write_text("<net/>")  # only its name is looked at here
        keys = {"model": str(folder)}
    elif model == "demo in PyTorch":
        keys = {"model": "demo", "pytorch_cpu": "torch"}
    config = build_config({"streams": streams, "device": "cpu", **keys})
    assert config.workers == "auto"
    assert choose_workers(config, resolve_streams(config), resolve_model(config.model)) == expected
    explicit = build_config({"streams": streams, "device": "cpu", "workers": 3})
    assert choose_workers(explicit, resolve_streams(explicit), resolve_model("demo")) == min(3, len(streams))


def test_auto_workers_on_a_gpu_and_bad_worker_counts() -> None:
    assert auto_workers(cuda=True, live_only=True, cores=2, openvino=True) == 2
    assert build_config({"streams": ["a"]}, environ={"STREAMYOLO_WORKERS": "auto"}).workers == "auto"
    assert build_config({"streams": ["a"]}, overrides={"workers": "3"}).workers == 3
    for bad in ("many", 0, 65, 2.5, True):
        with pytest.raises(ConfigError, match=r"config key 'workers': must be a whole number from 1 to 64, or 'auto'"):
            build_config({"streams": ["a"], "workers": bad})


@pytest.mark.timeout(120)
def test_live_cameras_by_default_get_one_worker_with_every_core(shared_model: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: three live streams, the real OpenVINO model, ``workers`` unset, 2 cores."""
    monkeypatch.setattr("streamyolo.pipeline.pipeline.cpu_count", lambda: 2)
    live = [{"name": f"cam{i}", "source": f"synthetic:?seed={i}&size=320x240&fps=15&frames=30", "realtime": True}
            for i in range(3)]
    config = {"streams": live, "model": str(shared_model), "device": "cpu", "display": False, "status_interval": 0}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
        inference = [t.name for t in pipeline.threads if t.name.startswith("inference:")]
    assert len(inference) == 1, inference
    assert {r.stream for r in results} == {"cam0", "cam1", "cam2"}
    assert torch_threads(build_config({"streams": live, "device": "cpu"}), 1, "cpu") == 2
    # A PyTorch model: converted to OpenVINO by default, 1 worker as above; left in PyTorch, 2.
    for more, workers in (({}, 1), ({"pytorch_cpu": "torch"}, 2)):
        with Pipeline.from_config({**config, "model": "demo", "duration": 1, **more}) as pipeline:
            list(pipeline.results())
            assert len([t for t in pipeline.threads if t.name.startswith("inference:")]) == workers, more


def test_the_service_unit_runs_a_command_streamyolo_takes() -> None:
    """configs/streamyolo.service's command line parses as streamyolo's own (flags renamed
    since would make the service fail at every start), and it does not restart on bad input."""
    import shlex

    from streamyolo.cli import EXIT_USAGE, build_parser

    unit = (ROOT / "configs" / "streamyolo.service").read_text()
    (command,) = [line.partition("=")[2] for line in unit.splitlines() if line.startswith("ExecStart=")]
    program, *args = shlex.split(command)
    assert program.endswith("/streamyolo") and args[0] == "run"
    parsed = build_parser().parse_args(args)
    assert (parsed.display, parsed.status_interval) == (False, 0)
    assert f"RestartPreventExitStatus={EXIT_USAGE}" in unit.splitlines()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.splitlines()  # what `streamyolo run` reloads on
    assert {"Type=notify", "WatchdogSec=60"} <= set(unit.splitlines())  # what it tells systemd: test_service.py


def test_the_example_config_is_a_valid_config() -> None:
    """configs/cameras.yaml, which the README points newcomers to, validates and resolves as
    its comments say (a key renamed since would make it fail at the first try)."""
    config = build_config(ROOT / "configs" / "cameras.yaml")
    streams = resolve_streams(config)
    assert [s.spec.name for s in streams] == ["front", "back", "gate", "lobby"]
    assert [config.record_of(s.config) for s in streams] == ["annotated", "original", "annotated", None]
    assert streams[1].config.record_source == "rtsp://192.168.1.11:554/h264" and streams[2].config.rotate == 180
    assert [config.tiles_of(s.config) for s in streams] == [None, None, TileSettings(3, 2), None]


def test_the_env_files_variables_come_before_the_processs_and_its_errors_name_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# logins\n\nexport FRONT_PASSWORD=\"fr0nt-Pa55\"\nSTREAMYOLO_WORKERS=3\n")
    config = tmp_path / "cams.yaml"
    config.write_text(f"env_file: {secrets}\nstreams: ['front=rtsp://admin:${{FRONT_PASSWORD}}@10.0.0.5/s']\n")
    built = build_config(config, environ={"FRONT_PASSWORD": "stale", "STREAMYOLO_WORKERS": "1"})
    assert built.streams[0].source == "rtsp://admin:fr0nt-Pa55@10.0.0.5/s" and built.workers == 3
    assert cli.main(["check", str(config)]) == 0
    plan = capsys.readouterr().out
    assert f"\nvariables from {secrets}, read again at every reload\n" in plan and "fr0nt-Pa55" not in plan
    # from the environment instead of the file, as every key
    config.write_text("streams: ['front=rtsp://admin:${FRONT_PASSWORD}@10.0.0.5/s']\n")
    built = build_config(config, environ={"STREAMYOLO_ENV_FILE": str(secrets)})
    assert built.streams[0].source == "rtsp://admin:fr0nt-Pa55@10.0.0.5/s"
    secrets.write_text("FRONT_PASSWORD=fine\nthis line holds s3cr3t\n")
    with pytest.raises(ConfigError) as error:
        build_config(config, environ={"STREAMYOLO_ENV_FILE": str(secrets)})
    assert str(error.value) == f"config key 'env_file': '{secrets}' line 2 is not NAME=value"
    with pytest.raises(ConfigError) as error:
        build_config(config, environ={"STREAMYOLO_ENV_FILE": str(tmp_path / "gone.env")})
    gone = tmp_path / "gone.env"
    assert str(error.value) == f"config key 'env_file': cannot read '{gone}': No such file or directory"


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_config_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("# caméra\nmodel: demo\nstreams:\n  - people.mp4\n".encode(encoding))
    with pytest.raises(ConfigError, match=rf"^cannot read config file '{path}': not UTF-8 text$"):
        build_config(path)


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path: Path) -> None:
    """YAML would keep the last alone: the first list of cameras dropped without a word."""
    path = tmp_path / "c.yaml"
    path.write_text("streams:\n  - a.mp4\nconf: 0.3\nstreams:\n  - b.mp4\n")
    with pytest.raises(ConfigError, match=rf"^config file '{path}' line 4: key 'streams' is given twice \(first on "
                                          r"line 1\); give it once$"):
        build_config(path)
    path.write_text("streams:\n  - source: a.mp4\n    zones:\n      door: [[0, 0], [9, 0], [9, 9]]\n"
                    "      door: [[0, 0], [5, 0], [5, 5]]\n")
    with pytest.raises(ConfigError, match=r"line 5: key 'door' is given twice \(first on line 4\)"):
        build_config(path)
    path.write_text("base: &base {source: a.mp4, buffer: 2}\n")  # a merge key's values may be overridden
    assert load_yaml(path) == {"base": {"source": "a.mp4", "buffer": 2}}
    path.write_text("streams:\n  - <<: {source: a.mp4, buffer: 2}\n    buffer: 3\n")
    assert build_config(path).streams[0].buffer == 3


@pytest.mark.parametrize(("text", "key"), [
    ("duration: .inf", "duration"),
    ("streams: [{source: a.mp4, zones: {door: [[0, 0], [.nan, 0], [9, 9]]}}]", "streams.0.zones.door.points.1.0"),
    ("streams: [{source: a.mp4, zones: {door: [[0, 0], [1.0e+300, 0], [9, 9]]}}]", "streams.0.zones.door.points.1.0"),
    ("streams: [{source: a.mp4, lines: {door: [[0, 0], [.inf, 9]]}}]\ntracker: bytetrack", "streams.0.lines.door"),
    ("streams: [{source: a.mp4, masks: {tree: [[0, 0], [9, 0], [9, -.inf]]}}]", "streams.0.masks.tree.points.2.1"),
    ("streams: [{source: a.mp4, privacy: {w: [[0, 0], [9, 0], [1.0e+300, 9]]}}]", "streams.0.privacy.w.points.2.0"),
    ("streams: [{source: a.mp4, region: [0, 0, 1.0e+300, 90]}]", "streams.0.region"),
    ("streams: [{source: a.mp4, region: [[0, 0], [90, .nan], [0, 90]]}]", "streams.0.region"),
])
def test_numbers_that_are_not_finite_or_no_pixel_are_refused(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + ("\nstreams: [a.mp4]\n" if "streams" not in text else "\n"))
    with pytest.raises(ConfigError, match=rf"^config key '{re.escape(key)}[.'].*\(in {path}\)$"):
        build_config(path)


@pytest.mark.parametrize(("settings", "message"), [
    ({"jsonl": "same.jsonl", "summary": "same.jsonl"},
     "config keys 'jsonl' and 'summary': both are 'same.jsonl'; give each a file of its own"),
    ({"jsonl": "x", "events": "./x"}, "config keys 'jsonl' and 'events': both are 'x'"),
    ({"stats": "x.jsonl", "switches_file": "{tmp}/x.jsonl"}, "config keys 'stats' and 'switches_file': both are"),
    ({"record": "d", "snapshots": "d/"},
     "config keys 'record' and 'snapshots': both are 'd'; give each a folder of its own"),
    ({"heatmaps": "{tmp}/d", "dataset": "d"}, "config keys 'heatmaps' and 'dataset': both are '{tmp}/d'"),
    ({"record": "d", "jsonl": "d"}, "config keys 'record' and 'jsonl': both are 'd'; give each a path of its own"),
    ({"jsonl": "in.mp4"}, "config key 'jsonl': 'in.mp4' is the source of streams.0, which the run reads; give jsonl "
                          "a path of its own"),
    ({"streams": ["door={tmp}/in.mp4"], "summary": "in.mp4"}, "config key 'summary': 'in.mp4' is the source of "
                                                              "stream 'door'"),
    ({"record": "."}, "config key 'record': '.' is the source of streams.1"),
    ({"env_file": "secrets.env", "stats": "secrets.env"}, "config key 'stats': 'secrets.env' is the env_file"),
    ({"summary": "c.yaml"}, "config key 'summary': 'c.yaml' is the config file, which the run reads"),
])
def test_outputs_on_one_path_or_on_what_the_run_reads_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, object], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.mp4").write_bytes(b"")
    (tmp_path / "secrets.env").write_text("A=1\n")
    given = {key: [s.format(tmp=tmp_path) for s in value] if isinstance(value, list) else str(value).format(
        tmp=tmp_path) for key, value in {"streams": ["in.mp4", str(tmp_path)], **settings}.items()}
    (tmp_path / "c.yaml").write_text(json.dumps(given))
    with pytest.raises(ConfigError, match="^" + re.escape(message.format(tmp=tmp_path))):
        build_config(Path("c.yaml"))


def test_outputs_apart_and_streams_sharing_their_folders_are_fine(tmp_path: Path) -> None:
    config = build_config({"streams": ["a.mp4", "b.mp4", "c=a.mp4"], "record": str(tmp_path / "rec"),
                           "snapshots": str(tmp_path / "shots"), "heatmaps": str(tmp_path / "heat"),
                           "jsonl": str(tmp_path / "rec" / "det.jsonl"), "events": str(tmp_path / "events.jsonl"),
                           "summary": str(tmp_path / "summary.json")})
    assert config.record == tmp_path / "rec" and len(config.streams) == 3


def test_a_value_is_blamed_on_where_it_was_written(tmp_path: Path) -> None:
    """The environment's variable, the file, or (a flag) neither: never the file for what it does not say."""
    path = tmp_path / "ok.yaml"
    path.write_text("streams: [a.mp4]\nconf: 2\n")
    with pytest.raises(ConfigError, match=r"^config key 'workers': must be a whole number from 1 to 64, or 'auto' "
                                          r"\(got 'two'\) \(from environment variable STREAMYOLO_WORKERS\)$"):
        build_config(path, {"conf": 0.3}, environ={"STREAMYOLO_WORKERS": "two"})
    with pytest.raises(ConfigError, match=rf"^config key 'conf': .* \(got 2\) \(in {path}\)$"):
        build_config(path, environ={})
    with pytest.raises(ConfigError, match=r"^config key 'conf': .* \(got 3.0\)$"):
        build_config(path, {"conf": 3.0}, environ={})
    with pytest.raises(ConfigError, match=r"^config keys 'mqtt_discovery' and 'mqtt': .* \(from environment variable "
                                          r"STREAMYOLO_MQTT_DISCOVERY\)$"):
        build_config(path, {"conf": 0.3}, environ={"STREAMYOLO_MQTT_DISCOVERY": "homeassistant"})


def test_the_runs_thresholds_by_class_name_are_blamed_on_the_runs_key() -> None:
    """Given by name, they are copied to each stream, as its model numbers them: an error is the run's."""
    with pytest.raises(ConfigError, match=r"^config key 'class_conf.person': Input should be less than or equal to 1 "
                                          r"\(got 2.0\)$"):
        build_config({"streams": ["a.mp4", "b.mp4"], "class_conf": {"person": 2.0}})
    with pytest.raises(ConfigError, match=r"^config key 'streams.1.class_conf.0': "):  # (a stream's own: its own)
        build_config({"streams": ["a.mp4", {"source": "b.mp4", "class_conf": {"person": 2.0}}],
                      "class_conf": {"person": 0.5}})


@pytest.mark.parametrize("given", ["a/b=people.mp4", "with space=people.mp4", ".hidden=people.mp4", "-x=people.mp4"])
def test_a_stream_name_that_is_not_one_is_said_so(given: str) -> None:
    name = given.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"^config key 'streams.0': stream name '{re.escape(name)}' "
                                          r"is not valid: a name is letters, digits, _, \. and -, beginning with a "
                                          rf"letter, digit or _ \(got '{re.escape(given)}'\)$"):
        build_config({"streams": [given]})
    with pytest.raises(ConfigError, match=r"^config key 'streams.0.name': not a name: a name is letters"):
        build_config({"streams": [{"name": name, "source": "people.mp4"}]})


def test_a_file_whose_name_holds_an_equals_sign_is_a_source(tmp_path: Path) -> None:
    video = tmp_path / "x y=z.mp4"
    video.write_bytes(b"")
    assert build_config({"streams": [str(video)]}).streams[0].source == str(video)
    assert build_config({"streams": ["rtsp://h/s?a=b", "front=rtsp://h/s?c=d"]}).streams[1].name == "front"


def test_a_webcam_index_may_be_a_number_and_errors_name_no_class_of_ours() -> None:
    config = build_config({"streams": [{"name": "w", "source": 0}, 1, "2"], "stream_defaults": {"buffer": 3}})
    assert [(s.source, s.buffer) for s in config.streams] == [("0", 3), ("1", 3), ("2", 3)]
    for data, message in (({"streams": [1.5]}, "config key 'streams.0': must be a source (a file, a URL, a webcam's "
                                                "index …) or a mapping with one (got 1.5)"),
                          ({"streams": [{"source": "a", "reconnect": 5}]},
                           "config key 'streams.0.reconnect': must be a mapping of keys (got 5)")):
        with pytest.raises(ConfigError) as raised:
            build_config(data)
        assert str(raised.value) == message
        assert not re.search(r"Config\b|instance", str(raised.value))


@pytest.mark.parametrize(("source", "message"), [
    ("rtsp://", "config key 'streams.0.source': names no host: give rtsp://host[:port]/path (got 'rtsp://')"),
    ("rtsp://:554/stream", "config key 'streams.0.source': names no host"),
    ("http://u:hunter2@127.0.0.1:99999/x", "config key 'streams.0.source': its port must be a number from 1 to 65535 "
                                           "(got 'http://u:***@127.0.0.1:99999/x')"),
    ("rtsp://10.0.0.5:0/s", "config key 'streams.0.source': its port must be a number from 1 to 65535"),
])
def test_a_network_source_a_run_cannot_reach_is_refused(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        build_config({"streams": [source]})
    with pytest.raises(ConfigError, match=r"^config key 'streams.0.record_source': "):
        build_config({"streams": [{"source": "rtsp://10.0.0.5/sub", "record_source": source}], "record": "rec"})


def test_a_model_must_be_named() -> None:
    for given in ("", "  "):
        with pytest.raises(ConfigError, match=r"^config key 'model': names no model: give a weights file"):
            build_config({"streams": ["a.mp4"], "model": given})
        with pytest.raises(ConfigError, match=r"^config key 'streams.0.model'"):
            build_config({"streams": [{"source": "a.mp4", "model": given}]})


def test_a_segment_is_from_a_second_to_a_day_whatever_is_wrong() -> None:
    for given in (0, "0.5s", "2d", 86401, "25h"):
        with pytest.raises(ConfigError, match=r"^config key 'record_segment': must be from 1 second to 1 day \(got "):
            build_config({"streams": ["a.mp4"], "record_segment": given})
    assert build_config({"streams": ["a.mp4"], "record_segment": "1d"}).record_segment == 86400
