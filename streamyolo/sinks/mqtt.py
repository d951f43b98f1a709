"""Events published to an MQTT broker (``mqtt``), as home-automation and alerting setups take them.

``mqtt://[user:password@]host[:port][/prefix]`` (``mqtts://`` for TLS, port 8883 by default;
the prefix is ``streamyolo`` unless given). Each event is published as its JSON object, QoS 1,
to ``<prefix>/<stream>/<event>`` (``line``, ``enter``, ``leave``, ``state``); ``state`` messages
are retained, so a client that subscribes later learns each stream's state at once. With
snapshots, each is also published as its JPEG to ``<prefix>/<stream>/snapshot`` (retained,
before the events it shows): the newest picture of the stream's events, which an MQTT camera
(Home Assistant's, say) shows. While the
run lasts, ``<prefix>/available`` holds ``online`` (retained); the broker sets it to
``offline`` when the run ends, or dies (the client's last will). ``<prefix>/run`` (retained)
names the run that publishes there (``{"id", "host", "pid"}``): two runs under one prefix are
warned of (see :meth:`MqttPublisher._on_run`).

With ``discovery`` (``mqtt_discovery: homeassistant``), Home Assistant finds each stream by
itself (MQTT discovery: retained configs under ``<discovery>/…/config``, sent on every
connection, an earlier run's entities this one no longer has removed): a device per stream
with a connectivity sensor (from its ``state``), an ``Objects`` sensor holding how many
objects its picture holds (by class in its attributes; from ``<prefix>/<stream>/objects``,
``{"total": 2, "car": 1, "person": 1}``, on a tracked stream with ``"stationary"``: how many
of them stand still) and an ``Occupied`` occupancy sensor (on while it holds anything; on a
tracked stream, an ``Active`` motion sensor, on while it holds something that does not stand
still), a camera of its snapshots, an ``Activity`` event entity (with clips: ``started`` and ``ended`` as its
``clip`` events say, the clip's name with them), a sensor per zone holding how many objects are inside (by class in its
attributes; from ``<prefix>/<stream>/zone/<zone>``, ``{"total": 3, "person": 2, "car": 1}``)
and ``in`` and ``out`` sensors per counting line (``<prefix>/<stream>/line/<line>``,
``{"in": 4, "out": 3}``); diagnostic sensors of how it keeps up (frames a second in and
processed, frame age, the share skipped: ``<prefix>/<stream>/stats``, every 10 s, which goes
without discovery too: :meth:`~streamyolo.sinks.events.EventSink.look`); a ``<zone>
occupied`` occupancy sensor per zone (on while it holds
anything; for a zone with a ``schedule``, only while it is watched, and a ``<zone> watched``
sensor, from the zone's state's ``"watched"``; for a zone with a ``crowd``, a ``<zone>
crowded`` problem sensor, from its ``"crowded"``; on a tracked stream, a ``<zone> active``
motion sensor, on while it holds an object that does not stand still, from its
``"stationary"``: a car parked in the driveway all night keeps ``occupied`` on, not
``active``); a ``<zone> speed`` sensor per zone that
measures speeds (the last object's, km/h, from ``<prefix>/<stream>/zone/<zone>/speed``, with
its class and track id as attributes); on a
tracked stream, a ``<zone> visits`` event entity per zone
(``enter``, ``leave``, ``linger``) and a ``<line> crossings`` one per line (``in``, ``out``),
each event with the object's class name, class id, track id, dwell, box, clip and snapshot: an
automation's trigger ("a car entered the driveway"). Their events also go to the zone's or
line's own topic, ``<prefix>/<stream>/zone/<zone>/event`` and ``…/line/<line>/event``.
With ``controls``, each stream also has a ``Detection`` switch: ``ON`` or ``OFF`` published to
``<prefix>/<stream>/detect/set`` (by Home Assistant's switch, an automation: no detection on
the indoor camera while someone is home) switches the stream's detection on or off as it runs
(:meth:`~streamyolo.pipeline.pipeline.Pipeline.set_detection`), and
``<prefix>/<stream>/detect/state`` (retained) says which it is; a recorded stream has a
``Recording`` switch the same way (``<prefix>/<stream>/record/set`` and ``…/record/state``:
:meth:`~streamyolo.pipeline.pipeline.Pipeline.set_recording`); and each zone a ``<zone>
watched`` switch (``<prefix>/<stream>/zone/<zone>/watch/set``; its state, the zone's state's
``"watched"``: :meth:`~streamyolo.pipeline.pipeline.Pipeline.set_watch`), instead of its
``<zone> watched`` sensor; every zone's ``occupied`` is then on only while it is watched.
What the camera sees now (its objects, its occupancy, its zones' objects, occupancy, crowd and
watching) is *unavailable* while the stream is not streaming (down, reconnecting, ended), not
the last state before it went: ``availability`` on both the run's ``<prefix>/available`` and
the stream's state.
A recorded stream (or one with clips) has an ``Outputs`` problem sensor, on while its recording
or clips cannot write (a full disk: ``<prefix>/<stream>/outputs``); and the run is a device of its
own (:func:`run_discovery_messages`): an ``Overloaded`` sensor (``<prefix>/overloaded``: the machine
cannot keep up with the live streams), an ``Outputs`` sensor of every output's, and what the
recordings, clips and snapshots take, their disks' free room and the days it lasts
(``<prefix>/storage/<folder>``, every half minute: :mod:`streamyolo.sinks.storage`).
The objects', zones' and lines' states are retained and sent as they change, at most once a second
each (:class:`StatePublisher`); while the broker is down they are not queued, the newest is
sent once it is back.

The broker being down or restarting holds events back, never the run: paho-mqtt's own thread
connects and reconnects (after 1, 2, 4 … 30 s), and events wait in its queue (up to ``limit``,
beyond which new ones are dropped and counted) until the broker acknowledges them. The log
says once when the connection is lost and once when it is back. At the end of the run what
still waits gets ``drain`` seconds more; events the broker never acknowledged end the run with
exit code 1 (:class:`~streamyolo.errors.OutputsIncompleteError`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from uuid import uuid4

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from streamyolo import __version__
from streamyolo.errors import OutputsIncompleteError
from streamyolo.frames import Result
from streamyolo.schedule import watch_kind
from streamyolo.sinks.base import split_url
from streamyolo.sources.redact import redact_url

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "streamyolo"


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where events go: a broker, a login and a topic prefix."""

    host: str
    port: int
    tls: bool
    prefix: str
    username: str | None = None
    password: str | None = None


