"""streamyolo's ``tiles`` against SAHI's sliced inference, side by side in ONE run: the same
video, model and parts, each measurement in a fresh process, --rounds interleaved.

    .venv/bin/python scripts/bench_tiles.py                  # 60 frames, 2 rounds
    .venv/bin/python scripts/bench_tiles.py --frames 150 --rounds 3 --grid 3x3
    .venv/bin/python scripts/bench_tiles.py --quiet          # only the centre moves: tiles with motion

The video: people.mp4's pictures at a third of their size, 3 x 3 on each 1920 x 1080 frame (its
people a third as tall: a camera three times as far), H.264. The model: the real YOLO11n
(OpenVINO INT8, ../shared). The parts: ``--grid`` (3x3), 20 % overlap, and the whole picture.

  T     streamyolo run --tiles GRID: lossless (every frame), workers and lanes as ``auto`` picks
  TM    (--quiet) T with --motion: the model only on the parts where something moved
  P     streamyolo without tiles: what the whole picture alone finds, and what it costs
  SAHI  sahi.predict.get_sliced_prediction on each frame (OpenCV decoding), slices the size of
        T's parts with the same overlap, the whole picture too (``perform_standard_pred``), its
        default merge (greedy non-maximum merging, intersection over the smaller box 0.5)

Each: frames per second (from its model ready to its last result; the median of the rounds)
and its recall and precision against the model on the nine pictures themselves, at their full
size, moved to where they are on the frame (same class, intersection over union 0.5).
SAHI comes from PyPI (``pip install sahi``); without it, T and P alone. ``--quiet``: the
centre picture plays and the other eight hold their first picture, with a camera's sensor noise
(σ 2 grey levels) over the whole frame: a far camera where one place sees anything move.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench import OPENVINO_MODEL, PEOPLE, isolated  # noqa: E402
from streamyolo import benchmark as bench  # noqa: E402
from streamyolo.config import TilesConfig  # noqa: E402
from streamyolo.frames import Detections, overlaps  # noqa: E402
from streamyolo.inference import DetectSettings, UltralyticsFactory  # noqa: E402
from streamyolo.inference.tiles import tiles  # noqa: E402
from tests.helpers import mosaic_clip  # noqa: E402

Boxes = tuple[list[list[float]], list[float], list[int]]
"""One frame's detections as plain lists (xyxy, conf, cls): what a measurement's process sends back."""


def streamyolo_run(clip: Path, model: str, grid: str | None, folder: Path, motion: bool = False) -> dict[str, Any]:
    """T (``grid``), TM (and ``motion``) or P: a lossless run over the clip, its JSONL read back."""
    jsonl = folder / f"det-{grid or 'none'}-{time.monotonic_ns()}.jsonl"
    rates, summary = bench.measure_pipeline({"streams": [f"mosaic={clip}"], "model": model, "jsonl": str(jsonl),
                                             "motion": motion, **({"tiles": grid} if grid else {})})
    frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
    jsonl.unlink()
    boxes: list[Boxes] = [([d["xyxy"] for d in f["detections"]], [d["conf"] for d in f["detections"]],
                           [d["cls"] for d in f["detections"]]) for f in frames]
    return {"fps": rates.steady.fps, "wall_fps": rates.wall.fps, "frames": summary.processed, "boxes": boxes}


def sahi_run(clip: Path, model: str, grid: str) -> dict[str, Any]:
    """SAHI on every frame of the clip, slices the size of ``tiles: grid``'s parts."""
    import cv2
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction
    from sahi.slicing import get_slice_bboxes

    os.environ.setdefault("YOLO_OFFLINE", "true")
    settings = TilesConfig(grid=grid).settings()
    capture = cv2.VideoCapture(str(clip))
    height, width = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    part = tiles(settings, height, width)[0]
    detector = AutoDetectionModel.from_pretrained(model_type="ultralytics", model_path=model,
                                                  confidence_threshold=0.25, device="cpu")
    slices = len(get_slice_bboxes(height, width, part.height, part.width, True, settings.overlap, settings.overlap))
    boxes: list[Boxes] = []
    started = None
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if started is None:  # the model's first pass (warm-up) is left out, as T's and P's
            get_sliced_prediction(image, detector, part.height, part.width, settings.overlap, settings.overlap,
                                  perform_standard_pred=settings.whole, verbose=0)
            started = time.perf_counter()
        found = get_sliced_prediction(image, detector, part.height, part.width, settings.overlap, settings.overlap,
                                      perform_standard_pred=settings.whole, verbose=0).object_prediction_list
        boxes.append(([[o.bbox.minx, o.bbox.miny, o.bbox.maxx, o.bbox.maxy] for o in found],
                      [o.score.value for o in found], [o.category.id for o in found]))
    capture.release()
    seconds = time.perf_counter() - (started or time.perf_counter())
    return {"fps": len(boxes) / seconds, "frames": len(boxes), "boxes": boxes, "slices": slices}


