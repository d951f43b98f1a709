"""Command line: arguments → config → Pipeline → exit code. Logging is set up only here.

Exit codes: 0 the run ended (streams finished, duration reached, or stopped by the user)
and at least one stream was processed; 1 no stream could be processed, or a worker failed;
2 bad input found before the run (config, model, source, output path); 130 a second
Ctrl-C, which quits at once. ``check``: 0 fine, 2 bad input, 1 a source ``--connect``
could not read.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from streamyolo import __version__
from streamyolo.errors import ConfigError, ModelError, OutputError, SourceError, StreamYoloError, meant

if TYPE_CHECKING:
    from streamyolo.sinks.history import EventQuery

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEMO_FRAMES = 1200  # streamyolo.demo.DEFAULT_FRAMES, kept here so --help needs no heavy import

log = logging.getLogger("streamyolo")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config file (flags override its keys)")
    parser.add_argument("--source", "-s", action="append", dest="sources", metavar="[NAME=]URI",
                        help="a stream: file, folder, rtsp://, http(s)://, webcam index, synthetic:… (repeatable; "
                             "replaces the config's streams)")
    parser.add_argument("--model", "-m", help="weights (.pt), export (ONNX/OpenVINO/TensorRT) or .yaml architecture")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--workers", "-w", metavar="N|auto",
                        help="inference threads, each with its own model (auto: 2; 1 per 4 cores for live cameras "
                             "only with a model OpenVINO runs on a CPU: an OpenVINO one, or a .pt converted)")
    parser.add_argument("--lanes", metavar="N|auto",
                        help="model replicas per worker that split its batches (auto: one per core of the "
                             "worker's share for a PyTorch or OpenVINO model with lossless streams on a CPU, else 1)")
    parser.add_argument("--batch", type=int, help="most frames per forward pass")
    parser.add_argument("--model-sharing", choices=["per-thread", "locked"])
    parser.add_argument("--worker-mode", choices=["thread", "process"],
                        help="run each worker's model in a thread (default) or in a process of its own")
    parser.add_argument("--process-restarts", type=int, metavar="N",
                        help="process workers: start a child that died or hung again, up to N times in a row (3)")
    parser.add_argument("--pytorch-cpu", choices=["auto", "torch", "openvino"],
                        help="what runs a PyTorch weights file on a CPU: openvino (converted once, kept in the "
                             "model cache, same results), torch, or auto (default: openvino where it is installed)")
    parser.add_argument("--conf", type=float, help="confidence threshold (0.25)")
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (0.7)")
    parser.add_argument("--imgsz", type=int, help="inference size (640)")
    parser.add_argument("--classes", type=_class, nargs="+",
                        help="keep only these classes: ids, or the model's names (person car)")
    parser.add_argument("--class-conf", type=_class_conf, nargs="+", metavar="CLASS=CONF",
                        help="thresholds of some classes (ids or names) in place of --conf: person=0.6 bicycle=0.3")
    parser.add_argument("--line-width", type=int, help="lines this many pixels wide on the pictures (auto)")
    parser.add_argument("--hide-boxes", dest="show_boxes", action="store_false", default=None,
                        help="draw no boxes (nor labels) on the pictures")
    parser.add_argument("--hide-labels", dest="show_labels", action="store_false", default=None,
                        help="draw boxes without their class names")
    parser.add_argument("--hide-conf", dest="show_conf", action="store_false", default=None,
                        help="draw labels without their confidence")
    parser.add_argument("--blur", type=_class, nargs="+",
                        help="blur the objects of these classes (ids or names) in every picture shown or saved")
    parser.add_argument("--motion", action=argparse.BooleanOptionalAction, default=None,
                        help="run the model only on frames where something moved; still frames take the last "
                             "detections (the model still runs every 5 s of each stream)")
    parser.add_argument("--tiles", metavar="GRID",
                        help="also run the model on overlapping parts of each picture, 3x2: 3 across, 2 down, or "
                             "auto: parts about imgsz across (small objects on big pictures; each part costs a "
                             "forward pass)")
    parser.add_argument("--half", action="store_true", default=None, help="FP16 inference (CUDA)")
    parser.add_argument("--record", metavar="DIR", help="write one annotated H.264 MP4 per stream here")
    parser.add_argument("--record-mode", choices=["annotated", "original"],
                        help="original: record the video each camera or file sends, copied as it came (no boxes, "
                             "no encoding)")
    parser.add_argument("--record-segment", metavar="SECONDS",
                        help="cut each stream's recording into files of this much video (seconds, or 10m, 1h; at "
                             "most a day)")
    parser.add_argument("--record-keep", metavar="AGE",
                        help="with --record-segment: delete a stream's segment files older than this (30d, 12h, "
                             "or seconds)")
    parser.add_argument("--record-keep-objects", metavar="AGE",
                        help="with --record-keep: keep the segment files in which objects were seen this long "
                             "instead (30d)")
    parser.add_argument("--record-objects", type=_class, nargs="+", metavar="CLASS",
                        help="with --record-keep-objects: only objects of these classes (ids or names) keep a "
                             "segment longer (person)")
    parser.add_argument("--record-max-size", metavar="SIZE",
                        help="with --record-segment: keep the folder's segment files under this (500GB, 800MB), "
                             "deleting the oldest of any stream")
    parser.add_argument("--jsonl", metavar="FILE", help="write one JSON line per processed frame")
    parser.add_argument("--summary", metavar="FILE", help="write the final per-stream summary as JSON")
    parser.add_argument("--switches-file", metavar="FILE",
                        help="keep the streams' detection and recording switches in this JSON file: one switched "
                             "off stays off after a restart")
    parser.add_argument("--stats", metavar="FILE",
                        help="write every stream's numbers (state, errors, reconnects, frame age) as a JSON line "
                             "every status interval")
    parser.add_argument("--events", metavar="FILE",
                        help="write events as JSON lines as they happen: lines crossed, zones entered and left, "
                             "streams up and down")
    for output in ("jsonl", "stats", "events"):
        parser.add_argument(f"--{output}-keep", metavar="AGE",
                            help=f"with --{output}: its days kept this long (30d), each moved away at midnight "
                                 "(<file>-YYYYmmdd.gz); without: one file, growing")
    parser.add_argument("--webhook", metavar="URL", action=_Once,
                        help="POST every event as JSON to this http(s):// URL (more webhooks: the config's webhooks)")
    parser.add_argument("--mqtt", metavar="URL", action=_Once,
                        help="publish every event to this MQTT broker: mqtt://[user:password@]host[:port][/prefix]")
    parser.add_argument("--mqtt-discovery", metavar="PREFIX", nargs="?", const="homeassistant",
                        help="with --mqtt: announce every stream to Home Assistant (its MQTT discovery prefix, "
                             "default homeassistant): connection, snapshots, zones and counting lines as entities")
    parser.add_argument("--webhook-format", choices=["json", "text", "slack", "discord", "telegram", "pushover"],
                        help="each POST to the webhook: the event's JSON (default); text: a line a person reads, with "
                             "ntfy's headers (phone notifications through ntfy); slack, discord, telegram (the bot's "
                             "URL ?chat_id=<chat>) or pushover (?token=<app>&user=<user>): their message; text, "
                             "discord, telegram and pushover carry the snapshot itself")
    parser.add_argument("--webhook-cooldown", metavar="SPAN",
                        help="a stream's object events to the webhook at most one per so long (5m): a phone's "
                             "notification per visit")
    parser.add_argument("--webhook-down-after", metavar="SPAN",
                        help="a camera down sent to the webhook only once down so long (2m): a blip sends nothing")
    parser.add_argument("--webhook-priority", choices=["min", "low", "default", "high", "urgent"],
                        help="how the webhook's messages ring a phone (text, telegram, pushover): urgent wakes, low "
                             "is silent")
    for output in ("webhook", "mqtt"):
        parser.add_argument(f"--{output}-events", metavar="KINDS", type=_kinds,
                            help=f"only these events to the {output}, e.g. state,clip (line, enter, leave, linger, "
                                 "speeding, crowd, state, clip, output, switch, overload; default: all)")
    parser.add_argument("--dataset", metavar="DIR",
                        help="keep a frame of each stream every --dataset-every with YOLO labels here, to train on")
    parser.add_argument("--dataset-every", metavar="SPAN", help="with --dataset: seconds between frames kept (10)")
    parser.add_argument("--dataset-max-size", metavar="SIZE",
                        help="with --dataset: keep no more frames once it takes this much (20GB, 800MB)")
    parser.add_argument("--heatmaps", metavar="DIR",
                        help="write each stream's heatmap here (<stream>.png, every minute); --web shows them live")
    parser.add_argument("--crops", metavar="DIR",
                        help="with --tracker: save one picture of each object here (<class>/<stream>-<time>-id<N>.jpg)")
    parser.add_argument("--crops-keep", metavar="AGE", help="with --crops: delete crops older than this (30d, 12h)")
    parser.add_argument("--snapshots", metavar="DIR", help="save every frame with events here, annotated, as JPEG")
    parser.add_argument("--snapshots-keep", metavar="AGE",
                        help="with --snapshots: delete snapshots older than this (30d, 12h, or seconds)")
    parser.add_argument("--clips", metavar="DIR",
                        help="save a video clip of every moment with events here, from --clip-before seconds "
                             "before the first to --clip-after seconds after the last")
    parser.add_argument("--clip-mode", choices=["annotated", "original"],
                        help="with --clips: original: cut the clips from the video each camera or file sends, "
                             "copied as it came (no boxes, no encoding)")
    parser.add_argument("--clip-before", metavar="SECONDS", help="with --clips: video before an event (5)")
    parser.add_argument("--clip-after", metavar="SECONDS", help="with --clips: video after the last event (5)")
    parser.add_argument("--public-url", metavar="URL",
                        help="the web page's address as event receivers reach it: events then carry snapshot_url, "
                             "clip_url and a recorded stream's recording_url")
    parser.add_argument("--clips-keep", metavar="AGE",
                        help="with --clips: delete clips older than this (30d, 12h, or seconds)")
    parser.add_argument("--clips-max-size", metavar="SIZE",
                        help="with --clips: keep the clips under this (50GB, 800MB), deleting the oldest")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace earlier runs' recordings and JSONL and start heatmaps afresh (by default "
                             "recordings get a new name, the JSONL is appended to and heatmaps go on)")
    display = parser.add_mutually_exclusive_group()
    display.add_argument("--display", dest="display", action="store_true", default=None, help="show a tiled window")
    display.add_argument("--no-display", dest="display", action="store_false", help="never open a window")
    parser.add_argument("--web", metavar="[HOST:]PORT",
                        help="serve a web page of every stream there (127.0.0.1 unless a host is given)")
    parser.add_argument("--web-fps", type=float, help="most frames per second per stream on the web page (10)")
    parser.add_argument("--web-controls", action=argparse.BooleanOptionalAction, default=None,
                        help="the web page's switches of each stream's detection and recording (on; "
                             "--no-web-controls: a page to watch only)")
    parser.add_argument("--tracker", metavar="bytetrack|botsort|YAML",
                        help="track objects per stream; detections get ids (conf then defaults to 0.1, as "
                             "model.track())")
    parser.add_argument("--confirm-frames", type=int, metavar="N",
                        help="with --tracker: keep an object once tracked in N frames in a row (a shadow seen for "
                             "a frame or two makes no event)")
    parser.add_argument("--web-auth", metavar="USER:PASSWORD",
                        help="the login the web page asks for (better: STREAMYOLO_WEB_AUTH in the environment, "
                             "which the process list does not show)")
    parser.add_argument("--web-cert", metavar="PEM", help="serve the web page over HTTPS with this certificate")
    parser.add_argument("--web-key", metavar="PEM", help="the certificate's private key (if not in --web-cert's file)")
    parser.add_argument("--timezone", metavar="ZONE",
                        help="the time zone the run's clock follows (Europe/Berlin): schedules, the pictures' date "
                             "and time, file names, the log; default: the box's (TZ)")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--status-interval", type=float, metavar="SECONDS",
                        help="live status refresh (0 turns it off)")
    parser.add_argument("--hang-warning", type=float, metavar="SECONDS",
                        help="warn, with where the inference threads are, when one forward pass (or building the "
                             "models) takes this long (60; 0 turns it off)")
    parser.add_argument("--overload-warning", type=float, metavar="SECONDS",
                        help="warn when most frames of the live streams over this long were skipped: the machine "
                             "cannot keep up (60; 0 turns it off)")
    parser.add_argument("--threads", type=int,
                        help="each model's CPU threads: torch intra-op threads, or OpenVINO's inference threads "
                             "(default: the cores / (workers × lanes); on a GPU, torch's own)")
    parser.add_argument("--live-hold", action=argparse.BooleanOptionalAction, default=None,
                        help="under overload, wait briefly for a fresher live frame (default: on)")
    parser.add_argument("--model-cache", metavar="DIR|auto|off",
                        help="where OpenVINO keeps compiled models (and .pt networks converted to it) between runs "
                             "(auto: $XDG_CACHE_HOME or ~/.cache, then streamyolo/openvino; off: none kept)")


class _Once(argparse.Action):
    """A flag that names one of something there could be more of (a webhook, a broker): given
    twice, an error, not the last alone taken (the first silently dropped)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            more = " (more webhooks, each with the events it gets: the config's webhooks)" * (self.dest == "webhook")
            parser.error(f"argument {option_string}: given twice; it takes one{more}")
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are the ``prog: error: …`` line and where the options are
    listed, not the whole usage block before it (exit code 2, as argparse's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n`{self.prog} --help` lists the "
                              f"{'commands and ' if ' ' not in self.prog else ''}options\n")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _add_log_level(parser: argparse.ArgumentParser, default: Any) -> None:
    """``--log-level``, in any case (``debug``), before the command or after it."""
    parser.add_argument("--log-level", default=default, type=str.upper, choices=LOG_LEVELS,
                        help="how much the log says (INFO)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamyolo", description="Watch many video streams at once with YOLO.")
    parser.add_argument("--version", action="version", version=f"streamyolo {__version__}")
    _add_log_level(parser, "INFO")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the pipeline on streams")
    _add_run_options(run)
    run.add_argument("--watch-config", action="store_true",
                     help="read the config file again whenever it changes, as SIGHUP does (cameras added, removed, "
                          "changed while the others go on)")
    check = commands.add_parser("check", help="check a config (and run's flags) without running: the plan, and "
                                              "with --connect each source opened once")
    _add_run_options(check)
    check.add_argument("--connect", action="store_true",
                       help="also open every stream's source and read its first frame (each within its timeouts)")
    check.add_argument("--notify", action="store_true",
                       help="also send a test event to each webhook and the MQTT broker: a phone's notification "
                            "comes, or what went wrong is said")
    check.add_argument("--load-model", action="store_true",
                       help="also load the model as a worker would (compiling it into the model cache) and, with "
                            "--connect, detect on each source's first frame")
    bench = commands.add_parser("bench", help="measure how many streams this box keeps up with")
    bench.add_argument("--model", "-m", required=True, help="the model to measure")
    bench.add_argument("--source", "-s", action="append", dest="sources", required=True, metavar="FILE",
                       help="a video file like your streams (repeatable)")
    bench.add_argument("--imgsz", type=int, default=640)
    bench.add_argument("--workers", "-w", type=int,
                       help="inference workers (default: 2 for the lossless run, auto for live mode)")
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--seconds", type=float, default=4.0,
                       help="how long to run the model in each configuration tried (4); live mode runs "
                            "twice as long per stream count")
    bench.add_argument("--pytorch-cpu", choices=["auto", "torch", "openvino"], default="auto",
                       help="what runs a PyTorch weights file on a CPU, as in `run` (auto)")
    bench.add_argument("--worker-mode", choices=["thread", "process"], default="thread",
                       help="run the workers' models in threads (default) or in processes of their own, "
                            "as in `run`: measure both to choose")
    bench.add_argument("--motion", action="store_true",
                       help="run the model only on frames where something moved, as `run --motion`: measure on "
                            "recordings of your own cameras, since what it spares depends on the scene")
    bench.add_argument("--tiles", metavar="GRID",
                       help="also run the model on overlapping parts of each picture, as `run --tiles 3x2`")
    bench.add_argument("--region", metavar="X1,Y1,X2,Y2",
                       help="run the model on this part of each picture only, as a stream's region: 960,0,1920,540")
    bench.add_argument("--max-streams", type=int, default=64,
                       help="most streams to try in live mode (64; it stops earlier once a stream gets under "
                            "1 frame/s or decoding falls behind)")
    export = commands.add_parser(
        "export", help="a stream's recordings between two moments as one MP4, copied (no re-encoding)",
        description="Cut a stream's recordings (annotated or the camera's own video, segments or not) from the "
                    "key frame at or before --from to --to into one MP4 that plays and seeks in any browser: "
                    "what happened between 10:03 and 10:07 at the front door, to hand over.")
    export.add_argument("recordings", metavar="FOLDER|CONFIG",
                        help="the recordings folder, or the run's config file (its record folder)")
    export.add_argument("--stream", "-s", required=True, action="append", dest="streams", metavar="STREAM",
                        help="the stream whose recordings to cut (repeatable: every camera around a moment, a "
                             "file each)")
    span = export.add_mutually_exclusive_group(required=True)
    span.add_argument("--from", dest="start", metavar="WHEN",
                      help="where it starts, local time: '2026-12-06 10:03', '10:03:30' (today), or "
                           "--from=-10m (ago)")
    span.add_argument("--last", metavar="AGE", help="the last 10m (or 90s, 2h) up to --to")
    export.add_argument("--to", dest="end", default="now", metavar="WHEN",
                        help="where it ends (now); a time alone (10:07) is on --from's day")
    export.add_argument("--out", "-o", metavar="FILE|FOLDER",
                        help="the MP4 to write, or with several streams the folder for theirs "
                             "(<stream>-YYYYmmdd-HHMMSS-export.mp4 here)")
    export.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    events = commands.add_parser(
        "events", help="a run's events between two moments, of some streams, kinds, classes, zones and lines: listed "
                       "or counted",
        description="Search a run's events file (--events; every run's events, appended): the events between "
                    "two moments, of some streams, kinds and classes, printed as JSON lines in the order they "
                    "happened, or counted (--count): how many people crossed the gate's line yesterday. Exits 1 "
                    "when none match, as grep does.")
    events.add_argument("events", metavar="FILE|CONFIG", help="the events file, or the run's config file (its "
                                                              "events file)")
    events.add_argument("--stream", "-s", action="append", dest="streams", metavar="STREAM",
                        help="only this stream's events (repeatable, or a,b)")
    events.add_argument("--event", "-e", action="append", dest="kinds", metavar="KIND",
                        help="only events of this kind: line, enter, leave, linger, speeding, crowd, state, clip, "
                             "output, switch, overload (repeatable, or a,b)")
    events.add_argument("--where", "-w", action="append", dest="places", metavar="NAME",
                        help="only events in this zone or at this line, by its name (repeatable, or a,b)")
    events.add_argument("--class", "-c", action="append", dest="classes", metavar="CLASS",
                        help="only events of objects of this class: its name (person) or id (repeatable, or a,b)")
    since = events.add_mutually_exclusive_group()
    since.add_argument("--from", dest="start", metavar="WHEN",
                       help="from this moment, local time: '2026-12-06 10:03', '10:03:30' (today), yesterday, "
                            "or --from=-1d (ago); the file's first event if not given")
    since.add_argument("--last", metavar="AGE", help="the last 1h (or 90s, 2d) up to --to")
    events.add_argument("--to", dest="end", metavar="WHEN",
                        help="up to this moment (the file's last event); a time alone (10:07) is on --from's day")
    events.add_argument("--count", action="store_true",
                        help="count them, by stream, kind, where (line and direction, zone, state) and class, "
                             "instead of listing them")
    events.add_argument("--newest", type=int, metavar="N",
                        help="only the newest N that match (found from the end of the file, fast however long "
                             "it is), listed oldest first")
    events.add_argument("--by", choices=["hour", "day", "week", "month"],
                        help="count in each local hour, day, week (from Monday, as 2026-W49) or month (a --count "
                             "by the hour)")
    events.add_argument("--csv", action="store_true",
                        help="as CSV, for a spreadsheet: each event a row (local time, epoch, stream, event, where, "
                             "class, id, dwell, speed, what, snapshot, clip), or with --count or --by the counts")
    events.add_argument("--text", "-t", action="store_true",
                        help="each event as a line a person reads (local time, stream, what happened: "
                             "'2026-12-05 09:10:03  gate: person #4 crossed door (in)') instead of JSON")
    events.add_argument("--follow", "-f", action="store_true",
                        help="go on: print each new event that matches as it is written, until Ctrl-C (as tail -f; "
                             "--from, --last or --newest print the earlier ones first)")
    status = commands.add_parser(
        "status", help="a running run's streams, read from its web page (or stats file): state, fps, frame age, "
                       "dropped, errors",
        description="Print a running run's streams as its live status shows them, read from its web page "
                    "(/status.json): named by its config (its web address, login and certificate) or by the "
                    "page's address; a run without a page, from its stats file's last line (running while "
                    "that is recent). Exits 1 when the run cannot be asked or is not running by its stats "
                    "file, or a stream has failed.")
    status.add_argument("target", metavar="CONFIG|URL",
                        help="the run's config file, or its page's address (http://127.0.0.1:8080/; a login in "
                             "it, or STREAMYOLO_WEB_AUTH)")
    status.add_argument("--json", action="store_true", help="the page's status as it sends it (JSON), for a script")
    demo = commands.add_parser(
        "demo", help="the whole product on synthetic camera scenes, offline, scored against ground truth",
        description="Write synthetic H.264 clips with ground truth, run the pipeline over them with the "
                    "bundled demo model, and print precision and recall per stream.")
    demo.add_argument("--out", default="runs/demo", help="output folder (runs/demo)")
    demo.add_argument("--model", "-m", help="model to use instead of the bundled demo model")
    demo.add_argument("--conf", type=float, help="confidence threshold (0.5: the demo model's operating point)")
    demo.add_argument("--workers", "-w", type=int, default=2, help="inference threads (2)")
    demo.add_argument("--streams", type=int, default=4, help="number of synthetic streams (4)")
    demo.add_argument("--web", metavar="[HOST:]PORT", help="also show the streams on a web page there")
    demo.add_argument("--frames", type=int, help=f"frames per stream ({DEMO_FRAMES}: about two minutes on two cores)")
    display = demo.add_mutually_exclusive_group()
    display.add_argument("--display", dest="display", action="store_true", default=None, help="show a tiled window")
    display.add_argument("--no-display", dest="display", action="store_false", help="never open a window")
    for command in commands.choices.values():  # (after the command too; unset there, it is the one before)
        _add_log_level(command, argparse.SUPPRESS)
    return parser


