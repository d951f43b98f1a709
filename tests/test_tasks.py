"""Segmentation, pose and oriented-box models: what their task adds to each box (an outline,
keypoints, a rotated box) goes through the pipeline as ``predict()`` and ``track()`` give
it, and out to the video and the JSONL log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamyolo import cli
from streamyolo.annotation import BoxAnnotator
from streamyolo.errors import ConfigError, ModelNotFoundError
from streamyolo.frames import Detections, Result
from streamyolo.inference.models import resolve_model
from streamyolo.inference.offline import import_ultralytics
from streamyolo.pipeline import Pipeline
from tests.helpers import (
    assert_same_detections,
    cut_clip,
    decode,
    make_random_model,
    outline_overlap,
    read_jsonl,
    read_stamp,
)
from tests.test_cli import streamyolo

ARCHITECTURES = {
    # architecture: (class-logit scale, bias, conf) giving a few to a few dozen boxes a frame
    "yolo26n-seg": (40.0, -3.0, 0.25),
    "yolo11n-seg": (40.0, 3.0, 0.25),
    "yolo26n-pose": (0.01, 0.0, 0.6),
    "yolo11n-pose": (40.0, 0.0, 0.6),
    "yolo26n-obb": (40.0, 0.0, 0.65),
    "yolo11n-obb": (40.0, 0.0, 0.7),
}
TASK = {"seg": "segment", "pose": "pose", "obb": "obb"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("task-models")
    return {name: make_random_model(folder / f"{name}-random.pt", architecture=f"{name}.yaml", scale=scale,
                                    bias=bias)
            for name, (scale, bias, _) in ARCHITECTURES.items()}


@pytest.fixture(scope="module")
def streams(clips: list[Path], people_video: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real street and a synthetic scene, as H.264 files of 12 frames."""
    people = cut_clip(people_video, tmp_path_factory.mktemp("people") / "people.mp4", frames=12, width=640)
    return [people, clips[1]]


def _run(streams: list[Path], model: Path, conf: float, **more: Any) -> list[Result]:
    config = {"streams": [str(p) for p in streams], "model": str(model), "workers": 2, "device": "cpu",
              "imgsz": 320, "conf": conf, "batch": 4, "display": False, **more}
    with Pipeline.from_config(config) as pipeline:
        return list(pipeline.results())


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("name", "worker_mode", "pytorch_cpu", "lanes"), [
    ("yolo26n-seg", "thread", "auto", 1),
    ("yolo11n-seg", "process", "torch", 1),
    ("yolo26n-pose", "thread", "torch", 1),
    ("yolo11n-pose", "process", "auto", 1),
    ("yolo26n-obb", "thread", "auto", 2),
    ("yolo11n-obb", "process", "torch", 1),
])
def test_each_task_gives_what_predict_gives(streams: list[Path], models: dict[str, Path], name: str,
                                             worker_mode: str, pytorch_cpu: str, lanes: int, tmp_path: Path) -> None:
    conf = ARCHITECTURES[name][2]
    results = _run(streams, models[name], conf, worker_mode=worker_mode, pytorch_cpu=pytorch_cpu, lanes=lanes,
                   model_cache=str(tmp_path))
    assert sorted((r.stream, r.frame.seq) for r in results) == sorted(
        (p.stem, i) for p in streams for i in range(12))
    yolo = import_ultralytics().YOLO(str(models[name]))
    task = TASK[name.partition("-")[2]]
    assert yolo.task == task
    found = 0
    for result in results:
        if result.stream != "people":
            stamp = read_stamp(result.frame.image)
            assert stamp is not None and stamp[1] == result.frame.seq
        reference = yolo.predict(result.frame.image, imgsz=320, conf=conf, device="cpu", verbose=False)[0]
        assert_same_detections(result.detections, reference, conf, f"{name} {result.stream}#{result.frame.seq}")
        assert result.detections.task == task or (task == "segment" and not len(result.detections))
        found += len(result.detections)
    assert found >= 12, f"too few objects ({found}) for the comparison to mean anything"
    if pytorch_cpu == "auto":  # the network was converted to OpenVINO (its two outputs, for a segmentation model)
        assert len(list((tmp_path / "pytorch").glob("*.xml"))) == 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["yolo26n-seg", "yolo26n-pose", "yolo26n-obb"])
