"""Validated configuration: the one place where file, environment and CLI values merge.

Precedence, lowest first: defaults, the YAML file, ``STREAMYOLO_<KEY>`` environment
variables (top-level scalar keys only), command-line flags. Validation happens once, up
front, before any thread starts; unknown keys are rejected and every problem becomes one
:class:`~streamyolo.errors.ConfigError` line naming the key.
"""

from __future__ import annotations

import copy
import math
import os
import re
import types
from collections import abc
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamyolo.errors import ConfigError, meant
from streamyolo.frames import DetectionFilter
from streamyolo.inference.counting import HIDDEN
from streamyolo.inference.motion import MotionSettings
from streamyolo.inference.tiles import TileSettings
from streamyolo.schedule import Schedule
from streamyolo.sources.redact import redact_url
from streamyolo.sources.spec import NAME_PATTERN

DEFAULT_MODEL = "demo"
"""The bundled demo detector (``streamyolo/assets/demo_model.pt``): works offline out of the box."""
DATASET_EVERY = 10.0
"""Seconds of a stream's timeline between the frames ``dataset`` keeps, by default."""
ENV_PREFIX = "STREAMYOLO_"

Overflow = Literal["lossless", "live"]


NAME = NAME_PATTERN.pattern
"""What a name (a stream's, a zone's, a line's …) must match (:data:`NAME_RULE` in words)."""
NAME_RULE = "letters, digits, _, . and -, beginning with a letter, digit or _"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # (.inf, .nan: no number meant)


PIXELS = 100_000
"""The farthest a point of a zone, line, mask, privacy area or region may lie from the picture's
origin, in pixels: more than any camera's picture, and far less than what breaks the drawing."""

Pixel = Annotated[float, Field(ge=-PIXELS, le=PIXELS)]
"""A coordinate of a point drawn on the picture."""


class ReconnectConfig(_Strict):
    """Reconnect after a network source fails: exponential back-off with jitter."""

    base: float = Field(default=1.0, gt=0, le=3600)
    """Seconds before the first retry; doubled after every failed attempt…"""
    cap: float = Field(default=30.0, gt=0, le=3600)
    """…up to this many seconds."""
    jitter: float = Field(default=0.2, ge=0, le=1)
    """Each delay is spread by ± this fraction."""
    attempts: int | None = Field(default=None, ge=0)
    """Consecutive failed attempts before the stream is marked failed (null: never)."""


EventKind = Literal["line", "enter", "leave", "linger", "speeding", "crowd", "state", "clip", "output", "switch",
                    "overload"]
"""What an event is about (:mod:`streamyolo.sinks.events`)."""


def _checked_windows(windows: list[str]) -> list[str]:
    Schedule(windows)  # (its ValueError says what is wrong)
    return windows


def _span(value: Any) -> Any:
    """A span of time given as seconds or ``90d``, ``12h``, ``30m``, ``45s``: seconds."""
    from streamyolo.clock import parse_seconds

    return None if value is None else parse_seconds(value)


SEGMENT_MOST = 86400.0
"""The most video one recording file (``record_segment``) may hold: a day."""
STATS_EVERY = 5.0
"""Seconds between the stats file's lines when neither ``stats_interval`` nor ``status_interval`` says."""


Seconds = Annotated[float, BeforeValidator(_span)]
"""A span of time: seconds, or ``90d``, ``12h``, ``30m``, ``45s`` (from 1 second to 10 years)."""


def _any_span(value: Any) -> Any:
    from streamyolo.clock import parse_seconds

    return parse_seconds(value, 0)


Delay = Annotated[float, BeforeValidator(_any_span)]
"""A span of time as :data:`Seconds`, which may also be 0 (none)."""


Windows = Annotated[list[str], BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
                    AfterValidator(_checked_windows)]
"""A schedule's windows (:mod:`streamyolo.schedule`): one, ``"22:00-06:00"``, or a list of them."""


Anchor = Literal["center", "bottom", "top"]
"""The point of a box that zones, lines and masks look at: its centre, the middle of its
bottom edge (where a person or a car stands on the ground) or of its top edge."""

class CrowdConfig(_Strict):
    """A zone's ``crowd``: ``{objects: 10, after: 30s}``, or ``10`` (after 3 s)."""

    objects: int = Field(ge=1)
    """It is crowded while it holds at least this many objects (of its classes)."""
    after: Delay = 3.0
    """Once it has held that many this long (seconds, or ``30s``, ``2m``), and not crowded any
    more once it has held fewer as long: a person hidden for a moment is no new event."""


class ZoneConfig(_Strict):
    """A zone with settings: ``{points: [[x1, y1], …], linger: 30, classes: [2, 7], anchor: bottom}``."""

    points: list[tuple[Pixel, Pixel]]
    linger: Seconds | None = None
    """Tracked streams: an object inside this long (seconds, or ``30s``, ``2m``) is an event
    (``linger``), once per stay: someone loitering, a car parked where it should not."""
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, min_length=1)
    """The class ids this zone holds (default: every class the stream keeps): cars in the
    driveway, people at the door, on one camera."""
    anchor: Anchor = "center"
    """Which point of each box must be inside: ``center`` (default), ``bottom`` (the middle of
    its bottom edge: where a person or a car stands, for a zone drawn on the ground) or ``top``."""
    size: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] | None = None
    """Tracked streams: the zone's real size in metres, for a zone of 4 points drawn on the
    ground (a stretch of road): its first side (first point to second) and its second side
    (second point to third). Each object inside then has its speed measured (km/h) on the
    ground, however the camera looks at it."""
    speed_limit: float | None = Field(default=None, gt=0)
    """With ``size``: km/h above which an object's measured speed is an event (``speeding``),
    once per stay: a car too fast down the street."""
    schedule: Windows | None = None
    """Tracked streams: when the zone is watched for who enters, lingers, speeds and leaves
    (windows of the box's clock, as a stream's ``schedule``: ``"22:00-06:00"``); outside them
    it makes no events (it still counts what it holds): the yard at night only."""
    crowd: CrowdConfig | None = None
    """A ``crowd`` event when the zone holds at least this many objects (for 3 s; or ``{objects:
    10, after: 30s}``), and another when it holds fewer again: a queue too long, a room too
    full. Needs no tracker."""
    hidden: Delay = HIDDEN
    """Tracked streams: how long an object that stood still inside (a parked car) may go unseen
    (missed by the model, hidden by a passing bus) and, found again where it stood, still be the
    same stay: no leave and enter, its ``linger`` not started again (seconds, or ``2m``; 0: none)."""

    @field_validator("crowd", mode="before")
    @classmethod
    def _crowd(cls, value: Any) -> Any:
        return {"objects": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _measured(self) -> ZoneConfig:
        if self.speed_limit is not None and self.size is None:
            raise ValueError("a zone's speed_limit needs its size (metres), which its speeds are measured by")
        if self.size is not None and len(self.points) != 4:
            raise ValueError(f"a zone with a size (metres) needs 4 points, its corners on the ground; it has "
                             f"{len(self.points)}")
        return self


class LineConfig(_Strict):
    """A counting line with settings: ``{points: [[x1, y1], [x2, y2]], classes: [0], anchor: bottom}``."""

    points: tuple[tuple[Pixel, Pixel], tuple[Pixel, Pixel]]
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, min_length=1)
    """The class ids this line counts (default: every class the stream keeps)."""
    anchor: Anchor = "center"
    """Which point of each box must cross: ``center`` (default), ``bottom`` (where a person or a
    car stands: a line drawn on the ground, across a doorway's threshold) or ``top``."""


class MaskConfig(_Strict):
    """A mask with settings: ``{points: [[x1, y1], …], classes: [2]}``."""

    points: list[tuple[Pixel, Pixel]]
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, min_length=1)
    """The class ids this mask ignores (default: every class): parked cars, not the people
    walking past them."""
    anchor: Anchor = "center"
    """Which point of each box must be inside for it to be ignored: ``center`` (default),
    ``bottom`` or ``top``."""
    outside: bool = False
    """Ignore what is outside the polygon instead: the part of the picture worth watching (the
    driveway), everything else (the street, the neighbours') ignored."""


_MOTION = MotionSettings()  # the defaults


class MotionConfig(_Strict):
    """``motion`` with settings: ``{threshold: 20, area: 0.0005, refresh: 5}`` (see
    :mod:`streamyolo.inference.motion`); ``motion: true`` takes these defaults."""

    threshold: int = Field(default=_MOTION.threshold, ge=1, le=255)
    """Grey levels (of 255) a pixel must change by to count as moved (higher: a noisier camera)."""
    area: float = Field(default=_MOTION.area, gt=0, le=1)
    """The fraction of the picture that must move for the model to run."""
    refresh: float = _MOTION.refresh
    """Seconds of the stream (or ``1m``) after which the model runs even on a still picture."""

    @field_validator("refresh", mode="before")
    @classmethod
    def _span(cls, value: Any) -> Any:
        from streamyolo.clock import parse_seconds

        return parse_seconds(value)


_TILES = TileSettings()  # the defaults


class TilesConfig(_Strict):
    """``tiles`` with settings: ``{grid: 3x2, overlap: 0.2, whole: true}`` (see
    :mod:`streamyolo.inference.tiles`); ``tiles: 3x2`` gives the grid alone."""

    grid: str
    """Parts across × parts down: ``3x2``; ``auto``: as many as make parts about the model's
    input size (``imgsz``), by each picture's size (1080p at 640: ``3x2``; 4K: ``6x3``; 640 × 480:
    none, the whole picture alone)."""
    overlap: float = Field(default=_TILES.overlap, ge=0, le=0.5)
    """How much neighbouring parts share, a fraction of a part: an object smaller is whole in one."""
    whole: bool = _TILES.whole
    """Also run the model on the whole picture (objects bigger than the overlap)."""

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: str) -> str:
        if value.strip().lower() == "auto":
            return "auto"
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
        columns, rows = (int(match[1]), int(match[2])) if match else (0, 0)
        if not (1 <= columns <= 8 and 1 <= rows <= 8) or columns * rows == 1:
            raise ValueError("not a grid of 2 to 64 parts, 1 to 8 across and down (as 3x2), nor auto")
        return f"{columns}x{rows}"

    def settings(self, most: int = _TILES.most, size: tuple[int, int] = _TILES.size) -> TileSettings:
        """These settings, for a run that keeps at most ``most`` objects a frame (``max_det``)
        with a model whose input is ``size`` (height, width)."""
        columns, rows = (0, 0) if self.grid == "auto" else (int(n) for n in self.grid.split("x"))
        return TileSettings(columns, rows, self.overlap, self.whole, most, size)


def _tiles(value: Any) -> Any:
    """``3x2`` → ``{grid: 3x2}``; ``false`` stays (a stream without tiles)."""
    return {"grid": value} if isinstance(value, str) else value


WebhookFormat = Literal["json", "text", "slack", "discord", "telegram", "pushover"]
"""What each POST to a webhook is (:func:`streamyolo.sinks.webhook.payload`)."""
Priority = Literal["min", "low", "default", "high", "urgent"]
"""How an output's messages ring a phone (``priority``)."""
RINGING = ("text", "telegram", "pushover")
"""The webhook formats whose messages carry a priority."""


