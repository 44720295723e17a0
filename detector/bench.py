"""`siteguard bench detector`: bare session.run vs our pipeline vs Ultralytics, side by side.

Each contender runs in its own worker process (so the RSS of each is its own and torch never
enters ours); the parent asks them for a few frames in turn, round after round, so a busy CPU
(e.g. a training run next door) slows all of them alike and the ratios stay fair.

Contenders, all on the same frame (default 1280x720) and the same ONNX file:
- `bare`:        session.run on a ready-made input of the shape our pipeline feeds (rect 640),
                 with our session options (no busy-waiting threads)
- `bare_ort_default`: the same with onnxruntime's default session options
- `bare_square`: session.run on a 640x640 input (what a naive square letterbox costs)
- `pipeline`:    OnnxDetector.predict (letterbox, run, decode, NMS) + ByteTrack + rules
- `ultralytics`: YOLO(model.onnx).predict(frame), when ultralytics is installed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KINDS = ("bare", "bare_ort_default", "bare_square", "pipeline", "ultralytics")


# -- worker side (one process per contender) -------------------------------------------
def _rss() -> dict[str, float]:
    fields = {}
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024  # MiB
    return {"rss_mib": fields.get("VmRSS", 0.0), "peak_rss_mib": fields.get("VmHWM", 0.0)}


def _make_runner(kind: str, model: str, frame: Any, threads: int):
    import numpy as np

    if kind in ("bare", "bare_ort_default", "bare_square"):
        import onnxruntime as ort

        from detector.inference import OnnxDetector

        det = OnnxDetector(model, threads=threads)
        if kind == "bare_square":
            blob = np.random.default_rng(0).random((1, 3, *det.imgsz), dtype=np.float32)
        else:
            blob, _ = det.preprocess([frame])
        session, name = det.session, det.input_name
        if kind == "bare_ort_default":  # onnxruntime's own defaults, as Ultralytics uses them
            session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {name: blob})
    if kind == "pipeline":
        from detector.config import CameraConfig, RulesConfig, TrackingConfig
        from detector.inference import OnnxDetector
        from detector.rules import RuleEngine
        from detector.tracking import WorkerTracker

        det = OnnxDetector(model, threads=threads)
        rules_config = RulesConfig()
        tracker = WorkerTracker(TrackingConfig(), {"head", "helmet"}, {"person"})
        rules = RuleEngine(CameraConfig(id="bench", source="bench"), rules_config)
        rules.set_model_classes(set(det.names.values()))
        clock = [time.time()]

        def step() -> None:
            clock[0] += 0.2
            [detections] = det.predict([frame])
            rules.update(tracker.update(detections, timestamp=clock[0]), clock[0])

        return step
    if kind == "ultralytics":
        from ultralytics import YOLO

        workdir = Path(tempfile.mkdtemp(prefix="siteguard-bench-"))
        local = shutil.copy(model, workdir / Path(model).name)  # it may write beside the file
        yolo = YOLO(str(local), task="detect")
        return lambda: yolo.predict(frame, conf=0.25, iou=0.5, verbose=False)
    raise ValueError(f"unknown contender {kind}")


def worker(kind: str, model: str, image: str, width: int, height: int, threads: int) -> None:
    """Serve `run N` / `rss` / `quit` lines on stdin; answer one JSON line each on stdout."""
    import cv2

    # Keep library chatter (Python or native) off the protocol channel: fd 1 -> stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    frame = cv2.resize(cv2.imread(image), (width, height))
    step = _make_runner(kind, model, frame, threads)
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "run":
            times, cpu = [], []
            for _ in range(int(rest[0])):
                started, cpu_started = time.perf_counter(), time.process_time()
                step()
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
            print(json.dumps({"ms": times, "cpu_ms": cpu}), file=out, flush=True)
        elif command == "rss":
            print(json.dumps(_rss()), file=out, flush=True)
        else:
            return


# -- parent side -------------------------------------------------------------------------
class _Worker:
    def __init__(self, kind: str, args: argparse.Namespace, image: str) -> None:
        self.kind = kind
        cmd = [sys.executable, "-m", "detector.bench", "worker", kind, str(args.model), image]
        cmd += [str(args.width), str(args.height), str(args.threads)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.ms: list[float] = []
        self.cpu_ms: list[float] = []
        self._ask(None)  # wait for "ready"

    def _ask(self, command: str | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker {self.kind!r} died (exit {self.proc.wait()})")
        return json.loads(line)

    def run(self, n: int, keep: bool = True) -> None:
        answer = self._ask(f"run {n}")
        if keep:
            self.ms += answer["ms"]
            self.cpu_ms += answer["cpu_ms"]

    def rss(self) -> dict[str, float]:
        return self._ask("rss")

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.proc.wait(30)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _motion_skip_rate(image: str, width: int, height: int) -> float:
    """Share of frames motion gating skips on a still scene with sensor noise (5 fps, 60 s)."""
    import cv2
    import numpy as np

    from detector.config import MotionConfig
    from detector.motion import MotionGate

    frame = cv2.resize(cv2.imread(image), (width, height)).astype(np.int16)
    rng = np.random.default_rng(0)
    noisy = [  # a handful of noise patterns, cycled: the still scene as a sensor delivers it
        np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8) for _ in range(7)
    ]
    gate = MotionGate(MotionConfig())
    frames, inferred = 300, 0
    for i in range(frames):
        inferred += gate.should_infer(noisy[i % len(noisy)], timestamp=i / 5)
    return 1 - inferred / frames


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    from detector.inference import OnnxDetector

    image = str(args.source)
    if cv2.imread(image) is None:
        raise ValueError(f"--source must be an image file, cannot read {image}")
    OnnxDetector(args.model)  # a clear error before any worker starts
    kinds = [k for k in KINDS if k != "ultralytics" or not args.no_ultralytics]
    if "ultralytics" in kinds:
        import importlib.util

        if importlib.util.find_spec("ultralytics") is None:
            kinds.remove("ultralytics")
    workers = [_Worker(kind, args, image) for kind in kinds]
    try:
        for w in workers:
            w.run(args.warmup, keep=False)
        chunk = 5
        for _ in range(max(1, args.frames // chunk)):  # interleaved rounds
            for w in workers:
                w.run(chunk)
        results: dict[str, Any] = {}
        for w in workers:
            results[w.kind] = {
                "p50_ms": round(statistics.median(w.ms), 2),
                "p95_ms": round(_percentile(w.ms, 95), 2),
                "mean_ms": round(statistics.fmean(w.ms), 2),
                "cpu_ms_per_frame": round(statistics.fmean(w.cpu_ms), 2),
                "frames": len(w.ms),
                **{k: round(v, 1) for k, v in w.rss().items()},
            }
    finally:
        for w in workers:
            w.close()
    report: dict[str, Any] = {
        "model": str(args.model),
        "frame": f"{args.width}x{args.height}",
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "contenders": results,
    }
    ratios: dict[str, float] = {}
    pipe = results["pipeline"]
    ratios["pipeline_vs_bare_p50"] = round(pipe["p50_ms"] / results["bare"]["p50_ms"], 3)
    ratios["pipeline_vs_bare_cpu"] = round(
        pipe["cpu_ms_per_frame"] / results["bare"]["cpu_ms_per_frame"], 3
    )
    ratios["pipeline_vs_bare_square_p50"] = round(
        pipe["p50_ms"] / results["bare_square"]["p50_ms"], 3
    )
    if "ultralytics" in results:
        ult = results["ultralytics"]
        ratios["ultralytics_vs_pipeline_p50"] = round(ult["p50_ms"] / pipe["p50_ms"], 3)
        ratios["ultralytics_vs_pipeline_p95"] = round(ult["p95_ms"] / pipe["p95_ms"], 3)
        ratios["ultralytics_vs_pipeline_cpu"] = round(
            ult["cpu_ms_per_frame"] / pipe["cpu_ms_per_frame"], 3
        )
        ratios["pipeline_rss_vs_ultralytics"] = round(pipe["rss_mib"] / ult["rss_mib"], 3)
    report["ratios"] = ratios
    report["motion_gating_skipped_static"] = round(
        _motion_skip_rate(image, args.width, args.height), 3
    )
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"model {report['model']}  frame {report['frame']}  cpus {report['cpu_count']}  "
        f"load(1m) {report['load_avg_1m']}",
        f"{'contender':<17}{'p50 ms':>9}{'p95 ms':>9}{'cpu ms':>9}{'frames':>8}"
        f"{'RSS MiB':>10}{'peak MiB':>10}",
    ]
    for kind, r in report["contenders"].items():
        lines.append(
            f"{kind:<17}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['cpu_ms_per_frame']:>9.1f}"
            f"{r['frames']:>8}"
            f"{r['rss_mib']:>10.0f}{r['peak_rss_mib']:>10.0f}"
        )
    for name, value in report["ratios"].items():
        lines.append(f"{name}: {value}")
    lines.append(
        f"motion gating, still scene: {report['motion_gating_skipped_static']:.0%} skipped"
    )
    return "\n".join(lines)


def run_cli(args: argparse.Namespace) -> int:
    from siteguard.cli import CliError

    try:
        report = run_benchmark(args)
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    _, _, kind_arg, model_arg, image_arg, w_arg, h_arg, t_arg = sys.argv
    worker(kind_arg, model_arg, image_arg, int(w_arg), int(h_arg), int(t_arg))
