"""Fixtures every test folder shares: paths to ../shared, the bundled model, free ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SITEGUARD_SHARED", REPO_ROOT.parent / "shared"))
BUNDLED_MODEL = REPO_ROOT / "models" / "siteguard-ppe.onnx"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip cleanly when it is absent."""
    if not (SHARED_DIR / "data").is_dir():
        pytest.skip(f"../shared not found at {SHARED_DIR} (set SITEGUARD_SHARED)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def hardhat_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "hardhat-workers"
    if not (path / "data.yaml").is_file():
        pytest.skip(f"hardhat-workers dataset not found under {shared_dir}")
    return path


@pytest.fixture(scope="session")
def css_dir(shared_dir: Path) -> Path:
    """Construction Site Safety: the second source (another box convention, groups.csv)."""
    path = shared_dir / "data" / "construction-site-safety"
    if not (path / "groups.csv").is_file():
        pytest.skip(f"construction-site-safety dataset not found under {shared_dir}")
    return path


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    """The shipped ONNX model (YOLO11n fine-tuned on hardhat-workers)."""
    assert BUNDLED_MODEL.is_file(), f"bundled model missing: {BUNDLED_MODEL}"
    return BUNDLED_MODEL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def free_port() -> int:
    return _free_port()
