"""Telling when the machine cannot keep up with the live streams.

A live stream under overload skips frames by design (each worker takes the newest frame), so
a run that detects in 4 of a camera's 25 frames a second looks well in every other way: the
status table's ``dropped`` column grows, but a service has no status table. :class:`Overload`
looks at the live streams' counts now and then and warns once when most of their frames of
the last ``window`` seconds were skipped, naming the streams and what would help, and says so
again when the run keeps up once more. A stream that skips none (every frame asked for, or a
file played in real time) falls behind instead, and says so itself
(:class:`~streamyolo.clock.Behind`); while one is behind, the run does not keep up either.
While either lasts, :attr:`~Overload.state` is the web page's, MQTT's and the stats file's
``overload``. :func:`run_note` and :func:`lag_notes` are the summary's lines.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from streamyolo.pipeline.report import StreamReport

log = logging.getLogger(__name__)

OVER = 0.5
"""The share of frames skipped over a window from which the run is said not to keep up."""
UNDER = 0.2
"""The share under which it is said to keep up again (apart from :data:`OVER`, so a run near
the line is not told of at every look)."""
NAMED = 4
"""Streams named in the warning, the most skipping first (of those skipping :data:`UNDER` of
their frames or more); the others are counted."""
HINT = ("each result is of the newest frame, so they stay current, but an object seen in fewer frames is found later "
        "or missed; what helps: the cameras' sub streams, or a lower frame rate set in the cameras (less to decode: "
        "every frame of a live stream is decoded; record_source keeps the main stream recorded), the model only "
        "where something moves (motion), a smaller imgsz or model, a GPU; `streamyolo bench` says what this machine "
        "can take; overload_warning: 0 turns this warning off")


class Lately:
    """Each stream's frames captured and skipped over the last ``span`` seconds of looks: the
    change since the newest look at least that old (the oldest while none is; ``from_start``:
    since each stream began). A stream started again (a reload) counts from its new start.

    >>> lately = Lately(10.0, from_start=True)
    >>> def look(t, captured, dropped):
    ...     return lately.moved([StreamReport("gate", "rtsp://cam", "streaming", captured, 0, dropped, None)], t)
    >>> look(0, 100, 50), look(5, 200, 120), look(12, 300, 150), look(13, 20, 5)
    ((inf, {'gate': (100, 50)}), (inf, {'gate': (200, 120)}), (12, {'gate': (200, 100)}), (13, {'gate': (20, 5)}))
    """

    def __init__(self, span: float, from_start: bool = False) -> None:
        self.span = span
        self._seen: deque[tuple[float, dict[str, tuple[int, int]]]] = deque([(-math.inf, {})] if from_start else [])

    def moved(self, reports: Iterable[StreamReport], now: float) -> tuple[float, dict[str, tuple[int, int]]]:
        """The seconds looked back over, and each of ``reports``' streams' (captured, dropped) in them."""
        counts = {r.name: (r.captured, r.dropped) for r in reports}
        self._seen.append((now, counts))
        while len(self._seen) > 1 and now - self._seen[1][0] >= self.span:
            self._seen.popleft()
        then, before = self._seen[0]
        moved = {}
        for name, (captured, dropped) in counts.items():
            was = before.get(name, (0, 0))
            if captured < was[0]:  # (started again)
                was = (0, 0)
            moved[name] = (captured - was[0], max(0, dropped - was[1]))
        return now - then, moved


def run_note(reports: Iterable[StreamReport]) -> str | None:
    """The summary's line when the live streams skipped :data:`OVER` of their frames or more
    over the whole run; else ``None``.

    >>> run_note([StreamReport("gate", "rtsp://cam", "stopped", 1000, 150, 850, None, live=True),
    ...           StreamReport("door", "rtsp://cam2", "stopped", 1000, 250, 750, None, live=True),
    ...           StreamReport("file", "a.mp4", "ended", 3000, 3000, 0, None)])
    "the machine could not keep up: 80% of the live streams' frames were skipped over the run (gate, door)"
    >>> run_note([StreamReport("gate", "rtsp://cam", "stopped", 1000, 900, 100, None, live=True)]) is None
    True
    """
    live = [r for r in reports if r.live and r.captured > 0]
    captured = sum(r.captured for r in live)
    share = sum(r.dropped for r in live) / captured if captured else 0.0
    if share < OVER:
        return None
    names = [r.name for r in sorted(live, key=lambda r: r.dropped / r.captured, reverse=True)
             if r.dropped / r.captured >= UNDER]
    shown = ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")
    return (f"the machine could not keep up: {share * 100:.0f}% of the live streams' frames were skipped over the "
            f"run ({shown})")


_COMING_BACK = ("reconnecting", "connecting")
"""A stream's states while its source is down: one that was behind is not up with it yet (its
overload goes on until it streams again, current)."""


def lag_notes(reports: Iterable[StreamReport]) -> list[str]:
    """The summary's line for each stream that fell behind its present over the run.

    >>> lag_notes([StreamReport("door", "rtsp://cam2", "stopped", 900, 900, 0, None, worst_behind=31.24),
    ...            StreamReport("gate", "rtsp://cam", "stopped", 900, 900, 0, None)])
    ['door fell up to 31.2 s behind: the machine could not keep up with it (see the log)']
    """
    return [f"{r.name} fell up to {r.worst_behind:.1f} s behind: the machine could not keep up with it (see the log)"
            for r in reports if r.worst_behind is not None]


class Overload:
    """Judges the share of frames skipped over the last ``window`` seconds at each :meth:`look`,
    and which streams are said to be behind (:attr:`StreamReport.lagging <streamyolo.pipeline.report.StreamReport>`).

    >>> watch, seen = Overload(60), []
    >>> def at(t, captured, dropped):
    ...     seen.append(watch.look([StreamReport("gate", "rtsp://cam", "streaming", captured, captured - dropped,
    ...                                          dropped, None, live=True)], t))
    >>> at(0, 0, 0); at(30, 750, 600); at(60, 1500, 1200); at(120, 3000, 1300); at(180, 4500, 1400)
    >>> seen
    [None, None, 0.8, 0.0667, 0.0667]
    >>> watch.over, watch.state
    (False, None)

    A stream behind is an overload at once, without a window (it told of itself):

    >>> watch = Overload(60)
    >>> watch.look([StreamReport("yard", "rtsp://cam", "streaming", 100, 100, 0, None, behind=2.5, lagging=True)], 0)
    >>> watch.state["behind"], watch.state["streams"]
    ({'yard': 2.5}, [])
    >>> watch.look([StreamReport("yard", "rtsp://cam", "reconnecting", 150, 150, 0, None)], 5)  # (down: not up)
    >>> watch.state["behind"]
    {'yard': 2.5}
    >>> watch.look([StreamReport("yard", "rtsp://cam", "streaming", 200, 200, 0, None, behind=0.3)], 10)
    >>> watch.state is None
    True
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.state: dict[str, Any] | None = None
        """While the run is said not to keep up: ``{"skipped": %, "window": s, "since": epoch
        seconds, "streams": [the streams skipping most, …], "behind": {stream: seconds, …}}``,
        as of the last look (the web page's ``/status.json``'s ``"overload"``); else ``None``.
        Replaced whole: read from any thread."""
        self._lately = Lately(window)
        self._warned = False  # whether this overload was warned of (skipped frames; a stream behind tells itself)

    def look(self, reports: Iterable[StreamReport], now: float) -> float | None:
        """Take the streams' counts at ``now``; once the live streams' span a window, judge it:
        warn when the share of their frames skipped reaches :data:`OVER`, say so when it is
        under :data:`UNDER` again. A stream said to be behind is an overload while it is.
        Returns the share judged (rounded), or ``None`` while less than a window is seen."""
        reports = list(reports)
        was = self.state["behind"] if self.state is not None else {}
        behind = {r.name: round(r.behind, 1) if r.behind is not None else was[r.name] for r in reports
                  if (r.lagging and r.behind is not None) or (r.name in was and r.state in _COMING_BACK)}
        span, moved = self._lately.moved([r for r in reports if r.live], now)
        share: float | None = None
        skipping: list[tuple[float, str, int, int]] = []
        if span >= self.window:
            moved = {name: (c, d) for name, (c, d) in moved.items() if c > 0}
            captured = sum(c for c, _ in moved.values())
            share = sum(d for _, d in moved.values()) / captured if captured else 0.0
            skipping = sorted(((d / c, name, c, d) for name, (c, d) in moved.items() if d / c >= UNDER), reverse=True)
        judged = {"skipped": round((share or 0.0) * 100, 1), "window": round(span, 1),
                  "streams": [name for _, name, _, _ in skipping], "behind": behind}
        over = share is not None and share >= OVER
        if behind or over or (self.state is not None and share is not None and share >= UNDER):  # (it goes on)
            self.state = {**judged, "since": round(time.time(), 3) if self.state is None else self.state["since"]}
            if over and not self._warned:
                assert share is not None
                named = [f"{name!r} {(c - d) / span:.1f} of {c / span:.1f} frames/s"
                         for _, name, c, d in skipping[:NAMED]]
                if len(skipping) > NAMED:
                    named.append(f"{len(skipping) - NAMED} more")
                log.warning("the machine cannot keep up with the live streams: %.0f%% of their frames were skipped "
                            "in the last %.0f s (processed: %s); %s", share * 100, span, ", ".join(named), HINT)
                self._warned = True
        elif self.state is not None:
            self.state = None
            if self._warned:
                log.info("the live streams are kept up with again: %.0f%% of their frames skipped in the last %.0f s",
                         (share or 0.0) * 100, span)
            self._warned = False
        return None if share is None else round(share, 4)

    @property
    def over(self) -> bool:
        """Whether the run was last said not to keep up."""
        return self.state is not None
