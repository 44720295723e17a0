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
def coco_weights(shared_dir: Path) -> Path:
    """The COCO-pretrained YOLO11n of ../shared/weights (a base to fine-tune, a person labeller)."""
    path = shared_dir / "weights" / "yolo11n-coco.pt"
    if not path.is_file():
        pytest.skip(f"COCO weights not found: {path}")
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


class Screenshots:
    """Browser-test screenshots: always to test-artifacts/web/; the few that docs/dashboard.md
    shows also to docs/img/ when SITEGUARD_UPDATE_SCREENSHOTS is set, shrunk to a small palette
    PNG (Pillow, when installed) so the repository stays light."""

    ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
    DOCS = REPO_ROOT / "docs" / "img"
    DOCS_WIDTH = 1200

    def take(self, target: object, name: str, *, docs: bool = False, **options: object) -> Path:
        """`target`: a Playwright page or locator; `options`: its screenshot() options."""
        self.ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = self.ARTIFACTS / name
        target.screenshot(path=str(path), **options)  # type: ignore[attr-defined]
        if docs and os.environ.get("SITEGUARD_UPDATE_SCREENSHOTS"):
            self.DOCS.mkdir(parents=True, exist_ok=True)
            self._shrink(path, self.DOCS / name)
        return path

    def _shrink(self, source: Path, target: Path) -> None:
        try:
            from PIL import Image
        except ImportError:  # without Pillow the docs get the full screenshot
            target.write_bytes(source.read_bytes())
            return
        with Image.open(source) as image:
            image = image.convert("RGB")
            if image.width > self.DOCS_WIDTH:
                height = round(image.height * self.DOCS_WIDTH / image.width)
                image = image.resize((self.DOCS_WIDTH, height), Image.Resampling.LANCZOS)
            image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    return Screenshots()
