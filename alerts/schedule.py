"""Weekly time windows (quiet hours, shifts), evaluated in a site's local timezone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeWindow(BaseModel):
    """A daily window on some weekdays; ``start > end`` wraps past midnight.

    The weekday is the day the window *starts*: ``{days: [fri], start: "22:00", end: "06:00"}``
    covers Friday 22:00 to Saturday 06:00. ``start == end`` means the whole day.

    >>> w = TimeWindow(days=["fri"], start="22:00", end="06:00")
    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> w.contains(datetime(2026, 11, 28, 5, 0, tzinfo=tz))  # a Saturday, 05:00
    True
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    days: list[str] = Field(default_factory=lambda: list(DAYS))
    start: time
    end: time

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        days = [d.lower()[:3] for d in days]
        bad = [d for d in days if d not in DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {list(DAYS)}")
        return days

    def contains(self, local: datetime) -> bool:
        """Whether ``local`` (already in the window's timezone) falls inside the window."""
        now = local.time().replace(tzinfo=None)
        today = DAYS[local.weekday()]
        yesterday = DAYS[(local - timedelta(days=1)).weekday()]
        if self.start == self.end:
            return today in self.days
        if self.start < self.end:
            return today in self.days and self.start <= now < self.end
        return (today in self.days and now >= self.start) or (
            yesterday in self.days and now < self.end
        )


def in_any(windows: list[TimeWindow], when: datetime, tz: ZoneInfo) -> bool:
    """Whether the aware datetime ``when`` falls in any of ``windows`` in timezone ``tz``."""
    local = when.astimezone(tz)
    return any(w.contains(local) for w in windows)
