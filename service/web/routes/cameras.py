"""Camera health: state, last frame, fps and today's violations per camera."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from service.deps import get_db
from service.models import User
from service.web import queries
from service.web.access import page_user, scope
from service.web.routes.alerts import day_start
from service.web.templating import render, request_tz

router = APIRouter()


@router.get("/cameras", response_class=HTMLResponse, include_in_schema=False)
def cameras_page(
    request: Request, user: User = Depends(page_user), db: Session = Depends(get_db)
) -> Response:
    _, tz = request_tz(request)
    cameras = queries.cameras_overview(db, scope(user), day_start(tz))
    counts = {state: sum(c.state == state for c in cameras) for state in ("online", "offline")}
    counts["frozen"] = sum(c.state == "frozen" for c in cameras)
    return render(request, "cameras.html", user, nav="cameras", cameras=cameras, counts=counts)
