"""The web page's ``/metrics``: the run's live numbers in Prometheus' text format, for the
monitoring a headless box already has (Prometheus, Grafana Agent, VictoriaMetrics …).

Built from the same status as ``/status.json`` (:meth:`streamyolo.sinks.web.WebViewer.status`),
so the two never disagree. A stream's counters are ``_total``; its state is one series per
possible state, 1 for the current one, so an alert can say
``streamyolo_stream_state{state="failed"} == 1``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (status key, metric name, type, help)
_PER_STREAM = (
    ("captured", "streamyolo_stream_captured_frames_total", "counter", "Frames read from the stream."),
    ("processed", "streamyolo_stream_processed_frames_total", "counter", "Frames run through the model."),
    ("dropped", "streamyolo_stream_dropped_frames_total", "counter",
     "Frames overwritten before the model saw them (live streams)."),
    ("reconnects", "streamyolo_stream_reconnects_total", "counter", "Times the stream was opened again."),
    ("fps_in", "streamyolo_stream_input_fps", "gauge", "Frames per second read, lately."),
    ("fps_out", "streamyolo_stream_output_fps", "gauge", "Frames per second processed, lately."),
    ("frame_age", "streamyolo_stream_frame_age_seconds", "gauge",
     "Seconds from a frame's arrival to its result, lately (absent before the first result)."),
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


def _lines(status: Mapping[str, Any]) -> Iterator[str]:
    from streamyolo.pipeline.health import StreamState  # here: the pipeline package imports the web page

    streams = status.get("streams", [])
    yield "# HELP streamyolo_running 1 while the run goes on, 0 once it has ended."
    yield "# TYPE streamyolo_running gauge"
    yield f"streamyolo_running {_number(bool(status.get('running')))}"
    for key, name, kind, text in _PER_STREAM:
        yield f"# HELP {name} {text}"
        yield f"# TYPE {name} {kind}"
        for stream in streams:
            if stream.get(key) is not None:
                yield f"{name}{{stream={_label(stream['name'])}}} {_number(stream[key])}"
    yield "# HELP streamyolo_stream_state The stream's state: 1 for the current one."
    yield "# TYPE streamyolo_stream_state gauge"
    for stream in streams:
        for state in StreamState:
            labels = f"stream={_label(stream['name'])},state={_label(state.value)}"
            yield f"streamyolo_stream_state{{{labels}}} {int(stream.get('state') == state.value)}"
    yield "# HELP streamyolo_stream_detections Objects of each class in the stream's newest processed frame."
    yield "# TYPE streamyolo_stream_detections gauge"
    for stream in streams:
        for name, count in sorted(stream.get("detections", {}).items()):
            labels = f"stream={_label(stream['name'])},class={_label(name)}"
            yield f"streamyolo_stream_detections{{{labels}}} {int(count)}"
    if any(stream.get("counts") for stream in streams):
        yield "# HELP streamyolo_line_crossings_total Tracked objects that crossed a counting line, by way and class."
        yield "# TYPE streamyolo_line_crossings_total counter"
        for stream in streams:
            for line, ways in stream.get("counts", {}).items():
                for way, by_class in ways.items():
                    for name, count in sorted(by_class.items()):
                        labels = (f"stream={_label(stream['name'])},line={_label(line)},direction={_label(way)},"
                                  f"class={_label(name)}")
                        yield f"streamyolo_line_crossings_total{{{labels}}} {int(count)}"
    if any(stream.get("zones") for stream in streams):
        yield "# HELP streamyolo_zone_objects Objects of each class inside a zone, in the stream's newest frame."
        yield "# TYPE streamyolo_zone_objects gauge"
        for stream in streams:
            for zone, inside in stream.get("zones", {}).items():
                for name, count in sorted(inside.items()):
                    labels = f"stream={_label(stream['name'])},zone={_label(zone)},class={_label(name)}"
                    yield f"streamyolo_zone_objects{{{labels}}} {int(count)}"
    workers = status.get("workers", {})
    if workers:
        yield "# HELP streamyolo_worker_restarts_total Times a process worker's child was started again."
        yield "# TYPE streamyolo_worker_restarts_total counter"
        for worker, numbers in workers.items():
            yield f"streamyolo_worker_restarts_total{{worker={_label(worker)}}} {int(numbers['restarts'])}"
