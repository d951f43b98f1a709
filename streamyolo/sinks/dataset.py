"""``dataset``: frames of every stream with their detections as YOLO labels, to train on.

Every ``every`` seconds of each stream's timeline, its frame as the model saw it (turned,
privacy areas black; the classes ``blur`` names blurred; the areas its ``masks`` ignore black
too, and of a stream with a ``region``, the region alone, outside its outline black: where
every object was looked for and labelled) is saved to
``<dataset>/images/<stream>-YYYYmmdd-HHMMSS-mmm-<seq>.jpg`` with its detections in
``<dataset>/labels/<same name>.txt``, one object a line as Ultralytics' ``save_txt`` writes
them (without confidences or track ids, which a training label has not): ``class x_centre
y_centre width height`` normalised to the picture; a segmentation model's outline, a pose
model's keypoints, an oriented box's corners, as that task's labels are. A frame with no
object gets an empty label file (a background picture, which training learns from too).
``<dataset>/data.yaml`` names the classes, so ``yolo train data=<dataset>/data.yaml`` trains on
it as it stands, after the labels have been checked and corrected by a person: the labels are
the model's guesses. The label is written before its picture, so a crash never leaves a
picture that says "nothing here" without meaning it. With ``max_size``, the folder's pictures
and labels (earlier runs' too) grow to that many bytes, and then no more frames are kept: a
box left running for months does not fill its disk, and nothing a person may have checked is
deleted.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import yaml

from streamyolo.annotation.boxes import blur_objects
from streamyolo.clock import file_stamp, wall_time
from streamyolo.config import DATASET_EVERY
from streamyolo.frames import Detections, Image, Result, rotated_corners
from streamyolo.inference.motion import ignored_areas
from streamyolo.sinks.base import BackgroundWriter, check_writable_folder, format_size, write_picture, write_whole

log = logging.getLogger(__name__)

def label_lines(found: Detections, width: int, height: int) -> list[str]:
    """``found`` as YOLO label lines of a ``width`` x ``height`` picture, as Ultralytics'
    ``Results.save_txt`` writes them (``%g`` numbers), without confidences or track ids.

    >>> found = Detections(np.array([[10, 20, 30, 60]], np.float32), np.ones(1, np.float32), np.array([2]))
    >>> label_lines(found, 100, 200)
    ['2 0.2 0.2 0.2 0.2']
    """
    size = np.array([width, height], np.float64)
    lines = []
    corners = rotated_corners(found.xywhr) if found.xywhr is not None else None
    for index, (box, cls) in enumerate(zip(found.xyxy.astype(np.float64), found.cls, strict=True)):
        x1, y1, x2, y2 = box
        values: list[float] = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
        if corners is not None:
            values = (corners[index].astype(np.float64) / size).reshape(-1).tolist()
        if found.segments is not None:
            outline = found.segments[index]
            if len(outline) < 3:
                continue  # not a polygon: Ultralytics leaves it out too
            values = (outline.astype(np.float64) / size).reshape(-1).tolist()
        if found.keypoints is not None:
            points = found.keypoints[index].astype(np.float64).copy()
            points[:, :2] /= size
            values += points.reshape(-1).tolist()
        line = (int(cls), *values)
        lines.append(("%g " * len(line)).rstrip() % line)
    return lines


class DatasetSink:
    """Saves a frame of each stream every ``every`` seconds with its YOLO labels (see the module)."""

    def __init__(self, folder: str | Path, every: float = DATASET_EVERY,
                 blurred: Mapping[str, Collection[int]] | None = None, quality: int = 95,
                 max_size: int | None = None) -> None:
        self.folder = Path(folder)
        self.every = every
        self.quality = quality
        self.max_size = max_size
        self._size = 0  # the bytes of its pictures and labels (the writer thread's; read by others)
        self._full = False
        self.blurred = {stream: frozenset(classes) for stream, classes in (blurred or {}).items() if classes}
        self._last: dict[str, float] = {}  # each stream's last kept frame (its thread's alone)
        self._names: dict[int, str] = {}
        self._clashed = False  # warned that two models name a class id differently
        self._lock = threading.Lock()  # guards _names
        self._writer = BackgroundWriter("dataset", f"dataset folder {str(self.folder)!r}", "frame(s)")

    @property
    def saved(self) -> list[Path]:
        """Every picture this run saved, in order (its label beside it)."""
        return self._writer.saved

    def check(self) -> None:
        check_writable_folder(self.folder, "dataset folder")

    def open(self) -> None:
        self.check()
        if self.max_size is not None:
            self._size = sum(path.stat().st_size for kind in ("images", "labels")
                             for path in (self.folder / kind).glob("*") if path.is_file())
        self._writer.start()

    def write(self, result: Result) -> None:
        meta = result.frame.meta
        now = meta.media_time
        last = self._last.get(meta.stream)
        if last is not None and 0 <= now - last < self.every - 1e-6:  # (sums of frame steps are inexact)
            return
        if self.max_size is not None and self._size >= self.max_size:
            if not self._full:
                self._full = True
                log.warning("dataset folder %s holds %s (dataset_max_size %s): no more frames are kept", self.folder,
                            format_size(self._size), format_size(self.max_size))
            return
        self._last[meta.stream] = now
        found = result.detections
        with self._lock:
            clash = {i: (self._names[i], name) for i, name in found.names.items() if self._names.get(i, name) != name}
            if clash and not self._clashed:
                self._clashed = True
                log.warning("dataset folder %s: the streams' models name classes differently (%s); data.yaml "
                            "keeps the first names, so label the streams' frames apart", self.folder,
                            ", ".join(f"{i}: {a} or {b}" for i, (a, b) in sorted(clash.items())[:5]))
            for index, name in found.names.items():
                self._names.setdefault(index, name)
        image = result.frame.image
        ignored = ignored_areas([mask for mask in result.masks if mask.classes is None], image.shape[:2],
                                image.shape[:2])
        if ignored is not None:  # what the run ignores holds objects that are not labelled: black, as nothing to learn
            image = image.copy()
            image[ignored] = 0
        if result.region is not None:  # what the model looked at: the region (what lies outside is unlabelled)
            x1, y1, x2, y2 = result.region
            image, found = image[y1:y2, x1:x2], found.placed(1.0, -x1, -y1)
        hidden = self.blurred.get(meta.stream)
        if hidden and len(found):
            image = image.copy()
            blur_objects(image, found, hidden)
        name = f"{meta.stream}-{file_stamp(wall_time(meta.t_capture), millis=True)}-{meta.seq}"
        lines = label_lines(found, image.shape[1], image.shape[0])
        self._writer.put(functools.partial(self._save, name, image, lines))

    def close(self) -> None:
        self._writer.close()
        with self._lock:
            names = dict(sorted(self._names.items()))
        if not names:
            return
        data = {"path": str(self.folder.resolve()), "train": "images", "val": "images", "names": names}
        try:
            (self.folder / "data.yaml").write_text(
                "# frames streamyolo kept, labelled by the model: check the labels before training on them\n"
                + yaml.safe_dump(data, sort_keys=False))
        except OSError as exc:
            log.error("dataset folder %s: could not write data.yaml: %s", self.folder, exc)

    def _save(self, name: str, image: Image, lines: list[str]) -> Path:
        label = self.folder / "labels" / f"{name}.txt"
        write_whole(label, "".join(f"{line}\n" for line in lines).encode())
        picture = self.folder / "images" / f"{name}.jpg"
        write_picture(picture, image, self.quality)
        self._size += label.stat().st_size + picture.stat().st_size
        return picture
