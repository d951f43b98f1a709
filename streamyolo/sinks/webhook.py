"""Events POSTed to a URL (``webhook``), from a thread of their own, never losing one quietly.

Each event is one ``POST`` of its JSON object (``Content-Type: application/json``) to the URL,
in the order they happened; or, by ``webhook_format`` (:func:`payload`), the message a person
reads: ``text`` (``text/plain``, the event's line as ``streamyolo events --text`` writes it,
with ntfy's headers: ``Title``, ``Tags``, ``Click`` its clip or recording; POSTed to
``https://ntfy.sh/<topic>`` or one's own ntfy, a phone's notification), ``slack``
(``{"text": …}``: Slack's incoming webhooks, Mattermost, Rocket.Chat, Google Chat), ``discord``
(``{"content": …}``), ``telegram`` (a Telegram bot's message to a chat: the URL is the bot's,
``https://api.telegram.org/bot<token>?chat_id=<chat>``) or ``pushover`` (Pushover's message:
``https://api.pushover.net/1/messages.json?token=<app>&user=<user>``); the chat, the app's
token and the user go in the request's body, not its URL.

The formats a person reads on a phone (``text``, ``discord``, ``telegram``, ``pushover``: :data:`ATTACHED`)
carry the event's snapshot itself (``snapshots``), uploaded with the message, so the
notification shows who came even from a box nobody outside can reach, and a ``clip`` event's
clip once it has ended (``clips``; up to the receiver's size, :data:`ATTACHED`; Pushover takes
pictures only): ntfy's attachment (``PUT``, the line in its ``Message`` header), Discord's
``multipart/form-data`` with the picture embedded, Telegram's ``sendPhoto`` (``sendVideo``) with
the line as its caption, Pushover's ``attachment``. A
receiver that refuses the file (ntfy without attachments: HTTP 400) gets that event and every
later one without it, said once (a clip refused: the later clips, the pictures going on); one
too large for it (413) gets that event without it.
Without a snapshot a ``text`` message links one by URL (``Attach``, with ``public_url``),
Discord embeds its URL.

A receiver that is down, slow or answers with an error holds the events back, not the run: they
wait in a queue (up to ``limit``, the oldest dropped beyond it) and the oldest is tried again
after 1, 2, 4 … up to 30 s. The log says once when delivery stops (with the receiver's answer)
and once when it works again, with how many waited. An event refused for what it is (HTTP 400,
413, 415 or 422; an SMTP server's 5xx: a message too large, taken for spam; :data:`REFUSALS`)
while the next one is taken is refused for good: it is logged, counted, and the others go on,
rather than it holding them all back (a refusal the next one gets too is the receiver's, and
they wait). At the end of the run the queue gets ``drain`` seconds more; whatever could not be
delivered is counted, and the run ends with exit code 1
(:class:`~streamyolo.errors.OutputsIncompleteError`).

A login in the URL (``https://user:password@host/hook``) is sent as HTTP Basic and never
logged, nor is a Telegram bot's token. The environment's proxy settings apply, except to
loopback addresses.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from streamyolo.clock import Clock
from streamyolo.errors import OutputsIncompleteError
from streamyolo.sinks.base import split_url
from streamyolo.sinks.history import describe
from streamyolo.sources.redact import redact_url

log = logging.getLogger(__name__)

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


FORMATS = ("json", "text", "slack", "discord", "telegram", "pushover")
ATTACHED = {"text": 15_000_000, "discord": 10_000_000, "telegram": 50_000_000, "pushover": 2_500_000}
"""The formats whose messages carry the event's snapshot or clip itself (see the module), and
the largest file each receiver takes (ntfy.sh's, Discord's without Nitro, a Telegram bot's,
Pushover's picture)."""
_PICTURES_ONLY = frozenset({"pushover"})
QUERIED = {"telegram": ("chat_id",), "pushover": ("token", "user")}
"""What a format's URL gives in its query, sent in each request's body instead."""
PRIORITIES = {"min": {"priority": "-2"}, "low": {"priority": "-1"}, "default": {"priority": "0"},
              "high": {"priority": "1"}, "urgent": {"priority": "2", "retry": "60", "expire": "3600"}}
"""Pushover's fields for each ``priority`` (``urgent``: its emergency priority, repeated every
minute for an hour until seen); ntfy takes the names as they are."""
_CAPTION = 1024  # (Telegram's longest caption; a message's text: 4096)


class Attachment(NamedTuple):
    """The file an event's message carries: its snapshot, its clip."""

    name: str
    data: bytes
    kind: str
    """Its MIME type: ``image/jpeg``, ``video/mp4``."""


class Request(NamedTuple):
    """One event as the receiver takes it (:func:`payload`)."""

    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    call: str | None = None
    """Telegram: the bot's method (``sendMessage``, ``sendPhoto``), the URL's last part."""


def payload(event: dict[str, Any], format: str = "json", attached: Attachment | None = None,
            given: Mapping[str, str] | None = None, priority: str | None = None) -> Request:
    """The request that delivers ``event`` in ``format`` (see the module), with ``attached``
    (its snapshot, its clip) when the format carries it; ``given``: what the URL's query gave
    (:data:`QUERIED`: Telegram's chat, Pushover's app and user); ``priority``: how it rings a
    phone (``min`` … ``urgent``: :data:`PRIORITIES`).

    >>> body, headers, method, _ = payload({"time": 0.0, "stream": "gate", "event": "state",
    ...                                     "state": "failed", "snapshot_url": "https://box/snapshots/a.jpg"}, "text")
    >>> body.decode().endswith("  gate: failed"), headers["Title"], headers["Attach"], headers["Tags"], method
    (True, 'streamyolo: gate', 'https://box/snapshots/a.jpg', 'state', 'POST')
    >>> payload({"time": 0.0, "stream": "Küche", "event": "state", "state": "failed"}, "text").headers["Title"]
    '=?UTF-8?B?c3RyZWFteW9sbzogS8O8Y2hl?='
    """
    if format == "json":
        return _json(event)
    line = describe(event)
    link = event.get("clip_url") or event.get("recording_url")
    address = event.get("snapshot_url")
    attached = attached if format in ATTACHED else None
    given = given or {}
    if format == "text":
        headers = {"Tags": str(event["event"]), "Title": _title(event),
                   **({"Priority": priority} if priority is not None else {})}
        if link:
            headers["Click"] = str(link)
        if attached is not None:  # ntfy's attachment: the file is the body, the line a header
            headers.update({"Filename": attached.name, "Message": line, "Content-Type": attached.kind})
            return Request(attached.data, {key: header_value(value) for key, value in headers.items()}, "PUT")
        if address:
            headers["Attach"] = str(address)
        headers["Content-Type"] = "text/plain; charset=utf-8"
        return Request(line.encode(), {key: header_value(value) for key, value in headers.items()})
    played = [f"{'clip' if event.get('clip_url') else 'recording'}: {link}"] if link else []
    if format == "pushover":  # (its link: the clip or recording, which it shows as a button)
        fields: list[tuple[str, bytes, Attachment | None]] = [
            *((key, given.get(key, "").encode(), None) for key in QUERIED[format]),
            ("title", _title(event).encode(), None), ("message", line[:_CAPTION].encode(), None),
            ("timestamp", str(int(float(event["time"]))).encode(), None),
            *((key, value.encode(), None) for key, value in PRIORITIES.get(priority or "", {}).items())]
        if link:
            fields += [("url", str(link).encode(), None),
                       ("url_title", b"clip" if event.get("clip_url") else b"recording", None)]
        if attached is not None:
            fields.append(("attachment", attached.data, attached))
        body, kind = multipart(fields)
        return Request(body, {"Content-Type": kind})
    if format == "telegram":
        text = "\n".join([line, *played])
        quiet = priority in ("min", "low")  # (a silent message)
        if attached is None:
            return _json({"chat_id": given.get("chat_id"), "text": text, **({"disable_notification": True}
                                                                            if quiet else {})}, call="sendMessage")
        video = attached.kind.startswith("video/")
        body, kind = multipart([("chat_id", given.get("chat_id", "").encode(), None),
                                ("caption", text[:_CAPTION].encode(), None),
                                *([("disable_notification", b"true", None)] if quiet else []),
                                *([("supports_streaming", b"true", None)] if video else []),
                                ("video" if video else "photo", attached.data, attached)])
        return Request(body, {"Content-Type": kind}, call="sendVideo" if video else "sendPhoto")
    if format == "slack":
        return _json({"text": "\n".join([line, *played, *([f"snapshot: {address}"] if address else [])])})
    message: dict[str, Any] = {"content": "\n".join([line, *played])[:2000]}  # discord
    if attached is not None:  # (a picture shown in the message; a clip is played in it as it is)
        message["attachments"] = [{"id": 0, "filename": attached.name}]
        if attached.kind.startswith("image/"):
            message["embeds"] = [{"image": {"url": f"attachment://{attached.name}"}}]
        body, kind = multipart([("payload_json", _json(message).body, None), ("files[0]", attached.data, attached)])
        return Request(body, {"Content-Type": kind})
    if address:
        message["embeds"] = [{"image": {"url": address}}]
    return _json(message)


def _title(event: dict[str, Any]) -> str:
    return "streamyolo" + (f": {event['stream']}" if event.get("stream") else "")


def _json(value: dict[str, Any], call: str | None = None) -> Request:
    return Request(json.dumps(value, separators=(",", ":")).encode(), {"Content-Type": "application/json"}, call=call)


def multipart(fields: list[tuple[str, bytes, Attachment | None]]) -> tuple[bytes, str]:
    """``fields`` (name, value, and the file it is, if one) as a ``multipart/form-data`` body,
    and its ``Content-Type``."""
    boundary = f"streamyolo-{uuid.uuid4().hex}"
    parts = []
    for name, value, file in fields:
        head = f'Content-Disposition: form-data; name="{name}"'
        if file is not None:
            head += f'; filename="{file.name}"\r\nContent-Type: {file.kind}'
        elif name == "payload_json":
            head += "\r\nContent-Type: application/json"
        parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + value + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def header_value(value: str) -> str:
    """``value`` as an HTTP header carries it: as is when ASCII, else as one RFC 2047 word
    (UTF-8, base64), which ntfy reads (a stream named ``Küche``)."""
    if value.isascii():
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode()).decode("ascii") + "?="


