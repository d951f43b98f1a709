"""What the run's folders of files take on their disks, and what is left: the recordings, the
clips, the snapshots. For ``/status.json`` (``"storage"``), ``/metrics`` and the web page
(:mod:`streamyolo.sinks.web`): how much each stream's recordings take, since when, how much was
written in the last day, and how much room the disk has, so a box's owner sees how many days
fit before the disk is full (and Prometheus can warn before it is).

A month of 24/7 segments is tens of thousands of files (34,560 looked at in 0.2 s here): the
folders are looked at every :data:`LOOK_EVERY` seconds, and never for more than
:data:`LOOKING_MOST` of the time (a slow network share): by a thread of their own while the run's
web page or Home Assistant's sensors (:mod:`streamyolo.sinks.mqtt`) use them (a request never
waits for a look but the first), else by the first request after that.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from streamyolo.clock import Clock
from streamyolo.sinks.listing import video_owners

log = logging.getLogger(__name__)

LOOK_EVERY = 30.0
"""Seconds a look at the folders is used for, at least, before a request looks again."""
LOOKING_MOST = 0.01
"""The most of the time the looks take (a look of 2 s is used for 200 s)."""

DAY = 86400.0


def folder_use(folder: Path, suffix: str, streams: Collection[str] | None, now: float) -> dict[str, Any]:
    """The files of ``folder`` ending in ``suffix`` (none of its folders, no links): ``{"path",
    "bytes", "files", "oldest", "last_day", "free", "total", "days_left"}``, ``oldest`` the oldest
    file's last write (seconds since the epoch; ``None``: no file), ``last_day`` the bytes of the
    files written in the day before ``now``, ``free`` and ``total`` its disk's (``None`` when the
    folder is not there), ``days_left`` how many days the free room lasts at the last day's rate
    (:func:`days_left`); with ``streams`` (videos named after them), also ``"streams": {name:
    {"bytes", "files", "oldest"}}`` for each stream with files there.
    """
    sizes: dict[str, tuple[int, float]] = {}
    free: int | None
    total: int | None
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        sizes[entry.name] = (info.st_size, info.st_mtime)
                except FileNotFoundError:
                    continue  # deleted meanwhile (retention)
        disk = shutil.disk_usage(folder)
        free, total = disk.free, disk.total
    except OSError:
        free = total = None
    use: dict[str, Any] = {"path": str(folder), **_totals(sizes.values(), now), "free": free, "total": total}
    use["days_left"] = days_left(use, now)
    if streams is not None:
        owned: dict[str, list[tuple[int, float]]] = {}
        for name, owner in video_owners(sizes, streams)[0].items():
            if owner is not None:
                owned.setdefault(owner, []).append(sizes[name])
        use["streams"] = {owner: {key: value for key, value in _totals(files, now).items() if key != "last_day"}
                          for owner, files in sorted(owned.items())}
    return use


def days_left(use: Mapping[str, Any], now: float) -> float | None:
    """How many days the disk's free room lasts at the rate the last day wrote (tenths of a
    day, down), once the folder has a day of files to go by (a fresh run's first minutes would
    promise millions of days); ``None``: not known (nothing written in the last day, no disk).

    >>> days_left({"free": 50e9, "last_day": 20e9, "oldest": 0.0}, 3 * DAY)
    2.5
    >>> days_left({"free": 50e9, "last_day": 20e9, "oldest": 2 * DAY}, 3 * DAY - 60) is None
    True
    """
    if use["free"] is None or not use["last_day"] or use["oldest"] is None or now - use["oldest"] < DAY:
        return None
    return float(math.floor(use["free"] / use["last_day"] * 10) / 10)  # (down: "about 2 days" while it is 2.97)


def _totals(files: Collection[tuple[int, float]], now: float) -> dict[str, Any]:
    return {"bytes": sum(size for size, _ in files), "files": len(files),
            "oldest": min((modified for _, modified in files), default=None),
            "last_day": sum(size for size, modified in files if modified > now - DAY)}


class Storage:
    """The use of ``folders`` (what each is called: its path and the suffix of its files),
    looked at again every ``every`` seconds (and :data:`LOOKING_MOST` of the time at most);
    ``streams``: the run's streams now, whose recordings and clips are counted each. Between
    :meth:`start` and :meth:`stop` a thread of its own looks and tells its listeners (:meth:`listen`);
    else the first :meth:`use` after that time looks. Thread-safe: while one looks, the others
    that find no earlier look wait for its answer."""

    def __init__(self, folders: Mapping[str, tuple[Path, str]], streams: Callable[[], list[str]] = list,
                 every: float = LOOK_EVERY, clock: Clock = time.monotonic) -> None:
        self.folders = dict(folders)
        self.streams = streams
        """The run's streams now (set once the run is built)."""
        self._every = every
        self._clock = clock
        self._looking = threading.Lock()
        self._looked: tuple[float, dict[str, Any]] | None = None  # when next to look, and what was seen
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._users = 0  # those that started the thread and have not stopped it
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()

    def use(self) -> dict[str, Any]:
        """``{what: folder_use(…)}`` for each folder (``"looked"``: when, seconds since the epoch)."""
        now, looked = self._clock(), self._looked
        if looked is not None and (self._thread is not None or now < looked[0]):
            return looked[1]
        with self._looking:
            looked = self._looked
            if looked is None or (self._thread is None and now >= looked[0]):
                looked = self._look()
            return looked[1]

    def _look(self) -> tuple[float, dict[str, Any]]:
        began, now, streams = self._clock(), time.time(), self.streams()
        use = {what: folder_use(path, suffix, streams if suffix == ".mp4" else None, now)
               for what, (path, suffix) in self.folders.items()}
        took = self._clock() - began
        self._looked = (began + max(self._every, took / LOOKING_MOST), {**use, "looked": now})
        return self._looked

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with each look's :meth:`use` (on the looking thread: see :meth:`start`)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Look now and then on a thread of its own, until as many :meth:`stop` calls."""
        with self._looking:
            self._users += 1
            if self._thread is not None:
                return
            self._halt = threading.Event()
            self._thread = threading.Thread(target=self._watch, args=(self._halt,), name="storage", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """The end of one :meth:`start`'s use; the last ends the thread (waiting up to
        ``timeout`` for a look on a slow share)."""
        with self._looking:
            self._users = max(0, self._users - 1)
            if self._users or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._halt.set()
        thread.join(timeout)

    def _watch(self, halt: threading.Event) -> None:
        while not halt.is_set():
            with self._looking:
                due, use = self._look()
            for listener in self._listeners:
                try:
                    listener(use)
                except Exception:  # a listener's trouble never stops the looks
                    log.exception("the folders' use could not be told")
            halt.wait(max(0.0, due - self._clock()))
