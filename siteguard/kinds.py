"""The violation kinds, in one place: what each one checks, which model classes show it, its names.

`detector/`, `service/` and `alerts/` all read this table (it imports nothing of theirs), so a new
kind is one row here: the ingest schema, the panel's filters and badges, reports, alert texts and
the detector's rules follow it.

- `requirement`: the PPE a zone or site asks for (`required` / `site_requires`), None for a kind
  that is about a place rather than PPE (`zone_intrusion`: someone inside a danger zone).
- `subject`: what the detector tracks to judge it: `head` (heads and hard hats) or `person`
  (body-worn PPE is assigned to a tracked person by position; intrusion uses the person's feet).
- `worn` / `missing`: the default model class names that show the PPE on / absent. A site whose
  model names them differently maps its names in the detector config (`rules.ppe_classes`).

Example:
    >>> from siteguard.kinds import BY_KIND, kind_name
    >>> BY_KIND["no_vest"].requirement, kind_name("no_vest", "zh")
    ('vest', '未穿反光背心')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Kind = Literal["no_helmet", "no_harness", "no_vest", "zone_intrusion"]
Requirement = Literal["helmet", "harness", "vest"]
Subject = Literal["head", "person"]
LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class KindInfo:
    """One violation kind; `names` and `requirement_names` are {language: display name}."""

    kind: str
    requirement: str | None
    subject: Subject
    severity: str  # the default alert severity (alerts config `severities` overrides it)
    names: dict[str, str] = field(default_factory=dict)
    requirement_names: dict[str, str] = field(default_factory=dict)
    worn: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="no_helmet",
        requirement="helmet",
        subject="head",
        severity="high",
        names={"en": "No helmet", "zh": "未戴安全帽"},
        requirement_names={"en": "Helmet", "zh": "安全帽"},
        worn=("helmet",),
        missing=("head",),  # a bare head
    ),
    KindInfo(
        kind="no_harness",
        requirement="harness",
        subject="person",
        severity="critical",
        names={"en": "No harness", "zh": "未系安全带"},
        requirement_names={"en": "Harness", "zh": "安全带"},
        worn=("harness",),
        missing=("no_harness",),
    ),
    KindInfo(
        kind="no_vest",
        requirement="vest",
        subject="person",
        severity="medium",
        names={"en": "No vest", "zh": "未穿反光背心"},
        requirement_names={"en": "Vest", "zh": "反光背心"},
        worn=("vest",),
        missing=("no_vest",),
    ),
    KindInfo(
        kind="zone_intrusion",
        requirement=None,
        subject="person",
        severity="critical",
        names={"en": "Danger zone entered", "zh": "进入危险区域"},
    ),
)

BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KINDS}
BY_REQUIREMENT: dict[str, KindInfo] = {k.requirement: k for k in KINDS if k.requirement}
KIND_NAMES: tuple[str, ...] = tuple(BY_KIND)
REQUIREMENTS: tuple[str, ...] = tuple(BY_REQUIREMENT)
DEFAULT_SEVERITIES: dict[str, str] = {k.kind: k.severity for k in KINDS}
JUDGED_CLASSES: tuple[str, ...] = tuple(c for k in KINDS for c in (*k.missing, *k.worn))

# The Literals above are for type checkers; the table is the truth. They must agree.
if get_args(Kind) != KIND_NAMES or get_args(Requirement) != REQUIREMENTS:
    raise RuntimeError("siteguard.kinds: Kind / Requirement out of step with KINDS")
if any(set(k.names) != set(LANGUAGES) for k in KINDS) or any(
    set(k.requirement_names) != set(LANGUAGES) for k in KINDS if k.requirement
):
    raise RuntimeError(f"siteguard.kinds: every kind needs a name in {LANGUAGES}")


def kind_name(kind: str, language: str) -> str:
    """The kind's display name in `language` (English if unknown; the kind itself if unknown)."""
    info = BY_KIND.get(kind)
    if info is None:
        return kind
    return info.names.get(language, info.names["en"])


def requirement_name(requirement: str, language: str) -> str:
    """The PPE's display name ("Vest", "反光背心"); the requirement itself if unknown."""
    info = BY_REQUIREMENT.get(requirement)
    if info is None:
        return requirement
    return info.requirement_names.get(language, info.requirement_names["en"])
