"""Security state shared by replicas (issue 17.2): two real `siteguard serve` processes on one
real PostgreSQL. Failed logins count across both (5 in all, not 5 each); a key revoked
through one replica is refused by the other at once, though that one had it cached."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ops.opslib import ServiceProcess
from service_testkit import make_db_url

pytestmark = pytest.mark.postgres
PASSWORD = "a-long-pass-phrase-9"


@pytest.fixture()
def pg_database(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    yield from make_db_url("postgres", tmp_path)


@pytest.fixture()
def replicas(
    tmp_path: Path, pg_database: str
) -> Iterator[tuple[ServiceProcess, ServiceProcess, str, str]]:
    """(replica A, replica B, detector key, admin token) on a fresh PostgreSQL database."""
    env = {"SITEGUARD_DATABASE_URL": pg_database}
    a = ServiceProcess(tmp_path / "a", data_dir=tmp_path / "shared", env=env)
    b = ServiceProcess(tmp_path / "b", data_dir=tmp_path / "shared", env=env)
    try:
        key = a.bootstrap("site-a", ["gate-1"])
        a.admin("create-user", "boss", "--role", "admin", "--password", PASSWORD)
        token = str(a.admin("create-api-key", "ops", "--user", "boss")["key"])
        a.start()
        b.start()
        yield a, b, key, token
    finally:
        a.kill()
        b.kill()


def login(replica: ServiceProcess, password: str) -> int:
    response = httpx.post(
        f"{replica.url}/api/v1/auth/login",
        json={"username": "boss", "password": password},
        timeout=60,
    )
    return response.status_code


def test_failed_logins_count_across_replicas(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, _, _ = replicas
    statuses = [login(a if i % 2 else b, f"wrong-guess-{i}") for i in range(5)]
    assert statuses == [401] * 5
    # The sixth try is refused on both replicas, the right password included.
    assert login(a, "wrong-guess-6") == 429
    assert login(b, "wrong-guess-7") == 429
    assert login(b, PASSWORD) == 429


def post(replica: ServiceProcess, key: str) -> int:
    event = {
        "event_id": str(uuid.uuid4()),
        "camera_id": "gate-1",
        "kind": "no_helmet",
        "zone": "site",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "confidence": 0.8,
        "boxes": [],
    }
    response = httpx.post(
        f"{replica.url}/api/v1/violations",
        headers={"X-API-Key": key},
        files={"event": (None, json.dumps(event), "application/json")},
        timeout=60,
    )
    return response.status_code


def test_a_key_revoked_on_one_replica_is_refused_by_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, key, token = replicas
    assert post(b, key) == 201  # B has the key in its cache now
    assert post(b, key) == 201
    admin = {"Authorization": f"Bearer {token}"}
    keys = httpx.get(f"{a.url}/api/v1/api-keys", headers=admin, timeout=60).json()
    key_id = next(k["id"] for k in keys if k["name"] == "edge-site-a")
    revoked = httpx.delete(f"{a.url}/api/v1/api-keys/{key_id}", headers=admin, timeout=60)
    assert revoked.status_code == 204, revoked.text
    t0 = time.monotonic()
    first = post(b, key)
    while post(b, key) != 401:  # the measure, should the very first post have raced the NOTIFY
        assert time.monotonic() - t0 < 5, "B still accepts a key revoked on A"
    lag = time.monotonic() - t0
    print(f"revoked on A: first post to B answered {first}, refused on B after {lag:.3f} s")
    assert first == 401
