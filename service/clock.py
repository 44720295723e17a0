"""Plausible event times (issue 18): ingest refuses a time outside a window around the clock.

One event dated 9999-12-31 (or 0001-01-01) used to be stored, then broke every page that shows
it in a time zone where the date leaves Python's range, and retention (which deletes by age)
never removed it. `check_times` answers 422 for a time older than `event_max_age_days` or further
ahead than `event_max_ahead_s` (defaults: a year back, a day ahead: an edge box with a wrong
clock or an outbox that waited that long is a problem to see, not data to keep).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import HTTPException

from service.config import ServiceSettings
from service.models import utcnow


def time_problems(settings: ServiceSettings, **times: dt.datetime | None) -> list[dict[str, Any]]:
    """FastAPI-style 422 error entries for each named time outside the window."""
    now = utcnow()
    earliest = now - dt.timedelta(days=settings.event_max_age_days)
    latest = now + dt.timedelta(seconds=settings.event_max_ahead_s)
    window = (
        f"implausible time: must lie between {earliest.isoformat(timespec='seconds')} and "
        f"{latest.isoformat(timespec='seconds')} (the server's clock, UTC)"
    )
    errors = []
    for name, value in times.items():
        if value is None or earliest <= value <= latest:
            continue
        errors.append(
            {"type": "value_error", "loc": name.split("."), "msg": window, "input": str(value)}
        )
    return errors


def check_times(settings: ServiceSettings, **times: dt.datetime | None) -> None:
    """422 naming each time (`started_at`, `cameras.0.last_frame_at`, ...) outside the window."""
    errors = time_problems(settings, **times)
    if errors:
        raise HTTPException(422, errors)
