"""`siteguard dataset pseudo-label`: argparse only here; the work is imported when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register_pseudo_label(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pseudo-label",
        help="dataset + one class predicted by a model (e.g. persons) -> a new version",
        description="Keep every source label and add the boxes a model predicts for one class "
        "(default: person, from the COCO-pretrained YOLO11n), dropping each that overlaps a "
        "labelled box of the class. Only train is labelled by default: val/test keep their "
        "human labels, which are what models are measured on. The confidence measured for "
        "yolo11n-coco persons is in docs/benchmarks.md (Issue 14.1).",
    )
    p.add_argument("source", type=Path, help="data.yaml or dataset folder that has the class")
    p.add_argument("--out", type=Path, required=True, help="new dataset folder")
    p.add_argument("--conf", type=float, required=True, help="keep predictions at or above this")
    p.add_argument(
        "--model", type=Path, default=None, help=".pt or .onnx (../shared/weights/yolo11n-coco.pt)"
    )
    p.add_argument("--class", dest="model_class", default="person", help="model's class (person)")
    p.add_argument("--as", dest="target", default=None, help="dataset's class (default: --class)")
    p.add_argument(
        "--splits", default="train", help="comma list of splits to label (train; not val/test)"
    )
    p.add_argument(
        "--match-iou", type=float, default=0.5, help="drop a box this close to a label (0.5)"
    )
    p.add_argument("--imgsz", type=int, default=640, help="inference size in pixels (640)")
    p.add_argument(
        "--batch", type=int, default=1, help="images per inference call (1; raise it on a GPU)"
    )
    p.add_argument("--name", default=None, help="dataset version name (default: OUT name)")
    p.set_defaults(handler=_pseudo_label)


def _pseudo_label(args: argparse.Namespace) -> int:
    from training.cli import _command, _print_manifest, _user_errors
    from training.manifest import record_recipe
    from training.pseudo_label import DEFAULT_MODEL, PseudoLabelOptions, pseudo_label

    with _user_errors():
        options = PseudoLabelOptions(
            source=args.source,
            out=args.out,
            conf=args.conf,
            model=args.model or DEFAULT_MODEL,
            model_class=args.model_class,
            target=args.target,
            splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()),
            match_iou=args.match_iou,
            imgsz=args.imgsz,
            batch=args.batch,
            name=args.name,
        )
        manifest = pseudo_label(options)
        manifest = record_recipe(args.out, _command(args), [args.source])
    _print_manifest(manifest)
    added = ", ".join(f"{k} {v}" for k, v in manifest["pseudo_labels"]["added"].items())
    print(f"{manifest['pseudo_labels']['target']} boxes added: {added}")
    print(f"data: {args.out / 'data.yaml'}")
    return 0
