"""siteguard/kinds.py is the one list of violation kinds: every part that lists kinds follows it."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

import siteguard.kinds
from alerts.config import AlertsConfig
from detector.config import RulesConfig, ZoneConfig
from service.models import KINDS
from service.schemas import Kind, Ppe
from siteguard.kinds import BY_REQUIREMENT, KIND_NAMES, REQUIREMENTS


def test_the_docstring_example_runs() -> None:
    assert doctest.testmod(siteguard.kinds).failed == 0


def test_service_detector_and_alerts_list_the_same_kinds() -> None:
    assert KINDS == KIND_NAMES
    for kind in KIND_NAMES:
        assert TypeAdapter(Kind).validate_python(kind) == kind
    with pytest.raises(ValidationError):
        TypeAdapter(Kind).validate_python("no_gloves")
    assert [TypeAdapter(Ppe).validate_python(r) for r in REQUIREMENTS] == list(REQUIREMENTS)
    assert set(AlertsConfig().severities) == set(KIND_NAMES)
    assert set(RulesConfig().ppe_classes) == set(REQUIREMENTS)
    zone = ZoneConfig(name="road", polygon=[(0, 0), (1, 0), (1, 1)], requires=list(REQUIREMENTS))
    assert zone.required == set(BY_REQUIREMENT)


def test_importing_the_table_pulls_in_no_part() -> None:
    code = (
        "import sys, siteguard.kinds; parts = ('detector', 'service', 'alerts', 'training'); "
        "print(sorted(m for m in parts if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
