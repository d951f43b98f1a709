"""What the run's folders of files take on their disks, and what is left: the recordings, the
clips, the snapshots. For ``/status.json`` (``"storage"``), ``/metrics`` and the web page
(:mod:`streamyolo.sinks.web`): how much each stream's recordings take, since when, how much was
written in the last day, and how much room the disk has, so a box's owner sees how many days
fit before the disk is full (and Prometheus can warn before it is).

A month of 24/7 segments is tens of thousands of files (34,560 looked at in 0.2 s here): the
folders are looked at every :data:`LOOK_EVERY` seconds at most, and never for more than
:data:`LOOKING_MOST` of the time (a slow network share), by the first request after that.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from streamyolo.clock import Clock
from streamyolo.sinks.listing import video_owners

LOOK_EVERY = 30.0
"""Seconds a look at the folders is used for, at least, before a request looks again."""
LOOKING_MOST = 0.01
"""The most of the time the looks take (a look of 2 s is used for 200 s)."""

DAY = 86400.0


def folder_use(folder: Path, suffix: str, streams: Collection[str] | None, now: float) -> dict[str, Any]:
    """The files of ``folder`` ending in ``suffix`` (none of its folders, no links): ``{"path",
    "bytes", "files", "oldest", "last_day", "free", "total"}``, ``oldest`` the oldest file's last
    write (seconds since the epoch; ``None``: no file), ``last_day`` the bytes of the files
    written in the day before ``now``, ``free`` and ``total`` its disk's (``None`` when the
    folder is not there); with ``streams`` (videos named after them), also ``"streams": {name:
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
    if streams is not None:
        owned: dict[str, list[tuple[int, float]]] = {}
        for name, owner in video_owners(sizes, streams)[0].items():
            if owner is not None:
                owned.setdefault(owner, []).append(sizes[name])
        use["streams"] = {owner: {key: value for key, value in _totals(files, now).items() if key != "last_day"}
                          for owner, files in sorted(owned.items())}
    return use


def _totals(files: Collection[tuple[int, float]], now: float) -> dict[str, Any]:
    return {"bytes": sum(size for size, _ in files), "files": len(files),
            "oldest": min((modified for _, modified in files), default=None),
            "last_day": sum(size for size, modified in files if modified > now - DAY)}


class Storage:
    """The use of ``folders`` (what each is called: its path and the suffix of its files),
    looked at again at most every ``every`` seconds (and :data:`LOOKING_MOST` of the time);
    ``streams``: the run's streams now, whose recordings and clips are counted each. Thread-safe: one request looks, the
    others meanwhile wait for its answer."""

    def __init__(self, folders: Mapping[str, tuple[Path, str]], streams: Callable[[], list[str]],
                 every: float = LOOK_EVERY, clock: Clock = time.monotonic) -> None:
        self.folders = dict(folders)
        self._streams = streams
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._looked: tuple[float, dict[str, Any]] | None = None  # when next to look, and what was seen

    def use(self) -> dict[str, Any]:
        """``{what: folder_use(…)}`` for each folder (``"looked"``: when, seconds since the epoch)."""
        with self._lock:
            if self._looked is None or self._clock() >= self._looked[0]:
                began, now, streams = self._clock(), time.time(), self._streams()
                use = {what: folder_use(path, suffix, streams if suffix == ".mp4" else None, now)
                       for what, (path, suffix) in self.folders.items()}
                took = self._clock() - began
                self._looked = (began + max(self._every, took / LOOKING_MOST), {**use, "looked": now})
            return self._looked[1]
