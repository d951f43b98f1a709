"""Chaos soak: everything that changes a run while it goes, at once, at random, and then what
must still hold.

    .venv/bin/python scripts/chaos.py --seconds 120 --seed 1 [--worker-mode process] [--rtsp]

A run of live synthetic street scenes (and with ``--rtsp`` two cameras of a real GStreamer RTSP
server, killed and started again every 10-20 s: one recorded as it comes, one with its record
source) with recording in segments (``record_keep_objects`` naming the segments with objects),
clips, events, snapshots, a tracker and the web page, while, at random: the config is reloaded
with streams added and removed, the run's model swapped between the demo model and a
random-weight yolo26n, ``class_conf``, ``max_fps``, ``confirm_frames``, the streams' and
zones' ``schedule``, the zones' ``crowd`` and the streams' own ``record_keep`` changed; web
clients read every page and switch streams' detection and recording and zones' watching on and
off. At the end, what must hold:

- every stream's accounting is exact (``captured == processed + dropped``);
- every recording and clip decodes, and the summary's recordings are exactly the folder's files
  (renamed ``…-objects.mp4`` ones included);
- every clip ``started`` event has its ``ended`` or ``failed``;
- no streamyolo thread is left, nothing was logged at ERROR, no request or reload failed
  unexpectedly.

Exit code 0 when all held, 1 with what did not. Not a test of the suite (minutes, random): run it
after changing what reloads, switches or recordings do.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamyolo.pipeline import Pipeline  # noqa: E402
from tests.helpers import decode, make_clip  # noqa: E402
from tests.servers import RtspServer, rtsp_server_available  # noqa: E402

WHOLE = [[0, 0], [320, 0], [320, 240], [0, 240]]  # a zone over the whole picture: every object enters


class _Errors(logging.Handler):
    """What was logged at ERROR."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.said.append(record.getMessage())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker-mode", choices=["thread", "process"], default="thread")
    parser.add_argument("--rtsp", action="store_true", help="also two cameras of a real RTSP server that dies")
    args = parser.parse_args()
    if args.rtsp and (missing := rtsp_server_available()) is not None:
        parser.error(missing)
    logging.basicConfig(level=logging.WARNING, format="chaos: %(threadName)s %(levelname)s %(message)s")
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    rnd = random.Random(args.seed)
    out = Path(tempfile.mkdtemp(prefix="streamyolo-chaos-"))
    from ultralytics import YOLO

    models = ["demo", str(out / "yolo26n.pt")]
    YOLO("yolo26n.yaml").save(models[1])  # random weights: another model to swap to
    server = None
    if args.rtsp:
        server = RtspServer(make_clip(out / "camera.mp4", "camera", frames=600, size=(320, 240), fps=15))
        server.start()

    def camera(index: int, **extra: Any) -> dict[str, Any]:
        return {"name": f"cam{index}", "source": f"synthetic:scene?seed={index}&size=320x240&fps=10",
                "realtime": True, "zones": {"all": WHOLE}, **extra}

    def config(streams: list[dict[str, Any]], model: str) -> dict[str, Any]:
        cameras = [] if server is None else [
            {"name": "rtsp-a", "source": server.url(), "record": "original", "zones": {"all": WHOLE}},
            {"name": "rtsp-b", "source": server.url(), "record_source": server.url(), "zones": {"all": WHOLE}}]
        return {"streams": [*streams, *cameras], "model": model, "imgsz": 224, "workers": 2, "device": "cpu",
                "display": False, "status_interval": 0, "worker_mode": args.worker_mode, "tracker": "bytetrack",
                "record": str(out / "rec"), "record_segment": 4, "record_keep": 60, "record_keep_objects": 120,
                "clips": str(out / "clips"), "clip_before": 1, "clip_after": 1, "events": str(out / "events.jsonl"),
                "snapshots": str(out / "shots"), "web": "127.0.0.1:0", "summary": str(out / "summary.json"),
                "jsonl": str(out / "det.jsonl"), "stream_defaults": {"reconnect": {"base": 0.2, "cap": 1}}}

    streams, model = [camera(i) for i in range(3)], models[0]
    pipeline = Pipeline.from_config(config(streams, model))
    pipeline.start()
    failed: list[str] = []
    stop = threading.Event()

    def clients() -> None:
        base = pipeline.web_url
        assert base is not None
        while not stop.wait(0.3):
            try:
                for path in ("", "status.json", "metrics", "events.json", "clips.json", "recordings.json"):
                    urllib.request.urlopen(base + path, timeout=10).read()
                streams = json.loads(urllib.request.urlopen(base + "status.json", timeout=10).read())["streams"]
                if not streams:  # (a reload restarting every stream: none for a moment)
                    continue
                stream = rnd.choice(streams)
                zoned = ["zone"] if stream.get("zones") else []
                name, kind = stream["name"], rnd.choice(["detect", "record", *zoned])
                if kind == "zone":  # (a zone watched or not by hand)
                    kind = f"zones/{rnd.choice(sorted(stream['zones']))}/watch"
                switch = urllib.request.Request(f"{base}streams/{name}/{kind}", method="POST",
                                                data=json.dumps({"on": rnd.random() < 0.6}).encode(),
                                                headers={"Content-Type": "application/json"})
                try:
                    urllib.request.urlopen(switch, timeout=10).read()
                except urllib.error.HTTPError as exc:
                    if exc.code not in (404, 409):  # a stream removed meanwhile, or its worker ended
                        failed.append(f"POST {name}/{kind}: {exc.code} {exc.read()!r}")
            except (OSError, ValueError) as exc:
                failed.append(f"web page: {type(exc).__name__}: {exc}")

    web = threading.Thread(target=clients, name="chaos-web")
    web.start()
    reloads, next_kill = 0, time.monotonic() + 15
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(1, 4))
            if server is not None and time.monotonic() > next_kill:
                server.kill()
                time.sleep(rnd.uniform(1, 4))
                server.start()
                next_kill = time.monotonic() + rnd.uniform(10, 20)
            action = rnd.choice(["add", "remove", "swap", "class_conf", "max_fps", "schedule", "confirm", "crowd",
                                 "keep", "same"])
            if action == "add" and len(streams) < 5:
                used = {s["name"] for s in streams}
                streams.append(camera(next(i for i in range(10) if f"cam{i}" not in used)))
            elif action == "remove" and len(streams) > 1:
                streams.pop(rnd.randrange(len(streams)))
            elif action == "swap":
                model = models[1] if model == models[0] else models[0]
            elif action == "class_conf":
                index = rnd.randrange(len(streams))
                streams[index] = {**streams[index], "class_conf": {0: rnd.choice([0.3, 0.5, 0.7])}}
            elif action == "max_fps":
                index = rnd.randrange(len(streams))
                streams[index] = {**streams[index], "max_fps": rnd.choice([2, 5, None])}
            elif action == "schedule":  # its detection, recording or both on for a few seconds soon, or always
                index, begin = rnd.randrange(len(streams)), time.time() + rnd.uniform(0, 5)
                window = "-".join(time.strftime("%H:%M:%S", time.localtime(moment))
                                  for moment in (begin, begin + rnd.uniform(1, 6)))
                kinds = rnd.choice([["detect"], ["record"], ["detect", "record"], ["zone"], []])
                streams[index] = {**streams[index], "schedule": {kind: window for kind in kinds if kind != "zone"},
                                  "zones": {"all": {"points": WHOLE, **({"schedule": window} if "zone" in kinds
                                                                        else {})}}}
            elif action == "confirm":
                index = rnd.randrange(len(streams))
                streams[index] = {**streams[index], "confirm_frames": rnd.choice([1, 3, 5])}
            elif action == "crowd":  # crowded from 1 to 3 objects, at once or after a moment; or not watched so
                index = rnd.randrange(len(streams))
                crowd = rnd.choice([None, 1, 2, {"objects": 3, "after": rnd.choice([0, 0.5, 2])}])
                streams[index] = {**streams[index], "zones": {"all": {"points": WHOLE, **(
                    {"crowd": crowd} if crowd is not None else {})}}}
            elif action == "keep":  # its segments kept for a shorter or longer time than the others', or as theirs
                index = rnd.randrange(len(streams))
                keep = rnd.choice([None, (30, 90), (90, 180)])
                streams[index] = {key: value for key, value in streams[index].items()
                                  if key not in ("record_keep", "record_keep_objects")}
                if keep is not None:
                    streams[index] |= {"record_keep": keep[0], "record_keep_objects": keep[1]}
            try:
                report = pipeline.reload(config(streams, model))
                reloads += 1
                print(f"{action}: {report.done()}", *report.warnings(), sep="\n  ", flush=True)
            except Exception as exc:
                failed.append(f"reload ({action}): {type(exc).__name__}: {exc}")
    finally:
        stop.set()
        web.join()
        pipeline.stop()
        summary = pipeline.join()
        if server is not None:
            server.kill()
    for name, stream in summary.streams.items():
        if stream.captured != stream.processed + stream.dropped:
            failed.append(f"{name}: captured {stream.captured} != {stream.processed} + {stream.dropped}")
    files = sorted((out / "rec").glob("*.mp4")) + sorted((out / "clips").glob("*.mp4"))
    for path in files:
        try:
            if not decode(path)[0]:
                failed.append(f"{path.name}: no frame decodes")
        except Exception as exc:
            failed.append(f"{path.name}: {exc}")
    listed = {Path(f).name for f in (f for names in summary.recordings.values() for f in names)}
    on_disk = {path.name for path in (out / "rec").glob("*.mp4")}
    if listed != on_disk:
        failed.append(f"the summary's recordings are not the folder's: {sorted(listed ^ on_disk)[:5]}")
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    started = {e["clip"] for e in events if e["event"] == "clip" and e["state"] == "started"}
    closed = {e["clip"] for e in events if e["event"] == "clip" and e["state"] in ("ended", "failed")}
    if started != closed:
        failed.append(f"clips started without an end, or ended without a start: {sorted(started ^ closed)[:5]}")
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if left:
        failed.append(f"threads left: {left}")
    failed += [f"logged: {message}" for message in errors.said]
    objects = sum(name.endswith("-objects.mp4") for name in on_disk)
    print(f"{reloads} reloads; {len(on_disk)} recordings ({objects} with objects), "
          f"{len(list((out / 'clips').glob('*.mp4')))} clips; streams: "
          + ", ".join(f"{n} {r.state} {r.processed}+{r.dropped}" for n, r in summary.streams.items()))
    for problem in failed:
        print(f"FAILED: {problem}")
    shutil.rmtree(out, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
