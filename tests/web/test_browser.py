"""The dashboard in a real browser (Debian chromium via Playwright) against a real service.

A manager logs in, a detector posts violations through the API, they appear live (SSE) within
1 s, one is confirmed with the keyboard, one is opened and marked false alarm; stats, reports
and the accuracy page reflect it. A viewer sees no review buttons and is refused (403) when
trying anyway. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.models import utcnow

from .testkit import PASSWORD, LiveService

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LIVE_BUDGET_S = 1.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def _page(browser: object, live: LiveService, *, width: int = 1920, height: int = 1080, **kw):
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=live.base_url,
        viewport={"width": width, "height": height},
        timezone_id="Asia/Shanghai",
        **kw,
    )
    context.set_default_timeout(20_000)
    return context, context.new_page()


def _login(page: object, username: str) -> None:
    page.goto("/login")  # type: ignore[attr-defined]
    page.get_by_label("User name").fill(username)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/alerts")  # type: ignore[attr-defined]


def _wait_live(page: object) -> None:
    page.wait_for_selector('#live-status[data-state="open"]')  # type: ignore[attr-defined]


def _appear_within(
    page: object, live: LiveService, camera: str = "gate-1", **event: object
) -> tuple[dict, float, float]:
    """Post a violation as the detector does and time its row showing on the open page.

    Returns (event, seconds from the API's 201 to the row, seconds from starting the POST).
    The first is the live path this page owns (stream + render); the second adds the ingest
    request itself, whose budget is the backend's.
    """
    page.evaluate(  # type: ignore[attr-defined]
        """() => { window.__seen = {}; new MutationObserver(() => {
               document.querySelectorAll('#alert-rows tr[data-id]').forEach(r => {
                 const id = r.dataset.id;
                 if (!(id in window.__seen)) window.__seen[id] = performance.now();
               });
             }).observe(document.getElementById('alert-rows'), {childList: true}); }"""
    )
    before = page.evaluate("performance.now()")  # type: ignore[attr-defined]
    sent = live.post_violation(camera, **event)
    accepted = page.evaluate("performance.now()")  # type: ignore[attr-defined]
    row = f'#alert-rows tr[data-id="{sent["event_id"]}"]'
    page.wait_for_selector(row, timeout=15_000)  # type: ignore[attr-defined]
    seen = page.evaluate(f"window.__seen[{sent['event_id']!r}]")  # type: ignore[attr-defined]
    return sent, max(0.0, seen - accepted) / 1000.0, (seen - before) / 1000.0


def test_live_review_flow(browser: object, live_service: LiveService) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context, page = _page(browser, live_service)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Some history first, so the panel shows a realistic mix (older alerts, two cameras).
    for minutes, camera, kind, zone in (
        (42, "crane-2", "no_harness", "roof-edge"),
        (17, "gate-1", "no_helmet", "site"),
        (6, "crane-2", "no_helmet", "site"),
    ):
        started = (utcnow() - dt.timedelta(minutes=minutes)).isoformat()
        live_service.post_violation(
            camera, kind=kind, zone=zone, started_at=started, duration_s=minutes * 1.7,
            confidence=0.6 + minutes / 200,
        )  # fmt: skip
    _login(page, "manager")
    _wait_live(page)
    assert "Asia/Shanghai" in page.inner_text("main")  # times in the browser's zone
    kpi_false_before = int(page.inner_text("#kpi-false"))

    first, latency_1, total_1 = _appear_within(page, live_service, confidence=0.74)
    # Another camera: two alerts of one camera and moment would share an incident row
    # (test_incidents.py); this flow reviews lone alerts.
    second, latency_2, total_2 = _appear_within(
        page, live_service, "crane-2", kind="no_harness", zone="scaffold-3", duration_s=12.8
    )
    (ARTIFACTS / "live-latency.txt").write_text(
        f"after 201: {latency_1:.3f} s, {latency_2:.3f} s; "
        f"from POST start: {total_1:.3f} s, {total_2:.3f} s\n"
    )
    # The budget counts from the detector starting its POST (ingest included), the strict reading.
    assert total_1 < LIVE_BUDGET_S, f"first alert took {total_1:.2f} s to appear"
    assert total_2 < LIVE_BUDGET_S, f"second alert took {total_2:.2f} s to appear"
    assert latency_1 <= total_1 and latency_2 <= total_2
    top = page.locator("#alert-rows tr").first
    assert top.get_attribute("data-id") == second["event_id"]  # newest first
    assert "No harness" in top.inner_text() and "scaffold-3" in top.inner_text()
    assert "v2" in top.inner_text() and "81%" in top.inner_text()
    page.wait_for_function(  # the thumbnail really loads (served by the API, site-checked)
        "() => { const i = document.querySelector('#alert-rows tr img.thumb');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    page.screenshot(path=str(ARTIFACTS / "alerts-panel.png"))

    # Keyboard review: j selects the newest row, j again the older one, c confirms it.
    page.locator("body").press("j")
    page.locator("body").press("j")
    selected = page.locator('#alert-rows tr[aria-selected="true"]')
    assert selected.get_attribute("data-id") == first["event_id"]
    page.locator("body").press("c")
    first_row = page.locator(f'#alert-rows tr[data-id="{first["event_id"]}"]')
    first_row.locator(".badge.status-confirmed").wait_for()
    # the stream's review event re-renders the row from the server, naming the reviewer
    page.locator(
        f'#alert-rows tr[data-id="{first["event_id"]}"] .c-status', has_text="manager"
    ).wait_for()

    # Open the second alert and mark it a false alarm with a comment.
    page.locator(f'#alert-rows tr[data-id="{second["event_id"]}"] a.open').click()
    page.wait_for_url(f"**/alerts/{second['event_id']}")
    page.wait_for_function(
        "() => { const i = document.querySelector('#snapshot img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.locator("#box-overlay rect").count() == 3
    page.get_by_label("Comment (optional)").fill("worker wears a harness; occluded")
    page.get_by_role("button", name="False alarm").click()
    page.locator("#current-status .status-false_alarm").wait_for()
    history = page.inner_text("#review-history")
    assert "manager" in history and "occluded" in history
    page.screenshot(path=str(ARTIFACTS / "alert-detail.png"), full_page=True)

    # Stats: the panel's KPI, the report, and field precision per model version.
    page.goto("/alerts")
    assert int(page.inner_text("#kpi-false")) == kpi_false_before + 1
    page.wait_for_function(
        "() => [...document.querySelectorAll('#alert-rows img.thumb')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(ARTIFACTS / "alerts-panel-reviewed.png"))
    if os.environ.get("SITEGUARD_UPDATE_SCREENSHOTS"):  # refresh the README's picture
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "alerts-panel.png"))
    page.goto("/reports?group=kind&period=daily&days=1")
    assert int(page.inner_text("#rep-false")) >= 1 and int(page.inner_text("#rep-confirmed")) >= 1
    page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)
    page.goto("/models")
    precision = page.locator('#model-field tr[data-version="v2"] [data-field="field-precision"]')
    reviewed = int(precision.get_attribute("data-reviewed"))
    assert reviewed >= 2
    # a handful of reviews is a count, not a result (issue 19: "50 % from 2 reviews")
    assert "%" not in precision.inner_text() and f"{reviewed} reviewed" in precision.inner_text()
    assert page.locator("svg.chart circle").count() >= 5  # 2 versions x 2 benchmark + field
    assert page.locator("svg.chart .marked-label").text_content() == "active"
    page.screenshot(path=str(ARTIFACTS / "models.png"), full_page=True)
    page.goto("/cameras")
    page.screenshot(path=str(ARTIFACTS / "cameras.png"), full_page=True)
    assert errors == [], errors
    context.close()


def test_viewer_cannot_review(browser: object, live_service: LiveService) -> None:
    event = live_service.post_violation("gate-1")
    context, page = _page(browser, live_service)
    _login(page, "viewer")
    page.goto(f"/alerts/{event['event_id']}")
    assert page.locator("#review-form").count() == 0
    assert page.get_by_role("button", name="False alarm").count() == 0
    assert "can view alerts but not review" in page.inner_text("main")
    status = page.evaluate(
        """async (id) => (await fetch(`/api/v1/violations/${id}/review`, {
             method: 'POST', credentials: 'same-origin',
             headers: {'Content-Type': 'application/json', 'X-CSRF-Token': SG.csrf()},
             body: JSON.stringify({outcome: 'false_alarm'})})).status""",
        event["event_id"],
    )
    assert status == 403
    page.goto("/alerts")
    _wait_live(page)
    page.locator("body").press("j")
    page.locator("body").press("f")  # keyboard review is off for viewers
    row = page.locator(f'#alert-rows tr[data-id="{event["event_id"]}"]')
    assert row.locator(".badge.status-unreviewed").count() == 1
    # The detector closes the episode: the open row's duration updates live.
    with live_service.client() as client:
        resp = client.post(
            f"/api/v1/violations/{event['event_id']}/end",
            json={"ended_at": utcnow().isoformat(), "duration_s": 95.0},
            headers={"X-API-Key": live_service.api_key},
        )
        assert resp.status_code == 200, resp.text
    row.locator(".c-duration", has_text="1 min 35 s").wait_for()
    context.close()


def test_phone_layout_and_chinese(browser: object, live_service: LiveService) -> None:
    live_service.post_violation("gate-1")
    context, page = _page(
        browser, live_service, width=390, height=844, locale="zh-CN", is_mobile=True
    )
    page.goto("/login")
    assert page.get_by_role("button", name="登录").count() == 1
    page.get_by_label("用户名").fill("manager")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/alerts")
    _wait_live(page)
    assert "实时告警" in page.inner_text("h1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"page scrolls sideways on a phone: {width}px"
    page.screenshot(path=str(ARTIFACTS / "alerts-phone-zh.png"), full_page=False)
    context.close()


def test_trainer_promotes_and_rolls_back(browser: object, live_service: LiveService) -> None:
    context, page = _page(browser, live_service)
    _login(page, "trainer")
    page.goto("/models")

    def row(version: str) -> object:
        return page.locator(f'#model-versions tr[data-version="{version}"]')

    # v1 is worse than the active v2 on the benchmark: the backend's promotion gate refuses,
    # and the page says why instead of failing silently.
    row("v1").get_by_role("button", name="Promote").click()
    page.locator("#admin-result.error").wait_for()
    assert "409" in page.inner_text("#admin-result") and "gate" in page.inner_text("#admin-result")
    assert row("v2").locator(".badge.model-active").count() == 1

    page.once("dialog", lambda dialog: dialog.accept())  # "Roll back v2? ..."
    row("v2").get_by_role("button", name="Roll back").click()
    page.wait_for_load_state("load")
    row("v1").locator(".badge.model-active").wait_for()
    row("v2").get_by_role("button", name="Promote").click()  # better than v1: passes
    page.wait_for_load_state("load")
    row("v2").locator(".badge.model-active").wait_for()
    assert page.locator('.history li[data-action="model.rollback"]').count() >= 1
    assert page.locator('.history li[data-action="model.promote"]').count() >= 1
    assert "Rolled back" in page.inner_text(".history")
    context.close()
    context, page = _page(browser, live_service)
    _login(page, "manager")
    page.goto("/models")
    assert page.locator("#model-versions button").count() == 0  # managers cannot promote
    context.close()


def test_admin_sites_keys_users_and_zone_editor(browser: object, live_service: LiveService) -> None:
    live_service.post_violation("gate-1")  # gives the zone editor a 640x360 snapshot
    context, page = _page(browser, live_service)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "admin")
    page.goto("/admin")

    page.fill("#s-id", "site-c")
    page.fill("#s-name", "工地 C")
    page.locator("#s-id").evaluate("el => el.form.requestSubmit()")
    page.locator("#sites td", has_text="工地 C").wait_for()

    page.fill("#k-name", "edge-9")
    page.select_option("#k-site", "site-a")
    page.locator("#k-name").evaluate("el => el.form.requestSubmit()")
    page.locator("#new-key:not([hidden])").wait_for()
    secret = page.inner_text("#new-key-value").strip()
    assert secret.startswith("sg_")
    with live_service.client() as client:  # the new key works for a detector right away
        beat = {"detector_id": "edge-9", "cameras": [{"camera_id": "gate-1", "state": "online"}]}
        resp = client.post("/api/v1/heartbeats", json=beat, headers={"X-API-Key": secret})
        assert resp.status_code == 200, resp.text

    page.goto("/admin")
    page.fill("#u-name", "viewer2")
    page.fill("#u-pass", "another-pass-9")
    page.select_option("#u-role", "viewer")
    page.select_option("#u-sites", ["site-a"])
    page.locator("#u-name").evaluate("el => el.form.requestSubmit()")
    page.locator('#users tr[data-user="viewer2"]').wait_for()
    row = page.locator('#users tr[data-user="viewer2"]')
    page.once("dialog", lambda dialog: dialog.accept())  # "Change the role of viewer2 ...?"
    row.locator("select").select_option("manager")  # saved once confirmed
    page.wait_for_load_state("load")
    saved = '#users tr[data-user="viewer2"] option[value="manager"][selected]'  # server-rendered
    page.locator(saved).wait_for(state="attached")
    page.once("dialog", lambda dialog: dialog.accept())  # "Disable viewer2? ..."
    page.locator('#users tr[data-user="viewer2"]').get_by_role("button", name="Disable").click()
    page.locator('#users tr[data-user="viewer2"] .badge.state-offline').wait_for()
    with live_service.client() as client:  # a disabled user can no longer log in
        resp = client.post("/login", data={"username": "viewer2", "password": "another-pass-9"})
        assert resp.status_code == 401

    page.fill("#u-name", "viewer2")  # a duplicate: the API's refusal is shown, not swallowed
    page.fill("#u-pass", "another-pass-9")
    page.locator("#u-name").evaluate("el => el.form.requestSubmit()")
    page.locator("#admin-result.error").wait_for()
    assert "viewer2" in page.inner_text("#admin-result")  # in words, naming the field
    assert "already taken" in page.inner_text("#admin-result")
    assert page.locator('#users tr[data-user="viewer2"]').count() == 1

    page.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)
    page.goto("/admin/cameras/gate-1/zones")
    page.wait_for_function(
        "() => { const i = document.querySelector('#zone-editor img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    box = page.locator("#zone-svg").bounding_box()
    corners = [(0.1, 0.2), (0.6, 0.2), (0.6, 0.9), (0.1, 0.9)]
    for fx, fy in corners:
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.fill("#zone-name", "scaffold")
    page.check('input[name="ppe"][value="harness"]')
    page.get_by_role("button", name="Save zone").click()  # one button: drawn and saved
    page.locator("#zone-result.ok").wait_for()
    assert page.locator("#zone-svg polygon").count() == 1
    page.screenshot(path=str(ARTIFACTS / "zone-editor.png"), full_page=True)

    camera = page.evaluate("async () => (await fetch('/api/v1/cameras/gate-1')).json()")
    (zone,) = camera["zones"]
    assert zone["name"] == "scaffold" and zone["required_ppe"] == ["helmet", "harness"]
    expected = [(fx * 640, fy * 360) for fx, fy in corners]
    for (x, y), (ex, ey) in zip(zone["polygon"], expected, strict=True):
        assert abs(x - ex) <= 3 and abs(y - ey) <= 3
    page.reload()
    assert page.locator("#zone-svg polygon").count() == 1  # saved zones load back
    assert errors == [], errors
    context.close()
