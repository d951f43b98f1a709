"""A PyTorch model's network run by OpenVINO on the CPU (``pytorch_cpu: auto``, the default,
where the ``openvino`` package is installed; ``pytorch_cpu: openvino`` asks for it).

OpenVINO's CPU kernels ran yolo26n's forward pass 1.6-2.1 x faster than PyTorch's eager one on
our 2-core box (one thread, batch 1), and the whole pipeline 1.3-1.8 x faster (4 streams, 2
workers; 1.3-1.5 x for random yolo26n, 1.76 x for the demo model), with the same numbers (FP32:
the demo model's detections on its scenes differed by at most 0.0001 px). The network is traced
once per set of weights, converted with dynamic batch and input size (the rect letterbox of
PyTorch models gives each aspect ratio its own size) and kept as an OpenVINO IR in the model
cache, keyed by a hash of the weights and the versions of torch, Ultralytics and OpenVINO, so
later starts only compile it. Each lane then compiles its own copy inside its own thread and
runs it as any OpenVINO model (:class:`~streamyolo.inference.runners.OpenVINORunner`: uint8
frames in, converted inside the graph).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from streamyolo.inference.offline import import_openvino
from streamyolo.inference.runners import _file_lock

log = logging.getLogger(__name__)

_convert_lock = threading.Lock()
"""One conversion at a time in this process: tracing is slow, and a second thread with the
same weights then reads what the first wrote."""


def converts(model_path: str) -> bool:
    """Whether a PyTorch model can be converted once: a weights file, not a YAML architecture
    (whose every replica has random weights of its own: nothing to convert once)."""
    return not model_path.lower().endswith((".yaml", ".yml"))


def converting(pytorch_cpu: str, model_path: str, device: str = "cpu", half: bool = False) -> bool:
    """Whether the PyTorch model at ``model_path`` runs through OpenVINO on ``device`` with this
    ``pytorch_cpu`` setting: only on the CPU and in full precision (not with ``half``);
    ``openvino`` for any weights file, ``auto`` where the ``openvino`` package is installed
    too (it is an optional dependency), ``torch`` never."""
    if pytorch_cpu == "torch" or device != "cpu" or half or not converts(model_path):
        return False
    return pytorch_cpu == "openvino" or openvino_installed()


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def converted_ir(predictor: Any, cache_dir: str | None) -> Path:
    """The OpenVINO IR of the predictor's network, from the cache or converted now."""
    folder = Path(cache_dir) / "pytorch" if cache_dir else Path(_scratch().name)
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / f"{weights_key(_network(predictor))}.xml"
    with _convert_lock, _file_lock(folder / ".streamyolo.lock"):
        if not xml.exists():
            log.info("converting the PyTorch network to OpenVINO, once for these weights (a few seconds) …")
            _convert(predictor, xml)
        else:
            log.debug("converted network %s from the cache", xml)
    return xml


def weights_key(network: Any) -> str:
    """A hash of the network's weights and buffers and of the versions that convert it."""
    import openvino
    import torch
    import ultralytics

    digest = hashlib.sha256(f"{torch.__version__} {ultralytics.__version__} {openvino.__version__}".encode())
    digest.update(type(network).__name__.encode())
    for name, value in network.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _network(predictor: Any) -> Any:
    """The predictor's PyTorch network (``AutoBackend`` holds it, and is no module parent of it)."""
    import torch

    network = getattr(predictor.model, "model", None)
    if not isinstance(network, torch.nn.Module):
        raise TypeError(f"no PyTorch network behind {type(predictor.model).__name__}")
    return network


def _convert(predictor: Any, xml: Path) -> None:
    import torch
    from ultralytics.nn.modules.head import Detect

    ov = import_openvino()
    network = _network(predictor)
    heads = [m for m in network.modules() if isinstance(m, Detect)]
    saved = [head.dynamic for head in heads]
    for head in heads:
        head.dynamic = True  # anchors from the input's size at every call, not cached from the first

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> Any:
            # What the predictor post-processes: the predictions (a segmentation model's are
            # two tensors, detections and mask prototypes: two outputs, in that order).
            y = self.network(x)
            return y[0] if isinstance(y, list | tuple) else y

    height, width = (int(s) for s in predictor.imgsz) if isinstance(predictor.imgsz, list | tuple) else (
        int(predictor.imgsz),) * 2
    wrapper = FirstOutput().eval()
    try:
        with torch.no_grad():
            try:
                source = _traced(wrapper, torch.zeros(1, 3, height, width))
            except Exception as exc:  # tracing is deprecated in torch 2.14: a later torch may drop or break it
                log.info("tracing the PyTorch network failed (%s: %s); exporting it with torch.export instead "
                         "(slower, still once)", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                source = _exported(wrapper, torch.zeros(2, 3, height, width))
            model = ov.convert_model(source, example_input=torch.zeros(1, 3, height, width),
                                     input=[ov.PartialShape([-1, 3, -1, -1])])
    finally:
        for head, value in zip(heads, saved, strict=True):
            head.dynamic = value
    # The .bin first, then the .xml: an .xml in the folder means a whole IR.
    temporary = xml.with_name(f".{xml.stem}.{os.getpid()}.{threading.get_ident()}.xml")
    ov.save_model(model, str(temporary), compress_to_fp16=False)
    os.replace(temporary.with_suffix(".bin"), xml.with_suffix(".bin"))
    os.replace(temporary, xml)
    log.info("converted the PyTorch network to OpenVINO: %s", xml)


def _traced(module: Any, example: Any) -> Any:
    """``module`` traced into TorchScript, the form OpenVINO's PyTorch frontend has read longest."""
    import torch

    trace: Any = torch.jit.trace  # not annotated
    with warnings.catch_warnings():  # its deprecation notice and the tracer's, for Ultralytics' code
        warnings.simplefilter("ignore")
        return trace(module, example, check_trace=False)


def _exported(module: Any, example: Any) -> Any:
    """``module`` exported with ``torch.export`` (an ``ExportedProgram``, which OpenVINO converts
    too), batch and input size dynamic: the way on when tracing is gone. About 10 x slower than
    tracing (30 s for the demo model on 2 cores), and only needed once per set of weights.
    ``example`` has a batch of 2: export takes a size of 1 for a constant."""
    import torch

    auto = torch.export.Dim.AUTO
    with warnings.catch_warnings():  # the head's anchors, set in forward: meant, and rebuilt every call
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (example,), dynamic_shapes={"x": {0: auto, 2: auto, 3: auto}})
    name = program.graph_signature.user_inputs[0]
    shape = next(node for node in program.graph.nodes if node.name == name).meta["val"].shape
    static = [d for d, size in enumerate(shape) if d != 1 and isinstance(size, int)]
    if static:
        raise RuntimeError(f"torch.export fixed the input's dimension(s) {static}; the network needs them dynamic")
    return program


@functools.cache
def _scratch() -> tempfile.TemporaryDirectory[str]:
    """Where converted networks go when there is no model cache (removed when the process ends)."""
    return tempfile.TemporaryDirectory(prefix="streamyolo-converted-")
