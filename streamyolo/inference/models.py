"""Ultralytics models as :class:`~streamyolo.inference.detector.Detector` s.

The thread-safe pattern from Ultralytics' own guide: never share a ``YOLO`` object between
threads; give each thread a *factory* and let it build its own model inside itself
(:class:`UltralyticsFactory`). Where memory is tighter than time, :class:`SharedFactory`
builds one model and hands every worker the same instance behind one lock (what
``ultralytics.utils.ThreadingLocked`` does): inference is then serialised.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import re
import sys
import threading
import traceback
import zipfile
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from streamyolo.errors import ModelError, ModelNotFoundError
from streamyolo.frames import Detections, Image, upright
from streamyolo.inference.detector import Detector, DetectorFactory
from streamyolo.inference.offline import held_ultralytics_warnings, import_ultralytics, ultralytics_file
from streamyolo.inference.runners import OpenVINORunner, Runner, is_openvino, make_runner, openvino_backend_setup

log = logging.getLogger(__name__)

TASKS = ("detect", "segment", "pose", "obb")
"""The Ultralytics tasks streamyolo runs: those that find objects, each with a box (and an
outline, keypoints or a rotated box). Not ``classify`` (no objects: one label per picture)."""

YAML_SUFFIXES = (".yaml", ".yml")

DEMO_MODEL = "demo"
"""The name of the bundled demo detector (people, cars and balls of the synthetic camera scenes)."""
DEMO_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "demo_model.pt"
"""Where the bundled demo detector's weights live inside the installed package."""


@dataclass(frozen=True, slots=True)
class DetectSettings:
    """Prediction options, with Ultralytics' names and defaults."""

    conf: float = 0.25
    iou: float = 0.7
    imgsz: int | tuple[int, int] = 640
    classes: tuple[int, ...] | None = None
    half: bool = False
    max_det: int = 300
    agnostic_nms: bool = False

    def predict_kwargs(self, device: str) -> dict[str, Any]:
        """The same options as keyword arguments for ``YOLO.predict``."""
        kwargs: dict[str, Any] = {
            "conf": self.conf,
            "iou": self.iou,
            "imgsz": self.imgsz,
            "classes": list(self.classes) if self.classes is not None else None,
            "max_det": self.max_det,
            "agnostic_nms": self.agnostic_nms,
            "device": device,
            "verbose": False,
        }
        if self.half:
            # Ultralytics 8.4 renamed `half` to `quantize=16`; older releases only know `half`.
            kwargs.update({"quantize": 16} if _knows_quantize() else {"half": True})
        return kwargs


def _knows_quantize() -> bool:
    import_ultralytics()
    import ultralytics.cfg

    return "quantize" in getattr(ultralytics.cfg, "DEFAULT_CFG_DICT", {})


def _probe(imgsz: int | tuple[int, int]) -> Image:
    """A small grey frame (64 rows, the model's width) for a model's first forward pass."""
    width = imgsz if isinstance(imgsz, int) else imgsz[1]
    return np.full((64, width, 3), 114, dtype=np.uint8)


def resolve_model(model: str | os.PathLike[str]) -> str:
    """Check, before any thread starts, that ``model`` can be loaded without the network.

    Accepts ``"demo"`` (the detector bundled with streamyolo, trained on its synthetic camera
    scenes), a local weights file or export folder (``.pt``, ``.onnx``, ``*_openvino_model/``,
    ``.engine`` …) or a YAML architecture (local, or one that ships with Ultralytics such as
    ``yolo26n.yaml``, which builds random weights). Returns the string to pass to ``YOLO()``.

    >>> resolve_model("demo").endswith("demo_model.pt")
    True
    """
    text = os.fspath(model)
    if text == DEMO_MODEL:
        if not DEMO_MODEL_PATH.is_file():
            raise ModelNotFoundError(f"bundled demo model missing: {str(DEMO_MODEL_PATH)!r} (reinstall streamyolo)")
        return str(DEMO_MODEL_PATH)
    if "://" in text:
        raise ModelError(f"model {text!r}: URLs are not supported; streamyolo never downloads weights")
    path = Path(text).expanduser()
    if path.exists():
        if not os.access(path, os.R_OK):
            raise ModelError(f"model {text!r} is not readable")
        if path.is_dir() and not any(path.iterdir()):
            raise ModelError(f"model folder {text!r} is empty")
        if path.is_dir():
            _check_folder(text, path)
        elif path.suffix.lower() in YAML_SUFFIXES:
            _check_yaml(text, path)
        elif path.suffix.lower() == ".pt":
            _check_checkpoint(text, path)
        return str(path)
    if path.suffix.lower() in YAML_SUFFIXES and _is_packaged_yaml(path.name):
        return path.name
    raise ModelNotFoundError(
        f"model not found: {text!r} (streamyolo never downloads weights; give the path of a local model file)"
    )


