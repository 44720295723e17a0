"""The detector ingest hot path: `POST /api/v1/violations` at 1000+ posts/s on two cores.

A profile of the plain FastAPI route (sync endpoint, `Form`/`File` parameters, response model)
showed about three quarters of the CPU in generic request machinery: the route's dependency
solving, spooling each upload into an `UploadFile`, the worker-thread hop, response validation
and one transaction (with its lock) per post. The work itself was the small rest. So this path:

- parses the multipart body with python-multipart's streaming parser straight into bytes;
- validates the event with the same pydantic schema and answers with the same `ViolationOut`;
- hands the post to `GroupCommitter`: one writer thread takes every post waiting at that moment,
  has their images written side by side, INSERTs their rows in one transaction (group
  commit), then answers each post; a post is answered 201 only after its row is committed, so
  nothing acknowledged is lost;
- is reached through `IngestShortcut`, which sends this one route past the router and its
  dependency machinery. The FastAPI route calls the same handler, so the OpenAPI schema, the
  behaviour and the errors are one and the same.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from service import violations as ops
from service.clock import time_problems
from service.deps import AppState
from service.input_errors import database_refusal, error_detail
from service.models import Violation
from service.schemas import ViolationIn
from service.security import DetectorKey, detector_key
from service.storage import StorageUnavailable, looks_like_jpeg

log = logging.getLogger(__name__)
INGEST_PATH = "/api/v1/violations"
MAX_EVENT_BYTES = 64 * 1024
INGEST_FIELDS = frozenset({"event", "snapshot", "frame"})
MAX_BATCH = 256
# Images of a round are written side by side: a remote (S3) store costs a round trip per image;
# a local one spends its time in the kernel (create, write, rename), which runs outside the GIL
# beside the Python work (bench_ingest, 1 worker: about +25 % posts/s with 4 writers).
IMAGE_WRITERS = {"local": 4, "remote": 16}


# --- the request ------------------------------------------------------------------------------


async def handle_ingest(request: Request, state: AppState) -> Response:
    """One detector post: 201 (stored), 200 (a repeat of a stored event id), or a clear 4xx/503."""
    t0 = time.perf_counter()
    try:
        key = await detector_key(request)
        parts = await read_form(request, 2 * state.settings.max_snapshot_bytes, INGEST_FIELDS)
        event = _parse_event(parts, state)
        limit = state.settings.max_snapshot_bytes
        snapshot = _jpeg(parts, "snapshot", limit, state)
        frame = _jpeg(parts, "frame", limit, state)
        site_id = ops.check_camera(state, key, event.camera_id)
        violation, created = await state.ingest.submit(
            Pending(key, event, site_id, snapshot, frame)
        )
    except HTTPException as exc:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    except StorageUnavailable as exc:  # retryable: the detector keeps the event in its outbox
        log.error("storage error on ingest: %s", exc)
        return JSONResponse({"detail": f"{exc}; retry later"}, 503)
    except DBAPIError as exc:
        state.metrics.db_errors.labels("request").inc()
        log.error("database error on ingest: %s", exc)
        return JSONResponse({"detail": "database unavailable; retry later"}, 503)
    state.metrics.ingest_latency.observe(time.perf_counter() - t0)
    body = ops.to_out(violation).model_dump_json()
    return Response(body, 201 if created else 200, media_type="application/json")


async def read_form(
    request: Request, max_part_bytes: int, fields: frozenset[str] | None = None
) -> dict[str, bytes]:
    """The form's fields by name: `multipart/form-data` (the contract: JSON + JPEG files) or,
    for an event without images, `application/x-www-form-urlencoded`; else 422.

    Each part is capped (413) while it streams in, so an oversized upload is never buffered
    whole; parts not named in `fields` (None: keep every name) are dropped as they stream by,
    never buffered, and a repeated name keeps its first part.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        parts = await _read_urlencoded(request)
        return parts if fields is None else {k: v for k, v in parts.items() if k in fields}
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPException(422, "expected multipart/form-data with an 'event' field")
    collector = _PartCollector(max_part_bytes, fields)
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise HTTPException(422, f"malformed multipart body: {exc}") from None
    return collector.parts


async def _read_urlencoded(request: Request) -> dict[str, bytes]:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_EVENT_BYTES:
            raise HTTPException(413, f"form larger than {MAX_EVENT_BYTES} bytes")
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0].encode() for name, values in fields.items()}


