"""Events by email (``emails``), through a real mail server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputsIncompleteError
from streamyolo.inference.counting import CountingLine
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.sinks import mail as mail_module
from streamyolo.sinks.events import EventFilter, EventSink
from streamyolo.sinks.history import describe
from streamyolo.sinks.mail import Mail
from streamyolo.sources import SourceKind, SourceSpec, open_source
from tests.helpers import read_jsonl, until
from tests.servers import SmtpServer
from tests.test_counting import _WalkerDetector


@pytest.mark.timeout(60)
def test_each_event_it_takes_is_an_email_with_its_snapshot_attached(tmp_path: Path) -> None:
    """The walker crosses the door: one email (of the events it takes: lines), its subject
    what happened, its body the event's line and links, the frame's snapshot attached, as the
    snapshots folder has it; the streams' states are not sent."""
    source = open_source(SourceSpec("hall", "synthetic:?size=320x240&fps=25&frames=30", SourceKind.SYNTHETIC))
    door = CountingLine("door", (0.0, 120.0), (320.0, 120.0))
    shots = tmp_path / "shots"
    with SmtpServer() as server:
        mail = Mail(f"smtp://127.0.0.1:{server.port}", ["me@home.lan", "you@home.lan"], "cams@home.lan",
                    snapshots=shots)
        events = EventSink(tmp_path / "events.jsonl", snapshots=shots, public_url="https://box.lan/",
                           webhooks=[(mail, EventFilter({"line"}))])
        Pipeline([StreamSetup("hall", source, Overflow.BLOCK, lines=(door,))], _WalkerDetector,
                 tracker=tracker_settings("bytetrack"), sinks=[events]).run()
        until(lambda: server.messages, 10, "the email")
    crossed = next(e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "line")
    [(sender, to, raw)] = server.messages
    assert (sender, to) == ("cams@home.lan", ["me@home.lan", "you@home.lan"])
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "streamyolo: hall: person #1 crossed door (in)"
    body = message.get_body(("plain",))
    assert body is not None and body.get_content().splitlines() == [
        describe(crossed), f"snapshot: https://box.lan/snapshots/{crossed['snapshot']}"]
    [picture] = list(message.iter_attachments())
    assert picture.get_filename() == crossed["snapshot"] and picture.get_content_type() == "image/jpeg"
    assert picture.get_content() == (shots / crossed["snapshot"]).read_bytes()


