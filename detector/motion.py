"""Motion gating: skip inference on a camera whose picture has not changed.

Frigate's main trick on CPUs. Frames are shrunk, greyed and blurred; the fraction of pixels that
changed by more than `pixel_delta` since the last frame that ran inference decides. A keyframe
still runs every `keyframe_interval_s`, so a worker who stands still is re-checked.

Example:
    >>> gate = MotionGate(MotionConfig(min_area=0.002, keyframe_interval_s=5))
    >>> gate.should_infer(frame, timestamp=0.0)
    True
"""

from __future__ import annotations

import cv2
import numpy as np

from detector.config import MotionConfig


class MotionGate:
    """Decides per frame of one camera whether inference is needed."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._reference: np.ndarray | None = None
        self._last_infer_at: float | None = None
        self.last_changed_fraction = 0.0

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        target_w = min(self.config.width, width)
        target_h = max(1, round(height * target_w / width))
        small = cv2.resize(frame, (target_w, target_h), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def changed_fraction(self, prepared: np.ndarray) -> float:
        if self._reference is None or self._reference.shape != prepared.shape:
            return 1.0
        diff = cv2.absdiff(prepared, self._reference)
        return float(np.count_nonzero(diff > self.config.pixel_delta)) / diff.size

    def should_infer(self, frame: np.ndarray, timestamp: float) -> bool:
        """True when the scene moved, on a keyframe, or when gating is off."""
        prepared = self._prepare(frame)
        fraction = self.changed_fraction(prepared)
        self.last_changed_fraction = fraction
        keyframe_due = (
            self._last_infer_at is None
            or timestamp - self._last_infer_at >= self.config.keyframe_interval_s
        )
        if not self.config.enabled or keyframe_due or fraction >= self.config.min_area:
            # Compare later frames with the one inference saw, so slow drifts add up.
            self._reference = prepared
            self._last_infer_at = timestamp
            return True
        return False
