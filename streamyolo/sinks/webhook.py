"""Events POSTed to a URL (``webhook``), from a thread of their own, never losing one quietly.

Each event is one ``POST`` of its JSON object (``Content-Type: application/json``) to the URL,
in the order they happened; or, by ``webhook_format`` (:func:`payload`), the message a person
reads: ``text`` (``text/plain``, the event's line as ``streamyolo events --text`` writes it,
with ntfy's headers: ``Title``, ``Tags``, ``Click`` its clip or recording, ``Attach`` its
snapshot; POSTed to ``https://ntfy.sh/<topic>`` or one's own ntfy, a phone's notification),
``slack`` (``{"text": …}``: Slack's incoming webhooks, Mattermost, Rocket.Chat, Google Chat) or
``discord`` (``{"content": …}``, the snapshot as an embedded picture).

A receiver that is down, slow or answers with an error holds the events back, not the run: they
wait in a queue (up to ``limit``, the oldest dropped beyond it) and the oldest is tried again
after 1, 2, 4 … up to 30 s. The log says once when delivery stops (with the receiver's answer)
and once when it works again, with how many waited. At the end of the run the queue gets
``drain`` seconds more; whatever could not be delivered is counted, and the run ends with exit
code 1 (:class:`~streamyolo.errors.OutputsIncompleteError`).

A login in the URL (``https://user:password@host/hook``) is sent as HTTP Basic and never
logged. The environment's proxy settings apply, except to loopback addresses.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from streamyolo.clock import Clock
from streamyolo.errors import OutputsIncompleteError
from streamyolo.sinks.base import split_url
from streamyolo.sinks.history import describe
from streamyolo.sources.redact import redact_url

log = logging.getLogger(__name__)

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


FORMATS = ("json", "text", "slack", "discord")


def payload(event: dict[str, Any], format: str = "json") -> tuple[bytes, dict[str, str]]:
    """The body and headers of one POST of ``event`` in ``format`` (see the module).

    >>> body, headers = payload({"time": 0.0, "stream": "gate", "event": "state", "state": "failed",
    ...                          "snapshot_url": "https://box/snapshots/a.jpg"}, "text")
    >>> body.decode().endswith("  gate: failed"), headers["Title"], headers["Attach"], headers["Tags"]
    (True, 'streamyolo: gate', 'https://box/snapshots/a.jpg', 'state')
    """
    if format == "json":
        return json.dumps(event, separators=(",", ":")).encode(), {"Content-Type": "application/json"}
    line = describe(event)
    link = event.get("clip_url") or event.get("recording_url")
    picture = event.get("snapshot_url")
    if format == "text":
        headers = {"Content-Type": "text/plain; charset=utf-8", "Tags": str(event["event"]),
                   "Title": "streamyolo" + (f": {event['stream']}" if event.get("stream") else "")}
        headers.update({key: str(value) for key, value in (("Click", link), ("Attach", picture)) if value})
        return line.encode(), headers
    played = [f"{'clip' if event.get('clip_url') else 'recording'}: {link}"] if link else []
    if format == "slack":
        message: dict[str, Any] = {"text": "\n".join([line, *played, *([f"snapshot: {picture}"] if picture else [])])}
    else:  # discord: the snapshot shown in the message
        message = {"content": "\n".join([line, *played])[:2000]}
        if picture:
            message["embeds"] = [{"image": {"url": picture}}]
    return json.dumps(message, separators=(",", ":")).encode(), {"Content-Type": "application/json"}


def check_webhook(url: str) -> str:
    """``url`` if it can take events: ``http(s)://host[:port]/path``; else a ``ValueError``
    saying why (the config error names the key).

    >>> check_webhook("http://127.0.0.1:9000/hook")
    'http://127.0.0.1:9000/hook'
    """
    split_url(url, ("http", "https"))
    return url


class Deliverer:
    """Delivers events one by one from a thread of its own, in order, never losing one quietly
    (see the module's docstring: the queue, the retries, the end); a subclass says how one is
    delivered (:meth:`_post`). ``what`` and ``shown`` name it in the log (``webhook
    https://…``, the password never shown)."""

    what = "webhook"

    def __init__(self, shown: str, *, timeout: float = 5.0, limit: int = 10000, drain: float = 10.0,
                 backoff: tuple[float, float] = (1.0, 30.0), clock: Clock = time.monotonic) -> None:
        self.shown = shown
        self.timeout = timeout
        self.limit = limit
        self.drain = drain
        self.backoff = backoff
        self._clock = clock
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name=self.what)
        self.delivered = 0
        self.dropped = 0  # beyond the queue's limit
        self.undelivered = 0  # left at the end
        self._first_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        """Queue ``event`` (a JSON-ready dict); never blocks."""
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self.limit:
                self._queue.popleft()
                if not self.dropped:
                    log.error("%s %s: more than %d events waiting; dropping the oldest", self.what, self.shown,
                              self.limit)
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()

    def close(self) -> None:
        """Deliver what waits (for at most ``drain`` seconds), stop, and raise
        :class:`OutputsIncompleteError` if any event was not delivered."""
        with self._cond:
            self._closing = True
            self._deadline = self._clock() + self.drain
            self._cond.notify()
        if self._thread.ident is not None:
            self._thread.join(self.drain + self.timeout + 5)
            if self._thread.is_alive():
                log.error("%s %s: its thread did not end", self.what, self.shown)
        with self._cond:
            self.undelivered += len(self._queue)
            self._queue.clear()
        lost = self.dropped + self.undelivered
        if lost:
            raise OutputsIncompleteError(f"{self.what} {self.shown}: {lost} event(s) could not be delivered "
                                         f"(first: {self._first_error or 'the queue was full'})")

    def _run(self) -> None:
        delay = self.backoff[0]
        failing_since: float | None = None
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._past_deadline():
                    return
                event = self._queue[0]
            error = self._post(event)
            if error is None:
                with self._cond:
                    if self._queue and self._queue[0] is event:
                        self._queue.popleft()
                    waiting = len(self._queue)
                self.delivered += 1
                if failing_since is not None:
                    log.warning("%s %s: delivering again after %.0f s (%d event(s) waiting)", self.what, self.shown,
                                self._clock() - failing_since, waiting)
                    failing_since = None
                delay = self.backoff[0]
                continue
            if failing_since is None:
                failing_since = self._clock()
                self._first_error = self._first_error or error
                log.error("%s %s: cannot deliver events (%s); trying again, events wait meanwhile",
                          self.what, self.shown, error)
            else:
                log.debug("%s %s: still cannot deliver: %s", self.what, self.shown, error)
            with self._cond:
                until = self._clock() + delay
                if self._deadline is not None:
                    until = min(until, self._deadline)
                while not self._past_deadline() and self._clock() < until:
                    self._cond.wait(max(0.0, until - self._clock()))
                if self._past_deadline():
                    return
            delay = min(delay * 2, self.backoff[1])

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def post_now(self, event: dict[str, Any]) -> str | None:
        """Deliver ``event`` at once, on the caller's thread, once (``streamyolo check --notify``);
        ``None`` when it was taken, else what went wrong."""
        return self._post(event)

    def _post(self, event: dict[str, Any]) -> str | None:
        """Deliver one event; ``None`` when it was taken, else what went wrong."""
        raise NotImplementedError


class Webhook(Deliverer):
    """Delivers events to ``url`` from its own thread; see the module's docstring."""

    def __init__(self, url: str, *, timeout: float = 5.0, limit: int = 10000, drain: float = 10.0,
                 backoff: tuple[float, float] = (1.0, 30.0), clock: Clock = time.monotonic,
                 format: str = "json") -> None:
        """``format``: what each POST is (:func:`payload`)."""
        if format not in FORMATS:
            raise ValueError(f"webhook format {format!r} is not one of {', '.join(FORMATS)}")
        super().__init__(redact_url(url), timeout=timeout, limit=limit, drain=drain, backoff=backoff, clock=clock)
        self.format = format
        self.url = check_webhook(url)
        parts = urlsplit(url)
        self._headers = {"User-Agent": "streamyolo"}
        if parts.username is not None:
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
            host = parts.hostname or ""
            netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
            self._target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        else:
            self._target = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        handlers: list[urllib.request.BaseHandler] = []
        if parts.hostname in _LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def _post(self, event: dict[str, Any]) -> str | None:
        """POST one event; ``None`` when the receiver took it (2xx), else what went wrong."""
        body, headers = payload(event, self.format)
        request = urllib.request.Request(self._target, data=body, headers={**self._headers, **headers}, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
