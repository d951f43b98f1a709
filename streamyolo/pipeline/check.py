"""``streamyolo check``: what a run would do, checked without running it.

Everything ``run`` checks before it starts (the config and the flags, the model's file, the
streams' files and URLs as written, the output files and folders, which it creates as a run
would), then the plan: each stream with its kind, buffer and what it counts, the model and
the workers, the outputs. With ``connect``, each stream's source is also opened and its first
frame read, all at once, each within its own ``open_timeout`` and ``read_timeout``: a camera
that cannot be reached, a wrong password, a file that does not decode are found before the
service starts. With ``load_model``, one worker's model is also built as the run builds it
(an OpenVINO compile fills the model cache the run then loads from) and, with ``connect``,
run on each source's first frame.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import tempfile
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from streamyolo.buffering import Overflow
from streamyolo.clock import format_seconds
from streamyolo.errors import SourceError
from streamyolo.frames import Detections, Image
from streamyolo.inference.models import resolve_device
from streamyolo.inference.tiles import TileSettings, cut, detect_tiled
from streamyolo.pipeline.build import ResolvedStream, open_stream, recording_source
from streamyolo.pipeline.switches import SwitchFile
from streamyolo.schedule import SWITCHED, described
from streamyolo.sinks.base import format_size
from streamyolo.sinks.original import uncopied
from streamyolo.sources import redact_url

if TYPE_CHECKING:
    from streamyolo.config import PipelineConfig, StreamConfig
    from streamyolo.inference.detector import DetectorFactory
    from streamyolo.pipeline.assemble import ModelGroup


@dataclass(frozen=True, slots=True)
class Plan:
    """What a pipeline built from a config runs: its config, streams, model and workers."""

    config: PipelineConfig
    streams: Sequence[ResolvedStream]
    groups: Sequence[ModelGroup]
    """Each model with its workers and the streams it serves (one, unless streams have
    models of their own)."""
    factories: Sequence[DetectorFactory] = ()
    """The workers' detector factories, every model's in turn."""

    @property
    def workers(self) -> int:
        return sum(g.workers for g in self.groups)


@dataclass(frozen=True, slots=True)
class Probe:
    """A stream's source, opened once: what it sends, or why it could not be read."""

    stream: str
    error: str | None = None
    width: int = 0
    height: int = 0
    fps: float | None = None
    codec: str | None = None
    image: Image | None = None
    """Its first frame."""
    recording: bool = False
    """Whether it is the stream's ``record_source`` (recorded, not watched)."""


