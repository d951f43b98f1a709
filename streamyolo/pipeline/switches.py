"""The streams' switches kept across runs (``switches_file``): an indoor camera's detection or
recording switched off (on the page, in Home Assistant) stays off after a restart, a reboot or a
crash, instead of coming back on with the new run.

The file is JSON, ``{"streams": {"door": {"detect": false, "record": false, "watch:porch":
false}}}`` (``watch:<zone>``: whether a zone is watched, switched by hand), written whole
(under a temporary name, then renamed) each time a switch changes, and read when the run starts:
each stream there is switched as it says before its first frame (or, added as the run goes,
before its first frame then). A switch its stream's ``schedule`` sets is the schedule's, not
the file's, but for one switched by hand (the page, Home Assistant) against its schedule: that
holds until the schedule's next change, as within a run, and the file says until when
(``"detect_until"``: seconds since the epoch), so a restart in between keeps it. Streams no
longer in the config keep their line (they may come back).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from streamyolo.schedule import WATCH

log = logging.getLogger(__name__)

KINDS = ("detect", "record")
UNTIL = "_until"
"""``<kind>_until``: until when a switch set by hand against its schedule holds (the schedule's next change)."""


def known(kind: str) -> bool:
    """Whether ``kind`` is a switch: ``detect``, ``record``, ``watch:<zone>``."""
    return kind in KINDS or (kind.startswith(WATCH) and len(kind) > len(WATCH) and not kind.endswith(UNTIL))


class SwitchFile:
    """The switches last set (see the module). Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, bool | float]] | None = None  # (None: not read yet)
        self._failing = False  # a write failed: said once, until one works again

    def load(self) -> dict[str, dict[str, bool | float]]:
        """The switches the file holds (none when there is no file yet); a file that is not
        such JSON is said and left to be written anew."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            streams = data["streams"]
            states = {str(name): {kind: on for kind, on in kinds.items() if known(kind) and isinstance(on, bool)}
                      | {held: float(until) for held, until in kinds.items()
                         if held.endswith(UNTIL) and known(held.removesuffix(UNTIL))
                         and isinstance(until, int | float) and not isinstance(until, bool)}
                      for name, kinds in streams.items() if isinstance(kinds, dict)}
        except FileNotFoundError:
            states = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("switches file %s: cannot be read (%s); the switches start on, and it is written anew",
                        self.path, exc)
            states = {}
        with self._lock:
            self._states = {name: dict(kinds) for name, kinds in states.items()}
        return states

    def states(self, stream: str) -> dict[str, bool]:
        """``stream``'s switches as the file has them (``{"detect": False, "watch:porch":
        False}``; none: ``{}``)."""
        return {kind: bool(on) for kind, on in self._line(stream).items() if known(kind)}

    def held(self, stream: str) -> dict[str, float]:
        """Until when ``stream``'s switches set by hand against their schedules hold (``{"detect":
        1765058400.0}``: the schedule's next change then)."""
        return {kind.removesuffix(UNTIL): float(until) for kind, until in self._line(stream).items()
                if kind.endswith(UNTIL)}

    def _line(self, stream: str) -> dict[str, bool | float]:
        if self._states is None:
            self.load()
        with self._lock:
            return dict((self._states or {}).get(stream, {}))

    def set(self, stream: str, kind: str, on: bool, until: float | None = None) -> None:
        """``stream``'s ``kind`` switch is now ``on`` (``until``: set by hand against its
        schedule, until the schedule's next change): the file says so (a write that fails is
        logged, and the run goes on)."""
        if self._states is None:
            self.load()  # (the other streams' lines are kept)
        with self._lock:
            states = self._states if self._states is not None else {}
            line = states.get(stream, {})
            if line.get(kind) == on and line.get(f"{kind}{UNTIL}") == until:
                return
            line = {**line, kind: on}
            if until is None:
                line.pop(f"{kind}{UNTIL}", None)
            else:
                line[f"{kind}{UNTIL}"] = until
            states[stream] = line
            self._states = states
            self._write(states)

    def _write(self, states: Mapping[str, Mapping[str, bool | float]]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.part")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as file:
                json.dump({"streams": states}, file, indent=1, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._failing:
                log.error("switches file %s: cannot be written (%s): a restart would switch the streams on again",
                          self.path, exc.strerror or exc)
            self._failing = True
            return
        if self._failing:
            log.warning("switches file %s: written again", self.path)
        self._failing = False
