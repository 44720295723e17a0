"""Two pure-ASGI middlewares every request passes: `RequestGuard` and `SecurityHeaders`.

`RequestGuard` (issue 18, item 1): a request body is never buffered beyond its route's limit,
whatever the transfer encoding, and a write to a route that needs credentials is refused before
its body is read:

- limits: login 64 KiB; `max_json_bytes` (1 MiB) for JSON and plain forms; uploads
  (`multipart/form-data`, e.g. a detector's snapshot and frame; the shadow reports) twice
  `max_snapshot_bytes` + 1 MiB; `POST /api/v1/models` twice `max_model_bytes` + 1 MiB (the ONNX
  and its .pt). A declared `Content-Length` over the limit is answered 413 at once; a chunked
  (or lying) body is counted as it streams in and answered 413 the moment it passes the limit.
  Either way the connection is closed (`Connection: close`), so nothing more is read.
- credentials: an unsafe request with a body (POST, PUT, PATCH, DELETE) to anything but the
  login routes must carry a credential that is valid now (a detector key, a user token or a
  session cookie, of any kind: the route still checks that it is the right kind), else 401
  before one byte of the body is read. A detector key is looked up in the same cache as ingest.

`SecurityHeaders` (item 5): a strict Content-Security-Policy (the panel loads only its own
scripts, styles and images; no inline script; only style attributes are allowed inline), no
framing (`frame-ancestors 'none'`, `X-Frame-Options: DENY`), `nosniff`, a same-origin referrer
and opener policy; HSTS when `cookie_secure` says the service is served over HTTPS. FastAPI's
/docs and /redoc pages load Swagger UI / ReDoc from a CDN with an inline script, so they get a
policy that allows exactly that.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse

from service.deps import AppState
from service.security import (
    SAFE_METHODS,
    SESSION_COOKIE,
    Credentials,
    lookup_detector_key,
    resolve_user,
    token_hash,
)

PUBLIC_WRITES = frozenset({"/api/v1/auth/login", "/login"})
LOGIN_BODY_BYTES = 64 * 1024
MODEL_UPLOAD = ("POST", "/api/v1/models")
LARGE_JSON = frozenset({"/api/v1/shadow"})  # batches of up to 500 disagreements with boxes


class BodyTooLarge(HTTPException):
    """The body passed its route's limit while streaming in: 413, connection closed."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", {"Connection": "close"})


class RequestGuard:
    """Per-route body limits enforced while streaming; credentials checked before the body."""

    def __init__(self, app: Any, state: AppState) -> None:
        self.app = app
        self.state = state
        settings = state.settings
        self.json_limit = settings.max_json_bytes
        self.upload_limit = 2 * settings.max_snapshot_bytes + (1 << 20)
        self.model_limit = 2 * settings.max_model_bytes + (1 << 20)

    def limit(self, method: str, path: str, content_type: bytes) -> int:
        if path in PUBLIC_WRITES:
            return LOGIN_BODY_BYTES
        if (method, path) == MODEL_UPLOAD:
            return self.model_limit
        if content_type.startswith(b"multipart/form-data") or path in LARGE_JSON:
            return self.upload_limit
        return self.json_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        length: int | None = None
        chunked = False
        content_type = b""
        api_key = authorization = cookie = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value.lower()
            elif name == b"x-api-key":
                api_key = value
            elif name == b"authorization":
                authorization = value
            elif name == b"cookie":
                cookie = value
        limit = self.limit(method, path, content_type)
        if length is not None and length > limit:
            await _refuse(scope, receive, send, 413, f"request body larger than {limit} bytes")
            return
        if not chunked and not length:
            await self.app(scope, receive, send)
            return
        if method not in SAFE_METHODS and path not in PUBLIC_WRITES:
            problem = await self.authenticate(api_key, authorization, cookie)
            if problem is not None:
                headers = {"WWW-Authenticate": "Bearer"}
                await _refuse(scope, receive, send, 401, problem, headers)
                return
        await self._guarded(scope, receive, send, limit)

    async def _guarded(self, scope: dict[str, Any], receive: Any, send: Any, limit: int) -> None:
        received = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(scope, receive, send, 413, str(exc.detail))

    async def authenticate(
        self, api_key: bytes | None, authorization: bytes | None, cookie: bytes | None
    ) -> str | None:
        """None when one of the credentials is valid now; else what is wrong."""
        state = self.state
        if api_key:
            secret = api_key.decode("latin-1")
            if state.keys.get(token_hash(secret)) is not None:
                return None
            if await run_in_threadpool(lookup_detector_key, state, secret) is not None:
                return None
            if authorization is None and cookie is None:
                return "invalid or revoked API key"
        bearer = None
        if authorization and authorization[:7].lower() == b"bearer ":
            bearer = authorization[7:].decode("latin-1").strip()
        session = cookie_parser(cookie.decode("latin-1")).get(SESSION_COOKIE) if cookie else None
        if bearer is None and not session:
            return "not logged in (no API key, token or session)"
        return await run_in_threadpool(self._user_problem, Credentials(bearer, session or None))

    def _user_problem(self, creds: Credentials) -> str | None:
        with self.state.db.sessions() as db:
            user, reason, _via, _session = resolve_user(db, creds)
        return None if user is not None else reason


async def _refuse(
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = JSONResponse({"detail": detail}, status, {**(headers or {}), "Connection": "close"})
    await response(scope, receive, send)


# --- security headers -------------------------------------------------------------------------

PANEL_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "font-src 'self' https://fonts.gstatic.com",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


def _headers(csp: str, hsts: bool) -> list[tuple[bytes, bytes]]:
    pairs = [
        ("content-security-policy", csp),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if hsts:
        pairs.append(("strict-transport-security", "max-age=31536000"))
    return [(name.encode(), value.encode()) for name, value in pairs]


class SecurityHeaders:
    """Adds the security headers to every response that does not set them itself."""

    def __init__(self, app: Any, *, hsts: bool = False) -> None:
        self.app = app
        self.panel = _headers(PANEL_CSP, hsts)
        self.docs = _headers(DOCS_CSP, hsts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.docs if scope["path"] in DOCS_PATHS else self.panel

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in extra if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
