"""Reloading the config while the run goes on (``SIGHUP``, ``systemctl reload``,
:meth:`Pipeline.reload <streamyolo.pipeline.pipeline.Pipeline.reload>`).

The config is read again (the same file, the same flags) and checked as at the start; one
that does not validate changes nothing (its error names the key). Then the streams are
compared, each with every setting that makes it what it is (its own keys, and the run's
``stream_defaults``, ``model``, ``imgsz``, ``conf``, ``class_conf``, ``classes``, ``blur``,
``record_objects``, ``motion``, ``tiles``, ``record_mode`` and ``clip_mode`` as they apply to it):

- a stream no longer in the config is **removed**: its capture stops, the frames it had
  buffered are processed, its recording and clip are finished (whole files, at once), and the
  summary keeps its numbers as ``removed``;
- a new stream is **added**, on the worker of its model (the run's model, or one of the
  models the run has loaded, at a size it runs) with the fewest streams; a stream whose model
  (or size) the run has not loaded gets new workers for it, which build that model each in its
  thread, as the run's workers did: as many, with as many replicas and threads, as a run
  started with the new config would give that model (``workers``, ``lanes``), started one by
  one as its streams come; the streams of the same model added later share them. A new
  ``model`` for the run (a model trained again, under a new name) so restarts every stream
  that runs it on workers of the new model, and the old model's workers end once their
  streams have gone (a model file replaced under the same name is not noticed);
- a stream whose detections' settings alone changed (its ``conf``, ``class_conf``, ``classes``,
  ``min_area``, ``max_area``, ``lines``, ``zones``, ``masks``, ``motion``, ``tiles``, ``region``, ``blur``,
  ``record_objects``, ``confirm_frames``), how long its segments are kept (``record_keep``,
  ``record_keep_objects``), or how many of its frames are kept (``max_fps``, ``stride``), is
  **updated** in place from its next frame: its connection, recording and tracks go on, and so
  do its lines, zones and motion unless they changed (a zone: unless it is another place), which
  start afresh;
- a stream whose other settings changed (its source, buffer, recording …) is **restarted** with
  them: removed, then added again (its recording goes on in a new file; its counts add up in the
  summary);
- every other stream goes on untouched: its connection, recording, tracker and counts.

What the run's workers were built with cannot change while they run: a stream that would need
a lower ``conf`` or other classes than its model detects is refused (said, and left as it was),
and the run's other keys (``workers``, ``device``, ``record``, ``web`` …) that changed are named
in a warning: they apply when the run starts again. A new model's workers are built with the
config as it is now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamyolo.annotation import BoxAnnotator
from streamyolo.config import PipelineConfig
from streamyolo.errors import ConfigError
from streamyolo.inference.models import resolve_model
from streamyolo.inference.names import model_names
from streamyolo.pipeline.build import ResolvedStream, resolve_streams
from streamyolo.sinks.clips import ClipRecorder
from streamyolo.sinks.crops import CropSink
from streamyolo.sinks.dataset import DatasetSink
from streamyolo.sinks.events import EventSink
from streamyolo.sinks.recorder import VideoRecorder

if TYPE_CHECKING:
    from streamyolo.inference.detector import DetectorFactory
    from streamyolo.pipeline.assemble import ModelGroup
    from streamyolo.pipeline.pipeline import Pipeline
    from streamyolo.workers.process import RestartCounts

log = logging.getLogger(__name__)

IN_PLACE = frozenset({"conf", "classes", "class_conf", "min_area", "max_area", "lines", "zones", "masks", "motion",
                      "tiles", "region", "blur", "record_objects", "max_fps", "stride", "confirm_frames", "record_keep",
                      "record_keep_objects"})
"""A stream's keys its worker (or its capture: ``max_fps``, ``stride``) applies: a change to these
alone updates the running stream."""

STREAM_KEYS = frozenset({"streams", "stream_defaults", "conf", "class_conf", "classes", "blur", "record_objects",
                         "motion", "tiles", "record_mode", "clip_mode", "model", "imgsz", "env_file", "confirm_frames"})
"""The run's keys a reload applies (through the streams they apply to; ``env_file``: read again,
its variables in the config's text); the others need a new start."""


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a reload did."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    """Streams whose settings changed, removed and added again with the new ones."""
    updated: tuple[str, ...] = ()
    """Streams whose detections' settings alone changed (:data:`IN_PLACE`), changed as they run."""
    refused: dict[str, str] = field(default_factory=dict)
    """Streams not added, or left as they were, each with why."""
    needs_restart: tuple[str, ...] = ()
    """The run's keys that changed but apply only when the run starts again."""
    loaded: tuple[str, ...] = ()
    """Models (at a size) the run had not loaded, each on new workers: ``'yolo11s.pt' at imgsz 640 (w2)``,
    ``… (w2-w3)``."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.restarted or self.updated)

    def done(self) -> str:
        """What changed, in one line."""
        done = [f"{what} {', '.join(repr(name) for name in names)}"
                for what, names in (("added", self.added), ("removed", self.removed),
                                    ("restarted with new settings", self.restarted),
                                    ("changed as it runs", self.updated)) if names]
        if self.loaded:
            many = len(self.loaded) > 1 or any("-w" in what.rpartition("(")[2] for what in self.loaded)
            done.append(f"new worker{'s' if many else ''} for model {', '.join(self.loaded)}")
        return f"config reloaded: {'; '.join(done) if done else 'no stream changed'}"

    def warnings(self) -> list[str]:
        """What the reload could not do: one line per stream refused, one for the run's keys."""
        out = [f"config reloaded, but {why}" for why in self.refused.values()]
        if self.needs_restart:
            out.append(f"config reloaded, but {', '.join(self.needs_restart)} changed, which apply only when the run "
                       "starts again (restart it)")
        return out


