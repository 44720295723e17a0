"""`siteguard detect`, `siteguard predict`, `siteguard bench detector|cameras`.

Only argparse at module level: handlers import numpy/onnxruntime/OpenCV when they run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "siteguard-ppe.onnx"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("detect", help="run the edge detector on the configured cameras")
    p.add_argument("--config", required=True, help="detector YAML (configs/detector.example.yaml)")
    p.add_argument(
        "--dead-letters",
        action="store_true",
        help="list the messages the service refused for good (kept in the configured outbox) "
        "and exit; works while a detector runs",
    )
    p.set_defaults(handler=_detect)

    p = subparsers.add_parser("predict", help="detections of a model on images, a folder or video")
    p.add_argument(
        "--model",
        default=str(BUNDLED_MODEL),
        help="ONNX model exported by siteguard/Ultralytics (default: the bundled one, "
        "models/siteguard-ppe.onnx)",
    )
    p.add_argument("--source", required=True, help="image, image folder, video file or URL")
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="keep boxes at or above this confidence (default: the model's operating "
        "thresholds, per class where it carries them, as the detector uses them)",
    )
    p.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold (default 0.5)")
    p.add_argument("--json", action="store_true", help="one JSON line per image/frame")
    p.add_argument(
        "--save",
        metavar="DIR",
        default=None,
        help="also write each image/frame with its boxes drawn (bare heads red) to DIR",
    )
    p.set_defaults(handler=_predict)

    bench = _bench_subparsers(subparsers)
    p = bench.add_parser("detector", help="bare session.run vs our pipeline vs Ultralytics")
    p.add_argument("--model", required=True, help="ONNX model to time")
    p.add_argument("--source", required=True, help="an image (resized to --width x --height)")
    p.add_argument("--width", type=int, default=1280, help="frame width in pixels (1280)")
    p.add_argument("--height", type=int, default=720, help="frame height in pixels (720)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per contender")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (5)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all)")
    p.add_argument("--no-ultralytics", action="store_true", help="skip Ultralytics' predictor")
    p.add_argument("--json", action="store_true", help="print the timings as JSON")
    p.set_defaults(handler=_bench_detector)

    p = bench.add_parser(
        "cameras",
        help="how many RTSP cameras one box keeps up with: `siteguard detect` vs a plain "
        "Ultralytics loop (docs/benchmarks.md)",
    )
    p.add_argument("--cameras", default=None, help="camera counts to try (1,2,3,4,6,8)")
    p.add_argument(
        "--contenders",
        default=None,
        help="comma list: siteguard-{fp32,int8}[-gated], ultralytics-{pt,onnx} (the default), "
        "siteguard-int8-batch1, siteguard-int8-slowcam0",
    )
    p.add_argument("--fps", type=int, default=5, help="stream frame rate = camera fps (5)")
    p.add_argument("--width", type=int, default=1280, help="stream width (1280)")
    p.add_argument("--height", type=int, default=720, help="stream height (720)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per point (20)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds before measuring (3)")
    p.add_argument("--p95-s", type=float, default=2.0, help="frame age bound at p95 (2.0)")
    p.add_argument("--clip", default=None, help="footage (../shared/demo/power-crew-helmets.mp4)")
    p.add_argument("--work-dir", default="build/bench-cameras", help="cache of encoded clips")
    p.add_argument("--quick", action="store_true", help="about a minute: 2 contenders, N 1,2, 8 s")
    p.add_argument("--keep", action="store_true", help="keep the per-point logs and configs")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save", metavar="FILE", default=None, help="also write the JSON report")
    p.set_defaults(handler=_bench_cameras)


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
    from detector.outbox import OutboxError
    from detector.runner import Runner
    from siteguard.cli import CliError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if args.dead_letters:
        return _print_dead_letters(config.outbox.path)
    if not config.cameras:
        raise CliError(f"{args.config}: no cameras configured")
    try:
        runner = Runner(config)
    except OutboxError as exc:  # names the path: wrong, unwritable, a directory...
        raise CliError(str(exc)) from exc
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


def _print_dead_letters(path: Path) -> int:
    """One line per dead letter: when, type, event id, tries, the service's reason."""
    import datetime as dt

    from detector.outbox import OutboxError, read_dead_letters
    from siteguard.cli import CliError

    try:
        letters = read_dead_letters(path)
    except OutboxError as exc:
        raise CliError(str(exc)) from exc
    for letter in letters:
        when = dt.datetime.fromtimestamp(letter.created_at, dt.UTC).isoformat(timespec="seconds")
        print(f"{when}  {letter.type:5}  {letter.event_id}  tries {letter.attempts}  "
              f"{letter.reason}")  # fmt: skip
    print(f"{len(letters)} dead letter(s) in {path}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    import cv2
    import numpy as np

    from detector.evidence import annotate
    from detector.inference import OnnxDetector
    from detector.sources import SourceError, iter_frames
    from siteguard.cli import CliError

    if args.conf is not None and not 0.0 <= args.conf <= 1.0:
        raise CliError(f"--conf must be between 0 and 1, got {args.conf}")
    try:
        detector = OnnxDetector(args.model, conf=0.0, iou=args.iou)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.conf is not None:
        default, thresholds = args.conf, {}
    else:
        default = detector.operating_conf if detector.operating_conf is not None else 0.25
        thresholds = dict(detector.class_conf)
    floor = min([default, *thresholds.values()])
    detector.conf = floor  # NMS sees what any class keeps; each class's own cut follows
    save = Path(args.save) if args.save else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    saved = 0
    try:
        for index, (image, name) in enumerate(iter_frames(args.source)):
            [det] = detector.predict([image])
            names = np.asarray(det.data.get("class_name", np.array([], dtype=str)))
            cut = np.array([thresholds.get(str(n), default) for n in names])
            det = det[det.confidence >= cut] if len(det) else det
            rows = [
                {
                    "class": str(det.data["class_name"][i]),
                    "confidence": round(float(det.confidence[i]), 4),
                    "xyxy": [round(float(v), 1) for v in det.xyxy[i]],
                }
                for i in range(len(det))
            ]
            out = None
            if save is not None:
                out = save / _saved_name(name, index)
                bare = [i for i, row in enumerate(rows) if row["class"] == "head"]
                if not cv2.imwrite(str(out), annotate(image.copy(), det, bare)):
                    raise CliError(f"cannot write {out}")
                saved += 1
            if args.json:
                record = {"source": name, "detections": rows}
                if out is not None:
                    record["saved"] = str(out)
                print(json.dumps(record), flush=True)
            else:
                found = ", ".join(f"{r['class']} {r['confidence']:.2f}" for r in rows) or "-"
                print(f"{name}: {found}", flush=True)
    except SourceError as exc:
        raise CliError(str(exc)) from exc
    if save is not None and not args.json:
        print(f"{saved} annotated image(s) in {save}", flush=True)
    return 0


def _saved_name(source_name: str, index: int) -> str:
    """`photo.jpg` -> `photo.jpg`; a video frame `clip.mp4#12` -> `clip.mp4-000012.jpg`."""
    stem, _, frame = source_name.rpartition("#")
    if stem and frame.isdigit():
        return f"{Path(stem).name}-{int(frame):06d}.jpg"
    name = Path(source_name).name or f"frame-{index:06d}"
    return name if name.lower().endswith((".jpg", ".jpeg")) else f"{Path(name).stem}.jpg"


def _bench_detector(args: argparse.Namespace) -> int:
    from detector.bench import run_cli

    return run_cli(args)


def _bench_cameras(args: argparse.Namespace) -> int:
    from detector.bench_cameras import DEFAULT_CLIP, run_cli

    args.clip = args.clip or str(DEFAULT_CLIP)
    return run_cli(args)
