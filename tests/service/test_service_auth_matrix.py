"""Auth matrix: every route of the app x every kind of caller, over real HTTP (issue 8).

Routes are read from `app.routes`, and `test_every_route_is_in_the_table` fails when one is
missing from `RULES` below, so a new endpoint cannot escape the matrix. For each (route, caller)
the expected class of answer follows from the route's rule:

- anonymous: 401 on the API, a 303 to /login on HTML pages;
- a user below the route's minimum role: 403 (API, or the dashboard's rendered 403 page);
- a user at or above it: neither 401 nor 403 (nor a redirect to /login), and no 404 where the
  path names seeded rows (so the ids are real and the handler ran past its lookups);
- a site-B user on a site-A resource of the API: 404, as for an id that does not exist (a 403
  would tell that it exists); a site-B detector key: 403 or 404 (the route's `denied`; the
  contract answers 403 for another site's camera); a page: the route's `denied`;
- a detector key on a user route, a user on a detector route: 401 (a page: the login redirect);
- never a 5xx.

Unsafe requests send an invalid body where no side effect is wanted (auth runs before body
validation, so an allowed caller gets 422), and a valid one where the site check in the handler
must be reached. Cookie sessions always send their CSRF token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from service_testkit import PASSWORD, Live, event, jpeg, post_violation
from sqlalchemy import select

from service.models import AlertDelivery, Camera, ModelVersion, Site, TrainingSample, User
from service.security import ROLES, hash_password, new_api_key, role_rank

# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Who may call a route.

    kind: "public" (anyone), "user" (a session, JSON 401/403), "page" (a session, else a redirect
    to /login; the page itself answers 403 below `role`), "detector" (an X-API-Key detector key),
    "file" (a detector key, or a user of at least `role`).
    site: the request names a site-A resource, so site-B callers must get one of `denied`.
    """

    kind: str
    role: str = "viewer"
    site: bool = False
    denied: frozenset[int] = frozenset({403, 404})
    query: str = ""
    body: str | None = None  # a key of World.bodies; None = an invalid body (unsafe methods)
    doomed: bool = False  # path parameters name throwaway rows (an allowed call deletes them)


PUBLIC = Rule("public")
U = Rule  # short alias for the table