def describe(plan: Plan) -> str:
    """The plan, for a person: streams, model and workers, outputs."""
    cfg = plan.config
    lines = [f"{len(plan.streams)} stream(s):"]
    width = max(len(s.spec.name) for s in plan.streams)
    for stream in plan.streams:
        own = stream.config
        parts = [stream.spec.kind.value, f"{stream.overflow.value}, buffer {stream.capacity}"]
        if own.max_fps is not None:
            parts.append(f"{own.max_fps:g} fps at most")
        if own.stride > 1:
            parts.append(f"every {own.stride}th frame")
        if own.rotate != "auto" and own.rotate:
            parts.append(f"turned {own.rotate}° clockwise")
        for key in ("lines", "zones", "masks", "privacy"):
            shapes = getattr(own, key) or {}
            if shapes:
                marks = {name: " (speeds)" if getattr(shape, "size", None) else " (outside)"
                         if getattr(shape, "outside", False) else "" for name, shape in shapes.items()}
                marks = {name: mark + (f" (watched {', '.join(windows)})"
                                       if (windows := getattr(shapes[name], "schedule", None)) else "")
                         + (f" (crowded at {crowd.objects} objects, for {crowd.after:g} s)"
                            if (crowd := getattr(shapes[name], "crowd", None)) else "")
                         for name, mark in marks.items()}
                parts.append(f"{key} {', '.join(name + marks[name] for name in shapes)}")
        by_class = cfg.class_conf_of(own)
        if by_class:
            parts.append(", ".join(f"class {c} above {conf:g}" for c, conf in sorted(by_class.items())))
        if cfg.blur_of(own):
            parts.append(f"blurs {_classes(cfg.blur_of(own))}")
        motion = cfg.motion_of(own)
        if motion is not None:
            parts.append(f"model on motion (at least every {format_seconds(motion.refresh)})")
        tiles = cfg.tiles_of(own)
        if tiles is not None:
            parts.append(tiles.describe())
        recorded = cfg.record_of(own)
        if own.record_source is not None and recorded is not None:
            clipped = ", its clips cut from it" if cfg.clips_of(own) == "original" else ""
            parts.append(f"records {redact_url(own.record_source)} as it comes{clipped}")
        elif cfg.record is not None and recorded != cfg.record_mode:
            parts.append("not recorded" if recorded is None else f"recorded {recorded}")
        keep, keep_objects = cfg.record_keep_of(own)
        if recorded is not None and (own.record_keep is not None or own.record_keep_objects is not None):
            parts.append(f"segments kept {format_seconds(keep) if keep is not None else 'until record_max_size'}"
                         + (f" ({format_seconds(keep_objects)} those with objects)" if keep_objects else ""))
        if own.record_objects is not None and recorded is not None and keep_objects:
            parts.append(f"segments kept longer for {_classes(own.record_objects)}")
        if cfg.tracker is not None and cfg.confirm_frames_of(own) > 1:
            parts.append(f"objects kept once tracked in {cfg.confirm_frames_of(own)} frames in a row")
        for kind, schedule in (own.schedule.schedules() if own.schedule is not None else {}).items():
            parts.append(f"{SWITCHED[kind]} {schedule.describe(time.time())}")
        lines.append(f"  {stream.spec.name:<{width}}  {stream.spec.display_uri}  ({'; '.join(parts)})"
                     + (" FAILS: " + stream.missing.removeprefix(f"stream {stream.spec.name!r}: ")
                        if stream.missing is not None else ""))
    if any(s.config.schedule is not None or any(z.schedule for z in (s.config.zones or {}).values())
           for s in plan.streams):  # (a container runs on UTC unless told: its schedules would be hours off)
        clock = f"time zone {cfg.timezone}" if cfg.timezone is not None else "this box's clock"
        lines.append(f"  schedules by {clock}: {time.strftime('%a %H:%M %Z')} now" + (
            " (UTC: set timezone, or TZ, for local hours)" if time.localtime().tm_gmtoff == 0
            and cfg.timezone is None else ""))
    disabled = [s.name or redact_url(s.source) for s in cfg.streams if not s.enabled]
    if disabled:
        lines.append(f"  disabled (enabled: false): {', '.join(disabled)}")
    device = resolve_device(cfg.device)
    shown = device if device == cfg.device else f"{cfg.device} ({device})"
    for group in plan.groups:
        lanes = f", {group.lanes.own} model replica(s) each" if group.lanes.own > 1 else ""
        users = (f" for {', '.join(plan.streams[i].spec.name for i in group.streams)}" if len(plan.groups) > 1
                 else "")
        size = f" at imgsz {group.imgsz}" if group.imgsz != cfg.imgsz else ""
        lines.append(f"model {group.path}{size} on {shown}: {group.workers} {cfg.worker_mode} worker(s){lanes}"
                     f"{users}{', tracked by ' + cfg.tracker if cfg.tracker else ''}")
    outputs = []
    if cfg.record is not None:
        segments = f", {format_seconds(cfg.record_segment)} files" if cfg.record_segment else ""
        kept = f", kept {format_seconds(cfg.record_keep)}" if cfg.record_keep else ""
        if cfg.record_segment and not cfg.record_keep and not cfg.record_max_size:
            kept = ", none deleted (no record_keep or record_max_size: once the disk is full, recording pauses)"
        if cfg.record_keep_objects:
            which = "" if cfg.record_objects is None else f" of {_classes(cfg.record_objects)}"
            kept += f" ({format_seconds(cfg.record_keep_objects)} those with objects{which})"
        original = " (the cameras' original video)" if cfg.record_mode == "original" else ""
        outputs.append(f"recordings in {cfg.record}{original}{segments}{kept}{_room(cfg.record)}")
    clips = " (cut from the cameras' original video)" if cfg.clip_mode == "original" else ""
    days = {cfg.jsonl: cfg.jsonl_keep, cfg.events: cfg.events_keep, cfg.stats: cfg.stats_keep}
    for path, what in ((cfg.clips, f"clips{clips} in"), (cfg.snapshots, "snapshots in"), (cfg.crops, "crops in"),
                       (cfg.heatmaps, "heatmaps in"), (cfg.dataset, "a dataset in"),
                       (cfg.jsonl, "detections to"),
                       (cfg.events, "events to"), (cfg.summary, "summary to"), (cfg.stats, "stats to")):
        if path is not None:
            age = days.get(path)
            outputs.append(f"{what} {path}" + (f" (its days kept {format_seconds(age)})" if age else "")
                           + (_room(path) if path == cfg.clips else ""))
    from streamyolo.config import EmailConfig, WebhookConfig
    from streamyolo.sinks.webhook import ATTACHED

    hooks: list[WebhookConfig | EmailConfig] = [*cfg.all_webhooks(), *cfg.emails]
    for hook in hooks:
        mailed = isinstance(hook, EmailConfig)
        taken: list[str] = [hook.format] if isinstance(hook, WebhookConfig) and hook.format != "json" else []
        taken += [f"priority {hook.priority}"] if hook.priority else []
        read = mailed or bool(taken)  # (by a person: an email, a message)
        taken += [", ".join(hook.events)] if hook.events is not None else []
        taken += [f"streams {', '.join(hook.streams)}"] if hook.streams is not None else []
        taken += [f"in {', '.join(hook.where)}"] if hook.where is not None else []
        taken += [f"objects of {_classes(hook.classes)}"] if hook.classes is not None else []
        taken += [f"a stream's objects at most every {format_seconds(hook.cooldown)}"] if hook.cooldown else []
        taken += [f"a camera down once down {format_seconds(hook.down_after)}"] if hook.down_after else []
        taken += [f"only {', '.join(hook.schedule)}"] if hook.schedule else []
        pictured = mailed or (isinstance(hook, WebhookConfig) and hook.format in ATTACHED)  # (the snapshot itself)
        taken += ["each with its snapshot"] if pictured and cfg.snapshots else []
        if read and cfg.public_url is None and (cfg.clips if pictured else cfg.snapshots or cfg.clips):
            taken.append(f"no {'clips' if pictured else 'pictures nor clips'} linked: set public_url, the page's "
                         "address as the phone reaches it")
        what = (f"events by email to {', '.join(hook.to)} through {redact_url(hook.server)}"
                if isinstance(hook, EmailConfig) else f"events to webhook {redact_url(hook.url)}")
        outputs.append(what + (f" ({'; '.join(taken)})" if taken else ""))
    if cfg.mqtt is not None:
        outputs.append("events to an MQTT broker" + (" (Home Assistant discovery)" if cfg.mqtt_discovery else ""))
    if cfg.web is not None:
        outputs.append(f"a web page on {cfg.web}")
    lines.append("outputs: " + ("; ".join(outputs) if outputs else "none but the summary table"))
    if cfg.switches_file is not None:
        switches = SwitchFile(cfg.switches_file)
        switches.load()
        left = {name: {kind: on for kind, on in switches.states(name).items() if not on}
                for name in sorted({s.spec.name for s in plan.streams})}
        said = "; ".join(f"{name}: " + ", ".join(described(kind, False) for kind in kinds)
                         for name, kinds in left.items() if kinds)
        lines.append(f"switches kept in {cfg.switches_file}" + (f" (as left: {said})" if said else ""))
    if cfg.env_file is not None:
        lines.append(f"variables from {cfg.env_file}, read again at every reload")
    return "\n".join(lines)


