"""Fixtures for the operations tests: the deploy/ tree and the Debian Prometheus binaries."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.opslib import DetectorProcess, ServiceProcess, Stack, synthetic_camera

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="session")
def deploy_dir() -> Path:
    return DEPLOY


@pytest.fixture(scope="session")
def promtool() -> str:
    """The Debian `promtool`; tests skip cleanly where the `prometheus` package is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found (apt-get install prometheus)")
    return path


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.skip("prometheus not found (apt-get install prometheus)")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, bundled_model: Path) -> Iterator[Stack]:
    """`siteguard serve` + `siteguard detect` (bundled model, one looping synthetic camera).

    Module-scoped, so it is gone before the reliability tests start their own processes.
    """
    tmp = tmp_path_factory.mktemp("stack")
    service = ServiceProcess(tmp / "service")
    key = service.bootstrap("site-ops", ["cam-ops"])
    detector = DetectorProcess(
        tmp / "detector",
        {
            "detector_id": "edge-ops",
            "model": {"path": str(bundled_model), "threads": 1, "watch": False},
            "service": {"url": service.url, "api_key": key, "heartbeat_interval_s": 1},
            "cameras": [
                {
                    "id": "cam-ops",
                    "source": str(synthetic_camera(tmp / "frames")),
                    "fps": 1,
                    "playback_fps": 1,
                }
            ],
        },
    )
    try:
        service.start()
        detector.start()
        yield Stack(service, detector, "site-ops", "cam-ops")
    finally:
        detector.stop()
        service.stop()
