"""Users, sessions, CSRF, rate limiting, roles and site scoping, over real HTTP."""

from __future__ import annotations

import datetime as dt

from service_testkit import PASSWORD, Live, event, jpeg, post_violation
from sqlalchemy import update

from service.models import AuditEntry, UserSession


def ingest(live: Live, site: str = "site-a", camera: str = "gate-1") -> dict:
    with live.detector(site) as det:
        r = post_violation(det, event(camera), jpeg(seed=7))
    assert r.status_code == 201, r.text
    return r.json()


def test_login_me_logout(live: Live) -> None:
    with live.client() as c:
        assert c.get("/api/v1/auth/me").status_code == 401
        r = c.post("/api/v1/auth/login", json={"username": "mgr-a", "password": PASSWORD})
        assert r.status_code == 200
        assert r.json()["user"]["sites"] == ["site-a"]
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        me = c.get("/api/v1/auth/me").json()
        assert me["user"]["role"] == "manager"
        csrf = me["csrf_token"]
        assert c.post("/api/v1/auth/logout").status_code == 403  # no CSRF token
        assert c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert c.get("/api/v1/auth/me").status_code == 401


def test_wrong_password_and_rate_limit(live: Live) -> None:
    bad = {"username": "view-a", "password": "wrong password"}
    with live.client() as c:
        codes = [c.post("/api/v1/auth/login", json=bad).status_code for _ in range(4)]
        assert codes[:3] == [401, 401, 401]
        assert codes[3] == 429
        # Even the right password is refused while throttled.
        r = c.post("/api/v1/auth/login", json={"username": "view-a", "password": PASSWORD})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
    live.state.limiter.succeeded("127.0.0.1", "view-a")
    with live.state.db.session() as db:
        failed = db.query(AuditEntry).filter_by(action="login.failed", actor="view-a").count()
    assert failed >= 3


def test_expired_session_is_401(live: Live) -> None:
    with live.login("mgr-a") as c:
        assert c.get("/api/v1/violations").status_code == 200
        with live.state.db.session() as db, live.state.db.writing(db):
            past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            db.execute(update(UserSession).values(expires_at=past))
        r = c.get("/api/v1/violations")
        assert r.status_code == 401
        assert "expired" in r.json()["detail"]


def test_csrf_required_for_cookie_writes(live: Live) -> None:
    v = ingest(live)
    url = f"/api/v1/violations/{v['event_id']}/review"
    with live.login("mgr-a") as c:
        good = c.headers.pop("X-CSRF-Token")
        assert c.post(url, json={"outcome": "confirmed"}).status_code == 403
        bad = {"X-CSRF-Token": "forged"}
        assert c.post(url, json={"outcome": "confirmed"}, headers=bad).status_code == 403
        ok = c.post(url, json={"outcome": "confirmed"}, headers={"X-CSRF-Token": good})
        assert ok.status_code == 200, ok.text
    # A bearer token is not ambient authority, so it needs no CSRF token.
    with live.client(headers={"Authorization": f"Bearer {live.tokens['mgr-a']}"}) as c:
        assert c.post(url, json={"outcome": "unsure"}).status_code == 200


def test_roles(live: Live) -> None:
    v = ingest(live)
    url = f"/api/v1/violations/{v['event_id']}/review"
    with live.login("view-a") as viewer:
        assert viewer.get(f"/api/v1/violations/{v['event_id']}").status_code == 200
        assert viewer.post(url, json={"outcome": "confirmed"}).status_code == 403
        assert viewer.get("/api/v1/users").status_code == 403
        assert viewer.get("/api/v1/samples").status_code == 403
    with live.login("mgr-a") as mgr:
        assert mgr.post("/api/v1/sites", json={"id": "x", "name": "X"}).status_code == 403
        assert mgr.get("/api/v1/audit").status_code == 403
    with live.client(headers={"Authorization": "Bearer sg_forged"}) as forged:
        assert forged.get("/api/v1/violations").status_code == 401


def test_cross_site_access_is_refused(live: Live) -> None:
    """Another site's rows answer 404, as ids that do not exist (issue 18: a 403 told them
    apart)."""
    b = ingest(live, "site-b", "gate-b")
    eid = b["event_id"]
    with live.login("mgr-a") as mgr:
        assert mgr.get(f"/api/v1/violations/{eid}").status_code == 404
        assert mgr.get(f"/api/v1/violations/{eid}/snapshot").status_code == 404
        r = mgr.post(f"/api/v1/violations/{eid}/review", json={"outcome": "confirmed"})
        assert r.status_code == 404
        assert mgr.get("/api/v1/violations", params={"site_id": "site-b"}).status_code == 404
        assert mgr.get("/api/v1/stats", params={"site_id": "site-b"}).status_code == 404
        assert mgr.get("/api/v1/cameras/gate-b").status_code == 404
        listed = mgr.get("/api/v1/violations", params={"limit": 500}).json()["items"]
        assert listed and all(item["site_id"] == "site-a" for item in listed)
        assert {s["id"] for s in mgr.get("/api/v1/sites").json()} == {"site-a"}
    with live.login("mgr-b") as mgr_b:
        snap = mgr_b.get(f"/api/v1/violations/{eid}/snapshot")
        assert snap.status_code == 200
    with live.state.db.session() as db:
        views = db.query(AuditEntry).filter_by(action="snapshot.view", target=eid).all()
    assert [e.actor for e in views] == ["mgr-b"]


def test_admin_manages_users_sites_and_keys(live: Live) -> None:
    with live.login("admin") as admin:
        r = admin.post("/api/v1/sites", json={"id": "site-c", "name": "Site C"})
        assert r.status_code == 201, r.text
        assert admin.post("/api/v1/sites", json={"id": "site-c", "name": "C"}).status_code == 409
        cam = {
            "id": "cam-c",
            "site_id": "site-c",
            "name": "C1",
            "zones": [
                {
                    "name": "roof",
                    "polygon": [[0, 0], [1, 0], [1, 1]],
                    "required_ppe": ["helmet", "harness"],
                }
            ],
        }
        r = admin.post("/api/v1/cameras", json=cam)
        assert r.status_code == 201, r.text
        assert r.json()["zones"][0]["required_ppe"] == ["helmet", "harness"]
        user = {"username": "mgr-c", "password": PASSWORD, "role": "manager", "sites": ["site-c"]}
        r = admin.post("/api/v1/users", json=user)
        assert r.status_code == 201, r.text
        uid = r.json()["id"]
        key = admin.post("/api/v1/api-keys", json={"name": "edge-c", "site_id": "site-c"})
        assert key.status_code == 201
        secret, key_id = key.json()["key"], key.json()["id"]
        assert all("key" not in k for k in admin.get("/api/v1/api-keys").json())
    with live.client(headers={"X-API-Key": secret}) as det:
        assert post_violation(det, event("cam-c")).status_code == 201
    with live.login("mgr-c") as mgr_c:
        items = mgr_c.get("/api/v1/violations").json()["items"]
        assert {i["site_id"] for i in items} == {"site-c"}
    with live.login("admin") as admin:
        assert admin.delete(f"/api/v1/api-keys/{key_id}").status_code == 204
        r = admin.patch(f"/api/v1/users/{uid}", json={"is_active": False})
        assert r.status_code == 200
        actions = {e["action"] for e in admin.get("/api/v1/audit").json()}
    assert {"site.create", "camera.create", "user.create", "api_key.create"} <= actions
    with live.client(headers={"X-API-Key": secret}) as det:
        assert post_violation(det, event("cam-c")).status_code == 401
    with live.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": "mgr-c", "password": PASSWORD})
        assert r.status_code == 401
