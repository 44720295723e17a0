"""Helpers for the detector tests (a unique module name, so test folders never collide)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEV_MODEL = REPO / "build" / "dev" / "yolo11n-coco.onnx"
API_KEY = "test-key"


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {predicate}")


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """A real MP4 (mp4v) written by OpenCV."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for frame in frames:
        writer.write(cv2.resize(frame, (width, height)))
    writer.release()
    assert path.stat().st_size > 0
    return path


class ServiceProcess:
    """The fake service (tests/detector/fake_service.py) under a real uvicorn, killable."""

    def __init__(self, workdir: Path, port: int, cameras: str = "") -> None:
        self.workdir, self.port = workdir, port
        self.url = f"http://127.0.0.1:{port}"
        self.db = workdir / "service.sqlite3"
        self.models = workdir / "served-models"
        self.models.mkdir(exist_ok=True)
        self.active_file = workdir / "active.json"
        self.cameras = cameras
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        env = dict(
            os.environ,
            FAKE_DB=str(self.db),
            FAKE_KEY=API_KEY,
            FAKE_CAMERAS=self.cameras,
            FAKE_MODELS=str(self.models),
            FAKE_ACTIVE=str(self.active_file),
        )
        cmd = [sys.executable, "-m", "uvicorn", "fake_service:app", "--app-dir", str(HERE)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.workdir)
        wait_until(self._ready, timeout=60, interval=0.2)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "fake service exited"
        try:
            httpx.get(f"{self.url}/docs", timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crash or a pulled cable."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def query(self, sql: str, *args) -> list[tuple]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def event_ids(self) -> list[str]:
        return [r[0] for r in self.query("SELECT event_id FROM events")]