def parse_mqtt(url: str) -> MqttTarget:
    """The broker of ``mqtt://[user:password@]host[:port][/prefix]`` (or ``mqtts://``); a
    ``ValueError`` saying what is wrong otherwise (the config error names the key).

    >>> parse_mqtt("mqtt://10.0.0.2/home/cams")
    MqttTarget(host='10.0.0.2', port=1883, tls=False, prefix='home/cams', username=None, password=None)
    >>> parse_mqtt("mqtts://ha:pw@broker.lan").port
    8883
    >>> parse_mqtt("mqtt://broker/cams/#")
    Traceback (most recent call last):
    ValueError: the topic prefix may not hold '+' or '#'
    """
    parts = split_url(url, ("mqtt", "mqtts"))
    prefix = unquote(parts.path).strip("/") or DEFAULT_PREFIX
    if "+" in prefix or "#" in prefix or "#" in url:  # a URL's "#" starts its fragment: the prefix would lose it
        raise ValueError("the topic prefix may not hold '+' or '#'")
    tls = parts.scheme == "mqtts"
    return MqttTarget(parts.hostname or "", parts.port or (8883 if tls else 1883), tls, prefix,
                      unquote(parts.username) if parts.username is not None else None,
                      unquote(parts.password) if parts.password is not None else None)


STATE_SECONDS = 1.0
"""A zone's or a line's state is published at most this often (the newest when it changed)."""


SWITCHES = ("detect", "record")
"""What a stream's switches switch (``controls``): its detection, its recording."""


@dataclass(frozen=True, slots=True)
class StreamEntities:
    """What Home Assistant is told a stream has (MQTT discovery)."""

    stream: str
    zones: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    snapshots: bool = False
    clips: bool = False
    events: frozenset[str] = frozenset()
    """The kinds of event the stream's objects give and the broker gets (``enter``, ``leave``,
    ``linger``, ``line``, ``clip``): each has its event entities."""
    speeds: tuple[str, ...] = ()
    """The zones that measure speeds (a size in metres): each has a ``<zone> speed`` sensor."""
    recorded: bool = False
    """Whether the stream is recorded: its ``Recording`` switch (``controls``)."""
    watched: tuple[str, ...] = ()
    """The zones with a schedule: each has a ``<zone> watched`` sensor, and its ``<zone>
    occupied`` is on only while it is watched."""
    crowds: tuple[str, ...] = ()
    """The zones with a ``crowd``: each has a ``<zone> crowded`` sensor."""
    tracked: bool = False
    """Whether the stream is tracked: it has an ``Active`` sensor, and each zone a ``<zone>
    active`` one (on while an object there does not stand still)."""
    paced: bool = False
    """Whether the stream is processed at the model's pace (a file not played in real time):
    its recording is on its video's clock, and so are its events' ``recording_url`` moments
    (not an entity: the events sink reads it)."""


