"""streamyolo runs fully offline: a run as a user starts it, on a machine where Ultralytics
has never run before (fresh HOME, no settings file, no fonts, no YOLO_OFFLINE set, not in
CI, where OpenVINO's telemetry would keep quiet on its own), reaches
for no host other than loopback — no DNS look-up, no connection, no download.

The guard is a ``sitecustomize`` module put first on the child's ``PYTHONPATH``: it wraps
``socket.getaddrinfo`` and ``socket.socket.connect`` (which every HTTP client, pip and
urllib end up in), writes each attempt on a non-loopback address to a file and refuses it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, ROOT, env_for_subprocess

GUARD = '''
import os, socket

_LOG = os.environ["STREAMYOLO_NET_LOG"]
_LOCAL_NAMES = {"localhost", "::1", "0.0.0.0"}


def _record(what):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(what + "\\n")


def _local(host):
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    return name in _LOCAL_NAMES or name.startswith("127.")


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        _record(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "blocked by the offline test")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
_connect = socket.socket.connect


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _record(f"connect {address}")
        raise OSError(101, "blocked by the offline test")
    return _connect(self, address)


socket.socket.connect = connect
'''


def _guarded_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "network.log"
    env = env_for_subprocess()
    env["PYTHONPATH"] = str(guard) + os.pathsep + env["PYTHONPATH"]
    env["STREAMYOLO_NET_LOG"] = str(log)
    home = tmp_path / "home"  # Ultralytics has never run here: no settings, no fonts
    home.mkdir()
    env["HOME"] = str(home)
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("YOLO_CONFIG_DIR", None)
    for key in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL"):  # streamyolo must set these itself
        env.pop(key, None)
    for key in ("CI", "TF_BUILD", "JENKINS_URL"):  # OpenVINO's telemetry stays quiet in CI, not on users' boxes
        env.pop(key, None)
    return env, log


def test_the_guard_catches_a_lookup(tmp_path: Path) -> None:
    """The guard works: a child that looks up a host is caught, so silence below means something."""
    env, log = _guarded_env(tmp_path)
    done = subprocess.run([PYTHON, "-c", "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n"
                           "except OSError:\n    pass\n"], env=env, capture_output=True, encoding="utf-8", timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "getaddrinfo example.com\n"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("model", ["demo", "demo in PyTorch", "yolo26n.yaml", "openvino", "demo in process workers"])
def test_a_run_reaches_for_no_host(model: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env, log = _guarded_env(tmp_path)
    more: list[str] = []
    converts = model.startswith("demo") and "PyTorch" not in model  # by default, to OpenVINO (whose
    # converter has telemetry of its own)
    if model == "demo in process workers":  # the fork server and its children import and convert
        model, more = "demo", ["--model-cache", str(tmp_path / "cache"), "--worker-mode", "process"]
    elif model == "openvino":
        model = str(request.getfixturevalue("shared_model"))
    elif model == "demo":
        more = ["--model-cache", str(tmp_path / "cache")]
    elif model == "demo in PyTorch":  # and tracked: Ultralytics' trackers (BoT-SORT's motion compensation too)
        model, more = "demo", ["--pytorch-cpu", "torch", "--tracker", "botsort"]
    out = tmp_path / "out"
    done = subprocess.run(
        [PYTHON, "-m", "streamyolo", "run", "--source", "a=synthetic:scene?seed=5&size=320x192&frames=6",
         "--source", "b=synthetic:?size=256x192&frames=6", "--model", model, "--imgsz", "320", "--workers", "2",
         "--record", str(out / "rec"), "--jsonl", str(out / "det.jsonl"), "--summary", str(out / "summary.json"),
         "--no-display", *more],
        env=env, capture_output=True, encoding="utf-8", timeout=240, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {name: r["processed"] for name, r in summary["streams"].items()} == {"a": 6, "b": 6}
    assert (out / "rec" / "a.mp4").stat().st_size > 0
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"network reached for:\n{attempts}"
    if converts:
        assert len(list((tmp_path / "cache" / "pytorch").glob("*.xml"))) == 1, "the network was not converted"
