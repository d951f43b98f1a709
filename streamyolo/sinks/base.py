"""The Sink seam, and the fan-out that isolates one failing sink from the rest."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import SplitResult, urlsplit

import cv2

from streamyolo.clock import Clock
from streamyolo.errors import OutputError, OutputsIncompleteError
from streamyolo.frames import Image, Result

if TYPE_CHECKING:
    from streamyolo.pipeline.report import StreamReport

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives every processed frame.

    ``write`` is called from inference threads (several at once, but one stream only ever
    from one thread, in order); it must be quick or apply deliberate back-pressure.
    ``open`` runs before any thread starts (do the I/O that can fail there), ``close``
    after every inference thread has ended.
    """

    def open(self) -> None: ...

    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class FileSink(Protocol):
    """A sink that writes files per stream (the recorder, the clips): the summary lists them."""

    files_kind: str
    """What the files are, as the summary lists them: ``recordings`` or ``clips``."""

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every stream's files so far, oldest first."""
        ...


@runtime_checkable
class ReportsErrors(Protocol):
    """A sink that reports a stream's trouble that does not stop it (a recording paused by a
    full disk), for the stream's status."""

    def report_errors_to(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(stream, message)`` for such trouble from now on."""
        ...


@runtime_checkable
class LooksAtStreams(Protocol):
    """A sink that is shown every stream's numbers now and then (the events sink: Home
    Assistant's sensors of each stream's frame rates)."""

    def look(self, reports: list[StreamReport], now: float, overload: Mapping[str, Any] | None = None) -> None:
        """The streams' ``reports`` at ``now`` (the pipeline's clock), every 10 s or so, and
        while the machine cannot keep up with the live streams, ``overload``
        (:attr:`~streamyolo.pipeline.monitor.Monitor.overload`); from the pipeline's monitor thread."""
        ...


@runtime_checkable
class WatchesStreams(Protocol):
    """A sink that hears of every stream's changes of state (the events sink)."""

    def stream_changed(self, stream: str, state: str, error: str | None) -> None:
        """``stream`` is now in ``state`` (``streaming``, ``reconnecting`` …), with ``error``
        when the change had one; called from the thread that changed it."""
        ...


@runtime_checkable
class EndsStreams(Protocol):
    """A sink that finishes what it writes of a stream removed while the run goes on (a reload):
    the recorder's file, the clip, the window's tile."""

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        """``stream`` has been removed and its last result written: finish its outputs now
        (``restarting``: a reload restarts it with new settings; it is added again next)."""
        ...


@runtime_checkable
class ChecksItself(Protocol):
    """A sink that can say, before the run, whether it will be able to write (``streamyolo
    check``; its ``open`` checks the same first)."""

    def check(self) -> None:
        """Raise :class:`~streamyolo.errors.OutputError` naming what cannot be written; may
        create the sink's folders, as ``open`` would, but writes nothing else."""
        ...


def check_writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and make sure we can write into it; one clear error if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {str(folder)!r} cannot be created: {exc.strerror or exc}") from exc
    if not folder.is_dir():
        raise OutputError(f"{what} {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(folder)!r} is not writable")


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """A number of bytes: a number, or a number with ``KB``, ``MB``, ``GB`` or ``TB`` (powers of
    1000; ``KiB`` … ``TiB``: of 1024), at least 1 MB.

    >>> parse_size("50GB"), parse_size("1.5 tb"), parse_size("512MiB"), parse_size(2_000_000)
    (50000000000, 1500000000000, 536870912, 2000000)
    """
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        raise ValueError("must be bytes, or a number with KB, MB, GB or TB (like 500GB)")
    unit = (match.group(2) or "").lower()
    size = int(float(match.group(1)) * ((1024 if unit.endswith("i") else 1000) ** (" kmgt".index(unit[:1] or " "))))
    if size < 1_000_000:
        raise ValueError("must be 1 MB or more")
    return size


def format_size(size: float) -> str:
    """A number of bytes, shortly (powers of 1000, as :func:`parse_size` reads them).

    >>> format_size(50_000_000_000), format_size(1_250_000), format_size(999)
    ('50 GB', '1.25 MB', '999 B')
    """
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