def discovery_messages(prefix: str, discovery: str, streams: Sequence[StreamEntities],
                       controls: bool = False) -> list[tuple[str, str]]:
    """The retained ``(topic, JSON)`` configs that make Home Assistant show ``streams``: a
    device each, with its entities (see the module; ``controls``: its ``Detection`` switch).

    >>> [topic for topic, _ in discovery_messages("cams", "homeassistant", [StreamEntities("door", ("hall",))])]
    ['homeassistant/binary_sensor/streamyolo_cams/door_streaming/config', \
'homeassistant/sensor/streamyolo_cams/door_objects/config', \
'homeassistant/binary_sensor/streamyolo_cams/door_occupied/config', \
'homeassistant/sensor/streamyolo_cams/door_fps_in/config', \
'homeassistant/sensor/streamyolo_cams/door_fps_out/config', \
'homeassistant/sensor/streamyolo_cams/door_frame_age/config', \
'homeassistant/sensor/streamyolo_cams/door_behind/config', \
'homeassistant/sensor/streamyolo_cams/door_skipped/config', \
'homeassistant/sensor/streamyolo_cams/door_zone_hall/config', \
'homeassistant/binary_sensor/streamyolo_cams/door_zone_hall_occupied/config']
    """
    node = "streamyolo_" + _object_id(prefix)
    messages: list[tuple[str, str]] = []
    for entities in streams:
        stream = entities.stream
        base = f"{prefix}/{stream}"
        common = {"availability_topic": f"{prefix}/available",
                  "device": {"identifiers": [f"{node}_{_object_id(stream)}"], "name": stream,
                             "manufacturer": "streamyolo", "model": "streamyolo", "sw_version": __version__}}
        configs: list[tuple[str, str, dict[str, Any]]] = [("binary_sensor", "streaming", {
            "name": "Streaming", "device_class": "connectivity", "state_topic": f"{base}/state",
            "value_template": "{{ 'ON' if value_json.state == 'streaming' else 'OFF' }}"}), ("sensor", "objects", {
                "name": "Objects", "state_topic": f"{base}/objects", "value_template": "{{ value_json.total }}",
                "json_attributes_topic": f"{base}/objects", "state_class": "measurement",
                "unit_of_measurement": "objects"}), ("binary_sensor", "occupied", {
                    "name": "Occupied", "device_class": "occupancy", "state_topic": f"{base}/objects",
                    "value_template": "{{ 'ON' if value_json.total > 0 else 'OFF' }}"})]
        if entities.tracked:  # on while something there moves: not for a car parked all night
            configs.append(("binary_sensor", "active", {
                "name": "Active", "device_class": "motion", "state_topic": f"{base}/objects",
                "value_template": "{{ 'ON' if value_json.total > (value_json.stationary | default(0)) else 'OFF' }}"}))
        configs += _stats_configs(base)
        if controls:
            configs.append(("switch", "detect", {
                "name": "Detection", "command_topic": f"{base}/detect/set", "state_topic": f"{base}/detect/state",
                "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:motion-sensor"}))
        if controls and entities.recorded:
            configs.append(("switch", "record", {
                "name": "Recording", "command_topic": f"{base}/record/set", "state_topic": f"{base}/record/state",
                "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:record-rec"}))
        if entities.recorded or entities.clips:  # its recording, its clips: on while one cannot write
            configs.append(("binary_sensor", "outputs", _outputs_config(base)))
        if entities.snapshots:
            configs.append(("camera", "snapshot", {"name": "Snapshot", "topic": f"{base}/snapshot"}))
        if entities.clips and "clip" in entities.events:  # a trigger: something happened, its clip is whole
            configs.append(("event", "activity", {
                "name": "Activity", "state_topic": f"{base}/clip", "event_types": ["started", "ended", "failed"],
                "value_template": "{{ {'event_type': value_json.state, 'clip': value_json.clip} | tojson }}"}))
        visits = [kind for kind in ("enter", "leave", "linger", "speeding") if kind in entities.events]
        for zone in entities.zones:
            topic = f"{base}/zone/{zone}"
            configs.append(("sensor", f"zone_{_object_id(zone)}", {
                "name": f"{zone} objects", "state_topic": topic, "value_template": "{{ value_json.total }}",
                "json_attributes_topic": topic, "state_class": "measurement", "unit_of_measurement": "objects"}))
            armed = " and (value_json.watched | default(true))" if zone in entities.watched or controls else ""
            configs.append(("binary_sensor", f"zone_{_object_id(zone)}_occupied", {
                "name": f"{zone} occupied", "device_class": "occupancy", "state_topic": topic,
                "value_template": f"{{{{ 'ON' if value_json.total > 0{armed} else 'OFF' }}}}"}))
            if entities.tracked:  # on while something in it moves: not for a car parked there all night
                configs.append(("binary_sensor", f"zone_{_object_id(zone)}_active", {
                    "name": f"{zone} active", "device_class": "motion", "state_topic": topic,
                    "value_template": "{{ 'ON' if value_json.total > (value_json.stationary | default(0))"
                                      f"{armed} else 'OFF' }}}}"}))
            if controls:  # watched or not by hand (nobody home: the garden watched), or by its schedule
                configs.append(("switch", f"zone_{_object_id(zone)}_watch", {
                    "name": f"{zone} watched", "command_topic": f"{topic}/watch/set", "state_topic": topic,
                    "value_template": "{{ 'ON' if value_json.watched | default(true) else 'OFF' }}",
                    "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:shield-home"}))
            elif zone in entities.watched:  # on in its schedule's windows, when it makes events
                configs.append(("binary_sensor", f"zone_{_object_id(zone)}_watched", {
                    "name": f"{zone} watched", "state_topic": topic,
                    "value_template": "{{ 'ON' if value_json.watched else 'OFF' }}"}))
            if zone in entities.crowds:  # on from its crowd event's start to its end
                configs.append(("binary_sensor", f"zone_{_object_id(zone)}_crowded", {
                    "name": f"{zone} crowded", "state_topic": topic, "device_class": "problem",
                    "value_template": "{{ 'ON' if value_json.crowded else 'OFF' }}"}))
            if zone in entities.speeds:  # the last object's speed through it
                configs.append(("sensor", f"zone_{_object_id(zone)}_speed", {
                    "name": f"{zone} speed", "state_topic": f"{topic}/speed",
                    "value_template": "{{ value_json.speed }}", "json_attributes_topic": f"{topic}/speed",
                    "device_class": "speed", "state_class": "measurement",
                    "unit_of_measurement": "km/h"}))
            if visits:  # each object entering, leaving, lingering: an automation's trigger, with its class
                configs.append(("event", f"zone_{_object_id(zone)}_visits", {
                    "name": f"{zone} visits", "state_topic": f"{topic}/event", "event_types": visits,
                    "value_template": _EVENT_TEMPLATE.format(type="value_json.event")}))
        for line in entities.lines:
            configs += [("sensor", f"line_{_object_id(line)}_{direction}", {
                "name": f"{line} {direction}", "state_topic": f"{base}/line/{line}",
                "value_template": f"{{{{ value_json['{direction}'] }}}}", "state_class": "total_increasing",
                "unit_of_measurement": "objects"}) for direction in ("in", "out")]
            if "line" in entities.events:
                configs.append(("event", f"line_{_object_id(line)}_crossings", {
                    "name": f"{line} crossings", "state_topic": f"{base}/line/{line}/event",
                    "event_types": ["in", "out"],
                    "value_template": _EVENT_TEMPLATE.format(type="value_json.direction")}))
        streaming = "{{ 'online' if value_json.state == 'streaming' else 'offline' }}"
        seen = {"availability": [{"topic": f"{prefix}/available"},  # (what the camera sees now: unknown while
                                 {"topic": f"{base}/state", "value_template": streaming}],  # it is down)
                "availability_mode": "all"}
        for component, what, config in configs:
            object_id = f"{_object_id(stream)}_{what}"
            live = component in ("sensor", "binary_sensor") and (what in ("objects", "occupied", "active") or (
                what.startswith("zone_") and not what.endswith("_speed")))
            made = {**config, "unique_id": f"{node}_{object_id}", **common}
            if live:  # (Home Assistant takes one of availability_topic and availability)
                del made["availability_topic"]
                made |= seen
            messages.append((f"{discovery}/{component}/{node}/{object_id}/config", json.dumps(made)))
    return messages


