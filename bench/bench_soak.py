"""Soak: N simulated cameras against a real `siteguard serve` for M minutes; memory and errors.

    .venv/bin/python bench/bench_soak.py [--cameras 8] [--minutes 10] [--write-docs]

Starts a fresh server process (SQLite file in a temp dir) set up with the real `siteguard admin`
commands, then runs, concurrently, for the whole period:

- per camera, what a detector sends: a violation (contract JSON + a unique ~50 KB JPEG snapshot
  and frame) every `--violation-interval` s, its `end` a moment later, a heartbeat every 5 s,
  and one in twenty violations posted twice (the idempotent retry path);
- one live panel: an SSE stream (`/api/v1/events`) and the violation list every 5 s.

It samples the server's resident memory (VmRSS) every 5 s and reports growth after a warm-up,
every error (any non-2xx answer, or a transport failure that one retry did not fix, as a
detector would retry it), latency percentiles, and whether every violation posted is stored
exactly once. Target: no errors; RSS growth after warm-up below
`--rss-bound-mb` (default 50 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_soak:begin -->", "<!-- bench_soak:end -->"
SITEGUARD = str(Path(sys.executable).with_name("siteguard"))
SITE = "soak"


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    posted: set[str] = field(default_factory=set)
    repeats: int = 0
    sse_events: int = 0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)

    def timed(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def admin(data_dir: Path, *args: str) -> dict:
    out = subprocess.run(
        [SITEGUARD, "admin", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def jpeg(rng: random.Random, size: int = 50_000) -> bytes:
    """A unique, real JPEG of about `size` bytes (noise compresses badly)."""
    import cv2
    import numpy as np

    side = int((size / 1.5) ** 0.5)
    image = np.random.default_rng(rng.getrandbits(32)).integers(0, 255, (side, side, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def violation(camera: str, track: int) -> dict:
    now = dt.datetime.now(dt.UTC)
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": now.isoformat(),
        "ended_at": None,
        "duration_s": 2.0,
        "confidence": 0.8,
        "track_id": track,
        "model_version": "soak",
        "frame_width": 1280,
        "frame_height": 720,
        "boxes": [
            {"class": "head", "confidence": 0.8, "xyxy": [10, 10, 60, 60], "track_id": track}
        ],
    }


async def request(stats: Stats, kind: str, call) -> httpx.Response | None:
    """One call; a transport error is retried once, as a detector's poster would retry it
    (a pooled keep-alive connection the server closed at the same moment is the usual cause)."""
    start = time.perf_counter()
    for attempt in range(2):
        try:
            response = await call()
            break
        except httpx.TransportError as exc:
            if attempt == 0:
                stats.retried.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            stats.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        except httpx.HTTPError as exc:
            stats.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
    stats.timed(kind, time.perf_counter() - start)
    if response.status_code >= 300:
        stats.errors.append(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")
    return response


async def camera_loop(
    client: httpx.AsyncClient, camera: str, stats: Stats, until: float, interval: float, seed: int
) -> None:
    rng = random.Random(seed)
    await asyncio.sleep(rng.uniform(0, interval))  # cameras do not fire in lock-step
    next_heartbeat, track = 0.0, 0
    next_violation = time.monotonic()
    while time.monotonic() < until:
        now = time.monotonic()
        if now >= next_heartbeat:
            beat = {
                "detector_id": f"edge-{camera}",
                "model_version": "soak",
                "cameras": [
                    {
                        "camera_id": camera,
                        "state": "online",
                        "fps": 5.0,
                        "last_frame_at": dt.datetime.now(dt.UTC).isoformat(),
                        "frames_dropped": 0,
                    }
                ],
            }
            await request(
                stats, "heartbeat", lambda b=beat: client.post("/api/v1/heartbeats", json=b)
            )
            next_heartbeat = now + 5.0
        if now >= next_violation:
            track += 1
            event = violation(camera, track)
            files = {
                "event": (None, json.dumps(event), "application/json"),
                "snapshot": ("snapshot.jpg", jpeg(rng), "image/jpeg"),
                "frame": ("frame.jpg", jpeg(rng), "image/jpeg"),
            }
            sends = 2 if rng.random() < 0.05 else 1
            for attempt in range(sends):
                response = await request(
                    stats, "violation", lambda f=files: client.post("/api/v1/violations", files=f)
                )
                if response is not None and response.status_code in (200, 201):
                    stats.posted.add(event["event_id"])
                    stats.repeats += attempt
            end = {"ended_at": dt.datetime.now(dt.UTC).isoformat(), "duration_s": 3.0}
            await request(
                stats,
                "end",
                lambda e=event["event_id"], b=end: client.post(
                    f"/api/v1/violations/{e}/end", json=b
                ),
            )
            next_violation = now + interval * rng.uniform(0.5, 1.5)
        await asyncio.sleep(0.2)


async def panel_loop(client: httpx.AsyncClient, stats: Stats, until: float) -> None:
    while time.monotonic() < until:
        await request(stats, "list", lambda: client.get("/api/v1/violations", params={"limit": 50}))
        await asyncio.sleep(5.0)


async def sse_loop(client: httpx.AsyncClient, stats: Stats, until: float) -> None:
    while time.monotonic() < until:
        try:
            async with client.stream("GET", "/api/v1/events", timeout=None) as response:
                if response.status_code != 200:
                    stats.errors.append(f"sse: HTTP {response.status_code}")
                    await asyncio.sleep(5)
                    continue
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        stats.sse_events += 1
                    if time.monotonic() >= until:
                        return
        except httpx.HTTPError as exc:
            if time.monotonic() < until:
                stats.errors.append(f"sse: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1)


async def rss_loop(pid: int, stats: Stats, start: float, until: float) -> None:
    while time.monotonic() < until:
        stats.rss.append((time.monotonic() - start, rss_mib(pid)))
        await asyncio.sleep(5.0)
    stats.rss.append((time.monotonic() - start, rss_mib(pid)))


async def soak(url: str, key: str, token: str, pid: int, args: argparse.Namespace) -> Stats:
    stats = Stats()
    start = time.monotonic()
    until = start + args.minutes * 60
    limits = httpx.Limits(max_connections=args.cameras + 4)
    async with (
        httpx.AsyncClient(
            base_url=url, headers={"X-API-Key": key}, timeout=30, limits=limits
        ) as det,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as panel,
    ):
        tasks = [
            camera_loop(det, f"cam-{i}", stats, until, args.violation_interval, seed=i)
            for i in range(args.cameras)
        ]
        tasks += [panel_loop(panel, stats, until), sse_loop(panel, stats, until)]
        tasks.append(rss_loop(pid, stats, start, until))
        await asyncio.gather(*tasks)
    return stats


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def slope_mib_per_min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] / 60 for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def report(stats: Stats, stored: list[str], args: argparse.Namespace) -> tuple[str, bool]:
    warm = [p for p in stats.rss if p[0] >= args.warmup_s] or stats.rss
    base, last = warm[0][1], warm[-1][1]
    peak = max(p[1] for p in stats.rss)
    growth = last - base
    second_half = [p for p in warm if p[0] >= (warm[0][0] + warm[-1][0]) / 2]
    exactly_once = len(stored) == len(set(stored)) and set(stored) == stats.posted
    ok = not stats.errors and growth <= args.rss_bound_mb and exactly_once
    rows = "\n".join(
        f"| {kind} | {len(v)} | {1000 * percentile(v, 0.5):.1f} |"
        f" {1000 * percentile(v, 0.99):.1f} | {1000 * max(v):.1f} |"
        for kind, v in sorted(stats.latencies.items())
    )
    timeline = ", ".join(
        f"{p[0] / 60:.1f} min {p[1]:.0f}"
        for p in stats.rss[:: max(1, len(stats.rss) // 10)] + stats.rss[-1:]
    )
    errors = "none" if not stats.errors else f"{len(stats.errors)} (first: `{stats.errors[0]}`)"
    command = f"bench/bench_soak.py --cameras {args.cameras} --minutes {args.minutes:g}"
    every = f"{args.violation_interval:g}"
    text = f"""`.venv/bin/python {command}` —
{args.cameras} simulated cameras (a violation with two unique ~50 KB JPEGs every ~{every} s
each, its `end`, a heartbeat every 5 s, 5% posted twice) plus one live panel (SSE stream + the
violation list every 5 s) against one `siteguard serve` process on SQLite, {args.minutes:g} minutes.
Measured {dt.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, with other
work on the machine (training run, test suites). Target: no errors; RSS growth after a
{args.warmup_s:.0f} s warm-up below {args.rss_bound_mb:g} MB; every violation stored exactly once.

| request | count | p50 ms | p99 ms | max ms |
|---|---:|---:|---:|---:|
{rows}

- Violations accepted: **{len(stats.posted)}**, rows stored: **{len(stored)}**
  ({len(stored) - len(set(stored))} duplicates; {stats.repeats} deliberate repeats answered
  200 and not stored again); SSE events received by the panel: {stats.sse_events}.
- Errors: **{errors}**; transport errors retried once and then answered: {len(stats.retried)}.
- Server RSS (MiB): {base:.0f} after warm-up, {last:.0f} at the end, peak {peak:.0f}; growth
  **{growth:+.1f} MiB** (bound {args.rss_bound_mb:g}); trend over the second half
  {slope_mib_per_min(second_half):+.2f} MiB/min. Timeline: {timeline}.
- Verdict: **{"PASS" if ok else "FAIL"}**."""
    return text, ok


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc:
        doc = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + f"\n\n## Soak (issue 8)\n\n{block}\n"
    DOCS.write_text(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--violation-interval", type=float, default=3.0, help="s per camera")
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--rss-bound-mb", type=float, default=50.0)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="siteguard-soak-") as tmp:
        data = Path(tmp) / "data"
        admin(data, "create-site", SITE)
        for i in range(args.cameras):
            admin(data, "create-camera", f"cam-{i}", "--site", SITE)
        key = admin(data, "create-api-key", "soak-edge", "--site", SITE)["key"]
        admin(data, "create-user", "soak-admin", "--role", "admin", "--password", "soak-password-1")
        token = admin(data, "create-api-key", "soak-panel", "--user", "soak-admin")["key"]
        port = free_port()
        log = (Path(tmp) / "service.log").open("wb")
        server = subprocess.Popen(
            [
                SITEGUARD,
                "serve",
                "--data-dir",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"service did not start:\n{(Path(tmp) / 'service.log').read_text()}"
                    )
                time.sleep(0.3)
            print(
                f"soak: {args.cameras} cameras for {args.minutes:g} min against {url}", flush=True
            )
            stats = asyncio.run(soak(url, key, token, server.pid, args))
            conn = sqlite3.connect(data / "siteguard.db")
            stored = [r[0] for r in conn.execute("SELECT event_id FROM violations")]
            conn.close()
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    text, ok = report(stats, stored, args)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
