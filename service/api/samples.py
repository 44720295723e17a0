"""Training samples: reviewed frames with boxes, as JSON pages or a YOLO-layout zip.

Confirmed violations export their boxes as detected. For a false alarm the violating `head`
box (the one with the event's track id, else the most confident head) is dropped, because the
reviewer said it is not a bare head; the zip's `manifest.json` lists every sample's outcome so
`training/` can choose other treatment.

Audit samples (kind "audit", service/audit_frames.py) are random frames a detector sent for
labelling: "to_label" until a trainer saves their labels (an empty list: "labelled, nothing
there"), then "labelled". Their labels are only ever a trainer's, so a frame still to label has
none and is left out of the export.
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
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import AuditFrame, TrainingSample, User, Violation, utcnow
from service.schemas import SLUG, SampleLabelsIn, SampleOut, SamplePage
from service.security import audit, can_see_site, check_site, require_role, site_scope
from training.classmap import class_name_error

router = APIRouter(prefix="/samples", tags=["samples"])
BASE_CLASSES = ["head", "helmet", "person"]
MAX_EXPORT = 20_000


Row = tuple[TrainingSample, Violation | None, AuditFrame | None]
SampleKind = Literal["review", "audit"]
SampleStatus = Literal["reviewed", "to_label", "labelled"]


def sample_source() -> Any:
    """Samples with what they were made of: their violation or their audit frame."""
    return (
        select(TrainingSample, Violation, AuditFrame)
        .outerjoin(Violation, Violation.id == TrainingSample.violation_id)
        .outerjoin(AuditFrame, AuditFrame.id == TrainingSample.audit_frame_id)
    )


def kind_status_filter(stmt: Any, kind: str | None, status: str | None) -> Any:
    """WHERE clauses for `kind` (review|audit) and `status` (reviewed|to_label|labelled)."""
    if kind is not None:
        stmt = stmt.where(TrainingSample.kind == kind)
    if status == "reviewed":
        stmt = stmt.where(TrainingSample.kind == "review")
    elif status in ("to_label", "labelled"):
        corrected = TrainingSample.corrected_at
        labelled = corrected.is_not(None) if status == "labelled" else corrected.is_(None)
        stmt = stmt.where(TrainingSample.kind == "audit", labelled)
    return stmt


def _query(
    db: Session,
    user: User,
    since: dt.datetime | None,
    site_id: str | None,
    limit: int,
    kind: str | None = None,
    status: str | None = None,
    trainable: bool = False,
) -> list[Row]:
    if site_id is not None:
        check_site(user, site_id)
    stmt = kind_status_filter(sample_source(), kind, status)
    if trainable:  # an audit frame still to label has no labels yet
        stmt = stmt.where(
            or_(TrainingSample.kind != "audit", TrainingSample.corrected_at.is_not(None))
        )
    scope = site_scope(user)
    if scope is not None:
        stmt = stmt.where(TrainingSample.site_id.in_(sorted(scope)))
    if site_id is not None:
        stmt = stmt.where(TrainingSample.site_id == site_id)
    if since is not None:
        stmt = stmt.where(TrainingSample.updated_at > since)
    stmt = stmt.order_by(TrainingSample.updated_at, TrainingSample.id).limit(limit)
    return [(s, v, a) for s, v, a in db.execute(stmt)]


@router.get("", response_model=SamplePage, responses={401: {}, 403: {}})
def list_samples(
    since: AwareDatetime | None = Query(None, description="only samples updated after this"),
    site_id: str | None = Query(None, pattern=SLUG),
    kind: SampleKind | None = Query(None, description="review: reviewed alerts; audit: random"),
    status: SampleStatus | None = Query(None, description="audit samples: to_label, labelled"),
    limit: int = Query(500, ge=1, le=5000),
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
) -> SamplePage:
    rows = _query(db, user, since, site_id, limit, kind, status)
    items = [sample_out(*row) for row in rows]
    return SamplePage(items=items, next_since=rows[-1][0].updated_at if rows else None)


def sample_status(s: TrainingSample) -> str:
    if s.kind != "audit":
        return "reviewed"
    return "labelled" if s.corrected_at is not None else "to_label"


def sample_out(s: TrainingSample, v: Violation | None, a: AuditFrame | None) -> SampleOut:
    source_id = v.event_id if v is not None else a.audit_id if a is not None else ""
    camera_id = v.camera_id if v is not None else a.camera_id if a is not None else ""
    return SampleOut(
        id=s.id,
        kind=s.kind,  # type: ignore[arg-type]
        status=sample_status(s),  # type: ignore[arg-type]
        event_id=source_id,
        site_id=s.site_id,
        camera_id=camera_id,
        image_url=f"/api/v1/samples/{s.id}/image",
        width=s.width,
        height=s.height,
        boxes=s.boxes,
        outcome=s.outcome,
        updated_at=s.updated_at,
        false_alarm_as=s.false_alarm_as,
        corrected_at=s.corrected_at,
        labels=training_labels(s, v),
        model_version=a.model_version if a is not None else None,
        detections=a.detections if a is not None else None,
        captured_at=a.captured_at if a is not None else None,
    )


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, 401: {}, 403: {}},
)
def export_samples(
    request: Request,
    format: Literal["yolo", "coco"] = Query("yolo", description="YOLO layout or COCO JSON"),
    since: AwareDatetime | None = Query(None),
    site_id: str | None = Query(None, pattern=SLUG),
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    rows = _query(db, user, since, site_id, MAX_EXPORT, trainable=True)
    names = list(BASE_CLASSES)
    for s, _v, _a in rows:
        for box in s.boxes:
            if box.get("class") not in names:
                names.append(str(box.get("class")))
    buf = io.BytesIO()
    manifest: list[dict[str, Any]] = []
    coco = CocoWriter(names)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for s, v, a in rows:
            if not state.blobs.exists(s.image_sha256):
                continue
            stem = f"{s.id:08d}"
            zf.writestr(f"images/{stem}.jpg", state.blobs.read(s.image_sha256))
            if format == "coco":
                coco.add(f"{stem}.jpg", s, training_labels(s, v))
            else:
                zf.writestr(f"labels/{stem}.txt", _yolo_labels(s, v, names))
            manifest.append(
                {
                    "image": f"images/{stem}.jpg",
                    "event_id": v.event_id if v is not None else a.audit_id if a else "",
                    "kind": s.kind,
                    "site_id": s.site_id,
                    "outcome": s.outcome,
                    "updated_at": s.updated_at.isoformat(),
                }
            )
        data = {"path": ".", "train": "images", "val": "images", "names": dict(enumerate(names))}
        if format == "coco":
            zf.writestr("annotations.json", json.dumps(coco.document()))
        else:
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
        headers={"Content-Disposition": f'attachment; filename="siteguard-samples-{format}.zip"'},
    )


class CocoWriter:
    """COCO detection JSON (bbox = x, y, width, height in pixels), for CVAT / Label Studio."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, file_name: str, s: TrainingSample, boxes: list[dict[str, Any]]) -> None:
        image_id = len(self.images) + 1
        self.images.append(
            {"id": image_id, "file_name": file_name, "width": s.width, "height": s.height}
        )
        for b in boxes:
            x1, y1, x2, y2 = (float(c) for c in b["xyxy"])
            w, h = abs(x2 - x1), abs(y2 - y1)
            if w <= 0 or h <= 0:
                continue
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": self.names.index(str(b["class"])) + 1,
                    "bbox": [
                        round(min(x1, x2), 2),
                        round(min(y1, y2), 2),
                        round(w, 2),
                        round(h, 2),
                    ],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )

    def document(self) -> dict[str, Any]:
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.names)]
        return {"images": self.images, "annotations": self.annotations, "categories": categories}