def _kinds(value: str) -> list[str]:
    """``state,linger`` → ``["state", "linger"]`` (the config checks each)."""
    return [kind.strip() for kind in value.split(",") if kind.strip()]


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags the user gave, as config keys (flags not given stay out)."""
    keys = ["model", "device", "workers", "lanes", "batch", "model_sharing", "worker_mode", "process_restarts",
            "pytorch_cpu", "conf", "iou", "imgsz", "classes", "blur", "motion", "tiles", "half", "line_width",
            "show_boxes", "show_labels", "show_conf",
            "record", "record_mode", "record_segment", "record_keep", "record_keep_objects", "record_objects",
            "record_max_size", "overwrite", "jsonl", "jsonl_keep",
            "summary", "switches_file", "stats", "stats_keep", "confirm_frames",
            "events", "events_keep", "webhook",
            "mqtt", "mqtt_discovery", "webhook_events", "webhook_format", "mqtt_events", "webhook_cooldown",
            "webhook_down_after", "webhook_priority",
            "snapshots", "snapshots_keep", "dataset", "dataset_every", "dataset_max_size", "heatmaps", "crops",
            "crops_keep", "clips", "clip_mode", "clip_before", "clip_after", "clips_keep", "clips_max_size",
            "public_url", "display", "duration", "timezone",
            "status_interval", "hang_warning", "overload_warning", "threads", "model_cache", "live_hold", "tracker",
            "web", "web_fps", "web_controls", "web_auth", "web_cert", "web_key"]
    overrides = {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}
    if getattr(args, "class_conf", None) is not None:
        overrides["class_conf"] = dict(args.class_conf)
    if args.sources:
        overrides["streams"] = list(args.sources)
    return overrides


class _Interrupts:
    """First Ctrl-C or SIGTERM: stop gracefully (raised as KeyboardInterrupt in the main
    thread, where the pipeline catches it). Second: leave at once."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"\nstreamyolo: interrupted again, exiting now\n")
            os._exit(EXIT_INTERRUPTED)
        raise KeyboardInterrupt

    def install(self) -> Callable[[], None]:
        """Take Ctrl-C and SIGTERM; returns what gives them back to the handlers before (for
        :func:`main` called from a program of its own)."""
        before = {number: signal.signal(number, self) for number in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for number, handler in before.items():
                signal.signal(number, handler)

        return restore


def setup_logging(level: str) -> None:
    from streamyolo.inference.offline import set_ultralytics_level
    from streamyolo.logsetup import log_to_stderr

    log_to_stderr(getattr(logging, level))
    set_ultralytics_level(logging.INFO if level == "DEBUG" else logging.WARNING)  # stdout is for our report


def _class(text: str) -> int | str:
    """A class on the command line: an id, or a name the model has.

    >>> _class("2"), _class("traffic light")
    (2, 'traffic light')
    """
    return int(text) if text.strip().isdigit() else text


def _class_conf(text: str) -> tuple[int | str, float]:
    """A class's threshold on the command line: ``CLASS=CONF``.

    >>> _class_conf("person=0.6"), _class_conf("traffic light = .3")
    (('person', 0.6), ('traffic light', 0.3))
    """
    name, equals, value = text.rpartition("=")
    try:
        conf = float(value)
    except ValueError:
        conf = None
    if not equals or not name.strip() or conf is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CLASS=CONF, as person=0.6")
    return _class(name.strip()), conf


def command_run(args: argparse.Namespace) -> int:
    from streamyolo.pipeline import Pipeline, StatusPrinter
    from streamyolo.pipeline.service import Notifier

    overrides = run_overrides(args)
    if args.config is None:
        why = "the run has no config file"
    elif "streams" in overrides:
        why = "the streams come from --source, not from the config file"
    else:
        why = None
    if args.watch_config and why is not None:
        raise ConfigError(f"--watch-config: nothing to watch: {why}")
    # Run by systemd as a Type=notify service: it hears when the run is up, how it goes, and that it is alive.
    pipeline = Pipeline.from_config(args.config, status=StatusPrinter(), notifier=Notifier.from_environment(),
                                    **overrides)
    watching = _ConfigWatcher(lambda: _watched(args.config, overrides),
                              lambda: _reload(pipeline, None, "the config file changed")) if args.watch_config else None
    hangup = getattr(signal, "SIGHUP", None)
    before = signal.signal(hangup, lambda signum, frame: _reload(pipeline, why)) \
        if hangup is not None and threading_is_main() else None
    try:
        return execute(pipeline)
    finally:
        if watching is not None:
            watching.stop()
        if hangup is not None and before is not None:
            signal.signal(hangup, before)


def _watched(config: str, overrides: dict[str, Any]) -> list[Path]:
    """The files ``--watch-config`` watches: the config file, and its ``env_file`` (as the
    config file says now, or the flag or the environment)."""
    from streamyolo.config import ENV_PREFIX, load_yaml

    try:
        env_file = overrides.get("env_file") or os.environ.get(ENV_PREFIX + "ENV_FILE") or load_yaml(config).get(
            "env_file")
    except ConfigError:  # being written, or broken: the reload will say so
        env_file = None
    return [Path(config), *([Path(env_file)] if isinstance(env_file, str) and env_file else [])]


class _ConfigWatcher:
    """``--watch-config``: a thread that looks at the config files (``files()``: the config and
    its ``env_file``) every ``every`` seconds and, when one has changed (its time, size or inode:
    an editor that writes a new file and renames it too) and then they stayed the same for
    ``settle`` seconds (an editor's writes done), calls ``changed``. A file gone for a moment
    (being replaced) is waited for."""

    def __init__(self, files: Callable[[], list[Path]], changed: Callable[[], None], every: float = 1.0,
                 settle: float = 0.5) -> None:
        self._files = files
        self._changed = changed
        self._every = every
        self._settle = settle
        self._stopped = threading.Event()
        self._seen = self._look()
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)
        self._thread.start()
        log.info("watching %s: the config is read again whenever %s", " and ".join(map(str, files())),
                 "one changes" if len(files()) > 1 else "it changes")

    def _look(self) -> tuple[tuple[int, int, int], ...] | None:
        try:
            return tuple((found.st_mtime_ns, found.st_size, found.st_ino)
                         for found in (os.stat(path) for path in self._files()))
        except OSError:
            return None

    def _run(self) -> None:
        while not self._stopped.wait(self._every):
            now = self._look()
            if now is None or now == self._seen:
                continue
            while not self._stopped.wait(self._settle) and (later := self._look()) != now:
                now = later  # still being written
            if now is not None and not self._stopped.is_set():
                self._seen = now
                self._changed()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)


