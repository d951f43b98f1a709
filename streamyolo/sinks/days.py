"""A line file's days (``events_keep``, ``jsonl_keep``, ``stats_keep``), for a box without
``logrotate`` (a container): at the first line after local midnight the file is moved to
``<name>-YYYYmmdd`` (the day its lines are of) and a new one started at its path; the day is
then compressed to ``<name>-YYYYmmdd.gz`` in a thread of its own, and the days last written
more than ``keep`` ago are deleted. These are the names ``logrotate``'s ``dateext`` gives, which
``streamyolo events`` and the web page search (:mod:`streamyolo.sinks.history`) and a follower
follows. A day compressed keeps its last write's time (what retention and the search go by);
one left uncompressed by a run that ended meanwhile is compressed by the next.

>>> import time
>>> start = time.mktime((2026, 12, 5, 22, 30, 0, 0, 0, -1))
>>> time.strftime("%Y-%m-%d %H:%M", time.localtime(next_midnight(start)))
'2026-12-06 00:00'
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import threading
import time
from pathlib import Path

from streamyolo.clock import Clock, format_seconds
from streamyolo.sinks.base import delete_older

log = logging.getLogger(__name__)

DAY = r"-(\d{8})(\d\d)?"
"""How a day's file is named after the file: ``-YYYYmmdd`` (``-YYYYmmddHH`` when that day's name
was taken: a clock set back)."""

_BLOCK = 1 << 20  # bytes compressed at a time (a stop is noticed between two)
_JOIN = 10.0  # seconds close() lets the compressing thread finish (and then waits for it to stop)


def next_midnight(moment: float) -> float:
    """The first local midnight after ``moment`` (seconds since the epoch)."""
    at = time.localtime(moment)
    return time.mktime((at.tm_year, at.tm_mon, at.tm_mday + 1, 0, 0, 0, 0, 0, -1))


class DailyFiles:
    """The days of the line file ``path`` (``what``: how errors name it), kept ``keep`` seconds
    after their last write. :class:`~streamyolo.sinks.jsonl.LineFile` calls :meth:`opened`,
    then, while it holds the file closed, :meth:`rotate` whenever :meth:`due`. Not thread-safe
    (the line file's lock covers it)."""

    def __init__(self, path: Path, what: str, keep: float, wall: Clock = time.time) -> None:
        self.path = path
        self.what = what
        self.keep = keep
        self._wall = wall
        self._days = re.compile(re.escape(path.name) + DAY)
        self._ends = 0.0  # when the open file's day ends
        self._day = ""  # that day, as its file is named
        self._stop = threading.Event()
        self._tidying: threading.Thread | None = None  # compressing and deleting days, while it does
        self._again = False  # asked to look at the days again (a day moved away meanwhile)
        self._tidy_lock = threading.Lock()

    def opened(self) -> None:
        """The file was opened: its day is that of its last line (an earlier run's file), or today;
        the days left uncompressed are compressed and the old ones deleted."""
        try:
            size, written = (found := self.path.stat()).st_size, found.st_mtime
        except OSError:
            size, written = 0, 0.0
        self._begin(written if size else self._wall())
        self._tidy()

    def due(self) -> bool:
        """Whether the file's day has ended: it is to be moved away before the next line."""
        return self._wall() >= self._ends

    def rotate(self) -> None:
        """Move the (closed) file to its day's name; a new day begins. A file that cannot be
        moved (permissions, a day's names all taken) is said and written on."""
        now = self._wall()
        hour = time.strftime("%H", time.localtime(now))
        names = (f"{self.path.name}-{self._day}", f"{self.path.name}-{self._day}{hour}")
        self._begin(now)
        target = next((self.path.with_name(name) for name in names if not self.path.with_name(name).exists()
                       and not self.path.with_name(name + ".gz").exists()), None)
        try:
            if target is None:
                raise FileExistsError(f"{' and '.join(names)} are taken")
            os.rename(self.path, target)
        except FileNotFoundError:
            return  # nothing written since it was moved away (logrotate, a clean-up)
        except OSError as exc:
            log.warning("%s %s: cannot move the day's lines away, writing on in it: %s", self.what, self.path,
                        getattr(exc, "strerror", None) or exc)
            return
        log.info("%s %s: the day's lines moved to %s", self.what, self.path, target.name)
        self._tidy()

    def close(self) -> None:
        """Let a day being compressed finish, for up to :data:`_JOIN` seconds; then stop (a day
        half done is left as it was, for the next run)."""
        with self._tidy_lock:
            tidying = self._tidying
        if tidying is None:
            return
        tidying.join(_JOIN)
        self._stop.set()
        tidying.join(_JOIN)
        if tidying.is_alive():
            log.warning("%s %s: compressing a day did not stop within %.0f s", self.what, self.path, _JOIN)

    def _begin(self, moment: float) -> None:
        self._day = time.strftime("%Y%m%d", time.localtime(moment))
        self._ends = next_midnight(moment)

    def _tidy(self) -> None:
        """Compress the days not yet compressed and delete the old ones, in a thread of its own;
        one at a time, never waited for: one still at work (compressing a big day an earlier run
        left) looks again before it ends."""
        with self._tidy_lock:
            self._again = True
            if self._tidying is None:
                self._tidying = threading.Thread(target=self._tidy_while_asked, name=f"rotate:{self.path.name}")
                self._tidying.start()

    def _tidy_while_asked(self) -> None:
        while True:
            with self._tidy_lock:
                if not self._again or self._stop.is_set():
                    self._tidying = None
                    return
                self._again = False
            self._tidy_days()

    def _tidy_days(self) -> None:
        try:
            folder = self.path.parent
            for entry in sorted(folder.iterdir()):
                if entry.name.endswith(".gz.part") and self._days.fullmatch(entry.name.removesuffix(".gz.part")):
                    entry.unlink(missing_ok=True)  # a run ended while compressing it: again, from the start
            for entry in sorted(folder.iterdir()):
                if self._days.fullmatch(entry.name) and not self._stop.is_set():
                    self._compress(entry)
            deleted = delete_older(folder, self.keep, lambda name: self._days.fullmatch(name.removesuffix(".gz"))
                                   is not None)
            if deleted:
                log.info("%s %s: deleted %d day(s) older than %s: %s", self.what, self.path, len(deleted),
                         format_seconds(self.keep), ", ".join(path.name for path in deleted))
        except OSError as exc:
            log.warning("%s %s: cannot compress or delete its days: %s", self.what, self.path, exc.strerror or exc)

    def _compress(self, day: Path) -> None:
        """``day`` into ``day.gz`` (through ``.gz.part``: never a half file by the search's
        name), with its time, then removed; left as it is when stopped."""
        part, done = day.with_name(day.name + ".gz.part"), day.with_name(day.name + ".gz")
        written = day.stat()
        with day.open("rb") as source, gzip.open(part, "wb") as target:
            while block := source.read(_BLOCK):
                if self._stop.is_set():
                    break
                target.write(block)
        if self._stop.is_set():
            part.unlink(missing_ok=True)
            return
        os.utime(part, ns=(written.st_atime_ns, written.st_mtime_ns))
        os.replace(part, done)
        day.unlink()
