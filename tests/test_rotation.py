"""Turned pictures: a phone's portrait video shown as its display matrix says (as OpenCV,
and so Ultralytics, reads it), and cameras mounted on their side or upside down (``rotate``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.frames import Result
from streamyolo.pipeline import Pipeline
from streamyolo.sources import SyntheticSource, read_stamp, stream_tag
from streamyolo.sources.base import turn
from tests.helpers import make_clip
from tests.test_cli import streamyolo


def _run(streams: list[dict[str, object]]) -> tuple[dict[str, list[Result]], dict[str, tuple[int, int]]]:
    config = {"streams": streams, "model": "demo", "imgsz": 160, "display": False, "status_interval": 0}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
        sizes = {name: (snap.width, snap.height) for name in pipeline.stream_names
                 if (snap := pipeline.health(name).snapshot())}
    by_stream: dict[str, list[Result]] = {}
    for result in sorted(results, key=lambda r: r.frame.seq):
        by_stream.setdefault(result.stream, []).append(result)
    return by_stream, sizes


@pytest.mark.timeout(120)
def test_a_portrait_video_is_turned_as_its_display_matrix_says_as_opencv_reads_it(tmp_path: Path) -> None:
    """A 320x240 H.264 file that says "show me turned 90° clockwise" gives 240x320 pictures,
    pixel for pixel those OpenCV's reader gives (Ultralytics reads files with it), stamps and
    all; ``rotate: 0`` keeps them as stored, ``rotate: 180`` turns them upside down instead."""
    clip = make_clip(tmp_path / "phone.mp4", "phone", frames=6, shown_turned=90)
    results, sizes = _run([{"name": "auto", "source": str(clip)}, {"name": "stored", "source": str(clip), "rotate": 0},
                           {"name": "upside", "source": str(clip), "rotate": 180}])
    capture = cv2.VideoCapture(str(clip))  # turns by the display matrix by default
    opencv = []
    while (read := capture.read())[0]:
        opencv.append(read[1])
    capture.release()
    assert len(opencv) == 6 and opencv[0].shape == (320, 240, 3)
    assert sizes == {"auto": (240, 320), "stored": (320, 240), "upside": (320, 240)}
    for seq, theirs in enumerate(opencv):
        auto, stored, upside = (results[name][seq].frame.image for name in ("auto", "stored", "upside"))
        assert auto.shape == (320, 240, 3) and np.array_equal(auto, theirs), seq
        assert np.array_equal(turn(auto, 270), stored), seq
        assert read_stamp(stored) == (stream_tag("phone"), seq) and np.array_equal(turn(stored, 180), upside), seq


@pytest.mark.timeout(120)
def test_a_camera_on_its_side_is_turned_before_anything_sees_it(tmp_path: Path) -> None:
    """``rotate: 90`` on a synthetic camera: every picture the model and the outputs get is
    the camera's turned a quarter clockwise, and the stream's size is the turned one; ``check
    --connect`` says so, with the size it read."""
    uri = "synthetic:scene?seed=3&size=416x240&frames=5"
    results, sizes = _run([{"name": "side", "source": uri, "rotate": 90}])
    camera = SyntheticSource("side", uri)
    camera.open()
    assert sizes == {"side": (240, 416)}
    for seq in range(5):
        raw = camera.read()
        assert raw is not None and raw.image is not None
        side = results["side"][seq].frame.image
        assert side.shape == (416, 240, 3) and np.array_equal(turn(side, 270), raw.image), seq
    config = tmp_path / "side.yaml"
    config.write_text(f"streams: [{{name: side, source: '{uri}', rotate: 90}}]\n")
    check = streamyolo("check", str(config), "--connect", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "turned 90° clockwise" in check.stdout and "side  ok: 240x416" in check.stdout, check.stdout


def test_rotate_takes_quarter_turns_only() -> None:
    assert [build_config({"streams": [{"source": "a", "rotate": given}]}).streams[0].rotate
            for given in ("auto", 0, 90, "180", -90, 450)] == ["auto", 0, 90, 180, 270, 90]
    with pytest.raises(ConfigError, match=r"config key 'streams\.0\.rotate': must be auto, 0, 90, 180 or 270 "
                                          r"\(degrees clockwise\)"):
        build_config({"streams": [{"source": "a", "rotate": 45}]})


@pytest.mark.timeout(120)
def test_privacy_areas_are_black_in_every_picture_before_anything_sees_it(tmp_path: Path) -> None:
    """A privacy area (in the turned picture's pixels) is black in what the model gets and in
    the recording; the rest of the picture is the camera's, turned."""
    from tests.helpers import decode

    uri = "synthetic:scene?seed=3&size=416x240&frames=5"
    window = [[20, 30], [200, 30], [200, 150], [20, 150]]
    config = {"streams": [{"name": "side", "source": uri, "rotate": 90, "privacy": {"window": window}}],
              "model": "demo", "imgsz": 160, "display": False, "status_interval": 0, "record": str(tmp_path)}
    with Pipeline.from_config(config) as pipeline:
        results = sorted(pipeline.results(), key=lambda r: r.frame.seq)
    hidden = np.zeros((416, 240), np.uint8)
    cv2.fillPoly(hidden, [np.array(window, np.int32)], 1)
    inside = hidden.astype(bool)
    camera = SyntheticSource("side", uri)
    camera.open()
    for result in results:
        raw = camera.read()
        assert raw is not None and raw.image is not None
        image, expected = result.frame.image, turn(raw.image, 90)
        assert not image[inside].any(), "the privacy area is not black"
        assert np.array_equal(image[~inside], expected[~inside])
        assert expected[inside].mean() > 40  # there was something to hide
    recorded, _ = decode(tmp_path / "side.mp4")
    assert len(recorded) == 5
    for frame in recorded:
        assert np.median(frame[inside]) < 8 and frame[~inside].mean() > 40  # (drawings go over it)
