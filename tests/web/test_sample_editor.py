"""The trainers' sample pages: the list and the box editor, over HTTP and in a real browser.

Samples are made as in production: a detector posts a violation with its full frame, a manager
reviews it. The editor's save goes through `PUT /api/v1/samples/{id}/labels`, so the browser test
reads the labels back from the API and compares them with what it did on the page.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from .test_browser import ARTIFACTS, CHROMIUM, _login, _page, browser
from .testkit import PASSWORD, LiveService, snapshot_jpeg, violation_event

__all__ = ["browser"]  # the module-scoped chromium fixture, shared with test_browser

FRAME_W, FRAME_H = 640, 360
HEAD, HELMET = [300.0, 60.0, 350.0, 120.0], [100.0, 80.0, 150.0, 130.0]  # as violation_event


@contextlib.contextmanager
def _web_login(
    live: LiveService, username: str, password: str = PASSWORD
) -> Iterator[httpx.Client]:
    """A client logged in through the login form, as a browser would."""
    with live.client() as client:
        resp = client.post("/login", data={"username": username, "password": password})
        assert resp.status_code == 303, resp.text
        yield client


def _make_sample(live: LiveService, *, site_b: bool = False) -> int:
    """A reviewed violation with a full frame (a training sample); returns the sample id."""
    event = violation_event("b-gate" if site_b else "gate-1")
    jpeg = snapshot_jpeg(event)
    with live.client() as client:
        resp = client.post(
            "/api/v1/violations",
            headers={"X-API-Key": live.other_site_key if site_b else live.api_key},
            data={"event": json.dumps(event)},
            files={
                "snapshot": ("s.jpg", jpeg, "image/jpeg"),
                "frame": ("f.jpg", jpeg, "image/jpeg"),
            },
        )
        assert resp.status_code == 201, resp.text
    reviewer, csrf = live.login("bmanager" if site_b else "manager")
    with contextlib.closing(reviewer):
        resp = reviewer.post(
            f"/api/v1/violations/{event['event_id']}/review",
            json={"outcome": "confirmed"},
            headers={"X-CSRF-Token": csrf},
        )
        assert resp.status_code == 200, resp.text
    trainer, _ = live.login("trainer")
    with contextlib.closing(trainer):
        items = trainer.get("/api/v1/samples").json()["items"]
    (sample,) = [s for s in items if s["event_id"] == event["event_id"]]
    return int(sample["id"])


@pytest.fixture(scope="module")
def samples(live_service: LiveService) -> dict[str, int]:
    """One sample per site and a trainer of site A only."""
    admin, csrf = live_service.login("admin")
    with contextlib.closing(admin):
        resp = admin.post(
            "/api/v1/users",
            json={"username": "trainer-a", "password": PASSWORD, "role": "trainer",
                  "sites": ["site-a"]},
            headers={"X-CSRF-Token": csrf},
        )  # fmt: skip
        assert resp.status_code in (200, 201), resp.text
    return {"a": _make_sample(live_service), "b": _make_sample(live_service, site_b=True)}


def _wait_for_frame(page) -> None:  # noqa: ANN001 - a Playwright page
    """Until the sample's frame has loaded (its boxes are drawn over it)."""
    page.wait_for_function(
        "() => { const i = document.getElementById('sample-frame');"
        " return i.complete && i.naturalWidth > 0; }"
    )


def test_trainers_see_the_list_and_the_editor(live_service: LiveService, samples: dict) -> None:
    sid = samples["a"]
    for username in ("trainer", "admin"):
        with _web_login(live_service, username) as client:
            page = client.get("/samples")
            assert page.status_code == 200
            assert f'href="/samples/{sid}"' in page.text and 'href="/samples"' in page.text
            assert f'src="/api/v1/samples/{sid}/image"' in page.text  # the access-checked API
            edit = client.get(f"/samples/{sid}")
            assert edit.status_code == 200
            assert 'id="editor-config"' in edit.text and "sample_editor.js" in edit.text
            config = edit.text.split('id="editor-config">', 1)[1].split("</script>", 1)[0]
            editor = json.loads(config)
            assert editor["classes"][:3] == ["head", "helmet", "person"]  # from the server
            assert [b["class"] for b in editor["boxes"]] == ["head", "person", "helmet"]
            assert editor["labels_url"] == f"/api/v1/samples/{sid}/labels"
            assert (
                client.get("/samples?site=site-a&outcome=confirmed&corrected=no").text.count(
                    f'data-sample="{sid}"'
                )
                == 1
            )


