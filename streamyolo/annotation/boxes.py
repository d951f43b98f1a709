"""Draw detections on a copy of a frame, with OpenCV only (no font files, no network)."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from streamyolo.frames import Detections, Image, LineTally, Mask, ZoneTally, rotated_corners

# Ultralytics' default palette, so boxes look familiar to its users.
_PALETTE = [
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72), (23, 204, 146),
    (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100),
    (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)]


class BoxAnnotator:
    """Boxes with class name and confidence (and what the model's task adds: outlines filled
    half transparent, keypoints and a person's skeleton, rotated boxes), the stream name, and
    (optionally) an overlay with output fps and frame age. Never draws on the frame it is given.

    >>> import numpy as np
    >>> image = np.zeros((64, 64, 3), np.uint8)
    >>> out = BoxAnnotator().annotate(image, Detections.empty(), stream="cam1")
    >>> out is image, int(image.sum())
    (False, 0)
    """

    def __init__(self, overlay: bool = True, blur: Mapping[str, Collection[int]] | None = None, *,
                 boxes: bool = True, labels: bool = True, conf: bool = True, line_width: int | None = None) -> None:
        self.overlay = overlay
        self.boxes = boxes
        """Draw each object's box (and label): Ultralytics' ``show_boxes``."""
        self.labels = labels
        """Label each box with its class (and track id, speed): ``show_labels``."""
        self.conf = conf
        """Add the confidence to each label: ``show_conf``."""
        self.line_width = line_width
        """Lines this many pixels wide (``None``: by the picture's size): ``line_width``."""
        self.blur = {stream: frozenset(classes) for stream, classes in (blur or {}).items() if classes}
        """Each stream's classes whose objects are blurred (:func:`blur_objects`) before anything is drawn."""

    def annotate(
        self,
        image: Image,
        detections: Detections,
        *,
        stream: str,
        fps: float | None = None,
        age: float | None = None,
        lines: Sequence[LineTally] = (),
        zones: Sequence[ZoneTally] = (),
        masks: Sequence[Mask] = (),
        zoom: float = 1.0,
        when: float | None = None,
        speeds: Mapping[int, float] | None = None,
    ) -> Image:
        """A copy of ``image`` with ``detections``, the stream's counting ``lines`` with their
        totals, its ``zones`` with what they hold, its ``masks`` (outlined in grey: what is
        inside is not seen) and the header drawn; ``zoom``: how much
        ``image`` was scaled from the frame the boxes, lines and zones were found in (boxes
        already scaled by the caller); ``when``: the frame's time (seconds since the epoch),
        shown in local time after the stream's name, as a camera or an NVR stamps its video;
        ``speeds``: tracked objects' speeds (km/h, by track id), shown after their labels."""
        canvas = image.copy()
        hidden = self.blur.get(stream)
        if hidden and len(detections):
            blur_objects(canvas, detections, hidden)
        height, width = canvas.shape[:2]
        scale = max(0.4, min(width, height) / 900)
        thickness = self.line_width or max(1, round(scale * 2))
        for mask in masks:
            _mask(canvas, mask, zoom, scale, thickness)
        for zone in zones:
            _zone(canvas, zone, zoom, scale, thickness)
        for line in lines:
            _counting_line(canvas, line, zoom, scale, thickness)
        if detections.segments is not None:
            _outlines(canvas, detections.segments, detections.cls)
        if detections.keypoints is not None:
            for points in detections.keypoints:
                _skeleton(canvas, points, thickness)
        corners = rotated_corners(detections.xywhr) if detections.xywhr is not None else None
        ids = [f" #{int(i)}" for i in detections.ids] if detections.ids is not None else [""] * len(detections)
        if speeds and detections.ids is not None:
            ids = [f"{label} {speeds[int(i)]:.0f} km/h" if int(i) in speeds else label
                   for label, i in zip(ids, detections.ids, strict=True)]
        for index, (box, conf, cls, track) in enumerate(
                zip(detections.xyxy, detections.conf, detections.cls, ids, strict=True)):
            if not self.boxes:
                break
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            color = class_color(int(cls))
            if corners is not None:  # an oriented box: its four sides, the label at its upright corner
                cv2.polylines(canvas, [np.round(corners[index]).astype(np.int32)], True, color, thickness,
                              cv2.LINE_AA)
            else:
                cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            if self.labels or self.conf:
                text = f"{detections.name(int(cls))}{track}" if self.labels else ""
                text = f"{text} {float(conf):.2f}".strip() if self.conf else text
                _label(canvas, text, (x1, y1), color, scale, thickness)
        header = stream if when is None else f"{stream}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}"
        if self.overlay:
            parts = []
            if fps is not None:
                parts.append(f"{fps:.1f} fps")
            if age is not None:
                parts.append(f"age {age * 1000:.0f} ms")
            if parts:
                header = f"{header}  " + "  ".join(parts)
        _label(canvas, header, (0, 0), (32, 32, 32), scale * 1.1, thickness, inside=True)
        return canvas


def blur_objects(canvas: Image, detections: Detections, classes: Collection[int]) -> None:
    """Blur, in place, the boxes of the objects of ``classes`` (an outline or an oriented box:
    the upright box around it, so no edge of the object escapes), as Ultralytics'
    ``ObjectBlurrer`` blurs them (``cv2.blur``), with a kernel at least a third of the box's
    longer side (50 px at least) so that a face as large as the picture is no more
    recognisable than a small one."""
    height, width = canvas.shape[:2]
    for box, cls in zip(detections.xyxy, detections.cls, strict=True):
        if int(cls) not in classes:
            continue
        x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
        if x2 > x1 and y2 > y1:  # (not outside the picture)
            kernel = max(50, max(x2 - x1, y2 - y1) // 3)
            canvas[y1:y2, x1:x2] = cv2.blur(canvas[y1:y2, x1:x2], (kernel, kernel))


_SEGMENT_ALPHA = 0.45
"""How strongly a segmentation model's outlines are filled with their class's colour."""


def _outlines(canvas: Image, segments: Sequence[npt.NDArray[np.float32]], classes: npt.NDArray[np.int64]) -> None:
    """Each object's outline filled with its class's colour, half transparent (blended only
    over the part of the picture the outlines cover)."""
    shapes = [(np.round(outline).astype(np.int32), class_color(int(cls)))
              for outline, cls in zip(segments, classes, strict=True) if len(outline) >= 3]
    if not shapes:
        return
    height, width = canvas.shape[:2]
    every = np.concatenate([points for points, _ in shapes])
    x1, y1 = (max(0, int(v)) for v in every.min(0))
    x2, y2 = min(width, int(every[:, 0].max()) + 1), min(height, int(every[:, 1].max()) + 1)
    if x2 <= x1 or y2 <= y1:
        return
    region = canvas[y1:y2, x1:x2]
    painted = region.copy()
    for points, color in shapes:
        cv2.fillPoly(painted, [points - np.array([x1, y1], np.int32)], color, cv2.LINE_AA)
    cv2.addWeighted(painted, _SEGMENT_ALPHA, region, 1 - _SEGMENT_ALPHA, 0, dst=region)


# A person's 17 COCO keypoints as Ultralytics draws them (utils/plotting.py): limbs between
# them (1-based), and the colours of limbs and points from its pose palette.
_POSE_PALETTE = [
    (255, 128, 0), (255, 153, 51), (255, 178, 102), (230, 230, 0), (255, 153, 255), (153, 204, 255), (255, 102, 255),
    (255, 51, 255), (102, 178, 255), (51, 153, 255), (255, 153, 153), (255, 102, 102), (255, 51, 51), (153, 255, 153),
    (102, 255, 102), (51, 255, 51), (0, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255),
]
_SKELETON = [(16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10),
             (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)]
_LIMB_COLORS = [_POSE_PALETTE[i] for i in (9, 9, 9, 9, 7, 7, 7, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16)]
_POINT_COLORS = [_POSE_PALETTE[i] for i in (16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9)]
_KEYPOINT_CONF = 0.25
"""Keypoints less visible than this are not drawn (Ultralytics' ``conf_thres``)."""


def _skeleton(canvas: Image, points: npt.NDArray[np.float32], thickness: int) -> None:
    """One object's keypoints; for a 17-point (COCO) person, its limbs too. A point the model
    says is hidden (visibility below 0.25) or off the picture is left out."""
    height, width = canvas.shape[:2]
    coco = len(points) == len(_POINT_COLORS)
    shown: list[tuple[int, int] | None] = []
    for x, y, *visibility in points.tolist():
        inside = 0 < x < width and 0 < y < height  # Ultralytics skips (0, 0): a point not found
        shown.append((round(x), round(y)) if inside and (not visibility or visibility[0] >= _KEYPOINT_CONF)
                     else None)
    if coco:
        for (a, b), color in zip(_SKELETON, _LIMB_COLORS, strict=True):
            start, end = shown[a - 1], shown[b - 1]
            if start is not None and end is not None:
                cv2.line(canvas, start, end, color, max(2, thickness), cv2.LINE_AA)
    radius = max(2, thickness + 1)
    for index, point in enumerate(shown):
        if point is not None:
            color = _POINT_COLORS[index] if coco else class_color(index)
            cv2.circle(canvas, point, radius, color, -1, cv2.LINE_AA)


def _zone(canvas: Image, zone: ZoneTally, zoom: float, scale: float, thickness: int) -> None:
    """The zone's outline and what it holds."""
    corners = np.array([[round(x * zoom), round(y * zoom)] for x, y in zone.points], np.int32)
    yellow = (0, 215, 255)
    cv2.polylines(canvas, [corners], True, yellow, thickness + 1, cv2.LINE_AA)
    still = zone.stationary or {}
    held = ", ".join(f"{n} {name}" + (f" ({still[name]} stationary)" if still.get(name) else "")
                     for name, n in zone.inside.items()) or "empty"
    if zone.watched is False:  # (its schedule's windows: it makes no events now)
        held += " (not watched)"
    if zone.crowded:
        held += " CROWDED"
    _label(canvas, f"{zone.name}: {held}", (int(corners[:, 0].min()), int(corners[:, 1].min())), yellow, scale,
           thickness)


def _mask(canvas: Image, mask: Mask, zoom: float, scale: float, thickness: int) -> None:
    """The mask's outline, and its name."""
    corners = np.array([[round(x * zoom), round(y * zoom)] for x, y in mask.points], np.int32)
    grey = (128, 128, 128)
    cv2.polylines(canvas, [corners], True, grey, thickness, cv2.LINE_AA)
    _label(canvas, f"{mask.name}: {'only here' if mask.outside else 'masked'}",
           (int(corners[:, 0].min()), int(corners[:, 1].min())), grey, scale, thickness)


def _counting_line(canvas: Image, line: LineTally, zoom: float, scale: float, thickness: int) -> None:
    """The line, an arrow from its middle to the side objects cross to when they go ``in``, and
    its totals."""
    (ax, ay), (bx, by) = ((x * zoom, y * zoom) for x, y in (line.a, line.b))
    white = (255, 255, 255)
    cv2.line(canvas, (round(ax), round(ay)), (round(bx), round(by)), white, thickness + 1, cv2.LINE_AA)
    length = max(1e-6, float(np.hypot(bx - ax, by - ay)))
    mx, my = (ax + bx) / 2, (ay + by) / 2
    reach = 30 * scale  # the right-hand normal of a→b, y pointing down: the "in" side
    tip = (round(mx - (by - ay) / length * reach), round(my + (bx - ax) / length * reach))
    cv2.arrowedLine(canvas, (round(mx), round(my)), tip, white, thickness, cv2.LINE_AA, tipLength=0.4)
    _label(canvas, f"{line.name}: {line.into} in, {line.out} out", (round(min(ax, bx)), round(min(ay, by))),
           white, scale, thickness)


def _label(
    canvas: Image,
    text: str,
    corner: tuple[int, int],
    color: tuple[int, int, int],
    scale: float,
    thickness: int,
    inside: bool = False,
) -> None:
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = corner
    top = y if inside or y - text_h - baseline - 4 < 0 else y - text_h - baseline - 4
    bottom = top + text_h + baseline + 4
    cv2.rectangle(canvas, (x, top), (x + text_w + 4, bottom), color, -1)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 2, bottom - baseline - 2), _FONT, scale, ink, thickness, cv2.LINE_AA)


def tile(images: list[Image], width: int = 1280, height: int = 720) -> Image:
    """Arrange images in a near-square grid inside a ``width``×``height`` canvas."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    if not images:
        return canvas
    cols = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    cell_w, cell_h = width // cols, height // rows
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        h, w = image.shape[:2]
        s = min(cell_w / w, cell_h / h)
        new_w, new_h = max(1, int(w * s)), max(1, int(h * s))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        y0 = r * cell_h + (cell_h - new_h) // 2
        x0 = c * cell_w + (cell_w - new_w) // 2
        canvas[y0:y0 + new_h, x0:x0 + new_w] = resized
    return canvas
