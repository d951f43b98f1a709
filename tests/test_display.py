"""The tiled window: absent without a display (never a crash), real under a real X server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.helpers import PYTHON, ROOT, env_for_subprocess


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A real X server (Xvfb) on a free display number."""
    need("Xvfb and xdotool are needed (.ci/run installs them)"
         if shutil.which("Xvfb") is None or shutil.which("xdotool") is None else None)
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1600x900x24", "-nolisten", "tcp"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    try:
        assert number, "Xvfb did not report its display"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.timeout(120)
def test_display_flag_without_a_display_runs_headless(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "streamyolo", "run", "--source", "synthetic:?size=64x48&frames=5", "--model", "yolo26n.yaml",
         "--imgsz", "64", "--display", "--summary", str(tmp_path / "s.json")],
        env=env_for_subprocess(), cwd=ROOT, capture_output=True, encoding="utf-8", timeout=100, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "running headless" in done.stderr
    assert json.loads((tmp_path / "s.json").read_text())["streams"]["cam0"]["processed"] == 5


@pytest.mark.timeout(180)
def test_window_shows_and_q_quits(xvfb: str, tmp_path: Path) -> None:
    env = {**env_for_subprocess(), "DISPLAY": xvfb}
    process = subprocess.Popen(
        [PYTHON, "-m", "streamyolo", "run", "--source", "a=synthetic:?size=320x240&fps=30", "--source",
         "b=synthetic:?size=320x240&fps=30", "--model", "yolo26n.yaml", "--imgsz", "64", "--display",
         "--summary", str(tmp_path / "s.json"), "--status-interval", "0"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
    )
    try:
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "^streamyolo$"],
                               env=env, capture_output=True, encoding="utf-8", timeout=90, check=False)
        assert found.returncode == 0 and found.stdout.strip(), f"no window: {found.stderr}"
        window = found.stdout.split()[0]
        geometry = subprocess.run(["xdotool", "getwindowgeometry", window], env=env, capture_output=True,
                                  encoding="utf-8", timeout=30, check=True).stdout
        width, height = (int(v) for v in geometry.split("Geometry:")[1].split()[0].split("x"))
        assert width >= 640 and height >= 360, geometry
        subprocess.run(["xdotool", "windowactivate", "--sync", window], env=env, timeout=30, check=False)
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=env, timeout=30, check=True)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    streams = json.loads((tmp_path / "s.json").read_text())["streams"]
    assert {r["state"] for r in streams.values()} == {"stopped"}
    assert all(r["processed"] > 0 for r in streams.values())