def _reload(pipeline: Any, refused: str | None, why: str = "SIGHUP") -> None:
    """SIGHUP (``systemctl reload``), or ``--watch-config`` (``why``): read the config file again
    and apply it to the streams, in a thread of its own (removing a stream waits for its last
    frames and its files; the signal handler itself does nothing else, not even log)."""

    def reload() -> None:
        if refused is not None:
            log.warning("%s: nothing reloaded: %s", why, refused)
            return
        log.info("%s: reloading the config", why)
        try:
            report = pipeline.reload()
        except StreamYoloError as exc:
            log.error("config not reloaded: %s; the run goes on as it was", exc)
            return
        except RuntimeError as exc:  # the run ended meanwhile
            log.error("config not reloaded: %s", exc)
            return
        except Exception:
            log.exception("config not reloaded; the run goes on as it was")
            return
        log.info("%s", report.done())
        for warning in report.warnings():
            log.warning("%s", warning)

    threading.Thread(target=reload, name="reload", daemon=True).start()


def command_check(args: argparse.Namespace) -> int:
    from streamyolo.inference.models import first_line
    from streamyolo.pipeline import Pipeline
    from streamyolo.pipeline.check import (
        capacity,
        describe,
        describe_probes,
        notify,
        probe,
        probe_recordings,
        trouble,
        try_model,
    )

    pipeline = Pipeline.from_config(args.config, **run_overrides(args))
    pipeline.check_outputs()
    plan = pipeline.plan
    assert plan is not None
    print(f"config OK{' (' + args.config + ')' if args.config else ''}: what a run would do:\n{describe(plan)}",
          flush=True)
    probes = probe(plan.streams) if args.connect else []
    recordings = probe_recordings(plan.streams) if args.connect else []
    if probes:
        print(f"sources, opened once:\n{describe_probes(probes)}", flush=True)
        if recordings:
            print(f"record sources (record_source), opened once:\n{describe_probes(recordings)}", flush=True)
        by_name = {s.spec.name: s for s in plan.streams}
        for found in [*probes, *recordings]:
            for warning in trouble(plan.config, by_name[found.stream], found):
                log.warning("%s", warning)
    for group in plan.groups if args.load_model else ():
        users = [probes[i] for i in group.streams] if probes else []
        try:
            loaded = try_model(plan.factories[group.first], users,
                               {s.spec.name: plan.config.tiles_of(s.config) for s in plan.streams})
        except ModelError:
            raise
        except Exception as exc:  # what the run's workers would fail with
            raise ModelError(f"model {group.path!r} cannot be run: {first_line(exc)}") from exc
        kind = "" if loaded.task == "detect" else f" (a {loaded.task} model)"
        each = ":\n" + "\n".join(loaded.lines) if loaded.lines else ""
        which = "" if len(plan.groups) == 1 else f" {group.name}" + (
            f" at imgsz {group.imgsz}" if group.imgsz != plan.config.imgsz else "")
        print(f"model{which} loaded in {loaded.seconds:.1f} s{kind}{each}", flush=True)
        asked = capacity([plan.streams[i] for i in group.streams], probes, loaded.took)
        if asked is not None:
            print(asked, flush=True)
        problem = plan.config.unknown_classes(loaded.names, group.name)
        if problem is not None:  # as the run would refuse it
            raise ConfigError(problem)
    told = notify(plan) if args.notify else []
    if args.notify:
        said = [f"\n  {t.what}: " + (t.error if t.error is not None else ", ".join(filter(None, ["taken", t.picture])))
                for t in told]
        print("a test event sent:" + "".join(said) if told else "a test event sent: nowhere (no webhook, no mqtt)",
              flush=True)
    failed = [p.stream + (" (record source)" if p.recording else "") for p in [*probes, *recordings]
              if p.error is not None]
    if failed:
        log.error("%d of %d source(s) could not be read: %s", len(failed), len(probes) + len(recordings),
                  ", ".join(failed))
    unreached = [t.what for t in told if t.error is not None]
    if unreached:
        log.error("%d of %d event output(s) did not take the test event: %s", len(unreached), len(told),
                  ", ".join(unreached))
    missing = [s.spec.name for s in plan.streams if s.missing is not None]
    if missing:  # (a run would go on without them: bad input all the same)
        log.error("%d of %d stream(s) cannot be read: %s", len(missing), len(plan.streams), ", ".join(missing))
        return EXIT_USAGE
    return EXIT_FAILED if failed or unreached else EXIT_OK


