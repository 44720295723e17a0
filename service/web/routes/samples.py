"""Training samples for trainers: a paged list and a box editor per sample.

Two kinds (filter `kind`): frames of reviewed alerts, and audit frames a detector drew at random
(service/audit_frames.py), which wait "to label" (filter `status`) until a trainer saves their
boxes; "Nothing there" saves an empty list (a frame with no worker is labelled too).

The pages only read, scoped to the trainer's sites (another site's sample is a 404, as for
alerts). The frame is loaded from `/api/v1/samples/{id}/image` and the editor saves through
`PUT /api/v1/samples/{id}/labels` (site-checked, CSRF-checked and audited there), so the API stays
the one path to the personal data and the one write path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func
from sqlalchemy.orm import Session

from service.api.samples import (
    BASE_CLASSES,
    kind_status_filter,
    sample_source,
    sample_status,
    training_labels,
)
from service.deps import get_db
from service.models import AuditFrame, Camera, Site, TrainingSample, User, Violation
from service.web import queries
from service.web.access import has_role, page_user, scope
from service.web.i18n import MESSAGES, client_messages, translator
from service.web.templating import render, request_lang
from training.classmap import CLASS_NAME, MAX_CLASS_NAME, OUR_CLASSES

router = APIRouter()

PAGE_SIZE = 30
OUTCOMES = ("confirmed", "false_alarm")
KINDS = ("review", "audit")
STATUSES = ("reviewed", "to_label", "labelled")
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class SampleRow:
    """One training sample as the list and the editor show it."""

    id: int
    kind: str
    status: str  # reviewed | to_label | labelled
    event_id: str  # the violation's event id, or the audit frame's audit id
    site_id: str
    site_name: str
    camera_id: str
    camera_name: str
    outcome: str
    width: int | None
    height: int | None
    labels: list[dict[str, Any]]
    false_alarm_as: str | None
    updated_at: dt.datetime
    corrected_at: dt.datetime | None
    model_version: str | None = None  # audit frames: the model that saw it
    captured_at: dt.datetime | None = None
    detections: int | None = None  # audit frames: how many boxes that model found
    start_boxes: list[dict[str, Any]] | None = None  # what the editor starts from

    @property
    def image_url(self) -> str:
        return f"/api/v1/samples/{self.id}/image"

    @property
    def labels_url(self) -> str:
        return f"/api/v1/samples/{self.id}/labels"


@dataclass(frozen=True)
class SampleFilters:
    site: str | None = None
    outcome: str | None = None
    corrected: bool | None = None
    kind: str | None = None
    status: str | None = None


def _rows_query(site_ids: list[str] | None) -> Any:
    camera = func.coalesce(Violation.camera_id, AuditFrame.camera_id)
    stmt = (
        sample_source()
        .add_columns(Site.name, Camera.name)
        .join(Site, Site.id == TrainingSample.site_id)
        .outerjoin(Camera, Camera.id == camera)
    )
    if site_ids is not None:
        stmt = stmt.where(TrainingSample.site_id.in_(site_ids))
    return stmt


def _row(
    s: TrainingSample,
    v: Violation | None,
    a: AuditFrame | None,
    site_name: str,
    camera_name: str | None,
) -> SampleRow:
    source_id = v.event_id if v is not None else a.audit_id if a is not None else ""
    camera_id = v.camera_id if v is not None else a.camera_id if a is not None else ""
    labels = training_labels(s, v)
    return SampleRow(
        id=s.id,
        kind=s.kind,
        status=sample_status(s),
        event_id=source_id,
        site_id=s.site_id,
        site_name=site_name,
        camera_id=camera_id,
        camera_name=camera_name or camera_id,
        outcome=s.outcome,
        width=s.width,
        height=s.height,
        labels=labels,
        false_alarm_as=s.false_alarm_as,
        updated_at=s.updated_at,
        corrected_at=s.corrected_at,
        model_version=a.model_version if a is not None else None,
        captured_at=a.captured_at if a is not None else None,
        detections=len(a.detections) if a is not None else None,
        # An audit frame still to label starts from the model's boxes (its sample's boxes).
        start_boxes=list(s.boxes) if s.kind == "audit" and s.corrected_at is None else labels,
    )


def list_samples(
    db: Session, site_ids: list[str] | None, filters: SampleFilters, page: int
) -> tuple[list[SampleRow], bool]:
    """One page of samples, most recently updated first, and whether an older page exists."""
    stmt = _rows_query(site_ids)
    if filters.site:
        stmt = stmt.where(TrainingSample.site_id == filters.site)
    if filters.outcome:
        stmt = stmt.where(TrainingSample.outcome == filters.outcome)
    if filters.corrected is not None:
        column = TrainingSample.corrected_at
        stmt = stmt.where(column.is_not(None) if filters.corrected else column.is_(None))
    stmt = kind_status_filter(stmt, filters.kind, filters.status)
    stmt = (
        stmt.order_by(TrainingSample.updated_at.desc(), TrainingSample.id.desc())
        .limit(PAGE_SIZE + 1)
        .offset((page - 1) * PAGE_SIZE)
    )
    rows = [_row(*r) for r in db.execute(stmt)]
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def get_sample(db: Session, site_ids: list[str] | None, sample_id: int) -> SampleRow | None:
    """The sample if it exists and lies on one of `site_ids` (None = every site)."""
    found = db.execute(_rows_query(site_ids).where(TrainingSample.id == sample_id)).first()
    return _row(*found) if found else None


def class_labels(labels: list[dict[str, Any]], lang: str) -> dict[str, str]:
    """Class -> display name for the classes a trainer may pick: our whole vocabulary (also the
    classes the model may lack yet, such as `vest` or `harness`: `siteguard retrain` adds them),
    plus any other class on the sample (so editing never silently renames a box the list does
    not know). The editor also takes a new name, which the API validates."""
    t = translator(lang)
    names = list(dict.fromkeys([*BASE_CLASSES, *OUR_CLASSES]))
    for box in labels:
        name = str(box.get("class", ""))
        if name and name not in names:
            names.append(name)
    return {
        name: t(f"class.{name}") if f"class.{name}" in MESSAGES["en"] else name for name in names
    }


def _error(request: Request, user: User, status: int, key: str) -> Response:
    t = translator(request_lang(request))
    return render(request, "error.html", user, nav="samples", status_code=status, message=t(key))


@router.get("/samples", response_class=HTMLResponse, include_in_schema=False)
def samples_page(
    request: Request,
    page: int = Query(1, ge=1, le=10_000),
    site: str = "",
    outcome: str = "",
    corrected: str = "",
    kind: str = "",
    status: str = "",
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
) -> Response:
    if not has_role(user, "trainer"):
        return _error(request, user, 403, "common.forbidden")
    site_ids = scope(user)
    if site and site_ids is not None and site not in site_ids:
        return _error(request, user, 400, "samples.bad_site")
    filters = SampleFilters(
        site=site or None,
        outcome=outcome if outcome in OUTCOMES else None,
        corrected={"yes": True, "no": False}.get(corrected),
        kind=kind if kind in KINDS else None,
        status=status if status in STATUSES else None,
    )
    rows, has_more = list_samples(db, site_ids, filters, page)
    raw = {"site": site, "outcome": outcome, "corrected": corrected, "kind": kind, "status": status}

    def query(**changes: Any) -> str:
        return urlencode({k: v for k, v in (raw | changes).items() if v})

    return render(
        request,
        "samples.html",
        user,
        nav="samples",
        samples=rows,
        page=page,
        has_more=has_more,
        query=query,
        filters=raw,
        sites=queries.visible_sites(db, site_ids),
        outcomes=OUTCOMES,
        kinds=KINDS,
        statuses=STATUSES,
    )


@router.get("/samples/{sample_id}", response_class=HTMLResponse, include_in_schema=False)
def sample_edit_page(
    request: Request,
    sample_id: str,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
) -> Response:
    if not has_role(user, "trainer"):
        return _error(request, user, 403, "common.forbidden")
    number = int(sample_id) if sample_id.isdigit() and len(sample_id) <= 10 else 0
    sample = get_sample(db, scope(user), number) if 0 < number <= MAX_ID else None
    if sample is None:
        return _error(request, user, 404, "common.not_found")
    lang = request_lang(request)
    start = sample.start_boxes if sample.start_boxes is not None else sample.labels
    classes = class_labels(start, lang)
    editor = {
        "sample_id": sample.id,
        "kind": sample.kind,
        "status": sample.status,
        "width": sample.width,
        "height": sample.height,
        "labels_url": sample.labels_url,
        "classes": list(classes),
        "class_labels": classes,
        "boxes": [
            {"class": str(b.get("class", "")), "xyxy": [float(c) for c in b["xyxy"]]}
            for b in start
            if isinstance(b.get("xyxy"), list | tuple) and len(b["xyxy"]) == 4
        ],
        "messages": client_messages(lang, ("samples.",)),
    }
    return render(
        request,
        "sample_edit.html",
        user,
        nav="samples",
        s=sample,
        editor=editor,
        classes=classes,
        class_pattern=CLASS_NAME.pattern,  # the input's `pattern`: the API's rule
        class_max=MAX_CLASS_NAME,
    )
