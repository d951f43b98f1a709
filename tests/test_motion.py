"""``motion``: the model runs only on frames where something moved; still frames take the last
detections."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from streamyolo.buffering import Overflow, RingBuffer
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Frame, FrameMeta, Image, Mask
from streamyolo.inference.motion import MotionGate, MotionSettings, shrink
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.health import StreamHealth
from streamyolo.sinks.jsonl import JsonlSink
from streamyolo.sinks.metrics import metrics_text
from streamyolo.sources import SourceKind, SourceSpec, open_source
from streamyolo.workers.inference import Channel, InferenceWorker
from tests.helpers import CountingDetector, cut_clip, read_jsonl


@pytest.fixture(scope="module")
def street(people_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A still street (its first picture held 1 s, with a camera's sensor noise), then 1 s of
    people walking, 640 pixels wide, 30 fps."""
    return cut_clip(people_video, tmp_path_factory.mktemp("motion") / "street.mp4", 30, 640, hold=30, noise=3.0)


def _pictures(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_a_still_street_with_a_cameras_noise_is_still_and_a_walker_is_not(street: Path) -> None:
    pictures = [shrink(picture) for picture in _pictures(street)]
    gate: MotionGate[str] = MotionGate(MotionSettings())
    assert gate.still(pictures[0], 0.0) is None  # nothing to compare with: the model runs
    gate.ran(pictures[0], 0.0, "first")
    assert all(gate.still(picture, index / 30) == "first" for index, picture in enumerate(pictures[1:30], 1))
    # Someone 24 x 48 pixels (of 640 x 360) steps in.
    walker = _walker(_pictures(street)[1])
    assert gate.still(shrink(walker), 1.0) is None
    # The street's own people walking: the model runs within a few frames of them moving; at
    # the latest, never more than every 5 s; and as soon as the picture changes size or the
    # stream's clock goes back (a file that loops).
    gate.ran(pictures[30], 1.0, "walking")
    assert any(gate.still(picture, 1.0) is None for picture in pictures[31:40]), "the people walking never woke it"
    assert gate.still(pictures[30], 5.9) == "walking"
    assert gate.still(pictures[30], 6.0) is None and gate.still(pictures[30], 0.5) is None
    assert gate.still(shrink(np.zeros((90, 160, 3), np.uint8)), 1.1) is None


def test_what_moves_where_a_mask_ignores_everything_does_not_wake_the_model(street: Path) -> None:
    """A tree that waves (its leaves different in every frame) inside a mask with no classes,
    or outside a mask that ignores the outside, is no motion; inside a mask of some classes
    only, it is (the other classes may be there)."""
    rng = np.random.default_rng(1)
    pictures = _pictures(street)[:10]
    for picture in pictures:
        picture[40:140, 420:520] = rng.integers(0, 255, (100, 100, 3), np.uint8)  # the tree, 100 x 100 pixels
    tree = ((410.0, 30.0), (530.0, 30.0), (530.0, 150.0), (410.0, 150.0))
    street_only = ((0.0, 160.0), (640.0, 160.0), (640.0, 360.0), (0.0, 360.0))
    for masks, woken in [((), True), ((Mask("tree", tree),), False), ((Mask("tree", tree, frozenset({2})),), True),
                         ((Mask("street", street_only, outside=True),), False)]:
        gate: MotionGate[str] = MotionGate(MotionSettings(), masks)
        gate.ran(gate.small(pictures[0]), 0.0, "first")
        assert [gate.still(gate.small(p), 0.1) is None for p in pictures[1:]] == [woken] * 9, masks
    # The walker, outside the tree's mask, still wakes it.
    gate = MotionGate(MotionSettings(), [Mask("tree", tree)])
    gate.ran(gate.small(pictures[0]), 0.0, "first")
    assert gate.still(gate.small(_walker(pictures[1])), 0.1) is None


def _walker(picture: Image) -> Image:
    """``picture`` with someone 24 x 48 pixels standing in it."""
    picture = picture.copy()
    picture[200:248, 300:324] = 255 - picture[200:248, 300:324]
    return picture


def test_a_still_frame_takes_the_detections_of_the_frame_the_model_runs_on_in_the_same_batch(street: Path) -> None:
    """A worker's batch may hold several frames of a stream: each compares with the last one
    before it that the model runs on, as if they came one by one."""
    still, walker = _pictures(street)[:2], _walker(_pictures(street)[1])
    channel = Channel("street", RingBuffer(8, Overflow.BLOCK), False, StreamHealth("street"), motion=MotionSettings())
    worker = InferenceWorker("w0", CountingDetector, [channel], JsonlSink(Path("unused")), threading.Event())
    images = [still[0], still[1], walker, walker, still[1]]
    batch = [(channel, Frame(FrameMeta("street", seq, 0.0, pts=seq / 30), image)) for seq, image in enumerate(images)]
    CountingDetector.ran = 0
    detections, stills, pictures = worker._detect(CountingDetector(), batch)
    assert stills == [False, True, False, True, False] and CountingDetector.ran == 3
    assert pictures == [1, 0, 1, 0, 1]
    assert [round(float(found.conf[0]) * 1000) for found in detections] == [1, 1, 2, 2, 3]
    detections, stills, _ = worker._detect(CountingDetector(), batch[4:])  # the next batch compares with the last run
    assert stills == [True] and round(float(detections[0].conf[0]) * 1000) == 3


def test_still_frames_take_the_last_detections_and_every_output_says_so(street: Path, tmp_path: Path) -> None:
    """The model runs on the first frame, again every ``refresh`` seconds of the still street,
    and on the frames where people walk; every frame still has a result (lossless), the
    still ones with the detections of the last frame the model ran on: the JSONL says
    ``still``, the summary counts them."""
    source = open_source(SourceSpec("street", str(street), SourceKind.FILE))
    setup = StreamSetup("street", source, Overflow.BLOCK, motion=MotionSettings(refresh=0.5))
    CountingDetector.ran = 0
    summary = Pipeline([setup], CountingDetector, sinks=[JsonlSink(tmp_path / "det.jsonl")]).run()
    lines = read_jsonl(tmp_path / "det.jsonl")
    assert [line["seq"] for line in lines] == list(range(60))
    ran = [line["seq"] for line in lines if not line.get("still")]
    assert ran[:2] == [0, 15] and all(seq >= 30 for seq in ran[2:]), f"the still street woke the model: {ran}"
    assert len(ran) > 4, f"the people walking woke the model only at {ran}"
    assert CountingDetector.ran == len(ran)
    for line in lines:
        last = max(r for r in ran if r <= line["seq"])
        assert line["detections"][0]["conf"] == pytest.approx((ran.index(last) + 1) / 1000), line["seq"]
    report = summary.streams["street"]
    assert (report.processed, report.still) == (60, 60 - len(ran))
    status = {"running": False, "streams": [{"name": "street", "state": report.state, "still": report.still}]}
    assert f'streamyolo_stream_still_frames_total{{stream="street"}} {60 - len(ran)}' in metrics_text(status)
    assert summary.to_dict()["streams"]["street"]["still"] == 60 - len(ran)
    assert (f"motion of street: the model ran on {len(ran)} of 60 frames ({60 - len(ran)} still: "
            f"{(60 - len(ran)) / 60:.0%})") in summary.table()


@pytest.mark.timeout(120)
def test_the_real_model_gives_the_same_detections_where_it_ran_and_the_last_ones_where_nothing_moved(
        street: Path, shared_model: Path) -> None:
    """Two streams of the same street in one run, one with ``motion``: where the model ran on
    both, the same detections; where nothing moved, the ones it gave last; and the held still
    street spared the model 29 of its 30 frames. With a process worker: the gate is in the
    parent's worker thread (the test above has thread workers), only the passes it lets through
    go to the child."""
    cfg = build_config({"streams": [{"name": "every", "source": str(street)},
                                    {"name": "moved", "source": str(street), "motion": True}],
                        "model": str(shared_model), "workers": 1, "worker_mode": "process", "display": False,
                        "status_interval": 0})
    results: dict[str, list[tuple[bool, list[tuple[int, tuple[float, ...]]]]]] = {"every": [], "moved": []}
    with Pipeline.from_config(cfg) as pipeline:
        for result in pipeline.results():
            found = result.detections
            boxes = sorted((int(c), tuple(round(float(v), 1) for v in box))
                           for c, box in zip(found.cls, found.xyxy, strict=True))
            results[result.stream].append((result.still, boxes))
    every, moved = results["every"], results["moved"]
    assert len(every) == len(moved) == 60 and not any(still for still, _ in every)
    ran = [seq for seq, (still, _) in enumerate(moved) if not still]
    assert ran[0] == 0 and all(seq >= 30 for seq in ran[1:]) and len(ran) > 4, ran
    assert every[0][1], "the street has people in its first picture"
    for seq, (_, boxes) in enumerate(moved):
        last = max(r for r in ran if r <= seq)
        assert boxes == every[last][1], f"frame {seq}: not the detections of frame {last}, the last the model ran on"


def test_motion_settings_are_checked_and_a_stream_may_turn_the_runs_off() -> None:
    cfg = build_config({"streams": ["synthetic:scene", {"source": "synthetic:scene?seed=2", "motion": False},
                                    {"source": "synthetic:scene?seed=3", "motion": {"refresh": "1m", "area": 0.01}}],
                        "motion": True})
    assert [cfg.motion_of(s) and (cfg.motion_of(s).refresh, cfg.motion_of(s).area)  # type: ignore[union-attr]
            for s in cfg.streams] == [(5.0, 0.0005), None, (60.0, 0.01)]
    with pytest.raises(ConfigError, match=r"streams\.0\.motion\.refresh"):
        build_config({"streams": [{"source": "synthetic:scene", "motion": {"refresh": 0}}]})
    with pytest.raises(ConfigError, match=r"streams\.0\.motion\.threshold"):
        build_config({"streams": [{"source": "synthetic:scene", "motion": {"threshold": 300}}]})


def test_the_plan_says_which_streams_run_the_model_on_motion(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from streamyolo import cli

    config = tmp_path / "cams.yaml"
    config.write_text(yaml.safe_dump({"streams": [{"name": "yard", "source": "synthetic:scene"},
                                                  {"name": "hall", "source": "synthetic:scene?seed=2",
                                                   "motion": {"refresh": "1m"}},
                                                  {"name": "road", "source": "synthetic:scene?seed=3",
                                                   "motion": False}]}))
    assert cli.main(["check", str(config), "--motion"]) == 0
    plan = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "model on motion (at least every 5s)" in plan["yard"], plan
    assert "model on motion (at least every 1m)" in plan["hall"] and "motion" not in plan["road"], plan
