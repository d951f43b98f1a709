"""The exception family.

Every error streamyolo raises on purpose derives from :class:`StreamYoloError`; each leaf
also inherits the builtin it most resembles (as PyAV does in ``av/error.pyi``), so
``except FileNotFoundError`` keeps working for callers who do not know our names.
Messages are one line and name the culprit: the stream, the config key, the path.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def meant(given: str, known: Iterable[str], shown: str = "{!r}") -> str:
    """`` (did you mean 'x'?)`` for ``given`` misspelt from one of ``known`` (each as ``shown``
    formats it), else ``""``: what an error naming a wrong name adds.

    >>> meant("recrod", ["record", "source"]), meant("xyzzy", ["record"]), meant("--folow", ["--follow"], "{}")
    (" (did you mean 'record'?)", '', ' (did you mean --follow?)')
    """
    near = difflib.get_close_matches(given, list(known), n=1, cutoff=0.7)
    return f" (did you mean {shown.format(near[0])}?)" if near else ""


class StreamYoloError(Exception):
    """Root of every streamyolo error."""


class ConfigError(StreamYoloError, ValueError):
    """A config file, key, value or CLI flag is invalid."""


class UnsupportedSourceError(ConfigError):
    """A source string has a scheme or form streamyolo cannot read."""


class OutputError(StreamYoloError, OSError):
    """An output path (recording folder, JSONL or summary file) cannot be written."""


class OutputsIncompleteError(StreamYoloError, OSError):
    """An output could not be written in full during the run (a full disk, a lost share):
    what it lost, and why."""

    _lost: list[str] | None = None

    @classmethod
    def joined(cls, lost: list[str]) -> OutputsIncompleteError:
        """One error for what several outputs lost (each in :attr:`lost`).

        >>> OutputsIncompleteError.joined(["a: 3 frame(s)", "b: 2 line(s)"]).lost
        ['a: 3 frame(s)', 'b: 2 line(s)']
        """
        error = cls("; ".join(lost))
        error._lost = list(lost)
        return error

    @property
    def lost(self) -> list[str]:
        """What each output lost, one each (the summary file's ``"lost"``)."""
        return list(self._lost or [str(self)])


class ModelError(StreamYoloError, RuntimeError):
    """A model cannot be found, loaded or run."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model file or folder does not exist (streamyolo never downloads weights)."""


class SourceError(StreamYoloError):
    """A stream's source failed. Carries the stream name, a redacted URL, and whether
    trying again can help (``permanent``: a missing file, a 404, a corrupt file)."""

    def __init__(self, message: str, *, stream: str | None = None, url: str | None = None,
                 permanent: bool = False) -> None:
        super().__init__(message)
        self.stream = stream
        self.url = url
        self.permanent = permanent


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A file source does not exist."""


class SourceOpenError(SourceError, ConnectionError):
    """A source could not be opened (refused, unreachable, bad path, timeout)."""


class SourceReadError(SourceError, IOError):
    """A source failed while reading (corrupt data, lost connection, read timeout)."""


class SourceStalledError(SourceReadError, TimeoutError):
    """A source delivered no frame for longer than its stall time-out."""


class WorkerError(StreamYoloError, RuntimeError):
    """An inference worker or sink failed; chained to the original exception."""


class NoStreamProcessedError(StreamYoloError, RuntimeError):
    """The run ended without a single processed frame on any stream."""
