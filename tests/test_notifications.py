"""Notifications a person reads on a phone (``text`` for ntfy, ``discord``, ``telegram``) carry
the event's snapshot itself, so they show who came from a box nobody outside can reach; a
receiver that takes no pictures still gets every event; a bot's token is never shown."""

from __future__ import annotations

import email
import email.policy
import json
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
from tests.servers import HookReceiver, SmtpServer, free_port


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
    warned = [r.getMessage() for r in caplog.records if "does not take" in r.getMessage()]
    assert warned == [f"webhook {hook.url}: does not take files (HTTP 400 Bad Request: attachments not allowed): "
                      "its events go on without their pictures and clips"]
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
def test_a_clip_too_large_for_the_receiver_goes_without_and_the_next_picture_with(tmp_path: Path) -> None:
    """413 (a file larger than the receiver takes): that event again at once without it, the
    next one still with its picture; a clip larger than the format's own limit is not even
    tried (ntfy.sh's 15 MB)."""
    shots, clips = tmp_path / "shots", tmp_path / "clips"
    clips.mkdir()
    (clips / "hall-1.mp4").write_bytes(b"\0\0\0\x18ftypisom" + bytes(200_000))
    (clips / "hall-2.mp4").write_bytes(bytes(15_000_001))
    ended = [{"time": 1765016100.0, "stream": "hall", "event": "clip", "state": "ended", "clip": f"hall-{n}.mp4",
              "seconds": 9.5} for n in (1, 2)]
    crossed = _event(shots, 1)
    with HookReceiver() as hook:
        hook.largest = 100_000
        webhook = Webhook(hook.url, format="text", snapshots=shots, clips=clips)
        webhook.start()
        for event in (ended[0], crossed, ended[1]):
            webhook.send(event)
        webhook.close()
        assert hook.attempts == 4  # (the first clip twice; the second, too large for ntfy.sh, not tried)
    assert hook.methods == ["POST", "PUT", "POST"]
    assert [hook.bodies[0].decode(), hook.bodies[2].decode()] == [describe(ended[0]), describe(ended[1])]
    assert hook.bodies[1] == (shots / str(crossed["snapshot"])).read_bytes()


@pytest.mark.timeout(60)
def test_a_receiver_that_refuses_a_clip_still_gets_the_pictures(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A bot that refuses a clip (400): that event goes again as a message, the later clips go
    without being tried, and the pictures still go (said once)."""
    shots, clips = tmp_path / "shots", tmp_path / "clips"
    clips.mkdir()
    (clips / "hall-1.mp4").write_bytes(b"\0\0\0\x18ftypisom" + bytes(1000))
    ended = {"time": 1765016100.0, "stream": "hall", "event": "clip", "state": "ended", "clip": "hall-1.mp4",
             "seconds": 9.5}
    caplog.set_level(logging.WARNING, "streamyolo.sinks.webhook")
    with HookReceiver() as bot:
        bot.refuse_videos = True
        webhook = Webhook(bot.url.replace("/hook", "/bot1:abc?chat_id=7"), format="telegram", snapshots=shots,
                          clips=clips)
        webhook.start()
        for event in (ended, _event(shots, 1), ended):
            webhook.send(event)
        webhook.close()
        assert bot.attempts == 4  # (the first clip twice; the second not tried)
    assert [path for path, _ in bot.requests] == ["/bot1:abc/sendMessage", "/bot1:abc/sendPhoto",
                                                  "/bot1:abc/sendMessage"]
    assert [r.getMessage() for r in caplog.records if "does not take" in r.getMessage()] == [
        "webhook http://127.0.0.1:{}/bot***?chat_id=7: does not take clips (HTTP 400 Bad Request: attachments not "
        "allowed): its events go on without them (with their pictures)".format(bot.url.split(":")[2].split("/")[0])]


@pytest.mark.timeout(60)
def test_pushover_gets_pictures_and_a_clips_link_not_the_clip(tmp_path: Path) -> None:
    """Pushover takes pictures only: a ``clip`` event's clip is not uploaded but linked (its
    ``url``, shown as a button, with ``public_url``); its app's token is shown as ``***``."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "hall-1.mp4").write_bytes(b"\0\0\0\x18ftypisom" + bytes(1000))
    ended = {"time": 1765016100.0, "stream": "hall", "event": "clip", "state": "ended", "clip": "hall-1.mp4",
             "seconds": 9.5, "clip_url": "https://box.lan/clips/hall-1.mp4"}
    with HookReceiver() as hook:
        webhook = Webhook(f"{hook.url}?token=secret-app&user=me", format="pushover", clips=clips)
        assert webhook.shown == f"{hook.url}?token=***&user=me"
        webhook.start()
        webhook.send(ended)
        webhook.close()
    [(path, headers)] = hook.requests
    assert path == "/hook"  # (the token and the user in the body, not the URL)
    assert form_fields(hook.bodies[0], headers["Content-Type"]) == {
        "token": (None, b"secret-app"), "user": (None, b"me"), "title": (None, b"streamyolo: hall"),
        "message": (None, describe(ended).encode()), "timestamp": (None, b"1765016100"),
        "url": (None, b"https://box.lan/clips/hall-1.mp4"), "url_title": (None, b"clip")}


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


