"""Real servers on 127.0.0.1 for live-source tests: GStreamer's RTSP server (a subprocess
under the system Python), an MJPEG-over-HTTP camera, and a silent TCP server."""

from __future__ import annotations

import getpass
import http.server
import json
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import cv2

from streamyolo.sources import SyntheticSource
from tests.helpers import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SCRIPT = ROOT / "scripts" / "rtsp_server.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rtsp_server_available() -> str | None:
    """None if the GStreamer RTSP server can run here, else why not."""
    if shutil.which(SYSTEM_PYTHON) is None:
        return f"{SYSTEM_PYTHON} not found"
    check = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                              "from gi.repository import GstRtspServer"],
        capture_output=True, encoding="utf-8", timeout=60, check=False)
    if check.returncode != 0:
        return "GStreamer RTSP server bindings missing (python3-gi, gir1.2-gst-rtsp-server-1.0)"
    return None


class RtspServer:
    """``rtsp://127.0.0.1:<port>/stream`` serving ``file`` (and its ``sound``: ``aac``, ``alaw``
    or ``mulaw``, as the file holds it); can be killed, restarted and stalled."""

    def __init__(self, file: Path, port: int | None = None, user: str | None = None,
                 password: str | None = None, sound: str | None = None) -> None:
        self.file = file
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.sound = sound
        self.process: subprocess.Popen[str] | None = None

    def url(self, path: str = "/stream", credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if self.user and credentials else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        args = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--port", str(self.port), "--file", str(self.file)]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        if self.sound:
            args += ["--sound", self.sound]
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, encoding="utf-8")
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()  # blocks until listening (or dead)
        if line != "ready":
            self.kill()
            raise RuntimeError(f"RTSP server did not start on port {self.port}: {line!r}")

    def command(self, word: str) -> None:
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == f"ok {word}"

    def kill(self) -> None:
        """SIGKILL: the way a camera dies (no goodbye to its clients)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            self.process = None


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    server: _MjpegHttpServer

    def do_GET(self) -> None:
        if self.path != "/video.mjpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        source = SyntheticSource("mjpeg", "synthetic:?size=320x240&fps=15")
        source.open()
        while not self.server.stopping.is_set():
            raw = source.read()
            assert raw is not None
            ok, jpeg = cv2.imencode(".jpg", raw.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            try:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg.tobytes() + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                return
            self.server.stopping.wait(1 / 15)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _MjpegHttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MjpegHandler)
        self.stopping = threading.Event()


class _HttpCamera:
    """A camera served over HTTP on loopback by ``server`` in a thread of its own, at :attr:`url`
    (``path`` on it), while in a ``with`` block."""

    path = "/"

    def __init__(self, server: _MjpegHttpServer | _PacedHttpServer, thread: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=self._server.serve_forever, name=thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class MjpegCamera(_HttpCamera):
    """An MJPEG-over-HTTP camera at ``http://127.0.0.1:<port>/video.mjpg``, 15 fps."""

    path = "/video.mjpg"

    def __init__(self) -> None:
        super().__init__(_MjpegHttpServer(), "test:mjpeg")


class _PacedHandler(http.server.BaseHTTPRequestHandler):
    server: _PacedHttpServer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        data, rate = self.server.data, self.server.rate
        started, sent = time.monotonic(), 0
        while sent < len(data) and not self.server.stopping.is_set():
            ahead = sent / rate - (time.monotonic() - started)  # (seconds sent before they are due)
            if ahead > 0 and self.server.stopping.wait(ahead):
                return
            try:
                self.wfile.write(data[sent:sent + 1316])  # (7 transport stream packets)
            except (BrokenPipeError, ConnectionResetError):
                return
            sent += 1316

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _PacedHttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, data: bytes, seconds: float) -> None:
        super().__init__(("127.0.0.1", 0), _PacedHandler)
        self.data, self.rate = data, len(data) / seconds
        self.stopping = threading.Event()


class TransportStreamCamera(_HttpCamera):
    """An MPEG-TS camera over HTTP at ``http://127.0.0.1:<port>/live.ts``: ``data`` sent over
    ``seconds`` at an even byte rate (as it plays), then the stream ends."""

    path = "/live.ts"

    def __init__(self, data: bytes, seconds: float) -> None:
        super().__init__(_PacedHttpServer(data, seconds), "test:ts")


