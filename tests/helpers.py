"""Test helpers: clip writing, fake detectors and sources, reading results back."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import cv2
import numpy as np

from streamyolo.errors import SourceReadError
from streamyolo.frames import Detections, Image
from streamyolo.sources import RawFrame, SourceInfo, SyntheticSource, read_stamp, stream_tag

ROOT = Path(__file__).resolve().parents[1]
THREAD_PREFIXES = {"capture", "inference", "record", "clip", "pipeline", "web", "events", "webhook", "email",
                   "paho-mqtt-client-"}  # the last: paho-mqtt's network thread, "paho-mqtt-client-<id>"
PYTHON = sys.executable


def make_clip(path: Path, name: str, frames: int, size: tuple[int, int] = (320, 240), fps: int = 30,
              seed: int | None = None, shown_turned: int = 0, scene: bool = False) -> Path:
    """Write a real H.264 MP4 of stamped synthetic frames (stream tag of ``name``);
    ``shown_turned``: a display matrix that says to show them turned that many degrees
    clockwise (as a phone's portrait video); ``scene``: the synthetic street (people, cars)."""
    query = f"size={size[0]}x{size[1]}&fps={fps}&frames={frames}"
    if seed is not None:
        query += f"&seed={seed}"
    source = SyntheticSource(name, f"synthetic:{'scene' if scene else ''}?{query}")
    source.open()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        stream.codec_context.gop_size = fps  # a key frame every second, as cameras send
        if shown_turned:
            stream.set_display_rotation(-shown_turned)  # PyAV takes it counter-clockwise
        index = 0
        while (raw := source.read()) is not None:
            frame = av.VideoFrame.from_ndarray(raw.image, format="bgr24")
            frame.pts = index
            index += 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def make_mpeg4(path: Path, frames: int) -> Path:
    """Write an MPEG-4 Part 2 video (an old camera's, which an MP4 browsers play cannot hold):
    ``frames`` grey 160x120 frames, each lighter than the one before."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), index * 8, np.uint8), format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode(path: Path) -> tuple[list[Image], dict[str, Any]]:
    """Every frame of a video file, and facts about its video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images: list[Image] = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]  # type: ignore[misc]
        info: dict[str, Any] = {"codec": stream.codec_context.name, "width": stream.width, "height": stream.height,
                "pix_fmt": stream.codec_context.pix_fmt}
    return images, info


def stamps(images: Sequence[Image]) -> list[tuple[int, int] | None]:
    return [read_stamp(image) for image in images]


