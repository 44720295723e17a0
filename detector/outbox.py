"""A durable local queue (SQLite) for everything the detector owes the service.

Every message is written here before any network call; the poster deletes it only after the
service acknowledged it. Messages carry the event id, so a message sent twice (the service got it
but the answer was lost) is deduplicated by the service. A restart simply resumes the queue.
Messages the service rejects for good (4xx) are kept as `dead` with the reason, never deleted;
so is a message the service would refuse anyway (a NaN or infinity in it), without being sent.

A full disk never loses a message silently: before a write would leave less than a small margin
free (room for SQLite's journal), the evidence images of the oldest messages are shed (raw
frames first, then snapshots; logged, counted), then the new message's own; only a message that
still does not fit is refused, loudly, with `OutboxFull`. The queue uses a rollback journal, not
WAL: a WAL file on a small disk holds a second copy of the data until its checkpoint, which then
has no room to run.

Example:
    >>> box = Outbox("var/detector/outbox.sqlite3")
    >>> box.put("open", event_id, {"event_id": event_id, ...}, snapshot=b"...")
    >>> [msg] = box.due(limit=1)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

log = logging.getLogger(__name__)

MessageType = Literal["open", "end", "audit"]  # audit: a sampled frame (detector/audit.py)
# Kept free on the disk: room for the journal of any write. Shedding an image journals the pages
# it frees, so the margin grows by the largest image stored (one image is shed per step).
MARGIN_BYTES = 64 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    snapshot BLOB,
    frame BLOB,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, seq);
"""


class OutboxError(Exception):
    """The outbox cannot be used (the message names its path)."""


class OutboxFull(OutboxError):
    """The disk is full even after every evidence image was shed: the message is not stored."""


@dataclass(frozen=True)
class Message:
    seq: int
    message_id: str
    type: MessageType
    event_id: str
    payload: dict[str, Any]
    snapshot: bytes | None
    frame: bytes | None
    attempts: int


@dataclass(frozen=True)
class DeadLetter:
    """A message kept for an operator: refused by the service (or before sending) for good."""

    seq: int
    message_id: str
    type: str
    event_id: str
    created_at: float
    attempts: int
    reason: str


