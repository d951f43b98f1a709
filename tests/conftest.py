"""Shared fixtures: real data from ../shared, H.264 clips, models, and the thread-leak check."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, THREAD_PREFIXES, make_clip, make_random_model
from tests.servers import RtspServer, mosquitto_available, rtsp_server_available

SHARED = Path(os.environ.get("STREAMYOLO_SHARED", ROOT.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(missing: str | None) -> None:
    """When something a test needs is ``missing`` (what, said): under CI fail, else skip."""
    if missing is None:
        return
    if IN_CI:
        pytest.fail(missing)
    pytest.skip(missing)


def require(path: Path, what: str) -> Path:
    """Return ``path``; outside CI skip when it is missing, under CI fail."""
    need(None if path.exists() else f"{what} missing: {path} (set STREAMYOLO_SHARED to the shared data folder)")
    return path


@pytest.fixture(scope="session", autouse=True)
def model_cache_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The default model cache (compiled OpenVINO models, PyTorch networks converted to
    OpenVINO) in a folder of the test session's own, shared by its tests and the streamyolo
    processes they start: each set of weights is converted once per session, and the user's
    cache is left alone."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture(scope="session")
def shared_model() -> Path:
    return require(SHARED / "models" / "yolo11n_int8_openvino_model", "real OpenVINO YOLO11n model")


@pytest.fixture(scope="session")
def people_video() -> Path:
    return require(SHARED / "videos" / "people.mp4", "real 1080p street video")


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight yolo26n (from Ultralytics' YAML) that does produce boxes, saved
    once so every worker and the reference loop load the very same weights."""
    return make_random_model(tmp_path_factory.mktemp("models") / "yolo26n-random.pt")


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four real H.264 files with different content, stamped with stream tag and index."""
    folder = tmp_path_factory.mktemp("clips")
    sizes = [(320, 240), (416, 240), (320, 240), (352, 288)]
    return [make_clip(folder / f"clip{i}.mp4", f"clip{i}", frames=12, size=sizes[i], seed=100 + i)
            for i in range(4)]


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[tuple[RtspServer, Path]]:
    """A real RTSP camera (GStreamer's server re-sending a file's H.264: 300 stamped 320x240
    frames at 15 fps, a key frame every second), and the file."""
    need(rtsp_server_available())
    clip = make_clip(tmp_path / "camera.mp4", "camera", frames=300, size=(320, 240), fps=15)
    server = RtspServer(clip)
    server.start()
    try:
        yield server, clip
    finally:
        server.kill()


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """No streamyolo thread may outlive the test that started it."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate()
                if t not in before and _role(t.name) in THREAD_PREFIXES and t.is_alive()]
    for thread in leftover:
        thread.join(timeout=5)
    alive = [t.name for t in leftover if t.is_alive()]
    assert not alive, f"threads outlived the test: {alive}"


def _role(thread_name: str) -> str:
    """What a thread is for: ``capture`` of ``capture:cam1``, ``paho-mqtt-client-`` of paho's."""
    return "paho-mqtt-client-" if thread_name.startswith("paho-mqtt-client-") else thread_name.partition(":")[0]


@pytest.fixture
def broker_folder(tmp_path: Path) -> Path:
    need("mosquitto (an MQTT broker) is needed for the MQTT tests (.ci/run installs it)"
         if mosquitto_available() is None else None)
    return tmp_path


@pytest.fixture
def systemd() -> Iterator[tuple[str, list[tuple[float, str]]]]:
    """A socket as systemd's ``$NOTIFY_SOCKET`` (abstract), and what it heard: (when, message)."""
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"@streamyolo-test-{os.getpid()}-{id(listening):x}"
    listening.bind("\0" + address[1:])
    heard: list[tuple[float, str]] = []

    def listen() -> None:
        while True:
            try:
                message = listening.recv(4096).decode()
                heard.append((time.monotonic(), message))
            except OSError:  # closed
                return

    threading.Thread(target=listen, daemon=True).start()
    yield address, heard
    listening.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by the openssl command."""
    openssl = shutil.which("openssl")
    need("the openssl command is needed to make a test certificate (.ci/run installs it)" if openssl is None else None)
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