class _PartCollector:
    """python-multipart callbacks that gather the wanted parts' names and bytes."""

    def __init__(self, max_bytes: int, fields: frozenset[str] | None = None) -> None:
        self.max_bytes = max_bytes
        self.fields = fields
        self.parts: dict[str, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name: str | None = None
        self._keep = False
        self._data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._name, self._keep, self._data = None, False, bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            _, params = parse_options_header(bytes(self._header_value))
            name = params.get(b"name")
            self._name = name.decode("utf-8", "replace") if name is not None else None
            self._keep = (
                self._name is not None
                and self._name not in self.parts
                and (self.fields is None or self._name in self.fields)
            )
        self._header_name.clear()
        self._header_value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._keep:  # an unknown or repeated field: dropped as it streams by
            return
        if len(self._data) + end - start > self.max_bytes:
            raise HTTPException(413, f"{self._name or 'a part'} larger than {self.max_bytes} bytes")
        self._data.extend(data[start:end])

    def _end(self) -> None:
        if self._keep and self._name is not None:
            self.parts[self._name] = bytes(self._data)


def _parse_event(parts: dict[str, bytes], state: AppState) -> ViolationIn:
    raw = parts.get("event")
    if raw is None:
        state.metrics.ingest_rejected.labels("invalid_event").inc()
        raise HTTPException(422, "the form has no 'event' field (the violation as JSON)")
    if len(raw) > MAX_EVENT_BYTES:
        state.metrics.ingest_rejected.labels("invalid_event").inc()
        raise HTTPException(413, f"event larger than {MAX_EVENT_BYTES} bytes")
    try:
        event = ViolationIn.model_validate_json(raw)
    except ValidationError as exc:
        state.metrics.ingest_rejected.labels("invalid_event").inc()
        detail = error_detail(exc.errors(include_url=False, include_context=False))
        raise HTTPException(422, detail) from None
    problems = time_problems(state.settings, started_at=event.started_at, ended_at=event.ended_at)
    if problems:
        state.metrics.ingest_rejected.labels("invalid_event").inc()
        raise HTTPException(422, problems)
    return event


def _jpeg(parts: dict[str, bytes], name: str, limit: int, state: AppState) -> bytes | None:
    data = parts.get(name)
    if data is None:
        return None
    if len(data) > limit:
        state.metrics.ingest_rejected.labels("too_large").inc()
        raise HTTPException(413, f"{name} larger than {limit} bytes")
    if not looks_like_jpeg(data):
        state.metrics.ingest_rejected.labels("not_jpeg").inc()
        raise HTTPException(415, f"{name} is not a JPEG image")
    return data


class IngestShortcut:
    """ASGI middleware: `POST /api/v1/violations` goes straight to `handle_ingest`.

    It sits inside the app's error and body-size middleware and skips only the router (route
    matching, dependency solving, response-model validation), which this route does not use.
    """

    def __init__(self, app: Any, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == INGEST_PATH:
            response = await handle_ingest(Request(scope, receive), self.state)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# --- group commit -----------------------------------------------------------------------------


@dataclass
class Pending:
    """One validated post waiting for the writer."""

    key: DetectorKey
    event: ViolationIn
    site_id: str
    snapshot: bytes | None
    frame: bytes | None
    future: asyncio.Future[tuple[Violation, bool]] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    values: dict[str, Any] = field(default_factory=dict)
    new_blobs: list[str] = field(default_factory=list)


class GroupCommitter:
    """One writer thread; each round stores every waiting post in one transaction.

    Under load a round holds many posts, so the commit (and SQLite's write lock) is paid once
    per round rather than once per post; when idle a round holds one post and adds no delay.
    """

    def __init__(self, state: AppState, max_batch: int = MAX_BATCH) -> None:
        self.state = state
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._uploads: ThreadPoolExecutor | None = None  # image writers, started by the first round

    async def submit(self, item: Pending) -> tuple[Violation, bool]:
        """Queue a post and wait until it is committed: (record, created)."""
        self._ensure_started()
        item.loop = asyncio.get_running_loop()
        item.future = item.loop.create_future()
        self._queue.put(item)
        return await item.future

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the posts already queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._uploads is not None:
            self._uploads.shutdown()
            self._uploads = None

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="ingest-writer", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiting post gets the error
                log.exception("ingest round failed")
                for item in batch:
                    ops.forget_blobs(self.state, item.new_blobs)
                    _answer(item, exc)
            if stop:
                return

    def _commit(self, batch: list[Pending]) -> None:
        state = self.state
        ready: list[Pending] = []
        uploads = self._upload_all(batch)
        for item, upload in zip(batch, uploads, strict=True):
            try:
                digests, item.new_blobs = upload.result()
            except BaseException as exc:  # noqa: BLE001 - this post fails, the others go on
                _answer(item, exc)
                continue
            try:
                item.values = ops.row_values(item.event, item.site_id, digests)
            except Exception as exc:  # noqa: BLE001 - this post fails, the others go on
                ops.forget_blobs(state, item.new_blobs)
                _answer(item, exc)
                continue
            ready.append(item)
        if not ready:
            return
        with state.db.session() as db:
            try:
                with state.db.writing(db):
                    fresh, repeats = _split_new(db, ready)
                    if fresh:
                        ops.insert_rows(db, [item.values for item in fresh])
            except Exception as exc:  # noqa: BLE001 - one post must not fail the round
                # A lost race (another process stored one of these ids meanwhile) or a value
                # the database refuses: the round is rolled back and each post is stored in
                # its own transaction, so only the culprit fails, with its own answer.
                db.rollback()
                if not isinstance(exc, IntegrityError):
                    log.warning("ingest round of %d failed (%s): storing each post alone",
                                len(ready), str(exc).splitlines()[0])  # fmt: skip
                self._each_alone(db, ready)
                return
            stored = {item.values[k] for item in fresh for k in ("snapshot_sha256", "frame_sha256")}
            for item in fresh:
                item.new_blobs = []  # a stored row refers to them now: never to be removed
            for item in repeats:
                # Images are written in parallel, so the copy that created a shared image may
                # be the repeat: keep every image a stored row of this round refers to.
                ops.forget_blobs(state, [d for d in item.new_blobs if d not in stored])
                item.new_blobs = []
            created = [(item, Violation(**item.values)) for item in fresh]
            for item, violation in created:
                _answer(item, (violation, True))
            for item in repeats:
                try:
                    _answer(item, (ops.stored_violation(db, item.event.event_id, item.key), False))
                except BaseException as exc:  # noqa: BLE001 - 409 (another site's id), DB errors
                    _answer(item, exc)
        for item, violation in created:
            _announce(state, violation, item.snapshot)

    def _upload_all(
        self, batch: list[Pending]
    ) -> list[Future[tuple[dict[str, str | None], list[str]]]]:
        """Start storing every post's images on the image-writer threads."""
        if self._uploads is None:
            writers = IMAGE_WRITERS["remote" if self.state.blobs.remote else "local"]
            self._uploads = ThreadPoolExecutor(writers, thread_name_prefix="ingest-images")
        store = ops.store_images
        return [self._uploads.submit(store, self.state, i.snapshot, i.frame) for i in batch]

    def _each_alone(self, db: Any, items: list[Pending]) -> None:
        """Fallback after a failed round: each post in its own transaction.

        A post the database refuses gets its own 422; when the database itself fails
        (connection lost, lock timeout) the posts left get that error (503) without a try each.
        Images written for posts not stored are removed unless a stored row of the round shares
        them (identical images are one file).
        """
        stored: set[str | None] = set()
        failed: list[Pending] = []
        for index, item in enumerate(items):
            outcome = self._one_by_one(db, item)
            if outcome is True:
                stored.update(item.values[k] for k in ("snapshot_sha256", "frame_sha256"))
                continue
            failed.append(item)
            if isinstance(outcome, BaseException):  # the database failed, not the post
                for rest in items[index + 1 :]:
                    failed.append(rest)
                    _answer(rest, outcome)
                break
        for item in failed:
            ops.forget_blobs(self.state, [d for d in item.new_blobs if d not in stored])
            item.new_blobs = []

    def _one_by_one(self, db: Any, item: Pending) -> bool | BaseException:
        """Store one post in its own transaction and answer it: True when stored, False when
        not (a repeat, answered with the stored record, or refused for its own values: 422),
        the error when the database itself failed."""
        try:
            violation, created = ops.insert_one(self.state, db, item.key, item.values, [])
        except Exception as exc:  # noqa: BLE001 - this post fails, the others go on
            refusal = database_refusal(exc)
            if refusal is None:
                _answer(item, exc)
                down = isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)
                return exc if down else False
            self.state.metrics.ingest_rejected.labels("refused_by_database").inc()
            log.warning("event %s refused by the database: %s", item.event.event_id, exc)
            _answer(item, refusal)
            return False
        _answer(item, (violation, created))
        if created:
            item.new_blobs = []  # a stored row refers to them now
            _announce(self.state, violation, item.snapshot)
        return created


def _announce(state: AppState, violation: Violation, snapshot: bytes | None) -> None:
    """Metrics, live panels, alerts: a failure there must not touch what is committed."""
    try:
        ops.announce(state, violation, snapshot)
    except Exception:  # noqa: BLE001
        log.exception("announcing violation %s failed (it is stored)", violation.event_id)


def _split_new(db: Any, items: list[Pending]) -> tuple[list[Pending], list[Pending]]:
    """(posts to insert, repeats of an id already stored or earlier in this round)."""
    ids = [item.event.event_id for item in items]
    seen = set(db.scalars(select(Violation.event_id).where(Violation.event_id.in_(ids))))
    fresh, repeats = [], []
    for item in items:
        (repeats if item.event.event_id in seen else fresh).append(item)
        seen.add(item.event.event_id)
    return fresh, repeats


def _answer(item: Pending, outcome: tuple[Violation, bool] | BaseException) -> None:
    """Resolve the post's future on its event loop (from the writer thread)."""
    assert item.loop is not None and item.future is not None
    item.loop.call_soon_threadsafe(_settle, item.future, outcome)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