_SHAPES = {"telegram": "the bot's URL with its chat: https://api.telegram.org/bot<token>?chat_id=<chat>",
           "pushover": "Pushover's with the app's token and the user's key: "
                       "https://api.pushover.net/1/messages.json?token=<app>&user=<user>"}


def check_webhook(url: str, format: str = "json") -> str:
    """``url`` if it can take events: ``http(s)://host[:port]/path`` (``telegram``: the bot's,
    with its ``chat_id``; ``pushover``: with ``token`` and ``user``); else a ``ValueError``
    saying why (the config error names the key).

    >>> check_webhook("http://127.0.0.1:9000/hook")
    'http://127.0.0.1:9000/hook'
    >>> check_webhook("https://api.telegram.org/bot123:abc", "telegram")
    Traceback (most recent call last):
    ValueError: a telegram webhook is the bot's URL with its chat: https://api.telegram.org/bot<token>?chat_id=<chat>
    """
    split_url(url, ("http", "https"))
    if format in QUERIED and len(queried(url, format)[1]) < len(QUERIED[format]):
        raise ValueError(f"a {format} webhook is {_SHAPES[format]}")
    return url


def queried(url: str, format: str) -> tuple[str, dict[str, str]]:
    """A webhook's URL split into where it POSTs (a Telegram bot's method, if given, taken
    off) and what its query gives that the format sends in the body (:data:`QUERIED`).

    >>> queried("https://api.telegram.org/bot123:abc/sendMessage?chat_id=-100&x=1", "telegram")
    ('https://api.telegram.org/bot123:abc?x=1', {'chat_id': '-100'})
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    keys = QUERIED.get(format, ())
    given = {key: value for key, value in pairs if key in keys and value}
    path = parts.path
    if format == "telegram":
        path = path.rstrip("/")
        if path.rsplit("/", 1)[-1] in ("sendMessage", "sendPhoto", "sendVideo"):
            path = path.rsplit("/", 1)[0]
    query = urlencode([(key, value) for key, value in pairs if key not in keys])
    return urlunsplit((parts.scheme, parts.netloc, path, query, "")), given


REFUSALS = ("HTTP 400 ", "HTTP 413 ", "HTTP 415 ", "HTTP 422 ", "SMTP 5")
"""How the answers that refuse an event for what it is begin (a message too long, a file too
large, a mail taken for spam), as :meth:`Deliverer._post` says them; a receiver's other
answers (401, 404, 429, 5xx; a refused connection) are about the receiver, not the event."""


class Deliverer:
    """Delivers events one by one from a thread of its own, in order, never losing one quietly
    (see the module's docstring: the queue, the retries, the end); a subclass says how one is
    delivered (:meth:`_post`). ``what`` and ``shown`` name it in the log (``webhook
    https://…``, the password never shown)."""

    what = "webhook"

    def __init__(self, shown: str, *, timeout: float = 5.0, limit: int = 10000, drain: float = 10.0,
                 backoff: tuple[float, float] = (1.0, 30.0), clock: Clock = time.monotonic,
                 snapshots: Path | None = None, clips: Path | None = None) -> None:
        """``snapshots``, ``clips``: the folders the events' snapshots and clips are in
        (:meth:`attachment`)."""
        self.shown = shown
        self.snapshots = snapshots
        self.clips = clips
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
        self.refused = 0  # refused for good (REFUSALS) while the next was taken
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
        lost = self.dropped + self.undelivered + self.refused
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
            if error is not None and error.startswith(REFUSALS) and self._refused_for_good(event, error):
                error = None
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

    def _refused_for_good(self, event: dict[str, Any], error: str) -> bool:
        """Whether ``event``, refused with ``error`` (:data:`REFUSALS`), is refused for what it
        is: the next event waiting is taken (and so is gone from the queue, as ``event`` is then,
        counted and logged). ``False`` when no other event waits, or it fails too."""
        with self._cond:
            following = self._queue[1] if len(self._queue) > 1 and self._queue[0] is event else None
        if following is None or self._post(following) is not None:
            return False
        with self._cond:
            for gone in (event, following):
                if self._queue and self._queue[0] is gone:
                    self._queue.popleft()
        self.refused += 1
        self._first_error = self._first_error or error
        log.error("%s %s: refused an event for good (%s), the next one taken: %s", self.what, self.shown, error,
                  describe(event))
        return True

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def attachment(self, event: dict[str, Any], limit: int, videos: bool = True) -> Attachment | None:
        """The file ``event``'s message carries: its snapshot, or a ``clip`` event's clip once
        ended (with ``videos``), from their folders, when there and at most ``limit`` bytes."""
        if isinstance(event.get("snapshot"), str):
            folder, name, kind = self.snapshots, str(event["snapshot"]), "image/jpeg"
        elif (videos and event.get("event") == "clip" and event.get("state") == "ended"
              and isinstance(event.get("clip"), str)):
            folder, name, kind = self.clips, str(event["clip"]), "video/mp4"
        else:
            return None
        if folder is None or "/" in name:
            return None
        try:
            path = folder / name
            if path.stat().st_size > limit:
                log.info("%s %s: %s is larger than it takes (%.0f MB): sent without", self.what, self.shown, name,
                         limit / 1e6)
                return None
            return Attachment(name, path.read_bytes(), kind)
        except OSError:  # deleted meanwhile (snapshots_keep), or not written (a full disk): the event goes
            return None

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
                 format: str = "json", snapshots: Path | None = None, clips: Path | None = None,
                 priority: str | None = None) -> None:
        """``format``: what each POST is (:func:`payload`); ``snapshots``, ``clips``: the
        folders the events' snapshots and clips are in (carried by the formats that show them);
        ``priority``: how its messages ring a phone (:func:`payload`)."""
        if format not in FORMATS:
            raise ValueError(f"webhook format {format!r} is not one of {', '.join(FORMATS)}")
        super().__init__(redact_url(url), timeout=timeout, limit=limit, drain=drain, backoff=backoff, clock=clock,
                         snapshots=snapshots, clips=clips)
        self.format = format
        self.priority = priority
        self.url = check_webhook(url, format)
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
        self._target, self._given = queried(self._target, format)
        handlers: list[urllib.request.BaseHandler] = []
        if parts.hostname in _LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)
        self._attaching = format in ATTACHED  # (False once a picture is refused)
        self._videos = format in ATTACHED and format not in _PICTURES_ONLY  # (False once a clip is refused)
        self.unattached: str | None = None
        """Why the last event's file (its snapshot, its clip) did not go with it, when it was refused
        (the receiver's answer); ``None``: it went, or there was none."""

    def _post(self, event: dict[str, Any]) -> str | None:
        """Deliver one event; ``None`` when the receiver took it (2xx), else what went wrong.
        An event whose file is refused (400) goes again without it, and so do the later ones
        (with a clip refused, the later clips; the pictures go on); one whose file is too large
        (413), that event alone (see the module)."""
        attached = (self.attachment(event, ATTACHED[self.format], videos=self._videos)
                    if self._attaching else None)
        error = self._send(payload(event, self.format, attached, self._given, self.priority))
        self.unattached = None
        if attached is not None and error is not None and error.startswith(("HTTP 400", "HTTP 413")):
            plain = self._send(payload(event, self.format, None, self._given, self.priority))
            self.unattached = error if plain is None else None
            if plain is None and error.startswith("HTTP 400") and attached.kind.startswith("video/"):
                self._videos = False
                log.warning("%s %s: does not take clips (%s): its events go on without them (with their pictures)",
                            self.what, self.shown, error)
            elif plain is None and error.startswith("HTTP 400"):
                self._attaching = False
                log.warning("%s %s: does not take files (%s): its events go on without their pictures and clips",
                            self.what, self.shown, error)
            elif plain is None:
                log.info("%s %s: %s too large for it (%s): sent without", self.what, self.shown, attached.name, error)
            return plain
        return error

    def _send(self, request: Request) -> str | None:
        target = self._target
        if request.call is not None:  # (telegram: the bot's method, before its query)
            parts = urlsplit(target)
            target = urlunsplit((parts.scheme, parts.netloc, f"{parts.path}/{request.call}", parts.query, ""))
        sent = urllib.request.Request(target, data=request.body, headers={**self._headers, **request.headers},
                                      method=request.method)
        try:
            with self._opener.open(sent, timeout=self.timeout) as response:
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}" + _said(exc)
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _said(error: urllib.error.HTTPError) -> str:
    """What a receiver's error answer says, when it is JSON that says it (Telegram's
    ``description``, ntfy's ``error``, Discord's ``message``, Pushover's ``errors``):
    ``: Bad Request: chat not found``."""
    try:
        said = json.loads(error.read(4096) or b"null")
    except (OSError, ValueError):
        return ""
    if isinstance(said, dict):
        for key in ("description", "error", "message", "errors"):
            value = said.get(key)
            if isinstance(value, list) and value:  # (Pushover's: ["user identifier is invalid"])
                value = "; ".join(map(str, value))
            if isinstance(value, str) and value:
                return f": {value[:200]}"
    return ""
