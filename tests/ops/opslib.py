"""Real SiteGuard processes for the operations tests: `siteguard serve` and `siteguard detect`
run as subprocesses on 127.0.0.1, set up with the real `siteguard admin` commands, killable
with SIGKILL like a crash or a pulled cable.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

SITEGUARD = str(Path(sys.executable).with_name("siteguard"))
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.2,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy; fail with its description and,
    when given, `diagnose()` (process logs and counters, to tell a slow machine from a bug)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{diagnose()}" if diagnose is not None else ""
            what = predicate.__doc__ or predicate
            raise AssertionError(f"not met within {timeout:.0f}s: {what}{detail}")
        time.sleep(interval)


def exported_names(text: str) -> set[str]:
    """Every series name a /metrics page can produce (counters as `_total`, histogram parts)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type in {"histogram", "summary"}:
            names |= {f"{family.name}_{part}" for part in ("bucket", "count", "sum")}
        names |= {sample.name for sample in family.samples}
    return names


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample called `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class _Process:
    """A subprocess with its output in a log file (shown when a test fails)."""

    name = "process"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        with self.log.open("ab") as log:
            log.write(f"\n--- start {' '.join(args)}\n".encode())
            self.proc = subprocess.Popen(
                args,
                cwd=self.workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, like a crash or a power cut."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait (graceful), SIGKILL after 30 s."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")


class ServiceProcess(_Process):
    """`siteguard serve` on a SQLite file in `workdir/data`, set up by `siteguard admin`."""

    name = "service"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.data_dir = data_dir or workdir / "data"
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env or {})  # e.g. SITEGUARD_DATABASE_URL, for admin and serve alike

    def admin(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [SITEGUARD, "admin", "--data-dir", str(self.data_dir), *args],
            cwd=self.workdir,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, f"siteguard admin {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    def bootstrap(self, site: str, cameras: list[str]) -> str:
        """A site with its cameras and a detector API key (returned)."""
        self.admin("create-site", site)
        for camera in cameras:
            self.admin("create-camera", camera, "--site", site)
        return str(self.admin("create-api-key", f"edge-{site}", "--site", site)["key"])

    def start(self, timeout: float = 90.0, env: dict[str, str] | None = None) -> ServiceProcess:
        self._spawn(
            [SITEGUARD, "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
            + ["--port", str(self.port)],
            env={**self.env, **(env or {})},
        )
        wait_until(self._ready, timeout=timeout, interval=0.3)
        return self

    def _ready(self) -> bool:
        """the service answers /healthz"""
        self._alive()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        response = httpx.get(f"{self.url}/metrics", timeout=30)
        response.raise_for_status()
        return response.text

    def event_ids(self) -> list[str]:
        """Every violation's event id in the service's database (read straight from SQLite)."""
        conn = sqlite3.connect(self.data_dir / "siteguard.db", timeout=30)
        try:
            return [row[0] for row in conn.execute("SELECT event_id FROM violations")]
        finally:
            conn.close()


class DetectorProcess(_Process):
    """`siteguard detect` with a YAML written from `config`; metrics on its own port."""

    name = "detector"

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        super().__init__(workdir)
        self.metrics_port = free_port()
        config = json.loads(json.dumps(config))  # a private copy
        config.setdefault("metrics", {}).update(host="127.0.0.1", port=self.metrics_port)
        config.setdefault("outbox", {}).setdefault("path", str(workdir / "outbox.sqlite3"))
        config.setdefault("model", {}).setdefault("download_dir", str(workdir / "models"))
        self.config = config
        self.config_path = workdir / "detector.yaml"
        self.outbox_path = Path(config["outbox"]["path"])

    def start(self, timeout: float = 120.0) -> DetectorProcess:
        self.config_path.write_text(yaml.safe_dump(self.config))
        self._spawn([SITEGUARD, "detect", "--config", str(self.config_path)])
        wait_until(self._ready, timeout=timeout, interval=0.3)
        return self

    def _ready(self) -> bool:
        """the detector serves /metrics"""
        self._alive()
        try:
            return bool(self.metrics())
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def diagnose(self) -> str:
        """Counters and the log tail, for a failure message."""
        try:
            metrics = self.metrics()
            counters = {
                name.removeprefix("siteguard_detector_"): sample_sum(metrics, name)
                for name in (
                    "siteguard_detector_frames_read_total",
                    "siteguard_detector_frames_processed_total",
                    "siteguard_detector_violations_total",
                    "siteguard_detector_inference_seconds_sum",
                    "siteguard_detector_events_posted_total",
                    "siteguard_detector_events_failed_total",
                )
            }
        except httpx.HTTPError as exc:
            counters = {"metrics": str(exc)}
        return f"detector {counters}, outbox {len(self.outbox())} pending:\n{self.tail(25)}"

    def outbox(self, status: str = "pending", type: str = "open") -> list[str]:
        """Event ids in the detector's outbox file (read straight from SQLite)."""
        if not self.outbox_path.exists():
            return []
        conn = sqlite3.connect(self.outbox_path, timeout=30)
        try:
            rows = conn.execute(
                "SELECT event_id FROM outbox WHERE status = ? AND type = ? ORDER BY seq",
                (status, type),
            )
            return [row[0] for row in rows]
        except sqlite3.OperationalError:  # the table is created by the detector at start-up
            return []
        finally:
            conn.close()


@dataclass
class Stack:
    """A running service and one detector streaming to it (see `stack`)."""

    service: ServiceProcess
    detector: DetectorProcess
    site: str
    camera: str


def synthetic_camera(folder: Path, frames: int = 4) -> Path:
    """A folder of small drawn images: a camera whose scene changes, no dataset needed."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        image = np.full((360, 640, 3), 40 + 30 * i, dtype=np.uint8)
        cv2.rectangle(image, (50 + 60 * i, 80), (200 + 60 * i, 300), (0, 200, 255), -1)
        assert cv2.imwrite(str(folder / f"frame-{i:03d}.jpg"), image)
    return folder
