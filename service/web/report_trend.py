"""The compliance trend on the Reports page (issue 19): violations per day (or ISO week) for
each site, camera, zone or kind, false alarms left out, so a line going down is a site getting
safer. One aggregate query (local day x group x status), like the report table's.

    >>> trend = compliance_trend(db, site_ids, tz=tz, group="site", days=14)
    >>> trend.labels, [(s.label, s.values) for s in trend.series]
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Camera, Site, Violation
from service.web.charts import Series
from service.web.queries import _period_label, _scope, local_day

MAX_LINES = 6  # more lines than this is no longer "at a glance": the busiest groups are drawn
MAX_DAILY_POINTS = 62  # a longer window is drawn by ISO week


@dataclass(frozen=True)
class Trend:
    labels: list[str]
    series: list[Series] = field(default_factory=list)
    period: str = "daily"
    left_out: int = 0  # groups beyond MAX_LINES (quieter ones), not drawn


def compliance_trend(
    session: Session,
    site_ids: Sequence[str] | None,
    *,
    tz: dt.tzinfo,
    group: str,
    days: int,
    site: str | None = None,
    today: dt.date | None = None,
) -> Trend:
    """Violations that were not false alarms, per period, for the busiest groups."""
    today = today or dt.datetime.now(tz).date()
    days = max(days, 7)  # a trend needs a week at least
    first = today - dt.timedelta(days=days - 1)
    period = "daily" if days <= MAX_DAILY_POINTS else "weekly"
    group_col = {
        "site": Site.name,
        "camera": Camera.name,
        "zone": Violation.zone,
        "kind": Violation.kind,
    }[group]
    since = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    # Up to the end of today: a future-dated row (9999-12-31) has no local day to convert to.
    until = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    day = local_day(session, tz).label("day")
    stmt = (
        select(day, group_col, func.count())
        .join(Site, Site.id == Violation.site_id)
        .join(Camera, Camera.id == Violation.camera_id)
        .where(Violation.started_at >= since, Violation.started_at < until)
        .where(Violation.status != "false_alarm")
        .group_by(day, group_col)
    )
    stmt = _scope(stmt, site_ids)
    if site:
        stmt = stmt.where(Violation.site_id == site)
    all_days = [first + dt.timedelta(days=i) for i in range(days)]
    keys = list(dict.fromkeys(_period_label(d, period) for d in all_days))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for raw_day, key, count in session.execute(stmt):
        if raw_day is None:
            continue
        when = raw_day if isinstance(raw_day, dt.date) else dt.date.fromisoformat(str(raw_day))
        if first <= when <= today:
            counts[str(key)][_period_label(when, period)] += int(count)
    busiest = sorted(counts, key=lambda k: (-sum(counts[k].values()), k))
    series = [Series(key, [counts[key][k] for k in keys]) for key in busiest[:MAX_LINES]]
    return Trend([_short(k) for k in keys], series, period, max(0, len(busiest) - MAX_LINES))


def _short(key: str) -> str:
    """An axis label: 2026-12-02 -> 12-02, 2026-W49 -> W49."""
    return key.split("-", 1)[1] if key[:4].isdigit() and "-" in key else key
