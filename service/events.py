"""Live events for the dashboard (SSE): a small bus interface and two implementations.

`publish()` is called from request threads after a commit; `subscribe()` gives an async iterator
for one SSE connection. `MemoryBus` fans out inside one process. `PostgresBus` sends each event
through PostgreSQL `NOTIFY`, and a listener thread per replica fans it out locally, so several
stateless API replicas all see every event::

    bus = MemoryBus()
    await bus.start()
    with bus.subscribe() as sub:
        bus.publish(Event("violation", "site-a", {"event_id": "..."}))
        event = await sub.get(timeout=1.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)
CHANNEL = "siteguard_events"


@dataclass(frozen=True)
class Event:
    """`type`: violation | violation_end | review | camera; `data` is JSON-safe."""

    type: str
    site_id: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "site_id": self.site_id, "data": self.data})

    @classmethod
    def from_json(cls, text: str) -> Event:
        raw = json.loads(text)
        return cls(str(raw["type"]), str(raw["site_id"]), dict(raw.get("data") or {}))


class Subscription:
    """One listener's queue; slow listeners drop events rather than block publishers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = 1000) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def deliver(self, event: Event) -> None:
        """Thread-safe hand-over to the subscriber's event loop."""
        with contextlib.suppress(RuntimeError):  # loop closed: the client is gone
            self._loop.call_soon_threadsafe(self._offer, event)

    async def get(self, timeout: float | None = None) -> Event | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def drain(self) -> list[Event]:
        """Every event already waiting, without waiting for more."""
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return events


class EventBus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def publish(self, event: Event) -> None: ...
    def subscribe(self) -> contextlib.AbstractContextManager[Subscription]: ...
    @property
    def subscribers(self) -> int: ...


class MemoryBus:
    """In-process fan-out: enough for one replica."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, event: Event) -> None:
        self._fan_out(event)

    def _fan_out(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.deliver(event)

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        sub = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subs.discard(sub)


class PostgresBus(MemoryBus):
    """Fan-out across replicas through PostgreSQL LISTEN/NOTIFY (payloads < 8000 bytes)."""

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self.conninfo = conninfo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._send_conn: Any = None
        self._ready = threading.Event()

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="pg-listen", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 10.0)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
        with self._send_lock:
            if self._send_conn is not None:
                self._send_conn.close()
                self._send_conn = None

    def publish(self, event: Event) -> None:
        import psycopg

        payload = event.to_json()
        if len(payload.encode()) > 7900:
            log.warning("event %s too large for NOTIFY; delivered locally only", event.type)
            self._fan_out(event)
            return
        try:
            with self._send_lock:
                if self._send_conn is None or self._send_conn.closed:
                    self._send_conn = psycopg.connect(self.conninfo, autocommit=True)
                self._send_conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except psycopg.Error:
            log.warning("NOTIFY failed; delivering %s locally", event.type, exc_info=True)
            with self._send_lock:
                self._send_conn = None
            self._fan_out(event)

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            try:
                                self._fan_out(Event.from_json(note.payload))
                            except (ValueError, KeyError):
                                log.warning("bad event payload on %s", CHANNEL)
            except psycopg.Error:
                log.warning("LISTEN connection lost; retrying in 2 s", exc_info=True)
                self._ready.set()
                self._stop.wait(2.0)


def make_bus(kind: str, db_url: str) -> EventBus:
    """`auto` picks PostgresBus for a PostgreSQL database, else MemoryBus."""
    is_pg = db_url.startswith("postgresql")
    if kind == "postgres" or (kind == "auto" and is_pg):
        if not is_pg:
            raise ValueError("event_bus=postgres needs a PostgreSQL database_url")
        return PostgresBus(db_url.replace("postgresql+psycopg://", "postgresql://", 1))
    return MemoryBus()
