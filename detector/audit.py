"""Audit sampling: a small random share of the frames the model ran on goes to the service for
trainers to label, so field accuracy (missed bare heads included) is measured on frames chosen
without looking at what the model saw (docs/iteration.md, "Audit frames").

Which frames: every frame the model processed is drawn with probability `share` (the camera's
`audit_share`, else `audit.share`), whatever it shows: a frame with nobody in it, one with an
alert and one with a missed bare head are equally likely. A draw within `min_interval_s` of the
camera's previous audit frame is dropped (a rate limit); that rule looks only at the clock, never
at the detections, so the frames that go stay an unbiased sample of the processed ones. Frames the
motion gate skipped were not processed and have no detections of their own: they are not drawn.

What goes, as an `audit` message through the durable outbox (detector/poster.py posts it to
`POST /api/v1/audit-frames`; nothing is lost while the service is down): the raw frame (the
service shows it to trainers only), the snapshot with heads blurred as for evidence (for everyone
else), the model version and the model's detections at its operating thresholds (the per-class
`siteguard_class_conf`, else `siteguard_conf`, else DEFAULT_OPERATING_CONF: what counts as a
detection when accuracy is measured, not the lower `model.conf` that only feeds tracking).

Example:
    >>> sampler = AuditSampler.from_config(config)
    >>> if sampler.pick("gate-1"):
    ...     payload, snapshot, raw = audit_message("gate-1", frame, detections, detector, privacy)
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import supervision as sv

from detector.config import DEFAULT_OPERATING_CONF, DetectorConfig, PrivacyConfig
from detector.evidence import annotate, blur_regions, boxes_payload, encode_jpeg


class _Model(Protocol):
    """What an audit frame needs from the model that saw it (an OnnxDetector)."""

    version: str
    names: Mapping[int, str]
    operating_conf: float | None
    class_conf: Mapping[str, float]


class AuditSampler:
    """Draws audit frames per camera: probability `share` per processed frame, at most one per
    `min_interval_s`. Cameras without a share (or share 0) are never drawn."""

    def __init__(
        self,
        shares: Mapping[str, float],
        min_interval_s: float = 60.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        bad = {cam: share for cam, share in shares.items() if not 0.0 <= share <= 1.0}
        if bad:
            raise ValueError(f"audit shares must lie in [0, 1], got {bad}")
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.shares = {cam: share for cam, share in shares.items() if share > 0}
        self.min_interval_s = min_interval_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._last: dict[str, float] = {}
        self.counts = {"frames": 0, "drawn": 0, "rate_limited": 0, "picked": 0}

    @classmethod
    def from_config(cls, config: DetectorConfig, rng: random.Random | None = None) -> AuditSampler:
        shares = {cam.id: config.audit_share(cam) for cam in config.cameras if cam.enabled}
        return cls(shares, config.audit.min_interval_s, rng)

    @property
    def enabled(self) -> bool:
        return bool(self.shares)

    def pick(self, camera_id: str) -> bool:
        """Whether this processed frame of `camera_id` becomes an audit frame."""
        share = self.shares.get(camera_id)
        if share is None:
            return False
        self.counts["frames"] += 1
        if self._rng.random() >= share:
            return False
        self.counts["drawn"] += 1
        now = self._clock()
        last = self._last.get(camera_id)
        if last is not None and now - last < self.min_interval_s:
            self.counts["rate_limited"] += 1
            return False
        self._last[camera_id] = now
        self.counts["picked"] += 1
        return True


def _default_conf(model: _Model) -> float:
    return model.operating_conf if model.operating_conf is not None else DEFAULT_OPERATING_CONF


def operating_thresholds(model: _Model) -> dict[str, float]:
    """Per class name, the confidence at which the model's detection counts."""
    default = _default_conf(model)
    return {name: float(model.class_conf.get(name, default)) for name in model.names.values()}


def at_operating_thresholds(detections: sv.Detections, model: _Model) -> sv.Detections:
    """The detections that count: each at or above its class's operating threshold."""
    if not len(detections) or detections.confidence is None:
        return detections
    thresholds, default = operating_thresholds(model), _default_conf(model)
    names = np.asarray(detections.data.get("class_name", np.array([], dtype=str)))
    bar = np.array([thresholds.get(str(n), default) for n in names], dtype=np.float32)
    return detections[detections.confidence >= bar]


def audit_message(
    camera_id: str,
    image: np.ndarray,
    timestamp: float,
    detections: sv.Detections,
    model: _Model,
    privacy: PrivacyConfig,
) -> tuple[dict[str, Any], bytes, bytes]:
    """(the `audit` JSON of docs/contract.md, blurred snapshot JPEG, raw frame JPEG)."""
    kept = at_operating_thresholds(detections, model)
    height, width = image.shape[:2]
    payload = {
        "audit_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "captured_at": dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(),
        "model_version": model.version,
        "frame_width": int(width),
        "frame_height": int(height),
        "detections": [
            {k: v for k, v in box.items() if k != "track_id"} for box in boxes_payload(kept)
        ],
        "thresholds": {k: round(v, 4) for k, v in operating_thresholds(model).items()},
    }
    view = image.copy()
    if privacy.blur:  # every head the model found, also those below the operating threshold
        blur_regions(view, detections, set(privacy.blur_classes))
    annotate(view, kept, highlight=None)
    quality = privacy.jpeg_quality
    return payload, encode_jpeg(view, quality), encode_jpeg(image, quality)
