"""Notifications a person reads on a phone (``text`` for ntfy, ``discord``, ``telegram``) carry
the event's snapshot itself, so they show who came from a box nobody outside can reach; a
receiver that takes no pictures still gets every event; a bot's token is never shown."""

from __future__ import annotations

import logging
from email.header import decode_header, make_header
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.errors import OutputsIncompleteError
from streamyolo.pipeline import Pipeline
from streamyolo.sinks.history import describe
from streamyolo.sinks.webhook import Webhook
from streamyolo.sources.redact import redact_url
from tests.helpers import form_fields, read_jsonl, until
from tests.servers import HookReceiver, free_port


def _event(shots: Path, n: int, line: str = "Tür") -> dict[str, object]:
    """A crossing with its snapshot in ``shots`` (a real JPEG)."""
    name = f"hall-20261206-101500-000-{n}.jpg"
    shots.mkdir(exist_ok=True)
    picture = np.full((48, 64, 3), 40 * n, np.uint8)
    (shots / name).write_bytes(cv2.imencode(".jpg", picture)[1].tobytes())
    return {"time": 1765016100.0 + n, "stream": "hall", "event": "line", "line": line, "direction": "in",
            "id": n, "cls": 0, "name": "person", "snapshot": name}


@pytest.mark.timeout(60)
def test_a_receiver_that_takes_no_pictures_gets_every_event_without(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """ntfy without attachments answers 400 to a picture: that event goes again at once without
    it (its snapshot linked by ``Attach`` when there is a ``snapshot_url``), and so do the later
    ones, said once with the receiver's own words. A line named ``Tür`` reaches the headers as
    RFC 2047 words (which ntfy reads), whole."""
    shots = tmp_path / "shots"
    events = [_event(shots, n) for n in (1, 2, 3)]
    events[2]["snapshot_url"] = f"https://box.lan/snapshots/{events[2]['snapshot']}"
    with HookReceiver() as hook:
        hook.refuse_pictures = True
        caplog.set_level(logging.WARNING, "streamyolo.sinks.webhook")
        webhook = Webhook(hook.url, format="text", snapshots=shots, backoff=(0.05, 0.1))
        webhook.start()
        for event in events:
            webhook.send(event)
        webhook.close()
        assert hook.attempts == 4  # (the first event twice: with its picture, refused, then without)
    assert hook.methods == ["POST"] * 3
    assert [body.decode() for body in hook.bodies] == [describe(e) for e in events]
    assert hook.bodies[0].decode().endswith("hall: person #1 crossed Tür (in)")
    headers = [request[1] for request in hook.requests]
    assert [headers[n].get("Attach") for n in range(3)] == [None, None, events[2]["snapshot_url"]]
    assert str(make_header(decode_header(headers[0]["Title"]))) == "streamyolo: hall"
    warned = [r.getMessage() for r in caplog.records if "pictures" in r.getMessage()]
    assert warned == [f"webhook {hook.url}: does not take pictures (HTTP 400 Bad Request: attachments not allowed): "
                      "its events go on without"]
    # Taken with its picture: the line, with the ü, in the Message header, whole.
    with HookReceiver() as hook:
        webhook = Webhook(hook.url, format="text", snapshots=shots)
        webhook.start()
        webhook.send(events[0])
        webhook.close()
    [(method, body, sent)] = zip(hook.methods, hook.bodies, (r[1] for r in hook.requests), strict=True)
    assert (method, body) == ("PUT", (shots / str(events[0]["snapshot"])).read_bytes())
    assert sent["Message"].startswith("=?UTF-8?B?")
    assert str(make_header(decode_header(sent["Message"]))) == describe(events[0])


@pytest.mark.timeout(60)
def test_a_telegram_bots_token_is_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bot's URL has its token in its path: the log and the end's error show ``bot***``."""
    token = "7700112233:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    url = f"http://127.0.0.1:{free_port()}/bot{token}?chat_id=42"
    assert redact_url(url).endswith("/bot***?chat_id=42")
    caplog.set_level(logging.DEBUG)
    webhook = Webhook(url, format="telegram", backoff=(0.05, 0.1), drain=0.5, timeout=1.0)
    webhook.start()
    webhook.send(_event(tmp_path / "shots", 1))
    with pytest.raises(OutputsIncompleteError) as raised:
        webhook.close()
    assert "bot***" in str(raised.value) and token not in str(raised.value)
    said = [record.getMessage() for record in caplog.records]
    assert any("bot***" in line for line in said) and not any(token in line for line in said), said


@pytest.mark.timeout(120)
def test_a_configs_telegram_webhook_sends_each_person_with_their_picture(tmp_path: Path) -> None:
    """A config's ``webhooks`` entry for a Telegram bot (people entering, one a minute), with
    ``snapshots`` and no ``public_url``: the bot's ``sendPhoto`` gets the snapshot the events
    file names, with the event's line as its caption, to the chat of the URL."""
    with HookReceiver() as bot:
        url = bot.url.replace("/hook", "/bot123:abc?chat_id=@gatecams")
        config = {"model": "demo", "tracker": "bytetrack", "display": False, "status_interval": 0,
                  "events": str(tmp_path / "events.jsonl"), "snapshots": str(tmp_path / "shots"),
                  "webhooks": [{"url": url, "format": "telegram", "events": ["enter"], "classes": ["person"],
                                "cooldown": "1m"}],
                  "streams": [{"name": "gate", "source": "synthetic:scene?seed=3&size=416x240&fps=25&frames=60",
                               "zones": {"all": [[0, 0], [416, 0], [416, 240], [0, 240]]}}]}
        Pipeline.from_config(config).run()
        until(lambda: bot.bodies, 10, "the bot's message")
    first = next(e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "enter" and e["name"] == "person")
    [(path, headers)] = bot.requests
    assert path == "/bot123:abc/sendPhoto"
    assert form_fields(bot.bodies[0], headers["Content-Type"]) == {
        "chat_id": (None, b"@gatecams"), "caption": (None, describe(first).encode()),
        "photo": (first["snapshot"], (tmp_path / "shots" / first["snapshot"]).read_bytes())}
