"""Fixtures for the detector tests: real models, real video files, a real uvicorn service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from detector_testlib import DEV_MODEL, ServiceProcess


@pytest.fixture(scope="session")
def coco_model() -> Path:
    """YOLO11n COCO (person = class 0) exported by Ultralytics: real persons on real images."""
    if not DEV_MODEL.is_file():
        pytest.skip(f"{DEV_MODEL} missing (export yolo11n to ONNX there)")
    return DEV_MODEL


@pytest.fixture(scope="session")
def worker_images(hardhat_dir: Path) -> list[Path]:
    """Real test images of the hardhat-workers set that show bare heads (label 0)."""
    labels = hardhat_dir / "test" / "labels"
    picked = []
    for label in sorted(labels.glob("*.txt")):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        if sum(r[0] == "0" for r in rows) >= 2:
            image = hardhat_dir / "test" / "images" / f"{label.stem}.jpg"
            if image.is_file():
                picked.append(image)
    assert picked, "no test images with bare heads found"
    return picked


@pytest.fixture()
def service(tmp_path: Path, free_port: int) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(tmp_path, free_port).start()
    yield proc
    proc.kill()