def test_tracked_objects_keep_their_outline_keypoints_or_rotated_box_as_track_gives_them(
        streams: list[Path], models: dict[str, Path], name: str) -> None:
    """A tracked stream's objects are those ``model.track()`` gives, with their ids, their
    tracker boxes and the outline, keypoints or rotated box of the detection each matched."""
    conf = ARCHITECTURES[name][2]
    results = _run(streams[:1], models[name], conf, tracker="bytetrack", pytorch_cpu="torch")
    assert [r.frame.seq for r in results] == list(range(12))
    yolo = import_ultralytics().YOLO(str(models[name]))
    tracked = 0
    for result in results:
        ours = result.detections
        reference = yolo.track(result.frame.image, imgsz=320, conf=conf, device="cpu", persist=True,
                               tracker="bytetrack.yaml", verbose=False)[0]
        boxes = reference.obb if reference.obb is not None else reference.boxes
        where = f"{name} #{result.frame.seq}"
        if boxes.id is None:  # nothing tracked in this frame
            assert len(ours) == 0, where
            continue
        order = np.argsort(ours.ids)
        theirs = np.argsort(boxes.id.numpy().astype(int))
        assert ours.ids is not None and ours.ids[order].tolist() == boxes.id.numpy().astype(int)[theirs].tolist()
        assert np.abs(ours.xyxy[order] - boxes.xyxy.numpy()[theirs]).max() <= 1.0, where
        if ours.xywhr is not None:
            assert np.abs(ours.xywhr[order] - reference.obb.xywhr.numpy()[theirs]).max() <= 1.0, where
        if ours.keypoints is not None:
            assert np.abs(ours.keypoints[order] - reference.keypoints.data.numpy()[theirs]).max() <= 1.0, where
        if ours.segments is not None:
            for i, j in zip(order, theirs, strict=True):
                assert outline_overlap(ours.segments[i], reference.masks.xy[j], reference.orig_shape) >= 0.9, where
        tracked += len(ours)
    assert tracked >= 12, f"too few tracked objects ({tracked})"


def _person(x: float, y: float) -> np.ndarray:
    """17 COCO keypoints of a person standing at (x, y), 10 px apart, the left ear hidden."""
    rows = [(0, 0), (-1, -1), (1, -1), (-2, 0), (2, 0), (-3, 3), (3, 3), (-4, 6), (4, 6), (-5, 9), (5, 9),
            (-2, 10), (2, 10), (-2, 15), (2, 15), (-2, 20), (2, 20)]
    points = np.array([[x + dx * 10, y + dy * 10, 0.9] for dx, dy in rows], np.float32)
    points[3, 2] = 0.1
    return points


def test_drawn_frames_show_outlines_skeletons_and_rotated_boxes() -> None:
    image = np.zeros((400, 600, 3), np.uint8)
    one = (np.ones(1, np.float32), np.zeros(1, np.int64))
    square = np.array([[50, 50], [150, 50], [150, 150], [50, 150]], np.float32)
    outlined = Detections(np.array([[50, 50, 150, 150]], np.float32), *one, segments=(square,))
    drawn = BoxAnnotator(overlay=False).annotate(image, outlined, stream="cam")
    inside = drawn[100, 100].astype(int)  # the fill, half the class colour over black
    assert inside.sum() > 0 and np.allclose(inside, 0.45 * np.array((56, 56, 255)), atol=3)
    assert drawn[250, 250].sum() == 0  # nothing outside the outline

    person = Detections(np.array([[200, 100, 300, 320]], np.float32), *one,
                        keypoints=_person(250, 110)[None])
    drawn = BoxAnnotator(overlay=False).annotate(image, person, stream="cam")
    nose, left_ear, right_ear = (250, 110), (230, 110), (270, 110)
    assert drawn[nose[1], nose[0]].sum() > 0 and drawn[right_ear[1], right_ear[0]].sum() > 0
    assert drawn[left_ear[1], left_ear[0]].sum() == 0  # hidden: not drawn
    hips = (250, 210)  # the middle of the limb between the hips (points 12 and 13)
    assert tuple(int(v) for v in drawn[hips[1], hips[0]]) == (255, 51, 255)

    diamond = Detections(np.array([[400, 100, 500, 200]], np.float32), *one,
                         xywhr=np.array([[450, 150, 70.71, 70.71, np.pi / 4]], np.float32))
    drawn = BoxAnnotator(overlay=False).annotate(image, diamond, stream="cam")
    assert drawn[100:104, 448:453].sum() > 0  # its top corner, on the upright box's top edge
    assert drawn[104:114, 400:410].sum() == 0  # not the upright box's corner (the label sits above it)
    assert drawn[150, 450].sum() == 0  # hollow


