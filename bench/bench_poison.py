"""Poison posts against a real `siteguard serve` (issue 17.3-17.4): does a bad post fail others?

    .venv/bin/python bench/bench_poison.py [--posts 1000] [--poison-every 10] [--database-url URL]

1. Mixed ingest: `--posts` concurrent posts (50 in flight), every `--poison-every`-th one a
   poison post from site A (NUL in a string, a time out of range in UTC, NaN, infinity, bytes
   that are not UTF-8, a huge box), the rest good posts from site B. Target: 0 good posts
   failed, every poison post a 4xx.
2. The detector's queue: an outbox of 100 events with a poison event before every tenth, drained
   by the real poster. Target: every poison event dead at once (no retry), every good event
   delivered without a failed try.

Prints the figures; SQLite in a temporary directory unless `--database-url` names PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from bench_ingest import drop_pg_database, fresh_pg_database

REPO = Path(__file__).resolve().parents[1]
CODE = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"
POISON = [  # raw JSON fields appended to a good event
    '"zone": "gate\\u0000b"',
    '"started_at": "9999-12-31T23:59:59-14:00"',
    '"confidence": NaN',
    '"duration_s": Infinity',
    '"boxes": [{"class": "head", "confidence": 0.5, "xyxy": [NaN, 2, 3, 4]}]',
    '"boxes": [{"class": "head", "confidence": 0.5, "xyxy": [1e309, 2, 3, 4]}]',
    '"zone": "\xff\xfe"',
]


def _siteguard(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def _event(camera: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "duration_s": 2.0,
        "confidence": 0.8,
        "boxes": [{"class": "head", "confidence": 0.8, "xyxy": [10.0, 10.0, 50.0, 60.0]}],
    }


def _poison_body(n: int) -> bytes:
    body = json.dumps(_event("gate-a"))
    return (body[:-1] + ", " + POISON[n % len(POISON)] + "}").encode("latin-1")


async def mixed_posts(url: str, keys: dict[str, str], posts: int, every: int) -> dict[str, int]:
    limit = asyncio.Semaphore(50)
    tally: Counter[str] = Counter()

    async def one(client: httpx.AsyncClient, n: int) -> None:
        poison = n % every == every // 2
        if poison:
            key, body = keys["site-a"], _poison_body(n)
        else:
            key, body = keys["site-b"], json.dumps(_event("gate-b")).encode()
        async with limit:
            r = await client.post(
                "/api/v1/violations", headers={"X-API-Key": key}, files={"event": (None, body)}
            )
        kind = "poison" if poison else "good"
        tally[f"{kind} {r.status_code}"] += 1
        tally[kind] += 1
        ok = 400 <= r.status_code < 500 if poison else r.status_code == 201
        tally[f"{kind} {'as expected' if ok else 'FAILED'}"] += 1

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(one(client, n) for n in range(posts)))
    return dict(sorted(tally.items()))


def detector_queue(url: str, key: str, tmp: Path) -> dict[str, float]:
    from detector.config import ServiceConfig
    from detector.outbox import Outbox
    from detector.poster import Poster

    outbox = Outbox(tmp / "outbox.sqlite3")
    results: Counter[str] = Counter()
    poisons = 0
    for n in range(100):
        if n % 10 == 5:  # refused by the service, not by the detector's own NaN check
            bad = {**_event("gate-a"), "zone": "gate\x00b"}
            outbox.put("open", bad["event_id"], bad)
            poisons += 1
        good = _event("gate-a")
        outbox.put("open", good["event_id"], good)
    config = ServiceConfig(url=url, api_key=key, retry_initial_s=1.0, retry_max_s=30.0)
    poster = Poster(config, outbox, on_result=lambda kind, r: results.update([r]))
    started = time.perf_counter()
    poster.drain()
    return {
        "events queued": 100 + poisons,
        "poison events": poisons,
        "dead letters": outbox.dead_count(),
        "delivered": results["posted"],
        "failed tries (retries)": results["failed"],
        "left in queue": outbox.depth(),
        "drain seconds": round(time.perf_counter() - started, 2),
    }


@contextlib.contextmanager
def _database(server_url: str | None) -> Iterator[str | None]:
    """None (SQLite), or a fresh PostgreSQL database on `server_url`, dropped afterwards."""
    if not server_url:
        yield None
        return
    url = fresh_pg_database(server_url)
    try:
        yield url
    finally:
        drop_pg_database(server_url, url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--poison-every", type=int, default=10)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (a throw-away database is made there and dropped); "
        "default: SQLite",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, _database(args.database_url) as db_url:
        tmp = Path(tmp_name)
        env = {**os.environ, "SITEGUARD_DATA_DIR": str(tmp / "data")}
        if db_url:
            env["SITEGUARD_DATABASE_URL"] = db_url
        admin = ["admin", "--data-dir", str(tmp / "data")]
        _siteguard(env, *admin, "upgrade-db")
        keys = {}
        for site, camera in (("site-a", "gate-a"), ("site-b", "gate-b")):
            _siteguard(env, *admin, "create-site", site)
            _siteguard(env, *admin, "create-camera", "--site", site, camera)
            out = _siteguard(env, *admin, "create-api-key", "--site", site, f"edge-{site}")
            keys[site] = json.loads(out.strip())["key"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = (tmp / "serve.log").open("wb")
        serve = ["serve", "--data-dir", str(tmp / "data"), "--host", "127.0.0.1"]
        proc = subprocess.Popen(
            [sys.executable, "-c", CODE, *serve, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
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
                if proc.poll() is not None or time.monotonic() > deadline:
                    print((tmp / "serve.log").read_text()[-3000:])
                    return 1
                time.sleep(0.3)
            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(f"1. {args.posts} mixed posts ({backend}), 1 in {args.poison_every} poison:")
            for name, value in asyncio.run(
                mixed_posts(url, keys, args.posts, args.poison_every)
            ).items():
                print(f"   {name}: {value}")
            print("2. the detector's queue (real poster, 100 events, a poison before every 10th):")
            for name, value in detector_queue(url, keys["site-a"], tmp).items():
                print(f"   {name}: {value}")
        finally:
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
