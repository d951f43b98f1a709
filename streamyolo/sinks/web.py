"""A web page of every stream, for boxes without a screen: ``--web [HOST:]PORT``.

A small HTTP server (the standard library's, one thread per client) serves:

- ``/``: the page: a tile per stream with its annotated video and its live numbers (state,
  fps in and out, frame age, dropped, reconnects, what its newest frame shows, last error),
  refreshed every second; a click on a tile shows that stream alone, another click all again;
  each tile's "detection on" button switches its stream's detection off and on, and a recorded
  stream's "recording on" its recording;
  with "points" on, clicks on a picture are points in the stream's own pixels, drawn over it
  and listed under it (``[[412, 640], [980, 655], …]``): a zone, line or mask to paste into
  the config;
- ``/streams/<name>.mjpg``: the stream's annotated frames as MJPEG
  (``multipart/x-mixed-replace``, which every browser shows in an ``<img>``), at most
  ``fps`` frames per second;
- ``/streams/<name>.jpg``: its newest annotated frame;
- ``POST /streams/<name>/detect`` (and ``/record``) with ``{"on": false}`` or ``{"on": true}``
  (JSON): the page's detection (recording) switch (:meth:`WebViewer.bind`'s ``switch``); only
  the page's own requests are taken: a JSON body (a form on another site cannot send one) and,
  when the browser says where the request comes from (``Origin``), this page (its ``Host``, or
  a proxy's ``X-Forwarded-Host``);
- ``/status.json``: ``{"running": bool, "streams": [{name, state, captured, processed,
  dropped, fps_in, fps_out, frame_age, reconnects, error, source, counts, detections}, …]}``,
  where ``detections`` counts the classes in the stream's newest processed frame
  (``{"person": 2}``), ``counts`` its counting lines' totals (``{"door": {"in": {"person":
  3}, "out": {}}}``), ``zones`` what its zones hold in that frame (``{"queue": {"person":
  2}}``), ``size`` its picture's ``[width, height]``, on a tracked stream
  ``zone_entries`` the objects that entered them so far, ``still`` the frames that took
  the last detections (``null`` unless the stream has ``motion``), and ``pictures`` those the
  model ran on (``null`` unless the stream has ``tiles``), ``detect`` false while its
  detection is switched off, ``record`` whether its recording is on (``null``: not recorded);
  ``"controls"``: whether the page has the switches;
  with process workers also ``"workers": {name: {"restarts": n}}``; once the config has been
  reloaded, ``"config": {"reloads": ok, "failed": n, "last_ok": bool, "last_at": epoch
  seconds, "last": what it said}``;
- ``/metrics``: the same numbers in Prometheus' text format (:mod:`streamyolo.sinks.metrics`);
- ``/healthz`` and ``/readyz``, for a container's liveness and readiness probes: 200 while the
  run is well (no thread worker hung) and ready (every model built), 503 when not, with
  ``{"ok", "ready", "hung"}`` (:meth:`Pipeline.liveness
  <streamyolo.pipeline.pipeline.Pipeline.liveness>`);
- with ``recordings`` (the recording folder): ``/recordings.json``, the newest
  :data:`LIST_MOST` MP4s in it (``{"files": [{name, stream, size, modified, objects, start}, …],
  "more": bool, "streams": […], "segmented": […]}``, newest first, ``stream`` the stream it
  belongs to, ``objects`` whether it is a segment in which objects were seen:
  ``record_keep_objects``, ``start`` when a segment starts, by its name; ``more``: older ones
  left out; ``streams``: the streams with recordings there), and
  ``?stream=…&from=…&to=…&limit=…``, those of some streams that hold some of a span
  (:class:`FilesQuery`; the page's timeline asks for its day's), from the folder's names and
  the times of those files alone, and
  ``/recordings/<file>.mp4``, the file itself with byte ranges (so a browser's player can seek),
  listed and played on the page (with "only the segments with objects" where there are some),
  and ``/export.mp4?stream=<name>&from=<epoch>&to=<epoch>``, the stream's recordings then (up
  to :data:`EXPORT_MOST` seconds) cut into one MP4 (:mod:`streamyolo.sinks.export`), sent as a
  download: the page's "export" form plays it and offers it to save;
- with ``events`` (the events sink's recent events): ``/events.json``, the newest 200 first
  (``{"events": [...]}``, as :mod:`streamyolo.sinks.events` writes them), listed on the page;
  ``/events.json?stream=…&event=…&class=…&from=…&to=…&limit=…``, a search: the newest that
  match, from the events file (``events_file``: every run's, :mod:`streamyolo.sinks.history`)
  or else the recent ones, with ``"more"`` when older ones match too; and
  with ``heatmaps``, ``/heatmaps/<stream>.jpg``: the stream's heatmap now (a "heatmaps" button
  shows them in the tiles instead of the videos, refreshed every 2 s);
  with ``snapshots`` (their folder) ``/snapshots/<file>.jpg``, shown when one is clicked, and with
  ``clips`` (their folder) ``/clips/<file>.mp4`` (byte ranges too), played from an event's "clip" link,
  and ``/clips.json``, the clips in the folder as ``/recordings.json`` lists recordings, listed on the page.

Inference threads only drop each result into a latest-result slot; frames are annotated
and JPEG-encoded in the client threads, only while someone watches, only the newest
frame, and once per frame however many clients watch it. Binds to 127.0.0.1 unless a host
is given: camera pictures stay on the box unless the user says otherwise. For a page reached
over the network, ``web_auth`` (``USER:PASSWORD``) asks every request for that login (HTTP
Basic, which every browser prompts for) and ``web_cert``/``web_key`` (PEM files) serve it over
HTTPS, so neither the pictures nor the password cross the network in clear text.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import hmac
import json
import logging
import math
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import cv2

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import Clock
from streamyolo.errors import ConfigError, OutputError
from streamyolo.frames import Image, Result
from streamyolo.sinks.events import RECENT
from streamyolo.sinks.export import default_name, segment_start
from streamyolo.sinks.export import export as cut_recordings
from streamyolo.sinks.history import EventQuery, events_query, find_events, parse_names
from streamyolo.sinks.latest import Latest, LatestResults
from streamyolo.sinks.metrics import CONTENT_TYPE as METRICS_TYPE
from streamyolo.sinks.metrics import metrics_text
from streamyolo.sinks.recorder import OBJECTS_SUFFIX, recording_of

if TYPE_CHECKING:
    from streamyolo.pipeline.report import StreamReport

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
_WAIT = 0.5  # seconds a client thread waits for a frame before looking at the server's state
_TEXT = "text/plain; charset=utf-8"
_SOCKET_TIMEOUT = 10.0  # seconds; a client that stops reading is dropped after this
_CHUNK = 256 * 1024  # bytes of a recording sent at a time
_MAX_POST = 1024  # bytes of a POST's body (the page's switches send a few)
SEARCH_MOST = 5000
"""Most events one search of the page's (``/events.json?…``) returns."""

EXPORT_MOST = 3600
"""Seconds of recordings the page exports at once (``/export.mp4``; ``streamyolo export`` any)."""
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
LOGIN_TRIES = 10
"""Wrong logins from one address within ``LOGIN_WINDOW`` seconds after which its requests are
refused for ``LOGIN_BLOCK`` seconds (429), whatever they send: guessing the password takes ages."""
LOGIN_WINDOW = 60.0
LOGIN_BLOCK = 60.0


def split_address(value: object) -> tuple[str, int] | None:
    """``8080``, ``":8080"``, ``"0.0.0.0:8080"`` or ``"[::1]:8080"`` → (host, port); ``None``
    for anything that is not such an address.

    >>> split_address("8080"), split_address("0.0.0.0:80"), split_address("[::1]:0"), split_address("x")
    (('127.0.0.1', 8080), ('0.0.0.0', 80), ('::1', 0), None)
    """
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    host, _, port_text = str(value).strip().rpartition(":")
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return host.strip("[]") or DEFAULT_HOST, int(port_text)


def _file_in(folder: Path | None, name: str, suffix: str) -> Path | None:
    """The file ``name`` of ``folder`` if it is a plain file name ending in ``suffix`` (no path,
    not hidden, not a link: nothing outside the folder is ever served), else ``None``.

    >>> _file_in(Path("/srv/rec"), "../etc/passwd.mp4", ".mp4") is None
    True
    """
    if folder is None or not name.endswith(suffix) or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = folder / name
    return path if path.is_file() and not path.is_symlink() else None


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
    moments: list[float | None] = []
    for key in ("from", "to"):
        given = (fields.get(key) or [""])[0]
        try:
            moment = float(given) if given else None
        except ValueError:
            moment = math.nan
        if moment is not None and not math.isfinite(moment):
            raise ValueError(f"{key}: {given!r} is not seconds since the epoch")
        moments.append(moment)
    given = (fields.get("limit") or [""])[0]
    limit = int(given) if re.fullmatch(r"[0-9]{1,9}", given) else None
    if "limit" in fields and (limit is None or not 0 < limit <= FILES_MOST):
        raise ValueError(f"limit: {given!r} is not a number from 1 to {FILES_MOST}")
    return FilesQuery(parse_names(fields.get("stream"), "stream"), moments[0], moments[1], limit)


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


