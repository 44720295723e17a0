"""Login, logout and the language switch."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.deps import AppState, get_db, get_state
from service.models import AuditEntry, User
from service.security import audit, csrf_protect, login, logout, optional_user
from service.web.i18n import LANG_COOKIE, LANGUAGES, translator
from service.web.templating import render, request_lang

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else (//evil, http://...) goes to /alerts."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/alerts"
    return target


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(
    request: Request, next: str | None = None, out: int = 0, db: Session = Depends(get_db)
) -> Response:
    if optional_user(request, db) is not None:
        return RedirectResponse(safe_next(next), 303)
    notice = translator(request_lang(request))("login.logged_out") if out else None
    return render(request, "login.html", None, next_url=safe_next(next), notice=notice)


@router.post("/login", include_in_schema=False)
async def login_submit(
    request: Request,
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=256),
    next: str = Form("/alerts", max_length=2000),
    state: AppState = Depends(get_state),
) -> Response:
    target = safe_next(next)
    response = RedirectResponse(target, 303)
    try:
        session = await login(request, response, state, username, password)
    except HTTPException as exc:
        t = translator(request_lang(request))
        message = {
            429: t("login.throttled"),
            503: t("login.throttled"),
            403: t("login.cross_site"),
        }.get(exc.status_code, t("login.failed"))
        page = render(
            request,
            "login.html",
            None,
            status_code=exc.status_code,
            error=message,
            username=username,
            next_url=target,
        )
        if exc.headers:
            page.headers.update(exc.headers)
        return page
    if LANG_COOKIE not in request.cookies:  # a new browser: the language this user chose last
        lang = await run_in_threadpool(_remembered, state, session.user_id)
        if lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


LANGUAGE_ACTION = "user.language"


def _remembered(state: AppState, user_id: int) -> str | None:
    with state.db.sessions() as db:
        return remembered_language(db, user_id)


def remembered_language(db: Session, user_id: int) -> str | None:
    """The language a user last chose with the switch (kept in the audit log, which retention
    never trims), so it follows them to a new browser; None if they never chose one."""
    detail = db.scalar(
        select(AuditEntry.detail)
        .where(AuditEntry.user_id == user_id, AuditEntry.action == LANGUAGE_ACTION)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(1)
    )
    lang = detail.get("lang") if isinstance(detail, dict) else None
    return lang if lang in LANGUAGES else None


@router.post("/logout", include_in_schema=False)
def logout_submit(
    request: Request,
    everywhere: str = Form("", max_length=8),
    user: User = Depends(csrf_protect),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """End this session; with the form field `everywhere`, every session of the user."""
    response = RedirectResponse("/login?out=1", 303)
    logout(request, response, db, state, user, everywhere=bool(everywhere))
    return response


@router.get("/lang", include_in_schema=False)
def switch_language(
    request: Request,
    code: str,
    next: str | None = None,
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    """Remember the chosen UI language in a cookie and, for a signed-in user, with the user (so a
    new browser opens in it after sign-in)."""
    response = RedirectResponse(safe_next(next), 303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
        user = optional_user(request, db)
        if user is not None and remembered_language(db, user.id) != code:
            with state.db.writing(db):
                audit(db, request, user.username, LANGUAGE_ACTION, user=user,
                      detail={"lang": code})  # fmt: skip
    return response


@router.get("/", include_in_schema=False)
def home() -> Response:
    return RedirectResponse("/alerts", 303)
