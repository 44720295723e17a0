"""Optional bridge to the `alerts` library (docs/contract.md): built only when configured.

Every call is guarded: a failing alert channel never fails an ingest or a review. A bad alerts
config fails start-up (AlertsConfigError); an `alerts` package that is missing or incomplete
only logs a warning, so the service runs without it.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class AlertsBridge:
    def __init__(self, hub: Any = None) -> None:
        self.hub = hub

    @classmethod
    def from_config(cls, path: Path | None) -> AlertsBridge:
        if path is None:
            return cls(None)
        try:
            from alerts import AlertHub, AlertsConfigError  # noqa: F401
        except ImportError as exc:
            log.warning("alerts_config set but the alerts library is unavailable: %s", exc)
            return cls(None)
        return cls(AlertHub.from_yaml(str(path)))  # AlertsConfigError propagates: bad config

    @property
    def enabled(self) -> bool:
        return self.hub is not None

    def start(self) -> None:
        self._call("start")

    def stop(self) -> None:
        self._call("stop")

    def notify_violation(
        self,
        *,
        event_id: str,
        site_id: str,
        camera_id: str,
        zone: str,
        kind: str,
        started_at: dt.datetime,
        duration_s: float | None,
        confidence: float,
        snapshot_jpeg: bytes | None,
        link: str | None,
    ) -> None:
        if self.hub is None:
            return
        try:
            from alerts import ViolationNotice

            notice = ViolationNotice(
                event_id=event_id,
                site_id=site_id,
                camera_id=camera_id,
                zone=zone,
                kind=kind,
                started_at=started_at,
                duration_s=duration_s,
                confidence=confidence,
                snapshot_jpeg=snapshot_jpeg,
                link=link,
            )
        except Exception:  # noqa: BLE001 - an incomplete library must not break ingest
            log.warning("cannot build ViolationNotice for %s", event_id, exc_info=True)
            return
        self._call("notify_violation", notice)

    def mark_reviewed(self, event_id: str) -> None:
        self._call("mark_reviewed", event_id)

    def notify_camera(self, *, site_id: str, camera_id: str, state: str, at: dt.datetime) -> None:
        if self.hub is None:
            return
        try:
            from alerts import CameraNotice

            notice = CameraNotice(site_id=site_id, camera_id=camera_id, state=state, at=at)
        except Exception:  # noqa: BLE001
            log.warning("cannot build CameraNotice for %s", camera_id, exc_info=True)
            return
        self._call("notify_camera", notice)

    def _call(self, name: str, *args: Any) -> Any:
        if self.hub is None:
            return None
        try:
            return getattr(self.hub, name)(*args)
        except Exception:  # noqa: BLE001 - alerts are best effort from the service's side
            log.warning("alerts %s failed", name, exc_info=True)
            return None
