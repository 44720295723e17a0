"""Read-side queries for the dashboard pages, always scoped to the sites a user may see.

Each function does one or two index-friendly queries (violations by `site_id, started_at`, status
by `ix_violations_status`), pages with LIMIT/OFFSET + 1 row instead of counting, and returns
plain dataclasses so templates never trigger lazy loads.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.field import audit_figures
from service.models import (
    AuditEntry,
    Camera,
    ModelVersion,
    Review,
    ShadowReport,
    Site,
    TrainingSample,
    User,
    Violation,
)
from service.schemas import AuditFigures
from service.web.alert_boxes import BoxView, box_views

PAGE_SIZE = 50


@dataclass(frozen=True)
class AlertFilters:
    """The alert list's filters, as parsed from the query string (times aware UTC)."""

    site: str | None = None
    camera: str | None = None
    kind: str | None = None
    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class AlertRow:
    event_id: str
    site_id: str
    site_name: str
    camera_id: str
    camera_name: str
    zone: str
    kind: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration_s: float | None
    confidence: float
    model_version: str | None
    status: str
    has_snapshot: bool
    snapshot_url: str | None
    reviewed_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The same shape the live stream sends, for the page's JavaScript."""
        return {
            "event_id": self.event_id,
            "site_id": self.site_id,
            "site_name": self.site_name,
            "camera_id": self.camera_id,
            "camera_name": self.camera_name,
            "zone": self.zone,
            "kind": self.kind,
            "started_at": self.started_at.isoformat(),
            "duration_s": self.duration_s,
            "confidence": self.confidence,
            "model_version": self.model_version,
            "status": self.status,
            "snapshot_url": self.snapshot_url,
        }


def snapshot_url(event_id: str) -> str:
    """Where the backend serves a violation's snapshot (site-checked and audited there)."""
    return f"/api/v1/violations/{event_id}/snapshot"


def _alert_row(
    v: Violation, site_name: str, camera_name: str, reviewed_by: str | None = None
) -> AlertRow:
    return AlertRow(
        event_id=v.event_id,
        site_id=v.site_id,
        site_name=site_name,
        camera_id=v.camera_id,
        camera_name=camera_name,
        zone=v.zone,
        kind=v.kind,
        started_at=v.started_at,
        ended_at=v.ended_at,
        duration_s=v.duration_s,
        confidence=v.confidence,
        model_version=v.model_version,
        status=v.status,
        has_snapshot=v.snapshot_sha256 is not None,
        snapshot_url=snapshot_url(v.event_id) if v.snapshot_sha256 else None,
        reviewed_by=reviewed_by,
    )


def visible_sites(session: Session, site_ids: Sequence[str] | None) -> list[Site]:
    """Sites by name; `site_ids=None` means every site (admin/trainer)."""
    stmt = select(Site).order_by(Site.name)
    if site_ids is not None:
        stmt = stmt.where(Site.id.in_(list(site_ids)))
    return list(session.scalars(stmt))


def visible_cameras(session: Session, site_ids: Sequence[str] | None) -> list[Camera]:
    stmt = select(Camera).order_by(Camera.site_id, Camera.name)
    if site_ids is not None:
        stmt = stmt.where(Camera.site_id.in_(list(site_ids)))
    return list(session.scalars(stmt))


def _scope(stmt: Any, site_ids: Sequence[str] | None) -> Any:
    return stmt if site_ids is None else stmt.where(Violation.site_id.in_(list(site_ids)))