def run_discovery_messages(prefix: str, discovery: str, folders: Sequence[str]) -> list[tuple[str, str]]:
    """The retained ``(topic, JSON)`` configs of the run's own Home Assistant device (``streamyolo``,
    or ``streamyolo <prefix>``): an ``Outputs`` problem sensor, on while any output of the run
    cannot write (a full disk: a recording, the JSONL …; which, in its attributes), an
    ``Overloaded`` problem sensor (on while the machine cannot keep up with the live streams:
    :meth:`MqttPublisher.overload_changed`), and for each
    of ``folders`` (``recordings``, ``clips``, ``snapshots``: :mod:`streamyolo.sinks.storage`) a
    sensor of what its files take, one of its disk's free room and one of the days that room
    lasts at the last day's rate (unknown before a day of files).

    >>> [topic for topic, _ in run_discovery_messages("cams", "homeassistant", ["clips"])]
    ['homeassistant/binary_sensor/streamyolo_cams/-outputs/config', \
'homeassistant/binary_sensor/streamyolo_cams/-overload/config', \
'homeassistant/sensor/streamyolo_cams/-clips/config', \
'homeassistant/sensor/streamyolo_cams/-clips_free/config', \
'homeassistant/sensor/streamyolo_cams/-clips_days_left/config']
    """
    node = "streamyolo_" + _object_id(prefix)
    name = "streamyolo" if prefix == DEFAULT_PREFIX else f"streamyolo {prefix}"
    common = {"availability_topic": f"{prefix}/available",
              "device": {"identifiers": [node], "name": name, "manufacturer": "streamyolo", "model": "streamyolo",
                         "sw_version": __version__}}
    configs: list[tuple[str, str, dict[str, Any]]] = [
        ("binary_sensor", "outputs", _outputs_config(prefix)),
        ("binary_sensor", "overload", {  # on while the live streams skip most of their frames
            "name": "Overloaded", "device_class": "problem", "state_topic": f"{prefix}/overloaded",
            "value_template": "{{ 'ON' if value_json.overloaded else 'OFF' }}",
            "json_attributes_topic": f"{prefix}/overloaded"})]
    for what in folders:
        topic, name = f"{prefix}/storage/{what}", what.capitalize()
        size = {"state_topic": topic, "device_class": "data_size", "state_class": "measurement",
                "unit_of_measurement": "GB", "suggested_display_precision": 1}
        configs += [("sensor", what, {"name": name, **size, "value_template": "{{ value_json.bytes / 1e9 }}",
                                      "json_attributes_topic": topic, "icon": "mdi:folder-play"}),
                    ("sensor", f"{what}_free", {
                        "name": f"{name} disk free", **size,
                        "value_template": "{{ none if value_json.free is none else value_json.free / 1e9 }}"}),
                    ("sensor", f"{what}_days_left", {  # (None: unknown, as Home Assistant takes it)
                        "name": f"{name} days left", "state_topic": topic, "device_class": "duration",
                        "unit_of_measurement": "d", "value_template": "{{ value_json.days_left }}",
                        "icon": "mdi:harddisk"})]
    # "-": no stream's name starts with it, so no stream's entity has these ids
    return [(f"{discovery}/{component}/{node}/-{what}/config",
             json.dumps({**config, "unique_id": f"{node}_-{what}", **common})) for component, what, config in configs]


def _stats_configs(base: str) -> list[tuple[str, str, dict[str, Any]]]:
    """A stream's diagnostic sensors of how it keeps up, from ``<base>/stats``
    (:meth:`~streamyolo.sinks.events.EventSink.look`): frames a second in and processed, the
    last frame's age, how far behind its camera it is (``None``, unknown, where not watched)
    and the share of frames skipped lately (its counts in the attributes)."""
    topic = f"{base}/stats"
    common = {"state_topic": topic, "state_class": "measurement", "entity_category": "diagnostic"}
    rate = {**common, "unit_of_measurement": "fps", "suggested_display_precision": 1}
    return [("sensor", "fps_in", {"name": "Frames in", **rate, "value_template": "{{ value_json.fps_in }}",
                                  "icon": "mdi:filmstrip"}),
            ("sensor", "fps_out", {"name": "Frames processed", **rate, "value_template": "{{ value_json.fps_out }}",
                                   "json_attributes_topic": topic, "icon": "mdi:filmstrip-box"}),
            ("sensor", "frame_age", {
                "name": "Frame age", **common, "device_class": "duration", "unit_of_measurement": "ms",
                "suggested_display_precision": 0,
                "value_template": "{{ none if value_json.frame_age is none else value_json.frame_age * 1000 }}"}),
            ("sensor", "behind", {
                "name": "Behind", **common, "device_class": "duration", "unit_of_measurement": "s",
                "suggested_display_precision": 1, "value_template": "{{ value_json.behind }}"}),
            ("sensor", "skipped", {"name": "Frames skipped", **common, "unit_of_measurement": "%",
                                   "suggested_display_precision": 0, "value_template": "{{ value_json.skipped }}",
                                   "icon": "mdi:speedometer"})]


def _outputs_config(base: str) -> dict[str, Any]:
    """An ``Outputs`` problem sensor: on while ``<base>/outputs`` says outputs are paused."""
    return {"name": "Outputs", "device_class": "problem", "state_topic": f"{base}/outputs",
            "value_template": "{{ 'ON' if value_json.paused else 'OFF' }}", "json_attributes_topic": f"{base}/outputs"}


_EVENT_TEMPLATE = ("{{{{ {{'event_type': {type}, 'object': value_json.name, 'class': value_json.cls, "
                   "'id': value_json.id, 'dwell': value_json.get('dwell'), 'box': value_json.get('xyxy'), "
                   "'speed': value_json.get('speed'), 'clip': value_json.get('clip'), "
                   "'snapshot': value_json.get('snapshot')}} | tojson }}}}")
"""An object event as a Home Assistant event entity takes it: its type, and what the object
was (a field the event lacks, null)."""


