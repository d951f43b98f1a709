"""Camera-like synthetic scenes with ground truth: the ``synthetic:scene`` source.

A fixed camera looks over a street: sky with drifting clouds, buildings and trees on the
horizon, a textured ground with a road and a pavement. People, cars and balls
(:data:`~streamyolo.sources.figures.CLASS_NAMES`) enter from one side and leave at the
other, walking, driving or bouncing; as they move towards or away from the camera they
grow or shrink, and nearer figures hide farther ones. Daylight drifts, cloud shadows pass
and the sensor adds noise.

Frame ``index`` is a pure function of ``(seed, index)`` (random access, no hidden state):
each figure belongs to a *lane* and its whole path is drawn from a generator seeded with
``(seed, lane, number)``, so any frame can be rendered on its own.

Ground truth, one rule everywhere (training labels, clip JSON, evaluation): a figure's
box is the bounding box of its *visible* pixels (clipped to the frame, minus what nearer
figures cover); its ``visible`` fraction is visible pixels / all its pixels. Figures with
``visible >= LABEL_VISIBLE`` are labelled objects a detector must find; figures with
``OPTIONAL_VISIBLE <= visible < LABEL_VISIBLE`` are *optional* (detecting them is neither
required nor a mistake, like PASCAL VOC's "difficult" objects); the rest are not listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.frames import Image
from streamyolo.sources.figures import ASPECT, BALL, CAR, CLASS_NAMES, PERSON, Look, draw_figure

LABEL_VISIBLE = 0.5
OPTIONAL_VISIBLE = 0.2
MIN_BOX = 4  # pixels; smaller visible boxes are never listed

TRAIN_SEEDS = range(100_000, 200_000)
"""Scene seeds the demo model may be trained on; every other seed is held out."""
VALIDATION_SEEDS = range(200_000, 300_000)
"""Scenes for validation during training (model selection), never for training itself."""
HELD_OUT_SEEDS = range(300_000, 400_000)
"""Scenes for measuring the demo model: never seen in training or validation."""

_HEIGHT = {PERSON: 0.6, CAR: 0.44, BALL: 0.24}  # figure height / frame height, nearest to the camera
_SPEED = {PERSON: (1.2, 2.6), CAR: (3.5, 7.0), BALL: (2.0, 4.5)}  # pixels per frame per 640 px of width
_KIND_P = (0.45, 0.33, 0.22)
_FAR_SCALE = 0.24  # apparent size at the horizon end of the ground, relative to the nearest
_MAX_DURATION = 720  # frames; caps slow crossings so random access stays cheap
_NOISE_BANK = 3
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class TruthBox:
    """One figure's ground truth: class id, visible box in pixels, visible fraction, and
    ``track``, the figure's identity: the same in every frame it shows in, unique in its scene."""

    cls: int
    xyxy: tuple[float, float, float, float]
    visible: float
    track: int | None = None

    @property
    def name(self) -> str:
        return CLASS_NAMES[self.cls]

    @property
    def labelled(self) -> bool:
        """True if a detector must find this figure (at least half of it shows)."""
        return self.visible >= LABEL_VISIBLE

    def to_record(self) -> dict[str, Any]:
        return {"cls": self.cls, "name": self.name, "xyxy": [round(v, 1) for v in self.xyxy],
                "visible": round(self.visible, 3), "track": self.track}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TruthBox:
        x1, y1, x2, y2 = (float(v) for v in record["xyxy"])
        return cls(int(record["cls"]), (x1, y1, x2, y2), float(record.get("visible", 1.0)),
                   None if record.get("track") is None else int(record["track"]))


@dataclass(frozen=True, slots=True)
class SceneFrame:
    """A rendered frame and the ground truth of every figure that shows in it."""

    image: Image
    truth: tuple[TruthBox, ...]

    @property
    def labelled(self) -> list[TruthBox]:
        return [box for box in self.truth if box.labelled]


@dataclass(frozen=True, slots=True)
class _Track:
    """One figure's whole path: frames ``start`` to ``start + duration``, linear in x and depth."""

    number: int
    look: Look
    start: int
    duration: int
    x0: float
    x1: float
    depth0: float
    depth1: float
    size: float
    facing: int
    gait: float
    phase0: float
    bounce: float
    bounce_period: float


@dataclass(frozen=True, slots=True)
class _Lane:
    period: float
    offset: float


