"""Nothing accepted is lost: real `siteguard serve` and `siteguard detect` processes on
127.0.0.1, the bundled model on real test images with bare heads, and real failures (SIGKILL,
an unwritable snapshot store).

The backend outage lasts SITEGUARD_OPS_OUTAGE_S seconds (default 12 so CI stays short);
`python bench/bench_outage.py` runs the same test with the 60 s outage of the issue.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.opslib import DetectorProcess, ServiceProcess, wait_until
from ops.reliability import (
    CAMERA,
    IMAGE_HOLD_S,
    SITE,
    Tally,
    detector_config,
    detector_count,
    settle,
    violation_images,
)

OUTAGE_S = float(os.environ.get("SITEGUARD_OPS_OUTAGE_S", "12"))


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path / "service")
    yield svc
    svc.kill()


Factory = Callable[[dict], DetectorProcess]


@pytest.fixture()
def detector_factory(tmp_path: Path) -> Iterator[Factory]:
    started: list[DetectorProcess] = []

    def make(config: dict) -> DetectorProcess:
        det = DetectorProcess(tmp_path / "detector", config)
        started.append(det)
        return det

    yield make
    for det in started:
        det.kill()


def test_backend_killed_while_detector_streams(
    record_property: Callable[[str, object], None],
    service: ServiceProcess,
    detector_factory: Factory,
    bundled_model: Path,
    hardhat_dir: Path,
    tmp_path: Path,
) -> None:
    """SIGKILL the service mid-stream, keep it down OUTAGE_S, restart: every violation the
    detector counted is stored exactly once."""
    images = max(4, math.ceil((OUTAGE_S + 12) / IMAGE_HOLD_S))
    folder = violation_images(hardhat_dir, tmp_path / "camera", images, bundled_model)
    key = service.bootstrap(SITE, [CAMERA])
    service.start()
    detector = detector_factory(detector_config(bundled_model, service, key, folder)).start()

    # Events flow before the crash.
    wait_until(lambda: service.event_ids(), timeout=300, diagnose=detector.diagnose)
    service.kill()
    down_at = time.monotonic()
    tally = Tally(notes={"outage_s": OUTAGE_S, "images": images})

    def queued() -> bool:
        """violations queue in the detector's outbox while the service is down"""
        tally.max_queued = max(tally.max_queued, len(detector.outbox("pending")))
        return time.monotonic() - down_at >= OUTAGE_S

    wait_until(queued, timeout=OUTAGE_S + 30, interval=0.5)
    tally.notes["detected_during_outage"] = detector_count(detector)
    service.start()
    settle(detector, service, tally, timeout=240)
    record_property("tally", tally.summary())
    tally.check()
    assert tally.max_queued > 0, f"the outage queued nothing: {tally.summary()}"


def test_detector_killed_with_full_outbox_delivers_on_restart(
    service: ServiceProcess,
    detector_factory: Factory,
    bundled_model: Path,
    hardhat_dir: Path,
    tmp_path: Path,
) -> None:
    """Violations queued while the service is unreachable survive a SIGKILL of the detector;
    the restarted detector delivers each exactly once."""
    folder = violation_images(hardhat_dir, tmp_path / "camera", 3, bundled_model)
    key = service.bootstrap(SITE, [CAMERA])  # set up, but not serving yet
    config = detector_config(bundled_model, service, key, folder)
    detector = detector_factory(config).start()

    queued = wait_until(
        lambda: len(detector.outbox("pending")) >= 2 and detector.outbox(),
        timeout=300,
        diagnose=detector.diagnose,
    )
    detector.kill()
    after_kill = detector.outbox("pending")
    assert set(queued) <= set(after_kill), "a queued event vanished with the process"

    service.start()
    config["cameras"][0]["enabled"] = False  # the restart only drains what it owes
    restarted = detector_factory(config).start()

    def drained() -> bool:
        """the restarted detector emptied its outbox"""
        return not restarted.outbox("pending")

    wait_until(drained, timeout=120, interval=0.5)
    stored = service.event_ids()
    assert sorted(stored) == sorted(after_kill), "stored rows differ from the queued events"
    assert not restarted.outbox("dead")


def test_unwritable_snapshot_store_keeps_events_in_outbox(
    service: ServiceProcess,
    detector_factory: Factory,
    bundled_model: Path,
    hardhat_dir: Path,
    tmp_path: Path,
) -> None:
    """The service's snapshot store stops accepting writes (a file where its directory was:
    even root cannot write there). Ingest fails with a clear, retryable error, readiness turns
    503, the detector keeps the events; once the store is back, each is stored exactly once."""
    import httpx

    folder = violation_images(hardhat_dir, tmp_path / "camera", 3, bundled_model)
    key = service.bootstrap(SITE, [CAMERA])
    service.start()
    blobs = service.data_dir / "blobs"
    shutil.rmtree(blobs)
    blobs.write_text("not a directory: simulates a full or read-only snapshot disk\n")
    assert httpx.get(f"{service.url}/readyz", timeout=30).status_code == 503

    detector = detector_factory(detector_config(bundled_model, service, key, folder)).start()
    wait_until(lambda: detector.outbox("pending"), timeout=300, diagnose=detector.diagnose)

    def refused() -> bool:
        """the detector logged a failed delivery for a queued event"""
        return "not delivered" in detector.log.read_text(errors="replace")

    wait_until(refused, timeout=60)
    assert service.event_ids() == [], "an event was stored without its snapshot"
    error = [line for line in detector.tail(200).splitlines() if "not delivered" in line][-1]
    assert "HTTP 5" in error, f"the detector should see a retryable 5xx, got: {error}"
    tally = Tally(max_queued=len(detector.outbox("pending")))

    blobs.unlink()
    blobs.mkdir()
    settle(detector, service, tally, timeout=180)
    tally.check(min_events=2)
    assert httpx.get(f"{service.url}/readyz", timeout=30).status_code == 200


