"""Login, logout and who-am-I for the web UI and scripts (cookie session + CSRF token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import User
from service.schemas import LoginIn, MeOut, UserOut
from service.security import csrf_protect, current_user, login, logout

router = APIRouter(prefix="/auth", tags=["auth"])


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        role=user.role,
        is_active=user.is_active,
        sites=sorted(s.id for s in user.sites),
        created_at=user.created_at,
    )


@router.post("/login", response_model=MeOut, responses={401: {}, 403: {}, 429: {}, 503: {}})
async def post_login(
    body: LoginIn,
    request: Request,
    response: Response,
    state: AppState = Depends(get_state),
) -> MeOut:
    """Async: the database work runs on worker threads, the password hash on the hash pool,
    so a flood of logins waits there instead of holding every worker thread."""
    try:
        session = await login(request, response, state, body.username, body.password)
    except Exception:
        state.metrics.logins.labels("failure").inc()
        raise
    state.metrics.logins.labels("success").inc()
    return MeOut(user=user_out(session.user), csrf_token=session.csrf_token)


@router.post("/logout", status_code=204, responses={401: {}, 403: {}})
def post_logout(
    request: Request,
    response: Response,
    everywhere: bool = Query(False, description="end every session of this user, not only this"),
    user: User = Depends(csrf_protect),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> Response:
    logout(request, response, db, state, user, everywhere=everywhere)
    response.status_code = 204
    return response


@router.get("/me", response_model=MeOut, responses={401: {}})
def get_me(request: Request, user: User = Depends(current_user)) -> MeOut:
    return MeOut(user=user_out(user), csrf_token=getattr(request.state, "csrf_token", None))
