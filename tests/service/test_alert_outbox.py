"""The durable alerts outbox (issue 17.1) with real `siteguard serve` processes and a real
webhook receiver on 127.0.0.1: notifications queued when the service is killed with SIGKILL
all arrive after the restart, each once; two replicas on one PostgreSQL never send one twice;
a message the receiver refuses for good is a dead letter an admin sees and can retry."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from ops.opslib import ServiceProcess, wait_until
from service_testkit import make_db_url


class Hook:
    """A webhook receiver: answers ``status`` (settable), records every request it answered."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.status = status
        self.delay_s = delay_s
        self.log: list[tuple[int, str | None, list[str]]] = []  # (status, delivery id, events)
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                time.sleep(hook.delay_s)
                status = hook.status
                ids = [v["event_id"] for v in body.get("violations") or []]
                with hook.lock:
                    hook.log.append((status, self.headers.get("X-SiteGuard-Delivery"), ids))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> Counter[str]:
        """Event id -> how many times it was answered 200."""
        with self.lock:
            return Counter(e for status, _, ids in self.log if status == 200 for e in ids)

    def refused(self) -> int:
        with self.lock:
            return sum(1 for status, _, _ in self.log if status != 200)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


def alerts_yaml(path: Path, url: str, max_attempts: int = 1000) -> Path:
    path.write_text(
        f"""
language: en
timezone: UTC
delivery: {{max_attempts: {max_attempts}, backoff_initial_s: 0.2, backoff_factor: 1.5,
            backoff_max_s: 1.0, timeout_s: 2}}
channels:
  hook: {{type: webhook, url: "{url}"}}
routes:
  - name: everything
    channels: [hook]
"""
    )
    return path


