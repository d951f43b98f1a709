"""``streamyolo export``: a stream's recordings between two moments as one MP4, copied: from
the key frame at or before the start, across segments, keeping the time a camera was down,
in a second file where the video changes, with its sound; clear errors for what cannot be."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import av
import pytest

from streamyolo.clock import file_stamp
from streamyolo.errors import OutputError
from streamyolo.frames import Detections, Frame, FrameMeta, Result
from streamyolo.sinks import VideoRecorder
from streamyolo.sinks.export import export, parse_moment, recordings_of
from streamyolo.sources import SyntheticSource, read_stamp
from tests.helpers import decode
from tests.test_cli import streamyolo
from tests.test_original import _clip_with_sound, _run

FPS = 25


def _camera_run(folder: Path, start: float, frames: int, size: str = "160x120", seed: int = 1,
                stream: str = "cam", segment: float | None = 1.0) -> None:
    """Record what camera ``stream`` sent from wall-clock ``start`` on (``frames`` frames, 25 a
    second) as a run does, in 1-second segments (a key frame every second; ``segment`` None:
    one file)."""
    source = SyntheticSource(stream, f"synthetic:?size={size}&fps={FPS}&frames={frames}&seed={seed}")
    source.open()
    recorder = VideoRecorder(folder, preset="ultrafast", segment=segment)
    recorder.open()
    monotonic_start = time.monotonic() - (time.time() - start) + 0.02  # named after its second, not the one before
    index = 0
    while (raw := source.read()) is not None:
        meta = FrameMeta(stream, index, monotonic_start + index / FPS, raw.pts, float(FPS))
        recorder.write(Result(Frame(meta, raw.image), Detections.empty(), t_done=meta.t_capture + 0.01))
        index += 1
    recorder.close()


def _shown(path: Path) -> tuple[list[int], list[float]]:
    """The frame numbers stamped in an MP4's pictures, and their times."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    numbers = [stamp[1] for frame in frames if (stamp := read_stamp(frame.to_ndarray(format="bgr24"))) is not None]
    assert len(numbers) == len(frames)
    return numbers, [float(frame.time or 0.0) for frame in frames]


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, float]:
    """A camera recorded for 2 s from a whole second ``t0``, down for 5 s, then 2 s more:
    four 1-second segments, named after their first frames."""
    t0 = float(math.floor(time.time()) - 120)
    folder = tmp_path / "rec"
    _camera_run(folder, t0, 2 * FPS)
    _camera_run(folder, t0 + 7, 2 * FPS, seed=2)
    assert sorted(p.name for p in folder.iterdir()) == [f"cam-{file_stamp(t0 + s)}.mp4" for s in (0, 1, 7, 8)]
    return folder, t0


@pytest.mark.timeout(60)
def test_an_export_starts_at_the_key_frame_before_and_keeps_the_time_the_camera_was_down(
        two_runs: tuple[Path, float], tmp_path: Path) -> None:
    folder, t0 = two_runs
    done = export(folder, "cam", t0 + 1.5, t0 + 8.5, tmp_path / "out.mp4")
    assert done.files == [tmp_path / "out.mp4"] and [p.name for p in done.sources] == [
        f"cam-{file_stamp(t0 + s)}.mp4" for s in (1, 7, 8)]
    numbers, times = _shown(tmp_path / "out.mp4")
    # From the key frame at 1 s (frame 25) to the end of the first run, then the second run's
    # frames up to 8.5 s: 1.5 s of it (frames 0-37).
    assert numbers == [*range(25, 50), *range(0, 38)]
    assert times[0] == 0 and times[24] == pytest.approx(24 / FPS, abs=1e-3)
    assert times[25] == pytest.approx(6.0, abs=1e-3)  # 5 s down: the picture before holds
    assert done.frames == 63 and done.start == t0 + 1 and done.seconds == pytest.approx(7.52, abs=0.01)
    # The whole: segments that follow each other go on without a gap.
    done = export(folder, "cam", t0 - 60, t0 + 60, tmp_path / "all.mp4")
    numbers, times = _shown(tmp_path / "all.mp4")
    assert numbers == [*range(50), *range(50)] and times[50] == pytest.approx(7.0, abs=1e-3)
    assert all(b - a == pytest.approx(1 / FPS, abs=1e-3) for a, b in itertools.pairwise(times[:50]))


