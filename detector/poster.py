"""Sends the outbox to the service (docs/contract.md) with retry and exponential backoff.

Messages go strictly in the order they were written, so an episode's `end` never overtakes its
`open`. No answer, a 408/429 or a bad key pauses the queue and retries after a backoff that
doubles up to `retry_max_s`; a message answered with a 5xx is set aside for its own backoff while
the next goes on (two in a row: the queue pauses); a definitive 4xx marks it dead at once (kept,
logged, `siteguard detect --dead-letters`). The service
deduplicates by event id, so a message re-sent after a lost answer is stored once. Messages:
`open` (`POST /violations`), `end` (`POST /violations/{id}/end`) and `audit`, a sampled frame
for trainers to label (detector/audit.py, `POST /audit-frames`).

Example:
    >>> poster = Poster(ServiceConfig(url="http://127.0.0.1:8000", api_key="k"), outbox)
    >>> poster.start()          # background thread; poster.wake() after outbox.put()
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from detector.config import ServiceConfig
from detector.outbox import Message, Outbox

log = logging.getLogger(__name__)

API = "/api/v1"
RETRYABLE = {408, 425, 429}
# Auth and unknown-camera answers are set-up problems an operator fixes (key, camera list):
# keep retrying instead of giving up on the event.
SETUP = {401, 403, 404}


class PermanentError(Exception):
    """The service refused the message for good (4xx other than 408/425/429)."""


class Poster:
    """Drains the outbox in a daemon thread; also sends heartbeats and downloads models."""

    def __init__(
        self,
        config: ServiceConfig,
        outbox: Outbox,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self._on_result = on_result or (lambda kind, result: None)
        self._client = httpx.Client(
            base_url=config.url,
            headers={"X-API-Key": config.api_key},
            timeout=config.timeout_s,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_reply: dict[str, Any] = {}  # the last heartbeat reply (camera settings too)
        self.backoff_s = 0.0
        self.last_error: str | None = None

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="poster", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent_all = self.drain()
            except Exception:  # e.g. the outbox file is locked: log, back off, go on
                log.exception("poster: unexpected error; retrying")
                sent_all = False
                self.backoff_s = self.config.retry_max_s
            if self._stop.is_set():
                return
            if sent_all:
                self._wake.wait(1.0)
                self._wake.clear()
            else:
                self._stop.wait(self.backoff_s)

    # -- sending -------------------------------------------------------------------------
    def drain(self, batch: int = 20) -> bool:
        """Send what is due; False when something waits for a retry (back off, then retry).

        A message refused for good goes dead at once. One answered with a 5xx (or 404, an
        unknown camera) may be the only one the service cannot take: it is set aside for its
        own backoff and the next message goes at once; when that one fails too the service
        is failing, and the whole queue backs off. A poison message therefore never delays the
        next one by more than its own failed try.
        """
        set_aside = False
        failed_in_a_row = 0
        while not self._stop.is_set():
            messages = self.outbox.due(limit=batch)
            if not messages:
                return not set_aside
            for message in messages:
                try:
                    self.send(message)
                except PermanentError as exc:
                    log.error(
                        "event %s: %s refused for good, kept as a dead letter: %s",
                        message.event_id, message.type, exc,
                    )  # fmt: skip
                    self.outbox.dead(message.message_id, str(exc))
                    if message.type == "open":
                        self.outbox.dead(f"{message.event_id}:end", f"open refused: {exc}")
                    self._on_result(message.type, "rejected")
                    failed_in_a_row = 0
                    continue
                except RetryableError as exc:
                    if exc.status in RETRYABLE or exc.status in (401, 403) or failed_in_a_row:
                        return self._back_off(message, exc)
                    failed_in_a_row, set_aside = 1, True
                    delay = min(
                        self.config.retry_initial_s * 2**message.attempts, self.config.retry_max_s
                    )
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning(
                        "event %s: %s not delivered (%s); set aside for %.1fs, the queue goes on",
                        message.event_id, message.type, self.last_error, delay,
                    )  # fmt: skip
                    self.outbox.retry_later(message.message_id, delay, self.last_error)
                    self._on_result(message.type, "failed")
                    continue
                except httpx.HTTPError as exc:  # no answer: the service is unreachable
                    return self._back_off(message, exc)
                self.outbox.done(message.message_id)
                self.backoff_s, self.last_error = 0.0, None
                failed_in_a_row = 0
                self._on_result(message.type, "posted")
        return True

    def _back_off(self, message: Message, exc: Exception) -> bool:
        """The service is down or failing: the whole queue waits (doubling, up to the max)."""
        self.backoff_s = min(
            max(self.backoff_s * 2, self.config.retry_initial_s), self.config.retry_max_s
        )
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "event %s: %s not delivered (%s); retrying in %.1fs (queue %d)",
            message.event_id, message.type, self.last_error, self.backoff_s, self.outbox.depth(),
        )  # fmt: skip
        self.outbox.retry_later(message.message_id, 0.0, self.last_error)
        self._on_result(message.type, "failed")
        return False

    def send(self, message: Message) -> None:
        if message.type == "open":
            files: dict[str, Any] = {
                "event": (None, json.dumps(message.payload), "application/json")
            }
            if message.snapshot:
                files["snapshot"] = ("snapshot.jpg", message.snapshot, "image/jpeg")
            if message.frame:
                files["frame"] = ("frame.jpg", message.frame, "image/jpeg")
            response = self._client.post(f"{API}/violations", files=files)
            _check(response, retry=SETUP)
        elif message.type == "audit":
            self._send_audit(message)
        else:
            # Its `open` was acknowledged before (strict order), so 404 means that open was
            # refused for good: nothing to close.
            response = self._client.post(
                f"{API}/violations/{message.event_id}/end", json=message.payload
            )
            _check(response, retry={401, 403})

    def _send_audit(self, message: Message) -> None:
        """An audit frame (detector/audit.py): `POST /audit-frames`, idempotent by audit id."""
        files: dict[str, Any] = {"audit": (None, json.dumps(message.payload), "application/json")}
        if message.frame:
            files["frame"] = ("frame.jpg", message.frame, "image/jpeg")
        if message.snapshot:
            files["snapshot"] = ("snapshot.jpg", message.snapshot, "image/jpeg")
        response = self._client.post(f"{API}/audit-frames", files=files)
        if response.status_code in (404, 405) and _no_such_route(response):
            # A service older than audit sampling: retrying would hold up every event behind
            # this frame (strict order), so it is kept as dead, with the reason.
            raise PermanentError(f"HTTP {response.status_code}: the service has no audit route")
        _check(response, retry=SETUP)

    def heartbeat(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """POST a heartbeat; returns the reply's `active_model` (or None). Raises on failure."""
        response = self._client.post(f"{API}/heartbeats", json=payload)
        _check(response)
        try:
            reply = response.json()
        except ValueError:
            reply = None
        self.last_reply = reply if isinstance(reply, dict) else {}
        return self.last_reply.get("active_model")

    def download(self, url: str, dest: Path) -> Path:
        """Stream a file (a promoted model) to `dest` via a temporary name."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        with self._client.stream("GET", url, timeout=max(self.config.timeout_s, 120)) as response:
            _check(response)
            with tmp.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        tmp.replace(dest)
        return dest


class RetryableError(Exception):
    """The service answered but asked to try again later (5xx, 408, 429, set-up 4xx)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _no_such_route(response: httpx.Response) -> bool:
    """FastAPI's own answer for a path it does not serve (not a handler's 404 naming a camera)."""
    try:
        return response.json().get("detail") in ("Not Found", "Method Not Allowed")
    except (ValueError, AttributeError):
        return False


def _check(response: httpx.Response, retry: set[int] | frozenset[int] = frozenset()) -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        response.read()
        detail = response.text[:300]
    except httpx.HTTPError:
        detail = ""
    if status >= 500 or status in RETRYABLE or status in retry:
        raise RetryableError(f"HTTP {status}: {detail}", status)
    raise PermanentError(f"HTTP {status}: {detail}")
