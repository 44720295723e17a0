"""`siteguard bench cameras`: how many RTSP cameras one box keeps up with, ours vs a plain loop.

One real RTSP server (detector/rtsp_sim.py, gst-rtsp-server on 127.0.0.1) serves N distinct
streams of real footage: the demo clip, resized and encoded once to H.264 at `--fps`, each camera
starting 5 s further into it (cached under `--work-dir`). Each point starts the contender fresh
with N cameras, lets it settle, then measures a window of `--duration` seconds:

- `siteguard-*`: a real `siteguard detect` process (fp32 or int8 model, motion gating on or
  off) posting to a real local HTTP receiver; figures from its own Prometheus metrics;
- `ultralytics-*`: detector/bench_plain.py, `YOLO(model).predict` on every frame of every
  camera read in turn with OpenCV, the loop a user would write.

A frame's age = from its arrival at the reader (for the plain loop: its place in the stream,
see bench_plain.py) to the moment its detections are used (tracking and rules done, its events
queued; for the plain loop: `predict` returned). A point passes when every camera has p95 age
< `--p95-s`, is read at >= 95% of the stream's rate (otherwise its frames pile up: a growing
backlog) and has >= 90% of its frames handled (inferred, or skipped by motion gating), i.e. not
dropped. Contenders take turns at each N (a busy CPU slows them alike); one that fails a point
stops there. The largest N passed is the result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from detector.variant import VNNI_FLAGS, cpu_flags

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SIM = Path(__file__).resolve().parent / "rtsp_sim.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi; the venv has no gi
DEFAULT_CLIP = REPO.parent / "shared" / "demo" / "power-crew-helmets.mp4"
CLI = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"
CAMERA_OFFSET_S = 5.0  # camera i starts i * 5 s into the clip (looped): distinct streams
MIN_READ_SHARE = 0.95  # below this the stream outruns its reader: a growing backlog
MIN_HANDLED_SHARE = 0.90  # at most 10% of the frames dropped


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # "siteguard" | "plain"
    model: Path
    motion: bool = False
    max_batch: int = 4
    heavy_first: bool = False  # cam0 runs tiled inference (5 model runs a frame): a slow camera


CONTENDERS = {
    c.name: c
    for c in (
        Contender("siteguard-fp32", "siteguard", MODELS / "siteguard-ppe.onnx"),
        Contender("siteguard-fp32-gated", "siteguard", MODELS / "siteguard-ppe.onnx", True),
        Contender("siteguard-int8", "siteguard", MODELS / "siteguard-ppe-int8.onnx"),
        Contender("siteguard-int8-gated", "siteguard", MODELS / "siteguard-ppe-int8.onnx", True),
        Contender("ultralytics-pt", "plain", MODELS / "siteguard-ppe.pt"),
        Contender("ultralytics-onnx", "plain", MODELS / "siteguard-ppe.onnx"),
        # not run by default (item 3): does batching cameras into one call pay, does one
        # slow camera delay the others?
        Contender(
            "siteguard-int8-batch1", "siteguard", MODELS / "siteguard-ppe-int8.onnx", max_batch=1
        ),
        Contender(
            "siteguard-int8-slowcam0",
            "siteguard",
            MODELS / "siteguard-ppe-int8.onnx",
            heavy_first=True,
        ),
    )
}
DEFAULT_CONTENDERS = [n for n in CONTENDERS if not n.endswith(("batch1", "slowcam0"))]
QUICK_CONTENDERS = ["siteguard-int8-gated", "ultralytics-onnx"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "?",
        "vnni": sorted(cpu_flags() & VNNI_FLAGS),  # what model.use_int8: auto decides on
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
    }


# -- the cameras ---------------------------------------------------------------------------
def missing_server() -> str | None:
    """Why the RTSP server cannot run here (None = it can)."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')"
        "\nfrom gi.repository import Gst; Gst.init(None)\n"
        "need = ['x264enc', 'mp4mux', 'qtdemux', 'h264parse', 'rtph264pay', 'jpegdec']\n"
        "print(','.join(e for e in need if Gst.ElementFactory.find(e) is None))"
    )
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} missing"
    result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    if result.returncode != 0:
        return "GStreamer RTSP server not importable (python3-gi, gir1.2-gst-rtsp-server-1.0)"
    missing = result.stdout.strip()
    return f"GStreamer elements missing: {missing} (gstreamer1.0-plugins-*)" if missing else None


