"""The moving figures of the camera scenes: a person, a car and a ball.

Each figure is drawn into a small BGRA canvas of its own (alpha 255 where the figure is,
0 elsewhere), so the scene can composite it, know exactly which pixels it covers, and
work out how much of it stays visible behind other figures. The three classes differ in
outline (tall, wide, round) and in their parts (head and limbs; cabin, windows and wheels;
coloured segments), never only in colour: every colour is random per figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

PERSON, CAR, BALL = 0, 1, 2
CLASS_NAMES: dict[int, str] = {PERSON: "person", CAR: "car", BALL: "ball"}
"""Class id → name of the scene figures (the demo model's classes)."""

ASPECT: dict[int, float] = {PERSON: 0.42, CAR: 2.3, BALL: 1.0}
"""Width / height of each figure's canvas."""

Color = tuple[int, int, int]
Canvas = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Look:
    """A figure's appearance: its class, colours, and a per-figure shape jitter in [0, 1)."""

    kind: int
    colors: tuple[Color, Color, Color]
    jitter: float


def canvas_size(kind: int, height: float) -> tuple[int, int]:
    """``(width, height)`` in whole pixels of a figure ``height`` pixels tall."""
    h = max(4, round(height))
    return max(4, round(h * ASPECT[kind])), h


def draw_figure(look: Look, height: float, phase: float, facing: int) -> Canvas:
    """A BGRA canvas with the figure: ``phase`` animates it (walking, wheels, spin) and
    ``facing`` (+1 right, -1 left) mirrors it."""
    width, h = canvas_size(look.kind, height)
    canvas = np.zeros((h, width, 4), dtype=np.uint8)
    if look.kind == PERSON:
        _person(canvas, look, phase)
    elif look.kind == CAR:
        _car(canvas, look, phase)
    else:
        _ball(canvas, look, phase)
    if facing < 0:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    return canvas


def _bgra(color: Color) -> tuple[int, int, int, int]:
    return (color[0], color[1], color[2], 255)


def _shade(color: Color, factor: float) -> Color:
    return (min(255, int(color[0] * factor)), min(255, int(color[1] * factor)), min(255, int(color[2] * factor)))


def _person(canvas: Canvas, look: Look, phase: float) -> None:
    h, w = canvas.shape[:2]
    shirt, trousers, skin = look.colors
    cx = w / 2
    limb = max(2, round(h * 0.085))
    swing = math.sin(phase) * 0.42  # radians; legs and arms swing in opposition
    hip_y, shoulder_y = h * 0.52, h * 0.21
    leg = h - hip_y - limb / 2
    for sign, shade in ((1, 0.75), (-1, 1.0)):  # the far leg first, darker
        foot = (cx + sign * math.sin(swing) * leg, hip_y + math.cos(swing) * leg)
        cv2.line(canvas, (round(cx), round(hip_y)), (round(foot[0]), round(foot[1])),
                 _bgra(_shade(trousers, shade)), limb)
    torso = np.array([[cx - w * 0.2, shoulder_y], [cx + w * 0.2, shoulder_y],
                      [cx + w * 0.17, hip_y + limb * 0.5], [cx - w * 0.17, hip_y + limb * 0.5]], dtype=np.int32)
    cv2.fillPoly(canvas, [torso], _bgra(shirt))
    arm = h * 0.3
    for sign in (-1, 1):
        hand = (cx - sign * math.sin(swing) * arm, shoulder_y + limb * 0.5 + math.cos(swing) * arm)
        cv2.line(canvas, (round(cx), round(shoulder_y + limb * 0.5)), (round(hand[0]), round(hand[1])),
                 _bgra(_shade(shirt, 0.8)), max(2, round(limb * 0.8)))
    head_r = max(2, round(h * (0.085 + 0.015 * look.jitter)))
    cv2.circle(canvas, (round(cx + w * 0.03), head_r + 1), head_r, _bgra(skin), -1)
    cv2.ellipse(canvas, (round(cx + w * 0.01), head_r + 1), (head_r, max(1, round(head_r * 0.55))), 0, 180, 360,
                _bgra(_shade(trousers, 0.5)), -1)  # hair


def _car(canvas: Canvas, look: Look, phase: float) -> None:
    h, w = canvas.shape[:2]
    body, glass, trim = look.colors
    wheel_r = max(2, round(h * 0.2))
    body_top, body_bottom = h * 0.42, h - wheel_r * 0.7
    cabin_top = h * (0.04 + 0.06 * look.jitter)
    back, front = w * 0.02, w * 0.98
    cabin = np.array([[w * 0.18, body_top], [w * 0.3, cabin_top], [w * 0.62, cabin_top], [w * 0.78, body_top]],
                     dtype=np.int32)
    cv2.fillPoly(canvas, [cabin], _bgra(_shade(body, 0.9)))
    hull = np.array([[back, body_top + h * 0.05], [w * 0.15, body_top], [w * 0.85, body_top],
                     [front, body_top + h * 0.12], [front, body_bottom], [back, body_bottom]], dtype=np.int32)
    cv2.fillPoly(canvas, [hull], _bgra(body))
    inset = max(1, round(h * 0.07))
    windows = [
        np.array([[w * 0.22 + inset, body_top], [w * 0.31 + inset * 0.5, cabin_top + inset],
                  [w * 0.45, cabin_top + inset], [w * 0.45, body_top]], dtype=np.int32),
        np.array([[w * 0.48, body_top], [w * 0.48, cabin_top + inset], [w * 0.61 - inset * 0.5, cabin_top + inset],
                  [w * 0.74 - inset, body_top]], dtype=np.int32),
    ]
    cv2.fillPoly(canvas, windows, _bgra(glass))
    middle = round((body_top + body_bottom) / 2)
    cv2.line(canvas, (round(back), middle), (round(front), middle), _bgra(trim), max(1, round(h * 0.03)))
    light = max(2, round(h * 0.08))
    cv2.rectangle(canvas, (round(front) - light, round(body_top + h * 0.14)),
                  (round(front), round(body_top + h * 0.14) + light), (120, 230, 255, 255), -1)
    for x in (w * 0.22, w * 0.78):
        centre = (round(x), h - wheel_r - 1)
        cv2.circle(canvas, centre, wheel_r, (25, 25, 25, 255), -1)
        cv2.circle(canvas, centre, max(1, round(wheel_r * 0.5)), (170, 170, 170, 255), -1)
        spoke = (round(centre[0] + math.cos(phase) * wheel_r * 0.5), round(centre[1] + math.sin(phase) * wheel_r * 0.5))
        cv2.line(canvas, centre, spoke, (60, 60, 60, 255), max(1, round(wheel_r * 0.2)))


def _ball(canvas: Canvas, look: Look, phase: float) -> None:
    h, w = canvas.shape[:2]
    first, second, third = look.colors
    radius = max(2, min(h, w) // 2 - 1)
    centre = (w // 2, h // 2)
    cv2.circle(canvas, centre, radius, _bgra(first), -1)
    start = math.degrees(phase)
    for k, color in enumerate((second, third, second)):
        begin = start + k * 120
        cv2.ellipse(canvas, centre, (radius, radius), 0, begin, begin + 40, _bgra(color), -1)
    cv2.circle(canvas, centre, max(1, radius // 4), (245, 245, 245, 255), -1)
    cv2.circle(canvas, centre, radius, _bgra(_shade(first, 0.55)), max(1, radius // 8))