RULES: dict[str, Rule] = {
    # framework and operations
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /docs/oauth2-redirect": PUBLIC,
    "GET /redoc": PUBLIC,
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": PUBLIC,
    "MOUNT /static": Rule("public", query="/css/app.css"),
    # API: auth
    "POST /api/v1/auth/login": Rule("public", body="login"),
    "POST /api/v1/auth/logout": U("user", "viewer"),
    "GET /api/v1/auth/me": U("user", "viewer"),
    # API: detectors
    "POST /api/v1/violations": U("detector", site=True, body="violation"),
    "POST /api/v1/violations/{event_id}/end": U("detector", site=True, body="end"),
    "POST /api/v1/heartbeats": U("detector", site=True, body="heartbeat"),
    "POST /api/v1/shadow": U("detector"),
    "POST /api/v1/audit-frames": U("detector", site=True, body="audit"),
    "GET /api/v1/models/{version}/file": U("file", "trainer"),
    # API: users
    "GET /api/v1/violations": U("user", "viewer"),
    "GET /api/v1/violations/{event_id}": U("user", "viewer", site=True),
    "POST /api/v1/violations/{event_id}/review": U("user", "manager", site=True, body="review"),
    "GET /api/v1/violations/{event_id}/snapshot": U("user", "viewer", site=True),
    # Raw (unblurred) frames: trainers and admins (unblurred_frame_role, issue 18).
    "GET /api/v1/violations/{event_id}/frame": U("user", "trainer", site=True),
    "GET /api/v1/detectors": U("user", "viewer"),
    "GET /api/v1/stats": U("user", "viewer"),
    "GET /api/v1/events": U("user", "viewer"),
    "GET /api/v1/models": U("user", "viewer"),
    "POST /api/v1/models": U("user", "trainer"),
    "GET /api/v1/models/{version}": U("user", "viewer"),
    "PATCH /api/v1/models/{version}": U("user", "trainer"),
    "DELETE /api/v1/models/{version}": U("user", "admin", doomed=True),
    "GET /api/v1/models/{version}/weights": U("user", "trainer"),
    "GET /api/v1/models/{version}/gate": U("user", "viewer"),
    "GET /api/v1/models/{version}/field": U("user", "viewer"),
    "POST /api/v1/models/{version}/promote": U("user", "trainer"),
    "POST /api/v1/models/{version}/rollback": U("user", "trainer"),
    "GET /api/v1/samples": U("user", "trainer"),
    "GET /api/v1/samples/export": U("user", "trainer"),
    "GET /api/v1/samples/{sample_id}/image": U("user", "trainer", site=True),
    "PUT /api/v1/samples/{sample_id}/labels": U("user", "trainer", site=True, body="labels"),
    "GET /api/v1/shadow": U("user", "trainer"),
    # Audit frames: any role of the site sees the blurred frame; another site's is a 404.
    "GET /api/v1/audit-frames": U("user", "viewer"),
    "GET /api/v1/audit-frames/{audit_id}": U("user", "viewer", site=True, denied=frozenset({404})),
    "GET /api/v1/audit-frames/{audit_id}/snapshot": U(
        "user", "viewer", site=True, denied=frozenset({404})
    ),
    "GET /api/v1/sites": U("user", "viewer"),
    "POST /api/v1/sites": U("user", "admin"),
    "PATCH /api/v1/sites/{site_id}": U("user", "admin", body="empty"),
    "GET /api/v1/cameras": U("user", "viewer"),
    "GET /api/v1/cameras/{camera_id}": U("user", "viewer", site=True),
    "POST /api/v1/cameras": U("user", "manager"),
    "PATCH /api/v1/cameras/{camera_id}": U("user", "manager", site=True, body="empty"),
    "DELETE /api/v1/cameras/{camera_id}": U("user", "admin", doomed=True),
    "GET /api/v1/users": U("user", "admin"),
    "POST /api/v1/users": U("user", "admin"),
    "PATCH /api/v1/users/{user_id}": U("user", "admin", body="empty"),
    "GET /api/v1/api-keys": U("user", "admin"),
    "POST /api/v1/api-keys": U("user", "admin"),
    "DELETE /api/v1/api-keys/{key_id}": U("user", "admin", doomed=True),
    "GET /api/v1/audit": U("user", "admin"),
    "POST /api/v1/retention/run": U("user", "admin"),
    # The durable alerts outbox (issue 17): counts and dead letters are for admins.
    "GET /api/v1/alert-outbox": U("user", "admin"),
    "GET /api/v1/alert-outbox/dead": U("user", "admin"),
    "POST /api/v1/alert-outbox/dead/{delivery_id}/retry": U("user", "admin", doomed=True),
    # dashboard
    "GET /login": PUBLIC,
    "POST /login": Rule("public", body="login-form"),
    "POST /logout": U("user", "viewer"),
    "GET /lang": Rule("public", query="?code=en&next=/alerts"),
    "GET /": PUBLIC,  # a plain redirect to /alerts
    "GET /alerts": Rule("page", query="?site=site-a"),
    "GET /alerts/{event_id}": Rule("page", site=True, denied=frozenset({404})),
    "GET /alerts/_row/{event_id}": Rule("page", site=True, denied=frozenset({404})),
    "GET /alerts/_health": Rule("page"),
    "GET /cameras": Rule("page"),
    "GET /models": Rule("page"),
    "GET /samples": Rule("page", "trainer"),
    "GET /samples/{sample_id}": Rule("page", "trainer", site=True),
    # Reports refuse a site outside the user's scope with 400 "no access to that site".
    "GET /reports": Rule("page", site=True, denied=frozenset({400}), query="?site=site-a"),
    "GET /reports.csv": Rule("page", site=True, denied=frozenset({400}), query="?site=site-a"),
    "GET /admin": Rule("page", "admin"),
    "POST /admin/alerts/test": U("user", "admin"),
    "GET /admin/cameras/{camera_id}/zones": Rule("page", "admin"),
}

# Callers: (user name or key, home site). Users of every role on site A (the admin sees every
# site), a manager and a trainer of site B, a detector key per site, and nobody.
USERS_A = {"view-a": "viewer", "mgr-a": "manager", "trainer-a": "trainer", "admin": "admin"}
USERS_B = {"mgr-b": "manager", "trainer-b": "trainer"}
CALLERS = ["anonymous", *USERS_A, *USERS_B, "key-a", "key-b"]
EXTRA_USERS = {"trainer-a": ["site-a"], "trainer-b": ["site-b"]}  # beside service_testkit.USERS

# Known authorization bugs: {(route, caller): reason}; each case runs as a strict xfail.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def expected(rule: Rule, caller: str) -> str | frozenset[int]:
    """'ok', 'login' or the set of acceptable statuses for `caller` on a route with `rule`."""
    if rule.kind == "public":
        return "ok"
    is_key = caller.startswith("key-")
    role = USERS_A.get(caller) or USERS_B.get(caller)
    if caller == "anonymous":
        return "login" if rule.kind == "page" else frozenset({401})
    if rule.kind == "detector":
        if not is_key:
            return frozenset({401})
        return rule.denied if rule.site and caller == "key-b" else "ok"
    if is_key:
        if rule.kind == "file":
            return "ok"
        return "login" if rule.kind == "page" else frozenset({401})
    assert role is not None
    if role_rank(role) < role_rank(rule.role):
        return frozenset({403})
    if rule.site and caller in USERS_B:
        return frozenset({404}) if rule.kind == "user" else rule.denied
    return "ok"


