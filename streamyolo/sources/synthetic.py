"""``synthetic:`` sources: generated frames that carry their own identity.

Every frame has the stream's tag and its frame index stamped into the pixels as a row of
black and white cells (robust to H.264), so a test — or a person — can tell exactly which
frame of which stream reached a sink. The picture itself is a pure function of
``(seed, index)``. Two scenes:

- ``pattern`` (the default): a per-seed background and shapes moving on per-seed paths.
- ``scene``: a camera-like street with people, cars and balls and their ground truth
  (:mod:`streamyolo.sources.scenes`); the bundled demo model is trained on it.

URI form: ``synthetic:[pattern|scene]?seed=N&size=WxH&fps=F&frames=N`` (``frames=0``: endless).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

import cv2
import numpy as np

from streamyolo.errors import SourceReadError, UnsupportedSourceError, meant
from streamyolo.frames import Image
from streamyolo.sources.base import RawFrame, SourceInfo
from streamyolo.sources.scenes import CameraScene

STAMP_BITS = 32
_TAG_BITS = 8
_INDEX_BITS = STAMP_BITS - _TAG_BITS
_STAMP_CELLS = STAMP_BITS + 2  # a white guard cell at each end


@dataclass(frozen=True, slots=True)
class SyntheticParams:
    scene: str = "pattern"
    seed: int | None = None
    width: int = 640
    height: int = 360
    fps: float = 30.0
    frames: int = 0

    @classmethod
    def parse(cls, uri: str) -> SyntheticParams:
        """Parse ``synthetic:[scene]?key=value&...``; unknown keys and bad values are errors."""
        body = uri.removeprefix("synthetic:")
        scene, _, query = body.partition("?")
        scene = scene.strip("/") or "pattern"
        if scene not in SCENES:
            raise UnsupportedSourceError(f"{uri!r}: unknown synthetic scene {scene!r} (known: {', '.join(SCENES)})"
                                         + meant(scene, SCENES))
        values: dict[str, object] = {"scene": scene}
        for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            try:
                if key == "seed":
                    values["seed"] = int(raw)
                elif key == "size":
                    width, height = (int(v) for v in raw.lower().split("x"))
                    values["width"], values["height"] = width, height
                elif key == "fps":
                    values["fps"] = float(raw)
                elif key == "frames":
                    values["frames"] = int(raw)
                else:
                    raise UnsupportedSourceError(f"{uri!r}: unknown synthetic parameter {key!r} "
                                                 "(known: seed, size, fps, frames)")
            except ValueError as exc:
                raise UnsupportedSourceError(f"{uri!r}: bad value {raw!r} for {key!r}") from exc
        params = cls(**values)  # type: ignore[arg-type]
        if not (16 <= params.width <= 7680 and 16 <= params.height <= 4320):
            raise UnsupportedSourceError(f"{uri!r}: size must be between 16x16 and 7680x4320")
        if not 0 < params.fps <= 1000 or params.frames < 0:
            raise UnsupportedSourceError(f"{uri!r}: fps must be in (0, 1000] and frames >= 0")
        return params


def stream_tag(name: str) -> int:
    """The 8-bit tag stamped into a stream's frames."""
    return zlib.crc32(name.encode()) & 0xFF


