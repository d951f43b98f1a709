"""Capacity measurements: the machine's limit for a model and a set of streams, and what
streamyolo achieves on them. Used by ``streamyolo bench`` and ``scripts/bench.py``.

- **M**: the model's forward pass alone on ready-made input tensors, at its best
  configuration (batch size; concurrent instances, each with its share of the cores;
  OpenVINO's THROUGHPUT mode).
- **D**: decoding the streams alone, every frame to a BGR array, one thread per stream.
- **L**: the limit for this work. On a CPU, where model and decoder share the cores,
  ``L = 1 / (1/M + 1/D)``; with a GPU, ``L = min(M, D)``.
- **P**: streamyolo's total frames per second over the streams, every frame processed (with
  tiles, P/L holds P's pictures a second against L, which counts pictures as M does).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamyolo.inference.converted import converting
from streamyolo.inference.offline import import_openvino, import_ultralytics
from streamyolo.inference.runners import is_openvino, is_pytorch, openvino_xml
from streamyolo.pipeline.pipeline import cpu_count

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rate:
    """Frames per second, and what produced it."""

    fps: float
    frames: int
    seconds: float
    config: str = ""


def _timed(work: Callable[[], int]) -> Rate:
    started = time.perf_counter()
    frames = work()
    seconds = time.perf_counter() - started
    return Rate(frames / seconds if seconds > 0 else 0.0, frames, seconds)


def measure_decode(paths: Sequence[Path], decoder_threads: int = 2, limit: int | None = None) -> Rate:
    """D: decode every frame of every file to a BGR array, one thread per file (as the
    capture threads do), nothing else."""
    counts = [0] * len(paths)

    def decode(index: int, path: Path) -> None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = decoder_threads
            for frame in container.decode(stream):
                frame.to_ndarray(format="bgr24")
                counts[index] += 1
                if limit is not None and counts[index] >= limit:
                    return

    def work() -> int:
        threads = [threading.Thread(target=decode, args=(i, p), name=f"bench:decode{i}") for i, p in enumerate(paths)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts)

    rate = _timed(work)
    return Rate(rate.fps, rate.frames, rate.seconds, f"{len(paths)} threads × {decoder_threads} decoder threads")


@dataclass(frozen=True, slots=True)
class ModelRates:
    best: Rate
    latency: float
    """Seconds for one frame's forward pass at batch 1 with all cores: the single-frame latency."""
    tried: tuple[Rate, ...]


def _input_shape(model: str, imgsz: int, frame_hw: tuple[int, int]) -> tuple[int, int]:
    """The model input a frame of ``frame_hw`` becomes (rect letterbox for PyTorch)."""
    from streamyolo.inference.letterbox import geometry

    pytorch = not (is_openvino(model) or Path(model).is_dir() or model.endswith((".onnx", ".engine")))
    return geometry(frame_hw, (imgsz, imgsz), auto=pytorch, stride=32).input_hw


def measure_model(model: str, imgsz: int, frame_hw: tuple[int, int], seconds: float = 4.0,
                  device: str = "cpu", pytorch_cpu: str = "auto") -> ModelRates:
    """M: forward passes alone on ready-made tensors, over several configurations. A PyTorch
    weights file that ``pytorch_cpu`` runs through OpenVINO on a CPU is measured both ways,
    in PyTorch and converted as the pipeline runs it; the best of all counts."""
    height, width = _input_shape(model, imgsz, frame_hw)
    if is_openvino(model):
        return _measure_openvino(model, (height, width), seconds)
    rates = _measure_torch(model, (height, width), seconds, device)
    if _converted_here(model, device, pytorch_cpu):
        converted = _converted_network(model, imgsz, device)
        rates = _best_of(rates, _measure_openvino(str(converted), (height, width), seconds, "f32",
                                                  "converted to OpenVINO, "))
    return rates


def _converted_here(model: str, device: str, pytorch_cpu: str) -> bool:
    """Whether the pipeline runs this PyTorch model converted to OpenVINO on ``device``."""
    from streamyolo.inference.models import resolve_device

    return is_pytorch(model) and converting(pytorch_cpu, model, resolve_device(device))


def _best_of(first: ModelRates, second: ModelRates) -> ModelRates:
    tried = first.tried + second.tried
    return ModelRates(max(tried, key=lambda r: r.fps), min(first.latency, second.latency), tried)


