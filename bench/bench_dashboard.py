"""Dashboard page times with 10 000 violations in the database (target: every page < 300 ms).

One command, real parts: a service built with `create_app` on a temp SQLite file, served by
uvicorn on 127.0.0.1, seeded with N violations (30 days, 2 sites, 8 cameras, a review mix, three
model versions); each page is fetched over HTTP by a logged-in admin (who sees every site, the
worst case). For scale, the same pages are timed side by side on a 100-violation database,
interleaved, so the ratio shows how page time grows with data.

    .venv/bin/python bench/bench_dashboard.py [--violations 10000] [--repeat 30] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.app import create_app  # noqa: E402
from service.config import load_settings  # noqa: E402
from service.models import Camera, ModelVersion, Review, Site, User, Violation  # noqa: E402
from service.security import hash_password  # noqa: E402

PASSWORD = "bench-password-1"
PAGES = [
    "/alerts",
    "/alerts?page=100",
    "/alerts?kind=no_harness&status=unreviewed",
    "/alerts/{event_id}",
    "/alerts/_row/{event_id}",
    "/cameras",
    "/models",
    "/reports?period=daily&group=site&days=30",
    "/reports?period=weekly&group=zone&days=30",
    "/reports.csv?period=daily&group=camera&days=30",
    "/admin",
]


def seed(app: object, n: int, rng: random.Random) -> str:
    """Insert sites, cameras, users, model versions and `n` violations; return one event id."""
    state = app.state.siteguard  # type: ignore[attr-defined]
    now = dt.datetime.now(dt.UTC)
    cameras = [(f"cam-{i}", "site-a" if i < 4 else "site-b") for i in range(8)]
    with state.db.session() as db, state.db.writing(db):
        db.add_all([Site(id="site-a", name="Site A"), Site(id="site-b", name="Site B")])
        db.add_all(
            Camera(id=c, site_id=s, name=c.upper(), state="online", fps=5.0, last_frame_at=now)
            for c, s in cameras
        )
        db.add(User(id=1, username="admin", password_hash=hash_password(PASSWORD), role="admin"))
        for i, acc in enumerate((0.89, 0.93, 0.96)):
            db.add(
                ModelVersion(
                    version=f"v{i + 1}",
                    sha256=str(i) * 64,
                    size_bytes=1,
                    status="active" if i == 2 else "retired",
                    metrics={"benchmark": {"worker_accuracy": acc, "map50": acc - 0.02}},
                    created_at=now - dt.timedelta(days=30 - 10 * i),
                )
            )
        db.flush()
        rows = []
        for i in range(n):
            cam, site = cameras[i % len(cameras)]
            started = now - dt.timedelta(seconds=rng.uniform(0, 30 * 86400))
            rows.append(
                {
                    "id": i + 1,
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "site_id": site,
                    "camera_id": cam,
                    "kind": "no_harness" if i % 5 == 0 else "no_helmet",
                    "zone": ("site", "roof", "scaffold")[i % 3],
                    "started_at": started,
                    "duration_s": rng.uniform(2, 60),
                    "confidence": rng.uniform(0.3, 0.95),
                    "track_id": i,
                    "model_version": f"v{1 + i % 3}",
                    "frame_width": 1280,
                    "frame_height": 720,
                    "boxes": [{"class": "head", "confidence": 0.8, "xyxy": [1, 2, 30, 40]}],
                    "status": rng.choice(("unreviewed", "unreviewed", "confirmed", "false_alarm")),
                    "received_at": started,
                }
            )
        db.execute(insert(Violation), rows)
        reviews = [
            {"violation_id": r["id"], "outcome": r["status"], "comment": "", "user_id": 1,
             "created_at": r["started_at"]}
            for r in rows if r["status"] != "unreviewed"
        ]  # fmt: skip
        if reviews:
            db.execute(insert(Review), reviews)
    return rows[len(rows) // 2]["event_id"]


class Server:
    """A seeded service on 127.0.0.1 in a background thread."""

    def __init__(self, n: int) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="sg-bench-web-")
        settings = load_settings(data_dir=Path(self.tmp.name))
        app = create_app(settings, housekeeping=False)
        self.event_id = seed(app, n, random.Random(n))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.base, timeout=60)
        resp = self.client.post("/login", data={"username": "admin", "password": PASSWORD})
        if resp.status_code != 303:
            raise RuntimeError(f"login failed: {resp.status_code}")

    def fetch(self, path: str) -> float:
        """Seconds for one full GET (status 200 required)."""
        t0 = time.perf_counter()
        resp = self.client.get(path.replace("{event_id}", self.event_id))
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status_code}")
        return elapsed

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.tmp.cleanup()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--violations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    big, small = Server(args.violations), Server(100)
    try:
        for server in (big, small):  # warm-up: templates compiled, caches filled
            for page in PAGES:
                server.fetch(page)
        times: dict[str, dict[str, list[float]]] = {p: {"big": [], "small": []} for p in PAGES}
        for _ in range(args.repeat):
            for page in PAGES:  # interleaved, so background load hits both alike
                times[page]["big"].append(big.fetch(page))
                times[page]["small"].append(small.fetch(page))
    finally:
        big.close()
        small.close()

    results = []
    for page in PAGES:
        b, s = times[page]["big"], times[page]["small"]
        results.append(
            {
                "page": page,
                "p50_ms": statistics.median(b) * 1000,
                "p95_ms": pct(b, 0.95) * 1000,
                "max_ms": max(b) * 1000,
                "small_p50_ms": statistics.median(s) * 1000,
                "ratio_p50": statistics.median(b) / statistics.median(s),
            }
        )
    worst = max(r["p95_ms"] for r in results)
    if args.json:
        print(json.dumps({"violations": args.violations, "repeat": args.repeat,
                          "pages": results, "worst_p95_ms": worst}, indent=2))  # fmt: skip
    else:
        print(f"{args.violations} violations, {args.repeat} fetches per page (admin, all sites)")
        print("| page | p50 ms | p95 ms | max ms | p50 ms @100 | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in results:
            print(
                f"| `{r['page']}` | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f} "
                f"| {r['small_p50_ms']:.1f} | {r['ratio_p50']:.2f}x |"
            )
        verdict = "meets" if worst < 300 else "MISSES"
        print(f"\nworst p95 {worst:.1f} ms: {verdict} the < 300 ms target")
    return 0 if worst < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
