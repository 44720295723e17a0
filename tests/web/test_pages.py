"""Dashboard pages over real HTTP: login, scoping, roles, languages, filters, CSV, bad input."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator

import httpx

from siteguard.kinds import KIND_NAMES, kind_name

from .testkit import PASSWORD, LiveService, violation_event


@contextlib.contextmanager
def _web_login(live: LiveService, username: str, **headers: str) -> Iterator[httpx.Client]:
    """A client logged in through the login form, as a browser would."""
    with live.client() as client:
        client.headers.update(headers)
        resp = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"})
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"] == "/"
        yield client


def test_pages_need_login_and_come_back(live_service: LiveService) -> None:
    with live_service.client() as client:
        for path in ("/alerts", "/cameras", "/models", "/reports", "/admin"):
            resp = client.get(path + "?kind=no_helmet")
            assert resp.status_code == 303, path
            assert resp.headers["location"].startswith("/login?next=" + path)
        assert client.get("/login").status_code == 200


def test_login_failure_and_open_redirect(live_service: LiveService) -> None:
    with live_service.client() as client:
        resp = client.post("/login", data={"username": "manager", "password": "nope"})
        assert resp.status_code == 401
        assert "Wrong user name or password" in resp.text
        resp = client.post(
            "/login",
            data={"username": "manager", "password": PASSWORD, "next": "//evil.example/x"},
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/alerts"


def test_manager_sees_only_own_sites(live_service: LiveService) -> None:
    live_service.post_violation("gate-1")
    with live_service.client() as client:
        resp = client.post(
            "/api/v1/violations",
            headers={"X-API-Key": live_service.other_site_key},
            data={"event": json.dumps(violation_event("b-gate"))},
        )
        assert resp.status_code == 201, resp.text
        other_id = resp.json()["event_id"]
    with _web_login(live_service, "manager") as client:
        page = client.get("/alerts")
        assert page.status_code == 200
        assert "Gate 1" in page.text and other_id not in page.text
        assert "Site B" not in page.text  # not even in the site filter
        assert client.get(f"/alerts/{other_id}").status_code == 404
        assert client.get("/alerts?site=site-b").status_code == 400
        cams = client.get("/cameras").text
        assert "Gate 1" in cams and "B gate" not in cams
    with _web_login(live_service, "bmanager") as client:
        assert other_id in client.get("/alerts").text
        assert client.get(f"/alerts/{other_id}").status_code == 200


def test_language_from_accept_language_and_switch(live_service: LiveService) -> None:
    with _web_login(live_service, "manager", **{"Accept-Language": "zh-CN,zh;q=0.9"}) as client:
        page = client.get("/alerts")
        assert "实时告警" in page.text and '<html lang="zh-CN">' in page.text
        resp = client.get("/lang", params={"code": "en", "next": "/cameras"})
        assert resp.status_code == 303 and resp.headers["location"] == "/cameras"
        client.cookies.set("sg_lang", "en")
        assert "Live alerts" in client.get("/alerts").text


def test_times_follow_browser_time_zone(live_service: LiveService) -> None:
    # Three days ago at 08:15:02 UTC (ingest refuses times far from the clock).
    started = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).replace(
        hour=8, minute=15, second=2, microsecond=0
    )
    event = live_service.post_violation("gate-1", started_at=started.isoformat())
    day = started.strftime("%Y-%m-%d")
    with _web_login(live_service, "manager") as client:
        client.cookies.set("sg_tz", "Asia/Shanghai")
        page = client.get(f"/alerts/{event['event_id']}").text
        assert f"{day} 16:15:02" in page and "Asia/Shanghai" in page
        client.cookies.set("sg_tz", "Not/AZone")
        page = client.get(f"/alerts/{event['event_id']}").text
        assert f"{day} 08:15:02" in page and "UTC" in page


def test_filters_and_bad_filters(live_service: LiveService) -> None:
    harness = live_service.post_violation("crane-2", kind="no_harness")
    with _web_login(live_service, "manager") as client:
        page = client.get("/alerts", params={"kind": "no_harness", "camera": "crane-2"}).text
        assert '<option value="crane-2" selected>Crane 2</option>' in page
        ids = re.findall(r'<tr data-id="([^"]+)"', page)
        assert harness["event_id"] in ids
        assert all(i not in ids for i in live_service.posted if i != harness["event_id"])
        for bad in ({"kind": "no_shoes"}, {"status": "x"}, {"since": "yesterday"}):
            resp = client.get("/alerts", params=bad)
            assert resp.status_code == 400, bad
        assert client.get("/alerts", params={"page": 0}).status_code == 422
        assert client.get("/alerts/" + "x" * 300).status_code == 404
        assert client.get("/alerts/../../etc/passwd").status_code == 404


def test_reports_csv(live_service: LiveService) -> None:
    live_service.post_violation("gate-1")
    with _web_login(live_service, "manager") as client:
        page = client.get("/reports", params={"group": "kind", "period": "weekly"})
        assert page.status_code == 200 and "No helmet" in page.text
        resp = client.get("/reports.csv", params={"group": "camera", "days": 7})
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(resp.text.lstrip("\ufeff"))))
        assert rows and {"Gate 1"} <= {r["camera"] for r in rows}
        assert sum(int(r["violations"]) for r in rows) >= 1
        assert client.get("/reports.csv", params={"group": "shoe"}).status_code == 400
        assert client.get("/reports", params={"days": 0}).status_code == 422


def test_every_kind_is_listed_filtered_and_reported(live_service: LiveService) -> None:
    """The kinds of siteguard/kinds.py reach every surface: ingest, the filter's options, the
    badges, the report by kind (page in both languages, CSV) -- vest and danger zones too."""
    posted = {k: live_service.post_violation("gate-1", kind=k)["event_id"] for k in KIND_NAMES}
    with _web_login(live_service, "manager") as client:
        page = client.get("/alerts").text
        for kind in KIND_NAMES:
            assert f'<option value="{kind}" >{kind_name(kind, "en")}</option>' in page, kind
            assert f'class="badge kind-{kind}"' in page, kind
        page = client.get("/alerts", params={"kind": "no_vest"}).text
        ids = set(re.findall(r'<tr data-id="([^"]+)"', page))
        assert posted["no_vest"] in ids and posted["zone_intrusion"] not in ids
        report = client.get("/reports", params={"group": "kind", "days": 1}).text
        assert all(kind_name(k, "en") in report for k in KIND_NAMES)
        client.cookies.set("sg_lang", "zh")
        report = client.get("/reports", params={"group": "kind", "days": 1}).text
        assert "未穿反光背心" in report and "进入危险区域" in report
        resp = client.get("/reports.csv", params={"group": "kind", "days": 1})
        rows = {r["kind"]: r for r in csv.DictReader(io.StringIO(resp.text.lstrip("\ufeff")))}
        assert set(KIND_NAMES) <= set(rows) and int(rows["zone_intrusion"]["violations"]) >= 1


def test_admin_page_only_for_admins(live_service: LiveService) -> None:
    with _web_login(live_service, "manager") as client:
        assert client.get("/admin").status_code == 403
        assert client.get("/admin/cameras/gate-1/zones").status_code == 403
    with _web_login(live_service, "admin") as client:
        page = client.get("/admin")
        assert page.status_code == 200
        assert "edge-1" in page.text and "bmanager" in page.text
        assert client.get("/admin/cameras/gate-1/zones").status_code == 200
        assert client.get("/admin/cameras/nope/zones").status_code == 404


def test_logout_needs_csrf_and_ends_session(live_service: LiveService) -> None:
    with _web_login(live_service, "viewer") as client:
        assert client.post("/logout").status_code == 403
        page = client.get("/alerts").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        resp = client.post("/logout", data={"csrf_token": token})
        assert resp.status_code == 303
        assert client.get("/alerts").status_code == 303


def test_static_assets_are_local_and_cached(live_service: LiveService) -> None:
    with _web_login(live_service, "manager") as client:
        page = client.get("/alerts").text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert {a.split("?")[0] for a in assets} >= {"/static/css/app.css", "/static/js/alerts.js"}
        assert "http://" not in page and "https://" not in page  # no CDN, nothing external
        for asset in assets:
            resp = client.get(asset)
            assert resp.status_code == 200, asset
            assert "immutable" in resp.headers["cache-control"]
