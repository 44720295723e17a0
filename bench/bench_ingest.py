"""Violation ingest throughput and latency against a real `siteguard serve` on 127.0.0.1.

    .venv/bin/python bench/bench_ingest.py [--requests 3000] [--concurrency 32]
        [--postgres-url postgresql://...] [--write-docs]

For each backend (SQLite always; PostgreSQL when a URL is given or SITEGUARD_TEST_POSTGRES_URL is
set) it starts a fresh server process with an empty database, warms up, then sends a bounded
number of detector posts (multipart: contract JSON + a unique ~50 KB JPEG snapshot, so every post
writes a new file) over a fixed number of keep-alive connections (the bound: at most that many
posts in flight), and reports ingests/s and latency percentiles measured at the client. The
client is a minimal HTTP/1.1 writer/reader with pre-built requests, so it spends little CPU, but
it still shares the machine's cores with the server (its own CPU per post is reported too).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BOUNDARY = "sgbenchboundary7d3f"
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_ingest:begin -->", "<!-- bench_ingest:end -->"


def base_jpeg(size: int) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    side = 64
    while True:  # noise barely compresses: grow the image until the JPEG reaches `size`
        img = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        if len(buf) >= size:
            return buf.tobytes()
        side += 8


def unique_jpeg(base: bytes, n: int) -> bytes:
    """`base` with a JPEG comment segment holding `n`: still a valid JPEG, a new sha256."""
    note = f"bench-{n}".encode()
    return base[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + base[2:]


def body(camera: str, jpeg: bytes) -> bytes:
    event = {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "ended_at": None,
        "duration_s": 2.4,
        "confidence": 0.81,
        "track_id": 17,
        "model_version": "bench",
        "frame_width": 1280,
        "frame_height": 720,
        "boxes": [{"class": "head", "confidence": 0.81, "xyxy": [412, 96, 470, 160]}],
    }
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="event"\r\n\r\n'.encode(),
        json.dumps(event).encode(),
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="snapshot"; '
        f'filename="s.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode(),
        jpeg,
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]
    return b"".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_pg_database(admin_url: str) -> str:
    """Create an empty database beside `admin_url`'s and return its URL."""
    import psycopg

    name = f"sg_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rpartition('/')[0]}/{name}"


