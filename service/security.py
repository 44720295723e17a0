"""Authentication and authorisation.

Dependencies for routers and the dashboard (all raise `HTTPException`, so JSON routes get a clear
401/403/429 and web pages can catch them or use `optional_user`):

- `current_user` -> `User`: from the `siteguard_session` cookie (web UI) or an
  `Authorization: Bearer <user token>` header (automation such as `training/`). 401 when missing,
  unknown, expired or inactive.
- `optional_user` -> `User | None`: the same, but None instead of 401 (login page, redirects).
- `csrf_protect` -> `User`: `current_user` plus, for unsafe methods on a cookie session, a CSRF
  check: header `X-CSRF-Token` or form field `csrf_token` must equal the session's token
  (available as `request.state.csrf_token`, also returned by `/api/v1/auth/login` and `/auth/me`).
- `require_role("manager")` -> `User`: `csrf_protect` plus a minimum role. Roles are ranked
  viewer < manager < trainer < admin (manager reviews, trainer also manages models and samples,
  admin administers users, sites and keys and sees every site).
- `detector_key` -> `DetectorKey`: an `X-API-Key` detector key (bound to one site); 401 otherwise.
- `site_scope(user)` -> set of site ids or None (= all sites, admins); `check_site(user, site_id)`
  raises 403 when a user may not see a site.

Helpers: `hash_password` / `verify_password` (argon2id), `login(...)` / `logout(...)` start and
end a session and set/clear the cookie, `new_api_key(...)` makes a key (shown once; stored as
sha256 — keys are 256-bit random, so a fast hash is safe and keeps ingest fast), `audit(...)`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.deps import AppState, get_db
from service.models import ROLES, ApiKey, AuditEntry, User, UserSession, utcnow

SESSION_COOKIE = "siteguard_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_hasher = PasswordHasher()


# --- passwords --------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = hash_password(secrets.token_hex(8))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- login rate limiting ----------------------------------------------------------------------


class LoginLimiter:
    """At most `max_failures` failed logins per (client address, username) per `window_s`.

    In-process: each replica counts on its own (a replica behind a load balancer allows
    `max_failures` x replicas); argon2 makes each guess cost ~50 ms of CPU anyway.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures >= 1 and window_s > 0 required")
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, username: str) -> float:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        now = time.monotonic()
        with self._lock:
            hits = self._failures.get((client, username.lower()))
            if not hits:
                return 0.0
            while hits and now - hits[0] > self.window_s:
                hits.popleft()
            if len(hits) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (now - hits[0]))

    def failed(self, client: str, username: str) -> None:
        with self._lock:
            key = (client, username.lower())
            self._failures.setdefault(key, deque()).append(time.monotonic())
            if len(self._failures) > 10_000:  # bound memory under a spray of usernames
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str, username: str) -> None:
        with self._lock:
            self._failures.pop((client, username.lower()), None)


# --- sessions ---------------------------------------------------------------------------------


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login(
    request: Request, response: Response, db: Session, state: AppState, username: str, password: str
) -> UserSession:
    """Check credentials (rate limited), start a session, set the cookie. 401 / 429 on failure."""
    ip = client_ip(request)
    wait = state.limiter.retry_after(ip, username)
    if wait > 0:
        raise HTTPException(
            429, "too many failed logins; try again later", {"Retry-After": str(int(wait) + 1)}
        )
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH, password)  # same cost whether or not the user exists
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        state.limiter.failed(ip, username)
        with state.db.writing(db):
            audit(db, request, username[:100], "login.failed", user=None)
        raise HTTPException(401, "invalid username or password")
    state.limiter.succeeded(ip, username)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with state.db.writing(db):
        db.execute(delete(UserSession).where(UserSession.expires_at < now))
        session = UserSession(
            token_hash=token_hash(token),
            csrf_token=secrets.token_urlsafe(24),
            user_id=user.id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=state.settings.session_max_age_s),
        )
        db.add(session)
        audit(db, request, user.username, "login", user=user)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=state.settings.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=state.settings.cookie_secure,
        path="/",
    )
    return session


def logout(request: Request, response: Response, db: Session, state: AppState) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with state.db.writing(db):
            db.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))
    response.delete_cookie(SESSION_COOKIE, path="/")


