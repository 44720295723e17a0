"""Jinja2 templates per channel type, text format and language (alerts/templates/).

Lookup order for message kind ``K`` in language ``L`` on a channel of type ``T`` with format
``F`` (``markdown``, ``text`` or ``subject``), first hit wins, the user's ``templates_dir``
before the bundled folder: ``T/K.F.L.j2``, ``F/K.L.j2``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from alerts.messages import Dispatch
from siteguard.kinds import KINDS

BUNDLED = Path(__file__).parent / "templates"

KIND_LABELS = {lang: {k.kind: k.names[lang] for k in KINDS} for lang in ("zh", "en")}
SEVERITY_LABELS = {
    "zh": {"low": "低", "medium": "中", "high": "高", "critical": "严重"},
    "en": {"low": "low", "medium": "medium", "high": "high", "critical": "critical"},
}
STATE_LABELS = {
    "zh": {"offline": "离线", "online": "恢复在线", "frozen": "画面冻结"},
    "en": {"offline": "offline", "online": "back online", "frozen": "frozen (no new frames)"},
}


class Templates:
    """Renders a Dispatch for one channel.

    >>> t = Templates(timezone="UTC")
    >>> from datetime import UTC
    >>> t.render(Dispatch(kind="test", created_at=datetime(2026, 1, 1, tzinfo=UTC)),
    ...          channel_type="webhook", fmt="text", language="en").startswith("SiteGuard")
    True
    """

    def __init__(self, *, timezone: str, user_dir: Path | None = None) -> None:
        dirs = [str(user_dir)] if user_dir else []
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*dirs, str(BUNDLED)]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._tz = ZoneInfo(timezone)
        self._env.filters["localtime"] = self._localtime

    def _localtime(self, value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return value.astimezone(self._tz).strftime(fmt)

    def render(self, dispatch: Dispatch, *, channel_type: str, fmt: str, language: str) -> str:
        names = [
            f"{channel_type}/{dispatch.kind}.{fmt}.{language}.j2",
            f"{fmt}/{dispatch.kind}.{language}.j2",
        ]
        template = self._env.select_template(names)
        return template.render(**context(dispatch, language)).strip()


def context(dispatch: Dispatch, language: str) -> dict[str, Any]:
    """The variables every template sees."""
    kinds = KIND_LABELS[language]
    first = dispatch.violations[0] if dispatch.violations else None
    cameras = sorted({f"{v.site_id}/{v.camera_id}" for v in dispatch.violations})
    return {
        "d": dispatch,
        "kind": dispatch.kind,
        "violations": dispatch.violations,
        "first": first,
        "last": dispatch.violations[-1] if dispatch.violations else None,
        "count": len(dispatch.violations),
        "cameras": cameras,
        "camera": dispatch.camera,
        "route": dispatch.route,
        "severity": dispatch.severity,
        "severity_label": SEVERITY_LABELS[language].get(dispatch.severity or "", ""),
        "kind_label": lambda k: kinds.get(k, k),
        "state_label": lambda s: STATE_LABELS[language].get(s, s),
        "escalated_after_min": dispatch.escalated_after_min,
        "recipients": dispatch.recipients,
        "created_at": dispatch.created_at,
        "extra": dispatch.extra,
    }
