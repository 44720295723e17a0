"""Violation use-cases shared by the API routers and the dashboard: ingest (the parts
`service.ingest` batches), end, review, query.

Each write runs in one `Database.writing` transaction, then fans out (metrics, SSE bus, alerts)
only after the commit, so nothing is announced that was not stored.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import ColumnElement, Select, case, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from service.alert_notices import enqueue_violations
from service.clock import check_times
from service.deps import AppState
from service.events import Event
from service.models import Camera, Review, TrainingSample, User, Violation, utcnow
from service.schemas import (
    ReviewOut,
    StatsRow,
    ViolationEndIn,
    ViolationFilter,
    ViolationIn,
    ViolationOut,
)
from service.security import DetectorKey, audit, check_site, site_scope

log = logging.getLogger(__name__)
# Core INSERT on the table (not the ORM entity): compiled once, then only parameters change.
_INSERT = insert(Violation.__table__)
GROUPS = ("day", "site", "camera", "zone", "kind", "model_version")


# --- reading ----------------------------------------------------------------------------------


def to_out(v: Violation, *, with_reviews: bool = False) -> ViolationOut:
    base = f"/api/v1/violations/{v.event_id}"
    reviews = []
    if with_reviews:
        reviews = [
            ReviewOut(
                outcome=r.outcome,  # type: ignore[arg-type]
                comment=r.comment,
                user=r.user.username if r.user else None,
                created_at=r.created_at,
            )
            for r in v.reviews
        ]
    return ViolationOut(
        event_id=v.event_id,
        site_id=v.site_id,
        camera_id=v.camera_id,
        kind=v.kind,
        zone=v.zone,
        started_at=v.started_at,
        ended_at=v.ended_at,
        duration_s=v.duration_s,
        confidence=v.confidence,
        track_id=v.track_id,
        model_version=v.model_version,
        frame_width=v.frame_width,
        frame_height=v.frame_height,
        boxes=v.boxes,
        status=v.status,  # type: ignore[arg-type]
        received_at=v.received_at,
        snapshot_url=f"{base}/snapshot" if v.snapshot_sha256 else None,
        frame_url=f"{base}/frame" if v.frame_sha256 else None,
        reviews=reviews,
    )


def filter_conditions(f: ViolationFilter, scope: set[str] | None) -> list[ColumnElement[bool]]:
    """WHERE clauses for a filter, limited to the sites in `scope` (None = all)."""
    conds: list[ColumnElement[bool]] = []
    if scope is not None:
        conds.append(Violation.site_id.in_(sorted(scope)))
    for column, value in (
        (Violation.site_id, f.site_id),
        (Violation.camera_id, f.camera_id),
        (Violation.kind, f.kind),
        (Violation.zone, f.zone),
        (Violation.status, f.status),
        (Violation.model_version, f.model_version),
    ):
        if value is not None:
            conds.append(column == value)
    if f.since is not None:
        conds.append(Violation.started_at >= f.since)
    if f.until is not None:
        conds.append(Violation.started_at < f.until)
    return conds


def user_filter(user: User, f: ViolationFilter) -> set[str] | None:
    """The user's site scope; 403 when the filter names a site the user may not see."""
    if f.site_id is not None:
        check_site(user, f.site_id)
    return site_scope(user)


def list_violations(
    db: Session, f: ViolationFilter, scope: set[str] | None
) -> tuple[list[Violation], int]:
    conds = filter_conditions(f, scope)
    total = db.scalar(select(func.count()).select_from(Violation).where(*conds)) or 0
    stmt: Select[tuple[Violation]] = (
        select(Violation)
        .where(*conds)
        .order_by(Violation.started_at.desc(), Violation.id.desc())
        .limit(f.limit)
        .offset(f.offset)
    )
    return list(db.scalars(stmt)), total


def get_visible(db: Session, user: User, event_id: str) -> Violation:
    v = db.scalar(
        select(Violation)
        .where(Violation.event_id == event_id)
        .options(selectinload(Violation.reviews).selectinload(Review.user))
    )
    if v is None:
        raise HTTPException(404, f"unknown event {event_id!r}")
    check_site(user, v.site_id, f"unknown event {event_id!r}")
    return v


