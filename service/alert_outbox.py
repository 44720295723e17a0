"""The alerts outbox in the database: nothing queued is lost to a crash, nothing goes out twice.

Two tables (migration 0005):

- ``alert_notices``: one row per stored violation, written in the violation's own INSERT
  transaction (`service.alert_notices`, called by `violations.insert_rows`). `NoticeFeeder`
  claims pending rows, hands them to the hub's policy (routing, grouping, quiet hours) and
  marks them routed once no batch holds them; the routes already sent are kept in
  ``routes_done``, so a replay after a crash sends none of them again.
- ``alert_deliveries``: one row per message and channel (`SqlOutboxStore.put`, in the same
  transaction as ``routes_done``). The hub's `OutboxWorker` threads claim due rows, send,
  and mark them delivered, retried later (backoff) or dead (shown to admins).

Claims: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the claiming transaction,
so replicas never take the same row; on SQLite the claim runs in `Database.writing`
(``BEGIN IMMEDIATE`` plus the write-lock file), which serialises every claimer on the file.
A claim is a lease: a replica killed mid-way leaves rows that another replica (or the same
one, restarted) claims again once ``lease_until`` has passed. A message whose send was cut
short by a kill after the peer received it is sent again then (at-least-once); the window is
the time between the peer's answer and the row's update, a few milliseconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from alerts.messages import Dispatch
from alerts.notices import DeliveryAttempt, ViolationNotice
from alerts.outbox import Claimed
from service.db import Database
from service.models import AlertDelivery, AlertNotice, Violation, utcnow

log = logging.getLogger(__name__)
ROUTED_KINDS = ("violation", "group")  # messages that carry a route's notices
KEEP_DONE = dt.timedelta(days=7)  # delivered messages are kept this long (dead ones until retried)


def replica_name() -> str:
    """This process's name in ``claimed_by``: host, pid and a random suffix."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Snapshots:
    """Re-attaches a violation's snapshot (outbox rows keep only the event id)."""

    def __init__(self, db: Database, blobs: Any) -> None:
        self.db = db
        self.blobs = blobs

    def load(self, session: Session, event_ids: Sequence[str]) -> dict[str, bytes]:
        if not event_ids:
            return {}
        stmt = select(Violation.event_id, Violation.snapshot_sha256).where(
            Violation.event_id.in_(list(event_ids)), Violation.snapshot_sha256.is_not(None)
        )
        found: dict[str, bytes] = {}
        for event_id, digest in session.execute(stmt):
            try:
                found[event_id] = self.blobs.read(digest)
            except Exception:  # noqa: BLE001 - a missing image must not hold the message back
                log.warning("alert %s: snapshot %s unreadable", event_id, digest)
        return found


