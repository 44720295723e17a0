"""Issue 18 against a real `siteguard serve` process (as deployed): memory stays bounded through
oversized and endless request bodies and a login flood, `/healthz` and ingest keep answering
during the flood, and `X-Forwarded-For` from localhost does not reset the login limit.

Peak memory is the process's own high-water mark (`VmHWM` in /proc): the target is < 400 MB
(the service starts at ~150 MB). The `/healthz` p99 target under a 60-connection flood is
measured by `bench/bench_login_flood.py` (docs/benchmarks.md), not timed here.

The tests share one server and run in file order: the flood (last) uses up the address's
login budget.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from security_testlib import BOUNDARY, junk, multipart_junk, stream_upload
from service_testkit import PASSWORD, _free_port, event, jpeg

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

SITEGUARD = str(Path(sys.executable).with_name("siteguard"))
RSS_LIMIT_MB = 400
BODY = 100 << 20  # 100 MB per oversized request (the issue measured 300-800 MB)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    key: str
    log: Path

    def peak_mb(self) -> float:
        """The process's resident-memory high-water mark so far, in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _seed(data_dir: Path) -> str:
    from service.db import Database
    from service.models import Camera, Site, User
    from service.security import hash_password, new_api_key

    db = Database(f"sqlite:///{data_dir / 'siteguard.db'}")
    db.upgrade()
    with db.session() as s, db.writing(s):
        s.add(Site(id="site-a", name="A"))
        s.flush()
        s.add(Camera(id="gate-1", site_id="site-a", name="gate", zones=[], required_ppe=["helmet"]))
        s.add(User(username="view-a", password_hash=hash_password(PASSWORD), role="viewer"))
        _row, key = new_api_key(s, "edge", site_id="site-a")
    db.dispose()
    return key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("limits")
    key = _seed(data_dir)
    port = _free_port()
    log = data_dir / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEGUARD_")}  # defaults
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SITEGUARD, "serve", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    srv = Server(f"http://127.0.0.1:{port}", proc, key, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(srv.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, srv.tail()
            time.sleep(0.2)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_oversized_bodies_are_cut_off_and_memory_stays_bounded(server: Server) -> None:
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("login, chunked", "/api/v1/auth/login", json_type, junk(BODY), None, 413),
        ("login, declared", "/api/v1/auth/login", json_type, junk(BODY), BODY, 413),
        ("heartbeat, no key, chunked", "/api/v1/heartbeats", json_type, junk(BODY), None, 401),
        (
            "ingest, 100 junk parts of 3 MB",
            "/api/v1/violations",
            {"X-API-Key": server.key, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            multipart_junk(event(), 100, 3 << 20),
            None,
            413,
        ),
    ]
    for name, path, headers, body, length, status in cases:
        got = stream_upload(server.url, path, headers, body, content_length=length, timeout=60)
        assert got.status == status, (name, got, server.tail())
        assert got.sent < BODY // 4, (name, "the body was read before the answer", got)
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert server.peak_mb() < RSS_LIMIT_MB, server.peak_mb()


def test_forwarded_for_from_localhost_does_not_reset_the_limit(server: Server) -> None:
    """uvicorn believed X-Forwarded-For from 127.0.0.1: each rotated address got a fresh limit.
    `siteguard serve` trusts it only from `trusted_proxies` (none by default)."""
    bad = {"username": "view-a", "password": "not-the-password"}
    answers = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for i in range(6):  # login_max_failures (5) per address and name, then 429
            headers = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
            answers.append(client.post("/api/v1/auth/login", json=bad, headers=headers).status_code)
    assert answers == [401] * 5 + [429], answers


def test_login_flood_leaves_healthz_and_ingest_answering(server: Server) -> None:
    """60 connections of bogus logins (random names): every probe of /healthz and every
    detector post is answered while it runs (the detector gives up after 10 s), every login
    gets an answer (401, 429 or 503), and memory stays bounded (argon2 takes 64 MiB a hash)."""
    result = asyncio.run(_flood(server, connections=60, seconds=8.0))
    codes, health, ingest = result["codes"], result["health"], result["ingest"]
    assert set(codes) <= {401, 429, 503}, codes
    assert sum(codes.values()) >= 60, codes
    assert health and all(status == 200 for status, _ in health), health
    assert max(seconds for _, seconds in health) < 10, sorted(s for _, s in health)[-5:]
    assert ingest and all(status == 201 for status, _ in ingest), ingest
    assert max(seconds for _, seconds in ingest) < 10, ingest
    assert server.peak_mb() < RSS_LIMIT_MB, server.peak_mb()
    print(json.dumps({"codes": codes, "health_max_s": max(s for _, s in health)}))


async def _flood(server: Server, connections: int, seconds: float) -> dict:
    stop = time.monotonic() + seconds
    codes: dict[int, int] = {}
    health: list[tuple[int, float]] = []
    ingest: list[tuple[int, float]] = []
    snapshot = jpeg(seed=7)

    async def attacker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            body = {"username": uuid.uuid4().hex, "password": "not-the-password"}
            r = await client.post("/api/v1/auth/login", json=body)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1

    async def timed(samples: list[tuple[int, float]], request: Awaitable[httpx.Response]) -> None:
        started = time.perf_counter()
        response = await request
        samples.append((response.status_code, time.perf_counter() - started))

    async def prober() -> None:
        headers = {"X-API-Key": server.key}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            await asyncio.sleep(1.0)  # let the flood build up first
            while time.monotonic() < stop:
                await timed(health, client.get("/healthz"))
                files = {
                    "event": (None, json.dumps(event())),
                    "snapshot": ("s.jpg", snapshot, "image/jpeg"),
                }
                await timed(ingest, client.post("/api/v1/violations", files=files, headers=headers))
                await asyncio.sleep(0.2)

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        await asyncio.gather(prober(), *(attacker(client) for _ in range(connections)))
    return {"codes": codes, "health": health, "ingest": ingest}