def test_managers_and_viewers_are_refused(live_service: LiveService, samples: dict) -> None:
    for username in ("manager", "viewer"):
        with _web_login(live_service, username) as client:
            assert client.get("/samples").status_code == 403
            assert client.get(f"/samples/{samples['a']}").status_code == 403
            assert 'href="/samples"' not in client.get("/alerts").text  # no nav link either


def test_other_sites_and_unknown_ids_are_not_found(
    live_service: LiveService, samples: dict
) -> None:
    with _web_login(live_service, "trainer-a") as client:
        assert client.get(f"/samples/{samples['a']}").status_code == 200
        assert client.get(f"/samples/{samples['b']}").status_code == 404
        # The API too: another site's sample is not found (as its audit frames are).
        assert client.get(f"/api/v1/samples/{samples['b']}/image").status_code == 404
        listing = client.get("/samples").text
        assert f'data-sample="{samples["a"]}"' in listing
        assert f'data-sample="{samples["b"]}"' not in listing and "Site B" not in listing
        assert client.get("/samples?site=site-b").status_code == 400
        for bad in ("999999", "0", "abc", "99999999999999999999"):
            assert client.get(f"/samples/{bad}").status_code == 404, bad
    with _web_login(live_service, "trainer") as client:  # a trainer of both sites
        assert client.get(f"/samples/{samples['b']}").status_code == 200


def test_chinese_strings(live_service: LiveService, samples: dict) -> None:
    with _web_login(live_service, "trainer") as client:
        client.cookies.set("sg_lang", "zh")
        page = client.get(f"/samples/{samples['a']}").text
        assert "保存标注" in page and "训练样本" in page and "头部（未戴安全帽）" in page


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium")
def test_edit_boxes_in_the_browser(
    browser: object, live_service: LiveService, samples: dict
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sid = _make_sample(live_service)  # its own sample: the other tests expect uncorrected ones
    context, page = _page(browser, live_service, width=1280, height=900)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "trainer")
    page.get_by_role("link", name="Training samples").click()
    page.locator(f'#samples tr[data-sample="{sid}"] a.cam').click()
    page.wait_for_url(f"**/samples/{sid}")
    _wait_for_frame(page)
    assert page.locator("#sample-svg rect[data-index]").count() == 3
    frame = page.locator("#sample-svg").bounding_box()
    scale = FRAME_W / frame["width"]  # frame pixels per screen pixel
    assert abs(scale - 1) > 0.05, "the test should run with the frame scaled on screen"

    def at(x: float, y: float) -> tuple[float, float]:
        return frame["x"] + x / FRAME_W * frame["width"], frame["y"] + y / FRAME_H * frame["height"]

    # Click the helmet box on the frame: its row is selected; make it a bare head.
    page.mouse.click(*at(125, 105))
    row3 = page.locator('#box-rows tr[data-index="2"]')
    assert row3.get_attribute("aria-selected") == "true"
    row3.locator("select").select_option("head")
    assert page.locator("#sample-svg rect.selected.cls-head").count() == 1
    # Delete the person box from the list.
    page.get_by_role("button", name="Delete #2").click()
    assert page.locator("#sample-svg rect[data-index]").count() == 2
    # Draw a missed head with a mouse drag (inside nothing; class chosen beforehand).
    page.select_option("#new-class", "head")
    page.mouse.move(*at(450, 100))
    page.mouse.down()
    page.mouse.move(*at(480, 130), steps=4)
    page.mouse.move(*at(500, 160), steps=4)
    page.mouse.up()
    assert page.locator("#sample-svg rect[data-index]").count() == 3
    assert page.locator("#dirty").is_visible()
    page.screenshot(path=str(ARTIFACTS / "sample-editor.png"), full_page=True)
    page.get_by_role("button", name="Save labels").click()
    page.locator("#save-result.ok").wait_for()
    assert "3 boxes" in page.inner_text("#save-result")
    assert page.locator("#dirty").is_hidden()
    assert page.inner_text("#corrected-state") == "Corrected"

    items = page.evaluate("async () => (await (await fetch('/api/v1/samples')).json()).items")
    (stored,) = [s for s in items if s["id"] == sid]
    assert stored["corrected_at"] is not None
    labels = stored["labels"]
    assert [b["class"] for b in labels] == ["head", "head", "head"]
    assert labels[0]["xyxy"] == HEAD and labels[1]["xyxy"] == HELMET
    tolerance = 2 * scale + 0.5  # a screen pixel or two, in frame pixels
    for got, want in zip(labels[2]["xyxy"], [450, 100, 500, 160], strict=True):
        assert abs(got - want) <= tolerance, (labels[2]["xyxy"], scale)

    # A refused save is shown, not swallowed (here: a stale CSRF token).
    page.evaluate("document.querySelector('meta[name=csrf-token]').content = 'stale'")
    page.get_by_role("button", name="Delete #1").click()
    page.get_by_role("button", name="Save labels").click()
    page.locator("#save-result.error").wait_for()
    assert "403" in page.inner_text("#save-result")
    page.get_by_role("button", name="Discard changes").click()
    assert page.locator("#sample-svg rect[data-index]").count() == 3

    page.goto("/samples?corrected=yes")
    assert (
        page.locator(f'#samples tr[data-sample="{sid}"] [data-field="boxes"]').inner_text() == "3"
    )
    assert errors == [], errors
    context.close()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium")
