"""Periodic housekeeping: retention of old events and snapshots, and stale-camera detection.

Retention (every `retention_interval_s`): unreviewed events older than `retention_days` are
deleted; older reviewed events keep their metadata and reviews but lose their snapshot (their
raw frame too, unless it is a training sample); raw unblurred frames older than the shorter
`frame_retention_days` go in any case, with the training samples made of them (privacy: export
or retrain within that window); blobs no row references are removed; expired sessions are
dropped. The audit log is kept, except failed logins (a flood of them would grow it without
bound): those go after `failed_login_retention_days`. Each replica may run it: it is idempotent.

Audit frames (service/audit_frames.py) follow the same clocks, by `captured_at`: the blurred
snapshot goes after `retention_days`, the raw frame and its training sample after
`frame_retention_days`. A frame nobody labelled by then is deleted whole (it can no longer be
labelled); a labelled one keeps its row (detections and labels, no image), so the field figures
of its model version stay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from service.deps import AppState
from service.models import (
    AuditEntry,
    AuditFrame,
    Camera,
    ModelVersion,
    TrainingSample,
    UserSession,
    Violation,
    utcnow,
)
from service.schemas import RetentionOut

log = logging.getLogger(__name__)


def run_retention(state: AppState, now: dt.datetime | None = None) -> RetentionOut:
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=state.settings.retention_days)
    with state.db.sessions() as db, state.db.writing(db):
        # By started_at, or by received_at for a row dated in the future (stored before ingest
        # refused implausible times): no row outlives the retention whatever its clock said.
        old = or_(Violation.started_at < cutoff, Violation.received_at < cutoff)
        deleted = db.execute(
            delete(Violation).where(old, Violation.status == "unreviewed")
        ).rowcount
        sample_frames = select(TrainingSample.image_sha256)
        cleared = db.execute(
            update(Violation)
            .where(old, Violation.snapshot_sha256.is_not(None))
            .values(snapshot_sha256=None)
        ).rowcount
        db.execute(
            update(Violation)
            .where(old, Violation.frame_sha256.is_not(None))
            .where(Violation.frame_sha256.not_in(sample_frames))
            .values(frame_sha256=None)
        )
        frames_cutoff = now - dt.timedelta(days=state.settings.frame_retention_days)
        frames_old = or_(
            Violation.started_at < frames_cutoff, Violation.received_at < frames_cutoff
        )
        samples = db.execute(
            delete(TrainingSample).where(
                TrainingSample.violation_id.in_(select(Violation.id).where(frames_old))
            )
        ).rowcount
        db.execute(
            update(Violation)
            .where(frames_old, Violation.frame_sha256.is_not(None))
            .values(frame_sha256=None)
        )
        audit_samples, audit_deleted = _audit_frames(db, cutoff, now, state)
        samples = (samples or 0) + audit_samples
        sessions = db.execute(delete(UserSession).where(UserSession.expires_at < now)).rowcount
        login_cutoff = now - dt.timedelta(days=state.settings.failed_login_retention_days)
        db.execute(
            delete(AuditEntry).where(
                AuditEntry.action == "login.failed", AuditEntry.at < login_cutoff
            )
        )
    blobs = collect_garbage(state)
    result = RetentionOut(
        violations_deleted=deleted or 0,
        snapshots_cleared=cleared or 0,
        blobs_deleted=blobs,
        sessions_deleted=sessions or 0,
        samples_deleted=samples or 0,
        audit_frames_deleted=audit_deleted,
    )
    log.info("retention (cutoff %s): %s", cutoff.isoformat(), result.model_dump())
    return result


def _audit_frames(
    db: Session, cutoff: dt.datetime, now: dt.datetime, state: AppState
) -> tuple[int, int]:
    """Retention of audit frames (module docstring): (samples deleted, frames deleted)."""
    frames_cutoff = now - dt.timedelta(days=state.settings.frame_retention_days)
    raw_old = AuditFrame.captured_at < frames_cutoff
    unlabelled = AuditFrame.labelled_at.is_(None)
    gone = select(AuditFrame.id).where(or_(AuditFrame.captured_at < cutoff, raw_old), unlabelled)
    samples = db.execute(
        delete(TrainingSample).where(
            TrainingSample.audit_frame_id.in_(select(AuditFrame.id).where(raw_old))
            | TrainingSample.audit_frame_id.in_(gone)
        )
    ).rowcount
    frames = db.execute(delete(AuditFrame).where(AuditFrame.id.in_(gone))).rowcount
    db.execute(
        update(AuditFrame)
        .where(AuditFrame.captured_at < cutoff, AuditFrame.snapshot_sha256.is_not(None))
        .values(snapshot_sha256=None)
    )
    db.execute(
        update(AuditFrame)
        .where(raw_old, AuditFrame.frame_sha256.is_not(None))
        .values(frame_sha256=None)
    )
    return samples or 0, frames or 0


def collect_garbage(state: AppState, min_age_s: float = 300.0) -> int:
    """Delete blobs no row references (older than `min_age_s`, so in-flight ingests are safe)."""
    with state.db.sessions() as db:
        used: set[str] = set()
        for column in (
            Violation.snapshot_sha256,
            Violation.frame_sha256,
            TrainingSample.image_sha256,
            ModelVersion.sha256,
            ModelVersion.weights_sha256,
            AuditFrame.frame_sha256,
            AuditFrame.snapshot_sha256,
        ):
            used.update(d for d in db.scalars(select(column).distinct()) if d)
    now = dt.datetime.now().timestamp()
    removed = 0
    for digest in list(state.blobs.digests()):
        if digest in used:
            continue
        modified = state.blobs.modified(digest)
        if modified is None or now - modified < min_age_s:
            continue
        removed += state.blobs.delete(digest)
    return removed


def mark_stale_cameras(state: AppState, now: dt.datetime | None = None) -> list[tuple[str, str]]:
    """Cameras whose detector stopped sending heartbeats become `offline`; returns (site, cam)."""
    from service.api.heartbeats import announce_camera

    now = now or utcnow()
    limit = now - dt.timedelta(seconds=state.settings.camera_offline_after_s)
    query = select(Camera).where(
        Camera.state != "offline",
        Camera.last_heartbeat_at.is_not(None),
        Camera.last_heartbeat_at < limit,
    )
    with state.db.sessions() as db:  # every second: a plain read unless something went quiet
        if db.scalar(query.with_only_columns(Camera.id).limit(1)) is None:
            return []
    with state.db.sessions() as db, state.db.writing(db):
        stale = list(db.scalars(query))
        for cam in stale:
            cam.state = "offline"
        changed = [(c.site_id, c.id) for c in stale]
    for site_id, cam_id in changed:
        log.info("camera %s (site %s): no heartbeat since %s, offline", cam_id, site_id, limit)
        announce_camera(state, site_id, cam_id, "offline", now)
    return changed


async def housekeeping_loop(state: AppState, tick_s: float = 1.0) -> None:
    """Runs until cancelled: stale cameras every tick (a second, so a stopped detector shows on
    the live panel within camera_offline_after_s + 1 s), retention every retention_interval_s
    beside it (a long retention run never holds the stale-camera check up)."""
    retention = asyncio.create_task(_retention_loop(state))
    try:
        while True:
            await _guarded(mark_stale_cameras, state)
            await asyncio.sleep(tick_s)
    finally:
        retention.cancel()


async def _retention_loop(state: AppState) -> None:
    while True:
        await _guarded(run_retention, state)
        await asyncio.sleep(state.settings.retention_interval_s)


async def _guarded(job: Callable[[AppState], object], state: AppState) -> None:
    try:
        await asyncio.to_thread(job, state)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - keep the loop alive; the next tick retries
        state.metrics.db_errors.labels("housekeeping").inc()
        log.exception("housekeeping failed")