@dataclass(frozen=True, slots=True)
class Outputs:
    """The outputs that keep settings per stream, which an added stream's settings go to."""

    recorder: VideoRecorder | None = None
    clips: ClipRecorder | None = None
    annotator: BoxAnnotator | None = None
    blurring: Sequence[CropSink | DatasetSink] = ()
    events: EventSink | None = None

    def follow(self, cfg: PipelineConfig, stream: ResolvedStream) -> None:
        """Set ``stream``'s recording (annotated or not; the classes that mark its segments; how
        long its segments are kept), clips, blurred classes and Home Assistant entities as
        ``cfg`` has them, before its first frame. Each setting is swapped whole (the inference threads read them)."""
        from streamyolo.pipeline.assemble import paced, stream_entities

        name, config = stream.spec.name, stream.config
        for output, how in ((self.recorder, cfg.record_of(config)), (self.clips, cfg.clips_of(config))):
            if output is not None and output.streams is not None:
                output.streams = output.streams | {name} if how == "annotated" else output.streams - {name}
        if self.recorder is not None:
            self.recorder.objects = _with(self.recorder.objects, name, cfg.record_objects_of(config))
            self.recorder.keeps = {**self.recorder.keeps, name: cfg.record_keep_of(config)}
            self.recorder.paced = self.recorder.paced | {name} if paced(stream) else self.recorder.paced - {name}
        blurred = frozenset(cfg.blur_of(config)) or None
        if self.annotator is not None:
            self.annotator.blur = _with(self.annotator.blur, name, blurred)
        for sink in self.blurring:
            sink.blurred = _with(sink.blurred, name, blurred)
        if self.events is not None:
            self.events.announce(name, stream_entities(cfg, stream))

    def forget(self, name: str) -> None:
        """Stream ``name`` was removed: its Home Assistant entities go too."""
        if self.events is not None:
            self.events.announce(name, None)


def _with(settings: Mapping[str, frozenset[int]], name: str,
          classes: frozenset[int] | None) -> dict[str, frozenset[int]]:
    """``settings`` by stream with stream ``name``'s now ``classes`` (``None``: none of its own)."""
    return {**{key: value for key, value in settings.items() if key != name},
            **({name: classes} if classes is not None else {})}


