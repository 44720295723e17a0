"""Security state every replica sees (issue 17.2): failed logins and key revocations.

- `SharedLoginLimiter`: failed logins are rows in ``login_failures``, so N replicas allow the
  configured attempts in all, not N times them. The in-process counts answer first: they can
  only be lower than the shared ones, so a refusal there saves the database query in a flood.
- `RevocationWatch`: the detector-key and camera caches of every replica are cleared when an
  admin revokes a key or deletes a camera. On PostgreSQL the change sends ``NOTIFY`` in its
  own transaction (`announce_change`; delivered at commit) and each replica ``LISTEN``s;
  while a replica's listener is down it caches nothing. On SQLite (replicas are processes on
  one host) each polls a tiny stamp of the keys and cameras every ``poll_s``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from service.cache import TTLCache
from service.db import Database
from service.models import ApiKey, Camera, LoginFailure, utcnow
from service.security import LoginLimiter

log = logging.getLogger(__name__)
CHANNEL = "siteguard_security"


class SharedLoginLimiter(LoginLimiter):
    """`LoginLimiter` counted in the database; its methods do I/O (call them off the loop).

    >>> # limiter = SharedLoginLimiter(db, max_failures=5, window_s=300)
    >>> # limiter.failed("10.0.0.7", "ana"); limiter.retry_after("10.0.0.7", "ana")
    """

    PURGE_EVERY_S = 60.0

    def __init__(
        self,
        db: Database,
        max_failures: int = 5,
        window_s: float = 300.0,
        max_per_address: int | None = None,
    ) -> None:
        super().__init__(max_failures, window_s, max_per_address)
        self.db = db
        self._purged_at = 0.0

    def retry_after(self, client: str, username: str) -> float:
        local = super().retry_after(client, username)
        if local > 0:
            return local
        now = utcnow()
        since = now - dt.timedelta(seconds=self.window_s)
        recent = select(LoginFailure.at).where(LoginFailure.client == client[:64])
        recent = recent.where(LoginFailure.at > since).order_by(LoginFailure.at.desc())
        pair = recent.where(LoginFailure.username == _name(username))
        with self.db.session() as db:
            return max(
                self._shared_wait(db, pair, self.max_failures, now),
                self._shared_wait(db, recent, self.max_per_address, now),
            )

    def _shared_wait(self, db: Session, stmt: Any, limit: int, now: dt.datetime) -> float:
        times = list(db.scalars(stmt.limit(limit)))
        if len(times) < limit:
            return 0.0
        return max(0.0, self.window_s - (now - times[-1]).total_seconds())

    def failed(self, client: str, username: str) -> None:
        super().failed(client, username)
        now = utcnow()
        with self.db.session() as db, self.db.writing(db):
            db.add(LoginFailure(client=client[:64], username=_name(username), at=now))
            if time.monotonic() - self._purged_at > self.PURGE_EVERY_S:
                self._purged_at = time.monotonic()
                cutoff = now - dt.timedelta(seconds=self.window_s)
                db.execute(delete(LoginFailure).where(LoginFailure.at < cutoff))

    def succeeded(self, client: str, username: str) -> None:
        """Forget the pair's failures everywhere (the address's other failures stay)."""
        super().succeeded(client, username)
        with self.db.session() as db, self.db.writing(db):
            db.execute(
                delete(LoginFailure).where(
                    LoginFailure.client == client[:64], LoginFailure.username == _name(username)
                )
            )


def _name(username: str) -> str:
    return username.lower()[:100]


def announce_change(db: Session) -> None:
    """In the caller's write transaction: tell every replica to drop its key/camera caches
    once this commits (PostgreSQL; SQLite replicas poll)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_notify(:channel, 'changed')"), {"channel": CHANNEL})


class RevocationWatch:
    """Clears ``caches`` when another replica revokes a key or deletes a camera (a thread)."""

    def __init__(self, db: Database, caches: list[TTLCache], poll_s: float = 0.5) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be > 0")
        self.db = db
        self.caches = caches
        self.poll_s = poll_s
        self._ttls = [c.ttl_s for c in caches]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="revocation-watch", daemon=True)

    def start(self) -> None:
        if not self.db.is_sqlite:
            self._caching(False)  # until the listener is connected
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _clear(self) -> None:
        for cache in self.caches:
            cache.clear()

    def _caching(self, on: bool) -> None:
        """Off: nothing is cached, so a missed revocation cannot live on here."""
        for cache, ttl in zip(self.caches, self._ttls, strict=True):
            cache.ttl_s = ttl if on else 0.0
        self._clear()

    def _run(self) -> None:
        if self.db.is_sqlite:
            self._poll()
        else:
            self._listen()

    def _listen(self) -> None:
        import psycopg

        conninfo = self.db.url.replace("postgresql+psycopg://", "postgresql://", 1)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._caching(True)
                    while not self._stop.is_set():
                        if any(True for _ in conn.notifies(timeout=self.poll_s)):
                            self._clear()
            except psycopg.Error:
                log.warning("revocation LISTEN lost; caching off, retrying in 2 s", exc_info=True)
                self._caching(False)
                self._stop.wait(2.0)

    def _poll(self) -> None:
        last: tuple[Any, ...] | None = None
        while not self._stop.wait(self.poll_s):
            try:
                stamp = self._stamp()
            except Exception:  # noqa: BLE001 - the database is busy or down: keep polling
                log.warning("revocation poll failed", exc_info=True)
                self._caching(False)
                last = None
                continue
            if stamp != last:
                if last is None:
                    self._caching(True)
                else:
                    self._clear()
                last = stamp

    def _stamp(self) -> tuple[Any, ...]:
        with self.db.session() as db:
            keys = db.execute(
                select(func.count(ApiKey.id), func.count(ApiKey.revoked_at), func.max(ApiKey.id))
            ).one()
            cameras = db.execute(select(func.count(Camera.id))).one()
            return (*keys, *cameras)
