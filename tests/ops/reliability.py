"""Scenario building blocks for the reliability tests: a camera that shows real violations, a
detector set up to stream it to a real service, and the bookkeeping that compares the detector's
own count of violations with what the service stored."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from ops.opslib import DetectorProcess, ServiceProcess, sample_sum, wait_until

CAMERA = "cam-rel"
SITE = "site-rel"
IMAGE_HOLD_S = 4.0


def violation_images(hardhat_dir: Path, dest: Path, count: int, model: Path) -> Path:
    """`count` test images on which `model` itself sees a bare head, copied to a fresh folder.

    Candidates are the images with the most labelled bare heads (class 0); each is kept only if
    the real OnnxDetector finds a `head` on it, so the scenario has violations whatever the
    bundled model's accuracy. The camera holds each image `IMAGE_HOLD_S`, long enough for a
    violation to open: workers without helmets come and go.
    """
    from detector.inference import OnnxDetector

    detector = OnnxDetector(str(model), conf=0.55, iou=0.5)  # above ByteTrack's high_conf
    labels = sorted((hardhat_dir / "test" / "labels").glob("*.txt"))
    heads = {p: sum(line.startswith("0 ") for line in p.read_text().splitlines()) for p in labels}
    dest.mkdir(parents=True, exist_ok=True)
    picked = 0
    for label in sorted(labels, key=lambda p: (-heads[p], p.name)):
        image = hardhat_dir / "test" / "images" / f"{label.stem}.jpg"
        frame = cv2.imread(str(image))
        if heads[label] < 2 or frame is None:
            continue
        [found] = detector.predict([frame])
        if "head" in set(found.data["class_name"].tolist()):
            shutil.copy(image, dest / f"{picked:03d}-{image.name}")
            picked += 1
            if picked == count:
                return dest
    raise AssertionError(f"{model.name} sees a bare head on only {picked} test images")


def detector_config(model: Path, service: ServiceProcess, key: str, source: Path) -> dict:
    """Fast, light settings: short holds and retries so a scenario fits in CI time."""
    return {
        "detector_id": "edge-rel",
        # fp32, the model that picked the images (`violation_images`)
        "model": {
            "path": str(model),
            "use_int8": False,
            "threads": 1,
            "watch": False,
            "follow_promotions": False,
        },
        "service": {
            "url": service.url,
            "api_key": key,
            "timeout_s": 5,
            "heartbeat_interval_s": 1,
            "retry_initial_s": 0.5,
            "retry_max_s": 2,
        },
        "motion": {"enabled": False},
        "rules": {"hold_s": 1.0, "close_after_s": 1.0},
        "cameras": [
            {
                "id": CAMERA,
                "source": str(source),
                "fps": 4,
                "playback_fps": 4,
                "image_hold_s": IMAGE_HOLD_S,
                "loop": False,
                "frozen_after_s": 600,
            }
        ],
    }


def detector_count(detector: DetectorProcess) -> int:
    """Violation episodes the detector opened, by its own counter."""
    return int(sample_sum(detector.metrics(), "siteguard_detector_violations_total"))


@dataclass
class Tally:
    """What a scenario observed; `check()` states the guarantees."""

    detected: int = 0
    stored: list[str] = field(default_factory=list)
    max_queued: int = 0
    dead: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"detected={self.detected} stored={len(self.stored)} unique={len(set(self.stored))}"
            f" max_queued={self.max_queued} dead={len(self.dead)} {self.notes}"
        )

    def check(self, min_events: int = 3) -> None:
        assert self.detected >= min_events, f"too few violations to prove it: {self.summary()}"
        assert len(self.stored) == len(set(self.stored)), f"duplicates stored: {self.summary()}"
        assert len(self.stored) == self.detected, f"detector count != stored rows: {self.summary()}"
        assert not self.dead, f"events dead-lettered: {self.dead}"


def settle(
    detector: DetectorProcess, service: ServiceProcess, tally: Tally, timeout: float = 180.0
) -> Tally:
    """Wait until the camera has played out and every event the detector opened is stored."""
    stable: dict[str, Any] = {"since": None, "last": None}

    def delivered() -> bool:
        """the stream ended and the detector's count equals the stored rows (stable 3 s)"""
        metrics = detector.metrics()
        finished = (
            sample_sum(metrics, "siteguard_detector_camera_state", camera=CAMERA, state="offline")
            == 1
            and sample_sum(metrics, "siteguard_detector_frames_read_total", camera=CAMERA) > 0
        )
        tally.max_queued = max(tally.max_queued, len(detector.outbox("pending")))
        snapshot = (detector_count(detector), len(service.event_ids()))
        done = finished and not detector.outbox("pending") and snapshot[0] == snapshot[1]
        if not done:
            stable.update(since=None, last=None)
            return False
        if snapshot != stable["last"] or stable["since"] is None:
            stable.update(since=time.monotonic(), last=snapshot)
            return False
        return time.monotonic() - stable["since"] >= 3.0

    try:
        wait_until(delivered, timeout=timeout, interval=0.5, diagnose=detector.diagnose)
    finally:
        tally.detected = detector_count(detector)
        tally.stored = service.event_ids()
        tally.dead = detector.outbox("dead")
    return tally
