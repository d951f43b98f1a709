"""Recordings: real H.264 MP4s that decode, at the right size and count, even after SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import av
import pytest

from streamyolo.frames import Detections, Frame, FrameMeta, Result
from streamyolo.sinks import VideoRecorder
from streamyolo.sources import SyntheticSource, read_stamp
from tests.helpers import PYTHON, ROOT, decode, env_for_subprocess, read_jsonl


def _results(name: str, count: int, size: str = "320x240", fps: float = 25.0) -> list[Result]:
    source = SyntheticSource(name, f"synthetic:?size={size}&fps={fps}&frames={count}")
    source.open()
    out = []
    while (raw := source.read()) is not None:
        meta = FrameMeta(name, len(out), float(len(out)), raw.pts, fps)
        out.append(Result(Frame(meta, raw.image), Detections.empty(), t_done=float(len(out)) + 0.01))
    return out


@pytest.mark.timeout(60)
def test_recording_decodes_as_h264_at_source_size_rate_and_count(tmp_path: Path) -> None:
    recorder = VideoRecorder(tmp_path, preset="ultrafast")
    recorder.open()
    for result in _results("cam", 40, size="322x181", fps=25.0):
        recorder.write(result)
    recorder.close()
    images, info = decode(tmp_path / "cam.mp4")
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (322, 180)  # yuv420p needs even sizes: one row is cut
    assert len(images) == 40
    assert [read_stamp(image)[1] for image in images] == list(range(40))  # type: ignore[index]
    with av.open(str(tmp_path / "cam.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(25.0)
        assert container.format.name.startswith("mov,mp4")


def _decodable(path: Path) -> list[int]:
    """Indices stamped in every frame that decodes, stopping quietly at a damaged tail."""
    found: list[int] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                stamp = read_stamp(frame.to_ndarray(format="bgr24"))
                if stamp is not None:
                    found.append(stamp[1])
    except av.error.FFmpegError:
        pass
    return found


@pytest.mark.timeout(180)
def test_recording_survives_sigkill(tmp_path: Path, random_model: Path) -> None:
    """Kill -9 mid-run: the MP4 still decodes, in order, up to about a second before the kill."""
    jsonl = tmp_path / "det.jsonl"
    process = subprocess.Popen(
        [PYTHON, "-m", "streamyolo", "run", "--source", "cam=synthetic:?size=320x240&fps=30",
         "--model", str(random_model), "--imgsz", "96", "--record", str(tmp_path / "rec"),
         "--jsonl", str(jsonl), "--no-display", "--status-interval", "0"],
        env=env_for_subprocess(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        waiter = threading.Event()
        lines = 0
        for _ in range(1200):  # up to 120 s for 150 frames to be processed
            if process.poll() is not None:
                pytest.fail(f"streamyolo exited early: {process.stderr.read().decode() if process.stderr else ''}")
            lines = jsonl.read_text().count("\n") if jsonl.exists() else 0
            if lines >= 150:
                break
            waiter.wait(0.1)
        assert lines >= 150
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    processed = len(read_jsonl(jsonl))
    indices = _decodable(tmp_path / "rec" / "cam.mp4")
    assert indices == list(range(len(indices))), "recorded frames must be the first frames, in order"
    assert len(indices) >= processed - 75, f"only {len(indices)} of {processed} processed frames survived"