class Reloader:
    """Reloads a pipeline's config (see the module). Built by :func:`~streamyolo.pipeline.assemble.assemble`
    with what the pipeline was built from: ``source`` and ``overrides`` (read again at each
    reload), the config and streams it started with, its models (``groups``), ``outputs``,
    how many models run at once (``running``: they share the cores) and the process
    workers' ``restarts``."""

    def __init__(self, source: Any, overrides: Mapping[str, Any], started: PipelineConfig,
                 streams: Sequence[ResolvedStream], groups: Sequence[ModelGroup], outputs: Outputs,
                 restarts: RestartCounts | None = None) -> None:
        self._source = source
        self._overrides = dict(overrides)
        self._started = started
        self._groups = list(groups)
        self._outputs = outputs
        self._restarts = restarts
        self._unstarted: dict[tuple[str, int | tuple[int, int]], list[DetectorFactory]] = {}
        """A new model's workers not started yet (by the reload loading it), by model and size."""
        self._detects_of: dict[tuple[str, int | tuple[int, int]], tuple[float, tuple[int, ...] | None]] = {}
        """What the models a reload loaded detect at (``conf``, ``classes``), by model and size."""
        self._running = {s.spec.name: (_settings(started, s), _source(started, s)) for s in streams}
        """Each running stream's settings, and those of its source and outputs (:func:`_source`)."""
        self._lock = threading.Lock()  # one reload at a time
        self._names: dict[str, dict[int, str]] = {}  # each model's classes

    def reload(self, pipeline: Pipeline, config: Any = None) -> ReloadReport:
        """Apply ``config`` (default: the source the run was built from, read again with the
        same overrides) to ``pipeline``'s streams. Raises
        :class:`~streamyolo.errors.ConfigError`, having changed nothing, for a config that
        does not validate or names classes its models do not have."""
        from streamyolo.pipeline.assemble import load_config, stream_schedules

        with self._lock:
            cfg = load_config(self._source, self._overrides) if config is None else load_config(config, {})
            wanted = {s.spec.name: s for s in resolve_streams(cfg)}
            loaded = {group.name: group for group in self._groups}
            for model in dict.fromkeys([*loaded, *cfg.models]):
                if model not in self._names:
                    # The classes as its workers' models loaded them at the start (a worker started
                    # again by a reload may still be loading its model); a model not loaded: its file's.
                    group = loaded.get(model)
                    self._names[model] = (pipeline.model_classes(group.first) if group is not None
                                          else model_names(resolve_model(model)))
                problem = cfg.unknown_classes(self._names[model], model)
                if problem is not None:
                    raise ConfigError(problem)
            needs_restart = tuple(key for key in PipelineConfig.model_fields
                                  if key not in STREAM_KEYS and getattr(cfg, key) != getattr(self._started, key))
            removed = [name for name in self._running if name not in wanted]
            added = [name for name in wanted if name not in self._running]
            changed = [name for name, s in wanted.items()
                       if name in self._running and _settings(cfg, s) != self._running[name][0]]
            refused = {}
            for name in added + changed:
                problem = self._unfit(cfg, wanted[name])
                if problem is not None:
                    refused[name] = f"{problem}: {'not added' if name in added else 'it stays as it was'}"
            updated = [name for name in changed
                       if name not in refused and _source(cfg, wanted[name]) == self._running[name][1]]
            restarted = [name for name in changed if name not in refused and name not in updated]
            for name in list(updated):
                try:
                    self._update(pipeline, cfg, wanted[name])
                except RuntimeError as exc:  # its worker has ended (its stream too)
                    refused[name] = f"{exc}: it stays as it was"
                    updated.remove(name)
            new_workers: list[str] = []
            starting = [n for n in added if n not in refused] + restarted
            # The schedules as they are now (a stream added switched as its schedule says before its first frame)
            pipeline.scheduler.configure({name: stream_schedules(wanted[name]) for name in wanted
                                          if name not in refused or name in self._running})
            # The streams of a model new to the run one after the other: its workers are numbered in a row.
            keys = list(dict.fromkeys(self._key(cfg, wanted[n]) for n in starting))
            starting.sort(key=lambda n: keys.index(self._key(cfg, wanted[n])))
            with pipeline.holding():  # no worker ends for want of streams half-way
                for name in removed + restarted:
                    pipeline.remove_stream(name, restarting=name in restarted)
                    del self._running[name]
                for name in removed:
                    self._outputs.forget(name)
                for name in starting:
                    try:
                        if self._group(cfg, wanted[name]) is None:
                            new_workers.append(self._load(pipeline, cfg, wanted[name], list(wanted.values())))
                        self._add(pipeline, cfg, wanted[name])
                    except RuntimeError as exc:  # the run has ended meanwhile
                        refused[name] = f"{exc}: not added"
                self._settle()
            return ReloadReport(added=tuple(n for n in added if n not in refused), removed=tuple(removed),
                                restarted=tuple(n for n in restarted if n not in refused), updated=tuple(updated),
                                refused=refused, needs_restart=needs_restart, loaded=tuple(new_workers))

    def _load(self, pipeline: Pipeline, cfg: PipelineConfig, stream: ResolvedStream,
              wanted: Sequence[ResolvedStream]) -> str:
        """The workers of ``stream``'s model at its size, which the run has not loaded: as many,
        with as many replicas and threads, as a run started with ``cfg`` (its ``wanted``
        streams) would give it, each built as ``cfg`` has it; they start one by one as its
        streams come (:meth:`_add`). Returns what it is, for the report."""
        from streamyolo.pipeline.assemble import ModelGroup, detector_factories, models_running, plan_models

        key = self._key(cfg, stream)
        planned = plan_models(cfg, wanted)
        plan = next(g for g in planned if (g.name, g.imgsz) == key)
        running = sum(models_running(cfg, g.workers, g.lanes.own) for g in planned)
        first = len(pipeline.worker_streams())  # the number add_worker gives the next
        factories = detector_factories(cfg, plan.path, plan.workers, plan.lanes, self._restarts, first=first,
                                       running=running, name=plan.name, imgsz=plan.imgsz)
        self._groups.append(ModelGroup(plan.name, plan.path, plan.imgsz, (), plan.workers, plan.lanes, first=first))
        self._unstarted[key] = factories
        self._detects_of[key] = (cfg.detect_conf(plan.name), cfg.detect_classes(plan.name))
        last = f"-w{first + plan.workers - 1}" if plan.workers > 1 else ""
        replicas = f", {plan.lanes.own} model replicas each" if plan.lanes.own > 1 else ""
        log.info("stream %r: model %r at imgsz %s is new to this run: worker(s) w%d%s build it%s", stream.spec.name,
                 plan.name, plan.imgsz, first, last, replicas)
        return f"{plan.name!r} at imgsz {plan.imgsz} (w{first}{last})"

    def _add(self, pipeline: Pipeline, cfg: PipelineConfig, stream: ResolvedStream) -> None:
        """Start ``stream`` as ``cfg`` has it, on the worker of its model with the fewest
        streams, or on the next of a new model's workers until each has one."""
        from streamyolo.pipeline.assemble import stream_setup

        group = self._group(cfg, stream)
        assert group is not None  # else refused
        self._outputs.follow(cfg, stream)
        setup = stream_setup(cfg, stream, self._outputs.recorder, self._outputs.clips, self._detects(group))
        unstarted = self._unstarted.get((group.name, group.imgsz))
        if unstarted:
            factory = unstarted.pop(0)
            worker = pipeline.add_worker(lambda _: factory, sharing=group.first)
            assert worker == group.first + group.workers - len(unstarted) - 1, "a new model's workers in a row"
        else:
            serving = pipeline.worker_streams()
            worker = min(range(group.first, group.first + group.workers),
                         key=lambda index: (len(serving[index]) if index < len(serving) else 0, index))
        pipeline.add_stream(setup, worker)
        self._running[stream.spec.name] = (_settings(cfg, stream), _source(cfg, stream))

    def _settle(self) -> None:
        """A new model's workers that got no stream (its streams refused, the run ending) are
        not started: its group is its workers that were."""
        from dataclasses import replace

        for key, unstarted in self._unstarted.items():
            if unstarted:
                index = next(i for i, g in enumerate(self._groups) if (g.name, g.imgsz) == key)
                group = self._groups[index]
                self._groups[index] = replace(group, workers=group.workers - len(unstarted))
        self._unstarted.clear()

    @staticmethod
    def _key(cfg: PipelineConfig, stream: ResolvedStream) -> tuple[str, int | tuple[int, int]]:
        """The model and size that run ``stream``."""
        return cfg.model_of(stream.config), cfg.imgsz_of(stream.config)

    def _update(self, pipeline: Pipeline, cfg: PipelineConfig, stream: ResolvedStream) -> None:
        """Give running ``stream`` the settings its worker applies as ``cfg`` has them."""
        from streamyolo.pipeline.assemble import stream_rules

        group = self._group(cfg, stream)
        assert group is not None  # its model and size are its source's: unchanged
        self._outputs.follow(cfg, stream)
        pipeline.update_stream(stream.spec.name, **stream_rules(cfg, stream, self._detects(group)))
        self._running[stream.spec.name] = (_settings(cfg, stream), _source(cfg, stream))

    def _detects(self, group: ModelGroup) -> tuple[float, tuple[int, ...] | None]:
        """What ``group``'s model detects at in this run (``conf``, ``classes``)."""
        loaded = self._detects_of.get((group.name, group.imgsz))
        if loaded is not None:
            return loaded
        return self._started.detect_conf(group.name), self._started.detect_classes(group.name)

    def _group(self, cfg: PipelineConfig, stream: ResolvedStream) -> ModelGroup | None:
        """The model group (a model at a size) that runs ``stream``, if the run has it."""
        key = self._key(cfg, stream)
        return next((g for g in self._groups if (g.name, g.imgsz) == key), None)

    def _unfit(self, cfg: PipelineConfig, stream: ResolvedStream) -> str | None:
        """Why ``stream`` cannot run on this run's models as ``cfg`` has it (``None``: it can)."""
        name = stream.spec.name
        group = self._group(cfg, stream)
        if group is None:  # a new worker builds its model, as it asks
            return None
        conf, classes = cfg.own(stream.config)
        detect_conf, detect_classes = self._detects(group)
        if conf < detect_conf:
            return f"stream {name!r}: conf {conf:g} is below the {detect_conf:g} its model detects at in this run"
        lower = sorted((threshold, cls) for cls, threshold in cfg.class_conf_of(stream.config).items()
                       if threshold < detect_conf)
        if lower:
            return (f"stream {name!r}: class {lower[0][1]}'s conf {lower[0][0]:g} (class_conf) is below the "
                    f"{detect_conf:g} its model detects at in this run")
        if detect_classes is not None and (classes is None or not set(classes) <= set(detect_classes)):
            wanted = "every class" if classes is None else f"classes {sorted(set(classes) - set(detect_classes))}"
            return (f"stream {name!r}: {wanted} asked for, which its model does not detect in this run (it keeps "
                    f"classes {list(detect_classes)})")
        return None