def references(parts: list[list[Any]], model: str, shape: tuple[int, ...]) -> list[Detections]:
    """Each frame's reference: the model on its nine pictures at full size, moved to where they
    are on the frame (each picture detected once, however many frames show it)."""
    detector = UltralyticsFactory(model, DetectSettings())()
    h, w = shape[0] // 3, shape[1] // 3
    seen: dict[int, Detections] = {}
    try:
        out = []
        for nine in parts:
            for picture in nine:
                if id(picture) not in seen:
                    seen[id(picture)] = detector.detect([picture])[0]
            out.append(Detections.joined([seen[id(p)].placed(1 / 3, (k % 3) * w, (k // 3) * h)
                                          for k, p in enumerate(nine)], detector.names))
        return out
    finally:
        detector.close()


def matched(reference: Detections, boxes: Boxes, iou: float = 0.5) -> tuple[int, int, int, int]:
    """(reference boxes found, reference boxes, found boxes that are in the reference, found boxes)."""
    xyxy = np.array(boxes[0], np.float32).reshape(-1, 4)
    if not len(xyxy) or not len(reference):
        return 0, len(reference), 0, len(xyxy)
    match = (overlaps(reference.xyxy, xyxy) >= iou) & (reference.cls[:, None] == np.array(boxes[2])[None])
    return int(match.any(1).sum()), len(reference), int(match.any(0).sum()), len(xyxy)


def score(refs: list[Detections], frames: list[Boxes]) -> tuple[float, float, float]:
    """Recall, precision, boxes per frame over the whole clip."""
    totals = np.sum([matched(r, f) for r, f in zip(refs, frames, strict=True)], axis=0)
    return totals[0] / max(totals[1], 1), totals[2] / max(totals[3], 1), totals[3] / max(len(frames), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames of the mosaic clip (60)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grid", default="3x3")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--quiet", action="store_true",
                        help="only the centre picture moves; TM, T with motion, measured too")
    args = parser.parse_args()
    contenders = ["T", "TM", "P"] if args.quiet else ["T", "P"]
    try:
        import sahi  # noqa: F401
        contenders.append("SAHI")
    except ImportError:
        print("sahi is not installed (pip install sahi): no SAHI", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="streamyolo-bench-tiles-"))
    os.environ["XDG_CACHE_HOME"] = str(folder / "cache")
    model = str(OPENVINO_MODEL)
    try:
        still = [0, 1, 2, 3, 5, 6, 7, 8] if args.quiet else []
        clip, parts = mosaic_clip(PEOPLE, folder / "mosaic.mp4", args.frames, still=still)
        refs = references(parts, model, parts[0][0].shape)
        del parts
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
        for round_ in range(args.rounds):
            for contender in contenders:
                if contender == "SAHI":
                    run = isolated(sahi_run, clip, model, args.grid, timeout=args.timeout)
                else:
                    run = isolated(streamyolo_run, clip, model, None if contender == "P" else args.grid, folder,
                                   contender == "TM", timeout=args.timeout)
                runs[contender].append(run)
                print(f"round {round_ + 1}/{args.rounds}: {contender} {run['fps']:.2f} frames/s", flush=True)
        print_report(runs, refs, args.grid, args.quiet)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def print_report(runs: dict[str, list[dict[str, Any]]], refs: list[Detections], grid: str, quiet: bool) -> None:
    settings = TilesConfig(grid=grid).settings()
    fps = {c: statistics.median_low([r["fps"] for r in rs]) for c, rs in runs.items()}
    scene = "only its centre moving" if quiet else "every place moving"
    print(f"\nmosaic of people.mp4 (1920x1080, its people a third as tall, {scene}), YOLO11n OpenVINO INT8, "
          f"{len(refs)} frames; {settings.describe()}")
    if "SAHI" in runs:
        print(f"SAHI's slices a frame: {runs['SAHI'][0]['slices']} (and the whole picture)")
    print(f"{'':6} {'frames/s':>9} {'rounds':>18} {'recall':>7} {'precision':>9} {'boxes/frame':>11}")
    for contender, rs in runs.items():
        recall, precision, per_frame = score(refs, rs[-1]["boxes"])
        rounds = ", ".join(f"{r['fps']:.2f}" for r in rs)
        print(f"{contender:6} {fps[contender]:9.2f} {rounds:>18} {recall:7.3f} {precision:9.3f} {per_frame:11.1f}")
    if "SAHI" in fps:
        print(f"T / SAHI = {fps['T'] / fps['SAHI']:.2f} (frames/s)")
    print(f"T / P = {fps['T'] / fps['P']:.2f} (frames/s: what the parts cost)")
    if "TM" in fps:
        print(f"TM / T = {fps['TM'] / fps['T']:.2f} (frames/s: what motion spares)")


if __name__ == "__main__":
    sys.exit(main())
