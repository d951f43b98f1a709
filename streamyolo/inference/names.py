"""A model's class names without building it, and without the network.

``YOLO(model).names`` builds the network for a YAML architecture and, for an export, sets up
a predictor that loads (for OpenVINO: compiles) the model. :func:`model_names` reads the same
names from where Ultralytics keeps them: a ``.pt`` checkpoint's pickled model, a YAML's
``nc``, an export's metadata (read as ``AutoBackend`` reads it). It builds ``YOLO(model)``
only for what it cannot read that way (an export without names in its metadata, or of a
format whose metadata lives somewhere less simple), so the names always equal
``YOLO(model).names``.

Ultralytics may reach for the network while loading a ``.pt``: a file it does not find
locally, a ``yolov5n.pt`` it renames to ``yolov5nu.pt``, a corrupt ``yolo26n.pt`` given by
bare name all mean a download. Only local files reach it here.
"""

from __future__ import annotations

import ast
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamyolo.errors import ModelError
from streamyolo.inference.models import YAML_SUFFIXES, first_line, load_yolo, local_weights, resolve_model, yaml_task
from streamyolo.inference.offline import held_ultralytics_warnings, import_ultralytics

log = logging.getLogger(__name__)

def model_names(model: str) -> dict[int, str]:
    """The class names (id → name) that ``ultralytics.YOLO(model).names`` gives.

    ``model`` is anything :func:`~streamyolo.inference.models.resolve_model` accepts:
    ``"demo"``, a ``.pt`` file, a YAML architecture (local or shipped with Ultralytics),
    an export (``*_openvino_model/``, ``.onnx``, ``.engine`` …).

    >>> model_names("demo")
    {0: 'person', 1: 'car', 2: 'ball'}
    """
    text = resolve_model(model)
    try:
        if text.lower().endswith(YAML_SUFFIXES):
            return _yaml_names(text)
        if text.rpartition(".")[-1].lower() == "pt":  # Ultralytics' own test for a checkpoint
            return _checkpoint_names(text)
        return _export_names(text)
    except ModelError:
        raise
    except Exception as exc:  # Ultralytics raises many kinds; the message is what matters
        raise ModelError(f"cannot read the class names of model {text!r}: {first_line(exc)}") from exc


def _yaml_names(path: str) -> dict[int, str]:
    """What a YAML-built model is named: ``"0"`` … ``"nc-1"`` (a ``names`` key is not used;
    YOLOWorld and YOLOE architectures are named the same way)."""
    task, architecture = yaml_task(path)
    if task is None:  # an RT-DETR head: YOLO() cannot build it either
        raise ModelError(f"model {path!r}: Ultralytics cannot tell its task from its head")
    classes = architecture.get("nc")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ModelError(f"model {path!r}: its architecture sets no class count ('nc')")
    return _checked({i: f"{i}" for i in range(classes)})


def _checkpoint_names(path: str) -> dict[int, str]:
    """The names stored with the network in a ``.pt`` checkpoint (``ema`` before ``model``)."""
    import torch

    tasks = _ultralytics("ultralytics.nn.tasks")
    with held_ultralytics_warnings():  # (its own lines: a checkpoint it cannot read is our one line)
        checkpoint, _ = tasks.torch_safe_load(local_weights(path))
    network = checkpoint.get("ema") or checkpoint.get("model")  # as ultralytics.nn.tasks.load_checkpoint
    if not isinstance(network, torch.nn.Module):
        raise ModelError(f"model {path!r} is not an Ultralytics checkpoint (no network in it)")
    if not hasattr(network, "names"):  # YOLO then falls back to default names; let it say which
        return _built_names(path)
    return _checked(network.names)


def _export_names(path: str) -> dict[int, str]:
    """An export's names from its metadata, read the way its ``AutoBackend`` backend reads it;
    built with ``YOLO`` when the metadata has none or lives where that is not cheap."""
    autobackend = _ultralytics("ultralytics.nn.autobackend")
    model_format = autobackend.AutoBackend._model_type(path)
    where = _METADATA.get(model_format)
    file = where(Path(path)) if where is not None else None
    if file is None:
        log.debug("model %r: format %r, no metadata to read cheaply; building it for its names", path, model_format)
        return _built_names(path)
    base = _ultralytics("ultralytics.nn.backends.base").BaseBackend
    metadata = base.engine_header(file)[1] if model_format == "engine" else base.read_metadata(file)
    names = metadata.get("names") if isinstance(metadata, dict) else None
    if isinstance(names, str):  # single-file exports keep it as text (BaseBackend.apply_metadata)
        names = ast.literal_eval(names)
    if not names:  # YOLO then makes up 999 names; let it, and let it fail where the export is broken
        log.debug("model %r: no class names in its metadata; building it for its names", path)
        return _built_names(path)
    return _checked(names)


def _itself(path: Path) -> Path:
    return path


def _first_in(pattern: str) -> Callable[[Path], Path | None]:
    """A folder export's metadata is read beside its first ``pattern`` file (None: none)."""

    def find(path: Path) -> Path | None:
        return path if path.is_file() else next(path.glob(pattern), None)

    return find


_METADATA: dict[str, Callable[[Path], Path | None]] = {
    # format: the file its backend hands to BaseBackend.read_metadata (engine_header for "engine")
    "onnx": _itself,
    "torchscript": _itself,
    "engine": _itself,
    "saved_model": _itself,
    "litert": _itself,
    "paddle": _itself,
    "openvino": _first_in("*.xml"),
    "ncnn": _first_in("*.param"),
}


def _built_names(path: str) -> dict[int, str]:
    """``YOLO(path).names``: slow (a predictor for an export), kept for what cannot be read."""
    yolo = load_yolo(path, "cpu")
    try:
        names: Any = yolo.names
    except Exception as exc:
        raise ModelError(f"cannot load model {path!r}: {first_line(exc)}") from exc
    return {int(index): str(name) for index, name in names.items()}


def _checked(names: Any) -> dict[int, str]:
    """Names as ``YOLO.names`` gives them: ``check_class_names`` (int keys, str values,
    ImageNet codes made readable)."""
    autobackend = _ultralytics("ultralytics.nn.autobackend")
    checked: dict[Any, Any] = autobackend.check_class_names(names)
    return {int(index): str(name) for index, name in checked.items()}


def _ultralytics(module: str) -> Any:
    """An Ultralytics module, imported with the offline switches set (typed loosely: most
    of Ultralytics' helpers have no annotations)."""
    import_ultralytics()
    return importlib.import_module(module)


__all__ = ["model_names"]