def list_alerts(
    session: Session,
    site_ids: Sequence[str] | None,
    filters: AlertFilters,
    *,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> tuple[list[AlertRow], bool]:
    """One page of violations, newest first, and whether an older page exists.

    Two steps: page through narrow (started_at, id) keys first — the sort then handles a few
    bytes per row instead of whole rows with their JSON boxes — then load the page's rows.
    """
    keys = select(Violation.id)
    keys = _scope(keys, site_ids)
    for column, value in (
        (Violation.site_id, filters.site),
        (Violation.camera_id, filters.camera),
        (Violation.kind, filters.kind),
        (Violation.status, filters.status),
    ):
        if value:
            keys = keys.where(column == value)
    if filters.since:
        keys = keys.where(Violation.started_at >= filters.since)
    if filters.until:
        keys = keys.where(Violation.started_at < filters.until)
    keys = (
        keys.order_by(Violation.started_at.desc(), Violation.id.desc())
        .limit(page_size + 1)
        .offset((page - 1) * page_size)
    )
    ids = list(session.scalars(keys))
    if not ids:
        return [], False
    page_ids = ids[:page_size]
    reviewers = last_reviewers(session, page_ids)
    stmt = (
        select(Violation, Site.name, Camera.name)
        .join(Site, Site.id == Violation.site_id)
        .join(Camera, Camera.id == Violation.camera_id)
        .where(Violation.id.in_(page_ids))
        .order_by(Violation.started_at.desc(), Violation.id.desc())
    )
    rows = [
        _alert_row(v, site_name, cam_name, reviewers.get(v.id))
        for v, site_name, cam_name in session.execute(stmt)
    ]
    return rows, len(ids) > page_size


def last_reviewers(session: Session, violation_ids: Sequence[int]) -> dict[int, str]:
    """Who made the latest review of each violation (one query for a whole page)."""
    if not violation_ids:
        return {}
    stmt = (
        select(Review.violation_id, User.username)
        .join(User, User.id == Review.user_id)
        .where(Review.violation_id.in_(list(violation_ids)))
        .order_by(Review.id)
    )
    return {vid: name for vid, name in session.execute(stmt)}


@dataclass(frozen=True)
class Kpis:
    today: int
    unreviewed_today: int
    false_alarms_7d: int
    confirmed_rate_7d: float | None


def kpis(session: Session, site_ids: Sequence[str] | None, day_start: dt.datetime) -> Kpis:
    """Headline counts: today's alerts (in the viewer's time zone) and the 7-day review mix."""
    week_start = day_start - dt.timedelta(days=6)
    stmt = _scope(
        select(
            Violation.status,
            func.count(),
            func.sum(case((Violation.started_at >= day_start, 1), else_=0)),
        )
        .where(Violation.started_at >= week_start)
        .group_by(Violation.status),
        site_ids,
    )
    today = unreviewed = false_alarms = confirmed = 0
    for status, count, count_today in session.execute(stmt):
        count_today = int(count_today or 0)
        today += count_today
        if status == "unreviewed":
            unreviewed += count_today
        elif status == "false_alarm":
            false_alarms += count
        elif status == "confirmed":
            confirmed += count
    decided = confirmed + false_alarms
    return Kpis(today, unreviewed, false_alarms, confirmed / decided if decided else None)


@dataclass(frozen=True)
class ReviewView:
    outcome: str
    comment: str
    username: str
    created_at: dt.datetime


@dataclass(frozen=True)
class AlertDetail:
    row: AlertRow
    track_id: int | None
    frame_width: int | None
    frame_height: int | None
    boxes: list[dict[str, Any]]
    reviews: list[ReviewView] = field(default_factory=list)
    drawn: list[BoxView] = field(default_factory=list)  # the alert's own box last

    @property
    def own_box(self) -> BoxView | None:
        """The detection this alert is about, when the event says which (alert_boxes.py)."""
        return next((b for b in self.drawn if b.own), None)


def alert_detail(
    session: Session, site_ids: Sequence[str] | None, event_id: str
) -> AlertDetail | None:
    """A violation with its boxes and review history, or None when unknown or out of scope."""
    stmt = _scope(
        select(Violation, Site.name, Camera.name)
        .join(Site, Site.id == Violation.site_id)
        .join(Camera, Camera.id == Violation.camera_id)
        .where(Violation.event_id == event_id),
        site_ids,
    )
    found = session.execute(stmt).first()
    if found is None:
        return None
    v, site_name, cam_name = found
    reviews = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.user_id)
        .where(Review.violation_id == v.id)
        .order_by(Review.id.desc())
    )
    history = [
        ReviewView(r.outcome, r.comment or "", username or "—", r.created_at)
        for r, username in reviews
    ]
    boxes = [b for b in (v.boxes or []) if isinstance(b, dict)]
    return AlertDetail(
        row=_alert_row(v, site_name, cam_name, history[0].username if history else None),
        track_id=v.track_id,
        frame_width=v.frame_width,
        frame_height=v.frame_height,
        boxes=boxes,
        reviews=history,
        drawn=box_views(v.track_id, v.confidence, boxes),
    )