EXPORT_FILE_SUFFIXES = (".xml", ".onnx", ".pb", ".tflite", ".param", ".pdiparams", ".pdmodel", ".pte", ".rknn",
                        ".mnn", ".engine", ".mlmodel", ".hef", ".dxnn", ".om", ".axm", ".xmodel")
"""The files Ultralytics' folder exports hold (OpenVINO's ``.xml``, NCNN's ``.param``, …): a
folder with none of them, at its top or one level down, is no export."""


def _check_folder(text: str, path: Path) -> None:
    """Refuse a folder that holds no exported model, before Ultralytics guesses at it (it
    would warn that it cannot tell the task and fail at the first inference). Folders whose
    name is an export's (``*_openvino_model``, ``*.mlpackage`` …) are left to Ultralytics."""
    name = path.name.lower()
    if name.endswith(("_model", ".mlpackage", ".aimodel")):
        return
    inside = [*path.iterdir(), *(child for folder in path.iterdir() if folder.is_dir()
                                 for child in _listing(folder))]
    if not any(file.suffix.lower() in EXPORT_FILE_SUFFIXES for file in inside):
        raise ModelError(f"model {text!r}: a folder that is not an exported model (no "
                         f"{'/'.join(EXPORT_FILE_SUFFIXES[:3])}/… model file inside)")


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:  # a subfolder we may not read: no export there
        return []


def _check_checkpoint(text: str, path: Path) -> None:
    """Refuse a ``.pt`` file that is neither of the two things ``torch.save`` writes: a zip
    archive, or (before torch 1.6) a pickle, which starts with the protocol byte 0x80."""
    try:
        with path.open("rb") as file:
            start = file.read(1)
    except OSError as exc:
        raise ModelError(f"model {text!r} cannot be read: {exc.strerror or exc}") from exc
    if start != b"\x80" and not _starts_as_zip(path):
        what = "it is empty" if not start else "it is neither a zip archive nor a pickle, as torch.save writes"
        raise ModelError(f"model {text!r}: not a PyTorch model file (cannot be unpickled: {what})")


def _starts_as_zip(path: Path) -> bool:
    """True if ``path`` begins as a zip archive does (a truncated one too: torch says what is
    wrong with it better than a test of the whole archive)."""
    with path.open("rb") as file:
        return file.read(4) == b"PK\x03\x04" or zipfile.is_zipfile(file)