def command_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamyolo.demo import DEFAULT_FRAMES, Demo, DemoOptions
    from streamyolo.evaluation import score_table
    from streamyolo.pipeline import StatusPrinter

    options = DemoOptions(out=Path(args.out), workers=args.workers, streams=args.streams,
                          frames=DEFAULT_FRAMES if args.frames is None else args.frames, display=args.display,
                          web=args.web,
                          **({"model": args.model} if args.model else {}),
                          **({"conf": args.conf} if args.conf is not None else {}))
    demo = Demo(options)
    code = execute(demo.prepare(status=StatusPrinter()))
    print(f"\nprecision and recall at IoU 0.5 against each stream's ground truth:\n{score_table(demo.scores())}",
          flush=True)
    print(f"\nclips and ground truth, recordings, detections and summary are in {options.out}/", flush=True)
    return code


def execute(pipeline: Any) -> int:
    """Run a built pipeline, print its summary, and map the outcome to an exit code."""
    from streamyolo.errors import OutputsIncompleteError, WorkerError

    failure: BaseException | None = None
    try:
        summary = pipeline.run()
    except (WorkerError, OutputsIncompleteError) as exc:
        failure = exc
        summary = pipeline.summary()
    print(summary.table(), flush=True)
    if failure is not None:
        log.error("%s", failure)
        return EXIT_FAILED
    if summary.processed == 0:
        reasons = "; ".join(f"{n}: {r.error or r.state}" for n, r in summary.streams.items())
        log.error("no stream could be processed (%s)", reasons)
        return EXIT_FAILED
    return EXIT_OK


