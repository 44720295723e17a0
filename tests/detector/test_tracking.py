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


def crowd(places: list[tuple[int, int]]) -> sv.Detections:
    """Bare heads at the given top-left corners (40 px boxes)."""
    return sv.Detections(
        xyxy=np.array([[x, y, x + 40, y + 40] for x, y in places], dtype=np.float32),
        confidence=np.full(len(places), 0.8, dtype=np.float32),
        class_id=np.zeros(len(places), dtype=int),
        data={"class_name": np.array(["head"] * len(places))},
    )


def test_a_scene_cut_starts_new_tracks_and_never_reuses_an_id() -> None:
    """Issue 19: in an image folder, heads of the next photo standing where heads of the last
    one stood got their track ids (8 bare heads, 4 alerts). A scene cut starts afresh."""
    places = [(100 * i, 100) for i in range(4)]
    tracker = tracker_for(0.3)
    clock = itertools.count(10)

    def ids(scene: int | None, frames: int = 2) -> set[int]:
        for _ in range(frames):  # a track is confirmed on its second frame
            out = tracker.update(crowd(places), timestamp=next(clock) / 5, scene=scene)
        return set(out.tracker_id.tolist())

    first = ids(0)
    assert min(first) >= 0 and ids(0) == first  # the same photo held: the same tracks
    cut = ids(1)
    assert min(cut) >= 0 and not cut & first  # new people: new ids, none reused
    assert tracker.scene_cuts == 1
    later = ids(2)
    assert min(later) >= 0 and not later & (first | cut)

    tracker = tracker_for(0.3)  # callers without scenes keep the old behaviour
    assert ids(None) == ids(None) and tracker.scene_cuts == 0


def test_every_bare_head_of_the_next_photo_raises_its_own_alert() -> None:
    """Tracker and rules together: photo A has 4 bare heads, photo B 8 (4 where A's stood)."""
    from detector.config import CameraConfig, RulesConfig
    from detector.rules import RuleEngine

    tracker = tracker_for(0.3)
    rules = RuleEngine(CameraConfig(id="cam", source="photos"), RulesConfig(hold_s=0.5))
    rules.set_model_classes({"head", "helmet", "person"})
    photo_a = [(100 * i, 100) for i in range(4)]
    photo_b = photo_a + [(100 * i, 300) for i in range(4)]
    opened: dict[int, int] = {0: 0, 1: 0}
    t = 1_800_000_000.0
    for scene, places in ((0, photo_a), (1, photo_b)):
        for _ in range(15):  # each photo held 3 s at 5 fps, as the demo plays them
            t += 0.2
            tracked = tracker.update(crowd(places), timestamp=t, scene=scene)
            opened[scene] += sum(e.type == "open" for e in rules.update(tracked, t))
    assert opened == {0: 4, 1: 8}