def prepare_clips(args: argparse.Namespace, cameras: int) -> Path:
    """cam0.mp4 ... H.264 clips of the footage, one per camera, long enough for one point."""
    import cv2

    seconds = max(120.0, args.duration + 90)  # start-up under load, settle, window, margin
    key = f"{Path(args.clip).stem}-{args.width}x{args.height}-{args.fps}fps-{seconds:g}s"
    root = Path(args.work_dir).resolve() / key
    frames = root / "frames"
    if not (frames / "done").is_file():
        shutil.rmtree(frames, ignore_errors=True)
        frames.mkdir(parents=True)
        capture = cv2.VideoCapture(str(args.clip))
        if not capture.isOpened():
            raise ValueError(f"cannot read the footage {args.clip}")
        step = max(1, round((capture.get(cv2.CAP_PROP_FPS) or args.fps) / args.fps))
        index = kept = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if index % step == 0:
                image = cv2.resize(image, (args.width, args.height))
                cv2.imwrite(str(frames / f"{kept:05d}.jpg"), image)
                kept += 1
            index += 1
        capture.release()
        if kept == 0:
            raise ValueError(f"no frames in {args.clip}")
        (frames / "done").write_text(str(kept))
    total = int((frames / "done").read_text())
    clips = root / "clips"
    clips.mkdir(exist_ok=True)
    for cam in range(cameras):
        clip = clips / f"cam{cam}.mp4"
        if clip.is_file():
            continue
        rotated = root / f"rotated-{cam}"  # the same frames, starting further in
        shutil.rmtree(rotated, ignore_errors=True)
        rotated.mkdir()
        offset = round(cam * CAMERA_OFFSET_S * args.fps)
        for i in range(total):
            (rotated / f"{i:05d}.jpg").symlink_to(frames / f"{(i + offset) % total:05d}.jpg")
        part = clip.with_suffix(".part.mp4")
        cmd = [SYSTEM_PYTHON, str(SIM), "--encode", str(rotated), "--out", str(part),
               "--fps", str(args.fps), "--width", str(args.width), "--height", str(args.height),
               "--seconds", str(seconds)]  # fmt: skip
        _log(f"encoding camera {cam} ({seconds:g} s of H.264)")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise RuntimeError(f"encoding failed: {result.stderr[-1000:]}")
        part.rename(clip)
        shutil.rmtree(rotated)
    return clips


class RtspCameras:
    """detector/rtsp_sim.py serving every clip of a folder as rtsp://127.0.0.1:PORT/camI."""

    def __init__(self, clips: Path, log: Path) -> None:
        self.port = _free_port()
        cmd = [SYSTEM_PYTHON, str(SIM), "--port", str(self.port), "--clips", str(clips)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("ab"),
                                     text=True)  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "READY":
            raise RuntimeError(f"the RTSP server did not start: {log.read_text()[-1000:]}")

    def url(self, cam: int) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam{cam}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class EventReceiver:
    """The service's ingest endpoints on 127.0.0.1, counting the events per camera."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        events, lock = self.events, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                reply: dict[str, Any] = {}
                if self.path == "/api/v1/violations":
                    match = re.search(rb'"camera_id":\s*"([^"]+)"', body)
                    event = re.search(rb'"event_id":\s*"([^"]+)"', body)
                    camera = match.group(1).decode() if match else "?"
                    with lock:
                        events[camera] = events.get(camera, 0) + 1
                    reply = {"event_id": event.group(1).decode() if event else ""}
                elif self.path == "/api/v1/heartbeats":
                    reply = {"active_model": None}
                data = json.dumps(reply).encode()
                self.send_response(201 if self.path == "/api/v1/violations" else 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self) -> dict[str, int]:
        taken = dict(self.events)
        self.events.clear()
        return taken

    def close(self) -> None:
        self._server.shutdown()


# -- figures -------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """A quantile from cumulative histogram buckets [(le, count)], linear inside a bucket."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    target = q * total
    previous_le, previous_count = 0.0, 0.0
    for le, count in buckets:
        if count >= target:
            if le == float("inf"):
                return previous_le  # beyond the last bound: at least that
            share = (
                (target - previous_count) / (count - previous_count)
                if count > previous_count
                else 1
            )
            return previous_le + (le - previous_le) * share
        previous_le, previous_count = le, count
    return previous_le


def camera_figures(
    camera: str, read: float, handled: float, dropped: float, window_s: float, fps: float
) -> dict[str, Any]:
    return {
        "camera": camera,
        "read": int(read),
        "handled": int(handled),
        "dropped": int(dropped),
        "read_share": round(read / (fps * window_s), 3),
        "handled_share": round(handled / (fps * window_s), 3),
    }


