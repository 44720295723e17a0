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
  raises 404 when a user may not see a site: the same answer as for an id that does not exist,
  so another site's ids cannot be probed (callers pass their own "unknown ..." message).

Helpers: `hash_password` / `verify_password` (argon2id), `login(...)` / `logout(...)` start and
end a session and set/clear the cookie, `new_api_key(...)` makes a key (shown once; stored as
sha256 — keys are 256-bit random, so a fast hash is safe and keeps ingest fast), `audit(...)`.

Logins (issue 18): a browser's cross-site login is refused (`Origin` / `Sec-Fetch-Site`, login
CSRF); failures are limited per address and user name and per address across names; password
hashes run on a small pool of low-priority threads (`HashPool`) with a bounded queue, so a login
flood cannot take the cores, threads or memory that ingest and `/healthz` need; an unknown or
disabled user costs the same hash as a wrong password. `client_ip` trusts `X-Forwarded-For`
only from the configured `trusted_proxies`. `revoke_sessions` ends every session of a user
(password change, disabling, "log out everywhere").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.deps import AppState, get_db
from service.models import ROLES, ApiKey, AuditEntry, User, UserSession, utcnow

SESSION_COOKIE = "siteguard_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_hasher = PasswordHasher()
log = logging.getLogger(__name__)


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
    """Failed logins per `window_s`: at most `max_failures` per (client address, user name), and
    `max_per_address` per address whatever the names (a spray of random names is refused too).

    In-process; the service uses `service.shared_security.SharedLoginLimiter`, which adds the
    counts of every replica (the database) to these. The hash pool bounds what the attempts
    that get through cost.
    """

    MAX_KEYS = 10_000  # bound memory under a spray of names or addresses

    def __init__(
        self, max_failures: int = 5, window_s: float = 300.0, max_per_address: int | None = None
    ) -> None:
        if max_failures < 1 or window_s <= 0 or (max_per_address or 1) < 1:
            raise ValueError("max_failures >= 1, max_per_address >= 1 and window_s > 0 required")
        self.max_failures = max_failures
        self.max_per_address = max_per_address or 4 * max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _wait(self, hits: deque[float] | None, limit: int, now: float) -> float:
        if not hits:
            return 0.0
        while hits and now - hits[0] > self.window_s:
            hits.popleft()
        if len(hits) < limit:
            return 0.0
        return max(0.0, self.window_s - (now - hits[-limit]))

    def retry_after(self, client: str, username: str) -> float:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        now = time.monotonic()
        with self._lock:
            pair_hits = self._failures.get((client, username.lower()))
            pair = self._wait(pair_hits, self.max_failures, now)
            address = self._wait(self._by_address.get(client), self.max_per_address, now)
            return max(pair, address)

    def failed(self, client: str, username: str) -> None:
        now = time.monotonic()
        with self._lock:
            tables: tuple[tuple[dict[Any, deque[float]], Any], ...] = (
                (self._failures, (client, username.lower())),
                (self._by_address, client),
            )
            for table, key in tables:
                table.setdefault(key, deque()).append(now)
                if len(table) > self.MAX_KEYS:
                    table.pop(next(iter(table)))

    def succeeded(self, client: str, username: str) -> None:
        """Forget the pair's failures (the address's stay: one valid account must not reset
        the limit for guesses at the others)."""
        with self._lock:
            self._failures.pop((client, username.lower()), None)


class LoginBusy(HTTPException):
    """More logins wait for a hashing slot than `login_queue_max`: 503, retry shortly."""

    def __init__(self) -> None:
        super().__init__(503, "too many logins in progress; retry shortly", {"Retry-After": "1"})


