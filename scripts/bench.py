"""streamyolo against the machine's limit and against what users would pick instead,
measured side by side in ONE run, on the same streams, model and settings, each
measurement in a fresh process of its own.

    .venv/bin/python scripts/bench.py                       # both models, 4 streams
    .venv/bin/python scripts/bench.py --models openvino --frames 150 --live-seconds 30

Per model (the real OpenVINO YOLO11n from ../shared, and yolo26n in PyTorch with random
weights from its YAML, saved once as a weights file that every contender loads), over 4
streams (../shared/videos/people.mp4 and synthetic 720p H.264 clips):

  L   the limit: M (forward passes alone, best config) and D (decoding alone),
      L = 1 / (1/M + 1/D) on a CPU
  P   streamyolo, lossless (every frame processed), without and with H.264 recording,
      in thread mode (and process mode with --process); timed from start (models built in
      the workers) and, for P/L, from the moment every model is ready (M leaves warm-up out).
      By default streamyolo runs a PyTorch weights file's network converted to OpenVINO
      (``pytorch_cpu: auto``), and M measures both forms; P_torch is P with ``pytorch_cpu: torch``
  U   Ultralytics' multi-stream mode: predict(source=<.streams>, stream=True, stream_buffer=True)
  Us  the same with save=True (Ultralytics' own recording)
  S   the thread-safe pattern of the Ultralytics guide: a thread per stream, each with its own YOLO
  live   frame age p50/p99 with every stream arriving at 30 fps and more load than the machine takes,
         against the single-frame latency measured just before and after it (--live-only: just this)
  memory RSS with 1..K streams and 1..2 workers; growth over --memory-minutes
  P_web  (--web) P with the web page on and one viewer per stream reading its MJPEG video

--only P,P_web runs just those throughput contenders (P_1lane, P with ``lanes: 1``,
P_process_1lane, P_process with ``lanes: 1``, P_track, P with every stream tracked by
ByteTrack at P's conf 0.25, and P_events, P_track with a zone over every picture and a line
across it, every event written to a file and its frame saved as a snapshot, and P_clips, the
same with a clip of every moment with events instead of snapshots, and P_clips_orig, P_clips
with the clips cut from every stream's own video (``clip_mode: original``), and P_rec_clips,
P_clips with every stream recorded too, and P_rec_orig, P recording every stream's own video
(``record_mode: original``), and P_motion, P with ``motion`` on (the model only where something
moved: on these busy streets, its cost), and P_quiet and P_quiet_motion, P on 4 quiet streets
(people.mp4's first picture held 8 s with a camera's noise, then 2 s of walking) without and
with ``motion``; run only when named here);
--live-compare runs
live mode with live_hold on and off, interleaved over --rounds (1 worker), instead of the usual
live runs.

The throughput contenders (D, M, P, U, S and the recording ones) run in --rounds interleaved
rounds, each measurement in a fresh process, and the report takes each one's median: these
shared machines speed up and slow down by 10-20 % over minutes, and interleaving makes a slow
spell hit every contender alike. Prints one table with the ratios and pass/fail against the
goals, every round's numbers, and JSON (--json).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import math
import multiprocessing
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo import benchmark as bench  # noqa: E402
from streamyolo.config import auto_workers  # noqa: E402
from streamyolo.inference.converted import openvino_installed  # noqa: E402
from streamyolo.inference.offline import import_ultralytics, preload  # noqa: E402
from streamyolo.inference.runners import is_openvino  # noqa: E402
from streamyolo.pipeline import Pipeline  # noqa: E402
from streamyolo.pipeline.pipeline import cpu_count  # noqa: E402
from tests.helpers import cut_clip, make_clip  # noqa: E402

SHARED = ROOT.parent / "shared"
OPENVINO_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"
PEOPLE = SHARED / "videos" / "people.mp4"


def prepare_streams(folder: Path, count: int, frames: int) -> list[Path]:
    """people.mp4 (cut to ``frames``) and synthetic 720p H.264 clips of the same length."""
    folder.mkdir(parents=True, exist_ok=True)
    people = PEOPLE if frames >= 302 else cut_clip(PEOPLE, folder / "people.mp4", frames=frames, width=1920)
    clips = [make_clip(folder / f"synthetic{i}.mp4", f"synthetic{i}", frames=min(frames, 302), size=(1280, 720),
                       fps=30, seed=i) for i in range(count - 1)]
    return [people, *clips]


# -- the alternatives ------------------------------------------------------------------------

def ultralytics_streams(model: str, paths: list[Path], imgsz: int, folder: Path, save: bool = False) -> dict[str, Any]:
    """U: Ultralytics' own multi-stream mode, counting the frames it really returns."""
    listing = folder / ("save.streams" if save else "all.streams")
    listing.write_text("\n".join(str(p) for p in paths) + "\n")
    preload(openvino=is_openvino(model))  # the imports streamyolo does before its clock starts, for all
    yolo = import_ultralytics().YOLO(model, task="detect")
    returned = 0
    started = time.perf_counter()
    for _ in yolo.predict(source=str(listing), stream=True, stream_buffer=True, imgsz=imgsz, device="cpu",
                          verbose=False, save=save, project=str(folder / "ultralytics"), name="run", exist_ok=True):
        returned += 1
    elapsed = time.perf_counter() - started
    return {"fps": returned / elapsed, "frames": returned, "seconds": elapsed}


