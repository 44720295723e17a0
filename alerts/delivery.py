"""Delivery: one worker thread per channel, a retry heap, and the attempt log.

A slow or failing channel only delays its own queue. A message stays queued (waiting for its
next retry) until it is delivered, fails permanently, or runs out of attempts; every attempt is
recorded. Backoff waits use the monotonic clock; attempt timestamps use the hub's clock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alerts.channels import Channel, DeliveryError
from alerts.config import DeliveryConfig
from alerts.messages import Dispatch
from alerts.metrics import DELIVERIES, DELIVERY_SECONDS, QUEUED
from alerts.notices import DeliveryAttempt

log = logging.getLogger(__name__)


class AttemptLog:
    """The most recent ``size`` attempts, newest last; thread-safe."""

    def __init__(self, size: int) -> None:
        self._items: deque[DeliveryAttempt] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, attempt: DeliveryAttempt) -> None:
        with self._lock:
            self._items.append(attempt)

    def recent(self, limit: int = 100) -> list[DeliveryAttempt]:
        """Newest first."""
        with self._lock:
            items = list(self._items)
        return items[::-1][: max(limit, 0)]


def attempt_once(
    channel: Channel,
    dispatch: Dispatch,
    attempt: int,
    *,
    final: bool,
    clock: Callable[[], datetime],
) -> tuple[DeliveryAttempt, bool]:
    """Try one send; return the record and whether it may be retried."""
    started = time.perf_counter()
    error: str | None = None
    status: int | None = None
    retryable = False
    try:
        status = channel.send(dispatch)
        outcome = "delivered"
    except DeliveryError as exc:
        error, status, retryable = str(exc), exc.status_code, not exc.permanent
    except Exception as exc:  # a template or programming error: record it, never crash
        log.exception("channel %s crashed on %s", channel.name, dispatch.subject)
        error = f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    if error is not None:
        outcome = "retry" if retryable and not final else "failed"
    DELIVERIES.labels(channel.type_label, outcome).inc()
    DELIVERY_SECONDS.labels(channel.type_label).observe(elapsed)
    record = DeliveryAttempt(
        channel=channel.name,
        channel_type=channel.type_label,
        message=dispatch.kind,
        subject=dispatch.subject,
        outcome=outcome,
        attempt=attempt,
        at=clock(),
        duration_s=elapsed,
        error=error,
        status_code=status,
        event_ids=dispatch.event_ids,
        recipients=dispatch.recipients,
        route=dispatch.route,
    )
    level = logging.INFO if outcome == "delivered" else logging.WARNING
    log.log(
        level,
        "alert %s via %s (%s) attempt %d: %s%s",
        dispatch.subject,
        channel.name,
        channel.type_label,
        attempt,
        outcome,
        f" ({error})" if error else "",
    )
    return record, outcome == "retry"


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    dispatch: Dispatch
    attempt: int = 1


class ChannelWorker:
    """Delivers one channel's messages in a thread, retrying with exponential backoff.

    >>> # worker = ChannelWorker(channel, DeliveryConfig(), log.add, clock); worker.start()
    >>> # worker.submit(dispatch); ...; worker.request_stop(time.monotonic() + 5); worker.join()
    """

    def __init__(
        self,
        channel: Channel,
        policy: DeliveryConfig,
        record: Callable[[DeliveryAttempt], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.channel = channel
        self.policy = policy
        self._record = record
        self._clock = clock
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._deadline = float("inf")
        self._thread = threading.Thread(
            target=self._run, name=f"alerts-{channel.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, dispatch: Dispatch) -> bool:
        """Queue a message; False (and a failed record) when the queue is full or stopped."""
        with self._cond:
            if not self._stopping and len(self._heap) < self.policy.queue_limit:
                heapq.heappush(self._heap, _Job(time.monotonic(), next(self._seq), dispatch))
                QUEUED.labels(self.channel.type_label).inc()
                self._cond.notify()
                return True
            reason = "alerts hub is stopping" if self._stopping else "delivery queue is full"
        self._give_up(_Job(0, 0, dispatch, 0), reason)
        return False

    def pending(self) -> int:
        """Messages queued or being sent right now."""
        with self._cond:
            return len(self._heap) + (1 if self._busy else 0)

    def request_stop(self, deadline: float) -> None:
        """Stop taking messages; deliver what falls due before ``deadline`` (monotonic)."""
        with self._cond:
            self._stopping = True
            self._deadline = deadline
            self._cond.notify_all()

    def join(self) -> None:
        """Wait for the thread (an in-flight send may overrun), then record leftovers as failed."""
        if self._thread.is_alive():
            remaining = max(self._deadline - time.monotonic(), 0.0)
            self._thread.join(remaining + self.channel.timeout_s + 1)
        with self._cond:
            leftovers, self._heap = self._heap, []
        for job in leftovers:
            QUEUED.labels(self.channel.type_label).dec()
            self._give_up(job, "alerts hub stopped before delivery")

    def _give_up(self, job: _Job, reason: str) -> None:
        DELIVERIES.labels(self.channel.type_label, "failed").inc()
        log.error("alert %s via %s dropped: %s", job.dispatch.subject, self.channel.name, reason)
        self._record(
            DeliveryAttempt(
                channel=self.channel.name,
                channel_type=self.channel.type_label,
                message=job.dispatch.kind,
                subject=job.dispatch.subject,
                outcome="failed",
                attempt=job.attempt,
                at=self._clock(),
                duration_s=0.0,
                error=reason,
                event_ids=job.dispatch.event_ids,
                recipients=job.dispatch.recipients,
                route=job.dispatch.route,
            )
        )

    def _next_job(self) -> _Job | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._stopping and (not self._heap or now >= self._deadline):
                    return None
                if self._heap and self._heap[0].due <= now:
                    self._busy = True
                    return heapq.heappop(self._heap)
                wait = self._heap[0].due - now if self._heap else None
                if self._stopping:
                    if self._heap[0].due > self._deadline:
                        return None  # the next retry would come after the deadline
                    wait = min(wait or 0.0, self._deadline - now)
                self._cond.wait(wait)

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            final = job.attempt >= self.policy.max_attempts
            record, retry = attempt_once(
                self.channel, job.dispatch, job.attempt, final=final, clock=self._clock
            )
            self._record(record)
            with self._cond:
                self._busy = False
                if retry:
                    delay = self.policy.backoff(job.attempt) * random.uniform(1.0, 1.1)
                    due = time.monotonic() + delay
                    nxt = _Job(due, next(self._seq), job.dispatch, job.attempt + 1)
                    heapq.heappush(self._heap, nxt)
                else:
                    QUEUED.labels(self.channel.type_label).dec()
                self._cond.notify_all()
