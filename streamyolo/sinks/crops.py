"""``crops``: one picture of each tracked object, cut from the frame it was seen best in.

On a tracked stream, each object's crop is kept from the frame where its detection had the
highest confidence (the box widened as Ultralytics' ``save_crop`` widens it: 2 % and 10
pixels, from the picture without drawings) and saved as a JPEG once the object is gone (not
seen for ``gone_after`` seconds of the stream's frames, or at the end of the run), to
``<crops>/<class>/<stream>-YYYYmmdd-HHMMSS-mmm-id<track>.jpg``: a gallery of who and what
passed, by class, as an image-classification dataset is laid out. The time is that of the
frame the crop comes from. An object in view for a while has its best crop so far saved every
``SAVE_EVERY`` seconds of the stream's frames (when a better one came), each replacing the one
before, so a crash or a power cut loses only the objects in view for less than that: one file
per object all along. Files are written whole (under a temporary name, then renamed) by a
thread of their own, so the inference threads never wait for a disk; a disk that refuses
pauses the crops as the other outputs pause (:class:`~streamyolo.sinks.base.OutputPause`).
``keep`` deletes crops (this run's and earlier runs') older than that. Objects of the classes
a stream blurs (``blur``) are never cropped. An object that stood still (a parked car) and is
lost is found again where it stood for :data:`~streamyolo.inference.counting.HIDDEN` seconds,
under the tracker's new id, as zones find it (:class:`~streamyolo.inference.counting.Place`):
still one file, named by the id it was first seen with.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamyolo.clock import file_stamp, format_seconds, wall_time
from streamyolo.frames import Image, Result
from streamyolo.inference.counting import HIDDEN, Place
from streamyolo.sinks.base import BackgroundWriter, check_writable_folder, delete_older, write_picture

log = logging.getLogger(__name__)

CROP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*-\d{8}-\d{6}-\d{3}-id\d+(-\d+)?\.jpg")
"""A crop's file name, as :class:`CropSink` names them (what ``crops_keep`` may delete)."""

GONE_AFTER = 3.0
"""Seconds of a stream's frames without an object before its crop is saved."""

SAVE_EVERY = 2.0
"""Seconds of a stream's frames between saves of the best crop so far of an object still in
view (what a crash loses at most)."""

PRUNE_SECONDS = 60.0
"""How often ``crops_keep`` looks for old crops."""


@dataclass(slots=True)
class _Best:
    """An object's best crop so far."""

    conf: float
    cls: int
    name: str
    crop: Image
    moment: float
    """Wall-clock time of the frame the crop comes from."""
    since: float
    """When the object was first seen, or its crop last sent to be saved (the stream's capture clock)."""
    id: int
    """The track id its file is named by: the first it was seen with."""
    place: Place
    """Where it was last seen, and when (the same clock)."""
    sent: bool = False
    """Whether this crop was sent to be saved while the object was in view."""

    @property
    def seen(self) -> float:
        return self.place.seen


def crop_box(image: Image, xyxy: np.ndarray, gain: float = 1.02, pad: float = 10.0) -> Image:
    """The part of ``image`` a box covers, widened by ``gain`` and ``pad`` pixels around its
    centre and kept inside the picture, as ``ultralytics.utils.plotting.save_one_box`` cuts
    it (the same float32 arithmetic, so the same pixels; a copy).

    >>> crop_box(np.zeros((100, 200, 3), np.uint8), np.array([50.0, 20.0, 70.0, 60.0])).shape
    (51, 31, 3)
    """
    x1, y1, x2, y2 = np.asarray(xyxy, np.float32)
    half = np.float32(2)
    centre = np.array([(x1 + x2) / half, (y1 + y2) / half], np.float32)
    size = np.array([x2 - x1, y2 - y1], np.float32) * np.float32(gain) + np.float32(pad)
    corners = np.concatenate([centre - size / half, centre + size / half]).astype(np.int64)  # truncated, as .long()
    height, width = image.shape[:2]
    left, right = np.clip(corners[0::2], 0, width)
    top, bottom = np.clip(corners[1::2], 0, height)
    return image[int(top):int(bottom), int(left):int(right)].copy()


