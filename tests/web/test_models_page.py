"""Issue 19, item 6: the Model accuracy page at 1440 px, in Chromium.

Nothing runs past its card (Promote / Roll back, the chart's legend and labels), the figures a
manager reads are per-class AP of the judged classes (not the all-class mAP50), a second data set
shows as its own column, and a field precision from a handful of reviews reads as a count.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .test_browser import ARTIFACTS, CHROMIUM, _login, _page
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


def _review_two(live: LiveService) -> None:
    """Two alerts of v2 reviewed: one confirmed, one false alarm (50 % from 2 reviews)."""
    client, csrf = live.login("manager")
    try:
        for outcome in ("confirmed", "false_alarm"):
            event = live.post_violation("gate-1")
            resp = client.post(
                f"/api/v1/violations/{event['event_id']}/review",
                json={"outcome": outcome},
                headers={"X-CSRF-Token": csrf},
            )
            assert resp.status_code == 200, resp.text
    finally:
        client.close()


def _inside(page: object, inner: str, outer: str) -> list[str]:
    """Elements matching `inner` whose box runs past the right edge of their `outer` ancestor."""
    return page.evaluate(  # type: ignore[attr-defined]
        """([inner, outer]) => [...document.querySelectorAll(inner)].filter(el => {
             const box = el.getBoundingClientRect();
             const edge = el.closest(outer).getBoundingClientRect();
             return box.right > edge.right + 0.5 || box.left < edge.left - 0.5;
           }).map(el => el.outerHTML.slice(0, 120))""",
        [inner, outer],
    )


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_models_page_fits_at_1440_and_says_what_stands_behind_each_figure(
    browser: object, live_service: LiveService, lang: str
) -> None:
    if lang == "en":
        _review_two(live_service)
    context, page = _page(browser, live_service, width=1440, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "trainer")
    page.goto(f"/lang?code={lang}&next=/models")
    page.wait_for_url("**/models")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"models-1440-{lang}.png"), full_page=True)

    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    assert page.locator("#model-versions button").count() == 2  # Promote v1, Roll back v2
    assert _inside(page, "#model-versions button", ".card") == []
    assert _inside(page, "#model-versions, #model-field", ".card") == []
    assert _inside(page, "svg.chart text", "svg") == []  # legend and labels inside the chart

    headers = page.inner_text("#model-versions thead")
    assert "mAP50" not in headers  # the all-class figure that confused managers
    head = "头部（未戴安全帽） AP50" if lang == "zh" else "Head (no helmet) AP50"
    assert head.upper() in headers.upper().replace("\n", " ")
    v2 = page.locator('#model-versions tr[data-version="v2"]')
    assert v2.locator('[data-field="ap50-head"]').inner_text() == "95.0%"
    assert v2.locator('[data-field="ap50-helmet"]').inner_text() == "97.0%"
    assert v2.locator('[data-field="cross-source"]').inner_text().startswith("81.0%")
    assert page.locator('#model-versions [data-field="ap50-person"]').count() == 0

    precision = page.locator('#model-field tr[data-version="v2"] [data-field="field-precision"]')
    assert precision.get_attribute("data-reviewed") == "2"
    assert "%" not in precision.inner_text()  # 1 of 2 confirmed is not a 50 % result
    assert ("已审核 2 条" if lang == "zh" else "2 reviewed: too few") in precision.inner_text()
    legend = page.eval_on_selector_all(
        "svg.chart text.legend", "els => els.map(e => e.textContent)"
    )
    assert not any("精确率" in text or "precision" in text.lower() for text in legend)
    assert errors == [], errors
    context.close()
