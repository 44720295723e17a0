"""Server-sent events: new violations, ends, reviews and camera changes of the user's sites.

A stream outlives nothing it was opened with (issue 18): the session or token is checked again
before every batch of events is sent (at most every `MIN_CHECK_GAP_S`, events arriving meanwhile
wait for that check) and every `sse_recheck_s` (5 s) when no event comes. A stream whose session
ended (logout, expiry, "log out everywhere", a password change), whose user was disabled or whose
token was revoked sends `event: revoked` and ends; a site taken from the user stops its events at
once. The check runs on a worker thread (one indexed lookup), never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.deps import AppState, get_db, get_state
from service.models import User
from service.security import Credentials, require_role, resolve_user, site_scope

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0
MIN_CHECK_GAP_S = 0.2


class _Revoked(Exception):
    """The stream's credential no longer holds."""


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 401: {}},
)
def stream_events(
    request: Request,
    user: User = Depends(require_role("viewer")),
    db: Session = Depends(get_db),
    state: AppState = Depends(get_state),
) -> StreamingResponse:
    """`event: <type>` / `data: {"type", "site_id", "data"}`; a comment every 15 s keeps it open;
    `event: revoked` and the end when the session or token no longer holds."""
    scope = site_scope(user)
    db.close()  # do not hold a pooled connection for the life of the stream
    return StreamingResponse(
        _events(request, state, Credentials.of(request), scope),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _access(state: AppState, creds: Credentials) -> set[str] | None:
    """The user's sites now (None = all); _Revoked when the credential no longer holds."""
    with state.db.sessions() as db:
        user, _reason, _via, _session = resolve_user(db, creds)
        if user is None:
            raise _Revoked
        return site_scope(user)


async def _events(
    request: Request, state: AppState, creds: Credentials, scope: set[str] | None
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    recheck_s = state.settings.sse_recheck_s
    state.metrics.sse_clients.inc()
    try:
        with state.bus.subscribe() as sub:
            yield ": connected\n\n"
            checked = sent = loop.time()
            while not await request.is_disconnected():
                wait = min(sent + KEEPALIVE_S, checked + recheck_s) - loop.time()
                first = await sub.get(timeout=max(0.0, wait))
                batch = [] if first is None else [first, *sub.drain()]
                if batch or loop.time() - checked >= recheck_s:
                    gap = MIN_CHECK_GAP_S - (loop.time() - checked)
                    if batch and gap > 0:  # events wait for the next check, never skip it
                        await asyncio.sleep(gap)
                        batch.extend(sub.drain())
                    try:
                        scope = await run_in_threadpool(_access, state, creds)
                    except _Revoked:
                        yield "event: revoked\ndata: {}\n\n"
                        return
                    except Exception:  # noqa: BLE001 - cannot check: end it, the client retries
                        log.warning("live stream: access check failed; closing", exc_info=True)
                        return
                    checked = loop.time()
                for event in batch:
                    if scope is not None and event.site_id not in scope:
                        continue
                    payload = json.dumps(
                        {"type": event.type, "site_id": event.site_id, "data": event.data}
                    )
                    yield f"event: {event.type}\ndata: {payload}\n\n"
                    sent = loop.time()
                if loop.time() - sent >= KEEPALIVE_S:
                    yield ": keep-alive\n\n"
                    sent = loop.time()
    finally:
        state.metrics.sse_clients.dec()
