"""`siteguard retrain`: argparse only here; the work is imported when the command runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register_retrain(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "retrain",
        help="reviewed samples -> new dataset version -> fine-tune -> evaluate -> register",
        description="Pull the reviewed samples from the service, hold a fixed share back for "
        "field evaluation, fine-tune the base model on base data + samples, evaluate candidate "
        "and base on the benchmark split and the held-back samples, export ONNX and register "
        "the candidate with its .pt and every figure. Promote it with `siteguard registry "
        "promote` (the service's gate compares these figures).",
    )
    p.add_argument("--from-service", dest="url", required=True, help="service URL")
    p.add_argument(
        "--token",
        default=os.environ.get("SITEGUARD_TOKEN", ""),
        help="trainer token (default: $SITEGUARD_TOKEN)",
    )
    p.add_argument("--base-model", required=True, help="registered version to start from")
    p.add_argument("--base-data", type=Path, default=None, help="base dataset data.yaml")
    p.add_argument(
        "--base-weights", type=Path, default=None, help=".pt of the base model if not registered"
    )
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (10)")
    p.add_argument("--hours", type=float, default=None, help="time budget; overrides --epochs")
    p.add_argument("--imgsz", type=int, default=640, help="training image size")
    p.add_argument("--close-mosaic", type=int, default=None, help="last N epochs without mosaic")
    p.add_argument(
        "--export-imgsz", type=int, default=None, help="ONNX input size (default: the base model's)"
    )
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="operating threshold for evaluation and the new model (default: the base model's)",
    )
    p.add_argument("--batch", type=int, default=16, help="images per batch (16)")
    p.add_argument("--fraction", type=float, default=1.0, help="share of train images to use")
    p.add_argument("--holdout", type=float, default=0.2, help="share of samples held back")
    p.add_argument("--since", default=None, help="only samples reviewed after (ISO time)")
    p.add_argument("--version", default=None, help="default: NAME-YYYY.MM.DD-HHMMSS")
    p.add_argument("--name", default="siteguard-ppe", help="version name prefix (siteguard-ppe)")
    p.add_argument(
        "--workdir", type=Path, default=Path("runs/retrain"), help="working folder (runs/retrain)"
    )
    p.add_argument("--device", default="cpu", help="cpu or a CUDA index such as 0")
    p.add_argument("--workers", type=int, default=2, help="data-loader processes (2)")
    p.add_argument("--no-cache", action="store_true", help="do not cache images in RAM")
    p.add_argument(
        "--benchmark-split", default="test", help="split of the base data to compare on (test)"
    )
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate N images per set")
    p.add_argument("--notes", default="", help="free text registered with the version")
    p.add_argument("--optimizer", default="auto", help="SGD, AdamW, ... (auto: Ultralytics')")
    p.add_argument("--lr0", type=float, default=None, help="initial learning rate")
    p.add_argument("--warmup-epochs", type=float, default=None, help="default: Ultralytics' 3")
    p.add_argument("--cos-lr", action="store_true", help="cosine learning-rate decay")
    p.add_argument(
        "--freeze", type=int, default=None, help="freeze the first N layers (10: the backbone)"
    )
    p.add_argument(
        "--repeat-samples",
        type=int,
        default=1,
        help="list each training sample N times (a few field samples beside a large base)",
    )
    p.add_argument(
        "--also-evaluate",
        action="append",
        default=[],
        metavar="NAME=DATA_YAML[:SPLIT]",
        help="also score candidate and base on this labelled set (coverage matching), e.g. "
        "site=data/site/data.yaml:test; repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the registered record as JSON")
    p.set_defaults(handler=_retrain)


def _named_sets(items: list[str]) -> dict[str, tuple[Path, str]]:
    """`NAME=DATA_YAML[:SPLIT]` items -> {name: (data.yaml, split)}; split defaults to test."""
    from siteguard.cli import CliError

    sets: dict[str, tuple[Path, str]] = {}
    for item in items:
        name, sep, target = item.partition("=")
        path, _, split = target.rpartition(":") if ":" in target else (target, "", "test")
        if not sep or not name or not path:
            raise CliError(f"--also-evaluate {item!r}: expected NAME=DATA_YAML[:SPLIT]")
        if not Path(path).is_file():
            raise CliError(f"--also-evaluate {item!r}: data YAML not found: {path}")
        sets[name] = (Path(path), split or "test")
    return sets


def _retrain(args: argparse.Namespace) -> int:
    import json

    import httpx

    from siteguard.cli import CliError
    from training.registry import RegistryError
    from training.retrain import RetrainOptions, retrain

    options = RetrainOptions(
        url=args.url,
        token=args.token,
        base_model=args.base_model,
        base_data=args.base_data,
        base_weights=args.base_weights,
        epochs=args.epochs,
        hours=args.hours,
        close_mosaic=args.close_mosaic,
        imgsz=args.imgsz,
        export_imgsz=args.export_imgsz,
        conf=args.conf,
        batch=args.batch,
        fraction=args.fraction,
        holdout=args.holdout,
        since=args.since,
        version=args.version,
        name=args.name,
        workdir=args.workdir,
        device=args.device,
        workers=args.workers,
        cache=not args.no_cache,
        benchmark_split=args.benchmark_split,
        eval_limit=args.eval_limit,
        notes=args.notes,
        optimizer=args.optimizer,
        lr0=args.lr0,
        warmup_epochs=args.warmup_epochs,
        cos_lr=args.cos_lr,
        freeze=args.freeze,
        repeat_samples=args.repeat_samples,
        also_evaluate=_named_sets(args.also_evaluate),
    )
    try:
        result = retrain(options)
    except (FileNotFoundError, ValueError, RegistryError) as exc:
        raise CliError(str(exc)) from exc
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach the service at {args.url}: {exc}") from exc
    if args.json:
        print(json.dumps(result.record, indent=2, default=str))
        return 0
    print(f"registered candidate {result.version} (dataset {result.dataset_version})")
    info = result.metrics["retrain"]
    if info["classes_added"]:
        print(
            f"  classes   {', '.join(info['classes'])}   (new: {', '.join(info['classes_added'])})"
        )
    for key in ("benchmark", "field", *options.also_evaluate):
        cand, base = result.metrics.get(key), result.metrics["baseline"].get(key)
        if cand and base:
            print(
                f"  {key:<9} worker accuracy {base['worker_accuracy']:.3f} -> "
                f"{cand['worker_accuracy']:.3f}   mAP50 {base['map50']:.3f} -> {cand['map50']:.3f}"
                f"   ({cand['images']} images)"
            )
    print(f"next: siteguard registry promote {result.version}   (the service checks the gate)")
    return 0
