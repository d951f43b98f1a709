"""A run as a service: systemd's notifications (``Type=notify``) and watchdog, withheld while
a thread worker is hung (a whole run under it: ``tests/test_cli.py``'s SIGHUP test); a
container's probes (``/healthz``, ``/readyz``)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from streamyolo.buffering import Overflow
from streamyolo.frames import Detections, Image
from streamyolo.pipeline import Pipeline, StreamSetup
from streamyolo.pipeline.monitor import Monitor
from streamyolo.pipeline.service import Notifier
from streamyolo.sinks.web import WebViewer
from streamyolo.sources import SourceKind, SourceSpec, open_source
from streamyolo.workers.capture import CapturePolicy
from tests.helpers import until
from tests.test_web import _get


@dataclass
class _Worker:
    name: str
    streams: list[str]
    busy_since: float | None
    in_hand: tuple[str, ...] = ()
    doing: str = "inside one forward pass"


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


class _Stuck:
    """A model that takes ``built`` to build and, once ``stall`` is set, hangs in its forward
    pass until ``stall`` is cleared (a model runtime that deadlocked, then came back)."""

    names: ClassVar[dict[int, str]] = {0: "person"}

    def __init__(self, built: threading.Event, stall: threading.Event, stalled: threading.Event) -> None:
        assert built.wait(30)
        self._stall, self._stalled = stall, stalled

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        while self._stall.is_set():
            self._stalled.set()
            time.sleep(0.01)
        return [Detections.empty(self.names) for _ in images]

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_healthz_and_readyz_say_whether_the_run_is_well_and_ready_for_a_containers_probes() -> None:
    """While the model is being built: alive (200) but not ready (503). Once built: both 200.
    A thread worker inside one forward pass for ``hang_warning``: ``/healthz`` 503 naming it
    (the container should be restarted), and 200 again once it comes back."""
    built, stall, stalled = threading.Event(), threading.Event(), threading.Event()
    source = open_source(SourceSpec("cam", "synthetic:?size=160x120&fps=10", SourceKind.SYNTHETIC))
    setups = [StreamSetup("cam", source, Overflow.DROP_OLDEST, capacity=2, policy=CapturePolicy(realtime=True))]
    web = WebViewer("127.0.0.1:0")
    pipeline = Pipeline(setups, lambda: _Stuck(built, stall, stalled), web=web, hang_warning=0.5, status_interval=0)
    starting = threading.Thread(target=pipeline.start)
    starting.start()
    try:
        until(lambda: web.port, 10, "the web page")  # it serves while the models are being built
        url = web.url
        assert _probe(url + "healthz") == (200, {"ok": True, "ready": False, "hung": []})
        assert _probe(url + "readyz")[0] == 503
        built.set()
        starting.join(30)
        assert _probe(url + "readyz") == (200, {"ok": True, "ready": True, "hung": []})
        stall.set()
        assert stalled.wait(10)
        until(lambda: _probe(url + "healthz")[0] == 503, 10, "the hung worker to be reported")
        assert _probe(url + "healthz") == (503, {"ok": False, "ready": True, "hung": ["w0"]})
        stall.clear()
        until(lambda: _probe(url + "healthz")[0] == 200, 10, "the worker to come back")
    finally:
        built.set()
        stall.clear()
        starting.join(30)
        pipeline.stop()
        pipeline.join()


def _probe(url: str) -> tuple[int, dict[str, Any]]:
    status, kind, body = _get(url)
    assert kind == "application/json"
    return status, json.loads(body)
