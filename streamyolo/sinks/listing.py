"""Listings of a folder of videos (the recordings, the clips) for the web page:
``/recordings.json`` and ``/clips.json`` (:mod:`streamyolo.sinks.web`). A month of 24/7 segments is
tens of thousands of files: a listing looks at the folder's names once and reads the times only
of the files that can be in its answer (the newest, or a stream's of a span).
"""

from __future__ import annotations

import bisect
import heapq
import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamyolo.sinks.export import segment_start
from streamyolo.sinks.history import limit_of, parse_names, span_of
from streamyolo.sinks.recorder import OBJECTS_SUFFIX, recording_of

LIST_MOST = 500
"""Files ``/recordings.json`` (``/clips.json``) lists when not asked for a number: the newest (the
page's list; older recordings are on its timeline, a day at a time)."""
FILES_MOST = 5000
"""Most files one ``/recordings.json?limit=…`` (``/clips.json``) lists (the page's timeline asks this
many for the span it shows)."""
ENDS_WITHIN = 3600.0
"""Seconds after the next file of its sequence starts (``cam-20261206-101000.mp4`` after
``cam-20261206-100000.mp4``) within which a segment or clip was last written: a listing looks no
further back than that for a span's files or for the newest, rather than reading every file's
time (an hour: names in local time go back one in autumn)."""

@dataclass(frozen=True, slots=True)
class FilesQuery:
    """Which files of a folder of videos a listing gives (``/recordings.json``, ``/clips.json``):
    those of ``streams`` (the run's, as each file's ``stream`` says; ``None``: every file) that
    hold some of the span from ``since`` (seconds since the epoch, included) to ``until``
    (excluded; ``None``: open), the newest ``limit`` of them (``None``: :data:`LIST_MOST`). A
    segment holds its name's moment to its last write, another file only the moment of its last
    write.

    >>> span = FilesQuery(since=100.0, until=200.0)
    >>> span.holds(50.0, 150.0), span.holds(50.0, 99.0), span.holds(200.0, 250.0), span.holds(None, 150.0)
    (True, False, False, True)
    """

    streams: frozenset[str] | None = None
    since: float | None = None
    until: float | None = None
    limit: int | None = None

    def holds(self, start: float | None, modified: float) -> bool:
        """Whether a file that starts at ``start`` (``None``: not a segment) and was last
        written at ``modified`` holds some of the span."""
        first = modified if start is None else start
        return (self.since is None or modified >= self.since) and (self.until is None or first < self.until)


def files_query(fields: Mapping[str, list[str]]) -> FilesQuery:
    """The listing a request's fields ask for: ``stream`` (repeatable or comma-separated),
    ``from`` and ``to`` (seconds since the epoch), ``limit`` (up to :data:`FILES_MOST`).
    Raises ``ValueError`` naming the field at fault.

    >>> files_query({"stream": ["a,b"], "from": ["100"], "limit": ["20"]})
    FilesQuery(streams=frozenset({...}), since=100.0, until=None, limit=20)
    """
    since, until = span_of(fields)
    return FilesQuery(parse_names(fields.get("stream"), "stream"), since, until, limit_of(fields, FILES_MOST))


_STAMPED = re.compile(r"-\d{8}-\d{6}(?:-\d+)?(?:-objects)?\.mp4$")
"""A segment's (or a clip's) name, as :func:`~streamyolo.sinks.export.segment_start` reads it: what
comes before the time names the sequence (the stream) it belongs to."""


