"""Zones drawn in the service reach the detector's rules through the heartbeat reply (issue 19):
applied when they change, the camera's own detector.yaml zones winning, what does not fit
skipped with a warning."""

from __future__ import annotations

import logging

from test_rules import MONDAY_NOON, PPE_CLASSES, tracked

from detector.config import CameraConfig, RulesConfig
from detector.rules import RuleEngine
from detector.site_settings import ServiceSettings

SCAFFOLD = {"name": "scaffold", "polygon": [[0, 0], [300, 0], [300, 300], [0, 300]],
            "required_ppe": ["helmet", "harness", "vest"], "schedule": None}  # fmt: skip
CRANE = {"name": "crane", "polygon": [[300, 0], [600, 0], [600, 300], [300, 300]],
         "required_ppe": ["helmet"], "danger": True}  # fmt: skip
NIGHT = {"name": "night-yard", "polygon": [[400, 400], [600, 400], [600, 600], [400, 600]],
         "required_ppe": ["helmet"],
         "schedule": [{"days": ["mon"], "start": "20:00", "end": "06:00"}]}  # fmt: skip


def pipeline(**camera: object) -> tuple[CameraConfig, RuleEngine]:
    config = CameraConfig(id="gate-1", source="x.mp4", **camera)
    engine = RuleEngine(config, RulesConfig(hold_s=0.5))
    engine.set_model_classes(PPE_CLASSES)
    return config, engine


def zone_of_violation(engine: RuleEngine, box: tuple[float, float, float, float]) -> str:
    head = ("head", 5, box)
    for t in (0.0, 0.5):
        events = engine.update(tracked(head), MONDAY_NOON + t)
    [event] = events
    return event.episode.zone


def test_service_zones_are_applied_and_reported() -> None:
    config, engine = pipeline()
    settings = ServiceSettings()
    reply = [{"camera_id": "gate-1", "zones": [SCAFFOLD, NIGHT, CRANE], "required_ppe": ["helmet"]}]
    assert settings.apply({"gate-1": (config, engine)}, reply) == ["gate-1"]
    assert [z.name for z in engine.zones] == ["scaffold", "night-yard", "crane"]
    assert engine.zones[0].required == {"helmet", "harness", "vest"}
    assert [z.danger for z in engine.zones] == [False, False, True]
    assert settings.sources["gate-1"] == "service"
    assert zone_of_violation(engine, (100, 100, 140, 140)) == "scaffold"  # not "site" any more
    # the same settings again: nothing rebuilt
    assert settings.apply({"gate-1": (config, engine)}, reply) == []
    reply[0]["zones"] = []  # deleted in the editor: gone at the next heartbeat
    assert settings.apply({"gate-1": (config, engine)}, reply) == ["gate-1"]
    assert engine.zones == []


def test_the_night_zone_applies_only_in_its_hours() -> None:
    config, engine = pipeline()  # rules.timezone UTC: Monday 12:00 is outside 20:00-06:00
    ServiceSettings().apply({"gate-1": (config, engine)}, [{"camera_id": "gate-1",
                            "zones": [NIGHT], "required_ppe": ["helmet"]}])  # fmt: skip
    head = ("head", 6, (480.0, 480.0, 520.0, 520.0))
    assert [engine.update(tracked(head), MONDAY_NOON + t) for t in (0.0, 0.5)] == [[], []]
    evening = MONDAY_NOON + 9 * 3600  # 21:00: the zone's rules apply
    [event] = [e for t in (0.0, 0.5) for e in engine.update(tracked(head), evening + t)]
    assert event.episode.zone == "night-yard"


def test_zones_in_detector_yaml_win(caplog) -> None:
    local = {"name": "local", "polygon": [[0, 0], [50, 0], [50, 50]]}
    config, engine = pipeline(zones=[local], site_requires=["helmet"])
    settings = ServiceSettings()
    with caplog.at_level(logging.INFO, logger="detector.site_settings"):
        settings.apply({"gate-1": (config, engine)}, [{"camera_id": "gate-1",
                       "zones": [SCAFFOLD], "required_ppe": ["helmet"]}])  # fmt: skip
    assert [z.name for z in engine.zones] == ["local"] and settings.sources["gate-1"] == "local"
    assert "detector.yaml" in caplog.text


def test_a_zone_that_does_not_fit_is_skipped_with_a_warning(caplog) -> None:
    config, engine = pipeline()
    broken = {"name": "line", "polygon": [[0, 0], [10, 10]], "required_ppe": ["helmet"]}
    with caplog.at_level(logging.WARNING, logger="detector.site_settings"):
        ServiceSettings().apply({"gate-1": (config, engine), }, [{"camera_id": "gate-1",
                                "zones": [broken, SCAFFOLD]}, {"camera_id": "other"}])  # fmt: skip
    assert [z.name for z in engine.zones] == ["scaffold"]
    assert "'line' skipped" in caplog.text
