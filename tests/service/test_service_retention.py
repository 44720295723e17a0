"""Retention: old unreviewed events and old snapshots go; reviews, metadata, audit stay."""

from __future__ import annotations

import datetime as dt

from service_testkit import Live, event, jpeg, post_violation

from service.models import AuditEntry
from service.retention import collect_garbage


def test_retention_job(live: Live) -> None:
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=40)).isoformat()
    stale, kept, fresh = event(started_at=old), event(started_at=old), event()
    with live.detector() as det:
        for i, body in enumerate((stale, kept, fresh)):
            r = post_violation(det, body, jpeg(seed=40 + i), jpeg(seed=50 + i))
            assert r.status_code == 201
    with live.login("mgr-a") as mgr:
        r = mgr.post(f"/api/v1/violations/{kept['event_id']}/review", json={"outcome": "unsure"})
        assert r.status_code == 200
    audit_before = live.count(AuditEntry)
    with live.login("admin") as admin:
        result = admin.post("/api/v1/retention/run").json()
        assert result["violations_deleted"] >= 1 and result["snapshots_cleared"] >= 1
        assert admin.get(f"/api/v1/violations/{stale['event_id']}").status_code == 404
        kept_now = admin.get(f"/api/v1/violations/{kept['event_id']}").json()
        assert kept_now["status"] == "unsure" and kept_now["reviews"][0]["outcome"] == "unsure"
        assert kept_now["snapshot_url"] is None and kept_now["frame_url"] is None
        fresh_now = admin.get(f"/api/v1/violations/{fresh['event_id']}").json()
        assert admin.get(fresh_now["snapshot_url"]).status_code == 200
    assert live.count(AuditEntry) > audit_before  # the audit log is never trimmed
    blobs = {p.name for p in (live.data_dir / "blobs").glob("??/??/*")}
    removed = collect_garbage(live.state, min_age_s=0)
    assert removed >= 4  # stale's and kept's snapshot + frame
    left = {p.name for p in (live.data_dir / "blobs").glob("??/??/*")}
    assert left < blobs
    with live.login("admin") as admin:
        assert admin.get(fresh_now["snapshot_url"]).status_code == 200


def test_silent_cameras_go_offline(live: Live) -> None:
    from service.retention import mark_stale_cameras

    beat = {"detector_id": "edge-s", "cameras": [{"camera_id": "crane-1", "state": "online"}]}
    with live.detector() as det:
        assert det.post("/api/v1/heartbeats", json=beat).status_code == 200
    later = dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=live.state.settings.camera_offline_after_s + 1
    )
    assert ("site-a", "crane-1") in mark_stale_cameras(live.state, now=later)
    with live.login("view-a") as viewer:
        assert viewer.get("/api/v1/cameras/crane-1").json()["state"] == "offline"
    assert mark_stale_cameras(live.state, now=later) == []  # reported once
