"""`/api/v1`: one router module per resource, joined here."""

from __future__ import annotations

from fastapi import APIRouter

from service.api import (
    admin,
    alert_outbox,
    audit_frames,
    auth,
    detectors,
    events,
    heartbeats,
    model_versions,
    samples,
    shadow,
    stats,
    violations,
)

api_router = APIRouter(prefix="/api/v1")
for module in (
    auth,
    violations,
    audit_frames,
    heartbeats,
    detectors,
    stats,
    model_versions,
    samples,
    shadow,
    admin,
    alert_outbox,
    events,
):
    api_router.include_router(module.router)

__all__ = ["api_router"]