def topic_of(prefix: str, event: dict[str, Any]) -> str:
    """Where an event is published: ``<prefix>/<stream>/<event>``; an event of no stream (an
    output of the run's paused: the JSONL file) ``<prefix>/<event>``.

    >>> topic_of("cams", {"stream": "door", "event": "line"}), topic_of("cams", {"stream": "", "event": "output"})
    ('cams/door/line', 'cams/output')
    """
    return f"{prefix}/{event['stream']}/{event['event']}" if event["stream"] else f"{prefix}/{event['event']}"


def event_topic(prefix: str, event: dict[str, Any]) -> str | None:
    """Where an object event also goes for Home Assistant's event entities: its zone's or its
    line's own topic (``<prefix>/<stream>/zone/<zone>/event``, ``…/line/<line>/event``).

    >>> event_topic("cams", {"stream": "door", "event": "enter", "zone": "hall", "id": 3})
    'cams/door/zone/hall/event'
    >>> event_topic("cams", {"stream": "door", "event": "state", "state": "streaming"}) is None
    True
    """
    if event["event"] in ("enter", "leave", "linger", "speeding") and "zone" in event:
        return f"{prefix}/{event['stream']}/zone/{event['zone']}/event"
    if event["event"] == "line" and "line" in event:
        return f"{prefix}/{event['stream']}/line/{event['line']}/event"
    return None


def _paused_state(paused: Sequence[dict[str, Any]]) -> bytes:
    """An ``Outputs`` sensor's state: how many outputs are paused, and which."""
    return json.dumps({"paused": len(paused), "outputs": list(paused)}, separators=(",", ":")).encode()


def _object_id(name: str) -> str:
    """``name`` as Home Assistant's topics take it: letters, digits, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", name)


def _client(target: MqttTarget, name: str) -> mqtt.Client:
    """A client of ``target``'s broker, with its login and TLS, not connected yet."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    if target.username is not None:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set_context(ssl.create_default_context())
    return client


def try_broker(url: str, event: dict[str, Any], timeout: float = 5.0) -> str | None:
    """Connect to ``url``'s broker and publish ``event`` (QoS 1, not retained) to its topic
    (``streamyolo check --notify``); ``None`` once the broker has taken it, else what went
    wrong."""
    target = parse_mqtt(url)
    client = _client(target, f"streamyolo-check-{os.getpid()}")
    try:
        client.connect(target.host, target.port, keepalive=max(5, int(timeout)))
    except (OSError, ssl.SSLError, ValueError) as exc:
        return f"cannot connect: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
    client.loop_start()
    try:
        published = client.publish(topic_of(target.prefix, event), json.dumps(event, separators=(",", ":")), qos=1)
        try:
            published.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:  # refused (a login the broker does not take), or gone
            return f"not taken: {exc}"
        return None if published.is_published() else f"not taken within {timeout:g} s"
    finally:
        client.disconnect()
        client.loop_stop()


