"""Speeds measured on the ground, in zones of a known size (``zones: {road: {points, size}}``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Result
from streamyolo.inference.counting import Zone, ZoneWatch, occupancy
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks.events import frame_events
from streamyolo.sources import SourceKind, SourceSpec, open_source
from tests.test_counting import _WalkerDetector

ROAD = ((100.0, 100.0), (200.0, 100.0), (300.0, 200.0), (0.0, 200.0))
"""A road 5 m wide and 20 m long as a camera sees it: its far end (y = 100) half as wide as its near end."""


def test_a_car_at_a_steady_speed_is_measured_at_it_wherever_it_is_in_the_picture() -> None:
    """A car driving away from the camera at 15 m/s (54 km/h) moves fewer pixels a frame the
    farther it is: on the ground, its speed is the same all the way, and so is its average."""
    to_picture = cv2.getPerspectiveTransform(np.array([[0, 0], [5, 0], [5, 20], [0, 20]], np.float32),
                                             np.array(ROAD, np.float32))
    zone = Zone("road", ROAD, anchor="bottom", size=(5.0, 20.0), speed_limit=50.0)
    watch = ZoneWatch([zone, Zone("school", ROAD, anchor="bottom", size=(5.0, 20.0), speed_limit=60.0)])
    fps, speeds, steps, visits = 25.0, [], [], []
    for frame in range(40):
        t = frame / fps
        ground_y = 20.0 - 15.0 * t  # from the near end away, 0.6 m a frame
        x, y = cv2.perspectiveTransform(np.array([[[2.5, ground_y]]], np.float64), to_picture)[0, 0]
        steps.append(y)
        found = Detections(np.array([[x - 10, y - 20, x + 10, y]], np.float32), np.ones(1, np.float32),
                           np.array([2]), {2: "car"}, np.array([9]))
        visits += watch.update(found, t, occupancy(watch.zones, found))
        speeds.append(watch.speeds.get(9))
    pixels = np.abs(np.diff(steps[:34]))
    assert pixels.max() > 1.8 * pixels.min(), "the perspective should matter here"
    measured = [s for s in speeds if s is not None]
    assert speeds[:12] == [None] * 12 and len(measured) >= 20  # said once followed for half a second
    assert all(abs(s - 54.0) < 0.5 for s in measured), measured
    left, _ = [v for v in visits if v.event == "leave"]
    assert left.speed is not None and abs(left.speed - 54.0) < 0.5 and left.to_record()["speed"] == round(left.speed, 1)
    # Over the road's limit of 50 km/h once (the first time it is measured), not the school's 60.
    (speeding,) = [v for v in visits if v.event == "speeding"]
    assert (speeding.zone, speeding.id) == ("road", 9) and speeding.speed is not None and speeding.speed > 50
    assert [v.event for v in visits if v.zone == "road"].index("speeding") == 1  # after entering, before leaving


@pytest.mark.timeout(60)
def test_a_tracked_stream_gives_each_objects_speed_in_its_records_events_and_labels() -> None:
    """The walker of the counting tests goes down 8 px a frame at 25 fps; a zone 32 x 16 m drawn
    as 320 x 160 px (0.1 m a pixel) measures it at 8 x 25 x 0.1 = 20 m/s, 72 km/h."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=26", SourceKind.SYNTHETIC))
    zone = Zone("floor", ((0.0, 60.0), (320.0, 60.0), (320.0, 220.0), (0.0, 220.0)), anchor="bottom",
                size=(32.0, 16.0), speed_limit=60.0)
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(zone,))], _WalkerDetector,
                        tracker=tracker_settings("bytetrack"))
    results: list[Result] = sorted(pipeline.results(), key=lambda r: r.frame.seq)
    measured = [(r.frame.seq, found["speed"]) for r in results for found in r.to_record()["detections"]
                if "speed" in found]
    assert len(measured) >= 6 and all(abs(speed - 72.0) < 1.0 for _, speed in measured), measured
    assert all(dict(r.speeds) == {1: pytest.approx(72.0, abs=1.0)} for r in results if r.frame.seq in dict(measured))
    left = [e for r in results for e in frame_events(r) if e["event"] == "leave"]
    assert len(left) == 1 and abs(left[0]["speed"] - 72.0) < 1.0, left
    speeding = [e for r in results for e in frame_events(r) if e["event"] == "speeding"]
    assert len(speeding) == 1 and speeding[0]["zone"] == "floor" and abs(speeding[0]["speed"] - 72.0) < 1.0
    from streamyolo.annotation import BoxAnnotator

    labelled = BoxAnnotator().annotate(results[20].frame.image, results[20].detections, stream="hall",
                                       speeds=dict(results[20].speeds))
    plain = BoxAnnotator().annotate(results[20].frame.image, results[20].detections, stream="hall")
    assert not np.array_equal(labelled, plain), "the label should say the speed"


def test_a_zone_with_a_size_needs_4_points_and_a_tracker() -> None:
    road = {"points": [[0, 0], [9, 0], [9, 9], [0, 9]], "size": [3.5, 12]}
    config = build_config({"tracker": "bytetrack", "streams": [{"source": "a.mp4", "zones": {"road": road}}]})
    zones = config.streams[0].zones
    assert zones is not None and zones["road"].size == (3.5, 12.0)
    with pytest.raises(ConfigError, match=r"a zone with a size \(metres\) needs 4 points, its corners on the ground; "
                                          r"it has 3"):
        build_config({"tracker": "bytetrack", "streams": [{"source": "a.mp4", "zones": {
            "road": {**road, "points": [[0, 0], [9, 0], [9, 9]]}}}]})
    with pytest.raises(ConfigError, match=r"a zone's speed_limit needs its size \(metres\)"):
        build_config({"tracker": "bytetrack", "streams": [{"source": "a.mp4", "zones": {
            "road": {"points": road["points"], "speed_limit": 50}}}]})
    with pytest.raises(ConfigError, match=r"config keys 'streams\.0\.zones' and 'tracker': a zone measures the speed"):
        build_config({"streams": [{"source": "a.mp4", "zones": {"road": road}}]})
    from streamyolo.pipeline.check import describe

    plan = Pipeline.from_config({"tracker": "bytetrack", "display": False, "streams": [
        {"source": "synthetic:scene", "zones": {"road": road, "kerb": road["points"]},
         "masks": {"drive": {"points": road["points"], "outside": True}}}]}).plan
    assert plan is not None and "zones road (speeds), kerb; masks drive (outside)" in describe(plan)