def _shifted(moment: dt.datetime, by: dt.timedelta) -> dt.datetime:
    """`moment + by`, or `moment` itself at the calendar's edge (0001-01-01, 9999-12-31)."""
    try:
        return moment + by
    except OverflowError:
        return moment


def alerts_near(
    session: Session, site_ids: Sequence[str] | None, row: AlertRow, window_s: float
) -> list[AlertRow]:
    """The other alerts of `row`'s camera that started within `window_s` of it, oldest first
    (the detail page's "same moment": the other workers of the frame)."""
    around = dt.timedelta(seconds=window_s)
    earliest, latest = _shifted(row.started_at, -around), _shifted(row.started_at, around)
    stmt = _scope(
        select(Violation, Site.name, Camera.name)
        .join(Site, Site.id == Violation.site_id)
        .join(Camera, Camera.id == Violation.camera_id)
        .where(
            Violation.camera_id == row.camera_id,
            Violation.started_at >= earliest,
            Violation.started_at <= latest,
            Violation.event_id != row.event_id,
        )
        .order_by(Violation.started_at, Violation.id)
        .limit(200),
        site_ids,
    )
    found = list(session.execute(stmt))
    reviewers = last_reviewers(session, [v.id for v, _, _ in found])
    return [_alert_row(v, s, c, reviewers.get(v.id)) for v, s, c in found]


@dataclass(frozen=True)
class CameraView:
    camera_id: str
    name: str
    site_name: str
    state: str
    fps: float | None
    last_frame_at: dt.datetime | None
    detector_id: str | None
    violations_today: int
    zones: list[Any]


def cameras_overview(
    session: Session, site_ids: Sequence[str] | None, day_start: dt.datetime
) -> list[CameraView]:
    counts = dict(
        session.execute(
            _scope(
                select(Violation.camera_id, func.count())
                .where(Violation.started_at >= day_start)
                .group_by(Violation.camera_id),
                site_ids,
            )
        ).all()
    )
    stmt = select(Camera, Site.name).join(Site, Site.id == Camera.site_id)
    if site_ids is not None:
        stmt = stmt.where(Camera.site_id.in_(list(site_ids)))
    stmt = stmt.order_by(Site.name, Camera.name)
    return [
        CameraView(
            camera_id=c.id,
            name=c.name,
            site_name=site_name,
            state=c.state or "unknown",
            fps=c.fps,
            last_frame_at=c.last_frame_at,
            detector_id=c.detector_id,
            violations_today=int(counts.get(c.id, 0)),
            zones=list(c.zones or []),
        )
        for c, site_name in session.execute(stmt)
    ]


@dataclass(frozen=True)
class ModelRow:
    version: str
    status: str
    dataset_version: str | None
    dataset_size: int | None
    samples_added: int | None
    benchmark_images: int | None
    worker_accuracy: float | None
    map50: float | None
    field_accuracy: float | None
    field_precision: float | None
    reviewed: int
    created_at: dt.datetime
    promoted_at: dt.datetime | None
    promoted_by: str | None
    shadow_disagreements: int = 0
    audit: AuditFigures | None = None  # field figures from labelled audit frames
    metrics: dict[str, Any] = field(default_factory=dict)  # as registered (model_figures.py)


