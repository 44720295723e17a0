"""Cameras over RTSP against a real server: gst-rtsp-server on 127.0.0.1 (detector/rtsp_sim.py).

Credentials in the URL, RTP over TCP only, H.264 and H.265, a server killed and restarted, a
server stopped (SIGSTOP) with the connection open. The figures are read from the reader's own
frame and state-transition times, not from the test's sleeps. Skips when the Debian packages are
absent (`scripts/install.sh system` installs them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import httpx
import pytest
from detector_testlib import wait_until

from detector.config import CameraConfig, load_config
from detector.health import CameraHealth
from detector.outbox import Outbox
from detector.poster import Poster
from detector.runner import Runner
from detector.sources import CameraReader

HERE = Path(__file__).resolve().parent
SERVER = HERE.parents[1] / "detector" / "rtsp_sim.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi; the project venv has no gi
PACKAGES = "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-{base,good,bad,ugly}"
TARGET_S = 10.0  # issue 15: stall -> offline, restart -> frames again
_PROBE = """
import sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
need = ["videotestsrc", "x264enc", "rtph264pay", "multifilesrc", "jpegdec"] + sys.argv[1:]
print(",".join(e for e in need if Gst.ElementFactory.find(e) is None))
"""


def _missing(*elements: str) -> str | None:
    """Why the server cannot run here (None = it can)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} missing"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE, *elements],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    if probe.returncode != 0:
        return f"GStreamer RTSP server not importable ({PACKAGES})"
    missing = probe.stdout.strip()
    return f"GStreamer elements missing: {missing} ({PACKAGES})" if missing else None


def _require(*elements: str) -> None:
    reason = _missing(*elements)
    if reason:
        pytest.skip(reason)


class RtspServer:
    """detector/rtsp_sim.py as a child process: start, kill, restart, stop, resume."""

    def __init__(self, port: int, log: Path, *args: str) -> None:
        self.port, self.log, self.args = port, log, args
        self.proc: subprocess.Popen | None = None

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials}{'@' if credentials else ''}127.0.0.1:{self.port}/cam"

    def start(self) -> float:
        """Start and wait until it listens; returns that moment (wall clock)."""
        cmd = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log.open("ab"),
                                     text=True)  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line.strip() == "READY", self.log.read_text()[-2000:]
        return time.time()

    def signal(self, sig: signal.Signals) -> float:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return time.time()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture()
def rtsp(tmp_path: Path, free_port: int) -> Iterator:
    servers: list[RtspServer] = []

    def make(*args: str) -> RtspServer:
        server = RtspServer(free_port, tmp_path / "rtsp.log", *args)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture()
def reader_factory() -> Iterator:
    readers: list[CameraReader] = []

    def make(source: str, **kw) -> CameraReader:
        reader = CameraReader(CameraConfig(id="yard", source=source, **kw))
        reader.start()
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.stop()


def _frame_times(reader: CameraReader) -> list[float]:
    """Arrival times of the frames the reader delivers from now on (its own timestamps)."""
    times: list[float] = []
    reader._on_frame = lambda _cam: times.append(reader.last_frame_at or 0.0)
    return times


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_credentials_in_the_url_over_tcp_only(codec: str, rtsp, reader_factory) -> None:
    _require("x265enc", "rtph265pay") if codec == "h265" else _require()
    server = rtsp("--codec", codec, "--user", "cam", "--password", "s3cr:et", "--tcp-only")
    reader = reader_factory(server.url("cam:s3cr%3Aet"))
    frame = wait_until(lambda: reader.latest(0), timeout=60)
    assert frame.image.shape == (240, 320, 3)
    wait_until(lambda: reader.state == "online", timeout=60)
    assert reader.last_error is None

    wrong = reader_factory(server.url("cam:wrong"), reconnect_max_s=2)
    wait_until(lambda: wrong.last_error, timeout=60)
    assert wrong.state == "offline" and wrong.frames_read == 0
    assert "cam:***@" in wrong.last_error and "wrong" not in wrong.last_error


