"""The ingest hot path (service/ingest.py): many concurrent posts share a transaction, and every
post is still answered for itself: stored once, repeats answered with the stored record, bad
ones refused alone, nothing acknowledged lost when the service stops."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from service_testkit import Live, event, jpeg

from service.ingest import GroupCommitter, Pending
from service.models import Violation
from service.schemas import ViolationIn
from service.security import lookup_detector_key


def _files(body: dict, snapshot: bytes | None) -> dict:
    files: dict = {"event": (None, json.dumps(body))}
    if snapshot is not None:
        files["snapshot"] = ("s.jpg", snapshot, "image/jpeg")
    return files


async def _post_all(live: Live, posts: list[tuple[dict, bytes | None]]) -> list[httpx.Response]:
    headers = {"X-API-Key": live.keys["site-a"]}
    async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=60) as client:
        return await asyncio.gather(
            *(client.post("/api/v1/violations", files=_files(b, s)) for b, s in posts)
        )


def test_concurrent_posts_each_stored_once_with_their_own_answer(live: Live) -> None:
    bodies = [event() for _ in range(60)]
    posts = [(b, jpeg(size=5_000, seed=i)) for i, b in enumerate(bodies)]
    # The same event id three times in the same burst (a detector retry): once more with the
    # same image (written in parallel, the repeat may be the copy that created the file, which
    # must survive for the stored row) and once without one.
    twice = bodies[0]
    posts += [(twice, posts[0][1]), (twice, None)]
    bad = event(confidence="high")  # refused alone; its neighbours are stored
    posts.append((bad, jpeg(size=5_000, seed=101)))

    rows_before, blobs_before = live.count(Violation), _blobs(live)
    answers = asyncio.run(_post_all(live, posts))

    statuses = [r.status_code for r in answers]
    assert statuses[:60].count(201) + statuses[60:62].count(201) == 60, statuses
    assert statuses[-1] == 422
    by_id = [r.json()["event_id"] for r in answers[:62]]
    assert by_id == [b["event_id"] for b, _ in posts[:62]]  # each post got its own record
    repeats = [r.json() for r in answers if r.status_code == 200]
    assert len(repeats) == 2 and all(r["event_id"] == twice["event_id"] for r in repeats)
    assert live.count(Violation) - rows_before == 60
    # Whichever of the three copies came first was stored; the repeats' images were not kept.
    stored = {r.json()["snapshot_url"] for r in answers[:62] if r.json()["snapshot_url"]}
    assert len(_blobs(live) - blobs_before) == len(stored) in (59, 60)


def _blobs(live: Live) -> set[str]:
    return {p.name for p in (live.data_dir / "blobs").glob("??/??/*")}


def test_multipart_errors_are_clear_4xx_and_store_nothing(live: Live) -> None:
    rows_before = live.count(Violation)
    headers = {"X-API-Key": live.keys["site-a"], "Content-Type": "multipart/form-data; boundary=x"}
    with live.client(headers=headers) as client:
        broken = client.post("/api/v1/violations", content=b"--x\r\nnot a header line")
        assert broken.status_code == 422, broken.text
        no_boundary = client.post(
            "/api/v1/violations",
            content=b"{}",
            headers={"Content-Type": "multipart/form-data"},
        )
        assert no_boundary.status_code == 422
    limit = live.state.settings.max_snapshot_bytes
    with live.detector() as det:
        big = det.post(
            "/api/v1/violations",
            files={
                "event": (None, json.dumps(event())),
                "frame": ("f.jpg", b"\xff\xd8\xff" + b"0" * (2 * limit), "image/jpeg"),
            },
        )
        assert big.status_code == 413, big.text
    assert live.count(Violation) == rows_before


def test_an_event_without_images_may_come_url_encoded(live: Live) -> None:
    """The FastAPI form parser took this too; detectors that send no image keep working."""
    body = event()
    with live.detector() as det:
        r = det.post("/api/v1/violations", data={"event": json.dumps(body)})
        assert r.status_code == 201, r.text
        assert r.json()["event_id"] == body["event_id"] and r.json()["snapshot_url"] is None
        assert det.post("/api/v1/violations", data={"other": "x"}).status_code == 422


def test_stop_commits_what_is_queued(live: Live) -> None:
    """A post queued before shutdown is committed and answered, not dropped."""
    state = live.state
    key = lookup_detector_key(state, live.keys["site-a"])
    assert key is not None
    committer = GroupCommitter(state)
    rows_before = live.count(Violation)

    async def queue_and_stop() -> list[tuple[Violation, bool]]:
        posts = []
        for _ in range(5):
            body = ViolationIn.model_validate(event(event_id=str(uuid.uuid4())))
            posts.append(committer.submit(Pending(key, body, "site-a", jpeg(2_000), None)))
        waiting = [asyncio.ensure_future(p) for p in posts]
        await asyncio.sleep(0)  # every post is queued
        await asyncio.to_thread(committer.stop)
        return await asyncio.gather(*waiting)

    results = asyncio.run(queue_and_stop())
    assert [created for _, created in results] == [True] * 5
    assert live.count(Violation) - rows_before == 5
