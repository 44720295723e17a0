"""Helpers for the retraining-loop tests: a real service (uvicorn on 127.0.0.1, SQLite file)
seeded with one site, one camera, users of every role with bearer tokens and a detector key;
small real datasets cut from ../shared (symlinks); polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SITE, CAMERA = "site-loop", "yard-1"
ROLES = {"manager": "manager", "trainer": "trainer", "admin": "admin", "viewer": "viewer"}


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy (returns it); fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class LoopService:
    url: str
    app: Any
    detector_key: str
    tokens: dict[str, str] = field(default_factory=dict)
    _server: Any = None
    _thread: threading.Thread | None = None

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=120,
        )

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


def start_service(tmp: Path, **settings: Any) -> LoopService:
    import socket

    import uvicorn
    from sqlalchemy import select

    from service.app import create_app
    from service.config import load_settings
    from service.models import Camera, Site, User
    from service.security import hash_password, new_api_key

    app = create_app(
        load_settings(
            data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'siteguard.db'}", **settings
        )
    )
    state = app.state.siteguard
    tokens: dict[str, str] = {}
    with state.db.session() as db, state.db.writing(db):
        site = Site(id=SITE, name="Loop site")
        db.add(site)
        db.add(Camera(id=CAMERA, site_id=SITE, name="Yard", zones=[], required_ppe=["helmet"]))
        for name, role in ROLES.items():
            db.add(User(username=name, password_hash=hash_password("x" * 12), role=role))
        db.flush()
        for user in db.scalars(select(User)):
            user.sites = [site]
            _row, tokens[user.username] = new_api_key(db, f"token-{user.username}", user_id=user.id)
        _row, key = new_api_key(db, "edge-loop", site_id=SITE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=60)
    assert server.started, "uvicorn did not start"
    return LoopService(f"http://127.0.0.1:{port}", app, key, tokens, server, thread)


def small_dataset(source: Path, out: Path, counts: dict[str, int]) -> Path:
    """The first `counts[split]` images of each split of a YOLO dataset (hardhat-workers class
    order = ours), as a dataset version of symlinks; returns its data.yaml."""
    from training.datasets import DatasetWriter, Sample
    from training.labels import label_path_for, list_images, read_labels

    writer = DatasetWriter(out)
    folders = {"train": "train", "val": "valid", "test": "test"}
    for split, n in counts.items():
        for image in list_images(source / folders[split] / "images")[:n]:
            writer.add(Sample(split, image, read_labels(label_path_for(image), 3)))
    writer.finish(out.name)
    return out / "data.yaml"


def bare_head_images(
    dataset: Path, split: str, n: int, min_heads: int = 2, min_helmets: int = 0
) -> list[Path]:
    """`n` images of `split` whose labels show at least `min_heads` bare heads (class 0) and
    `min_helmets` helmets (class 1)."""
    picked = []
    for label in sorted((dataset / split / "labels").glob("*.txt")):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        image = dataset / split / "images" / f"{label.stem}.jpg"
        heads, helmets = sum(r[0] == "0" for r in rows), sum(r[0] == "1" for r in rows)
        if heads >= min_heads and helmets >= min_helmets and image.is_file():
            picked.append(image)
        if len(picked) == n:
            break
    assert len(picked) == n, f"only {len(picked)} images with {min_heads}+ bare heads"
    return picked