def judge(cameras: list[dict[str, Any]], p95_bound: float) -> tuple[bool, str]:
    """The pass rule of one point (see the module docstring); the reason names the camera."""
    for cam in cameras:
        if cam["p95_s"] is None:
            return False, f"{cam['camera']}: no frame handled"
        if cam["p95_s"] >= p95_bound:
            return False, f"{cam['camera']}: p95 age {cam['p95_s']:.2f} s"
        if cam["read_share"] < MIN_READ_SHARE:
            return False, f"{cam['camera']}: read {cam['read_share']:.0%} of its frames (backlog)"
        if cam["handled_share"] < MIN_HANDLED_SHARE:
            return False, f"{cam['camera']}: handled {cam['handled_share']:.0%} (dropped)"
    return True, "ok"


# -- one point -------------------------------------------------------------------------------
def _scrape(url: str) -> dict[str, Any]:
    """Per camera: read/dropped/processed/skipped counters and the frame-age buckets."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    cams: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            camera = sample.labels.get("camera")
            if camera is None:
                continue
            cam = cams.setdefault(camera, {"buckets": {}})
            name = sample.name.removeprefix("siteguard_detector_")
            if name == "frame_age_seconds_bucket":
                cam["buckets"][float(sample.labels["le"])] = sample.value
            elif name in ("frames_read_total", "frames_dropped_total", "frames_processed_total",
                          "frames_skipped_total"):  # fmt: skip
                cam[name.removesuffix("_total")] = sample.value
    return cams


def _timed_scrape(url: str) -> tuple[float, dict[str, Any]]:
    """A scrape and its moment (the request's midpoint: slow on a starved CPU)."""
    started = time.monotonic()
    scraped = _scrape(url)
    return (started + time.monotonic()) / 2, scraped


def _wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({log.read_text()[-1500:]})")
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def run_siteguard(
    contender: Contender, n: int, args: argparse.Namespace, cams: RtspCameras,
    receiver: EventReceiver, workdir: Path,
) -> dict[str, Any]:  # fmt: skip
    import httpx

    port = _free_port()
    config = {
        "detector_id": "bench",
        # use_int8 off: each contender runs exactly the file it names
        "model": {
            "path": str(contender.model),
            "watch": False,
            "follow_promotions": False,
            "use_int8": False,
        },
        "service": {"url": receiver.url, "api_key": "bench"},
        "outbox": {"path": str(workdir / "outbox.sqlite3")},
        "motion": {"enabled": contender.motion},
        "metrics": {"enabled": True, "host": "127.0.0.1", "port": port},
        "max_batch": contender.max_batch,
        "cameras": [{"id": f"cam{i}", "source": cams.url(i), "fps": args.fps} for i in range(n)],
    }
    if contender.heavy_first:
        config["cameras"][0]["tiling"] = True
    (workdir / "detector.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    log = workdir / "detect.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEGUARD_")}
    cmd = [sys.executable, "-c", CLI, "detect", "--config", str(workdir / "detector.yaml")]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                            cwd=workdir)  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    try:

        def flowing() -> bool:
            try:
                scraped = _scrape(url)
            except httpx.HTTPError:  # not listening yet
                return False
            return all(
                scraped.get(f"cam{i}", {}).get("frames_processed", 0)
                + scraped.get(f"cam{i}", {}).get("frames_skipped", 0)
                > 0
                for i in range(n)
            )

        try:
            _wait_for(flowing, 180, "every camera's first frame", proc, log)
        except (TimeoutError, RuntimeError) as exc:
            return {"passed": False, "reason": str(exc)[:300], "cameras": []}
        time.sleep(args.settle)
        receiver.take()
        start_mark, before = _timed_scrape(url)
        cpu_before, server_before = _cpu_seconds(proc.pid), _cpu_seconds(cams.proc.pid)
        time.sleep(args.duration)
        cpu_after = _cpu_seconds(proc.pid)
        end_mark, after = _timed_scrape(url)
        window = end_mark - start_mark
        server_after, rss = _cpu_seconds(cams.proc.pid), _rss_mib(proc.pid)
    except httpx.HTTPError as exc:
        return {"passed": False, "reason": f"metrics unreadable: {exc}", "cameras": []}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    events = receiver.take()
    cameras = []
    for i in range(n):
        a, b = before.get(f"cam{i}", {}), after.get(f"cam{i}", {})

        def delta(key: str, a: dict = a, b: dict = b) -> float:
            return b.get(key, 0.0) - a.get(key, 0.0)

        les = sorted(b["buckets"])
        buckets = [(le, b["buckets"][le] - a["buckets"].get(le, 0.0)) for le in les]
        cam = camera_figures(
            f"cam{i}",
            delta("frames_read"),
            delta("frames_processed") + delta("frames_skipped"),
            delta("frames_dropped"),
            window,
            args.fps,
        )
        cam["skipped"] = int(delta("frames_skipped"))
        p50, p95 = bucket_quantile(buckets, 0.50), bucket_quantile(buckets, 0.95)
        cam["p50_s"] = None if p50 is None else round(p50, 3)
        cam["p95_s"] = None if p95 is None else round(p95, 3)
        within = dict(buckets).get(args.p95_s)  # exact when the bound is a bucket bound
        cam["within_bound"] = (
            round(within / buckets[-1][1], 3) if within and buckets[-1][1] else None
        )
        cam["events"] = events.get(f"cam{i}", 0)
        cameras.append(cam)
    passed, reason = judge(cameras, args.p95_s)
    return {
        "passed": passed,
        "reason": reason,
        "cpu_cores": round((cpu_after - cpu_before) / window, 3),
        "rss_mib": round(rss, 1),
        "server_cpu_cores": round((server_after - server_before) / window, 3),
        "cameras": cameras,
    }


def run_plain(
    contender: Contender, n: int, args: argparse.Namespace, cams: RtspCameras, workdir: Path
) -> dict[str, Any]:
    log = workdir / "plain.log"
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "detector.bench_plain", str(contender.model), str(args.fps),
           str(args.settle), str(args.duration), *(cams.url(i) for i in range(n))]  # fmt: skip
    server_before = _cpu_seconds(cams.proc.pid)
    started = time.monotonic()
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True,
                                env=env, cwd=REPO, timeout=args.duration + 600)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"passed": False, "reason": "the plain loop did not finish", "cameras": []}
    server_cpu = (_cpu_seconds(cams.proc.pid) - server_before) / (time.monotonic() - started)
    if result.returncode != 0 or not result.stdout.strip():
        return {"passed": False, "reason": log.read_text()[-300:], "cameras": []}
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    cameras = []
    for cam_answer in answer["cameras"]:
        frames, ages = cam_answer["frames"], cam_answer["ages_s"]
        cam = camera_figures(cam_answer["camera"], frames, frames, 0, args.duration, args.fps)
        cam["skipped"] = 0
        cam["p50_s"] = round(percentile(ages, 50), 3) if ages else None
        cam["p95_s"] = round(percentile(ages, 95), 3) if ages else None
        within = sum(age < args.p95_s for age in ages)
        cam["within_bound"] = round(within / len(ages), 3) if ages else None
        cam["events"] = None
        cameras.append(cam)
    passed, reason = judge(cameras, args.p95_s)
    return {
        "passed": passed,
        "reason": reason,
        "cpu_cores": answer["cpu_cores"],
        "rss_mib": answer["rss_mib"],
        "server_cpu_cores": round(server_cpu, 3),  # over the whole run, start-up included
        "cameras": cameras,
    }


