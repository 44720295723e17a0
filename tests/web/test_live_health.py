"""Issue 19: a dead camera shows where managers look, on the live panel, within 10 s.

A real service with its housekeeping on (default `camera_offline_after_s`), a detector's
heartbeats through the API, a manager's live panel in Chromium: while the heartbeats come the
panel counts the cameras online; when they stop, a banner names the cameras and the silent
detector and the count drops, with no reload, at most 10 s after the last heartbeat; when
they resume the banner goes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from service.models import utcnow

from .test_browser import ARTIFACTS, CHROMIUM, _login, _page, _wait_live
from .testkit import LiveService, running_service

STALL_BOUND_S = 10.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def housekept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with running_service(tmp_path_factory.mktemp("health"), housekeeping=True) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


class Heartbeats:
    """A detector's heartbeat thread (every second) for site-a's two cameras."""

    def __init__(self, live: LiveService) -> None:
        self.live, self.last_at = live, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def beat(self) -> None:
        cams = [{"camera_id": c, "state": "online", "fps": 5.0,
                 "last_frame_at": utcnow().isoformat(), "frames_dropped": 0}
                for c in ("gate-1", "crane-2")]  # fmt: skip
        resp = httpx.post(
            f"{self.live.base_url}/api/v1/heartbeats",
            headers={"X-API-Key": self.live.api_key},
            json={"detector_id": "edge-1", "model_version": "v2", "cameras": cams},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        self.last_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.beat()

    def __enter__(self) -> Heartbeats:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_stopped_detector_shows_on_the_live_panel_within_the_bound(
    browser: object, housekept: LiveService
) -> None:
    context, page = _page(browser, housekept, width=1440, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with Heartbeats(housekept) as beats:
        _login(page, "manager")
        _wait_live(page)
        page.wait_for_function("document.getElementById('kpi-cameras').textContent === '2/2'")
        assert page.locator("#health-banner").count() == 0
    stopped_at = beats.last_at  # the detector's last word

    page.wait_for_selector('#health-banner li[data-camera="gate-1"][data-state="offline"]',
                           timeout=20_000)  # fmt: skip
    shown_after = time.monotonic() - stopped_at
    banner = page.inner_text("#health-banner")
    assert "Gate 1" in banner and "Crane 2" in banner and "edge-1" in banner
    assert "2 of 2 cameras are not watched" in banner
    assert page.inner_text("#kpi-cameras") == "0/2"
    assert page.get_attribute("#live-status", "data-state") == "open"  # the stream is fine
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-health-offline.png"))
    # The bound holds with room to spare (6 s + a 1 s tick); on a box whose run queue is several
    # times its cores (other jobs beside the suite) every step waits for a CPU, so allow twice.
    busy = os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    (ARTIFACTS / "live-health-latency.txt").write_text(
        f"offline shown {shown_after:.2f} s after the last heartbeat (load {os.getloadavg()})\n"
    )
    bound = STALL_BOUND_S * (2 if busy else 1)
    assert shown_after <= bound, f"offline shown {shown_after:.1f} s after the last beat"
    page.locator('#health-banner a[href="/cameras#camera-gate-1"]').wait_for()

    with Heartbeats(housekept):  # the detector is back: the banner goes by itself
        page.wait_for_selector("#health-banner", state="detached", timeout=15_000)
        assert page.inner_text("#kpi-cameras") == "2/2"
    assert errors == [], errors
    context.close()
