"""Precision and recall of detections against scene ground truth, at IoU 0.5.

One implementation for the demo's table, the training script's report and the tests.
Matching, per frame: detections in order of falling confidence each take the unmatched
ground-truth box of the same class with the highest IoU, if that IoU is at least the
threshold (a true positive); otherwise they are false positives. Ground truth left
unmatched are false negatives. *Optional* figures (mostly hidden, see
:mod:`streamyolo.sources.scenes`) are neither: a detection matching one is not counted,
and missing one is no mistake.

>>> from streamyolo.sources.scenes import TruthBox
>>> truth = [TruthBox(0, (10, 10, 50, 90), 1.0)]
>>> found = detections_from_records([{"xyxy": [12, 11, 50, 88], "conf": 0.9, "cls": 0}])
>>> score_frame(found, truth)
Score(tp=1, fp=0, fn=0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamyolo.errors import SourceError
from streamyolo.frames import Detections, overlaps
from streamyolo.sources.scenes import TruthBox

IOU_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Score:
    """Counts of true positives, false positives and false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was detected (nothing was wrong)."""
        found = self.tp + self.fp
        return self.tp / found if found else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 when there was nothing to find."""
        expected = self.tp + self.fn
        return self.tp / expected if expected else 1.0

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0


def score_frame(detections: Detections, truth: Sequence[TruthBox], iou: float = IOU_THRESHOLD) -> Score:
    """Greedy matching by confidence, same class, IoU >= ``iou``; optional truth ignored."""
    if not truth:
        return Score(fp=len(detections))
    gt_boxes = np.array([box.xyxy for box in truth], dtype=np.float64)
    gt_cls = np.array([box.cls for box in truth], dtype=np.int64)
    required = np.array([box.labelled for box in truth], dtype=bool)
    ious = overlaps(detections.xyxy, gt_boxes)
    taken = np.zeros(len(truth), dtype=bool)
    tp = fp = 0
    for i in np.argsort(-detections.conf, kind="stable"):
        candidates = (gt_cls == int(detections.cls[i])) & ~taken & (ious[i] >= iou)
        pick = _best(ious[i], candidates & required)
        if pick is None:
            pick = _best(ious[i], candidates & ~required)
            if pick is not None:
                taken[pick] = True  # an optional figure: neither right nor wrong
                continue
            fp += 1
            continue
        taken[pick] = True
        tp += 1
    fn = int(np.count_nonzero(required & ~taken))
    return Score(tp, fp, fn)


def _best(overlaps: npt.NDArray[np.float64], allowed: npt.NDArray[np.bool_]) -> int | None:
    if not allowed.any():
        return None
    return int(np.argmax(np.where(allowed, overlaps, -1.0)))


def score_frames(detections: Sequence[Detections], truth: Sequence[Sequence[TruthBox]],
                 iou: float = IOU_THRESHOLD) -> Score:
    """The total score over frames; ``detections[i]`` belongs to ``truth[i]``."""
    if len(detections) != len(truth):
        raise ValueError(f"{len(detections)} frames of detections for {len(truth)} frames of ground truth")
    total = Score()
    for found, expected in zip(detections, truth, strict=True):
        total += score_frame(found, expected, iou)
    return total


def detections_from_records(records: Iterable[Mapping[str, Any]],
                            names: Mapping[int, str] | None = None) -> Detections:
    """:class:`Detections` from JSON records ``{"xyxy", "conf", "cls"[, "name"]}``."""
    rows = list(records)
    if not rows:
        return Detections.empty(names)
    found_names = dict(names or {})
    for row in rows:
        if "name" in row:
            found_names.setdefault(int(row["cls"]), str(row["name"]))
    return Detections(
        xyxy=np.array([row["xyxy"] for row in rows], dtype=np.float32).reshape(-1, 4),
        conf=np.array([row["conf"] for row in rows], dtype=np.float32),
        cls=np.array([row["cls"] for row in rows], dtype=np.int64),
        names=found_names,
    )


def read_jsonl_detections(path: str | os.PathLike[str]) -> dict[str, dict[int, Detections]]:
    """A detections JSONL file (streamyolo's ``--jsonl``) as ``{stream: {seq: Detections}}``."""
    out: dict[str, dict[int, Detections]] = {}
    try:
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    out.setdefault(str(record["stream"]), {})[int(record["seq"])] = detections_from_records(
                        record["detections"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise SourceError(f"JSONL file {os.fspath(path)!r} line {number}: not a detection record") from exc
    except FileNotFoundError:
        raise SourceError(f"JSONL file not found: {os.fspath(path)!r}") from None
    return out


def score_table(scores: Mapping[str, Score], iou: float = IOU_THRESHOLD, total: bool = True) -> str:
    """Per-stream precision and recall as an aligned text table, with a total row (when
    ``total`` and more than one row); ``-`` where a ratio is undefined (nothing found, or
    nothing to find)."""
    rows = [["stream", "objects", "found", "TP", "FP", "FN", f"precision@{iou:g}", f"recall@{iou:g}"]]
    for name, score in scores.items():
        rows.append(_row(name, score))
    if total and len(scores) > 1:
        rows.append(_row("all", sum(scores.values(), Score())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))).rstrip() for row in rows)


def _row(name: str, score: Score) -> list[str]:
    found, expected = score.tp + score.fp, score.tp + score.fn
    return [name, str(expected), str(found), str(score.tp), str(score.fp), str(score.fn),
            f"{score.precision:.3f}" if found else "-", f"{score.recall:.3f}" if expected else "-"]