def _room(folder: Path) -> str:
    """``, 45 GB free``: the room on a folder's disk (nothing when it cannot be said)."""
    try:
        return f", {format_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        return ""


def probe(streams: Sequence[ResolvedStream]) -> list[Probe]:
    """Open every stream's source and read its first frame, all at once; in the streams' order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(streams))) as pool:
        return list(pool.map(_probe, streams))


def _probe(stream: ResolvedStream) -> Probe:
    source = open_stream(stream)
    try:
        info = source.open()
        first = source.read()
        if first is None:
            return Probe(stream.spec.name, "opened, but it sent no frame")
        return Probe(stream.spec.name, None, info.width, info.height, info.fps, info.codec, first.image)
    except SourceError as exc:
        return Probe(stream.spec.name, str(exc))
    finally:
        try:
            source.close()
        except Exception:  # a source that failed to open may not close cleanly either
            pass


def probe_recordings(streams: Sequence[ResolvedStream]) -> list[Probe]:
    """Open every stream's ``record_source`` at once, read its first video packet and say what
    it sends; in the streams' order, for the streams that have one."""
    recorded = [s for s in streams if s.config.record_source is not None]
    if not recorded:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(recorded))) as pool:
        return list(pool.map(_probe_recording, recorded))


class _FirstVideo:
    """A tap that notes whether a video packet came (a record source's, read by ``check``)."""

    def __init__(self) -> None:
        self.video: int | None = None
        self.came = False

    def opened(self, video: Any, audio: Any = None) -> None:
        self.video = video.index

    def packet(self, packet: Any, arrived: float | None) -> None:
        self.came = self.came or (packet.stream_index == self.video and packet.size > 0)


