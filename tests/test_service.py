"""A run as a systemd service (``Type=notify``): the notifications, and the watchdog withheld
while a thread worker is hung. A whole run under it: ``tests/test_cli.py``'s SIGHUP test."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import pytest

from streamyolo.pipeline.monitor import Monitor
from streamyolo.pipeline.service import Notifier


@dataclass
class _Worker:
    name: str
    streams: list[str]
    busy_since: float | None


def test_the_watchdog_is_fed_but_while_a_thread_worker_is_hung_and_as_ever_for_a_process_worker(
        systemd: tuple[str, list[tuple[float, str]]], caplog: pytest.LogCaptureFixture) -> None:
    """A thread worker inside one forward pass for longer than ``hang_warning`` cannot be
    stopped: the watchdog is no longer fed (said once), so systemd restarts the service; once
    the pass ends, it is fed again. A process worker's hung child is the run's to replace: fed
    all along."""
    address, heard = systemd
    for recovered in (False, True):
        heard.clear()
        worker = _Worker("w0", ["cam"], busy_since=time.monotonic() - 100)  # inside one pass for 100 s
        finished = threading.Event()
        monitor = Monitor(list, finished, lambda: None, time.monotonic, interval=0, workers=[worker].copy,
                          hang_warning=1.0, notifier=Notifier(address, watchdog=0.2), hangs_recovered=recovered)
        monitor.start()
        time.sleep(0.6)
        worker.busy_since = None  # its pass ended
        back = time.monotonic()
        time.sleep(0.4)
        finished.set()
        assert monitor.join(5)
        time.sleep(0.05)  # the last message on its way
        pings = [at for at, message in heard if message == "WATCHDOG=1"]
        assert [message for _, message in heard if message != "WATCHDOG=1"] == ["STATUS=0 streams: none; 0.0 frames/s"]
        if recovered:
            assert len(pings) >= 4 and pings[0] < back - 0.3
        else:
            assert len(pings) >= 2 and pings[0] >= back, pings  # none while it was hung
    withheld = [r.getMessage() for r in caplog.records if "watchdog" in r.getMessage()]
    assert withheld == ["inference worker 'w0' is hung: the systemd watchdog is no longer fed, so systemd restarts "
                        "the service (WatchdogSec)"]
    assert any(r.levelno == logging.ERROR for r in caplog.records if "watchdog" in r.getMessage())


def test_the_notifier_follows_what_systemd_asks_in_the_environment(caplog: pytest.LogCaptureFixture) -> None:
    assert Notifier.from_environment({}) is None  # not a service: nothing is sent
    plain = Notifier.from_environment({"NOTIFY_SOCKET": "/run/systemd/notify"})
    assert plain is not None and plain.address == "/run/systemd/notify" and plain.watchdog is None
    watched = Notifier.from_environment({"NOTIFY_SOCKET": "@notify", "WATCHDOG_USEC": "30000000",
                                         "WATCHDOG_PID": str(os.getpid())})
    assert watched is not None and watched.address == "\0notify" and watched.watchdog == 30.0
    other = Notifier.from_environment({"NOTIFY_SOCKET": "@notify", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other is not None and other.watchdog is None  # the watchdog is another process's
    assert Notifier.from_environment({"NOTIFY_SOCKET": "notify"}) is None
    assert [r.getMessage() for r in caplog.records] == [
        "NOTIFY_SOCKET 'notify' is not a unix socket's path: systemd is not told how the run goes"]
    gone = Notifier(f"@streamyolo-test-nobody-{os.getpid()}")  # systemd gone: the run goes on, said once
    assert not gone.send("WATCHDOG=1") and not gone.send("WATCHDOG=1")
    assert len([r for r in caplog.records if r.getMessage().startswith("cannot tell systemd")]) == 1