@pytest.mark.timeout(60)
def test_a_login_goes_over_starttls_and_a_wrong_one_is_said(tmp_path: Path, tls_files: tuple[Path, Path],
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A server that wants a login over TLS (STARTTLS, its certificate trusted here): the
    right login delivers (``check --notify``'s test message too), a wrong one is the server's
    answer; the password is never shown. In a config: ``emails`` with the events they take,
    and what is wrong named by its key."""
    from streamyolo import cli

    cert, key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # (the test's own authority)
    with SmtpServer(cert, key, login=("cam", "s3cret")) as server:
        good = Mail(f"smtp://cam:s3cret@127.0.0.1:{server.port}", ["me@home.lan"])
        assert good.post_now({"time": 0.0, "stream": "gate", "event": "state", "state": "failed"}) is None
        wrong = Mail(f"smtp://cam:n0tTh1s@127.0.0.1:{server.port}", ["me@home.lan"])
        said = wrong.post_now({"time": 0.0, "stream": "gate", "event": "state", "state": "failed"})
        assert said is not None and said.startswith("SMTP 535"), said
        assert "n0tTh1s" not in wrong.shown and "s3cret" not in good.shown
        config = {"streams": ["gate=synthetic:"], "emails": [
            {"server": f"smtp://cam:s3cret@127.0.0.1:{server.port}", "to": ["me@home.lan"], "sender": "cam@home.lan",
             "events": ["state", "crowd"], "streams": ["gate"], "down_after": "2m"}]}
        (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
        assert cli.main(["check", str(tmp_path / "cams.yaml"), "--notify"]) == 0
        out = capsys.readouterr().out
        until(lambda: len(server.messages) == 2, 10, "the test message")
    assert (f"events by email to me@home.lan through smtp://cam:***@127.0.0.1:{server.port} (state, crowd; streams "
            "gate; a camera down once down 2m)") in out, out
    assert f"  email to me@home.lan through smtp://cam:***@127.0.0.1:{server.port}: taken" in out, out
    tested = email.message_from_bytes(server.messages[1][2], policy=email.policy.default)
    assert tested["Subject"] == "streamyolo: a test from streamyolo check --notify: this is where the events go"
    assert "s3cret" not in out + caplog.text
    for entry, message in (({"server": "http://mail.lan", "to": ["me@home.lan"]},
                            r"config key 'emails\.0\.server': must be an smtp:// or smtps:// URL"),
                           ({"server": "smtp://mail.lan", "to": ["me"]}, r"config key 'emails\.0\.to\.0': "),
                           ({"server": "smtp://mail.lan", "to": []}, r"config key 'emails\.0\.to': "),
                           ({"server": "smtp://mail.lan", "to": ["me@home.lan"], "classes": ["unicorn"]},
                            r"config key 'emails\.0\.classes': 'unicorn' is not one of the model's 3 classes")):
        with pytest.raises(ConfigError, match=message):
            build_config({"streams": ["a.mp4"], "emails": [entry]})


@pytest.mark.timeout(60)
def test_a_burst_of_events_is_one_connection_and_one_the_server_dropped_is_made_anew(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages in a burst go over one connection (one login, not one per event); when the
    server has closed it meanwhile (a restart), the next goes over a new one, not lost; past
    ``KEPT_OPEN`` idle, a new one too."""
    events = [{"time": 1765016100.0 + n, "stream": "hall", "event": "line", "line": "door", "direction": "in",
               "id": n, "cls": 0, "name": "person"} for n in range(5)]
    with SmtpServer() as server:
        port = server.port
        mail = Mail(f"smtp://127.0.0.1:{port}", ["me@home.lan"], "cams@home.lan")
        mail.start()
        for event in events[:3]:
            mail.send(event)
        until(lambda: len(server.messages) == 3, 10, "the burst's emails")
    assert len(set(server.peers)) == 1 and None not in server.peers, server.peers
    with SmtpServer(port=port) as again:  # (the server restarted: the connection kept open is gone)
        mail.send(events[3])
        until(lambda: len(again.messages) == 1, 10, "the email after the restart")
        monkeypatch.setattr(mail_module, "KEPT_OPEN", 0.0)
        mail.send(events[4])
        until(lambda: len(again.messages) == 2, 10, "the email after the connection's time")
        mail.close()
    assert mail.delivered == 5 and len(set(again.peers)) == 2
    subjects = [email.message_from_bytes(raw, policy=email.policy.default)["Subject"]
                for _, _, raw in [*server.messages, *again.messages]]
    assert subjects == [f"streamyolo: hall: person #{n} crossed door (in)" for n in range(5)]


@pytest.mark.timeout(60)
def test_a_message_the_server_refuses_for_good_does_not_hold_back_the_others() -> None:
    """A mail server that refuses one message (552: too large for it) while it takes the next:
    that one is counted as lost, the later ones go, and the end says so."""
    events = [{"time": 1765016100.0 + n, "stream": "hall", "event": "line", "line": "door", "direction": "in",
               "id": n, "cls": 0, "name": name} for n, name in enumerate(["person", "elephant", "person"])]
    with SmtpServer() as server:
        server.refuse_containing = b"elephant"
        mail = Mail(f"smtp://127.0.0.1:{server.port}", ["me@home.lan"], "cams@home.lan", backoff=(0.05, 0.1))
        mail.start()
        for event in events:
            mail.send(event)
        until(lambda: len(server.messages) == 2, 10, "the emails after the one refused")
        lost = (r"email to me@home\.lan through smtp://127\.0\.0\.1:\d+: 1 event\(s\) could not be delivered "
                r"\(first: SMTP 552 5\.3\.4 Message too big for system\)")
        with pytest.raises(OutputsIncompleteError, match=lost):
            mail.close()
    subjects = [email.message_from_bytes(raw, policy=email.policy.default)["Subject"] for _, _, raw in server.messages]
    assert subjects == [f"streamyolo: hall: person #{n} crossed door (in)" for n in (0, 2)]


@pytest.mark.timeout(60)
def test_an_emails_priority_is_its_messages_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``priority: urgent``: each message is marked as mail programs show it (``X-Priority``,
    ``Importance``); a real server takes it so; ``check`` says it."""
    from streamyolo import cli

    event = {"time": 1765016100.0, "stream": "hall", "event": "enter", "zone": "yard", "id": 3, "cls": 0,
             "name": "person"}
    with SmtpServer() as server:
        config = {"streams": ["synthetic:"], "emails": [{"server": f"smtp://127.0.0.1:{server.port}",
                                                         "to": ["me@home.lan"], "priority": "urgent"}]}
        (tmp_path / "cams.yaml").write_text(json.dumps(config), encoding="utf-8")
        assert cli.main(["check", str(tmp_path / "cams.yaml")]) == 0
        assert f"events by email to me@home.lan through smtp://127.0.0.1:{server.port} (priority urgent)" \
            in capsys.readouterr().out
        mail = Mail(f"smtp://127.0.0.1:{server.port}", ["me@home.lan"], priority="urgent")
        mail.start()
        mail.send(event)
        mail.close()
        quiet = Mail(f"smtp://127.0.0.1:{server.port}", ["me@home.lan"], priority="low").message(event)
    [(_, _, raw)] = server.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert (message["X-Priority"], message["Importance"]) == ("1 (Highest)", "high")
    assert (quiet["X-Priority"], quiet["Importance"]) == ("4 (Low)", "low")
    assert Mail(f"smtp://127.0.0.1:{server.port}", ["me@home.lan"]).message(event)["X-Priority"] is None
