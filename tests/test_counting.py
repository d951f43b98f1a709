"""Counting lines (``lines:`` on a tracked stream) and zones (``zones:``): which crossings
count, what a zone holds, and the numbers everywhere a user reads them (summary, JSONL,
status, metrics, the overlay)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from streamyolo.annotation import BoxAnnotator
from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Detections, Image, Mask, Result
from streamyolo.inference.counting import (
    CountingLine,
    LineCounter,
    Zone,
    ZoneWatch,
    occupancy,
    unmasked,
    zone_tallies,
)
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks import JsonlSink, VideoRecorder
from streamyolo.sinks.web import WebViewer
from streamyolo.sources import SourceKind, SourceSpec, open_source, read_stamp
from tests.helpers import decode, read_jsonl
from tests.test_cli import streamyolo

DOOR = CountingLine("door", (0.0, 100.0), (200.0, 100.0))  # across the picture, drawn left to right


def _boxes(*objects: tuple[int, float, float, int]) -> Detections:
    """Tracked boxes of 20 x 20 px: (track id, centre x, centre y, class)."""
    xyxy = np.array([[x - 10, y - 10, x + 10, y + 10] for _, x, y, _ in objects], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(len(objects), 0.9, np.float32), np.array([c for *_, c in objects], np.int64),
                      {0: "person", 2: "car", 7: "truck"}, np.array([i for i, *_ in objects], np.int64))


def test_a_line_counts_each_track_once_each_way_within_its_length() -> None:
    counter = LineCounter([DOOR])
    path = {  # track id: the centre's y in frames 1..6, x fixed
        1: (80, 95, 105, 120, 130, 140),  # down across the door: in, at frame 3
        2: (130, 110, 90, 70, 60, 50),  # up across it: out, at frame 3
        3: (95, 105, 95, 105, 95, 105),  # jitters on it: in once (frame 2), out once (frame 3)
    }
    found = []
    for frame in range(6):
        objects = [(track, 50.0, float(ys[frame]), 0) for track, ys in path.items()]
        objects.append((4, 250.0, 80.0 + 10 * frame, 2))  # crosses the door's line beyond its end: nothing
        found.append([(c.id, c.direction, c.name) for c in counter.update(_boxes(*objects))])
    assert found == [[], [(3, "in", "person")], [(1, "in", "person"), (2, "out", "person"), (3, "out", "person")],
                     [], [], []]
    assert counter.totals == {"door": {"in": 2, "out": 2}}
    assert [(t.name, t.into, t.out) for t in counter.tallies()] == [("door", 2, 2)]
    # A crossing says where the object was in the frame it crossed (for the event, the JSONL).
    crossing = LineCounter([DOOR])
    crossing.update(_boxes((9, 50.0, 95.0, 0)))
    (crossed,) = crossing.update(_boxes((9, 52.0, 106.0, 0)))
    assert crossed.to_record() == {"line": "door", "direction": "in", "id": 9, "cls": 0, "name": "person",
                                   "xyxy": [42.0, 96.0, 62.0, 116.0]}
    # Untracked detections (no ids) cannot be followed: nothing counts.
    assert counter.update(Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))) == []


def test_a_line_with_classes_counts_only_objects_of_those() -> None:
    gate = CountingLine("gate", DOOR.a, DOOR.b, classes=frozenset({2}))  # cars only, on the door's line
    counter = LineCounter([DOOR, gate])
    crossings = [counter.update(_boxes((1, 50.0, y, 0), (2, 150.0, y, 2))) for y in (90.0, 110.0)]
    assert [(c.line, c.id, c.name) for c in crossings[1]] == [("door", 1, "person"), ("door", 2, "car"),
                                                               ("gate", 2, "car")]
    assert counter.totals == {"door": {"in": 2, "out": 0}, "gate": {"in": 1, "out": 0}}
    config = build_config({"streams": [{"source": "a.mp4", "lines": {
        "door": [[0, 1], [9, 1]], "gate": {"points": [[0, 5], [9, 5]], "classes": [2, 7]}}}], "tracker": "bytetrack"})
    lines = config.streams[0].lines
    assert lines is not None and (lines["door"].points, lines["door"].classes) == (((0, 1), (9, 1)), None)
    assert (lines["gate"].points, lines["gate"].classes) == (((0, 5), (9, 5)), [2, 7])
    with pytest.raises(ConfigError, match=r"config key 'streams.0.lines.gate.classes': class\(es\) \[2\] are not "
                                          r"among the stream's classes \[0\]: the line would never count them"):
        build_config({"streams": [{"source": "a.mp4", "classes": [0], "lines": {
            "gate": {"points": [[0, 5], [9, 5]], "classes": [2]}}}], "tracker": "bytetrack"})
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.lines\.gate\.points': Field required"):
        build_config({"streams": [{"source": "a.mp4", "lines": {"gate": {"classes": [2]}}}], "tracker": "bytetrack"})


def test_a_crossing_has_the_class_its_track_was_read_as_most_often() -> None:
    """The model reads a car as a truck (7) in the one frame it crosses, and a truck as a car
    (2): a cars-only line counts the car, not the truck, and each event says what it was."""
    gate = CountingLine("gate", DOOR.a, DOOR.b, classes=frozenset({2}))
    counter = LineCounter([DOOR, gate])
    for y in (60.0, 70.0, 80.0, 90.0):
        assert counter.update(_boxes((1, 50.0, y, 2), (2, 150.0, y, 7))) == []
    crossings = counter.update(_boxes((1, 50.0, 110.0, 7), (2, 150.0, 110.0, 2)))
    assert [(c.line, c.id, c.cls, c.name) for c in crossings] == [("door", 1, 2, "car"), ("gate", 1, 2, "car"),
                                                                  ("door", 2, 7, "truck")]


def test_a_track_not_seen_for_long_is_forgotten() -> None:
    counter = LineCounter([DOOR], forget_after=150)
    counter.update(_boxes((1, 50.0, 80.0, 0)))
    for _ in range(199):
        counter.update(_boxes())
    assert counter.update(_boxes((1, 50.0, 120.0, 0))) == [], "a track last seen 200 frames ago starts afresh"
    assert [c.direction for c in counter.update(_boxes((1, 50.0, 80.0, 0)))] == ["out"]


def test_a_zone_holds_the_objects_whose_centre_is_inside_it() -> None:
    # An L-shaped (concave) zone: the notch at the top right is outside it.
    zone = Zone("lobby", ((0.0, 0.0), (100.0, 0.0), (100.0, 50.0), (200.0, 50.0), (200.0, 100.0), (0.0, 100.0)))
    found = _boxes((1, 50.0, 50.0, 0), (2, 150.0, 75.0, 0), (3, 150.0, 25.0, 0), (4, 90.0, 10.0, 2),
                   (5, 250.0, 50.0, 2))
    (tally,) = zone_tallies([zone], found, occupancy([zone], found))
    assert (tally.name, dict(tally.inside)) == ("lobby", {"person": 2, "car": 1})  # 3 is in the notch, 5 beyond
    assert zone_tallies([zone], _boxes(), occupancy([zone], _boxes()))[0].inside == {}


def _tall(track: int, x: float, feet: float) -> Detections:
    """A tracked person 100 px tall whose feet are at ``feet``."""
    return Detections(np.array([[x - 15, feet - 100, x + 15, feet]], np.float32), np.full(1, 0.9, np.float32),
                      np.zeros(1, np.int64), {0: "person"}, np.array([track], np.int64))


def test_zones_lines_and_masks_drawn_on_the_ground_look_at_where_objects_stand() -> None:
    """With ``anchor: bottom`` a zone, line or mask looks at the middle of each box's bottom
    edge (the feet), not its centre (the belly, 50 px above): a person walking down the
    picture onto a mat drawn on the floor enters it, and crosses the threshold line, when their
    feet do."""
    mat = ((0.0, 300.0), (200.0, 300.0), (200.0, 400.0), (0.0, 400.0))
    zones = [Zone("mat", mat, anchor="bottom"), Zone("mat-centre", mat)]
    threshold = [CountingLine("threshold", (0.0, 300.0), (200.0, 300.0), anchor="bottom"),
                 CountingLine("threshold-centre", (0.0, 300.0), (200.0, 300.0))]
    counter, watch = LineCounter(threshold), ZoneWatch(zones)
    events = []
    for frame, feet in enumerate((280.0, 320.0, 340.0)):  # centre at 230, 270, 290: above the mat throughout
        found = _tall(1, 100.0, feet)
        held = occupancy(zones, found)
        events.append(([(c.line, c.direction) for c in counter.update(found)],
                       [(v.zone, v.event) for v in watch.update(found, float(frame), held)],
                       [z.name for z, h in zip(zones, held, strict=True) if h.any()]))
    assert events == [([], [], []),
                      ([("threshold", "in")], [("mat", "enter")], ["mat"]),
                      ([], [], ["mat"])]
    found = _tall(1, 100.0, 390.0)  # on: now the centre (340) crosses and enters too
    assert [(c.line, c.direction) for c in counter.update(found)] == [("threshold-centre", "in")]
    assert [(v.zone, v.event) for v in watch.update(found, 3.0, occupancy(zones, found))] == [("mat-centre", "enter")]
    found = _tall(2, 100.0, 340.0)  # feet on the mat, centre above it
    assert len(unmasked([Mask("rug", mat, anchor="bottom")], found)) == 0
    assert len(unmasked([Mask("rug", mat)], found)) == 1


@pytest.mark.parametrize(("data", "message"), [
    ({"streams": [{"source": "a", "zones": {"lobby": {"points": [[0, 0], [10, 0], [0, 9]], "anchor": "feet"}}}]},
     "config key 'streams.0.zones.lobby.anchor'"),
    ({"streams": [{"source": "a", "zones": {"lobby": [[0, 0], [10, 0], [0, 0]]}}]},
     "config key 'streams.0.zones': zone 'lobby' needs 3 different points or more"),
    ({"streams": [{"source": "a", "lines": {"door": [[0, 100], [200, 100]]}}]},
     "config keys 'streams.0.lines' and 'tracker': counting lines follow track ids"),
    ({"streams": [{"source": "a", "lines": {"door": [[0, 100], [0, 100]]}}], "tracker": "bytetrack"},
     "config key 'streams.0.lines': line 'door' needs two different points"),
    ({"streams": [{"source": "a", "lines": {"door": [[0, 100]]}}], "tracker": "bytetrack"},
     "config key 'streams.0.lines.door"),
    ({"streams": [{"source": "a", "lines": {"a door": [[0, 1], [2, 3]]}}], "tracker": "bytetrack"},
     "config key 'streams.0.lines"),
])
def test_bad_lines_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_config(data)


class _WalkerDetector:
    """One person walking down the picture, 8 px a frame from y = 20: the box is a function of
    the frame index stamped in the frame, so every run sees the same walk."""

    names: ClassVar[dict[int, str]] = {0: "person"}

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image in images:
            stamp = read_stamp(image)
            y = 20.0 + 8 * (stamp[1] if stamp is not None else 0)
            out.append(Detections(np.array([[140, y - 20, 180, y + 20]], np.float32), np.array([0.9], np.float32),
                                  np.array([0], np.int64), self.names))
        return out

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_a_tracked_stream_counts_its_lines_in_the_summary_jsonl_status_metrics_and_video(tmp_path: Path) -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    lines = (CountingLine("door", (0.0, 120.0), (320.0, 120.0)), CountingLine("exit", (0.0, 60.0), (100.0, 60.0)))
    zones = (Zone("lobby", ((100.0, 100.0), (220.0, 100.0), (220.0, 200.0), (100.0, 200.0))),)
    web = WebViewer("127.0.0.1:0")
    jsonl, rec = tmp_path / "det.jsonl", tmp_path / "rec"
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=lines, zones=zones)], _WalkerDetector,
                        tracker=tracker_settings("bytetrack"), sinks=[JsonlSink(jsonl), VideoRecorder(rec)], web=web)
    pipeline.start()
    try:
        pipeline.wait(30)
        status = web.status()
        from streamyolo.sinks.metrics import metrics_text

        metrics = metrics_text(status)
    finally:
        summary = pipeline.join()
    # The centre passes y = 120 between frames 12 (y 116) and 13 (y 124): "in" (down the
    # picture across a line drawn left to right); "exit" is beside its path: 0.
    counts = {"door": {"in": {"person": 1}, "out": {}}, "exit": {"in": {}, "out": {}}}
    assert summary.streams["hall"].counts == counts
    assert summary.to_dict()["streams"]["hall"]["counts"] == counts
    assert "counted hall: door: 1 in (1 person), 0 out; exit: 0 in, 0 out" in summary.table()
    records = read_jsonl(jsonl)
    crossed = [(r["seq"], r["crossings"]) for r in records if r["crossings"]]
    assert len(records) == 30 and all("crossings" in r for r in records)
    assert [(seq, [(c["line"], c["direction"], c["name"]) for c in cs]) for seq, cs in crossed] == [
        (13, [("door", "in", "person")])]
    assert isinstance(crossed[0][1][0]["id"], int)
    # The walker's centre (y = 20 + 8 x frame) is in the lobby (100 < y < 200) in frames 11-22.
    assert [r["seq"] for r in records if r["zones"]["lobby"]] == list(range(11, 23))
    assert all(r["zones"]["lobby"] in ({}, {"person": 1}) for r in records)
    assert summary.to_dict()["streams"]["hall"]["zone_peaks"] == {"lobby": {"person": 1}}
    assert "zones of hall, most at once: lobby: 1 person" in summary.table()
    # It stayed from frame 11 to 22 (0.44 s at 25 fps), and left: how long, in the summary.
    assert summary.to_dict()["streams"]["hall"]["zone_stays"] == {
        "lobby": {"person": {"left": 1, "mean": 0.44, "longest": 0.44}}}
    assert "zones of hall, stayed: lobby: 1 person 0.4 s on average (longest 0.4 s)" in summary.table()
    assert next(s for s in status["streams"] if s["name"] == "hall")["zones"] == {"lobby": {}}  # walked out
    assert next(s for s in status["streams"] if s["name"] == "hall")["counts"] == counts
    assert ('streamyolo_line_crossings_total{stream="hall",line="door",direction="in",class="person"} 1'
            in metrics.splitlines())
    assert "# TYPE streamyolo_zone_objects gauge" in metrics.splitlines()
    # The overlay draws the door line (white, full width at y = 120) and the lobby's outline
    # (yellow, BGR 0, 215, 255: its right edge at x = 220) on the recording.
    images, _ = decode(rec / "hall.mp4")
    row = images[-1][120].astype(int)
    assert (row[200:300] > 200).all(), "the counting line is not on the recording"
    column = images[-1][130:190, 220].astype(int)
    assert (column[:, 0] < 80).all() and (column[:, 1] > 160).all() and (column[:, 2] > 200).all(), "no zone drawn"
    assert json.dumps(records[0])  # plain JSON


@pytest.mark.timeout(30)
def test_zones_need_no_tracker() -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=20", SourceKind.SYNTHETIC))
    zone = Zone("top", ((0.0, 0.0), (320.0, 0.0), (320.0, 100.0), (0.0, 100.0)))
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(zone,))], _WalkerDetector)
    held = [r.to_record()["zones"]["top"] for r in pipeline.results()]
    assert held == [{"person": 1}] * 10 + [{}] * 10  # the centre leaves at y = 100: frame 10


@pytest.mark.timeout(30)
def test_a_mask_hides_what_is_inside_it_from_tracking_counting_and_the_outputs() -> None:
    """The walker's centre is in the mask from y = 100 to 180 (frames 10 to 19): there it is
    not detected and not counted in the zone below y = 120; the same walk on a stream without
    the mask shows all of it. Its track outlives the gap, so it crosses the door (y = 150)
    when seen past it, as a person going behind a hedge across a line is counted."""
    mask = Mask("hedge", ((0.0, 100.0), (320.0, 100.0), (320.0, 180.0), (0.0, 180.0)))
    door = CountingLine("door", (0.0, 150.0), (320.0, 150.0))
    lower = Zone("lower", ((0.0, 120.0), (320.0, 120.0), (320.0, 240.0), (0.0, 240.0)))
    setups = [StreamSetup(name, open_source(SourceSpec(name, "synthetic:?size=320x240&fps=25&frames=26",
                                                       SourceKind.SYNTHETIC)), Overflow.BLOCK,
                          lines=(door,), zones=(lower,), masks=masks)
              for name, masks in (("masked", (mask,)), ("open", ()), ("watched", (replace(mask, outside=True),)))]
    pipeline = Pipeline(setups, _WalkerDetector, tracker=tracker_settings("bytetrack"))
    results: dict[str, list[Result]] = {"masked": [], "open": [], "watched": []}
    for result in pipeline.results():
        results[result.stream].append(result)
    assert [len(r.detections) for r in results["open"]] == [1] * 26
    assert [len(r.detections) for r in results["masked"]] == [1] * 10 + [0] * 10 + [1] * 6  # y = 20 + 8 i
    # A mask with outside: true ignores all but its area: the walker only while in the band (from
    # its second frame there: a track that starts after a stream's first frame is confirmed by a
    # second sighting, as Ultralytics' ByteTrack does).
    assert [len(r.detections) for r in results["watched"]] == [0] * 11 + [1] * 9 + [0] * 6
    assert [(r.frame.meta.seq, c.id) for r in results["open"] for c in r.crossings] == [(17, 1)]
    assert [(r.frame.meta.seq, c.id) for r in results["masked"] for c in r.crossings] == [(20, 1)]
    zoned = [r.to_record()["zones"]["lower"] for r in results["masked"]]
    assert zoned == [{}] * 20 + [{"person": 1}] * 6
    assert [r.to_record()["zones"]["lower"] for r in results["open"]][13] == {"person": 1}
    assert results["masked"][0].masks == (mask,) and results["open"][0].masks == ()


def test_a_mask_with_classes_ignores_only_those_and_is_drawn() -> None:
    mask = Mask("parking", ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)), frozenset({2}))
    found = _boxes((1, 50.0, 50.0, 0), (2, 50.0, 50.0, 2), (3, 150.0, 50.0, 2))
    assert unmasked([mask], found).ids.tolist() == [1, 3]  # type: ignore[union-attr]
    image = BoxAnnotator().annotate(np.zeros((200, 200, 3), np.uint8), Detections.empty(), stream="cam",
                                    masks=[mask])
    edge = image[60, 95:106].astype(int)  # across the mask's right edge, x = 100
    assert edge.max() > 100 and (edge[:, 0] == edge[:, 2]).all(), "the mask's edge is outlined in grey"
    config = build_config({"streams": [{"source": "a.mp4", "masks": {
        "tree": [[0, 0], [9, 0], [9, 9]], "parking": {"points": [[0, 0], [9, 0], [9, 9]], "classes": [2]},
        "drive": {"points": [[0, 0], [9, 0], [9, 9]], "outside": True}}}]})
    masks = config.streams[0].masks
    assert masks is not None and (masks["tree"].classes, masks["parking"].classes) == (None, [2])
    assert (masks["tree"].outside, masks["drive"].outside) == (False, True)
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.masks': mask 'tree' needs 3 different points"):
        build_config({"streams": [{"source": "a.mp4", "masks": {"tree": [[0, 0], [9, 0], [0, 0]]}}]})
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.masks\.parking\.classes': class\(es\) \[2\] "
                                          r"are not among the stream's classes \[0\]: the mask would never see them"):
        build_config({"streams": [{"source": "a.mp4", "classes": [0], "masks": {
            "parking": {"points": [[0, 0], [9, 0], [9, 9]], "classes": [2]}}}]})


@pytest.mark.timeout(120)
def test_the_command_line_masks_the_left_half_of_one_of_two_streams(tmp_path: Path) -> None:
    """As a user runs it, with the bundled model on a synthetic street, twice in one run: the
    masked stream has no detection centred in its left half, the other one does. Both have a
    zone along the ground, the masked one by where objects stand (``anchor: bottom``): each
    holds, frame by frame, the boxes whose centre, or bottom edge, is in it."""
    street = "synthetic:scene?seed=3&size=416x240&fps=25&frames=40"
    config = tmp_path / "street.yaml"
    ground = [[0, 112], [416, 112], [416, 240], [0, 240]]  # car: centre y 110 above it, wheels (123) in it
    config.write_text(json.dumps({"model": "demo", "streams": [
        {"name": "masked", "source": street, "masks": {"left": [[0, 0], [208, 0], [208, 240], [0, 240]]},
         "zones": {"ground": {"points": ground, "anchor": "bottom"}}},
        {"name": "open", "source": street, "zones": {"ground": ground}}]}))
    jsonl = tmp_path / "det.jsonl"
    done = streamyolo("run", str(config), "--jsonl", str(jsonl), "--no-display")
    assert done.returncode == 0, done.stderr
    xs: dict[str, list[float]] = {"masked": [], "open": []}
    for line in read_jsonl(jsonl):
        xs[line["stream"]] += [(d["xyxy"][0] + d["xyxy"][2]) / 2 for d in line["detections"]]
    assert any(x < 208 for x in xs["open"]) and any(x >= 208 for x in xs["open"])
    right = [x for x in xs["open"] if x >= 208]  # two workers' batches may differ in the last decimals
    assert xs["masked"] == pytest.approx(right, abs=1), "the masked stream: the open one's right half"
    held = {"masked": 0, "open": 0}
    for line in read_jsonl(jsonl):
        anchor = 3 if line["stream"] == "masked" else None  # y2, or the centre
        ys = [d["xyxy"][3] if anchor else (d["xyxy"][1] + d["xyxy"][3]) / 2 for d in line["detections"]]
        assert sum(line["zones"]["ground"].values()) == sum(112 < y < 240 for y in ys), line
        held[line["stream"]] += sum(line["zones"]["ground"].values())
    assert held["masked"] > 0 and held["open"] > 0


@pytest.mark.timeout(30)
def test_streams_without_lines_have_no_crossings_key_and_no_counts() -> None:
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=5", SourceKind.SYNTHETIC))
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK)], _WalkerDetector,
                        tracker=tracker_settings("bytetrack"))
    results = list(pipeline.results())
    assert all("crossings" not in r.to_record() and "zones" not in r.to_record() for r in results)
    assert not {"counts", "zone_peaks"} & set(pipeline.summary().to_dict()["streams"]["hall"])


class _QueueDetector:
    """People standing in a queue, as many as the frame's index says: one, then three from
    frame 10 (two for a moment at frame 20: one hidden behind another), one again from 30."""

    names: ClassVar[dict[int, str]] = {0: "person"}

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image in images:
            stamp = read_stamp(image)
            seq = stamp[1] if stamp is not None else 0
            people = 3 if 10 <= seq < 30 and seq != 20 else 2 if seq == 20 else 1
            xyxy = np.array([[20 + 60 * n, 100, 60 + 60 * n, 200] for n in range(people)], np.float32)
            out.append(Detections(xyxy, np.full(people, 0.9, np.float32), np.zeros(people, np.int64), self.names))
        return out

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_a_zone_with_a_crowd_says_when_it_holds_that_many_for_long_enough_and_when_not(tmp_path: Path) -> None:
    """``crowd: {objects: 3, after: 0.2s}`` on a queue, without a tracker: a ``crowd`` event when
    it has held three people for 0.2 s (5 frames at 25 fps), none for one hidden a moment, and
    another when it has held fewer for 0.2 s, with how long it was crowded; each frame's zone
    says whether it is crowded, Home Assistant's ``queue crowded`` sensor too."""
    import jinja2

    from streamyolo.sinks.events import EventSink
    from streamyolo.sinks.history import describe
    from streamyolo.sinks.mqtt import StatePublisher, StreamEntities, discovery_messages

    class Results:
        def __init__(self) -> None:
            self.crowded: dict[int, bool | None] = {}
            self.states: list[dict[str, object]] = []

        def open(self) -> None: ...

        def close(self) -> None: ...

        def write(self, result: Result) -> None:
            self.crowded[result.frame.meta.seq] = result.zones[0].crowded
            if result.frame.meta.seq in (25, 45):  # what Home Assistant is sent then
                StatePublisher(self).update(result)  # type: ignore[arg-type]

        def send_state(self, stream: str, kind: str, name: str, state: dict[str, object]) -> None:
            if kind == "zone":
                self.states.append(state)

    source = open_source(SourceSpec("shop", "synthetic:?size=320x240&fps=25&frames=50", SourceKind.SYNTHETIC))
    queue = Zone("queue", ((0.0, 0.0), (320.0, 0.0), (320.0, 240.0), (0.0, 240.0)), crowd=(3, 0.2))
    path, seen = tmp_path / "events.jsonl", Results()
    Pipeline([StreamSetup("shop", source, Overflow.BLOCK, zones=(queue,))], _QueueDetector,
             sinks=[EventSink(path), seen]).run()
    crowds = [e for e in read_jsonl(path) if e["event"] == "crowd"]
    assert [(e["seq"], e["state"], e["count"], e["limit"], e.get("seconds"), e["inside"]) for e in crowds] == [
        (15, "started", 3, 3, None, {"person": 3}), (35, "ended", 1, 3, 0.8, {"person": 1})]
    assert [describe(e).split("  ", 1)[1] for e in crowds] == [
        "shop: queue crowded: 3 person (3 or more)", "shop: queue no longer crowded after 0.8 s"]
    assert [seq for seq, crowded in sorted(seen.crowded.items()) if crowded] == list(range(15, 35))
    assert seen.states == [{"total": 3, "person": 3, "crowded": True}, {"total": 1, "person": 1, "crowded": False}]
    configs = {topic.split("/")[-2]: json.loads(config) for topic, config in discovery_messages(
        "site", "homeassistant", [StreamEntities("shop", ("queue",), crowds=("queue",))])}
    sensor = configs["shop_zone_queue_crowded"]
    assert sensor["device_class"] == "problem"
    assert [jinja2.Environment().from_string(sensor["value_template"]).render(value_json=state)
            for state in seen.states] == ["ON", "OFF"]
    # In a config: a number of objects (after 3 s), or with its time; never none.
    config = build_config({"streams": [{"source": "a.mp4", "zones": {
        "queue": {"points": [[0, 0], [9, 0], [9, 9]], "crowd": 10},
        "room": {"points": [[0, 0], [9, 0], [9, 9]], "crowd": {"objects": 25, "after": "1m"}}}}]})
    zones = config.streams[0].zones or {}
    assert [(z.crowd.objects, z.crowd.after) for z in zones.values() if z.crowd] == [(10, 3.0), (25, 60.0)]
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.zones\.queue\.crowd\.objects': Input should be "
                                          r"greater than or equal to 1"):
        build_config({"streams": [{"source": "a.mp4", "zones": {"queue": {"points": [[0, 0], [9, 0], [9, 9]],
                                                                          "crowd": 0}}}]})
    # Its schedule: outside its windows a zone holds nothing for its crowd (no tracker needed).
    from streamyolo.frames import ZoneTally
    from streamyolo.inference.counting import CrowdWatch
    from streamyolo.schedule import Schedule

    build_config({"streams": [{"source": "a.mp4", "zones": {"queue": {"points": [[0, 0], [9, 0], [9, 9]], "crowd": 2,
                                                                      "schedule": "mon-fri 09:00-18:00"}}}]})
    watch = CrowdWatch([replace(queue, crowd=(2, 0.0), schedule=Schedule(["mon-sun"]))])
    assert [(c.state, c.count) for c in watch.update((ZoneTally("queue", (), {"person": 2}, True),), 0.0)[0]] == [
        ("started", 2)]
    assert [(c.state, c.count) for c in watch.update((ZoneTally("queue", (), {"person": 2}, False),), 1.0)[0]] == [
        ("ended", 0)]