def _converted_network(model: str, imgsz: int, device: str) -> Path:
    """The OpenVINO IR that ``pytorch_cpu`` runs for ``model`` (from the model cache the
    pipeline wrote it to, or converted now)."""
    from streamyolo.inference import DetectSettings
    from streamyolo.inference.converted import converted_ir
    from streamyolo.inference.models import UltralyticsDetector, load_yolo
    from streamyolo.pipeline.assemble import resolve_model_cache

    yolo = load_yolo(model, device)
    cache = resolve_model_cache("auto")
    # The cache the pipeline uses: its warmup finds (or puts) the converted network there.
    detector = UltralyticsDetector(yolo, DetectSettings(imgsz=imgsz), device, model_path=model, cache_dir=cache)
    detector.warmup()  # sets up the predictor, whose network is converted
    try:
        return converted_ir(yolo.predictor, cache)
    finally:
        detector.close()


def _run_instances(step: Callable[[int], int], instances: int, seconds: float) -> int:
    """Run ``step(instance)`` in ``instances`` threads for ``seconds``; total frames."""
    done = threading.Event()
    totals = [0] * instances

    def loop(index: int) -> None:
        while not done.is_set():
            totals[index] += step(index)

    threads = [threading.Thread(target=loop, args=(i,), name=f"bench:model{i}") for i in range(instances)]
    for thread in threads:
        thread.start()
    done.wait(seconds)
    done.set()
    for thread in threads:
        thread.join()
    return sum(totals)


def _torch_networks(model: str, input_hw: tuple[int, int], instances: int, device: str) -> list[Any]:
    """``instances`` copies of the model's network, each warmed up through ``predict()``."""
    ultralytics = import_ultralytics()
    networks = []
    for _ in range(instances):
        yolo = ultralytics.YOLO(model)
        yolo.predict(np.zeros((*input_hw, 3), np.uint8), imgsz=max(input_hw), device=device, verbose=False)
        networks.append(yolo.predictor.model)
    return networks


def _torch_rate(networks: list[Any], input_hw: tuple[int, int], batch: int, seconds: float, device: str,
                threads: int) -> Rate:
    """Forward passes of every network in ``networks`` at once, one thread each, every one
    with ``threads`` torch intra-op threads.

    The threads are set here, after the networks were built: Ultralytics' ``select_device()``
    resets torch's threads to its own ``NUM_THREADS`` (cores - 1) whenever a model is set up,
    and the measuring threads start with the process-wide value of that moment.
    """
    import torch

    torch.set_num_threads(threads)
    tensors = [torch.rand(batch, 3, *input_hw, device=device) for _ in networks]

    def step(index: int) -> int:
        with torch.inference_mode():
            networks[index](tensors[index])
        return batch

    for index in range(len(networks)):
        step(index)  # warm-up
    started = time.perf_counter()
    frames = _run_instances(step, len(networks), seconds)
    elapsed = time.perf_counter() - started
    return Rate(frames / elapsed, frames, elapsed, f"{len(networks)} instance(s) × {threads} threads, batch {batch}")


