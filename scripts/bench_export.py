"""How long ``streamyolo export`` takes to cut an hour of a 1080p camera's recordings.

An hour of the street video (1920x1080 H.264, 3 Mbit/s) as a camera's original recording:
six 10-minute fragmented segments, named as a run names them, then the whole hour exported
into one MP4 (packets copied, as ``streamyolo export`` does), timed:

    python scripts/bench_export.py [--minutes 60] [--folder /tmp/streamyolo-bench-export]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamyolo.clock import file_stamp  # noqa: E402
from streamyolo.sinks.export import export  # noqa: E402
from streamyolo.sinks.recorder import Mp4File  # noqa: E402

STREET = ROOT.parent / "shared" / "videos" / "people.mp4"
SEGMENT = 600.0


def make_recordings(folder: Path, minutes: float, t0: float) -> int:
    """``minutes`` of the street video, looped, as 10-minute segments of a camera's own video."""
    with av.open(str(STREET)) as source:
        video = source.streams.video[0]
        packets = [p for p in source.demux(video) if p.size]
        template, rate = video, Fraction(video.average_rate or 30)
        length = sum(p.duration or 0 for p in packets)
        time_base = video.time_base
        assert time_base is not None
        loops_per_segment = math.ceil(SEGMENT / float(length * time_base))
        segments = math.ceil(minutes * 60 / SEGMENT)
        written = 0
        for index in range(segments):
            path = folder / f"street-{file_stamp(t0 + index * SEGMENT)}.mp4"
            file: Mp4File | None = None
            for loop in range(loops_per_segment):
                for packet in packets:
                    copy = av.Packet(bytes(packet))
                    shift = loop * length
                    copy.pts = (packet.pts or 0) + shift
                    copy.dts = (packet.dts if packet.dts is not None else packet.pts or 0) + shift
                    copy.duration, copy.time_base, copy.is_keyframe = packet.duration, time_base, packet.is_keyframe
                    if file is None:
                        file = Mp4File(path, template, rate, [copy])
                    else:
                        file.add([copy])
            assert file is not None
            file.close()
            written += path.stat().st_size
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/streamyolo-bench-export"))
    args = parser.parse_args()
    shutil.rmtree(args.folder, ignore_errors=True)
    rec = args.folder / "rec"
    rec.mkdir(parents=True)
    t0 = float(math.floor(time.time()) - 86400)
    started = time.perf_counter()
    size = make_recordings(rec, args.minutes, t0)
    print(f"recordings: {args.minutes:g} min of 1920x1080 H.264, {size / 1e6:.0f} MB, made in "
          f"{time.perf_counter() - started:.1f} s")
    started, cpu = time.perf_counter(), time.process_time()
    done = export(rec, "street", t0, t0 + args.minutes * 60, args.folder / "hour.mp4")
    took, used = time.perf_counter() - started, time.process_time() - cpu
    out = done.files[0].stat().st_size
    print(f"export: {done.seconds / 60:.1f} min, {done.frames} frames, {out / 1e6:.0f} MB from "
          f"{len(done.sources)} segments in {took:.1f} s ({used:.1f} s CPU): {done.seconds / took:.0f} x real time, "
          f"{out / 1e6 / took:.0f} MB/s")
    shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
