"""A Dispatch: one message the policy decided to send, before any channel formats it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

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
        return replace(self, recipients=tuple(recipients))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for a durable outbox; snapshots are left out (the store re-attaches them).

        >>> from alerts.notices import utc_now
        >>> d = Dispatch(kind="test", created_at=utc_now())
        >>> Dispatch.from_dict(d.to_dict()) == d
        True
        """
        return {
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "route": self.route,
            "violations": [_violation_dict(v) for v in self.violations],
            "camera": None if self.camera is None else _camera_dict(self.camera),
            "recipients": list(self.recipients),
            "escalated_after_min": self.escalated_after_min,
            "severity": self.severity,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dispatch:
        """The inverse of ``to_dict`` (violations come back without their snapshots)."""
        camera = data.get("camera")
        return cls(
            kind=data["kind"],
            created_at=datetime.fromisoformat(data["created_at"]),
            route=data.get("route"),
            violations=tuple(ViolationNotice(**v) for v in data.get("violations") or ()),
            camera=None if camera is None else CameraNotice(**camera),
            recipients=tuple(data.get("recipients") or ()),
            escalated_after_min=data.get("escalated_after_min"),
            severity=data.get("severity"),
            extra=dict(data.get("extra") or {}),
        )


def _violation_dict(v: ViolationNotice) -> dict[str, Any]:
    out = asdict(v)
    out.pop("snapshot_jpeg")
    out["started_at"] = v.started_at.isoformat()
    return out


def _camera_dict(c: CameraNotice) -> dict[str, Any]:
    return {
        "site_id": c.site_id,
        "camera_id": c.camera_id,
        "state": c.state,
        "at": c.at.isoformat(),
    }
