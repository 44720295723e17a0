"""Issue 19: the frictions a newcomer met on the panel, each checked in Chromium.

Every test also fails on a console error of the pages it opens.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .test_browser import CHROMIUM, _login, _page, _wait_live
from .testkit import LiveService

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def _watch(page: object) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # type: ignore[attr-defined]
    return errors


def test_the_camera_name_in_an_alert_row_opens_the_camera(
    browser: object, live_service: LiveService
) -> None:
    """Item 12: the camera link went to the alert; now to the camera's row on Cameras."""
    old = live_service.post_violation("gate-1")
    context, page = _page(browser, live_service, width=1440, height=900)
    errors = _watch(page)
    _login(page, "manager")
    _wait_live(page)
    rendered = page.locator(f'#alert-rows tr[data-id="{old["event_id"]}"] a.cam')
    assert rendered.get_attribute("href") == "/cameras#camera-gate-1"
    live = live_service.post_violation("crane-2")  # a row the stream adds
    row = page.locator(f'#alert-rows tr[data-id="{live["event_id"]}"]')
    row.wait_for()
    assert row.locator("a.cam").get_attribute("href") == "/cameras#camera-crane-2"
    row.locator("a.cam").click()
    page.wait_for_url("**/cameras#camera-crane-2")
    assert page.locator("tr#camera-crane-2:target").count() == 1
    page.goto(f"/alerts/{old['event_id']}")  # the detail page names the camera the same way
    assert page.locator('dl.facts a[href="/cameras#camera-gate-1"]').count() == 1
    assert errors == [], errors
    context.close()