def stats(db: Session, f: ViolationFilter, group_by: str, scope: set[str] | None) -> list[StatsRow]:
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}")
    key: Any = {
        "day": func.date(Violation.started_at),
        "site": Violation.site_id,
        "camera": Violation.camera_id,
        "zone": Violation.zone,
        "kind": Violation.kind,
        "model_version": Violation.model_version,
    }[group_by]

    def count(status: str) -> Any:
        return func.sum(case((Violation.status == status, 1), else_=0))

    stmt = (
        select(
            key,
            func.count(),
            count("unreviewed"),
            count("confirmed"),
            count("false_alarm"),
            count("unsure"),
        )
        .where(*filter_conditions(f, scope))
        .group_by(key)
        .order_by(key)
    )
    rows = []
    for k, total, unrev, conf, fa, unsure in db.execute(stmt):
        judged = int(conf or 0) + int(fa or 0)
        rows.append(
            StatsRow(
                key="unknown" if k is None else str(k),
                total=int(total),
                unreviewed=int(unrev or 0),
                confirmed=int(conf or 0),
                false_alarm=int(fa or 0),
                unsure=int(unsure or 0),
                confirmed_rate=(int(conf or 0) / judged) if judged else None,
            )
        )
    return rows


# --- writing ----------------------------------------------------------------------------------


def _summary(v: Violation) -> dict[str, Any]:
    return {
        "event_id": v.event_id,
        "camera_id": v.camera_id,
        "kind": v.kind,
        "zone": v.zone,
        "status": v.status,
        "confidence": v.confidence,
        "started_at": v.started_at.isoformat(),
        "ended_at": v.ended_at.isoformat() if v.ended_at else None,
        "duration_s": v.duration_s,
        "has_snapshot": v.snapshot_sha256 is not None,
    }


def camera_site(state: AppState, camera_id: str) -> str | None:
    """The site of a camera (None if unknown); cached, since it is read on every ingest."""
    site = state.cameras.get(camera_id)
    if site is None:
        with state.db.sessions() as db:
            site = db.scalar(select(Camera.site_id).where(Camera.id == camera_id))
        if site is not None:
            state.cameras.put(camera_id, site)
    return site


def check_camera(state: AppState, key: DetectorKey, camera_id: str) -> str:
    """The camera's site, if the key may post for it; else 404 (unknown) or 403 (other site)."""
    site_id = camera_site(state, camera_id)
    if site_id is None:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    if site_id != key.site_id:
        raise HTTPException(403, f"camera {camera_id!r} is not in this key's site")
    return site_id


def store_images(
    state: AppState, snapshot: bytes | None, frame: bytes | None
) -> tuple[dict[str, str | None], list[str]]:
    """Write the images to the blob store: ({name: digest}, digests of files new here)."""
    digests: dict[str, str | None] = {"snapshot": None, "frame": None}
    new_blobs: list[str] = []
    try:
        for name, data in (("snapshot", snapshot), ("frame", frame)):
            if data is not None:
                digest, created = state.blobs.store(data)
                digests[name] = digest
                if created:
                    new_blobs.append(digest)
    except BaseException:
        forget_blobs(state, new_blobs)
        raise
    return digests, new_blobs


def row_values(event: ViolationIn, site_id: str, digests: dict[str, str | None]) -> dict[str, Any]:
    """The INSERT parameters of a new violation."""
    return {
        "event_id": event.event_id,
        "site_id": site_id,
        "camera_id": event.camera_id,
        "kind": event.kind,
        "zone": event.zone,
        "started_at": event.started_at,
        "ended_at": event.ended_at,
        "duration_s": event.duration_s,
        "confidence": event.confidence,
        "track_id": event.track_id,
        "model_version": event.model_version,
        "frame_width": event.frame_width,
        "frame_height": event.frame_height,
        "boxes": [b.model_dump(by_alias=True) for b in event.boxes],
        "snapshot_sha256": digests["snapshot"],
        "frame_sha256": digests["frame"],
        "status": "unreviewed",
        "received_at": utcnow(),
    }


def insert_rows(db: Session, rows: list[dict[str, Any]]) -> None:
    """INSERT many new violations in the caller's transaction (one executemany), with their
    alerts outbox rows when alerts are on (a crash then loses no notification)."""
    db.execute(_INSERT, rows)
    enqueue_violations(db, rows)


def insert_one(
    state: AppState, db: Session, key: DetectorKey, values: dict[str, Any], new_blobs: list[str]
) -> tuple[Violation, bool]:
    """Store one prepared violation in its own transaction; (record, created).

    A repeated event id (a retry, or a race with another process) returns the stored record
    and removes the images this post added; any other failure removes them too and raises.
    """
    try:
        with state.db.writing(db):
            insert_rows(db, [values])
    except IntegrityError:
        forget_blobs(state, new_blobs)
        existing = stored_violation(db, values["event_id"], key)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        forget_blobs(state, new_blobs)
        raise
    return Violation(**values), True