def thread_per_stream(model: str, paths: list[Path], imgsz: int) -> dict[str, Any]:
    """S: the thread-safe pattern from Ultralytics' guide: one thread per stream, each
    creating its own YOLO inside the thread and calling predict() on the frames it reads."""
    counts = [0] * len(paths)
    preload(openvino=is_openvino(model))
    ultralytics = import_ultralytics()

    def run(index: int, path: Path) -> None:
        local = ultralytics.YOLO(model, task="detect")
        capture = cv2.VideoCapture(str(path))
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                local.predict(frame, imgsz=imgsz, device="cpu", verbose=False)
                counts[index] += 1
        finally:
            capture.release()

    threads = [threading.Thread(target=run, args=(i, p), name=f"bench:S{i}") for i, p in enumerate(paths)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"fps": sum(counts) / elapsed, "frames": sum(counts), "seconds": elapsed}


# -- streamyolo ------------------------------------------------------------------------------

def streamyolo(model: str, paths: list[Path], imgsz: int, workers: int, record: Path | None = None,
               mode: str = "thread", web: bool = False, lanes: int | str = "auto",
               more: dict[str, Any] | None = None) -> dict[str, Any]:
    """P; with ``web``, the web page is on and one viewer per stream watches its video the whole run;
    ``more``: other config keys."""
    config: dict[str, Any] = {"streams": [f"s{i}={p}" for i, p in enumerate(paths)], "model": model,
                              "imgsz": imgsz, "workers": workers, "device": "cpu", "lanes": lanes, **(more or {})}
    if record is not None:
        config["record"] = str(record)
    if mode != "thread":
        config["worker_mode"] = mode
    viewers: list[threading.Thread] = []
    shown: dict[str, int] = {}
    if web:
        config["web"] = "127.0.0.1:0"

    def watch(pipeline: Pipeline) -> None:
        for name in pipeline.stream_names:
            viewer = threading.Thread(target=_view, args=(f"{pipeline.web_url}streams/{name}.mjpg", name, shown))
            viewer.start()
            viewers.append(viewer)

    rates, summary = bench.measure_pipeline(config, on_start=watch if web else None)
    for viewer in viewers:
        viewer.join()
    captured = sum(r.captured for r in summary.streams.values())
    dropped = sum(r.dropped for r in summary.streams.values())
    out = {"fps": rates.wall.fps, "steady_fps": rates.steady.fps, "frames": rates.wall.frames,
           "seconds": rates.wall.seconds, "captured": captured, "dropped": dropped, "workers": workers, "mode": mode,
           "still": sum(r.still or 0 for r in summary.streams.values())}
    if web:
        out["web_frames_shown"] = sum(shown.values())
    return out


def _view(url: str, name: str, shown: dict[str, int]) -> None:
    """A web page viewer: reads the stream's MJPEG video until the run ends, counting frames."""
    boundary = b"--frame\r\n"
    shown[name], tail = 0, b""
    with urllib.request.urlopen(url, timeout=30) as response:
        while chunk := response.read1(1 << 16):  # big reads: the viewer costs the box little, as a browser would
            data = tail + chunk
            shown[name] += data.count(boundary)
            tail = data[-(len(boundary) - 1):]


