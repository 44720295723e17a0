"""`siteguard detect`, `siteguard predict`, `siteguard bench detector`.

Only argparse at module level: handlers import numpy/onnxruntime/OpenCV when they run.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("detect", help="run the edge detector on the configured cameras")
    p.add_argument("--config", required=True, help="detector YAML (configs/detector.example.yaml)")
    p.set_defaults(handler=_detect)

    p = subparsers.add_parser("predict", help="detections of a model on images, a folder or video")
    p.add_argument("--model", required=True, help="ONNX model exported by Ultralytics")
    p.add_argument("--source", required=True, help="image, image folder, video file or URL")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.5)
    p.add_argument("--json", action="store_true", help="one JSON line per image/frame")
    p.set_defaults(handler=_predict)

    bench = _bench_subparsers(subparsers)
    p = bench.add_parser("detector", help="bare session.run vs our pipeline vs Ultralytics")
    p.add_argument("--model", required=True)
    p.add_argument("--source", required=True, help="an image (resized to --width x --height)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--frames", type=int, default=60, help="timed frames per contender")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all)")
    p.add_argument("--no-ultralytics", action="store_true", help="skip Ultralytics' predictor")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_bench_detector)


def _bench_subparsers(subparsers: Any) -> Any:
    """`siteguard bench <part>`: shared with other packages that add their own benchmark."""
    bench = subparsers.choices.get("bench")
    if bench is None:
        bench = subparsers.add_parser("bench", help="speed benchmarks (see docs/benchmarks.md)")
    for action in bench._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return bench.add_subparsers(dest="bench_target", metavar="PART", required=True)


def _detect(args: argparse.Namespace) -> int:
    import logging
    import signal

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise

    from detector.config import ConfigError, load_config
    from detector.runner import Runner
    from siteguard.cli import CliError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if not config.cameras:
        raise CliError(f"{args.config}: no cameras configured")
    try:
        runner = Runner(config)
    except ValueError as exc:
        raise CliError(f"model: {exc}") from exc
    signal.signal(signal.SIGTERM, lambda *_: runner.request_stop())
    try:
        runner.start()
    except OSError as exc:  # e.g. the metrics port is taken
        runner.stop()
        raise CliError(f"cannot start: {exc} (metrics port {config.metrics.port}?)") from exc
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from detector.inference import OnnxDetector
    from detector.sources import SourceError, iter_frames
    from siteguard.cli import CliError

    try:
        detector = OnnxDetector(args.model, conf=args.conf, iou=args.iou)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        for image, name in iter_frames(args.source):
            [det] = detector.predict([image])
            rows = [
                {
                    "class": str(det.data["class_name"][i]),
                    "confidence": round(float(det.confidence[i]), 4),
                    "xyxy": [round(float(v), 1) for v in det.xyxy[i]],
                }
                for i in range(len(det))
            ]
            if args.json:
                print(json.dumps({"source": name, "detections": rows}), flush=True)
            else:
                found = ", ".join(f"{r['class']} {r['confidence']:.2f}" for r in rows) or "-"
                print(f"{name}: {found}", flush=True)
    except SourceError as exc:
        raise CliError(str(exc)) from exc
    return 0


def _bench_detector(args: argparse.Namespace) -> int:
    from detector.bench import run_cli

    return run_cli(args)
