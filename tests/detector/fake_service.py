"""A minimal but real service for the detector's tests: the contract's endpoints, SQLite-backed.

Run by uvicorn in a subprocess (so a test can kill it mid-stream and start it again); its state
lives in an SQLite file, so the event-id dedup survives a restart, as the real service's does.
Env: FAKE_DB (SQLite path), FAKE_KEY (API key), FAKE_CAMERAS (comma list), FAKE_MODELS (dir of
<version>.onnx files), FAKE_ACTIVE (path of a JSON file with the announced active model).
An event in the zone "server-error" is answered 500, as a service bug would.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, File, Form, Header, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse

DB = os.environ.get("FAKE_DB", "fake-service.sqlite3")
KEY = os.environ.get("FAKE_KEY", "test-key")
CAMERAS = set(filter(None, os.environ.get("FAKE_CAMERAS", "").split(",")))

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, body TEXT, snapshot INTEGER,
  frame INTEGER, ended_at TEXT, duration_s REAL);
CREATE TABLE IF NOT EXISTS receipts (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT, path TEXT);
CREATE TABLE IF NOT EXISTS heartbeats (n INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
"""

app = FastAPI()


def db() -> sqlite3.Connection:
    conn = sqlite3.connect(DB, isolation_level=None, timeout=30)
    conn.executescript(SCHEMA)
    return conn


def auth(key: str | None, camera_id: str | None = None) -> None:
    if key != KEY:
        raise HTTPException(401, "missing or wrong API key")
    if camera_id is not None and CAMERAS and camera_id not in CAMERAS:
        raise HTTPException(404, f"unknown camera {camera_id}")


@app.post("/api/v1/violations")
async def post_violation(
    event: Annotated[str, Form()],
    snapshot: Annotated[UploadFile | None, File()] = None,
    frame: Annotated[UploadFile | None, File()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
):
    try:
        body = json.loads(event)
        event_id = body["event_id"]
    except (ValueError, KeyError) as exc:
        raise HTTPException(422, f"bad event: {exc}") from exc
    auth(x_api_key, body.get("camera_id"))
    snap = len(await snapshot.read()) if snapshot else 0
    raw = len(await frame.read()) if frame else 0
    conn = db()
    conn.execute("INSERT INTO receipts (event_id, path) VALUES (?, 'open')", (event_id,))
    if body.get("zone") == "server-error":  # an event this service cannot take (a bug there)
        raise HTTPException(500, "internal error")
    cur = conn.execute(
        "INSERT OR IGNORE INTO events (event_id, body, snapshot, frame) VALUES (?, ?, ?, ?)",
        (event_id, event, snap, raw),
    )
    return JSONResponse({"event_id": event_id}, status_code=201 if cur.rowcount else 200)


@app.post("/api/v1/violations/{event_id}/end")
def end_violation(
    event_id: str,
    body: Annotated[dict, Body()],
    x_api_key: Annotated[str | None, Header()] = None,
):
    auth(x_api_key)
    conn = db()
    conn.execute("INSERT INTO receipts (event_id, path) VALUES (?, 'end')", (event_id,))
    cur = conn.execute(
        "UPDATE events SET ended_at = ?, duration_s = ? WHERE event_id = ?",
        (body.get("ended_at"), body.get("duration_s"), event_id),
    )
    if not cur.rowcount:
        raise HTTPException(404, "unknown event")
    return {"event_id": event_id}


@app.post("/api/v1/heartbeats")
def heartbeat(body: Annotated[dict, Body()], x_api_key: Annotated[str | None, Header()] = None):
    auth(x_api_key)
    db().execute("INSERT INTO heartbeats (body) VALUES (?)", (json.dumps(body),))
    active_file = os.environ.get("FAKE_ACTIVE")
    active = None
    if active_file and Path(active_file).is_file():
        active = json.loads(Path(active_file).read_text())
    return {"active_model": active}


@app.get("/api/v1/models/{version}/file")
def model_file(version: str, x_api_key: Annotated[str | None, Header()] = None):
    auth(x_api_key)
    path = Path(os.environ.get("FAKE_MODELS", ".")) / f"{version}.onnx"
    if not path.is_file():
        raise HTTPException(404, "unknown model version")
    return FileResponse(path)
