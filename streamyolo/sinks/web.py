"""A web page of every stream, for boxes without a screen: ``--web [HOST:]PORT``.

A small HTTP server (the standard library's, one thread per client) serves:

- ``/``: the page: a tile per stream with its annotated video and its live numbers (state,
  fps in and out, frame age, dropped, reconnects, what its newest frame shows, last error),
  refreshed every second; a click on a tile shows that stream alone, another click all again;
  each tile's "detection on" button switches its stream's detection off and on, a recorded
  stream's "recording on" its recording, and each zone's "<zone> watched" its watching;
  with "points" on, clicks on a picture are points in the stream's own pixels, drawn over it
  and listed under it (``[[412, 640], [980, 655], …]``): a zone, line or mask to paste into
  the config;
- ``/streams/<name>.mjpg``: the stream's annotated frames as MJPEG
  (``multipart/x-mixed-replace``, which every browser shows in an ``<img>``), at most
  ``fps`` frames per second;
- ``/streams/<name>.jpg``: its newest annotated frame;
- ``POST /streams/<name>/detect`` (and ``/record``, ``/zones/<zone>/watch``) with ``{"on":
  false}`` or ``{"on": true}`` (JSON): the page's detection (recording, a zone's watching)
  switch (:meth:`WebViewer.bind`'s ``switch``); only
  the page's own requests are taken: a JSON body (a form on another site cannot send one) and,
  when the browser says where the request comes from (``Origin``), this page (its ``Host``, or
  a proxy's ``X-Forwarded-Host``);
- ``/status.json``: ``{"running": bool, "streams": [{name, state, captured, processed,
  dropped, fps_in, fps_out, frame_age, reconnects, error, source, counts, detections}, …]}``,
  where ``detections`` counts the classes in the stream's newest processed frame
  (``{"person": 2}``), ``counts`` its counting lines' totals (``{"door": {"in": {"person":
  3}, "out": {}}}``), ``zones`` what its zones hold in that frame (``{"queue": {"person":
  2}}``), ``size`` its picture's ``[width, height]``, on a tracked stream
  ``zone_entries`` the objects that entered them so far and ``zone_stays`` how long those
  that left stayed (by zone and class: ``{"left", "mean", "longest"}``) and ``standing`` how
  many of the newest frame's objects stand still, ``still`` the frames that took
  the last detections (``null`` unless the stream has ``motion``), and ``pictures`` those the
  model ran on (``null`` unless the stream has ``tiles``), ``detect`` false while its
  detection is switched off, ``record`` whether its recording is on (``null``: not recorded),
  ``last_frame_age`` the seconds since its last frame came (``null`` before the first),
  ``behind`` the seconds it is behind its camera (real time, for a file played as one; ``null``
  where not watched) and ``lagging`` whether it is said to have fallen behind (:class:`~streamyolo.clock.Behind`);
  ``"controls"``: whether the page has the switches;
  with process workers also ``"workers": {name: {"restarts": n}}``; once the config has been
  reloaded, ``"config": {"reloads": ok, "failed": n, "last_ok": bool, "last_at": epoch
  seconds, "last": what it said}``; with any of the recordings, clips and snapshots folders,
  ``"storage": {"recordings": {path, bytes, files, oldest, last_day, free, total, days_left,
  streams: {name: {bytes, files, oldest}}}, "clips": …, "snapshots": …, "looked": epoch seconds}``,
  what they take and their disks' room, looked at every half minute (:mod:`streamyolo.sinks.storage`);
  while an output is paused (a full disk: :class:`~streamyolo.sinks.base.OutputPause`),
  ``"paused": [{output, stream, since, error, lost, unit}, …]``; while the live streams skip
  most of their frames, or a stream is behind (the machine cannot keep up: :mod:`~streamyolo.pipeline.overload`),
  ``"overload": {"skipped": %, "window": s, "since": epoch seconds, "streams": […], "behind": {name: s}}``;
- ``/metrics``: the same numbers in Prometheus' text format (:mod:`streamyolo.sinks.metrics`);
- ``/healthz`` and ``/readyz``, for a container's liveness and readiness probes: 200 while the
  run is well (no thread worker hung) and ready (every model built), 503 when not, with
  ``{"ok", "ready", "hung"}`` (:meth:`Pipeline.liveness
  <streamyolo.pipeline.pipeline.Pipeline.liveness>`);
- with ``recordings`` (the recording folder): ``/recordings.json``, the newest
  :data:`~streamyolo.sinks.listing.LIST_MOST` MP4s in it (``{"files": [{name, stream, size,
  modified, objects, start}, …], "more": bool, "streams": […], "segmented": […]}``, newest
  first, ``stream`` the stream it
  belongs to, ``objects`` whether it is a segment in which objects were seen:
  ``record_keep_objects``, ``start`` when a segment starts, by its name; ``more``: older ones
  left out; ``streams``: the streams with recordings there), and
  ``?stream=…&from=…&to=…&limit=…``, those of some streams that hold some of a span
  (:class:`~streamyolo.sinks.listing.FilesQuery`; the page's timeline asks for its day's), from the folder's names and
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
  or else the recent ones, with ``"more"`` when older ones match too;
  ``/counts.json?by=hour|day|week|month&from=…&to=…`` (and ``stream``, ``event``, ``class``; ``tz``,
  the page's time zone), those of a span of up to a month counted in each local hour, day, week or month
  (``{"by", "periods": […], "series": [{"stream", "event", "where", "class", "counts": […],
  "total"}, …], "total", "zone"}``), charted on the page; and
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
import csv
import hmac
import io
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, tzinfo
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cv2

from streamyolo.annotation import BoxAnnotator
from streamyolo.clock import Clock
from streamyolo.errors import ConfigError, OutputError
from streamyolo.frames import Image, Result, stationary_of
from streamyolo.schedule import watch_kind, zone_of
from streamyolo.sinks.base import current_board, paused_outputs
from streamyolo.sinks.events import RECENT
from streamyolo.sinks.export import default_name
from streamyolo.sinks.export import export as cut_recordings
from streamyolo.sinks.history import (
    CSV_COLUMNS,
    PERIODS,
    EventQuery,
    count_rows,
    count_series,
    csv_row,
    events_query,
    find_events,
    limit_of,
    read_events,
    refreshed,
)
from streamyolo.sinks.latest import Latest, LatestResults
from streamyolo.sinks.listing import FilesQuery, files_query, list_videos
from streamyolo.sinks.metrics import CONTENT_TYPE as METRICS_TYPE
from streamyolo.sinks.metrics import metrics_text
from streamyolo.sinks.page import PAGE
from streamyolo.sinks.storage import Storage

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

COUNT_MOST = 32 * 86400
"""Longest span one count of the page's (``/counts.json?…``) covers: a month, by the day."""

