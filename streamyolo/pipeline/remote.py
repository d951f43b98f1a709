"""``streamyolo status``: a running run's streams, read from its web page (``/status.json``),
from a shell on the box (or anywhere the page is reached): a headless box's service looked at
without a browser.

The run is named by its config (its ``web`` address, ``web_auth`` login and ``web_cert``
certificate: the page it serves) or by the page's address (``https://user:password@box:8443/``,
the login from ``STREAMYOLO_WEB_AUTH`` otherwise). A run without a page is read from its
stats file instead (``stats``: its last line, written each status interval), running while
that line is recent (:func:`stats_status`).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from streamyolo.errors import ConfigError, StreamYoloError
from streamyolo.pipeline.report import StreamReport, status_table
from streamyolo.sinks.base import format_size
from streamyolo.sinks.history import local_time, overload_text
from streamyolo.sources import redact_url

if TYPE_CHECKING:
    from streamyolo.config import PipelineConfig

_ANY_HOST = ("0.0.0.0", "::", "")  # (listening on every interface: asked on loopback)


class PageUnreachable(StreamYoloError):
    """The run's page did not answer (not running, another address, a wrong login), or its
    stats file is not there."""


FRESH = 3.0
"""Status intervals within which a run without a page has written its stats file's last line
while it runs (and at least :data:`FRESH_LEAST` seconds)."""

FRESH_LEAST = 10.0


def run_status(target: str) -> dict[str, Any]:
    """The status of the run named by ``target`` (a config file, or its page's address): from
    its page (:func:`read_status`), or for a config without ``web`` from its stats file
    (:func:`stats_status`). Raises ``ConfigError`` for a config with neither, and
    :class:`PageUnreachable` saying why the run could not be asked."""
    if target.startswith(("http://", "https://")):
        return read_status(*page_of(target))
    from streamyolo.config import build_config

    cfg = build_config(Path(target))
    if cfg.web is not None:
        return read_status(*page_of(target, cfg))
    if cfg.stats is None:
        raise ConfigError(f"config {target!r} serves no web page (no 'web' key) nor writes a stats file ('stats'): "
                          "status reads the run's page or its stats file; give the page's address instead")
    if cfg.stats_every() == 0:
        raise ConfigError(f"config {target!r} serves no web page (no 'web' key) and writes its stats file only as "
                          "it ends (stats_interval 0): status reads the run's page or its stats file")
    return stats_status(cfg.stats, cfg.stats_every(), wait=cfg.stats_every() + WAIT_MORE)


WAIT_MORE = 1.0
"""Seconds more than a status interval that status waits for a line, when the stats file is
missing or holds none (a day's lines just moved away, by ``stats_keep`` or logrotate)."""


def stats_status(path: Path, interval: float, now: float | None = None, wait: float = 0.0) -> dict[str, Any]:
    """A run's status as its stats file's last line says it (``/status.json``'s shape: each
    stream's numbers), ``running`` while that line is at most :data:`FRESH` status intervals
    old, and ``stats``: the file and the line's age. When there is no such file or line, it
    looks again for ``wait`` seconds (at midnight the day's lines are moved away and the next
    line starts a new file), then raises :class:`PageUnreachable`."""
    ends = time.monotonic() + wait
    while True:
        try:
            said = _status_line(path)
            break
        except PageUnreachable:
            if time.monotonic() >= ends:
                raise
            time.sleep(0.2)
    age = max(0.0, (time.time() if now is None else now) - float(said["time"]))
    running = age <= max(FRESH * interval, FRESH_LEAST) and said.get("ended") is not True  # (the run's last line)
    return {"running": running,
            "streams": [{"name": name, **entry} for name, entry in said["streams"].items() if isinstance(entry, dict)],
            "stats": {"path": str(path), "time": said["time"], "age": round(age, 1),
                      "ended": said.get("ended") is True},
            **({"overload": said["overload"]} if running and isinstance(said.get("overload"), dict) else {})}


def _status_line(path: Path) -> dict[str, Any]:
    """The stats file's last line, read; :class:`PageUnreachable` when there is none."""
    try:
        line = last_line(path)
        said = json.loads(line) if line else None
    except OSError as exc:
        raise PageUnreachable(f"cannot read the run's stats file {str(path)!r}: {exc.strerror or exc} (is the run "
                              "up, with this config?)") from None
    except ValueError:
        said = None
    if not isinstance(said, dict) or not isinstance(said.get("streams"), dict) or not isinstance(
            said.get("time"), int | float):
        raise PageUnreachable(f"the run's stats file {str(path)!r} holds no status line yet")
    return said


def last_line(path: Path, chunk: int = 65536) -> str:
    """The last whole line of the file at ``path`` ("" for none), read from its end."""
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        start, tail = end, b""
        while start > 0:
            start = max(0, start - chunk)
            file.seek(start)
            tail = file.read(end - start)
            lines = tail.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return lines[-1].decode("utf-8", "replace")
            chunk *= 2
        return ""


def page_of(target: str, cfg: PipelineConfig | None = None) -> tuple[str, ssl.SSLContext | None, str | None]:
    """The page's address (ending in ``/``), the TLS context to reach it with, and the login
    (``USER:PASSWORD``) of ``target``: the page's address, or a config file (``cfg``, read,
    with its ``web``). Raises ``ConfigError`` naming what is missing."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        login = (f"{unquote(parts.username)}:{unquote(parts.password or '')}" if parts.username is not None
                 else os.environ.get("STREAMYOLO_WEB_AUTH"))
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        return urlunsplit((parts.scheme, netloc, path, "", "")), None, login
    from streamyolo.sinks.web import split_address

    assert cfg is not None and cfg.web is not None  # (run_status)
    address = split_address(cfg.web)
    assert address is not None  # (validated)
    host, port = address
    if port == 0:
        raise ConfigError(f"config {target!r}: web port 0 is any free port, chosen at start: give the page's "
                          "address (the run logs it)")
    host = "127.0.0.1" if host in _ANY_HOST else host
    context = None
    if cfg.web_cert is not None:  # (its own certificate, perhaps self-signed: trusted as such, on its address)
        context = ssl.create_default_context(cafile=str(cfg.web_cert))
        context.check_hostname = False
    scheme = "https" if cfg.web_cert is not None else "http"
    login = cfg.web_auth.get_secret_value() if cfg.web_auth is not None else None  # (STREAMYOLO_WEB_AUTH too)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/", context, login


def read_status(page: str, context: ssl.SSLContext | None = None, login: str | None = None,
                timeout: float = 10.0) -> dict[str, Any]:
    """The run's ``/status.json`` from its ``page``. Raises :class:`PageUnreachable` saying why."""
    request = urllib.request.Request(page + "status.json", headers={"User-Agent": "streamyolo status"})
    if login is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode("ascii"))
    loopback = urlsplit(page).hostname in ("127.0.0.1", "localhost", "::1")
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})] if loopback else []  # (no proxy)
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    shown = redact_url(page)
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as response:
            status = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        why = " (a wrong or missing login: web_auth, STREAMYOLO_WEB_AUTH)" if exc.code == 401 else ""
        raise PageUnreachable(f"the run's page {shown} answers HTTP {exc.code} {exc.reason}{why}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise PageUnreachable(f"cannot reach the run's page {shown}: {reason} (is the run up, with this web "
                              "address?)") from None
    except ValueError:
        raise PageUnreachable(f"the run's page {shown} answers something that is not its status") from None
    if not isinstance(status, dict) or not isinstance(status.get("streams"), list):
        raise PageUnreachable(f"the run's page {shown} answers something that is not its status")
    return status