# -- the run ---------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(f"[bench cameras] {message}", file=sys.stderr, flush=True)


def _check(args: argparse.Namespace, names: list[str], grid: list[int]) -> None:
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        raise ValueError(f"unknown contender(s) {unknown}: choose from {', '.join(CONTENDERS)}")
    if not grid or min(grid) < 1:
        raise ValueError("--cameras must list camera counts >= 1, e.g. 1,2,4")
    if not Path(args.clip).is_file():
        raise ValueError(f"footage {args.clip} missing (the shared demo clips, ../shared/demo)")
    for name in names:
        if not CONTENDERS[name].model.is_file():
            raise ValueError(f"{name}: model {CONTENDERS[name].model} missing")
    if any(CONTENDERS[n].kind == "plain" for n in names):
        import importlib.util

        if importlib.util.find_spec("ultralytics") is None:
            raise ValueError("the ultralytics-* contenders need the [train] extra (ultralytics)")
    reason = missing_server()
    if reason:
        raise ValueError(f"cannot simulate RTSP cameras: {reason}")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.cameras = args.cameras or "1,2"
        args.duration = min(args.duration, 8.0)
        args.settle = min(args.settle, 2.0)
    names = args.contenders.split(",") if args.contenders else (
        QUICK_CONTENDERS if args.quick else DEFAULT_CONTENDERS
    )  # fmt: skip
    grid = sorted({int(c) for c in (args.cameras or "1,2,3,4,6,8").split(",")})
    _check(args, names, grid)
    report: dict[str, Any] = {
        "machine": machine(),
        "stream": {
            "clip": Path(args.clip).name,
            "size": f"{args.width}x{args.height}",
            "fps": args.fps,
            "codec": "H.264 (pre-encoded, served as is)",
        },  # fmt: skip
        "rule": {
            "p95_age_s_below": args.p95_s,
            "min_read_share": MIN_READ_SHARE,
            "min_handled_share": MIN_HANDLED_SHARE,
        },  # fmt: skip
        "duration_s": args.duration,
        "points": [],
    }
    clips = prepare_clips(args, max(grid))
    workroot = Path(tempfile.mkdtemp(prefix="siteguard-bench-cameras-"))
    cams = RtspCameras(clips, workroot / "rtsp.log")
    receiver = EventReceiver()
    active = list(names)
    started = time.monotonic()
    try:
        for n in grid:  # contenders take turns at each camera count
            for name in list(active):
                contender = CONTENDERS[name]
                workdir = workroot / f"{name}-{n}"
                workdir.mkdir()
                _log(f"{name}: {n} camera(s)")
                if contender.kind == "siteguard":
                    point = run_siteguard(contender, n, args, cams, receiver, workdir)
                else:
                    point = run_plain(contender, n, args, cams, workdir)
                point = {"contender": name, "n": n, **point}
                report["points"].append(point)
                _log(f"{name}: {n} camera(s): {'pass' if point['passed'] else 'FAIL'} "
                     f"({point['reason']})")  # fmt: skip
                if not point["passed"]:
                    active.remove(name)
            if not active:
                break
    finally:
        cams.close()
        receiver.close()
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
    report["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["summary"] = summarize(report["points"], names)
    return report


def summarize(points: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for name in names:
        mine = [p for p in points if p["contender"] == name]
        passed = [p["n"] for p in mine if p["passed"]]
        failed = [p["n"] for p in mine if not p["passed"]]
        best[name] = {
            "max_cameras": max(passed, default=0),
            "first_failed": min(failed) if failed else None,
        }
    ours = [best[n]["max_cameras"] for n in names if CONTENDERS[n].kind == "siteguard"]
    plain = [best[n]["max_cameras"] for n in names if CONTENDERS[n].kind == "plain"]
    summary: dict[str, Any] = {"max_cameras": best}
    if ours and plain:
        summary["ratio_best_vs_best_plain"] = (
            round(max(ours) / max(plain), 2) if max(plain) else None
        )
    return summary


def format_report(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), VNNI: {', '.join(m['vnni']) or 'no'}; "
        f"load(1m) {m['load_avg_1m_start']} -> {m.get('load_avg_1m_end')}",
        f"stream {report['stream']['size']} @ {report['stream']['fps']} fps, "
        f"window {report['duration_s']:g} s; "
        f"pass: p95 age < {report['rule']['p95_age_s_below']} s, "
        f"read >= {MIN_READ_SHARE:.0%}, handled >= {MIN_HANDLED_SHARE:.0%} on every camera",
        f"{'contender':<25}{'N':>3}  {'pass':<5}{'p50 s':>7}{'p95 s':>7}{'handled':>9}"
        f"{'dropped':>9}{'read':>7}{'CPU':>7}{'RSS MiB':>9}  reason",
    ]
    for p in report["points"]:
        cams = p["cameras"]
        if cams:
            p50 = max((c["p50_s"] or 0) for c in cams)
            p95 = max((c["p95_s"] or 0) for c in cams)
            handled = min(c["handled_share"] for c in cams)
            dropped = sum(c["dropped"] for c in cams) / max(1, sum(c["read"] for c in cams))
            read = min(c["read_share"] for c in cams)
            lines.append(
                f"{p['contender']:<25}{p['n']:>3}  {'yes' if p['passed'] else 'NO':<5}"
                f"{p50:>7.2f}{p95:>7.2f}{handled:>9.0%}{dropped:>9.0%}{read:>7.0%}"
                f"{p['cpu_cores'] or 0:>7.2f}{p['rss_mib']:>9.0f}  {p['reason']}"
            )
        else:
            lines.append(f"{p['contender']:<25}{p['n']:>3}  NO   {p['reason']}")
    lines.append("largest N that passed (worst camera shown above):")
    for name, best in report["summary"]["max_cameras"].items():
        failed = best["first_failed"]
        lines.append(f"  {name:<25}{best['max_cameras']:>3}"
                     + (f"   (failed at {failed})" if failed else "   (never failed)"))  # fmt: skip
    ratio = report["summary"].get("ratio_best_vs_best_plain")
    if ratio is not None:
        lines.append(f"best siteguard / best plain Ultralytics loop: {ratio}x the cameras")
    return "\n".join(lines)


def run_cli(args: argparse.Namespace) -> int:
    from siteguard.cli import CliError

    try:
        report = run_benchmark(args)
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else format_report(report), flush=True)
    return 0
