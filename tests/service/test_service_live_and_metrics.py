"""SSE per user (only their sites), /metrics (checked by promtool), /healthz, /readyz."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time

import pytest
from service_testkit import PASSWORD, Live, event, jpeg, post_violation


def read_events(live: Live, username: str, out: queue.Queue, stop: threading.Event) -> None:
    with live.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200
        with c.stream("GET", "/api/v1/events") as stream:
            out.put(("open", stream.status_code))
            kind = None
            for line in stream.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    out.put((kind, json.loads(line[6:])))


def test_sse_stream_shows_only_own_sites(live: Live) -> None:
    got: queue.Queue = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=read_events, args=(live, "mgr-a", got, stop), daemon=True)
    reader.start()
    assert got.get(timeout=60) == ("open", 200)
    deadline = time.monotonic() + 30
    while live.state.bus.subscribers < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    b_event, a_event = event("gate-b"), event("gate-1")
    with live.detector("site-b") as det_b:
        assert post_violation(det_b, b_event).status_code == 201
    with live.detector() as det_a:
        assert post_violation(det_a, a_event, jpeg(seed=5)).status_code == 201
    kind, payload = got.get(timeout=60)
    assert kind == "violation"
    assert payload["site_id"] == "site-a"  # the site-b event, posted first, never arrived
    assert payload["data"]["event_id"] == a_event["event_id"]
    with live.login("mgr-a") as mgr:
        r = mgr.post(
            f"/api/v1/violations/{a_event['event_id']}/review", json={"outcome": "confirmed"}
        )
        assert r.status_code == 200
    kind, payload = got.get(timeout=60)
    assert kind == "review" and payload["data"]["status"] == "confirmed"
    stop.set()
    with live.client() as anon:
        assert anon.get("/api/v1/events").status_code == 401


def test_health_endpoints(live: Live) -> None:
    with live.client() as c:
        assert c.get("/healthz").text == "ok"
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.text == "ready"
        spec = c.get("/openapi.json").json()
        assert "/api/v1/violations" in spec["paths"]


def test_metrics_pass_promtool(live: Live, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with live.detector() as det:
        assert post_violation(det, event(), jpeg(seed=8)).status_code == 201
        intrusion = event(kind="zone_intrusion", zone="crane")
        assert post_violation(det, intrusion, jpeg(seed=9)).status_code == 201
        beat = {"detector_id": "edge-x", "cameras": [{"camera_id": "gate-1", "state": "online"}]}
        assert det.post("/api/v1/heartbeats", json=beat).status_code == 200
    with live.client() as c:
        text = c.get("/metrics").text
    assert 'siteguard_violations_received_total{kind="no_helmet",site="site-a"}' in text
    assert 'siteguard_violations_received_total{kind="zone_intrusion",site="site-a"}' in text
    assert 'siteguard_camera_online{camera="gate-1",site="site-a"} 1.0' in text
    assert "siteguard_ingest_duration_seconds_bucket" in text
    assert "siteguard_db_errors_total" in text
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not shutil.which(promtool):
        pytest.skip("promtool not installed (Debian package prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