class SqlOutboxStore:
    """`alerts.outbox.OutboxStore` on the service database."""

    def __init__(
        self, db: Database, snapshots: Snapshots, replica: str, lease_s: float = 60.0
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be > 0")
        self.db = db
        self.snapshots = snapshots
        self.replica = replica
        self.lease = dt.timedelta(seconds=lease_s)

    def put(self, items: Sequence[tuple[str, Dispatch]]) -> None:
        now = utcnow()
        routed: dict[str, set[str]] = {}
        rows = []
        for channel, dispatch in items:
            rows.append(
                {
                    "channel": channel,
                    "route": dispatch.route,
                    "kind": dispatch.kind,
                    "subject": dispatch.subject[:200],
                    "dispatch": dispatch.to_dict(),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if dispatch.kind in ROUTED_KINDS and dispatch.route:
                for event_id in dispatch.event_ids:
                    routed.setdefault(event_id, set()).add(dispatch.route)
        with self.db.session() as session, self.db.writing(session):
            session.execute(insert(AlertDelivery.__table__), rows)
            if routed:
                notices = session.scalars(
                    select(AlertNotice).where(AlertNotice.event_id.in_(sorted(routed)))
                )
                for notice in notices:
                    done = set(notice.routes_done or []) | routed[notice.event_id]
                    notice.routes_done = sorted(done)

    def claim(self, channel: str, limit: int) -> list[Claimed]:
        now = utcnow()
        due = or_(
            and_(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now),
            and_(AlertDelivery.status == "sending", AlertDelivery.lease_until < now),
        )
        stmt = (
            select(AlertDelivery)
            .where(AlertDelivery.channel == channel, due)
            .order_by(AlertDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.db.session() as session:
            with self.db.writing(session):
                rows = list(session.scalars(stmt))
                for row in rows:
                    row.status = "sending"
                    row.attempts += 1
                    row.claimed_by = self.replica
                    row.lease_until = now + self.lease
                    row.updated_at = now
            claims = [(r.id, r.attempts, Dispatch.from_dict(r.dispatch)) for r in rows]
            ids = {v.event_id for _, _, d in claims for v in d.violations}
            images = self.snapshots.load(session, sorted(ids)) if ids else {}
        return [
            Claimed(id=i, channel=channel, dispatch=_prepared(i, d, images), attempt=n)
            for i, n, d in claims
        ]

    def finish(self, claim: Claimed, record: DeliveryAttempt, retry_in_s: float | None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now, "lease_until": None, "last_error": None}
        if record.ok:
            values["status"] = "delivered"
        elif retry_in_s is not None:
            values |= {
                "status": "pending",
                "next_attempt_at": now + dt.timedelta(seconds=retry_in_s),
                "last_error": (record.error or "")[:2000],
            }
        else:
            values |= {"status": "dead", "last_error": (record.error or "failed")[:2000]}
            log.error("alert message %d (%s) is dead: %s", claim.id, claim.dispatch.subject,
                      record.error)  # fmt: skip
        with self.db.session() as session, self.db.writing(session):
            session.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id == claim.id, AlertDelivery.claimed_by == self.replica)
                .values(**values)
            )

    def release(self, claims: Sequence[Claimed]) -> None:
        if not claims:
            return
        with self.db.session() as session, self.db.writing(session):
            session.execute(
                update(AlertDelivery)
                .where(
                    AlertDelivery.id.in_([c.id for c in claims]),
                    AlertDelivery.claimed_by == self.replica,
                    AlertDelivery.status == "sending",
                )
                .values(status="pending", attempts=AlertDelivery.attempts - 1, lease_until=None)
            )

    def pending(self) -> int:
        with self.db.session() as session:
            stmt = select(func.count()).where(AlertDelivery.status.in_(("pending", "sending")))
            return int(session.scalar(stmt) or 0)

    def purge(self, older_than: dt.timedelta = KEEP_DONE) -> int:
        """Drop delivered messages older than ``older_than``; returns how many."""
        cutoff = utcnow() - older_than
        with self.db.session() as session, self.db.writing(session):
            result = session.execute(
                delete(AlertDelivery).where(
                    AlertDelivery.status == "delivered", AlertDelivery.updated_at < cutoff
                )
            )
            return int(result.rowcount or 0)


def _prepared(row_id: int, dispatch: Dispatch, images: dict[str, bytes]) -> Dispatch:
    """The message as sent: its outbox id (a dedupe key for receivers) and its snapshots."""
    dispatch = replace(dispatch, extra={**dispatch.extra, "delivery_id": f"sg-{row_id}"})
    if not dispatch.violations or not images:
        return dispatch
    violations = tuple(
        replace(v, snapshot_jpeg=images.get(v.event_id)) for v in dispatch.violations
    )
    return replace(dispatch, violations=violations)


class NoticeFeeder:
    """Feeds claimed outbox notices to the hub's policy and drives its timers, in a thread.

    A notice is marked routed only after every message it caused is stored and no batch of
    this replica holds it; while a batch holds it, its lease is renewed. After any failure the
    notices not yet safe are forgotten here and come back when their lease runs out.
    """

    def __init__(
        self,
        hub: Any,
        store: SqlOutboxStore,
        *,
        public_url: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        batch: int = 200,
    ) -> None:
        if lease_s <= 2 * poll_s:
            raise ValueError("lease_s must be more than twice poll_s")
        self.hub = hub
        self.store = store
        self.db = store.db
        self.snapshots = store.snapshots
        self.replica = store.replica
        self.base_url = (public_url or "").rstrip("/")
        self.lease = dt.timedelta(seconds=lease_s)
        self.poll_s = poll_s
        self.batch = batch
        self._mine: set[str] = set()  # notices this replica holds (claimed, not yet routed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts-feeder", daemon=True)
        self._last_purge = 0.0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A violation was just stored: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, and release the notices still held, so another replica takes them at once."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            with self.db.session() as session, self.db.writing(session):
                session.execute(
                    update(AlertNotice)
                    .where(AlertNotice.claimed_by == self.replica, AlertNotice.status == "pending")
                    .values(claimed_by=None, lease_until=None)
                )
        except Exception:  # noqa: BLE001 - their leases run out instead
            log.warning("alerts outbox: cannot release held notices", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a database outage: try again shortly
                log.warning("alerts outbox: feeder step failed", exc_info=True)
                self._drop_unsafe()
                self._stop.wait(self.poll_s * 4)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def step(self) -> int:
        """Claim, route, tick, then record what is routed; returns notices claimed."""
        claimed = self._claim()
        for notice, routes_done in claimed:
            self.hub.forget(notice.event_id)  # a replay is not a duplicate
            self.hub.notify_violation(notice, skip_routes=routes_done)  # raises: store down
            self._mine.add(notice.event_id)
        self.hub.tick()
        self._settle()
        self._purge()
        return len(claimed)

    def _claim(self) -> list[tuple[ViolationNotice, list[str]]]:
        now = utcnow()
        free = or_(AlertNotice.lease_until.is_(None), AlertNotice.lease_until < now)
        stmt = (
            select(AlertNotice, Violation)
            .join(Violation, Violation.event_id == AlertNotice.event_id)
            .where(AlertNotice.status == "pending", free)
            .order_by(AlertNotice.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True, of=AlertNotice)
        )
        with self.db.session() as session:
            with self.db.writing(session):
                rows = [(n, v) for n, v in session.execute(stmt)]
                for notice, _ in rows:
                    notice.claimed_by = self.replica
                    notice.lease_until = now + self.lease
            images = self.snapshots.load(session, [v.event_id for _, v in rows])
        return [(self._notice(v, images.get(v.event_id)), list(n.routes_done)) for n, v in rows]

    def _notice(self, v: Violation, snapshot: bytes | None) -> ViolationNotice:
        return ViolationNotice(
            event_id=v.event_id,
            site_id=v.site_id,
            camera_id=v.camera_id,
            zone=v.zone,
            kind=v.kind,
            started_at=v.started_at,
            duration_s=v.duration_s,
            confidence=v.confidence,
            snapshot_jpeg=snapshot,
            link=f"{self.base_url}/violations/{v.event_id}" if self.base_url else None,
        )

    def _settle(self) -> None:
        """Routed: held notices whose messages are all stored; renew the leases of the rest."""
        if not self._mine:
            return
        held = self.hub.held_event_ids() & self._mine
        done = self._mine - held
        now = utcnow()
        with self.db.session() as session, self.db.writing(session):
            mine = AlertNotice.claimed_by == self.replica
            if done:
                session.execute(
                    update(AlertNotice)
                    .where(AlertNotice.event_id.in_(sorted(done)), mine)
                    .values(status="routed", claimed_by=None, lease_until=None)
                )
            if held:
                session.execute(
                    update(AlertNotice)
                    .where(AlertNotice.event_id.in_(sorted(held)), mine)
                    .values(lease_until=now + self.lease)
                )
        self._mine = held

    def _drop_unsafe(self) -> None:
        """After a failure: forget the notices no batch holds; they are replayed later."""
        held = self.hub.held_event_ids()
        for event_id in self._mine - held:
            self.hub.forget(event_id)
        self._mine &= held

    def _purge(self) -> None:
        if time.monotonic() - self._last_purge >= 600:
            self._last_purge = time.monotonic()
            self.store.purge()
