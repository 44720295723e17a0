"""Administration pages: users, sites, cameras with a zone editor, API keys.

The pages only read; every change goes through the backend's JSON admin API (validated,
CSRF-checked and audited there) from `static/js/admin.js`, so there is one write path.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.alert_outbox import outbox_counts
from service.deps import AppState, get_db, get_state
from service.models import ROLES, ApiKey, Camera, Site, User, Violation
from service.security import audit, require_role
from service.web import queries
from service.web.access import has_role, page_user
from service.web.i18n import client_messages, translator
from service.web.templating import render, request_lang
from siteguard.kinds import REQUIREMENTS

router = APIRouter()

API = {
    "users": "/api/v1/users",
    "sites": "/api/v1/sites",
    "cameras": "/api/v1/cameras",
    "api_keys": "/api/v1/api-keys",
}
DEFAULT_FRAME = (1280, 720)


def _forbidden(request: Request, user: User) -> Response:
    t = translator(request_lang(request))
    return render(request, "error.html", user, status_code=403, message=t("common.forbidden"))


def _alert_channels(state: AppState) -> tuple[dict[str, str] | None, list[Any]]:
    """(channel name -> type, recent delivery attempts), or (None, []) when alerts are off."""
    hub = state.alerts.hub
    if hub is None:
        return None, []
    try:
        return dict(hub.channels()), list(hub.attempts(limit=30))
    except Exception:  # noqa: BLE001 - a broken alerts library must not break the admin page
        return None, []


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(
    request: Request,
    tested: str | None = None,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    if not has_role(user, "admin"):
        return _forbidden(request, user)
    users = list(db.scalars(select(User).order_by(User.username)))
    channels, attempts = _alert_channels(state)
    keys = list(db.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))
    sites = queries.visible_sites(db, None)
    return render(
        request,
        "admin/index.html",
        user,
        nav="admin",
        users=users,
        sites=sites,
        site_names={s.id: s.name for s in sites},
        cameras=queries.visible_cameras(db, None),
        keys=keys,
        roles=ROLES,
        api=API,
        channels=channels,
        attempts=attempts,
        outbox=outbox_counts(db) if state.alerts.durable else None,
        tested=tested,
    )


@router.post("/admin/alerts/test", include_in_schema=False)
def send_test_alert(
    request: Request,
    channel: str = Form(..., max_length=100),
    user: User = Depends(require_role("admin")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """Send one test message on a channel now (synchronously) and show the outcome."""
    channels, _ = _alert_channels(state)
    if channels is None or channel not in channels:
        t = translator(request_lang(request))
        return render(request, "error.html", user, status_code=404, message=t("common.not_found"))
    attempt = state.alerts.hub.send_test(channel)
    with state.db.writing(db):
        audit(db, request, user.username, "alerts.test", user=user, target=channel,
              detail={"outcome": attempt.outcome, "error": attempt.error})  # fmt: skip
    return RedirectResponse(f"/admin?tested={channel}#alerts", 303)


def _camera_frame(db: Session, camera_id: str) -> tuple[str | None, int, int]:
    """The newest snapshot of a camera (to draw zones on) and its frame size."""
    v = db.scalars(
        select(Violation)
        .where(Violation.camera_id == camera_id)
        .order_by(Violation.started_at.desc())
        .limit(1)
    ).first()
    if v is None:
        return None, *DEFAULT_FRAME
    width, height = v.frame_width or DEFAULT_FRAME[0], v.frame_height or DEFAULT_FRAME[1]
    url = queries.snapshot_url(v.event_id) if v.snapshot_sha256 else None
    return url, width, height


@router.get(
    "/admin/cameras/{camera_id}/zones", response_class=HTMLResponse, include_in_schema=False
)
def zone_editor_page(
    request: Request,
    camera_id: str,
    user: User = Depends(page_user),
    db: Session = Depends(get_db),
) -> Response:
    if not has_role(user, "admin"):
        return _forbidden(request, user)
    camera = db.get(Camera, camera_id) if len(camera_id) <= 64 else None
    if camera is None:
        t = translator(request_lang(request))
        return render(request, "error.html", user, status_code=404, message=t("common.not_found"))
    snapshot, width, height = _camera_frame(db, camera.id)
    site = db.get(Site, camera.site_id)
    editor: dict[str, Any] = {
        "camera_id": camera.id,
        "api_url": f"{API['cameras']}/{camera.id}",
        "zones": list(camera.zones or []),
        "width": width,
        "height": height,
        "messages": client_messages(request_lang(request), ("admin.zone", "ppe.", "day.")),
    }
    return render(
        request,
        "admin/zones.html",
        user,
        nav="admin",
        camera=camera,
        site=site,
        snapshot=snapshot,
        width=width,
        height=height,
        editor=editor,
        requirements=REQUIREMENTS,
    )
