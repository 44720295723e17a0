"""Security headers in a real browser (issue 18, item 5): every panel page works under the strict
Content-Security-Policy (no violation reported, the live stream connects, the editors draw), and
no page can be framed by another site (`frame-ancestors 'none'`, `X-Frame-Options: DENY`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .testkit import PASSWORD, LiveService, snapshot_jpeg, violation_event

CHROMIUM = Path("/usr/bin/chromium")
EVIL = "http://evil.example/"
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + e.sourceFile);
});
"""

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
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        yield browser
        browser.close()


def _logged_in(browser: object, live: LiveService, username: str):  # noqa: ANN202 - a context
    context = browser.new_context(base_url=live.base_url)  # type: ignore[attr-defined]
    context.set_default_timeout(20_000)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/alerts")
    return context, page


def _sample(live: LiveService) -> int:
    """A training sample (a confirmed alert with its raw frame), for the box editor page."""
    event = violation_event("gate-1")
    frame = snapshot_jpeg(event)
    with live.client() as client:
        r = client.post(
            "/api/v1/violations",
            headers={"X-API-Key": live.api_key},
            data={"event": json.dumps(event)},
            files={
                "snapshot": ("s.jpg", frame, "image/jpeg"),
                "frame": ("f.jpg", frame, "image/jpeg"),
            },
        )
        assert r.status_code == 201, r.text
    manager, token = live.login("manager")
    r = manager.post(
        f"/api/v1/violations/{event['event_id']}/review",
        json={"outcome": "confirmed"},
        headers={"X-CSRF-Token": token},
    )
    manager.close()
    assert r.status_code == 200, r.text
    trainer, _ = live.login("trainer")
    samples = trainer.get("/api/v1/samples").json()["items"]
    trainer.close()
    return next(s["id"] for s in samples if s["event_id"] == event["event_id"])


def test_panel_pages_work_under_the_content_security_policy(
    browser: object, live_service: LiveService
) -> None:
    event = live_service.post_violation("gate-1")
    sample = _sample(live_service)
    context, page = _logged_in(browser, live_service, "admin")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security" in m.text else None)
    try:
        pages = {
            "/alerts": "#live-status[data-state='open']",
            f"/alerts/{event['event_id']}": "#review-form",
            "/cameras": "main",
            "/models": "main",
            "/reports": "main",
            "/admin": "main",
            "/admin/cameras/gate-1/zones": "#zone-editor",
            "/samples": "main",
            f"/samples/{sample}": "#sample-frame",
        }
        for path, ready in pages.items():
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            headers = response.headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["x-content-type-options"] == "nosniff", path
            page.wait_for_selector(ready, state="attached")
            page.wait_for_load_state("networkidle")
            violations = page.evaluate("window.__csp")
            assert violations == [], (path, violations)
        # The box editor drew its boxes (script ran, its inline label styles were allowed).
        page.wait_for_selector("#sample-frame")
        assert page.locator("svg rect, svg text").count() > 0
        assert errors == [], errors
    finally:
        context.close()


def _serving(html: str):  # noqa: ANN202 - a Playwright route handler
    return lambda route: route.fulfill(body=html, content_type="text/html")


def test_pages_cannot_be_framed_by_another_site(browser: object, live_service: LiveService) -> None:
    context, page = _logged_in(browser, live_service, "admin")
    try:
        for path in ("/login", "/admin", "/alerts"):
            hostile = (
                f'<html><body><h1>win a prize</h1><iframe src="{live_service.base_url}{path}"'
                ' width="800" height="600"></iframe></body></html>'
            )
            page.route(EVIL, _serving(hostile))
            page.goto(EVIL)
            deadline = time.monotonic() + 10
            while len(page.frames) < 2 or page.frames[1].url in ("", "about:blank"):
                assert time.monotonic() < deadline, "the frame never navigated"
                page.wait_for_timeout(100)
            framed = page.frames[1]
            assert not framed.url.startswith(live_service.base_url), (path, framed.url)
            page.unroute(EVIL)
        # The same pages open normally at the top level.
        assert page.goto("/admin").status == 200
    finally:
        context.close()
    with httpx.Client(base_url=live_service.base_url) as client:
        assert client.get("/login").headers["x-frame-options"] == "DENY"
