"""Shadow mode: a candidate model runs beside the active one on a detector, raising no alerts;
the frames where the two disagree are posted here, for trainers to look at before promoting."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import Camera, ShadowReport, User
from service.schemas import VERSION, ShadowReportIn, ShadowReportOut
from service.security import detector_key, require_role, site_scope

router = APIRouter(prefix="/shadow", tags=["models"])


@router.post("", status_code=201, responses={401: {}, 403: {}, 404: {}, 422: {}})
def post_shadow(
    report: ShadowReportIn,
    key: Any = Depends(detector_key),  # its .site_id is the one site it may post to
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> dict[str, int]:
    """Store a detector's batch of disagreements; returns how many were stored."""
    cameras = {d.camera_id for d in report.disagreements}
    sites = dict(db.execute(select(Camera.id, Camera.site_id).where(Camera.id.in_(cameras))).all())
    for camera_id in sorted(cameras):
        if camera_id not in sites:
            raise HTTPException(404, f"unknown camera {camera_id!r}")
        if sites[camera_id] != key.site_id:
            raise HTTPException(403, f"camera {camera_id!r} is not in this key's site")
    with state.db.writing(db):
        for d in report.disagreements:
            db.add(
                ShadowReport(
                    site_id=key.site_id,
                    detector_id=report.detector_id,
                    camera_id=d.camera_id,
                    candidate_version=report.candidate_version,
                    active_version=report.active_version,
                    at=d.at,
                    kind=d.kind,
                    active_boxes=[b.model_dump(by_alias=True) for b in d.active_boxes],
                    candidate_boxes=[b.model_dump(by_alias=True) for b in d.candidate_boxes],
                )
            )
    return {"stored": len(report.disagreements)}


@router.get("", response_model=list[ShadowReportOut], responses={401: {}, 403: {}})
def list_shadow(
    candidate_version: str = Query(pattern=VERSION, max_length=128),
    limit: int = Query(100, ge=1, le=1000),
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
) -> list[ShadowReportOut]:
    """The latest disagreements of a candidate, newest first (within the trainer's sites)."""
    stmt = select(ShadowReport).where(ShadowReport.candidate_version == candidate_version)
    scope = site_scope(user)
    if scope is not None:
        stmt = stmt.where(ShadowReport.site_id.in_(sorted(scope)))
    rows = db.scalars(stmt.order_by(ShadowReport.at.desc(), ShadowReport.id.desc()).limit(limit))
    return [
        ShadowReportOut(
            id=r.id,
            site_id=r.site_id,
            detector_id=r.detector_id,
            camera_id=r.camera_id,
            candidate_version=r.candidate_version,
            active_version=r.active_version,
            at=r.at,
            kind=r.kind,
            active_boxes=r.active_boxes,
            candidate_boxes=r.candidate_boxes,
        )
        for r in rows
    ]
