"""Durable delivery: messages wait in a store (the service's database), not in memory.

A store hands each due message to whichever process claims it first; ``OutboxWorker`` (one
thread per channel) claims, sends, and records the outcome: delivered, a retry after the
backoff, or dead (retries exhausted, or a permanent error) for an admin to look at. A process
killed mid-way loses nothing: what it had claimed returns to the queue when the claim's lease
runs out.

    store = MyStore()                    # implements OutboxStore
    hub = AlertHub(config, store=store)  # the hub then queues through the store
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from alerts.channels import Channel
from alerts.config import DeliveryConfig
from alerts.delivery import attempt_once
from alerts.messages import Dispatch
from alerts.notices import DeliveryAttempt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A message this process may send now; ``attempt`` counts from 1."""

    id: int
    channel: str
    dispatch: Dispatch
    attempt: int


class OutboxStore(Protocol):
    """Where durable messages live; every method may raise when the store is unreachable."""

    def put(self, items: Sequence[tuple[str, Dispatch]]) -> None:
        """Queue (channel name, message) pairs, all or none."""

    def claim(self, channel: str, limit: int) -> list[Claimed]:
        """Due messages of ``channel``, each claimed by this process alone."""

    def finish(self, claim: Claimed, record: DeliveryAttempt, retry_in_s: float | None) -> None:
        """Record an attempt: delivered, retried in ``retry_in_s`` seconds, or dead."""

    def release(self, claims: Sequence[Claimed]) -> None:
        """Give back claims not attempted (stopping), so another process may send them now."""

    def pending(self) -> int:
        """Messages not yet delivered nor dead."""


class OutboxWorker:
    """Claims and sends one channel's durable messages in a thread.

    >>> # worker = OutboxWorker(channel, store, DeliveryConfig(), log.add, clock); worker.start()
    >>> # store.put([("hook", dispatch)]); worker.wake(); ...; worker.request_stop(0); worker.join()
    """

    def __init__(
        self,
        channel: Channel,
        store: OutboxStore,
        policy: DeliveryConfig,
        record: Callable[[DeliveryAttempt], None],
        clock: Callable[[], datetime],
        *,
        poll_s: float = 0.5,
        batch: int = 8,
    ) -> None:
        if poll_s <= 0 or batch < 1:
            raise ValueError("poll_s > 0 and batch >= 1 required")
        self.channel = channel
        self.store = store
        self.policy = policy
        self.poll_s = poll_s
        self.batch = batch
        self._record = record
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"alerts-outbox-{channel.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for due messages now (something was just queued)."""
        self._wake.set()

    def request_stop(self, deadline: float) -> None:
        """Stop after the send in flight; unsent claims go back to the store."""
        self._stop.set()
        self._wake.set()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join(self.channel.timeout_s + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claims = self.store.claim(self.channel.name, self.batch)
            except Exception:  # noqa: BLE001 - the store is down: wait, the messages keep
                log.warning("alerts outbox: claim on %s failed", self.channel.name, exc_info=True)
                self._stop.wait(self.poll_s * 4)
                continue
            if not claims:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            for i, claim in enumerate(claims):
                if self._stop.is_set():
                    self._give_back(claims[i:])
                    return
                self._send(claim)

    def _send(self, claim: Claimed) -> None:
        final = claim.attempt >= self.policy.max_attempts
        record, retry = attempt_once(
            self.channel, claim.dispatch, claim.attempt, final=final, clock=self._clock
        )
        self._record(record)
        delay = self.policy.backoff(claim.attempt) * random.uniform(1.0, 1.1) if retry else None
        try:
            self.store.finish(claim, record, delay)
        except Exception:  # noqa: BLE001 - its lease runs out and it is tried again
            log.error(
                "alerts outbox: cannot record %s of message %d (%s)",
                record.outcome,
                claim.id,
                claim.dispatch.subject,
                exc_info=True,
            )

    def _give_back(self, claims: Sequence[Claimed]) -> None:
        try:
            self.store.release(claims)
        except Exception:  # noqa: BLE001 - their leases run out instead
            log.warning("alerts outbox: cannot release %d claim(s)", len(claims), exc_info=True)