def delete_beyond(folder: Path, limit: int, matches: Callable[[str], bool],
                  writing: Collection[Path] = ()) -> list[Path]:
    """Delete the oldest files of ``folder`` whose names ``matches`` (by modification time)
    until those left take at most ``limit`` bytes (retention by size: ``record_max_size``,
    ``clips_max_size``); never those being ``writing`` (which count all the same), nothing else
    in the folder. Returns what was deleted, sorted."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        try:
            if matches(entry.name) and entry.is_file(follow_symlinks=False):
                status = entry.stat()
                found.append((status.st_mtime, entry.name, status.st_size, Path(entry.path)))
        except FileNotFoundError:
            continue
    total = sum(size for _, _, size, _ in found)
    protected = {Path(path).resolve() for path in writing}
    deleted = []
    for _, _, size, path in sorted(found):
        if total <= limit:
            break
        if path.resolve() in protected:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # deleted meanwhile (another run on the same folder)
        total -= size
        deleted.append(path)
    return sorted(deleted)


def delete_older(folder: Path, keep: float, matches: Callable[[str], bool]) -> list[Path]:
    """Delete the files of ``folder`` whose names ``matches`` and that were last written more
    than ``keep`` seconds ago (retention: ``record_keep``, ``snapshots_keep``); nothing else is
    touched, links and folders included. A folder that is not there (a clean-up removed it)
    holds nothing to delete. Returns what was deleted, sorted."""
    horizon = time.time() - keep
    deleted = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not matches(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < horizon:
                os.unlink(entry.path)
                deleted.append(Path(entry.path))
        except FileNotFoundError:
            continue  # deleted meanwhile (another run on the same folder)
    return sorted(deleted)


def split_url(url: str, schemes: Sequence[str]) -> SplitResult:
    """``url``, split, if it is a URL of one of ``schemes`` with a host (and a valid port, if
    any); else a ``ValueError`` saying what is wrong (the config error names the key).

    >>> split_url("http://127.0.0.1:9000/hook", ("http", "https")).port
    9000
    >>> split_url("ftp://example.com/", ("http", "https"))
    Traceback (most recent call last):
    ValueError: must be an http:// or https:// URL
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port out of range)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in schemes:
        raise ValueError("must be an " + " or ".join(f"{scheme}://" for scheme in schemes) + " URL")
    if not parts.hostname:
        raise ValueError("has no host")
    return parts


RETRY_SECONDS = 10.0
"""How often an output that could not write (a full disk) tries again."""


class PauseBoard:
    """The outputs of one run that are paused now, and who is told of each pause and its end
    (:func:`listen_to_pauses`, :func:`paused_outputs`). A run built from a config has its own
    (:func:`pauses_of`), so two runs in one program keep theirs apart; an output takes the board
    that is :func:`current_board` where it is made (its owner's, for one made later)."""

    def __init__(self) -> None:
        self.open: weakref.WeakSet[OutputPause] = weakref.WeakSet()  # every output's, until its check()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # told of every pause and its end
        self.lock = threading.Lock()


_DEFAULT_BOARD = PauseBoard()
_BOARD: contextvars.ContextVar[PauseBoard] = contextvars.ContextVar("pause board", default=_DEFAULT_BOARD)


def current_board() -> PauseBoard:
    """The board the outputs made here and now report to (the program's, outside :func:`pauses_of`)."""
    return _BOARD.get()


@contextlib.contextmanager
def pauses_of(board: PauseBoard) -> Iterator[PauseBoard]:
    """Within it, the outputs made (and the pages and events sinks that look at them) use ``board``."""
    token = _BOARD.set(board)
    try:
        yield board
    finally:
        _BOARD.reset(token)


def listen_to_pauses(listener: Callable[[dict[str, Any]], None],
                     board: PauseBoard | None = None) -> Callable[[], None]:
    """Call ``listener`` with an ``output`` event each time an output (of ``board``, default:
    :func:`current_board`) pauses (a full disk) and
    each time it writes again: ``{"time", "stream" (the stream whose output it is; "" for the
    run's: the JSONL …), "event": "output", "output", "state": "paused", "error"}`` and
    ``{…, "state": "writing", "seconds", "lost", "unit"}`` (the events sink hands them out, to
    the webhook, the broker and the events file); :func:`paused_outputs` already says the
    output's new state. It is called in the writing thread, at times under the output's lock: it
    only hands the event on. Returns what stops the calls."""
    board = board or current_board()
    with board.lock:
        board.listeners.append(listener)

    def stop() -> None:
        with board.lock:
            if listener in board.listeners:
                board.listeners.remove(listener)

    return stop


def _tell(board: PauseBoard, event: dict[str, Any]) -> None:
    with board.lock:
        listeners = list(board.listeners)
    for listener in listeners:
        try:
            listener(dict(event))
        except Exception:  # a listener's trouble never stops the output
            log.exception("an output's pause could not be told")


def paused_outputs(board: PauseBoard | None = None) -> list[dict[str, Any]]:
    """The outputs (of ``board``, default: :func:`current_board`) paused now (a full disk):
    ``[{"output", "stream", "since" (seconds since the epoch), "error", "lost", "unit"}, …]``, the earliest
    paused first; what ``/status.json`` and the page say (a recording "on" that writes nothing, seen)."""
    board = board or current_board()
    with board.lock:
        pauses = list(board.open)
    found = [pause.state() for pause in pauses]
    return sorted((state for state in found if state is not None), key=lambda state: (state["since"], state["output"]))


