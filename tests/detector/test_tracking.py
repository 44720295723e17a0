"""WorkerTracker: which detections may start a track (the operating threshold)."""

from __future__ import annotations

import itertools

import numpy as np
import supervision as sv

from detector.config import TrackingConfig
from detector.tracking import WorkerTracker

CLOCK = itertools.count(1)


def heads(confidence: float) -> sv.Detections:
    """One bare head at a fixed place."""
    return sv.Detections(
        xyxy=np.array([[100, 100, 140, 140]], dtype=np.float32),
        confidence=np.array([confidence], dtype=np.float32),
        class_id=np.zeros(1, dtype=int),
        data={"class_name": np.array(["head"])},
    )


def tracked_ids(tracker: WorkerTracker, confidence: float, frames: int = 3) -> list[int]:
    """The head's track id after a few frames, 0.1 s apart (the clock only moves forward)."""
    ids: list[int] = []
    for _ in range(frames):
        ids = list(tracker.update(heads(confidence), timestamp=next(CLOCK) / 10).tracker_id)
    return ids


def tracker_for(operating_conf: float | None, config: TrackingConfig | None = None):
    return WorkerTracker(
        config or TrackingConfig(), {"head", "helmet"}, {"person"}, operating_conf=operating_conf
    )


def test_threshold_comes_from_the_model_unless_the_config_sets_one() -> None:
    from_model = tracker_for(0.6)
    assert (from_model.activation_conf, from_model.high_conf) == (0.6, 0.6)
    assert tracked_ids(from_model, 0.5) == [-1]  # below the model's threshold: no track
    assert tracked_ids(tracker_for(0.6), 0.7)[0] >= 0

    overridden = tracker_for(0.6, TrackingConfig(activation_conf=0.4, high_conf=0.45))
    assert (overridden.activation_conf, overridden.high_conf) == (0.4, 0.45)
    assert tracked_ids(overridden, 0.5)[0] >= 0

    assert tracker_for(None).activation_conf == 0.3  # a model exported without a threshold


def test_a_new_model_brings_its_threshold_and_keeps_the_tracks() -> None:
    tracker = tracker_for(0.3)
    [before] = tracked_ids(tracker, 0.5)
    assert before >= 0
    tracker.use_operating_conf(0.45)
    assert (tracker.activation_conf, tracker.high_conf) == (0.45, 0.45)
    assert tracked_ids(tracker, 0.5) == [before]  # same worker, same track: no new episode


def test_per_class_thresholds_let_the_lowest_class_of_a_group_start_tracks() -> None:
    tracker = WorkerTracker(
        TrackingConfig(),
        {"head", "helmet"},
        {"person"},
        operating_conf=0.3,
        class_conf={"head": 0.45, "helmet": 0.2},
    )
    assert tracker.thresholds == {"head": (0.2, 0.2), "person": (0.3, 0.3)}
    assert tracked_ids(tracker, 0.25)[0] >= 0  # a head at 0.25 is tracked; the rules judge it

    tracker.use_operating_conf(0.3, {"head": 0.5, "helmet": 0.4, "person": 0.35})
    assert tracker.thresholds == {"head": (0.4, 0.4), "person": (0.35, 0.35)}
