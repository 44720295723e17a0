"""Motion gating on real site photos: a still scene skips most inferences, motion does not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.config import MotionConfig
from detector.motion import MotionGate


def _noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise and slight JPEG re-encoding, as a real still camera delivers."""
    noise = rng.normal(0, 3, image.shape)
    noisy = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], 1)


def test_static_scene_skips_at_least_80_percent(worker_images: list[Path]) -> None:
    image = cv2.resize(cv2.imread(str(worker_images[0])), (1280, 720))
    gate = MotionGate(MotionConfig(keyframe_interval_s=5.0))
    rng = np.random.default_rng(0)
    fps, seconds = 5, 30
    inferred = sum(
        gate.should_infer(_noisy(image, rng), timestamp=i / fps) for i in range(fps * seconds)
    )
    skipped = 1 - inferred / (fps * seconds)
    assert skipped >= 0.8, f"only {skipped:.0%} skipped"
    assert inferred >= seconds / 5  # keyframes still run


def test_a_walking_worker_is_inferred(worker_images: list[Path]) -> None:
    scene = cv2.resize(cv2.imread(str(worker_images[0])), (1280, 720))
    worker = cv2.resize(cv2.imread(str(worker_images[1])), (120, 240))
    gate = MotionGate(MotionConfig(keyframe_interval_s=60.0))
    inferred = 0
    for i in range(50):
        frame = scene.copy()
        x = 20 + i * 20
        frame[400:640, x : x + 120] = worker
        inferred += gate.should_infer(frame, timestamp=i / 5)
    assert inferred >= 45


def test_gating_off_infers_everything(worker_images: list[Path]) -> None:
    image = cv2.imread(str(worker_images[0]))
    gate = MotionGate(MotionConfig(enabled=False))
    assert all(gate.should_infer(image, timestamp=i) for i in range(10))
