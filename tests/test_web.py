"""The web page (``web:``): its video, snapshots and numbers over real HTTP on loopback, and
the page itself in a real browser (headless Chromium driven by Selenium)."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import av
import cv2
import numpy as np
import pytest

from streamyolo.clock import file_stamp
from streamyolo.config import build_config
from streamyolo.errors import ConfigError, OutputError, OutputsIncompleteError
from streamyolo.pipeline import Pipeline, StreamReport
from streamyolo.sinks.export import segment_start
from streamyolo.sinks.storage import days_left
from streamyolo.sinks.web import WebViewer, parse_address
from tests.conftest import need
from tests.helpers import PYTHON, ROOT, decode, env_for_subprocess, read_jsonl, stamps, until
from tests.servers import free_port

NAMES = ["front-door", "yard.2"]


def _config(**extra: Any) -> dict[str, Any]:
    streams = [{"name": name, "source": f"synthetic:?size=320x240&fps=20&seed={i}", "realtime": True}
               for i, name in enumerate(NAMES)]
    return {"streams": streams, "model": "yolo26n.yaml", "imgsz": 64, "workers": 1, "device": "cpu",
            "web": "127.0.0.1:0", "display": False, "status_interval": 0, **extra}


@pytest.fixture
def running() -> Iterator[Pipeline]:
    pipeline = Pipeline.from_config(_config(web_fps=5))
    pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()
        pipeline.join()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _click_until(driver: Any, selector: str, text: str) -> None:
    """Click the first ``selector`` element whose text has ``text``, again if the page redrew
    it in between (a list that refreshes itself)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def click() -> bool:
        try:
            next(e for e in driver.find_elements(By.CSS_SELECTOR, selector) if text in e.text).click()
        except (StaleElementReferenceException, StopIteration):
            return False
        return True

    until(click, 10, f"a {selector} with {text!r} clicked")


def _status(pipeline: Pipeline) -> dict[str, Any]:
    assert pipeline.web_url is not None
    status, kind, body = _get(pipeline.web_url + "status.json")
    assert status == 200 and kind == "application/json"
    data: dict[str, Any] = json.loads(body)
    return data


def _mjpeg_parts(url: str, count: int) -> tuple[list[np.ndarray], float]:
    """The first ``count`` JPEG parts of an MJPEG response, decoded, and the seconds they took."""
    images = []
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        started = time.monotonic()
        assert response.readline() == b"--frame\r\n"  # (each part ends with the next one's boundary:
        while len(images) < count:                      # a browser shows a part once that has come)
            assert response.readline() == b"Content-Type: image/jpeg\r\n" and response.readline() == b"\r\n"
            data = b""
            while not data.endswith(b"\r\n--frame\r\n"):
                data += response.readline()
            data = data.removesuffix(b"\r\n--frame\r\n")
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None, "a part that is not a JPEG"
            images.append(image)
        return images, time.monotonic() - started


def test_status_snapshot_and_video_of_every_stream(running: Pipeline) -> None:
    base = running.web_url
    assert base is not None and base.startswith("http://127.0.0.1:") and not base.endswith(":0/")
    def processed() -> dict[str, Any] | None:
        status = _status(running)
        return status if all(r["processed"] > 0 for r in status["streams"]) else None

    status = until(processed, 60, "both streams processed")
    assert status["running"] is True
    assert "workers" not in status  # thread workers: no restarts to report
    assert [r["name"] for r in status["streams"]] == NAMES
    assert {r["state"] for r in status["streams"]} == {"streaming"}
    for report in status["streams"]:  # the classes in the newest frame (random weights: any, or none)
        assert all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in report["detections"].items())

    for name in NAMES:
        code, kind, body = _get(f"{base}streams/{name}.jpg")
        assert (code, kind) == (200, "image/jpeg")
        snapshot = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert snapshot.shape == (240, 320, 3)
        # Annotated: the header label (the stream's name on a dark band) sits in the top-left corner.
        band = snapshot[2:10, 2:40].reshape(-1, 3).astype(int)
        assert (np.abs(band - 32).max(axis=1) < 40).mean() > 0.5, "no header label on the snapshot"

        frames, seconds = _mjpeg_parts(f"{base}streams/{name}.mjpg", 6)
        assert all(f.shape == (240, 320, 3) for f in frames)
        # web_fps 5 against a 20 fps stream: six parts take at least a second.
        assert seconds >= 0.9, f"6 parts in {seconds:.2f} s: the rate cap does not hold"
        assert any(not np.array_equal(frames[0], f) for f in frames[1:]), "the video does not move"

    # The same numbers for Prometheus, read by its own client library's parser.
    from prometheus_client.parser import text_string_to_metric_families

    code, kind, body = _get(base + "metrics")
    assert (code, kind) == (200, "text/plain; version=0.0.4; charset=utf-8")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    after = _status(running)["streams"]

    def values(family: str, **labels: str) -> dict[str, float]:
        return {s.labels["stream"]: s.value for s in families[family].samples
                if s.name == family + ("_total" if families[family].type == "counter" else "")
                and all(s.labels.get(k) == v for k, v in labels.items())}

    assert families["streamyolo_running"].samples[0].value == 1
    assert families["streamyolo_stream_captured_frames"].type == "counter"
    processed = values("streamyolo_stream_processed_frames")
    assert set(processed) == set(NAMES)
    for before_report, after_report in zip(status["streams"], after, strict=True):
        assert before_report["processed"] <= processed[after_report["name"]] <= after_report["processed"]
    assert values("streamyolo_stream_state", state="streaming") == dict.fromkeys(NAMES, 1.0)
    assert values("streamyolo_stream_state", state="failed") == dict.fromkeys(NAMES, 0.0)
    assert all(0 < age < 5 for age in values("streamyolo_stream_frame_age_seconds").values())
    quiet = values("streamyolo_stream_last_frame_age_seconds")  # (20 fps cameras: a frame every 0.05 s)
    assert set(quiet) == set(NAMES) and all(0 <= age < 2 for age in quiet.values()), quiet
    assert values("streamyolo_stream_behind_seconds").keys() == set(NAMES)  # (played in real time: watched)
    assert "streamyolo_worker_restarts" not in families  # thread workers

    code, kind, body = _get(base + "streams/nobody.jpg")
    assert code == 404 and b"no stream named 'nobody'" in body
    assert _get(base + "elsewhere")[0] == 404


def test_videos_end_and_the_server_stops_with_the_pipeline() -> None:
    pipeline = Pipeline.from_config(_config())
    pipeline.start()
    url = pipeline.web_url
    assert url is not None
    until(lambda: _get(url + "streams/yard.2.jpg")[0] == 200, 60, "a first frame")
    with urllib.request.urlopen(url + "streams/yard.2.mjpg", timeout=10) as response:
        response.readline()
        pipeline.stop()
        summary = pipeline.join()
        rest = response.read()  # ends (the server closed the video) instead of hanging
    assert isinstance(rest, bytes)
    assert all(r.processed > 0 for r in summary.streams.values())
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "status.json", timeout=5)


def test_silent_and_stuck_clients_do_not_hold_up_the_end_of_the_run() -> None:
    pipeline = Pipeline.from_config(_config())
    pipeline.start()
    url = pipeline.web_url
    assert url is not None
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    until(lambda: _get(url + "streams/yard.2.jpg")[0] == 200, 60, "a first frame")
    with socket.create_connection((host, int(port))) as silent, socket.create_connection((host, int(port))) as stuck:
        # `silent` never sends a request (as a browser's preconnect); `stuck` asks for a video
        # and never reads it, with a small receive buffer so the server's writes block.
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /streams/front-door.mjpg HTTP/1.0\r\n\r\n")
        time.sleep(2)
        pipeline.stop()
        started = time.monotonic()
        pipeline.join()
        took = time.monotonic() - started
        assert silent.recv(1) == b""  # the server hung up on it
    # Without hanging up, joining the client threads waits out their 10 s socket timeout.
    assert took < 5, f"the run took {took:.1f} s to end"


def test_a_taken_port_is_a_one_line_error_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pipeline = Pipeline.from_config(_config(web=f"127.0.0.1:{port}"))
        with pytest.raises(OutputError, match=f"web page: cannot listen on 127.0.0.1:{port}"):
            pipeline.start()
        done = subprocess.run(
            [PYTHON, "-m", "streamyolo", "run", "--source", "synthetic:?size=64x48&frames=5", "--model",
             "yolo26n.yaml", "--imgsz", "64", "--web", str(port), "--summary", str(tmp_path / "s.json")],
            env=env_for_subprocess(), cwd=ROOT, capture_output=True, encoding="utf-8", timeout=100, check=False)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0], done.stderr


@pytest.mark.parametrize("value", ["abc", "host:", "70000", "1.2.3.4:-1", True])
def test_a_bad_web_address_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match="config key 'web': expected PORT or HOST:PORT"):
        Pipeline.from_config(_config(web=value))


def test_metrics_keep_odd_names_and_report_process_worker_restarts_and_reloads() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from streamyolo.sinks.metrics import metrics_text

    odd = 'gate "north"\\2\nb'  # a quote, a backslash and a newline, all legal in a stream's name
    status = {"running": False, "workers": {"w0": {"restarts": 0}, "w1": {"restarts": 2}},
              "config": {"reloads": 3, "failed": 1, "last_ok": False, "last_at": 1.0, "last": "config not reloaded"},
              "streams": [{"name": odd, "state": "failed", "captured": 7, "processed": 5, "dropped": 2,
                           "reconnects": 3, "fps_in": 0.0, "fps_out": 0.0, "frame_age": None,
                           "detections": {"traffic light": 1}}]}
    samples = [s for f in text_string_to_metric_families(metrics_text(status)) for s in f.samples]
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    assert found[("streamyolo_running", ())] == 0
    assert found[("streamyolo_stream_dropped_frames_total", (("stream", odd),))] == 2
    assert found[("streamyolo_stream_reconnects_total", (("stream", odd),))] == 3
    assert found[("streamyolo_stream_state", (("state", "failed"), ("stream", odd)))] == 1
    assert sum(v for (name, _), v in found.items() if name == "streamyolo_stream_state") == 1
    assert found[("streamyolo_stream_detections", (("class", "traffic light"), ("stream", odd)))] == 1
    assert not any(name == "streamyolo_stream_frame_age_seconds" for name, _ in found)  # no result yet
    assert found[("streamyolo_worker_restarts_total", (("worker", "w1"),))] == 2
    assert found[("streamyolo_config_reloads_total", (("result", "ok"),))] == 3
    assert found[("streamyolo_config_reloads_total", (("result", "failed"),))] == 1
    assert found[("streamyolo_config_last_reload_successful", ())] == 0


