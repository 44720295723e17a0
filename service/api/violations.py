"""Violations: detector ingest (multipart, idempotent), end, list/filter, detail, review, images."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from sqlalchemy.orm import Session

from service import violations as ops
from service.deps import AppState, get_db, get_state
from service.models import User
from service.schemas import (
    EVENT_ID,
    ReviewIn,
    ViolationEndIn,
    ViolationFilter,
    ViolationIn,
    ViolationOut,
    ViolationPage,
)
from service.security import DetectorKey, audit, detector_key, require_role
from service.storage import looks_like_jpeg

router = APIRouter(prefix="/violations", tags=["violations"])
EventIdPath = Annotated[str, Path(pattern=EVENT_ID, max_length=64)]
_ERRORS = {401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 415: {}, 422: {}}


def _read_jpeg(upload: UploadFile | None, name: str, limit: int, state: AppState) -> bytes | None:
    if upload is None:
        return None
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        state.metrics.ingest_rejected.labels("too_large").inc()
        raise HTTPException(413, f"{name} larger than {limit} bytes")
    if not looks_like_jpeg(data):
        state.metrics.ingest_rejected.labels("not_jpeg").inc()
        raise HTTPException(415, f"{name} is not a JPEG image")
    return data


@router.post("", status_code=201, response_model=ViolationOut, responses={200: {}, **_ERRORS})
def post_violation(
    response: Response,
    key: DetectorKey = Depends(detector_key),
    event: str = Form(description="the violation as JSON (docs/contract.md)"),
    snapshot: UploadFile | None = File(None, description="annotated JPEG"),
    frame: UploadFile | None = File(None, description="raw JPEG frame for retraining"),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ViolationOut:
    t0 = time.perf_counter()
    try:
        parsed = ViolationIn.model_validate_json(event)
    except ValidationError as exc:
        state.metrics.ingest_rejected.labels("invalid_event").inc()
        detail = jsonable_encoder(exc.errors(include_url=False, include_context=False))
        raise HTTPException(422, detail) from None
    limit = state.settings.max_snapshot_bytes
    snap = _read_jpeg(snapshot, "snapshot", limit, state)
    raw = _read_jpeg(frame, "frame", limit, state)
    violation, created = ops.ingest(state, db, key, parsed, snap, raw)
    if not created:
        response.status_code = 200
    state.metrics.ingest_latency.observe(time.perf_counter() - t0)
    return ops.to_out(violation)


@router.post("/{event_id}/end", response_model=ViolationOut, responses=_ERRORS)
def post_end(
    event_id: EventIdPath,
    body: ViolationEndIn,
    key: DetectorKey = Depends(detector_key),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ViolationOut:
    return ops.to_out(ops.end(state, db, key, event_id, body))


@router.get("", response_model=ViolationPage, responses={401: {}, 403: {}})
def list_violations(
    filters: Annotated[ViolationFilter, Query()],
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> ViolationPage:
    scope = ops.user_filter(user, filters)
    items, total = ops.list_violations(db, filters, scope)
    return ViolationPage(
        items=[ops.to_out(v) for v in items],
        total=total,
        limit=filters.limit,
        offset=filters.offset,
    )


@router.get("/{event_id}", response_model=ViolationOut, responses={401: {}, 403: {}, 404: {}})
def get_violation(
    event_id: EventIdPath,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
) -> ViolationOut:
    return ops.to_out(ops.get_visible(db, user, event_id), with_reviews=True)


@router.post("/{event_id}/review", response_model=ViolationOut, responses=_ERRORS)
def post_review(
    event_id: EventIdPath,
    body: ReviewIn,
    request: Request,
    user: User = Depends(require_role("manager")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> ViolationOut:
    v = ops.review(
        state, db, request, user, event_id, body.outcome, body.comment, body.false_alarm_as
    )
    return ops.to_out(ops.get_visible(db, user, v.event_id), with_reviews=True)


def _image(
    which: str, event_id: str, request: Request, user: User, db: Session, state: AppState
) -> Response:
    v = ops.get_visible(db, user, event_id)
    digest = v.snapshot_sha256 if which == "snapshot" else v.frame_sha256
    if digest is None or not state.blobs.exists(digest):
        raise HTTPException(404, f"no {which} for this event")
    with state.db.writing(db):
        audit(
            db,
            request,
            user.username,
            f"{which}.view",
            user=user,
            site_id=v.site_id,
            target=v.event_id,
        )
    return Response(
        state.blobs.read(digest),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600", "ETag": f'"{digest}"'},
    )


_IMAGE = {200: {"content": {"image/jpeg": {}}}, 401: {}, 403: {}, 404: {}}


@router.get("/{event_id}/snapshot", response_class=Response, responses=_IMAGE)
def get_snapshot(
    event_id: EventIdPath,
    request: Request,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    return _image("snapshot", event_id, request, user, db, state)


@router.get("/{event_id}/frame", response_class=Response, responses=_IMAGE)
def get_frame(
    event_id: EventIdPath,
    request: Request,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    return _image("frame", event_id, request, user, db, state)
