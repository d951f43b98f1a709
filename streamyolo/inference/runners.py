"""Forward passes without ``predict()``'s per-call setup, one runner per model format.

Each runner takes a batch of same-shape BGR frames and returns the model's raw output and
the input size, computed with the same arithmetic as Ultralytics' predictor (letterbox,
BGR→RGB, /255), so NMS and box scaling downstream give the same boxes as ``predict()``.

- :class:`TorchRunner` (``.pt``/``.yaml``): letterbox into a reused (on CUDA: pinned)
  buffer, one tensor per batch, non-blocking host→device copy, FP16 when asked.
- :class:`OpenVINORunner`: its own compiled model with a thread budget
  (``INFERENCE_NUM_THREADS``), so N workers never oversubscribe the cores; a
  static-batch-1 export runs a batch one frame at a time, each call releasing the GIL.
  With a cache folder, OpenVINO keeps the compiled model there and later starts load it
  instead of compiling again.
- :class:`PredictorRunner`: every other export (ONNX, TensorRT, …) through the
  predictor's own preprocessing and backend.
"""

from __future__ import annotations

import hashlib
import locale
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from streamyolo.frames import Image
from streamyolo.inference.letterbox import Letterboxer
from streamyolo.inference.offline import import_openvino

log = logging.getLogger(__name__)


def is_openvino(model: str) -> bool:
    """True for an OpenVINO IR export: an ``.xml`` file or a folder holding one."""
    path = Path(model)
    return path.suffix.lower() == ".xml" or (path.is_dir() and any(path.glob("*.xml")))


def is_pytorch(model: str) -> bool:
    """True for PyTorch weights (``.pt``) or an architecture (``.yaml``) that builds them."""
    return Path(model).suffix.lower() in (".pt", ".yaml", ".yml")


def openvino_xml(model: str) -> Path:
    """The ``.xml`` file of an OpenVINO export given as the file or its folder."""
    xml = Path(model)
    return next(xml.glob("*.xml")) if xml.is_dir() else xml


class Runner(Protocol):
    def run(self, images: Sequence[Image]) -> tuple[Any, tuple[int, int]]:
        """Raw predictions for ``images`` (one shape) and the model input's (height, width)."""
        ...


def _letterboxer(predictor: Any, allocator: Any = None) -> Letterboxer:
    """The predictor's own letterbox settings (see ``BasePredictor.pre_transform``)."""
    model = predictor.model
    dynamic = bool(getattr(model, "dynamic", False)) and model.format != "imx"
    auto = bool(predictor.args.rect) and not getattr(predictor, "scale_fill", False) and (
        model.format == "pt" or dynamic)
    imgsz = predictor.imgsz
    new_shape = (int(imgsz[0]), int(imgsz[1])) if isinstance(imgsz, list | tuple) else (int(imgsz), int(imgsz))
    stride = int(max(model.stride)) if isinstance(model.stride, list | tuple) else int(model.stride)
    if allocator is None:
        return Letterboxer(new_shape, auto, stride)
    return Letterboxer(new_shape, auto, stride, allocator)


class TorchRunner:
    """PyTorch models, on the CPU or one CUDA device (one CUDA stream per worker)."""

    def __init__(self, predictor: Any) -> None:
        import torch

        self._torch = torch
        self._predictor = predictor
        self._device = predictor.device
        self._fp16 = bool(predictor.model.fp16)
        self._cuda = self._device.type == "cuda"
        allocator = self._pinned if self._cuda else None
        self._letterbox = _letterboxer(predictor, allocator)
        self._copied: Any = None
        """CUDA: an event recorded after the last batch's copy out of the reused pinned buffer."""

    def _pinned(self, shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
        # Page-locked host memory: the copy to the GPU can run asynchronously.
        array: npt.NDArray[np.uint8] = self._torch.empty(shape, dtype=self._torch.uint8, pin_memory=True).numpy()
        return array

    def run(self, images: Sequence[Image]) -> tuple[Any, tuple[int, int]]:
        torch = self._torch
        if self._copied is not None:
            # The copy below is asynchronous and the letterbox refills the same pinned buffer:
            # wait until the previous batch has left it (NMS has usually waited already).
            self._copied.synchronize()
        batch, where = self._letterbox.fill(images)
        if self._cuda:
            # The uint8 batch crosses to the GPU as it is (a quarter of the bytes of floats);
            # the GPU reorders it.
            tensor = torch.from_numpy(batch).to(self._device, non_blocking=True)
            self._copied = torch.cuda.Event()
            self._copied.record()  # on the current stream: this worker's own (see UltralyticsDetector.detect)
            tensor = tensor.permute(0, 3, 1, 2).contiguous().flip(1)  # BHWC BGR → BCHW RGB
        else:
            # One pass on the CPU: BHWC BGR → contiguous BCHW RGB, as Ultralytics' preprocess does
            # (27 % cheaper than reordering with torch in two copies).
            tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)[:, ::-1]))
        tensor = (tensor.half() if self._fp16 else tensor.float()).div_(255)
        return self._predictor.inference(tensor), where.input_hw


