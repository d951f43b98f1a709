"""What it costs to turn a decoded frame into the model's input, and what a cheaper way would
change: the question "convert YUV straight to the letterboxed size?".

    .venv/bin/python scripts/preprocess_cost.py --frames 120

streamyolo converts each decoded YUV 4:2:0 frame to a full-size BGR image (swscale, PyAV's
``to_ndarray``; sinks draw on it and ``predict()`` would take it), then letterboxes that to the
model's size (``cv2.resize``, linear, as Ultralytics does). The alternatives skip the full-size
BGR image for detection: ``planes`` resizes the Y, U and V planes to the model's size with the
same ``cv2.resize`` and converts colours there (BT.601, limited range, as swscale does);
``swscale-bilinear`` and ``swscale-point`` scale and convert in one swscale call. For each
video: milliseconds per frame (single-threaded OpenCV and swscale, the median of ``--repeat``
passes; the full-size conversion alone too), how far the model's input pixels move from the
current way's, and, with the real YOLO11n in ``../shared/models``, on how many frames the
detections leave the tolerance of the thread-safety tests (same classes, boxes within 1 px,
confidences within 0.01; boxes near the threshold excepted) against ``predict()`` on the full
BGR frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo.inference.letterbox import Letterboxer  # noqa: E402
from streamyolo.inference.offline import import_ultralytics  # noqa: E402
from tests.helpers import make_clip  # noqa: E402

SHARED = ROOT.parent / "shared"
Pixels = npt.NDArray[np.uint8]

# BT.601 limited range, swscale's default for YUV → BGR; rows B, G, R; columns Y, U, V, 1.
_BGR_FROM_YUV = np.array([[1.164, 2.018, 0.0], [1.164, -0.391, -0.813], [1.164, 0.0, 1.596]], np.float32)
_TRANSFORM = np.hstack([_BGR_FROM_YUV, -(_BGR_FROM_YUV @ np.array([16, 128, 128], np.float32))[:, None]])


def _planes(frame: av.VideoFrame) -> list[Pixels]:
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes]


def ways(letterbox: Letterboxer, shape: tuple[int, int]) -> dict[str, Callable[[av.VideoFrame], Pixels]]:
    """Each way's model input (the resized frame, without the padding) from one decoded frame."""
    where = letterbox.geometry(shape)
    (width, height), top, left = where.resized_wh, where.top, where.left

    def current(frame: av.VideoFrame) -> Pixels:
        batch, _ = letterbox.fill([frame.to_ndarray(format="bgr24")])
        return batch[0, top:top + height, left:left + width]

    def planes(frame: av.VideoFrame) -> Pixels:
        small = [cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in _planes(frame)]
        return cv2.transform(cv2.merge(small), _TRANSFORM)

    def swscale(interpolation: str) -> Callable[[av.VideoFrame], Pixels]:
        return lambda frame: frame.reformat(width=width, height=height, format="bgr24",
                                            interpolation=interpolation).to_ndarray()

    return {"current": current, "planes": planes, "swscale-bilinear": swscale("BILINEAR"),
            "swscale-point": swscale("POINT")}


def decode(path: Path, count: int) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def timed(way: Callable[[av.VideoFrame], Pixels], frames: list[av.VideoFrame], repeat: int) -> float:
    for frame in frames[:3]:
        way(frame)
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        for frame in frames:
            way(frame)
        passes.append((time.perf_counter() - start) / len(frames))
    return statistics.median(passes) * 1000


def off_tolerance(yolo: Any, full: Pixels, small: Pixels, scale: float, conf: float) -> bool:
    """Whether detections on ``small`` (scaled back) leave the tests' tolerance of ``full``'s."""
    reference = yolo.predict(full, imgsz=640, conf=conf, verbose=False)[0].boxes
    ours = yolo.predict(small, imgsz=640, conf=conf, verbose=False)[0].boxes
    ref = list(zip(reference.xyxy.numpy(), reference.conf.numpy(), reference.cls.numpy(), strict=True))
    unmatched = list(zip(ours.xyxy.numpy() * scale, ours.conf.numpy(), ours.cls.numpy(), strict=True))
    for box, score, cls in ref:
        match = next((m for m in unmatched if m[2] == cls and np.abs(m[0] - box).max() <= 1.0
                      and abs(m[1] - score) <= 0.01), None)
        if match is not None:
            unmatched = [m for m in unmatched if m is not match]
        elif score >= conf + 0.01:
            return True
    return any(m[1] >= conf + 0.01 for m in unmatched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120, help="frames per video")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per way")
    parser.add_argument("--conf", type=float, default=0.25)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    model = SHARED / "models" / "yolo11n_int8_openvino_model"
    yolo = import_ultralytics().YOLO(str(model), task="detect") if model.exists() else None
    with tempfile.TemporaryDirectory(prefix="streamyolo-preprocess-") as folder:
        videos = [SHARED / "videos" / "people.mp4",
                  make_clip(Path(folder) / "synthetic720.mp4", "s720", frames=args.frames, size=(1280, 720), seed=3)]
        for path in videos:
            frames = decode(path, args.frames)
            shape = (frames[0].height, frames[0].width)
            letterbox = Letterboxer((640, 640), auto=True, stride=32)
            candidates = ways(letterbox, shape)
            print(f"{path.name}: {shape[1]}x{shape[0]} {frames[0].format.name}, {len(frames)} frames")
            alone = timed(lambda frame: frame.to_ndarray(format="bgr24"), frames, args.repeat)
            print(f"  the conversion to full-size BGR alone: {alone:.2f} ms a frame")
            for name, way in candidates.items():
                cost = timed(way, frames, args.repeat)
                moved = np.concatenate([np.abs(way(f).astype(np.int16) - candidates["current"](f)).ravel()
                                        for f in frames[::10]])
                line = (f"  {name:17s} {cost:5.2f} ms a frame; pixels off by mean {moved.mean():.2f}, "
                        f"p99 {np.percentile(moved, 99):.0f}, max {moved.max()}")
                if yolo is not None and name != "current":
                    scale = shape[1] / letterbox.geometry(shape).resized_wh[0]
                    off = sum(off_tolerance(yolo, f.to_ndarray(format="bgr24"), way(f), scale, args.conf)
                              for f in frames)
                    line += f"; detections off tolerance on {off}/{len(frames)} frames"
                print(line, flush=True)


if __name__ == "__main__":
    main()
