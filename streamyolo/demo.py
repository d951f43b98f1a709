"""``streamyolo demo``: the whole product on synthetic camera scenes, offline, checked against truth.

1. Writes one H.264 clip per stream of a camera scene (``<out>/clips/cam<i>.mp4``) and its
   ground truth (``<out>/clips/cam<i>.json``); stream ``i`` shows scene seed ``1 + i``, a
   scene the demo model never saw in training.
2. Runs the full pipeline over the clips, so the real decode path runs: annotated
   recordings in ``<out>/videos/``, ``<out>/detections.jsonl``, ``<out>/summary.json``,
   the live status, and the tiled window where a display exists.
3. Scores each stream's detections (read back from the JSONL file) against its ground
   truth: precision and recall at IoU 0.5 (:mod:`streamyolo.evaluation`).

In code::

    demo = Demo(DemoOptions(out=Path("runs/demo"), frames=150))
    pipeline = demo.prepare()                # writes the clips, checks model and outputs
    summary = pipeline.run()
    print(score_table(demo.scores()))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamyolo.config import DEFAULT_MODEL
from streamyolo.errors import ConfigError
from streamyolo.evaluation import Score, read_jsonl_detections, score_frames, score_table
from streamyolo.frames import Detections
from streamyolo.pipeline import Pipeline, StatusPrinter
from streamyolo.sources.clips import Clip, ClipTruth, write_clip

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 1200
"""Frames per stream (40 s at 30 fps): the whole demo takes about two minutes on two cores."""
DEMO_CONF = 0.5
"""The bundled model's operating point: the confidence threshold with the best F1 on
validation scenes, as ``scripts/train_demo_model.py`` chose it (the package default, 0.25,
is Ultralytics' generic one and lets more doubtful boxes through)."""
FIRST_SEED = 1
"""Stream ``i`` shows scene ``FIRST_SEED + i``; training only uses seeds from 100000 up."""

__all__ = ["DEFAULT_FRAMES", "DEMO_CONF", "Demo", "DemoOptions", "score_table"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``streamyolo demo`` runs; every field has a CLI option of the same name."""

    out: Path = Path("runs/demo")
    model: str = DEFAULT_MODEL
    conf: float = DEMO_CONF
    workers: int = 2
    streams: int = 4
    frames: int = DEFAULT_FRAMES
    display: bool | None = None
    web: str | None = None
    """``[HOST:]PORT`` for the web page of the streams (``None``: no web page)."""
    width: int = 640
    height: int = 360
    fps: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.streams <= 64:
            raise ConfigError(f"demo option 'streams': must be between 1 and 64 (got {self.streams})")
        if not 1 <= self.frames <= 100_000:
            raise ConfigError(f"demo option 'frames': must be between 1 and 100000 (got {self.frames})")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"demo option 'workers': must be between 1 and 64 (got {self.workers})")


class Demo:
    """Writes the clips, builds the pipeline over them, and scores what it found."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.clips: list[Clip] = []

    @property
    def clip_folder(self) -> Path:
        return self.options.out / "clips"

    @property
    def jsonl(self) -> Path:
        return self.options.out / "detections.jsonl"

    def write_clips(self) -> list[Clip]:
        """Render and encode one clip per stream (two at a time) with its ground truth."""
        options = self.options
        started = time.monotonic()
        log.info("writing %d synthetic clips of %d frames to %s", options.streams, options.frames,
                 self.clip_folder)

        def one(index: int) -> Clip:
            return write_clip(self.clip_folder, f"cam{index}", FIRST_SEED + index, width=options.width,
                              height=options.height, fps=options.fps, frames=options.frames)

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-clip") as pool:
            self.clips = list(pool.map(one, range(options.streams)))
        log.info("clips written in %.1f s", time.monotonic() - started)
        return self.clips

    def config(self) -> dict[str, Any]:
        """The pipeline config the demo runs (a user could run the same with ``streamyolo run``)."""
        out = self.options.out
        return {
            "streams": [str(clip.video) for clip in self.clips],
            "model": self.options.model,
            "conf": self.options.conf,
            "workers": self.options.workers,
            "record": str(out / "videos"),
            "jsonl": str(self.jsonl),
            "summary": str(out / "summary.json"),
            "overwrite": True,  # the demo's folder holds one demo: a second run replaces the first
            "display": self.options.display,
            "web": self.options.web,
        }

    def prepare(self, status: StatusPrinter | None = None) -> Pipeline:
        """Write the clips and build the pipeline over them (model and outputs checked)."""
        if not self.clips:
            self.write_clips()
        return Pipeline.from_config(self.config(), status=status)

    def scores(self) -> dict[str, Score]:
        """Each stream's score against its own ground truth, over the frames it processed."""
        found = read_jsonl_detections(self.jsonl)
        return {clip.video.stem: _score(found.get(clip.video.stem, {}), ClipTruth.load(clip.truth))
                for clip in self.clips}


def _score(found: dict[int, Detections], truth: ClipTruth) -> Score:
    seqs = sorted(seq for seq in found if seq < len(truth.frames))
    detections: Sequence[Detections] = [found[seq] for seq in seqs]
    return score_frames(detections, [truth.frames[seq] for seq in seqs])
