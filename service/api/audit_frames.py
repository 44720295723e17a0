"""Audit frames (detector/audit.py): the detector's post, and what users of the site may see.

`POST /api/v1/audit-frames` follows `POST /api/v1/violations` (docs/contract.md): a multipart form,
`X-API-Key`, idempotent by id (201 stored, 200 a repeat), refusals as clear 4xx with nothing
stored, a 503 to retry later. It is not on the ingest hot path: a detector samples a few frames
an hour, so a plain route (one transaction per post) serves it.

Users: any role of the site lists audit frames and sees the blurred snapshot; the raw frame is
only a training sample's image (`GET /api/v1/samples/{id}/image`, trainers of the site, audited).
An audit frame of a site the user cannot see is a 404, as an unknown one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service import audit_frames as ops
from service import violations
from service.clock import time_problems
from service.deps import AppState, get_db, get_state
from service.ingest import MAX_EVENT_BYTES, read_form
from service.input_errors import error_detail
from service.models import User
from service.schemas import EVENT_ID, SLUG, VERSION, AuditFrameIn, AuditFrameOut, AuditFramePage
from service.security import DetectorKey, audit, detector_key, require_role
from service.storage import StorageUnavailable, looks_like_jpeg

log = logging.getLogger(__name__)
router = APIRouter(prefix="/audit-frames", tags=["audit frames"])
FIELDS = frozenset({"audit", "frame", "snapshot"})  # other form parts are dropped unread
AuditIdPath = Annotated[str, Path(pattern=EVENT_ID, max_length=64)]

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audit", "frame"],
                    "properties": {
                        "audit": {"type": "string", "description": "the audit frame as JSON"},
                        "frame": {
                            "type": "string",
                            "format": "binary",
                            "description": "the raw JPEG frame (trainers label it)",
                        },
                        "snapshot": {
                            "type": "string",
                            "format": "binary",
                            "description": "the JPEG with heads blurred (for everyone else)",
                        },
                    },
                }
            }
        },
    }
}


def _reject(state: AppState, reason: str, status: int, detail: object) -> HTTPException:
    state.metrics.ingest_rejected.labels(reason).inc()
    return HTTPException(status, detail)


def _parse(parts: dict[str, bytes], state: AppState) -> AuditFrameIn:
    raw = parts.get("audit")
    if raw is None:
        raise _reject(state, "invalid_event", 422, "the form has no 'audit' field (JSON)")
    if len(raw) > MAX_EVENT_BYTES:
        raise _reject(state, "invalid_event", 413, f"audit larger than {MAX_EVENT_BYTES} bytes")
    try:
        frame = AuditFrameIn.model_validate_json(raw)
    except ValidationError as exc:
        detail = error_detail(exc.errors(include_url=False, include_context=False))
        raise _reject(state, "invalid_event", 422, detail) from None
    problems = time_problems(state.settings, captured_at=frame.captured_at)  # as ingest's
    if problems:
        raise _reject(state, "invalid_event", 422, problems)
    return frame


def _jpeg(parts: dict[str, bytes], name: str, state: AppState, required: bool) -> bytes | None:
    data = parts.get(name)
    if data is None:
        if required:
            raise _reject(state, "invalid_event", 422, f"the form has no '{name}' (a JPEG)")
        return None
    limit = state.settings.max_snapshot_bytes
    if len(data) > limit:
        raise _reject(state, "too_large", 413, f"{name} larger than {limit} bytes")
    if not looks_like_jpeg(data):
        raise _reject(state, "not_jpeg", 415, f"{name} is not a JPEG image")
    return data


@router.post(
    "",
    status_code=201,
    response_model=AuditFrameOut,
    responses={200: {}, 401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 415: {}, 422: {}, 503: {}},
    openapi_extra=_FORM,
)
async def post_audit_frame(
    request: Request,
    key: DetectorKey = Depends(detector_key),
    state: AppState = Depends(get_state),
) -> Response:
    """A detector posts an audit frame: 201 stored (a training sample "to label"), 200 a
    repeated audit id (nothing new stored)."""
    try:
        parts = await read_form(request, 2 * state.settings.max_snapshot_bytes, FIELDS)
        item = _parse(parts, state)
        frame = _jpeg(parts, "frame", state, required=True)
        snapshot = _jpeg(parts, "snapshot", state, required=False)
        site_id = violations.check_camera(state, key, item.camera_id)
        assert frame is not None
        out, created = await asyncio.to_thread(
            ops.store, state, key, item, site_id, frame, snapshot
        )
    except StorageUnavailable as exc:  # retryable: the detector keeps it in its outbox
        log.error("storage error on an audit frame: %s", exc)
        return JSONResponse({"detail": f"{exc}; retry later"}, 503)
    except DBAPIError as exc:
        state.metrics.db_errors.labels("request").inc()
        log.error("database error on an audit frame: %s", exc)
        return JSONResponse({"detail": "database unavailable; retry later"}, 503)
    return Response(out.model_dump_json(), 201 if created else 200, media_type="application/json")


@router.get("", response_model=AuditFramePage, responses={401: {}, 403: {}, 422: {}})
def list_audit_frames(
    site_id: str | None = Query(None, pattern=SLUG),
    camera_id: str | None = Query(None, pattern=SLUG),
    model_version: str | None = Query(None, pattern=VERSION, max_length=128),
    status: Literal["to_label", "labelled"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> AuditFramePage:
    """Audit frames of the user's sites, newest first (a site outside them lists nothing)."""
    filters = {
        "site_id": site_id,
        "camera_id": camera_id,
        "model_version": model_version,
        "status": status,
    }
    rows, total = ops.list_frames(db, user, filters, limit, offset)
    items = [ops.to_out(frame, sid) for frame, sid in rows]
    return AuditFramePage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{audit_id}", response_model=AuditFrameOut, responses={401: {}, 403: {}, 404: {}})
def get_audit_frame(
    audit_id: AuditIdPath,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> AuditFrameOut:
    frame = ops.get_visible(db, user, audit_id)
    return ops.to_out(frame, ops.sample_id(db, frame))


@router.get(
    "/{audit_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 401: {}, 403: {}, 404: {}},
)
def get_audit_snapshot(
    audit_id: AuditIdPath,
    request: Request,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """The audit frame with heads blurred (any role of its site); every view is audited."""
    frame = ops.get_visible(db, user, audit_id)
    digest = frame.snapshot_sha256
    if digest is None or not state.blobs.exists(digest):
        raise HTTPException(404, "no snapshot for this audit frame")
    with state.db.writing(db):
        audit(
            db,
            request,
            user.username,
            "audit_snapshot.view",
            user=user,
            site_id=frame.site_id,
            target=frame.audit_id,
        )
    return Response(
        state.blobs.read(digest),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600", "ETag": f'"{digest}"'},
    )
