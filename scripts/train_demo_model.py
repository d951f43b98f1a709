"""Train the bundled demo detector on synthetic camera scenes: CPU only, offline, seeded.

    python scripts/train_demo_model.py            # about 30 minutes on 2 cores

1. Renders a YOLO-format dataset (JPEG images, label files, a data YAML) from
   ``streamyolo.sources.scenes``: training scenes from ``TRAIN_SEEDS``, validation scenes
   from ``VALIDATION_SEEDS``, held-out test scenes from ``HELD_OUT_SEEDS``. Frames are exactly
   what a ``synthetic:scene`` stream delivers (caption and stamp included); labels are the
   figures at least half visible (``LABEL_VISIBLE``).
2. Trains ``scripts/demo_model.yaml`` (YOLO26 at 1/8 width) from scratch with Ultralytics'
   own trainer on the CPU (``plots=False``, no pretrained weights, nothing downloaded).
3. Picks the confidence threshold with the best F1 on validation scenes (the demo's
   operating point, ``streamyolo.demo.DEMO_CONF``).
4. Prints mAP50 and mAP50-95 on held-out scenes (Ultralytics' validator, imgsz 640), and
   precision and recall at IoU 0.5 through ``streamyolo.evaluation`` with the pipeline's own
   detector at the default conf 0.25 and at the chosen one.
5. Copies the weights to ``streamyolo/assets/demo_model.pt`` (``--install``, the default).

``--evaluate-only`` repeats steps 3-5 for the weights of the last run.

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

from streamyolo.evaluation import score_frames, score_table  # noqa: E402
from streamyolo.frames import Detections  # noqa: E402
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


def sample_frames(seeds: range, frames_per_scene: int, size: tuple[int, int], seed: int) -> list[SceneFrame]:
    """Frames at random indices of the scenes ``seeds``, exactly as a stream delivers them."""
    frames: list[SceneFrame] = []
    for scene_seed in seeds:
        rng = np.random.default_rng([seed, scene_seed])
        indices = sorted(int(i) for i in rng.choice(3000, size=frames_per_scene, replace=False))
        name = STREAM_NAMES[int(rng.integers(len(STREAM_NAMES)))]
        frames.extend(scene_frames(name, scene_seed, indices, *size))
    return frames


def detect(weights: Path, frames: list[SceneFrame], conf: float) -> list[Detections]:
    """The pipeline's own detector (default settings but ``conf``) on ``frames``."""
    detector = UltralyticsFactory(str(weights), DetectSettings(conf=conf), "cpu")()
    try:
        return [detector.detect([frame.image])[0] for frame in frames]
    finally:
        detector.close()


def choose_conf(weights: Path, frames: list[SceneFrame]) -> float:
    """The confidence threshold (0.20 to 0.70 in steps of 0.05) with the best F1 on ``frames``."""
    found = detect(weights, frames, 0.05)
    truth = [frame.truth for frame in frames]
    best, best_f1 = 0.25, -1.0
    for step in range(4, 15):
        conf = step / 20
        kept = [Detections(d.xyxy[d.conf >= conf], d.conf[d.conf >= conf], d.cls[d.conf >= conf], d.names)
                for d in found]
        f1 = score_frames(kept, truth).f1
        if f1 > best_f1 + 1e-9:
            best, best_f1 = conf, f1
    return best


