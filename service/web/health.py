"""Camera and detector health for the live alert panel (issue 19).

A camera is watched only while its detector sends heartbeats and says it sees pictures. The
stored state is the detector's last word; a detector that went quiet for longer than the
service's `camera_offline_after_s` has said nothing since, so its cameras count as offline here
even before the housekeeping tick writes it (the panel never shows a stale "online").

    >>> health = camera_health(db, site_ids, offline_after_s=8.0)
    >>> health.online, health.total, [p.name for p in health.problems]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Camera, Detector, Site, utcnow


@dataclass(frozen=True)
class CameraProblem:
    camera_id: str
    name: str
    site_name: str
    state: str  # offline | frozen | unknown (no detector has reported it yet)
    detector_id: str | None
    silent_since: dt.datetime | None  # its detector's last heartbeat, when it went quiet


@dataclass(frozen=True)
class Health:
    total: int
    online: int
    problems: list[CameraProblem] = field(default_factory=list)
    detectors_down: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def camera_health(
    session: Session,
    site_ids: Sequence[str] | None,
    offline_after_s: float,
    now: dt.datetime | None = None,
) -> Health:
    """Every camera of the user's sites: online count and what is wrong with the others."""
    now = now or utcnow()
    limit = now - dt.timedelta(seconds=offline_after_s)
    stmt = select(Camera, Site.name).join(Site, Site.id == Camera.site_id)
    detectors = select(Detector.id, Detector.last_seen_at)
    if site_ids is not None:
        stmt = stmt.where(Camera.site_id.in_(list(site_ids)))
        detectors = detectors.where(Detector.site_id.in_(list(site_ids)))
    seen = {d: _aware(at) for d, at in session.execute(detectors)}
    down = sorted(d for d, at in seen.items() if at is not None and at < limit)
    online, problems = 0, []
    for cam, site_name in session.execute(stmt.order_by(Site.name, Camera.name)):
        heard = _aware(cam.last_heartbeat_at)
        silent = heard is not None and heard < limit
        state = "offline" if silent else (cam.state or "unknown")
        if state == "online":
            online += 1
            continue
        problems.append(
            CameraProblem(
                camera_id=cam.id,
                name=cam.name,
                site_name=site_name,
                state=state if state in ("offline", "frozen") else "unknown",
                detector_id=cam.detector_id,
                silent_since=heard if silent else None,
            )
        )
    return Health(total=online + len(problems), online=online, problems=problems,
                  detectors_down=down)  # fmt: skip