def training_labels(s: TrainingSample, v: Violation | None) -> list[dict[str, Any]]:
    """The boxes a sample trains with: a trainer's correction as it stands; else the detections,
    with a false alarm's flagged head relabelled `helmet` or dropped (the reviewer's choice).
    An audit sample has only a trainer's labels: none until they are saved."""
    if s.kind == "audit":
        return list(s.boxes) if s.corrected_at is not None else []
    boxes = list(s.boxes)
    if s.corrected_at is None and s.outcome == "false_alarm":
        heads = [b for b in boxes if b.get("class") == "head"]
        track_id = v.track_id if v is not None else None
        culprit = next((b for b in heads if b.get("track_id") == track_id), None)
        if culprit is None and heads:
            culprit = max(heads, key=lambda b: float(b.get("confidence", 0)))
        boxes = [b for b in boxes if b is not culprit]
        if culprit is not None and s.false_alarm_as == "helmet":
            boxes.append({**culprit, "class": "helmet"})
    return boxes


def _yolo_labels(s: TrainingSample, v: Violation | None, names: list[str]) -> str:
    boxes = training_labels(s, v)
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
    request: Request,
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """The sample's full, unblurred frame (trainers of its site); every view is audited."""
    s = _visible(db, user, sample_id)
    if not state.blobs.exists(s.image_sha256):
        raise HTTPException(404, "unknown sample")
    with state.db.writing(db):
        audit(
            db,
            request,
            user.username,
            "sample.view",
            user=user,
            site_id=s.site_id,
            target=str(s.id),
        )
    return Response(state.blobs.read(s.image_sha256), media_type="image/jpeg")


