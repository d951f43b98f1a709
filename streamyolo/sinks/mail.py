"""Events by email (``emails``): each event a message, from a thread of its own, as webhooks are
delivered (the same queue, retries and end: :class:`~streamyolo.sinks.webhook.Deliverer`).

The message's subject is what happened (``streamyolo: gate: person #4 crossed door (in)``), its
body the event's line (as ``streamyolo events --text`` writes it) and the links of its clip,
recording and snapshot (with ``public_url``), and the snapshot itself attached as a JPEG when
there is one (``snapshots``): a notification that shows who came, in any mail program; a
``clip`` event's clip, once ended (``clips``), attached as its MP4 (up to :data:`ATTACHABLE`).

The server is ``smtp://[user:password@]host[:port]`` (port 25 unless given; STARTTLS whenever
the server offers it, and always when a login is given) or ``smtps://…`` (TLS from the start,
port 465). The login is never logged. A connection is kept open for the next message for
:data:`KEPT_OPEN` seconds (a burst of events, one login), and made anew when the server has
closed it meanwhile.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from streamyolo.clock import Clock
from streamyolo.sinks.base import split_url
from streamyolo.sinks.history import describe, happened
from streamyolo.sinks.webhook import Deliverer
from streamyolo.sources.redact import redact_url

KEPT_OPEN = 20.0
"""Seconds a connection is kept open for the next message after one was sent: a burst of events
is one connection (beyond, servers drop idle ones; a new one is made)."""

PRIORITIES = {"min": {"X-Priority": "5 (Lowest)", "Importance": "low"},
              "low": {"X-Priority": "4 (Low)", "Importance": "low"}, "default": {},
              "high": {"X-Priority": "2 (High)", "Importance": "high"},
              "urgent": {"X-Priority": "1 (Highest)", "Importance": "high"}}
"""The headers of each ``priority`` (mail programs show them: a flag, a red mark)."""

ATTACHABLE = 20_000_000
"""The largest file a message carries (a clip; most mail servers take 25 MB, with base64's third)."""


def check_server(url: str) -> str:
    """``url`` if it names a mail server (``smtp://`` or ``smtps://``, a host); else a
    ``ValueError`` saying why (the config error names the key).

    >>> check_server("smtps://me:secret@mail.example.com")
    'smtps://me:secret@mail.example.com'
    """
    split_url(url, ("smtp", "smtps"))
    return url


class Mail(Deliverer):
    """Sends each event as an email to ``to`` through ``server``; see the module."""

    what = "email"

    def __init__(self, server: str, to: list[str], sender: str | None = None, *, snapshots: Path | None = None,
                 clips: Path | None = None, priority: str | None = None,
                 timeout: float = 10.0, limit: int = 10000, drain: float = 10.0,
                 backoff: tuple[float, float] = (1.0, 30.0), clock: Clock = time.monotonic) -> None:
        """``snapshots``, ``clips``: the folders the events' snapshots and clips are in (attached);
        ``priority``: the messages' (``min`` … ``urgent``: :data:`PRIORITIES`)."""
        parts = split_url(check_server(server), ("smtp", "smtps"))
        super().__init__(f"to {', '.join(to)} through {redact_url(server)}", timeout=timeout, limit=limit,
                         drain=drain, backoff=backoff, clock=clock, snapshots=snapshots, clips=clips)
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname or ""
        self.port = parts.port or (465 if self.tls else 25)
        self.login = (unquote(parts.username), unquote(parts.password or "")) if parts.username is not None else None
        self.to = list(to)
        self.sender = sender or f"streamyolo@{socket.gethostname()}"
        self.priority = priority
        self._connection: smtplib.SMTP | None = None  # (kept open for the next message: the delivery thread's)
        self._used = 0.0

    def message(self, event: dict[str, Any]) -> EmailMessage:
        """``event`` as the message sent (see the module)."""
        message = EmailMessage()
        stream = f"{event['stream']}: " if event.get("stream") else ""
        message["Subject"] = f"streamyolo: {stream}{happened(event)}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Date"] = formatdate(float(event.get("time", time.time())), localtime=True)
        message["Message-ID"] = make_msgid("streamyolo")
        for header, value in PRIORITIES.get(self.priority or "", {}).items():
            message[header] = value
        links = [f"{what}: {event[key]}" for key, what in (("clip_url", "clip"), ("recording_url", "recording"),
                                                            ("snapshot_url", "snapshot")) if event.get(key)]
        message.set_content("\n".join([describe(event), *links]) + "\n")
        attached = self.attachment(event, ATTACHABLE)
        if attached is not None:
            maintype, subtype = attached.kind.split("/")
            message.add_attachment(attached.data, maintype=maintype, subtype=subtype, filename=attached.name)
        return message

    def _post(self, event: dict[str, Any]) -> str | None:
        message = self.message(event)
        while True:
            fresh = self._connection is None or self._clock() - self._used > KEPT_OPEN
            try:
                if fresh:
                    self.hang_up()
                    self._connection = self._connect()
                assert self._connection is not None
                self._connection.send_message(message)
                self._used = self._clock()
                return None
            except (smtplib.SMTPException, OSError) as exc:
                self.hang_up()
                if not fresh:  # (a connection kept open that the server has closed meanwhile: a new one)
                    continue
                if isinstance(exc, smtplib.SMTPResponseException):
                    said = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
                        else exc.smtp_error
                    return f"SMTP {exc.smtp_code} {said}"
                return f"{type(exc).__name__}: {exc}"

    def _connect(self) -> smtplib.SMTP:
        server = (smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
                  if self.tls else smtplib.SMTP(self.host, self.port, timeout=self.timeout))
        try:
            server.ehlo()
            if not self.tls and (server.has_extn("starttls") or self.login is not None):
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if self.login is not None:
                server.login(*self.login)
        except BaseException:
            server.close()
            raise
        return server

    def hang_up(self) -> None:
        """End the connection kept open for the next message, if there is one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()

    def post_now(self, event: dict[str, Any]) -> str | None:
        try:
            return super().post_now(event)
        finally:
            self.hang_up()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.hang_up()


__all__ = ["Mail", "check_server"]
