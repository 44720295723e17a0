"""`/api/v1/alert-outbox`: what the durable alerts outbox holds, and dead letters for admins.

GET  /alert-outbox                      counts by status (pending, sending, delivered, dead)
GET  /alert-outbox/dead                 messages that failed for good, newest first
POST /alert-outbox/dead/{id}/retry      queue a dead message again (attempts start over)
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import AlertDelivery, User, utcnow
from service.security import audit, require_role

router = APIRouter(prefix="/alert-outbox", tags=["alerts"])


class DeadLetterOut(BaseModel):
    id: int
    channel: str
    route: str | None
    kind: str
    subject: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


def outbox_counts(db: Session) -> dict[str, int]:
    """Messages per status (every status present, 0 when none)."""
    counts = dict.fromkeys(("pending", "sending", "delivered", "dead"), 0)
    stmt = select(AlertDelivery.status, func.count()).group_by(AlertDelivery.status)
    for status, n in db.execute(stmt):
        counts[status] = int(n)
    return counts


@router.get("", response_model=dict[str, int])
def counts(
    _admin: User = Depends(require_role("admin")), db: Session = Depends(get_db)
) -> dict[str, int]:
    return outbox_counts(db)


@router.get("/dead", response_model=list[DeadLetterOut])
def dead_letters(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    _admin: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
) -> list[DeadLetterOut]:
    rows = db.scalars(
        select(AlertDelivery)
        .where(AlertDelivery.status == "dead")
        .order_by(AlertDelivery.updated_at.desc(), AlertDelivery.id.desc())
        .limit(limit)
    )
    return [DeadLetterOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/dead/{delivery_id}/retry", response_model=DeadLetterOut)
def retry_dead_letter(
    delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    admin: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> DeadLetterOut:
    with state.db.writing(db):
        row = db.get(AlertDelivery, delivery_id)
        if row is None or row.status != "dead":
            raise HTTPException(404, f"no dead message {delivery_id}")
        row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        row.claimed_by, row.lease_until = None, None
        audit(db, request, admin.username, "alerts.retry", user=admin, target=str(row.id))
        out = DeadLetterOut.model_validate(row, from_attributes=True)
    return out
