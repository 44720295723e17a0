"""Audit frames: frames a detector drew at random (detector/audit.py), stored for trainers to
label; the labels give each model version unbiased field figures (service/field.py).

Each audit frame is stored twice over, for two readers:
- an `AuditFrame` row: the model version, its detections at the operating thresholds, the blurred
  snapshot (any user of the site) and, once a trainer saved them, the labels. The row has no
  image of its own to protect, so it outlives the raw frame and keeps the figures;
- a `TrainingSample` of kind "audit": the raw frame (trainers of the site only) in the Samples
  pages and the box editor, status "to_label" until a trainer saves labels (`[]` = "labelled,
  nothing there"), then exported and trained on (or held back) like any sample.

Posts are idempotent by `audit_id`, as violations are by event id.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import violations as ops
from service.deps import AppState
from service.models import AuditFrame, TrainingSample, User, utcnow
from service.schemas import AuditFrameIn, AuditFrameOut
from service.security import DetectorKey, can_see_site, site_scope

STATUSES = ("to_label", "labelled")


def status(frame: AuditFrame) -> str:
    return "to_label" if frame.labelled_at is None else "labelled"


def to_out(frame: AuditFrame, sample_id: int | None = None) -> AuditFrameOut:
    base = f"/api/v1/audit-frames/{frame.audit_id}"
    return AuditFrameOut(
        audit_id=frame.audit_id,
        site_id=frame.site_id,
        camera_id=frame.camera_id,
        captured_at=frame.captured_at,
        model_version=frame.model_version,
        frame_width=frame.frame_width,
        frame_height=frame.frame_height,
        detections=frame.detections,
        thresholds=frame.thresholds,
        status=status(frame),  # type: ignore[arg-type]
        labelled_at=frame.labelled_at,
        received_at=frame.received_at,
        snapshot_url=f"{base}/snapshot" if frame.snapshot_sha256 else None,
        sample_id=sample_id,
    )


def sample_id(db: Session, frame: AuditFrame) -> int | None:
    return db.scalar(select(TrainingSample.id).where(TrainingSample.audit_frame_id == frame.id))


def _stored(db: Session, audit_id: str, key: DetectorKey) -> AuditFrame | None:
    """The stored frame of a repeated audit id; 409 if another site owns that id."""
    found = db.scalar(select(AuditFrame).where(AuditFrame.audit_id == audit_id))
    if found is not None and found.site_id != key.site_id:
        raise HTTPException(409, f"audit id {audit_id!r} is already used by another site")
    return found


def store(
    state: AppState,
    key: DetectorKey,
    item: AuditFrameIn,
    site_id: str,
    frame: bytes,
    snapshot: bytes | None,
) -> tuple[AuditFrameOut, bool]:
    """Store a posted audit frame and its training sample in one transaction: (record, created).
    A repeat stores nothing new; nothing half-stored is left behind on failure."""
    with state.db.sessions() as db:
        existing = _stored(db, item.audit_id, key)
        if existing is not None:
            return to_out(existing, sample_id(db, existing)), False
        digests, new_blobs = ops.store_images(state, snapshot, frame)
        # The model's raw detections, untracked: class, confidence, xyxy.
        detections = [b.model_dump(by_alias=True, exclude={"track_id"}) for b in item.detections]
        try:
            with state.db.writing(db):
                row = AuditFrame(
                    audit_id=item.audit_id,
                    site_id=site_id,
                    camera_id=item.camera_id,
                    captured_at=item.captured_at,
                    model_version=item.model_version,
                    frame_width=item.frame_width,
                    frame_height=item.frame_height,
                    detections=detections,
                    thresholds=dict(item.thresholds),
                    frame_sha256=digests["frame"],
                    snapshot_sha256=digests["snapshot"],
                    received_at=utcnow(),
                )
                db.add(row)
                db.flush()
                sample = TrainingSample(
                    kind="audit",
                    audit_frame_id=row.id,
                    site_id=site_id,
                    image_sha256=digests["frame"],
                    width=item.frame_width,
                    height=item.frame_height,
                    boxes=[dict(b) for b in detections],  # where the trainer starts from
                    outcome="audit",
                    updated_at=row.received_at,
                )
                db.add(sample)
        except IntegrityError:  # the same audit id stored meanwhile (a retry racing itself)
            ops.forget_blobs(state, new_blobs)
            existing = _stored(db, item.audit_id, key)
            if existing is None:
                raise
            return to_out(existing, sample_id(db, existing)), False
        except BaseException:
            ops.forget_blobs(state, new_blobs)
            raise
    return to_out(row, sample.id), True


def get_visible(db: Session, user: User, audit_id: str) -> AuditFrame:
    """The audit frame if the user may see its site; else 404, as for an unknown id (a user of
    another site learns nothing about the frame)."""
    frame = db.scalar(select(AuditFrame).where(AuditFrame.audit_id == audit_id))
    if frame is None or not can_see_site(user, frame.site_id):
        raise HTTPException(404, f"unknown audit frame {audit_id!r}")
    return frame


def list_frames(
    db: Session, user: User, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[tuple[AuditFrame, int | None]], int]:
    """Audit frames on the user's sites, newest first, with their sample ids; and the total."""
    conds = []
    scope = site_scope(user)
    if scope is not None:
        conds.append(AuditFrame.site_id.in_(sorted(scope)))
    for column in ("site_id", "camera_id", "model_version"):
        if filters.get(column) is not None:
            conds.append(getattr(AuditFrame, column) == filters[column])
    if filters.get("status") == "to_label":
        conds.append(AuditFrame.labelled_at.is_(None))
    elif filters.get("status") == "labelled":
        conds.append(AuditFrame.labelled_at.is_not(None))
    total = db.scalar(select(func.count()).select_from(AuditFrame).where(*conds)) or 0
    stmt = (
        select(AuditFrame, TrainingSample.id)
        .outerjoin(TrainingSample, TrainingSample.audit_frame_id == AuditFrame.id)
        .where(*conds)
        .order_by(AuditFrame.captured_at.desc(), AuditFrame.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(frame, sid) for frame, sid in db.execute(stmt)], int(total)
