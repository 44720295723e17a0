"""Fixtures for the operations tests: the deploy/ tree and the Debian Prometheus binaries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