def test_restarted_server_is_read_again_within_10_s(rtsp, reader_factory) -> None:
    _require()
    server = rtsp()
    reader = reader_factory(server.url())
    wait_until(lambda: reader.state == "online", timeout=60)
    server.kill()
    wait_until(lambda: reader.state == "offline", timeout=30)
    time.sleep(8)  # long enough for the reconnect backoff to reach its cap
    times = _frame_times(reader)
    restarted_at = server.start()
    wait_until(lambda: reader.state == "online", timeout=60)
    first = min(t for t in times if t >= restarted_at)
    online = reader.health.last("online")
    assert online is not None and online.at >= restarted_at
    print(
        f"restart -> first frame {first - restarted_at:.1f} s, "
        f"online {online.at - restarted_at:.1f} s"
    )
    assert first - restarted_at <= TARGET_S
    assert online.at - restarted_at <= TARGET_S


def test_stalled_server_is_offline_within_stall_after_s_and_a_late_frame_does_not_end_it(
    rtsp, reader_factory
) -> None:
    _require()
    server = rtsp()
    reader = reader_factory(server.url())  # default stall_after_s
    stall_after_s = reader.config.stall_after_s
    assert stall_after_s <= TARGET_S
    wait_until(lambda: reader.state == "online", timeout=60)
    stopped_at = server.signal(signal.SIGSTOP)  # the connection stays open, nothing flows
    wait_until(lambda: reader.state == "offline", timeout=60)
    offline = reader.health.last("offline")
    assert offline is not None and offline.at >= stopped_at
    print(f"stall -> offline {offline.at - stopped_at:.1f} s ({offline.reason})")
    assert offline.at - stopped_at <= TARGET_S
    assert offline.reason.startswith("no frame for")

    # Let a few frames through (a blip shorter than recover_after_s), then stall again.
    read_before = reader.frames_read
    deadline = time.monotonic() + 60
    while reader.frames_read == read_before and time.monotonic() < deadline:
        server.signal(signal.SIGCONT)
        time.sleep(0.3)
        server.signal(signal.SIGSTOP)
        time.sleep(2.0)
    assert reader.frames_read > read_before, "no late frame came through the blips"
    late_at = reader.last_frame_at
    time.sleep(stall_after_s + 1)
    assert reader.health.last("online").at < stopped_at, "a late frame flipped it back online"
    assert reader.state == "offline"

    resumed_at = server.signal(signal.SIGCONT)
    wait_until(lambda: reader.state == "online", timeout=60)
    back = reader.health.last("online").at - resumed_at
    print(
        f"late frame at +{late_at - stopped_at:.1f} s: still offline; "
        f"resumed -> online {back:.1f} s"
    )
    assert back <= TARGET_S


def test_one_late_frame_in_a_stall_is_not_a_recovery() -> None:
    """The same rule on exact times: online again only after `recover_after_s` of frames."""
    health = CameraHealth("yard", stall_after_s=6, frozen_after_s=30, recover_after_s=2)
    health.connected(now=0.0)
    for t in (0.0, 0.5, 1.0, 1.5, 2.0):
        health.frame(now=t)
    assert health.state(now=2.0) == "online"
    assert health.state(now=9.0) == "offline"
    assert health.last("offline").at == 8.0  # last frame + stall_after_s, whenever it was asked
    health.frame(now=11.0)  # one late frame
    assert health.state(now=11.0) == "offline"
    assert health.state(now=18.0) == "offline"
    for t in (20.0, 20.5, 21.0, 21.5, 22.0):  # frames flow again
        health.frame(now=t)
        assert health.state(now=t) == ("online" if t >= 22.0 else "offline")
    assert [t.state for t in health.transitions] == ["online", "offline", "online"]


# -- the detector with a real service: the alert, and no event lost across stall and restart ----

CODE = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"


