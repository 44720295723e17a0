"""`siteguard train|evaluate|export|dataset|retrain` subcommands (imports stay lazy)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="fine-tune a YOLO model (needs the [train] extra)")
    p.add_argument("--data", type=Path, required=True, help="Ultralytics data YAML")
    p.add_argument("--base-weights", type=Path, required=True, help="weights to start from (.pt)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu or a CUDA index such as 0")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fraction", type=float, default=1.0, help="share of train images to use")
    p.add_argument("--freeze", type=int, default=None, help="freeze the first N layers")
    p.add_argument("--hours", type=float, default=None, help="time budget; overrides --epochs")
    p.add_argument("--close-mosaic", type=int, default=10)
    p.add_argument("--no-cache", action="store_true", help="do not cache images in RAM")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", type=Path, default=Path("runs/train"))
    p.add_argument("--name", default="siteguard")
    p.add_argument("--resume", action="store_true", help="resume runs/train/NAME from last.pt")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from training.train import TrainOptions, train

    options = TrainOptions(
        data=args.data,
        base_weights=args.base_weights,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        workers=args.workers,
        fraction=args.fraction,
        freeze=args.freeze,
        hours=args.hours,
        close_mosaic=args.close_mosaic,
        cache=not args.no_cache,
        seed=args.seed,
        project=args.project,
        name=args.name,
        resume=args.resume,
    )
    run_dir = train(options)
    print(f"run folder: {run_dir}")
    return 0
