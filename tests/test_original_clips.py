"""Event clips cut from the cameras' own video (``clip_mode: original``): the packets the
source sent around each moment with events, copied, never annotated nor encoded."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from streamyolo.buffering import Overflow
from streamyolo.config import build_config
from streamyolo.errors import ConfigError
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.build import resolve_streams
from streamyolo.sinks import EventSink, VideoRecorder
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.recorder import H264
from streamyolo.sources import SourceKind, SourceSpec, open_source, read_stamp
from streamyolo.sources.base import Taps
from tests.helpers import make_clip, read_jsonl
from tests.test_clips import LOBBY, _Visitors
from tests.test_original import _clip_with_sound, _packets


def _stamps(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [read_stamp(frame.to_ndarray(format="bgr24"))[1] for frame in container.decode(video=0)]  # type: ignore[index]


def _video_packets(path: Path) -> list[bytes]:
    return _packets(path, "video")


@pytest.mark.timeout(60)
def test_a_clip_of_the_original_holds_the_cameras_packets_around_its_events(tmp_path: Path) -> None:
    """The moments of ``_Visitors`` (as in the annotated clips' test) on a real H.264 file
    (key frames every second): each clip holds the file's own packets, bit for bit, from the
    last key frame at least ``before`` seconds before its first event to ``after`` seconds
    past its last, while the stream is recorded as it came beside it: one tap each."""
    video = make_clip(tmp_path / "hall.mp4", "hall", frames=200, fps=25)
    folder, record = tmp_path / "clips", tmp_path / "rec"
    clips = ClipRecorder(folder, before=1.0, after=0.6, streams=[])
    recorder = VideoRecorder(record, streams=[])
    events = EventSink(tmp_path / "events.jsonl", clip_of=clips.clip_of)
    clips.on_end = events.clip_ended
    taps = Taps((recorder.original("hall", live=False), clips.original("hall", live=False)))
    source = open_source(SourceSpec("hall", str(video), SourceKind.FILE), packets=taps)
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,))], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[recorder, clips, events])
    pipeline.start()
    summary = pipeline.join()
    written = read_jsonl(tmp_path / "events.jsonl")
    first, second = (Path(name) for name in summary.clips["hall"])
    assert sorted(folder.iterdir()) == sorted([first, second])
    happened = [(e["event"], e.get("state"), e.get("seq"), e.get("clip")) for e in written]
    assert happened == [("state", "streaming", None, None),
                        ("clip", "started", 51, first.name), ("enter", None, 51, first.name),
                        ("leave", None, 63, first.name), ("clip", "ended", None, first.name),
                        ("clip", "started", 161, second.name), ("enter", None, 161, second.name),
                        ("leave", None, 173, second.name), ("clip", "ended", None, second.name),
                        ("state", "ended", None, None)]
    assert [e["seconds"] for e in written if e.get("state") == "ended" and e["event"] == "clip"] == [
        pytest.approx(54 / 25), pytest.approx(64 / 25)]
    assert _stamps(first) == list(range(25, 79)) and _stamps(second) == list(range(125, 189))
    theirs = _video_packets(video)
    assert _video_packets(first) == theirs[25:79] and _video_packets(second) == theirs[125:189]
    assert _video_packets(record / "hall.mp4") == theirs  # the recording, beside them, has them all
    for clip in (first, second):
        with av.open(str(clip)) as container:
            assert float(next(container.decode(video=0)).time or 0) == pytest.approx(0.0)


@pytest.mark.timeout(60)
def test_a_clip_of_the_original_has_the_sound_and_a_stream_that_ends_within_one_finishes_it(
        tmp_path: Path) -> None:
    """A camera's AAC sound goes into its clips beside the video, on its clock; a stream that
    ends while a clip is open finishes the clip at once, with what it has."""
    video = _clip_with_sound(tmp_path / "hall.mp4", "aac", frames=60, fps=25)
    folder = tmp_path / "clips"
    clips = ClipRecorder(folder, before=1.0, after=5.0, streams=[])
    source = open_source(SourceSpec("hall", str(video), SourceKind.FILE), packets=clips.original("hall", live=False))
    pipeline = Pipeline([StreamSetup("hall", source, Overflow.BLOCK, zones=(LOBBY,))], _Visitors,
                        tracker=tracker_settings("bytetrack"), sinks=[clips])
    pipeline.start()
    deadline = time.monotonic() + 30
    while not any(folder.glob("*.mp4")) or pipeline.health("hall").snapshot().state.value != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    summary = pipeline.join()
    (clip,) = (Path(name) for name in summary.clips["hall"])
    assert _video_packets(clip) == _video_packets(video)[25:60]  # the visitor enters at 51: from 25 to the end
    theirs = _packets(video, "audio")
    ours = _packets(clip, "audio")
    assert len(ours) > 20 and b"".join(ours) in b"".join(theirs)  # a run of the file's own sound packets
    with av.open(str(clip)) as container:
        sound = [float(p.pts * p.time_base) for p in container.demux(audio=0) if p.size]
    assert 0 <= sound[0] < 0.1 and sound[-1] == pytest.approx(35 / 25, abs=0.1)


@pytest.mark.timeout(120)
def test_clip_mode_original_from_a_config_clips_the_street_and_encodes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``clip_mode: original`` in a config, as a user writes it, on a video of the synthetic
    street (the bundled model, a zone over all of it): its clips are its own packets from a
    key frame on, and no frame is encoded for them (nor for the recording of the original)."""
    video = make_clip(tmp_path / "street.mp4", "street", frames=100, size=(416, 240), fps=25, seed=3, scene=True)
    folder, record = tmp_path / "clips", tmp_path / "rec"

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("a frame was encoded")

    monkeypatch.setattr(H264, "__init__", no_encoder)
    config = {"model": "demo", "imgsz": 320, "display": False, "status_interval": 0, "tracker": "bytetrack",
              "clips": str(folder), "clip_mode": "original", "clip_before": 1, "clip_after": 0.5,
              "record": str(record), "record_mode": "original",
              "streams": [{"name": "street", "source": str(video),
                           "zones": {"all": [[0, 0], [416, 0], [416, 240], [0, 240]]}}]}
    with Pipeline.from_config(config) as pipeline:
        results = list(pipeline.results())
    summary = pipeline.summary()
    assert any(result.visits for result in results), "no events: nothing to clip"
    theirs = _video_packets(video)
    assert summary.clips["street"] and sorted(folder.iterdir()) == sorted(Path(n) for n in summary.clips["street"])
    for name in summary.clips["street"]:
        ours = _video_packets(Path(name))
        start = theirs.index(ours[0])
        assert ours == theirs[start:start + len(ours)] and start % 25 == 0, name
    assert _video_packets(record / "street.mp4") == theirs


@pytest.mark.parametrize(("settings", "message"), [
    ({"clip_mode": "original"}, "config keys 'clip_mode' and 'clips': clip_mode is about event clips; give clips"),
    ({"clips": "CLIPS", "clip_mode": "original", "blur": ["person"]},
     "config key 'clip_mode': the original video would show the stream's blurred objects"),
])
def test_clip_mode_original_settings_that_cannot_work_name_their_key(settings: dict[str, object], message: str,
                                                                      tmp_path: Path) -> None:
    config = {"model": "demo", "tracker": "bytetrack",
              "streams": [{"name": "door", "source": "rtsp://127.0.0.1:9/door",
                           "zones": {"all": [[0, 0], [9, 0], [9, 9]]}}],
              **{key: str(tmp_path / "clips") if value == "CLIPS" else value for key, value in settings.items()}}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_config(config)


def test_clip_mode_original_on_a_synthetic_source_is_refused_naming_the_stream(tmp_path: Path) -> None:
    cfg = build_config({"model": "demo", "tracker": "bytetrack", "clips": str(tmp_path / "clips"),
                        "clip_mode": "original",
                        "streams": [{"name": "street", "source": "synthetic:scene",
                                     "lines": {"gate": [[0, 10], [100, 10]]}}]})
    with pytest.raises(ConfigError, match="stream 'street': clip_mode: original copies the video its source sends"):
        resolve_streams(cfg)
