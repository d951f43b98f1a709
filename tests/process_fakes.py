"""Picklable detector factories for process-mode tests: a spawned child imports this module
and builds its fake detector from plain data, as it would build a real model."""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamyolo.errors import ModelError
from streamyolo.frames import Detections, Image
from streamyolo.inference.detector import Detector
from streamyolo.sources import stream_tag
from tests.helpers import StampDetector, stamps


@dataclass(frozen=True)
class StampFactory:
    """The pipeline tests' :class:`StampDetector` (one box per frame, read from the stamp)."""

    fail_on: int | None = None
    delay: float = 0.0
    """Seconds each batch takes."""
    width: int = 10
    """The boxes' width."""
    fail_stream: str | None = None
    """With ``fail_on``: it fails only on batches with a frame of this stream."""

    def __call__(self) -> Detector:
        return StampDetector(delay=self.delay, fail_on=self.fail_on, width=self.width, fail_stream=self.fail_stream)


class PidStampDetector(StampDetector):
    """:class:`StampDetector` whose boxes carry, as y1, the id of the process that ran them
    (exact in float32: Linux pids stay below 2**22)."""

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        found = super().detect(images)
        for detections in found:
            detections.xyxy[:, 1] = os.getpid()
        return found


@dataclass(frozen=True)
class PidStampFactory:
    delay: float = 0.0
    """Seconds each batch takes."""

    def __call__(self) -> Detector:
        return PidStampDetector(delay=self.delay)


class ChecksumDetector:
    """Proves which pixels arrived: per image one box ``[height, width, crc32 low 16 bits,
    crc32 high 16 bits]`` (exact in float32), with the batch size as its class."""

    @property
    def names(self) -> Mapping[int, str]:
        return {i: f"batch{i}" for i in range(1, 65)}

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out = []
        for image in images:
            crc = zlib.crc32(np.ascontiguousarray(image).tobytes())
            out.append(Detections(
                xyxy=np.array([[image.shape[0], image.shape[1], crc & 0xFFFF, crc >> 16]], dtype=np.float32),
                conf=np.array([0.5], dtype=np.float32),
                cls=np.array([len(images)], dtype=np.int64),
                names=self.names,
            ))
        return out

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ChecksumFactory:
    def __call__(self) -> Detector:
        return ChecksumDetector()


class HangingDetector(ChecksumDetector):
    """Never answers a batch (a deadlocked model)."""

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        threading.Event().wait()
        return []


@dataclass(frozen=True)
class HangingFactory:
    def __call__(self) -> Detector:
        return HangingDetector()


@dataclass(frozen=True)
class FailingFactory:
    """A model that cannot be built, with the message a real one would give."""

    message: str = "cannot load model 'broken.pt': scripted failure"

    def __call__(self) -> Detector:
        raise ModelError(self.message)


@dataclass(frozen=True)
class CrashingFactory:
    """A model whose loading kills the process (as a segfault in native code would)."""

    def __call__(self) -> Detector:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class KilledBuildingFactory:
    """:class:`ChecksumFactory`'s model, whose loading kills the process on the builds
    numbered in ``killed_on`` (counted in the file ``counter``): the OOM killer as it loads."""

    counter: str
    killed_on: tuple[int, ...]

    def __call__(self) -> Detector:
        import signal
        from pathlib import Path

        path = Path(self.counter)
        built = (int(path.read_text()) if path.exists() else 0) + 1
        path.write_text(str(built))
        if built in self.killed_on:
            os.kill(os.getpid(), signal.SIGKILL)
        return ChecksumDetector()


class SuicidalDetector(ChecksumDetector):
    """Kills its own process on every batch (a frame that crashes the model every time)."""

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        return []


@dataclass(frozen=True)
class SuicidalFactory:
    def __call__(self) -> Detector:
        return SuicidalDetector()


class _PoisonedStampDetector(StampDetector):
    def __init__(self, poison: str, from_frame: int) -> None:
        super().__init__()
        self._poison = (stream_tag(poison), from_frame)

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        import signal

        tag, first = self._poison
        if any(stamp is not None and stamp[0] == tag and stamp[1] >= first for stamp in stamps(images)):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().detect(images)


@dataclass(frozen=True)
class PoisonedStampFactory:
    """:class:`StampFactory`'s model, whose process a frame of stream ``poison`` from its
    ``from_frame``-th on kills (as a segfault in native code would), every time."""

    poison: str
    from_frame: int

    def __call__(self) -> Detector:
        return _PoisonedStampDetector(self.poison, self.from_frame)


class _ImportedDetector(StampDetector):
    def __init__(self, imported: Mapping[int, str]) -> None:
        super().__init__()
        self._imported = imported

    @property
    def names(self) -> Mapping[int, str]:
        return self._imported


@dataclass(frozen=True)
class ImportedFactory:
    """A detector whose class names say which heavy modules the child had imported before the
    factory ran (``yes``/``no`` for each of ``modules``)."""

    modules: tuple[str, ...] = ("ultralytics", "torch", "openvino")

    def __call__(self) -> Detector:
        import sys

        return _ImportedDetector({i: "yes" if m in sys.modules else "no" for i, m in enumerate(self.modules)})