def live(model: str, paths: list[Path], imgsz: int, workers: int, seconds: float, hold: bool = True) -> dict[str, Any]:
    """Every stream delivered at its own 30 fps, looping; frame age from capture to result.
    The model's single-frame latency is measured just before and just after, in this process:
    the machine's speed drifts over minutes, and the goal is a ratio of the two."""
    hw = bench.frame_hw(paths[0])
    latency_before = bench.measure_latency(model, imgsz, hw)
    config = {"streams": [{"name": f"s{i}", "source": str(p), "realtime": True, "loop": True}
                          for i, p in enumerate(paths)],
              "model": model, "imgsz": imgsz, "workers": workers, "device": "cpu", "duration": seconds,
              "display": False, "status_interval": 0, "live_hold": hold, "overload_warning": 0}  # (by design)
    ages: list[tuple[float, float]] = []
    pipeline = Pipeline.from_config(config)
    started = time.monotonic()
    for result in pipeline.results():
        ages.append((result.t_done - started, result.age))
    summary = pipeline.summary()
    latency = (latency_before + bench.measure_latency(model, imgsz, hw)) / 2
    exact = all(r.captured == r.processed + r.dropped for r in summary.streams.values())
    # The clock started before the models were built, so the window starts a little early.
    ages, drained = bench.served(ages, seconds)
    values = sorted(a for _, a in ages)
    third = seconds / 3
    first = sorted(a for t, a in ages if t < third) or [0.0]
    last = sorted(a for t, a in ages if t >= seconds - third) or [0.0]
    return {
        "p50": statistics.median(values), "p99": bench.p99(values), "p99_first_third": bench.p99(first),
        "p99_last_third": bench.p99(last), "processed": summary.processed,
        "captured": sum(r.captured for r in summary.streams.values()),
        "dropped": sum(r.dropped for r in summary.streams.values()), "identity_exact": exact,
        "drained_after_stop": drained,
        "offered_fps": 30 * len(paths), "latency": latency,
    }


def memory(model: str, paths: list[Path], imgsz: int, minutes: float) -> dict[str, Any]:
    """RSS with 1..K streams (1 worker) and 1..2 workers (K streams), then over a long run."""
    def rss_of(streams: int, workers: int) -> float:
        config = {"streams": [{"name": f"s{i}", "source": str(paths[i % len(paths)]), "loop": True}
                              for i in range(streams)],
                  "model": model, "imgsz": imgsz, "workers": workers, "device": "cpu", "duration": 8,
                  "display": False, "status_interval": 0}
        pipeline = Pipeline.from_config(config)
        pipeline.start()
        pipeline.wait(6)
        value = bench.rss_mib()
        pipeline.stop()
        pipeline.join()
        gc.collect()
        return value

    start = bench.rss_mib()
    per_streams = {n: rss_of(n, 1) for n in range(1, len(paths) + 1)}
    per_workers = {w: rss_of(len(paths), w) for w in (1, 2)}
    result: dict[str, Any] = {"start_mib": start, "by_streams_1_worker": per_streams,
                              "by_workers": per_workers}
    if minutes > 0:
        config = {"streams": [{"name": f"s{i}", "source": str(p), "realtime": True, "loop": True}
                              for i, p in enumerate(paths)],
                  "model": model, "imgsz": imgsz, "workers": 2, "device": "cpu", "duration": minutes * 60,
                  "display": False, "status_interval": 0, "overload_warning": 0}
        samples: list[tuple[float, float]] = []
        ages: list[tuple[float, float]] = []
        pipeline = Pipeline.from_config(config)
        began = time.monotonic()
        next_sample = began + 10
        for frame_result in pipeline.results():  # frame ages too: do they grow from the first minute to the last?
            now = time.monotonic()
            ages.append((now - began, frame_result.age))
            if now >= next_sample:
                samples.append((now - began, bench.rss_mib()))
                next_sample += 10
        first = [m for t, m in samples if t <= 60]
        last = [m for t, m in samples if t >= samples[-1][0] - 60]
        ages, drained = bench.served(ages, minutes * 60)
        by_minute = [sorted(a for t, a in ages if index * 60 <= t < (index + 1) * 60)
                     for index in range(math.ceil(ages[-1][0] / 60))]
        p99s = [bench.p99(values) for values in by_minute if values]
        result["long_run"] = {"minutes": minutes, "first_minute_mib": statistics.mean(first),
                              "last_minute_mib": statistics.mean(last),
                              "growth": statistics.mean(last) / statistics.mean(first) - 1,
                              "age_p99_first_minute": p99s[0], "age_p99_last_minute": p99s[-1],
                              "age_p99_by_minute": p99s, "drained_after_stop": drained}
    return result