def _measure_torch(model: str, input_hw: tuple[int, int], seconds: float, device: str) -> ModelRates:
    import torch

    cores = cpu_count()
    saved = torch.get_num_threads()
    tried: list[Rate] = []
    latency = 0.0
    try:
        for instances in (1, 2):
            threads = max(1, cores // instances)
            networks = _torch_networks(model, input_hw, instances, device)
            for batch in (1, 2, 4):
                rate = _torch_rate(networks, input_hw, batch, seconds, device, threads)
                tried.append(rate)
                if instances == 1 and batch == 1:
                    latency = rate.seconds / rate.frames
    finally:
        torch.set_num_threads(saved)
    return ModelRates(max(tried, key=lambda r: r.fps), latency, tuple(tried))


def _openvino_rate(core: Any, xml: Path, input_hw: tuple[int, int], instances: int, pinning: bool,
                   seconds: float, extra: dict[str, Any] | None = None, label: str = "") -> Rate:
    """``instances`` LATENCY-mode compiled models sharing the cores, one thread each."""
    threads = max(1, cpu_count() // instances)
    tensor = np.random.rand(1, 3, *input_hw).astype(np.float32)
    requests = [core.compile_model(core.read_model(xml), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
        "ENABLE_CPU_PINNING": pinning, **(extra or {}),
    }).create_infer_request() for _ in range(instances)]
    for request in requests:
        request.infer([tensor])

    def step(index: int) -> int:
        requests[index].infer([tensor])
        return 1

    started = time.perf_counter()
    frames = _run_instances(step, instances, seconds)
    elapsed = time.perf_counter() - started
    pinned = "" if pinning else ", unpinned"
    return Rate(frames / elapsed, frames, elapsed,
                f"{label}{instances} instance(s) × {threads} threads, LATENCY{pinned}")


def _measure_openvino(model: str, input_hw: tuple[int, int], seconds: float, precision: str | None = None,
                      label: str = "") -> ModelRates:
    ov = import_openvino()
    xml = openvino_xml(model)
    core = ov.Core()
    extra = _precision_hint(precision)
    tried: list[Rate] = []
    latency = 0.0
    for instances, pinning in ((2, False), (1, True), (2, True)):
        rate = _openvino_rate(core, xml, input_hw, instances, pinning, seconds, extra, label)
        tried.append(rate)
        if instances == 1:
            latency = rate.seconds / rate.frames
    tensor = np.random.rand(1, 3, *input_hw).astype(np.float32)
    compiled = core.compile_model(core.read_model(xml), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", **extra})
    jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, jobs)
    for _ in range(jobs):
        queue.start_async([tensor])
    queue.wait_all()
    started = time.perf_counter()
    frames = 0
    while time.perf_counter() - started < seconds:
        queue.start_async([tensor])
        frames += 1
    queue.wait_all()
    elapsed = time.perf_counter() - started
    tried.append(Rate(frames / elapsed, frames, elapsed, f"{label}THROUGHPUT, {jobs} requests"))
    return ModelRates(max(tried, key=lambda r: r.fps), latency, tuple(tried))


def _precision_hint(precision: str | None) -> dict[str, Any]:
    """OpenVINO's compile settings for ``precision`` (``f32``: what PyTorch computes in)."""
    return {"INFERENCE_PRECISION_HINT": precision} if precision else {}


def measure_latency(model: str, imgsz: int, frame_hw: tuple[int, int], seconds: float = 3.0,
                    device: str = "cpu", pytorch_cpu: str = "auto") -> float:
    """The single-frame latency alone: seconds per forward pass at batch 1, for comparing a
    frame age with the latency of the same minutes on a noisy machine. OpenVINO runs on all
    cores (as :func:`measure_model` measures it). A PyTorch model runs on all cores and on
    one, and the faster counts: on a shared 2-core machine one frame on 2 torch threads
    took 40-95 ms and on 1 thread 62-75 ms, in the same minute. Where ``pytorch_cpu``
    converts it, its OpenVINO form runs too, and the fastest of all counts."""
    input_hw = _input_shape(model, imgsz, frame_hw)
    if is_openvino(model):
        return _openvino_latency(openvino_xml(model), input_hw, seconds)
    import torch

    saved = torch.get_num_threads()
    try:
        networks = _torch_networks(model, input_hw, 1, device)
        rates = [_torch_rate(networks, input_hw, 1, seconds / 2, device, threads)
                 for threads in sorted({cpu_count(), 1}, reverse=True)]
    finally:
        torch.set_num_threads(saved)
    latency = min(rate.seconds / rate.frames for rate in rates)
    if _converted_here(model, device, pytorch_cpu):
        converted = _converted_network(model, imgsz, device)
        latency = min(latency, _openvino_latency(converted, input_hw, seconds, "f32"))
    return latency


def _openvino_latency(xml: Path, input_hw: tuple[int, int], seconds: float, precision: str | None = None) -> float:
    ov = import_openvino()
    rate = _openvino_rate(ov.Core(), xml, input_hw, 1, True, seconds, _precision_hint(precision))
    return rate.seconds / rate.frames


def limit(model_fps: float, decode_fps: float, gpu: bool = False) -> float:
    """L: on a CPU model and decoder share the cores, so their times per frame add up."""
    if gpu:
        return min(model_fps, decode_fps)
    return 1.0 / (1.0 / model_fps + 1.0 / decode_fps)


@dataclass(frozen=True, slots=True)
class PipelineRates:
    """P two ways: ``wall`` from start (models built and warmed up in the workers) to the
    last frame, as a user waits for it; ``steady`` from the moment every model is ready,
    comparable with M, which leaves warm-up out."""

    wall: Rate
    steady: Rate


def measure_pipeline(config: dict[str, Any],
                     on_start: Callable[[Any], None] | None = None) -> tuple[PipelineRates, Any]:
    """P: a whole streamyolo run (lossless, every frame processed); rates and summary.
    ``on_start`` gets the started pipeline (to attach web viewers, say)."""
    from streamyolo.pipeline import Pipeline

    pipeline = Pipeline.from_config({"display": False, "status_interval": 0, "overload_warning": 0, **config})
    pipeline.prepare()  # the imports, before the clock starts, as for U and S
    started = time.perf_counter()
    pipeline.start()
    ready = time.perf_counter()
    if on_start is not None:
        on_start(pipeline)
    summary = pipeline.run()
    ended = time.perf_counter()
    processed = summary.processed
    label = f"{config.get('workers', 2)} workers"
    rates = PipelineRates(Rate(processed / (ended - started), processed, ended - started, label),
                          Rate(processed / (ended - ready), processed, ended - ready, label))
    return rates, summary


@dataclass(frozen=True, slots=True)
class LiveRate:
    """Live mode with ``streams`` streams, each arriving at its own frame rate (on average
    ``offered_each``): frames detected and decoded per second in each stream, and the p99
    frame age (capture to result, in seconds), over a window that starts once every model
    is ready."""

    streams: int
    offered_each: float
    detected_each: float
    decoded_each: float
    p99_age: float

    @property
    def decoding_kept_up(self) -> bool:
        return self.decoded_each >= 0.9 * self.offered_each


def measure_live(model: str, paths: Sequence[Path], imgsz: int, device: str, seconds: float,
                 workers: int | str = "auto", most: int = 64, more: dict[str, Any] | None = None) -> list[LiveRate]:
    """Live mode with 1, 2, 4 … streams (the files in turn, each played at its own rate,
    looping), ``seconds`` each, until a stream gets under 1 detected frame/s, decoding
    falls behind the sources, or ``most`` streams; ``more``: other config keys."""
    rates: list[LiveRate] = []
    count = 1
    while count <= most:
        chosen = [paths[i % len(paths)] for i in range(count)]
        config = {"streams": [{"name": f"s{i}", "source": str(p), "realtime": True, "loop": True}
                              for i, p in enumerate(chosen)],
                  "model": model, "imgsz": imgsz, "device": device, "workers": workers, **(more or {})}
        rate = _live_rate(config, seconds, sum(_source_fps(p) for p in chosen) / count)
        rates.append(rate)
        if rate.detected_each < 1.0 or not rate.decoding_kept_up:
            break
        count *= 2
    return rates


def _live_rate(config: dict[str, Any], seconds: float, offered_each: float) -> LiveRate:
    from streamyolo.pipeline import Pipeline

    pipeline = Pipeline.from_config({"display": False, "status_interval": 0, "overload_warning": 0,  # (by design)
                                     **config})
    results = pipeline.results()
    pipeline.start()  # builds the models, then starts capture
    ready = time.monotonic()
    timer = threading.Timer(seconds, pipeline.stop)
    timer.start()
    try:
        served_ages, _ = served([(r.t_done - ready, r.age) for r in results], seconds)
    finally:
        timer.cancel()
        pipeline.stop()
    summary = pipeline.summary()
    streams = len(summary.streams)
    captured = sum(r.captured for r in summary.streams.values())
    ages = sorted(age for _, age in served_ages)
    return LiveRate(streams, offered_each, len(ages) / seconds / streams, captured / seconds / streams,
                    p99(ages) if ages else float("nan"))


def served(ages: list[tuple[float, float]], seconds: float) -> tuple[list[tuple[float, float]], int]:
    """(when done, age) of the frames served while the streams ran, and how many were drained.

    Frame age under steady overload: the frames still buffered when the run stops (up to 2 per
    live stream) are processed after capture has ended, hundreds of ms old for a slow model;
    that is shutdown, not service, so results done later than ``seconds`` after the clock
    started are left out."""
    kept = [(t, a) for t, a in ages if t <= seconds]
    return kept, len(ages) - len(kept)


def p99(ordered: Sequence[float]) -> float:
    """The 99th percentile of sorted, non-empty ``ordered``."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def live_report(rates: Sequence[LiveRate]) -> list[str]:
    """One line per stream count: detected frames/s per stream, p99 age, and whether decoding kept up."""
    lines = []
    for rate in rates:
        age = "no frame" if math.isnan(rate.p99_age) else f"{rate.p99_age * 1000:.0f} ms"
        line = (f"  {rate.streams:3d} stream{'s' if rate.streams > 1 else ' '}: {rate.detected_each:5.1f} frames/s "
                f"detected in each, p99 frame age {age}")
        if not rate.decoding_kept_up:
            line += f"; decoding falls behind ({rate.decoded_each:.1f} of {rate.offered_each:.0f} frames/s)"
        lines.append(line)
    return lines


def frame_hw(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return int(stream.height), int(stream.width)


def rss_mib() -> float:
    """This process's resident memory in MiB."""
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def capacity_report(model: str, sources: Sequence[str], imgsz: int = 640, workers: int | None = None,
                    device: str = "cpu", seconds: float = 4.0, max_streams: int = 64,
                    pytorch_cpu: str = "auto", worker_mode: str = "thread", motion: bool = False,
                    tiles: str | None = None, region: str | None = None) -> str:
    """What this box can do with ``model`` on streams like ``sources`` (video files):
    M, D, L and P (lossless, ``workers`` or 2), how many such streams it keeps up with at
    their own frame rate, and live mode (``workers`` or ``auto``) with 1, 2, 4 … of them,
    ``2 * seconds`` each, up to ``max_streams``; P and live mode with ``worker_mode``
    workers (thread or process), and with ``motion`` the model only where something moved
    (what that spares depends on the scene: the user's own recordings tell), with ``tiles``
    (``3x2``) on parts of each picture too, with ``region`` (``x1,y1,x2,y2``) on that part of
    each picture alone."""
    from streamyolo.errors import ConfigError
    from streamyolo.inference.models import resolve_model
    from streamyolo.sources import SourceKind, source_kind

    checked = (("--seconds", seconds), ("--max-streams", max_streams), ("--workers", 1 if workers is None else workers))
    for option, value in checked:
        if value <= 0:
            raise ConfigError(f"bench {option} must be positive, got {value:g}")
    paths = [Path(s) for s in sources]
    for source, path in zip(sources, paths, strict=True):
        if source_kind(source) is not SourceKind.FILE or not path.is_file():
            raise ConfigError(f"bench needs local video files; {source!r} is not one (record a minute of it first)")
    corners = _region(region) if region is not None else None
    rates = [_source_fps(p) for p in paths]
    if corners is not None:
        _region_outside(paths, corners)
    model = resolve_model(model)
    # The pipeline first: the model measurements try pinned OpenVINO configurations, whose
    # thread pools would stay behind for whatever runs after them in this process.
    lossless_workers = workers or 2
    runtime: dict[str, Any] = {"pytorch_cpu": pytorch_cpu, "worker_mode": worker_mode, "motion": motion,
                               **({"tiles": tiles} if tiles else {}),
                               **({"stream_defaults": {"region": list(corners)}} if corners is not None else {})}
    pipeline_rates, summary = measure_pipeline({"streams": [str(p) for p in paths], "model": model, "imgsz": imgsz,
                                          "workers": lossless_workers, "device": device, **runtime})
    pipeline_rate = pipeline_rates.steady
    decode = measure_decode(paths)
    model_rates = measure_model(model, imgsz, frame_hw(paths[0]), seconds=seconds, device=device,
                                pytorch_cpu=pytorch_cpu)
    live_rates = measure_live(model, paths, imgsz, device, 2 * seconds, workers or "auto", max_streams, runtime)
    gpu = device.startswith("cuda")
    ceiling = limit(model_rates.best.fps, decode.fps, gpu=gpu)
    source_fps = sum(rates) / len(rates)
    how = "min(M, D)" if gpu else "1 / (1/M + 1/D): model and decoder share the CPU"
    # With tiles M and L count pictures (several a frame): P's pictures are held against L.
    pictures = sum(r.pictures or 0 for r in summary.streams.values()) if tiles else 0
    compared = (f"P/L = {pictures / pipeline_rate.seconds / ceiling:.2f} in pictures: "
                f"{pictures / pipeline_rate.seconds:.1f} pictures/s" if pictures else
                f"P/L = {pipeline_rate.fps / ceiling:.2f}")
    lines = [
        f"model  M = {model_rates.best.fps:7.1f} frames/s  ({model_rates.best.config}; "
        f"single frame {model_rates.latency * 1000:.1f} ms)",
        f"decode D = {decode.fps:7.1f} frames/s  ({decode.config})",
        f"limit  L = {ceiling:7.1f} frames/s  ({how})",
        f"streamyolo P = {pipeline_rate.fps:7.1f} frames/s  ({compared}, "
        f"{min(lossless_workers, len(paths))} {worker_mode} worker(s), every frame processed; "
        f"{pipeline_rates.wall.fps:.1f} frames/s counting start-up)",
        *([f"motion: the model ran on {_share(summary)} of the frames; the others were still"] if motion else []),
        *([f"{_tiles(tiles)}; M and L count pictures, P frames"] if tiles else []),
        *([f"region ({corners[0]}, {corners[1]})-({corners[2]}, {corners[3]}): the model on that part of each picture "
           "only (M on whole pictures, at the same input size)"] if corners is not None else []),
        f"capacity: {_streams(int(pipeline_rate.fps // source_fps))} like these with every frame detected at their "
        f"{source_fps:.0f} fps, or {pipeline_rate.fps / len(paths):.1f} frames/s for each of these {len(paths)}",
        f"live: streams arriving at their {source_fps:.0f} fps, the freshest frames detected "
        f"({workers or 'auto'} {worker_mode} workers, {2 * seconds:g} s each):",
        *live_report(live_rates),
    ]
    return "\n".join(lines)


def _share(summary: Any) -> str:
    """The share of a run's processed frames the model ran on (the rest still: ``motion``)."""
    processed = summary.processed
    still = sum(report.still or 0 for report in summary.streams.values())
    return f"{(processed - still) / processed:.0%}" if processed else "none"


def _region(text: str) -> tuple[int, int, int, int]:
    """``--region x1,y1,x2,y2`` as the config takes a region (a bad one: :class:`ConfigError`).

    >>> _region("960,0,1920,540")
    (960, 0, 1920, 540)
    """
    from streamyolo.config import StreamConfig
    from streamyolo.errors import ConfigError

    try:
        corners = [int(part) for part in text.split(",")]
        box = StreamConfig(source="bench", region=corners).region_box  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"bench --region {text!r}: must be x1,y1,x2,y2 in pixels, x2 right of x1 and y2 below "
                          "y1") from exc
    assert box is not None
    return box