def announce(state: AppState, violation: Violation, snapshot: bytes | None) -> None:
    """After the commit: count it, push it to live panels, hand it to the alert channels."""
    site_id = violation.site_id
    state.metrics.violations.labels(site_id, violation.kind).inc()
    state.bus.publish(Event("violation", site_id, _summary(violation)))
    if state.alerts.enabled:
        base = (state.settings.public_url or "").rstrip("/")
        state.alerts.notify_violation(
            event_id=violation.event_id,
            site_id=site_id,
            camera_id=violation.camera_id,
            zone=violation.zone,
            kind=violation.kind,
            started_at=violation.started_at,
            duration_s=violation.duration_s,
            confidence=violation.confidence,
            snapshot_jpeg=snapshot,
            link=f"{base}/violations/{violation.event_id}" if base else None,
        )


def stored_violation(db: Session, event_id: str, key: DetectorKey) -> Violation | None:
    """The stored record of a repeated event id; 409 if another site owns that id."""
    found = db.scalar(select(Violation).where(Violation.event_id == event_id))
    if found is not None and found.site_id != key.site_id:
        raise HTTPException(409, f"event id {event_id!r} is already used by another site")
    return found


def forget_blobs(state: AppState, digests: list[str]) -> None:
    """Remove blobs this request created if its row was not stored (nothing half-stored)."""
    for digest in digests:
        state.blobs.delete(digest)


def end(
    state: AppState, db: Session, key: DetectorKey, event_id: str, body: ViolationEndIn
) -> Violation:
    check_times(state.settings, ended_at=body.ended_at)
    with state.db.writing(db):
        v = db.scalar(select(Violation).where(Violation.event_id == event_id))
        if v is None:
            raise HTTPException(404, f"unknown event {event_id!r}")
        if v.site_id != key.site_id:
            raise HTTPException(403, "event belongs to another site")
        v.ended_at = body.ended_at
        if body.duration_s is not None:
            v.duration_s = body.duration_s
        elif v.started_at is not None:
            v.duration_s = max(0.0, (body.ended_at - v.started_at).total_seconds())
    state.bus.publish(Event("violation_end", v.site_id, _summary(v)))
    return v


def review(
    state: AppState,
    db: Session,
    request: Request | None,
    user: User,
    event_id: str,
    outcome: str,
    comment: str = "",
    false_alarm_as: str | None = None,
) -> Violation:
    """Record a review (who, when, comment), update status and the training sample."""
    if user.role not in ("manager", "trainer", "admin"):
        raise HTTPException(403, "needs role manager or higher")
    now = utcnow()
    with state.db.writing(db):
        v = get_visible(db, user, event_id)
        first = not v.reviews
        v.reviews.append(Review(outcome=outcome, comment=comment, user_id=user.id, created_at=now))
        v.status = outcome
        _update_sample(db, v, outcome, now, false_alarm_as)
        audit(
            db,
            request,
            user.username,
            "review",
            user=user,
            site_id=v.site_id,
            target=v.event_id,
            detail={"outcome": outcome, "comment": comment[:200]},
        )
    state.metrics.reviews.labels(outcome).inc()
    if first:
        state.metrics.review_latency.observe(max(0.0, (now - v.received_at).total_seconds()))
    state.bus.publish(
        Event("review", v.site_id, {**_summary(v), "reviewed_by": user.username, "at": str(now)})
    )
    state.alerts.mark_reviewed(v.event_id)
    db.refresh(v)
    return v


def _update_sample(
    db: Session, v: Violation, outcome: str, now: dt.datetime, false_alarm_as: str | None = None
) -> None:
    """Confirmed / false-alarm violations with a raw frame become training samples (a trainer's
    corrected labels are kept)."""
    sample = db.scalar(select(TrainingSample).where(TrainingSample.violation_id == v.id))
    if outcome == "unsure" or v.frame_sha256 is None:
        if sample is not None:
            db.delete(sample)
        return
    if sample is None:
        sample = TrainingSample(violation_id=v.id, site_id=v.site_id, image_sha256=v.frame_sha256)
        db.add(sample)
    sample.width, sample.height = v.frame_width, v.frame_height
    if sample.corrected_at is None:
        sample.boxes = v.boxes
    sample.outcome = outcome
    sample.false_alarm_as = false_alarm_as if outcome == "false_alarm" else None
    sample.updated_at = now