class OutputPause:
    """An output that could not write (a full disk, a network share gone) pauses and tries
    again every ``retry`` seconds instead of giving up for the rest of the run: a box whose
    disk filled up records again once space is freed (``record_keep``, a cron job, a person).
    It says once when it stops and once when it is back, counting what it lost, and
    :meth:`check` raises at the end of the run if it lost anything. One per output (a stream's
    recording, a JSONL file); not thread-safe (its owner calls it from one thread, or under
    its own lock)."""

    def __init__(self, what: str, unit: str, retry: float | None = None, clock: Clock = time.monotonic,
                 stream: str | None = None, board: PauseBoard | None = None) -> None:
        """``retry``: seconds between tries (default: ``RETRY_SECONDS``); ``stream``: the
        stream whose output it is (a recording), named in its events; ``board``: the run's
        (default: :func:`current_board`)."""
        self.what = what
        self.unit = unit
        self.stream = stream
        self.retry = RETRY_SECONDS if retry is None else retry
        self._clock = clock
        self.lost = 0
        self._lost_now = 0
        self._since: float | None = None  # paused since
        self._since_wall = 0.0  # the same, seconds since the epoch
        self._error = ""  # why it is paused
        self._retry_at = 0.0
        self._first: str | None = None
        self.board = board or current_board()
        with self.board.lock:
            self.board.open.add(self)

    @property
    def paused(self) -> bool:
        return self._since is not None

    def due(self) -> bool:
        """Whether to write now: not paused, or time to try again; else the item is lost."""
        if self._since is None or self._clock() >= self._retry_at:
            return True
        self._count_lost()
        return False

    def failed(self, error: BaseException, lost: bool = True) -> str | None:
        """Writing one item failed (it is lost, unless ``lost`` is false: it will be written
        again later): pause. Returns the message logged when this starts a pause (None when a
        try during one failed again)."""
        now = self._clock()
        self._retry_at = now + self.retry
        if lost:
            self._count_lost()
        if self._since is not None:
            log.debug("%s: still cannot write: %s", self.what, error)
            return None
        self._since, self._since_wall = now, time.time()
        self._error = str(getattr(error, "strerror", None) or error)
        self._first = self._first or f"{type(error).__name__}: {error}"
        message = f"{self.what}: cannot write ({error}); paused, trying again every {self.retry:g} s"
        log.error("%s", message)
        _tell(self.board, {**self._event("paused"), "error": self._error})
        return message

    def skip(self) -> None:
        """An item is lost without a try: it belonged to a file a failed write ended."""
        self._count_lost()

    def lose(self, count: int, why: str) -> None:
        """``count`` items lost without a write failing (``why``: the output fell behind);
        said once, counted always."""
        if self._first is None:
            log.error("%s: %d %s lost: %s", self.what, count, self.unit, why)
        else:
            log.debug("%s: %d more %s lost: %s", self.what, count, self.unit, why)
        self._first = self._first or why
        self.lost += count

    def succeeded(self) -> None:
        """An item was written: a pause, if any, is over."""
        if self._since is None:
            return
        seconds = self._clock() - self._since
        lost, self._since, self._lost_now = self._lost_now, None, 0  # (over before it is told: no longer paused)
        log.warning("%s: writing again after %.0f s; %d %s lost meanwhile", self.what, seconds, lost, self.unit)
        _tell(self.board, {**self._event("writing"), "seconds": round(seconds, 3), "lost": lost, "unit": self.unit})

    def _event(self, state: str) -> dict[str, Any]:
        return {"time": round(time.time(), 3), "stream": self.stream or "", "event": "output", "output": self.what,
                "state": state}

    def state(self) -> dict[str, Any] | None:
        """While paused, ``{"output", "stream", "since", "error", "lost", "unit"}`` (``stream``: ""
        for an output of the run's; ``lost``: in this pause); else ``None``. (Read from another
        thread: a moment's numbers.)"""
        since = self._since_wall
        if self._since is None:
            return None
        return {"output": self.what, "stream": self.stream or "", "since": since, "error": self._error,
                "lost": self._lost_now, "unit": self.unit}

    def check(self) -> None:
        """At the end: raise :class:`OutputsIncompleteError` if anything was lost."""
        with self.board.lock:
            self.board.open.discard(self)  # (closed: no longer paused, whatever it was)
        if self.lost:
            raise OutputsIncompleteError(f"{self.what}: {self.lost} {self.unit} could not be written "
                                         f"(first: {self._first})")

    @staticmethod
    def check_all(pauses: Iterable[OutputPause]) -> None:
        """:meth:`check` each of ``pauses``: one :class:`OutputsIncompleteError` naming every
        output that lost something (each stream's recording, not only the first)."""
        lost = []
        for pause in pauses:
            try:
                pause.check()
            except OutputsIncompleteError as exc:
                lost.append(str(exc))
        if lost:
            raise OutputsIncompleteError.joined(lost)

    def _count_lost(self) -> None:
        self.lost += 1
        self._lost_now += 1