def test_camera_stream_cut_and_restored(
    service: ServiceProcess,
    detector_factory: Factory,
    bundled_model: Path,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """An MJPEG camera's stream is cut, then restored on the same address: the detector
    reconnects within 10 s, and the camera-offline alert is raised and then cleared through
    the service's real alerts path (webhook to a local receiver)."""
    import yaml

    from ops.opslib import free_port, sample_sum
    from ops.peers import MjpegCamera, WebhookReceiver

    receiver = WebhookReceiver()
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        yaml.safe_dump(
            {
                "language": "en",
                "timezone": "UTC",
                "camera_offline_grace_s": 2,
                "channels": {"ops": {"type": "webhook", "url": receiver.url}},
                "routes": [{"name": "cameras", "events": ["camera"], "channels": ["ops"]}],
            }
        )
    )
    camera = MjpegCamera(free_port()).restore()
    key = service.bootstrap(SITE, [CAMERA])
    service.start(env={"SITEGUARD_ALERTS_CONFIG": str(alerts)})
    config = detector_config(bundled_model, service, key, tmp_path)
    config["cameras"][0].update(
        source=camera.url, fps=2, reconnect_initial_s=0.5, reconnect_max_s=4.0
    )
    config["motion"] = {"enabled": True}
    detector = detector_factory(config).start()

    def state_is(state: str):
        def check() -> bool:
            return (
                sample_sum(
                    detector.metrics(),
                    "siteguard_detector_camera_state",
                    camera=CAMERA,
                    state=state,
                )
                == 1
            )

        check.__doc__ = f"the detector reports {CAMERA} {state}"
        return check

    def service_online(value: float):
        def check() -> bool:
            return sample_sum(service.metrics(), "siteguard_camera_online", camera=CAMERA) == value

        check.__doc__ = f"the service's siteguard_camera_online for {CAMERA} is {value}"
        return check

    try:
        wait_until(state_is("online"), timeout=60)
        wait_until(service_online(1.0), timeout=30)

        camera.cut()
        wait_until(state_is("offline"), timeout=30)
        wait_until(service_online(0.0), timeout=30)
        wait_until(lambda: "offline" in receiver.camera_states(CAMERA), timeout=30)
        time.sleep(6)  # long enough for the reconnect backoff to reach its ceiling

        camera.restore()
        restored_at = time.monotonic()
        wait_until(state_is("online"), timeout=30, interval=0.1)
        reconnect_s = time.monotonic() - restored_at
        record_property("reconnect_s", round(reconnect_s, 2))
        assert reconnect_s <= 10.0, f"reconnected after {reconnect_s:.1f}s"
        wait_until(service_online(1.0), timeout=30)
        wait_until(lambda: receiver.camera_states(CAMERA)[-1:] == ["online"], timeout=30)
        assert receiver.camera_states(CAMERA) == ["offline", "online"]
    finally:
        camera.cut()
        receiver.close()


def test_snapshot_store_failure_is_a_clear_error(service: ServiceProcess) -> None:
    """A post that cannot be stored gets a retryable status with a reason an operator can act
    on (not a bare 500), and nothing is stored half-way."""
    import datetime as dt
    import json
    import uuid

    import cv2
    import httpx
    import numpy as np

    key = service.bootstrap(SITE, [CAMERA])
    service.start()
    blobs = service.data_dir / "blobs"
    shutil.rmtree(blobs)
    blobs.write_text("not a directory\n")
    ok, jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
    assert ok
    event = {
        "event_id": str(uuid.uuid4()),
        "camera_id": CAMERA,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "ended_at": None,
        "duration_s": 1.0,
        "confidence": 0.8,
        "track_id": 1,
        "model_version": "ops-test",
        "frame_width": 64,
        "frame_height": 64,
        "boxes": [],
    }
    response = httpx.post(
        f"{service.url}/api/v1/violations",
        headers={"X-API-Key": key},
        files={
            "event": (None, json.dumps(event), "application/json"),
            "snapshot": ("snapshot.jpg", jpeg.tobytes(), "image/jpeg"),
        },
        timeout=30,
    )
    assert service.event_ids() == []
    assert response.status_code in {503, 507}, (response.status_code, response.text)
    detail = response.json()["detail"].lower()
    assert "snapshot" in detail or "storage" in detail, detail
