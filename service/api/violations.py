"""Violations: detector ingest (multipart, idempotent), end, list/filter, detail, review, images."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
)
from sqlalchemy.orm import Session

from service import violations as ops
from service.config import ServiceSettings
from service.deps import AppState, get_db, get_state
from service.ingest import handle_ingest
from service.models import User, Violation
from service.schemas import (
    EVENT_ID,
    ReviewIn,
    ViolationEndIn,
    ViolationFilter,
    ViolationOut,
    ViolationPage,
)
from service.security import DetectorKey, audit, detector_key, require_role, role_rank

router = APIRouter(prefix="/violations", tags=["violations"])
EventIdPath = Annotated[str, Path(pattern=EVENT_ID, max_length=64)]
_ERRORS = {401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 415: {}, 422: {}}


_INGEST_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["event"],
                    "properties": {
                        "event": {
                            "type": "string",
                            "description": "the violation as JSON (docs/contract.md)",
                        },
                        "snapshot": {
                            "type": "string",
                            "format": "binary",
                            "description": "annotated JPEG",
                        },
                        "frame": {
                            "type": "string",
                            "format": "binary",
                            "description": "raw JPEG frame for retraining",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=ViolationOut,
    responses={200: {}, 503: {}, **_ERRORS},
    openapi_extra=_INGEST_FORM,
)
async def post_violation(request: Request, state: AppState = Depends(get_state)) -> Response:
    """A detector posts a violation (header `X-API-Key`): 201 stored, 200 a repeated event id.

    Served by `service.ingest` (group commit); `IngestShortcut` normally answers before the
    router, this route is the same handler and documents the form.
    """
    return await handle_ingest(request, state)


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
    which: str, v: Violation, request: Request, user: User, db: Session, state: AppState
) -> Response:
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
    return _image("snapshot", ops.get_visible(db, user, event_id), request, user, db, state)


def frame_role(settings: ServiceSettings, site_id: str | None = None) -> str:
    """The minimum role that sees a site's raw frames (None: the lowest any site allows)."""
    if site_id is not None:
        return settings.unblurred_frame_role_by_site.get(site_id, settings.unblurred_frame_role)
    roles = [settings.unblurred_frame_role, *settings.unblurred_frame_role_by_site.values()]
    return min(roles, key=role_rank)


@router.get("/{event_id}/frame", response_class=Response, responses=_IMAGE)
def get_frame(
    event_id: EventIdPath,
    request: Request,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """The raw, unblurred frame: trainers and admins by default (`unblurred_frame_role`), or the
    role a site's `unblurred_frame_role_by_site` names; every view is audited."""
    lowest = frame_role(state.settings)
    if role_rank(user.role) < role_rank(lowest):  # before the lookup: says nothing of the event
        raise HTTPException(403, f"raw frames need role {lowest} or higher")
    v = ops.get_visible(db, user, event_id)
    needed = frame_role(state.settings, v.site_id)
    if role_rank(user.role) < role_rank(needed):
        raise HTTPException(403, f"raw frames of this site need role {needed} or higher")
    return _image("frame", v, request, user, db, state)
