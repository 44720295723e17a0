"""The panel's incident rule (service/web/incidents.py) and the alert's own box (alert_boxes.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from service.web.alert_boxes import box_views, own_box_index
from service.web.incidents import Incident, group_alerts
from service.web.queries import AlertRow

T0 = dt.datetime(2026, 11, 23, 8, 15, tzinfo=dt.UTC)


def _row(event_id: str, seconds: float, camera: str = "gate-1", **kw: object) -> AlertRow:
    fields: dict = dict(
        event_id=event_id, site_id="site-a", site_name="A", camera_id=camera,
        camera_name=camera, zone="site", kind="no_helmet",
        started_at=T0 + dt.timedelta(seconds=seconds), ended_at=None, duration_s=2.0,
        confidence=0.8, model_version="v2", status="unreviewed", has_snapshot=False,
        snapshot_url=None,
    )  # fmt: skip
    fields.update(kw)
    return AlertRow(**fields)


def _newest_first(rows: list[AlertRow]) -> list[AlertRow]:
    return sorted(rows, key=lambda r: r.started_at, reverse=True)


def _shape(shown: list[AlertRow | Incident]) -> list[list[str]]:
    return [
        [r.event_id for r in x.rows] if isinstance(x, Incident) else [x.event_id] for x in shown
    ]


def test_one_photo_is_one_incident_other_cameras_and_moments_stay_apart() -> None:
    photo = [_row(f"w{i}", 0.1 * i) for i in range(7)]
    other_camera = _row("crane", 0.3, camera="crane-2")
    later = _row("later", 30)
    shown = group_alerts(_newest_first([*photo, other_camera, later]))
    assert _shape(shown) == [
        ["later"],
        [f"w{i}" for i in reversed(range(7))],  # placed where its newest alert is
        ["crane"],
    ]
    incident = shown[1]
    assert isinstance(incident, Incident)
    assert incident.key == "w0" and incident.first.event_id == "w0"
    assert incident.kinds == [("no_helmet", 7)] and incident.undecided == 7


def test_the_window_counts_from_the_first_alert_and_never_chains() -> None:
    rows = [_row(name, s) for name, s in (("a", 0), ("b", 1.5), ("c", 3.0), ("d", 4.5))]
    assert _shape(group_alerts(_newest_first(rows))) == [["d", "c"], ["b", "a"]]
    assert _shape(group_alerts(_newest_first(rows), window_s=0)) == [["d"], ["c"], ["b"], ["a"]]
    with pytest.raises(ValueError):
        group_alerts(rows, window_s=-1)


def test_an_incident_counts_statuses_and_what_is_left_to_decide() -> None:
    rows = [
        _row("a", 0, status="confirmed"),
        _row("b", 0.2, status="unsure", kind="no_harness", zone="roof"),
        _row("c", 0.4, status="false_alarm"),
    ]
    (incident,) = group_alerts(_newest_first(rows))
    assert isinstance(incident, Incident)
    assert incident.statuses == [("confirmed", 1), ("false_alarm", 1), ("unsure", 1)]
    assert incident.kinds == [("no_harness", 1), ("no_helmet", 2)]
    assert incident.zones == ["roof", "site"] and incident.undecided == 1
    with pytest.raises(ValueError):
        Incident((rows[0],))
    with pytest.raises(ValueError):
        Incident((rows[0], _row("x", 0, camera="crane-2")))


HEADS = [
    {"class": "head", "confidence": 0.81, "xyxy": [10, 10, 40, 40], "track_id": 17},
    {"class": "head", "confidence": 0.66, "xyxy": [60, 10, 90, 40], "track_id": 18},
    {"class": "helmet", "confidence": 0.9, "xyxy": [120, 10, 150, 40], "track_id": 19},
]


def test_the_alerts_own_box_is_the_one_with_its_track() -> None:
    assert own_box_index(18, 0.66, HEADS) == 1
    assert own_box_index(18, 0.81, HEADS) == 1  # the track decides, not the confidence
    untracked = [{k: v for k, v in b.items() if k != "track_id"} for b in HEADS]
    assert own_box_index(17, 0.81, untracked) == 0  # same detection, same rounded confidence
    assert own_box_index(None, 0.5, untracked) is None  # no match: not recorded
    twins = [*untracked, {"class": "head", "confidence": 0.81, "xyxy": [200, 10, 230, 40]}]
    assert own_box_index(None, 0.81, twins) is None  # two candidates: never a guess


def test_box_views_draw_the_own_box_last_and_skip_malformed_ones() -> None:
    boxes = [*HEADS, {"class": "head", "confidence": 0.5, "xyxy": [1, 2]}, {"class": "x"}]
    views = box_views(17, 0.81, boxes)
    assert [v.class_name for v in views] == ["head", "helmet", "head"]
    assert [v.own for v in views] == [False, False, True]
    assert views[-1].xyxy == (10.0, 10.0, 40.0, 40.0)