# --- routes of the app ------------------------------------------------------------------------


def app_routes(app: Any) -> set[str]:
    """'METHOD path' for every endpoint of `app` (HEAD left out), 'MOUNT path' for mounts."""
    found: set[str] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
                walk(route.effective_route_contexts())
            elif getattr(route, "methods", None):
                found.update(f"{m} {route.path}" for m in route.methods if m != "HEAD")
            elif hasattr(route, "path"):  # a Mount (static files)
                found.add(f"MOUNT {route.path}")
            else:
                raise AssertionError(f"unknown route type {type(route).__name__}")

    walk(app.routes)
    return found


# --- the seeded world -------------------------------------------------------------------------


@dataclass
class World:
    live: Live
    ids: dict[str, Any]
    doomed: dict[str, Any]
    sessions: dict[str, httpx.Client] = field(default_factory=dict)

    def url(self, key: str, rule: Rule) -> str:
        method, path = key.split(" ", 1)
        if method == "MOUNT":
            return path + rule.query
        return path.format(**(self.doomed if rule.doomed else self.ids)) + rule.query

    def bodies(self, name: str | None) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).isoformat()
        if name is None:
            return {"json": {"unexpected": True, "boxes": "not a list"}}
        if name == "login":
            return {"json": {"username": "view-a", "password": PASSWORD}}
        if name == "login-form":
            return {"data": {"username": "view-a", "password": PASSWORD, "next": "/alerts"}}
        if name == "empty":
            return {"json": {}}
        if name == "review":
            return {"json": {"outcome": "confirmed"}}
        if name == "end":
            return {"json": {"ended_at": now, "duration_s": 3.0}}
        if name == "labels":
            return {"json": {"boxes": []}}
        if name == "heartbeat":
            cams = [{"camera_id": "gate-1", "state": "online", "fps": 5.0}]
            return {"json": {"detector_id": "edge-matrix", "cameras": cams}}
        if name == "audit":
            audit = {
                "audit_id": str(uuid.uuid4()),
                "camera_id": "gate-1",
                "captured_at": now,
                "model_version": "matrix-1",
                "frame_width": 640,
                "frame_height": 480,
                "detections": [],
            }
            files = {
                "audit": (None, json.dumps(audit)),
                "frame": ("frame.jpg", io.BytesIO(jpeg(seed=4)), "image/jpeg"),
            }
            return {"files": files}
        if name == "violation":
            files = {
                "event": (None, json.dumps(event("gate-1"))),
                "snapshot": ("snapshot.jpg", io.BytesIO(jpeg(seed=3)), "image/jpeg"),
            }
            return {"files": files}
        raise AssertionError(name)


def _seed_extra(live: Live) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rows the table's path parameters point at (all on site A): kept ones, throwaway ones."""
    state = live.state
    ids: dict[str, Any] = {"site_id": "site-a", "camera_id": "gate-1", "version": "matrix-1"}
    doomed: dict[str, Any] = {"camera_id": "matrix-doomed", "version": "matrix-doomed"}
    with state.db.session() as db, state.db.writing(db):
        pw = hash_password(PASSWORD)
        for name, sites in EXTRA_USERS.items():
            members = list(db.scalars(select(Site).where(Site.id.in_(sites))))
            db.add(User(username=name, password_hash=pw, role="trainer", sites=members))
        blob = b"not really a model, but a stored file"
        digest = state.blobs.put(blob)  # stands in for both the .onnx and the .pt
        for version in ("matrix-1", "matrix-doomed"):
            db.add(
                ModelVersion(
                    version=version,
                    sha256=digest,
                    size_bytes=len(blob),
                    weights_sha256=digest,
                    weights_size_bytes=len(blob),
                )
            )
        db.add(Camera(id="matrix-doomed", site_id="site-a", name="doomed", zones=[]))
        key, _secret = new_api_key(db, "matrix-doomed-key", site_id="site-a")
        dead = AlertDelivery(channel="matrix", kind="violation", subject="s", status="dead")
        db.add(dead)
        db.flush()
        doomed["key_id"] = key.id
        doomed["delivery_id"] = dead.id  # an allowed retry makes it pending: no longer dead
        ids["user_id"] = db.scalar(select(User.id).where(User.username == "view-a"))
    with live.detector("site-a") as det:
        v = post_violation(det, event("gate-1"), jpeg(seed=11), frame=jpeg(seed=12))
        assert v.status_code == 201, v.text
    ids["event_id"] = v.json()["event_id"]
    with live.login("mgr-a") as c:
        r = c.post(f"/api/v1/violations/{ids['event_id']}/review", json={"outcome": "confirmed"})
        assert r.status_code == 200, r.text
    with state.db.session() as db:
        sample = db.scalar(select(TrainingSample.id).where(TrainingSample.site_id == "site-a"))
    assert sample is not None, "a confirmed violation with a frame makes a training sample"
    ids["sample_id"] = sample
    audit = {
        "audit_id": str(uuid.uuid4()),
        "camera_id": "gate-1",
        "captured_at": dt.datetime.now(dt.UTC).isoformat(),
        "model_version": "matrix-1",
        "frame_width": 640,
        "frame_height": 480,
        "detections": [],
    }
    with live.detector("site-a") as det:
        files = {
            "audit": (None, json.dumps(audit)),
            "frame": ("frame.jpg", io.BytesIO(jpeg(seed=13)), "image/jpeg"),
            "snapshot": ("snapshot.jpg", io.BytesIO(jpeg(seed=14)), "image/jpeg"),
        }
        r = det.post("/api/v1/audit-frames", files=files)
        assert r.status_code == 201, r.text
    ids["audit_id"] = audit["audit_id"]
    return ids, doomed


