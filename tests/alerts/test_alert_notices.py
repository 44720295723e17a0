"""Notices validate at construction; the modules' docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from datetime import UTC, datetime

import pytest

import alerts
from alerts import CameraNotice, ViolationNotice


def test_times_accept_iso_strings_and_naive_utc() -> None:
    n = ViolationNotice(
        event_id="e", site_id="s", camera_id="c", zone=None, kind="no_helmet",
        started_at="2026-11-23T08:15:02.120000+00:00",
    )  # fmt: skip
    assert n.started_at == datetime(2026, 11, 23, 8, 15, 2, 120000, tzinfo=UTC)
    naive = CameraNotice(site_id="s", camera_id="c", state="offline", at=datetime(2026, 1, 1, 8))
    assert naive.at == datetime(2026, 1, 1, 8, tzinfo=UTC)  # the service stores UTC


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_id": ""}, "event_id must not be empty"),
        ({"severity": "urgent"}, "severity must be one of"),
        ({"started_at": 12}, "started_at must be a datetime"),
    ],
)
def test_bad_violation_notice(fields: dict, message: str) -> None:
    base = {
        "event_id": "e", "site_id": "s", "camera_id": "c", "zone": "z", "kind": "no_helmet",
        "started_at": datetime.now(UTC),
    }  # fmt: skip
    with pytest.raises((ValueError, TypeError), match=message):
        ViolationNotice(**{**base, **fields})


def test_bad_camera_state() -> None:
    with pytest.raises(ValueError, match="state must be one of"):
        CameraNotice(site_id="s", camera_id="c", state="exploded", at=datetime.now(UTC))


def test_docstring_examples() -> None:
    failed = tried = 0
    for info in pkgutil.walk_packages(alerts.__path__, "alerts."):
        result = doctest.testmod(importlib.import_module(info.name))
        failed, tried = failed + result.failed, tried + result.attempted
    assert tried >= 6 and failed == 0
