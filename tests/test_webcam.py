"""A webcam that is not there: our one line per attempt, never OpenCV's own C++ messages."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import PYTHON, ROOT, env_for_subprocess

OPENCV_LINE = re.compile(r"^\[ ?(WARN|ERROR|INFO)|VIDEOIO|cap_\w+\.(cpp|hpp)|OpenCV\(|video4linux2|^>")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, *args], capture_output=True, encoding="utf-8", timeout=200,
                          env=env_for_subprocess(), cwd=ROOT, check=False)


@pytest.mark.parametrize("source", ["97", "/dev/video97"])
def test_a_missing_webcam_is_our_one_line_per_attempt_and_no_opencv_noise(source: str) -> None:
    done = _run("-m", "streamyolo", "run", "--source", source, "--no-display", "--duration", "3")
    opencv = [line for line in done.stderr.splitlines() if OPENCV_LINE.search(line)]
    assert opencv == [], done.stderr
    attempts = [line for line in done.stderr.splitlines() if "reconnecting in" in line]
    assert attempts, done.stderr
    camera = "97 (/dev/video97)" if source == "97" else "/dev/video97"
    if sys.platform.startswith("linux"):
        assert all(f": cannot open camera {camera}: no such device; reconnecting in" in line for line in attempts), \
            done.stderr


def test_opencv_is_quiet_inside_quiet_opencv_and_as_before_after() -> None:
    """OpenCV asked for a camera index that does not exist, in a fresh process: a dozen lines
    of its own outside :func:`quiet_opencv`, none inside; its log level put back after."""
    script = """
import cv2
from streamyolo.sources.webcam import quiet_opencv
before = cv2.utils.logging.getLogLevel()
with quiet_opencv():
    with quiet_opencv():  # another thread inside too
        assert not cv2.VideoCapture(97).isOpened()
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
print("inside done", flush=True)
assert cv2.utils.logging.getLogLevel() == before
"""
    quiet = _run("-c", script)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    loud = _run("-c", "import cv2; cv2.VideoCapture(97)")
    assert any(OPENCV_LINE.search(line) for line in loud.stderr.splitlines()), "OpenCV silent: this test proves nothing"