def _post(url: str, body: bytes, headers: dict[str, str] | None = None, context: Any = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_pages_detection_switch_takes_only_the_pages_own_requests(running: Pipeline) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    base = running.web_url
    assert base is not None
    switch = base + "streams/front-door/detect"

    def detect() -> dict[str, bool]:
        return {s["name"]: s["detect"] for s in _status(running)["streams"]}

    def processed(name: str) -> int:
        return int(next(s["processed"] for s in _status(running)["streams"] if s["name"] == name))

    def both() -> dict[str, Any] | None:
        status = _status(running)
        return status if all(r["processed"] > 0 for r in status["streams"]) else None

    status = until(both, 60, "frames of both streams")
    assert status["controls"] is True and detect() == {"front-door": True, "yard.2": True}
    # What a page on another site, or a form, could send is refused, and nothing changes.
    host = base.split("/")[2]
    for body, headers, code, said in (
            (b'{"on": false}', {"Origin": "http://evil.example"}, 403,
             f"refused: a request from http://evil.example, not from this page ({host})"),
            (b'{"on": false}', {"Origin": "null"}, 403, f"refused: a request from null, not from this page ({host})"),
            (b"on=false", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
             "the body must be JSON (Content-Type: application/json)"),
            (b'{"on": false}', {"Content-Type": "text/plain"}, 415,
             "the body must be JSON (Content-Type: application/json)"),
            (b'{"on": "no"}', {}, 400, 'the body must be {"on": true} or {"on": false}'),
            (b"[false]", {}, 400, 'the body must be {"on": true} or {"on": false}'),
            (b"\xff", {}, 400, 'the body must be {"on": true} or {"on": false}'),
            (b"x" * 2000, {}, 400, "a JSON body of at most 1024 bytes, with its Content-Length")):
        assert _post(switch, body, headers) == (code, said.encode() + b"\n"), (body, headers)
    assert _post(base + "streams/nobody/detect", b'{"on": false}') == (404, b"no stream 'nobody' is running\n")
    assert _post(base + "streams/front-door/record", b'{"on": false}') == (
        404, b"stream 'front-door' is not recorded\n")
    assert _status(running)["streams"][0]["record"] is None
    assert _post(base + "status.json", b'{"on": false}')[0] == 404
    assert detect() == {"front-door": True, "yard.2": True}
    # The page's own request (its origin, or none said) switches it off: its frames go on.
    assert _post(switch, b'{"on": false}', {"Origin": base.rstrip("/")}) == (
        200, b'{"stream": "front-door", "detect": false}')
    assert detect() == {"front-door": False, "yard.2": True}
    before = processed("front-door")
    until(lambda: processed("front-door") > before + 5, 30, "frames processed with detection off")
    assert _get(base + "metrics")[0] == 200
    text = _get(base + "metrics")[2]
    samples = {(s.name, s.labels["stream"]): s.value for f in text_string_to_metric_families(text.decode())
               for s in f.samples if s.name == "streamyolo_stream_detection_enabled"}
    assert samples == {("streamyolo_stream_detection_enabled", "front-door"): 0,
                       ("streamyolo_stream_detection_enabled", "yard.2"): 1}
    # Behind a reverse proxy the page's origin is the proxy's, which it names.
    assert _post(switch, b'{"on": true}', {"Origin": "https://cams.example.org",
                                           "X-Forwarded-Host": "cams.example.org"}) == (
        200, b'{"stream": "front-door", "detect": true}')
    assert detect() == {"front-door": True, "yard.2": True}


def test_a_page_to_watch_only_refuses_its_switches() -> None:
    with Pipeline.from_config(_config(web_controls=False)) as pipeline:
        pipeline.start()
        assert pipeline.web_url is not None
        status = until(lambda: (s := _status(pipeline))["streams"] and s, 30, "the streams listed")
        assert status["controls"] is False
        assert _post(pipeline.web_url + "streams/front-door/detect", b'{"on": false}') == (
            403, b"this page's switches are off (web_controls: false)\n")
        assert pipeline.detection("front-door") is True


def test_addresses() -> None:
    assert parse_address(8080) == ("127.0.0.1", 8080)
    assert parse_address(":0") == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:80") == ("::1", 80)


# -- a login and HTTPS ---------------------------------------------------------------------

LOGIN = "viewer:pä ss:word"  # a colon and a space in the password, and a letter beyond ASCII


def _fetch(url: str, cafile: Path, login: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET over HTTPS, trusting only ``cafile`` (so the certificate is really checked)."""
    import base64
    import ssl

    request = urllib.request.Request(url)
    if login is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read(20000)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_login_and_https_guard_every_address(tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    cert, key = tls_files
    with Pipeline.from_config(_config(web_auth=LOGIN, web_cert=str(cert), web_key=str(key))) as pipeline:
        pipeline.start()
        base = pipeline.web_url
        assert base is not None and base.startswith("https://127.0.0.1:")
        until(lambda: _fetch(base + "streams/yard.2.jpg", cert, LOGIN)[0] == 200, 60, "a first frame")
        for index, path in enumerate(("", "status.json", "metrics", "streams/yard.2.jpg", "streams/yard.2.mjpg",
                                      "streams/nobody.jpg")):
            code, headers, body = _fetch(base + path, cert)
            assert code == 401 and headers["WWW-Authenticate"] == 'Basic realm="streamyolo", charset="UTF-8"', path
            assert b"streamyolo" not in body and b"\xff\xd8" not in body  # neither the page nor a picture
            if index < 4:  # 8 wrong logins: 10 would have this address refused for a minute
                assert _fetch(base + path, cert, "viewer:wrong")[0] == 401
                assert _fetch(base + path, cert, "viewer:" + LOGIN)[0] == 401
        assert _fetch(base, cert, LOGIN)[:1] == (200,) and b"<title>streamyolo</title>" in _fetch(base, cert, LOGIN)[2]
        # The detection switch too: without the login, nothing is switched.
        import base64
        import ssl
        trusted = ssl.create_default_context(cafile=str(cert))
        assert _post(base + "streams/yard.2/detect", b'{"on": false}', context=trusted)[0] == 401
        assert _post(base + "streams/yard.2/detect", b'{"on": false}', {"Authorization": "Basic " + base64.b64encode(
            b"viewer:wrong").decode()}, context=trusted)[0] == 401
        streams = json.loads(_fetch(base + "status.json", cert, LOGIN)[2])["streams"]
        assert [s["detect"] for s in streams] == [True, True]
        assert _post(base + "streams/yard.2/detect", b'{"on": false}', {"Authorization": "Basic " + base64.b64encode(
            LOGIN.encode()).decode()}, context=trusted) == (200, b'{"stream": "yard.2", "detect": false}')
        assert json.loads(_fetch(base + "status.json", cert, LOGIN)[2])["running"] is True
        code, headers, body = _fetch(base + "streams/front-door.jpg", cert, LOGIN)
        assert code == 200 and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
        code, headers, body = _fetch(base + "streams/front-door.mjpg", cert, LOGIN)
        assert code == 200 and body.startswith(b"--frame\r\nContent-Type: image/jpeg")
        # Plain HTTP on the HTTPS port gets nothing.
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(base.replace("https://", "http://") + "status.json", timeout=5).read()
        assert pipeline.summary() is not None
    wrong = [r.getMessage() for r in caplog.records if "wrong login" in r.getMessage()]
    assert wrong == ["web page: wrong login from 127.0.0.1 (its further attempts are not logged)"]
    assert all("wrong" not in r.getMessage() or LOGIN not in r.getMessage() for r in caplog.records)


def test_an_address_that_tries_too_many_wrong_logins_is_refused_for_a_while(caplog: pytest.LogCaptureFixture) -> None:
    """10 wrong logins within a minute from one address: its requests are refused (429, with
    when to try again), the right login too, for a minute; another address is not; then it
    may log in again."""
    import base64

    now = [100.0]
    viewer = WebViewer("127.0.0.1:0", auth=LOGIN, clock=lambda: now[0])
    viewer.bind(list)
    viewer.open()
    try:
        def get(login: str, host: str = "127.0.0.1") -> tuple[int, str, str | None]:
            connection = http.client.HTTPConnection("127.0.0.1", viewer.port, timeout=10, source_address=(host, 0))
            connection.request("GET", "/status.json",
                               headers={"Authorization": "Basic " + base64.b64encode(login.encode()).decode()})
            response = connection.getresponse()
            answer = (response.status, response.read().decode(), response.headers.get("Retry-After"))
            connection.close()
            return answer

        assert get(LOGIN)[0] == 200
        for attempt in range(9):
            now[0] += 5  # 9 in 45 s
            assert get(f"viewer:guess{attempt}")[0] == 401
        now[0] += 21  # the first went out of the minute: 9 within it, not 10
        assert get("viewer:guess")[0] == 401
        assert get(LOGIN)[0] == 200
        assert get("viewer:again")[0] == 401  # the 10th within a minute
        assert get(LOGIN) == (429, "too many wrong logins from 127.0.0.1: try again in 60 s\n", "60")
        assert get(LOGIN, host="127.0.0.2")[0] == 200  # another address
        now[0] += 59.5
        assert get(LOGIN)[:1] == (429,) and get(LOGIN)[2] == "1"
        now[0] += 1
        assert get(LOGIN)[0] == 200
    finally:
        viewer.close()
    said = [r.getMessage() for r in caplog.records if "wrong login" in r.getMessage()]
    assert said == ["web page: wrong login from 127.0.0.1 (its further attempts are not logged)",
                    "web page: 10 wrong logins from 127.0.0.1 within 60 s: its requests are refused for 60 s"]


def test_the_login_is_never_repeated_in_errors_and_comes_raw_from_the_environment() -> None:
    with pytest.raises(ConfigError) as error:
        build_config(overrides={**_config(), "web_auth": "nopassword"})
    assert str(error.value) == "config key 'web_auth': expected USER:PASSWORD, both not empty"
    with pytest.raises(ConfigError) as error:
        build_config(overrides=_config(), environ={"STREAMYOLO_WEB_AUTH": ":secret#1"})
    assert "secret" not in str(error.value) and "'web_auth'" in str(error.value)
    # From the environment as typed: YAML would read "admin: #x" as a mapping with a comment.
    config = build_config(overrides=_config(), environ={"STREAMYOLO_WEB_AUTH": "admin: #x"})
    assert config.web_auth is not None and config.web_auth.get_secret_value() == "admin: #x"
    assert "admin" not in repr(config) and "#x" not in str(config.model_dump())


def test_bad_certificate_files_are_one_line_errors_naming_key_and_file(tls_files: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    cert, key = tls_files
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=f"config key 'web_cert': file not found: '{missing}'"):
        Pipeline.from_config(_config(web_cert=str(missing)))
    with pytest.raises(ConfigError, match=f"config key 'web_key': file not found: '{missing}'"):
        Pipeline.from_config(_config(web_cert=str(cert), web_key=str(missing)))
    with pytest.raises(ConfigError, match="config key 'web_key': needs 'web_cert' too"):
        Pipeline.from_config(_config(web_key=str(key)))
    with pytest.raises(ConfigError, match=f"cannot use '{key}' and '{cert}' as the web page's certificate and key"):
        Pipeline.from_config(_config(web_cert=str(key), web_key=str(cert)))  # swapped
    encrypted = tmp_path / "encrypted.pem"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:x", "-out", str(encrypted)],
                   check=True, capture_output=True, timeout=30)
    with pytest.raises(ConfigError, match=f"config key 'web_key': '{encrypted}' is encrypted"):
        Pipeline.from_config(_config(web_cert=str(cert), web_key=str(encrypted)))  # rather than a prompt
    done = subprocess.run(
        [PYTHON, "-m", "streamyolo", "run", "--source", "synthetic:?size=64x48&frames=5", "--model", "yolo26n.yaml",
         "--imgsz", "64", "--web", "0", "--web-cert", str(missing)],
        env=env_for_subprocess(), cwd=ROOT, capture_output=True, encoding="utf-8", timeout=100, check=False)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"streamyolo: ERROR: config key 'web_cert': file not found: '{missing}'"


# -- a real browser ------------------------------------------------------------------------

def _streets(fps: int) -> list[dict[str, Any]]:
    """A synthetic street scene per name of ``NAMES`` (people and cars the demo model finds), live."""
    return [{"name": name, "source": f"synthetic:scene?seed={i}&size=320x240&fps={fps}", "realtime": True}
            for i, name in enumerate(NAMES)]


def _chromium() -> tuple[str, str]:
    browser = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "",
                                shutil.which("google-chrome") or "") if p and os.path.exists(p)), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    need("Chromium, chromedriver and selenium are needed for the browser test (.ci/run installs them)"
         if browser is None or driver is None else None)
    return browser, driver


@contextlib.contextmanager
def _page(config: dict[str, Any]) -> Iterator[tuple[Pipeline, Any]]:
    """A run of ``config``, started, and headless Chromium showing its web page (quit after)."""
    browser, driver_path = _chromium()
    with Pipeline.from_config(config) as pipeline:
        pipeline.start()
        driver = _driver(browser, driver_path)
        try:
            assert pipeline.web_url is not None
            driver.get(pipeline.web_url)
            yield pipeline, driver
        finally:
            driver.quit()


def _driver(browser: str, driver_path: str, *, self_signed: bool = False) -> Any:
    """Headless Chromium; ``self_signed``: it takes the tests' own certificate, as a user who
    accepted it once would."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    options.accept_insecure_certs = self_signed
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--no-first-run", "--disable-background-networking"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


@pytest.mark.timeout(180)
def test_a_real_browser_shows_every_stream_with_its_numbers_and_the_events(tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    # Street scenes and the bundled demo model: real people and cars on the page.
    scenes = _streets(fps=15)
    scenes[0]["zones"] = {"whole": {"points": [[0, 0], [320, 0], [320, 240], [0, 240]],  # the whole picture: holds
                                    "crowd": {"objects": 1, "after": 0}}}  # them all; crowded by any object
    dead = {"name": "dead", "source": "rtsp://127.0.0.1:9/none", "reconnect": {"attempts": 1, "base": 0.1}}
    config = _config(model="demo", imgsz=320, conf=0.5, streams=[*scenes, dead], tracker="bytetrack",
                     snapshots=str(tmp_path / "shots"), clips=str(tmp_path / "clips"), clip_before=1,
                     clip_after=1, heatmaps=str(tmp_path / "heat"))  # tracked: objects entering the zone are events
    with _page(config) as (pipeline, driver):
        assert driver.title == "streamyolo"

        def tiles() -> dict[str, Any]:
            found = {}
            for figure in driver.find_elements(By.CSS_SELECTOR, "figure"):
                name = figure.get_attribute("data-stream")
                image = figure.find_element(By.TAG_NAME, "img")
                found[name] = {
                    "width": driver.execute_script("return arguments[0].naturalWidth", image),
                    "state": figure.find_element(By.CLASS_NAME, "state").text,
                    "fps": figure.find_element(By.CLASS_NAME, "fps").text,
                    "error": figure.find_element(By.CLASS_NAME, "error").text,
                    "detections": figure.find_element(By.CLASS_NAME, "detections").text,
                    "zones": figure.find_element(By.CLASS_NAME, "zones").text,
                    "figure": figure,
                    "image": image,
                }
            return found

        def ready() -> dict[str, Any] | None:
            found = tiles()
            live_ok = all(n in found and found[n]["width"] == 320 and found[n]["state"] == "streaming"
                          for n in NAMES)
            dead_ok = "dead" in found and found["dead"]["state"] == "failed" and found["dead"]["error"]
            return found if live_ok and dead_ok else None

        found = until(ready, 90, "every tile showing video, and the dead camera failed with its error")
        assert list(found) == [*NAMES, "dead"]  # in the config's order
        assert "127.0.0.1:9" in found["dead"]["error"] or "refused" in found["dead"]["error"].lower()
        assert driver.find_element(By.ID, "run").text == "running"
        for name in NAMES:
            assert " fps in, " in found[name]["fps"]
            shot = cv2.imdecode(np.frombuffer(found[name]["image"].screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
            assert shot is not None and shot.std() > 10, f"tile {name!r} shows no picture"
        assert tiles()["dead"]["width"] == 0  # no frame ever came: no picture
        # What the newest frames show, as "2 person, 1 car": the scenes are busy streets.
        shows = until(lambda: " ".join(t["detections"] for t in tiles().values() if t["detections"]), 30,
                       "detections listed under a tile")
        assert any(kind in shows for kind in ("person", "car", "ball")), shows
        # The zone spanning the whole picture holds what the picture shows.
        zoned = until(lambda: (t := tiles()[NAMES[0]])["zones"] != "whole: empty" and t["zones"], 30,
                       "the zone's contents under its tile")
        assert zoned.startswith("whole: ") and any(kind in zoned for kind in ("person", "car", "ball")), zoned
        assert zoned.endswith(" · crowded"), zoned  # (anything in it: crowded at once)
        assert tiles()[NAMES[1]]["zones"] == ""
        # A click shows one stream alone; another click brings every tile back.
        found["yard.2"]["figure"].click()
        until(lambda: [n for n, t in tiles().items() if t["figure"].is_displayed()] == ["yard.2"], 10,
               "only the clicked tile shown")
        found["yard.2"]["figure"].click()
        until(lambda: all(t["figure"].is_displayed() for t in tiles().values()), 10, "every tile back")
        # The events: the dead camera's failure, and objects entering the zone, each with its
        # snapshot, which a click shows, and its clip, which a click plays. The list is
        # redrawn as events come (these streets never stop), so it is read in one go.
        driver.find_element(By.ID, "show-events").click()
        listed = "return [...document.querySelectorAll('#happened li')].map(li => li.textContent)"
        entered = until(lambda: [t for t in driver.execute_script(listed) if " entered whole" in t], 30,
                         "an object entering the zone listed")
        assert entered[0].split(" ", 2)[-1].startswith(f"{NAMES[0]}: ") and " #" in entered[0], entered[0]
        assert entered[0].endswith(" clip"), entered[0]
        assert any(" dead: failed: " in text for text in driver.execute_script(listed))
        # One stream's events only, and every stream's again.
        from selenium.webdriver.support.ui import Select
        chooser = Select(driver.find_element(By.ID, "event-stream"))
        assert [option.get_attribute("value") for option in chooser.options] == ["", *NAMES, "dead"]
        shown = ("return [...document.querySelectorAll('#happened li')].filter(li => !li.hidden)"
                 ".map(li => li.textContent)")
        chooser.select_by_value("dead")
        alone = until(lambda: (texts := driver.execute_script(shown)) and all(" dead: " in t for t in texts)
                      and texts, 10, "the dead camera's events alone")
        assert any(" dead: failed: " in text for text in alone)
        chooser.select_by_value("")
        until(lambda: any(" entered whole" in text for text in driver.execute_script(shown)), 10, "every event")
        _click_until(driver, "#happened a:not(.clip):not(.recorded)", " entered whole")
        shot = driver.find_element(By.ID, "shot")
        assert until(lambda: driver.execute_script("return arguments[0].naturalWidth", shot), 10,
                      "the snapshot shown") == 320
        assert shot.get_attribute("src").endswith(".jpg") and "/snapshots/" in shot.get_attribute("src")
        _click_until(driver, "#happened a.clip", "clip")
        clip = driver.find_element(By.ID, "clip")
        playing = until(lambda: driver.execute_script(
            "const v = arguments[0]; return v.readyState >= 2 && [v.videoWidth, v.currentSrc]", clip), 30,
            "the clip playing")
        assert playing[0] == 320 and "/clips/" in playing[1] and playing[1].endswith(".mp4"), playing
        assert not shot.is_displayed(), "the snapshot should give way to the clip"
        # How the list says a zone crowded and no longer, and an untracked object crossing a line.
        assert driver.execute_script("return arguments[0].map(describe)", [
            {"event": "crowd", "zone": "queue", "state": "started", "count": 11, "limit": 10,
             "inside": {"person": 11}},
            {"event": "crowd", "zone": "queue", "state": "ended", "count": 4, "limit": 10, "seconds": 95.04},
            {"event": "line", "line": "door", "direction": "in", "name": "person", "cls": 0}]) == [
            "queue crowded: 11 person (10 or more)", "queue no longer crowded after 95.0 s",
            "person crossed door (in)"]
        # Every clip so far, listed by the "clips" button, the event's among them.
        driver.find_element(By.ID, "show-clips").click()
        listed = until(lambda: driver.execute_script(
            "return [...document.querySelectorAll('#clip-files a')].map(a => a.textContent)"), 10, "the clips")
        assert playing[1].rsplit("/", 1)[-1] in listed and all(name.startswith(f"{NAMES[0]}-") for name in listed)
        # The heatmaps instead of the videos, and back.
        driver.find_element(By.ID, "show-heatmaps").click()
        def heatmaps_shown() -> list[str]:
            return [name for name, t in tiles().items()
                    if "/heatmaps/" in t["image"].get_attribute("src") and t["width"] == 320]

        until(lambda: heatmaps_shown() == NAMES, 15, "every live tile's heatmap")
        driver.find_element(By.ID, "show-heatmaps").click()
        until(lambda: all(t["image"].get_attribute("src").endswith(".mjpg") for t in tiles().values()), 10,
               "the videos back")
        # The config reloaded: the dead camera's tile goes, a new camera's comes, showing video.
        late = {"name": "late", "source": "synthetic:scene?seed=7&size=320x240&fps=15", "realtime": True}
        report = pipeline.reload({**config, "streams": [*scenes, late]})
        assert (report.added, report.removed) == (("late",), ("dead",))
        def reloaded() -> bool:
            try:
                found = tiles()
            except StaleElementReferenceException:  # a tile removed while it was read
                return False
            return list(found) == [*NAMES, "late"] and found["late"]["width"] == 320

        until(reloaded, 30, "the dead camera's tile gone and the new camera's shown")
    assert sorted(p.name for p in (tmp_path / "heat").iterdir()) == sorted(
        f"{name}{suffix}" for name in [*NAMES, "late"] for suffix in (".png", ".heat.npy"))  # each picture, its heat


@pytest.mark.timeout(120)
def test_a_real_browser_shows_the_last_picture_of_a_stream_that_ended() -> None:
    # A browser shows an MJPEG part once the next part's boundary has come: the server sends it
    # at once, so a stream's last picture (as a file ends, a camera goes down) is on its tile.
    from selenium.webdriver.common.by import By

    once = {"name": "once", "source": "synthetic:?size=320x240&fps=20&frames=1"}
    config = _config(streams=[*_config()["streams"][:1], once])
    with _page(config) as (pipeline, driver):
        until(lambda: {r.name: r.state for r in pipeline.reports()}["once"] == "ended", 60,
              "the one-frame stream ended")
        driver.refresh()  # (the page opened anew: the video's one part is sent whole, then nothing)
        figure = until(lambda: next(iter(driver.find_elements(By.CSS_SELECTOR, "figure[data-stream='once']")), None),
                       30, "the tile, drawn once the page has the status")
        image = figure.find_element(By.TAG_NAME, "img")
        until(lambda: figure.find_element(By.CLASS_NAME, "state").text == "ended", 30, "the tile says it ended")
        assert until(lambda: driver.execute_script("return arguments[0].naturalWidth", image) == 320, 15,
                     "the ended stream's one picture on its tile")


@pytest.mark.timeout(180)
def test_a_real_browser_switches_a_streams_detection_and_recording_off_and_on(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    config = _config(model="demo", imgsz=320, conf=0.5, streams=_streets(fps=10), record=str(tmp_path / "rec"))
    with _page(config) as (pipeline, driver):

        def caption(name: str, part: str) -> str:
            return str(driver.execute_script(
                "const f = [...document.querySelectorAll('figure')].find(f => f.dataset.stream === arguments[0]);"
                "const e = f && f.querySelector('.' + arguments[1]); return e ? e.textContent : '';", name, part))

        def switch(name: str, kind: str = "detect") -> Any:
            return next(f for f in driver.find_elements(By.CSS_SELECTOR, "figure")
                        if f.get_attribute("data-stream") == name).find_element(By.CSS_SELECTOR, f"button.{kind}")

        for name in NAMES:
            until(lambda n=name: caption(n, "detections"), 60, f"objects under {name}'s tile")
            assert switch(name).text == "detection on" and switch(name).is_displayed()
        switch(NAMES[0]).click()
        until(lambda: switch(NAMES[0]).text == "detection off", 10, "the switch showing detection off")
        assert pipeline.detection(NAMES[0]) is False and pipeline.detection(NAMES[1]) is True
        assert all(f.is_displayed() for f in driver.find_elements(By.CSS_SELECTOR, "figure")), \
            "a click on the switch is not a click on the picture"
        # Its newest frames have no objects (a frame already in the worker's batch may have
        # some): the caption empties, stays so, and the frames go on; the other stream's do not.
        until(lambda: caption(NAMES[0], "detections") == "", 10, "no objects under the switched-off tile")
        processed = pipeline.reports()[0].processed
        for _ in range(6):
            time.sleep(0.5)
            assert caption(NAMES[0], "detections") == ""
        assert pipeline.reports()[0].processed > processed
        until(lambda: caption(NAMES[1], "detections"), 10, "objects under the other tile")
        switch(NAMES[0]).click()
        until(lambda: switch(NAMES[0]).text == "detection on", 10, "the switch showing detection on")
        assert pipeline.detection(NAMES[0]) is True
        until(lambda: caption(NAMES[0], "detections"), 30, "objects under the tile again")
        # The other stream's recording: off (its file ends), on again (a new file).
        assert switch(NAMES[1], "record").text == "recording on"
        switch(NAMES[1], "record").click()
        until(lambda: switch(NAMES[1], "record").text == "recording off", 10, "the switch showing recording off")
        assert pipeline.recording(NAMES[1]) is False and pipeline.recording(NAMES[0]) is True
        processed = pipeline.reports()[1].processed
        until(lambda: pipeline.reports()[1].processed > processed + 10, 30, "frames not recorded")
        switch(NAMES[1], "record").click()
        until(lambda: switch(NAMES[1], "record").text == "recording on", 10, "the switch showing recording on")
        processed = pipeline.reports()[1].processed
        until(lambda: pipeline.reports()[1].processed > processed + 10, 30, "frames recorded again")
        # A schedule given as the run goes (a reload): the detection of the first stream on from
        # an hour from now, for an hour; off now, and the switch says when it comes on; a click
        # holds until then.
        begin = int(time.time() // 60 * 60) + 3600
        window = "-".join(time.strftime("%H:%M", time.localtime(moment)) for moment in (begin, begin + 3600))
        config["streams"][0]["schedule"] = {"detect": window}
        assert not pipeline.reload(config).changed
        at = driver.execute_script("return hourOf(arguments[0])", begin)
        assert re.fullmatch(r"(\w+ )?\d\d:\d\d( [AP]M)?", at), at  # (in the browser's language)
        until(lambda: switch(NAMES[0]).text == f"detection off · on at {at}", 10, "the scheduled switch")
        assert switch(NAMES[0]).get_attribute("title").endswith(
            f"\nschedule: {window} (a click holds until its next change)")
        switch(NAMES[0]).click()
        until(lambda: switch(NAMES[0]).text == f"detection on · by hand until {at}", 10, "the switch by hand")
        assert pipeline.detection(NAMES[0]) is True and switch(NAMES[1]).text == "detection on"
    summary = pipeline.summary()
    assert [Path(f).name for f in summary.recordings[NAMES[1]]] == [f"{NAMES[1]}.mp4", f"{NAMES[1]}-2.mp4"]
    assert [Path(f).name for f in summary.recordings[NAMES[0]]] == [f"{NAMES[0]}.mp4"]


@pytest.mark.timeout(180)
def test_a_real_browser_logs_in_over_https_with_the_login_in_the_address(tls_files: tuple[Path, Path]) -> None:
    browser, driver_path = _chromium()
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    cert, key = tls_files
    with Pipeline.from_config(_config(web_auth=LOGIN, web_cert=str(cert), web_key=str(key))) as pipeline:
        pipeline.start()
        driver = _driver(browser, driver_path, self_signed=True)
        try:
            assert pipeline.web_url is not None
            user, _, password = LOGIN.partition(":")
            # https://viewer:p%C3%A4%20ss%3Aword@127.0.0.1:PORT/ : browsers refuse a fetch or a
            # picture whose address holds a login, so the page must build its own without one.
            driver.get(pipeline.web_url.replace("https://", f"https://{quote(user)}:{quote(password, safe='')}@"))
            assert driver.title == "streamyolo"

            def showing() -> list[int] | None:
                widths = [driver.execute_script("return arguments[0].naturalWidth", image)
                          for image in driver.find_elements(By.CSS_SELECTOR, "figure img")]
                states = [state.text for state in driver.find_elements(By.CSS_SELECTOR, "figure .state")]
                return widths if widths == [320, 320] and states == ["streaming"] * 2 else None

            until(showing, 60, "both tiles showing video over HTTPS")
            assert driver.find_element(By.ID, "run").text == "running"
        finally:
            driver.quit()


@pytest.mark.timeout(180)
def test_a_real_browser_lists_the_recordings_and_plays_and_seeks_one(tmp_path: Path, people_video: Path) -> None:
    """Annotated recordings, and a real camera's H.264 (the street video's, Main profile)
    recorded as it came (``record: original``), play in Chromium; so does the street's last
    minute exported from the page."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    rec = tmp_path / "rec"
    config = _config(record=str(rec), record_segment=2)
    config["streams"].append({"name": "street", "source": str(people_video), "realtime": True, "loop": True,
                              "max_fps": 1, "record": "original"})
    with _page(config) as (_, driver):
        button = until(lambda: (b := driver.find_element(By.ID, "show-recordings")).is_displayed() and b, 30,
                        "the recordings button")
        # Two finished 2-second segments of yard.2 on disk, then the list.
        until(lambda: len(list(rec.glob("yard.2-*.mp4"))) >= 3, 60, "finished segments")
        first = sorted(rec.glob("yard.2-*.mp4"))[0]
        shutil.copy(first, rec / "yard.2-20200101-000000-objects.mp4")  # an earlier run's, objects seen
        before = {path.name for path in rec.glob("*.mp4")}
        button.click()
        links = until(lambda: driver.find_elements(By.CSS_SELECTOR, "#files a"), 10, "the list of recordings")
        names = [link.text for link in links]
        assert before <= set(names) <= {path.name for path in rec.glob("*.mp4")}, "every recording listed"
        assert all(" · " in item.text for item in driver.find_elements(By.CSS_SELECTOR, "#files li"))
        # Only the segments with objects, and all again.
        only = driver.find_element(By.ID, "objects-only")
        assert driver.find_element(By.ID, "objects-only-label").is_displayed()
        only.click()
        shown = [link.text for link in driver.find_elements(By.CSS_SELECTOR, "#files a") if link.is_displayed()]
        assert shown == ["yard.2-20200101-000000-objects.mp4"], shown
        only.click()
        assert len([link for link in driver.find_elements(By.CSS_SELECTOR, "#files a")
                    if link.is_displayed()]) == len(names)
        oldest = sorted(name for name in names if name.startswith("yard.2-") and "2020" not in name)[0]
        player = driver.find_element(By.ID, "player")
        # Held as it starts: a segment (shorter when a busy box dropped the frames before a cut)
        # must not end, and the player go on to the next, while the test checks it.
        driver.execute_script("const v = arguments[0]; v.addEventListener('play', () => v.pause(), {once: true})",
                              player)
        next(link for link in links if link.text == oldest).click()
        state = until(lambda: driver.execute_script(
            "const v = arguments[0]; return v.readyState >= 2 && [v.duration, v.videoWidth, v.currentSrc]",
            player), 30, "the recording playing")
        duration, width, source = state
        # At most a segment (2 s); less when the busy box dropped the frames before the cut.
        assert 0 < duration < 2.1 and width == 320 and source.endswith("/recordings/" + oldest), state
        seeked = driver.execute_async_script(
            "const [v, to, done] = arguments; v.pause();"
            "v.addEventListener('seeked', () => done([v.currentTime, v.error && v.error.code]), {once: true});"
            "v.currentTime = to;", player, 0.75 * duration)
        assert abs(seeked[0] - 0.75 * duration) < 0.1 and seeked[1] is None, (seeked, duration)
        frame = cv2.imdecode(np.frombuffer(player.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
        assert frame is not None and frame.std() > 10, "the player shows no picture"
        # Played to its end, it goes on with the stream's next segment.
        following = sorted(name for name in names if name.startswith("yard.2-") and "2020" not in name)[1]
        # (Each source the player loads, noted: a short segment may play through between two looks.)
        driver.execute_script("const v = arguments[0]; window.loaded = [];"
                              "v.addEventListener('loadstart', () => window.loaded.push(v.currentSrc));"
                              "v.currentTime = Math.max(0, v.duration - 0.2); v.play();", player)
        loaded = until(lambda: driver.execute_script("return window.loaded"), 30, "the next segment playing")
        assert loaded[0].endswith("/recordings/" + following), (loaded, following)
        # The street's first segment: its key frames are 128 frames apart, so it is cut at 128 frames.
        until(lambda: len(list(rec.glob("street-*.mp4"))) >= 2, 60, "a finished segment of the street")
        for _ in range(2):  # hidden, and shown again: listed afresh
            driver.find_element(By.ID, "show-recordings").click()
        street = sorted(path.name for path in rec.glob("street-*.mp4"))[0]
        until(lambda: driver.execute_script(  # found and clicked at once: the list may be made again
            "const a = [...document.querySelectorAll('#files a')].find((a) => a.textContent === arguments[0]);"
            "if (a) a.click(); return Boolean(a);", street), 10, "the street's recording listed")
        state = until(lambda: driver.execute_script(
            "const v = arguments[0]; return v.readyState >= 2 && v.currentSrc.endsWith(arguments[1])"
            " && [v.duration, v.videoWidth, v.error && v.error.code]", player, street), 30, "the original playing")
        assert abs(state[0] - 128 / 30) < 0.1 and state[1] == 1920 and state[2] is None, state
        # The street's last minute exported (its segments cut into one MP4 by the server),
        # played here, with a link that saves it.
        Select(driver.find_element(By.ID, "export-stream")).select_by_visible_text("street")
        driver.execute_script("document.getElementById('export-from').value = localInput("
                              "new Date(Date.now() - 60000));"
                              "document.getElementById('export-to').value = localInput(new Date());")
        before = sum(_seconds(path) for path in rec.glob("street-*.mp4"))
        driver.find_element(By.CSS_SELECTOR, "#export button").click()
        saved = until(lambda: driver.find_elements(By.CSS_SELECTOR, "#export-result a"), 30, "the export")
        assert re.fullmatch(r"save street-\d{8}-\d{6}-export\.mp4 \((\d{3}|\d\d\.\d|\d\.\d\d) [kM]B\)",
                            saved[0].text), saved[0].text
        state = until(lambda: driver.execute_script(
            "const v = arguments[0]; return v.readyState >= 2 && v.currentSrc.startsWith('blob:')"
            " && [v.duration, v.videoWidth, v.error && v.error.code]", player), 30, "the export playing")
        after = sum(_seconds(path) for path in rec.glob("street-*.mp4"))  # every segment, as far as written
        assert before - 1.5 < state[0] <= after + 0.1 and state[1] == 1920 and state[2] is None, (
            state, before, after)
        # The street's timeline: a bar per segment; a click in the middle of the first plays
        # that moment of it (and makes the export the minute around it).
        blocks = until(lambda: driver.find_elements(By.CSS_SELECTOR, "#timeline .span"), 10, "the timeline")
        first_block = min(blocks, key=lambda block: block.rect["x"])
        ActionChains(driver).move_to_element(first_block).click().perform()
        name = first_block.get_attribute("title")
        start, modified = driver.execute_script(
            "const f = recordingFiles.find((f) => f.name === arguments[0]); return [f.start, f.modified];", name)
        state = until(lambda: (now := driver.execute_script(  # (once its metadata's handler has run)
            "const v = arguments[0]; return v.readyState >= 2 && !v.seeking && v.currentSrc.endsWith(arguments[1])"
            " && [v.currentTime, v.duration]", player, name)) and now[0] > min((modified - start) / 2, now[1]) - 0.3
            and now, 30, "the moment playing")
        wanted = min((modified - start) / 2, state[1])
        assert state[0] < wanted + 2, (state, wanted)
        assert driver.find_element(By.ID, "export-from").get_attribute("value") < driver.find_element(
            By.ID, "export-to").get_attribute("value")
        # Nothing recorded then: said under the form.
        driver.execute_script("document.getElementById('export-from').value = '2001-01-01T00:00:00';"
                              "document.getElementById('export-to').value = '2001-01-01T00:10:00';")
        driver.find_element(By.CSS_SELECTOR, "#export button").click()
        failed = until(lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, "#export-result.failed")
                                if r.text], 30, "the export's error")[0]
        assert failed.text.startswith("export of stream 'street': nothing recorded between 2001-01-01 00:00:00"), \
            failed.text


@pytest.mark.timeout(120)
def test_an_events_recording_link_plays_the_streams_recording_of_that_moment(tmp_path: Path) -> None:
    """An event of a recorded stream has a "recording" link: it opens the recordings at that
    stream and plays the segment of the event's moment, from that moment. With ``public_url``,
    the event's ``recording_url`` (for a webhook's or a broker's receiver) opens the page so."""
    from selenium.webdriver.common.by import By

    rec = tmp_path / "rec"
    events = tmp_path / "events.jsonl"
    streams = _config()["streams"]
    streams[0]["record"] = False  # not recorded: its events have no link
    port = free_port()
    config = _config(streams=streams, record=str(rec), record_segment=1, events=str(events),
                     web=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}/")
    with _page(config) as (_, driver):
        until(lambda: len(list(rec.glob("yard.2-*.mp4"))) >= 3, 60, "three segments of yard.2")
        until(lambda: driver.find_element(By.ID, "show-events").is_displayed(), 30, "the events button")
        driver.find_element(By.ID, "show-events").click()
        items = "return [...document.querySelectorAll('#happened li')].map(li => [li.textContent, " \
                "Boolean(li.querySelector('a.recorded'))])"
        listed = until(lambda: (found := driver.execute_script(items)) and len(found) >= 2 and found, 30,
                       "both streams' events")
        assert sorted(listed) == [[text, text.endswith("yard.2: streaming recording")] for text in
                                  sorted(text for text, _ in listed)], listed
        assert driver.find_element(By.ID, "recordings").is_displayed() is False
        player = driver.find_element(By.ID, "player")
        # Held as it starts: a short segment (a busy box) must not end, and the player go on.
        driver.execute_script("const v = arguments[0]; v.addEventListener('play', () => v.pause(), {once: true})",
                              player)
        _click_until(driver, "#happened a.recorded", "recording")
        moment = next(e["time"] for e in read_jsonl(events) if e["stream"] == "yard.2")
        played = moment - driver.execute_script("return LEAD")  # (an event plays from a little before it)

        def at_the_moment() -> list[Any] | None:
            """The player's file, time and duration once it has gone to the event's moment
            (its metadata's handler may run after the player reports it ready)."""
            now = driver.execute_script(
                "const v = arguments[0]; return v.readyState >= 2 && !v.seeking && v.currentSrc.includes("
                "'/yard.2-') && [v.currentSrc.split('/').pop(), v.currentTime, v.duration]", player)
            begins = segment_start(now[0]) if now else None
            return now if begins is not None and now[1] > min(max(0.0, played - begins), now[2]) - 0.3 else None

        state = until(at_the_moment, 30, "the event's moment playing")
        start = segment_start(state[0])
        assert start is not None and driver.find_element(By.ID, "recordings").is_displayed()
        # The segment that holds that moment (from its name to its last write), or the first after.
        listed = sorted(driver.execute_script("return recordingFiles.filter((f) => f.stream === 'yard.2')"
                                              ".map((f) => [f.start, f.modified, f.name])"))
        after = [name for begins, modified, name in listed if modified >= played]
        holding = [name for begins, modified, name in listed if begins <= played <= modified]
        assert state[0] == (holding or after)[0], (state, moment, listed)
        wanted = min(max(0.0, played - start), state[2])  # (a busy box's segment may be shorter)
        assert wanted - 0.3 < state[1] < wanted + 2, (state, moment, start)
        assert driver.find_element(By.ID, "export-stream").get_attribute("value") == "yard.2"
        # The stream's events are ticks on its timeline (the other stream's are not).
        ticks = until(lambda: [t.get_attribute("title") for t in driver.find_elements(By.CSS_SELECTOR,
                                                                                       "#timeline .tick")],
                      10, "the events on the timeline")
        assert [title.split(": ", 1)[1] for title in ticks] == ["streaming"], ticks
        # The event's recording_url, as a receiver gets it, opens the page at that moment.
        linked = {e["stream"]: e.get("recording_url") for e in read_jsonl(events)}
        assert linked == {"front-door": None, "yard.2": f"http://127.0.0.1:{port}/#recording=yard.2@{moment}"}
        driver.get("about:blank")
        driver.get(linked["yard.2"])
        opened = until(lambda: driver.execute_script(
            "const v = document.getElementById('player'); return v.readyState >= 2"
            " && [v.currentSrc.split('/').pop(), document.getElementById('export-stream').value,"
            " Boolean(document.querySelector('#timeline .cursor'))]"), 30, "the recording_url's moment playing")
        assert opened[0].startswith("yard.2-") and opened[1:] == ["yard.2", True], opened
        assert driver.find_element(By.ID, "recordings").is_displayed()


EARLIER = 3
"""Days before today of the earlier run whose events and segment the day-picker and search tests find."""


def _local(day: datetime.date, clock: str = "00:00:00") -> float:
    """Seconds since the epoch of ``clock`` on the local day ``day`` (the page's days are the
    browser's local ones, as the segments' names are)."""
    return time.mktime(time.strptime(f"{day.isoformat()} {clock}", "%Y-%m-%d %H:%M:%S"))


def _with_an_earlier_day(tmp_path: Path) -> tuple[dict[str, Any], datetime.date, Path, list[dict[str, Any]]]:
    """A run's config (yard.2 recorded in 1-minute segments, front-door not; an events file),
    its events file already holding an earlier run's events: of ``EARLIER`` days ago (the
    ``day``), of yard.2 and of "gate" (a stream since gone), one just before that day and one
    just after, and 600 state changes of gate two days before; and its record folder yard.2's
    ``segment`` of that day, from 10:00 (a real H.264 MP4 of 10 minutes, last written at its
    end). Returns the config, the day, the segment and that day's events."""
    from tests.helpers import make_clip

    day = datetime.date.today() - datetime.timedelta(days=EARLIER)
    before, after = day - datetime.timedelta(days=1), day + datetime.timedelta(days=1)
    classes = {"person": 0, "car": 2}

    def seen(on: datetime.date, clock: str, stream: str, kind: str, name: str, number: int,
             **fields: Any) -> dict[str, Any]:
        return {"time": _local(on, clock), "stream": stream, "event": kind, "id": number, "cls": classes[name],
                "name": name, **fields}

    busy = [{"time": _local(day - datetime.timedelta(days=2), "08:00:00") + 10 * index, "stream": "gate",
             "event": "state", "state": ("reconnecting", "streaming")[index % 2]} for index in range(600)]
    that_day = [{"time": _local(day, "09:00:00"), "stream": "yard.2", "event": "state", "state": "streaming"},
                seen(day, "10:00:05", "yard.2", "line", "person", 1, line="door", direction="in"),
                seen(day, "10:00:20", "yard.2", "enter", "car", 2, zone="drive"),
                seen(day, "10:00:30", "gate", "enter", "person", 4, zone="drive"),
                seen(day, "10:01:00", "yard.2", "enter", "person", 3, zone="drive"),
                seen(day, "10:01:30", "yard.2", "leave", "person", 3, zone="drive", dwell=30.0),
                seen(day, "11:00:00", "gate", "line", "car", 5, line="door", direction="out")]
    lines = [*busy, seen(before, "23:59:59", "yard.2", "line", "person", 6, line="door", direction="in"),
             *that_day, seen(after, "00:00:00", "yard.2", "enter", "person", 7, zone="drive")]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    rec = tmp_path / "rec"
    rec.mkdir()
    segment = make_clip(rec / f"yard.2-{day:%Y%m%d}-100000.mp4", "yard.2", frames=600, size=(160, 120), fps=1)
    os.utime(segment, (_local(day, "10:10:00"), _local(day, "10:10:00")))
    streams = _config()["streams"]
    streams[0]["record"] = False
    config = _config(streams=streams, record=str(rec), record_segment=60, events=str(events))
    return config, day, segment, that_day


@pytest.mark.timeout(180)
def test_the_timeline_shows_an_earlier_day_with_its_segments_and_every_event_of_it(tmp_path: Path) -> None:
    """The recordings' timeline looks back at any day ("◀", "▶", or a date): the stream's
    segments of that day and every one of its events then (searched in the events file, which
    holds an earlier run's) as ticks; a click plays that moment; an address naming a moment of
    that day opens the timeline at that day; after today come the last 24 hours again."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    config, day, segment, earlier = _with_an_earlier_day(tmp_path)
    with _page(config) as (pipeline, driver):
        until(lambda: driver.find_element(By.ID, "show-recordings").is_displayed(), 30, "the recordings button")
        driver.find_element(By.ID, "show-recordings").click()
        timeline = ("const bar = document.getElementById('timeline'), c = bar.querySelector('.cursor');"
                    "return !bar.hidden && {day: document.getElementById('timeline-day').value,"
                    " begin: Number(bar.dataset.begin), end: Number(bar.dataset.end),"
                    " labels: [document.getElementById('timeline-begin').textContent,"
                    "          document.getElementById('timeline-end').textContent],"
                    " spans: [...bar.querySelectorAll('.span')].map((s) => s.title),"
                    " ticks: [...bar.querySelectorAll('.tick')].map((t) => t.title.slice(t.title.indexOf(': ') + 2)),"
                    " cursor: c ? !c.hidden && Number(c.dataset.at) : null,"
                    " later: document.getElementById('timeline-later').disabled}")
        shown = until(lambda: driver.execute_script(timeline), 30, "the timeline")
        # At first the last 24 hours: the earlier day's segment is not on them.
        assert shown["day"] == "" and shown["later"] is True and segment.name not in shown["spans"], shown
        assert shown["begin"] > _local(day + datetime.timedelta(days=1)), shown
        for _ in range(EARLIER):
            driver.find_element(By.ID, "timeline-earlier").click()
        begin, end = _local(day), _local(day + datetime.timedelta(days=1))
        shown = until(lambda: (t := driver.execute_script(timeline))["ticks"] and t, 30, "that day's events as ticks")
        # Every yard.2 event of that day (not gate's, not those just before and after it), newest first.
        wanted = ["person #3 left drive after 30.0 s", "person #3 entered drive", "car #2 entered drive",
                  "person #1 crossed door (in)", "streaming"]
        assert len([e for e in earlier if e["stream"] == "yard.2"]) == len(wanted)
        assert (shown["day"], shown["begin"], shown["end"], shown["spans"], shown["ticks"], shown["later"]) == (
            day.isoformat(), begin, end, [segment.name], wanted, False), shown
        assert shown["labels"] == driver.execute_script(
            "return arguments[0].map((s) => new Date(s * 1000).toLocaleString())", [begin, end])
        # A click on the segment plays it, from that moment.
        player = driver.find_element(By.ID, "player")
        driver.execute_script("const v = arguments[0]; window.loaded = [];"
                              "v.addEventListener('loadstart', () => window.loaded.push(v.currentSrc));"
                              "v.addEventListener('play', () => v.pause(), {once: true});", player)
        ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, "#timeline .span")).click().perform()
        loaded = until(lambda: driver.execute_script("return window.loaded"), 30, "a recording loaded")
        assert loaded[0].endswith("/recordings/" + segment.name), loaded
        start = _local(day, "10:00:00")
        moment = until(lambda: driver.execute_script(
            "const v = arguments[0], at = Number(document.querySelector('#timeline .cursor').dataset.at);"
            "return v.readyState >= 2 && !v.seeking && Math.abs(v.currentTime - (at - arguments[1])) < 1.5 && at",
            player, start), 30, "the moment clicked playing")
        assert start < moment < start + 600 and driver.execute_script("return window.loaded").count(loaded[0]) == 1
        # The day after: only its own event (the one at its midnight), the cursor not on it.
        driver.find_element(By.ID, "timeline-later").click()
        shown = until(lambda: (t := driver.execute_script(timeline))["ticks"] and t, 30, "the next day's event")
        assert (shown["day"], shown["spans"], shown["ticks"], shown["cursor"]) == (
            (day + datetime.timedelta(days=1)).isoformat(), [], ["person #7 entered drive"], False), shown
        # An address naming a moment of that day (an event's recording_url) opens its day there.
        assert pipeline.web_url is not None
        driver.get("about:blank")
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {  # (held where it was put)
            "source": "document.addEventListener('play', (e) => e.target.pause(), true);"})
        driver.get(pipeline.web_url + f"#recording=yard.2@{earlier[1]['time']}")
        # From a second before it (what led to it; a segment may start up to a second after its
        # name). (The player may say it is ready before its metadata's handler has put it there.)
        wanted = earlier[1]["time"] - _local(day, "10:00:00") - 1
        opened = until(lambda: driver.execute_script(
            "const v = document.getElementById('player'); return v.readyState >= 2 && !v.seeking"
            " && Math.abs(v.currentTime - arguments[0]) < 0.01 && [v.currentSrc.split('/').pop(), v.currentTime]",
            wanted), 30, "the named moment, less a second, playing")
        shown = driver.execute_script(timeline)
        assert opened[0] == segment.name and (shown["day"], shown["cursor"]) == (day.isoformat(), earlier[1]["time"])
        # Day by day to today, and after today the last 24 hours.
        for later in range(1, EARLIER + 1):
            driver.find_element(By.ID, "timeline-later").click()
            assert driver.execute_script(timeline)["day"] == (day + datetime.timedelta(days=later)).isoformat()
        driver.find_element(By.ID, "timeline-later").click()
        shown = driver.execute_script(timeline)
        assert shown["day"] == "" and shown["later"] is True and shown["end"] - shown["begin"] <= 86400, shown


@pytest.mark.timeout(180)
def test_an_old_day_beyond_the_list_plays_from_its_timeline_and_goes_on_with_the_next_segments(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With more recordings than the list shows (its newest ``LIST_MOST``, then a line saying
    where the older ones are), an old day's segments are on its timeline all the same: a click
    plays one, and at its end the stream's next ones play, that day's and then the next day's
    (asked for), none of them in the list."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from tests.helpers import make_clip

    monkeypatch.setattr("streamyolo.sinks.listing.LIST_MOST", 5)
    config, day, segment, _ = _with_an_earlier_day(tmp_path)
    rec = Path(config["record"])
    # After that day's segment (10:00 to 10:10), a short one, and one at the next midnight.
    after = make_clip(rec / f"yard.2-{day:%Y%m%d}-101000.mp4", "yard.2", frames=3, size=(160, 120), fps=1)
    os.utime(after, (_local(day, "10:10:03"), _local(day, "10:10:03")))
    following = day + datetime.timedelta(days=1)
    midnight = make_clip(rec / f"yard.2-{following:%Y%m%d}-000000.mp4", "yard.2", frames=3, size=(160, 120), fps=1)
    os.utime(midnight, (_local(following, "00:00:03"), _local(following, "00:00:03")))
    for minutes in range(1, 9):  # the list's: newer (a stream since gone)
        (rec / f"gate-{file_stamp(time.time() - 60 * minutes)}.mp4").write_bytes(b"gate's")
    with _page(config) as (_, driver):
        until(lambda: driver.find_element(By.ID, "show-recordings").is_displayed(), 30, "the recordings button")
        driver.find_element(By.ID, "show-recordings").click()
        listed = until(lambda: driver.execute_script(
            "const more = document.getElementById('files-more'); return !more.hidden && [more.textContent,"
            " [...document.querySelectorAll('#files a')].map((a) => a.textContent)]"), 30, "the list, cut short")
        assert listed[0] == "older recordings: pick their day on the timeline" and len(listed[1]) == 5, listed
        assert not {segment.name, after.name, midnight.name} & set(listed[1]), listed
        # That day on the timeline: its segments, asked for.
        for _ in range(EARLIER):
            driver.find_element(By.ID, "timeline-earlier").click()
        shown = ("return [document.getElementById('timeline-day').value,"
                 " [...document.querySelectorAll('#timeline .span')].map((s) => s.title).sort()]")
        try:
            until(lambda: driver.execute_script(shown) == [day.isoformat(), [segment.name, after.name]], 30,
                  "that day's segments on the timeline")
        except AssertionError:
            raise AssertionError(f"the timeline shows {driver.execute_script(shown)}") from None
        # A click on the first plays it from there (held as it starts: the test looks where it is).
        player = driver.find_element(By.ID, "player")
        driver.execute_script("const v = arguments[0]; window.loaded = [];"
                              "v.addEventListener('loadstart', () => window.loaded.push(v.currentSrc));"
                              "v.addEventListener('play', () => v.pause(), {once: true});", player)
        first = next(span for span in driver.find_elements(By.CSS_SELECTOR, "#timeline .span")
                     if span.get_attribute("title") == segment.name)
        ActionChains(driver).move_to_element(first).click().perform()
        moment = until(lambda: driver.execute_script(
            "const v = arguments[0]; return v.readyState >= 2 && !v.seeking"
            " && v.currentSrc.endsWith('/' + arguments[1]) && v.currentTime", player, segment.name), 30,
            "the old segment playing")
        assert 60 < moment < 540, moment  # about its middle (a pixel of the day's bar is a minute or so)
        # Played to its end, it goes on with the day's next segment, and then with the next day's.
        driver.execute_script("const v = arguments[0]; v.currentTime = v.duration - 0.5; v.play();", player)
        loaded = until(lambda: (seen := driver.execute_script("return window.loaded")) and len(seen) >= 3 and seen,
                       60, "the next segments loaded")
        assert [source.rsplit("/", 1)[-1] for source in loaded] == [segment.name, after.name, midnight.name], loaded
        until(lambda: driver.execute_script(
            "const v = arguments[0]; return v.readyState >= 2 && v.currentSrc.endsWith('/' + arguments[1])"
            " && v.error === null", player, midnight.name), 30, "the next day's segment playing")
        assert driver.execute_script("return document.querySelectorAll('#files .playing').length") == 0


def _size(count: int) -> str:
    """``count`` bytes as the page writes them (its ``size``): decimal units, 3 significant
    digits, rounded half up as JavaScript's ``toPrecision`` rounds the double it is given."""
    units = ["B", "kB", "MB", "GB", "TB"]
    unit = 0
    while unit < len(units) - 1 and count / 1000 ** unit >= 999.5:
        unit += 1
    value = Decimal(count / 1000 ** unit)  # (that double, exactly)
    if unit == 0 or value >= Decimal("999.5"):
        return f"{value.quantize(Decimal(1), ROUND_HALF_UP)} {units[unit]}"
    rounded = value.quantize(Decimal(1).scaleb(value.adjusted() - 2), ROUND_HALF_UP)
    if rounded.adjusted() > value.adjusted():  # rounded up to the next power of ten: 99.96 is "100"
        rounded = rounded.quantize(Decimal(1).scaleb(rounded.adjusted() - 2))
    return f"{rounded} {units[unit]}"


def _sparse(path: Path, size: int, modified: float) -> None:
    """A file of ``size`` bytes (a hole: it takes no room on the disk), last written at ``modified``."""
    with path.open("wb") as file:
        file.truncate(size)
    os.utime(path, (modified, modified))


@pytest.mark.timeout(180)
def test_the_recordings_panel_says_what_they_take_and_how_long_the_disk_lasts(tmp_path: Path) -> None:
    """At the top of the recordings panel a line says what the recordings take and since when,
    what the last day wrote, and the disk's room: about how many days it lasts at that rate
    (each stream's part in its title), as ``/status.json``'s ``"storage"`` says; the clips panel
    has its own line; without a folder (or a storage at all) the line is not shown."""
    from selenium.webdriver.common.by import By

    now = int(time.time())  # (whole seconds: a file's time comes back exactly)
    rec, clips = tmp_path / "rec", tmp_path / "clips"
    rec.mkdir()
    clips.mkdir()
    # front-door's two segments (3 days ago and now; the run does not record it), a file of no stream.
    earlier, oldest, clipped = now - 3 * 86400, now - 10 * 86400, now - 7200
    _sparse(rec / f"front-door-{file_stamp(earlier - 600)}.mp4", 2_500_000_000, earlier)
    _sparse(rec / f"front-door-{file_stamp(now - 600)}.mp4", 1_200_000_000, now)
    _sparse(rec / "old.mp4", 5_000, oldest)
    _sparse(clips / f"front-door-{file_stamp(clipped - 10)}.mp4", 45_600_000, clipped)
    first = now - 2 * 86400  # (a clip of two days ago: more than a day of clips to go by)
    _sparse(clips / f"front-door-{file_stamp(first - 10)}.mp4", 1_000_000, first)
    streams = _config()["streams"]
    streams[0]["record"] = False
    streams[1]["zones"] = {"corner": [[0, 0], [2, 0], [2, 2], [0, 2]]}  # (clips want a zone: none is entered)
    config = _config(streams=streams, record=str(rec), clips=str(clips), tracker="bytetrack")
    with _page(config) as (pipeline, driver):
        # Sizes in decimal units, 3 significant digits, as this test writes them too.
        counts = [0, 950, 999, 1000, 12_345, 999_499, 999_600, 45_600_000, 3_700_000_000, 2_125_000_000, 10**12]
        written = ["0 B", "950 B", "999 B", "1.00 kB", "12.3 kB", "999 kB", "1.00 MB", "45.6 MB", "3.70 GB",
                   "2.13 GB", "1.00 TB"]
        assert driver.execute_script("return arguments[0].map(size)", counts) == written
        assert [_size(count) for count in counts] == written

        def local(*numbers: float) -> list[str]:
            """``numbers`` as the browser writes them (14,210)."""
            return list(driver.execute_script("return arguments[0].map((n) => n.toLocaleString())", numbers))

        def day(seconds: float) -> str:
            return str(driver.execute_script("return new Date(arguments[0] * 1000).toLocaleDateString()", seconds))

        def says(use: dict[str, Any], word: str) -> list[str]:
            """The line and its title for ``use`` (a folder of the status's "storage")."""
            files = use["files"]
            parts = [f"{_size(use['bytes'])} in {local(files)[0]} file{'s' * (files != 1)}"
                     + ("" if use["oldest"] is None else f" since {day(use['oldest'])}") if files
                     else f"no {word} yet"]
            if use["last_day"] > 0:
                parts.append(f"{_size(use['last_day'])} written in the last day")
            if use["free"] is not None and use["total"] is not None:
                days = None if use["days_left"] is None else math.floor(use["days_left"])
                lasts = ("" if days is None else ", less than a day at that rate" if days < 1
                         else f", about {local(days)[0]} day{'s' * (days != 1)} at that rate")
                parts.append(f"disk: {_size(use['free'])} free of {_size(use['total'])}{lasts}")
            parts_of = sorted(use.get("streams", {}).items(), key=lambda item: -item[1]["bytes"])
            title = "\n".join(f"{name}: {_size(part['bytes'])} in {local(part['files'])[0]} "
                              f"file{'s' * (part['files'] != 1)}" for name, part in parts_of)
            return [" · ".join(parts), title]

        last: dict[str, Any] = {}

        def agreed(word: str) -> tuple[list[str], dict[str, Any]]:
            """The panel's line (text, title) once it says what the status says now."""
            def agreeing() -> bool:
                last["shown"] = driver.execute_script(
                    "const line = document.getElementById(arguments[0] + '-storage');"
                    "return !line.hidden && line.offsetParent !== null && [line.textContent, line.title]", word)
                storage = _status(pipeline)["storage"]
                last["use"] = storage[word]
                return bool(last["shown"]) and last["shown"] == says(last["use"], word)
            try:
                until(agreeing, 60, f"the {word}' line as the status says")
            except AssertionError:
                raise AssertionError(f"the {word}' line: {last}") from None
            return last["shown"], last["use"]

        until(lambda: driver.find_element(By.ID, "show-recordings").is_displayed(), 30, "the recordings button")
        driver.find_element(By.ID, "show-recordings").click()
        (text, title), use = agreed("recordings")
        # What the status says is the files made above, and the run's own recording of yard.2.
        own = use["streams"].get("yard.2", {"bytes": 0, "files": 0})
        assert use["path"] == str(rec) and set(use["streams"]) <= {"front-door", "yard.2"}, use
        assert use["streams"]["front-door"] == {"bytes": 3_700_000_000, "files": 2, "oldest": earlier}, use
        assert (use["bytes"], use["files"], use["oldest"], use["last_day"]) == (
            3_700_005_000 + own["bytes"], 3 + own["files"], oldest, 1_200_000_000 + own["bytes"]), use
        assert text.startswith(f"{_size(use['bytes'])} in {3 + own['files']} files since {day(oldest)} · "
                               f"{_size(1_200_000_000 + own['bytes'])} written in the last day · disk: "), text
        assert "front-door: 3.70 GB in 2 files" in title.split("\n"), title
        # The clips' line: only the clip above (fully known but for the disk's room).
        assert driver.execute_script("return document.getElementById('clips-storage').offsetParent") is None
        driver.find_element(By.ID, "show-clips").click()
        (text, title), use = agreed("clips")
        assert {key: use[key] for key in ("path", "bytes", "files", "oldest", "last_day", "streams")} == {
            "path": str(clips), "bytes": 46_600_000, "files": 2, "oldest": first, "last_day": 45_600_000,
            "streams": {"front-door": {"bytes": 46_600_000, "files": 2, "oldest": first}}}, use
        free, total = use["free"], use["total"]
        lasts = math.floor(free / 45_600_000)
        assert lasts > 1 and math.floor(use["days_left"]) == lasts, use  # (room for two days of such clips)
        assert (text, title) == (
            f"46.6 MB in 2 files since {day(first)} · 45.6 MB written in the last day · disk: {_size(free)} free of "
            f"{_size(total)}, about {local(lasts)[0]} days at that rate", "front-door: 46.6 MB in 2 files"), text
        # The other cases, as the page words them; and without a folder, or storage at all, no line.
        cases = [({"files": 0, "bytes": 0, "oldest": None, "last_day": 0, "free": 45_000_000_000,
                   "total": 10**12}, "no clips yet · disk: 45.0 GB free of 1.00 TB"),
                 ({"files": 14_210, "bytes": 312 * 10**9, "oldest": now - 3 * 86400, "last_day": 2 * 10**9,
                   "free": 10**9, "total": 10**12},
                  f"312 GB in {local(14_210)[0]} files since {day(now - 3 * 86400)} · 2.00 GB written in the last day"
                  " · disk: 1.00 GB free of 1.00 TB, less than a day at that rate"),
                 ({"files": 14_210, "bytes": 312 * 10**9, "oldest": now - 3 * 86400, "last_day": 2 * 10**9,
                   "free": 43 * 10**9, "total": 10**12},
                  f"312 GB in {local(14_210)[0]} files since {day(now - 3 * 86400)} · 2.00 GB written in the last day"
                  " · disk: 43.0 GB free of 1.00 TB, about 21 days at that rate"),
                 # Files of less than a day: no rate to go by yet.
                 ({"files": 1, "bytes": 10**9, "oldest": now - 3600, "last_day": 10**9, "free": 10**10,
                   "total": 10**12}, f"1.00 GB in 1 file since {day(now - 3600)} · 1.00 GB written in the last day · "
                                     "disk: 10.0 GB free of 1.00 TB"),
                 ({"files": 1, "bytes": 999, "oldest": None, "last_day": 0, "free": None, "total": None},
                  "999 B in 1 file")]
        for use, _ in cases:  # (the server's estimate, as the status has it)
            use["days_left"] = days_left(use, now)
        assert [use["days_left"] for use, _ in cases] == [None, 0.5, 21.5, None, None]
        assert driver.execute_script("return arguments[0].map((use) => storageLine(use, 'clips'))",
                                     [use for use, _ in cases]) == [line for _, line in cases]
        hidden = ("showStorage(arguments[0]); return ['recordings', 'clips'].map((word) =>"
                  " document.getElementById(word + '-storage').hidden)")
        assert driver.execute_script(hidden, {"recordings": use, "looked": now}) == [False, True]
        assert driver.execute_script(hidden, None) == [True, True]
        agreed("clips")  # (the next status: shown again)


@pytest.mark.timeout(180)
def test_the_events_search_lists_an_earlier_days_events_until_the_newest_are_asked_for(tmp_path: Path) -> None:
    """The events panel searches the events file (an earlier run's events too): by stream,
    kind, class (name or id), zone or line and time; its results stay while new events come, until
    "newest"; more than it lists is said; a bad search says what is wrong; an old event's
    "recording" link opens the timeline at its day."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    config, day, segment, earlier = _with_an_earlier_day(tmp_path)
    with _page(config) as (pipeline, driver):
        assert pipeline.web_url is not None
        url = pipeline.web_url
        until(lambda: driver.find_element(By.ID, "show-events").is_displayed(), 30, "the events button")
        driver.find_element(By.ID, "show-events").click()
        listing = ("const found = document.getElementById('event-found');"
                   "return [found.textContent, found.className, [...document.querySelectorAll('#happened li')]"
                   ".filter((li) => !li.hidden).map((li) => [li.children[0].textContent, li.children[1].textContent,"
                   " Boolean(li.querySelector('a.recorded'))])]")
        live = until(lambda: (seen := driver.execute_script(listing))[2] and seen, 30, "this run's events")
        assert live[0] == "" and all(what.endswith(": streaming") for _, what, _ in live[2]), live
        last: list[Any] = []

        def search(stream: str = "", kind: str = "", name: str = "", on: datetime.date | None = day,
                   where: str = "") -> None:
            Select(driver.find_element(By.ID, "event-stream")).select_by_value(stream)
            Select(driver.find_element(By.ID, "event-kind")).select_by_value(kind)
            for field, typed in (("event-class", name), ("event-where", where)):
                driver.find_element(By.ID, field).clear()
                driver.find_element(By.ID, field).send_keys(typed)
            driver.execute_script("document.getElementById('event-from').value = arguments[0];"
                                  "document.getElementById('event-to').value = arguments[1];",
                                  f"{on}T00:00:00" if on else "", f"{on + datetime.timedelta(days=1)}T00:00:00"
                                  if on else "")
            driver.find_element(By.ID, "event-find").click()

        def shows(found: str, whats: list[str]) -> list[Any]:
            """The list once it shows ``whats`` under the line ``found`` (a search's answer)."""
            def showing() -> bool:
                last[:] = driver.execute_script(listing)
                return last[0] == found and [what for _, what, _ in last[2]] == whats
            try:
                until(showing, 30, f"the list showing {found!r}")
            except AssertionError:
                raise AssertionError(f"{found!r} {whats} not shown: {last}") from None
            return list(last[2])

        # That day's people (of both streams, not the car's, not those just before and after it).
        search(name="person")
        people = [e for e in reversed(earlier) if e.get("name") == "person"]
        listed = shows("4 events found", ["yard.2: person #3 left drive after 30.0 s",
                                          "yard.2: person #3 entered drive", "gate: person #4 entered drive",
                                          "yard.2: person #1 crossed door (in)"])
        assert [when for when, _, _ in listed] == driver.execute_script(  # with their day: not today's
            "return arguments[0].map((s) => new Date(s * 1000).toLocaleString())", [e["time"] for e in people])
        assert [linked for _, _, linked in listed] == [True, True, False, True]  # yard.2 is recorded, gate is gone
        # New events come (a stream added to the run): the results stay, refreshed or not.
        late = {"name": "late", "source": "synthetic:?size=64x48&fps=5", "realtime": True, "record": False}
        pipeline.reload({**config, "streams": [*config["streams"], late]})
        until(lambda: any(e["stream"] == "late" for e in json.loads(_get(url + "events.json")[2])["events"]), 30,
              "the new stream's event among the newest")
        held = time.monotonic() + 3
        while time.monotonic() < held:
            assert driver.execute_script(listing) == last, "the results were replaced"
            time.sleep(0.2)
        # Of one kind; of a class by its id; of one stream.
        search(kind="enter", name="person")
        shows("2 events found", ["yard.2: person #3 entered drive", "gate: person #4 entered drive"])
        search(name="2")
        shows("2 events found", ["gate: car #5 crossed door (out)", "yard.2: car #2 entered drive"])
        search(stream="yard.2", kind="enter")
        shows("2 events found", ["yard.2: person #3 entered drive", "yard.2: car #2 entered drive"])
        # At one line (of either stream); the search's events as a file to save.
        search(where="door")
        shows("2 events found", ["gate: car #5 crossed door (out)", "yard.2: person #1 crossed door (in)"])
        export = driver.find_element(By.ID, "event-export")
        assert export.is_displayed()
        status, kind, body = _get(export.get_attribute("href"))
        assert (status, kind) == (200, "text/csv; charset=utf-8")
        rows = [line.split(",") for line in body.decode().splitlines()]
        assert [row[2:7] for row in rows] == [["stream", "event", "where", "class", "id"],
                                              ["yard.2", "line", "door in", "person", "1"],
                                              ["gate", "line", "door out", "car", "5"]], rows  # (oldest first)
        # More than a search lists (500): its newest, and a line saying so.
        search(on=day - datetime.timedelta(days=2))
        shows("500 events found, the newest: older ones match too (narrow the search, or: older)",
              [f"gate: {('reconnecting', 'streaming')[index % 2]}" for index in range(599, 99, -1)])
        driver.find_element(By.ID, "event-older").click()  # the next page: the 100 before them
        shows("600 events found", [f"gate: {('reconnecting', 'streaming')[index % 2]}" for index in range(599, -1, -1)])
        assert not driver.find_element(By.ID, "event-older").is_displayed()
        # An old event's recording: the timeline of its day, at its moment.
        search(stream="yard.2", kind="line")
        shows("1 event found", ["yard.2: person #1 crossed door (in)"])
        player = driver.find_element(By.ID, "player")
        driver.execute_script("const v = arguments[0]; window.loaded = [];"
                              "v.addEventListener('loadstart', () => window.loaded.push(v.currentSrc));"
                              "v.addEventListener('play', () => v.pause(), {once: true});", player)
        driver.find_element(By.CSS_SELECTOR, "#happened a.recorded").click()
        loaded = until(lambda: driver.execute_script("return window.loaded"), 30, "the event's recording loaded")
        assert loaded[0].endswith("/recordings/" + segment.name), loaded
        assert driver.find_element(By.ID, "recordings").is_displayed()
        assert driver.execute_script(
            "const c = document.querySelector('#timeline .cursor'); return [document.getElementById('timeline-day')"
            ".value, !c.hidden && Number(c.dataset.at)]") == [day.isoformat(), earlier[1]["time"]]
        # A bad search: what is wrong with it, and no list, until "newest".
        search(name="person,")
        shows("events search: class: an empty name", [])
        assert last[1] == "failed"
        held = time.monotonic() + 2
        while time.monotonic() < held:
            assert driver.execute_script(listing) == last, "the error was replaced"
            time.sleep(0.2)
        driver.find_element(By.ID, "event-newest").click()
        newest = until(lambda: (seen := driver.execute_script(listing))[2] and any(
            what == "late: streaming" for _, what, _ in seen[2]) and seen, 30, "the newest events again")
        assert newest[0] == "" and not any("#" in what for _, what, _ in newest[2]), newest
        assert not driver.find_element(By.ID, "event-newest").is_displayed()


@pytest.mark.timeout(180)
def test_the_events_panel_counts_a_search_by_the_hour(tmp_path: Path) -> None:
    """"count" charts the search's events (the events file's) in each local hour of its span,
    or each day of a span over 2 days: a row per thing counted, its total, and a bar per
    period titled with its count, every row on one scale; nothing then, a span too long (the
    server's line) and a span not given (today until now) are said or counted; "search" and
    "newest" bring the list back."""
    from selenium.webdriver.common.by import By

    # A gate's line crossed ten times from 08:10, every 1500 s, every third time out.
    start = time.mktime((2026, 12, 5, 8, 10, 0, 0, 0, -1))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"time": start + n * 1500, "stream": "gate", "event": "line", "id": n,
                                          "line": "gate", "direction": "out" if n % 3 == 0 else "in", "cls": 0,
                                          "name": "person"}) + "\n" for n in range(10)))
    morning = start + 86400  # ... and the next morning, four people leaving the yard after a while
    with events.open("a") as file:
        for n, (after, dwell) in enumerate(((3000, 30.0), (3100, 60.0), (3200, 90.0), (9000, 12.0))):
            file.write(json.dumps({"time": morning + after, "stream": "gate", "event": "leave", "zone": "yard",
                                   "id": 40 + n, "cls": 0, "name": "person", "dwell": dwell}) + "\n")
    with _page(_config(events=str(events))) as (_, driver):
        until(lambda: driver.find_element(By.ID, "show-events").is_displayed(), 30, "the events button")
        driver.find_element(By.ID, "show-events").click()
        until(lambda: driver.find_elements(By.CSS_SELECTOR, "#happened li"), 30, "this run's events")
        reading = ("const counts = document.getElementById('event-counts'), found = document.getElementById("
                   "'event-found'); return {found: found.textContent, failed: found.className === 'failed',"
                   " shown: !counts.hidden, listed: !document.getElementById('happened').hidden,"
                   " heading: counts.hidden ? null : counts.querySelector('.counted').textContent,"
                   " rows: [...counts.querySelectorAll('.series')].map((row) => ({"
                   "what: row.querySelector('.what').textContent, total: row.querySelector('.total').textContent,"
                   " titles: [...row.querySelectorAll('g.bar')].map((bar) => bar.querySelector('title').textContent),"
                   " heights: [...row.querySelectorAll('g.bar')].map((bar) => Number("
                   "bar.querySelector('.count').getAttribute('height'))),"
                   " ends: [...row.querySelectorAll('.ends span')].map((end) => end.textContent)}))}")
        last: dict[str, Any] = {}

        def count(name: str = "", since: str = "", to: str = "") -> None:
            driver.find_element(By.ID, "event-class").clear()
            driver.find_element(By.ID, "event-class").send_keys(name)
            driver.execute_script("document.getElementById('event-from').value = arguments[0];"
                                  "document.getElementById('event-to').value = arguments[1];", since, to)
            driver.find_element(By.ID, "event-count").click()

        def shows(what: str, check: Any) -> dict[str, Any]:
            """What the panel shows once ``check`` holds for it (a count's answer)."""
            def showing() -> bool:
                last.clear()
                last.update(driver.execute_script(reading))
                return bool(check(last))
            try:
                until(showing, 30, what)
            except AssertionError:
                raise AssertionError(f"{what} not shown: {last}") from None
            return dict(last)

        # By the hour, 07:00 to 12:00: each way through the gate, on one scale (the in-row's 2
        # twice its 1, the out-row's 1 as tall as the in-row's 1), every hour with its bar.
        count(since="2026-12-05T07:00:00", to="2026-12-05T12:00:00")
        shown = shows("the count by the hour", lambda s: s["heading"] == "10 events, by hour, 2026-12-05 · CSV")
        assert shown["found"] == "" and not shown["listed"]
        hours = [f"2026-12-05 {hour:02}:00" for hour in range(7, 12)]
        assert [(row["what"], row["total"], row["titles"], row["ends"]) for row in shown["rows"]] == [
            ("gate line gate in person", "6", [f"{hour}: {n}" for hour, n in zip(hours, [0, 1, 2, 1, 2], strict=True)],
             ["07:00", "11:00"]),
            ("gate line gate out person", "4", [f"{hour}: {n}" for hour, n in zip(hours, [0, 1, 1, 1, 1], strict=True)],
             ["07:00", "11:00"])]  # (the hours: the day is in the heading)
        unit = shown["rows"][0]["heights"][1]
        assert unit > 0
        # It asked in its own time zone (the hours are the page's: tests/test_history.py counts in another).
        zones = driver.execute_script(
            "return [Intl.DateTimeFormat().resolvedOptions().timeZone, performance.getEntriesByType('resource')"
            ".filter((e) => e.name.includes('/counts.json?')).map((e) => new URL(e.name).searchParams.get('tz'))]")
        assert zones[0] and zones[1] == [zones[0]], zones
        # The same counts as a file to save, for a spreadsheet.
        table = driver.find_element(By.ID, "event-counts-csv")
        status, kind, body = _get(table.get_attribute("href"))
        assert (status, kind, table.get_attribute("download")) == (200, "text/csv; charset=utf-8", "")
        each = zip(hours, [0, 1, 2, 1, 2], [0, 1, 1, 1, 1], strict=True)
        assert body.decode().splitlines() == ["hour,stream,event,where,class,count", *[
            f"{hour},gate,line,gate {way},person,{n}" for hour, ins, outs in each
            for way, n in (("in", ins), ("out", outs))]]
        assert shown["rows"][0]["heights"] == [0, unit, 2 * unit, unit, 2 * unit]
        assert shown["rows"][1]["heights"] == [0, unit, unit, unit, unit]
        # Nothing of that class then.
        count(name="car", since="2026-12-05T07:00:00", to="2026-12-05T12:00:00")
        shown = shows("nothing counted", lambda s: s["heading"] == "no events then")
        assert shown["rows"] == [] and shown["found"] == ""
        # Over 2 days: by the day, two weeks and a morning: 15 days.
        count(since="2026-11-21T07:00:00", to="2026-12-05T12:00:00")
        shown = shows("the count by the day", lambda s: s["heading"] == "10 events, by day · CSV")
        days = [f"2026-11-{day}" for day in range(21, 31)] + [f"2026-12-0{day}" for day in range(1, 6)]
        assert [(row["what"], row["total"], row["titles"], row["ends"]) for row in shown["rows"]] == [
            ("gate line gate in person", "6", [f"{day}: 0" for day in days[:-1]] + ["2026-12-05: 6"],
             [days[0], days[-1]]),
            ("gate line gate out person", "4", [f"{day}: 0" for day in days[:-1]] + ["2026-12-05: 4"],
             [days[0], days[-1]])]
        tallest = shown["rows"][0]["heights"][-1]
        assert shown["rows"][0]["heights"] == [0] * 14 + [tallest]
        assert shown["rows"][1]["heights"][:-1] == [0] * 14
        assert shown["rows"][1]["heights"][-1] == pytest.approx(tallest * 4 / 6)
        # Over 32 days: the server's line, and no chart.
        count(since="2026-11-01T07:00:00", to="2026-12-05T12:00:00")
        shown = shows("the server's error", lambda s: s["failed"])
        assert shown["found"] == ("count: a count from the page is up to 32 days long, after its start "
                                  "(streamyolo events --count counts longer ones)")
        assert not shown["shown"] and not shown["listed"]
        # No span given: today from its start until now, by the hour (this run's events).
        before = time.strftime("%Y-%m-%d %H:00")
        count()
        shown = shows("today's count", lambda s: s["heading"] is not None)
        after = time.strftime("%Y-%m-%d %H:00")
        assert not shown["failed"] and shown["found"] == ""
        if before[:10] == after[:10]:  # (not across midnight: this run's events came today)
            assert shown["heading"].endswith(f" by hour, {after[:10]} · CSV") and shown["rows"], shown
            assert all(row["ends"][0] == "00:00" and row["titles"][-1].startswith(
                (before + ": ", after + ": ")) for row in shown["rows"]), shown
        # A search: the list again, and no chart.
        driver.execute_script("document.getElementById('event-from').value = '2026-12-05T07:00:00';"
                              "document.getElementById('event-to').value = '2026-12-05T12:00:00';")
        driver.find_element(By.ID, "event-find").click()
        shown = shows("the search's list", lambda s: s["found"] == "10 events found")
        assert not shown["shown"] and shown["listed"]
        assert len(driver.find_elements(By.CSS_SELECTOR, "#happened li")) == 10
        # "newest" after a count: the list again too.
        driver.find_element(By.ID, "event-count").click()
        shows("the count again", lambda s: s["heading"] == "10 events, by hour, 2026-12-05 · CSV" and not s["listed"])
        driver.find_element(By.ID, "event-newest").click()
        shown = shows("the newest events", lambda s: s["listed"] and not s["shown"])
        assert shown["found"] == ""
        # People leaving the yard the next morning: each bar's title also says how long they
        # stayed (the median of its hour).
        count(since="2026-12-06T07:00:00", to="2026-12-06T12:00:00")
        shown = shows("the leaves' count", lambda s: s["heading"] == "4 events, by hour, 2026-12-06 · CSV")
        assert [(row["what"], row["titles"]) for row in shown["rows"]] == [("gate leave yard person", [
            "2026-12-06 07:00: 0", "2026-12-06 08:00: 0", "2026-12-06 09:00: 3, stayed 60.0 s (median)",
            "2026-12-06 10:00: 1, stayed 12.0 s (median)", "2026-12-06 11:00: 0"])]


def _seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / av.time_base


@pytest.mark.timeout(120)
def test_the_page_exports_a_streams_recordings_between_two_moments(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``/export.mp4``: a stream's segments then, cut into one MP4 and sent as a download;
    what cannot be exported said (404, 400), no file left behind."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where the server cuts its exports
    rec = tmp_path / "rec"
    with Pipeline.from_config(_config(record=str(rec), record_segment=1)) as pipeline:
        pipeline.start()
        assert pipeline.web_url is not None
        url = pipeline.web_url
        until(lambda: len(list(rec.glob("yard.2-*.mp4"))) >= 3, 60, "three segments")
        finished = sorted(rec.glob("yard.2-*.mp4"))[:-1]  # the newest is being written
        now = time.time()
        request = urllib.request.Request(url + "export.mp4?" + urlencode({"stream": "yard.2", "from": now - 60,
                                                                          "to": now}))
        with urllib.request.urlopen(request, timeout=30) as response:
            disposition, body = response.headers["Content-Disposition"], response.read()
            assert response.headers["Content-Type"] == "video/mp4"
        assert re.fullmatch(r'attachment; filename="yard\.2-\d{8}-\d{6}-export\.mp4"', disposition), disposition
        (tmp_path / "export.mp4").write_bytes(body)
        for query, code, message in (
                ({"stream": "nope", "from": now - 60, "to": now}, 404, "no recorded stream named 'nope'"),
                ({"stream": "yard.2", "from": now - 7200, "to": now}, 400, "up to 60 minutes long"),
                ({"stream": "yard.2", "from": now, "to": now - 60}, 400, "up to 60 minutes long, after its start"),
                ({"stream": "yard.2", "from": "soon", "to": now}, 400, "give stream, from and to"),
                ({"stream": "yard.2", "from": 1e9, "to": 1e9 + 60}, 404, "nothing recorded between")):
            status, _, text = _get(url + "export.mp4?" + urlencode(query))
            assert status == code and message in text.decode(), (query, status, text)
    # The stream's frames from its first segment on, as recorded, up to the moment asked for:
    # every frame of the segments finished by then, and of the one being written up to then.
    exported = [stamp[1] for stamp in stamps(decode(tmp_path / "export.mp4")[0]) if stamp is not None]
    recorded = [stamp[1] for path in sorted(rec.glob("yard.2-*.mp4")) for stamp in stamps(decode(path)[0])
                if stamp is not None]
    were_finished = sum(len(decode(path)[0]) for path in finished)
    assert were_finished >= 2 and len(exported) >= were_finished, (exported, were_finished)
    assert exported == recorded[:len(exported)], (exported, recorded)
    assert not list(tmp_path.glob("streamyolo-export-*")), "an export left behind"


def _ranged(url: str, byte_range: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Range": byte_range} if byte_range else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.timeout(120)
def test_recordings_are_listed_and_served_with_byte_ranges(tmp_path: Path) -> None:
    """The page serves the recording folder's MP4s: listed with the stream each belongs to,
    whole or by byte range (a player seeking), never anything outside the folder."""
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "front-door.mp4").write_bytes(b"an earlier run's recording")  # listed, with its stream
    (rec / "other.mp4").write_bytes(b"someone else's")  # listed, no stream of this run
    (rec / "notes.txt").write_text("not a recording")
    (tmp_path / "secret.mp4").write_bytes(b"outside the folder")
    (rec / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    with Pipeline.from_config(_config(record=str(rec), record_segment=1)) as pipeline:
        pipeline.start()
        assert pipeline.web_url is not None
        url = pipeline.web_url

        def listing() -> list[dict[str, Any]]:
            status, kind, body = _get(url + "recordings.json")
            assert status == 200 and kind == "application/json"
            files: list[dict[str, Any]] = json.loads(body)["files"]
            return files

        # Wait for a finished segment of each stream (a second one has started).
        until(lambda: all(sum(f["stream"] == n for f in listing()) >= 3 for n in NAMES), 60, "segments")
        files = listing()
        assert [f["modified"] for f in files] == sorted((f["modified"] for f in files), reverse=True)
        by_name = {f["name"]: f for f in files}
        assert by_name["front-door.mp4"]["stream"] == "front-door" and by_name["other.mp4"]["stream"] is None
        segment = next(f for f in files if f["name"].startswith("yard.2-"))  # its first moment, by its name
        assert segment["start"] == segment_start(segment["name"]) and segment["modified"] - 5 < segment["start"] <= \
            segment["modified"] and by_name["front-door.mp4"]["start"] is None
        assert "notes.txt" not in by_name and "link.mp4" not in by_name
        finished = sorted(name for name, f in by_name.items() if f["stream"] == "yard.2")[0]
        whole = (rec / finished).read_bytes()
        assert len(whole) > 1000 and by_name[finished]["size"] == len(whole)
        status, headers, body = _ranged(url + "recordings/" + finished)
        assert (status, headers["Content-Type"], headers["Accept-Ranges"], body) == (200, "video/mp4", "bytes", whole)
        status, headers, body = _ranged(url + "recordings/" + finished, "bytes=100-199")
        assert (status, headers["Content-Range"], body) == (206, f"bytes 100-199/{len(whole)}", whole[100:200])
        status, headers, body = _ranged(url + "recordings/" + finished, "bytes=-50")
        assert (status, body) == (206, whole[-50:])
        status, headers, _ = _ranged(url + "recordings/" + finished, f"bytes={len(whole)}-")
        assert (status, headers["Content-Range"]) == (416, f"bytes */{len(whole)}")
        # The file being written is served as far as it has got.
        growing = max((f for f in listing() if f["stream"] == "front-door"), key=lambda f: f["modified"])["name"]
        status, _, body = _ranged(url + "recordings/" + growing)
        assert status == 200 and (rec / growing).read_bytes().startswith(body)
        for name in ("secret.mp4", "..%2Fsecret.mp4", "%2E%2E/secret.mp4", "link.mp4", "notes.txt", "nope.mp4"):
            status, _, body = _ranged(url + "recordings/" + name)
            assert status == 404 and b"outside" not in body, name
    # Without a recording folder there is nothing of the kind.
    with Pipeline.from_config(_config()) as pipeline:
        pipeline.start()
        assert pipeline.web_url is not None
        assert _get(pipeline.web_url + "recordings.json")[0] == 404


def _listed(address: str) -> Any:
    """``/recordings.json``'s (``/clips.json``'s) answer."""
    status, kind, body = _get(address)
    assert status == 200 and kind == "application/json", (status, body)
    return json.loads(body)


@pytest.mark.timeout(60)
def test_a_listing_gives_the_newest_files_of_the_streams_and_span_asked_for(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``/recordings.json`` (and ``/clips.json``): the newest files (``LIST_MOST``, or ``limit``),
    with ``more`` when older ones were left out, and the run's streams that have any; with
    ``stream``, ``from`` and ``to``, the files of those streams that hold some of that span (a
    segment from its name's moment to its last write, another file at its last write); a bad
    field is a one-line 400 naming it."""
    rec, clips = tmp_path / "rec", tmp_path / "clips"
    rec.mkdir()
    clips.mkdir()
    begins = time.time() // 60 * 60 - 2 * 86400  # ten-minute segments from two days ago

    def write(folder: Path, name: str, modified: float) -> str:
        (folder / name).write_bytes(name.encode())
        os.utime(folder / name, (modified, modified))
        return name

    # cam's and cam-2's segments (each last written at its end), cam's unsegmented runs, a gone stream's.
    cam = [write(rec, f"cam-{file_stamp(begins + 600 * i)}{'-objects' if i == 3 else ''}.mp4",
                 begins + 600 * (i + 1)) for i in range(8)]
    cam2 = [write(rec, f"cam-2-{file_stamp(begins + 600 * i + 30)}.mp4", begins + 600 * (i + 1) + 30) for i in range(8)]
    whole, later = write(rec, "cam.mp4", begins + 1500), write(rec, "cam-3.mp4", begins + 7200)
    gone = write(rec, f"gate-{file_stamp(begins)}.mp4", begins + 600)
    (rec / "notes.txt").write_text("not a recording")
    clipped = [write(clips, f"cam-{file_stamp(begins + 100 * i)}.mp4", begins + 100 * i + 20) for i in range(3)]
    modified = {name: (rec / name).stat().st_mtime for name in [*cam, *cam2, whole, later, gone]}

    def newest(*names: str) -> list[str]:
        return sorted(names, key=lambda name: (-modified[name], name))

    viewer = WebViewer("127.0.0.1:0", recordings=rec, clips=clips)
    viewer.bind(lambda: [StreamReport(name, "", "streaming", 0, 0, 0, None) for name in ("cam", "cam-2", "idle")])
    viewer.open()
    try:
        url = viewer.url

        def names(query: dict[str, Any] | list[tuple[str, Any]], kind: str = "recordings") -> tuple[list[str], bool]:
            answer = _listed(f"{url}{kind}.json?{urlencode(query)}")
            assert answer["streams"] == answer["segmented"] == (["cam", "cam-2"] if kind == "recordings" else ["cam"])
            return [f["name"] for f in answer["files"]], answer["more"]

        # Every file, newest first, as before; the streams with recordings (not idle, not gate).
        answer = _listed(url + "recordings.json")
        assert [f["name"] for f in answer["files"]] == newest(*modified) and answer["more"] is False
        by_name = {f["name"]: f for f in answer["files"]}
        assert all(set(f) == {"name", "stream", "size", "modified", "objects", "start"} for f in answer["files"])
        assert [by_name[n]["stream"] for n in (cam[0], cam2[0], whole, later, gone)] == ["cam", "cam-2", "cam", "cam",
                                                                                         None]
        assert by_name[cam[0]]["start"] == begins and by_name[whole]["start"] is None and by_name[cam[3]]["objects"]
        assert by_name[cam[0]]["modified"] == begins + 600 and by_name[cam[0]]["size"] == len(cam[0])
        # A span: the segments that cross its beginning and end are in it, those before and after not;
        # an unsegmented file by its last write (at the beginning: in it).
        since, until = begins + 1500, begins + 3300  # the middle of cam's 3rd segment to the middle of its 6th
        assert names({"stream": "cam", "from": since, "to": until}) == (newest(*cam[2:6], whole), False)
        # One that ends as the span begins is in it; one that starts as it ends is not.
        assert names({"stream": "cam-2", "from": begins + 1830, "to": begins + 3030}) == (newest(*cam2[2:5]), False)
        both = newest(*cam[2:6], whole, *cam2[2:6])
        assert names({"stream": "cam,cam-2", "from": since, "to": until}) == (both, False)
        assert names([("stream", "cam"), ("stream", "cam-2"), ("from", since), ("to", until)]) == (both, False)
        assert names({"from": begins + 4200}) == (newest(cam[6], cam[7], cam2[6], cam2[7], later), False)
        assert names({"stream": "cam", "to": begins + 600}) == ([cam[0]], False)
        assert names({"stream": "idle"}) == names({"stream": "nope"}) == ([], False)
        # The newest so many, and whether there were more.
        assert names({"limit": 3}) == (newest(*modified)[:3], True)
        assert names({"stream": "cam-2", "limit": 8}) == (newest(*cam2), False)
        assert names({"stream": "cam-2", "limit": 7, "from": begins}) == (newest(*cam2)[:7], True)
        monkeypatch.setattr("streamyolo.sinks.listing.LIST_MOST", 4)
        assert names({}) == (newest(*modified)[:4], True)
        # Clips alike.
        assert names({}, "clips") == (clipped[::-1], False)
        assert names({"limit": 2}, "clips") == (clipped[:0:-1], True)
        assert names({"from": begins + 100, "to": begins + 200}, "clips") == ([clipped[1]], False)
        for kind, query, message in (
                ("recordings", "from=soon", "recordings: from: 'soon' is not seconds since the epoch"),
                ("recordings", "to=nan", "recordings: to: 'nan' is not seconds since the epoch"),
                ("recordings", "stream=cam,", "recordings: stream: an empty name"),
                ("recordings", "limit=0", "recordings: limit: '0' is not a number from 1 to 5000"),
                ("recordings", "limit=5001", "recordings: limit: '5001' is not a number from 1 to 5000"),
                ("recordings", "limit=ten", "recordings: limit: 'ten' is not a number from 1 to 5000"),
                ("clips", "limit=-1", "clips: limit: '-1' is not a number from 1 to 5000")):
            assert _get(f"{url}{kind}.json?{query}") == (400, "text/plain; charset=utf-8", f"{message}\n".encode())
    finally:
        viewer.close()


def test_wide_frames_are_shrunk_before_drawing_with_their_boxes_scaled() -> None:
    from streamyolo.annotation import BoxAnnotator
    from streamyolo.frames import Detections, Frame, FrameMeta, Result
    from streamyolo.sinks.latest import LatestResults

    image = np.zeros((1080, 1920, 3), np.uint8)
    boxes = Detections(np.array([[400, 300, 1600, 900]], np.float32), np.array([0.9], np.float32),
                       np.array([0], np.int64), {0: "person"})
    slots = LatestResults()
    slots.put(Result(Frame(FrameMeta("wide", 0, 0.0), image), boxes, t_done=0.05))
    latest = slots.get("wide")
    assert latest is not None and latest.version == 1
    shown = latest.annotate(BoxAnnotator(), max_width=960)
    assert shown.shape == (540, 960, 3)
    assert image.max() == 0, "the frame itself was drawn on"
    # The box's edges land at half the coordinates: columns 200 and 800, rows 150 and 450.
    assert shown[300, 199:202].max() > 0 and shown[300, 799:802].max() > 0
    assert shown[149:152, 500].max() > 0 and shown[449:452, 500].max() > 0
    assert shown[300, 500].max() == 0 and shown[300, 180].max() == 0
    assert boxes.counts() == {"person": 1}


@pytest.mark.timeout(120)
def test_points_clicked_on_a_picture_are_in_the_streams_own_pixels() -> None:
    """To write a zone, a line or a mask, a user turns "points" on and clicks on a stream's
    picture: each click is a point in the stream's pixels (here 1280x720, shown shrunk to a
    960-pixel video in a smaller tile), drawn over the picture and listed under it to copy."""
    browser, driver_path = _chromium()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    config = _config(streams=[{"name": "hall", "source": "synthetic:?size=1280x720&fps=10", "realtime": True}])
    with Pipeline.from_config(config) as pipeline:
        pipeline.start()
        assert pipeline.web_url is not None
        status = until(lambda: json.loads(_get(pipeline.web_url + "status.json")[2])["streams"][0].get("size"), 30,
                        "the stream's picture size in the status")
        assert status == [1280, 720]
        driver = _driver(browser, driver_path)
        try:
            driver.get(pipeline.web_url)
            image = until(lambda: next((i for i in driver.find_elements(By.CSS_SELECTOR, "figure img")
                                         if driver.execute_script("return arguments[0].naturalWidth", i) == 960),
                                        None), 30, "the shrunk video on the page")
            driver.find_element(By.ID, "draw").click()
            width, height = driver.execute_script(
                "const b = arguments[0].getBoundingClientRect(); return [b.width, b.height]", image)
            scale = min(width / 1280, height / 720)
            assert scale < 0.75, "the tile shows the picture smaller than the stream's pixels"
            wanted = [(320, 180), (960, 540), (640, 700)]
            for x, y in wanted:  # offsets from the picture element's centre, as Selenium moves
                dx = (width - 1280 * scale) / 2 + x * scale - width / 2
                dy = (height - 720 * scale) / 2 + y * scale - height / 2
                ActionChains(driver).move_to_element_with_offset(image, round(dx), round(dy)).click().perform()
            figure = driver.find_element(By.CSS_SELECTOR, "figure")
            listed = json.loads(figure.find_element(By.CLASS_NAME, "points").text)
            assert len(listed) == 3
            for (x, y), (px, py) in zip(wanted, listed, strict=True):
                assert abs(px - x) <= 3 and abs(py - y) <= 3, (wanted, listed)
            drawn = figure.find_element(By.CSS_SELECTOR, "svg polygon").get_attribute("points")
            assert drawn == " ".join(f"{x},{y}" for x, y in listed)
            xs, ys = [x for x, _ in listed], [y for _, y in listed]  # (the rectangle they span: a region)
            assert figure.find_element(By.CLASS_NAME, "region").text == (
                f"region: [{min(xs)}, {min(ys)}, {max(xs)}, {max(ys)}]")
            assert "solo" not in (figure.get_attribute("class") or ""), "a click while drawing is a point"
            driver.find_element(By.ID, "clear-points").click()
            assert figure.find_element(By.CLASS_NAME, "points").text == ""
            assert figure.find_element(By.CLASS_NAME, "region").text == ""
            driver.find_element(By.ID, "draw").click()  # done: a click shows the stream alone again
            figure.click()
            until(lambda: "solo" in (figure.get_attribute("class") or ""), 10, "the tile shown alone")
        finally:
            driver.quit()


@pytest.mark.timeout(120)
def test_the_page_says_which_outputs_cannot_write_until_they_write_again(tmp_path: Path) -> None:
    """An output paused (a recording that a full disk refuses) is a red line under the header:
    which, since when, why, what it lost so far; gone once it writes again."""
    from selenium.webdriver.common.by import By

    from streamyolo.sinks.base import OutputPause

    lines = "return [...document.querySelectorAll('#paused div')].map((line) => line.textContent)"
    with _page(_config()) as (pipeline, driver):
        pause = OutputPause("recording of stream 'gate'", "frame(s)", board=pipeline.pause_board)  # (the run's)
        until(lambda: driver.find_element(By.ID, "run").text == "running", 30, "the page")
        assert not any("'gate'" in line for line in driver.execute_script(lines))
        pause.failed(OSError(28, "No space left on device"))
        pause.skip()
        since = driver.execute_script("return new Date(arguments[0] * 1000).toLocaleString()",
                                      pause.state()["since"])  # type: ignore[index]
        said = f"paused: recording of stream 'gate' since {since}: No space left on device (2 frame(s) lost so far)"
        until(lambda: said in driver.execute_script(lines) and driver.find_element(By.ID, "paused").is_displayed(),
              30, "the paused output said")
        pause.succeeded()
        until(lambda: said not in driver.execute_script(lines), 30, "the line gone")
    with pytest.raises(OutputsIncompleteError):
        pause.check()


@pytest.mark.timeout(120)
def test_the_page_and_metrics_say_while_the_machine_cannot_keep_up(tmp_path: Path) -> None:
    """Two 60 fps cameras against a model that takes most of a frame's time on this box: most
    frames are skipped, and ``/status.json`` (``"overload"``), ``/metrics``
    (``streamyolo_overloaded``) and a line under the page's header say so; with their
    detection switched off (no forward pass) the run keeps up, and all three say so."""
    from selenium.webdriver.common.by import By

    streams = [{"name": name, "source": f"synthetic:?size=320x240&fps=60&seed={i}", "realtime": True}
               for i, name in enumerate(NAMES)]
    with _page(_config(streams=streams, imgsz=640, overload_warning=1.5)) as (pipeline, driver):
        assert pipeline.web_url is not None
        overload = until(lambda: _status(pipeline).get("overload"), 60, "the status saying the run cannot keep up")
        assert overload["skipped"] >= 50 and sorted(overload["streams"]) == sorted(NAMES), overload
        assert overload["window"] >= 1.5 and abs(overload["since"] - time.time()) < 60, overload
        assert "\nstreamyolo_overloaded 1\n" in _get(pipeline.web_url + "metrics")[2].decode()
        line = driver.find_element(By.ID, "overload")
        until(lambda: line.is_displayed() and line.text.startswith("the machine cannot keep up: "), 30,
              "the page's line")
        assert all(name in line.text for name in NAMES) and "% of the live streams' frames skipped" in line.text
        for name in NAMES:
            pipeline.set_switch("detect", name, False)
        until(lambda: "overload" not in _status(pipeline), 60, "the status saying nothing of it")
        assert "\nstreamyolo_overloaded 0\n" in _get(pipeline.web_url + "metrics")[2].decode()
        until(lambda: not line.is_displayed(), 30, "the page's line gone")


@pytest.mark.timeout(120)
def test_the_page_and_metrics_say_while_a_stream_that_skips_nothing_falls_behind(tmp_path: Path) -> None:
    """A 30 fps file played in real time, every frame asked for (``overflow: lossless``),
    against a model that takes several of its frames' time: it skips none and falls behind
    real time. Its tile says how far (``… s behind``), ``/status.json`` (its ``behind`` and
    ``lagging``, the ``"overload"``'s ``behind``), ``/metrics``
    (``streamyolo_stream_behind_seconds``) and the line under the header say so; with its
    detection off it catches up, and all of them say so; the summary says how far it fell."""
    from selenium.webdriver.common.by import By

    streams = [{"name": "yard.2", "source": "synthetic:?size=320x240&fps=30&seed=1", "realtime": True,
                "overflow": "lossless"}]
    with _page(_config(streams=streams, imgsz=640, overload_warning=1.5)) as (pipeline, driver):
        assert pipeline.web_url is not None
        stream = until(lambda: next((s for s in _status(pipeline)["streams"] if s["lagging"]), None), 60,
                       "the stream lagging")
        assert stream["behind"] > 0.5 and stream["dropped"] == 0, stream  # (told at 2 s; up again at 0.5)
        overload = until(lambda: _status(pipeline).get("overload"), 30, "the status saying the run cannot keep up")
        assert overload["streams"] == [] and overload["behind"]["yard.2"] > 0.5, overload
        behind = re.search(r'^streamyolo_stream_behind_seconds\{stream="yard\.2"\} ([\d.]+)$',
                           _get(pipeline.web_url + "metrics")[2].decode(), re.MULTILINE)
        assert behind is not None and float(behind.group(1)) > 0.5
        age = driver.find_element(By.CSS_SELECTOR, 'figure[data-stream="yard.2"] .age')
        until(lambda: re.search(r"\d+\.\d s behind$", age.text), 30, "the tile saying how far behind")
        line = driver.find_element(By.ID, "overload")
        until(lambda: line.is_displayed() and re.match(r"the machine cannot keep up: yard\.2 \d+\.\d s behind, since ",
                                                       line.text), 30, "the page's line")
        pipeline.set_switch("detect", "yard.2", False)
        until(lambda: "overload" not in _status(pipeline), 60, "the status saying nothing of it")
        stream = _status(pipeline)["streams"][0]
        assert not stream["lagging"] and stream["behind"] < 1.0, stream
        until(lambda: not line.is_displayed() and "behind" not in age.text, 30, "the page's line and tile's words gone")
        pipeline.stop()
        summary = pipeline.join(30)
    worst = summary.streams["yard.2"].worst_behind
    assert worst is not None and worst >= 2.0 and summary.to_dict()["streams"]["yard.2"]["worst_behind"] >= 2.0
    assert f"yard.2 fell up to {worst:.1f} s behind: the machine could not keep up with it" in summary.table()
