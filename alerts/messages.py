"""A Dispatch: one message the policy decided to send, before any channel formats it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from alerts.notices import CameraNotice, ViolationNotice

MESSAGE_KINDS = ("violation", "group", "escalation", "camera", "test")


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """What to say (``kind`` + notices) and to whom (``recipients``), channel-independent.

    ``violation``: one violation; ``group``: a burst on one camera; ``escalation``: violations
    still unreviewed after ``escalated_after_min``; ``camera``: an outage or recovery;
    ``test``: the admin page's test message.
    """

    kind: str
    created_at: datetime
    route: str | None = None
    violations: tuple[ViolationNotice, ...] = ()
    camera: CameraNotice | None = None
    recipients: tuple[str, ...] = ()
    escalated_after_min: float | None = None
    severity: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {self.kind!r}")

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(v.event_id for v in self.violations)

    @property
    def subject(self) -> str:
        """A short grep-able label for logs and the attempt record."""
        if self.violations:
            first = self.violations[0]
            more = f" +{len(self.violations) - 1}" if len(self.violations) > 1 else ""
            return f"{first.site_id}/{first.camera_id} {first.event_id}{more}"
        if self.camera:
            return f"{self.camera.site_id}/{self.camera.camera_id} {self.camera.state}"
        return self.kind

    @property
    def snapshot(self) -> bytes | None:
        """The newest snapshot among the violations, if any."""
        for v in reversed(self.violations):
            if v.snapshot_jpeg:
                return v.snapshot_jpeg
        return None

    def with_recipients(self, recipients: list[str] | tuple[str, ...]) -> Dispatch:
        from dataclasses import replace

        return replace(self, recipients=tuple(recipients))
