"""Issue 17.7 in Chromium: one photo with seven bare heads is one incident on the panel (count,
expandable to the seven per-worker rows, reviewed at once, each record with its own review and
audit entry), alerts of one moment arriving live join it, and the detail view shows whose alert
it is."""

from __future__ import annotations

import datetime as dt

import pytest

from service.models import utcnow

from .test_browser import CHROMIUM, _login, _page, _wait_live, browser
from .testkit import LiveService

__all__ = ["browser"]  # the module-scoped Chromium of test_browser, shared here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]


def _photo(heads: int, first_track: int) -> list[dict]:
    """One frame's detections: `heads` bare heads (each its worker's track) and a helmet."""
    boxes = [
        {"class": "head", "confidence": round(0.6 + 0.04 * i, 4),
         "xyxy": [20.0 + 88 * i, 60.0, 70.0 + 88 * i, 115.0], "track_id": first_track + i}
        for i in range(heads)
    ]  # fmt: skip
    boxes.append({"class": "helmet", "confidence": 0.9, "xyxy": [300.0, 200.0, 350.0, 250.0],
                  "track_id": first_track + 100})  # fmt: skip
    return boxes


def _post_photo(
    live: LiveService, at: dt.datetime, heads: int, first_track: int, camera: str = "gate-1"
) -> list[dict]:
    """One violation per bare head, as the detector opens them from one frame."""
    boxes = _photo(heads, first_track)
    return [
        live.post_violation(
            camera,
            started_at=(at + dt.timedelta(milliseconds=100 * i)).isoformat(),
            track_id=first_track + i,
            confidence=boxes[i]["confidence"],
            boxes=boxes,
        )  # fmt: skip
        for i in range(heads)
    ]


def _reviews(live: LiveService, events: list[dict]) -> dict[str, list[str]]:
    """Each alert's reviews as the API stores them."""
    client, _ = live.login("admin")
    try:
        stored = [client.get(f"/api/v1/violations/{e['event_id']}").json() for e in events]
    finally:
        client.close()
    return {v["event_id"]: [r["outcome"] for r in v["reviews"]] for v in stored}


def _audited(live: LiveService) -> list[str]:
    """The targets of every "review" audit entry."""
    client, _ = live.login("admin")
    try:
        entries = client.get("/api/v1/audit", params={"action": "review", "limit": 1000}).json()
    finally:
        client.close()
    return [e["target"] for e in entries]


def test_one_photo_is_one_incident_reviewed_at_once(
    browser: object, live_service: LiveService, screenshots: object
) -> None:
    t0 = utcnow() - dt.timedelta(minutes=5)
    workers = _post_photo(live_service, t0, heads=7, first_track=101)
    crane = live_service.post_violation("crane-2", started_at=t0.isoformat())
    later = live_service.post_violation(
        "gate-1", started_at=(t0 + dt.timedelta(seconds=30)).isoformat()
    )
    key = workers[0]["event_id"]  # the incident is named by its first alert
    context, page = _page(browser, live_service, width=1440, height=900)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "manager")
    _wait_live(page)
    open_before = int(page.inner_text("#kpi-open"))

    incident = page.locator(f'#alert-rows tr.incident[data-incident="{key}"]')
    members = page.locator(f'#alert-rows tr[data-id][data-incident="{key}"]')
    assert incident.count() == 1 and members.count() == 7
    summary = incident.inner_text()
    assert "7 alerts" in summary and "No helmet × 7" in summary and "Unreviewed × 7" in summary
    assert all(not members.nth(i).is_visible() for i in range(7))  # collapsed: one row
    shown = page.eval_on_selector_all(
        "#alert-rows > tr:not([hidden])",
        "rows => rows.map(r => r.dataset.id || r.dataset.incident)",
    )
    assert shown[:3] == [later["event_id"], key, crane["event_id"]]  # newest first, by moment

    expand = incident.get_by_role("button", name="7 alerts")
    expand.click()
    assert expand.get_attribute("aria-expanded") == "true"
    assert all(members.nth(i).is_visible() for i in range(7))
    screenshots.take(page.locator("#alerts"), "alerts-incident.png")  # type: ignore[attr-defined]

    # One worker decided on its own (f), then the incident at once (c): the decision stays.
    lone = workers[3]["event_id"]
    page.locator(f'#alert-rows tr[data-id="{lone}"] .c-zone').click()
    page.keyboard.press("f")
    page.locator(f'#alert-rows tr[data-id="{lone}"] .badge.status-false_alarm').wait_for()
    incident.locator(".c-zone").click()
    page.keyboard.press("c")
    statuses = incident.locator('[data-field="statuses"]')
    statuses.filter(has_text="Confirmed × 6").wait_for()
    assert "False alarm × 1" in statuses.inner_text()
    assert incident.locator('[data-field="actions"]').is_hidden()  # nothing left to decide
    page.wait_for_function(
        f"() => document.getElementById('kpi-open').textContent === '{open_before - 7}'"
    )

    reviews = _reviews(live_service, workers)
    assert reviews.pop(lone) == ["false_alarm"]
    assert all(r == ["confirmed"] for r in reviews.values()), reviews  # one review each
    targets = _audited(live_service)
    assert all(targets.count(w["event_id"]) == 1 for w in workers)  # one audit entry each

    page.reload()  # the server renders the same incident from the stored records
    incident.locator('[data-field="statuses"]', has_text="Confirmed × 6").wait_for()
    assert members.count() == 7 and not members.first.is_visible()
    assert incident.locator('[data-field="actions"]').is_hidden()
    incident.locator(".c-zone").click()
    page.keyboard.press("Enter")  # Enter on an incident shows its alerts
    assert members.first.is_visible()
    page.keyboard.press("Enter")
    assert not members.first.is_visible()
    assert errors == [], errors
    context.close()

    viewer, _ = live_service.login("viewer")  # viewers see the incident, not its review buttons
    try:
        html = viewer.get("/alerts").text
    finally:
        viewer.close()
    assert f'data-incident="{key}"' in html and "incident-actions" not in html


