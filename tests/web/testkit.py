"""Test kit: a real SiteGuard service (create_app + uvicorn on 127.0.0.1, temp SQLite).

Seeded directly in its database: two sites, cameras, users of every role, a detector API key and
two registered model versions (v1 retired, v2 active), so pages have something real to show.
Violations are posted through the HTTP API, as a detector does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import uvicorn

from service.app import create_app
from service.config import load_settings
from service.models import Camera, ModelVersion, Site, User, utcnow
from service.security import hash_password, new_api_key

PASSWORD = "correct-horse-42"
SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared/data/hardhat-workers/test/images"


@dataclass
class LiveService:
    base_url: str
    api_key: str
    other_site_key: str
    app: object
    posted: list[str] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, follow_redirects=False)

    def login(self, username: str) -> tuple[httpx.Client, str]:
        """A logged-in HTTP client and its CSRF token."""
        client = self.client()
        resp = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return client, resp.json()["csrf_token"]

    def post_violation(self, camera_id: str = "gate-1", **overrides: object) -> dict:
        """POST /api/v1/violations exactly as the detector does (multipart, X-API-Key)."""
        event = violation_event(camera_id, **overrides)
        jpeg = snapshot_jpeg(event)
        with self.client() as client:
            resp = client.post(
                "/api/v1/violations",
                headers={"X-API-Key": self.api_key},
                data={"event": json.dumps(event)},
                files={"snapshot": ("snapshot.jpg", jpeg, "image/jpeg")},
            )
        assert resp.status_code == 201, resp.text
        self.posted.append(event["event_id"])
        return event


def violation_event(camera_id: str, **overrides: object) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": utcnow().isoformat(),
        "ended_at": None,
        "duration_s": 2.4,
        "confidence": 0.81,
        "track_id": 17,
        "model_version": "v2",
        "frame_width": 640,
        "frame_height": 360,
        "boxes": [
            {"class": "head", "confidence": 0.81, "xyxy": [300.0, 60.0, 350.0, 120.0]},
            {"class": "person", "confidence": 0.9, "xyxy": [270.0, 50.0, 390.0, 350.0]},
            {"class": "helmet", "confidence": 0.88, "xyxy": [100.0, 80.0, 150.0, 130.0]},
        ],
    }
    event.update(overrides)
    return event


def snapshot_jpeg(event: dict) -> bytes:
    """A real JPEG: a shared test photo when available, else a drawn scene, boxes drawn on it."""
    w, h = event["frame_width"], event["frame_height"]
    images = sorted(SHARED_IMAGES.glob("*.jpg"))[:20] if SHARED_IMAGES.is_dir() else []
    img = cv2.imread(str(images[hash(event["event_id"]) % len(images)])) if images else None
    if img is None:
        img = np.full((h, w, 3), (90, 110, 130), np.uint8)
        cv2.rectangle(img, (0, int(h * 0.7)), (w, h), (60, 80, 90), -1)
    img = cv2.resize(img, (w, h))
    for box in event["boxes"]:
        x1, y1, x2, y2 = (int(v) for v in box["xyxy"])
        colour = (0, 0, 255) if box["class"] == "head" else (0, 200, 0)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def _seed(app: object) -> tuple[str, str]:
    state = app.state.siteguard  # type: ignore[attr-defined]
    with state.db.session() as db, state.db.writing(db):
        site_a = Site(id="site-a", name="浦东工地 A")
        site_b = Site(id="site-b", name="Site B")
        db.add_all([site_a, site_b])
        db.add_all(
            [
                Camera(
                    id="gate-1",
                    site_id="site-a",
                    name="Gate 1",
                    state="online",
                    fps=4.9,
                    last_frame_at=utcnow(),
                    detector_id="edge-1",
                ),  # fmt: skip
                Camera(id="crane-2", site_id="site-a", name="Crane 2", state="frozen", fps=0.0),
                Camera(id="b-gate", site_id="site-b", name="B gate", state="offline"),
            ]
        )
        for name, role, sites in (
            ("admin", "admin", []),
            ("manager", "manager", [site_a]),
            ("viewer", "viewer", [site_a]),
            ("trainer", "trainer", [site_a, site_b]),
            ("bmanager", "manager", [site_b]),
        ):
            db.add(User(username=name, password_hash=hash_password(PASSWORD), role=role,
                        sites=sites))  # fmt: skip
        now = utcnow()
        db.add_all(
            [
                ModelVersion(
                    version="v1", sha256="1" * 64, size_bytes=5_000_000, status="retired",
                    dataset_version="hardhat-2026.11.20",
                    metrics={"benchmark": {"worker_accuracy": 0.89, "map50": 0.87, "images": 680,
                                           "per_class": {"head": {"ap50": 0.92},
                                                         "helmet": {"ap50": 0.95},
                                                         "person": {"ap50": 0.03}}},
                             "dataset": {"images": 4916}},
                    created_at=now - dt.timedelta(days=3), promoted_at=now - dt.timedelta(days=3),
                ),
                ModelVersion(
                    version="v2", sha256="2" * 64, size_bytes=5_000_000, status="active",
                    dataset_version="hardhat+field-2026.11.22",
                    metrics={"benchmark": {"worker_accuracy": 0.96, "map50": 0.93, "images": 680,
                                           "per_class": {"head": {"ap50": 0.95},
                                                         "helmet": {"ap50": 0.97},
                                                         "person": {"ap50": 0.04}}},
                             "cross_source": {"worker_accuracy": 0.81, "images": 120,
                                              "data": "construction-site-safety"},
                             "field": {"worker_accuracy": 0.94, "images": 60},
                             "retrain": {"trained_samples": 294, "held_back_samples": 60},
                             "baseline": {"version": "v1",
                                          "benchmark": {"worker_accuracy": 0.89, "map50": 0.87},
                                          "field": {"worker_accuracy": 0.85}},
                             "dataset": {"images": 5210}},
                    created_at=now - dt.timedelta(days=1), promoted_at=now - dt.timedelta(days=1),
                ),
            ]
        )  # fmt: skip
        db.flush()
        _, key = new_api_key(db, "edge-1", site_id="site-a")
        _, other = new_api_key(db, "edge-b", site_id="site-b")
    return key, other


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_service(
    data_dir: Path, housekeeping: bool = False, **settings: object
) -> Iterator[LiveService]:
    """A seeded service on a free 127.0.0.1 port for the duration of the block."""
    app = create_app(load_settings(data_dir=data_dir, login_max_failures=50, **settings),
                     housekeeping=housekeeping)  # fmt: skip
    key, other = _seed(app)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            proxy_headers=False,  # as `siteguard serve`
        )  # fmt: skip
    )
    thread = threading.Thread(target=server.run, name="uvicorn-web-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "service did not start within 60 s"
        time.sleep(0.1)
    try:
        yield LiveService(base_url=base, api_key=key, other_site_key=other, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with running_service(tmp_path_factory.mktemp("web-service")) as live:
        yield live
