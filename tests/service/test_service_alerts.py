"""The service drives the real `alerts` library: a webhook channel pointing at a local HTTP
receiver gets the violation and the camera outage, and a broken alerts config stops start-up."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from service_testkit import ServerThread, event, jpeg, post_violation, seed

pytest.importorskip("alerts")


@pytest.fixture()
def receiver() -> tuple[str, queue.Queue]:
    got: queue.Queue = queue.Queue()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            length = int(self.headers.get("content-length", 0))
            got.put(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got
    server.shutdown()


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        f"""
language: en
timezone: UTC
camera_offline_grace_s: 0
tick_interval_s: 0.2
channels:
  hook: {{type: webhook, url: "{url}"}}
routes:
  - name: everything
    events: [violation, camera]
    channels: [hook]
    group_window_s: 0
    cooldown_s: 0
"""
    )
    return path


def test_ingest_and_camera_outage_reach_the_webhook(tmp_path: Path, receiver) -> None:  # type: ignore[no-untyped-def]
    from service.app import create_app
    from service.config import load_settings

    url, got = receiver
    settings = load_settings(
        data_dir=tmp_path / "data",
        alerts_config=config(tmp_path, url),
        public_url="https://siteguard.example",
    )
    app = create_app(settings)
    keys, _ = seed(app.state.siteguard)
    body = event()
    with ServerThread(app) as server:
        import httpx

        with httpx.Client(base_url=server.url, headers={"X-API-Key": keys["site-a"]}) as det:
            assert post_violation(det, body, jpeg(seed=1)).status_code == 201
            first = got.get(timeout=60)
            assert body["event_id"] in json.dumps(first)
            beat = {"detector_id": "e", "cameras": [{"camera_id": "gate-1", "state": "offline"}]}
            assert det.post("/api/v1/heartbeats", json=beat).status_code == 200
            outage = got.get(timeout=60)
            assert "gate-1" in json.dumps(outage)
            # Delivery stats reach Prometheus through the service's own /metrics.
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'siteguard_alert_deliveries_total{channel_type="webhook"' in metrics


def test_bad_alerts_config_stops_start_up(tmp_path: Path) -> None:
    from alerts import AlertsConfigError
    from service.app import create_app
    from service.config import load_settings

    bad = tmp_path / "alerts.yaml"
    bad.write_text("channels:\n  x: {type: pager}\nroutes: []\n")
    with pytest.raises(AlertsConfigError):
        create_app(load_settings(data_dir=tmp_path / "data", alerts_config=bad))