PROBE_PACKETS = 200
"""Packets ``check`` reads of a record source, at most, for its first video packet."""


def _probe_recording(stream: ResolvedStream) -> Probe:
    tap = _FirstVideo()
    source = recording_source(stream, tap)
    assert source is not None
    try:
        info = source.open()
        for _ in range(PROBE_PACKETS):
            if tap.came or not source.read_packet():
                break
        if not tap.came:
            return Probe(stream.spec.name, f"stream {stream.spec.name!r} ({source.display_uri}): opened, but no video "
                         "came", recording=True)
        return Probe(stream.spec.name, None, info.width, info.height, info.fps, info.codec, recording=True)
    except SourceError as exc:
        return Probe(stream.spec.name, str(exc), recording=True)
    finally:
        try:
            source.close()
        except Exception:  # a source that failed to open may not close cleanly either
            pass


def trouble(cfg: PipelineConfig, stream: ResolvedStream, found: Probe) -> list[str]:
    """What a run would find wrong with ``stream`` as ``found`` read it, a sentence each: lines,
    zones, masks and the region outside its picture (coordinates copied from another resolution, say), video
    that cannot be recorded, or clipped, as it came."""
    if found.error is not None or not found.width:
        return []
    own = stream.config
    recorded = cfg.record_of(own) == "original" and own.record_source is None  # the source read is recorded
    # The clips of the original are cut from the record source where there is one.
    clipped = cfg.clips_of(own) == "original" and found.recording == (own.record_source is not None)
    refusals = [refusal for refusal in (uncopied(found.stream, found.codec) if recorded or found.recording else None,
                                        uncopied(found.stream, found.codec, clips=True) if clipped else None)
                if refusal is not None]
    if found.recording:  # another picture than the one watched: the shapes are not drawn on it
        return refusals
    return [*outside(found.stream, own, found.width, found.height), *refusals]


