"""``Pipeline.from_config``: turn a validated config into built parts, failing early."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamyolo.annotation import BoxAnnotator
from streamyolo.buffering import Overflow
from streamyolo.config import (
    EmailConfig,
    MotionConfig,
    PipelineConfig,
    WebhookConfig,
    auto_lanes,
    auto_workers,
    build_config,
    lanes_pay,
    lends_lanes,
)
from streamyolo.errors import ConfigError, ModelError, OutputError, meant
from streamyolo.frames import Mask
from streamyolo.inference.converted import converting
from streamyolo.inference.counting import CountingLine, Zone
from streamyolo.inference.detector import DetectorFactory
from streamyolo.inference.lanes import IdleLanes, LanedFactory
from streamyolo.inference.models import (
    DetectSettings,
    SharedFactory,
    UltralyticsFactory,
    resolve_device,
    resolve_model,
)
from streamyolo.inference.motion import MotionSettings
from streamyolo.inference.offline import preload
from streamyolo.inference.runners import is_openvino, is_pytorch
from streamyolo.inference.tracking import tracker_settings
from streamyolo.pipeline.build import (
    ResolvedStream,
    check_output_file,
    open_stream,
    recording_source,
    resolve_streams,
    rotation,
)
from streamyolo.pipeline.check import Plan
from streamyolo.pipeline.monitor import StatsWriter
from streamyolo.pipeline.report import StatusPrinter
from streamyolo.pipeline.restart import NO_RECONNECT, Backoff
from streamyolo.pipeline.switches import SwitchFile
from streamyolo.schedule import Schedule
from streamyolo.sinks.base import Sink, check_writable_folder
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.crops import CropSink
from streamyolo.sinks.dataset import DatasetSink
from streamyolo.sinks.display import TiledDisplay, display_available
from streamyolo.sinks.events import EventFilter, EventSink
from streamyolo.sinks.heatmap import HeatmapSink
from streamyolo.sinks.jsonl import JsonlSink
from streamyolo.sinks.mail import Mail
from streamyolo.sinks.mqtt import StreamEntities
from streamyolo.sinks.recorder import VideoRecorder, choose_codec
from streamyolo.sinks.storage import Storage
from streamyolo.sinks.web import WebViewer
from streamyolo.sinks.webhook import Deliverer, Webhook
from streamyolo.sources import PyAVSource
from streamyolo.sources.base import PacketTap, tap_of
from streamyolo.workers.capture import CapturePolicy
from streamyolo.workers.process import ProcessDetectorFactory, RestartCounts, start_fork_server

if TYPE_CHECKING:
    from streamyolo.pipeline.pipeline import Pipeline, StreamSetup

log = logging.getLogger(__name__)


def load_config(config: Any, overrides: dict[str, Any]) -> PipelineConfig:
    if isinstance(config, PipelineConfig):
        if not overrides:
            return config
        return build_config(config.model_dump(exclude_unset=True), overrides)
    if config is None or isinstance(config, str | os.PathLike | dict):
        return build_config(config, overrides)
    raise TypeError(f"config must be a PipelineConfig, a mapping or a path, not {type(config).__name__}")


def detector_factories(config: PipelineConfig, model: str, workers: int, lanes: Lanes | None = None,
                       restart_counts: RestartCounts | None = None, *, first: int = 0,
                       running: int | None = None, name: str | None = None,
                       imgsz: int | tuple[int, int] | None = None) -> list[DetectorFactory]:
    """One factory per worker (each may sit on its own GPU); ``locked`` sharing wraps a
    single factory so that every worker gets the same instance behind a lock; ``lanes`` > 1
    gives each worker that many replicas of the model, each on a thread of its own (see
    :mod:`streamyolo.inference.lanes`); ``worker_mode: process`` wraps each worker's factory
    so that its model (and lanes) are built and run in a child process, with the worker's
    share of the cores as torch threads (where lanes are lent, a lane thread here drives the
    child, so that a finished worker lends it whole; ``restart_counts`` counts the children
    started again). ``model`` is the model as
    :func:`~streamyolo.inference.models.resolve_model` resolved it, ``name`` as the config
    names it (default: ``config.model``), ``imgsz`` the size it runs at (default:
    ``config.imgsz``). With several models (or sizes), each has workers of its own:
    these are numbered from ``first``, and ``running`` is how many models run at once in all
    (default: these workers' lanes), which share the cores."""
    name = config.model if name is None else name
    settings = DetectSettings(
        conf=config.detect_conf(name), iou=config.iou, imgsz=config.imgsz if imgsz is None else imgsz,
        classes=config.detect_classes(name), half=config.half, max_det=config.max_det,
    )
    lanes = lanes or Lanes()
    devices = [resolve_device(config.device, first + index) for index in range(workers)]
    threads = torch_threads(config, running or models_running(config, workers, lanes.own), devices[0])
    openvino = runs_on_openvino(config, model)
    cache = resolve_model_cache(config.model_cache) if openvino else None
    if config.model_sharing == "locked":
        shared = SharedFactory(UltralyticsFactory(model, settings, devices[0], threads, cache, config.pytorch_cpu))
        return [shared] * workers

    def own(device: str, idle: IdleLanes | None) -> DetectorFactory:
        single = UltralyticsFactory(model, settings, device, threads, cache, config.pytorch_cpu)
        if lanes.own == 1 and idle is None:
            return single
        return LanedFactory(single, lanes.own, idle)

    idle = IdleLanes() if lanes.lend else None  # one pool: finished workers lend to the others
    if config.worker_mode == "process":  # each child imports for itself
        children = [ProcessDetectorFactory(own(device, None), f"w{first + index}", torch_threads=threads,
                                           restarts=config.process_restarts, restart_counts=restart_counts)
                    for index, device in enumerate(devices)]
        if idle is None:
            return list(children)
        # A lane thread here drives each child, so that a worker that has finished lends its
        # child (the model replicas inside it) to the others.
        return [LanedFactory(child, 1, idle) for child in children]
    return [own(device, idle) for device in devices]


def models_running(config: PipelineConfig, workers: int, lanes: int) -> int:
    """How many models run at once: one per lane of every worker; a locked model runs one
    batch at a time, so it may use every core."""
    return 1 if config.model_sharing == "locked" else workers * lanes


def _motion(config: MotionConfig | None) -> MotionSettings | None:
    return None if config is None else MotionSettings(config.threshold, config.area, config.refresh)


def resolve_model_cache(setting: str) -> str | None:
    """The folder for OpenVINO's compiled-model cache (made if missing), or ``None``.

    ``"off"`` → ``None``. ``"auto"`` → ``$XDG_CACHE_HOME/streamyolo/openvino`` (or
    ``~/.cache/…``), or ``None`` where that cannot be made: a run never fails for want of a
    cache. Any other value is a folder the user asked for; one that cannot be made or
    written is an error that names it.

    >>> resolve_model_cache("off") is None
    True
    """
    if setting == "off":
        return None
    if setting != "auto":
        folder = Path(setting).expanduser()
        check_writable_folder(folder, "config key 'model_cache': folder")
        return str(folder.resolve())
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamyolo" / "openvino"
    try:
        check_writable_folder(folder, "OpenVINO model cache")
    except OutputError as exc:
        log.debug("no OpenVINO model cache: %s", exc)
        return None
    return str(folder)


def torch_threads(config: PipelineConfig, models: int, device: str) -> int | None:
    """Divide the cores between the ``models`` running at once so they never oversubscribe them."""
    if config.threads is not None:
        return config.threads
    if device.startswith("cuda"):
        return None
    from streamyolo.pipeline.pipeline import cpu_count

    return max(1, cpu_count() // models)


def runs_on_openvino(cfg: PipelineConfig, model: str) -> bool:
    """Whether OpenVINO runs the model: an OpenVINO export, or a PyTorch weights file that
    ``pytorch_cpu`` converts on a CPU (not with ``half``). ``model`` is the resolved path."""
    return is_openvino(model) or (
        is_pytorch(model) and converting(cfg.pytorch_cpu, model, resolve_device(cfg.device), cfg.half))


def choose_workers(cfg: PipelineConfig, streams: Sequence[ResolvedStream], model: str | Sequence[str]) -> int:
    """The configured number of workers (``auto``: :func:`~streamyolo.config.auto_workers`),
    never more than there are streams. ``model`` is the resolved model path (or every model's,
    where streams run models of their own: ``auto`` then counts OpenVINO's way only when
    OpenVINO runs them all)."""
    models = [model] if isinstance(model, str) else list(model)
    wanted = cfg.workers
    if wanted == "auto":
        from streamyolo.pipeline.pipeline import cpu_count

        live_only = _live_only(streams)
        cuda = resolve_device(cfg.device).startswith("cuda")
        cores = cpu_count()
        openvino = all(runs_on_openvino(cfg, m) for m in models)
        wanted = auto_workers(cuda, live_only, cores, openvino)
        kind = ("other" if not openvino else "OpenVINO" if all(is_openvino(m) for m in models)
                else "PyTorch on OpenVINO" if not any(is_openvino(m) for m in models) else "OpenVINO-run")
        log.info("workers: auto chose %d (%s, %s, %s model%s)", max(1, min(wanted, len(streams))),  # (used)
                 "live streams only" if live_only else "lossless streams", "CUDA" if cuda else f"{cores} CPU cores",
                 kind, "s" if len(models) > 1 else "")
    return max(1, min(wanted, len(streams)))


def split_workers(total: int, sizes: Sequence[int]) -> list[int]:
    """``total`` workers shared between models that run ``sizes`` streams each: at least one
    each (so never fewer than there are models) and at most one per stream; each further
    worker goes to the model with the most streams per worker.

    >>> split_workers(2, [3, 1]), split_workers(4, [3, 1]), split_workers(1, [2, 2]), split_workers(3, [2, 2])
    ([1, 1], [3, 1], [1, 1], [2, 1])
    """
    counts = [1] * len(sizes)
    for _ in range(total - len(sizes)):
        open_ = [i for i, n in enumerate(sizes) if counts[i] < n]
        if not open_:
            break
        best = max(open_, key=lambda i: (sizes[i] / counts[i], -i))
        counts[best] += 1
    return counts


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """A model at an input size and the workers that run it, for the streams that use it."""

    name: str
    """The model as the config names it."""
    path: str
    """As :func:`~streamyolo.inference.models.resolve_model` resolved it."""
    imgsz: int | tuple[int, int]
    streams: tuple[int, ...]
    """The run's streams (their places in it) that use it."""
    workers: int
    lanes: Lanes
    first: int = 0
    """The run's number of its first worker (``w<first>``)."""

    def worker_of(self, stream: int) -> int:
        """The run's worker that serves stream ``stream`` (one of :attr:`streams`)."""
        return self.first + self.streams.index(stream) % self.workers


def plan_models(cfg: PipelineConfig, streams: Sequence[ResolvedStream]) -> list[ModelGroup]:
    """The models the streams run, each at its input sizes (most often one: the run's model
    at the run's size), each with its workers and lanes: ``workers`` in all, shared between
    them by :func:`split_workers`."""
    paths = {}
    for name in cfg.models:
        try:
            paths[name] = resolve_model(name)
        except ModelError as exc:
            user = next((s.spec.name for s in streams if s.config.model == name), None)
            if user is None:
                raise
            raise type(exc)(f"stream {user!r}: {exc}") from exc
    members: dict[tuple[str, int | tuple[int, int]], list[int]] = {}
    for index, stream in enumerate(streams):
        members.setdefault((cfg.model_of(stream.config), cfg.imgsz_of(stream.config)), []).append(index)
    total = choose_workers(cfg, streams, list(paths.values()))
    counts = split_workers(total, [len(m) for m in members.values()])
    if len(members) > 1 and sum(counts) != total:
        log.info("workers: %d, one at least for each of the %d models (or sizes)", sum(counts), len(members))
    groups, first = [], 0
    for ((name, imgsz), users), workers in zip(members.items(), counts, strict=True):
        lanes = choose_lanes(cfg, [streams[i] for i in users], paths[name], workers, total=sum(counts))
        groups.append(ModelGroup(name, paths[name], imgsz, tuple(users), workers, lanes, first))
        first += workers
    return groups


@dataclass(frozen=True, slots=True)
class Lanes:
    """Model replicas (lanes) per worker, and whether workers that have finished lend theirs
    to the others (thread workers only)."""

    own: int = 1
    lend: bool = False


def choose_lanes(cfg: PipelineConfig, streams: Sequence[ResolvedStream], model: str, workers: int,
                 total: int | None = None) -> Lanes:
    """The configured lanes per worker (``auto``: :func:`~streamyolo.config.auto_lanes`, and
    :func:`~streamyolo.config.lends_lanes`) of the ``workers`` that run ``model`` for
    ``streams``; ``total``: the run's workers, where other models have some (they share the
    cores)."""
    if cfg.model_sharing == "locked":
        return Lanes()
    if cfg.lanes != "auto":
        return Lanes(cfg.lanes)
    if cfg.threads is not None:  # the user divided the cores themselves
        return Lanes()
    from streamyolo.pipeline.pipeline import cpu_count

    cuda = resolve_device(cfg.device).startswith("cuda")
    kind = "pytorch" if is_pytorch(model) else "openvino" if is_openvino(model) else "other"
    # A live frame is one picture a forward pass, which replicas cannot share; a tiled one is many.
    live_only = _live_only(streams) and all((tiles := cfg.tiles_of(s.config)) is None or tiles.one_picture
                                            for s in streams)
    if not lanes_pay(kind, cuda, live_only):
        return Lanes()
    share = max(1, cpu_count() // (total or workers))
    lanes = auto_lanes(kind, cuda, live_only, share, cfg.batch)
    lend = lends_lanes(lanes, workers, cfg.batch, cfg.worker_mode == "thread")
    if lanes > 1 or lend:
        log.info("lanes: auto chose %d model replica(s) per worker, %d thread(s) each (%s model, lossless "
                 "or tiled streams, %d CPU cores per worker)%s", lanes, max(1, share // lanes), kind, share,
                 "; workers that finish lend them to the others" if lend else "")
    return Lanes(lanes, lend)


def _live_only(streams: Sequence[ResolvedStream]) -> bool:
    return all(s.overflow is Overflow.DROP_OLDEST for s in streams)


def assemble(cls: type[Pipeline], config: Any, overrides: dict[str, Any]) -> Pipeline:
    status = overrides.pop("status", None)
    notifier = overrides.pop("notifier", None)
    cfg = load_config(config, overrides)
    cfg.use_timezone()  # (before the schedules, the workers' children, the first file's name)
    streams = resolve_streams(cfg)
    groups = plan_models(cfg, streams)
    if cfg.worker_mode == "process":
        start_fork_server()  # it imports what the children need while this process goes on
    workers = sum(g.workers for g in groups)
    running = _running(cfg, groups)
    restarts = RestartCounts([f"w{index}" for index in range(workers)]) if cfg.worker_mode == "process" else None
    factories = [factory for g in groups
                 for factory in detector_factories(cfg, g.path, g.workers, g.lanes, restarts, first=g.first,
                                                   running=running, name=g.name, imgsz=g.imgsz)]
    serving = {i: g.worker_of(i) for g in groups for i in g.streams}
    blurred = {s.spec.name: cfg.blur_of(s.config) for s in streams}
    annotator = BoxAnnotator(overlay=cfg.overlay, blur=blurred, boxes=cfg.show_boxes, labels=cfg.show_labels,
                             conf=cfg.show_conf, line_width=cfg.line_width)
    sinks: list[Sink] = []
    gpu = resolve_device(cfg.device).startswith("cuda")
    recorder: VideoRecorder | None = None
    if cfg.record is not None:
        recorder = VideoRecorder(cfg.record, annotator, codec=choose_codec(cfg.record_codec, gpu),
                                 preset=cfg.record_preset, crf=cfg.record_crf, segment=cfg.record_segment,
                                 keep=cfg.record_keep, keep_objects=cfg.record_keep_objects,
                                 objects={s.spec.name: classes for s in streams
                                          if (classes := cfg.record_objects_of(s.config)) is not None},
                                 keeps={s.spec.name: cfg.record_keep_of(s.config) for s in streams},
                                 max_size=cfg.record_max_size, overwrite=cfg.overwrite,
                                 streams=[s.spec.name for s in streams if cfg.record_of(s.config) == "annotated"])
        recorder.paced = frozenset(s.spec.name for s in streams if paced(s))
        sinks.append(recorder)
    if cfg.jsonl is not None:
        check_output_file(cfg.jsonl, "JSONL file")
        sinks.append(JsonlSink(cfg.jsonl, overwrite=cfg.overwrite, keep=cfg.jsonl_keep))
    clips: ClipRecorder | None = None
    if cfg.clips is not None:  # before the events, which name the clip each is in
        clips = ClipRecorder(cfg.clips, annotator, before=cfg.clip_before, after=cfg.clip_after, keep=cfg.clips_keep,
                             max_size=cfg.clips_max_size,
                             streams=[s.spec.name for s in streams if cfg.clips_of(s.config) == "annotated"],
                             codec=choose_codec(cfg.record_codec, gpu), preset=cfg.record_preset, crf=cfg.record_crf)
        if recorder is not None:  # one encoding of a stream for both
            recorder.share_with(clips)
        sinks.append(clips)
    # What the folders take on their disks, for the page and Home Assistant's sensors (one look for both)
    folders = {what: (Path(folder), suffix) for what, folder, suffix in (
        ("recordings", cfg.record, ".mp4"), ("clips", cfg.clips, ".mp4"), ("snapshots", cfg.snapshots, ".jpg"))
        if folder is not None}
    storage = Storage(folders) if folders else None
    events: EventSink | None = None
    if cfg.webhooks or cfg.emails or any(out is not None for out in (cfg.events, cfg.webhook, cfg.mqtt, cfg.snapshots,
                                                                      cfg.clips)):
        if cfg.events is not None:
            check_output_file(cfg.events, "events file")
        events = EventSink(cfg.events, None, cfg.snapshots, annotator, overwrite=cfg.overwrite, mqtt=cfg.mqtt,
                           webhooks=deliveries(cfg, streams), mqtt_events=cfg.mqtt_events,
                           snapshots_keep=cfg.snapshots_keep, clip_of=clips.clip_of if clips is not None else None,
                           public_url=cfg.public_url, mqtt_discovery=cfg.mqtt_discovery,
                           entities=[stream_entities(cfg, s) for s in streams], mqtt_controls=True,
                           events_keep=cfg.events_keep, storage=storage)
        sinks.append(events)
        if clips is not None:
            clips.on_end = events.clip_ended
            clips.on_fail = events.clip_failed
    if cfg.crops is not None:
        sinks.append(CropSink(cfg.crops, keep=cfg.crops_keep, blurred=blurred))
    if cfg.dataset is not None:
        sinks.append(DatasetSink(cfg.dataset, every=cfg.dataset_every, blurred=blurred, max_size=cfg.dataset_max_size))
    heatmaps = HeatmapSink(cfg.heatmaps, overwrite=cfg.overwrite) if cfg.heatmaps is not None else None
    if heatmaps is not None:
        sinks.append(heatmaps)
    for path, what in ((cfg.summary, "summary file"), (cfg.stats, "stats file"), (cfg.switches_file, "switches file")):
        if path is not None:
            check_output_file(path, what)
    web = None
    if cfg.web is not None:
        web = WebViewer(cfg.web, annotator, fps=cfg.web_fps, controls=cfg.web_controls, cert=cfg.web_cert,
                        key=cfg.web_key, recordings=cfg.record, events_file=cfg.events,
                        events=events.recent if events is not None else None, snapshots=cfg.snapshots,
                        clips=cfg.clips, heatmap=heatmaps.picture if heatmaps is not None else None, storage=storage,
                        auth=cfg.web_auth.get_secret_value() if cfg.web_auth is not None else None)
    display = None
    if cfg.display or (cfg.display is None and display_available()):
        if display_available():
            display = TiledDisplay(annotator=annotator)
        else:
            log.warning("no display found: running headless (the window needs X, Wayland, macOS or Windows)")
    setups = [stream_setup(cfg, s, recorder, clips) for s in streams]
    closers = [f.close for f in dict.fromkeys(factories) if hasattr(f, "close")]
    # What building a model imports, imported before the inference threads take turns at it
    # (not by a check that does not build one).
    openvino = any(runs_on_openvino(cfg, g.path) for g in groups)
    preparations = [functools.partial(preload, openvino=openvino)] if cfg.worker_mode == "thread" else []
    pipeline = cls(
        setups,
        factories,
        workers=workers,
        max_batch=cfg.batch,
        live_batch=cfg.batch if gpu else 1,
        live_hold=cfg.live_hold,
        tracker=tracker_settings(cfg.tracker) if cfg.tracker is not None else None,
        sinks=sinks,
        display=display,
        web=web,
        status=status if isinstance(status, StatusPrinter) else None,
        status_interval=cfg.status_interval,
        stats=(StatsWriter(cfg.stats, overwrite=cfg.overwrite, keep=cfg.stats_keep, interval=cfg.stats_every())
               if cfg.stats is not None else None),
        duration=cfg.duration,
        torch_threads=_parent_torch_threads(cfg, running),
        summary_path=cfg.summary,
        prepare=preparations,
        on_close=closers,
        restart_counts=restarts,
        hang_warning=cfg.hang_warning,
        overload_warning=cfg.overload_warning,
        serving=[serving[i] for i in range(len(streams))],
        sharing=[g.first for g in groups for _ in range(g.workers)],
        notifier=notifier,
    )
    pipeline.plan = Plan(cfg, streams, groups, factories)
    pipeline.scheduler.configure({s.spec.name: stream_schedules(s) for s in streams})
    if cfg.switches_file is not None:
        pipeline.switch_file = SwitchFile(cfg.switches_file)
    if storage is not None:  # (the streams now, each with its part)
        storage.streams = lambda: pipeline.stream_names
    if events is not None:  # Home Assistant's switches (MQTT): each stream's detection and recording on or off
        events.control(functools.partial(pipeline.set_switch, by="mqtt"))
        pipeline.on_switch = events.switched
        pipeline.on_switched = events.switch_changed
    from streamyolo.pipeline.reload import Outputs, Reloader

    blurring = [sink for sink in sinks if isinstance(sink, CropSink | DatasetSink)]
    outputs = Outputs(recorder, clips, annotator, blurring, events)
    pipeline.reloader = Reloader(config, overrides, cfg, streams, groups, outputs, restarts=restarts)
    return pipeline


def stream_setup(cfg: PipelineConfig, s: ResolvedStream, recorder: VideoRecorder | None, clips: ClipRecorder | None,
                 detects: tuple[float, tuple[int, ...] | None] | None = None) -> StreamSetup:
    """``s`` ready to run: its source (unopened, handing its packets to the ``recorder`` or the
    ``clips`` that copy them), buffer, lines, zones, masks, motion and tiles; ``detects``: what
    its model detects at (``conf``, ``classes``; default: what ``cfg`` has it detect at)."""
    from streamyolo.pipeline.pipeline import StreamSetup

    return StreamSetup(
        name=s.spec.name,
        source=open_stream(s, defer_conversion=True,
                           packets=None if s.config.record_source else tap_of(_original(recorder, cfg, s),
                                                                              _original(clips, cfg, s))),
        recording=_recording(recorder, clips, cfg, s),
        overflow=s.overflow,
        capacity=s.capacity,
        display_uri=s.spec.display_uri,
        **stream_rules(cfg, s, detects),
    )


def stream_rules(cfg: PipelineConfig, s: ResolvedStream,
                 detects: tuple[float, tuple[int, ...] | None] | None = None) -> dict[str, Any]:
    """What can change as ``s`` runs (:class:`StreamSetup`'s ``keep``, ``lines``, ``zones``,
    ``masks``, ``motion``, ``tiles`` and ``confirm``, which its inference worker applies, and its capture's
    ``policy``, whose ``max_fps`` and ``stride`` can change); ``detects`` as
    :func:`stream_setup` says."""
    return {
        "policy": _policy(s),
        "keep": cfg.stream_filter(s.config, detects),
        "lines": tuple(CountingLine(name, *line.points, classes=_class_set(line.classes), anchor=line.anchor)
                       for name, line in (s.config.lines or {}).items()),
        "zones": tuple(Zone(name, tuple(zone.points), zone.linger, _class_set(zone.classes), zone.anchor, zone.size,
                            zone.speed_limit, Schedule(zone.schedule) if zone.schedule is not None else None,
                            (zone.crowd.objects, zone.crowd.after) if zone.crowd is not None else None, zone.hidden)
                       for name, zone in (s.config.zones or {}).items()),
        "masks": tuple(Mask(name, tuple(mask.points), _class_set(mask.classes), mask.anchor, mask.outside)
                       for name, mask in (s.config.masks or {}).items()),
        "motion": _motion(cfg.motion_of(s.config)),
        "tiles": cfg.tiles_of(s.config),
        "confirm": cfg.confirm_frames_of(s.config),
    }


def _original(output: VideoRecorder | None, cfg: PipelineConfig, stream: ResolvedStream,
              other: bool = False) -> PacketTap | None:
    """Where ``stream``'s source hands its packets, when the ``output`` (the recorder, the
    clips) copies them as its camera sent them; they come whether the output keeps up or not
    as the stream's frames do. ``other``: the source is its ``record_source`` (a camera's
    other stream: they never wait), whose packets the clips match to the events by arrival."""
    if output is None:
        return None
    live = other or stream.overflow is Overflow.DROP_OLDEST
    rotate = rotation(stream.config)
    if isinstance(output, ClipRecorder):
        if cfg.clips_of(stream.config) != "original":
            return None
        return output.original(stream.spec.name, live=live, rotate=rotate, other=other)
    if cfg.record_of(stream.config) != "original":
        return None
    return output.original(stream.spec.name, live=live, rotate=rotate)


def _recording(recorder: VideoRecorder | None, clips: ClipRecorder | None, cfg: PipelineConfig,
               stream: ResolvedStream) -> PyAVSource | None:
    """``stream``'s ``record_source``, read for the recording (and the clips of the original)
    alone: the camera's main stream, at its full quality."""
    if not stream.config.record_source:
        return None
    packets = tap_of(_original(recorder, cfg, stream, other=True), _original(clips, cfg, stream, other=True))
    return None if packets is None else recording_source(stream, packets)


def _class_set(classes: list[int] | None) -> frozenset[int] | None:
    return None if classes is None else frozenset(classes)


def stream_schedules(s: ResolvedStream) -> dict[str, Schedule]:
    """``s``'s schedules (``schedule``): ``{"detect": …, "record": …}``, those it has."""
    return s.config.schedule.schedules() if s.config.schedule is not None else {}


def deliveries(cfg: PipelineConfig, streams: Sequence[ResolvedStream]) -> list[tuple[Deliverer, EventFilter]]:
    """The run's webhooks (``webhook``, ``webhooks``) and emails, each with the events it gets;
    a stream one names that the config does not have is refused, naming the key."""
    names = {s.spec.name for s in streams} | {s.name for s in cfg.streams if s.name}
    made: list[tuple[Deliverer, EventFilter]] = []
    outputs: list[tuple[str, WebhookConfig | EmailConfig]] = [
        *((f"webhooks.{index - (cfg.webhook is not None)}", hook) for index, hook in enumerate(cfg.all_webhooks())),
        *((f"emails.{index}", email) for index, email in enumerate(cfg.emails))]
    places = {name for config in [*(s.config for s in streams), *cfg.streams]  # (a stream off too)
              for name in [*(config.zones or {}), *(config.lines or {})]}
    for key, output in outputs:
        unknown = sorted(set(output.streams or ()) - names)
        if unknown:
            raise ConfigError(f"config key '{key}.streams': no stream {unknown[0]!r} in the config (its streams: "
                              f"{', '.join(sorted(names))}){meant(unknown[0], names)}")
        nowhere = sorted(set(output.where or ()) - places)
        if nowhere:
            raise ConfigError(f"config key '{key}.where': no zone or line {nowhere[0]!r} in the config (its zones "
                              f"and lines: {', '.join(sorted(places)) or 'none'}){meant(nowhere[0], places)}")
        deliverer: Deliverer = (Webhook(output.url, format=output.format, snapshots=cfg.snapshots, clips=cfg.clips,
                                        priority=output.priority)
                                if isinstance(output, WebhookConfig)
                                else Mail(output.server, output.to, output.sender, snapshots=cfg.snapshots,
                                          clips=cfg.clips, priority=output.priority))
        made.append((deliverer, EventFilter(output.events, output.streams, output.classes, output.cooldown,
                                            output.down_after,
                                            Schedule(output.schedule) if output.schedule is not None else None,
                                            output.where)))
    return made


def stream_entities(cfg: PipelineConfig, s: ResolvedStream) -> StreamEntities:
    """``s``'s Home Assistant entities (``mqtt_discovery``): its zones, lines, snapshots, clips."""
    return StreamEntities(s.spec.name, tuple(s.config.zones or ()), tuple(s.config.lines or ()),
                          cfg.snapshots is not None, cfg.clips_of(s.config) is not None, _mqtt_events(cfg, s),
                          tuple(name for name, zone in (s.config.zones or {}).items() if zone.size is not None),
                          cfg.record_of(s.config) is not None,
                          tuple(name for name, zone in (s.config.zones or {}).items() if zone.schedule),
                          tuple(name for name, zone in (s.config.zones or {}).items() if zone.crowd),
                          cfg.tracker is not None, paced(s))


def paced(s: ResolvedStream) -> bool:
    """Whether ``s`` is processed at the model's pace, not as it happens: a file not played
    in real time (its recording is on its video's clock: ``VideoRecorder.paced``)."""
    return not (s.spec.kind.is_live or s.config.realtime)


def _mqtt_events(cfg: PipelineConfig, stream: ResolvedStream) -> frozenset[str]:
    """The kinds of object event ``stream`` gives that the broker gets (``mqtt_events``): zone
    visits on a tracked stream with zones, line crossings with lines, clip events with clips."""
    kinds = set()
    if cfg.tracker is not None and stream.config.zones:
        kinds |= {"enter", "leave", "linger"}
        if any(zone.speed_limit is not None for zone in stream.config.zones.values()):
            kinds.add("speeding")
    if stream.config.lines:
        kinds.add("line")
    if cfg.clips is not None:
        kinds.add("clip")
    return frozenset(kinds if cfg.mqtt_events is None else kinds & set(cfg.mqtt_events))


def _policy(stream: ResolvedStream) -> CapturePolicy:
    """Cameras and URLs reconnect by their back-off; files and synthetic streams do not."""
    reconnect = stream.config.reconnect
    backoff = (Backoff(reconnect.base, reconnect.cap, reconnect.jitter, reconnect.attempts)
               if stream.spec.kind.is_live else NO_RECONNECT)
    return CapturePolicy(realtime=stream.config.realtime, max_fps=stream.config.max_fps,
                         stride=stream.config.stride, backoff=backoff, live=stream.spec.kind.is_live)


def _running(cfg: PipelineConfig, groups: Sequence[ModelGroup]) -> int:
    """How many models run at once, every model's workers and lanes together."""
    return sum(models_running(cfg, g.workers, g.lanes.own) for g in groups)


def _parent_torch_threads(cfg: PipelineConfig, running: int) -> int | None:
    """Thread workers share this process's torch threads; process workers set their own."""
    if cfg.worker_mode == "process":
        return None
    return torch_threads(cfg, running, cfg.device if cfg.device != "auto" else _auto_device())


def _auto_device() -> str:
    return resolve_device("auto")
