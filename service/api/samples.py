"""Training samples: reviewed frames with boxes, as JSON pages or a YOLO-layout zip.

Confirmed violations export their boxes as detected. For a false alarm the violating `head`
box (the one with the event's track id, else the most confident head) is dropped, because the
reviewer said it is not a bare head; the zip's `manifest.json` lists every sample's outcome so
`training/` can choose other treatment.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import TrainingSample, User, Violation
from service.schemas import SLUG, SampleOut, SamplePage
from service.security import audit, check_site, require_role, site_scope

router = APIRouter(prefix="/samples", tags=["samples"])
BASE_CLASSES = ["head", "helmet", "person"]
MAX_EXPORT = 20_000


def _query(
    db: Session,
    user: User,
    since: dt.datetime | None,
    site_id: str | None,
    limit: int,
) -> list[tuple[TrainingSample, Violation]]:
    if site_id is not None:
        check_site(user, site_id)
    stmt = select(TrainingSample, Violation).join(
        Violation, Violation.id == TrainingSample.violation_id
    )
    scope = site_scope(user)
    if scope is not None:
        stmt = stmt.where(TrainingSample.site_id.in_(sorted(scope)))
    if site_id is not None:
        stmt = stmt.where(TrainingSample.site_id == site_id)
    if since is not None:
        stmt = stmt.where(TrainingSample.updated_at > since)
    stmt = stmt.order_by(TrainingSample.updated_at, TrainingSample.id).limit(limit)
    return [(s, v) for s, v in db.execute(stmt)]


@router.get("", response_model=SamplePage, responses={401: {}, 403: {}})
def list_samples(
    since: AwareDatetime | None = Query(None, description="only samples updated after this"),
    site_id: str | None = Query(None, pattern=SLUG),
    limit: int = Query(500, ge=1, le=5000),
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
) -> SamplePage:
    rows = _query(db, user, since, site_id, limit)
    items = [
        SampleOut(
            id=s.id,
            event_id=v.event_id,
            site_id=s.site_id,
            camera_id=v.camera_id,
            image_url=f"/api/v1/samples/{s.id}/image",
            width=s.width,
            height=s.height,
            boxes=s.boxes,
            outcome=s.outcome,
            updated_at=s.updated_at,
        )
        for s, v in rows
    ]
    return SamplePage(items=items, next_since=rows[-1][0].updated_at if rows else None)


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, 401: {}, 403: {}},
)
def export_samples(
    request: Request,
    format: Literal["yolo"] = Query("yolo"),
    since: AwareDatetime | None = Query(None),
    site_id: str | None = Query(None, pattern=SLUG),
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    rows = _query(db, user, since, site_id, MAX_EXPORT)
    names = list(BASE_CLASSES)
    for s, _v in rows:
        for box in s.boxes:
            if box.get("class") not in names:
                names.append(str(box.get("class")))
    buf = io.BytesIO()
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for s, v in rows:
            if not state.blobs.exists(s.image_sha256):
                continue
            stem = f"{s.id:08d}"
            zf.writestr(f"images/{stem}.jpg", state.blobs.read(s.image_sha256))
            zf.writestr(f"labels/{stem}.txt", _yolo_labels(s, v, names))
            manifest.append(
                {
                    "image": f"images/{stem}.jpg",
                    "event_id": v.event_id,
                    "site_id": s.site_id,
                    "outcome": s.outcome,
                    "updated_at": s.updated_at.isoformat(),
                }
            )
        data = {"path": ".", "train": "images", "val": "images", "names": dict(enumerate(names))}
        zf.writestr("data.yaml", yaml.safe_dump(data, sort_keys=False))
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
    with state.db.writing(db):
        audit(
            db,
            request,
            user.username,
            "samples.export",
            user=user,
            site_id=site_id,
            detail={"format": format, "samples": len(manifest)},
        )
    return Response(
        buf.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="siteguard-samples.zip"'},
    )


def _yolo_labels(s: TrainingSample, v: Violation, names: list[str]) -> str:
    boxes = list(s.boxes)
    if s.outcome == "false_alarm":
        heads = [b for b in boxes if b.get("class") == "head"]
        culprit = next((b for b in heads if b.get("track_id") == v.track_id), None)
        if culprit is None and heads:
            culprit = max(heads, key=lambda b: float(b.get("confidence", 0)))
        boxes = [b for b in boxes if b is not culprit]
    if not s.width or not s.height:
        return ""
    lines = []
    for b in boxes:
        x1, y1, x2, y2 = (float(c) for c in b["xyxy"])
        x1, x2 = max(0.0, min(x1, x2)), min(float(s.width), max(x1, x2))
        y1, y2 = max(0.0, min(y1, y2)), min(float(s.height), max(y1, y2))
        if x2 <= x1 or y2 <= y1:
            continue
        cx, cy = (x1 + x2) / 2 / s.width, (y1 + y2) / 2 / s.height
        w, h = (x2 - x1) / s.width, (y2 - y1) / s.height
        lines.append(f"{names.index(str(b['class']))} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


@router.get(
    "/{sample_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 401: {}, 403: {}, 404: {}},
)
def sample_image(
    sample_id: Annotated[int, Path(ge=1, lt=2**31)],
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    s = db.get(TrainingSample, sample_id)
    if s is None or not state.blobs.exists(s.image_sha256):
        raise HTTPException(404, "unknown sample")
    check_site(user, s.site_id)
    return Response(state.blobs.read(s.image_sha256), media_type="image/jpeg")