def test_move_and_resize_boxes_and_one_name_per_class(
    browser: object, live_service: LiveService
) -> None:
    """Issue 19, item 7: a box is moved by dragging it, resized by a corner handle, nudged with
    the arrow keys; the frame names each box as the list does ("Head (no helmet)", not "head")."""
    sid = _make_sample(live_service)
    context, page = _page(browser, live_service, width=1280, height=900)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "trainer")
    page.goto(f"/samples/{sid}")
    _wait_for_frame(page)
    names = page.eval_on_selector_all("#sample-svg text", "els => els.map(e => e.textContent)")
    assert "#1 Head (no helmet)" in names and "#3 Helmet" in names, names
    frame = page.locator("#sample-svg").bounding_box()
    scale = FRAME_W / frame["width"]

    def at(x: float, y: float) -> tuple[float, float]:
        return frame["x"] + x / FRAME_W * frame["width"], frame["y"] + y / FRAME_H * frame["height"]

    page.mouse.click(*at(125, 105))  # select the helmet box [100, 80, 150, 130]
    assert page.locator("#sample-svg rect.handle").count() == 4
    page.mouse.move(*at(125, 105))  # drag it 60 px right, 40 px down
    page.mouse.down()
    page.mouse.move(*at(155, 125), steps=4)
    page.mouse.move(*at(185, 145), steps=4)
    page.mouse.up()
    page.mouse.move(*at(210, 170))  # its bottom-right handle, now at (210, 170): 20 px further
    page.mouse.down()
    page.mouse.move(*at(220, 180), steps=4)
    page.mouse.move(*at(230, 190), steps=4)
    page.mouse.up()
    page.keyboard.press("ArrowLeft")  # and one pixel left
    assert page.locator("#sample-svg rect[data-index]").count() == 3  # nothing drawn
    page.get_by_role("button", name="Save labels").click()
    page.locator("#save-result.ok").wait_for()
    items = page.evaluate("async () => (await (await fetch('/api/v1/samples')).json()).items")
    (stored,) = [s for s in items if s["id"] == sid]
    moved = next(b for b in stored["labels"] if b["class"] == "helmet")["xyxy"]
    tolerance = 2 * scale + 0.5
    for got, want in zip(moved, [159, 120, 229, 190], strict=True):
        assert abs(got - want) <= tolerance, (moved, scale)
    assert errors == [], errors
    context.close()