def _a_video(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.name.endswith(".mp4") and entry.is_file(follow_symlinks=False)  # (no link: nothing outside)
    except OSError:
        return False


def _start_or_earliest(name: str) -> float:
    """A segment's start by its name; a name with no real time in it as the earliest (looking
    for a span's end, it errs towards looking at more files)."""
    start = segment_start(name)
    return -math.inf if start is None else start


def newest_files(folder: Path, runs: Mapping[str, list[str]], loose: Sequence[str],
                 owners: Mapping[str, str | None], query: FilesQuery, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` of the files of ``folder`` that ``query`` asks for (as
    :func:`list_videos` lists them), and whether there were more: of the segments
    ``runs`` (those of each sequence) and the ``loose`` files (without a time in their names).

    Reads the times only of the files that may be among them: every file without a time in its
    name, and the segments of each sequence (by their names) from the last that starts before
    ``until`` back, until one whose next starts :data:`ENDS_WITHIN` before ``since``, or before
    the ``limit`` newest found so far were written: a month of segments costs the names of the
    folder and the times of a day's (or of the newest ``limit``).
    """
    found: list[dict[str, Any]] = []
    newest: list[float] = []  # the latest `limit` writes found: a min-heap, [0] the earliest of them

    def look(name: str, start: float | None) -> None:
        try:
            info = os.stat(folder / name, follow_symlinks=False)
        except OSError:
            return  # deleted meanwhile (record_keep)
        if query.holds(start, info.st_mtime):
            found.append({"name": name, "stream": owners[name], "size": info.st_size, "modified": info.st_mtime,
                          "objects": name.endswith(OBJECTS_SUFFIX), "start": start})
            (heapq.heappush if len(newest) < limit else heapq.heappushpop)(newest, info.st_mtime)

    for name in loose:
        look(name, None)
    # Each sequence's next segment to look at (going back), and the latest it can have been written.
    walks: list[tuple[float, str, int]] = []
    for key, run in runs.items():
        run.sort()
        last = len(run) if query.until is None else bisect.bisect_left(
            run, query.until + ENDS_WITHIN, key=_start_or_earliest)
        after = segment_start(run[last]) if last < len(run) else None
        if last > 0:
            walks.append((-math.inf if after is None else -(after + ENDS_WITHIN), key, last - 1))
    heapq.heapify(walks)
    while walks:
        latest, key, index = heapq.heappop(walks)
        if query.since is not None and -latest < query.since:
            continue  # this sequence's earlier segments ended before the span
        if len(found) > limit and -latest < newest[0]:
            break  # nothing left is among the newest
        start = segment_start(runs[key][index])
        look(runs[key][index], start)
        if index > 0:
            heapq.heappush(walks, (latest if start is None else -(start + ENDS_WITHIN), key, index - 1))
    found.sort(key=lambda f: (-f["modified"], f["name"]))
    return found[:limit], len(found) > limit


def _sequence(video: str) -> str | None:
    """The sequence a segment (or clip) belongs to: its name up to its time (``None``: a file
    without a time in its name)."""
    stamp = _STAMPED.search(video)
    return None if stamp is None else video[:stamp.start()]


def video_owners(videos: Iterable[str], streams: Collection[str]) -> tuple[dict[str, str | None],
                                                                          dict[str, str | None]]:
    """Each of ``videos`` (names of a recordings or clips folder) with the one of ``streams``
    whose file it is (``None``: none of them), and each sequence of segments with its stream.

    >>> video_owners(["cam-2-20261206-100000.mp4", "cam-20261206-100000.mp4", "old.mp4"], ["cam", "cam-2"])[0]
    {'cam-2-20261206-100000.mp4': 'cam-2', 'cam-20261206-100000.mp4': 'cam', 'old.mp4': None}
    """
    names = sorted(streams, key=len, reverse=True)  # "cam-2" before "cam"
    owners: dict[str, str | None] = {}
    sequences: dict[str, str | None] = {}
    for video in videos:
        sequence = _sequence(video)
        if sequence is not None and sequence in sequences:
            owner = sequences[sequence]  # (a sequence's files are one stream's: matched once)
        else:
            owner = next((n for n in names if video.startswith(n) and recording_of(video, n)), None)
            if sequence is not None:
                sequences[sequence] = owner
        owners[video] = owner
    return owners, sequences


def list_videos(folder: Path | None, streams: Collection[str], query: FilesQuery) -> dict[str, Any]:
    """The MP4s of ``folder`` that ``query`` asks for, as ``/recordings.json`` answers: ``{"files":
    [{name, stream, size, modified, objects, start}, …], "more", "streams", "segmented"}``, each
    file's ``stream`` the one of ``streams`` (the run's) whose file it is (``None``: none of them)."""
    nothing: dict[str, Any] = {"files": [], "more": False, "streams": [], "segmented": []}
    if folder is None:
        return nothing
    try:
        with os.scandir(folder) as entries:  # the one look at the folder; files' times as needed
            videos = [entry.name for entry in entries if _a_video(entry)]
    except OSError:
        return nothing
    owners, sequences = video_owners(videos, streams)
    runs: dict[str, list[str]] = {}  # the segments of each sequence asked for
    loose = []  # the files without a time in their names asked for
    for video, owner in owners.items():
        if query.streams is not None and owner not in query.streams:
            continue
        sequence = _sequence(video)
        if sequence is None:
            loose.append(video)
        else:
            runs.setdefault(sequence, []).append(video)
    limit = LIST_MOST if query.limit is None else query.limit
    files, more = newest_files(folder, runs, loose, owners, query, limit)
    return {"files": files, "more": more, "streams": sorted({n for n in owners.values() if n is not None}),
            "segmented": sorted({n for n in sequences.values() if n is not None})}
