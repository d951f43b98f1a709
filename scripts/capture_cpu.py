"""What capture costs in CPU when frames are converted to BGR at once, against handed over
unconverted (streamyolo's way: converted beside the worker while it keeps up, on first use
while a live buffer drops frames).

    .venv/bin/python scripts/capture_cpu.py --rounds 3 --seconds 10

The bench's 4 streams (../shared/videos/people.mp4, 1080p, and three synthetic 720p H.264
clips), each played live at its own 30 fps, 1 worker whose detector only waits (a stand-in for
a model on another device, so the CPU time is capture's alone): ``--slow`` seconds a frame, so
the buffers drop most frames, and ``--fast``, so the worker takes every frame. Each measurement
runs in a fresh process, the two ways interleaved over ``--rounds``; reports the CPU time per
second of wall time (cores) and the frames captured and processed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo.buffering import Overflow  # noqa: E402
from streamyolo.frames import Detections, Image  # noqa: E402
from streamyolo.pipeline import Pipeline, StreamSetup  # noqa: E402
from streamyolo.sources import SourceKind, SourceSpec, open_source  # noqa: E402
from streamyolo.workers.capture import CapturePolicy  # noqa: E402


class WaitingDetector:
    """Finds nothing, after ``delay`` seconds a batch, using no CPU."""

    names: Mapping[int, str] = {0: "thing"}

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._never = threading.Event()

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        self._never.wait(self._delay)
        return [Detections.empty(self.names) for _ in images]

    def close(self) -> None:
        pass


def one(paths: list[Path], deferred: bool, delay: float, seconds: float) -> dict[str, Any]:
    """One live run, in this process: CPU cores used, frames captured and processed."""
    setups = [StreamSetup(f"s{i}", open_source(SourceSpec(f"s{i}", str(p), SourceKind.FILE), loop=True,
                                               defer_conversion=deferred),
                          Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))
              for i, p in enumerate(paths)]
    pipeline = Pipeline(setups, lambda: WaitingDetector(delay), workers=1)
    pipeline.start()
    wall, cpu = time.monotonic(), time.process_time()
    pipeline.wait(seconds)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    pipeline.stop()
    pipeline.join()
    summary = pipeline.summary()
    return {"cores": cpu / wall, "captured": sum(r.captured for r in summary.streams.values()),
            "processed": summary.processed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slow", type=float, default=0.04, help="the detector's seconds a frame, overloaded")
    parser.add_argument("--fast", type=float, default=0.004, help="the detector's seconds a frame, keeping up")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single measurement, as JSON: deferred,delay,paths…
    args = parser.parse_args(argv)
    if args.one:
        deferred, delay, *paths = args.one.split(",")
        print(json.dumps(one([Path(p) for p in paths], deferred == "1", float(delay), args.seconds)))
        return 0

    import bench  # scripts/bench.py: the bench's streams

    folder = Path(tempfile.mkdtemp(prefix="streamyolo-capture-cpu-"))
    try:
        paths = bench.prepare_streams(folder, 4, 302)
        runs: dict[tuple[float, bool], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for delay in (args.slow, args.fast):
                for deferred in (False, True):
                    spec = ",".join([str(int(deferred)), str(delay), *map(str, paths)])
                    out = subprocess.run([sys.executable, __file__, "--seconds", str(args.seconds), "--one", spec],
                                         check=True, capture_output=True, text=True).stdout
                    run = json.loads(out.strip().splitlines()[-1])
                    runs.setdefault((delay, deferred), []).append(run)
                    print(f"round {round_ + 1}: detector {1000 * delay:.0f} ms, "
                          f"{'unconverted' if deferred else 'converted at once'}: {run['cores']:.2f} cores, "
                          f"captured {run['captured']}, processed {run['processed']}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n| detector a frame | converted at once (cores) | handed over unconverted (cores) | ratio |")
    print("|---|---|---|---|")
    for delay in (args.slow, args.fast):
        eager = statistics.median(r["cores"] for r in runs[(delay, False)])
        lazy = statistics.median(r["cores"] for r in runs[(delay, True)])
        print(f"| {1000 * delay:.0f} ms | {eager:.2f} | {lazy:.2f} | {lazy / eager:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
