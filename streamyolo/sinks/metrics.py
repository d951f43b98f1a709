"""The web page's ``/metrics``: the run's live numbers in Prometheus' text format, for the
monitoring a headless box already has (Prometheus, Grafana Agent, VictoriaMetrics …).

Built from the same status as ``/status.json`` (:meth:`streamyolo.sinks.web.WebViewer.status`),
so the two never disagree. A stream's counters are ``_total``; its state is one series per
possible state, 1 for the current one, so an alert can say
``streamyolo_stream_state{state="failed"} == 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (status key, metric name, type, help)
_PER_STREAM = (
    ("captured", "streamyolo_stream_captured_frames_total", "counter", "Frames read from the stream."),
    ("processed", "streamyolo_stream_processed_frames_total", "counter",
     "Frames processed (with motion, the still ones too)."),
    ("still", "streamyolo_stream_still_frames_total", "counter",
     "Frames that took the last detections, nothing having moved (streams with motion)."),
    ("pictures", "streamyolo_stream_model_pictures_total", "counter",
     "Pictures the model ran on, whole pictures and parts (streams with tiles)."),
    ("dropped", "streamyolo_stream_dropped_frames_total", "counter",
     "Frames overwritten before the model saw them (live streams)."),
    ("reconnects", "streamyolo_stream_reconnects_total", "counter", "Times the stream was opened again."),
    ("detect", "streamyolo_stream_detection_enabled", "gauge",
     "1 while the stream's detection is on, 0 while it is switched off (the page, MQTT)."),
    ("record", "streamyolo_stream_recording_enabled", "gauge",
     "1 while the stream's recording is on, 0 while it is switched off (recorded streams only)."),
    ("fps_in", "streamyolo_stream_input_fps", "gauge", "Frames per second read, lately."),
    ("fps_out", "streamyolo_stream_output_fps", "gauge", "Frames per second processed, lately."),
    ("frame_age", "streamyolo_stream_frame_age_seconds", "gauge",
     "Seconds from a frame's arrival to its result, lately (absent before the first result)."),
    ("last_frame_age", "streamyolo_stream_last_frame_age_seconds", "gauge",
     "Seconds since the stream's last frame came (a camera gone quiet; absent before the first)."),
    ("behind", "streamyolo_stream_behind_seconds", "gauge",
     "Seconds the stream is behind its camera (real time, for a file played as one; absent where not watched)."),
    ("standing", "streamyolo_stream_stationary_objects", "gauge",
     "Objects in the stream's newest processed frame that stand still (tracked streams only)."),
)


def _label(value: object) -> str:
    r"""A label value, quoted and escaped as the text format wants.

    >>> print(_label('a "b" \\ c'))
    "a \"b\" \\ c"
    """
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{text}"'


def _number(value: float | int | bool) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def metrics_text(status: Mapping[str, Any]) -> str:
    """The text exposition of ``status`` (the shape of ``/status.json``).

    >>> print(metrics_text({"running": True, "streams": [{"name": "gate", "state": "streaming",
    ...     "captured": 10, "processed": 9, "dropped": 1, "reconnects": 0, "fps_in": 30.0,
    ...     "fps_out": 29.5, "frame_age": None, "detections": {"person": 2}}]}).splitlines()[5])
    streamyolo_stream_captured_frames_total{stream="gate"} 10
    """
    return "".join(line + "\n" for line in _lines(status))


_PER_ZONE = (  # (the status's key, by zone and class; the metric, its kind and text)
    ("zones", "streamyolo_zone_objects", "gauge", "Objects of each class inside a zone, in the stream's newest frame."),
    ("stationary", "streamyolo_zone_stationary_objects", "gauge",
     "Of the objects inside a zone, those standing still (tracked streams)."),
    ("zone_entries", "streamyolo_zone_entries_total", "counter", "Tracked objects that entered a zone, by class."),
)


def _lines(status: Mapping[str, Any]) -> Iterator[str]:
    from streamyolo.pipeline.health import StreamState  # here: the pipeline package imports the web page

    streams = status.get("streams", [])
    yield "# HELP streamyolo_running 1 while the run goes on, 0 once it has ended."
    yield "# TYPE streamyolo_running gauge"
    yield f"streamyolo_running {_number(bool(status.get('running')))}"
    for key, name, kind, text in _PER_STREAM:
        yield from _family(name, kind, text, (({"stream": stream["name"]}, stream[key])
                                              for stream in streams if stream.get(key) is not None))
    yield from _family("streamyolo_stream_state", "gauge", "The stream's state: 1 for the current one.", (
        ({"stream": stream["name"], "state": state.value}, int(stream.get("state") == state.value))
        for stream in streams for state in StreamState))
    yield from _family("streamyolo_stream_detections", "gauge",
                       "Objects of each class in the stream's newest processed frame.", (
        ({"stream": stream["name"], "class": name}, count)
        for stream in streams for name, count in sorted(stream.get("detections", {}).items())))
    if any(stream.get("counts") for stream in streams):
        yield from _family("streamyolo_line_crossings_total", "counter",
                           "Tracked objects that crossed a counting line, by way and class.", (
            ({"stream": stream["name"], "line": line, "direction": way, "class": name}, count)
            for stream in streams for line, ways in stream.get("counts", {}).items()
            for way, by_class in ways.items() for name, count in sorted(by_class.items())))
    for key, name, kind, text in _PER_ZONE:
        if any(stream.get(key) for stream in streams):
            yield from _family(name, kind, text, (
                ({"stream": stream["name"], "zone": zone, "class": cls}, count)
                for stream in streams for zone, by_class in stream.get(key, {}).items()
                for cls, count in sorted(by_class.items())))
    reloads = status.get("config", {})
    if reloads:
        yield from _family("streamyolo_config_reloads_total", "counter",
                           "Reloads of the config (SIGHUP): applied, or refused for a mistake in it.", (
            ({"result": result}, reloads[key]) for result, key in (("ok", "reloads"), ("failed", "failed"))))
        yield from _family("streamyolo_config_last_reload_successful", "gauge",
                           "1 when the last reload of the config was applied, 0 when it was refused.",
                           [({}, bool(reloads["last_ok"]))])
    yield from _storage(status.get("storage", {}))
    paused = status.get("paused", [])
    yield from _family("streamyolo_outputs_paused", "gauge", "Outputs that cannot write now (a full disk): paused, "
                       "trying again.", [({}, len(paused))])
    yield from _family("streamyolo_output_paused_since_timestamp_seconds", "gauge", "When a paused output stopped "
                       "writing (seconds since the epoch).", (({"output": p["output"]}, p["since"]) for p in paused))
    overload = status.get("overload")
    yield from _family("streamyolo_overloaded", "gauge", "1 while the machine cannot keep up (most frames of the "
                       "live streams skipped, or a stream behind its camera), else 0.", [({}, overload is not None)])
    workers = status.get("workers", {})
    if workers:
        yield from _family("streamyolo_worker_restarts_total", "counter",
                           "Times a process worker's child was started again.",
                           (({"worker": worker}, numbers["restarts"]) for worker, numbers in workers.items()))


def _storage(storage: Mapping[str, Any]) -> Iterator[str]:
    """The folders' use (``/status.json``'s ``"storage"``): what each takes, each stream's part,
    and its disk's room (alert on ``streamyolo_storage_free_bytes`` before a full disk pauses
    the recordings)."""
    folders = [(what, use) for what, use in storage.items() if isinstance(use, Mapping)]
    if not folders:
        return
    yield from _family("streamyolo_storage_bytes", "gauge", "Bytes the folder's files take (recordings, clips, "
                       "snapshots).", (({"folder": what}, use["bytes"]) for what, use in folders))
    yield from _family("streamyolo_storage_files", "gauge", "Files in the folder.",
                       (({"folder": what}, use["files"]) for what, use in folders))
    yield from _family("streamyolo_storage_last_day_bytes", "gauge", "Bytes of the folder's files written in the "
                       "last 24 hours.", (({"folder": what}, use["last_day"]) for what, use in folders))
    yield from _family("streamyolo_storage_oldest_timestamp_seconds", "gauge", "When the folder's oldest file was "
                       "last written (seconds since the epoch).",
                       (({"folder": what}, use["oldest"]) for what, use in folders if use["oldest"] is not None))
    yield from _family("streamyolo_storage_stream_bytes", "gauge", "Bytes a stream's recordings (clips) take.", (
        ({"folder": what, "stream": stream}, numbers["bytes"])
        for what, use in folders for stream, numbers in use.get("streams", {}).items()))
    disks = [(what, use) for what, use in folders if use["free"] is not None]
    yield from _family("streamyolo_storage_free_bytes", "gauge", "Bytes free on the folder's disk (for the run's "
                       "user).", (({"folder": what}, use["free"]) for what, use in disks))
    yield from _family("streamyolo_storage_size_bytes", "gauge", "Size of the folder's disk.",
                       (({"folder": what}, use["total"]) for what, use in disks))


def _family(name: str, kind: str, text: str,
            samples: Iterable[tuple[Mapping[str, object], float | int | bool]]) -> Iterator[str]:
    """One metric family: its help and type lines, then a line per (labels, value) sample."""
    yield f"# HELP {name} {text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        shown = f"{{{','.join(f'{key}={_label(v)}' for key, v in labels.items())}}}" if labels else ""
        yield f"{name}{shown} {_number(value)}"