def test_records_carry_what_the_task_adds() -> None:
    one = (np.array([[0, 0, 10, 10]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64), {0: "thing"})
    assert Detections(*one, segments=(np.array([[0, 0], [10, 0], [10, 10.04]], np.float32),)).to_records()[0][
        "segment"] == [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]
    assert Detections(*one, keypoints=np.array([[[1.234, 5.678, 0.91234]]], np.float32)).to_records()[0][
        "keypoints"] == [[1.23, 5.68, 0.912]]
    assert Detections(*one, xywhr=np.array([[5, 5, 10, 4, 0.5]], np.float32)).to_records()[0]["xywhr"] == [
        5.0, 5.0, 10.0, 4.0, 0.5]
    with pytest.raises(ValueError, match="keypoints"):
        Detections(*one, keypoints=np.zeros((2, 17, 3), np.float32))


@pytest.mark.timeout(240)
def test_a_segmentation_model_from_the_cli_logs_outlines_and_records_them(
        streams: list[Path], models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # in this process, as a program calls ``main`` (the imports done)
    assert cli.main(["run", "--model", str(models["yolo26n-seg"]), "--source", str(streams[0]), "--imgsz", "320",
                     "--tracker", "bytetrack", "--pytorch-cpu", "torch", "--jsonl", str(tmp_path / "out.jsonl"),
                     "--record", str(tmp_path / "rec"), "--no-display"]) == 0
    records = read_jsonl(tmp_path / "out.jsonl")
    assert [r["seq"] for r in records] == list(range(12))
    objects = [d for r in records for d in r["detections"]]
    assert len(objects) >= 12 and all(len(d["segment"]) >= 3 and "id" in d for d in objects)
    for d in objects:  # each outline lies around its box
        outline = np.array(d["segment"])
        x1, y1, x2, y2 = d["xyxy"]
        assert x1 - 8 <= outline[:, 0].min() and outline[:, 0].max() <= x2 + 8, d["xyxy"]
        assert y1 - 8 <= outline[:, 1].min() and outline[:, 1].max() <= y2 + 8, d["xyxy"]
    frames, info = decode(tmp_path / "rec" / "people.mp4")
    assert len(frames) == 12 and info["codec"] == "h264"


def test_a_classification_model_is_refused_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``check --load-model`` (in this process, as a program calls ``main``) names the model and
    what it is, exit code 2."""
    model = tmp_path / "labels-cls.pt"
    import_ultralytics().YOLO("yolo26n-cls.yaml").save(str(model))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "--load-model", "--model", str(model), "--source", "synthetic:scene"]) == 2
    assert (f"model {str(model)!r} is a 'classify' model; streamyolo runs models that find objects: "
            "detect, segment, pose, obb") in caplog.messages
    # Built from YAML, a classifier on a ResNet backbone would fetch torchvision's weights first.
    assert cli.main(["check", "--load-model", "--model", "yolo11-cls-resnet18.yaml", "--source",
                     "synthetic:scene"]) == 2
    assert ("model 'yolo11-cls-resnet18.yaml' is a 'classify' model; streamyolo runs models that find objects: "
            "detect, segment, pose, obb") in caplog.messages


@pytest.mark.timeout(120)
def test_check_tells_the_models_task(models: dict[str, Path]) -> None:
    """``streamyolo check --load-model`` says what kind of model it loaded (through the lanes
    wrapper a worker with replicas builds, which hides the model itself)."""
    from streamyolo.inference import DetectSettings, UltralyticsFactory
    from streamyolo.inference.lanes import LanedFactory
    from streamyolo.pipeline.check import try_model

    for name, task in (("yolo26n-pose", "pose"), ("yolo11n-seg", "segment"), ("yolo26n-obb", "obb")):
        factory = UltralyticsFactory(str(models[name]), DetectSettings(imgsz=96), pytorch_cpu="torch")
        loaded = try_model(LanedFactory(factory, 2), [])
        assert (loaded.task, loaded.lines, len(loaded.names)) == (task, [], 80), name


@pytest.mark.timeout(240)
def test_streams_with_models_of_their_own_get_each_models_detections(
        streams: list[Path], models: dict[str, Path], clips: list[Path], random_model: Path) -> None:
    """A pose model on one stream beside the run's detection model on three others, one of
    them at an input size of its own, each model and size on workers of its own (here in
    child processes): every stream's detections are what its own model's ``predict()`` gives,
    at the stream's own threshold and size."""
    pose = models["yolo26n-pose"]
    config = {"streams": [{"name": "small", "source": str(clips[1]), "imgsz": 224},
                          {"source": str(streams[0]), "model": str(pose), "conf": 0.6},
                          {"name": "busy", "source": str(clips[1])}, {"source": str(clips[2])}],
              "model": str(random_model), "workers": 4, "worker_mode": "process", "pytorch_cpu": "torch",
              "device": "cpu", "imgsz": 320, "batch": 4, "display": False}
    with Pipeline.from_config(config) as pipeline:
        plan = pipeline.plan
        assert plan is not None
        assert [(g.path, g.imgsz, [plan.streams[i].spec.name for i in g.streams], g.workers, g.first)
                for g in plan.groups] == [(str(random_model), 224, ["small"], 1, 0), (str(pose), 320, ["people"], 1, 1),
                                          (str(random_model), 320, ["busy", "clip2"], 2, 2)]
        results = list(pipeline.results())
    assert sorted((r.stream, r.frame.seq) for r in results) == sorted(
        (name, i) for name in ("small", "people", "busy", "clip2") for i in range(12))
    yolo = import_ultralytics().YOLO
    detector = yolo(str(random_model))
    references = {"people": (yolo(str(pose)), 0.6, 320), "small": (detector, 0.25, 224),
                  "busy": (detector, 0.25, 320), "clip2": (detector, 0.25, 320)}
    found = dict.fromkeys(references, 0)
    for result in results:
        model, conf, imgsz = references[result.stream]
        reference = model.predict(result.frame.image, imgsz=imgsz, conf=conf, device="cpu", verbose=False)[0]
        assert_same_detections(result.detections, reference, conf, f"{result.stream}#{result.frame.seq}")
        assert (result.detections.keypoints is not None) == (result.stream == "people") or not len(result.detections)
        found[result.stream] += len(result.detections)
    assert min(found["people"], found["small"], found["busy"]) >= 12, f"too few objects to compare: {found}"


@pytest.mark.timeout(180)
def test_check_plans_and_loads_each_streams_model(clips: list[Path], random_model: Path, tmp_path: Path) -> None:
    """``check`` lists each model with its workers and streams, loads each and runs it on its
    own streams' first frames; a class a stream's own model lacks, or a stream's model that
    is not there, is refused naming the stream's key (exit 2)."""
    import yaml

    def config(**door: Any) -> Path:
        path = tmp_path / "cameras.yaml"
        path.write_text(yaml.safe_dump({
            "model": str(random_model), "imgsz": 160, "device": "cpu", "workers": 2, "pytorch_cpu": "torch",
            "streams": [{"name": "door", "source": str(clips[0]), "model": "demo", **door},
                        {"name": "street", "source": str(clips[1])}, {"name": "yard", "source": str(clips[2])}]}))
        return path

    done = streamyolo("check", str(config(classes=[0, 2])), "--connect", "--load-model", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    demo = resolve_model("demo")
    assert f"model {demo} on cpu: 1 thread worker(s) for door\n" in done.stdout
    assert f"model {random_model} on cpu: 1 thread worker(s) for street, yard\n" in done.stdout
    loaded = done.stdout[done.stdout.index("model demo loaded in"):]
    assert loaded.index("  door: ") < loaded.index(f"model {random_model} loaded in") < loaded.index("  street: ") \
        < loaded.index("  yard: "), done.stdout
    assert loaded.count(" in ") - loaded.count("loaded in") == 3, done.stdout  # one line per stream's first frame

    # What the run refuses, as check does (exit 2 for both: tests/test_cli.py).
    with pytest.raises(ConfigError) as refused:
        Pipeline.from_config(config(classes=[0, 7])).start()
    assert str(refused.value) == ("config key 'streams.0.classes': class 7 is not one of the 3 classes of model "
                                  "'demo' (0 person, 1 car, 2 ball)")
    with pytest.raises(ModelNotFoundError, match=r"^stream 'door': model not found: 'nowhere\.pt'"):
        Pipeline.from_config(config(model="nowhere.pt"))
