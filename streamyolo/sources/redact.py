"""Credentials never leave the process: redact them from URLs before printing or writing."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "token", "key", "apikey", "api_key", "auth",
                                "secret", "signature", "sig", "access_token"})
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")
_BOT_TOKEN = re.compile(r"(?<=/bot)\d+:[A-Za-z0-9_-]+")  # a Telegram bot's token, in its URL's path
MASK = "***"


def redact_url(url: str) -> str:
    """Replace the password in ``scheme://user:password@host``, secret query values and a
    Telegram bot's token.

    >>> redact_url("rtsp://admin:hunter2@10.0.0.5/stream1?token=abc&ch=1")
    'rtsp://admin:***@10.0.0.5/stream1?token=***&ch=1'
    >>> redact_url("https://api.telegram.org/bot123456:AAH-x_y/sendMessage?chat_id=42")
    'https://api.telegram.org/bot***/sendMessage?chat_id=42'
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep else f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, _BOT_TOKEN.sub(MASK, parts.path), query, parts.fragment))


def redact_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Redact every URL's password (and a Telegram bot's token) in free text (error messages
    from FFmpeg quote URLs), and any literal secret given."""
    text = _BOT_TOKEN.sub(MASK, _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret strings inside ``url`` (password, secret query values), for :func:`redact_text`."""
    if "://" not in url:
        return ()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: list[str] = []
    if parts.password:
        found.append(parts.password)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRET_QUERY_KEYS and value:
            found.append(value)
    found += _BOT_TOKEN.findall(parts.path)
    return tuple(found)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URL passwords from every record, whoever logged it
    (our code redacts at the source; this is the second line of defence for library logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
