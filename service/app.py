"""`create_app(settings)`: the whole service as one FastAPI app (used by `serve`, tests, demo).

    app = create_app(load_settings("configs/service.yaml"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

On start-up the database is upgraded (Alembic), the event bus, alert hub and housekeeping loop
start. The dashboard (`service.web`) is mounted when that package provides `register(app)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError, OperationalError

from service.alerting import AlertsBridge
from service.api import api_router
from service.config import ConfigError, ServiceSettings
from service.db import Database
from service.deps import AppState
from service.events import make_bus
from service.http_guard import RequestGuard, SecurityHeaders
from service.ingest import IngestShortcut
from service.input_errors import database_refusal, error_detail
from service.metrics import ServiceMetrics
from service.retention import housekeeping_loop
from service.shared_security import RevocationWatch, SharedLoginLimiter
from service.storage import BlobStore, StorageUnavailable

if TYPE_CHECKING:
    from service.storage_s3 import S3BlobStore

log = logging.getLogger(__name__)


def build_state(settings: ServiceSettings) -> AppState:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    if settings.upgrade_db_on_start:
        db.upgrade()
    metrics = ServiceMetrics()
    metrics.watch_database(db.sessions)
    blobs = _blob_store(settings)
    return AppState(
        settings=settings,
        db=db,
        blobs=blobs,
        bus=make_bus(settings.event_bus, settings.db_url),
        metrics=metrics,
        limiter=SharedLoginLimiter(
            db,
            settings.login_max_failures,
            settings.login_window_s,
            settings.login_max_failures_per_address,
        ),
        alerts=AlertsBridge.from_config(
            settings.alerts_config, db=db, blobs=blobs, public_url=settings.public_url
        ),
    )


def _blob_store(settings: ServiceSettings) -> BlobStore | S3BlobStore:
    """The configured snapshot store; a bucket that rejects us stops the start-up, one that
    cannot be reached yet does not (ingest answers 503 and `/readyz` says not ready until then).
    """
    if settings.snapshot_store == "local":
        return BlobStore(settings.data_dir)
    try:
        from service.storage_s3 import S3BlobStore, S3ConfigError
    except ModuleNotFoundError as exc:
        raise ConfigError(str(exc)) from exc

    secret = settings.s3_secret_access_key
    store = S3BlobStore(
        settings.s3_bucket or "",
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        addressing_style=settings.s3_addressing_style,
        timeout_s=settings.s3_timeout_s,
    )
    try:
        store.check()
    except S3ConfigError as exc:
        raise ConfigError(f"snapshot_store s3: {exc}") from exc
    except StorageUnavailable as exc:
        log.warning("snapshot store not reachable yet, starting anyway: %s", exc)
    return store


def create_app(settings: ServiceSettings | None = None, *, housekeeping: bool = True) -> FastAPI:
    settings = settings or ServiceSettings()
    state = build_state(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.bus.start()
        revocations = RevocationWatch(state.db, [state.keys, state.cameras])
        revocations.start()
        state.alerts.start()
        task = asyncio.create_task(housekeeping_loop(state)) if housekeeping else None
        # Move everything built at start-up out of the collector's sight: a full collection
        # would walk these ~10^5 long-lived objects (tens of ms, all threads stopped: the
        # ingest latency tail) though none of them is ever garbage.
        gc.collect()
        gc.freeze()
        log.info(
            "service ready: db=%s data_dir=%s", settings.db_url.split("@")[-1], settings.data_dir
        )
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(state.ingest.stop)  # commit what is queued, then stop
            state.hashing.shutdown()
            state.alerts.stop()
            revocations.stop()
            await state.bus.stop()
            state.db.dispose()

    app = FastAPI(
        title="SiteGuard",
        version="1",
        description="PPE-compliance monitoring service. Detector contract: docs/contract.md.",
        lifespan=lifespan,
    )
    app.state.siteguard = state
    # Outermost last: headers on every answer, then sizes and credentials before any body is
    # read (service/http_guard.py), then the ingest hot path.
    app.add_middleware(IngestShortcut, state=state)
    app.add_middleware(RequestGuard, state=state)
    app.add_middleware(SecurityHeaders, hsts=settings.cookie_secure)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: Exception) -> JSONResponse:
        refusal = database_refusal(exc)
        if refusal is not None:  # the request's own values, not the database, are at fault
            log.warning("database refused %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse({"detail": refusal.detail}, refusal.status_code)
        state.metrics.db_errors.labels("request").inc()
        log.error("database error on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "database unavailable; retry later"}, 503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each input, and a NaN or infinity in it made the 422
        # itself fail (500): inputs are echoed as JSON-safe scalars only.
        return JSONResponse({"detail": error_detail(exc.errors())}, 422)

    @app.exception_handler(StorageUnavailable)
    async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
        # 503 is retryable: the detector keeps the event in its outbox and sends it again.
        log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"{exc}; retry later"}, 503)

    app.include_router(api_router)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    async def healthz() -> str:
        """Liveness: the process answers (on the event loop: needs no free worker thread)."""
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse, tags=["health"], responses={503: {}})
    def readyz() -> Response:
        """Readiness: the database answers and the data dir is writable."""
        ok = state.db.ping() and state.blobs.writable()
        return PlainTextResponse("ready" if ok else "not ready", 200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    _mount_web(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` / several workers: YAML from $SITEGUARD_SERVICE_CONFIG."""
    import os

    from service.config import load_settings

    return create_app(load_settings(os.environ.get("SITEGUARD_SERVICE_CONFIG")))


def _mount_web(app: FastAPI) -> None:
    try:
        web = importlib.import_module("service.web")
    except ModuleNotFoundError:
        return
    register: Callable[[FastAPI], Awaitable[None] | None] | None = getattr(web, "register", None)
    if register is not None:
        register(app)
