"""A run as a systemd service with ``Type=notify``: systemd's notification protocol
(``sd_notify``), spoken over the datagram socket systemd names in ``$NOTIFY_SOCKET``.

- ``READY=1`` once every inference worker has built its model and the streams' capture has
  started: ``systemctl start`` returns then (and units ordered after it start), not while a
  model is still being converted or compiled; a run that cannot start never says it.
- ``STATUS=…``, what ``systemctl status`` shows: the streams by state, the frames processed a
  second (``4 streams: 3 streaming, 1 reconnecting; 87.5 frames/s``), as it changes, at most
  every :data:`STATUS_SECONDS`.
- ``RELOADING=1`` (with ``MONOTONIC_USEC``) while a reload (SIGHUP) applies the config, then
  ``READY=1`` again; ``STOPPING=1`` as the run stops (SIGTERM, ``duration``, its streams over).
- ``WATCHDOG=1`` every half of ``WatchdogSec`` (``$WATCHDOG_USEC``), from the pipeline's
  monitor thread, while the run is well: a process whose threads are wedged sends none, and
  systemd kills and restarts it. So does a thread worker inside one forward pass for
  ``hang_warning`` seconds (a model runtime that deadlocked: its thread cannot be stopped,
  its streams would see no frame again); a process worker's hung child is killed and started
  again by the run itself, and the pings go on.

Without ``$NOTIFY_SOCKET`` (a terminal, another service manager) none of this happens.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence

from streamyolo.pipeline.report import StreamReport

log = logging.getLogger(__name__)

STATUS_SECONDS = 5.0
"""How often, at most, the status systemd shows is sent again (when it changed)."""


class Notifier:
    """Sends systemd's notifications (see the module); from any thread."""

    def __init__(self, address: str, watchdog: float | None = None) -> None:
        """``address``: ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace);
        ``watchdog``: seconds within which systemd wants to hear ``WATCHDOG=1`` (``None``: no
        watchdog)."""
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog = watchdog
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._lock = threading.Lock()
        self._failed = False  # said once in the log

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier systemd asks for with ``$NOTIFY_SOCKET`` (and ``$WATCHDOG_USEC``, for
        this process: ``$WATCHDOG_PID``), or ``None``."""
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        if not address.startswith(("/", "@")):
            log.warning("NOTIFY_SOCKET %r is not a unix socket's path: systemd is not told how the run goes", address)
            return None
        watchdog = None
        usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1e6
        return cls(address, watchdog)

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value`` each) in one message; False (said once) if it could
        not go: the run goes on."""
        message = "\n".join(fields).encode()
        with self._lock:
            try:
                self._socket.sendto(message, self.address)
            except OSError as exc:
                if not self._failed:
                    self._failed = True
                    log.warning("cannot tell systemd how the run goes (NOTIFY_SOCKET): %s", exc)
                return False
            return True

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def ping(self) -> None:
        self.send("WATCHDOG=1")


def service_status(reports: Sequence[StreamReport]) -> str:
    """One line on the streams for ``systemctl status``.

    >>> from streamyolo.pipeline.report import StreamReport
    >>> def report(state: str, fps: float) -> StreamReport:
    ...     return StreamReport("s", "x", state, 0, 0, 0, None, fps_out=fps)
    >>> service_status([report("streaming", 30.0), report("streaming", 29.5), report("reconnecting", 0.0)])
    '3 streams: 2 streaming, 1 reconnecting; 59.5 frames/s'
    """
    states: dict[str, int] = {}
    for report in reports:
        states[report.state] = states.get(report.state, 0) + 1
    counted = ", ".join(f"{count} {state}" for state, count in states.items()) or "none"
    fps = sum(report.fps_out for report in reports)
    return f"{len(reports)} stream{'s' if len(reports) != 1 else ''}: {counted}; {fps:.1f} frames/s"


__all__ = ["STATUS_SECONDS", "Notifier", "service_status"]