def _source(cfg: PipelineConfig, stream: ResolvedStream) -> str:
    """``stream``'s settings but those its worker applies (:data:`IN_PLACE`): its source,
    buffer, recording, clips, model; two of a name with the same can be one stream updated."""
    config = stream.config
    return repr((stream.spec, stream.overflow, stream.capacity, config.model_dump(exclude={*IN_PLACE, "schedule"}),
                 cfg.record_of(config), cfg.clips_of(config), cfg.model_of(config), cfg.imgsz_of(config)))


def _settings(cfg: PipelineConfig, stream: ResolvedStream) -> str:
    """Everything that makes ``stream`` what it is, as ``cfg`` has it: two streams of one
    name with the same are the same stream."""
    config = stream.config
    return repr((stream.spec, stream.overflow, stream.capacity, config.model_dump(exclude={"schedule"}),
                 cfg.own(config), cfg.class_conf_of(config), cfg.blur_of(config), cfg.record_objects_of(config),
                 cfg.motion_of(config), cfg.tiles_of(config), cfg.record_of(config), cfg.clips_of(config),
                 cfg.model_of(config), cfg.imgsz_of(config), cfg.confirm_frames_of(config)))


__all__ = ["IN_PLACE", "STREAM_KEYS", "Outputs", "ReloadReport", "Reloader"]
