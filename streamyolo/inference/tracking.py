"""Object tracking per stream: ``tracker: bytetrack`` (or ``botsort``, or a tracker YAML).

Each stream gets its own tracker, Ultralytics' own (``ultralytics.trackers``), built and
updated by the inference worker that owns the stream, in the stream's frame order, right after
the forward pass (in process mode too: the worker's thread in the main process tracks what its
child detected). A tracked frame's detections are the tracker's output, as ``model.track()``
returns them: only the objects it tracks, each with its id (``Detections.ids``), its box the
tracker's. As ``model.track()`` does, a tracked run detects down to conf 0.1 unless ``conf``
is set, so the tracker gets the low-confidence boxes its second association needs. Live
streams hand the tracker only the frames that were processed; a dropped frame is a gap the
tracker bridges like any missed detection (``track_buffer`` frames at most).

With ``confirm_frames`` above 1, an object is kept only once the tracker has followed it
in that many processed frames in a row (then for as long as it is tracked): before, it is not
in the frame's detections at all, as the tracker's own unconfirmed tracks are not, so a shadow
or a bird taken for a person for a frame or two is never shown, counted, or an event. A line
such an object crossed before it was kept counts it when it is kept (``origins``).

Only trackers that need nothing from the network: ByteTrack, and BoT-SORT without ReID (its
ReID would fetch a classification model).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import yaml

from streamyolo.errors import meant
from streamyolo.frames import Detections, Image, upright
from streamyolo.inference.counting import GONE_AFTER, Box, box_of
from streamyolo.inference.models import yaml_problem

SUPPORTED = ("bytetrack", "botsort")
TRACKING_CONF = 0.1  # as model.track(): the second association wants low-confidence boxes


def tracker_settings(value: str) -> dict[str, Any]:
    """The tracker settings for ``value`` (``bytetrack``, ``botsort`` or a tracker YAML file in
    Ultralytics' format), checked; a :class:`ValueError` says what is wrong (the config error
    it becomes names the key and the value)."""
    name = value.strip().lower().removesuffix(".yaml")
    if name in SUPPORTED and not Path(value).is_file():
        from streamyolo.inference.offline import ultralytics_file

        path = ultralytics_file("cfg", "trackers", f"{name}.yaml")
    elif value.endswith((".yaml", ".yml")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError("tracker file not found")
    else:
        raise ValueError(f"expected {' or '.join(SUPPORTED)}, or a tracker YAML file")
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise ValueError(f"cannot read the tracker file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"the tracker file is not valid YAML: {yaml_problem(exc)}") from None
    if isinstance(settings, dict) and "tracker_type" not in settings:
        raise ValueError(f"it sets no tracker_type (one of {', '.join(SUPPORTED)})")
    if not isinstance(settings, dict) or settings.get("tracker_type") not in SUPPORTED:
        kind = settings.get("tracker_type") if isinstance(settings, dict) else None
        raise ValueError(f"its tracker_type must be {' or '.join(SUPPORTED)}, not {kind!r}")
    if settings.get("with_reid"):
        raise ValueError("with_reid is not supported (BoT-SORT's ReID would download a model)")
    _check_keys(settings)
    if importlib.util.find_spec("lap") is None:  # else Ultralytics would try to pip-install it mid-run
        raise ValueError("tracking needs the 'lap' package (pip install 'lap>=0.5.12')")
    return settings


READ_ONLY_WITH_REID = ("model",)
"""Keys of Ultralytics' tracker files that its trackers read only for ReID (refused above)."""


def _check_keys(settings: Mapping[str, Any]) -> None:
    """Hold a tracker file to the keys and value types of the file Ultralytics ships for its
    ``tracker_type``: its trackers read every key (a missing one would stop the run at the
    first tracked frame) and ignore others (a misspelt key would silently do nothing)."""
    from streamyolo.inference.offline import ultralytics_file

    kind = settings["tracker_type"]
    defaults = yaml.safe_load(ultralytics_file("cfg", "trackers", f"{kind}.yaml").read_text(encoding="utf-8"))
    unknown = [key for key in settings if key not in defaults]
    if unknown:
        hint = meant(str(unknown[0]), defaults) or f" (its keys: {', '.join(defaults)})"
        raise ValueError(f"unknown key {unknown[0]!r} for a {kind} tracker{hint}")
    missing = [key for key in defaults if key not in settings and key not in READ_ONLY_WITH_REID]
    if missing:
        raise ValueError(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} for a "
                         f"{kind} tracker (Ultralytics' {kind}.yaml has them all)")
    for key, value in settings.items():
        wanted = _kind_of(defaults[key])
        if wanted is not None and _kind_of(value) not in _ACCEPTED[wanted]:
            raise ValueError(f"its {key} must be {wanted}, not {value!r}")


_ACCEPTED = {"a number": ("a number", "a whole number"), "a whole number": ("a whole number",),
             "true or false": ("true or false",), "text": ("text",)}


def _kind_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return None


def track_buffer(settings: Mapping[str, Any] | None) -> int:
    """The processed frames the tracker of ``settings`` keeps a lost track (its ``track_buffer``)."""
    return int((settings or {}).get("track_buffer", GONE_AFTER))


