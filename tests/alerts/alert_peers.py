"""Real peers on 127.0.0.1 for the alerts tests: an HTTP receiver, an SMTP server, a clock.

Fixtures wrapping these live in conftest.py; test modules import the helpers from here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest
from aiosmtpd.controller import Controller

from alerts import AlertHub, ViolationNotice

# A small real JPEG, so attachments are byte-compared against what was encoded.
JPEG = cv2.imencode(".jpg", np.full((48, 64, 3), (0, 128, 255), dtype=np.uint8))[1].tobytes()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll (never a fixed sleep): generous timeout for a busy shared 2-core machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; replies from ``script`` (per path) then with ``default``."""

    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    default: tuple[int, Any] = (200, {"errcode": 0, "errmsg": "ok"})
    delay_s: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Request]:
        wait_until(lambda: len(self.on(path)) >= count, timeout, f"{count} request(s) on {path}")
        return self.on(path)

    def reply(self, path: str) -> tuple[int, Any]:
        with self.lock:
            queue = self.script.get(path)
            return queue.pop(0) if queue else self.default


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            parts = urlsplit(self.path)
            request = Request(
                method="POST",
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k: v for k, v in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            with rec.lock:
                rec.requests.append(request)
            delay = rec.delay_s.get(parts.path, 0.0)
            if delay:
                time.sleep(delay)
            status, payload = rec.reply(parts.path)
            data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply

    def wait(self, count: int = 1, timeout: float = 20.0) -> list[tuple[str, list[str], Any]]:
        wait_until(lambda: len(self.messages) >= count, timeout, f"{count} mail(s)")
        return self.messages


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.sink.reject:
            return self.sink.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


def start_smtp(sink: SmtpSink, **controller_kwargs: Any) -> Controller:
    controller = Controller(
        _SinkHandler(sink), hostname=sink.host, port=sink.port, **controller_kwargs
    )
    controller.start()
    return controller


@pytest.fixture()
def smtp(free_port: int) -> Iterator[SmtpSink]:
    sink = SmtpSink("127.0.0.1", free_port)
    controller = start_smtp(sink)
    yield sink
    controller.stop()


class FakeClock:
    """A controllable clock: ``clock()`` returns the current fake time."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self.now += timedelta(**delta)
            return self.now


@pytest.fixture()
def clock() -> FakeClock:
    # Monday 2026-11-23 10:00 in Asia/Shanghai (02:00 UTC): a working hour.
    return FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))


FAST_DELIVERY = {"max_attempts": 4, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}


@pytest.fixture()
def make_hub() -> Iterator[Callable[..., AlertHub]]:
    """Build and start hubs from config dicts; always stopped at teardown."""
    hubs: list[AlertHub] = []

    def make(config: dict[str, Any], clock: Callable[[], datetime] | None = None) -> AlertHub:
        config = {"delivery": dict(FAST_DELIVERY), "tick_interval_s": 3600, **config}
        hub = AlertHub.from_config(config, clock=clock, env={})
        hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop(timeout=2)


_counter = iter(range(1, 1_000_000))


def violation(clock: Callable[[], datetime] | None = None, **overrides: Any) -> ViolationNotice:
    """A plausible no-helmet notice; ``overrides`` replace any field."""
    n = next(_counter)
    started = clock() if clock else datetime.now(UTC)
    fields: dict[str, Any] = {
        "event_id": f"evt-{n}",
        "site_id": "site-a",
        "camera_id": "gate-1",
        "zone": "site",
        "kind": "no_helmet",
        "started_at": started,
        "duration_s": 4.0,
        "confidence": 0.81,
        "snapshot_jpeg": JPEG,
        "link": f"http://siteguard.local/violations/evt-{n}",
    }
    fields.update(overrides)
    return ViolationNotice(**fields)