EXPORT_MOST = 3600
"""Seconds of recordings the page exports at once (``/export.mp4``; ``streamyolo export`` any)."""
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


def parse_address(value: str | int) -> tuple[str, int]:
    """:func:`split_address`, or a :class:`ConfigError` naming the config key."""
    found = split_address(value)
    if found is None:
        raise ConfigError(f"config key 'web': expected PORT or HOST:PORT with a port from 0 to 65535 (got {value!r})")
    return found


_PART = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n"
"""An MJPEG part's boundary and headers (see :meth:`_Handler._video`)."""


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
                 heatmap: Callable[[str], Image | None] | None = None, storage: Storage | None = None,
                 clock: Clock = time.monotonic) -> None:
        """``storage``: what the folders take, shared with others that look (else the page's
        own, of ``recordings``, ``clips`` and ``snapshots``)."""
        self.host, self.port = parse_address(address)
        self.heatmap = heatmap
        """A stream's heatmap now (``heatmaps``; :meth:`HeatmapSink.picture`), for ``/heatmaps/``."""
        self.clips = None if clips is None else Path(clips)
        self.recordings = None if recordings is None else Path(recordings)
        self.events = events
        self.events_file = None if events_file is None else Path(events_file)
        """The events file (``--events``): where a search of the events looks (else the recent ones)."""
        self.snapshots = None if snapshots is None else Path(snapshots)
        folders = {what: (folder, suffix) for what, folder, suffix in (
            ("recordings", self.recordings, ".mp4"), ("clips", self.clips, ".mp4"),
            ("snapshots", self.snapshots, ".jpg")) if folder is not None}
        self._board = current_board()  # (the run's outputs, whose pauses the status says)
        self.storage = storage if storage is not None else Storage(folders, self.stream_names) if folders else None
        """What the folders take on their disks (``/status.json``'s ``"storage"``)."""
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
        self._overload: Callable[[], Mapping[str, Any] | None] = lambda: None
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
             switch: Callable[[str, str, bool], None] | None = None,
             overload: Callable[[], Mapping[str, Any] | None] | None = None) -> None:
        """Where the page's numbers come from: the pipeline's live per-stream reports (and
        the status's ``"workers"`` entry: its process workers' restarts; ``"config"``: what the
        config's reloads did; each left out while empty); ``health``: ``/healthz``'s;
        ``switch``: what switches a stream's detection or recording on or off (the page's
        switches, ``POST /streams/<name>/detect`` and ``/record``: ``switch(kind, stream, on)``,
        :meth:`~streamyolo.pipeline.pipeline.Pipeline.set_switch`); ``overload``: the status's
        ``"overload"``, while the machine cannot keep up (:mod:`~streamyolo.pipeline.overload`)."""
        self._reports = reports
        if overload is not None:
            self._overload = overload
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
        if self.storage is not None:
            self.storage.start()
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
            if self.storage is not None:
                self.storage.stop()

    # -- what the handlers serve -------------------------------------------------------

    def stream_names(self) -> list[str]:
        return [report.name for report in self._reports()]

    def recording_files(self, query: FilesQuery | None = None) -> dict[str, Any]:
        """The MP4s of the recording folder that ``query`` asks for (``None``: the newest
        :data:`~streamyolo.sinks.listing.LIST_MOST`), as ``/recordings.json`` answers: ``{"files": [{name, stream, size,
        modified, objects, start}, …], "more": bool, "streams": [name, …], "segmented": [name, …]}``;
        the files newest first, ``stream`` the current stream whose recording it is (``None``: none
        of them), ``start`` when a segment starts, by its name (``None``: not a segment); ``more``:
        older files were asked for too; ``streams``: the current streams with any file in the
        folder, ``segmented`` those of them with segments (what a timeline shows)."""
        return list_videos(self.recordings, self.stream_names(), query or FilesQuery())

    def clip_files(self, query: FilesQuery | None = None) -> dict[str, Any]:
        """The MP4s of the clips folder, as :meth:`recording_files` lists recordings."""
        return list_videos(self.clips, self.stream_names(), query or FilesQuery())

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

    def count_events(self, query: EventQuery, by: str, zone: tzinfo | None = None) -> dict[str, Any]:
        """The events that match ``query`` (its span given) counted by the hour, day, week or month ``by``
        (on the clocks of ``zone``; ``None``: the box's), as
        :func:`~streamyolo.sinks.history.count_series` makes a chart of them: from the events
        file if the run writes one, else the recent ones the page lists."""
        assert query.since is not None and query.until is not None
        return count_series(self.found(query), by, query.since, query.until, zone)

    def found(self, query: EventQuery) -> list[dict[str, Any]]:
        """The events that match ``query``: from the events file if the run writes one, else
        the recent ones the page lists."""
        if self.events_file is not None:
            try:
                return list(read_events(self.events_file, query))
            except FileNotFoundError:  # nothing written yet
                return []
        return query.select(self.events() if self.events is not None else [], RECENT)[0]

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
        from streamyolo.pipeline.report import stays_json  # (here: the pipeline package imports the web page)

        keep = ("name", "state", "captured", "processed", "dropped", "fps_in", "fps_out", "frame_age", "reconnects",
                "error", "source", "counts", "zone_entries", "still", "pictures", "detect", "record", "schedule",
                "behind", "lagging", "last_frame_age")
        streams = []
        reports = self._reports()
        for report in reports:
            fields = asdict(report)
            entry = {key: fields[key] for key in keep} | {"zone_stays": stays_json(report.zone_stays)}
            latest = self._latest.get(report.name)
            entry["detections"] = latest.result.detections.counts() if latest is not None else {}
            entry["zones"] = {z.name: dict(z.inside) for z in latest.result.zones} if latest is not None else {}
            stationary = stationary_of(latest.result.zones) if latest is not None else None
            if stationary is not None:
                entry["stationary"] = stationary
            standing = latest.result.stationary() if latest is not None else None
            if standing is not None:
                entry["standing"] = standing
            entry["zone_states"] = {z.name: {key: on for key, on in (("watched", z.watched), ("crowded", z.crowded))
                                             if on is not None}
                                    for z in (latest.result.zones if latest is not None else ())
                                    if z.watched is not None or z.crowded is not None}
            if latest is not None:  # the picture's own pixels, in which zones, lines and masks are written
                height, width = latest.result.frame.image.shape[:2]
                entry["size"] = [width, height]
            streams.append(entry)
        status: dict[str, Any] = {"running": self._running(), "streams": streams, "heatmaps": self.heatmap is not None,
                                  "controls": self._switch is not None and self.controls}
        for key, extra in (("workers", self._workers()), ("config", self._config())):
            if extra:
                status[key] = dict(extra)
        if self.storage is not None:
            status["storage"] = self.storage.use()
        paused = paused_outputs(self._board)
        if paused:
            status["paused"] = paused
        overload = refreshed(self._overload(), reports)  # (each stream's seconds behind as its own entry says)
        if overload is not None:
            status["overload"] = overload
        return status

    def switch(self, kind: str, stream: str, on: bool) -> None:
        """Switch ``stream``'s detection (``kind`` ``detect``), recording (``record``) or a
        zone's watching (``watch:<zone>``): the page's switches; raises ``LookupError`` when the
        page has no switches, ``ValueError`` for a stream not running (or not recorded, or
        without that zone) and ``RuntimeError`` for one whose worker has ended (:meth:`bind`)."""
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
            elif path == "/events.csv" and viewer.events is not None:
                self._events(viewer, table=True)
            elif path in ("/counts.json", "/counts.csv") and viewer.events is not None:
                self._counts(viewer, path.endswith(".csv"))
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
        """``/streams/<name>/detect`` (``/record``; ``/zones/<zone>/watch``) with ``{"on": false}``
        (JSON): the page's detection (recording; a zone's watching) switch.
        Only from the page itself: a JSON body (a form on another site cannot send one) and, when
        the browser says where the request comes from, this page's own origin."""
        viewer = self.server.viewer
        path = unquote(urlsplit(self.path).path)
        kind = next((kind for kind in ("detect", "record") if path.endswith(f"/{kind}")), None)
        stream, _, zone = path.removeprefix("/streams/").removesuffix("/watch").partition("/zones/")
        if path.endswith("/watch") and zone:
            kind = watch_kind(zone)
        try:
            body, refused = self._post()
            if self._refused_login(viewer):
                pass
            elif not path.startswith("/streams/") or kind is None:
                self._send(HTTPStatus.NOT_FOUND, _TEXT, f"not found: {path}\n".encode())
            elif refused is not None:
                self._send(refused[0], _TEXT, refused[1].encode() + b"\n")
            else:
                self._switch(viewer, kind, stream if zone else path.removeprefix("/streams/").removesuffix(f"/{kind}"),
                             body)
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
            zone = zone_of(kind)
            said = {"stream": name, kind: on} if zone is None else {"stream": name, "zone": zone, "watch": on}
            self._send(HTTPStatus.OK, "application/json", json.dumps(said).encode())

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
        ``limit`` (up to :data:`~streamyolo.sinks.listing.FILES_MOST`), those asked for
        (:mod:`streamyolo.sinks.listing`)."""
        try:
            query = files_query(parse_qs(urlsplit(self.path).query))
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, f"{what}: {exc}\n".encode())
            return
        self._send(HTTPStatus.OK, "application/json", json.dumps(files(query)).encode())

    def _events(self, viewer: WebViewer, table: bool = False) -> None:
        """``/events.json``: the newest events (``{"events": [...]}``); with any of ``stream``,
        ``event``, ``class``, ``where`` (each repeatable, or comma-separated), ``from`` and ``to`` (seconds
        since the epoch) and ``limit`` (up to :data:`SEARCH_MOST`), those that match, searched
        in the events file (:mod:`streamyolo.sinks.history`), and ``"more"``: whether older ones
        did too. ``/events.csv?…`` (``table``): the search's events (the newest
        :data:`SEARCH_MOST` unless ``limit`` says fewer), oldest first, as ``streamyolo events
        --csv`` writes them: a file to save, for a spreadsheet."""
        assert viewer.events is not None
        query = parse_qs(urlsplit(self.path).query)
        if not query and not table:
            self._send(HTTPStatus.OK, "application/json", json.dumps({"events": viewer.events()}).encode())
            return
        try:
            search = events_query(query)
            limit = limit_of(query, SEARCH_MOST) or (SEARCH_MOST if table else RECENT)
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, f"events search: {exc}\n".encode())
            return
        try:
            found, more = viewer.find_events(search, limit)
        except OSError as exc:
            self._unreadable(viewer, exc)
            return
        if table:
            self._csv([CSV_COLUMNS, *(csv_row(event) for event in reversed(found))], "events.csv",
                      {"X-More-Events": "true" if more else "false"})
            return
        self._send(HTTPStatus.OK, "application/json", json.dumps({"events": found, "more": more}).encode())

    def _counts(self, viewer: WebViewer, table: bool = False) -> None:
        """``/counts.json?by=hour|day|week|month&from=…&to=…``, with any of ``stream``, ``event``,
        ``class`` and ``where`` as ``/events.json`` takes them: the events that match counted in each local
        hour or day of the span (up to :data:`COUNT_MOST` seconds), a chart's series
        (:meth:`WebViewer.count_events`); ``tz``: on the clocks of that time zone (the page's,
        ``Europe/Berlin``), not the box's (a container's, in UTC). The answer's ``zone`` is the
        time zone it counted in, ``null`` for the box's (also when ``tz`` is not one it knows).
        ``/counts.csv?…`` (``table``): the same counts as ``streamyolo events --count --by … --csv``
        writes them, a file to save, for a spreadsheet."""
        fields = parse_qs(urlsplit(self.path).query)
        by, asked = (fields.get("by") or [""])[0], (fields.get("tz") or [""])[0]
        try:
            query = events_query(fields)
            if by not in PERIODS:
                raise ValueError(f"by: {by!r} is not one of {', '.join(PERIODS)}")
            if query.since is None or query.until is None:
                raise ValueError("from and to: a count needs both, its span")
            if not 0 < query.until - query.since <= COUNT_MOST:
                raise ValueError(f"a count from the page is up to {COUNT_MOST // 86400} days long, after its start "
                                 "(streamyolo events --count counts longer ones)")
        except ValueError as exc:
            self._send(HTTPStatus.BAD_REQUEST, _TEXT, f"count: {exc}\n".encode())
            return
        try:
            zone: ZoneInfo | None = ZoneInfo(asked) if asked else None
        except (ValueError, ZoneInfoNotFoundError):  # (no tz database on the box, or a name it has not)
            log.info("web page: counting in the box's local time: no time zone %r here", asked)
            zone = None
        try:
            if table:
                assert query.since is not None
                day = datetime.fromtimestamp(query.since, zone).strftime("%Y%m%d")  # (zone None: the box's)
                self._csv(count_rows(viewer.found(query), by, (query.since, query.until), zone, stats=True)[:-1],
                          f"counts-by-{by}-{day}.csv")  # (no total)
                return
            chart = viewer.count_events(query, by, zone)
        except OSError as exc:
            self._unreadable(viewer, exc)
            return
        self._send(HTTPStatus.OK, "application/json", json.dumps({**chart, "zone": asked if zone else None}).encode())

    def _csv(self, rows: Iterable[Sequence[str]], name: str, headers: Mapping[str, str] | None = None) -> None:
        """``rows`` as a CSV file to save, called ``name``."""
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        self._send(HTTPStatus.OK, "text/csv; charset=utf-8", text.getvalue().encode(),
                   {"Content-Disposition": f'attachment; filename="{name}"', **(headers or {})})

    def _unreadable(self, viewer: WebViewer, exc: OSError) -> None:
        """The events file could not be read: said in the log and to the client."""
        log.warning("web page: cannot read events file %s: %s", viewer.events_file, exc.strerror or exc)
        self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT, f"cannot read the events file: {exc.strerror or exc}\n"
                   .encode())

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
        # Each part's boundary and headers go out as soon as the picture before it has: a browser
        # shows a part only once the next part's headers have come (else every tile would be a
        # frame behind, and a stream's last picture, as a file ends or a camera goes down, never
        # shown). So a part has no Content-Length (not known yet): its boundary ends it.
        self.wfile.write(_PART)
        self.wfile.flush()
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
            self.wfile.write(jpeg + b"\r\n" + _PART)
            self.wfile.flush()