@pytest.mark.timeout(120)
def test_a_moments_notifications_carry_its_picture_then_its_clip(tmp_path: Path) -> None:
    """``events: [clip]`` with ``clips``: a Telegram bot gets the moment's first picture
    (``sendPhoto``) as it begins and its clip (``sendVideo``) once it has ended, ntfy the same as
    attachments, an email the clip attached: each the very file the clips folder has."""
    with HookReceiver() as bot, HookReceiver() as ntfy, SmtpServer() as server:
        config = {"model": "demo", "tracker": "bytetrack", "display": False, "status_interval": 0,
                  "events": str(tmp_path / "events.jsonl"), "snapshots": str(tmp_path / "shots"),
                  "clips": str(tmp_path / "clips"), "clip_before": 0.4, "clip_after": 0.4,
                  "webhooks": [{"url": bot.url.replace("/hook", "/bot123:abc?chat_id=42"), "format": "telegram",
                                "events": ["clip"]},
                               {"url": ntfy.url, "format": "text", "events": ["clip"]}],
                  "emails": [{"server": f"smtp://127.0.0.1:{server.port}", "to": ["me@home.lan"],
                              "events": ["clip"]}],
                  "streams": [{"name": "gate", "source": "synthetic:scene?seed=3&size=416x240&fps=25&frames=60",
                               "zones": {"all": [[0, 0], [416, 0], [416, 240], [0, 240]]}}]}
        Pipeline.from_config(config).run()
    clipped = [e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "clip"]
    assert [e["state"] for e in clipped] == ["started", "ended"] * (len(clipped) // 2), clipped  # (each moment)
    files = [(e["snapshot"], "image/jpeg", (tmp_path / "shots" / e["snapshot"]).read_bytes()) if e["state"] == "started"
             else (e["clip"], "video/mp4", (tmp_path / "clips" / e["clip"]).read_bytes()) for e in clipped]
    assert all(data[4:8] == b"ftyp" for _, kind, data in files if kind == "video/mp4")
    assert [path for path, _ in bot.requests] == [
        "/bot123:abc/sendPhoto" if e["state"] == "started" else "/bot123:abc/sendVideo" for e in clipped]
    sent = [form_fields(body, headers["Content-Type"]) for body, (_, headers) in zip(bot.bodies, bot.requests,
                                                                                       strict=True)]
    assert [message["photo" if kind == "image/jpeg" else "video"] for message, (_, kind, _) in zip(
        sent, files, strict=True)] == [(name, data) for name, _, data in files]
    assert sent[1] == {"chat_id": (None, b"42"), "caption": (None, describe(clipped[1]).encode()),
                       "supports_streaming": (None, b"true"), "video": (files[1][0], files[1][2])}
    assert ntfy.methods == ["PUT"] * len(clipped) and ntfy.bodies == [data for _, _, data in files]
    assert [(h["Filename"], h["Content-Type"]) for _, h in ntfy.requests] == [(name, kind) for name, kind, _ in files]
    until(lambda: len(server.messages) == len(clipped), 10, "every email")
    messages = [email.message_from_bytes(raw, policy=email.policy.default) for _, _, raw in server.messages]
    assert [[(a.get_filename(), a.get_content_type(), a.get_content()) for a in m.iter_attachments()]
            for m in messages] == [[file] for file in files]


@pytest.mark.timeout(60)
def test_check_notify_sends_a_test_picture_and_says_which_receiver_took_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With ``snapshots``, ``check --notify``'s test event carries a test picture to the outputs
    that carry pictures, and each says whether the picture went too: a phone's ntfy that takes
    no attachments is found out before the run, not in its log."""
    from streamyolo import cli

    with HookReceiver() as every, HookReceiver() as phone, HookReceiver() as bare, HookReceiver() as bot, \
            SmtpServer() as server:
        bare.refuse_pictures = True
        config = {"streams": ["synthetic:"], "snapshots": str(tmp_path / "shots"), "webhook": every.url,
                  "webhooks": [{"url": phone.url, "format": "text"}, {"url": bare.url, "format": "text"},
                               {"url": bot.url.replace("/hook", "/bot1:abc?chat_id=7"), "format": "telegram"}],
                  "emails": [{"server": f"smtp://127.0.0.1:{server.port}", "to": ["me@home.lan"]}]}
        path = tmp_path / "cams.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")
        assert cli.main(["check", str(path), "--notify"]) == 0
        said = capsys.readouterr().out
    assert (f"a test event sent:\n  webhook {every.url}: taken\n  webhook {phone.url}: taken, with its picture\n"
            f"  webhook {bare.url}: taken, but not its picture (HTTP 400 Bad Request: attachments not allowed)\n"
            f"  webhook {bot.url.replace('/hook', '/bot***?chat_id=7')}: taken, with its picture\n"
            f"  email to me@home.lan through smtp://127.0.0.1:{server.port}: taken, with its picture\n") in said, said
    assert every.events[0]["snapshot"] == "streamyolo-check-notify.jpg"  # (JSON: the name, for a program)
    picture = cv2.imdecode(np.frombuffer(phone.bodies[0], np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape == (360, 640, 3)
    assert phone.requests[0][1]["Filename"] == "streamyolo-check-notify.jpg"
    assert bare.methods == ["POST"] and bare.bodies[0].decode().endswith("this is where the events go")
    assert form_fields(bot.bodies[0], bot.requests[0][1]["Content-Type"])["photo"] == (
        "streamyolo-check-notify.jpg", phone.bodies[0])
    [(_, _, raw)] = server.messages
    [attached] = email.message_from_bytes(raw, policy=email.policy.default).iter_attachments()
    assert attached.get_content() == phone.bodies[0]
    assert not (tmp_path / "shots" / "streamyolo-check-notify.jpg").exists()  # (the run's folder untouched)


@pytest.mark.timeout(60)
def test_a_webhooks_priority_is_how_each_receiver_rings_a_phone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``priority``: ntfy's ``Priority`` header, Pushover's priority (``urgent``: its emergency
    one, repeated until seen), Telegram's silent message for ``low``; ``check`` says it."""
    from streamyolo import cli

    event = {"time": 1765016100.0, "stream": "hall", "event": "enter", "zone": "yard", "id": 3, "cls": 0,
             "name": "person"}
    with HookReceiver() as ntfy, HookReceiver() as pushover, HookReceiver() as bot:
        hooks = [Webhook(ntfy.url, format="text", priority="urgent"),
                 Webhook(f"{pushover.url}?token=app&user=me", format="pushover", priority="urgent"),
                 Webhook(bot.url.replace("/hook", "/bot1:abc?chat_id=7"), format="telegram", priority="low")]
        for hook in hooks:
            hook.start()
            hook.send(event)
            hook.close()
    assert ntfy.requests[0][1]["Priority"] == "urgent"
    fields = form_fields(pushover.bodies[0], pushover.requests[0][1]["Content-Type"])
    assert (fields["priority"], fields["retry"], fields["expire"]) == ((None, b"2"), (None, b"60"), (None, b"3600"))
    assert bot.events == [{"chat_id": "7", "text": describe(event), "disable_notification": True}]
    config = {"streams": ["synthetic:"], "webhooks": [{"url": ntfy.url, "format": "text", "priority": "high"}]}
    (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
    assert f"events to webhook {ntfy.url} (text; priority high)" in capsys.readouterr().out
    config["webhooks"][0]["format"] = "slack"
    (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 2
    assert "config key 'webhooks.0': priority: a slack webhook's messages carry none (text, telegram and pushover " \
           "do)" in caplog.text


@pytest.mark.timeout(60)
def test_a_webhook_gets_only_the_events_of_the_zones_and_lines_it_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``where: [lower]``: the walker's entering and leaving of the lower zone, not of the upper
    one nor its crossing of the line; the camera's states (of no place) as they are. A name no
    stream has is refused, naming the key; ``check`` says it."""
    from streamyolo import cli
    from streamyolo.buffering import Overflow
    from streamyolo.inference.counting import CountingLine, Zone
    from streamyolo.inference.tracking import tracker_settings
    from streamyolo.pipeline import StreamSetup
    from streamyolo.sinks.events import EventFilter, EventSink
    from streamyolo.sources import SourceKind, SourceSpec, open_source
    from tests.test_counting import _WalkerDetector

    upper = ((100.0, 0.0), (220.0, 0.0), (220.0, 110.0), (100.0, 110.0))
    lower = ((100.0, 130.0), (220.0, 130.0), (220.0, 200.0), (100.0, 200.0))
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    with HookReceiver() as hook:
        events = EventSink(tmp_path / "events.jsonl", webhooks=[(Webhook(hook.url), EventFilter(places={"lower"}))])
        Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(Zone("upper", upper), Zone("lower", lower)),
                              lines=(CountingLine("door", (0.0, 120.0), (320.0, 120.0)),))],
                 _WalkerDetector, tracker=tracker_settings("bytetrack"), sinks=[events]).run()
    written = read_jsonl(tmp_path / "events.jsonl")
    assert {e.get("zone", e.get("line")) for e in written} == {None, "upper", "lower", "door"}
    assert [(e["event"], e.get("zone")) for e in hook.events] == [
        (e["event"], e.get("zone")) for e in written if e.get("zone", e.get("line")) in (None, "lower")]
    assert [e["event"] for e in hook.events] == ["state", "enter", "leave", "state"]
    config = {"streams": [{"name": "hall", "source": "synthetic:", "zones": {"lower": [list(p) for p in lower]}}],
              "tracker": "bytetrack", "webhooks": [{"url": hook.url, "where": ["lower"]}]}
    (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
    assert f"events to webhook {hook.url} (in lower)" in capsys.readouterr().out
    config["webhooks"][0]["where"] = ["lowr"]
    (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 2
    assert ("config key 'webhooks.0.where': no zone or line 'lowr' in the config (its zones and lines: lower) (did "
            "you mean 'lower'?)") in caplog.text
