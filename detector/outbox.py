"""A durable local queue (SQLite) for everything the detector owes the service.

Every message is written here before any network call; the poster deletes it only after the
service acknowledged it. Messages carry the event id, so a message sent twice (the service got it
but the answer was lost) is deduplicated by the service. A restart simply resumes the queue.
Messages the service rejects for good (4xx) are kept as `dead` with the reason, never deleted.

Example:
    >>> box = Outbox("var/detector/outbox.sqlite3")
    >>> box.put("open", event_id, {"event_id": event_id, ...}, snapshot=b"...")
    >>> [msg] = box.due(limit=1)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

MessageType = Literal["open", "end", "audit"]  # audit: a sampled frame (detector/audit.py)

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


class Outbox:
    """Thread-safe; one SQLite file in WAL mode, every write committed before returning."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def put(
        self,
        type: MessageType,
        event_id: str,
        payload: dict[str, Any],
        snapshot: bytes | None = None,
        frame: bytes | None = None,
    ) -> str:
        """Store a message durably; the same (type, event id) is stored only once."""
        message_id = f"{event_id}:{type}"
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, type, event_id, payload, snapshot,"
                " frame, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, type, event_id, json.dumps(payload), snapshot, frame, time.time()),
            )
        return message_id

    def due(self, limit: int = 10, now: float | None = None) -> list[Message]:
        """Pending messages in the order they were written (an `open` before its `end`)."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, type, event_id, payload, snapshot, frame, attempts"
                " FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
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
            return self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
            ).fetchone()[0]

    def dead_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetchone()[
                0
            ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