def _check_yaml(text: str, path: Path) -> dict[str, Any]:
    """A local model YAML, read; refused if it is not YAML, or not an architecture (no
    ``backbone`` and ``head``, such as a streamyolo config given as ``--model``)."""
    try:  # (bytes that are not UTF-8, in a comment say: Ultralytics reads past them too)
        architecture = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise ModelError(f"model {text!r} cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"model {text!r}: not valid YAML: {yaml_problem(exc)}") from exc
    if not isinstance(architecture, dict) or not {"backbone", "head"} <= architecture.keys():
        raise ModelError(f"model {text!r}: not a model YAML (no backbone/head)")
    return architecture


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A PyYAML error in one line, with where it is (1-based line and column), instead of
    PyYAML's several lines with a caret.

    >>> try:
    ...     yaml.safe_load("a: [1")
    ... except yaml.YAMLError as exc:
    ...     print(yaml_problem(exc))
    line 1, column 6: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence from line 1, column 4)
    """
    if not isinstance(exc, yaml.MarkedYAMLError):
        return first_line(exc)
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    said = " ".join((exc.problem or exc.context or type(exc).__name__).split())
    if exc.context and exc.problem:
        context = exc.context_mark
        since = f" from line {context.line + 1}, column {context.column + 1}" if context is not None else ""
        said += f" ({' '.join(exc.context.split())}{since})"
    return where + said


def _is_packaged_yaml(name: str) -> bool:
    """True if Ultralytics ships an architecture for ``name`` (e.g. yolo26n.yaml → yolo26.yaml)."""
    root = ultralytics_file("cfg", "models")
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + Path(name).suffix
    return any(root.rglob(name)) or any(root.rglob(unscaled))


GPU_DEVICE_FILES = ("nvidia*", "nvhost-*", "nvmap", "dxg", "kfd")
"""What a Linux box with a GPU torch could use has in ``/dev``: NVIDIA's driver, a Jetson's,
WSL2's, AMD's (ROCm)."""


def no_gpu_here() -> bool:
    """True when plainly no GPU is there to use: Linux without a GPU driver's device files.
    Then ``auto`` is the CPU without importing torch (seconds on a small box, for a
    ``check`` that does not load the model); anywhere else torch is asked."""
    return (sys.platform.startswith("linux") and "torch" not in sys.modules
            and not any(any(Path("/dev").glob(name)) for name in GPU_DEVICE_FILES))


def resolve_device(device: str, worker_index: int = 0) -> str:
    """``auto`` → a CUDA device when one exists, else ``cpu``. ``cuda`` without an index
    spreads workers across the GPUs round-robin; ``cuda:N`` pins them all to GPU N."""
    if device == "cpu" or (device == "auto" and no_gpu_here()):
        return "cpu"
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ModelError("device 'cuda' requested but no CUDA device is available")
        return f"cuda:{worker_index % torch.cuda.device_count()}"
    if device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} requested but no CUDA device is available")
        index = int(device.partition(":")[2])
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    return device


class UltralyticsDetector:
    """One Ultralytics model, driven batch by batch without ``predict()``'s per-call setup.

    ``warmup()`` has Ultralytics set up its predictor with our options, as ``predict()``
    does, and runs a first small frame; ``detect()`` then runs the leanest runner for the
    model's format (see
    :mod:`streamyolo.inference.runners`: same letterbox and input arithmetic as the
    predictor) and the same NMS and box scaling that ``DetectionPredictor.postprocess``
    applies, so results equal ``model.predict(image)`` frame by frame. A batch of mixed
    shapes runs one shape at a time (Ultralytics letterboxes mixed shapes differently).
    """

    def __init__(self, model: Any, settings: DetectSettings, device: str, model_path: str = "",
                 threads: int | None = None, cache_dir: str | None = None, pytorch_cpu: str = "auto") -> None:
        if model.task not in TASKS:
            raise _no_objects(model.ckpt_path or model.model_name, model.task)
        self._task: str = model.task
        self._model = model
        self._settings = settings
        self._device = device
        self._model_path = model_path
        self._threads = threads
        self._cache_dir = cache_dir
        self._pytorch_cpu = pytorch_cpu
        self._runner: Runner | None = None
        self._predictor: Any = None
        self._names: dict[int, str] = {}
        self._cuda_stream: Any = None

    @property
    def names(self) -> Mapping[int, str]:
        return self._names

    @property
    def task(self) -> str:
        """The model's Ultralytics task: ``detect``, ``segment``, ``pose`` or ``obb``."""
        return self._task

    @property
    def device(self) -> str:
        return self._device

    def warmup(self) -> None:
        import torch

        probe = _probe(self._settings.imgsz)
        threads = torch.get_num_threads()
        kwargs = self._settings.predict_kwargs(self._device)
        # Ultralytics' backend would compile an OpenVINO model that make_runner() replaces: deferred.
        backend = openvino_backend_setup(self._cache_dir) if is_openvino(self._model_path) else nullcontext()
        with backend:
            self._setup_predictor(probe, kwargs)
        if not self._device.startswith("cuda"):
            # Setting up a predictor, Ultralytics' select_device() sets torch's process-wide
            # intra-op threads to its own NUM_THREADS (cores - 1, at most 8): 1 on 2 cores,
            # 7 per model on 8. Put back this worker's share of the cores.
            torch.set_num_threads(self._threads or threads)
        self._predictor = self._model.predictor
        self._names = {int(k): str(v) for k, v in self._predictor.model.names.items()}
        self._runner = make_runner(self._predictor, self._model_path, self._threads, self._cache_dir,
                                   self._pytorch_cpu)
        if isinstance(self._runner, OpenVINORunner):
            # torch only post-processes OpenVINO's output here (NMS on one small tensor). On
            # more than one intra-op thread every such op starts an OpenMP team, whose idle
            # thread then spins (libgomp) on a core that OpenVINO and the decoders need.
            torch.set_num_threads(1)
        if self._device.startswith("cuda"):
            # One CUDA stream per worker, so workers sharing a GPU overlap their copies and kernels.
            stream_type: Any = torch.cuda.Stream
            self._cuda_stream = stream_type(device=self._device)
        # The first forward pass, on a small image: a model that cannot run fails here, at start.
        self.detect([probe])

    def _setup_predictor(self, probe: Image, kwargs: dict[str, Any]) -> None:
        """Have Ultralytics set up its predictor with our options, as ``predict()`` does
        before its first batch, without running it: with ``stream=True`` ``predict()``
        builds the predictor and returns a generator, closed here unstarted. The input size
        is then set as that first batch would set it (``setup_source``)."""
        unstarted = self._model.predict(probe, stream=True, **kwargs)
        unstarted.close()
        self._model.predictor.setup_source(probe)

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        if not images:
            return []
        if self._predictor is None:
            self.warmup()
        import torch

        if self._cuda_stream is not None:
            with torch.cuda.stream(self._cuda_stream):
                return self._by_shape(images)
        return self._by_shape(images)

    def _by_shape(self, images: Sequence[Image]) -> list[Detections]:
        """One forward pass per shape of ``images``; the results in the images' order."""
        shapes = {image.shape for image in images}
        if len(shapes) == 1:
            return self._detect(images)
        out: dict[int, Detections] = {}
        for shape in shapes:
            indices = [i for i, image in enumerate(images) if image.shape == shape]
            out.update(zip(indices, self._detect([images[i] for i in indices]), strict=True))
        return [out[i] for i in range(len(images))]

    def _detect(self, images: Sequence[Image]) -> list[Detections]:
        import torch
        from ultralytics.utils import nms

        predictor = self._predictor
        args = predictor.args
        assert self._runner is not None
        with torch.inference_mode():
            raw, input_hw = self._runner.run(images)
            protos = None
            if self._task == "segment":  # as SegmentationPredictor.postprocess
                protos = raw[0][1] if isinstance(raw[0], tuple) else raw[1]
                raw = raw[0]
            kept = nms.non_max_suppression(
                raw,
                args.conf,
                args.iou,
                args.classes,
                args.agnostic_nms,
                max_det=args.max_det,
                nc=0 if self._task == "detect" else len(self._names),
                end2end=getattr(predictor.model, "end2end", False),
                rotated=self._task == "obb",
            )
            return [self._found(pred, input_hw, image.shape, None if protos is None else protos[i])
                    for i, (pred, image) in enumerate(zip(kept, images, strict=True))]

    def _found(self, pred: Any, input_hw: tuple[int, int], shape: tuple[int, ...], proto: Any) -> Detections:
        """One frame's kept predictions as :class:`Detections` in the frame's pixels, with the
        arithmetic of the task's ``construct_result`` in Ultralytics (and of ``Results``'
        ``masks.xy``, ``keypoints.data`` and ``obb.xyxy``)."""
        import torch
        from ultralytics.utils import ops

        segments: tuple[npt.NDArray[np.float32], ...] | None = None
        keypoints: npt.NDArray[np.float32] | None = None
        xywhr: npt.NDArray[np.float32] | None = None
        frame_hw = (int(shape[0]), int(shape[1]))
        if self._task == "obb":
            rotated = torch.cat([pred[:, :4], pred[:, -1:]], dim=-1)
            scaled: Any = ops.scale_boxes(input_hw, rotated[:, :4], frame_hw, xywh=True)
            rotated[:, :4] = scaled
            xywhr = np.ascontiguousarray(rotated.float().cpu().numpy(), dtype=np.float32)
            boxes: Any = torch.from_numpy(upright(xywhr)).to(pred.device)  # beside pred's columns (CUDA too)
        else:
            if self._task == "segment":  # the masks from the boxes in the input's pixels: before they are scaled
                segments = ()
                if len(pred):
                    masks = ops.process_mask(proto, pred[:, 6:], pred[:, :4], input_hw, upsample=True)  # N×H×W
                    keep = masks.amax((-2, -1)) > 0  # only predictions with a mask, as Ultralytics
                    if not keep.all():
                        pred, masks = pred[keep], masks[keep]
                    segments = tuple(
                        np.asarray(ops.scale_coords(masks.shape[1:], outline, shape, normalize=False), np.float32)
                        for outline in ops.masks2segments(masks))
            boxes = ops.scale_boxes(input_hw, pred[:, :4], frame_hw)
            if self._task == "pose":
                points = pred[:, 6:].view(pred.shape[0], *self._predictor.model.kpt_shape)
                keypoints = ops.scale_coords(input_hw, points, shape).float().cpu().numpy()
        array = torch.cat((boxes, pred[:, 4:6]), dim=1).float().cpu().numpy()
        return Detections(
            xyxy=np.ascontiguousarray(array[:, :4], dtype=np.float32),
            conf=np.ascontiguousarray(array[:, 4], dtype=np.float32),
            cls=array[:, 5].astype(np.int64),
            names=self._names,
            segments=segments,
            keypoints=keypoints,
            xywhr=xywhr,
        )

    def close(self) -> None:
        self._runner = None
        self._predictor = None
        self._cuda_stream = None


