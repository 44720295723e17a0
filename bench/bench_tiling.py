"""Small, distant workers: full frame vs tiles vs a larger input, ms/frame and accuracy together.

    nice -n 15 .venv/bin/python bench/bench_tiling.py [--model models/siteguard-ppe.onnx] \\
        [--data data/css/data.yaml=coverage --data ../shared/data/hardhat-workers/data.yaml=iou] \\
        [--grid 2] [--overlap 0.2] [--large 960,1280] [--no-tiles-only] [--limit N] \\
        [--json] [--out FILE]

Every contender is the production detector, `OnnxDetector.predict` as the runner calls it:
- `full 640 px`: the shipped default, the whole frame at the model's input size (rect letterbox);
- `tiles GxG + full`: GRID x GRID tiles plus the full frame, merged by the detector's
  class-exclusive NMS: a camera with `tiling: {grid: GRID, overlap: OVERLAP}` (detector/tiling.py);
- `tiles GxG only`: the same tiles without the full-frame pass (why the full frame stays);
- `full N px`: the whole frame at a larger input (only when the ONNX has dynamic height/width).

On the validation split of each dataset (never test: these figures decide when to turn tiling
on), one image at a time (batch 1), the contenders interleaved image by image so background load
hits all alike. Per contender and dataset: ms/frame (median; p95), and at the model's operating
thresholds (per class, as `siteguard evaluate` applies them) the worker figures of
training/worker_metrics.py, overall and by the height of the labelled box in original image
pixels (< 16, < 32, >= 64 px; a false alarm counts in the bucket of its detection's height).
The "all" figures are checked against `WorkerTally`, so they equal `siteguard evaluate`'s.
`--data PATH=MATCHING` names the worker matching (`coverage` for datasets with another box
convention, see training/worker_metrics.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import supervision as sv  # noqa: E402

from detector.config import ModelConfig  # noqa: E402
from detector.inference import OnnxDetector, class_thresholds  # noqa: E402
from detector.tiling import Tiling  # noqa: E402
from training.classmap import parse_class_map, resolve_names  # noqa: E402
from training.data_yaml import load_data_yaml  # noqa: E402
from training.evaluate import DEFAULT_CONF, _targets  # noqa: E402
from training.labels import list_images  # noqa: E402
from training.worker_metrics import (  # noqa: E402
    VIOLATION,
    WORKER_CLASSES,
    WorkerTally,
    match_scores,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    f"{REPO / 'data/css/data.yaml'}=coverage",
    f"{REPO.parent / 'shared/data/hardhat-workers/data.yaml'}=iou",
)
# (label, lowest height, highest height) of the labelled box, original image pixels.
BUCKETS = (
    ("all", 0.0, math.inf),
    ("< 32 px", 0.0, 32.0),
    ("< 16 px", 0.0, 16.0),
    (">= 64 px", 64.0, math.inf),
)


@dataclass
class SizeTally:
    """Worker outcomes by box height, matched exactly as `WorkerTally.update` matches them."""

    matching: str
    workers: list[tuple[float, bool, bool, bool]] = field(default_factory=list)
    # ^ (height, is a bare head, status right, bare head found as `head`)
    false_alarm_heights: list[float] = field(default_factory=list)

    def update(self, gt_xyxy, gt_names, det_xyxy, det_names, det_conf) -> None:
        gt_keep = np.isin(gt_names, WORKER_CLASSES)
        gt_xyxy, gt_names = gt_xyxy[gt_keep], gt_names[gt_keep]
        det_keep = np.isin(det_names, WORKER_CLASSES)
        det_xyxy, det_names, det_conf = det_xyxy[det_keep], det_names[det_keep], det_conf[det_keep]
        order = np.argsort(-det_conf, kind="stable")
        det_xyxy, det_names = det_xyxy[order], det_names[order]
        claimed_by = np.full(len(gt_names), -1)
        if len(gt_names) and len(det_names):
            scores = match_scores(det_xyxy, gt_xyxy, self.matching)
            for d in range(len(det_names)):
                candidates = np.where(claimed_by < 0, scores[d], -1.0)
                g = int(candidates.argmax())
                if candidates[g] >= 0:
                    claimed_by[g] = d
        for g, d in enumerate(claimed_by):
            right = d >= 0 and det_names[d] == gt_names[g]
            is_head = gt_names[g] == VIOLATION
            height = float(gt_xyxy[g, 3] - gt_xyxy[g, 1])
            self.workers.append((height, bool(is_head), bool(right), bool(is_head and right)))
        claimed = set(claimed_by[claimed_by >= 0].tolist())
        for d in range(len(det_names)):
            if d not in claimed and det_names[d] == VIOLATION:
                self.false_alarm_heights.append(float(det_xyxy[d, 3] - det_xyxy[d, 1]))

    def figures(self, low: float, high: float) -> dict[str, float | int]:
        rows = [w for w in self.workers if low <= w[0] < high]
        alarms = sum(low <= h < high for h in self.false_alarm_heights)
        heads = sum(w[1] for w in rows)
        right, found = sum(w[2] for w in rows), sum(w[3] for w in rows)
        return {
            "workers": len(rows),
            "heads": heads,
            "worker_accuracy": round(right / (len(rows) + alarms), 4) if rows or alarms else 0.0,
            "violation_recall": round(found / heads, 4) if heads else 0.0,
            "false_alarms": alarms,
        }


@dataclass
class Contender:
    name: str
    runs: int  # model runs per frame
    predict: Callable[[np.ndarray], sv.Detections]
    ms: list[float] = field(default_factory=list)


def contenders(model: Path, conf: float, tiling: Tiling, large: list[int], tiles_only: bool):
    det = OnnxDetector(model, conf=conf)
    out = [
        Contender(f"full {det.imgsz[0]} px", 1, lambda f: det.predict([f])[0]),
        Contender(
            f"tiles {tiling.grid}x{tiling.grid} + full",
            tiling.runs,
            lambda f: det.predict([f], tiling=tiling)[0],
        ),
    ]
    if tiles_only:
        bare = Tiling(tiling.grid, tiling.overlap, full_frame=False)
        out.append(
            Contender(
                f"tiles {bare.grid}x{bare.grid} only",
                bare.runs,
                lambda f: det.predict([f], tiling=bare)[0],
            )
        )
    fixed = all(isinstance(d, int) for d in det.session.get_inputs()[0].shape[2:])
    notes = []
    if fixed:
        notes.append(f"{model} has a fixed input size: no larger-input column")
    else:
        for size in large:
            bigger = OnnxDetector(model, conf=conf)
            bigger.imgsz = (size, size)
            out.append(Contender(f"full {size} px", 1, lambda f, d=bigger: d.predict([f])[0]))
    return det, out, notes


def bench_dataset(data_yaml: Path, matching: str, split: str, limit: int | None, det, entries):
    data = load_data_yaml(data_yaml)
    images = list_images(data[split])[:limit] if limit else list_images(data[split])
    classes = [det.names[i] for i in sorted(det.names)]
    to_model = resolve_names(data["names"], parse_class_map(None), classes)
    names_of = np.array(classes, dtype=object)
    operating = det.operating_conf if det.operating_conf is not None else DEFAULT_CONF
    thresholds = class_thresholds(det.names, det.class_conf, operating)
    tallies = {c.name: (WorkerTally(matching), SizeTally(matching)) for c in entries}
    for c in entries:
        c.ms.clear()
    for index, image in enumerate(images):
        [frame], [target] = _targets([image], data["names"], to_model)
        gt_names = names_of[target.class_id].astype(str)
        for c in entries:
            if index == 0:  # warm-up, untimed
                c.predict(frame)
            started = time.perf_counter()
            raw = c.predict(frame)
            c.ms.append(1000 * (time.perf_counter() - started))
            kept = raw[raw.confidence >= thresholds[raw.class_id]]
            args = (
                target.xyxy,
                gt_names,
                kept.xyxy,
                names_of[kept.class_id].astype(str),
                kept.confidence,
            )
            for tally in tallies[c.name]:
                tally.update(*args)
        print(f"\r{data_yaml.parent.name}: {index + 1}/{len(images)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    result = {
        "data": str(data_yaml),
        "split": split,
        "images": len(images),
        "matching": matching,
        "contenders": {},
    }
    for c in entries:
        workers, sizes = tallies[c.name]
        overall = workers.figures()
        by_size = {label: sizes.figures(low, high) for label, low, high in BUCKETS}
        for key in ("worker_accuracy", "violation_recall", "workers", "false_alarms"):
            if by_size["all"][key] != overall[key]:  # the bucketed matching drifted
                raise AssertionError(f"{c.name}: {key} {by_size['all'][key]} != {overall[key]}")
        result["contenders"][c.name] = {
            "runs_per_frame": c.runs,
            "ms_p50": round(statistics.median(c.ms), 1),
            "ms_p95": round(sorted(c.ms)[min(len(c.ms) - 1, int(0.95 * len(c.ms)))], 1),
            "violation_precision": overall["violation_precision"],
            "by_size": by_size,
        }
    base = next(iter(result["contenders"].values()))["ms_p50"]
    for row in result["contenders"].values():
        row["x_full"] = round(row["ms_p50"] / base, 2)
    return result


def table(result: dict) -> str:
    rows = result["contenders"]
    names = list(rows)
    first = rows[names[0]]["by_size"]
    lines = [
        f"{_shown(result['data'])} ({result['split']}, {result['images']} images, "
        f"matching {result['matching']})",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        "| model runs per frame | "
        + " | ".join(str(rows[n]["runs_per_frame"]) for n in names)
        + " |",
        "| ms/frame p50 | " + " | ".join(f"{rows[n]['ms_p50']:.1f}" for n in names) + " |",
        "| ms/frame p95 | " + " | ".join(f"{rows[n]['ms_p95']:.1f}" for n in names) + " |",
        "| x full frame (p50) | " + " | ".join(f"{rows[n]['x_full']:.2f}x" for n in names) + " |",
    ]
    for key, label, count in (
        ("violation_recall", "violation recall", "heads"),
        ("worker_accuracy", "worker accuracy", "workers"),
        ("false_alarms", "false alarms", None),
    ):
        for bucket, _, _ in BUCKETS:
            n = f" (n={first[bucket][count]})" if count else ""
            cells = []
            for name in names:
                value = rows[name]["by_size"][bucket][key]
                empty = count and not first[bucket][count]
                cells.append("-" if empty else str(value) if not count else f"{value:.3f}")
            lines.append(f"| {label}, {bucket}{n} | " + " | ".join(cells) + " |")
    lines.append(
        "| violation precision, all | "
        + " | ".join(f"{rows[n]['violation_precision']:.3f}" for n in names)
        + " |"
    )
    return "\n".join(lines)


def _shown(path: str) -> str:
    return os.path.relpath(path, REPO) if Path(path).is_absolute() else path


def _data_spec(text: str) -> tuple[Path, str]:
    path, _, matching = text.rpartition("=")
    if not path or matching not in ("iou", "coverage"):
        raise argparse.ArgumentTypeError(f"expected PATH=iou or PATH=coverage, got {text!r}")
    return Path(path), matching


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/siteguard-ppe.onnx")
    parser.add_argument(
        "--data",
        type=_data_spec,
        action="append",
        default=None,
        help="PATH=MATCHING, repeatable (default: CSS=coverage, hardhat=iou)",
    )
    parser.add_argument("--split", default="val", help="never test (default val)")
    parser.add_argument("--grid", type=int, default=2)
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--large", default="960,1280", help="larger inputs to compare, px")
    parser.add_argument("--no-tiles-only", action="store_true", help="skip tiles without full")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    datasets = args.data or [_data_spec(d) for d in DEFAULT_DATA]
    missing = [str(p) for p in (args.model, *(d for d, _ in datasets)) if not p.is_file()]
    if missing:
        print(f"not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    tiling = Tiling(args.grid, args.overlap)
    large = [int(v) for v in args.large.split(",") if v.strip()]
    conf = ModelConfig().conf  # the runner's detection threshold
    det, entries, notes = contenders(args.model, conf, tiling, large, not args.no_tiles_only)
    if min(det.class_conf.values(), default=1.0) < conf or (det.operating_conf or 1.0) < conf:
        conf = min([*det.class_conf.values(), det.operating_conf or conf])
        det, entries, notes = contenders(args.model, conf, tiling, large, not args.no_tiles_only)
    results = [
        bench_dataset(path, matching, args.split, args.limit, det, entries)
        for path, matching in datasets
    ]
    out = {
        "model": str(args.model),
        "model_version": det.version,
        "detector_conf": conf,
        "class_conf": det.class_conf,
        "operating_conf": det.operating_conf,
        "notes": notes,
        "datasets": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"model {out['model_version']} ({_shown(str(args.model))}); thresholds "
        f"{det.class_conf or ''} others {det.operating_conf}; detector conf {conf}"
    )
    for note in notes:
        print(note)
    for result in results:
        print()
        print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
