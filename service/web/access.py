"""Who may see a page: the logged-in user (else a redirect to /login) and role checks."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from service.deps import get_db
from service.models import User
from service.security import optional_user, role_rank, site_scope


def page_user(request: Request, db: Session = Depends(get_db)) -> User:
    """The logged-in user, or a 303 redirect to the login page that comes back here."""
    user = optional_user(request, db)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "login required", {"Location": f"/login?next={quote(target)}"})
    return user


def has_role(user: User, minimum: str) -> bool:
    return role_rank(user.role) >= role_rank(minimum)


def scope(user: User) -> list[str] | None:
    """Site ids the user may see as a sorted list (None = every site)."""
    sites = site_scope(user)
    return None if sites is None else sorted(sites)
