"""`siteguard export`: trained `.pt` -> ONNX the detector runs (dynamic batch, simplified, with
metadata), optionally an int8 variant, both evaluated so the accuracy delta is on record.

Ultralytics writes names, imgsz, stride and task into the ONNX metadata; we add
`siteguard_version`, `dataset_version` and `metrics` (the evaluation JSON) per docs/contract.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.inference import CLASS_CONF_KEY, OPERATING_CONF_KEY, parse_class_conf
from siteguard.model_versions import INT8_SUFFIX
from training.onnx_meta import read_metadata, write_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    weights: Path
    out: Path = Path("models/siteguard-ppe.onnx")
    imgsz: int | None = None
    conf: float | None = None  # operating threshold, chosen on val; detectors and evaluate use it
    class_conf: str | None = None  # per-class ones, e.g. "head=0.4,helmet=0.2", chosen on val
    model_version: str | None = None
    dataset_version: str | None = None
    int8: bool = False
    calib: Path | None = None
    calib_images: int = 100
    eval_data: Path | None = None
    eval_split: str = "test"
    class_map: str | None = None
    eval_limit: int | None = None
    # A second source scored the same way and stored as `cross_source` beside the main figures
    # (coverage matching: it may label boxes in another convention); e.g. a site's held-back
    # groups. Model cards and the panel show both.
    cross_data: Path | None = None
    cross_split: str = "test"


@dataclass
class ExportResult:
    onnx: Path
    int8: Path | None = None
    evaluation: dict[str, Any] | None = None
    int8_evaluation: dict[str, Any] | None = None
    delta: dict[str, float] = field(default_factory=dict)


def _train_imgsz(weights: Path) -> int | None:
    """The image size the checkpoint was trained at (Ultralytics stores its train args)."""
    import torch

    try:
        ckpt = torch.load(str(weights), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch/pickle raise many types for a bad file
        raise ValueError(f"{weights} is not an Ultralytics YOLO checkpoint: {exc}") from exc
    args = (ckpt.get("train_args") if isinstance(ckpt, dict) else None) or {}
    size = args.get("imgsz")
    return int(size) if isinstance(size, int) else None


def export_onnx(weights: Path, out: Path, imgsz: int) -> Path:
    """Ultralytics ONNX export (dynamic batch, onnxslim) from a temp copy: the exporter writes
    next to its input, and the input may sit on read-only storage."""
    from training.train import load_yolo, offline_environment

    offline_environment()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"{out.stem}.pt"
        shutil.copy2(weights, copy)
        exported = load_yolo(copy).export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=True, device="cpu"
        )
        if not exported or not Path(exported).is_file():
            raise RuntimeError(f"Ultralytics export of {weights} produced no ONNX file")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(exported), out)
    return out


def default_version(out: Path) -> str:
    return f"{out.stem}-{dt.datetime.now(dt.UTC):%Y.%m.%d-%H%M}"


def export_command(options: ExportOptions, imgsz: int) -> str:
    """The command line that reproduces this export (recorded in the model's metadata)."""
    parts = ["siteguard export", f"--weights {options.weights}", f"--imgsz {imgsz}"]
    parts.append(f"--out {options.out}")
    if options.conf is not None:
        parts.append(f"--conf {options.conf}")
    if options.class_conf:
        parts.append(f"--class-conf {options.class_conf}")
    if options.int8:
        parts.append(f"--int8 --calib {options.calib} --calib-images {options.calib_images}")
    if options.eval_data:
        parts.append(f"--eval-data {options.eval_data} --eval-split {options.eval_split}")
    if options.cross_data:
        parts.append(f"--cross-data {options.cross_data} --cross-split {options.cross_split}")
    if options.class_map:
        parts.append(f"--class-map {options.class_map}")
    # Names given by hand are part of what the file says about itself.
    if options.model_version:
        parts.append(f"--model-version {options.model_version}")
    if options.dataset_version:
        parts.append(f"--dataset-version {options.dataset_version}")
    return " ".join(parts)


def run_dataset_version(weights: Path) -> str | None:
    """The dataset version the run trained on: recorded by `siteguard train`, else computed
    from the data YAML in the run's Ultralytics `args.yaml`; None when neither is there."""
    import yaml

    from training.manifest import dataset_version

    run = weights.resolve().parent.parent
    record = run / "siteguard_train.json"
    if record.is_file():
        version = json.loads(record.read_text()).get("dataset_version")
        if version:
            return version
    args = run / "args.yaml"
    if args.is_file():
        data = (yaml.safe_load(args.read_text()) or {}).get("data")
        if data and Path(data).is_file():
            try:
                return dataset_version(Path(data))
            except ValueError as exc:
                log.warning("cannot compute the dataset version of %s: %s", data, exc)
    return None


def export(options: ExportOptions) -> ExportResult:
    """Export, optionally quantise, evaluate each file and embed its figures in its metadata."""
    weights = options.weights
    if not weights.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    if weights.suffix != ".pt":
        raise ValueError(f"--weights must be an Ultralytics .pt checkpoint, got {weights}")
    if options.int8 and options.calib is None:
        raise ValueError("--int8 needs --calib (a folder of real images or a data YAML)")
    if options.calib is not None and not options.calib.exists():
        raise FileNotFoundError(f"calibration images not found: {options.calib}")
    class_conf = parse_class_conf(options.class_conf)  # a typo fails before the slow export
    imgsz = options.imgsz or _train_imgsz(weights) or 640
    out = options.out
    int8_out = out.with_name(f"{out.stem}-int8.onnx")
    for stale in (out.with_suffix(".eval.json"), int8_out.with_suffix(".eval.json")):
        stale.unlink(missing_ok=True)  # figures of a previous model must not outlive it
    export_onnx(weights, out, imgsz)
    from training.model_card import architecture

    version = options.model_version or default_version(out)
    arch = architecture(read_metadata(out).get("description", ""))
    meta = {
        # Ultralytics writes the path of the machine it ran on here; say what the model is.
        "description": f"SiteGuard PPE detector {version} ({arch} model, AGPL-3.0)",
        "siteguard_version": version,
        "dataset_version": options.dataset_version or run_dataset_version(weights) or "unknown",
        "siteguard_export": json.dumps(
            {"command": export_command(options, imgsz), "weights": str(weights)}
        ),
    }
    if options.conf is not None:
        meta[OPERATING_CONF_KEY] = str(options.conf)
    from training.blend import blend_record

    blended = blend_record(weights)
    if blended:  # the weights are a blend of two checkpoints: the card says how
        meta["siteguard_blend"] = json.dumps({**blended, "out": str(weights)})
    if class_conf:
        meta[CLASS_CONF_KEY] = json.dumps(class_conf)
    write_metadata(out, meta)
    result = ExportResult(onnx=out)
    if options.int8:
        from training.quantize import quantize_int8

        int8 = int8_out
        quantize_int8(out, int8, options.calib, options.calib_images)
        fp32_meta = read_metadata(out)
        fp32_meta["siteguard_version"] = meta["siteguard_version"] + INT8_SUFFIX
        fp32_meta["quantization"] = "int8 static QDQ per-channel (onnxruntime)"
        write_metadata(int8, fp32_meta)
        result.int8 = int8
    if options.eval_data is not None:
        result.evaluation = _evaluate_and_embed(out, options)
        if result.int8 is not None:
            result.int8_evaluation = _evaluate_and_embed(result.int8, options)
            result.delta = accuracy_delta(result.evaluation, result.int8_evaluation)
    return result


def _evaluate_and_embed(model: Path, options: ExportOptions) -> dict[str, Any]:
    from training.evaluate import EvalOptions, evaluate

    figures = evaluate(
        EvalOptions(
            model=model,
            data=options.eval_data,
            split=options.eval_split,
            class_map=options.class_map,
            conf=options.conf,
            class_conf=options.class_conf,
            limit=options.eval_limit,
        )
    )
    compact = compact_metrics(figures)
    if options.cross_data is not None:
        figures["cross_source"] = evaluate(
            EvalOptions(
                model=model,
                data=options.cross_data,
                split=options.cross_split,
                conf=options.conf,
                class_conf=options.class_conf,
                limit=options.eval_limit,
                matching="coverage",
            )
        )
        compact["cross_source"] = compact_metrics(figures["cross_source"])
    eval_path = model.with_suffix(".eval.json")
    eval_path.write_text(json.dumps(figures, indent=2) + "\n")
    write_metadata(model, {"metrics": json.dumps(compact)})
    log.info("wrote %s", eval_path)
    return figures


def compact_metrics(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures worth carrying inside the model file (no paths, no timings)."""
    keys = (
        "split",
        "images",
        "map50",
        "map50_95",
        "worker_accuracy",
        "strict_worker_accuracy",
        "violation_precision",
        "violation_recall",
        "workers",
        "false_alarms",
        "stray_helmets",
        "matching",
        "conf",
        "class_conf",
    )
    out = {k: figures[k] for k in keys if k in figures}
    out["per_class"] = figures.get("per_class", {})
    out["data"] = Path(str(figures.get("data", ""))).parent.name
    return out


def accuracy_delta(fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, float]:
    """int8 minus fp32, in points (percentage points), for the headline figures."""
    keys = ("map50", "map50_95", "worker_accuracy", "violation_precision", "violation_recall")
    return {k: round(100 * (int8[k] - fp32[k]), 2) for k in keys}