def command_export(args: argparse.Namespace) -> int:
    from streamyolo.config import build_config
    from streamyolo.pipeline.build import check_output_file
    from streamyolo.sinks.export import NothingRecorded, default_name, export, recordings_of

    folder, config = Path(args.recordings), None
    if folder.is_file():  # the run's config: its record folder
        cfg = build_config(folder)
        cfg.use_timezone()  # (the moments asked for are the run's local time)
        if cfg.record is None:
            raise ConfigError(f"config {str(folder)!r} records nothing (no 'record' folder): give the folder")
        folder, config = Path(cfg.record), folder
    else:
        _environment_timezone()  # (as the run's config would: the moments asked for are its local time)
    if not folder.is_dir():
        raise _missing("recordings folder", folder, config)

    start, end = _moments(args.start, args.last, args.end)
    assert start is not None and end is not None  # --from or --last is required, --to is now if not given
    streams = list(dict.fromkeys(args.streams))
    several = len(streams) > 1
    exported = 0
    for stream in streams:
        out = Path(args.out) if args.out and not several else Path(args.out or ".") / default_name(stream, start)
        check_output_file(out, "export file")  # (its folder made, as a run's outputs: --out of several is one)
        until = end
        if args.end == "now":  # (not given) and what is recorded after now: a file's segments processed faster
            # than it plays, placed on its video's clock, end in the future (by as much as it was faster)
            until = max([end, *(r.end for r in recordings_of(folder, stream, end, end + 86400))])
        try:
            done = export(folder, stream, start, until, out, overwrite=args.overwrite)
        except NothingRecorded as exc:  # of several cameras, some saw nothing then: said, the others go on
            if not several:
                raise
            log.warning("%s", exc)
            continue
        exported += 1
        assert done.start is not None
        shown = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(done.start))
        print(f"exported stream {stream!r} from {shown} for {done.seconds:.1f} s ({done.frames} frames, "
              f"from {len(done.sources)} recording(s)) to {', '.join(map(str, done.files))}", flush=True)
    if not exported:
        raise NothingRecorded(f"export: none of streams {', '.join(map(repr, streams))} recorded anything then")
    return EXIT_OK