class _Delivered(_Strict):
    """Which events an output of ``webhooks`` or ``emails`` gets."""

    events: list[EventKind] | None = None
    """The kinds of event it gets, as ``webhook_events``; unset: all."""
    streams: list[str] | None = Field(default=None, min_length=1)
    """The streams whose events it gets (their names); unset: every stream's."""
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, min_length=1)
    """The classes (ids or names, as the run's model numbers them) whose objects' events it
    gets (lines, zones); the other events (a camera down, a clip) go as they are. Unset: all."""
    where: list[str] | None = Field(default=None, min_length=1)
    """The zones and lines (their names) whose events it gets (``[door]``: who comes to the
    door, not who walks down the street); events of no zone or line (a camera down, a clip) go
    as they are. Unset: every zone's and line's."""
    cooldown: Seconds | None = None
    """After an object event of a stream (a line, a zone), that stream's next object events are
    not sent for this long (``5m``, seconds; by the events' own times): one notification per
    visit, not one per person or per step. A camera down, a clip, a switch always go."""
    down_after: Seconds | None = None
    """A camera down (``reconnecting``, ``failed``) is sent only once it has been down this long
    (``2m``, seconds), and its coming back only if that was: a camera's blip of a few seconds
    sends nothing. Unset: each state as it comes."""
    schedule: Windows | None = None
    """Only the events that happen in these windows of the run's clock (as a stream's
    ``schedule``: ``"22:00-06:00"``, ``["mon-fri 08:00-18:00"]``): a phone woken at night by
    the garden only, the office's mail by day. Unset: always."""
    priority: Priority | None = None
    """How its messages ring a phone: ntfy's ``Priority`` (``text``), Pushover's (``urgent``:
    its emergency priority, repeated until seen), Telegram's silent messages (``min``, ``low``),
    an email's ``X-Priority`` and ``Importance``; the other formats have none. Unset: the
    receiver's default."""




class WebhookConfig(_Delivered):
    """One of ``webhooks``: a URL events are POSTed to, and which of them: a phone's
    notifications for a person at the door, at most one every five minutes, beside every event
    to a home-automation server."""

    url: str
    """``http(s)://`` URL (a login in it is sent as HTTP Basic)."""
    format: WebhookFormat = "json"
    """What each POST is, as ``webhook_format``."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from streamyolo.sinks.webhook import check_webhook

        return check_webhook(value)

    @model_validator(mode="after")
    def _fits(self) -> WebhookConfig:
        from streamyolo.sinks.webhook import check_webhook

        try:
            check_webhook(self.url, self.format)
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        if self.priority is not None and self.format not in RINGING:
            raise ValueError(f"priority: a {self.format} webhook's messages carry none (text, telegram and pushover "
                             "do)")
        return self


class EmailConfig(_Delivered):
    """One of ``emails``: who gets each event (of those it takes) as an email, through which
    server (:mod:`streamyolo.sinks.mail`)."""

    server: str
    """``smtp://[user:password@]host[:port]`` (STARTTLS when offered, and with a login) or
    ``smtps://…`` (TLS, port 465)."""
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    """The addresses each message goes to."""
    sender: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    """Its ``From`` address (default: ``streamyolo@<this box's name>``; many servers want the
    login's own)."""

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        from streamyolo.sinks.mail import check_server

        return check_server(value)


class ScheduleConfig(_Strict):
    """When a stream's detection and recording are on (:mod:`streamyolo.schedule`): each a
    window or a list of them, as ``{detect: "22:00-06:00", record: ["mon-fri 07:30-18:00",
    "sat,sun"]}``; one left out is on throughout (or as its switch is set)."""

    detect: Windows | None = None
    record: Windows | None = None

    def schedules(self) -> dict[str, Schedule]:
        """``{"detect": …, "record": …}``, those given."""
        return {kind: Schedule(windows) for kind in ("detect", "record")
                if (windows := getattr(self, kind)) is not None}


class PrivacyConfig(_Strict):
    """A privacy area: ``{points: [[x1, y1], …]}``, blacked out of every picture."""

    points: list[tuple[Pixel, Pixel]]


def _longer(keep: float | None, objects: float | None, where: str) -> None:
    """Refuse a ``record_keep_objects`` (``where``: a stream's key's start) not longer than
    the ``record_keep`` it goes with."""
    if objects is not None and (keep is None or objects <= keep):
        raise ValueError(f"config keys '{where}record_keep_objects' and '{where}record_keep': record_keep_objects "
                         "keeps the segments with objects longer than record_keep keeps the others; give "
                         "record_keep too, shorter")


