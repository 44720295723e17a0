"""`siteguard admin ...` and `siteguard serve` as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_testkit import PASSWORD, _free_port, event, jpeg, post_violation

REPO = Path(__file__).resolve().parents[2]


def siteguard(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [sys.executable, "-m", "siteguard", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    if check:
        assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_admin_commands_then_serve(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    siteguard("admin", "--data-dir", data, "create-site", "yard", "--name", "Yard")
    siteguard("admin", "--data-dir", data, "create-camera", "yard-1", "--site", "yard")
    siteguard(
        "admin",
        "--data-dir",
        data,
        "create-user",
        "boss",
        "--role",
        "manager",
        "--sites",
        "yard",
        "--password",
        PASSWORD,
    )
    key = json.loads(
        siteguard("admin", "--data-dir", data, "create-api-key", "edge", "--site", "yard").stdout
    )["key"]
    dup = siteguard("admin", "--data-dir", data, "create-site", "yard", check=False)
    assert dup.returncode == 2 and "exists" in dup.stderr
    bad = siteguard(
        "admin", "--data-dir", data, "create-camera", "x", "--site", "nope", check=False
    )
    assert bad.returncode == 2 and "unknown site" in bad.stderr

    port = _free_port()
    env = {**os.environ, "SITEGUARD_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "siteguard", "serve", "--data-dir", data],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.2)
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as det:
            assert post_violation(det, event("yard-1"), jpeg(seed=1)).status_code == 201
        with httpx.Client(base_url=url, timeout=60) as c:
            r = c.post("/api/v1/auth/login", json={"username": "boss", "password": PASSWORD})
            assert r.status_code == 200
            assert c.get("/api/v1/violations").json()["total"] == 1
    finally:
        proc.terminate()
        proc.wait(30)


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "service.yaml"
    cfg.write_text("port: 99999\nretention_dayz: 3\n")
    run = siteguard("admin", "--config", str(cfg), "upgrade-db", check=False)
    assert run.returncode == 2
    assert "port" in run.stderr and "retention_dayz" in run.stderr


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.config import load_settings

    settings = load_settings(REPO / "configs" / "service.example.yaml")
    assert settings.retention_days == 30 and settings.is_sqlite
    monkeypatch.setenv("SITEGUARD_RETENTION_DAYS", "7")  # the environment wins over the file
    assert load_settings(REPO / "configs" / "service.example.yaml").retention_days == 7
