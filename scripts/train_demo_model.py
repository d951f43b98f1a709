"""Train the bundled demo detector on synthetic camera scenes: CPU only, offline, seeded.

    python scripts/train_demo_model.py            # about 30 minutes on 2 cores

1. Renders a YOLO-format dataset (JPEG images, label files, a data YAML) from
   ``streamyolo.sources.scenes``: training scenes from ``TRAIN_SEEDS``, validation scenes
   from ``VALIDATION_SEEDS``, held-out test scenes from ``HELD_OUT_SEEDS``. Frames are exactly
   what a ``synthetic:scene`` stream delivers (caption and stamp included); labels are the
   figures at least half visible (``LABEL_VISIBLE``).
2. Trains ``scripts/demo_model.yaml`` (YOLO26 at 1/8 width) from scratch with Ultralytics'
   own trainer on the CPU (``plots=False``, no pretrained weights, nothing downloaded).
3. Prints mAP50 and mAP50-95 on the held-out scenes (Ultralytics' validator), and precision
   and recall at IoU 0.5 through ``streamyolo.evaluation`` with the pipeline's detector
   and its default settings (conf 0.25, imgsz 640).
4. Copies the weights to ``streamyolo/assets/demo_model.pt`` (``--install``, the default).

The process refuses every network connection (a socket guard), and Ultralytics' dataset
font check, which would otherwise probe GitHub for Arial.ttf, is turned off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo.evaluation import Score, score_frames, score_table  # noqa: E402
from streamyolo.inference.models import DetectSettings, UltralyticsFactory  # noqa: E402
from streamyolo.inference.offline import import_ultralytics  # noqa: E402
from streamyolo.sources.clips import scene_frames  # noqa: E402
from streamyolo.sources.figures import CLASS_NAMES  # noqa: E402
from streamyolo.sources.scenes import HELD_OUT_SEEDS, TRAIN_SEEDS, VALIDATION_SEEDS, SceneFrame  # noqa: E402

ASSET = ROOT / "streamyolo" / "assets" / "demo_model.pt"
MODEL_YAML = ROOT / "scripts" / "demo_model.yaml"
STREAM_NAMES = ["cam0", "cam1", "cam2", "cam3", "front", "back", "gate", "street", "yard", "door"]
network_attempts: list[str] = []


def forbid_network() -> None:
    """Refuse every non-local connection in this process, and remember who tried."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family == socket.AF_UNIX or host in ("127.0.0.1", "::1", "localhost"):
            real_connect(self, address)
            return
        network_attempts.append(f"connect {address}")
        raise OSError(f"network disabled by train_demo_model.py (connect to {address})")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (None, "127.0.0.1", "::1", "localhost"):
            return real_getaddrinfo(host, *args, **kwargs)
        network_attempts.append(f"resolve {host}")
        raise socket.gaierror(f"network disabled by train_demo_model.py (resolve {host})")

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def write_split(folder: Path, split: str, seeds: range, frames_per_scene: int, size: tuple[int, int],
                seed: int) -> int:
    """Render ``frames_per_scene`` frames of each scene in ``seeds`` into ``folder``; return the count."""
    images, labels = folder / "images" / split, folder / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    width, height = size
    count = 0
    for scene_seed in seeds:
        rng = np.random.default_rng([seed, scene_seed])
        indices = sorted(int(i) for i in rng.choice(3000, size=frames_per_scene, replace=False))
        name = STREAM_NAMES[int(rng.integers(len(STREAM_NAMES)))]
        for index, frame in zip(indices, scene_frames(name, scene_seed, indices, width, height), strict=True):
            stem = f"s{scene_seed}_f{index:05d}"
            cv2.imwrite(str(images / f"{stem}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            lines = []
            for box in frame.labelled:
                x1, y1, x2, y2 = box.xyxy
                lines.append(f"{box.cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                             f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
            (labels / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            count += 1
    return count


def held_out_frames(scenes: int, frames_per_scene: int, size: tuple[int, int], seed: int) -> list[SceneFrame]:
    frames: list[SceneFrame] = []
    for scene_seed in HELD_OUT_SEEDS[:scenes]:
        rng = np.random.default_rng([seed, scene_seed])
        indices = sorted(int(i) for i in rng.choice(3000, size=frames_per_scene, replace=False))
        name = STREAM_NAMES[int(rng.integers(len(STREAM_NAMES)))]
        frames.extend(scene_frames(name, scene_seed, indices, *size))
    return frames


def precision_recall(weights: Path, frames: list[SceneFrame]) -> Score:
    """Score the pipeline's own detector (default settings) on ``frames``."""
    detector = UltralyticsFactory(str(weights), DetectSettings(), "cpu")()
    try:
        found = [detector.detect([frame.image])[0] for frame in frames]
    finally:
        detector.close()
    return score_frames(found, [frame.truth for frame in frames])


def clean_checkpoint(path: Path, command: str) -> None:
    """Drop machine-specific paths from the checkpoint's training arguments."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    args = dict(checkpoint.get("train_args") or {})
    for key in ("data", "project", "save_dir", "name"):
        if key in args:
            args[key] = Path(str(args[key])).name
    args["model"] = "scripts/demo_model.yaml"
    checkpoint["train_args"] = args
    checkpoint["streamyolo"] = {"trained_by": command}
    torch.save(checkpoint, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "train-demo", help="dataset and training runs")
    parser.add_argument("--train-scenes", type=int, default=500)
    parser.add_argument("--frames-per-scene", type=int, default=8)
    parser.add_argument("--val-scenes", type=int, default=30)
    parser.add_argument("--test-scenes", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--nbs", type=int, default=16,
                        help="nominal batch: one optimizer step per nbs images (Ultralytics' default 64 "
                             "takes 4x fewer steps, too few for a short CPU run)")
    parser.add_argument("--optimizer", default="AdamW")
    parser.add_argument("--lr0", type=float, default=0.002)
    parser.add_argument("--close-mosaic", type=int, default=1, help="last epochs without mosaic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for training")
    parser.add_argument("--size", default="640x360", help="rendered frame size (the demo's)")
    parser.add_argument("--install", action=argparse.BooleanOptionalAction, default=True,
                        help=f"copy the weights to {ASSET.relative_to(ROOT)}")
    parser.add_argument("--fresh", action="store_true", help="re-render the dataset even if it exists")
    args = parser.parse_args()
    command = "python scripts/train_demo_model.py " + " ".join(sys.argv[1:])
    forbid_network()
    import torch

    ultralytics = import_ultralytics()
    import ultralytics.data.utils as data_utils

    data_utils.check_font = lambda *a, **k: None  # plots are off; the font would only be probed online
    width, height = (int(v) for v in args.size.lower().split("x"))
    started = time.monotonic()

    dataset = args.work / "dataset"
    data_yaml = dataset / "data.yaml"
    if args.fresh and dataset.exists():
        shutil.rmtree(dataset)
    if not data_yaml.exists():
        counts = {
            "train": write_split(dataset, "train", TRAIN_SEEDS[:args.train_scenes], args.frames_per_scene,
                                 (width, height), args.seed),
            "val": write_split(dataset, "val", VALIDATION_SEEDS[:args.val_scenes], args.frames_per_scene,
                               (width, height), args.seed),
            "test": write_split(dataset, "test", HELD_OUT_SEEDS[:args.test_scenes], args.frames_per_scene,
                                (width, height), args.seed),
        }
        data_yaml.write_text(json.dumps({
            "path": str(dataset.resolve()), "train": "images/train", "val": "images/val", "test": "images/test",
            "names": CLASS_NAMES,
        }, indent=2))
        print(f"dataset: {counts} images in {time.monotonic() - started:.0f} s", flush=True)
    rendered = time.monotonic()

    model = ultralytics.YOLO(str(MODEL_YAML), task="detect")
    # Ultralytics sets torch to cores - 1 threads for CPU training (one thread on two cores);
    # training is compute-bound here with workers=0, so use every core.
    model.add_callback("on_train_epoch_start", lambda trainer: torch.set_num_threads(args.threads))
    model.train(
        data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device="cpu", workers=0,
        seed=args.seed, deterministic=True, plots=False, project=str(args.work.resolve()), name="train",
        exist_ok=True, pretrained=False, amp=False, cache="disk", close_mosaic=args.close_mosaic,
        warmup_epochs=1.0, nbs=args.nbs, optimizer=args.optimizer, lr0=args.lr0, patience=args.epochs, verbose=True,
    )
    trained = time.monotonic()
    weights = args.work / "train" / "weights" / "best.pt"

    metrics = ultralytics.YOLO(str(weights), task="detect").val(
        data=str(data_yaml), split="test", imgsz=args.imgsz, batch=args.batch, device="cpu", plots=False,
        project=str(args.work.resolve()), name="test", exist_ok=True, verbose=False,
    )
    frames = held_out_frames(args.test_scenes, args.frames_per_scene, (width, height), args.seed + 1)
    score = precision_recall(weights, frames)
    finished = time.monotonic()

    print()
    print(f"training command: {command}")
    print(f"wall time: dataset {rendered - started:.0f} s, training {trained - rendered:.0f} s, "
          f"evaluation {finished - trained:.0f} s, total {(finished - started) / 60:.1f} min")
    print(f"held-out scenes ({args.test_scenes} scenes, seeds {HELD_OUT_SEEDS[0]}+): "
          f"mAP50 {metrics.box.map50:.3f}  mAP50-95 {metrics.box.map:.3f}")
    print(f"pipeline detector (conf 0.25, imgsz 640) on {len(frames)} held-out frames:")
    print(score_table({"held-out": score}))
    print(f"network attempts: {network_attempts or 'none'}")
    if args.install:
        ASSET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, ASSET)
        clean_checkpoint(ASSET, command)
        print(f"installed {ASSET.relative_to(ROOT)} ({ASSET.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