def _region_outside(paths: Sequence[Path], corners: tuple[int, int, int, int]) -> None:
    """Warn, as ``check --connect`` does, of a ``--region`` that reaches outside a file's
    picture (as shown: turned as the run turns it)."""
    from streamyolo.config import StreamConfig
    from streamyolo.pipeline.check import outside
    from streamyolo.sources import SourceKind
    from streamyolo.sources.pyav import display_turn
    from streamyolo.sources.spec import default_name

    for index, path in enumerate(paths):
        height, width = frame_hw(path)
        if display_turn(str(path)) in (90, 270):
            height, width = width, height
        own = StreamConfig(source=str(path), region=list(corners))  # type: ignore[arg-type]
        for warning in outside(default_name(str(path), SourceKind.FILE, index), own, width, height):
            log.warning("%s", warning)


def _tiles(grid: str) -> str:
    """What ``tiles: grid`` runs the model on (the config has checked it)."""
    from streamyolo.config import TilesConfig

    return TilesConfig(grid=grid).settings().describe()


def _streams(count: int) -> str:
    return f"{count} stream{'' if count == 1 else 's'}"


def _source_fps(path: Path) -> float:
    """A video file's frame rate (30 where it gives none); a file that is not a video this box
    reads (a config, a recording cut short) is a :class:`SourceOpenError` naming it."""
    from streamyolo.errors import SourceOpenError

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceOpenError(f"bench --source {str(path)!r}: cannot open: {getattr(exc, 'strerror', None) or exc}",
                              url=str(path)) from None
    with container:
        if not container.streams.video:
            raise SourceOpenError(f"bench --source {str(path)!r}: has no video stream", url=str(path))
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 30.0