@pytest.mark.timeout(60)
def test_nothing_to_export_and_a_file_that_exists_are_clear_errors(two_runs: tuple[Path, float],
                                                                    tmp_path: Path) -> None:
    folder, t0 = two_runs
    with pytest.raises(OutputError, match=r"export of stream 'cam': nothing recorded between .* \(its 4 "
                                          r"recording\(s\) in .* go from "):
        export(folder, "cam", t0 + 3, t0 + 6, tmp_path / "gap.mp4")
    assert not (tmp_path / "gap.mp4").exists()
    with pytest.raises(OutputError, match=r"export of stream 'door': no recording of it in .*rec'$"):
        export(folder, "door", t0, t0 + 9, tmp_path / "door.mp4")
    with pytest.raises(OutputError, match=r"export of stream 'cams': no recording of it in .*rec' \(did you mean "
                                          r"'cam'\?\)$"):  # (a name misspelt: the one meant, of those recorded)
        export(folder, "cams", t0, t0 + 9, tmp_path / "cams.mp4")
    with pytest.raises(OutputError, match=r"the end \(.*\) is not after the start"):
        export(folder, "cam", t0 + 9, t0, tmp_path / "back.mp4")
    (tmp_path / "taken.mp4").write_bytes(b"mine")
    with pytest.raises(OutputError, match=r"export file '.*taken\.mp4' exists \(overwrite replaces it\)"):
        export(folder, "cam", t0, t0 + 9, tmp_path / "taken.mp4")
    assert (tmp_path / "taken.mp4").read_bytes() == b"mine"
    # Only the files that can hold some of the span (and the one before, where they follow on)
    # are read: a month of segments is thousands of files.
    assert [r.path.name for r in recordings_of(folder, "cam", t0 + 7.5, t0 + 7.8)] == [
        f"cam-{file_stamp(t0 + s)}.mp4" for s in (0, 1, 7)]


@pytest.mark.timeout(60)
def test_where_the_video_changes_the_export_goes_on_in_another_file(tmp_path: Path) -> None:
    t0 = float(math.floor(time.time()) - 120)
    folder = tmp_path / "rec"
    _camera_run(folder, t0, FPS)
    _camera_run(folder, t0 + 1, FPS, size="320x240")  # the camera back at another size
    done = export(folder, "cam", t0, t0 + 5, tmp_path / "out.mp4")
    assert done.files == [tmp_path / "out.mp4", tmp_path / "out-2.mp4"] and done.frames == 2 * FPS
    sizes = [decode(path)[0][0].shape[:2] for path in done.files]
    assert sizes == [(120, 160), (240, 320)]


@pytest.mark.timeout(60)
def test_a_file_whose_name_fits_two_streams_is_exported_as_the_one_it_is_of(tmp_path: Path) -> None:
    """``gate-2.mp4`` is the name of stream ``gate``'s second run's file and of stream
    ``gate-2``'s first: each file says whose it is (its title), and an export of ``gate`` takes
    none of ``gate-2``'s video (it took it: another camera's pictures, at another size)."""
    t0 = float(math.floor(time.time()) - 120)
    folder = tmp_path / "rec"
    _camera_run(folder, t0, FPS, stream="gate", segment=None)
    _camera_run(folder, t0 + 2, FPS, size="320x240", stream="gate-2", segment=None)
    _camera_run(folder, t0 + 4, FPS, stream="gate", seed=2, segment=None)  # gate's second run
    assert sorted(p.name for p in folder.iterdir()) == ["gate-2.mp4", "gate-3.mp4", "gate.mp4"]
    assert [r.path.name for r in recordings_of(folder, "gate")] == ["gate.mp4", "gate-3.mp4"]
    assert [r.path.name for r in recordings_of(folder, "gate-2")] == ["gate-2.mp4"]
    done = export(folder, "gate", t0 - 3600, time.time() + 60, tmp_path / "gate.mp4")
    assert done.files == [tmp_path / "gate.mp4"] and done.frames == 2 * FPS, done
    assert decode(done.files[0])[0][0].shape[:2] == (120, 160)