def clean_checkpoint(path: Path, command: str, conf: float) -> None:
    """Drop machine-specific paths and git details from the checkpoint; note the operating
    point and the command that installed it (the training arguments stay in ``train_args``)."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)

    def portable(args: dict[str, Any]) -> dict[str, Any]:
        out = dict(args)
        for key in ("data", "project", "save_dir", "name"):
            if isinstance(out.get(key), str):
                out[key] = Path(out[key]).name
        out["model"] = "scripts/demo_model.yaml"
        return out

    checkpoint["train_args"] = portable(checkpoint.get("train_args") or {})
    model = checkpoint["model"]
    model.args = portable(dict(getattr(model, "args", None) or {}))
    model.yaml_file = "demo_model.yaml"
    checkpoint["git"] = None
    checkpoint["streamyolo"] = {"conf": conf, "installed_by": command}
    torch.save(checkpoint, path)


def render_dataset(args: argparse.Namespace, size: tuple[int, int]) -> Path:
    """The YOLO-format dataset in ``<work>/dataset`` (re-rendered when its parameters change)."""
    dataset = args.work / "dataset"
    data_yaml = dataset / "data.yaml"
    spec = json.dumps({"train": args.train_scenes, "val": args.val_scenes, "test": args.test_scenes,
                       "frames": args.frames_per_scene, "size": list(size), "seed": args.seed})
    spec_file = dataset / "spec.json"
    if spec_file.exists() and spec_file.read_text() == spec:
        return data_yaml
    if dataset.exists():
        shutil.rmtree(dataset)
    started = time.monotonic()
    counts = {split: write_split(dataset, split, seeds[:scenes], args.frames_per_scene, size, args.seed)
              for split, seeds, scenes in (("train", TRAIN_SEEDS, args.train_scenes),
                                           ("val", VALIDATION_SEEDS, args.val_scenes),
                                           ("test", HELD_OUT_SEEDS, args.test_scenes))}
    data_yaml.write_text(json.dumps({"path": str(dataset.resolve()), "train": "images/train", "val": "images/val",
                                     "test": "images/test", "names": CLASS_NAMES}, indent=2))
    spec_file.write_text(spec)
    print(f"dataset: {counts} images in {time.monotonic() - started:.0f} s", flush=True)
    return data_yaml


def train(ultralytics: Any, args: argparse.Namespace, data_yaml: Path) -> None:
    """Ultralytics' own trainer on the CPU: seeded, from scratch, no plots."""
    import torch

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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "train-demo", help="dataset and training runs")
    parser.add_argument("--train-scenes", type=int, default=400)
    parser.add_argument("--frames-per-scene", type=int, default=8)
    parser.add_argument("--val-scenes", type=int, default=30)
    parser.add_argument("--test-scenes", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=512,
                        help="training size; 512 costs 0.64x of 640 and the model still serves at 640")
    parser.add_argument("--eval-imgsz", type=int, default=640, help="size for the held-out mAP (the default's)")
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
    parser.add_argument("--evaluate-only", action="store_true",
                        help="skip training: evaluate (and install) the weights of the last run in --work")
    parser.add_argument("--install", action=argparse.BooleanOptionalAction, default=True,
                        help=f"copy the weights to {ASSET.relative_to(ROOT)}")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    command = " ".join(["python scripts/train_demo_model.py", *sys.argv[1:]])
    forbid_network()
    ultralytics = import_ultralytics()
    import ultralytics.data.utils as data_utils

    data_utils.check_font = lambda *a, **k: None  # plots are off; the font would only be probed online
    width, height = (int(v) for v in args.size.lower().split("x"))
    size = (width, height)
    weights = args.work / "train" / "weights" / "best.pt"

    started = time.monotonic()
    data_yaml = render_dataset(args, size)
    rendered = time.monotonic()
    if not args.evaluate_only:
        train(ultralytics, args, data_yaml)
    elif not weights.is_file():
        raise SystemExit(f"--evaluate-only: no trained weights at {weights}")
    trained = time.monotonic()

    metrics = ultralytics.YOLO(str(weights), task="detect").val(
        data=str(data_yaml), split="test", imgsz=args.eval_imgsz, batch=args.batch, device="cpu", plots=False,
        project=str(args.work.resolve()), name="test", exist_ok=True, verbose=False,
    )
    conf = choose_conf(weights, sample_frames(VALIDATION_SEEDS[:args.val_scenes], args.frames_per_scene, size,
                                              args.seed + 2))
    frames = sample_frames(HELD_OUT_SEEDS[:args.test_scenes], args.frames_per_scene, size, args.seed + 1)
    truth = [frame.truth for frame in frames]
    scores = {f"conf {value:.2f}{note}": score_frames(detect(weights, frames, value), truth)
              for value, note in ((0.25, " (default)"), (conf, " (best F1 on validation)"))}
    finished = time.monotonic()

    print()
    print(f"command: {command}")
    print(f"wall time: dataset {rendered - started:.0f} s, training {trained - rendered:.0f} s, "
          f"evaluation {finished - trained:.0f} s, total {(finished - started) / 60:.1f} min")
    print(f"held-out scenes ({args.test_scenes} scenes from seed {HELD_OUT_SEEDS[0]}, "
          f"{args.test_scenes * args.frames_per_scene} frames, "
          f"imgsz {args.eval_imgsz}): mAP50 {metrics.box.map50:.3f}  mAP50-95 {metrics.box.map:.3f}")
    print(f"precision and recall at IoU 0.5, pipeline detector at imgsz 640, {len(frames)} other frames of "
          "those scenes:")
    print(score_table(scores, total=False))
    print(f"operating point: conf {conf:.2f}")
    print(f"network attempts: {network_attempts or 'none'}")
    if args.install:
        ASSET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, ASSET)
        clean_checkpoint(ASSET, command, conf)
        print(f"installed {ASSET.relative_to(ROOT)} ({ASSET.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
