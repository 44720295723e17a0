"""Detector -> service contract (docs/contract.md): ingest, idempotency, end, heartbeats, and
bad input that must be refused with a clear 4xx and leave nothing stored."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from service_testkit import Live, event, jpeg, post_violation

from service.models import Violation


def blob_files(live: Live) -> set[str]:
    return {p.name for p in (live.data_dir / "blobs").glob("??/??/*")}


def test_ingest_is_idempotent_and_stores_snapshot(live: Live) -> None:
    snap, frame = jpeg(seed=1), jpeg(seed=2)
    body = event()
    with live.detector() as det:
        first = post_violation(det, body, snap, frame)
        assert first.status_code == 201, first.text
        again = post_violation(det, body, jpeg(seed=3))
        assert again.status_code == 200, again.text
    stored = first.json()
    assert again.json() == stored
    assert stored["event_id"] == body["event_id"]
    assert stored["site_id"] == "site-a"
    assert stored["status"] == "unreviewed"
    assert stored["boxes"][0]["class"] == "head"
    with live.state.db.session() as db:
        rows = db.query(Violation).filter_by(event_id=body["event_id"]).all()
    assert len(rows) == 1
    with live.login("mgr-a") as mgr:
        got = mgr.get(stored["snapshot_url"])
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/jpeg"
        assert got.content == snap  # the repeat's different snapshot was not stored
        assert mgr.get(stored["frame_url"]).status_code == 403  # raw frames: trainers
    with live.login("trainer") as trainer:
        assert trainer.get(stored["frame_url"]).content == frame


def test_end_closes_episode_idempotently(live: Live) -> None:
    body = event()
    with live.detector() as det:
        assert post_violation(det, body).status_code == 201
        ended = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)).replace(microsecond=0)
        end = {"ended_at": ended.isoformat(), "duration_s": 12.8}
        r1 = det.post(f"/api/v1/violations/{body['event_id']}/end", json=end)
        r2 = det.post(f"/api/v1/violations/{body['event_id']}/end", json=end)
        assert r1.status_code == r2.status_code == 200, r1.text
        assert r1.json()["duration_s"] == 12.8
        assert r1.json()["ended_at"].startswith(ended.isoformat()[:19])
        assert det.post("/api/v1/violations/no-such-event/end", json=end).status_code == 404
    with live.detector("site-b") as other:
        r = other.post(f"/api/v1/violations/{body['event_id']}/end", json=end)
        assert r.status_code == 403


def test_heartbeat_updates_camera_state(live: Live) -> None:
    beat = {
        "detector_id": "edge-1",
        "model_version": "m1",
        "cameras": [
            {
                "camera_id": "gate-1",
                "state": "online",
                "fps": 4.9,
                "frames_dropped": 12,
                "last_frame_at": dt.datetime.now(dt.UTC).isoformat(),
            },
        ],
    }
    with live.detector() as det:
        r = det.post("/api/v1/heartbeats", json=beat)
        assert r.status_code == 200, r.text
        assert "active_model" in r.json()
        bad = {**beat, "cameras": [{"camera_id": "gate-b", "state": "online"}]}
        assert det.post("/api/v1/heartbeats", json=bad).status_code == 403
        bad = {**beat, "cameras": [{"camera_id": "nope", "state": "online"}]}
        assert det.post("/api/v1/heartbeats", json=bad).status_code == 404
        bad = {**beat, "cameras": [{"camera_id": "gate-1", "state": "sleepy"}]}
        assert det.post("/api/v1/heartbeats", json=bad).status_code == 422
    with live.login("view-a") as viewer:
        cam = viewer.get("/api/v1/cameras/gate-1").json()
    assert cam["state"] == "online"
    assert cam["fps"] == 4.9
    assert cam["detector_id"] == "edge-1"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ("{not json", 422),
        (json.dumps(event(confidence="high")), 422),
        (json.dumps(event(kind="no_gloves")), 422),
        (json.dumps(event(started_at="2026-11-23T08:15:02")), 422),  # no offset
        (json.dumps(event(event_id="../../etc/passwd")), 422),
        (json.dumps(event(camera_id="../gate-1")), 422),
        (json.dumps(event(camera_id="unknown-cam")), 404),
        (json.dumps(event(camera_id="gate-b")), 403),  # a site-b camera with a site-a key
        (json.dumps({"event_id": "x"}), 422),
        ("[]", 422),
    ],
)
def test_bad_event_is_refused_and_nothing_stored(live: Live, payload: str, status: int) -> None:
    before_rows, before_blobs = live.count(Violation), blob_files(live)
    with live.detector() as det:
        r = post_violation(det, payload, jpeg(seed=99))
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    assert live.count(Violation) == before_rows
    assert blob_files(live) == before_blobs


def test_bad_uploads_are_refused(live: Live) -> None:
    before_rows, before_blobs = live.count(Violation), blob_files(live)
    limit = live.state.settings.max_snapshot_bytes
    with live.detector() as det:
        png = b"\x89PNG\r\n\x1a\n" + b"0" * 1000
        assert post_violation(det, event(), png).status_code == 415
        truncated = jpeg(seed=4)[:-200]
        assert post_violation(det, event(), truncated).status_code == 415
        assert post_violation(det, event(), b"").status_code == 415
        big = b"\xff\xd8\xff" + b"\0" * (limit + 10) + b"\xff\xd9"
        assert post_violation(det, event(), big).status_code == 413
        assert post_violation(det, event(), jpeg(), frame=png).status_code == 415
        no_event = det.post("/api/v1/violations", files={"snapshot": ("s.jpg", jpeg())})
        assert no_event.status_code == 422
        not_multipart = det.post("/api/v1/violations", json=event())
        assert not_multipart.status_code == 422
    assert live.count(Violation) == before_rows
    assert blob_files(live) == before_blobs


def test_api_keys_are_checked(live: Live) -> None:
    body = event()
    with live.client() as anon:
        assert post_violation(anon, body).status_code == 401
        anon.headers["X-API-Key"] = "sg_forged"
        assert post_violation(anon, body).status_code == 401
        del anon.headers["X-API-Key"]
        beat = {"detector_id": "edge-1", "cameras": []}
        assert anon.post("/api/v1/heartbeats", json=beat).status_code == 401
    # A user token is not a detector key.
    with live.client(headers={"X-API-Key": live.tokens["admin"]}) as wrong:
        assert post_violation(wrong, body).status_code == 401
    with live.state.db.session() as db:
        assert db.query(Violation).filter_by(event_id=body["event_id"]).count() == 0


def test_event_id_reused_by_another_site_conflicts(live: Live) -> None:
    body = event()
    with live.detector() as det:
        assert post_violation(det, body).status_code == 201
    with live.detector("site-b") as other:
        r = post_violation(other, {**body, "camera_id": "gate-b"})
    assert r.status_code == 409


def test_path_traversal_in_ids_is_4xx(live: Live) -> None:
    with live.login("admin") as admin:
        for path in (
            "/api/v1/violations/..%2F..%2Fetc%2Fpasswd",
            "/api/v1/violations/%2e%2e/snapshot",
            "/api/v1/violations/..%5C..%5Cwin.ini/frame",
            "/api/v1/models/..%2Fsecret/file",
            "/api/v1/cameras/..%2F..%2Fetc",
            "/api/v1/samples/..%2F1/image",
        ):
            r = admin.get(path)
            assert 400 <= r.status_code < 500, (path, r.status_code)


def test_oversized_request_is_refused_before_reading(live: Live) -> None:
    limit = live.state.settings.max_model_bytes + 2 * live.state.settings.max_snapshot_bytes
    before = live.count(Violation)
    with live.detector() as det:
        r = det.post(
            "/api/v1/violations",
            content=b"x" * (limit + (2 << 20)),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
    assert r.status_code == 413
    assert live.count(Violation) == before