@dataclass(frozen=True, slots=True)
class _Placed:
    track: _Track
    canvas: npt.NDArray[np.uint8]
    left: int
    top: int
    ground: float


class CameraScene:
    """A street seen by a fixed camera; ``frame(index)`` renders a frame with its truth.

    >>> scene = CameraScene(seed=7, width=320, height=180)
    >>> frame = scene.frame(10)
    >>> frame.image.shape, all(box.name in ("person", "car", "ball") for box in frame.truth)
    ((180, 320, 3), True)

    ``reserve_bottom`` rows at the bottom stay free of figures (the synthetic source
    stamps the frame index there).
    """

    def __init__(self, seed: int, width: int, height: int, reserve_bottom: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"scene seed must be >= 0, got {seed}")
        self.seed = seed
        self.width, self.height = width, height
        rng = np.random.default_rng([seed, 0x5CE7E])
        self.horizon = int(height * rng.uniform(0.3, 0.4))
        self.ground_bottom = height - reserve_bottom - max(2, height // 90)
        self._static, self._sky_mask = _static_background(rng, width, height, self.horizon)
        self._sky = _sky_texture(rng, width, self.horizon)
        self._sky_speed = float(rng.uniform(0.15, 0.6)) * width / 640
        sigma = float(rng.uniform(2.0, 6.0))
        self._noise = [_noise_pair(rng, width + 32, height + 32, sigma) for _ in range(_NOISE_BANK)]
        self._light = rng.uniform(0, 1, size=12)
        lanes = int(rng.integers(2, 5))
        self._lanes = [_Lane(float(rng.uniform(100, 220)), float(rng.uniform(0, 220))) for _ in range(lanes)]
        self._tracks: dict[tuple[int, int], _Track] = {}

    # -- public ---------------------------------------------------------------------

    def render(self, index: int) -> Image:
        """The picture of frame ``index`` (without its truth)."""
        return self.frame(index).image

    def frame(self, index: int) -> SceneFrame:
        """Frame ``index`` and its ground truth."""
        image = self._background(index)
        placed = sorted((self._place(track, index) for track in self._active(index)),
                        key=lambda p: (p.ground, p.track.number))
        for item in placed:
            self._shadow(image, item)
        labels = np.zeros((self.height, self.width), dtype=np.uint8)
        areas = []
        for number, item in enumerate(placed, start=1):
            areas.append(self._paste(image, labels, item, number))
        truth = []
        for number, (item, area) in enumerate(zip(placed, areas, strict=True), start=1):
            box = self._visible_box(labels, item, number, area)
            if box is not None:
                truth.append(box)
        self._light_and_noise(image, index)
        return SceneFrame(image, tuple(truth))

    # -- figures --------------------------------------------------------------------

    def _active(self, index: int) -> list[_Track]:
        active = []
        for lane_number, lane in enumerate(self._lanes):
            last = math.floor((index - lane.offset) / lane.period)
            first = math.floor((index - lane.offset - _MAX_DURATION) / lane.period) - 1
            for number in range(first, last + 1):
                track = self._track(lane_number, number)
                if track.start <= index < track.start + track.duration:
                    active.append(track)
        return active

    def _track(self, lane_number: int, number: int) -> _Track:
        key = (lane_number, number)
        track = self._tracks.get(key)
        if track is None:
            if len(self._tracks) >= _CACHE_LIMIT:
                self._tracks.clear()
            track = self._new_track(lane_number, number)
            self._tracks[key] = track
        return track

    def _new_track(self, lane_number: int, number: int) -> _Track:
        lane = self._lanes[lane_number]
        rng = np.random.default_rng([self.seed, lane_number + 1, number + (1 << 40)])
        kind = int(rng.choice(3, p=_KIND_P))
        look = Look(kind, (_color(rng), _color(rng), _skin(rng) if kind == PERSON else _color(rng)),
                    float(rng.uniform()))
        depth0 = float(rng.uniform(0, 1))
        depth1 = float(np.clip(depth0 + rng.uniform(-0.6, 0.6), 0, 1))
        size = float(rng.uniform(0.85, 1.15))
        facing = 1 if rng.uniform() < 0.5 else -1
        low, high = _SPEED[kind]
        speed = float(rng.uniform(low, high)) * self.width / 640
        widest = self._figure_height(kind, max(depth0, depth1), size) * ASPECT[kind]
        margin = widest / 2 + 2
        x0, x1 = -margin, self.width + margin
        if facing < 0:
            x0, x1 = x1, x0
        duration = min(_MAX_DURATION, max(2, math.ceil(abs(x1 - x0) / speed)))
        start = math.floor(number * lane.period + lane.offset + rng.uniform(0, lane.period * 0.6))
        return _Track(
            number=number * 16 + lane_number, look=look, start=start, duration=duration, x0=x0, x1=x1,
            depth0=depth0, depth1=depth1, size=size, facing=facing,
            gait=float(rng.uniform(0.16, 0.24)), phase0=float(rng.uniform(0, 2 * math.pi)),
            bounce=float(rng.uniform(0.4, 1.6)), bounce_period=float(rng.uniform(18, 40)),
        )

    def _figure_height(self, kind: int, depth: float, size: float) -> float:
        return _HEIGHT[kind] * self.height * _apparent(depth) * size

    def _ground_y(self, depth: float) -> float:
        span = self.ground_bottom - self.horizon
        return self.horizon + span * _apparent(depth)

    def _place(self, track: _Track, index: int) -> _Placed:
        age = index - track.start
        t = age / track.duration
        depth = track.depth0 + (track.depth1 - track.depth0) * t
        x = track.x0 + (track.x1 - track.x0) * t
        ground = self._ground_y(depth)
        kind = track.look.kind
        height = self._figure_height(kind, depth, track.size)
        if kind == BALL:
            phase = x / max(1.0, height / 2) * track.facing
            lift = track.bounce * height * abs(math.sin(math.pi * age / track.bounce_period))
        elif kind == CAR:
            phase, lift = x / max(1.0, height * 0.2) * track.facing, 0.0
        else:
            phase, lift = track.phase0 + age * track.gait, 0.0
        canvas = draw_figure(track.look, height, phase, track.facing)
        h, w = canvas.shape[:2]
        return _Placed(track, canvas, round(x - w / 2), round(ground - lift - h), ground)

    def _shadow(self, image: Image, item: _Placed) -> None:
        w = item.canvas.shape[1]
        axes = (max(2, round(w * 0.45)), max(1, round(w * 0.08 if item.track.look.kind != PERSON else w * 0.25)))
        centre = (item.left + w // 2, round(item.ground))
        mask = np.zeros((axes[1] * 2 + 1, axes[0] * 2 + 1), dtype=np.uint8)
        cv2.ellipse(mask, (axes[0], axes[1]), axes, 0, 0, 360, 255, -1)
        x0, y0 = centre[0] - axes[0], centre[1] - axes[1]
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1, sy1 = min(self.width, x0 + mask.shape[1]), min(self.height, y0 + mask.shape[0])
        if sx0 >= sx1 or sy0 >= sy1:
            return
        region = image[sy0:sy1, sx0:sx1]
        inside = mask[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] > 0
        region[inside] = (region[inside] * 0.62).astype(np.uint8)

    def _paste(self, image: Image, labels: npt.NDArray[np.uint8], item: _Placed, number: int) -> int:
        """Composite a figure; mark its pixels with ``number``; return its full pixel count."""
        canvas = item.canvas
        alpha = canvas[:, :, 3] > 0
        area = int(np.count_nonzero(alpha))
        h, w = canvas.shape[:2]
        x0, y0 = max(0, item.left), max(0, item.top)
        x1, y1 = min(self.width, item.left + w), min(self.height, item.top + h)
        if x0 >= x1 or y0 >= y1:
            return area
        inside = alpha[y0 - item.top:y1 - item.top, x0 - item.left:x1 - item.left]
        pixels = canvas[y0 - item.top:y1 - item.top, x0 - item.left:x1 - item.left, :3]
        np.copyto(image[y0:y1, x0:x1], pixels, where=inside[:, :, None])
        labels[y0:y1, x0:x1][inside] = number
        return area

    def _visible_box(self, labels: npt.NDArray[np.uint8], item: _Placed, number: int, area: int) -> TruthBox | None:
        h, w = item.canvas.shape[:2]
        x0, y0 = max(0, item.left), max(0, item.top)
        x1, y1 = min(self.width, item.left + w), min(self.height, item.top + h)
        if x0 >= x1 or y0 >= y1 or area == 0:
            return None
        mine = (labels[y0:y1, x0:x1] == number).astype(np.uint8)
        visible = int(np.count_nonzero(mine)) / area
        if visible < OPTIONAL_VISIBLE:
            return None
        bx, by, bw, bh = cv2.boundingRect(mine)
        if bw < MIN_BOX or bh < MIN_BOX:
            return None
        return TruthBox(item.track.look.kind, (float(x0 + bx), float(y0 + by), float(x0 + bx + bw),
                                               float(y0 + by + bh)), visible, item.track.number)

    # -- background, light, noise ----------------------------------------------------

    def _background(self, index: int) -> Image:
        image = self._static.copy()
        if self.horizon > 0:
            period = self._sky.shape[1] // 2
            offset = int(index * self._sky_speed) % period
            window = self._sky[:, offset:offset + self.width]
            np.copyto(image[: self.horizon], window, where=self._sky_mask[:, :, None])
        return image

    def _light_and_noise(self, image: Image, index: int) -> None:
        k = self._light
        t = float(index)
        gain = 1 + 0.22 * k[0] * math.sin(2 * math.pi * t / (300 + 600 * k[1]) + 6.3 * k[2]) \
            + 0.06 * math.sin(2 * math.pi * t / (80 + 120 * k[3]) + 6.3 * k[4])
        tint = [1 + 0.06 * math.sin(2 * math.pi * t / (400 + 500 * k[5]) + 6.3 * k[6] + c * 2.1) for c in range(3)]
        # A cloud shadow: a soft dark band drifting across the view.
        span = self.width * 1.8
        centre = (k[7] * span + t * (0.4 + 0.8 * k[8]) * self.width / 640) % span - self.width * 0.4
        columns = np.arange(self.width, dtype=np.float32)
        band = 1 - (0.15 + 0.25 * k[9]) * np.exp(-(((columns - centre) / (self.width * (0.12 + 0.1 * k[10]))) ** 2))
        row = np.clip(band[:, None] * (gain * np.asarray(tint, dtype=np.float32))[None, :] * 128, 0, 255)
        factor = cv2.resize(row.astype(np.uint8)[None, :, :], (self.width, self.height),
                            interpolation=cv2.INTER_NEAREST)
        cv2.multiply(image, factor, dst=image, scale=1 / 128)
        code = (index * 2654435761 + self.seed * 40503) & 0xFFFFFFFF
        plus, minus = self._noise[code % _NOISE_BANK]
        dx, dy = (code >> 8) % 32, (code >> 16) % 32
        cv2.add(image, plus[dy:dy + self.height, dx:dx + self.width], dst=image)
        cv2.subtract(image, minus[dy:dy + self.height, dx:dx + self.width], dst=image)


def _apparent(depth: float) -> float:
    """Apparent size (and distance below the horizon) at ``depth`` (0 far, 1 near)."""
    return _FAR_SCALE + (1 - _FAR_SCALE) * depth


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    hue = int(rng.integers(0, 180))
    saturation = int(rng.integers(60, 256))
    value = int(rng.integers(50, 256))
    b, g, r = cv2.cvtColor(np.array([[[hue, saturation, value]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    tone = float(rng.uniform(0.35, 1.0))
    return int(60 + 120 * tone), int(85 + 115 * tone), int(120 + 120 * tone)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: tuple[int, int],
                  periodic: bool = False) -> npt.NDArray[np.float32]:
    """Low-frequency noise in [-1, 1]; ``periodic`` wraps seamlessly left to right."""
    grid = rng.uniform(-1, 1, size=(cells[1], cells[0])).astype(np.float32)
    if not periodic:
        return np.asarray(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), dtype=np.float32)
    tiled = np.concatenate([grid, grid, grid], axis=1)
    big = cv2.resize(tiled, (width * 3, height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(big[:, width:2 * width], dtype=np.float32)


def _sky_texture(rng: np.random.Generator, width: int, horizon: int) -> Image:
    """Sky with clouds, ``2 * width`` wide and periodic, so it can drift forever."""
    rows = max(1, horizon)
    top = np.array([rng.uniform(150, 235), rng.uniform(100, 190), rng.uniform(60, 160)], dtype=np.float32)
    low = np.minimum(255, top + rng.uniform(20, 60))
    ramp = np.linspace(0, 1, rows, dtype=np.float32)[:, None, None]
    sky = top * (1 - ramp) + low * ramp
    clouds = _smooth_noise(rng, width * 2, rows, (12, 3), periodic=True)
    cover = np.clip((clouds - rng.uniform(-0.2, 0.4)) * 2.5, 0, 1)[:, :, None]
    grey = float(rng.uniform(200, 250))
    sky = sky * (1 - cover * 0.85) + grey * cover * 0.85
    texture = np.clip(sky, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.concatenate([texture, texture], axis=1))


def _static_background(rng: np.random.Generator, width: int, height: int,
                       horizon: int) -> tuple[Image, npt.NDArray[np.bool_]]:
    """Ground, road, pavement, buildings and trees; and where the sky shows through."""
    image = np.zeros((height, width, 3), dtype=np.float32)
    palette = [(70, 140, 90), (110, 115, 120), (90, 150, 170), (60, 110, 80)]
    base = np.array(palette[int(rng.integers(len(palette)))], dtype=np.float32) + rng.uniform(-20, 20, size=3)
    ground_rows = height - horizon
    coarse = _smooth_noise(rng, width, ground_rows, (10, 4))[:, :, None] * 22
    fine = rng.normal(0, 7, size=(ground_rows, width, 1)).astype(np.float32)
    image[horizon:] = base + coarse + fine
    span = height - horizon

    def row_at(fraction: float) -> int:
        return horizon + round(span * fraction)

    road_top, road_bottom = sorted((row_at(rng.uniform(0.25, 0.45)), row_at(rng.uniform(0.55, 0.8))))
    asphalt = float(rng.uniform(60, 110))
    image[road_top:road_bottom] = asphalt + coarse[road_top - horizon:road_bottom - horizon] * 0.4 \
        + fine[road_top - horizon:road_bottom - horizon] * 0.8
    pave_bottom = min(height, road_top + 1)
    pave_top = max(horizon, road_top - round(span * 0.12))
    image[pave_top:pave_bottom] = float(rng.uniform(130, 180)) + fine[pave_top - horizon:pave_bottom - horizon]
    out = np.clip(image, 0, 255).astype(np.uint8)
    middle = (road_top + road_bottom) // 2
    dash = max(4, width // 24)
    for x in range(int(rng.integers(0, dash * 2)), width, dash * 2):
        cv2.rectangle(out, (x, middle - 1), (x + dash, middle + 1), (225, 225, 225), -1)
    for x in range(int(rng.integers(0, 40)), width, max(8, width // 20)):
        cv2.line(out, (x, pave_top), (x - (x - width // 2) // 6, pave_bottom - 1), (100, 100, 100), 1)
    sky = np.ones((max(1, horizon), width), dtype=np.uint8)
    x = int(rng.integers(-40, 0))
    while x < width:
        wide = int(rng.integers(width // 16, width // 5))
        if rng.uniform() < 0.35:  # a tree
            trunk_top = horizon - int(rng.integers(horizon // 6, horizon // 3 + 2))
            radius = max(3, int(rng.integers(horizon // 8, horizon // 4 + 3)))
            cx = x + wide // 2
            green = (int(rng.integers(20, 70)), int(rng.integers(90, 160)), int(rng.integers(30, 80)))
            for canvas, ink, trunk_ink in ((out, green, (40, 60, 90)), (sky, 0, 0)):
                cv2.rectangle(canvas, (cx - 2, trunk_top), (cx + 2, horizon), trunk_ink, -1)
                for dx, dy in ((0, 0), (-radius // 2, radius // 3), (radius // 2, radius // 3)):
                    cv2.circle(canvas, (cx + dx, trunk_top - radius // 2 + dy), radius, ink, -1)
        else:  # a building
            top = horizon - int(rng.integers(horizon // 5, max(horizon // 5 + 1, int(horizon * 0.75))))
            wall = tuple(int(v) for v in rng.integers(70, 200, size=3))
            cv2.rectangle(out, (x, top), (x + wide, horizon), wall, -1)
            cv2.rectangle(sky, (x, top), (x + wide, horizon), 0, -1)
            step = max(6, width // 50)
            pane = tuple(int(v) * 0.6 for v in wall)
            for wy in range(top + step // 2, horizon - step, step):
                for wx in range(x + step // 2, x + wide - step // 2, step):
                    cv2.rectangle(out, (wx, wy), (wx + step // 2, wy + step // 2), pane, -1)
        x += wide + int(rng.integers(0, width // 10))
    return out, sky[:horizon] > 0


def _noise_pair(rng: np.random.Generator, width: int, height: int,
                sigma: float) -> tuple[Image, Image]:
    """Sensor noise as two saturating layers, added and subtracted with OpenCV."""
    noise = rng.normal(0, sigma, size=(height, width, 3)).astype(np.float32)
    return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