def post(url: str, key: str) -> str:
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "camera_id": "gate-1",
        "kind": "no_helmet",
        "zone": "site",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "duration_s": 2.0,
        "confidence": 0.8,
        "track_id": 1,
        "model_version": "outbox-test",
        "frame_width": 640,
        "frame_height": 360,
        "boxes": [],
    }
    response = httpx.post(
        f"{url}/api/v1/violations",
        headers={"X-API-Key": key},
        files={"event": (None, json.dumps(event), "application/json")},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return event_id


def assert_each_once(hook: Hook, sent: list[str], settle_s: float = 3.0) -> Counter[str]:
    """Every event arrived; after a pause for stragglers, none arrived twice."""

    def all_arrived() -> bool:
        """every posted violation reached the receiver"""
        return set(sent) <= set(hook.delivered())

    wait_until(all_arrived, timeout=120, interval=0.2)
    time.sleep(settle_s)
    delivered = hook.delivered()
    doubled = {e: n for e, n in delivered.items() if n > 1}
    assert not doubled, f"sent more than once: {doubled}"
    assert set(delivered) == set(sent)
    return delivered


def test_kill_9_with_notifications_queued_loses_none_and_doubles_none(
    tmp_path: Path, hook: Hook
) -> None:
    """SQLite, one `siteguard serve`: the receiver refuses (503) while 30 notifications queue
    up, the service is killed with SIGKILL, the receiver recovers, the service restarts."""
    config = alerts_yaml(tmp_path / "alerts.yaml", hook.url)
    service = ServiceProcess(tmp_path / "svc", env={"SITEGUARD_ALERTS_CONFIG": str(config)})
    key = service.bootstrap("site-a", ["gate-1"])
    hook.status = 503
    try:
        service.start()
        sent = [post(service.url, key) for _ in range(30)]
        wait_until(lambda: hook.refused() >= 10, timeout=60, interval=0.1)
        service.kill()
        assert not hook.delivered()
        hook.status = 200
        service.start()
        assert_each_once(hook, sent)
    finally:
        service.kill()


def test_kill_9_mid_delivery_resends_only_with_the_same_delivery_id(
    tmp_path: Path, hook: Hook
) -> None:
    """A kill while messages are going out: whatever the receiver answered but the outbox had
    not yet recorded goes out again after the restart, under the same X-SiteGuard-Delivery id,
    so a receiver that keeps those ids acts on every notification exactly once."""
    config = alerts_yaml(tmp_path / "alerts.yaml", hook.url)
    service = ServiceProcess(tmp_path / "svc", env={"SITEGUARD_ALERTS_CONFIG": str(config)})
    key = service.bootstrap("site-a", ["gate-1"])
    hook.delay_s = 0.05  # a slow peer: the kill lands during a send
    try:
        service.start()
        sent = [post(service.url, key) for _ in range(40)]
        wait_until(lambda: len(hook.delivered()) >= 5, timeout=60, interval=0.02)
        service.kill()
        service.start()

        def all_arrived() -> bool:
            """every posted violation reached the receiver"""
            return set(sent) <= set(hook.delivered())

        wait_until(all_arrived, timeout=120, interval=0.2)
        time.sleep(3)
        with hook.lock:
            answered = [(d, ids) for status, d, ids in hook.log if status == 200]
        by_delivery: dict[str, list[str]] = {}
        for delivery, ids in answered:
            assert delivery is not None
            assert by_delivery.setdefault(delivery, ids) == ids  # a resend is the same message
        once = Counter(e for ids in by_delivery.values() for e in ids)
        assert set(once) == set(sent) and set(once.values()) == {1}
        doubled = len(answered) - len(by_delivery)
        print(f"kill -9 mid-delivery: {len(sent)} sent, {doubled} resent with the same id")
        assert doubled <= 2  # at most what was in flight at the kill
    finally:
        service.kill()


def test_dead_letter_is_listed_for_admins_and_can_be_retried(tmp_path: Path, hook: Hook) -> None:
    config = alerts_yaml(tmp_path / "alerts.yaml", hook.url, max_attempts=2)
    service = ServiceProcess(tmp_path / "svc", env={"SITEGUARD_ALERTS_CONFIG": str(config)})
    key = service.bootstrap("site-a", ["gate-1"])
    service.admin("create-user", "boss", "--role", "admin", "--password", "a-long-pass-phrase-9")
    token = service.admin("create-api-key", "ops", "--user", "boss")["key"]
    admin = {"Authorization": f"Bearer {token}"}
    hook.status = 500
    try:
        service.start()
        event_id = post(service.url, key)

        def dead() -> list[dict[str, Any]]:
            """the message is a dead letter"""
            r = httpx.get(f"{service.url}/api/v1/alert-outbox/dead", headers=admin, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        letters = wait_until(dead, timeout=60, interval=0.2)
        assert letters[0]["attempts"] == 2 and "500" in (letters[0]["last_error"] or "")
        assert event_id in letters[0]["subject"]
        counts = httpx.get(f"{service.url}/api/v1/alert-outbox", headers=admin, timeout=30)
        assert counts.json()["dead"] == 1
        hook.status = 200
        retried = httpx.post(
            f"{service.url}/api/v1/alert-outbox/dead/{letters[0]['id']}/retry",
            headers=admin,
            timeout=30,
        )
        assert retried.status_code == 200, retried.text
        assert_each_once(hook, [event_id], settle_s=1.0)
        assert not dead()
        viewer = httpx.get(f"{service.url}/api/v1/alert-outbox/dead", timeout=30)
        assert viewer.status_code == 401
    finally:
        service.kill()


@pytest.fixture()
def pg_database(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    yield from make_db_url("postgres", tmp_path)


@pytest.mark.postgres
def test_two_replicas_on_postgres_send_each_notification_once(
    tmp_path: Path, hook: Hook, pg_database: str
) -> None:
    """Both replicas claim from one outbox (FOR UPDATE SKIP LOCKED) while 100 notifications,
    posted to either, wait for a refusing receiver; then it recovers and 60 more come in while
    both replicas send: each notification arrives once."""
    config = alerts_yaml(tmp_path / "alerts.yaml", hook.url)
    env = {"SITEGUARD_DATABASE_URL": pg_database, "SITEGUARD_ALERTS_CONFIG": str(config)}
    shared = tmp_path / "snapshots"
    a = ServiceProcess(tmp_path / "a", data_dir=shared, env=env)
    b = ServiceProcess(tmp_path / "b", data_dir=shared, env=env)
    key = a.bootstrap("site-a", ["gate-1"])
    hook.status = 503
    try:
        a.start()
        b.start()
        sent = [post((a if i % 2 else b).url, key) for i in range(100)]
        wait_until(lambda: hook.refused() >= 20, timeout=60, interval=0.1)
        hook.status = 200
        hook.delay_s = 0.01
        sent += [post((a if i % 2 else b).url, key) for i in range(60)]
        delivered = assert_each_once(hook, sent)
        print(f"two replicas: {len(sent)} sent, {sum(delivered.values())} arrived")
    finally:
        a.kill()
        b.kill()