# -- the report ------------------------------------------------------------------------------

def measure_d(paths: list[Path]) -> dict[str, Any]:
    return asdict(bench.measure_decode(paths))


def measure_m(model: str, imgsz: int, hw: tuple[int, int], seconds: float) -> dict[str, Any]:
    value = bench.measure_model(model, imgsz, hw, seconds=seconds)
    return {"fps": value.best.fps, "config": value.best.config, "latency": value.latency,
            "tried": [asdict(r) for r in value.tried]}


class Hung(Exception):
    """A measurement that did not finish in time; its process was killed."""


EXIT_GRACE = 60.0
"""Seconds a measurement's process that has answered may take to exit before it is killed."""


def isolated(function: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a fresh process: no contender inherits another's
    thread pools, CPU pinning, torch thread setting or warm caches. After ``timeout``
    seconds the process prints every thread's stack (to the console), is killed and
    :class:`Hung` raised (the thread-per-stream pattern has been seen to deadlock inside
    torch/OpenVINO once in many runs, and streamyolo once in runs A-M)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_answer, args=(send, function, args, kwargs), name="bench:isolated")
    process.start()
    send.close()
    answered = False
    try:
        if not receive.poll(timeout):
            _dump_stacks(process)
            raise Hung(f"{function.__name__} did not finish in {timeout:.0f} s")
        ok, value = receive.recv()
        answered = True
    except EOFError:
        ok, value = False, f"{function.__name__}: its process died (exit code {process.exitcode})"
    finally:
        # A process that answered is given time to exit on its own: killed while exiting, it
        # would leave its temporary folders behind (a converted network, 10 MB each).
        process.join(EXIT_GRACE if answered else 0)
        if process.is_alive():
            process.kill()
        process.join()
        receive.close()
    if not ok:
        raise RuntimeError(value)
    return value


DUMP_SIGNAL = getattr(signal, "SIGUSR1", None)
"""What asks a measurement's process for its threads' stacks (POSIX only)."""


def _dump_stacks(process: Any) -> None:
    """Ask a hung measurement's process to print where its threads are, and give it a moment."""
    if DUMP_SIGNAL is None or process.pid is None or not process.is_alive():
        return
    print(f"{process.name}: not finished in time; its threads' stacks follow", file=sys.stderr, flush=True)
    os.kill(process.pid, DUMP_SIGNAL)
    time.sleep(2.0)


