"""`/healthz` and ingest latency while a flood of bogus logins runs (issue 18, item 6).

    .venv/bin/python bench/bench_login_flood.py [--connections 60] [--seconds 20]
        [--source ../other-checkout] [--write-docs]

For each scenario it starts a fresh `siteguard serve` (SQLite) on 127.0.0.1, measures `/healthz`
and one detector post (a ~50 KB snapshot) every 100 ms for `--seconds` with no load, then again
while `--connections` keep-alive connections send logins with random user names and a wrong
password as fast as the server answers them. Scenarios:

- `one address`: the defaults (per address and name, and per address across names, the login
  limits apply: most of the flood is refused before hashing);
- `many addresses`: the limits lifted (`login_max_failures*` very high), as a flood spread over
  many addresses looks to the service: every login reaches the hash pool.

`--source DIR` runs the server from another checkout (PYTHONPATH=DIR), e.g. the commit before
the fix, for a before/after row in one run. Peak memory is the server's VmHWM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_login_flood:begin -->", "<!-- bench_login_flood:end -->"
PROBE_TIMEOUT_S = 30.0
LIFTED = {
    "SITEGUARD_LOGIN_MAX_FAILURES": "1000000",
    "SITEGUARD_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(data_dir: Path, source: Path) -> str:
    """A site, a camera and a detector key, written by the server code under test."""
    script = """
import sys
from service.db import Database
from service.models import Camera, Site
from service.security import new_api_key
db = Database(f"sqlite:///{sys.argv[1]}/siteguard.db")
db.upgrade()
with db.session() as s, db.writing(s):
    s.add(Site(id="bench", name="bench"))
    s.flush()
    s.add(Camera(id="bench-cam", site_id="bench", name="cam", zones=[], required_ppe=["helmet"]))
    _row, key = new_api_key(s, "edge", site_id="bench")
print(key)
"""
    env = {**os.environ, "PYTHONPATH": str(source)}
    out = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return out.stdout.strip().splitlines()[-1]


def start(data_dir: Path, source: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEGUARD_")}
    env.update(extra_env, PYTHONPATH=str(source))
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "siteguard", "serve", "--data-dir", str(data_dir)]
        + ["--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=source,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {(data_dir / 'serve.log').read_text()[-2000:]}")


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def jpeg() -> bytes:
    import cv2
    import numpy as np

    img = np.random.default_rng(0).integers(0, 255, (180, 180, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def event() -> str:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "camera_id": "bench-cam",
            "kind": "no_helmet",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "confidence": 0.8,
            "boxes": [],
        }
    )


async def measure(url: str, key: str, seconds: float, connections: int) -> dict:
    """Probe /healthz and ingest every 100 ms for `seconds`, with `connections` flooding."""
    stop = time.monotonic() + seconds
    health: list[float] = []
    ingest: list[float] = []
    failures: list[str] = []
    codes: dict[str, int] = {}
    snapshot = jpeg()

    async def attacker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            body = {"username": uuid.uuid4().hex, "password": "wrong-password"}
            try:
                code = str((await client.post("/api/v1/auth/login", json=body)).status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            codes[code] = codes.get(code, 0) + 1

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=PROBE_TIMEOUT_S) as client:
            await asyncio.sleep(1.0 if connections else 0.0)
            while time.monotonic() < stop:
                await probe(health, "healthz", 200, client.get("/healthz"))
                files = {"event": (None, event()), "snapshot": ("s.jpg", snapshot, "image/jpeg")}
                headers = {"X-API-Key": key}
                post = client.post("/api/v1/violations", files=files, headers=headers)
                await probe(ingest, "ingest", 201, post)
                await asyncio.sleep(0.1)

    async def probe(samples: list[float], name: str, want: int, request: Any) -> None:
        t0 = time.perf_counter()
        try:
            status = (await request).status_code
        except httpx.HTTPError as exc:  # a timeout counts with the time it took
            status = type(exc).__name__
        samples.append(time.perf_counter() - t0)
        if status != want:
            failures.append(f"{name} {status}")

    limits = httpx.Limits(max_connections=max(connections, 1))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(prober(), *(attacker(client) for _ in range(connections)))
    return {"health": health, "ingest": ingest, "failures": failures, "codes": codes}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(name: str, source: Path, extra_env: dict[str, str], args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        data_dir = Path(tmp)
        key = seed(data_dir, source)
        proc, url = start(data_dir, source, extra_env)
        try:
            idle = asyncio.run(measure(url, key, min(args.seconds, 10), 0))
            flood = asyncio.run(measure(url, key, args.seconds, args.connections))
            peak = peak_mb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
    row = {
        "scenario": name,
        "source": str(source),
        "idle_healthz_p99_ms": 1000 * pct(idle["health"], 0.99),
        "healthz_p50_ms": 1000 * pct(flood["health"], 0.5),
        "healthz_p99_ms": 1000 * pct(flood["health"], 0.99),
        "healthz_max_ms": 1000 * max(flood["health"] or [float("nan")]),
        "ingest_p99_ms": 1000 * pct(flood["ingest"], 0.99),
        "probes": len(flood["health"]),
        "failures": len(flood["failures"]),
        "logins": flood["codes"],
        "peak_mb": peak,
    }
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Command: `.venv/bin/python bench/bench_login_flood.py --connections {args.connections} "
        f"--seconds {args.seconds:g}`. Machine: {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}; load average (1 min) at the end: {load:.1f}.",
        "",
        "| scenario | logins answered (status: count) | /healthz p50 ms | /healthz p99 ms "
        "| /healthz max ms | ingest p99 ms | probes failed | server peak RSS MB "
        "| target (/healthz p99 < 1 s, RSS < 400 MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = r["healthz_p99_ms"] < 1000 and r["peak_mb"] < 400 and not r["failures"]
        logins = ", ".join(f"{k}: {v}" for k, v in sorted(r["logins"].items()))
        lines.append(
            f"| {r['scenario']} | {logins} | {r['healthz_p50_ms']:.0f} | {r['healthz_p99_ms']:.0f} "
            f"| {r['healthz_max_ms']:.0f} | {r['ingest_p99_ms']:.0f} | {r['failures']} "
            f"| {r['peak_mb']:.0f} | {'met' if met else 'NOT met'} |"
        )
    return "\n".join(lines)


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--source", type=Path, default=REPO, help="checkout to serve from")
    parser.add_argument("--before", type=Path, help="also run this checkout (the code before)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    rows = []
    sources = [("before", args.before)] if args.before else []
    sources.append(("", args.source))
    for label, source in sources:
        prefix = f"{label}: " if label else ""
        rows.append(run(prefix + "one address (default limits)", source.resolve(), {}, args))
        rows.append(run(prefix + "many addresses (limits lifted)", source.resolve(), LIFTED, args))
    text = table(rows, args)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