def _moments(start: str | None, last: str | None, end: str | None) -> tuple[float | None, float | None]:
    """The span of ``--from`` (or ``--last``) and ``--to`` (``None``: open); a time alone in
    ``--to`` (``10:07``) is on ``--from``'s day. A moment that cannot be read, or an end not
    after the start, is a :class:`ConfigError` naming its flag."""
    from streamyolo.clock import parse_seconds
    from streamyolo.sinks.export import backwards, parse_moment

    def moment(flag: str, read: Callable[[], float]) -> float:
        try:
            return read()
        except ValueError as exc:
            raise ConfigError(f"{flag}: {exc}") from None

    since = None if start is None else moment("--from", lambda: parse_moment(start))
    until = None if end is None else moment("--to", lambda: parse_moment(end, day=since))  # (10:07: --from's day)
    if last is not None:
        ago = moment("--last", lambda: parse_seconds(last, least=0.0))
        since = (until if until is not None else time.time()) - ago
    wrong = None if since is None or until is None else backwards(since, until)  # (as export refuses it)
    if wrong is not None:
        raise ConfigError(f"{'--last' if last is not None else '--to'}: {wrong}")
    return since, until


def _environment_timezone() -> None:
    """``STREAMYOLO_TIMEZONE`` as this process's local time, for a command given a file rather
    than the run's config (which takes it with the rest of the environment): from the
    environment or, as a config reads it, ``STREAMYOLO_ENV_FILE``'s lines (which win); a zone
    not known is a :class:`ConfigError` naming the variable."""
    from streamyolo.config import ENV_PREFIX, build_config, read_env_file

    zone = os.environ.get(ENV_PREFIX + "TIMEZONE")
    if env_file := os.environ.get(ENV_PREFIX + "ENV_FILE"):
        zone = read_env_file(env_file).get(ENV_PREFIX + "TIMEZONE", zone)
    if zone:
        build_config(environ={ENV_PREFIX + "TIMEZONE": zone}).use_timezone()


