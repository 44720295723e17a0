"""Server-sent events: new violations, ends, reviews and camera changes of the user's sites."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from service.deps import AppState, get_db, get_state
from service.models import User
from service.security import require_role, site_scope

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0


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
    """`event: <type>` / `data: {"type", "site_id", "data"}`; a comment every 15 s keeps it open."""
    scope = site_scope(user)
    db.close()  # do not hold a pooled connection for the life of the stream
    return StreamingResponse(
        _events(request, state, scope),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, state: AppState, scope: set[str] | None) -> AsyncIterator[str]:
    state.metrics.sse_clients.inc()
    try:
        with state.bus.subscribe() as sub:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                event = await sub.get(timeout=KEEPALIVE_S)
                if event is None:
                    yield ": keep-alive\n\n"
                    continue
                if scope is not None and event.site_id not in scope:
                    continue
                payload = json.dumps(
                    {"type": event.type, "site_id": event.site_id, "data": event.data}
                )
                yield f"event: {event.type}\ndata: {payload}\n\n"
    finally:
        state.metrics.sse_clients.dec()
