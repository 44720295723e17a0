"""Admin page: notification channels and "send test message" through a real webhook receiver."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .testkit import PASSWORD, LiveService, running_service


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture(scope="module")
def alerting_service(tmp_path_factory: pytest.TempPathFactory, receiver: str) -> Iterator:
    data_dir = tmp_path_factory.mktemp("web-alerts")
    config = Path(data_dir) / "alerts.yaml"
    config.write_text(
        "channels:\n"
        f"  ops-hook:\n    type: webhook\n    url: {receiver}\n"
        "  dead-hook:\n    type: webhook\n    url: http://127.0.0.1:9/nothing-listens\n",
        encoding="utf-8",
    )
    with running_service(data_dir, alerts_config=config) as live:
        yield live


@contextlib.contextmanager
def _admin(live: LiveService) -> Iterator[tuple[httpx.Client, str, str]]:
    """A logged-in admin client, its CSRF token and the admin page."""
    with live.client() as client:
        resp = client.post("/login", data={"username": "admin", "password": PASSWORD})
        assert resp.status_code == 303
        page = client.get("/admin").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        yield client, token, page


def test_send_test_message_reaches_the_channel(alerting_service: LiveService) -> None:
    with _admin(alerting_service) as (client, token, page):
        assert "ops-hook" in page and "dead-hook" in page
        before = len(_Receiver.received)
        resp = client.post("/admin/alerts/test", data={"channel": "ops-hook", "csrf_token": token})
        assert resp.status_code == 303
        assert len(_Receiver.received) == before + 1  # delivered synchronously, for real
        resp = client.post("/admin/alerts/test", data={"channel": "dead-hook", "csrf_token": token})
        assert resp.status_code == 303
        page = client.get(resp.headers["location"]).text
        log = page[page.index('id="deliveries"') :]
        assert "delivered" in log and "failed" in log and "Connection refused" in log
        audit = client.get("/api/v1/audit", params={"action": "alerts.test"})
        assert audit.status_code == 200
        outcomes = {e["target"]: e["detail"]["outcome"] for e in audit.json()}
        assert outcomes == {"ops-hook": "delivered", "dead-hook": "failed"}


def test_send_test_refuses_bad_requests(alerting_service: LiveService) -> None:
    with _admin(alerting_service) as (client, token, _):
        assert client.post("/admin/alerts/test", data={"channel": "ops-hook"}).status_code == 403
        resp = client.post("/admin/alerts/test", data={"channel": "nope", "csrf_token": token})
        assert resp.status_code == 404
    with alerting_service.client() as manager:
        manager.post("/login", data={"username": "manager", "password": PASSWORD})
        page = manager.get("/alerts").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        resp = manager.post("/admin/alerts/test", data={"channel": "ops-hook", "csrf_token": token})
        assert resp.status_code == 403


def test_admin_page_says_when_alerts_are_off(live_service: LiveService) -> None:
    with _admin(live_service) as (_, _, page):
        assert "Alerts are not configured" in page
