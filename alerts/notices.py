"""What the service hands to alerts/ (notices) and what alerts/ reports back (attempts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

CAMERA_STATES = ("offline", "online", "frozen")
SEVERITIES = ("low", "medium", "high", "critical")


def _aware(value: datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        # SQLite hands back naive datetimes even for timezone-aware columns; the service stores
        # UTC, so a naive value is UTC (dropping the alert instead would lose it).
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True, kw_only=True)
class ViolationNotice:
    """One violation episode that may deserve a message.

    ``severity`` is optional: when None, the config's ``severities`` map decides by ``kind``.

    >>> ViolationNotice(event_id="e1", site_id="s1", camera_id="gate-1", zone="site",
    ...     kind="no_helmet", started_at="2026-11-23T08:15:02+00:00", duration_s=2.4,
    ...     confidence=0.81).camera_id
    'gate-1'
    """

    event_id: str
    site_id: str
    camera_id: str
    zone: str | None
    kind: str
    started_at: datetime
    duration_s: float | None = None
    confidence: float | None = None
    snapshot_jpeg: bytes | None = field(default=None, repr=False)
    link: str | None = None
    severity: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "started_at", _aware(self.started_at, "started_at"))
        for name in ("event_id", "site_id", "camera_id", "kind"):
            if not getattr(self, name):
                raise ValueError(f"ViolationNotice.{name} must not be empty")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True, kw_only=True)
class CameraNotice:
    """A camera changed state (``offline``/``frozen`` = an outage, ``online`` = recovered)."""

    site_id: str
    camera_id: str
    state: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _aware(self.at, "at"))
        if self.state not in CAMERA_STATES:
            raise ValueError(f"state must be one of {CAMERA_STATES}, got {self.state!r}")

    @property
    def is_outage(self) -> bool:
        return self.state != "online"


@dataclass(frozen=True, kw_only=True)
class DeliveryAttempt:
    """One try at delivering one message on one channel.

    ``outcome``: ``delivered``; ``retry`` (failed, will be tried again); ``failed`` (failed for
    good: retries exhausted, a permanent error, or the hub stopped first).
    ``message``: ``violation``, ``group``, ``escalation``, ``camera`` or ``test``.
    """

    channel: str
    channel_type: str
    message: str
    subject: str
    outcome: str
    attempt: int
    at: datetime
    duration_s: float
    error: str | None = None
    status_code: int | None = None
    event_ids: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    route: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)