def _missing(what: str, path: Path, config: Path | None) -> OutputError:
    """``what`` at ``path`` does not exist; for a relative path read from ``config``, where it was
    looked for: the current folder, which need not be the run's (a service's ``WorkingDirectory``)."""
    where = ("" if config is None or path.is_absolute()
             else f" (config {str(config)!r} names it relative: looked for in the current folder {os.getcwd()})")
    return OutputError(f"{what} {str(path)!r} does not exist{where}")


def command_status(args: argparse.Namespace) -> int:
    from streamyolo.pipeline.remote import run_status, status_text

    status = run_status(args.target)
    try:
        print(json.dumps(status, indent=1) if args.json else status_text(status), flush=True)
    except BrokenPipeError:  # (| head): what it was given was enough; the exit code still says how the run is
        _stdout_gone()
    if "stats" in status and not status["running"]:  # (a page that answers is a run that runs)
        stats = status["stats"]
        written = f"its stats file {stats['path']} was last written {stats['age']:.0f} s ago"
        log.error("the run is not running: %s", f"it has ended ({written})" if stats.get("ended") else written)
        return EXIT_FAILED
    failed = [entry.get("name") for entry in status["streams"] if entry.get("state") == "failed"]
    if failed:
        log.error("%d stream(s) failed: %s", len(failed), ", ".join(map(str, failed)))
        return EXIT_FAILED
    return EXIT_OK


