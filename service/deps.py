"""What every request handler can ask for: the app state and a database session.

@router.get("/x")
def handler(db: Session = Depends(get_db), state: AppState = Depends(get_state)): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.orm import Session

from service.cache import TTLCache

if TYPE_CHECKING:
    from service.alerting import AlertsBridge
    from service.config import ServiceSettings
    from service.db import Database
    from service.events import EventBus
    from service.ingest import GroupCommitter
    from service.metrics import ServiceMetrics
    from service.security import HashPool, LoginLimiter
    from service.storage import BlobStore
    from service.storage_s3 import S3BlobStore


@dataclass
class AppState:
    """Long-lived parts of one running service, built by `create_app`."""

    settings: ServiceSettings
    db: Database
    blobs: BlobStore | S3BlobStore
    bus: EventBus
    metrics: ServiceMetrics
    limiter: LoginLimiter
    alerts: AlertsBridge
    keys: TTLCache = field(default_factory=TTLCache)  # detector key hash -> DetectorKey
    cameras: TTLCache = field(default_factory=TTLCache)  # camera id -> site id
    extra: dict[str, Any] = field(default_factory=dict)
    ingest: GroupCommitter = field(init=False)  # set in __post_init__ (it needs the state)
    hashing: HashPool = field(init=False)  # password hashes, a few at a time (logins)
    trusted_proxies: list[Any] = field(init=False)  # parsed settings.trusted_proxies

    def __post_init__(self) -> None:
        from service.ingest import GroupCommitter
        from service.security import HashPool, parse_networks

        self.ingest = GroupCommitter(self)
        self.hashing = HashPool(self.settings.login_hash_concurrency, self.settings.login_queue_max)
        self.trusted_proxies = parse_networks(self.settings.trusted_proxies)


async def get_state(request: Request) -> AppState:
    return request.app.state.siteguard


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session per request; closed (and any open transaction rolled back) afterwards.

    Async so FastAPI does not hop to a worker thread to open and close it: creating a session
    does no I/O, and closing one only returns a pooled connection.
    """
    state: AppState = request.app.state.siteguard
    with state.db.sessions() as session:
        yield session
