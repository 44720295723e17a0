"""Several stateless API replicas (the Kubernetes layout): two real `siteguard serve` processes
on one real PostgreSQL with `SITEGUARD_EVENT_BUS=postgres`. A violation ingested by replica A
reaches a live panel connected to replica B (SSE fan-out through LISTEN/NOTIFY, not memory)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pg_scratch import scratch_database

from ops.opslib import ServiceProcess, wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture()
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    with scratch_database("sg_ops") as url:
        yield url


class SseListener:
    """Reads one SSE stream in a thread and keeps the `data:` payloads."""

    def __init__(self, url: str, token: str) -> None:
        self.events: list[dict] = []
        self.status: int | None = None
        self.error: Exception | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, token), daemon=True)
        self._thread.start()

    def _run(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
                client.stream("GET", f"{url}/api/v1/events", headers=headers) as response,
            ):
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("data:"):
                        self.events.append(json.loads(line.removeprefix("data:")))
                    if self._stop.is_set():
                        return
        except httpx.HTTPError as exc:  # the replica was killed at the end of the test
            self.error = exc

    def close(self) -> None:
        self._stop.set()


def test_sse_fan_out_across_two_replicas(tmp_path: Path, database_url: str) -> None:
    env = {"SITEGUARD_DATABASE_URL": database_url, "SITEGUARD_EVENT_BUS": "postgres"}
    shared = tmp_path / "snapshots"  # the ReadWriteMany volume of the Kubernetes layout
    replica_a = ServiceProcess(tmp_path / "a", data_dir=shared, env=env)
    replica_b = ServiceProcess(tmp_path / "b", data_dir=shared, env=env)
    key = replica_a.bootstrap("site-k8s", ["gate-1"])
    replica_a.admin("create-user", "ops-admin", "--role", "admin", "--password", "ops-password-1")
    token = replica_a.admin("create-api-key", "panel", "--user", "ops-admin")["key"]
    listener = None
    try:
        replica_a.start()
        replica_b.start()
        listener = SseListener(replica_b.url, token)
        assert listener.connected.wait(60), f"no stream: {listener.status} {listener.error}"
        event_id = str(uuid.uuid4())
        event = {
            "event_id": event_id,
            "camera_id": "gate-1",
            "kind": "no_helmet",
            "zone": "site",
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "ended_at": None,
            "duration_s": 2.0,
            "confidence": 0.8,
            "track_id": 1,
            "model_version": "ops",
            "frame_width": 640,
            "frame_height": 360,
            "boxes": [],
        }
        response = httpx.post(
            f"{replica_a.url}/api/v1/violations",
            headers={"X-API-Key": key},
            files={"event": (None, json.dumps(event), "application/json")},
            timeout=60,
        )
        assert response.status_code == 201, response.text

        def seen_on_b() -> bool:
            """replica B's panel stream carried the violation ingested by replica A"""
            return any(e.get("data", {}).get("event_id") == event_id for e in listener.events)

        wait_until(seen_on_b, timeout=30)
        # And the other way round: the stored row is visible through replica B's API.
        listed = httpx.get(
            f"{replica_b.url}/api/v1/violations/{event_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert listed.status_code == 200, listed.text
    finally:
        if listener is not None:
            listener.close()
        replica_a.kill()
        replica_b.kill()