def outside(stream: str, own: StreamConfig, width: int, height: int) -> list[str]:
    """The lines, zones, masks, privacy areas and region of ``stream`` (its config
    ``own``) that reach outside its ``width`` x ``height`` picture, a sentence each (also for
    ``streamyolo bench --region``).

    >>> from streamyolo.config import StreamConfig
    >>> outside("cam", StreamConfig(source="a.mp4", region=[2000, 0, 2500, 500]), 1920, 1080)
    ["stream 'cam': the region reaches (2000, 0), outside its 1920x1080 picture"]
    """
    shapes = [*((f"line {name!r}", line.points) for name, line in (own.lines or {}).items()),
              *((f"zone {name!r}", zone.points) for name, zone in (own.zones or {}).items()),
              *((f"mask {name!r}", mask.points) for name, mask in (own.masks or {}).items()),
              *((f"privacy area {name!r}", area.points) for name, area in (own.privacy or {}).items()),
              *([("the region", own.region_outline or (own.region_box[:2], own.region_box[2:]))]
                if own.region_box is not None else [])]
    said = []
    for what, points in shapes:
        beyond = [(x, y) for x, y in points if not (0 <= x <= width and 0 <= y <= height)]
        if beyond:
            x, y = beyond[0]
            said.append(f"stream {stream!r}: {what} reaches ({x:g}, {y:g}), outside its {width}x{height} picture")
    return said


class Told(NamedTuple):
    """What an event output made of ``check --notify``'s test event."""

    what: str
    """The output (``webhook https://…``, the password never shown)."""
    error: str | None
    """``None``: taken; else what went wrong."""
    picture: str = ""
    """With snapshots, whether its test picture went with it (``with its picture``, or why not)."""


def notify(plan: Plan) -> list[Told]:
    """``streamyolo check --notify``: a ``test`` event sent once to each webhook (in its format,
    whatever events it takes), each email's addresses and the MQTT broker (``<prefix>/test``),
    at once; with ``snapshots``, a test picture with it, to the outputs that carry pictures
    (a phone's: does its server take them?)."""
    from streamyolo.pipeline.assemble import deliveries
    from streamyolo.sinks.mqtt import try_broker
    from streamyolo.sinks.webhook import ATTACHED, Webhook

    cfg = plan.config
    event: dict[str, Any] = {"time": round(time.time(), 3), "stream": "", "event": "test",
                             "message": "a test from streamyolo check --notify: this is where the events go"}
    sent: list[Told] = []
    with tempfile.TemporaryDirectory(prefix="streamyolo-notify-") as folder:
        if cfg.snapshots is not None:
            event["snapshot"] = "streamyolo-check-notify.jpg"
            (Path(folder) / event["snapshot"]).write_bytes(_test_card(event["message"]))
        for output, _ in deliveries(cfg, plan.streams):
            carries = cfg.snapshots is not None and (not isinstance(output, Webhook) or output.format in ATTACHED)
            output.snapshots = Path(folder)
            error = output.post_now(dict(event))
            refused = output.unattached if isinstance(output, Webhook) else None
            picture = ("" if error is not None or not carries else
                       "with its picture" if refused is None else f"but not its picture ({refused})")
            sent.append(Told(f"{output.what} {output.shown}", error, picture))
    if cfg.mqtt is not None:
        sent.append(Told(f"MQTT broker {redact_url(cfg.mqtt)}", try_broker(cfg.mqtt, dict(event))))
    return sent