def _answer(send: Any, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if DUMP_SIGNAL is not None:
        faulthandler.register(DUMP_SIGNAL, all_threads=True)
    try:
        send.send((True, function(*args, **kwargs)))
    except BaseException as exc:  # reported in the parent, which has the console
        send.send((False, f"{function.__name__}: {type(exc).__name__}: {exc}"))


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median frame rate (the lower middle one for an even count), with
    every run's rates beside it; for P also the median steady rate."""
    ordered = sorted(runs, key=lambda r: r["fps"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["fps_runs"] = [round(r["fps"], 2) for r in runs]
    if "steady_fps" in out:
        out["steady_fps"] = statistics.median_low([r["steady_fps"] for r in runs])
        out["steady_fps_runs"] = [round(r["steady_fps"], 2) for r in runs]
    return out


def median_model(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """M over rounds: each configuration's median rate; the best configuration's median."""
    by_config: dict[str, list[float]] = {}
    for run in runs:
        for tried in run["tried"]:
            by_config.setdefault(tried["config"], []).append(tried["fps"])
    medians = {config: statistics.median_low(rates) for config, rates in by_config.items()}
    best = max(medians, key=lambda config: medians[config])
    return {"fps": medians[best], "config": best, "latency": statistics.median_low([r["latency"] for r in runs]),
            "fps_runs": [round(f, 2) for f in by_config[best]],
            "tried": {config: [round(f, 2) for f in rates] for config, rates in by_config.items()}}


RATIOS = (  # (contender, against, how the report names the ratio), printed where both were measured
    ("P_track", "P", "P_track (tracked) / P"),
    ("P_events", "P_track", "P_events (events and snapshots) / P_track"),
    ("P_clips", "P_events", "P_clips (events and clips) / P_events (events and snapshots)"),
    ("P_rec", "P", "P_rec (recording) / P"),
    ("P_clips", "P_clips_orig", "P_clips / P_clips_orig (annotated clips against clips of the original video)"),
    ("P_rec_orig", "P", "P_rec_orig (recording the original video) / P"),
    ("P_motion", "P", "P_motion (the model only where something moved) / P"),
    ("P_quiet_motion", "P_quiet", "P_quiet_motion / P_quiet (quiet streets, with and without motion)"),
    ("P_rec_clips", "P_clips", "P_rec_clips (recording and clips) / P_clips"),
    ("P", "P_1lane", "P (lanes: auto) / P_1lane (lanes: 1)"),
    ("P_process", "P_process_1lane", "P_process (lanes: auto) / P_process_1lane (lanes: 1)"),
)


def run_model(label: str, model: str, paths: list[Path], args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    log = print
    hw = bench.frame_hw(paths[0])
    out: dict[str, Any] = {"model": label}
    measurements: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
        ("D", measure_d, (paths,), {}),
        ("M", measure_m, (model, args.imgsz, hw, args.model_seconds), {}),
        ("P", streamyolo, (model, paths, args.imgsz, args.workers), {}),
        ("U", ultralytics_streams, (model, paths, args.imgsz, folder), {}),
        ("S", thread_per_stream, (model, paths, args.imgsz), {}),
        ("P_rec", streamyolo, (model, paths, args.imgsz, args.workers), {"record": folder / f"rec-{label}"}),
        ("U_save", ultralytics_streams, (model, paths, args.imgsz, folder), {"save": True}),
    ]
    if bench.is_pytorch(model):  # P with the network left in PyTorch: what the conversion brings
        measurements.insert(3, ("P_torch", streamyolo, (model, paths, args.imgsz, args.workers),
                                {"more": {"pytorch_cpu": "torch"}}))
    if args.process:
        measurements.append(("P_process", streamyolo, (model, paths, args.imgsz, args.workers), {"mode": "process"}))
    if args.web:
        measurements.append(("P_web", streamyolo, (model, paths, args.imgsz, args.workers), {"web": True}))
    if args.only:
        if "P_1lane" in args.only.split(","):  # P with one model per worker: what lanes bring
            measurements.append(("P_1lane", streamyolo, (model, paths, args.imgsz, args.workers), {"lanes": 1}))
        if "P_track" in args.only.split(","):  # P with every stream tracked (ByteTrack): what tracking costs
            measurements.append(("P_track", streamyolo, (model, paths, args.imgsz, args.workers),
                                 {"more": {"tracker": "bytetrack", "conf": 0.25}}))
        # P_track with a zone over every picture and a line across it, every event written and its
        # frame saved as a snapshot (P_events) or in a clip (P_clips): what events cost at their busiest
        whole = [[0, 0], [10000, 0], [10000, 10000], [0, 10000]]
        eventful = {"tracker": "bytetrack", "conf": 0.25, "overwrite": True, "events": str(folder / "events.jsonl"),
                    "stream_defaults": {"zones": {"whole": whole}, "lines": {"middle": [[0, 360], [10000, 360]]}}}
        if "P_events" in args.only.split(","):
            measurements.append(("P_events", streamyolo, (model, paths, args.imgsz, args.workers), {"more": {
                **eventful, "snapshots": str(folder / "snapshots")}}))
        if "P_clips" in args.only.split(","):
            measurements.append(("P_clips", streamyolo, (model, paths, args.imgsz, args.workers), {"more": {
                **eventful, "clips": str(folder / "clips")}}))
        if "P_clips_orig" in args.only.split(","):  # P_clips cut from the streams' own video (clip_mode: original)
            measurements.append(("P_clips_orig", streamyolo, (model, paths, args.imgsz, args.workers), {"more": {
                **eventful, "clips": str(folder / "clips-orig"), "clip_mode": "original"}}))
        if "P_rec_clips" in args.only.split(","):  # P_clips recording every stream too: one encoding serves both
            measurements.append(("P_rec_clips", streamyolo, (model, paths, args.imgsz, args.workers), {"more": {
                **eventful, "clips": str(folder / "clips"), "record": str(folder / "rec-clips")}}))
        if "P_rec_orig" in args.only.split(","):  # P recording every stream's own video (record_mode: original)
            measurements.append(("P_rec_orig", streamyolo, (model, paths, args.imgsz, args.workers),
                                 {"record": folder / f"rec-orig-{label}", "more": {"record_mode": "original"}}))
        if "P_motion" in args.only.split(","):  # P running the model only where something moved (motion)
            measurements.append(("P_motion", streamyolo, (model, paths, args.imgsz, args.workers),
                                 {"more": {"motion": True}}))
        if {"P_quiet", "P_quiet_motion"} & set(args.only.split(",")):
            # Streams of a quiet street: people.mp4's first picture held 8 s with a camera's
            # sensor noise, then 2 s of its people walking; P on them without and with motion.
            quiet = cut_clip(PEOPLE, folder / "quiet.mp4", frames=60, width=1920, hold=240, noise=2.0)
            quiet_paths = [quiet] * len(paths)
            measurements.append(("P_quiet", streamyolo, (model, quiet_paths, args.imgsz, args.workers), {}))
            measurements.append(("P_quiet_motion", streamyolo, (model, quiet_paths, args.imgsz, args.workers),
                                 {"more": {"motion": True}}))
        if "P_process_1lane" in args.only.split(","):  # the same for process workers (no lending either)
            measurements.append(("P_process_1lane", streamyolo, (model, paths, args.imgsz, args.workers),
                                 {"lanes": 1, "mode": "process"}))
        measurements = [m for m in measurements if m[0] in args.only.split(",")]
    if args.live_only:
        measurements = []
    # Rounds interleave the contenders, so a slow spell of a shared machine hits them alike;
    # the report uses each one's median.
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in measurements}
    hung: dict[str, int] = {}
    for index in range(args.rounds):
        for key, function, positional, named in measurements:
            where = f"[{label}] round {index + 1}/{args.rounds}"
            log(f"{where}: measuring {key} …", flush=True)
            try:
                runs[key].append(isolated(function, *positional, timeout=args.timeout, **named))
            except Hung as exc:
                hung[key] = hung.get(key, 0) + 1
                log(f"{where}: {key} HUNG, killed: {exc}", flush=True)
                continue
            log(f"{where}: {key}: {runs[key][-1]['fps']:.1f} fps", flush=True)
    for key, values in runs.items():
        if values:
            out[key] = median_model(values) if key == "M" else median_of(values)
    if hung:
        out["hung"] = hung
    if "M" in out and "D" in out:
        out["L"] = bench.limit(out["M"]["fps"], out["D"]["fps"])
    if args.live_compare:
        # live_hold on and off, interleaved, 1 worker: the one difference between the runs.
        out["live_compare"] = []
        for index in range(args.rounds):
            for hold in (True, False):
                log(f"[{label}] live compare round {index + 1}/{args.rounds}, hold {'on' if hold else 'off'} …",
                    flush=True)
                result = isolated(live, model, paths, args.imgsz, 1, args.live_seconds, hold)
                out["live_compare"].append({"hold": hold, **result})
    elif args.live_seconds > 0:
        # One worker with every core gives the lowest frame age; args.workers the most frames.
        out["live"] = {}
        for workers in sorted({1, args.workers}):
            log(f"[{label}] measuring live mode, {workers} worker(s), for {args.live_seconds} s …", flush=True)
            out["live"][workers] = isolated(live, model, paths, args.imgsz, workers, args.live_seconds)
    if args.memory:
        log(f"[{label}] measuring memory …", flush=True)
        out["memory"] = isolated(memory, model, paths, args.imgsz, args.memory_minutes)
    return out


def goals(result: dict[str, Any], pytorch: bool) -> list[tuple[str, float, str, bool]]:
    rows: list[tuple[str, float, str, bool]] = []
    if "P" in result:
        p = result["P"]["fps"]
        steady = result["P"]["steady_fps"]  # M leaves warm-up out, so P/L does too
        if "L" in result:
            lim = result["L"]
            rows.append(("P/L (no recording, after start-up)", steady / lim, ">= 0.85", steady / lim >= 0.85))
        if "U" in result:
            u = result["U"]["fps"]
            rows.append(("P/U", p / u, ">= 2.0" if pytorch else ">= 1.4", p / u >= (2.0 if pytorch else 1.4)))
        if "S" in result:
            s = result["S"]["fps"]
            rows.append(("P/S", p / s, ">= 1.0" if pytorch else ">= 1.4", p / s >= (1.0 if pytorch else 1.4)))
        rows.append(("P processed every frame", 1.0 if result["P"]["dropped"] == 0 else 0.0, "all",
                     result["P"]["dropped"] == 0 and result["P"]["frames"] == result["P"]["captured"]))
    if "P_rec" in result and "U_save" in result:
        ratio = result["P_rec"]["fps"] / result["U_save"]["fps"]
        rows.append(("P_rec/U_save", ratio, ">= 1.5", ratio >= 1.5))
    for workers, live_result in result.get("live", {}).items():
        # The PyTorch model runs converted to OpenVINO where OpenVINO is installed (pytorch_cpu: auto).
        auto = auto_workers(cuda=False, live_only=True, cores=cpu_count(), openvino=not pytorch or openvino_installed())
        default = ", the default here" if workers == auto else ""
        latency, tag = live_result["latency"], f" ({workers} worker{'s' if workers > 1 else ''}{default})"
        rows.append((f"live p99 age / latency{tag}", live_result["p99"] / latency, "<= 3.0",
                     live_result["p99"] <= 3 * latency))
        grew = live_result["p99_last_third"] <= 1.2 * live_result["p99_first_third"] + 0.005
        rows.append((f"live p99 last/first third{tag}", live_result["p99_last_third"] / max(
            live_result["p99_first_third"], 1e-9), "no growth", grew))
        rows.append((f"live accounting exact{tag}", 1.0 if live_result["identity_exact"] else 0.0, "exact",
                     live_result["identity_exact"]))
    if "memory" in result and "long_run" in result["memory"]:
        long_run = result["memory"]["long_run"]
        growth = long_run["growth"]
        rows.append(("RSS growth over long run", growth, "< 0.02", growth < 0.02))
        first, last = long_run["age_p99_first_minute"], long_run["age_p99_last_minute"]
        rows.append(("live p99 last/first minute of long run (2 workers)", last / first, "no growth",
                     last <= 1.2 * first + 0.005))
    return rows


def print_report(results: list[dict[str, Any]]) -> None:
    def fps(r: dict[str, Any], key: str) -> str:
        if key not in r:
            return "–"
        text = f"{r[key]['fps']:.1f}"
        if key in ("P", "P_torch"):
            text += f" ({r[key]['steady_fps']:.1f})"
        elif key == "U" and "P" in r:
            text += f" ({r[key]['frames']}/{r['P']['captured']})"
        elif key == "P_web":
            text += f" ({r[key]['web_frames_shown']} shown)"
        return text

    measured = [r for r in results if any(key in r for key in ("M", "D", "P", "U", "S"))]
    if measured:
        print("\n| model | M fps | D fps | L fps | P (after start-up) | P torch | P rec | U (frames) | U save | S "
              "| P process | P web (frames shown) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in measured:
        limit = f"{r['L']:.1f}" if "L" in r else "–"
        cells = [fps(r, key) for key in ("M", "D")] + [limit] + [
            fps(r, key) for key in ("P", "P_torch", "P_rec", "U", "U_save", "S", "P_process", "P_web")]
        print(f"| {r['model']} | {' | '.join(cells)} |")
    print("\nevery round's frames per second (medians above):")
    for r in results:
        for key in ("D", "M", "P", "U", "S", "P_rec", "U_save", "P_process", "P_web", "P_1lane", "P_process_1lane",
                    "P_torch", "P_track", "P_events", "P_clips", "P_clips_orig", "P_rec_clips", "P_rec_orig",
                    "P_motion", "P_quiet", "P_quiet_motion"):
            if key in r:
                print(f"  {r['model']} {key}: {r[key]['fps_runs']}")
            if key in r.get("hung", {}):
                print(f"  {r['model']} {key}: hung and was killed in {r['hung'][key]} round(s), left out")
        for top, bottom, label in RATIOS:
            if top in r and bottom in r:
                print(f"  {r['model']} {label}: {r[top]['fps'] / r[bottom]['fps']:.2f}")
        if "P_torch" in r:  # the network left in PyTorch against the others
            ratios = [f"P_torch / {key}: {r['P_torch']['fps'] / r[key]['fps']:.2f}" for key in ("P", "U", "S")
                      if key in r]
            print(f"  {r['model']} {'; '.join(ratios)}")
    for r in results:
        if "M" in r:
            print(f"\n{r['model']}: best M config: {r['M']['config']}; single-frame latency "
                  f"{r['M']['latency'] * 1000:.1f} ms")
        else:
            print(f"\n{r['model']}:")
        for workers, lv in r.get("live", {}).items():
            print(f"  live, {workers} worker(s): offered {lv['offered_fps']} fps, processed {lv['processed']} of "
                  f"{lv['captured']}, p50 {lv['p50'] * 1000:.0f} ms, p99 {lv['p99'] * 1000:.0f} ms, "
                  f"single-frame latency beside it {lv['latency'] * 1000:.1f} ms "
                  f"(first third {lv['p99_first_third'] * 1000:.0f}, last third {lv['p99_last_third'] * 1000:.0f}; "
                  f"{lv.get('drained_after_stop', 0)} frames drained after the stop left out)")
        for lv in r.get("live_compare", []):
            print(f"  live compare, hold {'on ' if lv['hold'] else 'off'}: processed {lv['processed']} of "
                  f"{lv['captured']}, p50 {lv['p50'] * 1000:.0f} ms, p99 {lv['p99'] * 1000:.0f} ms "
                  f"= {lv['p99'] / lv['latency']:.2f} × latency {lv['latency'] * 1000:.1f} ms")
        if "memory" in r:
            print(f"  memory: {json.dumps(r['memory'], default=lambda v: round(v, 1))}")
        rows = goals(r, pytorch=r["model"].startswith("yolo26n"))
        if rows:
            print("  | goal | value | target | pass |\n  |---|---|---|---|")
        for name, value, target, ok in rows:
            print(f"  | {name} | {value:.2f} | {target} | {'PASS' if ok else 'FAIL'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="openvino,pytorch", help="openvino, pytorch or both")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=302, help="frames per stream (people.mp4 has 302)")
    parser.add_argument("--pytorch-frames", type=int, default=150, help="frames per stream for the PyTorch model")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of the throughput contenders")
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--live-only", action="store_true",
                        help="only live mode (it measures the single-frame latency it is judged against)")
    parser.add_argument("--live-compare", action="store_true",
                        help="live mode with live_hold on and off, interleaved over --rounds, 1 worker "
                             "(instead of the usual live runs)")
    parser.add_argument("--process", action="store_true", help="also measure worker_mode: process")
    parser.add_argument("--web", action="store_true",
                        help="also measure P with the web page on and one viewer per stream watching (P_web)")
    parser.add_argument("--only", metavar="KEYS", help="only these throughput contenders, e.g. P,P_web")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds after which a throughput measurement counts as hung and is killed")
    parser.add_argument("--memory", action="store_true", help="also measure memory")
    parser.add_argument("--memory-minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true",
                        help="keep the bench's folder (clips, recordings, model cache) and print where it is")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="streamyolo-bench-"))
    try:
        return measure_all(args, parser, folder)
    finally:
        if args.keep:
            print(f"kept the bench's files in {folder}", file=sys.stderr)
        else:  # a few hundred MB of clips, recordings and compiled models per run
            shutil.rmtree(folder, ignore_errors=True)


def measure_all(args: argparse.Namespace, parser: argparse.ArgumentParser, folder: Path) -> int:
    # The model cache (OpenVINO's compiled models, PyTorch networks converted to OpenVINO) starts
    # empty in the bench's own folder: streamyolo's first round compiles and converts, as a first
    # run would, and the user's cache is left alone. Every measurement's process inherits it.
    os.environ["XDG_CACHE_HOME"] = str(folder / "cache")
    results = []
    for which in args.models.split(","):
        if which == "openvino":
            paths = prepare_streams(folder / "ov", args.streams, args.frames)
            results.append(run_model("yolo11n-openvino-int8", str(OPENVINO_MODEL), paths, args, folder))
        elif which == "pytorch":
            paths = prepare_streams(folder / "pt", args.streams, args.pytorch_frames)
            # Random weights from the YAML, saved once, so that every contender runs the very same
            # network (a YAML model gives every replica random weights of its own).
            weights = folder / "yolo26n-random.pt"
            import_ultralytics().YOLO("yolo26n.yaml").save(str(weights))
            results.append(run_model("yolo26n-pytorch", str(weights), paths, args, folder))
        else:
            parser.error(f"unknown model {which!r}")
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
