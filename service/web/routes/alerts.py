"""The live alert list and the alert detail page."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import KINDS, VIOLATION_STATUSES, User
from service.web import incidents, queries
from service.web.access import page_user, scope
from service.web.health import camera_health
from service.web.i18n import client_messages, translator
from service.web.templating import render, request_lang, request_tz

router = APIRouter()

STREAM_URL = "/api/v1/events"
REVIEW_URL = "/api/v1/violations/{id}/review"
HEALTH_URL = "/alerts/_health"


class BadFilter(ValueError):
    """A query-string value the page cannot use (shown as a 400 page)."""


def parse_local(value: str | None, tz: dt.tzinfo, name: str) -> dt.datetime | None:
    """A `datetime-local` value (no offset) read in the viewer's time zone, or an ISO time."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:  # 9999-12-31 west of UTC leaves the range
        raise BadFilter(f"{name}: not a date/time: {value!r}") from exc


def day_start(tz: dt.tzinfo) -> dt.datetime:
    """Midnight today in the viewer's time zone, as UTC."""
    now = dt.datetime.now(tz)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def _filters(request: Request, tz: dt.tzinfo, site_ids: list[str] | None) -> queries.AlertFilters:
    q = request.query_params
    kind, status = q.get("kind") or None, q.get("status") or None
    if kind and kind not in KINDS:
        raise BadFilter(f"kind must be one of {', '.join(KINDS)}")
    if status and status not in VIOLATION_STATUSES:
        raise BadFilter(f"status must be one of {', '.join(VIOLATION_STATUSES)}")
    site = q.get("site") or None
    if site and site_ids is not None and site not in site_ids:
        raise BadFilter("no access to that site")
    return queries.AlertFilters(
        site=site,
        camera=(q.get("camera") or None),
        kind=kind,
        status=status,
        since=parse_local(q.get("since"), tz, "since"),
        until=parse_local(q.get("until"), tz, "until"),
    )


@router.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
def alerts_page(
    request: Request,
    page: int = Query(1, ge=1, le=10_000),
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    tz_name, tz = request_tz(request)
    site_ids = scope(user)
    try:
        filters = _filters(request, tz, site_ids)
    except BadFilter as exc:
        return render(request, "error.html", user, status_code=400, message=str(exc))
    rows, has_more = queries.list_alerts(db, site_ids, filters, page=page)
    raw = {k: request.query_params.get(k, "") for k in ("site", "camera", "kind", "status")}
    raw |= {k: request.query_params.get(k, "") for k in ("since", "until")}

    def query(**changes: Any) -> str:
        return urlencode({k: v for k, v in (raw | changes).items() if v})

    lang = request_lang(request)
    sites = queries.visible_sites(db, site_ids)
    cameras = queries.visible_cameras(db, site_ids)
    page_config = {
        "site_names": {s.id: s.name for s in sites},
        "camera_names": {c.id: c.name for c in cameras},
        "stream_url": STREAM_URL,
        "review_url": REVIEW_URL,
        "can_review": user.role != "viewer",
        "page": page,
        "page_size": queries.PAGE_SIZE,
        "filters": {k: raw[k] for k in ("site", "camera", "kind", "status")},
        "since_iso": filters.since.isoformat() if filters.since else None,
        "until_iso": filters.until.isoformat() if filters.until else None,
        "health_url": HEALTH_URL,
        "incident_window_s": incidents.WINDOW_S,
        "messages": client_messages(
            lang,
            ("kind.", "status.", "alerts.", "common.snapshot", "common.no_snapshot", "zone."),
        ),
    }
    return render(
        request,
        "alerts.html",
        user,
        nav="alerts",
        violations=rows,
        shown=incidents.group_alerts(rows),
        has_more=has_more,
        page=page,
        query=query,
        filters=raw,
        sites=sites,
        cameras=cameras,
        kinds=KINDS,
        statuses=VIOLATION_STATUSES,
        kpis=queries.kpis(db, site_ids, day_start(tz)),
        health=camera_health(db, site_ids, state.settings.camera_offline_after_s),
        page_config=page_config,
    )


@router.get(HEALTH_URL, response_class=HTMLResponse, include_in_schema=False)
def health_fragment(
    request: Request,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """The panel's camera health (count + banner), fetched again on a camera change."""
    health = camera_health(db, scope(user), state.settings.camera_offline_after_s)
    return render(request, "_health.html", user, health=health)


@router.get("/alerts/{event_id}", response_class=HTMLResponse, include_in_schema=False)
def alert_detail_page(
    request: Request,
    event_id: str,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
) -> Response:
    detail = queries.alert_detail(db, scope(user), event_id) if len(event_id) <= 64 else None
    if detail is None:
        t = translator(request_lang(request))
        return render(request, "error.html", user, status_code=404, message=t("common.not_found"))
    return render(
        request,
        "alert_detail.html",
        user,
        nav="alerts",
        d=detail,
        v=detail.row,
        same_moment=queries.alerts_near(db, scope(user), detail.row, incidents.WINDOW_S),
        moment_window_s=incidents.WINDOW_S,
        review_url=REVIEW_URL.replace("{id}", detail.row.event_id),
        outcomes=("confirmed", "false_alarm", "unsure"),
    )


@router.get("/alerts/_row/{event_id}", response_class=HTMLResponse, include_in_schema=False)
def alert_row_fragment(
    request: Request,
    event_id: str,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
) -> Response:
    """One server-rendered table row, fetched by the live panel when the stream announces it."""
    detail = queries.alert_detail(db, scope(user), event_id) if len(event_id) <= 64 else None
    if detail is None:
        return Response(status_code=404)
    return render(request, "alert_row.html", user, v=detail.row)