def _siteguard(*args: str) -> str:
    result = subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class CameraNotices:
    """A webhook receiver on 127.0.0.1: the camera alerts the service delivers, with their time."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str]] = []
        notices = self.received

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                text = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                state = "offline" if "offline" in text else "online"
                notices.append((time.time(), state))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def first(self, state: str, after: float) -> float | None:
        return next((at for at, s in list(self.received) if s == state and at >= after), None)

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture()
def site_service(tmp_path: Path) -> Iterator[tuple[str, str, Path, CameraNotices]]:
    """`siteguard serve` (SQLite) with camera `yard`, camera alerts to a local webhook at once."""
    pytest.importorskip("service.app")
    notices = CameraNotices()
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        "language: en\ntimezone: UTC\ncamera_offline_grace_s: 0\ntick_interval_s: 0.2\n"
        f'channels:\n  hook: {{type: webhook, url: "{notices.url}"}}\n'
        "routes:\n  - {name: ops, events: [camera], channels: [hook], cooldown_s: 0}\n"
    )
    data = tmp_path / "service-data"
    admin = ["admin", "--data-dir", str(data)]
    _siteguard(*admin, "upgrade-db")
    _siteguard(*admin, "create-site", "site-a")
    _siteguard(*admin, "create-camera", "--site", "site-a", "yard")
    key = json.loads(_siteguard(*admin, "create-api-key", "--site", "site-a", "edge").strip())
    port = _free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-c", CODE, "serve", "--data-dir", str(data), "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    env = {**os.environ, "SITEGUARD_ALERTS_CONFIG": str(alerts)}
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=120, interval=0.3)
    yield url, key["key"], data / "siteguard.db", notices
    proc.terminate()
    proc.wait(30)
    notices.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model() -> Path:
    for name in ("siteguard-ppe.onnx", "siteguard-ppe-int8.onnx", "siteguard-ppe-v1.onnx"):
        path = HERE.parents[1] / "models" / name
        if path.is_file():
            return path
    pytest.skip("no bundled model in models/")


def _violations(db: Path) -> tuple[int, int]:
    """(stored, closed) violations of camera `yard` in the service's database."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        sql = "SELECT count(*), count(ended_at) FROM violations WHERE camera_id = 'yard'"
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def test_detector_stall_and_restart_raise_the_alert_and_lose_no_event(
    tmp_path: Path, rtsp, site_service, worker_images: list[Path]
) -> None:
    _require()
    url, key, db, notices = site_service
    frames = tmp_path / "frames"
    frames.mkdir()
    index = 0
    for image in worker_images[:4]:  # each photo held 5 s (25 frames), as a camera would show it
        picture = cv2.resize(cv2.imread(str(image)), (640, 480))
        for _ in range(25):
            cv2.imwrite(str(frames / f"{index:05d}.jpg"), picture)
            index += 1
    server = rtsp("--images", str(frames), "--fps", "5", "--width", "640", "--height", "480")
    config = load_config(
        None,
        detector_id="edge-rtsp",
        model={"path": str(_model()), "watch": False},
        service={"url": url, "api_key": key, "heartbeat_interval_s": 1.0, "retry_max_s": 1.0},
        outbox={"path": str(tmp_path / "outbox.sqlite3")},
        rules={"hold_s": 0.5, "close_after_s": 1.0, "cooldown_s": 0},
        metrics={"enabled": False},
        cameras=[{"id": "yard", "source": server.url(), "fps": 5}],
    )
    runner = Runner(config)
    reader = runner.cameras["yard"].reader
    opened = runner.metrics.violations.labels("yard", "no_helmet")
    runner.start()
    thread = threading.Thread(target=runner.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: opened._value.get() >= 1, timeout=300)
        wait_until(lambda: reader.state == "online", timeout=60)

        stopped_at = server.signal(signal.SIGSTOP)
        alert_at = wait_until(lambda: notices.first("offline", stopped_at), timeout=60)
        offline = reader.health.last("offline")
        assert offline is not None and offline.at >= stopped_at
        print(f"stall -> detector offline {offline.at - stopped_at:.1f} s, "
              f"alert delivered {alert_at - stopped_at:.1f} s")  # fmt: skip
        assert offline.at - stopped_at <= TARGET_S
        before_restart = opened._value.get()

        server.kill()  # a crash while stalled, then the camera comes back
        restarted_at = server.start()
        wait_until(lambda: notices.first("online", restarted_at), timeout=60)
        back = reader.health.last("online").at - restarted_at
        print(f"restart -> online {back:.1f} s")
        assert back <= TARGET_S
        wait_until(lambda: opened._value.get() > before_restart, timeout=300)
    finally:
        runner.request_stop()
        thread.join(120)
    # stop() queued the end of every open episode; a fresh poster run delivers what is left.
    outbox = Outbox(config.outbox.path)
    assert Poster(config.service, outbox).drain()
    assert outbox.depth() == 0 and outbox.dead_count() == 0
    events = int(opened._value.get())
    assert _violations(db) == (events, events)  # every event stored, every one closed
