"""The capacity measurements measure what their labels say."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from streamyolo import benchmark
from streamyolo.pipeline.pipeline import cpu_count


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
