"""The capacity measurements measure what their labels say."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from streamyolo import benchmark
from streamyolo.pipeline.pipeline import cpu_count
from streamyolo.pipeline.report import StreamReport, Summary


@pytest.fixture
def forward_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Torch's intra-op threads seen inside every forward pass of the networks M builds
    (really built, through ``predict()``, as the benchmark does)."""
    seen: list[int] = []
    build = benchmark._torch_networks

    def recording(*args: Any, **kwargs: Any) -> list[Any]:
        networks = build(*args, **kwargs)
        for network in networks:
            network.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
        return networks

    monkeypatch.setattr(benchmark, "_torch_networks", recording)
    saved = torch.get_num_threads()
    yield seen
    torch.set_num_threads(saved)


def test_single_frame_latency_runs_on_every_core_and_on_one(forward_threads: list[int]) -> None:
    # Building the model sets torch to Ultralytics' NUM_THREADS (cores - 1); the latency is
    # the faster of the forward pass with all cores and with one, as its docstring says.
    latency = benchmark.measure_latency("yolo26n.yaml", 64, (64, 64), seconds=0.2)
    assert latency > 0
    assert forward_threads[0] == cpu_count()
    assert set(forward_threads) == {cpu_count(), 1}


def test_each_model_configuration_runs_on_the_threads_in_its_label(forward_threads: list[int]) -> None:
    rates = benchmark.measure_model("yolo26n.yaml", 64, (64, 64), seconds=0.1)
    labels = [rate.config for rate in rates.tried]
    assert len(labels) == 6, labels
    threads_by_label = [int(re.search(r"× (\d+) threads", label).group(1)) for label in labels]  # type: ignore[union-attr]
    assert set(threads_by_label) == {cpu_count(), max(1, cpu_count() // 2)}
    # Each configuration's passes (warm-up included) come in order; every one saw its label's threads.
    assert set(forward_threads) == set(threads_by_label)
    assert forward_threads[0] == cpu_count(), "the 1-instance configurations run first, on every core"


@pytest.mark.timeout(180)
def test_a_weights_file_is_measured_in_pytorch_and_converted_as_the_pipeline_runs_it(
    random_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # M is the best configuration: by default (pytorch_cpu: auto) that includes the network
    # converted to OpenVINO, which the pipeline then runs; with pytorch_cpu: torch, PyTorch only.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    both = benchmark.measure_model(str(random_model), 64, (64, 64), seconds=0.1)
    labels = [rate.config for rate in both.tried]
    converted = [label for label in labels if label.startswith("converted to OpenVINO, ")]
    assert len(labels) == 6 + 4 and len(converted) == 4, labels
    assert both.best == max(both.tried, key=lambda rate: rate.fps)
    assert len(list((tmp_path / "streamyolo" / "openvino" / "pytorch").glob("*.xml"))) == 1
    torch_only = benchmark.measure_model(str(random_model), 64, (64, 64), seconds=0.1, pytorch_cpu="torch")
    assert len(torch_only.tried) == 6 and not any("OpenVINO" in rate.config for rate in torch_only.tried)


def test_live_mode_is_measured_with_more_streams_until_one_falls_short(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each count's (detected, decoded) frames/s per stream, as the pipeline would give them.
    measured = {1: (20.0, 30.0), 2: (9.0, 30.0), 4: (4.0, 29.0), 8: (1.5, 25.0), 16: (0.5, 20.0)}
    asked: list[int] = []

    def live_rate(config: dict[str, Any], seconds: float, offered_each: float) -> benchmark.LiveRate:
        count = len(config["streams"])
        asked.append(count)
        assert config["workers"] == "auto" and all(s["realtime"] and s["loop"] for s in config["streams"])
        return benchmark.LiveRate(count, offered_each, *measured[count], 0.1)

    monkeypatch.setattr(benchmark, "_live_rate", live_rate)
    monkeypatch.setattr(benchmark, "_source_fps", lambda path: 30.0)
    paths = [Path("a.mp4"), Path("b.mp4")]
    # 8 streams decode 25 of 30 frames/s: decoding fell behind, so 16 are not tried.
    assert [r.streams for r in benchmark.measure_live("m", paths, 640, "cpu", 1.0)] == [1, 2, 4, 8]
    lines = benchmark.live_report(benchmark.measure_live("m", paths, 640, "cpu", 1.0, most=4))
    assert asked[-3:] == [1, 2, 4] and len(lines) == 3
    assert "20.0 frames/s detected in each, p99 frame age 100 ms" in lines[0]
    assert "falls behind" not in "".join(lines)
    measured[8] = (0.8, 30.0)  # under 1 frame/s: the last count tried
    rates = benchmark.measure_live("m", paths, 640, "cpu", 1.0)
    assert [r.streams for r in rates] == [1, 2, 4, 8]
    behind = benchmark.live_report([benchmark.LiveRate(8, 30.0, 1.5, 25.0, 0.2)])
    assert behind == ["    8 streams:   1.5 frames/s detected in each, p99 frame age 200 ms; "
                      "decoding falls behind (25.0 of 30 frames/s)"]


def test_live_mode_counts_the_frames_detected_in_the_window_after_start_up(clips: list[Path]) -> None:
    rates = benchmark.measure_live("yolo26n.yaml", clips[:1], 64, "cpu", 1.0, most=2)
    assert [r.streams for r in rates] in ([1, 2], [1])
    for rate in rates:
        assert rate.offered_each == 30.0
        # Realtime sources deliver at most their own rate; the freshest of those are detected.
        assert 0 < rate.detected_each <= rate.decoded_each <= rate.offered_each * 1.1, rate
        assert 0 < rate.p99_age < 2.0, rate


def _measured(monkeypatch: pytest.MonkeyPatch, summary: Summary | None = None) -> list[dict[str, Any]]:
    """``streamyolo bench`` measuring nothing: P 50 frames/s over 2 s (its run's ``summary``),
    M 100, D 500 (L 83.3), live mode 1 stream; the configs P and live mode were asked to run."""
    from streamyolo import cli

    configs: list[dict[str, Any]] = []

    def pipeline(config: dict[str, Any], on_start: Any = None) -> tuple[benchmark.PipelineRates, Summary | None]:
        configs.append(config)
        rate = benchmark.Rate(50.0, 100, 2.0, "2 workers")
        return benchmark.PipelineRates(rate, rate), summary

    def live_rate(config: dict[str, Any], seconds: float, offered_each: float) -> benchmark.LiveRate:
        configs.append(config)
        return benchmark.LiveRate(len(config["streams"]), offered_each, 0.5, offered_each, 0.1)  # 1 count only

    monkeypatch.setattr(cli, "setup_logging", lambda level: None)  # the command line's logging stays out of pytest's
    monkeypatch.setattr(benchmark, "measure_pipeline", pipeline)
    monkeypatch.setattr(benchmark, "_live_rate", live_rate)
    monkeypatch.setattr(benchmark, "measure_decode", lambda paths: benchmark.Rate(500.0, 1000, 2.0, "decode"))
    monkeypatch.setattr(benchmark, "measure_model", lambda *args, **kwargs: benchmark.ModelRates(
        benchmark.Rate(100.0, 200, 2.0, "batch 1"), 0.02, ()))
    return configs


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_the_capacity_report_runs_streamyolo_with_the_worker_mode_asked_for(
    mode: str, clips: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``streamyolo bench --worker-mode process`` measures P and live mode with process workers,
    so that users can measure both modes on their own box (the README's advice)."""
    from streamyolo import cli

    configs = _measured(monkeypatch)
    extra = ["--worker-mode", mode] if mode == "process" else []  # thread: the default
    assert cli.main(["bench", "--model", "yolo26n.yaml", "--source", str(clips[0]), *extra]) == 0
    assert [config.get("worker_mode") for config in configs] == [mode, mode]  # P, then live mode
    out = capsys.readouterr().out
    assert f"1 {mode} worker(s), every frame processed" in out and f"(auto {mode} workers," in out, out


def test_with_tiles_p_over_l_holds_ps_pictures_against_ls(clips: list[Path], monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """M and L count pictures, P frames: with ``--tiles 3x2`` (7 a frame) P/L is P's pictures
    a second (those the model ran on: with ``--motion`` not the still frames') against L."""
    from streamyolo import cli

    # 100 frames in 2 s, 80 of them still: the model ran on 20, 7 pictures each.
    report = StreamReport("clip0", str(clips[0]), "ended", 100, 100, 0, None, still=80, pictures=140)
    _measured(monkeypatch, Summary({"clip0": report}))
    assert cli.main(["bench", "--model", "yolo26n.yaml", "--source", str(clips[0]), "--tiles", "3x2",
                     "--motion"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    # 70 pictures/s against L = 1 / (1/100 + 1/500) = 83.3 pictures/s (not P's 50 frames/s: 0.60).
    assert lines["streamyolo"].startswith("streamyolo P =    50.0 frames/s  (P/L = 0.84 in pictures: 70.0 "
                                          "pictures/s, 1 thread worker(s)"), lines["streamyolo"]
    assert lines["motion:"] == "motion: the model ran on 20% of the frames; the others were still"


def test_a_region_outside_a_files_picture_is_warned_of_as_check_does(
        clips: list[Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from streamyolo import cli

    _measured(monkeypatch)
    caplog.set_level(logging.WARNING)
    assert cli.main(["bench", "--model", "yolo26n.yaml", "--source", str(clips[0]), "--region", "200,0,400,100"]) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "stream 'clip0': the region reaches (400, 100), outside its 320x240 picture"]
    caplog.clear()
    assert cli.main(["bench", "--model", "yolo26n.yaml", "--source", str(clips[0]), "--region", "200,0,320,100"]) == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