class SilentServer:
    """Accepts TCP connections and never says a word: a camera that hangs."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.port = int(self._socket.getsockname()[1])
        self._accepted: list[socket.socket] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test:silent")

    def _serve(self) -> None:
        self._socket.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(conn)
            self.connections += 1

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for conn in self._accepted:
            conn.close()
        self._socket.close()


def running(server: RtspServer) -> Iterator[RtspServer]:
    server.start()
    try:
        yield server
    finally:
        server.kill()


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: HookReceiver._Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        receiver = self.server.receiver
        pictured = self.command == "PUT" or self.headers.get("Content-Type", "").startswith("multipart/")
        with receiver.lock:
            receiver.attempts += 1
            refuse = receiver.attempts <= receiver.refuse_first or receiver.refuse_all
            video = self.headers.get("Content-Type", "").startswith("video/") or b"Content-Type: video/" in body
            unpictured = pictured and (receiver.refuse_pictures or (video and receiver.refuse_videos)) and not refuse
            large = pictured and not refuse and receiver.largest is not None and len(body) > receiver.largest
            unread = not refuse and receiver.refuse_containing is not None and receiver.refuse_containing in body
            if not refuse and not unpictured and not large and not unread:
                receiver.bodies.append(body)
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    receiver.events.append(json.loads(body))
                receiver.requests.append((self.path, dict(self.headers)))
                receiver.methods.append(self.command)
        answer = (b'{"code":40014,"http":400,"error":"attachments not allowed"}' if unpictured
                  else b'{"code":41301,"http":413,"error":"attachment too large"}' if large
                  else b'{"ok":false,"error_code":400,"description":"Bad Request: message is too long"}' if unread
                  else b"")
        self.send_response(503 if refuse else 400 if unpictured or unread else 413 if large else 200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_PUT = do_POST  # noqa: N815 (http.server's name for it)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HookReceiver:
    """A webhook's receiver on 127.0.0.1: keeps every body POSTed to it; answers 503 to
    the first ``refuse_first`` requests (or to all while ``refuse_all``), as a receiver that is
    down or restarting; with ``refuse_pictures``, 400 to a request with a picture (a ``PUT``, a
    ``multipart/form-data`` body), as ntfy without attachments answers (with ``refuse_videos``,
    to a video only); 413 to one larger than ``largest`` bytes; 400 to one whose body holds
    ``refuse_containing`` (as Telegram answers a message too long)."""

    class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        receiver: HookReceiver

    def __init__(self, refuse_first: int = 0) -> None:
        self.refuse_first = refuse_first
        self.refuse_all = False
        self.refuse_pictures = False
        self.refuse_videos = False
        self.largest: int | None = None
        self.refuse_containing: bytes | None = None
        self.attempts = 0
        self.events: list[dict[str, object]] = []  # the JSON bodies
        self.bodies: list[bytes] = []  # every body, JSON or not
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.methods: list[str] = []  # each taken request's (POST, PUT)
        self.lock = threading.Lock()
        self._server = HookReceiver._Server(("127.0.0.1", 0), _HookHandler)
        self._server.receiver = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, name="test:hook",
                                        kwargs={"poll_interval": 0.05})

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def mosquitto_available() -> str | None:
    """The path of the mosquitto broker, if installed (it lives in /usr/sbin, often off PATH)."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return found if Path(found).exists() else None


class MqttBroker:
    """A real MQTT broker (mosquitto) on 127.0.0.1, with a login when ``password`` is given;
    ``stop`` and ``start`` again on the same port, as a broker that restarts."""

    def __init__(self, folder: Path, user: str | None = None, password: str | None = None) -> None:
        binary = mosquitto_available()
        assert binary is not None
        self.binary = binary
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 f"user {getpass.getuser()}"]  # as root it would switch to "mosquitto", who cannot read our files
        if password is not None and user is not None:
            passwords = folder / "passwords"
            passwords.write_text("")
            subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(passwords),
                            user, password], check=True, capture_output=True)
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> MqttBroker:
        self._process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def __enter__(self) -> MqttBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MqttSubscriber:
    """A client of the broker that keeps every message it gets (of every topic)."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user is not None:
            self.client.username_pw_set(user, password)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "the test's subscriber could not subscribe"

    def events(self) -> list[dict[str, object]]:
        return [json.loads(payload) for topic, payload, _ in self.messages
                if not topic.endswith(("/available", "/snapshot", "/run", "/stats", "/overloaded"))]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SmtpServer:
    """A mail server on 127.0.0.1 (aiosmtpd) that keeps every message it takes; with ``cert``
    and ``key`` it offers STARTTLS, and with ``login`` (``(user, password)``) it takes mail only
    from that login, over TLS; ``port``: on that port (a server that restarts); a message
    holding ``refuse_containing`` it refuses (552, as a message too large)."""

    def __init__(self, cert: Path | None = None, key: Path | None = None,
                 login: tuple[str, str] | None = None, port: int | None = None) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[tuple[str, list[str], bytes]] = []  # (from, to, the message)
        self.peers: list[object] = []  # each message's connection (its client's address)
        self.refuse_containing: bytes | None = None
        kept, peers, refusing = self.messages, self.peers, self

        class _Handler:
            async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
                if refusing.refuse_containing is not None and refusing.refuse_containing in envelope.original_content:
                    return "552 5.3.4 Message too big for system"
                kept.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
                peers.append(getattr(session, "peer", None))
                return "250 OK"

        def _authenticate(server: object, session: object, envelope: object, mechanism: str,
                          data: Any) -> AuthResult:
            given = (data.login.decode(), data.password.decode()) if hasattr(data, "login") else None
            return AuthResult(success=given == login, handled=False)  # (not handled: its 535 said for us)

        tls = None
        if cert is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(str(cert), str(key) if key is not None else None)
        self.port = port or free_port()
        options: dict[str, Any] = {"tls_context": tls} if tls is not None else {}
        if login is not None:
            options |= {"authenticator": _authenticate, "auth_required": True, "auth_require_tls": True}
        self._controller = Controller(_Handler(), hostname="127.0.0.1", port=self.port, **options)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
