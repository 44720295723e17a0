"""Fixtures for the detector tests: real models, real video files, a real uvicorn service."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from detector_testlib import DEV_MODEL, ServiceProcess


@pytest.fixture(scope="session")
def coco_model(shared_dir: Path) -> Path:
    """YOLO11n COCO (person = class 0) exported by Ultralytics: real persons on real images.

    Exported once from ../shared/weights into build/dev/ (ignored by git), in a subprocess so
    torch never enters the test process, from a copy of the .pt because Ultralytics' exporter
    writes next to its input and ../shared is read-only data.
    """
    if not DEV_MODEL.is_file():
        _export_coco_model(shared_dir / "weights" / "yolo11n-coco.pt", DEV_MODEL)
    return DEV_MODEL


def _export_coco_model(weights: Path, out: Path) -> None:
    if not weights.is_file():
        pytest.skip(f"{weights} missing: cannot export the COCO test model")
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics not installed ([train] extra): cannot export the COCO test model")
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / weights.name
        shutil.copyfile(weights, pt)
        code = (
            "import sys; from ultralytics import YOLO; "
            "YOLO(sys.argv[1]).export(format='onnx', imgsz=640, dynamic=True, simplify=True)"
        )
        env = {**os.environ, "YOLO_OFFLINE": "1"}
        subprocess.run([sys.executable, "-c", code, str(pt)], check=True, env=env,
                       capture_output=True, timeout=600)  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(pt.with_suffix(".onnx")), out)


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