def _libpq(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it (postgresql://...)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def drop_pg_database(admin_url: str, url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def siteguard(*args: str, env: dict[str, str]) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "siteguard", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    if run.returncode != 0:
        raise SystemExit(f"siteguard {' '.join(args)} failed:\n{run.stderr}")
    return run.stdout


async def load(url: str, key: str, bodies: list[bytes], concurrency: int) -> list[float]:
    """Post every body once over `concurrency` keep-alive connections; client latencies (s).

    A minimal HTTP/1.1 client on asyncio streams, requests pre-built as bytes: it spends a
    fraction of a general client's CPU per post, so the server gets the machine's cores.
    """
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /api/v1/violations HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
    )
    requests = [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    latencies: list[float] = []
    pending = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        try:
            for request in pending:
                t0 = time.perf_counter()
                writer.write(request)
                status, body = await _response(reader)
                latencies.append(time.perf_counter() - t0)
                if status != 201:
                    raise RuntimeError(f"unexpected {status}: {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header[9:12])
    match = re.search(rb"(?im)^content-length:\s*(\d+)", header)
    if match is None:
        raise RuntimeError(f"response without Content-Length: {header[:200]!r}")
    return status, await reader.readexactly(int(match[1]))


def run_backend(
    name: str, db_url: str | None, workers: int, args: argparse.Namespace
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "SITEGUARD_DATA_DIR": tmp, "SITEGUARD_PORT": str(port)}
        if db_url:
            env["SITEGUARD_DATABASE_URL"] = fresh_pg_database(db_url)
        siteguard("admin", "create-site", "bench", env=env)
        siteguard("admin", "create-camera", "bench-cam", "--site", "bench", env=env)
        key = json.loads(siteguard("admin", "create-api-key", "bench", "--site", "bench", env=env))[
            "key"
        ]
        cmd = [sys.executable, "-m", "siteguard", "serve", "--workers", str(workers)]
        server_log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=server_log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name}: server did not start")
                time.sleep(0.2)
            base = base_jpeg(args.snapshot_kb * 1024)
            total = args.warmup + args.requests
            bodies = [body("bench-cam", unique_jpeg(base, i)) for i in range(total)]
            asyncio.run(load(url, key, bodies[: args.warmup], args.concurrency))
            cpu0, client0 = _cpu_seconds(server.pid), time.process_time()
            t0 = time.perf_counter()
            lat = asyncio.run(load(url, key, bodies[args.warmup :], args.concurrency))
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds(server.pid) - cpu0
            client_cpu = time.process_time() - client0
            lat.sort()
            metrics = httpx.get(f"{url}/metrics", timeout=30).text
        except BaseException:
            server_log.flush()
            print((Path(tmp) / "server.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(30)
            server_log.close()
            if db_url:
                drop_pg_database(db_url, env["SITEGUARD_DATABASE_URL"])
    server_mean = _server_mean(metrics)
    return {
        "backend": name,
        "workers": workers,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "ingests_per_s": args.requests / wall,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "mean_ms": 1000 * statistics.fmean(lat),
        "server_mean_ms": server_mean,
        "server_cpu_ms": 1000 * cpu / args.requests,
        "client_cpu_ms": 1000 * client_cpu / args.requests,
        "snapshot_bytes": len(unique_jpeg(base, 0)),
    }


def median_run(
    name: str, db_url: str | None, workers: int, args: argparse.Namespace
) -> dict[str, object]:
    """`args.repeat` runs of one row; the run with the median throughput, with the range.

    A shared VM's throughput varies by tens of percent from run to run; one run is a sample.
    """
    runs = sorted(
        (run_backend(name, db_url, workers, args) for _ in range(args.repeat)),
        key=lambda r: float(r["ingests_per_s"]),  # type: ignore[arg-type]
    )
    median = dict(runs[len(runs) // 2])
    median["range"] = f"{runs[0]['ingests_per_s']:.0f}–{runs[-1]['ingests_per_s']:.0f}"
    return median


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its worker children (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _server_mean(metrics: str) -> float | None:
    total = re.search(r"^siteguard_ingest_duration_seconds_sum (\S+)$", metrics, re.M)
    count = re.search(r"^siteguard_ingest_duration_seconds_count (\S+)$", metrics, re.M)
    if not total or not count or float(count[1]) == 0:
        return None
    return 1000 * float(total[1]) / float(count[1])


def render(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    load_note = _load_note()
    lines = [
        "## Service: violation ingest (`bench/bench_ingest.py`)",
        "",
        f"Command: `.venv/bin/python bench/bench_ingest.py --requests {args.requests} "
        f"--repeat {args.repeat} "
        f"--concurrency {args.concurrency} --workers {' '.join(map(str, args.workers))}` "
        "(PostgreSQL rows when `SITEGUARD_TEST_POSTGRES_URL` is set). `siteguard serve` "
        "(N uvicorn worker processes) on 127.0.0.1, a fresh database per run, "
        f"{args.warmup} warm-up posts, then {args.requests} posts of the contract JSON plus a "
        f"unique ~{rows[0]['snapshot_bytes'] // 1024} KB JPEG snapshot (each one a new file in "
        "the blob store), over that many keep-alive connections from one minimal asyncio "
        "HTTP/1.1 client on the same machine. Latency is measured at the client; `server mean` "
        "is the service's own ingest histogram. Each row is the median of "
        f"{args.repeat} runs by throughput (this shared VM varies by tens of percent from run "
        "to run; the range column shows how much).",
        "",
        f"Machine: {os.cpu_count()} CPU cores, Python {platform.python_version()}. {load_note}",
        "",
        f"| backend | workers | ingests/s (median of {args.repeat}) | range ingests/s | p50 ms "
        "| p99 ms | server mean ms | server CPU ms/ingest | client CPU ms/ingest "
        "| target (≥ 1000/s, p99 < 50 ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ok = float(r["ingests_per_s"]) >= 1000 and float(r["p99_ms"]) < 50  # type: ignore[arg-type]
        server = "–" if r["server_mean_ms"] is None else f"{r['server_mean_ms']:.1f}"
        lines.append(
            f"| {r['backend']} | {r['workers']} | {r['ingests_per_s']:.0f} | {r['range']} | "
            f"{r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {server} | {r['server_cpu_ms']:.2f} | "
            f"{r['client_cpu_ms']:.2f} | {'met' if ok else 'NOT met'} |"
        )
    met = [
        f"{r['backend']} x{r['workers']}"
        for r in rows
        if float(r["ingests_per_s"]) >= 1000 and float(r["p99_ms"]) < 50  # type: ignore[arg-type]
    ]
    verdict = f"met here by {', '.join(met)}" if met else "it is not met in this run"
    lines += [
        "",
        "How to read it: `ingests/s` and the latencies are what this machine delivered end to end "
        "with client and server sharing its cores. `server CPU ms/ingest` is the server "
        "processes' own CPU time (user + system, from /proc) per post, `client CPU ms/ingest` "
        "the load generator's. The ingest path (`service/ingest.py`) parses the multipart body "
        "with python-multipart's streaming parser, skips the router's dependency machinery, and "
        "group-commits: one writer thread per worker takes every post waiting at that moment, "
        "has their images written side by side (4 threads), INSERTs their rows in one "
        "transaction and answers each post only after its commit. With uvloop and httptools "
        "under uvicorn. Before this path (plain FastAPI "
        "route, one transaction per post, h11) the same run gave 337/s (1 worker) and 431/s "
        "(2 workers) on SQLite.",
        "",
        f"Verdict: {verdict}. One worker runs its event loop and its writer thread in one "
        "process (one GIL); more workers add event loops and writers on the same cores, and "
        "SQLite lets one process write at a time (`flock` beside the database, then `BEGIN "
        "IMMEDIATE`): compare the rows to see whether they pay off on a given machine.",
    ]
    return "\n".join(lines) + "\n"


def _load_note() -> str:
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return ""
    return (
        f"Load average (1 min) at the end of the run: {load1:.1f}; anything else running on "
        "the machine counts against these figures."
    )


def write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section}{END}\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    DOCS.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="e.g. 1 2")
    parser.add_argument("--snapshot-kb", type=int, default=50)
    parser.add_argument("--postgres-url", default=os.environ.get("SITEGUARD_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per row; the median run is reported"
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 512:
        parser.error("--requests in 1..100000 and --concurrency in 1..512")
    rows = []
    for workers in args.workers:  # backends interleaved per worker count, in one run
        rows.append(median_run("SQLite (WAL)", None, workers, args))
        if args.postgres_url:
            rows.append(median_run("PostgreSQL 15", args.postgres_url, workers, args))
    section = render(rows, args)
    print(section)
    if args.write_docs:
        write_docs(section)


if __name__ == "__main__":
    main()