def _newest(folder: Path, runs: Mapping[str, list[str]], loose: Sequence[str], owners: Mapping[str, str | None],
            query: FilesQuery, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` of the files of ``folder`` that ``query`` asks for (as
    :meth:`WebViewer.recording_files` lists them), and whether there were more: of the segments
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


def parse_address(value: str | int) -> tuple[str, int]:
    """:func:`split_address`, or a :class:`ConfigError` naming the config key."""
    found = split_address(value)
    if found is None:
        raise ConfigError(f"config key 'web': expected PORT or HOST:PORT with a port from 0 to 65535 (got {value!r})")
    return found


class WebViewer:
    """The web page sink. ``open`` starts listening (port 0: any free port, see ``url``);
    ``close`` stops the server and ends every client's video."""

    def __init__(self, address: str | int, annotator: BoxAnnotator | None = None, *, fps: float = 10.0,
                 controls: bool = True,
                 max_width: int = 960, quality: int = 80, auth: str | None = None,
                 cert: str | Path | None = None, key: str | Path | None = None,
                 recordings: str | Path | None = None,
                 events: Callable[[], list[dict[str, Any]]] | None = None, events_file: str | Path | None = None,
                 snapshots: str | Path | None = None, clips: str | Path | None = None,
                 heatmap: Callable[[str], Image | None] | None = None, clock: Clock = time.monotonic) -> None:
        self.host, self.port = parse_address(address)
        self.heatmap = heatmap
        """A stream's heatmap now (``heatmaps``; :meth:`HeatmapSink.picture`), for ``/heatmaps/``."""
        self.clips = None if clips is None else Path(clips)
        self.recordings = None if recordings is None else Path(recordings)
        self.events = events
        self.events_file = None if events_file is None else Path(events_file)
        """The events file (``--events``): where a search of the events looks (else the recent ones)."""
        self.snapshots = None if snapshots is None else Path(snapshots)
        try:
            self._login = check_login(auth).encode() if auth is not None else None
        except ValueError as exc:
            raise ConfigError(f"config key 'web_auth': {exc}") from None
        if key is not None and cert is None:
            raise ConfigError("config key 'web_key': needs 'web_cert' too (the certificate that goes with the key)")
        self._tls = tls_context(Path(cert), None if key is None else Path(key)) if cert is not None else None
        self._refused: set[str] = set()  # client addresses already logged for a wrong login
        self._wrong: dict[str, deque[float]] = {}  # each client address's recent wrong logins
        self._blocked: dict[str, float] = {}  # client addresses refused until then (too many wrong logins)
        self._refused_lock = threading.Lock()
        self._clock = clock
        self.annotator = annotator or BoxAnnotator()
        self.fps = fps
        self.max_width = max_width
        self.quality = quality
        self._latest = LatestResults()
        self._reports: Callable[[], Sequence[StreamReport]] = list
        self._running: Callable[[], bool] = lambda: not self._latest.closed
        self._workers: Callable[[], Mapping[str, Any]] = dict
        self._config: Callable[[], Mapping[str, Any]] = dict
        self._health: Callable[[], Mapping[str, Any]] = lambda: {"ok": self._running(), "ready": self._running(),
                                                                 "hung": []}
        self._switch: Callable[[str, str, bool], None] | None = None
        self._export_lock = threading.Lock()
        self.controls = controls
        """Whether the page's switches switch (``web_controls``); else its switch requests are refused."""
        self._encoded: dict[str, tuple[int, bytes]] = {}
        self._encode_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self, reports: Callable[[], Sequence[StreamReport]], running: Callable[[], bool] | None = None,
             workers: Callable[[], Mapping[str, Any]] | None = None,
             config: Callable[[], Mapping[str, Any]] | None = None,
             health: Callable[[], Mapping[str, Any]] | None = None,
             switch: Callable[[str, str, bool], None] | None = None) -> None:
        """Where the page's numbers come from: the pipeline's live per-stream reports (and
        the status's ``"workers"`` entry: its process workers' restarts; ``"config"``: what the
        config's reloads did; each left out while empty); ``health``: ``/healthz``'s;
        ``switch``: what switches a stream's detection or recording on or off (the page's
        switches, ``POST /streams/<name>/detect`` and ``/record``: ``switch(kind, stream, on)``,
        :meth:`~streamyolo.pipeline.pipeline.Pipeline.set_switch`)."""
        self._reports = reports
        self._switch = switch
        if health is not None:
            self._health = health
        if running is not None:
            self._running = running
        if workers is not None:
            self._workers = workers
        if config is not None:
            self._config = config

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}/"

    # -- Sink --------------------------------------------------------------------------

    def open(self) -> None:
        try:
            server = _Server((self.host, self.port), self, self._tls)
        except OSError as exc:
            raise OutputError(f"web page: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="web:server")
        self._thread.start()
        log.info("web page: %s%s", self.url, " (login needed)" if self._login is not None else "")
        if not _loopback(self.host):
            if self._login is None:
                log.warning("web page: listening on %s, reachable from the network and without a login: anyone "
                            "there sees the cameras and can switch their detection (set web_auth, and web_cert "
                            "for HTTPS)", self.host)
            elif self._tls is None:
                log.warning("web page: listening on %s without HTTPS: its login and pictures cross the network "
                            "in clear text (set web_cert)", self.host)

    def write(self, result: Result) -> None:
        self._latest.put(result)

    def close(self) -> None:
        self._latest.close()  # every video ends
        if self._server is not None:
            self._server.shutdown()
            self._server.hang_up()
            self._server.server_close()  # joins the client threads
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- what the handlers serve -------------------------------------------------------

    def stream_names(self) -> list[str]:
        return [report.name for report in self._reports()]

    def recording_files(self, query: FilesQuery | None = None) -> dict[str, Any]:
        """The MP4s of the recording folder that ``query`` asks for (``None``: the newest
        :data:`LIST_MOST`), as ``/recordings.json`` answers: ``{"files": [{name, stream, size,
        modified, objects, start}, …], "more": bool, "streams": [name, …], "segmented": [name, …]}``;
        the files newest first, ``stream`` the current stream whose recording it is (``None``: none
        of them), ``start`` when a segment starts, by its name (``None``: not a segment); ``more``:
        older files were asked for too; ``streams``: the current streams with any file in the
        folder, ``segmented`` those of them with segments (what a timeline shows)."""
        return self._videos(self.recordings, query or FilesQuery())

    def clip_files(self, query: FilesQuery | None = None) -> dict[str, Any]:
        """The MP4s of the clips folder, as :meth:`recording_files` lists recordings."""
        return self._videos(self.clips, query or FilesQuery())

    def _videos(self, folder: Path | None, query: FilesQuery) -> dict[str, Any]:
        nothing: dict[str, Any] = {"files": [], "more": False, "streams": [], "segmented": []}
        if folder is None:
            return nothing
        try:
            with os.scandir(folder) as entries:  # the one look at the folder; files' times as needed
                videos = [entry.name for entry in entries if _a_video(entry)]
        except OSError:
            return nothing
        names = sorted(self.stream_names(), key=len, reverse=True)  # "cam-2" before "cam"
        owners: dict[str, str | None] = {}  # each file's stream
        sequences: dict[str, str | None] = {}  # each sequence's (a segment's name up to its time: its stream's)
        runs: dict[str, list[str]] = {}  # the segments of each sequence asked for
        loose = []  # the files without a time in their names asked for
        for video in videos:
            stamp = _STAMPED.search(video)
            sequence = None if stamp is None else video[:stamp.start()]
            if sequence is not None and sequence in sequences:
                owner = sequences[sequence]  # (a sequence's files are one stream's: matched once)
            else:
                owner = next((n for n in names if video.startswith(n) and recording_of(video, n)), None)
                if sequence is not None:
                    sequences[sequence] = owner
            owners[video] = owner
            if query.streams is not None and owner not in query.streams:
                continue
            if sequence is None:
                loose.append(video)
            else:
                runs.setdefault(sequence, []).append(video)
        files, more = _newest(folder, runs, loose, owners, query, LIST_MOST if query.limit is None else query.limit)
        return {"files": files, "more": more, "streams": sorted({n for n in owners.values() if n is not None}),
                "segmented": sorted({n for n in sequences.values() if n is not None})}

    def export(self, stream: str, start: float, end: float, folder: Path) -> Path:
        """Stream ``stream``'s recordings from ``start`` to ``end`` (seconds since the epoch, at
        most :data:`EXPORT_MOST` apart) as one MP4 in ``folder`` (its first file, where the video
        changes); one export at a time. Raises ``LookupError`` (no such stream, nothing
        recorded then), ``ValueError`` (the span) or :class:`OutputError` (it cannot be written)."""
        if self.recordings is None or stream not in self.stream_names():
            raise LookupError(f"no recorded stream named {stream!r}")
        if not 0 < end - start <= EXPORT_MOST:
            raise ValueError(f"an export from the page is up to {EXPORT_MOST // 60} minutes long, after its start "
                             "(streamyolo export cuts longer ones)")
        with self._export_lock:
            return cut_recordings(self.recordings, stream, start, end, folder / default_name(stream, start)).files[0]

    def find_events(self, query: EventQuery, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The newest ``limit`` events that match ``query``, newest first, and whether more do:
        from the events file if the run writes one (every run's events in it), else from the
        recent ones the page lists."""
        if self.events_file is not None:
            try:
                return find_events(self.events_file, query, limit)
            except FileNotFoundError:  # nothing written yet
                return [], False
        return query.select(self.events() if self.events is not None else [], limit)

    def recording_path(self, name: str) -> Path | None:
        """The recording file ``name`` (a plain ``.mp4`` name in the folder), or ``None``."""
        return _file_in(self.recordings, name, ".mp4")

    def snapshot_path(self, name: str) -> Path | None:
        """The snapshot ``name`` (a plain ``.jpg`` name in the snapshots folder), or ``None``."""
        return _file_in(self.snapshots, name, ".jpg")

    def clip_path(self, name: str) -> Path | None:
        """The clip ``name`` (a plain ``.mp4`` name in the clips folder), or ``None``."""
        return _file_in(self.clips, name, ".mp4")

    def status(self) -> dict[str, Any]:
        keep = ("name", "state", "captured", "processed", "dropped", "fps_in", "fps_out", "frame_age", "reconnects",
                "error", "source", "counts", "zone_entries", "still", "pictures", "detect", "record")
        streams = []
        for report in self._reports():
            fields = asdict(report)
            entry = {key: fields[key] for key in keep}
            latest = self._latest.get(report.name)
            entry["detections"] = latest.result.detections.counts() if latest is not None else {}
            entry["zones"] = {z.name: dict(z.inside) for z in latest.result.zones} if latest is not None else {}
            if latest is not None:  # the picture's own pixels, in which zones, lines and masks are written
                height, width = latest.result.frame.image.shape[:2]
                entry["size"] = [width, height]
            streams.append(entry)
        status: dict[str, Any] = {"running": self._running(), "streams": streams, "heatmaps": self.heatmap is not None,
                                  "controls": self._switch is not None and self.controls}
        for key, extra in (("workers", self._workers()), ("config", self._config())):
            if extra:
                status[key] = dict(extra)
        return status

    def switch(self, kind: str, stream: str, on: bool) -> None:
        """Switch ``stream``'s detection (``kind`` ``detect``) or recording (``record``): the
        page's switches; raises ``LookupError`` when the page has no switches, ``ValueError``
        for a stream not running (or not recorded) and ``RuntimeError`` for one whose worker has
        ended (:meth:`bind`)."""
        if not self.controls:
            raise PermissionError("this page's switches are off (web_controls: false)")
        if self._switch is None:
            raise LookupError("this page switches nothing")
        self._switch(kind, stream, on)

    def health(self) -> Mapping[str, Any]:
        """``/healthz`` and ``/readyz``'s answer (:meth:`bind`)."""
        return self._health()

    def heatmap_jpeg(self, stream: str) -> bytes | None:
        """``stream``'s heatmap now as a JPEG (at most ``max_width`` wide), or ``None`` (no
        heatmaps, or no frame yet)."""
        picture = self.heatmap(stream) if self.heatmap is not None else None
        if picture is None:
            return None
        if picture.shape[1] > self.max_width:
            height = round(picture.shape[0] * self.max_width / picture.shape[1])
            picture = cast(Image, cv2.resize(picture, (self.max_width, height), interpolation=cv2.INTER_AREA))
        ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return encoded.tobytes() if ok else None

    def newest_jpeg(self, stream: str) -> bytes | None:
        latest = self._latest.get(stream)
        return None if latest is None else self._jpeg(latest)

    def next_jpeg(self, stream: str, after: int) -> tuple[int, bytes] | None:
        """The stream's newest frame once newer than version ``after``, as (version, JPEG);
        ``None`` if none came within a short wait (the caller checks :attr:`closed`)."""
        latest = self._latest.wait_newer(stream, after, _WAIT)
        return None if latest is None else (latest.version, self._jpeg(latest))

    @property
    def closed(self) -> bool:
        return self._latest.closed

    def admits(self, authorization: str | None, client: str) -> bool:
        """Whether a request with this ``Authorization`` header may see the page: always when
        no login is set, else only with the login (a wrong one is logged once per client)."""
        if self._login is None:
            return True
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        if hmac.compare_digest(given, self._login):
            return True
        if authorization is None:  # a browser's first request: it asks the user, then sends the login
            return False
        now = self._clock()
        with self._refused_lock:
            first = client not in self._refused
            self._refused.add(client)
            tries = self._wrong.setdefault(client, deque())
            tries.append(now)
            while tries[0] < now - LOGIN_WINDOW:
                tries.popleft()
            blocked = len(tries) >= LOGIN_TRIES
            if blocked:
                self._blocked[client] = now + LOGIN_BLOCK
                del self._wrong[client]
        if first:
            log.warning("web page: wrong login from %s (its further attempts are not logged)", client)
        if blocked:
            log.warning("web page: %d wrong logins from %s within %g s: its requests are refused for %g s",
                        LOGIN_TRIES, client, LOGIN_WINDOW, LOGIN_BLOCK)
        return False

    def blocked(self, client: str) -> float:
        """Seconds for which ``client``'s requests are still refused (too many wrong logins), or 0."""
        with self._refused_lock:
            until = self._blocked.get(client)
            if until is None:
                return 0.0
            left = until - self._clock()
            if left <= 0:
                del self._blocked[client]
            return max(0.0, left)

    def _jpeg(self, latest: Latest) -> bytes:
        """Annotate and encode ``latest`` once, however many clients want it."""
        name = latest.result.stream
        with self._locks_lock:
            lock = self._encode_locks.setdefault(name, threading.Lock())
        with lock:
            cached = self._encoded.get(name)
            if cached is not None and cached[0] >= latest.version:
                return cached[1]
            image = latest.annotate(self.annotator, self.max_width)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise OutputError(f"web page: cannot encode a frame of stream {name!r} as JPEG")
            jpeg = data.tobytes()
            self._encoded[name] = (latest.version, jpeg)
            return jpeg


def check_login(value: str) -> str:
    """``USER:PASSWORD`` as given, or a :class:`ValueError` that does not repeat it."""
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise ValueError("expected USER:PASSWORD, both not empty")
    return value


def tls_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    """A server's TLS settings from a PEM certificate (chain) and its private key (or one file
    holding both); errors name the key and the file."""
    for name, path in (("web_cert", cert), ("web_key", key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"config key {name!r}: file not found: {str(path)!r}")

    def no_passphrase() -> str:  # rather than OpenSSL asking on the terminal of a headless box
        raise ConfigError(f"config key 'web_key': {str(key or cert)!r} is encrypted; give an unencrypted key")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except ssl.SSLError as exc:
        files = repr(str(cert)) if key is None else f"{str(cert)!r} and {str(key)!r}"
        raise ConfigError(f"config keys 'web_cert'/'web_key': cannot use {files} as the web page's certificate "
                          f"and key: {exc.reason or exc}") from None
    except OSError as exc:  # not readable by this user
        raise ConfigError(f"config keys 'web_cert'/'web_key': cannot read {exc.filename or str(cert)!r}: "
                          f"{exc.strerror or exc}") from None
    return context


def _loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The one byte range a ``Range`` header asks of ``size`` bytes, as (first, last); ``None``
    for the whole file (no header, or one this server does not take: several ranges, other
    units), ``"unsatisfiable"`` for a range past the end.

    >>> _byte_range("bytes=0-99", 1000), _byte_range("bytes=900-", 1000), _byte_range("bytes=-100", 1000)
    ((0, 99), (900, 999), (900, 999))
    >>> _byte_range("bytes=0-5000", 1000), _byte_range("bytes=1000-", 1000), _byte_range("bytes=0-1,5-6", 1000)
    ((0, 999), 'unsatisfiable', None)
    """
    found = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if found is None or found[1] == found[2] == "":
        return None
    if found[1] == "":  # the last n bytes
        if int(found[2]) == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - int(found[2])), size - 1
    first = int(found[1])
    last = min(int(found[2]), size - 1) if found[2] else size - 1
    if first >= size or first > last:
        return "unsatisfiable"
    return first, last


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close joins the client threads

    def __init__(self, address: tuple[str, int], viewer: WebViewer, tls: ssl.SSLContext | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.viewer = viewer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)
        if tls is not None:  # the handshake happens in the client's thread (see _Handler.setup)
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("web page: serving %s failed", client_address, exc_info=True)

    def hang_up(self) -> None:
        """End every open connection now: a client that sends nothing (a browser's
        preconnect) or stopped reading must not hold up the end of the run."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _SOCKET_TIMEOUT
    server_version = "streamyolo"

    def setup(self) -> None:
        super().setup()  # sets the socket's timeout, which bounds the handshake too
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def handle(self) -> None:
        threading.current_thread().name = "web:client"
        super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web page: %s %s", self.address_string(), format % args)

    def _refused_login(self, viewer: WebViewer) -> bool:
        """Answer a request without the page's login (401), or from an address that has tried too
        many wrong ones (429, with when to try again); ``False``: it may go on."""
        client = self.client_address[0]
        left = viewer.blocked(client)
        if left > 0:
            self._send(HTTPStatus.TOO_MANY_REQUESTS, _TEXT,
                       f"too many wrong logins from {client}: try again in {math.ceil(left)} s\n".encode(),
                       {"Retry-After": str(math.ceil(left))})
            return True
        if viewer.admits(self.headers.get("Authorization"), client):
            return False
        self._send(HTTPStatus.UNAUTHORIZED, _TEXT, b"this page needs a login\n",
                   {"WWW-Authenticate": 'Basic realm="streamyolo", charset="UTF-8"'})
        return True

    def do_GET(self) -> None:
        viewer = self.server.viewer
        path = unquote(urlsplit(self.path).path)
        try:
            if self._refused_login(viewer):
                pass
            elif path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode())
            elif path == "/status.json":
                self._send(HTTPStatus.OK, "application/json", json.dumps(viewer.status()).encode())
            elif path == "/metrics":
                self._send(HTTPStatus.OK, METRICS_TYPE, metrics_text(viewer.status()).encode())
            elif path in ("/healthz", "/readyz"):
                health = dict(viewer.health())
                well = health["ok"] if path == "/healthz" else health["ready"]
                self._send(HTTPStatus.OK if well else HTTPStatus.SERVICE_UNAVAILABLE, "application/json",
                           json.dumps(health).encode())
            elif path == "/recordings.json" and viewer.recordings is not None:
                self._listing("recordings", viewer.recording_files)
            elif path == "/export.mp4" and viewer.recordings is not None:
                self._export(viewer)
            elif path.startswith("/recordings/") and viewer.recordings is not None:
                self._file(viewer.recording_path(path.removeprefix("/recordings/")), "video/mp4", "recording")
            elif path == "/events.json" and viewer.events is not None:
                self._events(viewer)
            elif path.startswith("/snapshots/") and viewer.snapshots is not None:
                self._file(viewer.snapshot_path(path.removeprefix("/snapshots/")), "image/jpeg", "snapshot")
            elif path == "/clips.json" and viewer.clips is not None:
                self._listing("clips", viewer.clip_files)
            elif path.startswith("/clips/") and viewer.clips is not None:
                self._file(viewer.clip_path(path.removeprefix("/clips/")), "video/mp4", "clip")
            elif path.startswith("/heatmaps/") and path.endswith(".jpg") and viewer.heatmap is not None:
                name = path.removeprefix("/heatmaps/").removesuffix(".jpg")
                picture = viewer.heatmap_jpeg(name) if name in viewer.stream_names() else None
                if picture is None:
                    self._send(HTTPStatus.NOT_FOUND, _TEXT, f"no heatmap of a stream named {name!r}\n".encode())
                else:
                    self._send(HTTPStatus.OK, "image/jpeg", picture)
            elif path.startswith("/streams/") and path.endswith((".mjpg", ".jpg")):
                name, _, kind = path.removeprefix("/streams/").rpartition(".")
                if name not in viewer.stream_names():
                    self._send(HTTPStatus.NOT_FOUND, _TEXT, f"no stream named {name!r}\n".encode())
                elif kind == "jpg":
                    self._snapshot(viewer, name)
                else:
                    self._video(viewer, name)
            else:
                self._send(HTTPStatus.NOT_FOUND, _TEXT, f"not found: {path}\n".encode())
        except (OSError, TimeoutError):  # the client went away, or the run ended under it
            log.debug("web page: client %s went away", self.address_string())

    def do_POST(self) -> None:
        """``/streams/<name>/detect`` (``/record``) with ``{"on": false}`` (JSON): the page's
        detection (recording) switch.
        Only from the page itself: a JSON body (a form on another site cannot send one) and, when
        the browser says where the request comes from, this page's own origin."""
        viewer = self.server.viewer
        path = unquote(urlsplit(self.path).path)
        kind = next((kind for kind in ("detect", "record") if path.endswith(f"/{kind}")), None)
        try:
            body, refused = self._post()
            if self._refused_login(viewer):
                pass
            elif not path.startswith("/streams/") or kind is None:
                self._send(HTTPStatus.NOT_FOUND, _TEXT, f"not found: {path}\n".encode())
            elif refused is not None:
                self._send(refused[0], _TEXT, refused[1].encode() + b"\n")
            else:
                self._switch(viewer, kind, path.removeprefix("/streams/").removesuffix(f"/{kind}"), body)
        except (OSError, TimeoutError):
            log.debug("web page: client %s went away", self.address_string())

    def _post(self) -> tuple[bytes, tuple[HTTPStatus, str] | None]:
        """This POST's body, and why it is not the page's own (``None``: it is)."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > _MAX_POST:
            self.close_connection = True  # its body, if any, is not read
            return b"", (HTTPStatus.BAD_REQUEST, f"a JSON body of at most {_MAX_POST} bytes, with its Content-Length")
        body = self.rfile.read(int(length))
        if self.headers.get_content_type() != "application/json":
            return body, (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)")
        origin = self.headers.get("Origin")
        hosts = sorted({h for h in (self.headers.get("Host"), self.headers.get("X-Forwarded-Host")) if h})
        if origin is not None and urlsplit(origin).netloc not in hosts:
            return body, (HTTPStatus.FORBIDDEN, f"refused: a request from {origin}, not from this page "
                                                f"({' or '.join(hosts) or 'no Host header'})")
        return body, None

    def _switch(self, viewer: WebViewer, kind: str, name: str, body: bytes) -> None:
        try:
            asked = json.loads(body)
            on = asked.get("on") if isinstance(asked, dict) else None
        except ValueError:
            on = None
        if not isinstance(on, bool):
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, b'the body must be {"on": true} or {"on": false}\n')
            return
        try:
            viewer.switch(kind, name, on)
        except PermissionError as exc:  # web_controls: false (before OSError's handler: it is one)
            self._send(HTTPStatus.FORBIDDEN, _TEXT, f"{exc}\n".encode())
        except (LookupError, ValueError) as exc:  # no switches here; no such stream, or not recorded
            self._send(HTTPStatus.NOT_FOUND, _TEXT, f"{exc}\n".encode())
        except RuntimeError as exc:
            self._send(HTTPStatus.CONFLICT, _TEXT, f"{exc}\n".encode())
        else:
            self._send(HTTPStatus.OK, "application/json", json.dumps({"stream": name, kind: on}).encode())

    def _export(self, viewer: WebViewer) -> None:
        """``/export.mp4?stream=<name>&from=<epoch seconds>&to=<epoch seconds>``: the stream's
        recordings then, cut into one MP4 (:mod:`streamyolo.sinks.export`), as a download."""
        query = parse_qs(urlsplit(self.path).query)
        stream = (query.get("stream") or [""])[0]
        try:
            start, end = (float((query.get(key) or [""])[0]) for key in ("from", "to"))
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, b"give stream, from and to (seconds since the epoch)\n")
            return
        with tempfile.TemporaryDirectory(prefix="streamyolo-export-") as folder:
            try:
                made = viewer.export(stream, start, end, Path(folder))
            except LookupError as exc:  # no such stream, nothing recorded then
                self._send(HTTPStatus.NOT_FOUND, _TEXT, f"{exc}\n".encode())
                return
            except ValueError as exc:
                self._send(HTTPStatus.BAD_REQUEST, _TEXT, f"{exc}\n".encode())
                return
            except OutputError as exc:  # the box's temporary folder refused it
                log.warning("web page: %s", exc)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT, f"{exc}\n".encode())
                return
            self._file(made, "video/mp4", "export", {"Content-Disposition": f'attachment; filename="{made.name}"'})

    def _listing(self, what: str, files: Callable[[FilesQuery], dict[str, Any]]) -> None:
        """``/recordings.json`` (``/clips.json``): the newest files; with any of ``stream``
        (repeatable, or comma-separated), ``from`` and ``to`` (seconds since the epoch) and
        ``limit`` (up to :data:`FILES_MOST`), those asked for (:class:`FilesQuery`)."""
        try:
            query = files_query(parse_qs(urlsplit(self.path).query))
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, f"{what}: {exc}\n".encode())
            return
        self._send(HTTPStatus.OK, "application/json", json.dumps(files(query)).encode())

    def _events(self, viewer: WebViewer) -> None:
        """``/events.json``: the newest events (``{"events": [...]}``); with any of ``stream``,
        ``event``, ``class`` (each repeatable, or comma-separated), ``from`` and ``to`` (seconds
        since the epoch) and ``limit`` (up to :data:`SEARCH_MOST`), those that match, searched
        in the events file (:mod:`streamyolo.sinks.history`), and ``"more"``: whether older ones
        did too."""
        assert viewer.events is not None
        query = parse_qs(urlsplit(self.path).query)
        if not query:
            self._send(HTTPStatus.OK, "application/json", json.dumps({"events": viewer.events()}).encode())
            return
        try:
            search = events_query(query)
            given = (query.get("limit") or [str(RECENT)])[0]
            limit = int(given) if given.isdigit() else 0
            if not 0 < limit <= SEARCH_MOST:
                raise ValueError(f"limit: {given!r} is not a number from 1 to {SEARCH_MOST}")
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, f"events search: {exc}\n".encode())
            return
        try:
            found, more = viewer.find_events(search, limit)
        except OSError as exc:
            log.warning("web page: cannot read events file %s: %s", viewer.events_file, exc.strerror or exc)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT, f"cannot read the events file: {exc.strerror or exc}\n"
                       .encode())
            return
        self._send(HTTPStatus.OK, "application/json", json.dumps({"events": found, "more": more}).encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _file(self, path: Path | None, content_type: str, what: str,
              headers: Mapping[str, str] | None = None) -> None:
        """A recording or a snapshot, whole or the byte range asked for (``Range: bytes=a-b``,
        ``a-`` or ``-n``, as a browser's player asks when it seeks); ``None``: not found. A file
        still being written is sent as far as it is at the moment of asking."""
        if path is None:
            name = unquote(urlsplit(self.path).path).rpartition("/")[2]
            self._send(HTTPStatus.NOT_FOUND, _TEXT, f"no {what} {name!r}\n".encode())
            return
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            first, last = 0, size - 1
            asked = _byte_range(self.headers.get("Range"), size)
            if isinstance(asked, str):
                self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, _TEXT, b"range not satisfiable\n",
                           {"Content-Range": f"bytes */{size}"})
                return
            if asked is not None:
                first, last = asked
            self.send_response(HTTPStatus.PARTIAL_CONTENT if asked is not None else HTTPStatus.OK)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(last - first + 1))
            if asked is not None:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            file.seek(first)
            left = last - first + 1
            while left > 0 and (chunk := file.read(min(_CHUNK, left))):
                self.wfile.write(chunk)
                left -= len(chunk)

    def _snapshot(self, viewer: WebViewer, name: str) -> None:
        jpeg = viewer.newest_jpeg(name)
        if jpeg is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, _TEXT,
                       f"stream {name!r} has no processed frame yet\n".encode())
        else:
            self._send(HTTPStatus.OK, "image/jpeg", jpeg)

    def _video(self, viewer: WebViewer, name: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        version, next_at = 0, 0.0
        period = 1.0 / viewer.fps if viewer.fps > 0 else 0.0
        while not viewer.closed:
            delay = next_at - time.monotonic()
            if delay > 0:  # at most `fps` frames a second, whatever the stream's rate
                time.sleep(min(delay, _WAIT))
                continue
            found = viewer.next_jpeg(name, version)
            if found is None:
                continue
            next_at = time.monotonic() + period
            version, jpeg = found
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
            self.wfile.write(jpeg + b"\r\n")
            self.wfile.flush()


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamyolo</title>
<style>
  [hidden] { display: none !important; }  /* also where a rule below sets display */
  body { margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #eee; }
  header { padding: 8px 12px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #run { color: #9c9; }
  #run.ended { color: #c99; }
  main { display: grid; gap: 8px; padding: 8px; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); }
  figure { margin: 0; background: #000; border: 1px solid #333; }
  figure img { display: block; width: 100%; min-height: 120px; object-fit: contain; background: #222; }
  figcaption { padding: 4px 8px; display: flex; flex-wrap: wrap; gap: 4px 12px; }
  .name { font-weight: bold; }
  .state-streaming { color: #9c9; } .state-failed { color: #f77; }
  .state-connecting, .state-reconnecting { color: #fc6; }
  .error { color: #f77; width: 100%; }
  .detections { color: #bcd; } .counts, .zones { color: #fd8; }
  figcaption button.switch { font: inherit; color: #9c9; background: #222; border: 1px solid #555; cursor: pointer; }
  figcaption button.switch.off { color: #f96; border-color: #f96; }
  figure { cursor: zoom-in; }
  main.solo { grid-template-columns: 1fr; }
  main.solo figure { display: none; }
  main.solo figure.solo { display: block; cursor: zoom-out; }
  header button { font: inherit; color: #eee; background: #333; border: 1px solid #555; cursor: pointer; }
  .videos { padding: 0 12px 8px; }
  .videos video { display: block; max-width: 100%; max-height: 60vh; background: #000; margin-bottom: 8px; }
  .files { list-style: none; margin: 0; padding: 0; columns: 2 360px; }
  .files li { padding: 2px 0; } .files a { color: #9cf; } .files .playing { font-weight: bold; }
  .files .about { color: #999; margin-left: 8px; }
  .files li.objects a { color: #fd8; } .files.objects-only li:not(.objects) { display: none; }
  .videos .more { color: #999; margin: 4px 0; }
  #events { padding: 0 12px 8px; }
  #shot, #clip { display: block; max-width: 100%; max-height: 60vh; margin-bottom: 8px; background: #000; }
  #happened { list-style: none; margin: 0; padding: 0; max-height: 40vh; overflow: auto; }
  #happened .about { color: #999; } #happened a { color: #9cf; }
  #happened .event-state { color: #fc6; }
  #events select, #event-search input, #event-search button { font: inherit; color: #eee; background: #222;
              border: 1px solid #555; }
  #event-search { margin: 4px 0; color: #999; } #event-found { color: #999; margin: 4px 0; }
  #event-found.failed { color: #f88; } #event-found:empty { display: none; }
  .picture { position: relative; }
  .picture svg { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
  .picture polygon { fill: rgba(255, 215, 0, 0.2); stroke: #fd0; stroke-width: 2; vector-effect: non-scaling-stroke; }
  .picture circle { fill: #fd0; }
  body.drawing figure, body.drawing main.solo figure.solo { cursor: crosshair; }
  .points { color: #fd0; font-family: monospace; width: 100%; user-select: all; }
  #draw-help { color: #999; }
  #export { margin: 4px 0; color: #999; }
  #export input, #export select { font: inherit; color: #eee; background: #222; border: 1px solid #555; }
  #export-result a { color: #9cf; } #export-result.failed { color: #f88; }
  #timeline { position: relative; height: 22px; background: #222; border: 1px solid #555; cursor: pointer;
              margin: 4px 0; }
  #timeline .span { position: absolute; top: 3px; bottom: 3px; min-width: 2px; background: #468; }
  #timeline .tick { position: absolute; top: 0; height: 6px; width: 2px; background: #f80; }
  #timeline .span.objects { background: #fd8; } #timeline .cursor { position: absolute; top: 0; bottom: 0;
              width: 2px; background: #f44; }
  #timeline-times { display: flex; justify-content: space-between; color: #999; font-size: 12px; }
  #timeline-days { color: #999; margin: 4px 0; }
  #timeline-days input, #timeline-days button { font: inherit; color: #eee; background: #222; border: 1px solid #555; }
</style>
</head>
<body>
<header><h1>streamyolo</h1><span id="run">connecting…</span>
<button id="show-recordings" hidden>recordings</button>
<button id="show-clips" hidden>clips</button>
<button id="show-events" hidden>events</button>
<button id="show-heatmaps" hidden title="where each stream's objects have been, over the run">heatmaps</button>
<button id="draw" title="click points on a picture: its zone, line or mask in the stream's pixels">points</button>
<button id="clear-points" hidden>clear points</button>
<span id="draw-help" hidden>click on a picture; copy the points under it into the config</span></header>
<section id="events" hidden><img id="shot" alt="snapshot" hidden>
<video id="clip" controls muted playsinline hidden></video>
<form id="event-search" title="the events file's events (every run's) that match, newest first">events of
<select id="event-stream"><option value="">every stream</option></select>
<select id="event-kind"><option value="">of every kind</option><option value="line">line</option>
<option value="enter">enter</option><option value="leave">leave</option><option value="linger">linger</option>
<option value="speeding">speeding</option><option value="state">state</option><option value="clip">clip</option>
</select> class <input id="event-class" size="10" placeholder="any (person, 0…)">
from <input type="datetime-local" id="event-from" step="1"> to <input type="datetime-local" id="event-to" step="1">
<button id="event-find">search</button>
<button type="button" id="event-newest" hidden title="the newest events, as they come">newest</button></form>
<div id="event-found"></div>
<ol id="happened"></ol></section>
<section id="recordings" class="videos" hidden>
<form id="export" title="the stream's recordings then, cut into one MP4 (up to an hour)">export
<select id="export-stream"></select> from <input type="datetime-local" id="export-from" step="1" required>
to <input type="datetime-local" id="export-to" step="1" required> <button>export</button>
<span id="export-result"></span></form>
<div id="timeline-days" hidden>day
<button type="button" id="timeline-earlier" title="the day before">◀</button><input type="date" id="timeline-day"
title="a day (empty: the last 24 hours)"><button type="button" id="timeline-later"
title="the day after (after today: the last 24 hours)">▶</button></div>
<div id="timeline" hidden title="a click plays that moment"></div>
<div id="timeline-times" hidden><span id="timeline-begin"></span><span id="timeline-at"></span>
<span id="timeline-end"></span></div>
<label id="objects-only-label" hidden><input type="checkbox" id="objects-only"> only the segments with objects</label>
<video id="player" controls muted playsinline hidden></video><ul id="files" class="files"></ul>
<p id="files-more" class="more" hidden>older recordings: pick their day on the timeline</p>
</section>
<section id="clips" class="videos" hidden>
<video id="clip-player" controls muted playsinline hidden></video><ul id="clip-files" class="files"></ul>
<p id="clip-files-more" class="more" hidden>older clips: not listed (an event's "clip" link plays its clip)</p>
</section>
<main id="tiles"></main>
<script>
"use strict";
const tiles = new Map();
const SVG = "http://www.w3.org/2000/svg";
// Addresses without the login a user may have put in the page's URL (https://user:pass@host/):
// browsers refuse fetches and pictures whose URL holds one, and send the login they keep anyway.
const here = location.origin + location.pathname.replace(/[^/]*$/, "");
function tile(name) {
  if (tiles.has(name)) return tiles.get(name);
  const figure = document.createElement("figure");
  figure.dataset.stream = name;
  const img = document.createElement("img");
  img.alt = name;
  img.src = here + "streams/" + encodeURIComponent(name) + ".mjpg";
  const caption = document.createElement("figcaption");
  const fields = {};
  for (const key of ["name", "state", "fps", "age", "dropped", "reconnects", "detections", "counts", "zones",
                     "error", "points"]) {
    fields[key] = document.createElement("span");
    fields[key].className = key;
    caption.appendChild(fields[key]);
  }
  const picture = document.createElement("div");
  picture.className = "picture";
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");  // as the picture's object-fit: contain
  picture.append(img, svg);
  // The stream's switches (shown when the page has them): a click turns one off or on.
  const switches = {};
  for (const kind of Object.keys(SWITCHES)) {
    const button = switches[kind] = document.createElement("button");
    button.className = "switch " + kind;
    button.hidden = true;
    button.addEventListener("click", async (click) => {
      click.stopPropagation();  // not a click on the picture
      const on = button.classList.contains("off");
      button.dataset.busy = "yes";
      button.disabled = true;
      try {
        const response = await fetch(here + "streams/" + encodeURIComponent(name) + "/" + kind, {
          method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({on})});
        if (response.ok) showSwitch(button, kind, on);
        else fields.error.textContent = await response.text();
      } finally {
        delete button.dataset.busy;
        button.disabled = false;
      }
    });
    caption.insertBefore(button, fields.detections);
  }
  figure.append(picture, caption);
  const entry = {figure, img, fields, svg, switches, size: null, points: []};
  figure.addEventListener("click", (click) => {
    if (document.body.classList.contains("drawing")) {
      addPoint(entry, click);
      return;
    }
    const tilesEl = document.getElementById("tiles");
    const solo = !figure.classList.contains("solo");
    for (const other of tilesEl.children) other.classList.toggle("solo", solo && other === figure);
    tilesEl.classList.toggle("solo", solo);
  });
  document.getElementById("tiles").appendChild(figure);
  tiles.set(name, entry);
  return entry;
}
// Points clicked on a picture, in the stream's own pixels (what zones, lines and masks are
// written in, whatever size the page shows it at), drawn over it and listed under it.
function addPoint(entry, click) {
  if (!entry.size || !entry.img.naturalWidth) return;
  const [width, height] = entry.size;
  const box = entry.img.getBoundingClientRect();
  const scale = Math.min(box.width / width, box.height / height);
  const x = (click.clientX - box.left - (box.width - width * scale) / 2) / scale;
  const y = (click.clientY - box.top - (box.height - height * scale) / 2) / scale;
  if (x < -0.5 || y < -0.5 || x > width + 0.5 || y > height + 0.5) return;  // beside the picture
  entry.points.push([Math.min(width, Math.max(0, Math.round(x))), Math.min(height, Math.max(0, Math.round(y)))]);
  drawPoints(entry);
}
function drawPoints(entry) {
  entry.svg.replaceChildren();
  entry.fields.points.textContent = entry.points.length ? JSON.stringify(entry.points).replaceAll(",", ", ") : "";
  if (!entry.size) return;
  entry.svg.setAttribute("viewBox", "0 0 " + entry.size[0] + " " + entry.size[1]);
  const line = document.createElementNS(SVG, "polygon");  // a zone or mask closes; a line is two points
  line.setAttribute("points", entry.points.map((p) => p.join(",")).join(" "));
  entry.svg.appendChild(line);
  for (const [x, y] of entry.points) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    dot.setAttribute("r", Math.max(2, entry.size[0] / 200));
    entry.svg.appendChild(dot);
  }
}
document.getElementById("draw").addEventListener("click", () => {
  const drawing = document.body.classList.toggle("drawing");
  document.getElementById("draw").textContent = drawing ? "done" : "points";
  document.getElementById("clear-points").hidden = !drawing;
  document.getElementById("draw-help").hidden = !drawing;
});
document.getElementById("clear-points").addEventListener("click", () => {
  for (const entry of tiles.values()) {
    entry.points = [];
    drawPoints(entry);
  }
});
// Heatmaps on: each tile shows its stream's heatmap (refreshed every 2 s) instead of its video.
let heatmaps = false;
function showPictures() {
  for (const [name, entry] of tiles) {
    const kind = heatmaps ? "heatmaps/" + encodeURIComponent(name) + ".jpg?t=" + Date.now()
                          : "streams/" + encodeURIComponent(name) + ".mjpg";
    if (heatmaps || !entry.img.src.endsWith(".mjpg")) entry.img.src = here + kind;
  }
}
document.getElementById("show-heatmaps").addEventListener("click", () => {
  heatmaps = !heatmaps;
  document.getElementById("show-heatmaps").textContent = heatmaps ? "videos" : "heatmaps";
  showPictures();
});
setInterval(() => { if (heatmaps) showPictures(); }, 2000);
// Each switch: its words on and off, and what a click does then.
const SWITCHES = {
  detect: ["detection on", "detection off", "click: the model stops looking at this stream (it goes on being shown "
           + "and recorded)", "click: the model looks at this stream again"],
  record: ["recording on", "recording off", "click: this stream's recording ends here (the model goes on looking)",
           "click: this stream is recorded again, in a new file"],
};
function showSwitch(button, kind, on) {
  const [yes, no, stop, start] = SWITCHES[kind];
  button.classList.toggle("off", !on);
  button.textContent = on ? yes : no;
  button.title = on ? stop : start;
}
let recorded = new Set();  // the streams being recorded (status.json's "record" not null)
function show(status) {
  document.getElementById("show-heatmaps").hidden = !status.heatmaps;
  const run = document.getElementById("run");
  run.textContent = status.running ? "running" : "ended";
  run.className = status.running ? "" : "ended";
  const names = new Set(status.streams.map((s) => s.name));
  recorded = new Set(status.streams.filter((s) => s.record !== null && s.record !== undefined).map((s) => s.name));
  eventStreams([...names]);
  for (const [name, entry] of tiles) {  // a stream removed as the run went (a reload)
    if (!names.has(name)) {
      entry.figure.remove();
      tiles.delete(name);
    }
  }
  for (const s of status.streams) {
    const entry = tile(s.name);
    const f = entry.fields;
    if (s.size && (!entry.size || entry.size.join() !== s.size.join())) {
      entry.size = s.size;
      drawPoints(entry);
    }
    f.name.textContent = s.name;
    f.state.textContent = s.state;
    f.state.className = "state state-" + s.state;
    f.fps.textContent = s.fps_in.toFixed(1) + " fps in, " + s.fps_out.toFixed(1) + " out";
    f.age.textContent = s.frame_age === null ? "" : "age " + Math.round(s.frame_age * 1000) + " ms";
    f.dropped.textContent = s.dropped + " dropped of " + s.captured;
    f.reconnects.textContent = s.reconnects ? s.reconnects + (s.reconnects === 1 ? " reconnect" : " reconnects") : "";
    f.detections.textContent = Object.entries(s.detections).map(([k, v]) => v + " " + k).join(", ");
    const total = (byClass) => Object.values(byClass || {}).reduce((a, b) => a + b, 0);
    f.counts.textContent = Object.entries(s.counts || {})
      .map(([line, ways]) => line + ": " + total(ways.in) + " in, " + total(ways.out) + " out").join("; ");
    const held = (inside) => Object.entries(inside).map(([k, v]) => v + " " + k).join(", ") || "empty";
    const entered = (zone) => zone in (s.zone_entries || {}) ? " (" + total(s.zone_entries[zone]) + " entered)" : "";
    f.zones.textContent = Object.entries(s.zones || {})
      .map(([zone, inside]) => zone + ": " + held(inside) + entered(zone)).join("; ");
    f.error.textContent = s.error || "";
    for (const [kind, button] of Object.entries(entry.switches)) {
      const state = s[kind];  // the stream's: null for the recording of a stream not recorded
      // Without switches, only what is off is said.
      button.hidden = state === null || state === undefined || (!status.controls && state !== false);
      if (!button.dataset.busy) {  // else a click's answer is on its way
        button.disabled = !status.controls;
        showSwitch(button, kind, state !== false);
      }
    }
  }
}
function describe(e) {
  const who = e.name + " #" + e.id;
  if (e.event === "line") return who + " crossed " + e.line + " (" + e.direction + ")";
  if (e.event === "enter") return who + " entered " + e.zone;
  if (e.event === "leave") return who + " left " + e.zone + " after " + e.dwell.toFixed(1) + " s";
  if (e.event === "linger") return who + " lingers in " + e.zone + " (" + e.dwell.toFixed(1) + " s)";
  if (e.event === "speeding") return who + " speeding in " + e.zone + " (" + e.speed.toFixed(0) + " km/h)";
  if (e.event === "clip" && e.state === "ended") return "clip finished (" + e.seconds.toFixed(1) + " s)";
  if (e.event === "clip" && e.state === "failed") return "clip not made: " + e.error;
  if (e.event === "clip") return "something happened: a clip starts";
  return e.state + (e.error ? ": " + e.error : "");
}
// The events panel shows one thing at a time above its list: a snapshot or a clip.
function showAside(id, address) {
  const shown = document.getElementById(id);
  for (const other of ["shot", "clip"]) {
    if (other === id) continue;
    const element = document.getElementById(other);
    element.hidden = true;
    if (element.pause) element.pause();
  }
  if (shown.src !== address) shown.src = address;
  shown.hidden = false;
  return shown;
}
// The events of one stream only (the select above the list), or of every stream.
function filterEvents() {
  const stream = document.getElementById("event-stream").value;
  for (const item of document.getElementById("happened").children) {
    item.hidden = Boolean(stream) && item.dataset.stream !== stream;
  }
}
document.getElementById("event-stream").addEventListener("change", filterEvents);
function eventStreams(names) {  // the select's streams: the run's now (and the one chosen)
  const select = document.getElementById("event-stream");
  const wanted = ["", ...names];
  if (select.value && !wanted.includes(select.value)) wanted.push(select.value);
  const have = [...select.options].map((option) => option.value);
  if (have.join() === wanted.join()) return;  // (a stream name has no comma)
  const chosen = select.value;
  select.replaceChildren(...wanted.map((name) => new Option(name || "every stream", name)));
  select.value = chosen;
}
// An event as the list shows it: when (with its day, if not today), the stream and what
// happened, a link to its snapshot, its clip, and its stream's recording then.
function eventItem(e) {
  const item = document.createElement("li");
  item.className = "event-" + e.event;
  item.dataset.stream = e.stream;
  const when = document.createElement("span");
  when.className = "about";
  const moment = new Date(e.time * 1000);
  when.textContent = moment.toDateString() === new Date().toDateString() ? moment.toLocaleTimeString()
                                                                         : moment.toLocaleString();
  const what = document.createElement(e.snapshot ? "a" : "span");
  what.textContent = e.stream + ": " + describe(e);
  if (e.snapshot) {
    what.href = here + "snapshots/" + encodeURIComponent(e.snapshot);
    what.addEventListener("click", (click) => {
      click.preventDefault();
      showAside("shot", what.href);
    });
  }
  item.append(when, " ", what);
  if (e.clip && e.state !== "failed") {
    const clip = document.createElement("a");
    clip.className = "clip";
    clip.textContent = "clip";
    clip.href = here + "clips/" + encodeURIComponent(e.clip);
    clip.addEventListener("click", (click) => {
      click.preventDefault();
      showAside("clip", clip.href).play().catch(() => {});
    });
    item.append(" ", clip);
  }
  if (recorded.has(e.stream) && !document.getElementById("show-recordings").hidden) {  // its recording then
    const seen = document.createElement("a");
    seen.className = "recorded";
    seen.textContent = "recording";
    seen.href = "#recordings";
    seen.addEventListener("click", (click) => {
      click.preventDefault();
      recordingAt(e.stream, e.time).catch(() => {});
    });
    item.append(" ", seen);
  }
  return item;
}
function showEvents(events) {
  document.getElementById("happened").replaceChildren(...events.map(eventItem));
  filterEvents();
}
// The list shows the newest events, refreshed every second, or a search's results (from the
// events file: every run's), which stay until the next search or "newest".
const SEARCH_LIMIT = 500;
let searching = false;
let asked = 0;  // a new question (a search, "newest") drops the answers to the ones before
let listed = "";
async function listEvents() {
  if (searching) return;
  const question = asked;
  const response = await fetch(here + "events.json", {cache: "no-store"});
  if (!response.ok) return;
  const text = await response.text();
  if (question !== asked || text === listed) return;  // nothing new: the list (and the link under the pointer) stays
  listed = text;
  showEvents(JSON.parse(text).events);
}
function searchFields() {
  const fields = new URLSearchParams();
  const value = (id) => document.getElementById(id).value.trim();
  for (const [key, id] of [["stream", "event-stream"], ["event", "event-kind"], ["class", "event-class"]]) {
    if (value(id)) fields.set(key, value(id));
  }
  for (const [key, id] of [["from", "event-from"], ["to", "event-to"]]) {  // (the browser's local time)
    if (value(id)) fields.set(key, new Date(value(id)).getTime() / 1000);
  }
  fields.set("limit", SEARCH_LIMIT);
  return fields;
}
document.getElementById("event-search").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const question = ++asked;
  searching = true;
  const found = document.getElementById("event-found");
  found.className = "";
  found.textContent = "searching…";
  document.getElementById("event-newest").hidden = false;
  let answer;
  try {
    const response = await fetch(here + "events.json?" + searchFields(), {cache: "no-store"});
    answer = response.ok ? await response.json() : (await response.text()).trim();
  } catch (error) {
    answer = "events search: " + error;
  }
  if (question !== asked) return;
  if (typeof answer === "string") {  // what was wrong with it (400), as the server says
    found.className = "failed";
    found.textContent = answer;
    showEvents([]);
    return;
  }
  const count = answer.events.length;
  found.textContent = count + (count === 1 ? " event" : " events") + " found" + (answer.more
    ? ", the newest: older ones match too (narrow the search)" : "");
  showEvents(answer.events);
});
document.getElementById("event-newest").addEventListener("click", () => {
  asked++;
  searching = false;
  listed = "";
  document.getElementById("event-newest").hidden = true;
  document.getElementById("event-found").textContent = "";
  listEvents().catch(() => {});
});
async function refresh() {
  if (!document.getElementById("events").hidden) listEvents().catch(() => {});
  try {
    const response = await fetch(here + "status.json", {cache: "no-store"});
    show(await response.json());
  } catch (e) {
    const run = document.getElementById("run");
    run.textContent = "disconnected";
    run.className = "ended";
  }
}
function size(bytes) {
  return bytes >= 1e9 ? (bytes / 1e9).toFixed(2) + " GB" : (bytes / 1e6).toFixed(1) + " MB";
}
// The recordings' or the clips' files (``kind``): the newest (a line under them when there are
// older ones: the timeline has those), listed and played in ``VIDEOS[kind]``.
const VIDEOS = {recordings: ["files", "player"], clips: ["clip-files", "clip-player"]};
async function listVideos(kind) {
  const response = await fetch(here + kind + ".json", {cache: "no-store"});
  if (!response.ok) return false;
  const listId = VIDEOS[kind][0], list = document.getElementById(listId);
  const answer = await response.json();
  list.replaceChildren(...answer.files.map((f) => videoItem(kind, f)));
  document.getElementById(listId + "-more").hidden = !answer.more;
  if (kind === "recordings") {  // segments in which objects were seen (record_keep_objects): a filter
    document.getElementById("objects-only-label").hidden = !list.querySelector("li.objects");
    segmented = answer.segmented;
    exportStreams(answer.streams);
  }
  return true;
}
function videoItem(kind, f) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = here + kind + "/" + encodeURIComponent(f.name);
  link.textContent = f.name;
  item.dataset.name = f.name;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    playVideo(kind, f);
  });
  const about = document.createElement("span");
  about.className = "about";
  about.textContent = [f.stream || "", f.objects ? "objects" : "", size(f.size),
                       new Date(f.modified * 1000).toLocaleString()].filter(Boolean).join(" · ");
  item.classList.toggle("objects", Boolean(f.objects));
  item.append(link, about);
  return item;
}
// File ``f`` played (from ``seconds`` into it), marked in its list when it is there.
let playingFile = null;  // the recording the player plays (null: an export, or none yet)
let seekTo = null;  // where the player goes once a file's metadata has come: {src, seconds}
function playVideo(kind, f, seconds) {
  const [listId, playerId] = VIDEOS[kind];
  for (const item of document.getElementById(listId).children) {
    item.classList.toggle("playing", item.dataset.name === f.name);
  }
  const player = document.getElementById(playerId);
  player.src = here + kind + "/" + encodeURIComponent(f.name);
  if (kind === "recordings") {
    playingFile = f;
    seekTo = seconds === undefined ? null : {src: player.src, seconds};
  }
  player.hidden = false;
  player.play().catch(() => {});
}
document.getElementById("player").addEventListener("loadedmetadata", (event) => {
  const player = event.target;
  if (seekTo && seekTo.src === player.currentSrc) player.currentTime = Math.max(0, seekTo.seconds);  // (kept within)
  seekTo = null;
});
// A recording played to its end goes on with its stream's next one in time, from the timeline's
// files or else asked for (an old day's too): a day of segments plays as one video.
function nextOf(ended, files) {
  const at = (f) => f.start === null ? f.modified : f.start;
  const after = (f, g) => at(f) > at(g) || (at(f) === at(g) && f.name > g.name);
  return files.filter((f) => f.stream === ended.stream && after(f, ended))
              .reduce((first, f) => first && !after(first, f) ? first : f, undefined);
}
document.getElementById("player").addEventListener("ended", async () => {
  const ended = playingFile;
  if (!ended || !ended.stream) return;
  let next = recordingFiles.some((f) => f.name === ended.name) ? nextOf(ended, recordingFiles) : undefined;
  for (const ahead of next ? [] : [86400, 600]) {  // a day on; its first 10 minutes if it is more than one answer
    const response = await fetch(here + "recordings.json?" + new URLSearchParams(
      {stream: ended.stream, from: ended.modified, to: ended.modified + ahead, limit: 5000}), {cache: "no-store"});
    if (!response.ok) return;
    const answer = await response.json();
    next = nextOf(ended, answer.files);
    if (!answer.more) break;
  }
  if (next && playingFile === ended) playVideo("recordings", next);
});
// A stream's recordings from one moment to another, cut into one MP4 by the server: played
// here, and a link saves it. The moments are the browser's local time, as the files' names.
function localInput(date) {
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}
// The stream chosen above's recordings over time: the last 24 hours (from its first segment
// at most), or a day chosen above it: a bar for each segment, yellow where objects were seen,
// and the stream's events then as ticks; a click plays that moment, and makes the export the
// minute around it. Its segments are asked for (the list holds only the newest files).
let recordingFiles = [];  // the timeline's: the chosen stream's segments of the span it shows
let drawing = 0;  // each drawing's number: the answer to one drawn again meanwhile is dropped
let segmented = [];  // the streams with segments (with a timeline)
function clock(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}
function dayOf(seconds) {  // the local day of a moment, as a date input writes it
  return localInput(new Date(seconds * 1000)).slice(0, 10);
}
function dayStart(day, after) {  // the moment local day ``day`` begins (``after`` days later), in seconds
  const [year, month, date] = day.split("-").map(Number);
  return new Date(year, month - 1, date + after).getTime() / 1000;
}
// What the timeline spans: the day chosen (up to now, today), or the last 24 hours (from the
// stream's first segment at most).
function timelineSpan(files) {
  const day = document.getElementById("timeline-day").value, now = Date.now() / 1000;
  if (!day) return [Math.max(now - 86400, Math.min(Infinity, ...files.map((f) => f.start))), now];
  const begin = dayStart(day, 0), next = dayStart(day, 1);
  return [begin, begin < now ? Math.min(next, now) : next];
}
// Draws the timeline; true once drawn (false: not, or drawn again meanwhile).
async function drawTimeline() {
  const bar = document.getElementById("timeline"), times = document.getElementById("timeline-times");
  const stream = document.getElementById("export-stream").value, day = document.getElementById("timeline-day").value;
  const number = ++drawing;
  document.getElementById("timeline-later").disabled = !day;
  const parts = [bar, times, document.getElementById("timeline-days")];
  if (!segmented.includes(stream)) {
    for (const part of parts) part.hidden = true;
    return false;
  }
  for (const old of bar.querySelectorAll(".span, .tick")) old.remove();  // (another span's)
  const asked = day ? {from: dayStart(day, 0), to: dayStart(day, 1)} : {from: Date.now() / 1000 - 86400};
  const response = await fetch(here + "recordings.json?" + new URLSearchParams({stream: stream, ...asked,
                                                                               limit: 5000}), {cache: "no-store"});
  const files = response.ok ? (await response.json()).files.filter((f) => f.start !== null) : [];
  if (number !== drawing) return false;
  recordingFiles = files;
  const [begin, end] = timelineSpan(files);
  bar.dataset.begin = begin;
  bar.dataset.end = end;
  const cursor = bar.querySelector(".cursor");
  bar.replaceChildren(...files.filter((f) => f.modified > begin && f.start < end).map((f) => {
    const block = document.createElement("div");
    const left = Math.max(0, (f.start - begin) / (end - begin));
    const right = Math.min(1, (f.modified - begin) / (end - begin));
    block.className = f.objects ? "span objects" : "span";
    block.style.left = (100 * left) + "%";
    block.style.width = (100 * Math.max(0, right - left)) + "%";
    block.title = f.name;
    return block;
  }), ...(cursor ? [cursor] : []));
  if (cursor) placeCursor(cursor, Number(cursor.dataset.at));
  document.getElementById("timeline-begin").textContent = clock(begin);
  document.getElementById("timeline-end").textContent = clock(end);
  for (const part of parts) part.hidden = false;  // (once drawn: shown meanwhile, it stays)
  eventTicks(bar, number, begin, end, stream).catch(() => {});
  return true;
}
// The stream's events then (searched: every one of a day, with --events every run's) as ticks
// on its timeline, named as the events list names them.
async function eventTicks(bar, number, begin, end, stream) {
  // (a stream's first events come as it starts: up to a second before its first segment's name)
  const from = document.getElementById("timeline-day").value ? begin : Math.max(end - 86400, begin - 60);
  const response = await fetch(here + "events.json?" + new URLSearchParams(
    {stream: stream, from: from, to: end, limit: 5000}), {cache: "no-store"});
  if (!response.ok) return;
  const events = (await response.json()).events;
  if (number !== drawing) return;  // drawn again meanwhile
  for (const old of bar.querySelectorAll(".tick")) old.remove();
  for (const e of events) {
    const tick = document.createElement("div");
    tick.className = "tick";
    tick.style.left = (100 * Math.max(0, e.time - begin) / (end - begin)) + "%";
    tick.title = clock(e.time) + ": " + describe(e);
    bar.appendChild(tick);
  }
}
function placeCursor(cursor, seconds) {
  const bar = document.getElementById("timeline");
  const begin = Number(bar.dataset.begin), end = Number(bar.dataset.end);
  cursor.dataset.at = seconds;
  cursor.hidden = !(seconds >= begin && seconds <= end);
  cursor.style.left = (100 * (seconds - begin) / (end - begin)) + "%";
}
// Another day on the timeline (``day`` "": the last 24 hours).
function showDay(day) {
  document.getElementById("timeline-day").value = day;
  drawTimeline().catch(() => {});
}
document.getElementById("timeline-day").addEventListener("change", () => drawTimeline().catch(() => {}));
document.getElementById("timeline-earlier").addEventListener("click", () => {
  const day = document.getElementById("timeline-day").value || dayOf(Date.now() / 1000);  // (or today)
  showDay(dayOf(dayStart(day, -1)));
});
document.getElementById("timeline-later").addEventListener("click", () => {
  const day = document.getElementById("timeline-day").value;
  if (!day) return;
  const next = dayStart(day, 1);
  showDay(next > Date.now() / 1000 ? "" : dayOf(next));
});
// The recordings panel, open at stream ``stream``'s recording of moment ``seconds`` (an event's),
// on the timeline of its day when that is before the last 24 hours.
async function recordingAt(stream, seconds) {
  const section = document.getElementById("recordings");
  if (section.hidden) {
    section.hidden = false;
    await listVideos("recordings");
  }
  const select = document.getElementById("export-stream");
  if ([...select.options].some((option) => option.value === stream)) {
    select.value = stream;
    const day = document.getElementById("timeline-day");
    if (seconds < Date.now() / 1000 - 86400) day.value = dayOf(seconds);
    else if (day.value && (seconds < dayStart(day.value, 0) || seconds >= dayStart(day.value, 1))) day.value = "";
    if (await drawTimeline()) playAt(seconds);
  }
  section.scrollIntoView();
}
function playAt(seconds) {
  const files = recordingFiles.filter((f) => f.modified >= seconds).sort((a, b) => a.start - b.start);
  const file = files.find((f) => f.start <= seconds) || files[0];  // or the next one after a gap
  if (!file) return;
  playVideo("recordings", file, seconds - file.start);
  document.getElementById("timeline-at").textContent = clock(seconds);
  const bar = document.getElementById("timeline");
  let cursor = bar.querySelector(".cursor");
  if (!cursor) {
    cursor = document.createElement("div");
    cursor.className = "cursor";
    bar.appendChild(cursor);
  }
  placeCursor(cursor, seconds);
  document.getElementById("export-from").value = localInput(new Date((seconds - 30) * 1000));
  document.getElementById("export-to").value = localInput(new Date((seconds + 30) * 1000));
}
document.getElementById("timeline").addEventListener("click", (event) => {
  const bar = event.currentTarget, box = bar.getBoundingClientRect();
  const begin = Number(bar.dataset.begin), end = Number(bar.dataset.end);
  playAt(begin + (end - begin) * (event.clientX - box.left) / box.width);
});
document.getElementById("export-stream").addEventListener("change", () => drawTimeline().catch(() => {}));
function exportStreams(names) {  // the streams with recordings (the server's answer's, not only the list's)
  const select = document.getElementById("export-stream");
  const chosen = select.value;
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  if (names.includes(chosen)) select.value = chosen;
  document.getElementById("export").hidden = !names.length;
  drawTimeline().catch(() => {});
  const from = document.getElementById("export-from"), to = document.getElementById("export-to");
  if (!to.value) to.value = localInput(new Date());
  if (!from.value) from.value = localInput(new Date(Date.now() - 10 * 60000));
}
document.getElementById("export").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = document.getElementById("export-result");
  const stream = document.getElementById("export-stream").value;
  const seconds = (id) => new Date(document.getElementById(id).value).getTime() / 1000;
  result.className = "";
  result.textContent = "exporting…";
  const response = await fetch(here + "export.mp4?" + new URLSearchParams(
    {stream: stream, from: seconds("export-from"), to: seconds("export-to")}), {cache: "no-store"});
  if (!response.ok) {
    result.className = "failed";
    result.textContent = (await response.text()).trim();
    return;
  }
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = named ? named[1] : stream + "-export.mp4";
  link.textContent = "save " + link.download + " (" + size(blob.size) + ")";
  result.replaceChildren(link);
  const player = document.getElementById("player");
  for (const other of document.querySelectorAll("#files .playing")) other.classList.remove("playing");
  playingFile = null;
  player.src = link.href;
  player.hidden = false;
  player.play().catch(() => {});
});
document.getElementById("objects-only").addEventListener("change", (event) => {
  document.getElementById("files").classList.toggle("objects-only", event.target.checked);
});
// A header button that opens a panel (listed by ``list``), shown when the page has one (when
// ``probe`` answers).
function panel(name, list, probe) {
  const button = document.getElementById("show-" + name);
  button.addEventListener("click", async () => {
    const section = document.getElementById(name);
    section.hidden = !section.hidden;
    if (!section.hidden) await list();
  });
  fetch(here + probe, {cache: "no-store"}).then((response) => { button.hidden = !response.ok; }).catch(() => {});
}
panel("recordings", () => listVideos("recordings"), "recordings.json?limit=1");
// An address that names a moment (an event's recording_url: #recording=<stream>@<epoch seconds>)
// opens the recordings there.
function openNamedMoment() {
  const named = /^#recording=(.+)@([0-9.]+)$/.exec(location.hash);
  if (!named) return;
  fetch(here + "recordings.json?limit=1", {cache: "no-store"}).then((response) => {  // (whether there are any)
    if (response.ok) recordingAt(decodeURIComponent(named[1]), Number(named[2])).catch(() => {});
  }).catch(() => {});
}
window.addEventListener("hashchange", openNamedMoment);
openNamedMoment();
panel("clips", () => listVideos("clips"), "clips.json?limit=1");
panel("events", listEvents, "events.json");
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""
