"""Where a live frame's age goes, from capture to result: the bench's live run (4 streams at
30 fps each, more than the box takes), with the inference worker's steps timed.

    .venv/bin/python scripts/live_breakdown.py --seconds 25 --rounds 2

Per frame taken: ``wait`` (captured → taken by the worker), ``convert`` (to BGR, when the
frame was handed over unconverted), ``letterbox``, ``forward`` (the OpenVINO inference request),
and ``detect`` (the worker's whole detection call: letterbox, forward, NMS, boxes back to the
frame). The model's single-frame latency (the network alone, on an idle box) is measured just
before and after each run, as the bench does. Rounds alternate ``live_hold`` on and off.

A diagnostic: it wraps streamyolo's internals (``InferenceWorker._process``,
``OpenVINORunner.run``), so it follows them when they change.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo import benchmark as bench  # noqa: E402
from streamyolo.inference import runners  # noqa: E402
from streamyolo.pipeline import Pipeline  # noqa: E402
from streamyolo.workers import inference  # noqa: E402

STEPS = ("wait", "convert", "letterbox", "forward", "detect")


def instrument(timings: dict[str, list[float]]) -> None:
    """Wrap the worker's and the OpenVINO runner's steps so that each adds its seconds."""
    process = inference.InferenceWorker._process
    run = runners.OpenVINORunner.run
    local = threading.local()

    def timed_process(self: Any, detector: Any, batch: Any) -> None:
        taken = self._clock()
        for _, frame in batch:
            timings["wait"].append(taken - frame.meta.t_capture)
            if not frame.converted:
                start = time.monotonic()
                frame.image  # noqa: B018 - converts it, as the detector would
                timings["convert"].append(time.monotonic() - start)
        start = time.monotonic()
        process(self, detector, batch)
        timings["detect"].append(time.monotonic() - start)

    def timed_run(self: Any, images: Any) -> Any:
        letterbox = self._letterbox
        if getattr(letterbox, "_timed", None) is None:
            fill = letterbox.fill

            def timed_fill(frames: Any) -> Any:
                start = time.monotonic()
                out = fill(frames)
                local.letterbox = time.monotonic() - start
                return out

            letterbox.fill, letterbox._timed = timed_fill, True
        start = time.monotonic()
        out = run(self, images)
        timings["letterbox"].append(local.letterbox)
        timings["forward"].append(time.monotonic() - start - local.letterbox)
        return out

    inference.InferenceWorker._process = timed_process  # type: ignore[method-assign]
    runners.OpenVINORunner.run = timed_run  # type: ignore[method-assign]


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def one_run(paths: list[Path], seconds: float, hold: bool, timings: dict[str, list[float]]) -> None:
    for values in timings.values():
        values.clear()
    model = str(bench_module().OPENVINO_MODEL)
    hw = bench.frame_hw(paths[0])
    before = bench.measure_latency(model, 640, hw)
    config = {"streams": [{"name": f"s{i}", "source": str(p), "realtime": True, "loop": True}
                          for i, p in enumerate(paths)],
              "model": model, "imgsz": 640, "workers": 1, "device": "cpu", "duration": seconds,
              "display": False, "status_interval": 0, "live_hold": hold, "overload_warning": 0}
    started = time.monotonic()
    ages = [(r.t_done - started, r.age) for r in Pipeline.from_config(config).results()]
    after = bench.measure_latency(model, 640, hw)
    served = [age for done, age in ages if done <= seconds]
    latency = (before + after) / 2
    print(f"live_hold {'on' if hold else 'off'}: {len(served)} frames; single-frame latency "
          f"{1000 * before:.1f} / {1000 * after:.1f} ms; age p50 {1000 * quantile(served, 0.5):.1f}, "
          f"p99 {1000 * quantile(served, 0.99):.1f} ms = {quantile(served, 0.99) / latency:.2f} x latency")
    for step in STEPS:
        values = timings[step]
        if values:
            print(f"  {step:10s} p50 {1000 * quantile(values, 0.5):6.1f}  p90 {1000 * quantile(values, 0.9):6.1f}  "
                  f"p99 {1000 * quantile(values, 0.99):6.1f}  mean {1000 * statistics.mean(values):6.1f} ms"
                  f"  ({len(values)} frames)")


def bench_module() -> Any:
    import bench as bench_script  # scripts/bench.py: the bench's streams and model

    return bench_script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs, live_hold on then off")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="streamyolo-live-breakdown-"))
    try:
        paths = bench_module().prepare_streams(folder, 4, 302)
        timings: dict[str, list[float]] = {step: [] for step in STEPS}
        instrument(timings)
        for _ in range(args.rounds):
            for hold in (True, False):
                one_run(paths, args.seconds, hold, timings)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