def test_classes_the_model_lacks_are_offered_and_names_are_checked(
    live_service: LiveService, samples: dict
) -> None:
    """Issue 14.3: the editor offers our whole vocabulary (vest, harness, no_harness: classes
    `siteguard retrain` adds to a model that lacks them) and takes a new name, which the API
    refuses with a 422 that says what a class name is."""
    sid = _make_sample(live_service)
    with _web_login(live_service, "trainer") as client:
        page = client.get(f"/samples/{sid}").text
        config = page.split('id="editor-config">', 1)[1].split("</script>", 1)[0]
        assert {"vest", "harness", "no_harness"} <= set(json.loads(config)["classes"])
        assert 'id="other-class"' in page and 'pattern="[a-z]+(?:_[a-z]+)*"' in page
    trainer, csrf = live_service.login("trainer")
    with contextlib.closing(trainer):
        url, headers = f"/api/v1/samples/{sid}/labels", {"X-CSRF-Token": csrf}
        for bad in ("_vest", "no__harness", "Vest", "safety vest", "x" * 65):
            box = {"class": bad, "xyxy": [10, 10, 50, 90]}
            resp = trainer.put(url, json={"boxes": [box]}, headers=headers)
            assert resp.status_code == 422, (bad, resp.text)
        resp = trainer.put(url, json={"boxes": [{"class": "_vest", "xyxy": [1, 1, 9, 9]}]},
                           headers=headers)  # fmt: skip
        assert "lowercase letters" in resp.json()["detail"]
        boxes = [{"class": "vest", "xyxy": [10, 10, 50, 90]}, {"class": "gloves", "xyxy": HEAD}]
        resp = trainer.put(url, json={"boxes": boxes}, headers=headers)
        assert resp.status_code == 200, resp.text
        assert [b["class"] for b in resp.json()["labels"]] == ["vest", "gloves"]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not at /usr/bin/chromium")
def test_draw_a_box_of_a_new_class_in_the_browser(
    browser: object, live_service: LiveService
) -> None:
    """A trainer picks `vest` (the model lacks it) for one box, types a new class `gloves` for
    another; a bad name is refused by the page; both boxes are saved through the API."""
    sid = _make_sample(live_service)
    context, page = _page(browser, live_service, width=1280, height=900)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, "trainer")
    page.goto(f"/samples/{sid}")
    _wait_for_frame(page)
    frame = page.locator("#sample-svg").bounding_box()

    sx, sy = frame["width"] / FRAME_W, frame["height"] / FRAME_H

    def drag(x1: float, y1: float, x2: float, y2: float) -> None:  # frame pixels
        for i, (x, y) in enumerate([(x1, y1), ((x1 + x2) / 2, (y1 + y2) / 2), (x2, y2)]):
            page.mouse.move(frame["x"] + x * sx, frame["y"] + y * sy, steps=4 if i else 1)
            if i == 0:
                page.mouse.down()
        page.mouse.up()

    page.select_option("#new-class", "vest")
    drag(420, 200, 500, 300)
    page.fill("#other-class", "Gloves!")
    page.press("#other-class", "Enter")
    assert page.eval_on_selector("#other-class", "e => e.validity.valid") is False
    assert page.input_value("#new-class") == "vest"  # refused: nothing added
    page.fill("#other-class", "gloves")
    page.press("#other-class", "Enter")
    assert page.input_value("#new-class") == "gloves"
    drag(540, 200, 600, 260)
    assert page.locator('#box-rows tr[data-index="0"] option[value="gloves"]').count() == 1
    page.get_by_role("button", name="Save labels").click()
    page.locator("#save-result.ok").wait_for()
    items = page.evaluate("async () => (await (await fetch('/api/v1/samples')).json()).items")
    (stored,) = [s for s in items if s["id"] == sid]
    assert [b["class"] for b in stored["labels"]][-2:] == ["vest", "gloves"]
    assert errors == [], errors
    context.close()