def _user_from_request(request: Request, db: Session) -> tuple[User | None, str]:
    """(user, reason); reason explains a None."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        key = db.scalar(select(ApiKey).where(ApiKey.key_hash == token_hash(auth[7:].strip())))
        if key is None or key.revoked_at is not None or key.user is None:
            return None, "invalid token"
        if not key.user.is_active:
            return None, "user disabled"
        request.state.auth_via = "token"
        return key.user, ""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, "not logged in"
    session = db.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
    if session is None:
        return None, "session not found; log in again"
    if session.expires_at <= utcnow():
        return None, "session expired; log in again"
    if not session.user.is_active:
        return None, "user disabled"
    request.state.auth_via = "session"
    request.state.csrf_token = session.csrf_token
    return session.user, ""


def current_user(request: Request, db: Session = Depends(get_db)) -> User:
    user, reason = _user_from_request(request, db)
    if user is None:
        raise HTTPException(401, reason, {"WWW-Authenticate": "Bearer"})
    request.state.user = user
    return user


def optional_user(request: Request, db: Session = Depends(get_db)) -> User | None:
    user, _ = _user_from_request(request, db)
    request.state.user = user
    return user


async def csrf_protect(request: Request, user: User = Depends(current_user)) -> User:
    if request.method in SAFE_METHODS or getattr(request.state, "auth_via", "") != "session":
        return user
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, request.state.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token")
    return user


def role_rank(role: str) -> int:
    return ROLES.index(role)


def require_role(minimum: str) -> Any:
    """A dependency: the current user (CSRF-checked) with at least role `minimum`, else 403."""
    if minimum not in ROLES:
        raise ValueError(f"unknown role {minimum!r}; expected one of {ROLES}")

    async def dependency(user: User = Depends(csrf_protect)) -> User:
        if role_rank(user.role) < role_rank(minimum):
            raise HTTPException(403, f"needs role {minimum} or higher")
        return user

    dependency.__name__ = f"require_{minimum}"
    return dependency


def site_scope(user: User) -> set[str] | None:
    """Site ids the user may see; None means every site (admins)."""
    if user.role == "admin":
        return None
    return {site.id for site in user.sites}


def can_see_site(user: User, site_id: str) -> bool:
    scope = site_scope(user)
    return scope is None or site_id in scope


def check_site(user: User, site_id: str) -> None:
    if not can_see_site(user, site_id):
        raise HTTPException(403, f"no access to site {site_id!r}")


# --- API keys ---------------------------------------------------------------------------------


def new_api_key(
    db: Session, name: str, *, site_id: str | None = None, user_id: int | None = None
) -> tuple[ApiKey, str]:
    """Create a detector key (`site_id`) or a user token (`user_id`); returns (row, secret)."""
    if (site_id is None) == (user_id is None):
        raise ValueError("give exactly one of site_id or user_id")
    secret = "sg_" + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name, prefix=secret[:10], key_hash=token_hash(secret), site_id=site_id, user_id=user_id
    )
    db.add(key)
    return key, secret


@dataclass(frozen=True)
class DetectorKey:
    """A valid detector key: which key (for logs and audit) and the one site it may post to."""

    id: int
    name: str
    site_id: str


def lookup_detector_key(state: AppState, secret: str) -> DetectorKey | None:
    """The key for `secret`, or None; cached `state.keys.ttl_s` (cleared on revocation)."""
    digest = token_hash(secret)
    hit = state.keys.get(digest)
    if hit is not None:
        return hit
    with state.db.sessions() as db:
        key = db.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        if key is None or key.revoked_at is not None or key.site_id is None:
            return None
        found = DetectorKey(id=key.id, name=key.name, site_id=key.site_id)
    state.keys.put(digest, found)
    return found


async def detector_key(request: Request) -> DetectorKey:
    """Dependency: the `X-API-Key` detector key, else 401. Async: a cache hit costs no thread."""
    secret = request.headers.get("x-api-key")
    if not secret:
        raise HTTPException(401, "missing X-API-Key header")
    key = lookup_detector_key(request.app.state.siteguard, secret)
    if key is None:
        raise HTTPException(401, "invalid or revoked API key")
    return key


# --- audit ------------------------------------------------------------------------------------


def audit(
    db: Session,
    request: Request | None,
    actor: str,
    action: str,
    *,
    user: User | None = None,
    site_id: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the current transaction (the caller commits)."""
    db.add(
        AuditEntry(
            actor=actor,
            user_id=user.id if user else None,
            action=action,
            site_id=site_id,
            target=target,
            detail=detail or {},
            ip=client_ip(request) if request is not None else None,
        )
    )