@pytest.mark.timeout(60)
def test_an_export_up_to_now_takes_a_files_segments_placed_after_now(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A file processed faster than it plays is recorded on its video's clock: its last
    segments are named after now. ``export --last 10m`` (``--to`` now) takes them too (it left
    them out without a word); ``--to`` given is the end asked for."""
    from tests.test_cli import in_process

    t0 = float(math.floor(time.time()) + 3)  # (its second segment starts 4 s from now)
    folder = tmp_path / "rec"
    _camera_run(folder, t0 - 2, 4 * FPS)
    done = in_process(capsys, caplog, "export", str(folder), "--stream", "cam", "--last", "10m", "--out",
                      str(tmp_path / "all.mp4"))
    assert done.returncode == 0, done.stderr
    assert "(100 frames, from 4 recording(s))" in done.stdout, done.stdout
    assert _shown(tmp_path / "all.mp4")[0] == list(range(4 * FPS))
    done = in_process(capsys, caplog, "export", str(folder), "--stream", "cam", "--last", "10m", "--to",
                      f"{t0 - 1:.0f}", "--out", str(tmp_path / "to.mp4"))
    assert done.returncode == 0 and "(25 frames, from 1 recording(s))" in done.stdout, (done.stdout, done.stderr)


def test_moments_as_people_write_them() -> None:
    now = time.mktime((2026, 12, 6, 12, 0, 0, 0, 0, -1))
    assert parse_moment("2026-12-06 10:03", now) == time.mktime((2026, 12, 6, 10, 3, 0, 0, 0, -1))
    assert parse_moment("2026-12-06T10:03:30", now) == time.mktime((2026, 12, 6, 10, 3, 30, 0, 0, -1))
    assert parse_moment("10:03:30", now) == time.mktime((2026, 12, 6, 10, 3, 30, 0, 0, -1))
    assert parse_moment("-10m", now) == now - 600 and parse_moment("now", now) == now
    assert parse_moment("2026-12-06", now) == parse_moment("today", now) == time.mktime((2026, 12, 6, 0, 0, 0, 0, 0,
                                                                                         -1))
    assert parse_moment("yesterday", now) == time.mktime((2026, 12, 5, 0, 0, 0, 0, 0, -1))
    with pytest.raises(ValueError, match=r"'tomorrow' is not a moment: give 2026-12-06 10:03\[:30\], 2026-12-06"):
        parse_moment("tomorrow", now)


@pytest.mark.timeout(120)
def test_streamyolo_export_cuts_a_cameras_own_video_with_its_sound_from_the_runs_config(tmp_path: Path) -> None:
    """The command as a user types it, on the run's config: the camera's own video (recorded
    as it came) and its AAC sound, both in the export, which plays from its start."""
    clip = _clip_with_sound(tmp_path / "door.mp4", "aac", frames=90, fps=30)
    config = tmp_path / "cameras.json"
    config.write_text(json.dumps({"record": str(tmp_path / "rec"), "record_mode": "original",
                                  "streams": [{"name": "door", "source": str(clip)}]}))
    _run(json.loads(config.read_text()))
    recorded = tmp_path / "rec" / "door.mp4"
    out = tmp_path / "handed-over.mp4"
    done = streamyolo("export", str(config), "--stream", "door", "--last", "1h", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported stream 'door' from ") and f"(90 frames, from 1 recording(s)) to {out}" \
        in done.stdout, done.stdout
    with av.open(str(out)) as made, av.open(str(recorded)) as source:
        assert (made.streams.video[0].codec_context.name, made.streams.audio[0].codec_context.name) == ("h264", "aac")
        assert [bytes(p) for p in made.demux(video=0) if p.size] == [bytes(p) for p in source.demux(video=0) if p.size]
    with av.open(str(out)) as made, av.open(str(recorded)) as source:
        assert [bytes(p) for p in made.demux(audio=0) if p.size] == [bytes(p) for p in source.demux(audio=0) if p.size]
    # What a user gets wrong: each a one-line error naming it, exit code 2.
    for args, message in (
            (("--stream", "door", "--from", "soon"), "streamyolo: ERROR: --from: 'soon' is not a moment"),
            (("--stream", "door", "--last", "a while"), "streamyolo: ERROR: --last: must be seconds"),
            (("--stream", "gate", "--from=-1h"), "export of stream 'gate': no recording of it in"),
            (("--stream", "door", "--from", "00:00", "--out", str(out)), f"export file {str(out)!r} exists")):
        done = streamyolo("export", str(config), *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = streamyolo("export", str(tmp_path / "nowhere"), "--stream", "door", "--last", "1h")
    assert done.returncode == 2 and f"recordings folder {str(tmp_path / 'nowhere')!r} does not exist" in done.stderr


@pytest.mark.timeout(120)
def test_every_camera_around_a_moment_a_file_each(tmp_path: Path) -> None:
    """``--stream`` repeated: a file per stream in the ``--out`` folder; a camera that recorded
    nothing then is said and the others go on; none at all is an error (exit 2)."""
    t0 = float(math.floor(time.time()) - 120)
    folder = tmp_path / "rec"
    _camera_run(folder, t0, 2 * FPS, stream="door")
    _camera_run(folder, t0 + 1, 2 * FPS, stream="yard", seed=2)
    span = ("--from", str(t0), "--to", str(t0 + 10))
    done = streamyolo("export", str(folder), "--stream", "door", "--stream", "yard", "--stream", "gate", *span,
                      "--out", str(tmp_path / "incident"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "incident").iterdir()) == [
        f"door-{file_stamp(t0)}-export.mp4", f"yard-{file_stamp(t0)}-export.mp4"]
    assert "export of stream 'gate': no recording of it in" in done.stderr and done.stdout.count("exported ") == 2
    assert [len(_shown(path)[0]) for path in sorted((tmp_path / "incident").iterdir())] == [2 * FPS, 2 * FPS]
    done = streamyolo("export", str(folder), "--stream", "gate", "--stream", "porch", *span)
    assert done.returncode == 2 and "export: none of streams 'gate', 'porch' recorded anything then" in done.stderr


def test_a_time_alone_is_on_the_day_given() -> None:
    start = time.mktime((2026, 12, 6, 10, 3, 0, 0, 0, -1))
    now = time.mktime((2027, 1, 9, 12, 0, 0, 0, 0, -1))
    assert parse_moment("10:07", now, day=start) == time.mktime((2026, 12, 6, 10, 7, 0, 0, 0, -1))
    assert parse_moment("10:07", now) == time.mktime((2027, 1, 9, 10, 7, 0, 0, 0, -1))  # (today)
    assert parse_moment("2026-12-07 09:00", now, day=start) == time.mktime((2026, 12, 7, 9, 0, 0, 0, 0, -1))


@pytest.mark.timeout(120)
def test_a_time_alone_in_to_is_on_the_day_of_from(tmp_path: Path) -> None:
    """``--from "<day> 10:03" --to 10:07``: what happened then that day, not up to today's 10:07."""
    day = time.localtime(time.time() - 2 * 86400)
    at = [time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 10, minute, 0, 0, 0, -1)) for minute in (3, 8)]
    folder = tmp_path / "rec"
    _camera_run(folder, at[0], 2 * FPS)
    _camera_run(folder, at[1], 2 * FPS, seed=2)  # (after 10:07 that day)
    done = streamyolo("export", str(folder), "--stream", "cam", "--from", time.strftime("%Y-%m-%d 10:03", day),
                      "--to", "10:07", "--out", str(tmp_path / "then.mp4"))
    assert done.returncode == 0, done.stderr
    assert f"({2 * FPS} frames, from 2 recording(s))" in done.stdout, done.stdout
    assert _shown(tmp_path / "then.mp4")[0] == list(range(2 * FPS))
