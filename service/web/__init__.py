"""The web dashboard: server-rendered pages (Jinja2) plus a little vanilla JS, all served locally.

The backend's `create_app` calls `register(app)`, which is the same as::

    app.include_router(web.router)
    web.mount_static(app)

Pages read the database directly (scoped to the user's sites, see `queries`); every change
(reviews, admin edits) goes through the JSON API under `/api/v1`, which validates, checks CSRF
and writes the audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from service.web.routes import admin, alerts, auth, cameras, models, reports, samples
from service.web.templating import STATIC_DIR

router = APIRouter(include_in_schema=False)
for _module in (auth, alerts, cameras, models, samples, reports, admin):
    router.include_router(_module.router)


class _CachedStatic(StaticFiles):
    """Static files cached for a year: URLs carry a content hash (`templating.static_url`)."""

    async def get_response(self, path, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def mount_static(app: FastAPI) -> None:
    """Serve `service/web/static` at /static (CSS, JS, icons; no CDN anywhere)."""
    app.mount("/static", _CachedStatic(directory=str(STATIC_DIR)), name="static")


def register(app: FastAPI) -> None:
    """Add the dashboard pages and their static assets to the service app."""
    app.include_router(router)
    mount_static(app)


__all__ = ["mount_static", "register", "router"]
