"""Optional bridge to the `alerts` library (docs/contract.md): built only when configured.

Every call is guarded: a failing alert channel never fails an ingest or a review. A bad alerts
config fails start-up (AlertsConfigError); an `alerts` package that is missing or incomplete
only logs a warning, so the service runs without it.

With a database (`from_config(..., db=...)`, as `create_app` builds it) violations are not
handed over in memory: each one gets an outbox row in its own INSERT transaction, and
`service.alert_outbox` routes and delivers from the database, surviving a crash and shared
by replicas. `notify_violation` then only wakes the feeder.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.db import Database

log = logging.getLogger(__name__)


class AlertsBridge:
    def __init__(self, hub: Any = None, feeder: Any = None) -> None:
        self.hub = hub
        self.feeder = feeder  # service.alert_outbox.NoticeFeeder when durable

    @classmethod
    def from_config(
        cls,
        path: Path | None,
        *,
        db: Database | None = None,
        blobs: Any = None,
        public_url: str | None = None,
    ) -> AlertsBridge:
        """In-memory delivery without ``db``; with it, the durable outbox in that database."""
        if path is None:
            return cls(None)
        try:
            from alerts import AlertHub, AlertsConfigError  # noqa: F401
        except ImportError as exc:
            log.warning("alerts_config set but the alerts library is unavailable: %s", exc)
            return cls(None)
        if db is None:
            return cls(AlertHub.from_yaml(str(path)))  # AlertsConfigError propagates
        from alerts.config import load_config
        from service import alert_outbox as outbox
        from service.alert_notices import ENQUEUE_KEY

        config = load_config(path)  # AlertsConfigError propagates: bad config
        timeouts = [c.timeout_s or config.delivery.timeout_s for c in config.channels.values()]
        lease_s = 2 * max(timeouts, default=0.0) + 30  # a send in flight is never taken over
        store = outbox.SqlOutboxStore(
            db, outbox.Snapshots(db, blobs), outbox.replica_name(), lease_s=lease_s
        )
        hub = AlertHub(config, store=store)
        db.sessions.configure(info={ENQUEUE_KEY: True})  # violations get outbox rows
        return cls(hub, outbox.NoticeFeeder(hub, store, public_url=public_url))

    @property
    def durable(self) -> bool:
        return self.feeder is not None

    @property
    def enabled(self) -> bool:
        return self.hub is not None

    def start(self) -> None:
        self._call("start")
        if self.feeder is not None:
            self.feeder.start()

    def stop(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
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
        if self.feeder is not None:  # its outbox row went in with the violation
            self.feeder.wake()
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