def write_picture(path: Path, image: Image, quality: int = 95) -> None:
    """Save ``image`` as ``path`` (JPEG at ``quality``, or PNG, by its suffix), whole: under a
    hidden temporary name first, then renamed, so a reader never finds half a picture and a
    full disk leaves none. Raises :class:`OSError` when it cannot be written."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"{path.suffix} encoding failed")
    write_whole(path, encoded.tobytes())


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path`` whole: under a hidden temporary name first, then renamed.
    Raises :class:`OSError` when it cannot be written."""
    part = path.with_name(f".{path.name}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        part.replace(path)
    except OSError:
        part.unlink(missing_ok=True)
        raise


class BackgroundWriter:
    """Runs an output's writes in a thread of its own (so inference threads never wait for a
    disk), one at a time, in order; a write that raises :class:`OSError` pauses the output as
    :class:`OutputPause` says (the writes that come meanwhile are lost, and counted), and
    :meth:`close` raises at the end if any was lost. ``saved``: every path the writes returned."""

    def __init__(self, name: str, what: str, unit: str) -> None:
        self.saved: list[Path] = []
        self._pause = OutputPause(what, unit)
        self._queue: queue.SimpleQueue[tuple[Callable[[], Path | None], bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name)

    def start(self) -> None:
        self._thread.start()

    def put(self, write: Callable[[], Path | None], optional: bool = False) -> None:
        """Run ``write`` (which returns the path it wrote, or ``None`` for nothing) in turn.
        An ``optional`` write (one a later write makes good) is skipped while the output is
        paused, and never counted as lost."""
        self._queue.put((write, optional))

    def close(self) -> None:
        """Run what was put, then raise :class:`~streamyolo.errors.OutputsIncompleteError` if
        anything was lost."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()
        self._pause.check()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            write, optional = item
            if optional and self._pause.paused:
                continue
            if not self._pause.due():
                continue
            try:
                path = write()
            except OSError as exc:
                self._pause.failed(exc, lost=not optional)
                continue
            except Exception:  # one write's trouble never ends the others
                log.exception("%s: a write failed", self._thread.name)
                continue
            self._pause.succeeded()
            if path is not None:
                self.saved.append(path)


class FanOut:
    """Writes each result to every sink. A sink that raises for a stream is reported once
    (through ``on_error``) and skipped for that stream from then on; the others go on."""

    def __init__(self, sinks: Sequence[Sink], on_error: Callable[[str, str], None] | None = None) -> None:
        self.sinks = list(sinks)
        self._on_error = on_error
        if on_error is not None:
            for sink in self.sinks:
                if isinstance(sink, ReportsErrors):
                    sink.report_errors_to(on_error)
        self._broken: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open()
                opened.append(sink)
        except BaseException:
            for sink in reversed(opened):
                sink.close()
            raise

    def write(self, result: Result) -> None:
        for index, sink in enumerate(self.sinks):
            key = (index, result.stream)
            if key in self._broken:
                continue
            try:
                sink.write(result)
            except Exception as exc:
                with self._lock:
                    self._broken.add(key)
                message = f"{type(sink).__name__} failed for stream {result.stream!r}: {exc}"
                log.error("%s", message)
                if self._on_error is not None:
                    self._on_error(result.stream, message)

    def end_stream(self, stream: str, restarting: bool = False) -> None:
        """``stream`` was removed (:class:`EndsStreams`); a sink that fails at it is reported,
        the others still finish theirs. One added again under its name is written afresh."""
        for sink in self.sinks:
            if not isinstance(sink, EndsStreams):
                continue
            try:
                sink.end_stream(stream, restarting)
            except Exception as exc:
                log.error("%s failed to finish stream %r: %s", type(sink).__name__, stream, exc)
        with self._lock:
            self._broken = {key for key in self._broken if key[1] != stream}

    def close(self) -> None:
        first: BaseException | None = None
        lost: list[str] = []  # (what each output lost: all said)
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as exc:
                log.error("closing %s failed: %s", type(sink).__name__, exc)
                first = first or exc
                lost.extend(exc.lost if isinstance(exc, OutputsIncompleteError) else ())
        if isinstance(first, OutputsIncompleteError) and len(lost) > len(first.lost):
            raise OutputsIncompleteError.joined(lost) from first
        if first is not None:
            raise first