@router.put(
    "/{sample_id}/labels",
    response_model=SampleOut,
    responses={401: {}, 403: {}, 404: {}, 422: {}},
)
def put_labels(
    sample_id: Annotated[int, Path(ge=1, lt=2**31)],
    body: SampleLabelsIn,
    request: Request,
    user: User = Depends(require_role("trainer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> SampleOut:
    """A trainer corrects a sample: fixed boxes/classes and added missed ones replace the
    detections as its training labels (a later review keeps them). On an audit sample they are
    its labels, and the frame becomes "labelled" (no boxes: "labelled, nothing there").

    A class may be one the model lacks (`vest`, `harness`, or a new name such as `gloves`):
    `siteguard retrain` grows the model by it (training/grow.py). A name must be lowercase
    words joined by `_`, because it becomes a class name of the model and of the rules config."""
    with state.db.writing(db):
        s = _visible(db, user, sample_id)
        boxes = []
        for box in body.boxes:
            if error := class_name_error(box.class_name):
                raise HTTPException(422, error)
            x1, y1, x2, y2 = box.xyxy
            if not (x2 > x1 and y2 > y1):
                raise HTTPException(422, f"box {box.xyxy} needs x2 > x1 and y2 > y1")
            if s.width and s.height and (x1 < 0 or y1 < 0 or x2 > s.width or y2 > s.height):
                raise HTTPException(
                    422, f"box {box.xyxy} lies outside the {s.width}x{s.height} frame"
                )
            boxes.append({"class": box.class_name, "confidence": 1.0, "xyxy": list(box.xyxy)})
        s.boxes = boxes
        s.corrected_at = s.updated_at = utcnow()
        s.corrected_by = user.id
        frame = db.get(AuditFrame, s.audit_frame_id) if s.audit_frame_id is not None else None
        if frame is not None:  # the labels outlive the raw frame there (service/field.py)
            frame.labels = [dict(b) for b in boxes]
            frame.labelled_at, frame.labelled_by = s.corrected_at, user.id
        audit(
            db,
            request,
            user.username,
            "sample.correct",
            user=user,
            site_id=s.site_id,
            target=str(s.id),
            detail={"boxes": len(boxes), "kind": s.kind},
        )
    v = db.get(Violation, s.violation_id) if s.violation_id is not None else None
    return sample_out(s, v, frame)


def _visible(db: Session, user: User, sample_id: int) -> TrainingSample:
    """The sample if the trainer may see its site; else 404, as for an unknown id."""
    s = db.get(TrainingSample, sample_id)
    if s is None or not can_see_site(user, s.site_id):
        raise HTTPException(404, "unknown sample")
    return s