def _test_card(message: str) -> bytes:
    """A JPEG that says what it is: ``check --notify``'s test picture."""
    import cv2

    card = np.full((360, 640, 3), (60, 45, 30), np.uint8)
    for row, text in enumerate(("streamyolo check --notify", *message.split(": ", 1)[1:],
                                time.strftime("%Y-%m-%d %H:%M:%S"))):
        cv2.putText(card, text, (24, 80 + 60 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return cv2.imencode(".jpg", card)[1].tobytes()


def describe_probes(probes: Sequence[Probe]) -> str:
    width = max(len(p.stream) for p in probes)
    lines = []
    for found in probes:
        if found.error is not None:
            lines.append(f"  {found.stream:<{width}}  FAILED: {found.error}")
        else:
            rate = f" at {found.fps:g} fps" if found.fps else ""
            codec = f", {found.codec}" if found.codec else ""
            lines.append(f"  {found.stream:<{width}}  ok: {found.width}x{found.height}{rate}{codec}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What :func:`try_model` learnt of the model."""

    seconds: float
    """How long it took to load."""
    task: str
    """``detect``, ``segment``, ``pose`` or ``obb``."""
    names: dict[int, str]
    """Its classes."""
    lines: list[str]
    """A line per probed frame: what it found there, in how long."""
    took: dict[str, float]
    """Each probed stream's seconds a frame (the fastest of :data:`TIMED` passes, its parts too)."""


TIMED = 3
"""Passes timed on each probed frame (the first of a size costs more)."""


def capacity(streams: Sequence[ResolvedStream], probes: Sequence[Probe], took: Mapping[str, float]) -> str | None:
    """What one model's time the live streams among ``streams`` ask, at best (the model alone:
    decoding shares the cores too), from each one's frame rate (``probes``; its ``max_fps`` and
    ``stride``) and the model's seconds a frame on it (``took``); ``None`` without a live stream
    whose rate and time are known."""
    asked, rates = 0.0, 0.0
    for stream in streams:
        if stream.overflow is not Overflow.DROP_OLDEST:
            continue
        probe = next((p for p in probes if p.stream == stream.spec.name and not p.recording), None)
        seconds = took.get(stream.spec.name)
        if probe is None or probe.fps is None or seconds is None:
            continue
        rate = min(probe.fps, stream.config.max_fps or probe.fps) / stream.config.stride
        asked, rates = asked + rate * seconds, rates + rate
    if not rates:
        return None
    head = (f"capacity, at best (the model alone; decoding takes its share of the cores too): the live streams send "
            f"{rates:.0f} frames/s, which take {asked * 100:.0f}% of the model's time")
    if asked <= 1:
        return head + ": every frame can be processed (`streamyolo bench` measures it with decoding)"
    return (head + f": about {100 / asked:.0f}% of their frames can be processed, the others skipped (each result of "
            "the newest frame); the cameras' sub streams, motion, a smaller imgsz or model, or a GPU would help "
            "(`streamyolo bench` measures it with decoding)")


def _what(found: Detections) -> str:
    """``16 person, 1 bicycle``: what was found, most frequent first."""
    return ", ".join(f"{n} {name}" for name, n in found.counts().items()) or "nothing"


def try_model(factory: DetectorFactory, probes: Sequence[Probe],
              tiles: Mapping[str, TileSettings | None] | None = None) -> Loaded:
    """Build a worker's detector as the run would (in a thread of its own; compiling an
    OpenVINO model into the model cache) and detect on each probed source's first frame (on
    its parts too, where its stream has ``tiles``)."""
    found: list[Loaded] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            started = time.perf_counter()
            detector = factory()
            loaded = time.perf_counter() - started
            classes = dict(detector.names)
            lines: list[str] = []
            took: dict[str, float] = {}
            try:
                # What the model's output holds says its task (segmentation models give outlines,
                # even none); a worker that splits batches between replicas hides its model.
                task = detector.detect([np.zeros((64, 64, 3), np.uint8)])[0].task
                for probe in probes:
                    if probe.image is None:
                        continue
                    parts = (tiles or {}).get(probe.stream)
                    for _ in range(TIMED):
                        started = time.perf_counter()
                        detections = detect_tiled(detector, probe.image, parts)
                        seconds = time.perf_counter() - started
                        took[probe.stream] = min(seconds, took.get(probe.stream, seconds))
                    passes = ""
                    if parts is not None:  # what the parts add, for the user to judge whether they pay
                        alone = _what(detector.detect([probe.image])[0])
                        passes = (f" (in its region; on the whole picture: {alone})" if parts.one_picture else
                                  f" ({len(cut(parts, probe.image))} passes; on the whole picture alone: {alone})")
                    lines.append(f"  {probe.stream}: {_what(detections)} in {took[probe.stream] * 1000:.0f} ms{passes}")
            finally:
                detector.close()
            found.append(Loaded(loaded, task, classes, lines, took))
        except BaseException as exc:  # reported in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=work, name="check:model")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return found[0]


def _classes(ids: Collection[int]) -> str:
    """Classes as the plan names them.

    >>> _classes([2, 0]), _classes([])
    ('class(es) 0, 2', 'no class')
    """
    return f"class(es) {', '.join(map(str, sorted(ids)))}" if ids else "no class"
