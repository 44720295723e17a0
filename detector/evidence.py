"""Evidence for an event: the annotated, privacy-blurred snapshot and the raw frame.

Heads/faces are blurred AFTER inference (blurring before would cost accuracy) and only in the
copy that people look at; the raw frame is kept unblurred for retraining (set
`privacy.send_raw_frame: false` to keep it on the edge box).

Example:
    >>> snapshot, raw = render_evidence(frame, tracked, PrivacyConfig(), highlight=3)
"""

from __future__ import annotations

from collections.abc import Collection
from numbers import Integral

import cv2
import numpy as np
import supervision as sv

from detector.config import PrivacyConfig

_VIOLATION = sv.Color.from_hex("#e5322d")
_OTHER = sv.Color.from_hex("#2d8ce5")


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def blur_regions(image: np.ndarray, detections: sv.Detections, classes: set[str]) -> np.ndarray:
    """Blur (in place) the boxes whose class is in `classes`; returns the image."""
    names = np.asarray(detections.data.get("class_name", np.array([], dtype=str)))
    for x1, y1, x2, y2 in detections.xyxy[np.isin(names, list(classes))].astype(int):
        x1, y1 = max(x1, 0), max(y1, 0)
        roi = image[y1:y2, x1:x2]
        if roi.size:
            k = max(3, (min(roi.shape[:2]) // 3) | 1)
            image[y1:y2, x1:x2] = cv2.GaussianBlur(roi, (k, k), 0)
    return image


def annotate(
    image: np.ndarray, detections: sv.Detections, highlight: int | Collection[int] | None
) -> np.ndarray:
    """Draw every box (in place; returns the image): the violating one(s) in red, others blue.
    Red boxes are drawn last, so a person box around a bare head never paints over it."""
    marked = {int(highlight)} if isinstance(highlight, Integral) else set(highlight or ())
    names = detections.data.get("class_name", np.array([], dtype=str))
    conf = detections.confidence if detections.confidence is not None else np.ones(len(names))
    thickness = max(1, round(min(image.shape[:2]) / 300))
    boxes = detections.xyxy.astype(int)
    for i in sorted(range(len(boxes)), key=lambda i: i in marked):
        x1, y1, x2, y2 = boxes[i]
        color = (_VIOLATION if i in marked else _OTHER).as_bgr()
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness + (i in marked))
        label = f"{names[i]} {conf[i]:.2f}"
        cv2.putText(
            image,
            label,
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            color,
            thickness,
            cv2.LINE_AA,
        )
    return image


def render_evidence(
    frame: np.ndarray, detections: sv.Detections, privacy: PrivacyConfig, highlight: int | None
) -> tuple[bytes, bytes | None]:
    """(annotated snapshot JPEG, raw frame JPEG or None)."""
    view = frame.copy()
    if privacy.blur:
        blur_regions(view, detections, set(privacy.blur_classes))
    annotate(view, detections, highlight)
    snapshot = encode_jpeg(view, privacy.jpeg_quality)
    raw = encode_jpeg(frame, privacy.jpeg_quality) if privacy.send_raw_frame else None
    return snapshot, raw


def boxes_payload(detections: sv.Detections) -> list[dict]:
    """Every detection of the frame, as the contract's `boxes` list."""
    names = detections.data.get("class_name", np.array([], dtype=str))
    conf = detections.confidence if detections.confidence is not None else np.ones(len(names))
    ids = detections.tracker_id if detections.tracker_id is not None else [None] * len(names)
    return [
        {
            "class": str(names[i]),
            "confidence": round(float(conf[i]), 4),
            "xyxy": [round(float(v), 1) for v in detections.xyxy[i]],
            "track_id": None if ids[i] is None or ids[i] < 0 else int(ids[i]),
        }
        for i in range(len(names))
    ]