class HashPool:
    """Password verification on a few dedicated threads, below normal CPU priority.

    argon2id takes ~64 MiB and tens of ms of CPU per hash; run on the request threads, a burst of
    logins took every worker thread and core (and a gigabyte of memory) from ingest and
    `/healthz`. Here at most `concurrency` hashes run at once (default: half the cores, at least
    one), their threads are niced (Linux: per thread) so the event loop and the ingest writer
    win the CPU, and at most `queue_max` more logins wait, none longer than `max_wait_s`;
    beyond that a login answers 503 (retry shortly) without hashing.
    """

    NICE = 10

    def __init__(self, concurrency: int = 0, queue_max: int = 32, max_wait_s: float = 10.0) -> None:
        self.concurrency = concurrency or max(1, (os.cpu_count() or 2) // 2)
        self.queue_max = queue_max
        self.max_wait_s = max_wait_s
        self._executor = ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="password-hash", initializer=_lower_priority
        )
        self._pending = 0
        self._lock = threading.Lock()

    async def run(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` on a hashing thread; LoginBusy when too many are waiting already, or
        when this one waited `max_wait_s` for its turn (it is not run then)."""
        with self._lock:
            if self._pending >= self.concurrency + self.queue_max:
                raise LoginBusy()
            self._pending += 1
        queued = time.monotonic()

        def job() -> Any:
            try:
                if time.monotonic() - queued > self.max_wait_s:
                    return _BUSY
                return fn(*args)
            finally:
                self._done()

        future = self._executor.submit(job)
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancelled():  # the client left before its turn: the job never runs
                self._done()
            raise
        if result is _BUSY:
            raise LoginBusy()
        return result

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    @property
    def pending(self) -> int:
        return self._pending

    def full(self) -> bool:
        """Would `run` refuse now? (Checked first, so a refused login costs no database read.)"""
        return self._pending >= self.concurrency + self.queue_max

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_BUSY = object()


def _lower_priority() -> None:
    # Linux applies the nice value per thread (and to the threads libargon2 starts from it).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HashPool.NICE)


# --- sessions ---------------------------------------------------------------------------------


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def parse_networks(items: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _trusted(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_client(peer: str, forwarded_for: str | None, networks: Networks) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the right-most
    `X-Forwarded-For` hop that is not a trusted proxy (hops to its left are the client's word)."""
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop[:64]
    return hops[0][:64] if hops else peer


def client_ip(request: Request) -> str:
    """The address logins are limited and audited by (see `forwarded_client`)."""
    peer = request.client.host if request.client else "unknown"
    state = getattr(request.app.state, "siteguard", None) if "app" in request.scope else None
    networks = state.trusted_proxies if state is not None else ()
    return forwarded_client(peer, request.headers.get("x-forwarded-for"), networks)


def check_origin(request: Request, state: AppState) -> None:
    """403 for a login a browser sends from another site (login CSRF: it would sign the victim
    in to the attacker's account). Browsers name the page's origin on every POST (`Origin`, and
    `Sec-Fetch-Site`); clients that send neither are not browsers, so not a CSRF vector."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise HTTPException(403, "cross-site login refused")
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {_netloc("//" + request.headers.get("host", ""))}
    if state.settings.public_url:
        allowed.add(_netloc(state.settings.public_url))
    forwarded_host = request.headers.get("x-forwarded-host")
    peer = request.client.host if request.client else ""
    if forwarded_host and state.trusted_proxies and _trusted(peer, state.trusted_proxies):
        allowed.add(_netloc("//" + forwarded_host.split(",")[0].strip()))
    if origin == "null" or _netloc(origin) not in allowed - {""}:
        raise HTTPException(403, "cross-site login refused")


def _netloc(url: str) -> str:
    """host[:port] of a URL, lower case, without the scheme's default port."""
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


@dataclass(frozen=True)
class _Candidate:
    """What a login needs from the user row, read before hashing."""

    user_id: int | None
    password_hash: str
    is_active: bool


def _candidate(state: AppState, username: str) -> _Candidate:
    with state.db.sessions() as db:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            return _Candidate(None, _DUMMY_HASH, False)
        return _Candidate(user.id, user.password_hash, user.is_active)


def _throttled(wait: float) -> HTTPException:
    return HTTPException(
        429, "too many failed logins; try again later", {"Retry-After": str(int(wait) + 1)}
    )


async def login(
    request: Request, response: Response, state: AppState, username: str, password: str
) -> UserSession:
    """Check credentials (origin-checked, rate limited), start a session, set the cookie.

    401 (wrong), 403 (cross-site), 429 (too many failures), 503 (hashing queue full). Database
    work runs on the request threads, the hash on `state.hashing`; an unknown or disabled user
    costs the same hash as a wrong password, so timing tells nothing.
    """
    check_origin(request, state)
    ip = client_ip(request)
    # The limiter may ask the database (service/shared_security.py): off the event loop.
    wait = await run_in_threadpool(state.limiter.retry_after, ip, username)
    if wait > 0:
        raise _throttled(wait)
    if state.hashing.full():
        raise LoginBusy()
    candidate = await run_in_threadpool(_candidate, state, username)

    def verify() -> tuple[bool, float]:
        # Runs when a hashing slot is free: failures recorded meanwhile (a flood) count now.
        waiting = state.limiter.retry_after(ip, username)
        if waiting > 0:
            return False, waiting
        return verify_password(candidate.password_hash, password), 0.0

    matches, waiting = await state.hashing.run(verify)
    if waiting > 0:
        raise _throttled(waiting)
    if not matches or candidate.user_id is None or not candidate.is_active:
        await run_in_threadpool(state.limiter.failed, ip, username)
        await run_in_threadpool(_audit_failure, state, request, username)
        raise HTTPException(401, "invalid username or password")
    await run_in_threadpool(state.limiter.succeeded, ip, username)
    token = secrets.token_urlsafe(32)
    session = await run_in_threadpool(_start_session, state, request, candidate.user_id, token)
    if session is None:  # disabled or deleted between the check and now
        raise HTTPException(401, "invalid username or password")
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


def _audit_failure(state: AppState, request: Request, username: str) -> None:
    with state.db.sessions() as db, state.db.writing(db):
        audit(db, request, username[:100], "login.failed", user=None)


def _start_session(
    state: AppState, request: Request, user_id: int, token: str
) -> UserSession | None:
    now = utcnow()
    with state.db.sessions() as db, state.db.writing(db):
        user = db.get(User, user_id)
        if user is None or not user.is_active:
            return None
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
        db.flush()
        session.user = user
        _ = list(user.sites)  # loaded now: the caller reads them after the session closes
    return session


def revoke_sessions(db: Session, user_id: int) -> int:
    """End every session of a user (in the caller's transaction); returns how many."""
    return db.execute(delete(UserSession).where(UserSession.user_id == user_id)).rowcount or 0


def logout(
    request: Request,
    response: Response,
    db: Session,
    state: AppState,
    user: User | None = None,
    *,
    everywhere: bool = False,
) -> None:
    """End this session (or, `everywhere`, every session of the user), audited."""
    token = request.cookies.get(SESSION_COOKIE)
    with state.db.writing(db):
        ended = 0
        if everywhere and user is not None:
            ended = revoke_sessions(db, user.id)
        elif token:
            stmt = delete(UserSession).where(UserSession.token_hash == token_hash(token))
            ended = db.execute(stmt).rowcount or 0
        if user is not None:
            action = "logout.everywhere" if everywhere else "logout"
            audit(db, request, user.username, action, user=user, detail={"sessions": ended})
    response.delete_cookie(SESSION_COOKIE, path="/")


@dataclass(frozen=True)
class Credentials:
    """What a request presented: a bearer token or a session cookie (kept by long streams to
    check them again later)."""

    bearer: str | None = None
    session: str | None = None

    @classmethod
    def of(cls, request: Request) -> Credentials:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return cls(bearer=auth[7:].strip())
        return cls(session=request.cookies.get(SESSION_COOKIE) or None)


def resolve_user(
    db: Session, creds: Credentials
) -> tuple[User | None, str, str, UserSession | None]:
    """(user, reason a None, "token" | "session", the session row)."""
    if creds.bearer is not None:
        key = db.scalar(select(ApiKey).where(ApiKey.key_hash == token_hash(creds.bearer)))
        if key is None or key.revoked_at is not None or key.user is None:
            return None, "invalid token", "token", None
        if not key.user.is_active:
            return None, "user disabled", "token", None
        return key.user, "", "token", None
    if not creds.session:
        return None, "not logged in", "", None
    session = db.scalar(
        select(UserSession).where(UserSession.token_hash == token_hash(creds.session))
    )
    if session is None:
        return None, "session not found; log in again", "session", None
    if session.expires_at <= utcnow():
        return None, "session expired; log in again", "session", None
    if not session.user.is_active:
        return None, "user disabled", "session", None
    return session.user, "", "session", session


def _user_from_request(request: Request, db: Session) -> tuple[User | None, str]:
    """(user, reason); reason explains a None."""
    user, reason, via, session = resolve_user(db, Credentials.of(request))
    if user is None:
        return None, reason
    request.state.auth_via = via
    if session is not None:
        request.state.csrf_token = session.csrf_token
    return user, ""


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


def check_site(user: User, site_id: str, not_found: str | None = None) -> None:
    """404 when `user` may not see `site_id`, worded as the caller's "unknown ..." answer
    (`not_found`), so a row of another site cannot be told from one that does not exist."""
    if not can_see_site(user, site_id):
        raise HTTPException(404, not_found or f"unknown site {site_id!r}")


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
    """The key for `secret`, or None; cached `state.keys.ttl_s`, cleared on every replica on
    revocation (service/shared_security.py)."""
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
