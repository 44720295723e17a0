"""The ingest hot path (service/ingest.py): many concurrent posts share a transaction, and every
post is still answered for itself: stored once, repeats answered with the stored record, bad
ones refused alone (at the schema, or by the database, retried post by post), nothing
acknowledged lost when the service stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from fastapi import HTTPException
from service_testkit import Live, event, jpeg

from service.ingest import GroupCommitter, Pending
from service.models import Violation
from service.schemas import ViolationIn
from service.security import DetectorKey, lookup_detector_key


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


# --- a bad post among good ones (issue 17.3) --------------------------------------------------

# Each was measured failing its neighbours or answered 500/503 before the schema refused it.
POISON = {
    "started_at_9999_west": ('"started_at": "9999-12-31T23:59:59-14:00"', "started_at"),
    "nul_in_zone": ('"zone": "gate\\u0000b"', "zone"),
    "nul_in_box_class": (
        '"boxes": [{"class": "he\\u0000ad", "confidence": 0.5, "xyxy": [1, 2, 3, 4]}]',
        "boxes",
    ),  # fmt: skip
    "nan_confidence": ('"confidence": NaN', "confidence"),
    "nan_box": ('"boxes": [{"class": "head", "confidence": 0.5, "xyxy": [NaN, 2, 3, 4]}]', "boxes"),
    "infinite_duration": ('"duration_s": Infinity', "duration_s"),
    "not_utf8": ('"zone": "\xff\xfe"', ""),
}


def _poison(field: str) -> bytes:
    """A site-a event whose JSON carries `field` (raw: NaN and bytes that are not UTF-8)."""
    body = json.dumps(event(event_id=str(uuid.uuid4())))
    return (body[:-1] + ", " + field + "}").encode("latin-1")


@pytest.mark.parametrize("kind", list(POISON))
def test_a_bad_post_fails_alone_among_100_from_another_site(live: Live, kind: str) -> None:
    field, loc = POISON[kind]
    good = [event("gate-b") for _ in range(100)]
    rows_before = live.count(Violation)

    async def post_all() -> list[httpx.Response]:
        site_b = {"X-API-Key": live.keys["site-b"]}
        site_a = {"X-API-Key": live.keys["site-a"]}
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
            posts = [
                client.post("/api/v1/violations", headers=site_b, files=_files(b, None))
                for b in good
            ]
            bad = {"event": (None, _poison(field), "application/json")}
            posts.insert(50, client.post("/api/v1/violations", headers=site_a, files=bad))
            return await asyncio.gather(*posts)

    answers = asyncio.run(post_all())
    refused = answers.pop(50)
    assert refused.status_code == 422, refused.text
    if loc:  # the answer names the field (bytes that are not UTF-8 break the JSON itself)
        assert refused.json()["detail"][0]["loc"][0] == loc, refused.text
    assert [r.status_code for r in answers] == [201] * 100
    assert live.count(Violation) - rows_before == 100


WEST = dt.timezone(-dt.timedelta(hours=14))
REFUSED = {  # values only the database refuses, built past the schema's validation
    "time_out_of_range_in_utc": {"started_at": dt.datetime(9999, 12, 31, 23, 59, tzinfo=WEST)},
    "nul_in_zone": {"zone": "gate\x00b"},  # PostgreSQL's text refuses NUL; SQLite keeps it
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_a_post_the_database_refuses_fails_alone_in_its_round(live: Live, kind: str) -> None:
    """Behind the schema: a value only the database refuses gets its own 422 while the 100
    other-site posts of the same group-commit round are stored (the round is retried post by
    post)."""
    state = live.state
    if kind == "nul_in_zone" and not state.db.url.startswith("postgresql"):
        pytest.skip("SQLite stores NUL characters")
    key_a = lookup_detector_key(state, live.keys["site-a"])
    key_b = lookup_detector_key(state, live.keys["site-b"])
    assert key_a is not None and key_b is not None
    posts = [_pending(key_b, event("gate-b")) for _ in range(100)]
    posts.insert(50, _pending(key_a, event(), **REFUSED[kind]))
    rows_before = live.count(Violation)
    committer = GroupCommitter(state)
    try:
        results = asyncio.run(_in_one_round(committer, posts, _pending(key_b, event("gate-b"))))
    finally:
        committer.stop()
    refused = results.pop(50)
    assert isinstance(refused, HTTPException) and refused.status_code == 422, refused
    assert "database refused" in str(refused.detail)
    assert all(not isinstance(r, BaseException) and r[1] for r in results), results
    assert live.count(Violation) - rows_before == 101  # the plug and the 100
    # Every post carried the same image (one file): the refused post may have written it, and
    # its clean-up must not remove what the stored rows refer to.
    digests = {r[0].snapshot_sha256 for r in results if not isinstance(r, BaseException)}
    assert digests and all(state.blobs.exists(d) for d in digests)


async def _in_one_round(
    committer: GroupCommitter, posts: list[Pending], plug: Pending
) -> list[tuple[Violation, bool] | BaseException]:
    """Submit `posts` so the writer takes them in one round: a first post (`plug`) holds the
    writer on the database's write lock while the others queue behind it."""
    with committer.state.db.write_lock:
        first = asyncio.ensure_future(committer.submit(plug))
        await _until(committer._queue.empty)  # the writer took the plug and waits for the lock
        waiting = [asyncio.ensure_future(committer.submit(p)) for p in posts]
        await asyncio.sleep(0.2)  # every post is queued
    await first
    return await asyncio.gather(*waiting, return_exceptions=True)


def _pending(key: DetectorKey, body: dict, **raw: object) -> Pending:
    """A queued post; `raw` fields bypass validation (what the schema would refuse)."""
    event = ViolationIn.model_validate(body)
    if raw:
        event = ViolationIn.model_construct(**{**event.__dict__, **raw})
    return Pending(key, event, key.site_id, jpeg(2_000, seed=1), None)


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)
