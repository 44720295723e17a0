"""Simulated managers: review the service's alerts from ground-truth labels.

For tests and the scripted iteration (bench/iteration.py) only: real managers review in the
panel. A violation's raw frame is matched to the labelled image it came from (the closest
thumbnail of the same size); its flagged `head` box (the event's track, else the most confident
head) is then judged against the ground truth at IoU >= 0.5:

- it covers a ground-truth `head` (a bare head): `confirmed`;
- it covers a ground-truth `helmet`: `false_alarm`, read as `helmet` (relabelled in the sample);
- anything else: `false_alarm`, read as `background` (the box is dropped).

Example:
    >>> reviewer = GroundTruthReviewer(images)           # images with YOLO labels beside them
    >>> decision = reviewer.decide(frame_bgr, violation)  # violation: the service's JSON
    >>> decision.outcome, decision.false_alarm_as
    ('false_alarm', 'helmet')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.labels import label_path_for, read_labels, to_xyxy

GT_NAMES = ("head", "helmet", "person")  # hardhat-workers label ids 0, 1, 2
THUMB = (32, 32)


@dataclass(frozen=True)
class Decision:
    outcome: str  # confirmed | false_alarm
    false_alarm_as: str | None  # helmet | background (false alarms only)
    image: Path
    iou: float


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def flagged_box(violation: dict[str, Any]) -> dict[str, Any] | None:
    """The box the alert is about: the head of the event's track, else the surest head."""
    heads = [b for b in violation.get("boxes", []) if b.get("class") == "head"]
    own = [b for b in heads if b.get("track_id") == violation.get("track_id")]
    pool = own or heads
    return max(pool, key=lambda b: float(b.get("confidence", 0))) if pool else None


class GroundTruthReviewer:
    """Knows the labelled images an alert may come from; decides reviews from their labels."""

    def __init__(self, images: Sequence[Path], iou_threshold: float = 0.5) -> None:
        if not images:
            raise ValueError("GroundTruthReviewer needs at least one labelled image")
        self.iou_threshold = iou_threshold
        self.images = [Path(p) for p in images]
        self._thumbs: list[tuple[tuple[int, int], np.ndarray]] = []
        for path in self.images:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"cannot read image {path}")
            self._thumbs.append((image.shape[:2], _thumb(image)))

    def labels(self, image: Path) -> list[dict[str, Any]]:
        """Ground-truth boxes of `image` in pixels: [{"class", "xyxy"}]."""
        height, width = cv2.imread(str(image)).shape[:2]
        rows = read_labels(label_path_for(image), len(GT_NAMES))
        boxes = to_xyxy(rows, width, height).reshape(-1, 4)
        return [
            {"class": GT_NAMES[int(r[0])], "xyxy": [round(float(v), 1) for v in box]}
            for r, box in zip(rows, boxes, strict=True)
        ]

    def identify(self, frame: np.ndarray) -> Path:
        """The labelled image a frame shows (same size, closest thumbnail)."""
        thumb, size = _thumb(frame), frame.shape[:2]
        scores = [
            float(np.mean((t - thumb) ** 2)) if s == size else np.inf for s, t in self._thumbs
        ]
        best = int(np.argmin(scores))
        if not np.isfinite(scores[best]):
            raise ValueError(f"no labelled image of size {size[1]}x{size[0]}")
        return self.images[best]

    def decide(self, frame: np.ndarray, violation: dict[str, Any]) -> Decision:
        image = self.identify(frame)
        box = flagged_box(violation)
        if box is None:
            return Decision("false_alarm", "background", image, 0.0)
        best = {"head": 0.0, "helmet": 0.0}
        for gt in self.labels(image):
            if gt["class"] in best:
                best[gt["class"]] = max(best[gt["class"]], iou(box["xyxy"], gt["xyxy"]))
        if best["head"] >= self.iou_threshold:
            return Decision("confirmed", None, image, best["head"])
        if best["helmet"] >= self.iou_threshold:
            return Decision("false_alarm", "helmet", image, best["helmet"])
        return Decision("false_alarm", "background", image, max(best.values()))


def _thumb(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