def class_folder(name: str) -> str:
    """A class name as a folder name (what a file system refuses or a shell trips on, as ``_``).

    >>> class_folder("traffic light"), class_folder("../x"), class_folder("..")
    ('traffic_light', '.._x', '_..')
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    return cleaned if cleaned.strip(".") else "_" + cleaned


class CropSink:
    """Saves one crop of each tracked object (see the module); untracked streams give none."""

    def __init__(self, folder: str | Path, keep: float | None = None, gone_after: float = GONE_AFTER,
                 quality: int = 95, blurred: Mapping[str, Collection[int]] | None = None,
                 save_every: float = SAVE_EVERY) -> None:
        self.folder = Path(folder)
        self.blurred = {stream: frozenset(classes) for stream, classes in (blurred or {}).items()}
        """Each stream's classes blurred in its pictures (``blur``): never cropped."""
        self.keep = keep
        self.gone_after = gone_after
        self.save_every = save_every
        self.quality = quality
        self._best: dict[str, dict[int, _Best]] = {}  # stream -> track id -> best so far
        self._lost: dict[str, dict[int, _Best]] = {}  # stream -> track id -> lost after standing still
        self._lock = threading.Lock()  # guards their keys (each stream's dicts are its thread's alone)
        self._writer = BackgroundWriter("crops", f"crops folder {str(self.folder)!r}", "crop(s)")
        self._pruned_at = -math.inf
        # The writer thread's alone: each object in view's file, and the crop it holds.
        self._files: dict[tuple[str, int], tuple[Path, _Best]] = {}
        self._replaced: set[Path] = set()

    @property
    def saved(self) -> list[Path]:
        """Every crop this run saved, in order (an object's once, where it was saved last)."""
        return [path for path in self._writer.saved if path not in self._replaced]

    def check(self) -> None:
        check_writable_folder(self.folder, "crops folder")

    def open(self) -> None:
        self.check()
        self._prune()
        self._writer.start()

    def write(self, result: Result) -> None:
        found = result.detections
        if found.ids is None:
            return
        stream = result.stream
        with self._lock:
            best, lost = self._best.setdefault(stream, {}), self._lost.setdefault(stream, {})
        now = result.frame.meta.t_capture
        blurred = self.blurred.get(stream, frozenset())
        boxes, classes, confs = found.xyxy.tolist(), found.cls.tolist(), found.conf.tolist()
        for index, track in enumerate(found.ids.tolist()):
            cls = int(classes[index])
            if cls in blurred:
                continue
            conf, box = float(confs[index]), tuple(boxes[index])
            kept = best.get(track)
            if kept is None and lost:  # (new, or one that stood still found again where it stood)
                again = Place.found_again(box, {t: k.place for t, k in lost.items() if k.cls == cls})
                if again is not None:
                    kept = best[track] = lost.pop(again)
            if kept is None or conf > kept.conf:
                best[track] = _Best(conf, cls, found.name(cls), crop_box(result.frame.image, found.xyxy[index]),
                                    wall_time(now), now if kept is None else kept.since,
                                    track if kept is None else kept.id,
                                    Place.at(box, now) if kept is None else kept.place)
            best[track].place.saw(box, now)
        for track, kept in list(best.items()):
            if now - kept.seen > self.gone_after:
                stood = kept.place.stood()
                if stood:
                    lost[track] = kept
                self._writer.put(functools.partial(self._save, stream, best.pop(track), not stood))
            elif not kept.sent and now - kept.since >= self.save_every:  # still in view: saved so far
                kept.sent, kept.since = True, now
                self._writer.put(functools.partial(self._save, stream, kept, False), optional=True)
        for track, kept in list(lost.items()):
            if now - kept.seen > HIDDEN:  # not found again: as it was
                self._writer.put(functools.partial(self._save, stream, lost.pop(track), True))

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        """``stream`` was removed (a reload): its objects' crops are saved now, as at the end
        of the run (one added again under its name tracks afresh)."""
        self._save_left([stream])

    def close(self) -> None:
        with self._lock:
            streams = list(self._best)
        self._save_left(streams)
        self._writer.close()

    def _save_left(self, streams: list[str]) -> None:
        """Save the objects of ``streams`` not saved yet as their last (the stream is over)."""
        with self._lock:
            left = [(stream, [*self._best.pop(stream, {}).values(), *self._lost.pop(stream, {}).values()])
                    for stream in streams]
        for stream, kept in left:
            for one in kept:
                self._writer.put(functools.partial(self._save, stream, one, True))

    def _save(self, stream: str, kept: _Best, gone: bool) -> Path | None:
        """Save ``kept``, the object's best crop, unless its file holds it already, in place
        of the crop saved before (``gone``: the object's last)."""
        if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
            self._prune()
        track = kept.id
        key = (stream, track)
        before = self._files.pop(key, None) if gone else self._files.get(key)
        if before is not None and before[1] is kept:
            return None  # saved while in view, and no better one since
        if kept.crop.size == 0:
            return None  # a box outside the picture
        folder = self.folder / class_folder(kept.name)
        name = f"{stream}-{file_stamp(kept.moment, millis=True)}-id{track}"
        path, serial = folder / f"{name}.jpg", 1
        while path.exists():  # a track id seen again in the same millisecond (a restarted run)
            serial += 1
            path = folder / f"{name}-{serial}.jpg"
        write_picture(path, kept.crop, self.quality)
        if not gone:
            self._files[key] = (path, kept)
        if before is not None:
            self._replaced.add(before[0])
            before[0].unlink(missing_ok=True)
        return path

    def _prune(self) -> None:
        """``keep``: delete the crops (this run's and earlier runs') older than that."""
        self._pruned_at = time.monotonic()
        if self.keep is None:
            return
        deleted: list[Path] = []
        try:
            for folder in [self.folder, *(p for p in self.folder.iterdir() if p.is_dir() and not p.is_symlink())]:
                deleted += delete_older(folder, self.keep, lambda name: CROP_NAME.fullmatch(name) is not None)
        except OSError as exc:
            log.warning("crops folder %s: could not delete old crops: %s", self.folder, exc)
            return
        if deleted:
            log.info("crops folder %s: deleted %d crop(s) older than %s (crops_keep)", self.folder, len(deleted),
                     format_seconds(self.keep))
