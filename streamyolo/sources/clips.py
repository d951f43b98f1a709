"""Camera-scene clips on disk: an H.264 MP4 and its ground truth as JSON beside it.

``write_clip(folder, "cam0", seed=1)`` writes ``folder/cam0.mp4`` with exactly the pixels a
``cam0=synthetic:scene?seed=1`` stream delivers (caption and stamp included), and
``folder/cam0.json``::

    {"stream": "cam0", "seed": 1, "width": 640, "height": 360, "fps": 30.0, "frame_count": 300,
     "classes": {"0": "person", "1": "car", "2": "ball"},
     "label_visible": 0.5, "optional_visible": 0.2,
     "frames": [[{"cls": 0, "name": "person", "xyxy": [x1, y1, x2, y2], "visible": 0.93, "track": 17}, ...], ...]}

``frames[i]`` lists every figure of frame ``i`` at least ``optional_visible`` visible;
those below ``label_visible`` are optional (see :mod:`streamyolo.sources.scenes`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from streamyolo.errors import OutputError, SourceError
from streamyolo.sources.figures import CLASS_NAMES
from streamyolo.sources.scenes import LABEL_VISIBLE, OPTIONAL_VISIBLE, CameraScene, SceneFrame, TruthBox
from streamyolo.sources.synthetic import caption, stamp_height


def scene_frames(name: str, seed: int, indices: Iterable[int], width: int = 640,
                 height: int = 360) -> Iterator[SceneFrame]:
    """Frames ``indices`` of stream ``name`` showing the camera scene of ``seed``, captioned
    and stamped exactly as the ``synthetic:scene`` source delivers them."""
    scene = CameraScene(seed, width, height, reserve_bottom=stamp_height(width))
    for index in indices:
        frame = scene.frame(index)
        caption(frame.image, name, index)
        yield frame


@dataclass(frozen=True, slots=True)
class ClipTruth:
    """The ground truth of one clip: per frame, the figures that show."""

    stream: str
    seed: int
    width: int
    height: int
    fps: float
    frames: Sequence[tuple[TruthBox, ...]]

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream, "seed": self.seed, "width": self.width, "height": self.height, "fps": self.fps,
            "frame_count": len(self.frames), "classes": {str(k): v for k, v in CLASS_NAMES.items()},
            "label_visible": LABEL_VISIBLE, "optional_visible": OPTIONAL_VISIBLE,
            "frames": [[box.to_record() for box in frame] for frame in self.frames],
        }

    def save(self, path: Path) -> None:
        try:
            path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write ground truth {str(path)!r}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClipTruth:
        """Read a ground-truth JSON file; errors name the file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                stream=str(data["stream"]), seed=int(data["seed"]), width=int(data["width"]),
                height=int(data["height"]), fps=float(data["fps"]),
                frames=[tuple(TruthBox.from_record(box) for box in frame) for frame in data["frames"]],
            )
        except FileNotFoundError:
            raise SourceError(f"ground truth file not found: {os.fspath(path)!r}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"ground truth file {os.fspath(path)!r} is not valid: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Clip:
    """A written clip: its video and ground-truth files."""

    video: Path
    truth: Path


def write_clip(folder: str | os.PathLike[str], name: str, seed: int, *, width: int = 640, height: int = 360,
               fps: float = 30.0, frames: int = 300, crf: int = 18, preset: str = "veryfast") -> Clip:
    """Write ``folder/<name>.mp4`` (H.264, yuv420p) of the camera scene ``seed`` and
    ``folder/<name>.json`` with its ground truth; return both paths, as in
    ``write_clip("runs/clips", "cam0", seed=1, frames=90)``.
    """
    if width % 2 or height % 2:
        raise ValueError(f"clip {name!r}: H.264 4:2:0 needs an even size, got {width}x{height}")
    if frames < 1:
        raise ValueError(f"clip {name!r}: frames must be >= 1, got {frames}")
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"clip folder {str(out)!r} cannot be created: {exc.strerror or exc}") from exc
    video, truth_file = out / f"{name}.mp4", out / f"{name}.json"
    truth: list[tuple[TruthBox, ...]] = []
    try:
        with av.open(str(video), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": preset, "crf": str(crf)}
            for index, frame in enumerate(scene_frames(name, seed, range(frames), width, height)):
                picture = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
                picture.pts = index
                for packet in stream.encode(picture):
                    container.mux(packet)
                truth.append(frame.truth)
            for packet in stream.encode(None):
                container.mux(packet)
    except OSError as exc:
        raise OutputError(f"cannot write clip {str(video)!r}: {exc.strerror or exc}") from exc
    ClipTruth(name, seed, width, height, fps, truth).save(truth_file)
    return Clip(video, truth_file)
