"""Config: the example files validate, precedence is file < env < flags, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamyolo.config import build_config, load_yaml
from streamyolo.errors import ConfigError, SourceNotFoundError, UnsupportedSourceError
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
        ({"streams": ["a"], "conf": 1.5}, "config key 'conf'"),
        ({"streams": ["a"], "workers": 0}, "config key 'workers'"),
        ({"streams": [{"source": "a", "overflow": "fast"}]}, "config key 'streams.0.overflow'"),
        ({"streams": ["a"], "device": "gpu"}, "config key 'device'"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_config(data)


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
    with pytest.raises(UnsupportedSourceError, match="'gopher'"):
        resolve_streams(build_config({"streams": ["gopher://h/x"]}))
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
    with pytest.raises(ConfigError, match=r"streams\.0\.colour"):
        build_config({"streams": ["x"], "stream_defaults": {"colour": "red"}})
