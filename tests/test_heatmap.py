"""``heatmaps``: where each stream's objects were, over the run."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.frames import Detections, Frame, FrameMeta, Result
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks.heatmap import GRID, HeatmapSink, draw_heat
from streamyolo.sources import SourceKind, SourceSpec, open_source
from tests.test_counting import _WalkerDetector


def _at(stream: str, boxes: list[list[float]], seq: int = 0, shape: tuple[int, int] = (240, 320)) -> Result:
    image = np.full((*shape, 3), 90, np.uint8)
    found = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.8, np.float32),
                       np.zeros(len(boxes), np.int64))
    return Result(Frame(FrameMeta(stream, seq, 1.0), image), found, 1.0)


def test_the_heat_counts_the_frames_each_place_held_an_object() -> None:
    """A car parked for 30 frames and a person passing once: the car's place is 30 times as
    hot as the person's; where nothing was, nothing is; each stream has its own heat."""
    heat = HeatmapSink()
    heat.open()
    for seq in range(30):
        boxes = [[200, 100, 280, 180]] + ([[20, 20, 60, 100]] if seq == 5 else [])
        heat.write(_at("lot", boxes, seq))
    heat.write(_at("road", [[0, 0, 40, 40]]))
    heat.close()
    picture = heat.picture("lot")
    assert picture is not None and picture.shape == (240, 320, 3)
    state = heat._streams["lot"].heat
    assert state.shape == (240 // GRID, 320 // GRID)
    assert state[140 // GRID, 240 // GRID] == 30 and state[60 // GRID, 40 // GRID] == 1
    assert state[:, :15 // GRID].sum() == 0 and state[200 // GRID:, :].sum() == 0
    assert heat._streams["road"].heat.max() == 1 and heat.picture("nowhere") is None
    # Drawn: the parked car's place in the hot end of the colour map, the empty corner as it was.
    car, person, empty = picture[140, 240].astype(int), picture[60, 40].astype(int), picture[230, 5]
    assert car[2] > car[0] and person[0] > person[2], (car, person)  # JET: red hot, blue cold
    assert (empty == 90).all()


def test_no_heat_draws_the_picture_as_it_was() -> None:
    frame = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert np.array_equal(draw_heat(frame, np.zeros((12, 16), np.float32)), frame)


@pytest.mark.timeout(60)
def test_the_folder_gets_each_streams_heatmap_at_the_end(tmp_path: Path) -> None:
    """The walker of the counting tests goes down the middle of the picture: its heatmap is
    warm along that path and the picture itself beside it."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=25", SourceKind.SYNTHETIC))
    heat = HeatmapSink(tmp_path)
    with Pipeline([StreamSetup("hall", source, Overflow.BLOCK)], _WalkerDetector, sinks=[heat]) as pipeline:
        last = list(pipeline.results())[-1]
    assert heat.saved == [tmp_path / "hall.png"]
    picture = cv2.imread(str(tmp_path / "hall.png"))
    assert picture is not None and picture.shape == (240, 320, 3)
    frame = last.frame.image
    changed = np.abs(picture.astype(int) - frame).sum(axis=2) > 0
    columns = np.flatnonzero(changed.any(axis=0))
    assert columns.min() >= 140 - GRID and columns.max() < 180 + GRID, (columns.min(), columns.max())  # x 140-180
    assert changed[40:200, 155:165].all()  # its path, from y 20 down


def test_a_folder_that_refuses_pauses_the_writes_and_the_run_says_what_was_lost(tmp_path: Path) -> None:
    from streamyolo.errors import OutputsIncompleteError
    from streamyolo.sinks.base import BackgroundWriter

    writer = BackgroundWriter("test-writer", "heatmaps folder 'x'", "heatmap(s)")
    writer.start()
    done: list[str] = []

    def refused() -> Path:
        raise OSError(28, "No space left on device")

    writer.put(refused)
    writer.put(lambda: done.append("written") or tmp_path)  # paused: lost, not tried
    with pytest.raises(OutputsIncompleteError, match=r"heatmaps folder 'x': 2 heatmap\(s\) could not be written"):
        writer.close()
    assert done == [] and writer.saved == []


def test_a_streams_heat_goes_on_from_the_folders_earlier_runs_unless_told_to_overwrite(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A service restarted: the second run's heat is the first run's and its own (the car's
    place twice as hot, its picture the same), saved beside the picture; ``overwrite`` starts
    afresh, and so does a camera now sending pictures of another size, saying why."""
    def run(overwrite: bool = False, shape: tuple[int, int] = (240, 320)) -> np.ndarray:  # type: ignore[type-arg]
        heat = HeatmapSink(tmp_path, overwrite=overwrite)
        heat.open()
        for seq in range(10):
            heat.write(_at("lot", [[100, 60, 140, 100]], seq, shape))
        heat.close()
        return np.load(tmp_path / "lot.heat.npy")

    caplog.set_level(logging.INFO, logger="streamyolo.sinks.heatmap")
    first = run()
    assert first.max() == 10 and not list(tmp_path.glob(".*")), "no temporary file left"
    picture = cv2.imread(str(tmp_path / "lot.png"))
    again = run()
    assert np.array_equal(again, 2 * first)
    assert f"heatmap of stream 'lot' goes on from the earlier runs' ({tmp_path / 'lot.heat.npy'}" in caplog.text
    assert np.array_equal(cv2.imread(str(tmp_path / "lot.png")), picture), "twice as hot everywhere: the same picture"
    assert np.array_equal(run(overwrite=True), first)
    smaller = run(shape=(120, 160))
    assert smaller.shape == (120 // GRID, 160 // GRID) and smaller.max() == 10
    assert (f"heatmap of stream 'lot' starts afresh: {tmp_path / 'lot.heat.npy'} is of pictures of another size "
            "(now 160x120)") in caplog.text
