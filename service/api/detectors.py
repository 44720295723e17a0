"""Detectors as last seen in their heartbeats: which model version each one runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deps import get_db
from service.models import Detector, User
from service.schemas import DetectorOut
from service.security import require_role, site_scope

router = APIRouter(prefix="/detectors", tags=["detectors"])


@router.get("", response_model=list[DetectorOut], responses={401: {}})
def list_detectors(
    user: User = Depends(require_role("viewer")), db: Session = Depends(get_db)
) -> list[DetectorOut]:
    stmt = select(Detector).order_by(Detector.site_id, Detector.id)
    scope = site_scope(user)
    if scope is not None:
        stmt = stmt.where(Detector.site_id.in_(sorted(scope)))
    return [
        DetectorOut(
            id=d.id, site_id=d.site_id, model_version=d.model_version, last_seen_at=d.last_seen_at
        )
        for d in db.scalars(stmt)
    ]