class Outbox:
    """Thread-safe; one SQLite file, every write committed (synchronous=FULL) before returning.

    `on_event(kind, count)` is told of `full` (a write found the disk full), `images_shed`,
    `invalid` (a message kept dead, never sent) and `lost` (refused for lack of space).
    """

    def __init__(
        self, path: str | Path, on_event: Callable[[str, int], None] | None = None
    ) -> None:
        self.path = Path(path)
        self._on_event = on_event or (lambda kind, count: None)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=TRUNCATE")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            self._db.execute(f"PRAGMA user_version = {int(version)}")  # writable now, not later
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"outbox {self.path}: cannot open it for writing: {exc}") from exc
        self._page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._largest_image = self._db.execute(
            "SELECT MAX(COALESCE(MAX(LENGTH(snapshot)), 0), COALESCE(MAX(LENGTH(frame)), 0))"
            " FROM outbox"
        ).fetchone()[0]

    # -- writing ---------------------------------------------------------------------------
    def put(
        self,
        type: MessageType,
        event_id: str,
        payload: dict[str, Any],
        snapshot: bytes | None = None,
        frame: bytes | None = None,
    ) -> str:
        """Store a message durably; the same (type, event id) is stored only once.

        A payload with a NaN or infinity is kept as dead at once (the service refuses those);
        `OutboxFull` when the disk has no room even without any evidence image.
        """
        message_id = f"{event_id}:{type}"
        problem = non_finite(payload)
        status, error = "pending", None
        if problem is not None:
            status, error = "dead", f"not sent: {problem} is not a finite number"
            log.error("event %s: %s kept as a dead letter, %s", event_id, type, error)
            snapshot = frame = None  # nothing will ever send them
        text = json.dumps(payload)
        with self._lock:
            self._write(message_id, type, event_id, text, snapshot, frame, status, error)
        if problem is not None:
            self._on_event("invalid", 1)
        return message_id

    def _write(
        self,
        message_id: str,
        type: str,
        event_id: str,
        text: str,
        snapshot: bytes | None,
        frame: bytes | None,
        status: str,
        error: str | None,
    ) -> None:
        """INSERT, first making room on a nearly full disk by shedding images, oldest first."""
        self._largest_image = max(self._largest_image, len(snapshot or b""), len(frame or b""))
        shed = 0
        while self._short_of(len(text) + len(snapshot or b"") + len(frame or b"")):
            step = self._shed_oldest()
            if step == 0:  # no queued image left: this message's own go next (frame first)
                if frame is not None:
                    frame, step = None, 1
                elif snapshot is not None:
                    snapshot, step = None, 1
                else:  # the margin stays: the poster needs it to delete what it delivers
                    self._lost(type, event_id, shed)
            shed += step
        if shed:
            self._on_event("full", 1)
            self._on_event("images_shed", shed)
            log.error(
                "outbox %s is FULL (its disk has no room left): shed %d evidence image(s), "
                "raw frames of the oldest messages first, then snapshots, to keep %s of event "
                "%s; %d message(s) queued, none dropped; free disk space",
                self.path, shed, type, event_id, self._count("pending"),
            )  # fmt: skip
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, type, event_id, payload, snapshot,"
                " frame, created_at, status, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, type, event_id, text, snapshot, frame, time.time(), status, error),
            )
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            self._lost(type, event_id, 0)

    def _lost(self, type: str, event_id: str, shed: int) -> NoReturn:
        """Refuse a message loudly: logged, counted, `OutboxFull` for the caller."""
        self._on_event("full", 1)
        self._on_event("images_shed", shed)
        self._on_event("lost", 1)
        log.error(
            "outbox %s is FULL: %s of event %s NOT stored, the disk is full even with every "
            "evidence image shed (%d message(s) queued are kept); free disk space",
            self.path, type, event_id, self._count("pending"),
        )  # fmt: skip
        raise OutboxFull(f"outbox {self.path}: disk full, {type} of event {event_id} not stored")

    def _short_of(self, size: int) -> bool:
        """Whether storing `size` bytes would leave less than the margin free on the disk;
        pages freed inside the file (shed images) are used first."""
        free_pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        growth = max(0, size + size // 8 + 2 * self._page_size - free_pages * self._page_size)
        if growth == 0:
            return False  # fits in the file as it is: shedding more would not help the disk
        margin = MARGIN_BYTES + self._largest_image
        return shutil.disk_usage(self.path.parent).free - growth < margin

    def _shed_oldest(self) -> int:
        """Drop one image, dead letters' and raw frames first, oldest first (0: none left)."""
        for column in ("frame", "snapshot"):
            try:
                cursor = self._db.execute(
                    f"UPDATE outbox SET {column} = NULL WHERE seq IN (SELECT seq FROM outbox"
                    f" WHERE {column} IS NOT NULL ORDER BY status = 'pending', seq LIMIT 1)"
                )
            except sqlite3.OperationalError as exc:
                if not _disk_full(exc):
                    raise
                log.error("outbox %s: no room even to shed images (%s)", self.path, exc)
                return 0
            if cursor.rowcount:
                return cursor.rowcount
        return 0

    # -- the queue ---------------------------------------------------------------------------
    def due(self, limit: int = 10, now: float | None = None) -> list[Message]:
        """Pending messages in the order they were written (an `open` before its `end`); a
        message waits while an earlier one of its event waits for its own retry."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, type, event_id, payload, snapshot, frame, attempts"
                " FROM outbox AS m WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.event_id = m.event_id"
                " AND e.seq < m.seq AND e.status = 'pending')"
                " ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Message(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def done(self, message_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))

    def retry_later(self, message_id: str, delay_s: float, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE message_id = ?",
                (time.time() + delay_s, error[:500], message_id),
            )

    def dead(self, message_id: str, error: str) -> None:
        """The service refused it for good: keep it (for an operator), stop sending it."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?"
                " WHERE message_id = ?",
                (error[:500], message_id),
            )

    def depth(self) -> int:
        with self._lock:
            return self._count("pending")

    def dead_count(self) -> int:
        with self._lock:
            return self._count("dead")

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return _dead_letters(self._db)

    def _count(self, status: str) -> int:
        query = "SELECT COUNT(*) FROM outbox WHERE status = ?"
        return self._db.execute(query, (status,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_dead_letters(path: str | Path) -> list[DeadLetter]:
    """The dead letters of an outbox file, read-only (a running detector may hold it)."""
    path = Path(path)
    if not path.is_file():
        raise OutboxError(f"outbox {path}: no such file")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return _dead_letters(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise OutboxError(f"outbox {path}: cannot read it: {exc}") from exc


def _dead_letters(db: sqlite3.Connection) -> list[DeadLetter]:
    rows = db.execute(
        "SELECT seq, message_id, type, event_id, created_at, attempts, COALESCE(last_error, '')"
        " FROM outbox WHERE status = 'dead' ORDER BY seq"
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


def non_finite(value: Any, where: str = "") -> str | None:
    """The path (`boxes.0.xyxy.2`) of the first NaN or infinity in a JSON-like value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where or "the value")
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)
