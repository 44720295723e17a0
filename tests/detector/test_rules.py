"""Rule engine on synthetic tracked detections (real frames: test_rules_real_frames.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import supervision as sv
from pydantic import ValidationError

from detector.config import CameraConfig, RulesConfig
from detector.rules import RuleEngine

PPE_CLASSES = {"head", "helmet", "person", "harness", "no_harness"}
MONDAY_NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp()


def tracked(*boxes: tuple[str, int, tuple[float, float, float, float]]) -> sv.Detections:
    """Detections with tracker ids: (class name, track id, xyxy)."""
    if not boxes:
        empty = sv.Detections.empty()
        empty.tracker_id = np.array([], dtype=int)
        empty.data["class_name"] = np.array([], dtype=str)
        return empty
    return sv.Detections(
        xyxy=np.array([b[2] for b in boxes], dtype=np.float32),
        confidence=np.full(len(boxes), 0.8, dtype=np.float32),
        class_id=np.zeros(len(boxes), dtype=int),
        tracker_id=np.array([b[1] for b in boxes]),
        data={"class_name": np.array([b[0] for b in boxes])},
    )


def engine(camera: dict | None = None, **rules) -> RuleEngine:
    cam = CameraConfig(id="cam", source="x.mp4", **(camera or {}))
    rule_engine = RuleEngine(cam, RulesConfig(**rules))
    rule_engine.set_model_classes(PPE_CLASSES)
    return rule_engine


def run(eng: RuleEngine, frames: list[tuple[float, sv.Detections]]) -> list[tuple]:
    out = []
    for t, det in frames:
        for ev in eng.update(det, MONDAY_NOON + t):
            out.append((round(t, 2), ev.type, ev.episode.kind, ev.episode.track_id))
    return out


HEAD = ("head", 7, (100, 100, 140, 140))
HELMET = ("helmet", 7, (100, 100, 140, 140))


def test_bare_head_opens_after_hold_once_and_closes_after_compliance() -> None:
    eng = engine(hold_s=2.0, close_after_s=3.0)
    frames = [(i * 0.5, tracked(HEAD)) for i in range(11)]  # 0 .. 5 s bare head
    frames += [(5.5 + i * 0.5, tracked(HELMET)) for i in range(10)]  # helmet on
    events = run(eng, frames)
    assert events == [(2.0, "open", "no_helmet", 7), (8.0, "end", "no_helmet", 7)]
    assert not eng.open


def test_short_glimpse_below_hold_time_is_not_an_event() -> None:
    eng = engine(hold_s=2.0)
    frames = [(0.0, tracked(HEAD)), (1.0, tracked(HEAD)), (1.5, tracked(HELMET))]
    frames += [(2.5 + i, tracked(HEAD)) for i in range(2)]  # restarted at 2.5: 1 s only
    assert run(eng, frames) == []


def test_worker_leaving_closes_the_episode_and_cooldown_blocks_reopening() -> None:
    eng = engine(hold_s=1.0, close_after_s=2.0, cooldown_s=10.0)
    frames = [(t, tracked(HEAD)) for t in (0, 0.5, 1.0, 1.5)]
    frames += [(t, tracked()) for t in (2.0, 3.0, 4.0)]  # gone
    frames += [(t, tracked(HEAD)) for t in (5.0, 6.0, 7.0, 8.0)]  # back within cooldown
    frames += [(t, tracked(HEAD)) for t in (12.0, 12.5, 13.0)]  # cooldown over
    events = run(eng, frames)
    assert events == [
        (1.0, "open", "no_helmet", 7),
        (4.0, "end", "no_helmet", 7),
        (13.0, "open", "no_helmet", 7),
    ]


def test_two_workers_two_episodes() -> None:
    eng = engine(hold_s=1.0)
    other = ("head", 9, (300, 100, 340, 140))
    events = run(eng, [(t, tracked(HEAD, other)) for t in (0, 0.5, 1.0)])
    assert sorted(e[3] for e in events if e[1] == "open") == [7, 9]


def test_harness_required_only_in_zone_at_height() -> None:
    zone = {"name": "scaffold", "at_height": True, "polygon": [[500, 0], [900, 0], [900, 600]]}
    eng = engine({"zones": [zone]}, hold_s=1.0)
    on_scaffold = ("person", 1, (700, 100, 800, 300))  # feet (750, 300) inside the triangle
    on_ground = ("person", 2, (100, 100, 200, 300))
    with_harness = ("harness", -1, (720, 150, 780, 220))  # centre inside the worker at height
    events = run(eng, [(t, tracked(on_scaffold, on_ground)) for t in (0, 0.5, 1.0)])
    assert events == [(1.0, "open", "no_harness", 1)]  # only the worker at height
    eng2 = engine({"zones": [zone]}, hold_s=1.0)
    frames = [(t, tracked(on_scaffold, with_harness, on_ground)) for t in (0, 0.5, 1.0, 1.5)]
    assert run(eng2, frames) == []  # harness assigned to the worker at height: compliant
    ev = eng.open[(1, "no_harness")]
    assert ev.zone == "scaffold"


def test_explicit_no_harness_detection_is_a_violation_even_without_a_harness_class() -> None:
    zone = {"name": "roof", "at_height": True, "polygon": [[0, 0], [1000, 0], [1000, 1000]]}
    eng = engine({"zones": [zone]}, hold_s=0.5)
    eng.set_model_classes({"head", "helmet", "person", "no_harness"})
    worker = ("person", 3, (600, 100, 700, 400))
    frames = [(t, tracked(worker)) for t in (0, 1.0)]  # no harness class: cannot judge
    frames += [(t, tracked(worker, ("no_harness", -1, (620, 150, 680, 250)))) for t in (2, 3)]
    assert run(eng, frames) == [(3, "open", "no_harness", 3)]


def test_model_without_harness_classes_never_raises_no_harness() -> None:
    zone = {"name": "roof", "at_height": True, "polygon": [[0, 0], [1000, 0], [1000, 1000]]}
    eng = engine({"zones": [zone]}, hold_s=0.5)
    eng.set_model_classes({"head", "helmet", "person"})
    frames = [(t, tracked(("person", 3, (600, 100, 700, 400)))) for t in (0, 1, 2, 3)]
    assert run(eng, frames) == []


def test_shift_window_outside_hours_requires_nothing() -> None:
    night_only = [{"days": ["mon"], "start": "22:00", "end": "06:00"}]
    eng = engine({"schedule": night_only}, hold_s=1.0)
    assert run(eng, [(t, tracked(HEAD)) for t in (0, 1, 2)]) == []  # Monday noon: off shift
    day = [{"days": ["mon"], "start": "11:00", "end": "13:00"}]
    eng = engine({"schedule": day}, hold_s=1.0)
    assert run(eng, [(t, tracked(HEAD)) for t in (0, 1, 2)]) == [(1, "open", "no_helmet", 7)]


def test_zone_name_and_zone_without_helmet_requirement() -> None:
    yard = {"name": "office", "requires": [], "polygon": [[0, 0], [200, 0], [200, 200], [0, 200]]}
    eng = engine({"zones": [yard]}, hold_s=0.5)
    inside = HEAD  # centre (120, 120) is inside the office zone: nothing required
    outside = ("head", 8, (400, 400, 440, 440))
    events = run(eng, [(t, tracked(inside, outside)) for t in (0, 0.5)])
    assert events == [(0.5, "open", "no_helmet", 8)]
    assert eng.open[(8, "no_helmet")].zone == "site"


def test_close_all_ends_open_episodes_on_shutdown() -> None:
    eng = engine(hold_s=0.5)
    run(eng, [(t, tracked(HEAD)) for t in (0, 0.5, 1.0)])
    [end] = eng.close_all()
    assert end.type == "end" and end.episode.duration_s == 1.0


def with_confidence(detections: sv.Detections, confidence: float) -> sv.Detections:
    detections.confidence = np.full(len(detections), confidence, dtype=np.float32)
    return detections


def test_a_violation_starts_only_on_a_reading_at_the_bare_head_threshold() -> None:
    eng = engine(hold_s=1.0, close_after_s=3.0)
    eng.set_violation_conf("no_helmet", 0.45)
    weak = [(i * 0.5, with_confidence(tracked(HEAD), 0.3)) for i in range(6)]  # 0 .. 2.5 s
    assert run(eng, weak) == []  # below the model's head threshold: never an alert
    # One strong reading starts the hold; weaker ones of the same track keep it going.
    frames = [(3.0, with_confidence(tracked(HEAD), 0.6))]
    frames += [(3.0 + i * 0.5, with_confidence(tracked(HEAD), 0.3)) for i in range(1, 4)]
    assert run(eng, frames) == [(4.0, "open", "no_helmet", 7)]

    eng.set_violation_conf("no_helmet", None)
    assert eng.violation_conf == {}


def test_ppe_classes_default_from_the_older_fields_and_from_siteguard_kinds() -> None:
    config = RulesConfig(bare_head_classes=["bare"], harness_classes=["belt"])
    assert config.ppe_classes["helmet"].model_dump() == {"worn": ["helmet"], "missing": ["bare"]}
    assert config.ppe_classes["harness"].worn == ["belt"]
    assert config.ppe_classes["vest"].model_dump() == {"worn": ["vest"], "missing": ["no_vest"]}
    # ppe_classes is the one spelling the rules read; the older fields follow it.
    mapped = RulesConfig(ppe_classes={"helmet": {"worn": ["Hardhat"], "missing": ["NO-Hardhat"]}})
    assert (mapped.helmet_classes, mapped.bare_head_classes) == (["Hardhat"], ["NO-Hardhat"])
    with pytest.raises(ValidationError, match="ppe_classes.helmet and bare_head_classes"):
        RulesConfig(bare_head_classes=["bare"], ppe_classes={"helmet": {"worn": ["h"]}})


def test_vest_rule_is_the_harness_rule_with_other_classes() -> None:
    zone = {"name": "road", "requires": ["vest"], "polygon": [[0, 0], [1000, 0], [1000, 1000]]}
    eng = engine({"zones": [zone]}, hold_s=0.5)
    eng.set_model_classes(PPE_CLASSES | {"vest", "no_vest"})
    vested = ("person", 1, (600, 100, 700, 400))
    bare = ("person", 2, (800, 100, 900, 400))
    flagged = ("person", 3, (850, 450, 950, 800))
    boxes = [vested, ("vest", -1, (610, 150, 690, 250)), bare, flagged]
    boxes.append(("no_vest", -1, (860, 500, 940, 600)))
    events = run(eng, [(t, tracked(*boxes)) for t in (0, 0.5, 1.0)])
    # 2: the model knows vests and sees none on him; 3: labelled without one.
    assert events == [(0.5, "open", "no_vest", 2), (0.5, "open", "no_vest", 3)]
    assert eng.open[(2, "no_vest")].zone == "road"


def test_danger_zone_counts_only_inside_its_schedule() -> None:
    lifts = [{"days": ["mon"], "start": "11:00", "end": "11:30"}]
    zone = {"name": "crane", "danger": True, "requires": [], "schedule": lifts,
            "polygon": [[0, 0], [500, 0], [500, 500], [0, 500]]}  # fmt: skip
    eng = engine({"zones": [zone]}, hold_s=0.5)
    walker = ("person", 4, (100, 100, 200, 400))  # feet (150, 400) inside
    assert run(eng, [(t, tracked(walker)) for t in (0, 0.5, 1.0)]) == []  # noon: no lift
    zone["schedule"] = None
    eng = engine({"zones": [zone]}, hold_s=0.5)
    assert run(eng, [(t, tracked(walker)) for t in (0, 0.5, 1.0)]) == [
        (0.5, "open", "zone_intrusion", 4)
    ]
    assert eng.open[(4, "zone_intrusion")].zone == "crane"