def command_events(args: argparse.Namespace) -> int:
    from streamyolo.config import build_config
    from streamyolo.sinks.history import (
        EventQuery,
        count_rows,
        count_table,
        find_events,
        parse_kinds,
        parse_names,
        read_events,
        why_none,
    )

    path, config, streams = Path(args.events), None, None
    if path.suffix.lower() in (".yaml", ".yml"):  # the run's config: its events file
        cfg = build_config(path)
        if all(s.name for s in cfg.streams):  # (the config's streams, where each is named)
            streams = {str(s.name) for s in cfg.streams}
        cfg.use_timezone()  # (the moments asked for, and the hours and days counted, are the run's local time)
        if cfg.events is None:
            raise ConfigError(f"config {str(path)!r} writes no events file (no 'events' key): give the file")
        path, config = Path(cfg.events), path
    else:
        _environment_timezone()  # (as the run's config would: its moments and hours)
    since, until = _moments(args.start, args.last, args.end)
    try:
        query = EventQuery(since, until, parse_names(args.streams, "--stream"), parse_kinds(args.kinds, "--event"),
                           parse_names(args.classes, "--class"), parse_names(args.places, "--where"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.newest is not None and args.newest < 1:
        raise ConfigError(f"--newest: {args.newest} is not a number of events (1 or more)")
    counting = next((flag for flag, given in (("--count", args.count), ("--by", args.by)) if given), None)
    if args.text and (counting or args.csv):
        raise ConfigError(f"--text lists events as lines a person reads: not with {counting or '--csv'}")
    if args.follow and (counting or args.end):
        raise ConfigError(f"--follow lists events as they come: not with {counting or '--to'}")
    if args.follow:
        for name in sorted(query.streams - streams if query.streams is not None and streams is not None else ()):
            log.warning("--stream: no stream %r in %s%s: none of its events will come", name, config,
                        meant(name, streams or ()))
        return _follow(args, path, config, query)
    try:
        found = read_events(path, query) if args.newest is None else reversed(find_events(path, query, args.newest)[0])
        if args.csv and counting:  # (the counts as CSV; without a count, the events are listed as CSV below)
            rows = count_rows(found, args.by, (since, until), stats=True)
            total = int(rows[-1][rows[0].index("count")])
            if total:
                csv.writer(sys.stdout, lineterminator="\n").writerows(rows[:-1])
        elif args.count or args.by:
            table, total = count_table(found, args.by, (since, until))
            if total:
                print(table, flush=True)
        else:
            total = _printed(found, "text" if args.text else "csv" if args.csv else "json")
    except BrokenPipeError:  # (| head): what it was given was enough
        _stdout_gone()
        return EXIT_OK
    except FileNotFoundError:
        raise _missing("events file", path, config) from None
    except OSError as exc:
        raise OutputError(f"cannot read events file {str(path)!r}: {exc.strerror or exc}") from None
    if not total:
        log.warning("no events in %s match%s", path, why_none(path, query))
        return EXIT_FAILED
    return EXIT_OK


FOLLOW_EVERY = 0.25
"""Seconds between two looks at a followed events file (``streamyolo events --follow``)."""


def _follow(args: argparse.Namespace, path: Path, config: Path | None, query: EventQuery) -> int:
    """``streamyolo events --follow``: the earlier events asked for (``--from``, ``--last``,
    ``--newest``), then each new one as it is written, until interrupted; exit 0 if any matched."""
    from streamyolo.sinks.history import Follower, find_events, read_events

    if not path.is_file() and not path.parent.is_dir():
        raise _missing("events file", path, config)
    follower, total = Follower(path, query), 0
    how = "text" if args.text else "csv" if args.csv else "json"
    try:
        if follower.mark is None:
            log.info("waiting for events file %s to be written", path)
        if args.newest is not None or query.since is not None:
            try:
                total += _printed(reversed(find_events(path, query, args.newest, follower.mark)[0])
                                  if args.newest is not None else read_events(path, query, follower.mark), how)
            except FileNotFoundError:
                pass  # none yet
        while True:
            total += _printed(follower.events(), how, header=not total)  # (the CSV's header once)
            if _reader_gone():  # (| head, which had its lines: nothing new need come to find out)
                raise BrokenPipeError
            time.sleep(FOLLOW_EVERY)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # (| head)
        _stdout_gone()
    except OSError as exc:
        raise OutputError(f"cannot read events file {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        follower.close()
    return EXIT_OK if total else EXIT_FAILED


def _printed(events: Iterable[dict[str, Any]], how: str = "json", header: bool = True) -> int:
    """Print ``events`` as JSON lines, as lines a person reads (``text``) or as CSV rows (``csv``,
    under a ``header`` row); flushed at the end; how many there were."""
    from streamyolo.sinks.history import CSV_COLUMNS, csv_row, describe

    total = 0
    rows = csv.writer(sys.stdout, lineterminator="\n")
    for event in events:
        if how == "csv":
            if header and not total:
                rows.writerow(CSV_COLUMNS)
            rows.writerow(csv_row(event))
        else:
            sys.stdout.write((describe(event) if how == "text" else json.dumps(event, separators=(",", ":"))) + "\n")
        total += 1
    if total:
        sys.stdout.flush()
    return total


def _reader_gone() -> bool:
    """Whether the output is a pipe whose reader went away (as ``tail -f`` finds out)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # (errors and hang-ups are always reported)
        return any(happened & (select.POLLERR | select.POLLHUP) for _, happened in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no file under it (a program's own stdout), no poll
        return False


def _stdout_gone() -> None:
    """What reads the output went away (``| head``): nothing more goes to it, also not at exit
    (where Python would flush it and complain)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


def _unrecognized(parser: argparse.ArgumentParser, command: str, unknown: Sequence[str]) -> NoReturn:
    """Exit as argparse does for arguments no option takes (code 2, the command's usage), naming
    for a misspelt flag the one meant: ``--recrod (did you mean --record?)``."""
    (commands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    sub: argparse.ArgumentParser = commands.choices[command]
    flags = [flag for action in sub._actions for flag in action.option_strings if flag.startswith("--")]
    sub.error("unrecognized arguments: " + " ".join(
        arg + (meant(arg.split("=", 1)[0], flags, "{}") if arg.startswith("--") else "") for arg in unknown))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _unrecognized(parser, args.command, unknown)
    setup_logging(args.log_level)
    interrupts = _Interrupts()
    restore = interrupts.install() if threading_is_main() else None
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "check":
            return command_check(args)
        if args.command == "demo":
            return command_demo(args)
        if args.command == "export":
            return command_export(args)
        if args.command == "events":
            return command_events(args)
        if args.command == "status":
            return command_status(args)
        if args.command == "bench":
            from streamyolo.benchmark import capacity_report

            print(capacity_report(args.model, args.sources, args.imgsz, args.workers, args.device, args.seconds,
                                  args.max_streams, args.pytorch_cpu, args.worker_mode, args.motion, args.tiles,
                                  args.region),
                  flush=True)
            return EXIT_OK
        parser.error(f"unknown command {args.command!r}")
    except (ConfigError, ModelError, OutputError, SourceError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except StreamYoloError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        log.error("interrupted before the run started")
        return EXIT_INTERRUPTED
    finally:
        if restore is not None:
            restore()
    return EXIT_OK


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
