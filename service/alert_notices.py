"""The ingest side of the alerts outbox: an `alert_notices` row per new violation, added to the
violation's own INSERT transaction, so a stored violation always has its notification queued
(service/alert_outbox.py routes and delivers them). Needs no `alerts` library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from service.models import AlertNotice, utcnow

ENQUEUE_KEY = "siteguard.alert_outbox"  # Session.info flag, set when durable alerts are on


def enqueue_violations(db: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add an outbox row per new violation to the caller's transaction (alerts on only)."""
    if not rows or not db.info.get(ENQUEUE_KEY):
        return
    now = utcnow()
    db.execute(
        insert(AlertNotice.__table__),
        [
            {"event_id": r["event_id"], "status": "pending", "routes_done": [], "created_at": now}
            for r in rows
        ],
    )