def shadow_counts(session: Session, site_ids: Sequence[str] | None) -> dict[str, int]:
    """Per candidate version: frames where it disagreed with the active model in shadow mode."""
    stmt = select(ShadowReport.candidate_version, func.count()).group_by(
        ShadowReport.candidate_version
    )
    if site_ids is not None:
        stmt = stmt.where(ShadowReport.site_id.in_(list(site_ids)))
    return {version: int(count) for version, count in session.execute(stmt)}


def _number(metrics: dict[str, Any], *paths: str) -> float | None:
    """The first numeric value found at one of the dotted `paths` in a metrics dict."""
    for path in paths:
        node: Any = metrics
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, int | float) and not isinstance(node, bool):
            return float(node)
    return None


def field_precision(
    session: Session, site_ids: Sequence[str] | None
) -> dict[str | None, tuple[int, int]]:
    """Per model version: (confirmed, false alarms) from managers' reviews."""
    stmt = _scope(
        select(Violation.model_version, Violation.status, func.count())
        .where(Violation.status.in_(("confirmed", "false_alarm")))
        .group_by(Violation.model_version, Violation.status),
        site_ids,
    )
    out: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for version, status, count in session.execute(stmt):
        out[version][0 if status == "confirmed" else 1] += int(count)
    return {k: (v[0], v[1]) for k, v in out.items()}


def model_rows(session: Session, site_ids: Sequence[str] | None) -> list[ModelRow]:
    """Every registered model version, oldest first, with benchmark and field figures."""
    field = field_precision(session, site_ids)
    shadow = shadow_counts(session, site_ids)
    audit = audit_figures(session, site_ids=None if site_ids is None else list(site_ids))
    users = dict(session.execute(select(User.id, User.username)).all())
    rows = []
    for m in session.scalars(select(ModelVersion).order_by(ModelVersion.created_at)):
        metrics = m.metrics or {}
        confirmed, false_alarms = field.get(m.version, (0, 0))
        reviewed = confirmed + false_alarms
        rows.append(
            ModelRow(
                version=m.version,
                status=m.status,
                dataset_version=m.dataset_version,
                dataset_size=_int(
                    _number(
                        metrics,
                        "dataset.images",
                        "dataset_size",
                        "dataset.train_images",
                        "retrain.dataset_images",
                    )
                ),
                samples_added=_int(_number(metrics, "retrain.trained_samples", "retrain.samples")),
                benchmark_images=_int(_number(metrics, "benchmark.images")),
                worker_accuracy=_number(metrics, "benchmark.worker_accuracy", "worker_accuracy"),
                map50=_number(metrics, "benchmark.map50", "map50"),
                field_accuracy=_number(metrics, "field.worker_accuracy"),
                field_precision=confirmed / reviewed if reviewed else None,
                reviewed=reviewed,
                created_at=m.created_at,
                promoted_at=m.promoted_at,
                promoted_by=users.get(m.promoted_by) if m.promoted_by else None,
                shadow_disagreements=shadow.get(m.version, 0),
                audit=audit.get(m.version),
                metrics=metrics,
            )
        )
    return rows


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class AuditView:
    at: dt.datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


PROMOTION_ACTIONS = ("model.promote", "model.rollback")


