"""Helpers for the issue-18 security tests: raw-socket uploads that stop at the server's first
answer, a live-stream (SSE) reader on a thread, and rows written straight into the database
(values ingest would refuse today)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

BOUNDARY = "sgsecurityboundary"


@dataclass
class Upload:
    """What happened to one streamed request body."""

    status: int | None
    sent: int  # body bytes handed to the kernel before the answer came (or the connection broke)
    seconds: float
    head: bytes = b""


def junk(total: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    block = b"x" * piece
    while total > 0:
        yield block[: min(piece, total)]
        total -= piece


def multipart_junk(event: dict[str, Any], parts: int, part_bytes: int) -> Iterator[bytes]:
    """A valid multipart form: the event, then `parts` unknown file fields of `part_bytes`."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="event"\r\n\r\n'
        f"{json.dumps(event)}\r\n"
    ).encode()
    for i in range(parts):
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="junk{i}"; '
            f'filename="junk{i}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        yield from junk(part_bytes)
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


def stream_upload(
    base_url: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes],
    *,
    content_length: int | None = None,
    timeout: float = 30.0,
) -> Upload:
    """POST `body` piece by piece (chunked, unless `content_length` is declared), stopping as
    soon as the server answers; returns its status and how much of the body went out."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    started = time.monotonic()
    sock = socket.create_connection((host, port), timeout=timeout)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(
        "Transfer-Encoding: chunked"
        if content_length is None
        else f"Content-Length: {content_length}"
    )
    sent = 0
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        finished = True
        for piece in body:
            if select.select([sock], [], [], 0)[0]:  # answered early: stop sending
                finished = False
                break
            framed = piece if content_length is not None else b"%x\r\n%s\r\n" % (len(piece), piece)
            sock.sendall(framed)
            sent += len(piece)
        if finished and content_length is None:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection: its answer is read below
    head = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in head:
            more = sock.recv(65536)
            if not more:
                break
            head += more
    sock.close()
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None
    return Upload(status, sent, time.monotonic() - started, head)


@dataclass
class EventStream:
    """`GET /api/v1/events` read on a thread: (type, data) tuples, ("closed", None) at the end."""

    client: httpx.Client
    items: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    seen: list[tuple[str, Any]] = field(default_factory=list)
    closed: bool = False

    def start(self) -> EventStream:
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda kind, _data: kind == "connected", 10)
        return self

    def _read(self) -> None:
        kind = None
        try:
            with self.client.stream("GET", "/api/v1/events") as response:
                if response.status_code != 200:
                    self.items.put(("status", response.status_code))
                    return
                for line in response.iter_lines():
                    if line.startswith(": connected"):
                        self.items.put(("connected", None))
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind is not None:
                        self.items.put((kind, json.loads(line[6:])))
                        kind = None
        except httpx.HTTPError:
            pass
        finally:
            self.items.put(("closed", None))

    def wait_for(self, predicate: Any, timeout: float) -> tuple[str, Any] | None:
        """The first item (seen before or arriving within `timeout`) that matches."""
        for item in self.seen:
            if predicate(*item):
                return item
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.items.get(timeout=left)
            except queue.Empty:
                return None
            self.seen.append(item)
            if item[0] == "closed":
                self.closed = True
            if predicate(*item):
                return item
        return None

    def violation_ids(self) -> set[str]:
        self.wait_for(lambda *_: False, 0.5)  # take in what has arrived
        return {data["data"]["event_id"] for kind, data in self.seen if kind == "violation"}


def insert_violation(state: Any, site: str, camera: str, **values: Any) -> str:
    """A violation row written directly (no ingest checks); returns its event id."""
    from service.models import Violation, utcnow

    event_id = values.pop("event_id", str(uuid.uuid4()))
    row = {
        "event_id": event_id,
        "site_id": site,
        "camera_id": camera,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": utcnow(),
        "confidence": 0.8,
        "boxes": [],
        "status": "unreviewed",
        "received_at": utcnow(),
        **values,
    }
    with state.db.session() as db, state.db.writing(db):
        db.add(Violation(**row))
    return event_id


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