def load_yolo(model: str, device: str) -> Any:
    """``YOLO(model)`` with the offline switches set and errors made one line (a ``.pt``
    file by the absolute path :func:`local_weights` checks). Ultralytics' warnings while it
    loads become one line each in our log, or give way to the error when it fails."""
    with held_ultralytics_warnings() as held:
        try:
            yolo = _load_yolo(model)
        except ModelError as exc:
            log.debug("model %r: Ultralytics warned %s before: %s", model, held, exc)
            raise
    for warning in held:
        log.warning("model %r: %s", model, first_line(Exception(warning)))
    return yolo


def _load_yolo(model: str) -> Any:
    ultralytics = import_ultralytics()
    given = model
    checkpoint = model.rpartition(".")[-1].lower() == "pt"  # Ultralytics' own test for a checkpoint
    if checkpoint:
        model = local_weights(model)
    elif model.lower().endswith(YAML_SUFFIXES):  # refused before it is built (a ResNet backbone downloads)
        task = yaml_task(model)[0]
        if task not in TASKS:
            raise _no_objects(model, task)
    else:
        _check_format(model)
    try:
        yolo: Any = ultralytics.YOLO(model)  # the task its file says (exports: their metadata)
    except Exception as exc:  # Ultralytics raises many kinds; the message is what matters
        unpickling = _unpickling_failure(exc) if checkpoint else None
        if unpickling is not None:
            reason = re.split(r"(?<=\w)\. ", first_line(unpickling), maxsplit=1)[0]  # not torch's advice after it
            if isinstance(unpickling, OSError):  # torch's zip reader on a cut archive: "[Errno 22] Invalid argument"
                reason = f"a damaged zip archive: {reason}"
            raise ModelError(f"model {given!r}: not a PyTorch model file (cannot be unpickled: {reason})") from exc
        if checkpoint and isinstance(exc, (AttributeError, KeyError)):  # unpickled: something else was saved
            raise ModelError(f"model {given!r}: not an Ultralytics model checkpoint (a file torch.save wrote, "
                             f"without a YOLO network in it: {type(exc).__name__}: {first_line(exc)})") from exc
        raise ModelError(f"cannot load model {given!r}: {first_line(exc)}") from exc
    return yolo