@pytest.mark.timeout(60)
def test_a_crowd_told_of_is_told_over_when_its_stream_ends(tmp_path: Path) -> None:
    """A stream that ends while its queue is crowded: a ``crowd`` ``ended`` before its ``ended``
    state (``"stream_state": "ended"``), so whoever was told of the crowd is told it is over."""
    from streamyolo.sinks.events import EventSink
    from streamyolo.sinks.history import describe

    source = open_source(SourceSpec("shop", "synthetic:?size=320x240&fps=25&frames=28", SourceKind.SYNTHETIC))
    queue = Zone("queue", ((0.0, 0.0), (320.0, 0.0), (320.0, 240.0), (0.0, 240.0)), crowd=(3, 0.2))
    path = tmp_path / "events.jsonl"
    Pipeline([StreamSetup("shop", source, Overflow.BLOCK, zones=(queue,))], _QueueDetector,
             sinks=[EventSink(path)]).run()
    events = read_jsonl(path)
    assert [(e["event"], e.get("state")) for e in events] == [
        ("state", "streaming"), ("crowd", "started"), ("crowd", "ended"), ("state", "ended")]
    began, over, ended = events[1:]
    assert (over["zone"], over["count"], over["limit"], over["inside"], over["stream_state"]) == (
        "queue", 0, 3, {}, "ended")
    assert over["time"] == ended["time"] and over["seconds"] == round(ended["time"] - began["time"], 3)
    assert describe(over).endswith(f"shop: queue no longer crowded after {over['seconds']:.1f} s (the stream ended)")
