"""The recorder alone: how many frames per second a stream's writer thread annotates, encodes
and writes, from decoded frames of a video held in memory (no model, no capture).

    .venv/bin/python scripts/bench_recorder.py --frames 150 --segment 2

Run it on two checkouts alternately (``PYTHONPATH=<checkout>``) to compare their recorders.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import cast

import av

from streamyolo.frames import Detections, Frame, FrameMeta, Image, Result
from streamyolo.sinks.recorder import VideoRecorder

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "videos" / "people.mp4")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--segment", type=float, default=None, help="seconds of video per file")
    args = parser.parse_args()
    images: list[Image] = []
    with av.open(str(args.video)) as container:
        for frame in container.decode(video=0):
            images.append(cast(Image, frame.to_ndarray(format="bgr24")))
            if len(images) == args.frames:
                break
    now = time.monotonic()
    results = [Result(Frame(FrameMeta("cam", i, now, i / 30, 30.0), image), Detections.empty(), now)
               for i, image in enumerate(images)]
    with tempfile.TemporaryDirectory() as folder:
        recorder = VideoRecorder(Path(folder), segment=args.segment)
        recorder.open()
        started = time.perf_counter()
        for result in results:
            recorder.write(result)
        recorder.close()
        seconds = time.perf_counter() - started
    print(f"{len(results)} frames in {seconds:.2f} s: {len(results) / seconds:.1f} frames/s")


if __name__ == "__main__":
    main()
