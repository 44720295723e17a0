"""What every request handler can ask for: the app state and a database session.

@router.get("/x")
def handler(db: Session = Depends(get_db), state: AppState = Depends(get_state)): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from service.alerting import AlertsBridge
    from service.config import ServiceSettings
    from service.db import Database
    from service.events import EventBus
    from service.metrics import ServiceMetrics
    from service.security import LoginLimiter
    from service.storage import BlobStore


@dataclass
class AppState:
    """Long-lived parts of one running service, built by `create_app`."""

    settings: ServiceSettings
    db: Database
    blobs: BlobStore
    bus: EventBus
    metrics: ServiceMetrics
    limiter: LoginLimiter
    alerts: AlertsBridge
    extra: dict[str, Any] = field(default_factory=dict)


def get_state(request: Request) -> AppState:
    return request.app.state.siteguard


def get_db(request: Request) -> Iterator[Session]:
    """A session per request; closed (and any open transaction rolled back) afterwards."""
    state: AppState = request.app.state.siteguard
    with state.db.sessions() as session:
        yield session