def kill_after(args: Sequence[str], jsonl: Path, frames: int, seconds: float = 90) -> None:
    """Run ``streamyolo args`` (writing its JSONL to ``jsonl``) until it has processed
    ``frames`` frames, then kill it with SIGKILL, as a crash or a power cut would."""
    import signal
    import subprocess

    import pytest

    process = subprocess.Popen([PYTHON, "-m", "streamyolo", *args, "--jsonl", str(jsonl)], env=env_for_subprocess(),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + seconds
        while (jsonl.read_text().count("\n") if jsonl.exists() else 0) < frames:
            if process.poll() is not None:
                pytest.fail(f"streamyolo exited early: {process.stderr.read().decode() if process.stderr else ''}")
            assert time.monotonic() < deadline, f"{frames} frames were not processed in {seconds:g} s"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def files_aged(folder: Path, old: Sequence[str], recent: Sequence[str], seconds: float = 86400) -> None:
    """Files named ``old`` last written ``seconds`` ago and ``recent`` ones now, in ``folder``
    (for the retention settings: ``record_keep``, ``snapshots_keep``, ``clips_keep``)."""
    folder.mkdir(parents=True, exist_ok=True)
    then = time.time() - seconds
    for name in [*old, *recent]:
        (folder / name).write_bytes(b"x")
    for name in old:
        os.utime(folder / name, (then, then))


def form_fields(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """A ``multipart/form-data`` body's fields, as a receiver reads them (with the standard
    library's MIME parser, not ours): each name's file name (``None``: a plain field) and value."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart(), content_type
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        value = part.get_payload(decode=True)
        assert isinstance(value, bytes)
        fields[str(part.get_param("name", header="content-disposition"))] = (part.get_filename(), value)
    return fields


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_random_model(path: Path, seed: int = 0, architecture: str = "yolo26n.yaml", scale: float = 40.0,
                      bias: float = -6.0) -> Path:
    """yolo26n (or another ``architecture`` from Ultralytics' YAML: ``yolo26n-seg.yaml``, …),
    re-initialised so that activations do not vanish (Ultralytics' default init leaves a
    random net silent), with class logits scaled by ``scale`` and shifted by ``bias`` to give
    boxes."""
    import torch

    from streamyolo.inference.offline import import_ultralytics

    ultralytics = import_ultralytics()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = ultralytics.YOLO(architecture)
        for module in model.model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        head = model.model.model[-1]
        for name in ("cv3", "one2one_cv3"):
            for branch in getattr(head, name, []):
                branch[-1].weight.data.mul_(scale)
                branch[-1].bias.data.fill_(bias)
        model.save(str(path))
    finally:
        torch.random.set_rng_state(generator_state)
    return path


# -- fakes ---------------------------------------------------------------------------------

class CountingDetector:
    """A scripted detector: one box a picture, 10 pixels in from its top-left corner, whose
    confidence counts the pictures it has run on (1/1000 each; ``ran``, shared by every
    instance: set it to 0 first)."""

    names: ClassVar[dict[int, str]] = {0: "person"}
    ran = 0

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for _ in images:
            type(self).ran += 1
            out.append(Detections(np.array([[10, 10, 30, 50]], np.float32),
                                  np.array([type(self).ran / 1000], np.float32), np.zeros(1, np.int64), self.names))
        return out

    def close(self) -> None:
        pass


class StampDetector:
    """A detector whose output is a function of the frame: one box per frame whose class is
    the stream tag and whose x1 is the frame index read from the stamp (``width`` pixels wide,
    10 high). Optionally slow (``delay`` seconds per batch, waited on an event so tests stay
    responsive) or failing from the ``fail_on``-th call on (with ``fail_stream``: on those
    that have a frame of that stream; with ``counted``, the calls are counted there, over every
    detector given the same list: a model broken for good, however often it is built again)."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None,
                 built_in: list[str] | None = None, width: int = 10, fail_stream: str | None = None,
                 counted: list[int] | None = None) -> None:
        self.delay = delay
        self.width = width
        self.fail_on = fail_on
        self.fail_tag = None if fail_stream is None else stream_tag(fail_stream)
        self.calls = 0
        self._counted = counted
        self.batches: list[int] = []
        self._never = threading.Event()
        if built_in is not None:
            built_in.append(threading.current_thread().name)

    @property
    def names(self) -> Mapping[int, str]:
        return {i: f"tag{i}" for i in range(256)}

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        self.calls += 1
        calls = self.calls
        if self._counted is not None:
            self._counted[0] += 1
            calls = self._counted[0]
        self.batches.append(len(images))
        if self.fail_on is not None and calls >= self.fail_on and (
                self.fail_tag is None or any((stamp or (None,))[0] == self.fail_tag for stamp in stamps(images))):
            raise RuntimeError("fake detector failure")
        if self.delay:
            self._never.wait(self.delay)
        out = []
        for image in images:
            stamp = read_stamp(image)
            tag, index = stamp if stamp is not None else (255, 0)
            out.append(Detections(
                xyxy=np.array([[index, 0, index + self.width, 10]], dtype=np.float32),
                conf=np.array([0.5], dtype=np.float32),
                cls=np.array([tag], dtype=np.int64),
                names=self.names,
            ))
        return out

    def close(self) -> None:
        pass


class ScriptedSource:
    """A source that yields stamped frames, then fails with ``fail_at`` or blocks until
    ``release`` is set (interrupt() releases it too)."""

    def __init__(self, name: str, frames: int, fail_at: int | None = None, fail_open: bool = False,
                 block_at: int | None = None, size: tuple[int, int] = (64, 48)) -> None:
        self.synthetic = SyntheticSource(name, f"synthetic:?size={size[0]}x{size[1]}&frames={frames}")
        self.name = name
        self.fail_at = fail_at
        self.fail_open = fail_open
        self.block_at = block_at
        self.release = threading.Event()
        self.reads = 0
        self.closed = threading.Event()

    def open(self) -> SourceInfo:
        if self.fail_open:
            from streamyolo.errors import SourceOpenError

            raise SourceOpenError(f"stream {self.name!r}: cannot open: scripted failure", stream=self.name)
        return self.synthetic.open()

    def read(self) -> RawFrame | None:
        if self.fail_at is not None and self.reads >= self.fail_at:
            raise SourceReadError(f"stream {self.name!r}: scripted read failure", stream=self.name)
        if self.block_at is not None and self.reads >= self.block_at:
            self.release.wait()
            return None
        self.reads += 1
        return self.synthetic.read()

    def close(self) -> None:
        self.closed.set()

    def interrupt(self) -> None:
        self.release.set()


def env_for_subprocess() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DISPLAY", None)
    return env


def cut_clip(source: Path, path: Path, frames: int, width: int, hold: int = 0, noise: float = 0.0) -> Path:
    """The first ``frames`` frames of a real video, scaled to ``width``, re-encoded as H.264;
    ``hold``: its first frame shown that many times more first (a still scene before the
    people start walking), each with a camera's sensor noise (``noise``: its standard
    deviation, in grey levels)."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        height = round(stream.height * width / stream.width / 2) * 2
        rate = stream.average_rate or Fraction(30)
        images = []
        for frame in container.decode(stream):
            images.append(frame.reformat(width=width, height=height, format="bgr24").to_ndarray())
            if len(images) >= frames:
                break
    rng = np.random.default_rng(0)
    held = [np.clip(images[0] + noise * rng.standard_normal(images[0].shape, np.float32), 0, 255).astype(np.uint8)
            if noise else images[0] for _ in range(hold)]
    return write_clip(path, held + images, rate)


def write_clip(path: Path, images: Sequence[Image], rate: Fraction | int = 30) -> Path:
    """``images`` as an H.264 MP4 (near lossless: crf 18)."""
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return path


MOSAIC_STEP = 30
"""Frames of the source between two neighbouring pictures of a mosaic."""


def mosaic(pictures: Sequence[Image]) -> Image:
    """Nine pictures at a third of their size, 3 x 3 on one picture the size of the first: their
    objects a third as tall, as a camera three times as far would see them."""
    height, width = pictures[0].shape[:2]
    h, w = height // 3, width // 3
    canvas = np.zeros_like(pictures[0])
    for k, picture in enumerate(pictures[:9]):
        row, column = divmod(k, 3)
        canvas[row * h:(row + 1) * h, column * w:(column + 1) * w] = cv2.resize(picture, (w, h),
                                                                                interpolation=cv2.INTER_AREA)
    return canvas


def mosaic_clip(source: Path, path: Path, frames: int, still: Sequence[int] = (),
                noise: float = 2.0) -> tuple[Path, list[list[Image]]]:
    """A clip of ``frames`` mosaics of a real video (frame i: its pictures i, i + 30, …, i + 240,
    a second apart, looping), and the nine pictures each frame was made of (shared, not
    copied). The places in ``still`` (0-8, row by row) hold their first picture throughout,
    with a camera's sensor noise (``noise``: its standard deviation, in grey levels): a far
    camera where only some places see anything move."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate, count = stream.average_rate or Fraction(30), stream.frames
        if not count:
            raise ValueError(f"{source}: its header does not say how many frames it has")
        used = [[(k * MOSAIC_STEP if k in still else frame + k * MOSAIC_STEP) % count for k in range(9)]
                for frame in range(frames)]
        wanted = {i for indices in used for i in indices}
        pictures = {i: frame.to_ndarray(format="bgr24") for i, frame in enumerate(container.decode(stream))
                    if i in wanted}
    parts = [[pictures[i] for i in indices] for indices in used]
    rng = np.random.default_rng(0)
    mosaics = []
    for nine in parts:
        canvas = mosaic(nine)
        if still and noise:
            canvas = np.clip(canvas + noise * rng.standard_normal(canvas.shape, np.float32), 0, 255).astype(np.uint8)
        mosaics.append(canvas)
    return write_clip(path, mosaics, rate), parts


def assert_same_detections(ours: Detections, reference: Any, conf_threshold: float, where: str) -> None:
    """Same classes, boxes within 1 px, confidences within 0.01 (and what the task adds: the
    same keypoints within 1 px and visibilities within 0.01, rotated boxes within 1 px and
    0.01 rad, outlines covering the same pixels to 90 %). A box may be missing from one side
    only when its confidence is within 0.01 of the threshold (float noise)."""
    boxes = reference.obb if reference.obb is not None else reference.boxes
    ref_xyxy = boxes.xyxy.cpu().numpy()
    ref_conf = boxes.conf.cpu().numpy()
    ref_cls = boxes.cls.cpu().numpy().astype(int)
    parts = [("keypoints", reference.keypoints), ("xywhr", reference.obb)]
    if len(ref_xyxy):  # (Ultralytics gives a segmentation model's empty result no masks)
        parts.append(("segments", reference.masks))
    for part, theirs in parts:
        assert (getattr(ours, part) is None) == (theirs is None), f"{where}: {part} on one side only"
    shape = reference.orig_shape
    unmatched = list(range(len(ours)))
    for index, (box, conf, cls) in enumerate(zip(ref_xyxy, ref_conf, ref_cls, strict=True)):
        candidates = [i for i in unmatched if int(ours.cls[i]) == cls
                      and np.abs(ours.xyxy[i] - box).max() <= 1.0 and abs(float(ours.conf[i]) - conf) <= 0.01
                      and _same_extras(ours, i, reference, index, shape)]
        if candidates:
            unmatched.remove(candidates[0])
            continue
        assert conf < conf_threshold + 0.01, f"{where}: reference box {box} cls {cls} conf {conf:.3f} missing"
    for i in unmatched:
        assert float(ours.conf[i]) < conf_threshold + 0.01, (
            f"{where}: extra box {ours.xyxy[i]} cls {ours.cls[i]} conf {ours.conf[i]:.3f}")


def _same_extras(ours: Detections, i: int, reference: Any, index: int, shape: tuple[int, int]) -> bool:
    """Whether our ``i``-th object has the keypoints, rotated box and outline of the
    reference's ``index``-th."""
    if ours.keypoints is not None:
        theirs = reference.keypoints.data[index].cpu().numpy()
        if np.abs(ours.keypoints[i, :, :2] - theirs[:, :2]).max() > 1.0:
            return False
        if theirs.shape[1] > 2 and np.abs(ours.keypoints[i, :, 2] - theirs[:, 2]).max() > 0.01:
            return False
    if ours.xywhr is not None:
        theirs = reference.obb.xywhr[index].cpu().numpy()
        if np.abs(ours.xywhr[i, :4] - theirs[:4]).max() > 1.0 or abs(float(ours.xywhr[i, 4] - theirs[4])) > 0.01:
            return False
    if ours.segments is not None:
        return outline_overlap(ours.segments[i], reference.masks.xy[index], shape) >= 0.9
    return True


def outline_overlap(a: Any, b: Any, shape: tuple[int, int]) -> float:
    """Intersection over union of the pixels inside two outlines (1.0 when both are empty)."""
    import cv2

    masks = []
    for outline in (a, b):
        mask = np.zeros(shape, np.uint8)
        if len(outline) >= 3:
            cv2.fillPoly(mask, [np.round(np.asarray(outline)).astype(np.int32)], 1)
        masks.append(mask.astype(bool))
    union = int((masks[0] | masks[1]).sum())
    return 1.0 if union == 0 else int((masks[0] & masks[1]).sum()) / union


def until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``check`` until it gives something true (returned), for at most ``seconds``; else
    fail saying what was waited for (counters and pages that have no event to wait on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