def _check_format(model: str) -> None:
    """Refuse an export whose format Ultralytics cannot tell: it tells it by the name alone
    (``best.onnx``, ``best_openvino_model/``), and would otherwise warn that it cannot guess
    the task and fail at the first inference with its list of formats."""
    autobackend: Any = importlib.import_module("ultralytics.nn.autobackend")  # untyped
    if autobackend.AutoBackend._model_type(model) is not None:
        return
    exporter: Any = importlib.import_module("ultralytics.engine.exporter")
    suffixes: list[str] = list(exporter.export_formats()["Suffix"])
    path = Path(model)
    if path.is_dir():
        folders = ", ".join(f"…{s}" for s in suffixes if not s.startswith("."))
        kind = " (an OpenVINO export)" if any(path.glob("*.xml")) else ""
        raise ModelError(f"model {model!r}: a folder{kind} whose name does not say its format; Ultralytics knows "
                         f"an exported model's folder by the end of its name: {folders}")
    files = ", ".join(s for s in suffixes if s.startswith("."))
    raise ModelError(f"model {model!r}: not a model file Ultralytics knows (its name must end in one of "
                     f"{files}, or .yaml)")


_UNPICKLING = (pickle.UnpicklingError, EOFError, ValueError, RuntimeError, UnicodeDecodeError, IndexError,
               KeyError, OSError)
