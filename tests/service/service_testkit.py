"""Helpers and fixtures (re-exported by conftest.py): a real service (uvicorn on 127.0.0.1)
on a real SQLite file, and on a real PostgreSQL when SITEGUARD_TEST_POSTGRES_URL is set (every
test using `live` runs on both).

`live` is module-scoped: one server per test module and database, seeded with two sites, their
cameras, users of every role and detector keys (`Live.keys`, `Live.login(...)`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pg_scratch import scratch_database

BUNDLED = Path(__file__).resolve().parents[2] / "models" / "siteguard-ppe.onnx"
PASSWORD = "correct horse battery"
USERS = {
    "admin": ("admin", []),
    "mgr-a": ("manager", ["site-a"]),
    "mgr-b": ("manager", ["site-b"]),
    "view-a": ("viewer", ["site-a"]),
    "trainer": ("trainer", ["site-a", "site-b"]),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def make_db_url(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database of `backend`; PostgreSQL databases are dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'siteguard.db'}"
        return
    with scratch_database("sg_test") as url:
        yield url


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # as `siteguard serve`: the app decides whom to trust
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class Live:
    url: str
    app: Any
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # site id -> detector key
    tokens: dict[str, str] = field(default_factory=dict)  # username -> bearer token

    @property
    def state(self) -> Any:
        return self.app.state.siteguard

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def detector(self, site: str = "site-a") -> httpx.Client:
        return self.client(headers={"X-API-Key": self.keys[site]})

    @contextlib.contextmanager
    def login(self, username: str) -> Iterator[httpx.Client]:
        """A client with a cookie session and the CSRF header set."""
        with self.client() as client:
            r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            yield client

    def count(self, model: Any) -> int:
        from sqlalchemy import func, select

        with self.state.db.session() as db:
            return db.scalar(select(func.count()).select_from(model)) or 0


def seed(state: Any) -> tuple[dict[str, str], dict[str, str]]:
    from sqlalchemy import select

    from service.models import Camera, Site, User
    from service.security import hash_password, new_api_key

    keys: dict[str, str] = {}
    tokens: dict[str, str] = {}
    pw = hash_password(PASSWORD)
    with state.db.session() as db, state.db.writing(db):
        for site in ("site-a", "site-b"):
            db.add(Site(id=site, name=site.upper()))
        db.flush()
        for cam, site in (("gate-1", "site-a"), ("crane-1", "site-a"), ("gate-b", "site-b")):
            db.add(Camera(id=cam, site_id=site, name=cam, zones=[], required_ppe=["helmet"]))
        for name, (role, sites) in USERS.items():
            members = list(db.scalars(select(Site).where(Site.id.in_(sites))))
            db.add(User(username=name, password_hash=pw, role=role, sites=members))
        db.flush()
        for site in ("site-a", "site-b"):
            _key, keys[site] = new_api_key(db, f"edge-{site}", site_id=site)
        for name in USERS:
            uid = db.scalar(select(User.id).where(User.username == name))
            _key, tokens[name] = new_api_key(db, f"token-{name}", user_id=uid)
    return keys, tokens


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    from service.app import create_app
    from service.config import load_settings

    tmp = tmp_path_factory.mktemp(f"svc-{request.param}")
    gen = make_db_url(request.param, tmp)
    url = next(gen)
    try:
        settings = load_settings(
            data_dir=tmp / "data",
            database_url=url,
            retention_days=30,
            login_max_failures=3,
            max_model_bytes=20 * 1024 * 1024,
        )
        app = create_app(settings)
        keys, tokens = seed(app.state.siteguard)
        with ServerThread(app) as server:
            yield Live(url=server.url, app=app, data_dir=tmp / "data", keys=keys, tokens=tokens)
    finally:
        gen.close()


# --- request builders -------------------------------------------------------------------------


def jpeg(size: int = 50_000, seed: int = 0) -> bytes:
    """A real JPEG of roughly `size` bytes (noise compresses badly, so size tracks area)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    side = max(16, int((size / 1.5) ** 0.5))
    img = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def event(camera: str = "gate-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "ended_at": None,
        "duration_s": 2.4,
        "confidence": 0.81,
        "track_id": 17,
        "model_version": "siteguard-ppe-test",
        "frame_width": 1280,
        "frame_height": 720,
        "boxes": [
            {
                "class": "head",
                "confidence": 0.81,
                "xyxy": [412.0, 96.5, 470.2, 160.0],
                "track_id": 17,
            },
            {
                "class": "helmet",
                "confidence": 0.7,
                "xyxy": [100.0, 100.0, 150.0, 150.0],
                "track_id": 3,
            },
        ],
    }
    body.update(overrides)
    return body


def post_violation(
    client: httpx.Client,
    body: dict[str, Any] | str,
    snapshot: bytes | None = None,
    frame: bytes | None = None,
) -> httpx.Response:
    files: dict[str, Any] = {"event": (None, body if isinstance(body, str) else json.dumps(body))}
    if snapshot is not None:
        files["snapshot"] = ("snapshot.jpg", io.BytesIO(snapshot), "image/jpeg")
    if frame is not None:
        files["frame"] = ("frame.jpg", io.BytesIO(frame), "image/jpeg")
    return client.post("/api/v1/violations", files=files)
