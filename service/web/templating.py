"""Jinja2 environment and the per-request page context (language, time zone, user, CSRF).

return render(request, "alerts.html", user, nav="alerts", violations=rows)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from service.web.i18n import LANG_COOKIE, LANGUAGES, negotiate_language, translator

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
TZ_COOKIE = "sg_tz"
ROLE_RANK = {"viewer": 0, "manager": 1, "trainer": 2, "admin": 3}

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


@lru_cache(maxsize=256)
def _static_version(path: str) -> str:
    """A short content hash, so browsers cache assets forever yet see every change."""
    try:
        return hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def static_url(path: str) -> str:
    return f"/static/{path}?v={_static_version(path)}"


@lru_cache(maxsize=512)
def _zone(name: str) -> dt.tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def request_tz(request: Request) -> tuple[str, dt.tzinfo]:
    """The viewer's time zone: the browser's (cookie set by common.js), else UTC."""
    name = unquote(request.cookies.get(TZ_COOKIE, ""))
    zone = _zone(name) if name and len(name) < 64 else None
    return (name, zone) if zone is not None else ("UTC", dt.UTC)


def request_lang(request: Request) -> str:
    return negotiate_language(
        request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
    )


def _fmt_dt(value: dt.datetime | None, tz: dt.tzinfo) -> str:
    """The time in the viewer's zone; total: a stored time the zone would push out of Python's
    date range (year 1 or 9999) shows as UTC instead of failing the page."""
    if value is None:
        return "—"
    try:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        try:
            return value.strftime("%Y-%m-%d %H:%M:%S ") + (value.tzname() or "")
        except (OverflowError, ValueError, OSError):
            return value.isoformat()


def _ago(value: dt.datetime | None, lang: str) -> str:
    if value is None:
        return ""
    try:
        seconds = int((dt.datetime.now(dt.UTC) - value).total_seconds())
    except (OverflowError, ValueError, TypeError):
        return ""
    zh = lang == "zh"
    if seconds < 60:
        return "刚刚" if zh else "just now"
    for unit_s, en, cn in ((86400, "d", "天"), (3600, "h", "小时"), (60, "min", "分钟")):
        if seconds >= unit_s:
            n = seconds // unit_s
            return f"{n} {cn}前" if zh else f"{n} {en} ago"
    return ""


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


def fmt_pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


@pass_context
def _dt_filter(ctx: Any, value: dt.datetime | None) -> str:
    return _fmt_dt(value, ctx.get("tzinfo") or dt.UTC)


@pass_context
def _ago_filter(ctx: Any, value: dt.datetime | None) -> str:
    return _ago(value, ctx.get("lang", "en"))


@pass_context
def _zone_filter(ctx: Any, value: str | None) -> str:
    """A zone's name; the detector's name for "outside every zone" (`site`) in words."""
    if not value:
        return "—"
    return ctx["t"]("zone.site") if value == "site" else value


@pass_context
def _class_filter(ctx: Any, value: str | None) -> str:
    """A model class as people read it (`head` -> "Head (no helmet)"); unknown ones as they are."""
    name = str(value or "")
    label = ctx["t"](f"class.{name}")
    return name if label == f"class.{name}" else label


templates.env.filters["dt"] = _dt_filter
templates.env.filters["zone"] = _zone_filter
templates.env.filters["cls"] = _class_filter
templates.env.filters["ago"] = _ago_filter
templates.env.filters["dur"] = fmt_duration
templates.env.filters["pct"] = fmt_pct
templates.env.globals["static"] = static_url
templates.env.globals["languages"] = LANGUAGES


def render(
    request: Request,
    name: str,
    user: Any | None,
    *,
    nav: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the shared context every template expects."""
    lang = request_lang(request)
    tz_name, tz = request_tz(request)
    rank = ROLE_RANK.get(getattr(user, "role", "viewer"), 0)
    ctx: dict[str, Any] = {
        "request": request,
        "t": translator(lang),
        "lang": lang,
        "tz": tz_name,
        "user": user,
        "nav": nav,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "nav_items": [
            ("alerts", "/alerts", True),
            ("cameras", "/cameras", True),
            ("models", "/models", True),
            ("reports", "/reports", True),
            ("admin", "/admin", rank >= ROLE_RANK["admin"]),
        ],
        "can_review": rank >= ROLE_RANK["manager"],
        "tzinfo": tz,
        **context,
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
