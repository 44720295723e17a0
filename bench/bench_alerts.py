"""What alerting costs the ingest path, and what grouping saves (target: notify < 1 ms p99).

One command, real parts: a local HTTP receiver on 127.0.0.1 that answers like a chat robot after
a configurable latency (default 80 ms, a typical DingTalk/WeCom round trip from a site), and an
AlertHub with one webhook channel pointing at it. Measured side by side, interleaved:

- the caller's time in ``hub.notify_violation`` (what a violation POST pays), versus
- the caller's time for one synchronous send to the same receiver (what it would pay if alerts
  were delivered inline);
- end-to-end delivery throughput of one channel worker with a 0 ms receiver;
- messages sent for a 100-violation burst on one camera, with and without cooldown grouping.

    .venv/bin/python bench/bench_alerts.py [--n 200] [--latency-ms 80] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts import AlertHub, ViolationNotice  # noqa: E402
from alerts.messages import Dispatch  # noqa: E402


class Receiver:
    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.count = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.latency_s:
                    time.sleep(outer.latency_s)
                with outer.lock:
                    outer.count += 1
                body = b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def notice(i: int, camera: str = "gate-1") -> ViolationNotice:
    return ViolationNotice(
        event_id=f"bench-{camera}-{i}",
        site_id="site-a",
        camera_id=camera,
        zone="site",
        kind="no_helmet",
        started_at=datetime.now(UTC),
        duration_s=3.0,
        confidence=0.8,
        snapshot_jpeg=b"\xff\xd8" + bytes(30_000) + b"\xff\xd9",
        link=f"http://siteguard.local/violations/{i}",
    )


def hub_for(url: str, **route: object) -> AlertHub:
    return AlertHub.from_config(
        {
            "tick_interval_s": 3600,
            "delivery": {"queue_limit": 100_000},
            "channels": {"w": {"type": "webhook", "url": url}},
            "routes": [{"name": "r", "channels": ["w"], **route}],
        },
        env={},
    )


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else max(values)


def caller_cost(n: int, latency_s: float) -> dict[str, float]:
    rec = Receiver(latency_s)
    hub = hub_for(rec.url)
    hub.start()
    channel = hub._channels["w"]  # the same channel object, sent synchronously
    notify_ms, inline_ms = [], []
    try:
        for i in range(n):  # interleaved: one of each per round
            t = time.perf_counter()
            hub.notify_violation(notice(i, camera=f"cam-{i}"))
            notify_ms.append((time.perf_counter() - t) * 1e3)
            d = Dispatch(kind="violation", created_at=datetime.now(UTC), violations=(notice(i),))
            t = time.perf_counter()
            channel.send(d)
            inline_ms.append((time.perf_counter() - t) * 1e3)
        hub.wait_idle(timeout=600)
    finally:
        hub.stop()
        rec.close()
    return {
        "notify_p50_ms": statistics.median(notify_ms),
        "notify_p99_ms": pct(notify_ms, 99),
        "inline_p50_ms": statistics.median(inline_ms),
        "inline_p99_ms": pct(inline_ms, 99),
        "ratio_p50": statistics.median(inline_ms) / statistics.median(notify_ms),
    }


def throughput(n: int) -> float:
    rec = Receiver(0.0)
    hub = hub_for(rec.url)
    for i in range(n):
        hub.notify_violation(notice(i, camera=f"cam-{i}"))
    t = time.perf_counter()
    hub.start()
    hub.wait_idle(timeout=600)
    elapsed = time.perf_counter() - t
    hub.stop()
    rec.close()
    return rec.count / elapsed


def burst_messages(cooldown_s: float) -> int:
    rec = Receiver(0.0)
    hub = hub_for(rec.url, cooldown_s=cooldown_s)
    hub.start()
    for i in range(100):
        hub.notify_violation(notice(i))
    hub.stop()  # flushes the pending group
    rec.close()
    return rec.count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    result = {
        "n": args.n,
        "latency_ms": args.latency_ms,
        **caller_cost(args.n, args.latency_ms / 1e3),
        "throughput_msgs_per_s": throughput(args.n),
        "burst_100_messages_no_cooldown": burst_messages(0),
        "burst_100_messages_cooldown_300s": burst_messages(300),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"notify_violation (caller):   p50 {result['notify_p50_ms']:.3f} ms, "
        f"p99 {result['notify_p99_ms']:.3f} ms"
    )
    print(
        f"inline send ({args.latency_ms:.0f} ms peer): p50 {result['inline_p50_ms']:.1f} ms, "
        f"p99 {result['inline_p99_ms']:.1f} ms  -> {result['ratio_p50']:.0f}x"
    )
    print(
        f"delivery throughput (1 channel, 0 ms peer): {result['throughput_msgs_per_s']:.0f} msgs/s"
    )
    print(
        f"100-violation burst on one camera: {result['burst_100_messages_no_cooldown']} "
        f"messages without cooldown, {result['burst_100_messages_cooldown_300s']} with 300 s"
    )
    return 0  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