class OpenVINORunner:
    """An OpenVINO IR model compiled for this worker's share of the CPU.

    The model takes the letterboxed frames as they are (uint8, BHWC, BGR): OpenVINO's own
    preprocessing (``PrePostProcessor``) converts them to float, RGB, BCHW and /255 inside
    the compiled graph, the same arithmetic as Ultralytics' ``preprocess`` without a
    float copy of every frame in Python.
    """

    def __init__(self, predictor: Any, model_path: str, threads: int | None, cache_dir: str | None = None,
                 precision: str | None = None) -> None:
        ov = import_openvino()
        self._letterbox = _letterboxer(predictor)
        xml = openvino_xml(model_path)
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
            # OpenVINO pins each compiled model's threads starting from the first core, so
            # several workers with a few threads each would all land on the same cores.
            config["ENABLE_CPU_PINNING"] = False
        if cache_dir:
            # Measured for YOLO11n INT8: compiling takes 0.58 s, loading from the cache 0.19 s.
            # A damaged cache entry is not fatal: OpenVINO compiles again and rewrites it.
            config["CACHE_DIR"] = cache_dir
        with compiling_into(cache_dir, f"{xml.resolve()} {sorted(config.items())}"):
            self._compiled = core.compile_model(_uint8_bgr_input(core.read_model(xml)), "CPU", config)
        if cache_dir:
            cached = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
            log.debug("OpenVINO model %s %s cache %s", xml, "loaded from" if cached else "compiled into", cache_dir)
        self._request = self._compiled.create_infer_request()
        shape = self._compiled.input(0).get_partial_shape()
        self._batch = shape[0].get_length() if shape[0].is_static else 0
        output = self._compiled.output(0)
        self._count = len(self._compiled.outputs)
        """How many outputs the model gives: 2 for segmentation (detections, mask prototypes)."""
        fixed = (bool(self._batch) and self._count == 1 and output.get_partial_shape().is_static
                 and output.get_element_type() == ov.Type.f32)
        self._frame_out: tuple[int, ...] | None = (
            tuple(d.get_length() for d in output.get_partial_shape())[1:] if fixed else None)
        """One frame's output shape, where frames can be written into a reused float32 array."""
        self._out: npt.NDArray[np.float32] | None = None
        self._out_tensors: list[Any] = []
        self._ov = ov

    def run(self, images: Sequence[Image]) -> tuple[Any, tuple[int, int]]:
        import torch

        batch, where = self._letterbox.fill(images)
        if self._frame_out is None:  # a dynamic batch (the output's shape follows the input), not float32, or
            # several outputs (as Ultralytics' backend gives them: a list, in the model's order)
            step = self._batch or len(images)
            outputs: list[list[Any]] = [[] for _ in range(self._count)]
            for start in range(0, len(images), step):
                self._request.infer([batch[start:start + step]])  # releases the GIL while it runs
                for index, parts in enumerate(outputs):
                    parts.append(torch.from_numpy(self._request.get_output_tensor(index).data.copy()))
            joined = [torch.cat(parts) if len(parts) > 1 else parts[0] for parts in outputs]
            return (joined[0] if self._count == 1 else joined), where.input_hw
        out = self._outputs(len(images))
        for slot, start in enumerate(range(0, len(images), self._batch)):
            # The model writes straight into this frame's slot of a reused array, not into its
            # own buffer to be copied out (4 OpenVINO streams: steady frames/s 1.06 x, the median
            # of 14 interleaved pairs, 10 of them faster).
            self._request.set_output_tensor(0, self._out_tensors[slot])
            self._request.infer([batch[start:start + self._batch]])  # releases the GIL while it runs
        return torch.from_numpy(out[: len(images)]), where.input_hw

    def _outputs(self, count: int) -> npt.NDArray[np.float32]:
        """The reused output array, with room for ``count`` frames, and an OpenVINO tensor on
        each static-batch slot of it. The next :meth:`run` overwrites what this one returned."""
        assert self._frame_out is not None
        step = self._batch
        if self._out is None or self._out.shape[0] < count:
            slots = -(-count // step)
            self._out = np.empty((slots * step, *self._frame_out), dtype=np.float32)
            self._out_tensors = [self._ov.Tensor(self._out[i * step:(i + 1) * step], shared_memory=True)
                                 for i in range(slots)]
        return self._out


def _uint8_bgr_input(model: Any) -> Any:
    """``model`` with its image input taking uint8 BHWC BGR, converted inside the graph.

    The layout is changed before the colours are swapped: swapped in BHWC first, OpenVINO
    2026.4's CPU plugin got the colours wrong for a network that also reads its input's shape
    (a ``ShapeOf`` on the input, as ``torch.export`` writes the head's anchors; see
    :func:`~streamyolo.inference.converted._exported`), off by up to 190 in the raw output.
    For the others both orders give the same numbers (bit for bit on YOLO11n INT8 and traced
    yolo26n) at the same speed."""
    ov = import_openvino()
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
        ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_layout(ov.Layout("NCHW")).convert_color(
        ColorFormat.RGB).scale(255.0)
    return ppp.build()


class PredictorRunner:
    """Any other format, through the predictor's own preprocessing and backend."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor

    def run(self, images: Sequence[Image]) -> tuple[Any, tuple[int, int]]:
        tensor = self._predictor.preprocess(list(images))
        return self._predictor.inference(tensor), (int(tensor.shape[2]), int(tensor.shape[3]))


def make_runner(predictor: Any, model_path: str, threads: int | None, cache_dir: str | None = None,
                pytorch_cpu: str = "auto") -> Runner:
    """The leanest runner for the predictor's model format; ``cache_dir`` is where an
    OpenVINO model's compiled form is kept between runs (``None``: compile every time).
    ``pytorch_cpu`` ``auto`` (the default) and ``openvino`` run a PyTorch weights file's network
    through OpenVINO on a CPU (see :mod:`streamyolo.inference.converted`); where that fails,
    PyTorch runs it."""
    model_format = predictor.model.format
    if model_format == "pt":
        from streamyolo.inference.converted import converted_ir, converting, converts

        if pytorch_cpu == "openvino" and not converts(model_path):
            log.info("pytorch_cpu: openvino applies to weights files; %s runs in PyTorch", model_path)
        elif converting(pytorch_cpu, model_path, str(predictor.device), predictor.model.fp16):
            try:
                # FP32 as in PyTorch (OpenVINO would pick bf16 on CPUs that have it: other numbers).
                return OpenVINORunner(predictor, str(converted_ir(predictor, cache_dir)), threads, cache_dir, "f32")
            except Exception as exc:  # an unusual network: PyTorch still runs it
                log.warning("OpenVINO unavailable for %s (%s: %s); PyTorch runs it (pytorch_cpu: %s)",
                            model_path or "the model", type(exc).__name__,
                            str(exc).splitlines()[0] if str(exc) else "", pytorch_cpu)
        return TorchRunner(predictor)
    if model_format == "openvino" and str(predictor.device) == "cpu":
        try:
            runner = OpenVINORunner(predictor, model_path, threads, cache_dir)
        except Exception as exc:  # an unusual export: the predictor's path still works
            log.warning("OpenVINO fast path unavailable (%s); using Ultralytics' backend", exc)
        else:
            _release_backend_model(predictor)
            return runner
    return PredictorRunner(predictor)


_registry_lock = threading.Lock()
_first_compiles: dict[tuple[str, str], threading.Event] = {}
"""(cache folder, model and settings) → set once the first compilation of it in this process is done."""


@contextmanager
def compiling_into(folder: str | None, what: str) -> Iterator[None]:
    """Around one OpenVINO compilation of ``what`` (a model and its settings) into the cache
    ``folder`` (``None``: no cache).

    Workers, lanes and worker processes start together and would all compile the same model
    at once into the same folder: the work is done N times, and OpenVINO's cache file,
    written by several at once, can be left damaged (the next start then compiles again). So
    the first compilation of ``what`` in this process goes alone (across processes too:
    ``flock`` on a file in the folder, where the platform has it), and the others wait for it
    and then load what it wrote, side by side. Once ``what`` has been compiled into the
    folder (a marker file there says so, named by OpenVINO's version and ``what``), later
    processes skip the wait: loading is all they do. On 2 cores, a 1-stream pipeline with 2
    YOLO11n lanes started in 0.96-1.05 s with the marker and 1.07-1.22 s without (3 fresh
    processes each, interleaved); two bare builds started at the same instant, 1.0-1.2 s
    against 2.0 s.

    Whatever the folder, the process locale is kept (see :class:`_LocaleKeeper`).
    """
    with _locale_keeper.kept():
        if folder is None:
            yield
            return
        marker = _warm_marker(folder, what)
        if marker.exists():
            yield
            return
        with _first_of_its_kind(folder, what, marker):
            yield


@contextmanager
def _first_of_its_kind(folder: str, what: str, marker: Path) -> Iterator[None]:
    """The first compilation of ``what`` in this process (and, by ``flock``, on this
    machine) goes alone; the others wait for it."""
    with _registry_lock:
        done = _first_compiles.get((folder, what))
        first = done is None
        if done is None:
            done = _first_compiles[(folder, what)] = threading.Event()
    if not first:
        done.wait()
        yield
        return
    try:
        with _file_lock(Path(folder) / ".streamyolo.lock"):
            yield
        with suppress(OSError):  # an unwritable folder: later starts wait their turn, no more
            marker.touch()
    finally:
        done.set()  # even after a failure: the others then compile for themselves


class _LocaleKeeper:
    """Puts the process locale back after OpenVINO compilations that overlap.

    OpenVINO's ``compile_model`` sets the whole process's locale to "C" and back
    (``setlocale`` saves the old value first). Two compilations at once on different threads
    (workers, lanes) interleave: the second saves the first's "C" and restores it last, and
    the process stays in the "C" locale for good. Python then reads and writes text as ASCII
    (``locale.getpreferredencoding``): a program that embeds streamyolo fails on the first
    non-ASCII character it reads. Seen with 2 workers x 2 YOLO11n lanes on 2 cores. The keeper
    counts compilations in flight: the first to start notes the locale, the last to finish
    puts it back if it changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._saved = ""  # the locale when the first compilation in flight began

    @contextmanager
    def kept(self) -> Iterator[None]:
        with self._lock:
            if self._in_flight == 0:
                self._saved = locale.setlocale(locale.LC_ALL)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                left = locale.setlocale(locale.LC_ALL) if self._in_flight == 0 else self._saved
                if left != self._saved:
                    log.debug("OpenVINO left the locale at %r; putting back %r", left, self._saved)
                    locale.setlocale(locale.LC_ALL, self._saved)


_locale_keeper = _LocaleKeeper()


def _warm_marker(folder: str, what: str) -> Path:
    """The file that says ``what`` has been compiled into the cache ``folder`` before."""
    version = str(getattr(import_openvino(), "__version__", ""))
    digest = hashlib.sha256(f"{version} {what}".encode()).hexdigest()[:20]
    return Path(folder) / f".streamyolo-compiled-{digest}"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: the thread lock alone
        yield
        return
    try:
        handle = open(path, "a+b")  # noqa: SIM115 (held for the block below)
    except OSError:  # an unwritable folder: OpenVINO will say so itself
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class _BackendSetup:
    folder: str | None


_backend_setup = threading.local()
"""``active``: this thread's :class:`_BackendSetup` inside :func:`openvino_backend_setup`."""


@contextmanager
def openvino_backend_setup(folder: str | None) -> Iterator[None]:
    """Within the block, the OpenVINO models that Ultralytics' backend compiles on this
    thread are compiled only when something first uses them, and then kept in the cache
    ``folder`` (``None``: no cache).

    A worker sets up Ultralytics' predictor for its settings, and with it the backend, which
    compiles the model for itself; then :class:`OpenVINORunner` compiles the worker's own
    model, which runs every frame, and the backend's is thrown away unused. Deferred, that
    compilation never happens (YOLO11n INT8: 0.2 s per lane from the cache, 0.6 s without).
    Where the fast path is unavailable, the backend runs the frames and compiles on its first
    call. Other threads, and code outside the block, get OpenVINO's ``Core`` as it always
    behaves.
    """
    _install_core_hook()
    previous = getattr(_backend_setup, "active", None)
    _backend_setup.active = _BackendSetup(folder)
    try:
        yield
    finally:
        _backend_setup.active = previous


class DeferredCompiledModel:
    """Stands in for an OpenVINO ``CompiledModel`` until it is used, then compiles it (once)
    and passes everything on. Answers the backend's log line (``EXECUTION_DEVICES``) without
    compiling when the device was named."""

    def __init__(self, compile_now: Callable[[], Any], device: str) -> None:
        self._compile_now = compile_now
        self._device = device
        self._lock = threading.Lock()
        self._compiled: Any = None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def _model(self) -> Any:
        with self._lock:
            if self._compiled is None:
                self._compiled = self._compile_now()
            return self._compiled

    def get_property(self, name: str) -> Any:
        if name == "EXECUTION_DEVICES" and self._compiled is None and self._device == "CPU":
            return [self._device]
        return self._model().get_property(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._model()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model(), name)


def _install_core_hook() -> None:
    """Replace ``openvino.Core`` (once) by a subclass that applies this thread's
    :func:`openvino_backend_setup`, if any."""
    ov = import_openvino()
    with _registry_lock:
        if getattr(ov.Core, "_streamyolo_hooked", False):
            return
        base: Any = ov.Core

        class HookedCore(base):  # type: ignore[misc]
            _streamyolo_hooked = True

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                setup: _BackendSetup | None = getattr(_backend_setup, "active", None)
                self._streamyolo_setup = setup
                if setup is not None and setup.folder:
                    self.set_property({"CACHE_DIR": setup.folder})

            def compile_model(self, *args: Any, **kwargs: Any) -> Any:
                setup: _BackendSetup | None = self._streamyolo_setup
                if setup is None:
                    with _locale_keeper.kept():
                        return super().compile_model(*args, **kwargs)
                model: Any = args[0] if args else kwargs.get("model")
                name = model.get_friendly_name() if hasattr(model, "get_friendly_name") else str(model)
                what = f"backend {name} {args[1:]} {sorted(kwargs.items(), key=lambda item: item[0])}"

                def compile_now() -> Any:
                    with compiling_into(setup.folder, what):
                        return base.compile_model(self, *args, **kwargs)

                device = kwargs.get("device_name", args[1] if len(args) > 1 else "")
                return DeferredCompiledModel(compile_now, str(device))

        HookedCore.__name__ = HookedCore.__qualname__ = "Core"
        setattr(ov, "Core", HookedCore)  # noqa: B010 (openvino is typed as a plain module here)


def _release_backend_model(predictor: Any) -> None:
    """Drop the OpenVINO model of Ultralytics' backend: the worker's own compiled model runs
    every frame, and the detector never calls the predictor's backend again. Set up within
    :func:`openvino_backend_setup`, it was never compiled; otherwise this frees about 37 MB
    per worker for YOLO11n."""
    backend = getattr(predictor.model, "backend", None)
    if backend is not None and getattr(backend, "ov_compiled_model", None) is not None:
        backend.ov_compiled_model = None