class MqttPublisher:
    """Publishes events to an MQTT broker from paho-mqtt's thread; see the module."""

    def __init__(self, url: str, *, limit: int = 10000, drain: float = 10.0, keepalive: int = 30,
                 discovery: str | None = None, entities: Sequence[StreamEntities] = (), controls: bool = False,
                 folders: Sequence[str] = ()) -> None:
        """``controls``: the streams' detection and recording can be switched on and off (see
        the module), by :attr:`on_switch`; ``folders``: the run's folders whose use its Home
        Assistant device shows (:func:`run_discovery_messages`, :meth:`storage_changed`)."""
        self.target = parse_mqtt(url)
        self.discovery = discovery
        self.controls = controls
        self.on_switch: Callable[[str, str, bool], None] | None = None
        """Switches a stream's detection or recording (``controls``): ``on_switch(kind, stream,
        on)``, ``kind`` ``detect`` or ``record``; raises ``ValueError`` for a stream not running
        (or not recorded)."""
        self._configs: dict[str, list[tuple[str, str]]] = {  # each stream's discovery configs ("": the run's)
            stream.stream: self._discovery([stream]) for stream in entities}
        if discovery is not None:
            self._configs[""] = run_discovery_messages(self.target.prefix, discovery, folders)
        self._ours = frozenset(topic for configs in self._configs.values() for topic, _ in configs)
        self._states: dict[str, bytes] = {  # topic -> the newest state published (or to be, when connected)
            self._switch(kind, stream.stream): b"ON" for stream in entities if controls
            for kind in ("detect", *(["record"] if stream.recorded else []))}
        if discovery is not None:  # nothing paused yet (the Outputs sensors: off, not unknown)
            for stream in ["", *(e.stream for e in entities if e.recorded or e.clips)]:
                self._states[self._outputs_topic(stream)] = _paused_state([])
        self.shown = redact_url(url)
        self.limit = limit
        self.drain = drain
        self.keepalive = keepalive
        self._lock = threading.Lock()
        self._acked = threading.Condition(self._lock)
        self._pending: set[int] = set()  # message ids the broker has not acknowledged yet
        self._early: set[int] = set()  # acknowledged before publish() returned their id
        self._own: set[int] = set()  # ids of the "online"/"offline" messages, not events
        self._connected_once = False
        self._lost_since: float | None = None
        self._live = False  # connected, the retained configs and states sent: a new one goes at once
        self._error: str | None = None
        self.published = 0
        self.dropped = 0
        self._client: Any = None
        self._run = {"id": uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        """This run, as ``<prefix>/run`` says which run publishes under the prefix (see :meth:`_on_run`)."""
        self._live_before = False  # this connection found "<prefix>/available" retained as "online"
        self._other: dict[str, Any] | None = None  # another run's marker, found before ours came back
        self._ours_back = False  # our own marker came back on this connection

    @property
    def available(self) -> str:
        return f"{self.target.prefix}/available"

    def _discovery(self, streams: Sequence[StreamEntities]) -> list[tuple[str, str]]:
        if self.discovery is None:
            return []
        return discovery_messages(self.target.prefix, self.discovery, streams, self.controls)

    def _switch(self, kind: str, stream: str) -> str:
        return f"{self.target.prefix}/{stream}/{kind}/state"

    def _outputs_topic(self, stream: str) -> str:
        return f"{self.target.prefix}/{stream}/outputs" if stream else f"{self.target.prefix}/outputs"

    @property
    def run_topic(self) -> str:
        return f"{self.target.prefix}/run"

    def start(self) -> None:
        client = _client(self.target, f"streamyolo-{os.getpid()}-{id(self):x}")
        client.will_set(self.available, "offline", qos=1, retain=True)
        client.max_queued_messages_set(self.limit)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.connect_async(self.target.host, self.target.port, keepalive=self.keepalive)
        client.loop_start()
        self._client = client

    def send(self, event: dict[str, Any]) -> None:
        """Publish ``event`` (a JSON-ready dict with ``stream`` and ``event``); never blocks."""
        if self._client is None:
            return
        payload = json.dumps(event, separators=(",", ":"))
        self._publish(topic_of(self.target.prefix, event), payload, event["event"] == "state")
        if self.discovery is not None and (topic := event_topic(self.target.prefix, event)) is not None:
            self._publish(topic, payload, False)  # for the zone's or the line's event entity

    def announce(self, stream: str, entities: StreamEntities | None) -> None:
        """With discovery: ``stream``'s Home Assistant entities are now ``entities`` (a stream
        added or changed as the run goes; ``None``: removed): the new configs are published
        (retained), those it no longer has deleted (an empty retained message), at once when
        connected, else at the next connection. A stream removed has its retained states (its
        objects, zones, lines, switches, snapshot; not its last ``state``, ``removed``) deleted
        too, and they are not sent again at the next connection; so have the zones and lines a
        stream changed as it runs no longer has."""
        self._forget_states(stream, entities)
        if self.discovery is None:
            return
        configs = self._discovery([entities]) if entities is not None else []
        if entities is not None and (entities.recorded or entities.clips):  # (a stream's new outputs: none paused)
            self._retain(self._outputs_topic(stream), _paused_state([]))
        with self._lock:
            gone = {topic for topic, _ in self._configs.get(stream, [])} - {topic for topic, _ in configs}
            self._configs = {**{name: kept for name, kept in self._configs.items() if name != stream},
                             **({stream: configs} if configs else {})}
            self._ours = frozenset(topic for kept in self._configs.values() for topic, _ in kept)
            client = self._client if self._live else None
        if client is None:
            return
        for topic in sorted(gone):
            self._mine(client.publish(topic, b"", qos=1, retain=True))
        for topic, config in configs:
            self._mine(client.publish(topic, config.encode(), qos=1, retain=True))

    def _publish(self, topic: str, payload: str, retain: bool) -> None:
        """Publish one event message (QoS 1), counted until the broker acknowledges it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                if not self.dropped:
                    log.error("MQTT %s: more than %d events waiting; dropping new ones", self.shown, self.limit)
                self.dropped += 1
            elif info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._pending.add(info.mid)

    def send_picture(self, stream: str, picture: bytes) -> None:
        """Publish ``picture`` (a JPEG) to ``<prefix>/<stream>/snapshot``, retained; never
        blocks. Not an event: a picture that cannot go now (the broker is down) is skipped,
        not kept or counted, as a newer one will replace it."""
        if self._client is None or self._lost_since is not None or not self._connected_once:
            return
        info = self._client.publish(f"{self.target.prefix}/{stream}/snapshot", picture, qos=0, retain=True)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._mine(info)

    def send_state(self, stream: str, kind: str, name: str, state: dict[str, Any]) -> None:
        """Publish ``state`` (a zone's, a line's; the whole picture's: ``name`` empty) to
        ``<prefix>/<stream>/<kind>/<name>`` (``<prefix>/<stream>/<kind>``), retained; never
        blocks. Not an event: while the broker is down it is only kept, and the newest is
        published once it is back."""
        topic = f"{self.target.prefix}/{stream}/{kind}" + (f"/{name}" if name else "")
        self._retain(topic, json.dumps(state, separators=(",", ":")).encode())

    def outputs_changed(self, stream: str, paused: Sequence[dict[str, Any]]) -> None:
        """An output of ``stream`` ("": of the run's) paused or writes again, and ``paused`` are
        the run's outputs paused now (:func:`~streamyolo.sinks.base.paused_outputs`): with
        discovery, the ``Outputs`` sensors' states, ``<prefix>/<stream>/outputs`` (its stream's)
        and ``<prefix>/outputs`` (every output of the run), ``{"paused": n, "outputs": [{"output",
        "stream", "since", "error", "lost", "unit"}, …]}``, retained."""
        if self.discovery is None:
            return
        if stream:
            self._retain(self._outputs_topic(stream), _paused_state([p for p in paused if p["stream"] == stream]))
        self._retain(self._outputs_topic(""), _paused_state(paused))

    def storage_changed(self, use: dict[str, Any]) -> None:
        """The folders' use, looked at again (:class:`~streamyolo.sinks.storage.Storage`): with
        discovery, ``<prefix>/storage/<folder>`` each (``{"bytes", "files", "free", "days_left", …}``),
        retained, for the run's device's sensors."""
        if self.discovery is None:
            return
        for what, folder in use.items():
            if isinstance(folder, dict):
                self._retain(f"{self.target.prefix}/storage/{what}", json.dumps(folder, separators=(",", ":")).encode())

    def overload_changed(self, overload: Mapping[str, Any] | None) -> None:
        """Whether the machine keeps up with the live streams now (:mod:`~streamyolo.pipeline.overload`):
        ``<prefix>/overloaded``, retained, ``{"overloaded": false}`` or ``{"overloaded": true,
        "skipped": %, "window", "since", "streams"}``, for the run's device's ``Overloaded`` sensor."""
        state = {"overloaded": overload is not None, **(overload or {})}
        self._retain(f"{self.target.prefix}/overloaded", json.dumps(state, separators=(",", ":")).encode())

    def switched(self, kind: str, stream: str, on: bool) -> None:
        """``stream``'s detection (``kind`` ``detect``) or recording (``record``) is now on or
        off (``controls``): its ``<kind>/state``, retained. (A zone's watching: its state's
        ``"watched"`` says it.)"""
        if self.controls and kind in SWITCHES:
            self._retain(self._switch(kind, stream), b"ON" if on else b"OFF")

    def _forget_states(self, stream: str, entities: StreamEntities | None) -> None:
        """Delete the retained states (empty retained messages) of ``stream``, removed (no
        ``entities``), or of its zones and lines that ``entities`` no longer has."""
        under = f"{self.target.prefix}/{stream}/"

        def gone(topic: str) -> bool:
            if entities is None:
                return True
            kind, _, rest = topic[len(under):].partition("/")
            kept = {"zone": entities.zones, "line": entities.lines}.get(kind)
            return kept is not None and rest.split("/")[0] not in kept

        with self._lock:
            forgotten = [topic for topic in self._states if topic.startswith(under) and gone(topic)]
            self._states = {topic: payload for topic, payload in self._states.items() if topic not in forgotten}
            client = self._client if self._live else None
        if client is not None:
            for topic in [*forgotten, *([f"{under}snapshot"] if entities is None else [])]:
                self._mine(client.publish(topic, b"", qos=1, retain=True))

    def _retain(self, topic: str, payload: bytes) -> None:
        """Keep ``payload`` as ``topic``'s state (sent again at each connection) and publish it
        now if connected (else the connection sends it: one or the other, whenever it comes)."""
        with self._lock:
            self._states[topic] = payload
            client = self._client if self._live else None
        if client is not None:
            self._mine(client.publish(topic, payload, qos=1, retain=True))

    def close(self) -> None:
        """Wait (at most ``drain`` seconds) for the broker to acknowledge every event, say
        ``offline``, disconnect; raise :class:`OutputsIncompleteError` if events were lost."""
        client, self._client = self._client, None
        if client is None:
            return
        deadline = time.monotonic() + self.drain
        with self._acked:
            self._acked.wait_for(lambda: not self._pending, max(0.0, deadline - time.monotonic()))
            undelivered = len(self._pending)
        if self._connected_once and self._lost_since is None:
            offline = client.publish(self.available, "offline", qos=1, retain=True)
            self._mine(offline)
            try:
                offline.wait_for_publish(2)
            except (RuntimeError, ValueError):  # the connection went just now: the last will says it
                pass
        client.disconnect()
        client.loop_stop()
        lost = undelivered + self.dropped
        if lost:
            raise OutputsIncompleteError(f"MQTT {self.shown}: {lost} event(s) could not be delivered "
                                         f"(first: {self._error or 'the queue was full'})")

    # -- paho-mqtt's callbacks, on its thread -----------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._error = self._error or f"the broker refused: {reason}"
            if self._lost_since is None:
                self._lost_since = time.monotonic()
                log.error("MQTT %s: the broker refused the connection (%s); trying again, events wait meanwhile",
                          self.shown, reason)
            return
        # Which run publishes under the prefix: first what the broker kept (another run's
        # "online" and its marker, delivered on subscribing), then ours (see _on_run).
        self._live_before, self._other, self._ours_back = False, None, False
        client.subscribe([(self.available, 1), (self.run_topic, 1),
                          *([(f"{self.target.prefix}/+/{kind}/set", 1) for kind in SWITCHES] if self.controls
                            else []),
                          *([(f"{self.target.prefix}/+/zone/+/watch/set", 1)] if self.controls else [])])
        self._mine(client.publish(self.available, "online", qos=1, retain=True))
        with self._lock:
            self._live = True  # (what is kept after this goes at once: nothing falls between)
            retained = [*((topic, config.encode()) for configs in self._configs.values() for topic, config in configs),
                        *self._states.items()]
        for topic, payload in retained:  # a broker that restarted has lost them, and so has Home Assistant
            self._mine(client.publish(topic, payload, qos=1, retain=True))
        self._mine(client.publish(self.run_topic, json.dumps(self._run), qos=1, retain=True))
        if self._lost_since is not None and self._connected_once:
            log.warning("MQTT %s: connected again after %.0f s (%d event(s) waiting)", self.shown,
                        time.monotonic() - self._lost_since, len(self._pending))
        else:
            log.info("MQTT %s: connected; events go to %s/<stream>/<event>", self.shown, self.target.prefix)
        self._connected_once = True
        self._lost_since = None

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """The prefix's availability and run marker (:meth:`_on_run`); or a retained discovery
        config of ours that this run does not announce (a stream since renamed or removed, a
        zone gone): an empty retained message deletes it, and Home Assistant removes the entity."""
        if message.topic == self.available:
            if message.retain and message.payload == b"online":  # kept from before this connection
                self._live_before = True
            return
        if message.topic == self.run_topic:
            self._on_run(client, message.payload)
            return
        prefix = f"{self.target.prefix}/"
        kind = next((kind for kind in SWITCHES if message.topic.endswith(f"/{kind}/set")), None)
        if self.controls and kind is not None and message.topic.startswith(prefix):
            self._on_switch(kind, message.topic[len(prefix):-len(f"/{kind}/set")], message.payload)
            return
        stream, _, zone = message.topic[len(prefix):-len("/watch/set")].partition("/zone/")
        if self.controls and message.topic.startswith(prefix) and message.topic.endswith("/watch/set") and zone:
            self._on_switch(watch_kind(zone), stream, message.payload)
            return
        if message.retain and message.payload and message.topic not in self._ours:
            log.info("MQTT %s: Home Assistant entity %s is no longer in the config: removed", self.shown,
                     message.topic)
            self._mine(client.publish(message.topic, b"", qos=1, retain=True))

    def _on_switch(self, kind: str, stream: str, payload: bytes) -> None:
        """``ON`` or ``OFF`` for ``stream``'s detection or recording (``kind``: Home Assistant's
        switch), or a zone's watching (``watch:<zone>``); its new state comes back through
        :meth:`switched` (a zone's: its state)."""
        word = payload.decode(errors="replace").strip().upper()
        if word not in ("ON", "OFF"):
            log.warning("MQTT %s: %s/%s/set: %r is neither ON nor OFF", self.shown, stream, kind, word[:20])
            return
        if self.on_switch is None:
            return
        try:
            self.on_switch(kind, stream, word == "ON")
        except (ValueError, RuntimeError) as exc:  # no such stream (any more), or not recorded
            log.warning("MQTT %s: %s/%s/set: %s", self.shown, stream, kind, exc)

    def _on_run(self, client: Any, payload: bytes) -> None:
        """A run marker on ``<prefix>/run``. Two runs under one prefix share its availability
        (one ending makes the other's Home Assistant entities unavailable) and, with discovery,
        one node: each would remove the other's entities as stale. So: another run's marker
        that the broker kept while the prefix was ``online`` (a run still going, or one that
        died in the last minute) is warned of, and the stale entities are left alone; one that
        comes after ours (a run started since) is warned of. Otherwise, with discovery, the
        entities this run does not announce are cleared (see :meth:`_on_message`)."""
        try:
            marker = json.loads(payload)
        except ValueError:
            return
        if not isinstance(marker, dict):
            return
        if marker.get("id") != self._run["id"]:
            if self._ours_back:
                log.warning("MQTT %s: another streamyolo run (%s, pid %s) has started publishing under %r too; "
                            "give each run its own prefix (mqtt://broker/<prefix>)", self.shown,
                            marker.get("host"), marker.get("pid"), self.target.prefix)
            else:
                self._other = marker
            return
        if self._ours_back:
            return
        self._ours_back = True
        if self._other is not None and self._live_before:
            log.warning("MQTT %s: another streamyolo run (%s, pid %s) publishes under %r; give each run its own "
                        "prefix (mqtt://broker/<prefix>): they share its availability%s", self.shown,
                        self._other.get("host"), self._other.get("pid"), self.target.prefix,
                        ", and its Home Assistant entities are left alone" if self.discovery is not None else "")
        elif self.discovery is not None:  # an earlier run's entities of streams gone or renamed: cleared
            client.subscribe(f"{self.discovery}/+/streamyolo_{_object_id(self.target.prefix)}/+/config", qos=1)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        """The broker could not be reached (paho tries again)."""
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            self._error = self._error or f"cannot reach the broker at {self.target.host}:{self.target.port}"
            log.error("MQTT %s: cannot reach the broker; trying again, events wait meanwhile", self.shown)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            self._live = False
        if self._client is None or self._lost_since is not None:  # we are closing, or it was already down
            return
        self._lost_since = time.monotonic()
        self._error = self._error or f"connection lost: {reason}"
        log.error("MQTT %s: connection lost (%s); reconnecting, events wait meanwhile", self.shown, reason)

    def _mine(self, info: Any) -> None:
        """``info`` is of a message of ours, not an event: its acknowledgement counts nothing."""
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._own.add(info.mid)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._acked:
            if mid in self._own:
                self._own.discard(mid)
            elif mid in self._pending:
                self._pending.discard(mid)
                self.published += 1
                self._acked.notify_all()
            else:
                self._early.add(mid)


class StatePublisher:
    """Publishes every stream's objects (what its picture holds, by class), zones (what they
    hold) and counting lines (their totals) as they change, at most once per
    ``STATE_SECONDS`` each: for Home Assistant's sensors. :meth:`update` is called with every
    processed frame (from the inference threads)."""

    def __init__(self, publisher: MqttPublisher, clock: Callable[[], float] = time.monotonic) -> None:
        self.publisher = publisher
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, str, str], tuple[dict[str, Any], float]] = {}  # key -> (state, when)
        self._newest: dict[tuple[str, str, str], dict[str, Any]] = {}

    def update(self, result: Result) -> None:
        now = self._clock()
        stream = result.stream
        stationary = result.stationary()
        states: list[tuple[tuple[str, str, str], dict[str, Any]]] = [
            ((stream, "objects", ""), {"total": len(result.detections), **result.detections.counts(),
                                       **({} if stationary is None else {"stationary": stationary})})]
        states += [((stream, "zone", zone.name), {"total": sum(zone.inside.values()), **zone.inside,
                                                   **({} if zone.watched is None else {"watched": zone.watched}),
                                                   **({} if zone.crowded is None else {"crowded": zone.crowded}),
                                                   **({} if zone.stationary is None
                                                      else {"stationary": sum(zone.stationary.values())})})
                   for zone in result.zones]
        states += [((stream, "line", line.name), {"in": line.into, "out": line.out}) for line in result.lines]
        for visit in result.visits:  # each speed measured through a zone: sent as it comes (each is news)
            if visit.speed is not None:
                self.publisher.send_state(stream, "zone", f"{visit.zone}/speed", {
                    "speed": round(visit.speed, 1), "name": visit.name, "cls": visit.cls, "id": visit.id})
        due = []
        with self._lock:
            for key, state in states:
                sent = self._sent.get(key)
                if sent is not None and sent[0] == state:
                    self._newest.pop(key, None)
                    continue
                if sent is None or now - sent[1] >= STATE_SECONDS:
                    self._sent[key] = (state, now)
                    self._newest.pop(key, None)
                    due.append((key, state))
                else:
                    self._newest[key] = state  # sent with a later frame, or at the end
        for (stream_name, kind, name), state in due:
            self.publisher.send_state(stream_name, kind, name, state)

    def flush(self) -> None:
        """At the end: the newest states not yet sent."""
        with self._lock:
            left, self._newest = self._newest, {}
            for key, state in left.items():
                self._sent[key] = (state, self._clock())
        for (stream, kind, name), state in left.items():
            self.publisher.send_state(stream, kind, name, state)
