"""fp32 vs int8 ONNX on the production path: speed side by side, and the accuracy delta.

Both models run through `detector.inference.OnnxDetector` (letterbox, onnxruntime, decode, NMS)
on the same real test images at batch 1, interleaved image by image so background load hits both
alike. Accuracy comes from `siteguard evaluate` run on each model over the same split (or from
the MODEL.eval.json files that `siteguard export --eval-data` wrote, with --from-eval-json).

    .venv/bin/python bench/bench_int8.py --model models/siteguard-ppe.onnx \\
        [--int8 models/siteguard-ppe-int8.onnx] [--data ../shared/data/hardhat-workers/data.yaml]
        [--images 100] [--eval-limit N] [--from-eval-json] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from detector.inference import OnnxDetector  # noqa: E402
from training.data_yaml import load_data_yaml  # noqa: E402
from training.labels import list_images  # noqa: E402

FIGURES = ("map50", "map50_95", "worker_accuracy", "violation_precision", "violation_recall")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def speed(fp32: Path, int8: Path, images: list[Path]) -> dict[str, dict[str, float]]:
    detectors = {"fp32": OnnxDetector(fp32), "int8": OnnxDetector(int8)}
    frames = [cv2.imread(str(p)) for p in images]
    for det in detectors.values():  # warm-up
        for frame in frames[:3]:
            det.predict([frame])
    samples: dict[str, list[float]] = {k: [] for k in detectors}
    for frame in frames:
        for name, det in detectors.items():
            t0 = time.perf_counter()
            det.predict([frame])
            samples[name].append(1000 * (time.perf_counter() - t0))
    return {
        name: {
            "p50_ms": round(statistics.median(s), 1),
            "p95_ms": round(_percentile(s, 0.95), 1),
        }
        for name, s in samples.items()
    }


def accuracy(model: Path, data: Path, limit: int | None, from_json: bool) -> dict:
    saved = model.with_suffix(".eval.json")
    if from_json and saved.is_file():
        return json.loads(saved.read_text())
    from training.evaluate import EvalOptions, evaluate

    return evaluate(EvalOptions(model=model, data=data, split="test", limit=limit))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/siteguard-ppe.onnx"))
    parser.add_argument("--int8", type=Path, default=None, help="default: MODEL stem + -int8")
    default_data = Path(__file__).resolve().parents[2] / "shared/data/hardhat-workers/data.yaml"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--images", type=int, default=100, help="test images for the timing")
    parser.add_argument("--eval-limit", type=int, default=None, help="accuracy on N images only")
    parser.add_argument("--from-eval-json", action="store_true", help="reuse MODEL.eval.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    int8 = args.int8 or args.model.with_name(f"{args.model.stem}-int8.onnx")
    for path in (args.model, int8, args.data):
        if not path.is_file():
            print(f"not found: {path}", file=sys.stderr)
            return 2
    images = list_images(load_data_yaml(args.data)["test"])[: args.images]
    timing = speed(args.model, int8, images)
    fp32_acc = accuracy(args.model, args.data, args.eval_limit, args.from_eval_json)
    int8_acc = accuracy(int8, args.data, args.eval_limit, args.from_eval_json)
    result = {
        "images_timed": len(images),
        "speed": timing,
        "speedup": round(timing["fp32"]["p50_ms"] / timing["int8"]["p50_ms"], 2),
        "size_mb": {
            "fp32": round(args.model.stat().st_size / 1e6, 1),
            "int8": round(int8.stat().st_size / 1e6, 1),
        },
        "eval_images": fp32_acc["images"],
        "fp32": {k: fp32_acc[k] for k in FIGURES},
        "int8": {k: int8_acc[k] for k in FIGURES},
        "delta_points": {k: round(100 * (int8_acc[k] - fp32_acc[k]), 2) for k in FIGURES},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("| | fp32 | int8 |\n|---|---:|---:|")
    print(f"| size MB | {result['size_mb']['fp32']} | {result['size_mb']['int8']} |")
    for key in ("p50_ms", "p95_ms"):
        print(f"| {key} per image (batch 1) | {timing['fp32'][key]} | {timing['int8'][key]} |")
    for key in FIGURES:
        delta = result["delta_points"][key]
        print(f"| {key} | {fp32_acc[key]:.3f} | {int8_acc[key]:.3f} ({delta:+.2f} pt) |")
    print(f"\nspeed-up at p50: {result['speedup']}x over {len(images)} images; accuracy over "
          f"{result['eval_images']} test images")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
