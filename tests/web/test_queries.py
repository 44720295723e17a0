"""Dashboard queries on a real migrated SQLite file: scoping, filters, paging, reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pg_scratch import scratch_database
from sqlalchemy.orm import Session

from service.db import Database
from service.models import AuditEntry, Camera, ModelVersion, Review, Site, User, Violation
from service.web import queries

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a throw-away PostgreSQL database when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'web.db'}"
        return
    with scratch_database("sg_web") as url:
        yield url


@pytest.fixture()
def db(db_url: str) -> Iterator[Session]:
    url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    database = Database(url)
    database.upgrade()
    with database.session() as session:
        session.add_all(
            [
                Site(id="a", name="Site A"),
                Site(id="b", name="Site B"),
                Camera(id="cam-a", site_id="a", name="Gate A", state="online", fps=5.0),
                Camera(id="cam-b", site_id="b", name="Gate B", state="offline"),
                User(id=1, username="boss", password_hash="x", role="manager"),
            ]
        )
        session.flush()
        for i in range(12):
            session.add(
                Violation(
                    event_id=f"ev-{i:02d}",
                    site_id="a" if i % 3 else "b",
                    camera_id="cam-a" if i % 3 else "cam-b",
                    kind="no_helmet" if i % 4 else "no_harness",
                    zone="site" if i % 2 else "roof",
                    started_at=NOW - dt.timedelta(hours=i),
                    confidence=0.5 + i / 100,
                    model_version="v1" if i < 6 else "v2",
                    status=("confirmed", "false_alarm", "unreviewed", "unsure")[i % 4],
                    snapshot_sha256="0" * 64 if i % 2 else None,
                )
            )
        session.commit()
        yield session
    database.dispose()


def test_list_alerts_is_newest_first_scoped_and_paged(db: Session) -> None:
    rows, more = queries.list_alerts(db, ["a"], queries.AlertFilters(), page=1, page_size=5)
    assert [r.site_id for r in rows] == ["a"] * 5
    assert [r.started_at for r in rows] == sorted((r.started_at for r in rows), reverse=True)
    assert more is True
    rest, more = queries.list_alerts(db, ["a"], queries.AlertFilters(), page=2, page_size=5)
    assert len(rest) == 3 and more is False
    assert {r.event_id for r in rows}.isdisjoint(r.event_id for r in rest)
    assert rows[0].site_name == "Site A" and rows[0].camera_name == "Gate A"


def test_list_alerts_filters(db: Session) -> None:
    f = queries.AlertFilters(kind="no_harness", status="confirmed")
    rows, _ = queries.list_alerts(db, None, f)
    assert rows and all(r.kind == "no_harness" and r.status == "confirmed" for r in rows)
    since = NOW - dt.timedelta(hours=2, minutes=30)
    rows, _ = queries.list_alerts(db, None, queries.AlertFilters(since=since))
    assert [r.event_id for r in rows] == ["ev-00", "ev-01", "ev-02"]
    snap = [r for r in rows if r.has_snapshot]
    assert snap and snap[0].snapshot_url == f"/api/v1/violations/{snap[0].event_id}/snapshot"


def test_detail_respects_scope(db: Session) -> None:
    assert queries.alert_detail(db, ["a"], "ev-00") is None  # ev-00 is on site b
    db.add(Review(violation_id=1, outcome="false_alarm", comment="vest", user_id=1))
    db.commit()
    detail = queries.alert_detail(db, None, "ev-00")
    assert detail is not None
    assert [(r.outcome, r.username, r.comment) for r in detail.reviews] == [
        ("false_alarm", "boss", "vest")
    ]
    assert detail.row.reviewed_by == "boss"
    rows, _ = queries.list_alerts(db, None, queries.AlertFilters(site="b"))
    assert {r.event_id: r.reviewed_by for r in rows}["ev-00"] == "boss"
    assert {r.event_id: r.reviewed_by for r in rows}["ev-03"] is None


def test_kpis_and_cameras(db: Session) -> None:
    day_start = NOW - dt.timedelta(hours=5, minutes=30)
    k = queries.kpis(db, None, day_start)
    assert k.today == 6  # ev-00 .. ev-05
    assert k.unreviewed_today == 1  # ev-02 (ev-06 is older than day_start)
    assert k.false_alarms_7d == 3 and k.confirmed_rate_7d == pytest.approx(0.5)
    cams = {c.camera_id: c for c in queries.cameras_overview(db, None, day_start)}
    assert cams["cam-a"].violations_today == 4 and cams["cam-b"].violations_today == 2
    assert cams["cam-b"].state == "offline"
    assert [c.camera_id for c in queries.cameras_overview(db, ["b"], day_start)] == ["cam-b"]


def test_model_rows_combine_benchmark_and_field(db: Session) -> None:
    db.add_all(
        [
            ModelVersion(
                version="v1",
                sha256="1" * 64,
                size_bytes=1,
                status="retired",
                metrics={"benchmark": {"worker_accuracy": 0.89, "map50": 0.86}},
                created_at=NOW - dt.timedelta(days=2),
            ),
            ModelVersion(
                version="v2",
                sha256="2" * 64,
                size_bytes=1,
                status="active",
                metrics={
                    "worker_accuracy": 0.96,
                    "map50": 0.93,
                    "dataset_size": 5200,
                    "field": {"worker_accuracy": 0.91},
                    "retrain": {"trained_samples": 40, "held_back_samples": 10},
                },
                dataset_version="ds-2",
                created_at=NOW - dt.timedelta(days=1),
                promoted_at=NOW,
                promoted_by=1,
            ),
            AuditEntry(actor="boss", action="model.promote", target="v2"),
        ]
    )
    db.commit()
    rows = queries.model_rows(db, None)
    assert [r.version for r in rows] == ["v1", "v2"]
    v1, v2 = rows
    assert (v1.worker_accuracy, v1.map50) == (0.89, 0.86)
    assert (v2.worker_accuracy, v2.dataset_size, v2.promoted_by) == (0.96, 5200, "boss")
    assert (v2.field_accuracy, v2.samples_added, v1.field_accuracy) == (0.91, 40, None)
    # v1 = ev-00..05: confirmed ev-00, ev-04; false alarm ev-01, ev-05
    assert (v1.reviewed, v1.field_precision) == (4, 0.5)
    assert [h.target for h in queries.promotion_history(db)] == ["v2"]


def test_compliance_report_buckets_by_local_day(db: Session) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    rows = queries.compliance_report(
        db, None, since=NOW - dt.timedelta(days=2), tz=tz, period="daily", group="kind"
    )
    assert sum(r.total for r in rows) == 12
    assert sum(r.confirmed for r in rows) == 3
    periods = [r.period for r in rows]
    assert periods == sorted(periods, reverse=True)
    today = NOW.astimezone(tz).date().isoformat()
    assert all(len(r.trend) == 14 for r in rows)
    trends = {r.group: r.trend for r in rows}  # one 14-day trend per group, on each of its rows
    assert sum(sum(t) for t in trends.values()) == 12
    assert any(r.period == today for r in rows)
    weekly = queries.compliance_report(
        db, ["a"], since=NOW - dt.timedelta(days=2), tz=tz, period="weekly", group="site"
    )
    assert {r.group for r in weekly} == {"Site A"} and sum(r.total for r in weekly) == 8
    with pytest.raises(ValueError):
        queries.compliance_report(db, None, since=NOW, tz=tz, period="daily", group="nope")


def test_report_day_is_the_viewers_local_day(db: Session) -> None:
    late = (NOW - dt.timedelta(days=3)).replace(hour=17, minute=30, second=0)  # 01:30 next day
    db.add(
        Violation(event_id="late", site_id="a", camera_id="cam-a", kind="no_helmet", zone="z9",
                  started_at=late, confidence=0.9, status="unreviewed")
    )  # fmt: skip
    db.commit()
    since = NOW - dt.timedelta(days=5)
    for tz, expected in ((ZoneInfo("Asia/Shanghai"), late.date() + dt.timedelta(days=1)),
                         (dt.UTC, late.date())):  # fmt: skip
        rows = queries.compliance_report(db, None, since=since, tz=tz, period="daily", group="zone")
        assert [r.period for r in rows if r.group == "z9"] == [expected.isoformat()]