def promotion_history(session: Session, limit: int = 50) -> list[AuditView]:
    """Model promotions and rollbacks from the audit log, newest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.action.in_(PROMOTION_ACTIONS))
        .order_by(AuditEntry.at.desc())
        .limit(limit)
    )
    return [
        AuditView(a.at, a.actor, a.action, a.target, a.detail or {}) for a in session.scalars(stmt)
    ]


@dataclass
class ReportRow:
    period: str
    group: str
    total: int = 0
    confirmed: int = 0
    false_alarms: int = 0
    unsure: int = 0
    unreviewed: int = 0
    trend: list[int] = field(default_factory=list)

    @property
    def confirmed_rate(self) -> float | None:
        decided = self.confirmed + self.false_alarms
        return self.confirmed / decided if decided else None


GROUPS = ("site", "camera", "zone", "kind")


def local_day(session: Session, tz: dt.tzinfo) -> Any:
    """SQL for the local calendar day of `started_at` (stored as naive UTC).

    PostgreSQL converts with the zone's rules (DST-correct); SQLite has no zone database, so it
    shifts by the zone's current UTC offset (exact for zones without DST, such as China's).
    """
    if session.get_bind().dialect.name == "postgresql":
        name = getattr(tz, "key", None) or "UTC"
        return func.date(func.timezone(name, func.timezone("UTC", Violation.started_at)))
    offset = int((dt.datetime.now(tz).utcoffset() or dt.timedelta()).total_seconds())
    return func.date(Violation.started_at, f"{offset:+d} seconds")


TREND_DAYS = 14


def compliance_report(
    session: Session,
    site_ids: Sequence[str] | None,
    *,
    since: dt.datetime,
    tz: dt.tzinfo,
    period: str,
    group: str,
    site: str | None = None,
) -> list[ReportRow]:
    """Counts per period (local day or ISO week) and group, newest period first.

    The database aggregates by (local day, group, status), so the page reads a few hundred
    rows whatever the number of violations; weeks and the 14-day trend are folded from days.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}")
    if period not in ("daily", "weekly"):
        raise ValueError("period must be daily or weekly")
    group_col = {
        "site": Site.name,
        "camera": Camera.name,
        "zone": Violation.zone,
        "kind": Violation.kind,
    }[group]
    today = dt.datetime.now(tz).date()
    trend_days = [today - dt.timedelta(days=i) for i in range(TREND_DAYS - 1, -1, -1)]
    report_from = since.astimezone(tz).date()
    query_from = min(since, dt.datetime.combine(trend_days[0], dt.time(), tz).astimezone(dt.UTC))
    # Up to the end of today: a (wrongly) future-dated event is in no period of the report, and
    # one near the end of time cannot be converted to a local day at all.
    query_to = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    day = local_day(session, tz).label("day")
    stmt = (
        select(day, group_col, Violation.status, func.count())
        .join(Site, Site.id == Violation.site_id)
        .join(Camera, Camera.id == Violation.camera_id)
        .where(Violation.started_at >= query_from, Violation.started_at < query_to)
        .group_by(day, group_col, Violation.status)
    )
    stmt = _scope(stmt, site_ids)
    if site:
        stmt = stmt.where(Violation.site_id == site)
    table: dict[tuple[str, str], ReportRow] = {}
    daily: dict[str, Counter[dt.date]] = defaultdict(Counter)
    for raw_day, key, status, count in session.execute(stmt):
        if raw_day is None:
            continue
        when = raw_day if isinstance(raw_day, dt.date) else dt.date.fromisoformat(str(raw_day))
        key = str(key)
        daily[key][when] += count
        if when < report_from:
            continue
        label = _period_label(when, period)
        row = table.get((label, key))
        if row is None:
            row = table[(label, key)] = ReportRow(label, key)
        row.total += count
        if status == "confirmed":
            row.confirmed += count
        elif status == "false_alarm":
            row.false_alarms += count
        elif status == "unsure":
            row.unsure += count
        else:
            row.unreviewed += count
    for row in table.values():
        row.trend = [daily[row.group][d] for d in trend_days]
    rows = sorted(table.values(), key=lambda r: (-r.total, r.group))
    return sorted(rows, key=lambda r: r.period, reverse=True)


def _period_label(day: dt.date, period: str) -> str:
    if period == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def sample_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(TrainingSample)) or 0)