"""What ``torch.load`` raises on bytes that are not a checkpoint (an empty, truncated or
damaged file; text renamed ``.pt``), as opposed to a checkpoint that needs a missing module."""


def _unpickling_failure(exc: BaseException) -> BaseException | None:
    """The error, in ``exc`` or what caused it, that ``torch.load`` raised unpickling bytes
    that are no checkpoint (None: the file was read, and something else failed)."""
    seen: BaseException | None = exc
    while seen is not None:
        frames = traceback.extract_tb(seen.__traceback__)
        in_torch_load = any(Path(frame.filename).match("torch/serialization.py") for frame in frames)
        if isinstance(seen, _UNPICKLING) and (in_torch_load or isinstance(seen, pickle.UnpicklingError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def yaml_task(path: str) -> tuple[str | None, dict[str, Any]]:
    """A YAML architecture's task as Ultralytics guesses it from its head (``None``: it cannot,
    an RT-DETR head), and the architecture (for ``yolo26n.yaml``: ``yolo26.yaml`` at scale n)."""
    import_ultralytics()
    if Path(path).is_file():  # a local file (not one Ultralytics ships): read by us, errors in one line
        _check_yaml(path, Path(path))
    tasks: Any = importlib.import_module("ultralytics.nn.tasks")  # untyped
    try:
        architecture: dict[str, Any] = tasks.yaml_model_load(path)
    except Exception as exc:  # Ultralytics raises many kinds; the message is what matters
        raise ModelError(f"cannot read model {path!r}: {first_line(exc)}") from exc
    with held_ultralytics_warnings() as held:  # "Unable to guess the task, assuming detect"
        task: str | None = tasks.guess_model_task(architecture)
    if held:
        log.debug("model %r: Ultralytics guessed task %r: %s", path, task, held)
    return task, architecture


def _no_objects(model: str, task: str | None) -> ModelError:
    return ModelError(f"model {model!r} is a {task!r} model; streamyolo runs models that find objects: "
                      f"{', '.join(TASKS)}")


def local_weights(path: str) -> str:
    """The absolute path of the weights file ``YOLO(path)`` loads, which must be local.

    Ultralytics swaps legacy YOLOv5/YOLOv3 names for their "u" versions (``yolov5n.pt`` →
    ``yolov5nu.pt``), looks in its weights folder too, and downloads what it does not find;
    a bare official name (``yolo26n.pt``) that fails to load is downloaded again. An
    absolute path of a file that exists keeps it from both.
    """
    import_ultralytics()
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.checks import check_yolov5u_filename

    wanted = str(check_yolov5u_filename(path, verbose=False))
    for candidate in (Path(wanted), Path(SETTINGS["weights_dir"]) / wanted):
        if candidate.is_file():
            return str(candidate.resolve())
    raise ModelError(f"model {path!r}: Ultralytics would load {wanted!r} instead, which is not here "
                     f"(streamyolo never downloads weights; rename the file)")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message without Ultralytics' 'ERROR ❌' prefix (but
    with the '/' of an absolute path that follows it).

    >>> first_line(ValueError("ERROR ❌ /tmp/x.pt is not a model\\nmore"))
    '/tmp/x.pt is not a model'
    """
    line = next(iter(str(exc).strip().splitlines()), "")
    return re.sub(r"^\W*(ERROR|WARNING)[^\w/\\.~'\"]*", "", line).strip() or type(exc).__name__


@dataclass(frozen=True, slots=True)
class UltralyticsFactory:
    """Builds a warmed-up :class:`UltralyticsDetector`; call it inside the worker thread.

    Plain data, so it can also be sent to a worker process.
    """

    model: str
    settings: DetectSettings = DetectSettings()
    device: str = "cpu"
    threads: int | None = None
    """CPU threads this worker's model may use (torch intra-op threads, OpenVINO's
    ``INFERENCE_NUM_THREADS``); ``None``: as set when it is built, or the runtime decides."""
    cache_dir: str | None = None
    """Where OpenVINO keeps compiled models (and PyTorch networks converted to it) between
    runs; ``None``: compile every time."""
    pytorch_cpu: str = "auto"
    """What runs a PyTorch model's network on a CPU: ``auto``, ``torch`` or ``openvino``
    (see :func:`~streamyolo.inference.converted.converting`)."""

    def __call__(self) -> Detector:
        detector = UltralyticsDetector(load_yolo(self.model, self.device), self.settings, self.device,
                                       model_path=self.model, threads=self.threads, cache_dir=self.cache_dir,
                                       pytorch_cpu=self.pytorch_cpu)
        try:
            detector.warmup()
        except Exception as exc:
            raise ModelError(f"model {self.model!r} failed its first inference: {first_line(exc)}") from exc
        return detector


class LockedDetector:
    """A shared detector behind a lock: safe from any thread, one batch at a time."""

    def __init__(self, inner: Detector, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    @property
    def names(self) -> Mapping[int, str]:
        return self._inner.names

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        with self._lock:
            return self._inner.detect(images)

    def close(self) -> None:
        """The shared instance outlives its users; :class:`SharedFactory` owns it."""


class SharedFactory:
    """``model_sharing: locked``: build one detector on first use, share it behind a lock.

    Saves the memory of N-1 models; costs parallelism, since only one worker runs the
    model at a time. Each worker still gets its own :class:`LockedDetector` handle.
    """

    def __init__(self, factory: DetectorFactory) -> None:
        self._factory = factory
        self._build_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._shared: Detector | None = None

    def __call__(self) -> Detector:
        with self._build_lock:
            if self._shared is None:
                self._shared = self._factory()
            return LockedDetector(self._shared, self._run_lock)

    def close(self) -> None:
        with self._build_lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None
