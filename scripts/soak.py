"""Soak benchmark: N RTSP cameras for M minutes while their server dies and comes back.

    .venv/bin/python scripts/soak.py --streams 4 --minutes 10 --restart-every 60 --down 5

A real GStreamer RTSP server (scripts/rtsp_server.py, system Python with python3-gi) serves a
real H.264 file on 127.0.0.1; streamyolo watches it N times over. Every ``--restart-every``
seconds the server is killed (SIGKILL) and started again ``--down`` seconds later. Reports per
stream: reconnects, frames processed and dropped, time to recover after each restart; and the
process RSS over time, which must stay flat (growth from the second minute, after warm-up, to the last).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo.pipeline import Pipeline, StreamState  # noqa: E402
from tests.helpers import make_clip  # noqa: E402
from tests.servers import RtspServer, rtsp_server_available  # noqa: E402


def _rss_mib(process: psutil.Process, server: RtspServer) -> float:
    """RSS of this process and its children (the workers, in process mode) but the RTSP
    server, in MiB."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            if server.process is None or child.pid != server.process.pid:
                total += child.memory_info().rss
        except psutil.Error:  # a child that just exited
            pass
    return total / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--restart-every", type=float, default=60.0, help="seconds between server restarts")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the server stays dead")
    parser.add_argument("--model", default="yolo26n.yaml")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--pytorch-cpu", choices=["torch", "openvino"], default="torch",
                        help="what runs a PyTorch weights file's network (see the README)")
    parser.add_argument("--worker-mode", choices=["thread", "process"], default="thread")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()

    missing = rtsp_server_available()
    if missing:
        print(f"soak: {missing}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="streamyolo-soak-"))
    clip = make_clip(work / "camera.mp4", "camera", frames=15 * 600, size=(640, 360), fps=15)
    server = RtspServer(clip)
    server.start()
    names = [f"cam{i}" for i in range(args.streams)]
    config = {
        "streams": [f"{name}={server.url()}" for name in names],
        "stream_defaults": {"reconnect": {"base": 0.5, "cap": 4.0}, "read_timeout": 3, "stall_timeout": 5},
        "model": args.model, "imgsz": args.imgsz, "workers": min(2, args.streams), "device": "cpu",
        "pytorch_cpu": args.pytorch_cpu, "worker_mode": args.worker_mode,
        "display": False, "status_interval": 0,
    }
    pipeline = Pipeline.from_config(config)
    process = psutil.Process()
    rss: list[tuple[float, float]] = []
    recoveries: dict[str, list[float]] = {name: [] for name in names}
    restarts = 0
    pause = threading.Event()
    pipeline.start()
    started = time.monotonic()
    end = started + args.minutes * 60
    next_restart = started + args.restart_every
    next_sample = started
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                rss.append((now - started, _rss_mib(process, server)))
                next_sample = now + args.sample_every
            if now >= next_restart and now + args.down + 10 < end:
                before = {name: pipeline.health(name).snapshot().reconnects for name in names}
                server.kill()
                pause.wait(args.down)
                server.start()
                restarts += 1
                back = time.monotonic()
                # Recovered: streaming again, after having gone through at least one reconnect.
                waiting = set(names)
                while waiting and time.monotonic() - back < 60:
                    for name in sorted(waiting):
                        snap = pipeline.health(name).snapshot()
                        if snap.state is StreamState.STREAMING and snap.reconnects > before[name]:
                            recoveries[name].append(time.monotonic() - back)
                            waiting.discard(name)
                    pause.wait(0.05)
                next_restart = back + args.restart_every
            pause.wait(0.5)
        rss.append((time.monotonic() - started, _rss_mib(process, server)))  # before the workers stop
    finally:
        pipeline.stop()
        summary = pipeline.join(timeout=60)
        server.kill()
        shutil.rmtree(work, ignore_errors=True)  # the camera clip

    # The first minute is warm-up (model, decoders, allocator pools); flat means from then on.
    first_minute = [m for t, m in rss if 60 <= t <= 120] or [rss[0][1]]
    last_minute = [m for t, m in rss if t >= rss[-1][0] - 60] or [rss[-1][1]]
    growth = (statistics.mean(last_minute) - statistics.mean(first_minute)) / statistics.mean(first_minute)
    report = {
        "command": " ".join(sys.argv),
        "minutes": args.minutes, "streams": args.streams, "restarts": restarts,
        "per_stream": {
            name: {
                "reconnects": summary.streams[name].reconnects,
                "processed": summary.streams[name].processed,
                "dropped": summary.streams[name].dropped,
                "recover_mean_s": round(statistics.mean(recoveries[name]), 2) if recoveries[name] else None,
                "recover_max_s": round(max(recoveries[name]), 2) if recoveries[name] else None,
                "recovered": f"{len(recoveries[name])}/{restarts}",
            }
            for name in names
        },
        "rss_mib": [(round(t), round(m, 1)) for t, m in rss],
        "rss_growth_second_to_last_minute": round(growth, 4),
    }
    print(f"{'stream':8} {'reconnects':>10} {'processed':>10} {'dropped':>8} {'recovered':>9} "
          f"{'recover mean':>12} {'recover max':>11}")
    for name, row in report["per_stream"].items():  # type: ignore[union-attr]
        print(f"{name:8} {row['reconnects']:>10} {row['processed']:>10} {row['dropped']:>8} {row['recovered']:>9} "
              f"{row['recover_mean_s']!s:>11}s {row['recover_max_s']!s:>10}s")
    print(f"RSS MiB over time: {report['rss_mib']}")
    print(f"RSS growth, second minute → last minute: {growth * 100:+.2f}%")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = all(r.processed > 0 for r in summary.streams.values()) and all(
        len(v) == restarts for v in recoveries.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