class StreamConfig(_Strict):
    """One stream. A plain string in the config is shorthand for ``{source: <string>}``,
    and ``name=uri`` names it."""

    source: str = Field(min_length=1)
    """A file, folder, URL, webcam index (``0``, or ``/dev/video0``) or ``synthetic:…``."""
    name: str | None = Field(default=None, pattern=NAME)
    enabled: bool = True
    """``false``: the stream stays in the config, checked, but is not run (a camera taken down
    for a while); a reload that turns it off removes it, on again adds it."""
    overflow: Overflow | None = None
    """``lossless``: capture waits for inference, every frame processed once, in order
    (default for files and synthetic streams). ``live``: the oldest frame is overwritten,
    inference takes the newest and drops are counted (default for cameras and URLs)."""
    buffer: int | None = Field(default=None, ge=1, le=1024)
    realtime: bool = False
    """Deliver a file or synthetic stream at its own frame rate, as a camera would."""
    loop: bool = False
    """Start a file again from the beginning when it ends."""
    max_fps: float | None = Field(default=None, gt=0, le=1000)
    """Keep at most this many frames per second (cameras faster than needed)."""
    stride: int = Field(default=1, ge=1, le=1000)
    """Keep every Nth frame."""
    open_timeout: float = Field(default=10.0, gt=0, le=600)
    """Network sources: seconds to connect."""
    read_timeout: float = Field(default=5.0, gt=0, le=600)
    """Network sources: seconds one read may wait for data."""
    stall_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Network sources: reconnect when no frame arrives for this long."""
    transport: Literal["tcp", "udp"] = "tcp"
    """RTSP transport."""
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    decoder_threads: int = Field(default=2, ge=0, le=64)
    rotate: Literal["auto", 0, 90, 180, 270] = "auto"
    """Degrees clockwise to turn the stream's pictures before anything sees them (a camera
    mounted on its side or upside down); ``auto``: as a video file's display matrix says (a
    phone's portrait video, as players and OpenCV show it), else not at all. Lines, zones and
    masks are drawn on the turned picture."""
    record: bool | Literal["annotated", "original"] = True
    """With the run's ``record`` folder: whether this stream is recorded (``false``: not, a
    camera only watched for events, say), and how, when not as the run's ``record_mode``:
    ``annotated`` or ``original`` (the camera's own video, copied as it came)."""
    record_source: str | None = Field(default=None, min_length=1)
    """The camera's stream to record instead of the one watched, as it comes (``original``):
    its full-size main stream, say, while the model watches its small sub stream
    (``rtsp://``, ``rtmp://`` or ``http(s)://``). Read for its packets only, never decoded."""
    conf: float | None = Field(default=None, ge=0, le=1)
    """This stream's confidence threshold (default: the run's ``conf``)."""
    classes: list[Annotated[int, Field(ge=0)]] | None = None
    """This stream's class ids, or the names its model gives them (default: the run's
    ``classes``): a parking camera that keeps cars only, say, beside cameras that keep people."""
    class_conf: dict[Annotated[int, Field(ge=0)], Annotated[float, Field(ge=0, le=1)]] | None = None
    """This stream's thresholds of its own for some classes (ids or names), in place of its
    ``conf`` for them (default: the run's ``class_conf``; ``{}``: none)."""
    blur: list[Annotated[int, Field(ge=0)]] | None = None
    """The classes (ids or names) whose objects are blurred in every picture this stream's
    outputs show (default: the run's ``blur``; ``[]``: none)."""
    record_objects: list[Annotated[int, Field(ge=0)]] | None = None
    """The classes (ids or names) whose objects mark this stream's segments to be kept longer
    (``record_keep_objects``; default: the run's ``record_objects``, else any it keeps)."""
    record_keep: Seconds | None = None
    """How long this stream's segment files are kept (``90d``; default: the run's
    ``record_keep``): the front door's a month, the garden's three days."""
    record_keep_objects: Seconds | None = None
    """How long this stream's segment files with objects are kept (default: the run's
    ``record_keep_objects``); longer than its ``record_keep``."""
    model: str | None = Field(default=None, min_length=1)
    """This stream's own model (default: the run's ``model``; the same kinds): a pose model on
    the door camera beside detection on the others, say. Each model runs on workers of its
    own, which serve the streams that use it."""
    imgsz: int | tuple[int, int] | None = None
    """The input size this stream's model runs at (default: the run's ``imgsz``): 1280 for a
    far camera whose people are small, say. Each model and size runs on workers of its own."""
    min_area: float | None = Field(default=None, gt=0)
    """Ignore boxes smaller than this many square pixels of the picture (a "person" of 8 x 12
    pixels far down the street)."""
    max_area: float | None = Field(default=None, gt=0)
    """Ignore boxes larger than this many square pixels (a shadow over half the picture)."""
    motion: MotionConfig | Literal[False] | None = None
    """Run the model only on frames where something moved (``true``, or settings: see
    :class:`MotionConfig`); the others take the last detections (default: the run's
    ``motion``; ``false``: every frame)."""
    confirm_frames: int | None = Field(default=None, ge=1, le=100)
    """This stream's own ``confirm_frames`` (default: the run's)."""
    tiles: TilesConfig | Literal[False] | None = None
    """Also run the model on overlapping parts of each picture (``3x2``: 3 across, 2 down), for
    small objects on a big picture (see :class:`TilesConfig`; default: the run's ``tiles``;
    ``false``: none)."""
    region: (tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)],
                   Annotated[int, Field(ge=0)]]
             | tuple[tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]], ...] | None) = None
    """The part of the picture the model looks at, ``[x1, y1, x2, y2]`` in its pixels: the
    corner of a 4K picture where the gate is, seen at the model's size rather than shrunk six
    times with the rest, in one forward pass; with ``tiles``, the parts cut the region (and
    the whole picture is not run). Objects elsewhere are not seen. Or an outline, ``[[x, y],
    …]`` (3 points or more): the model looks at the rectangle around it, and the objects
    outside the outline (their centres) are ignored (:attr:`region_box`, :attr:`region_outline`)."""
    lines: dict[Annotated[str, Field(pattern=NAME)],
                LineConfig] | None = None
    """Counting lines (needs ``tracker``): ``{door: [[x1, y1], [x2, y2]]}`` in the picture's
    pixels; tracked objects crossing one are counted, ``in`` from its left to its right
    (walking from the first point to the second) and ``out`` the other way. A line may also
    be ``{points: [[x1, y1], [x2, y2]], classes: [0]}`` (:class:`LineConfig`)."""

    zones: dict[Annotated[str, Field(pattern=NAME)],
                ZoneConfig] | None = None
    """Zones: ``{queue: [[x1, y1], [x2, y2], [x3, y3], …]}``, polygons in the picture's pixels;
    every frame counts the objects whose box centre lies inside each, by class. A zone may
    also be ``{points: […], linger: 30}`` (:class:`ZoneConfig`)."""

    masks: dict[Annotated[str, Field(pattern=NAME)],
                MaskConfig] | None = None
    """Areas whose detections are ignored: ``{tree: [[x1, y1], [x2, y2], [x3, y3], …]}``,
    polygons in the picture's pixels; a box whose centre lies inside one is dropped before
    tracking, counting and every output. A mask may also be ``{points: […], classes: [2]}``
    (:class:`MaskConfig`): it ignores only those class ids."""

    schedule: ScheduleConfig | None = None
    """When its detection and recording are on: ``{detect: "22:00-06:00", record: ["mon-fri
    07:30-18:00", "sat,sun"]}`` (:class:`ScheduleConfig`); by hand (the page, Home Assistant)
    they stay switched until the schedule's next change."""

    privacy: dict[Annotated[str, Field(pattern=NAME)],
                  PrivacyConfig] | None = None
    """Privacy areas: ``{window: [[x1, y1], [x2, y2], [x3, y3], …]}``, polygons in the (turned)
    picture's pixels, blacked out of every picture as it leaves the camera, before anything
    sees it: the model, the recordings, clips, snapshots, crops, the page (a neighbour's
    window, a public pavement), as a camera's or an NVR's privacy masks do."""

    @field_validator("imgsz")
    @classmethod
    def _imgsz(cls, value: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
        return None if value is None else _image_size(value)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _named_model(value)

    @field_validator("motion", mode="before")
    @classmethod
    def _motion(cls, value: Any) -> Any:
        return MotionConfig() if value is True else value

    @field_validator("schedule", mode="before")
    @classmethod
    def _switched(cls, value: Any) -> Any:
        if isinstance(value, str | list):
            raise ValueError("says what it switches when: {detect: '22:00-06:00'}, {record: […]}, or both")
        return value

    @field_validator("tiles", mode="before")
    @classmethod
    def _tiles(cls, value: Any) -> Any:
        return _tiles(value)

    @field_validator("region", mode="before")
    @classmethod
    def _corners(cls, value: Any) -> Any:
        if value is None:
            return None
        outline = isinstance(value, list | tuple) and len(value) >= 3 and all(
            isinstance(point, list | tuple) and len(point) == 2 for point in value)
        if not outline and (not isinstance(value, list | tuple) or len(value) != 4
                            or any(isinstance(x, list | tuple) for x in value)):
            raise ValueError("must be the region's corners [x1, y1, x2, y2], or its outline [[x, y], …] of 3 points "
                             "or more, in pixels" + (f" (got {value!r})" if isinstance(value, list | tuple) else ""))
        numbers = [x for point in value for x in point] if outline else list(value)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= PIXELS
                   and (outline or x == int(x)) for x in numbers):  # (0 <= nan is false; inf is more than PIXELS)
            raise ValueError(f"{value!r}: the region's {'points' if outline else 'corners'} are pixels, "
                             f"{'numbers' if outline else 'whole numbers'} of 0 or more, at most {PIXELS}")
        if outline:
            twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(value, [*value[1:], value[0]], strict=True))
            if abs(twice) < 2:  # (shoelace: less than a square pixel)
                raise ValueError(f"{value!r}: the region's outline holds no area (its points on one line, or "
                                 "within a pixel)")
        return value

    @property
    def region_box(self) -> tuple[int, int, int, int] | None:
        """The rectangle the model looks at (``x1, y1, x2, y2``): the ``region``, or the one
        around its outline.

        >>> StreamConfig(source="a.mp4", region=[[10, 20.5], [90, 30], [40, 70]]).region_box
        (10, 20, 90, 70)
        """
        outline = self.region_outline
        if outline is None:
            return self.region  # type: ignore[return-value]  # (the rectangle)
        xs, ys = [x for x, _ in outline], [y for _, y in outline]
        return math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys))

    @property
    def region_outline(self) -> tuple[tuple[float, float], ...] | None:
        """The ``region``'s outline, when it is given as one (``None``: a rectangle, or none)."""
        region = self.region
        if region is None or not isinstance(region[0], tuple):
            return None
        return tuple(point for point in region if isinstance(point, tuple))

    @field_validator("rotate", mode="before")
    @classmethod
    def _degrees(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if type(value) is int and value % 90 == 0:
            return value % 360  # -90: a quarter counter-clockwise
        if value == "auto":
            return value
        raise ValueError("must be auto, 0, 90, 180 or 270 (degrees clockwise)")

    @field_validator("zones", "lines", "masks", "privacy", mode="before")
    @classmethod
    def _bare_points(cls, value: Any) -> Any:
        """A zone or line written as its points alone: ``{queue: [[x1, y1], …]}``."""
        if isinstance(value, dict):
            return {name: {"points": zone} if isinstance(zone, list | tuple) else zone for name, zone in value.items()}
        return value

    @field_validator("zones", "masks", "privacy")
    @classmethod
    def _polygons(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        what = {"zones": "zone", "masks": "mask"}.get(info.field_name or "", "privacy area")
        for name, area in (value or {}).items():
            if len(set(map(tuple, area.points))) < 3:
                raise ValueError(f"{what} {name!r} needs 3 different points or more")
        return value

    @field_validator("lines")
    @classmethod
    def _lines(cls, value: dict[str, LineConfig] | None) -> dict[str, LineConfig] | None:
        for name, line in (value or {}).items():
            a, b = line.points
            if a == b:
                raise ValueError(f"line {name!r} needs two different points")
        return value

    @model_validator(mode="after")
    def _areas(self) -> StreamConfig:
        box = self.region_box
        if self.region_outline is not None and box is not None and (box[2] - box[0] < 2 or box[3] - box[1] < 2):
            raise ValueError(f"region {[list(p) for p in self.region_outline]}: its outline holds no area (its "
                             "points on one line, or within 2 pixels)")
        if self.region_outline is None and box is not None and (box[2] <= box[0] or box[3] <= box[1]):
            raise ValueError(f"region {list(box)}: x2 must be right of x1 and y2 below y1 ([x1, y1, x2, y2])")
        if self.min_area is not None and self.max_area is not None and self.min_area > self.max_area:
            raise ValueError(f"min_area {self.min_area:g} is more than max_area {self.max_area:g}: no box would "
                             "be kept")
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return _stream_mapping(value, cls.model_fields)

    @field_validator("source", mode="before")
    @classmethod
    def _webcam(cls, value: Any) -> Any:
        return str(value) if _webcam_index(value) else value

    @field_validator("source", "record_source")
    @classmethod
    def _reachable(cls, value: str | None) -> str | None:
        """A network source must name a host (and a port that can be), as the run needs to reach it."""
        if value is not None:
            _check_network_source(value)
        return value


def _stream_mapping(value: Any, keys: Collection[str]) -> Any:
    """A stream written as its URI alone (``front=rtsp://…``, a webcam's ``0``; YAML reads a
    bare ``- synthetic:`` as ``{"synthetic": None}``) as the mapping it stands for; anything
    else as it is. Raises ``ValueError`` for a name that is not one (``a/b=cam.mp4``)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if inner is None and key not in keys:
            value = f"{key}:"
    if _webcam_index(value):
        value = str(value)  # `- 0`: the webcam, as "0" is
    if isinstance(value, str):
        name, uri = _split_named(value)
        return {"source": uri, "name": name} if name else {"source": uri}
    return value


def _webcam_index(value: Any) -> bool:
    """Whether ``value`` is a webcam's index as YAML reads one (``0``: a number, not a string)."""
    return type(value) is int and value >= 0


def _split_named(text: str) -> tuple[str | None, str]:
    """``name=uri`` split as :func:`~streamyolo.sources.spec.split_name` does; a ``NAME=`` in
    front that is not a valid name (``a/b=cam.mp4``, ``.hidden=…``) raises ``ValueError``
    saying so, unless the whole text is a file there is (whose name holds a ``=``)."""
    from streamyolo.sources.spec import split_name

    name, uri = split_name(text)
    written, equals, rest = text.strip().partition("=")
    if (name is None and equals and rest.strip() and not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", written)
            and not Path(text.strip()).expanduser().exists()):
        raise ValueError(f"stream name {written.strip()!r} is not valid: a name is {NAME_RULE}")
    return name, uri


def _check_network_source(uri: str) -> None:
    """Refuse an ``rtsp://``, ``rtmp://`` or ``http(s)://`` source without a host, or with a
    port that cannot be (``ValueError`` saying which, the URL's password hidden)."""
    from urllib.parse import urlsplit

    scheme = uri.partition(":")[0].lower()
    if scheme not in ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https"):
        return
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise ValueError("its port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"names no host: give {scheme}://host[:port]/path")
    if port == 0:
        raise ValueError("its port must be a number from 1 to 65535")


def auto_workers(cuda: bool, live_only: bool, cores: int, openvino: bool = True) -> int:
    """How many inference workers ``workers: auto`` runs.

    On a GPU, 2 (they overlap their copies and kernels). On a CPU, where the workers divide
    the cores, 2, which keeps 2 cores busiest (0.90-0.97 of the machine's limit on the bench)
    and, for PyTorch models, also serves live cameras best: beside 4 capture threads, one
    model on 2 torch threads ran slower than two on 1 each (4 live streams for 30 s on 2
    cores, yolo26n: 1 worker processed 255 frames, p99 age 194 ms; 2 workers 629 frames,
    147 ms; the single-frame latency was 70-84 ms). An OpenVINO model does run faster on more
    threads, so for live cameras only it gets one worker per 4 cores, at least one: fresher
    results (on 2 cores, 1 worker: p99 age 2.4-3.0 x the single-frame latency at 26-34
    frames/s; 2 workers: 3.4-4.4 x at 37-44 frames/s). So does a PyTorch model converted to
    OpenVINO (``pytorch_cpu``; random yolo26n, 4 live streams, 2 cores: 1 worker p99 age
    2.84 x the latency at 18.8 frames/s, 2 workers 3.98 x at 29.1 frames/s).

    >>> auto_workers(cuda=False, live_only=True, cores=2), auto_workers(cuda=False, live_only=False, cores=2)
    (1, 2)
    >>> auto_workers(cuda=False, live_only=True, cores=2, openvino=False)
    2
    """
    if cuda:
        return 2
    if live_only and openvino:
        return max(1, cores // 4)
    return max(1, min(2, cores))


def auto_lanes(model_kind: str, cuda: bool, live_only: bool, share: int, batch: int) -> int:
    """How many model replicas (lanes, see :mod:`streamyolo.inference.lanes`) each worker
    runs for ``lanes: auto``: one per core of the worker's share of the CPU, at most
    ``batch``, for a ``"pytorch"`` or ``"openvino"`` model on a CPU with lossless streams;
    else 1.

    Replicas side by side, one core each, use the cores at least as well as one model on
    all of them: on 2 cores, one 1080p file through one worker with YOLO11n in OpenVINO went
    from 38.3 to 43.6 frames/s (mean of 6 interleaved pairs); yolo26n in PyTorch ran level
    (auto / lanes 1 = 0.95 over 3 rounds). PyTorch had seemed to gain 1.3-1.6 x, but one
    model's 2 torch threads were then really 1: Ultralytics reset them when the model was
    built (fixed; see ``UltralyticsDetector.warmup``). Lanes also let a worker that has
    finished lend its cores (see ``lends_lanes``). Live streams on a CPU run one frame per
    forward pass, which a replica cannot split, so they keep one model with every thread;
    but a live stream with ``tiles`` gives each pass several pictures, and counts as lossless
    here (one 1080p live stream, ``tiles: 3x3``, YOLO11n in OpenVINO, 2 cores: 5.5 frames/s
    detected with 2 lanes against 4.1 with 1, p99 age 264-293 ms against 313-350). Other
    formats (ONNX, TensorRT …) are not measured and keep one model.

    >>> auto_lanes("pytorch", cuda=False, live_only=False, share=2, batch=4)
    2
    >>> auto_lanes("openvino", cuda=False, live_only=True, share=2, batch=4)
    1
    """
    if not lanes_pay(model_kind, cuda, live_only):
        return 1
    return max(1, min(share, batch))


def lanes_pay(model_kind: str, cuda: bool, live_only: bool) -> bool:
    """Whether replicas side by side beat one model (see :func:`auto_lanes`)."""
    return not cuda and not live_only and model_kind in ("pytorch", "openvino")


def lends_lanes(lanes: int, workers: int, batch: int, thread_workers: bool) -> bool:
    """Whether, for ``lanes: auto``, workers that have finished lend their lanes to the
    others (see :class:`~streamyolo.inference.lanes.IdleLanes`): at least 2 workers, and
    batches with room for more lanes than a worker has. A process worker lends its child
    process whole (its lanes inside it), so to the others it is one lane.

    >>> lends_lanes(lanes=1, workers=2, batch=4, thread_workers=True), lends_lanes(4, 2, 4, True)
    (True, False)
    >>> lends_lanes(lanes=4, workers=2, batch=4, thread_workers=False)
    True
    """
    return workers >= 2 and (lanes if thread_workers else 1) < batch


class PipelineConfig(_Strict):
    """Everything a run needs. Field names are the config keys and the CLI flags."""

    streams: list[StreamConfig] = Field(default_factory=list)
    model: str = DEFAULT_MODEL
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps|intel:\w+)$")
    conf: float = Field(default=0.25, ge=0, le=1)
    iou: float = Field(default=0.7, ge=0, le=1)
    imgsz: int | tuple[int, int] = 640
    classes: list[Annotated[int, Field(ge=0)]] | None = None
    class_conf: dict[Annotated[int, Field(ge=0)], Annotated[float, Field(ge=0, le=1)]] | None = None
    """Confidence thresholds of some classes (ids or names) in place of ``conf``: ``{person:
    0.6, bicycle: 0.3}`` keeps people above 0.6, bicycles above 0.3 and the others above
    ``conf`` (the model detects at the lowest of them)."""
    blur: list[Annotated[int, Field(ge=0)]] | None = None
    """Classes (ids or names) whose objects are blurred in every picture the outputs show:
    recordings, clips, snapshots, the page, the window (and never cropped); as Ultralytics'
    ``ObjectBlurrer``."""
    motion: MotionConfig | None = None
    """Every stream's ``motion`` unless it sets its own: run the model only on frames where
    something moved (``true``, or settings: :class:`MotionConfig`)."""
    tiles: TilesConfig | None = None
    """Every stream's ``tiles`` unless it sets its own: the model also runs on overlapping
    parts of each picture (``3x2``, or settings: :class:`TilesConfig`)."""
    half: bool = False
    max_det: int = Field(default=300, ge=1, le=10000)
    workers: int | Literal["auto"] = "auto"
    """Inference workers, each with its own model; ``auto``: see :func:`auto_workers`."""
    lanes: int | Literal["auto"] = "auto"
    """Model replicas per worker, each on a thread of its own, that split the worker's batch
    between them; ``auto``: see :func:`auto_lanes` (1 unless a PyTorch or OpenVINO model runs
    lossless streams on a CPU)."""
    batch: int = Field(default=4, ge=1, le=256)
    """Most frames one forward pass takes; a worker batches the ready frames of its streams."""
    model_sharing: Literal["per-thread", "locked"] = "per-thread"
    pytorch_cpu: Literal["auto", "torch", "openvino"] = "auto"
    """What runs a PyTorch model's network on a CPU. ``openvino``: the network is converted
    to OpenVINO (FP32, the same numbers) once per set of weights, kept in ``model_cache``, and
    run by OpenVINO's CPU kernels: yolo26n's forward pass ran 1.6-2.1 x faster than in PyTorch
    alone on our 2-core box, and 1.3-1.8 x in the pipeline. ``auto`` (the default): the same
    where the ``openvino`` package is installed, PyTorch where it is not. ``torch``: PyTorch
    always. A network that cannot be converted runs in PyTorch, with a warning. For weights
    files (``.pt``); ignored for YAML architectures, on a GPU and with ``half``."""
    worker_mode: Literal["thread", "process"] = "thread"
    """``thread``: every inference worker is a thread of this process with its own model.
    ``process``: each worker's model runs in a child process of its own; frames reach it
    through shared memory. Results and accounting are the same."""
    process_restarts: int = Field(default=3, ge=0, le=1000)
    """``worker_mode: process``: when a worker's child process dies (a segfault, the OOM
    killer) or hangs, a new one is started and runs the batch again, up to this many times in
    a row; then the batch runs again stream by stream, and the stream at fault fails (the worker
    when the model is). 0: the worker fails at the first death."""
    threads: int | None = Field(default=None, ge=1, le=1024)
    """Torch intra-op threads (OpenVINO inference threads) per model; by default the CPU cores
    divided between the workers and their lanes."""
    live_hold: bool = True
    """Live streams under overload: a worker may wait (at most half a frame interval and half
    a forward pass) for a frame about to arrive rather than spend a forward pass on a stale
    one. Lowers frame age (OpenVINO YOLO11n, 1 worker, 4 × 30 fps: p99 about 20 % lower) at
    about the same frames processed; ``false`` takes whatever frame is there at once."""
    model_cache: str = Field(default="auto", min_length=1)
    """Folder where OpenVINO keeps the workers' compiled models, so later starts load them
    instead of compiling (YOLO11n, one worker: start-up 0.46-0.50 s instead of 0.72-0.97 s).
    ``auto``: the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``streamyolo/openvino``); ``off``: compile every time."""
    record: Path | None = None
    record_mode: Literal["annotated", "original"] = "annotated"
    """What the streams' recordings hold: ``annotated``, the pictures as shown (boxes, lines,
    zones, the stream's name and time), encoded as H.264; ``original``, the video each camera
    (file, URL) sent, its compressed packets copied as they came: no encoding, the camera's
    own quality and every frame it sent, without drawings. A stream's ``record`` may differ."""
    record_preset: str = "ultrafast"
    """x264 preset: ``ultrafast`` costs the least CPU (measured: 6.7 ms per 1080p frame against 10.7 for
    ``superfast``) for bigger files; slower presets make smaller files."""
    record_crf: int = Field(default=23, ge=0, le=51)
    record_codec: Literal["auto", "libx264", "h264_nvenc"] = "auto"
    """``auto``: NVENC on a CUDA box where it opens, else libx264."""
    record_segment: float | None = None
    """Seconds of video per recording file (also written ``10m``, ``1h``): each stream's
    recording is cut into files ``<stream>-YYYYmmdd-HHMMSS.mp4`` (the wall-clock time of their
    first frame); unset: one file per stream and run, ``<stream>.mp4``."""
    record_keep: float | None = None
    """With ``record_segment``: each recorded stream's segment files older than this many
    seconds (finished that long ago) are deleted as new ones finish; also written ``90d``,
    ``12h``, ``30m`` or ``45s``. Unset: nothing is deleted."""
    record_keep_objects: float | None = None
    """With ``record_keep``: segment files in which the model saw objects (a stream's kept ones,
    after its filters and masks; of ``record_objects`` only, when given) are kept this long
    instead (``30d``, longer than ``record_keep``): named ``<stream>-YYYYmmdd-HHMMSS-objects.mp4``
    as soon as one is seen."""
    record_objects: list[Annotated[int, Field(ge=0)]] | None = None
    """With ``record_keep_objects``: the classes (ids or names) whose objects mark a segment to
    be kept longer (``[person]``: not the cars going by all day); unset: any class kept."""
    record_max_size: int | None = None
    """With ``record_segment``: the most the folder's segment files (of every stream, this
    run's and earlier runs') may take, in bytes or ``500GB``, ``1.5TB``, ``800MB``: the oldest
    are deleted as new ones start, whichever stream they belong to. With ``record_keep`` too,
    whichever limit comes first. Unset: no limit."""
    overwrite: bool = False
    """Replace an earlier run's recordings and start the JSONL and stats files and the
    heatmaps afresh. By default nothing is lost: a recording whose name is taken gets the
    first free ``-2``, ``-3`` …, the JSONL and stats files are appended to, and each stream's
    heat goes on from the earlier runs'."""
    jsonl: Path | None = None
    jsonl_keep: float | None = None
    """With ``jsonl``: keep its days this long (``7d``): at midnight the day's lines are moved to
    ``<file>-YYYYmmdd`` and compressed (``.gz``), and days older than this deleted
    (:mod:`streamyolo.sinks.days`). Unset: one file, growing (``logrotate`` may rotate it)."""
    summary: Path | None = None
    switches_file: Path | None = None
    """A JSON file where the streams' switches (detection, recording) are kept across runs: one
    switched off stays off after a restart (:mod:`streamyolo.pipeline.switches`)."""
    stats: Path | None = None
    """JSON lines of per-stream status (state, error, reconnects, frame age …) every status interval."""
    stats_keep: float | None = None
    """With ``stats``: keep its days this long, as ``jsonl_keep``."""
    events: Path | None = None
    """JSON lines of events as they happen: lines crossed, zones entered and left (tracked
    streams), streams up and down (:mod:`streamyolo.sinks.events`)."""
    events_keep: float | None = None
    """With ``events``: keep its days this long, as ``jsonl_keep`` (searched as one file)."""
    webhook: str | None = None
    """``http(s)://`` URL every event is POSTed to, as JSON (a login in the URL is sent as HTTP Basic)."""
    mqtt: str | None = None
    """``mqtt://[user:password@]host[:port][/prefix]`` (or ``mqtts://``): every event is published
    there, to ``<prefix>/<stream>/<event>`` (:mod:`streamyolo.sinks.mqtt`)."""
    webhook_format: WebhookFormat = "json"
    """What each POST to the webhook is (:mod:`streamyolo.sinks.webhook`): the event's JSON;
    ``text``: the event as a line a person reads, with ntfy's headers (a phone's notification
    through ntfy); ``slack`` or ``discord``: the message those (and Mattermost, Rocket.Chat,
    Google Chat: ``slack``) take from an incoming webhook."""
    webhook_events: list[EventKind] | None = None
    """The events the webhook gets (``line``, ``enter``, ``leave``, ``linger``, ``state``); unset:
    all. ``[state, linger]``: cameras down and back, and loiterers, without every passer-by."""
    webhook_cooldown: Seconds | None = None
    """The webhook's ``cooldown`` (as a ``webhooks`` entry's: a stream's object events at most one
    per so long)."""
    webhook_down_after: Seconds | None = None
    """The webhook's ``down_after`` (as a ``webhooks`` entry's: a camera down sent once down so long)."""
    webhook_priority: Priority | None = None
    """The webhook's ``priority`` (as a ``webhooks`` entry's: how its messages ring a phone)."""
    mqtt_events: list[EventKind] | None = None
    """The events the MQTT broker gets, likewise."""
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    """More webhooks, each with the events it gets (:class:`WebhookConfig`: ``url``, ``format``,
    ``events``, ``streams``, ``classes``, ``cooldown``, ``down_after``), beside ``webhook``."""
    emails: list[EmailConfig] = Field(default_factory=list)
    """Events as emails (:class:`EmailConfig`: ``server``, ``to``, ``sender``, and which events,
    as ``webhooks``), each with its snapshot attached."""
    mqtt_discovery: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
    """Home Assistant's MQTT discovery prefix (``homeassistant``): each stream shows up there
    as a device, with its connection, snapshots, zones and counting lines
    (:mod:`streamyolo.sinks.mqtt`). Needs ``mqtt``."""
    snapshots: Path | None = None
    """Folder where every frame with events is saved as an annotated JPEG, named in its events."""
    snapshots_keep: float | None = None
    """With ``snapshots``: delete snapshots older than this (``30d``, ``12h``, or seconds), this
    run's and earlier runs'; nothing else in the folder. Unset: nothing is deleted."""
    clips: Path | None = None
    """Folder where a video clip of each moment with events is saved, from ``clip_before``
    seconds before its first event to ``clip_after`` seconds after its last, named in its
    events (:mod:`streamyolo.sinks.clips`)."""
    clip_mode: Literal["annotated", "original"] = "annotated"
    """With ``clips``: what they hold: ``annotated``, the pictures as shown (boxes, lines,
    zones), encoded as H.264 (an encoder per clipped stream, running all the time: the seconds
    before an event are gone when it comes); ``original``, the video each camera (file, URL)
    sent around the moment, its compressed packets copied (with its sound): no encoding, the
    camera's own quality and every frame it sent, without drawings."""
    clip_before: float = Field(default=5.0, ge=0, le=60)
    """With ``clips``: seconds of video before an event (also written ``5s``)."""
    clip_after: float = Field(default=5.0, ge=0, le=600)
    """With ``clips``: seconds of video after a clip's last event (also written ``1m``)."""
    dataset: Path | None = None
    """A folder for a frame of each stream every ``dataset_every`` seconds with its detections
    as YOLO labels, and ``data.yaml``: training data from one's own cameras
    (:mod:`streamyolo.sinks.dataset`)."""
    dataset_every: float = DATASET_EVERY
    """With ``dataset``: seconds of each stream between the frames kept (``10s``, ``1m``)."""
    dataset_max_size: int | None = None
    """With ``dataset``: the most its pictures and labels may take (``20GB``, ``800MB`` or
    bytes), earlier runs' with this run's; once there, no more frames are kept (nothing is
    deleted: a person may have checked those labels). Unset: no limit."""
    heatmaps: Path | None = None
    """A folder for each stream's heatmap, ``<stream>.png`` (where its objects were over the run),
    written every minute and at the end; with ``web``, the page shows them live
    (:mod:`streamyolo.sinks.heatmap`)."""
    crops: Path | None = None
    """A folder for one picture of each tracked object, cut from the frame it was seen best in
    (needs ``tracker``; :mod:`streamyolo.sinks.crops`)."""
    crops_keep: float | None = None
    """With ``crops``: delete crops older than this (``30d``, ``12h``, seconds)."""
    public_url: str | None = None
    """The web page's address as the receivers of events reach it (``https://box.lan:8443/``):
    events then carry ``snapshot_url`` and ``clip_url``, where the page serves their snapshot
    and clip, for a webhook's or a broker's client to fetch (with ``web_auth``'s login, if set),
    and a recorded stream's ``recording_url``, the page opening its recording at that moment
    (``…/#recording=<stream>@<time>``)."""
    clips_keep: float | None = None
    """With ``clips``: delete clips older than this (``30d``, ``12h``, or seconds), this run's
    and earlier runs'; nothing else in the folder. Unset: nothing is deleted."""
    clips_max_size: int | None = None
    """With ``clips``: the most the folder's clips may take (``50GB``, ``800MB`` or bytes); the
    oldest are deleted beyond it. Unset: no limit."""
    display: bool | None = None
    """Tiled window: ``None`` shows it only where a display exists."""
    web: str | None = None
    """``[HOST:]PORT``: serve a web page of every stream (video and live numbers) there; the
    host is 127.0.0.1 unless given (``0.0.0.0``: every interface), port 0 picks a free one."""
    web_fps: float = Field(default=10.0, gt=0, le=120)
    """Most frames per second the web page's video sends per stream."""
    web_controls: bool = True
    """The web page's switches (each stream's detection and recording); ``false``: a page to
    watch only, whose switch requests are refused."""
    tracker: str | None = None
    """Track objects per stream: ``bytetrack``, ``botsort`` or a tracker YAML (Ultralytics'
    format); detections then carry ids, and conf defaults to 0.1 as in ``model.track()``."""
    confirm_frames: int = Field(default=1, ge=1, le=100)
    """With ``tracker``: an object is kept (shown, counted, in zones, lines, events and every
    output) once it has been tracked in this many frames in a row; before, it is not there (a
    shadow or a bird taken for a person for a frame or two makes no event). 1: from its first."""
    env_file: Path | None = None
    """A file of ``NAME=value`` lines (systemd's ``EnvironmentFile=`` format: ``#`` comments,
    values optionally quoted) whose variables ``${NAME}`` in the config file takes, before the
    process's own, read again at every reload: a camera's new password in it takes effect with a
    reload, no restart."""
    web_auth: SecretStr | None = None
    """``USER:PASSWORD`` the web page asks every request for (HTTP Basic); best given as
    ``STREAMYOLO_WEB_AUTH`` in the environment, which a process list does not show."""
    web_cert: Path | None = None
    """PEM certificate (chain) to serve the web page over HTTPS; its key in ``web_key`` or in the same file."""
    web_key: Path | None = None
    show_boxes: bool = True
    """Draw each object's box and label on the pictures (Ultralytics' option of the same name)."""
    show_labels: bool = True
    """Label each box with its class, track id and speed."""
    show_conf: bool = True
    """Add each box's confidence to its label."""
    line_width: int | None = Field(default=None, ge=1, le=64)
    """Lines this many pixels wide (default: by the picture's size)."""
    overlay: bool = True
    timezone: str | None = None
    """The time zone the run's clock follows (an IANA name: ``Europe/Berlin``): its schedules,
    the pictures' date and time, the recordings' and snapshots' names, the log, the events'
    days; unset: the box's (``TZ``; a container's is UTC unless told)."""
    duration: float | None = Field(default=None, gt=0)
    status_interval: float = Field(default=1.0, ge=0)
    """Seconds between the live status table's refreshes (0: none)."""
    stats_interval: float | None = Field(default=None, ge=0)
    """Seconds between the stats file's lines (0: only its last, as the run ends); unset: as
    ``status_interval``, or every :data:`STATS_EVERY` seconds when that is 0 (a service that
    prints no status table still writes its stats, which ``streamyolo status`` reads)."""
    hang_warning: float = Field(default=60.0, ge=0, le=86400)
    """Seconds one forward pass (or building the models at start) may take before the log
    warns that the worker may be hung, with where every inference thread is (0: never)."""
    overload_warning: float = Field(default=60.0, ge=0, le=86400)
    """Seconds over which the log warns when most frames of the live streams were skipped (the
    machine cannot keep up), and says when it keeps up again (0: never)."""

    @field_validator("motion", mode="before")
    @classmethod
    def _motion(cls, value: Any) -> Any:
        return MotionConfig() if value is True else None if value is False else value

    @field_validator("tiles", mode="before")
    @classmethod
    def _tiles(cls, value: Any) -> Any:
        return None if value is False else _tiles(value)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _named_model(value)

    @field_validator("workers", "lanes", mode="before")
    @classmethod
    def _count_or_auto(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if value == "auto" or (type(value) is int and 1 <= value <= 64):
            return value
        raise ValueError("must be a whole number from 1 to 64, or 'auto'")

    @model_validator(mode="after")
    def _one_model_per_process(self, info: ValidationInfo) -> PipelineConfig:
        if self.model_sharing == "locked" and self.worker_mode == "process":
            raise ValueError("config keys 'model_sharing' and 'worker_mode': model_sharing 'locked' cannot be "
                             "used with worker_mode 'process' (one model cannot be shared between processes; "
                             "use 'per-thread')")
        if self.model_sharing == "locked" and self.lanes not in ("auto", 1):
            raise ValueError("config keys 'lanes' and 'model_sharing': lanes need a model per lane; "
                             "model_sharing 'locked' shares one (use 'per-thread', or lanes: 1)")
        counting = next((i for i, stream in enumerate(self.streams) if stream.lines), None)
        if counting is not None and self.tracker is None:
            raise ValueError(f"config keys 'streams.{counting}.lines' and 'tracker': counting lines follow track "
                             "ids; set tracker (bytetrack)")
        lingering = next((i for i, stream in enumerate(self.streams)
                          if any(z.linger is not None for z in (stream.zones or {}).values())), None)
        if lingering is not None and self.tracker is None:
            raise ValueError(f"config keys 'streams.{lingering}.zones' and 'tracker': a zone's linger follows "
                             "track ids; set tracker (bytetrack)")
        armed = next((i for i, stream in enumerate(self.streams)
                      if any(z.schedule is not None and z.crowd is None for z in (stream.zones or {}).values())),
                     None)  # (a crowd is told without track ids)
        if armed is not None and self.tracker is None:
            raise ValueError(f"config keys 'streams.{armed}.zones' and 'tracker': a zone's schedule says when it "
                             "watches who enters and leaves, which follows track ids; set tracker (bytetrack)")
        measuring = next((i for i, stream in enumerate(self.streams)
                          if any(z.size is not None for z in (stream.zones or {}).values())), None)
        if measuring is not None and self.tracker is None:
            raise ValueError(f"config keys 'streams.{measuring}.zones' and 'tracker': a zone measures the speed of "
                             "each object it follows by its track id; set tracker (bytetrack)")
        if self.mqtt_discovery is not None and self.mqtt is None:
            raise ValueError("config keys 'mqtt_discovery' and 'mqtt': Home Assistant finds the streams through the "
                             "MQTT broker; give mqtt too")
        if self.webhook is not None and self.webhook_format in ("telegram", "pushover"):
            from streamyolo.sinks.webhook import check_webhook

            try:
                check_webhook(self.webhook, self.webhook_format)
            except ValueError as exc:
                raise ValueError(f"config key 'webhook': {exc}") from None
        for key in ("webhook_format", "webhook_cooldown", "webhook_down_after", "webhook_priority"):
            if key in self.model_fields_set and self.webhook is None:
                raise ValueError(f"config keys {key!r} and 'webhook': {key} says how the webhook is sent events; "
                                 "give webhook too")
        if self.webhook_priority is not None and self.webhook_format not in RINGING:
            raise ValueError(f"config keys 'webhook_priority' and 'webhook_format': a {self.webhook_format} "
                             "webhook's messages carry no priority (text, telegram and pushover do)")
        for key, target in (("webhook_events", "webhook"), ("mqtt_events", "mqtt")):
            if getattr(self, key) is not None and getattr(self, target) is None:
                raise ValueError(f"config keys {key!r} and {target!r}: {key} says which events go to the "
                                 f"{target}; give {target} too")
        confirming = next((f"streams.{i}.confirm_frames" for i, stream in enumerate(self.streams)
                           if (stream.confirm_frames or 1) > 1), "confirm_frames" if self.confirm_frames > 1 else None)
        if confirming is not None and self.tracker is None:
            raise ValueError(f"config keys {confirming!r} and 'tracker': an object is confirmed by being tracked in "
                             "frames in a row; set tracker (bytetrack)")
        if self.crops is not None and self.tracker is None:
            raise ValueError("config keys 'crops' and 'tracker': one picture of each object follows its track id; "
                             "set tracker (bytetrack)")
        if "dataset_every" in self.model_fields_set and self.dataset is None:
            raise ValueError("config keys 'dataset_every' and 'dataset': dataset_every says how often the dataset "
                             "keeps a frame; give dataset too")
        if self.dataset_max_size is not None and self.dataset is None:
            raise ValueError("config keys 'dataset_max_size' and 'dataset': dataset_max_size is how much the dataset "
                             "may take; give dataset too")
        if self.crops_keep is not None and self.crops is None:
            raise ValueError("config keys 'crops_keep' and 'crops': crops_keep deletes old crops; give crops too")
        for name, file, days in (("jsonl", self.jsonl, self.jsonl_keep), ("stats", self.stats, self.stats_keep),
                                 ("events", self.events, self.events_keep)):
            if days is not None and file is None:
                raise ValueError(f"config keys '{name}_keep' and '{name}': {name}_keep keeps the {name} file's days; "
                                 f"give {name} too")
        if self.snapshots_keep is not None and self.snapshots is None:
            raise ValueError("config keys 'snapshots_keep' and 'snapshots': snapshots_keep deletes old snapshots; "
                             "give snapshots too")
        for index, stream in enumerate(self.streams):
            kept = stream.classes if stream.classes is not None else self.classes
            for key, asked, done in (("blur", self.blur_of(stream), "blurred"),
                                     ("record_objects", self.record_objects_of(stream) or (), "recorded as objects")):
                unseen = sorted(set(asked) - set(kept)) if kept is not None else []
                if unseen:
                    where = f"streams.{index}.{key}" if getattr(stream, key) is not None else key
                    raise ValueError(f"config key {where!r}: class(es) {unseen} are not among the stream's classes "
                                     f"{sorted(kept or ())}: they would never be found, so never {done}; keep "
                                     "them too")
            counters: list[tuple[str, str, LineConfig | ZoneConfig | MaskConfig]] = [
                *(("lines", name, line) for name, line in (stream.lines or {}).items()),
                *(("zones", name, zone) for name, zone in (stream.zones or {}).items()),
                *(("masks", name, mask) for name, mask in (stream.masks or {}).items())]
            for kind, name, counter in counters:
                never = sorted(set(counter.classes or ()) - set(kept)) if kept is not None else []
                if never:
                    what = {"zones": "zone would never hold", "lines": "line would never count",
                            "masks": "mask would never see"}[kind]
                    raise ValueError(f"config key 'streams.{index}.{kind}.{name}.classes': class(es) {never} are not "
                                     f"among the stream's classes {sorted(kept or ())}: the {what} them")
        if self.clips is not None and (self.tracker is None or not any(s.lines or s.zones for s in self.streams)):
            raise ValueError("config key 'clips': a clip is made around a stream's events (a counting line crossed, "
                             "a zone entered or left), and no stream can have any; give a stream lines or zones, "
                             "and set tracker")
        if self.public_url is not None and (self.web is None or (self.snapshots is None and self.clips is None
                                                                 and self.record is None)):
            raise ValueError("config key 'public_url': it is where the web page serves the events' snapshots, "
                             "clips and recordings; give web, and snapshots, clips or record, too")
        for key in ("clip_mode", "clip_before", "clip_after", "clips_keep", "clips_max_size"):
            if key in self.model_fields_set and getattr(self, key) is not None and self.clips is None:
                raise ValueError(f"config keys {key!r} and 'clips': {key} is about event clips; give clips too")
        _check_apart(self, (info.context or {}).get("config_file"))
        for index, stream in enumerate(self.streams):
            if stream.schedule is not None and stream.schedule.record is not None and self.record_of(stream) is None:
                given = "no record folder" if self.record is None else "record: false"
                raise ValueError(f"config key 'streams.{index}.schedule.record': it says when the stream's recording "
                                 f"is on, and the stream is not recorded ({given})")
            if stream.record_source is not None and (self.record is None or stream.record in (False, "annotated")):
                given = "no record folder" if self.record is None else f"record: {str(stream.record).lower()}"
                raise ValueError(f"config key 'streams.{index}.record_source': it is recorded as it comes, into the "
                                 f"record folder, and the stream has {given}")
        if self.record is not None and self.streams and not any(stream.record for stream in self.streams):
            raise ValueError("config key 'record': every stream says record: false; drop record, or record a stream")
        for index, stream in enumerate(self.streams):
            shown = "privacy areas" if stream.privacy else "blurred objects" if self.blur_of(stream) else None
            if shown is not None and self.record_of(stream) == "original":
                key = (f"streams.{index}.record_source" if stream.record_source is not None
                       else f"streams.{index}.record" if stream.record == "original" else "record_mode")
                raise ValueError(f"config key {key!r}: the original video would show the stream's {shown}; "
                                 "record this stream annotated (record: annotated)")
            if shown is not None and self.clips_of(stream) == "original":
                raise ValueError(f"config key 'clip_mode': the original video would show the stream's {shown} "
                                 f"(stream {stream.name or index!r}); give clip_mode: annotated")
        for key in ("record_keep", "record_max_size"):
            if getattr(self, key) is not None and self.record_segment is None:
                raise ValueError(f"config keys {key!r} and 'record_segment': {key} deletes old segment "
                                 "files; give record_segment too (one file per run is never deleted)")
        _longer(self.record_keep, self.record_keep_objects, "")
        if self.record_objects is not None and self.record_keep_objects is None and not any(
                s.record_keep_objects is not None for s in self.streams):
            raise ValueError("config keys 'record_objects' and 'record_keep_objects': record_objects says which "
                             "objects keep a segment longer; give record_keep_objects too")
        for index, stream in enumerate(self.streams):
            where = f"streams.{index}."
            for key in ("record_keep", "record_keep_objects"):
                if getattr(stream, key) is None:
                    continue
                if self.record_of(stream) is None:
                    raise ValueError(f"config key '{where}{key}': the stream is not recorded "
                                     f"({'record: false' if stream.record is False else 'no record folder'})")
                if self.record_segment is None:
                    raise ValueError(f"config keys '{where}{key}' and 'record_segment': {key} deletes old segment "
                                     "files; give record_segment too (one file per run is never deleted)")
            if stream.record_keep is not None or stream.record_keep_objects is not None:
                _longer(*self.record_keep_of(stream), where)
            if stream.record_objects is not None and self.record_keep_of(stream)[1] is None:
                raise ValueError("config keys 'record_objects' and 'record_keep_objects': record_objects says which "
                                 "objects keep a segment longer; give record_keep_objects too"
                                 + (f" (stream {stream.name or index!r})" if len(self.streams) > 1 else ""))
        return self

    @field_validator("record_keep", "record_keep_objects", "snapshots_keep", "clips_keep", "crops_keep", "jsonl_keep",
                     "stats_keep", "events_keep", mode="before")
    @classmethod
    def _span(cls, value: Any) -> Any:
        return _span(value)

    @field_validator("record_segment", mode="before")
    @classmethod
    def _segment(cls, value: Any) -> Any:
        from streamyolo.clock import parse_seconds

        return None if value is None else parse_seconds(value, most=SEGMENT_MOST)

    @field_validator("record_max_size", "clips_max_size", "dataset_max_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        from streamyolo.sinks.base import parse_size

        return None if value is None else parse_size(value)

    @field_validator("dataset_every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        from streamyolo.clock import parse_seconds

        return parse_seconds(value, least=0.01)

    @field_validator("clip_before", "clip_after", mode="before")
    @classmethod
    def _short_span(cls, value: Any) -> Any:
        from streamyolo.clock import parse_seconds

        return parse_seconds(value, least=0)

    @field_validator("web", mode="before")
    @classmethod
    def _web(cls, value: Any) -> str | None:
        if value is None:
            return None
        from streamyolo.sinks.web import split_address

        if split_address(value) is None:
            raise ValueError("expected PORT or HOST:PORT, with a port from 0 to 65535")
        return str(value)

    @field_validator("webhook", "mqtt")
    @classmethod
    def _event_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            from streamyolo.sinks.mqtt import parse_mqtt
            from streamyolo.sinks.webhook import check_webhook

            (check_webhook if info.field_name == "webhook" else parse_mqtt)(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from streamyolo.sinks.base import split_url

        parts = split_url(value, ("http", "https"))
        if parts.username is not None or parts.password is not None:
            raise ValueError("must hold no login: it goes into every event (receivers log in with web_auth's)")
        return value if value.endswith("/") else value + "/"

    @field_validator("tracker")
    @classmethod
    def _tracker(cls, value: str | None) -> str | None:
        if value is not None:
            from streamyolo.inference.tracking import tracker_settings

            tracker_settings(value)
        return value

    @property
    def run_conf(self) -> float:
        """The run's confidence threshold: ``conf``, or 0.1 for a tracked run that did not set
        it (as ``model.track()``)."""
        if self.tracker is not None and "conf" not in self.model_fields_set:
            from streamyolo.inference.tracking import TRACKING_CONF

            return TRACKING_CONF
        return self.conf

    def record_of(self, stream: StreamConfig) -> Literal["annotated", "original"] | None:
        """How ``stream`` is recorded (``None``: it is not)."""
        if self.record is None or stream.record is False:
            return None
        if stream.record_source is not None:
            return "original"
        return self.record_mode if stream.record is True else stream.record

    def clips_of(self, stream: StreamConfig) -> Literal["annotated", "original"] | None:
        """How ``stream``'s event clips are made (``None``: it has none: no lines, no zones)."""
        if self.clips is None or not (stream.lines or stream.zones):
            return None
        return self.clip_mode

    def class_conf_of(self, stream: StreamConfig) -> dict[int, float]:
        """``stream``'s thresholds by class: its own ``class_conf``, else the run's."""
        return dict(stream.class_conf if stream.class_conf is not None else self.class_conf or {})

    def lowest_conf(self, stream: StreamConfig) -> float:
        """The lowest threshold of ``stream``'s: its ``conf``, or one of its ``class_conf``."""
        return min([self.own(stream)[0], *self.class_conf_of(stream).values()])

    def blur_of(self, stream: StreamConfig) -> list[int]:
        """The classes blurred in ``stream``'s pictures: its own ``blur``, else the run's."""
        return list(stream.blur if stream.blur is not None else self.blur or ())

    def record_objects_of(self, stream: StreamConfig) -> frozenset[int] | None:
        """The classes whose objects mark ``stream``'s segments (``record_keep_objects``): its
        own ``record_objects``, else the run's; ``None``: any."""
        classes = stream.record_objects if stream.record_objects is not None else self.record_objects
        return None if classes is None else frozenset(classes)

    def all_webhooks(self) -> list[WebhookConfig]:
        """Every webhook: ``webhook`` (with ``webhook_format`` and ``webhook_events``) first, then ``webhooks``."""
        first = ([WebhookConfig(url=self.webhook, format=self.webhook_format, events=self.webhook_events,
                                cooldown=self.webhook_cooldown, down_after=self.webhook_down_after,
                                priority=self.webhook_priority)]
                 if self.webhook is not None else [])
        return [*first, *self.webhooks]

    def use_timezone(self) -> None:
        """Make the run's ``timezone`` this process's local time (and its children's), before
        anything reads the clock; without one, nothing."""
        from streamyolo.clock import use_timezone

        if self.timezone is not None:
            try:
                use_timezone(self.timezone)
            except ValueError as exc:
                raise ConfigError(f"config key 'timezone': {exc}") from None

    def record_keep_of(self, stream: StreamConfig) -> tuple[float | None, float | None]:
        """How long ``stream``'s segment files are kept, and those with objects (seconds;
        ``None``: not deleted for their age): its own ``record_keep`` and
        ``record_keep_objects``, else the run's."""
        return (stream.record_keep if stream.record_keep is not None else self.record_keep,
                stream.record_keep_objects if stream.record_keep_objects is not None else self.record_keep_objects)

    def confirm_frames_of(self, stream: StreamConfig) -> int:
        """The frames in a row an object of ``stream`` is tracked in before it is kept (its
        own ``confirm_frames``, else the run's)."""
        return self.confirm_frames if stream.confirm_frames is None else stream.confirm_frames

    def stats_every(self) -> float:
        """Seconds between the stats file's lines (``stats_interval``; 0: only as the run ends)."""
        if self.stats_interval is not None:
            return self.stats_interval
        return self.status_interval or STATS_EVERY

    def motion_of(self, stream: StreamConfig) -> MotionConfig | None:
        """``stream``'s motion settings (its own, else the run's), ``None``: every frame detected."""
        own = stream.motion
        return self.motion if own is None else own or None

    def tiles_of(self, stream: StreamConfig) -> TileSettings | None:
        """``stream``'s tiles (its own, else the run's), ``None``: the whole picture alone."""
        own = stream.tiles
        tiles = self.tiles if own is None else own or None
        if tiles is None and stream.region is None:
            return None
        imgsz = self.imgsz_of(stream)
        size = (imgsz, imgsz) if isinstance(imgsz, int) else (imgsz[0], imgsz[1])
        if tiles is None:  # the region alone
            return TileSettings(1, 1, whole=False, most=self.max_det, size=size, region=stream.region_box,
                                outline=stream.region_outline)
        settings = tiles.settings(self.max_det, size)
        return settings if stream.region is None else replace(settings, whole=False, region=stream.region_box,
                                                              outline=stream.region_outline)

    def model_of(self, stream: StreamConfig) -> str:
        """The model ``stream`` runs: its own, else the run's."""
        return stream.model if stream.model is not None else self.model

    @property
    def models(self) -> list[str]:
        """The models the streams run, each once, in the order of the first stream to use it
        (the run's ``model`` alone when no stream names one of its own)."""
        return list(dict.fromkeys(self.model_of(s) for s in self.streams if s.enabled)) or [self.model]

    def running(self, model: str | None = None) -> list[StreamConfig]:
        """The streams that run ``model`` (``None``: every stream), of those ``enabled``."""
        return [s for s in self.streams if s.enabled and (model is None or self.model_of(s) == model)]

    def unknown_classes(self, names: Mapping[int, str], model: str | None = None) -> str | None:
        """What a config asks of class ids the model does not have (``names``: its classes), as
        the config error to raise: a model trained on other classes, a COCO id given to a
        one-class pose model. Only the streams that run ``model`` are asked about (``None``:
        every stream), and the run's ``classes`` where one of them keeps it. ``None`` when
        every id is the model's.

        >>> build_config({"streams": [{"source": "a", "classes": [0, 7]}]}).unknown_classes({0: "person", 1: "car"})
        "config key 'streams.0.classes': class 7 is not one of the model's 2 classes (0 person, 1 car)"
        """
        keys: dict[str, list[int] | None] = {} if self.streams else {"classes": self.classes}
        for index, stream in enumerate(self.streams):
            if not stream.enabled or (model is not None and self.model_of(stream) != model):
                continue
            for key in _CLASS_KEYS:
                if getattr(stream, key) is None:
                    keys[key] = getattr(self, key)
                else:
                    keys[f"streams.{index}.{key}"] = getattr(stream, key)
            for kind in ("lines", "zones", "masks"):
                for name, shape in (getattr(stream, kind) or {}).items():
                    keys[f"streams.{index}.{kind}.{name}.classes"] = getattr(shape, "classes", None)
        if model in (None, self.model):
            keys.update({f"{key}.{index}.classes": output.classes for key in _DELIVERED
                         for index, output in enumerate(getattr(self, key))})
        whose = (f"the model's {len(names)} classes" if model is None or len(self.models) == 1
                 else f"the {len(names)} classes of model {model!r}")
        for key, classes in keys.items():
            unknown = sorted(set(classes or ()) - set(names))
            if unknown:
                which = f"class {unknown[0]} is" if len(unknown) == 1 else f"classes {unknown} are"
                return f"config key {key!r}: {which} not one of {whose} ({shown_classes(names)})"
        return None

    def own(self, stream: StreamConfig) -> tuple[float, list[int] | None]:
        """``stream``'s ``conf`` and ``classes``: its own, else the run's."""
        return (stream.conf if stream.conf is not None else self.run_conf,
                stream.classes if stream.classes is not None else self.classes)

    def detect_conf(self, model: str | None = None) -> float:
        """The threshold ``model`` detects at (``None``: every model): the lowest of its
        streams' (each stream then keeps what its own lets through: :meth:`stream_filter`)."""
        return min([self.lowest_conf(s) for s in self.running(model)] or
                   [min([self.run_conf, *(self.class_conf or {}).values()])])

    def detect_classes(self, model: str | None = None) -> tuple[int, ...] | None:
        """The classes ``model`` keeps (``None``: every model): its streams' together, or all
        (``None``) when one of them keeps every class."""
        wanted = [self.own(s)[1] for s in self.running(model)] or [self.classes]
        if any(classes is None for classes in wanted):
            return None
        return tuple(sorted({c for classes in wanted if classes is not None for c in classes}))

    def stream_filter(self, stream: StreamConfig, detects: tuple[float, tuple[int, ...] | None] | None = None
                      ) -> DetectionFilter | None:
        """What ``stream`` keeps of its model's detections, when its own ``conf`` or
        ``classes`` is stricter than what the model detects at (``detects``: its ``conf`` and
        ``classes``; default: what this config has it detect at), or it has ``class_conf``,
        ``min_area`` or ``max_area``; ``None``: all of them."""
        conf, classes = self.own(stream)
        by_class = self.class_conf_of(stream)
        model = self.model_of(stream)
        detect_conf, detect_classes = detects or (self.detect_conf(model), self.detect_classes(model))
        narrower = classes is not None and (detect_classes is None or set(classes) != set(detect_classes))
        sized = stream.min_area is not None or stream.max_area is not None
        if conf <= detect_conf and not narrower and not sized and not by_class:
            return None
        return DetectionFilter(conf, frozenset(classes) if narrower and classes is not None else None,
                               stream.min_area or 0.0, stream.max_area, tuple(sorted(by_class.items())))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        from streamyolo.clock import zone_file

        if value is not None and zone_file(value) is None:
            raise ValueError(f"{value!r} is not a time zone this box knows: an IANA name such as Europe/Berlin or "
                             "America/New_York (from /usr/share/zoneinfo, or the tzdata package)")
        return value

    @field_validator("web_auth")
    @classmethod
    def _web_auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from streamyolo.sinks.web import check_login

            check_login(value.get_secret_value())
        return value

    @field_validator("imgsz")
    @classmethod
    def _imgsz(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        return _image_size(value)

    def imgsz_of(self, stream: StreamConfig) -> int | tuple[int, int]:
        """The input size ``stream``'s model runs at: its own, else the run's."""
        return stream.imgsz if stream.imgsz is not None else self.imgsz


def _named_model(value: Any) -> Any:
    """Refuse a model given as an empty string (``--model ""``), which would load the current folder."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("names no model: give a weights file (.pt), an export (ONNX, OpenVINO, TensorRT), a .yaml "
                         "architecture, or demo")
    return value


def _image_size(value: int | tuple[int, int]) -> int | tuple[int, int]:
    sizes = (value,) if isinstance(value, int) else value
    if any(not 32 <= s <= 8192 for s in sizes):
        raise ValueError("image size must be between 32 and 8192")
    return value


_SECRET_KEYS = frozenset({"web_auth"})  # never repeated in an error, nor YAML-parsed from the environment


OUTPUT_FOLDERS = ("clips", "record", "snapshots", "crops", "heatmaps", "dataset")
"""The run's keys that name a folder it writes in (each of its own: their files' names and
clean-ups are not made to share one)."""
OUTPUT_FILES = ("jsonl", "summary", "stats", "events", "switches_file")
"""The run's keys that name a file it writes."""


def _check_apart(config: PipelineConfig, config_file: Path | None) -> None:
    """Refuse two outputs on one path (the summary written over the JSONL, snapshots among the
    recordings), and an output on what the run reads: the config file, a source, a model, the
    ``env_file`` or the web page's certificate. ``ValueError`` names the keys."""
    seen: dict[Path, str] = {}
    for key in (*OUTPUT_FOLDERS, *OUTPUT_FILES):
        path = getattr(config, key)
        if path is None:
            continue
        other = seen.setdefault(_place(path), key)
        if other != key:
            kind = ("a folder" if {key, other} <= set(OUTPUT_FOLDERS) else "a file" if {key, other} <= set(OUTPUT_FILES)
                    else "a path")
            raise ValueError(f"config keys {other!r} and {key!r}: both are {str(getattr(config, other))!r}; give each "
                             f"{kind} of its own")
    for what, read in _read_by_the_run(config, config_file):
        written = seen.get(_place(read))
        if written is not None:
            raise ValueError(f"config key {written!r}: {str(getattr(config, written))!r} is {what}, which the run "
                             f"reads; give {written} a path of its own")


def _read_by_the_run(config: PipelineConfig, config_file: Path | None) -> list[tuple[str, str | Path]]:
    """What the run reads from local paths: each with what it is (``the config file``)."""
    from streamyolo.errors import StreamYoloError
    from streamyolo.sources.base import SourceKind
    from streamyolo.sources.spec import file_path, source_kind

    read: list[tuple[str, str | Path]] = [("the config file", config_file)] if config_file is not None else []
    read += [(f"the {key}", path) for key in ("env_file", "web_cert", "web_key") if (path := getattr(config, key))]
    read += [("the model", config.model)] if config.model != DEFAULT_MODEL else []
    for index, stream in enumerate(config.streams):
        which = f"stream {stream.name!r}" if stream.name else f"streams.{index}"
        if stream.model is not None and stream.model != DEFAULT_MODEL:
            read.append((f"the model of {which}", stream.model))
        try:
            local = source_kind(stream.source) is SourceKind.FILE and not any(c in stream.source for c in "*?[")
        except (StreamYoloError, ValueError):  # (resolving the streams says what is wrong with it)
            local = False
        if local:
            read.append((f"the source of {which}", file_path(stream.source)))
    return read


def _place(path: str | Path) -> Path:
    """Where ``path`` is (relative to the current folder, ``~`` and links followed): two
    settings that name one file or folder alike have the same place."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # (a loop of links)
        return Path(os.path.abspath(Path(path).expanduser()))


def _format_error(error: Mapping[str, Any], shown: Sequence[Any] | None = None) -> str:
    """A pydantic error as one line naming its key (``shown``: the key's parts, if not the
    error's own location), in words: never a class of ours, nor a password."""
    parts = shown if shown is not None else [part for part in error["loc"] if not _union_tag(str(part))]
    location = ".".join(str(part) for part in parts)
    if not location:  # a check across keys names them itself
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown config key {location!r}" + meant(str(error["loc"][-1]), _keys_at(error["loc"][:-1]))
    message = _in_words(error)
    given = error.get("input")
    secret = location in _SECRET_KEYS
    if isinstance(given, str):
        given = redact_url(given)  # (a camera's URL, a webhook's: never their password)
    shown_value = "" if secret or isinstance(given, dict | list) else f" (got {given!r})"
    return f"config key {location!r}: {message}{shown_value}"


def _in_words(error: Mapping[str, Any]) -> str:
    """What pydantic says is wrong, without its names for our classes and patterns."""
    kind = error["type"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if [str(part) for part in error["loc"]][:1] == ["streams"] and len(error["loc"]) == 2:
            return "must be a source (a file, a URL, a webcam's index …) or a mapping with one"
        return "must be a mapping of keys"
    if kind == "string_pattern_mismatch" and str(error.get("ctx", {}).get("pattern")) == NAME:
        return f"not a name: a name is {NAME_RULE}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return re.sub(r" or (an )?instance of \w+", "", message)


def _keys_at(location: Sequence[Any]) -> list[str]:
    """The keys the config takes at ``location`` (an error's, in the validated data): those an
    unknown key may be a typo of.

    >>> sorted(_keys_at(("streams", 0, "zones", "drive")))[:4]
    ['anchor', 'classes', 'crowd', 'hidden']
    >>> "record_keep" in _keys_at(()), _keys_at(("streams", 0, "nonsense"))
    (True, [])
    """
    kinds: list[Any] = [PipelineConfig]
    for part in location:
        kinds = [after for kind in kinds for member in _members(kind) if (after := _inside(member, part)) is not None]
    return [name for kind in kinds for member in _members(kind) if isinstance(member, type)
            and issubclass(member, BaseModel) for name in member.model_fields]


def _members(kind: Any) -> list[Any]:
    """A type's alternatives: the members of a union (``Annotated`` unwrapped), else itself."""
    if get_origin(kind) is Annotated:
        return _members(get_args(kind)[0])
    if get_origin(kind) in (Union, types.UnionType):
        return [member for arg in get_args(kind) for member in _members(arg)]
    return [kind]


def _inside(kind: Any, part: Any) -> Any:
    """The type of ``kind``'s ``part`` (a model's field, a list's item, a mapping's value), or ``None``."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        field = kind.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    args = get_args(kind)
    if get_origin(kind) in (list, tuple, abc.Sequence) and isinstance(part, int) and args:
        return args[0]
    if get_origin(kind) in (dict, abc.Mapping) and len(args) == 2:
        return args[1]
    return None


def _union_tag(part: str) -> bool:
    """Whether a part of an error's location is pydantic's name for the member of a union it
    tried (``streams.0.motion.MotionConfig.refresh``), not a key the user wrote.

    >>> [p for p in ["streams", "0", "record", "bool", "motion", "MotionConfig", "literal['original']"]
    ...  if not _union_tag(p)]
    ['streams', '0', 'record', 'motion']
    """
    return part in ("function-after", "str", "bool", "int", "float") or part.startswith("literal[") or (
        part in {model.__name__ for model in _Strict.__subclasses__()})


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (which YAML would read as
    the last one alone: a second ``streams:`` dropping the first's cameras without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # (a key that is a list or mapping: YAML's own error says so)
                continue
            if first is not None:
                raise ConfigError(f"line {line}: key {key!r} is given twice (first on line {first}); give it once")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file into a mapping; errors name the file (and the line, for a
    key given twice)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {os.fspath(path)!r}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {os.fspath(path)!r}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # (a SafeLoader)
    except ConfigError as exc:
        raise ConfigError(f"config file {os.fspath(path)!r} {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {os.fspath(path)!r}{where}: not valid YAML") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {os.fspath(path)!r}: top level must be a mapping of keys")
    return data


_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def with_environment(data: Any, environ: Mapping[str, str], origin: str = "", key: str = "") -> Any:
    """The config file's ``data`` with each ``${NAME}`` in its text replaced by environment
    variable ``NAME`` (``$${NAME}``: the text ``${NAME}`` itself): a camera's password kept out
    of the file (``rtsp://admin:${FRONT_PASSWORD}@10.0.0.5/stream1``, set by systemd's
    ``EnvironmentFile=`` or a container's environment). A variable that is not set is an error
    naming the key and the variable (never a value).

    >>> with_environment({"streams": [{"source": "rtsp://u:${PW}@cam/1"}], "x": "$${PW}"}, {"PW": "s3"})
    {'streams': [{'source': 'rtsp://u:s3@cam/1'}], 'x': '${PW}'}
    """
    if isinstance(data, dict):
        return {name: with_environment(value, environ, origin, f"{key}.{name}" if key else str(name))
                for name, value in data.items()}
    if isinstance(data, list):
        return [with_environment(value, environ, origin, f"{key}.{index}") for index, value in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def value(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in environ:
            raise ConfigError(f"config key {key!r}: environment variable {name!r} is not set{origin}")
        return environ[name]

    return _VARIABLE.sub(value, data)


_ASSIGNMENT = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of ``env_file`` (:func:`env_variables`); errors name the file, and the
    line, never a value."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"config key 'env_file': cannot read {os.fspath(path)!r}: {reason}") from None
    try:
        return env_variables(text)
    except ValueError as exc:
        raise ConfigError(f"config key 'env_file': {os.fspath(path)!r} {exc}") from None


def env_variables(text: str) -> dict[str, str]:
    """``NAME=value`` lines (``export NAME=value`` too), blank lines and ``#`` or ``;``
    comments passed over, a value in matching quotes taken without them. Raises ``ValueError``
    naming a line that is not one (never its text: it may hold a password).

    >>> env_variables("# cameras\\nFRONT_PASSWORD='s3:cr@t'\\nexport BACK = plain \\n")
    {'FRONT_PASSWORD': 's3:cr@t', 'BACK': 'plain'}
    """
    variables = {}
    for number, written in enumerate(text.splitlines(), 1):
        line = written.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assignment = _ASSIGNMENT.fullmatch(line)
        if assignment is None:
            raise ValueError(f"line {number} is not NAME=value")
        name, value = assignment.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    return variables


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    scalar = {name for name in PipelineConfig.model_fields if name not in ("streams", "classes")}
    found: dict[str, Any] = {}
    for name in scalar:
        key = ENV_PREFIX + name.upper()
        if key in environ:
            raw = environ[key]
            found[name] = (raw if name in _SECRET_KEYS else yaml.safe_load(raw)) if raw else None
    return found


def _apply_stream_defaults(data: dict[str, Any]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """``stream_defaults:`` holds per-stream keys that every stream gets unless it sets them.
    Returns where each key a stream took from it was written (``("streams", 0, "buffer")`` →
    ``("stream_defaults", "buffer")``), for an error to name."""
    defaults = data.pop("stream_defaults", None)
    if defaults is None:
        return {}
    if not isinstance(defaults, dict):
        raise ConfigError("config key 'stream_defaults': must be a mapping of per-stream keys")
    streams = data.get("streams") or []
    merged = []
    borrowed: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for index, entry in enumerate(streams if isinstance(streams, list) else []):
        given = _stream_entry(entry, index)
        if isinstance(given, dict):
            borrowed.update({("streams", index, key): ("stream_defaults", key) for key in defaults if key not in given})
            given = {**defaults, **given}
        merged.append(given)
    if isinstance(streams, list):
        data["streams"] = merged
    return borrowed


class _Invalid(Exception):
    """A problem found before validation, as pydantic would report it (``loc``, ``msg``, ``input``)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["msg"])
        self.error = error


def _stream_entry(entry: Any, index: int) -> Any:
    """``streams``' entry ``index`` as a mapping, if it is written as its URI alone (else as it is)."""
    if not _shorthand(entry):
        return entry
    try:
        return _stream_mapping(entry, StreamConfig.model_fields)
    except ValueError as exc:
        raise _Invalid({"type": "value_error", "loc": ("streams", index), "msg": str(exc), "input": entry}) from None


def _name_classes(data: dict[str, Any]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Class names in ``classes`` (the run's, a stream's, a line's, zone's or mask's: ``[person,
    car]``) made the ids of the model that reads them: the stream's own, else the run's. Only
    when some are given by name, which reads the models' names (without building them). The
    run's named classes go to each stream that keeps them, as its model numbers them (two
    models may number ``car`` differently). Returns where what a stream took from the run's
    was written (``("streams", 0, "class_conf", 0)`` → ``("class_conf", "person")``), for an
    error to name."""
    streams = data.get("streams")
    entries = streams if isinstance(streams, list) else []
    outputs = {key: list(given) for key in _DELIVERED if isinstance(given := data.get(key), list)}
    lists = [data, *(e for e in entries if isinstance(e, dict)), *(shape for _, _, shape in _shapes(entries)),
             *(output for given in outputs.values() for output in given if isinstance(output, dict))]
    if not any(_named(holder.get(key)) for holder in lists for key in _CLASS_KEYS):
        return {}
    from streamyolo.errors import ModelError
    from streamyolo.inference.names import model_names

    entries = data["streams"] = copy.deepcopy(entries)  # the caller's mappings stay as they were
    run_model = data.get("model") or DEFAULT_MODEL
    known: dict[str, dict[int, str]] = {}
    borrowed: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def ids(classes: Any, key: str, model: Any, enabled: bool = True) -> Any:
        if not _named(classes):
            return classes
        if not isinstance(model, str):
            return classes  # the model's own key is wrong: validation says so
        if model not in known:
            try:
                known[model] = model_names(model)
            except ModelError:
                if enabled:
                    raise
                return _UNREAD  # a stream kept in the config, not run: its model need not be there
        say_model = len(known) > 1 or model != run_model
        if isinstance(classes, dict):  # class_conf: {class: threshold}
            return {_class_id(c, known[model], key, model, say_model): conf for c, conf in classes.items()}
        return [_class_id(c, known[model], key, model, say_model) for c in classes]

    for key in _CLASS_KEYS:  # the run's and each stream's
        wanted = data.get(key)
        for index, given in enumerate(entries):
            if _shorthand(given) and _named(wanted):  # the run's classes become the stream's
                entries[index] = _stream_entry(given, index)
            entry = entries[index]
            if not isinstance(entry, dict) or _shorthand(entry):
                continue
            model = entry.get("model") or run_model
            enabled = entry.get("enabled") is not False
            if entry.get(key) is None and _named(wanted):
                entry[key] = ids(wanted, key, model, enabled)  # the run's classes, as this stream's model numbers them
                borrowed[("streams", index, key)] = (key,)
                if isinstance(wanted, dict) and isinstance(entry[key], dict) and len(entry[key]) == len(wanted):
                    borrowed.update({("streams", index, key, number): (key, written)  # (class_conf's, as written)
                                     for number, written in zip(entry[key], wanted, strict=True)})
            elif key in entry:
                entry[key] = ids(entry[key], f"streams.{index}.{key}", model, enabled)
            if entry.get(key) is _UNREAD:
                del entry[key]
        if key in data:
            data[key] = ids(wanted, key, run_model) if not entries or not _named(wanted) else None
    for index, key, shape in _shapes(entries):  # lines', zones' and masks' (of the streams as copied)
        if "classes" in shape:
            shape["classes"] = ids(shape["classes"], f"{key}.classes", entries[index].get("model") or run_model,
                                   entries[index].get("enabled") is not False)
            if shape["classes"] is _UNREAD:
                del shape["classes"]
    for key, given in outputs.items():  # webhooks' and emails' classes: as the run's model numbers them
        copied = data[key] = copy.deepcopy(given)
        for index, output in enumerate(copied):
            if isinstance(output, dict) and "classes" in output:
                output["classes"] = ids(output["classes"], f"{key}.{index}.classes", run_model)
    return borrowed


def _shapes(entries: list[Any]) -> list[tuple[int, str, dict[str, Any]]]:
    """The streams' lines, zones and masks written as mappings (which may list classes): the
    stream's place, the shape's key, the mapping."""
    return [(index, f"streams.{index}.{kind}.{name}", shape)
            for index, entry in enumerate(entries) if isinstance(entry, dict)
            for kind in ("lines", "zones", "masks") if isinstance(entry.get(kind), dict)
            for name, shape in entry[kind].items() if isinstance(shape, dict)]


_UNREAD = object()
"""Class names of a disabled stream whose model cannot be read: left out (they are read, and
checked, when it is enabled)."""

_DELIVERED = ("webhooks", "emails")
"""The run's keys that list outputs of events, each with the classes it takes."""

_CLASS_KEYS = ("classes", "blur", "class_conf", "record_objects")
"""The run's and a stream's keys that list classes (by id or name)."""


def _shorthand(entry: Any) -> bool:
    """A stream written as its URI alone (``front=rtsp://…``, a webcam's ``0``; YAML reads
    ``- synthetic:`` as ``{"synthetic": None}``)."""
    return isinstance(entry, str) or _webcam_index(entry) or (
        isinstance(entry, dict) and len(entry) == 1 and next(iter(entry.values())) is None)


def _named(classes: Any) -> bool:
    """Whether ``classes`` (a list, or ``class_conf``'s mapping by class) names a class."""
    return isinstance(classes, list | dict) and any(isinstance(c, str) and not c.strip().isdigit() for c in classes)


def _class_id(given: Any, names: Mapping[int, str], key: str, model: str, say_model: bool) -> Any:
    """The id of class ``given`` (a name, or an id as it is) among the model's ``names``: the
    very name, else the one name that differs only in case."""
    if not isinstance(given, str):
        return given
    text = given.strip()
    if text.isdigit():
        return int(text)
    exact = [i for i, name in names.items() if name == text]
    loose = [i for i, name in names.items() if name.lower() == text.lower()]
    if exact or len(loose) == 1:
        return (exact or loose)[0]
    whose = f"the {len(names)} classes of model {model!r}" if say_model else f"the model's {len(names)} classes"
    raise ConfigError(f"config key {key!r}: {given!r} is not one of {whose} ({shown_classes(names)})"
                      + meant(text, names.values()))


def shown_classes(names: Mapping[int, str], most: int = 10) -> str:
    """A model's classes for an error message, the first ``most`` of them.

    >>> shown_classes({0: "person", 1: "car"})
    '0 person, 1 car'
    """
    return ", ".join(f"{i} {names[i]}" for i in sorted(names)[:most]) + (", …" if len(names) > most else "")


def build_config(
    file: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Merge defaults < file < environment < ``overrides`` and validate once.

    >>> build_config(overrides={"streams": ["synthetic:"], "conf": 0.4}).conf
    0.4
    """
    data: dict[str, Any] = {}
    origin = ""
    variables = dict(os.environ if environ is None else environ)
    raw = dict(file) if isinstance(file, Mapping) else load_yaml(file) if file is not None else {}
    env_file = (overrides or {}).get("env_file") or variables.get(ENV_PREFIX + "ENV_FILE") or raw.get("env_file")
    if env_file:
        variables.update(read_env_file(env_file))
    where: dict[str, str] = {}  # where each top-level key's value came from, for an error to say
    if isinstance(file, Mapping):
        data.update(raw)
    elif file is not None:
        origin = f"in {os.fspath(file)}"
        data.update(with_environment(raw, variables, f" ({origin})"))
        where.update(dict.fromkeys(raw, origin))
    from_environment = _env_overrides(variables)
    data.update(from_environment)
    where.update({key: f"from environment variable {ENV_PREFIX}{key.upper()}" for key in from_environment})
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    data.update(given)
    for key in given:
        where.pop(key, None)
    moved: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    context = {"config_file": None if file is None or isinstance(file, Mapping) else Path(file)}
    try:
        moved.update(_apply_stream_defaults(data))
        moved.update(_name_classes(data))
        return PipelineConfig.model_validate(data, context=context)
    except ValidationError as exc:
        error = dict(exc.errors()[0])
    except _Invalid as exc:
        error = exc.error
    raise ConfigError(_explained(error, moved, where, origin)) from None


def _explained(error: Mapping[str, Any], moved: Mapping[tuple[Any, ...], tuple[Any, ...]],
               where: Mapping[str, str], origin: str) -> str:
    """A validation ``error`` as one line naming the key where the user wrote the value: a
    stream's key it took from ``stream_defaults`` or from the run's (``moved``) is named there,
    and the line says where that key came from (``where``: the config file, an environment
    variable; nothing for a flag), or ``origin`` (the file) for a check across keys that names
    none."""
    location = tuple(part for part in error["loc"] if not _union_tag(str(part)))
    for size in range(len(location), 0, -1):
        if location[:size] in moved:
            location = (*moved[location[:size]], *location[size:])
            break
    message = _format_error(error, location)
    named = re.match(r"(?:unknown )?config keys? '([^']+)'(?: and '([^']+)')?", message)
    keys = [key for key in named.groups() if key] if named else []
    if not keys:
        return message + (f" ({origin})" if origin else "")
    said = list(dict.fromkeys(where[top] for key in keys if (top := key.split(".")[0]) in where))
    return message + (f" ({'; '.join(said)})" if said else "")