def _cell_size(width: int) -> int:
    return max(2, width // (_STAMP_CELLS + 6))


def stamp_height(width: int) -> int:
    """Rows at the bottom of a ``width``-wide frame that :func:`stamp` overwrites."""
    return _cell_size(width)


def caption(image: Image, name: str, index: int) -> None:
    """What every synthetic frame carries, in place: the stream name and frame index as
    text (top left) and as a stamp (bottom left, see :func:`stamp`)."""
    cv2.putText(image, f"{name} #{index}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    stamp(image, stream_tag(name), index)


def stamp(image: Image, tag: int, index: int) -> None:
    """Write ``tag`` and ``index`` into the bottom-left corner of ``image``, in place."""
    cell = _cell_size(image.shape[1])
    top = image.shape[0] - cell
    code = ((tag & 0xFF) << _INDEX_BITS) | (index & ((1 << _INDEX_BITS) - 1))
    bits = [1] + [(code >> (STAMP_BITS - 1 - i)) & 1 for i in range(STAMP_BITS)] + [1]
    for i, bit in enumerate(bits):
        image[top:, i * cell:(i + 1) * cell] = 255 if bit else 0


def read_stamp(image: Image) -> tuple[int, int] | None:
    """``(tag, index)`` from a stamped image, or ``None`` if no valid stamp is there."""
    cell = _cell_size(image.shape[1])
    height = image.shape[0]
    if image.shape[1] < _STAMP_CELLS * cell or height < cell:
        return None
    inset = cell // 4
    strip = image[height - cell + inset:height - inset]
    gray = strip.astype(np.float32) if strip.ndim == 2 else strip.astype(np.float32).mean(axis=2)
    samples = [float(gray[:, i * cell + inset:(i + 1) * cell - inset].mean()) for i in range(_STAMP_CELLS)]
    bits = [1 if v >= 128 else 0 for v in samples]
    if bits[0] != 1 or bits[-1] != 1:
        return None
    code = 0
    for bit in bits[1:-1]:
        code = (code << 1) | bit
    return code >> _INDEX_BITS, code & ((1 << _INDEX_BITS) - 1)


class PatternScene:
    """Per-seed background and moving shapes; frame ``index`` is a pure function of both."""

    def __init__(self, seed: int, width: int, height: int) -> None:
        rng = np.random.default_rng(seed)
        self.width, self.height = width, height
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = rng.uniform(40, 200, size=3)
        slope = rng.uniform(-60, 60, size=(2, 3))
        background = base + x[..., None] / width * slope[0] + y[..., None] / height * slope[1]
        background += rng.normal(0, 6, size=(height, width, 1))
        self._background = np.clip(background, 0, 255).astype(np.uint8)
        count = int(rng.integers(3, 6))
        self._shapes = [
            _Shape(
                kind=int(rng.integers(0, 3)),
                color=(int(rng.integers(0, 256)), int(rng.integers(0, 256)), int(rng.integers(0, 256))),
                size=float(rng.uniform(0.08, 0.2)) * min(width, height),
                phase=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))),
                period=(float(rng.uniform(60, 240)), float(rng.uniform(60, 240))),
            )
            for _ in range(count)
        ]

    def render(self, index: int) -> Image:
        image: Image = self._background.copy()
        for shape in self._shapes:
            half = shape.size / 2
            pos = []
            for axis, span in enumerate((self.width, self.height)):
                t = (index / shape.period[axis] + shape.phase[axis]) % 1.0
                tri = 1 - abs(2 * t - 1)  # a bounce between the edges
                pos.append(half + tri * (span - 2 * half))
            cx, cy = int(pos[0]), int(pos[1])
            size = int(half)
            if shape.kind == 0:
                cv2.rectangle(image, (cx - size, cy - size), (cx + size, cy + size), shape.color, -1)
            elif shape.kind == 1:
                cv2.circle(image, (cx, cy), size, shape.color, -1)
            else:
                angle = index * 0.05
                points = np.array([[cx + size * math.cos(angle + k * 2.094), cy + size * math.sin(angle + k * 2.094)]
                                   for k in range(3)], dtype=np.int32)
                cv2.fillPoly(image, [points], shape.color)
        return image


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: int
    color: tuple[int, int, int]
    size: float
    phase: tuple[float, float]
    period: tuple[float, float]


SCENES = ("pattern", "scene")


class Scene(Protocol):
    """Renders frame ``index``; a pure function of the scene's seed and ``index``."""

    def render(self, index: int) -> Image: ...


def make_scene(params: SyntheticParams, seed: int) -> Scene:
    """The scene ``params`` names, for ``seed``; camera scenes keep the stamp rows free."""
    if params.scene == "scene":
        return CameraScene(seed, params.width, params.height, reserve_bottom=stamp_height(params.width))
    return PatternScene(seed, params.width, params.height)


class SyntheticSource:
    """A generated stream; deterministic per seed (by default, a hash of the stream name)."""

    def __init__(self, name: str, uri: str) -> None:
        self.name = name
        self.uri = uri
        self.params = SyntheticParams.parse(uri)
        self.seed = self.params.seed if self.params.seed is not None else zlib.crc32(name.encode())
        self.tag = stream_tag(name)
        self._scene: Scene | None = None
        self._index = 0

    def open(self) -> SourceInfo:
        self._scene = make_scene(self.params, self.seed)
        self._index = 0
        return SourceInfo(width=self.params.width, height=self.params.height, fps=self.params.fps, codec="synthetic")

    def read(self) -> RawFrame | None:
        if self._scene is None:
            raise SourceReadError(f"stream {self.name!r}: read before open", stream=self.name, url=self.uri)
        if self.params.frames and self._index >= self.params.frames:
            return None
        index = self._index
        image = self._scene.render(index)
        caption(image, self.name, index)
        self._index += 1
        return RawFrame(image=image, pts=index / self.params.fps)

    def close(self) -> None:
        self._scene = None

    def interrupt(self) -> None:
        """Generation never blocks."""