def test_alerts_of_one_moment_arriving_live_join_one_incident(
    browser: object, live_service: LiveService
) -> None:
    context, page = _page(browser, live_service, width=1440, height=900)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "manager")
    _wait_live(page)
    now = utcnow()
    first, second, third = _post_photo(live_service, now, heads=3, first_track=201)
    apart = live_service.post_violation("crane-2", started_at=now.isoformat())
    key = first["event_id"]
    incident = page.locator(f'#alert-rows tr.incident[data-incident="{key}"]')
    incident.locator('[data-field="count"]', has_text="3 alerts").wait_for()
    members = page.locator(f'#alert-rows tr[data-id][data-incident="{key}"]')
    assert members.count() == 3 and not members.first.is_visible()
    late = _post_photo(live_service, now + dt.timedelta(seconds=1), heads=1, first_track=204)[0]
    incident.locator('[data-field="count"]', has_text="4 alerts").wait_for()
    order = page.eval_on_selector_all(
        "#alert-rows > tr",
        "rows => rows.map(r => r.dataset.id || 'incident:' + r.dataset.incident)",
    )
    at = order.index(f"incident:{key}")  # the summary row, then its alerts, newest first
    assert order[at + 1 : at + 5] == [e["event_id"] for e in (late, third, second, first)]
    other = page.locator(f'#alert-rows tr[data-id="{apart["event_id"]}"]')
    other.wait_for()
    assert other.get_attribute("data-incident") is None  # another camera: a row of its own

    incident.get_by_role("button", name="All false alarms").click()
    incident.locator('[data-field="statuses"]', has_text="False alarm × 4").wait_for()
    for event in (first, second, third, late):  # the stream's review events re-render each row ...
        page.locator(
            f'#alert-rows tr[data-id="{event["event_id"]}"] .c-status', has_text="manager"
        ).wait_for(state="attached")
    assert members.count() == 4 and not members.first.is_visible()  # ... which stay grouped
    reviews = _reviews(live_service, [first, second, third, late])
    assert all(r == ["false_alarm"] for r in reviews.values()), reviews
    page.reload()
    assert page.locator(f'#alert-rows tr.incident[data-incident="{key}"]').count() == 1
    assert members.count() == 4
    assert errors == [], errors
    context.close()


def test_the_detail_view_shows_whose_alert_it_is(
    browser: object, live_service: LiveService, screenshots: object
) -> None:
    at = utcnow() - dt.timedelta(minutes=20)
    workers = _post_photo(live_service, at, heads=3, first_track=301)
    untracked = [{k: v for k, v in b.items() if k != "track_id"} for b in _photo(2, 0)]
    older = live_service.post_violation(  # an event whose boxes carry no track ids
        "gate-1", started_at=(at - dt.timedelta(minutes=20)).isoformat(), track_id=None,
        confidence=untracked[1]["confidence"], boxes=untracked,
    )  # fmt: skip
    unknown = live_service.post_violation(
        "gate-1", started_at=(at - dt.timedelta(minutes=40)).isoformat(), confidence=0.5
    )
    context, page = _page(browser, live_service, width=1440, height=900)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "manager")

    def own_x() -> float:
        return float(page.locator("#box-overlay rect.own").get_attribute("x"))

    middle = workers[1]
    page.goto(f"/alerts/{middle['event_id']}")
    assert page.locator("#box-overlay rect.own").count() == 1
    assert own_x() == middle["boxes"][1]["xyxy"][0]  # its own head, not the others
    assert page.locator("#box-overlay rect.other").count() == 3  # two heads and a helmet
    assert (page.locator("#box-overlay text.own").text_content() or "").endswith("· This alert")
    note = page.inner_text("#own-worker")
    assert "Head (no helmet)" in note and "other 3 detections" in note
    same = page.locator("#same-moment li")
    assert sorted(same.evaluate_all("els => els.map(e => e.dataset.id)")) == sorted(
        w["event_id"] for w in (workers[0], workers[2])
    )
    page.wait_for_function(
        "() => { const i = document.querySelector('#snapshot img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    screenshots.take(page.locator("main"), "alert-detail-worker.png")  # type: ignore[attr-defined]
    page.locator(f'#same-moment li[data-id="{workers[2]["event_id"]}"] a').click()
    page.wait_for_url(f"**/alerts/{workers[2]['event_id']}")
    assert own_x() == workers[2]["boxes"][2]["xyxy"][0]

    page.goto(f"/alerts/{older['event_id']}")  # no track ids: the box of its confidence
    assert own_x() == untracked[1]["xyxy"][0]
    page.goto(f"/alerts/{unknown['event_id']}")  # nothing to tell by: said, not guessed
    assert page.locator("#box-overlay rect.own").count() == 0
    assert "did not record" in page.inner_text("#own-worker")
    assert page.locator("#same-moment").count() == 0
    assert errors == [], errors
    context.close()