@pytest.fixture(scope="module")
def world(live: Live) -> Iterator[World]:
    ids, doomed = _seed_extra(live)
    w = World(live=live, ids=ids, doomed=doomed)
    with contextlib.ExitStack() as stack:
        w.sessions["anonymous"] = stack.enter_context(live.client())
        w.sessions["key-a"] = stack.enter_context(live.detector("site-a"))
        w.sessions["key-b"] = stack.enter_context(live.detector("site-b"))
        for name in [*USERS_A, *USERS_B]:
            w.sessions[name] = stack.enter_context(live.login(name))
        yield w


def call(world: World, key: str, caller: str) -> httpx.Response:
    """One request; the body is not read, so streams (SSE) end when the response is closed."""
    rule = RULES[key]
    method = key.split(" ", 1)[0]
    method = "GET" if method == "MOUNT" else method
    kwargs = world.bodies(rule.body) if method not in {"GET", "DELETE"} else {}
    url = world.url(key, rule)
    if key.endswith("/login") and method == "POST":
        # Anonymous logs in for real; the others send a too-long user name (422 before any
        # argon2 work, which is slow on a busy box). On a client of its own: a new session
        # cookie must not replace the caller's shared one.
        if caller != "anonymous":
            kwargs = {"data" if "data" in kwargs else "json": {"username": "x" * 100}}
        with world.live.client(headers=world.sessions[caller].headers) as fresh:
            return _send(fresh, method, url, kwargs)
    if key.endswith("/logout") and caller in {*USERS_A, *USERS_B}:
        with world.live.login(caller) as fresh:  # logging out must not end the shared session
            return _send(fresh, method, url, kwargs)
    return _send(world.sessions[caller], method, url, kwargs)


def _send(client: httpx.Client, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
    with client.stream(method, url, follow_redirects=False, **kwargs) as response:
        return response


# --- tests ------------------------------------------------------------------------------------


def test_every_route_is_in_the_table(live: Live) -> None:
    routes = app_routes(live.app)
    assert len(routes) > 50
    assert routes - RULES.keys() == set(), "routes missing from the auth matrix"
    assert RULES.keys() - routes == set(), "table rows for routes the app no longer has"
    assert set(USERS_A.values()) == set(ROLES), "a role has no caller in the matrix"


CASES = [
    pytest.param(
        key,
        caller,
        id=f"{key}|{caller}",
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[(key, caller)])]
        if (key, caller) in KNOWN_BUGS
        else [],
    )
    for key in RULES
    for caller in CALLERS
]


@pytest.mark.parametrize(("key", "caller"), CASES)
def test_auth_matrix(world: World, key: str, caller: str) -> None:
    want = expected(RULES[key], caller)
    r = call(world, key, caller)
    status, location = r.status_code, r.headers.get("location", "")
    what = f"{key} as {caller}: {status} {location}"
    assert status < 500, what
    # "Log in first" (page_user); a logout's own "/login?out=1" is a success.
    to_login = status in {302, 303, 307} and location.startswith("/login?next=")
    if want == "ok":
        assert status not in {401, 403} and not to_login, what
        if "{" in key and not RULES[key].doomed:  # the seeded rows are real and still there
            assert status != 404, what
    elif want == "login":
        assert to_login, what
    else:
        assert status in want, f"{what}, expected one of {sorted(want)}"