class _Boxes:
    """Detections in the shape Ultralytics' trackers read (``Boxes.cpu().numpy()``): ``conf``,
    ``cls``, ``xywh``, ``len`` and boolean indexing."""

    def __init__(self, xyxy: npt.NDArray[np.float32], conf: npt.NDArray[np.float32],
                 cls: npt.NDArray[np.float32]) -> None:
        self.xyxy, self.conf, self.cls = xyxy, conf, cls

    @property
    def xywh(self) -> npt.NDArray[np.float32]:
        from ultralytics.utils.ops import xyxy2xywh

        return cast(npt.NDArray[np.float32], xyxy2xywh(self.xyxy))  # type: ignore[no-untyped-call]

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


class _RotatedBoxes:
    """Oriented boxes as Ultralytics' trackers read them (``OBB.cpu().numpy()``): ``xywhr``
    instead of ``xywh``, which tells the tracker to track the angle too."""

    def __init__(self, xywhr: npt.NDArray[np.float32], conf: npt.NDArray[np.float32],
                 cls: npt.NDArray[np.float32]) -> None:
        self.xywhr, self.conf, self.cls = xywhr, conf, cls

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _RotatedBoxes:
        return _RotatedBoxes(self.xywhr[index], self.conf[index], self.cls[index])


class StreamTracker:
    """One stream's tracker. Not thread-safe: one worker updates it, frame after frame."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        from streamyolo.inference.offline import import_ultralytics

        import_ultralytics()
        from ultralytics.trackers.track import TRACKER_MAP
        from ultralytics.utils import IterableSimpleNamespace

        args = IterableSimpleNamespace(**settings)
        self._tracker: Any = TRACKER_MAP[args.tracker_type](args=args)
        self._forget_after = track_buffer(settings) + 1  # frames a lost track is kept
        self._frame = 0
        self._runs: dict[int, tuple[int, int, Box]] = {}  # unconfirmed id -> (frames in a row, the last, 1st box)
        self._confirmed: dict[int, int] = {}  # confirmed id -> the last frame it was tracked in
        self.origins: dict[int, Box] = {}
        """The objects kept from the last frame on (confirmed in it, ``confirm`` above 1): where
        each was when its run of frames began (its box then), so that a line it crossed before
        it was kept still counts it (:class:`~streamyolo.inference.counting.LineCounter`)."""

    def update(self, found: Detections, image: Image, confirm: int = 1) -> Detections:
        """The tracked objects of this frame, given its detections and its picture (BoT-SORT's
        motion compensation looks at it). As ``model.track()``: each tracked object is the
        detection the tracker matched (its outline or keypoints with it), with the tracker's
        box (a rotated one for an oriented-box model); those tracked in fewer than ``confirm``
        frames in a row so far left out (see the module)."""
        tracked = self._track(found, image)
        self._frame += 1
        assert tracked.ids is not None
        frame, kept = self._frame, []
        self.origins = {}
        for index, track in enumerate(tracked.ids.tolist()):
            if confirm <= 1 or track in self._confirmed:  # (kept: a higher confirm_frames later keeps it too)
                self._confirmed[track] = frame
                kept.append(index)
                continue
            run = self._runs.get(track)
            if run is None or run[1] != frame - 1:
                run = (0, frame, box_of(tracked, index))
            if run[0] + 1 >= confirm:
                self._runs.pop(track, None)
                self._confirmed[track] = frame
                self.origins[track] = run[2]
                kept.append(index)
            else:
                self._runs[track] = (run[0] + 1, frame, run[2])
        self._runs = {track: run for track, run in self._runs.items() if run[1] == frame}  # (a gap: not in a row)
        if frame % 100 == 0:  # tracks the tracker has dropped by now
            self._confirmed = {track: last for track, last in self._confirmed.items()
                               if frame - last <= self._forget_after}
        return tracked if len(kept) == len(tracked) else tracked.select(np.asarray(kept, np.intp))

    def _track(self, found: Detections, image: Image) -> Detections:
        conf, cls = found.conf.astype(np.float32), found.cls.astype(np.float32)
        if found.xywhr is not None:
            rotated = _RotatedBoxes(found.xywhr.astype(np.float32), conf, cls)
            tracks = np.asarray(self._tracker.update(rotated, image)).reshape(-1, 9)  # none: shape (0,)
            matched = found.select(tracks[:, 8].astype(np.intp))
            xywhr = tracks[:, :5].astype(np.float32)
            return replace(matched, xyxy=upright(xywhr), conf=tracks[:, 6].astype(np.float32),
                           cls=tracks[:, 7].astype(np.int64), ids=tracks[:, 5].astype(np.int64), xywhr=xywhr)
        tracks = np.asarray(self._tracker.update(_Boxes(found.xyxy.astype(np.float32), conf, cls), image)).reshape(
            -1, 8)
        height, width = image.shape[:2]
        xyxy = np.clip(tracks[:, :4], 0, [width, height, width, height]).astype(np.float32)  # as Results.update
        matched = found.select(tracks[:, 7].astype(np.intp))
        return replace(matched, xyxy=xyxy, conf=tracks[:, 5].astype(np.float32), cls=tracks[:, 6].astype(np.int64),
                       ids=tracks[:, 4].astype(np.int64))