_REPORTED = frozenset(field.name for field in fields(StreamReport))


def status_text(status: dict[str, Any]) -> str:
    """``status`` (a run's ``/status.json``) as ``streamyolo status`` prints it: whether it
    runs, each stream as the live status shows it, its zones not watched or crowded, the outputs
    paused, whether the machine keeps up and the disk's room.

    >>> print(status_text({"running": True, "streams": [{"name": "gate", "source": "x", "state": "streaming",
    ...     "captured": 9, "processed": 9, "dropped": 0, "error": None, "zone_states": {"yard": {"watched": False},
    ...     "queue": {"crowded": True}, "path": {"watched": True}}}]}).splitlines()[-1])
    gate: zone queue crowded; zone yard not watched
    """
    reports = [StreamReport(**{key: value for key, value in entry.items() if key in _REPORTED})
               for entry in status["streams"]]
    stats = status.get("stats")
    ended = ("not running (ended)" if not isinstance(stats, dict) else
             f"not running (it ended at {local_time(float(stats['time']))})" if stats.get("ended") else
             f"not running (its stats file's last line is of {local_time(float(stats['time']))}, "
             f"{float(stats['age']):.0f} s ago)")
    lines = [("running" if status.get("running") else ended) + f", {len(reports)} stream(s)"
             + (f", from its stats file {stats['path']}" if isinstance(stats, dict) else ""),
             status_table(reports)]
    for entry in status["streams"]:  # its zones not watched now (a schedule, a switch by hand), crowded
        said = [f"zone {zone} " + " and ".join([*(["not watched"] if state.get("watched") is False else []),
                                                 *(["crowded"] if state.get("crowded") else [])])
                for zone, state in sorted((entry.get("zone_states") or {}).items())
                if state.get("watched") is False or state.get("crowded")]
        if said:
            lines.append(f"{entry.get('name')}: {'; '.join(said)}")
    for paused in status.get("paused") or []:
        since = paused.get("since")
        when = local_time(float(since)) if isinstance(since, int | float) else "?"
        lines.append(f"paused: {paused.get('output')} since {when}: {paused.get('error')}")
    overload = status.get("overload")
    if isinstance(overload, dict):
        since = overload.get("since")
        lines.append(overload_text(overload)
                     + (f", since {local_time(float(since))}" if isinstance(since, int | float) else "")
                     + " (see the run's log)")
    storage = status.get("storage") or {}
    looked = storage.get("looked")  # (the folders are looked at now and then: every 30 s)
    for folder, use in storage.items():
        if isinstance(use, dict) and "bytes" in use:
            days = use.get("days_left")
            lines.append(f"{folder}: {format_size(use['bytes'])} in {use.get('files')} file(s); disk "
                         f"{format_size(use.get('free') or 0)} free"
                         + (f", about {days:g} days at the last day's rate" if days is not None else "")
                         + (f" (as of {local_time(float(looked))})" if isinstance(looked, int | float) else ""))
    return "\n".join(lines)


__all__ = ["PageUnreachable", "last_line", "page_of", "read_status", "run_status", "stats_status", "status_text"]
