"""`siteguard train|evaluate|export|dataset|retrain` subcommands (imports stay lazy)."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="fine-tune a YOLO model (needs the [train] extra)")
    p.add_argument("--data", type=Path, required=True, help="Ultralytics data YAML")
    p.add_argument("--base-weights", type=Path, required=True, help="weights to start from (.pt)")
    p.add_argument("--epochs", type=int, default=50, help="passes over the train split (50)")
    p.add_argument("--imgsz", type=int, default=640, help="training image size in pixels (640)")
    p.add_argument("--batch", type=int, default=16, help="images per batch (16)")
    p.add_argument("--device", default="cpu", help="cpu or a CUDA index such as 0")
    p.add_argument("--workers", type=int, default=2, help="data-loader processes (2)")
    p.add_argument("--fraction", type=float, default=1.0, help="share of train images to use")
    p.add_argument("--freeze", type=int, default=None, help="freeze the first N layers")
    p.add_argument("--hours", type=float, default=None, help="time budget; overrides --epochs")
    p.add_argument("--close-mosaic", type=int, default=10, help="last N epochs without mosaic (10)")
    p.add_argument("--no-cache", action="store_true", help="do not cache images in RAM")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument(
        "--project", type=Path, default=Path("runs/train"), help="runs folder (runs/train)"
    )
    p.add_argument("--name", default="siteguard", help="run name: PROJECT/NAME (siteguard)")
    p.add_argument("--resume", action="store_true", help="resume runs/train/NAME from last.pt")
    p.add_argument("--optimizer", default="auto", help="SGD, AdamW, ... (default: auto)")
    p.add_argument("--lr0", type=float, default=None, help="initial learning rate (not with auto)")
    p.add_argument("--warmup-epochs", type=float, default=None, help="default: Ultralytics' 3")
    p.add_argument("--cos-lr", action="store_true", help="cosine learning-rate decay")
    p.set_defaults(handler=_train)
    _register_evaluate(subparsers)
    _register_export(subparsers)
    _register_model_card(subparsers)
    _register_dataset(subparsers)
    _register_registry(subparsers)
    _register_blend(subparsers)
    from training.retrain_cli import register_retrain

    register_retrain(subparsers)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can fix (bad paths, labels, class maps, models) into CliError."""
    from siteguard.cli import CliError

    try:
        yield
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="accuracy of a model (.onnx via the detector, or .pt) on a dataset split"
    )
    p.add_argument("--model", type=Path, required=True, help="model .onnx or .pt")
    p.add_argument("--data", type=Path, required=True, help="Ultralytics data YAML")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--class-map", default=None, help="dataset=model names, e.g. hat=helmet")
    p.add_argument("--imgsz", type=int, default=None, help="default: the model's own")
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="operating threshold for the worker figures (default: the model's own, else 0.25)",
    )
    p.add_argument("--map-conf", type=float, default=0.001, help="threshold for mAP")
    p.add_argument("--nms-iou", type=float, default=0.5, help="NMS IoU threshold (0.5)")
    p.add_argument("--batch", type=int, default=1, help="frames per onnxruntime call")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--ultralytics-val", action="store_true", help="add Ultralytics' val figures")
    p.add_argument(
        "--conf-sweep",
        type=_floats,
        default=(),
        help="also worker figures at these thresholds, e.g. 0.15,0.2,0.3 (to pick --conf)",
    )
    p.add_argument(
        "--class-conf",
        default=None,
        help="per-class operating thresholds, e.g. head=0.4,helmet=0.2 (default: the model's)",
    )
    p.add_argument(
        "--class-conf-grid",
        type=_floats,
        default=(),
        help="search head x helmet thresholds over these values (on val, to pick --class-conf)",
    )
    p.add_argument(
        "--matching",
        choices=("iou", "coverage"),
        default="iou",
        help="worker matching: iou (IoU >= 0.5) or coverage (covers >= 50%% of the labelled "
        "box, IoU >= 0.1: survives other box conventions)",
    )
    p.add_argument(
        "--rank-by",
        choices=("worker_accuracy", "strict_worker_accuracy"),
        default="worker_accuracy",
        help="what --class-conf-grid maximises (strict also counts stray helmet boxes)",
    )
    p.add_argument(
        "--tiles",
        type=int,
        default=0,
        metavar="GRID",
        help="tiled inference as a camera with `tiling` runs it: GRID x GRID tiles + the full "
        "frame (.onnx only; default 0: off)",
    )
    p.add_argument("--tile-overlap", type=float, default=0.2, help="with --tiles (default 0.2)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    import json
    import sys
    from contextlib import redirect_stdout

    from training.evaluate import EvalOptions, evaluate

    # stdout carries only the result: Ultralytics' own prints go to stderr.
    with _user_errors(), redirect_stdout(sys.stderr):
        figures = evaluate(
            EvalOptions(
                model=args.model,
                data=args.data,
                split=args.split,
                class_map=args.class_map,
                imgsz=args.imgsz,
                conf=args.conf,
                map_conf=args.map_conf,
                nms_iou=args.nms_iou,
                batch=args.batch,
                limit=args.limit,
                ultralytics_val=args.ultralytics_val,
                conf_sweep=args.conf_sweep,
                class_conf=args.class_conf,
                class_conf_grid=args.class_conf_grid,
                matching=args.matching,
                rank_by=args.rank_by,
                tiles=args.tiles,
                tile_overlap=args.tile_overlap,
            )
        )
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(_summary(figures))
    return 0


def _summary(f: dict) -> str:
    lines = [
        f"{f['model']} on {f['split']} ({f['images']} images): mAP50 {f['map50']:.3f}  "
        f"mAP50-95 {f['map50_95']:.3f}",
        f"worker accuracy {f['worker_accuracy']:.3f} ({f['workers']} workers, "
        f"{f['false_alarms']} false alarms)  violation precision {f['violation_precision']:.3f}"
        f"  recall {f['violation_recall']:.3f}  [matching: {f['matching']}]",
        f"strict worker accuracy {f['strict_worker_accuracy']:.3f} (also counts "
        f"{f['stray_helmets']} stray helmet boxes)",
    ]
    for name, row in f["per_class"].items():
        lines.append(
            f"  {name:<10} AP50 {row['ap50']:.3f}  P {row['precision']:.3f}  "
            f"R {row['recall']:.3f}  ({row['instances']} boxes)"
        )
    if f.get("tiling"):
        t = f["tiling"]
        full = " + full frame" if t["full_frame"] else ""
        lines.append(f"  tiled: {t['grid']}x{t['grid']} tiles, overlap {t['overlap']}{full}")
    if f.get("class_conf"):
        per_class = ", ".join(f"{k} {v}" for k, v in f["class_conf"].items())
        lines.append(f"  operating thresholds: {per_class}, others {f['conf']}")
    if f.get("class_conf_best"):
        best = f["class_conf_best"]
        lines.append(
            f"  best of the class threshold grid: head {best['head']:.2f}, helmet "
            f"{best['helmet']:.2f}: worker accuracy {best['worker_accuracy']:.3f}  violation "
            f"precision {best['violation_precision']:.3f}  recall {best['violation_recall']:.3f}"
            f"  false alarms {best['false_alarms']}"
        )
    for row in f.get("conf_sweep", []):
        lines.append(
            f"  conf {row['conf']:.2f}: worker accuracy {row['worker_accuracy']:.3f}  violation "
            f"precision {row['violation_precision']:.3f}  recall {row['violation_recall']:.3f}  "
            f"false alarms {row['false_alarms']}"
        )
    return "\n".join(lines)


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from None
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be in [0, 1]: {text}")
    return values


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="trained .pt -> ONNX with metadata (and int8)")
    p.add_argument("--weights", type=Path, required=True, help="Ultralytics .pt checkpoint")
    p.add_argument("--imgsz", type=int, default=None, help="default: the training image size")
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="operating threshold chosen on val; stored in the model (detectors use it)",
    )
    p.add_argument(
        "--class-conf",
        default=None,
        help="per-class thresholds chosen on val, e.g. head=0.4,helmet=0.2; stored in the model",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("models/siteguard-ppe.onnx"),
        help="the ONNX file to write (models/siteguard-ppe.onnx)",
    )
    p.add_argument("--model-version", default=None, help="default: OUT stem + UTC date/time")
    p.add_argument("--dataset-version", default=None, help="default: from the training run")
    p.add_argument("--int8", action="store_true", help="also write OUT-int8.onnx")
    p.add_argument("--calib", type=Path, default=None, help="images folder or data YAML")
    p.add_argument(
        "--calib-images", type=int, default=100, help="images for int8 calibration (100)"
    )
    p.add_argument("--eval-data", type=Path, default=None, help="evaluate on this data YAML")
    p.add_argument("--eval-split", default="test", help="split of --eval-data (test)")
    p.add_argument("--class-map", default=None, help="for evaluation, dataset=model names")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate N images only")
    p.add_argument(
        "--cross-data",
        type=Path,
        default=None,
        help="also evaluate on a second source (coverage matching), stored as cross_source",
    )
    p.add_argument("--cross-split", default="test", help="split of --cross-data")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from training.export import ExportOptions, export

    with _user_errors():
        result = export(
            ExportOptions(
                weights=args.weights,
                out=args.out,
                imgsz=args.imgsz,
                conf=args.conf,
                class_conf=args.class_conf,
                model_version=args.model_version,
                dataset_version=args.dataset_version,
                int8=args.int8,
                calib=args.calib,
                calib_images=args.calib_images,
                eval_data=args.eval_data,
                eval_split=args.eval_split,
                class_map=args.class_map,
                eval_limit=args.eval_limit,
                cross_data=args.cross_data,
                cross_split=args.cross_split,
            )
        )
    print(f"onnx: {result.onnx} ({result.onnx.stat().st_size / 1e6:.1f} MB)")
    if result.evaluation:
        print(_summary(result.evaluation))
    if result.int8:
        print(f"int8: {result.int8} ({result.int8.stat().st_size / 1e6:.1f} MB)")
    if result.int8_evaluation:
        print(_summary(result.int8_evaluation))
        delta = ", ".join(f"{k} {v:+.2f}" for k, v in result.delta.items())
        print(f"int8 - fp32 (points): {delta}")
    return 0


def _register_blend(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "blend", help="weights between a base and its fine-tune: base + alpha x (tuned - base)"
    )
    p.add_argument("--base", type=Path, required=True, help="the model fine-tuned from (.pt)")
    p.add_argument("--tuned", type=Path, required=True, help="the fine-tuned model (.pt)")
    p.add_argument(
        "--alpha", type=float, required=True, help="0 = base, 1 = tuned; choose it on val"
    )
    p.add_argument("--out", type=Path, required=True, help="the blended checkpoint to write")
    p.set_defaults(handler=_blend)


def _blend(args: argparse.Namespace) -> int:
    from training.blend import blend_checkpoints

    with _user_errors():
        out = blend_checkpoints(args.base, args.tuned, args.alpha, args.out)
    print(f"blend: {out} = {args.base} + {args.alpha} x ({args.tuned} - {args.base})")
    return 0


def _register_model_card(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("model-card", help="write the markdown model card of an ONNX model")
    p.add_argument("--model", type=Path, required=True, help="the ONNX model to describe")
    p.add_argument("--eval", type=Path, default=None, help="default: MODEL.eval.json")
    p.add_argument("--int8", type=Path, default=None, help="the int8 variant, to compare")
    p.add_argument("--run", type=Path, default=None, help="training run folder")
    p.add_argument(
        "--out", type=Path, default=Path("models/MODEL_CARD.md"), help="(models/MODEL_CARD.md)"
    )
    p.add_argument("--timing-frames", type=int, default=20, help="0 skips the timing run")
    p.set_defaults(handler=_model_card)


def _model_card(args: argparse.Namespace) -> int:
    from training.model_card import CardOptions, write_card

    with _user_errors():
        out = write_card(
            CardOptions(
                model=args.model,
                out=args.out,
                evaluation=args.eval,
                int8=args.int8,
                run=args.run,
                timing_frames=args.timing_frames,
            )
        )
    print(f"model card: {out}")
    return 0


def _register_dataset(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dataset", help="import, merge and describe dataset versions")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="YOLO / COCO / VOC -> a new dataset version (symlinks)")
    imp.add_argument("source", type=Path, help="YOLO data.yaml or folder; COCO/VOC images folder")
    imp.add_argument("--out", type=Path, required=True, help="new dataset folder")
    imp.add_argument(
        "--format", choices=("yolo", "coco", "voc"), default="yolo", help="source layout (yolo)"
    )
    imp.add_argument("--annotations", type=Path, default=None, help="COCO JSON / VOC XML folder")
    imp.add_argument("--split", default="train", help="split for COCO/VOC images")
    imp.add_argument("--class-map", default=None, help="e.g. hat=helmet,no_hat=head,dog=-")
    imp.add_argument("--name", default=None, help="default: the folder name")
    imp.add_argument(
        "--grow-boxes",
        default=None,
        help="convert another box convention into ours (whole heads), per class "
        "WIDTHxHEIGHT about the top centre, e.g. helmet=1.12x1.68,head=1.17x2.07",
    )
    imp.add_argument("--groups", type=Path, default=None, help="CSV image,group (clip/source)")
    imp.add_argument(
        "--split-by-group",
        default=None,
        help="re-split by group, e.g. train=0.6,val=0.2,test=0.2 (needs --groups)",
    )
    imp.add_argument("--seed", type=int, default=0, help="seed of the group split")
    imp.set_defaults(handler=_dataset_import)
    merge = sub.add_parser("merge", help="base + new samples -> a new dataset version")
    merge.add_argument("--base", type=Path, required=True, help="data.yaml or dataset folder")
    merge.add_argument("--add", type=Path, action="append", required=True, help="repeatable")
    merge.add_argument("--out", type=Path, required=True, help="new dataset folder")
    merge.add_argument("--name", default=None, help="dataset version name (default: OUT name)")
    merge.add_argument(
        "--repeat", type=int, default=1, help="list each added train image N times (oversample)"
    )
    merge.add_argument(
        "--base-train-share",
        type=float,
        default=1.0,
        help="keep this stable share of the base's train images (its val/test stay whole)",
    )
    merge.add_argument(
        "--names",
        default=None,
        help="the new version's classes in id order, e.g. head,helmet,person,vest,no_vest "
        "(default: ours); a source class left out must have no boxes",
    )
    merge.set_defaults(handler=_dataset_merge)
    from training.pseudo_label_cli import register_pseudo_label

    register_pseudo_label(sub)
    info = sub.add_parser("info", help="version, classes and counts of a dataset")
    info.add_argument("source", type=Path, help="data.yaml or dataset folder")
    info.add_argument("--json", action="store_true", help="print the manifest without files")
    info.set_defaults(handler=_dataset_info)


def _print_manifest(manifest: dict, as_json: bool = False) -> None:
    import json

    if as_json:
        print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2))
        return
    print(f"{manifest['name']}  version {manifest['version']}")
    if manifest.get("parents"):
        print(f"parents: {', '.join(manifest['parents'])}")
    print(f"classes: {', '.join(manifest['classes'])}")
    for split, row in manifest["splits"].items():
        boxes = ", ".join(f"{k} {v}" for k, v in row["boxes"].items())
        print(f"  {split:<5} {row['images']:>6} images  {boxes}")


def _dataset_import(args: argparse.Namespace) -> int:
    from training.datasets import import_dataset
    from training.manifest import record_recipe

    with _user_errors():
        manifest = import_dataset(
            args.source,
            args.out,
            fmt=args.format,
            class_map=args.class_map,
            name=args.name,
            annotations=args.annotations,
            split=args.split,
            grow=args.grow_boxes,
            groups=args.groups,
            split_by_group=args.split_by_group,
            seed=args.seed,
        )
        manifest = record_recipe(args.out, _command(args), [])
    _print_manifest(manifest)
    print(f"data: {args.out / 'data.yaml'}")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that ran, as a user would retype it."""
    return "siteguard " + shlex.join(getattr(args, "argv", []))


def _dataset_merge(args: argparse.Namespace) -> int:
    from training.datasets import merge_datasets
    from training.manifest import record_recipe

    with _user_errors():
        manifest = merge_datasets(
            args.base,
            args.add,
            args.out,
            name=args.name,
            repeat=args.repeat,
            base_train_share=args.base_train_share,
            names=_class_list(args.names),
        )
        manifest = record_recipe(args.out, _command(args), [args.base, *args.add])
    _print_manifest(manifest)
    print(f"data: {args.out / 'data.yaml'}")
    return 0


def _class_list(text: str | None) -> tuple[str, ...] | None:
    """`head,helmet,vest` -> the class names, each checked like a name the box editor adds."""
    from siteguard.cli import CliError
    from training.classmap import class_name_error

    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or len(set(names)) != len(names):
        raise CliError(f"--names {text!r}: give each class once, e.g. head,helmet,person")
    for name in names:
        if error := class_name_error(name):
            raise CliError(f"--names: {error}")
    return names


def _dataset_info(args: argparse.Namespace) -> int:
    from training.datasets import dataset_info

    with _user_errors():
        manifest = dataset_info(args.source)
    _print_manifest(manifest, args.json)
    return 0


def _register_registry(subparsers: argparse._SubParsersAction) -> None:
    import os

    p = subparsers.add_parser("registry", help="register / promote / roll back model versions")
    p.add_argument(
        "--url",
        default=os.environ.get("SITEGUARD_URL", "http://127.0.0.1:8000"),
        help="the service (default: $SITEGUARD_URL, else http://127.0.0.1:8000)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SITEGUARD_TOKEN", ""),
        help="trainer token (default: $SITEGUARD_TOKEN)",
    )
    sub = p.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    reg = sub.add_parser("register", help="upload an exported model as a candidate")
    reg.add_argument("model", type=Path, help="the exported ONNX file")
    reg.add_argument("--eval", type=Path, default=None, help="default: MODEL.eval.json")
    reg.add_argument("--notes", default="", help="free text shown with the version")
    reg.add_argument("--weights", type=Path, default=None, help="the .pt it was exported from")
    reg.add_argument("--promote", action="store_true", help="and make it the active model")
    for action in ("promote", "rollback", "gate"):
        q = sub.add_parser(action, help=f"{action} a registered version")
        q.add_argument("version", help="a registered version, e.g. siteguard-ppe-v1.1")
        if action == "promote":
            q.add_argument("--force", action="store_true", help="admin: past a refusing gate")
    sub.add_parser("list", help="registered versions with their figures")
    p.set_defaults(handler=_registry)


def _registry(args: argparse.Namespace) -> int:
    import json

    import httpx

    from siteguard.cli import CliError
    from training.registry import RegistryClient, RegistryError, register_model_file

    try:
        with _user_errors(), RegistryClient(args.url, args.token) as client:
            if args.registry_command == "register":
                record = register_model_file(
                    client, args.model, args.eval, args.notes, args.weights
                )
                if args.promote:
                    record = client.promote(record["version"])
            elif args.registry_command == "promote":
                record = client.promote(args.version, force=args.force)
            elif args.registry_command == "gate":
                record = client.gate(args.version)
            elif args.registry_command == "rollback":
                record = client.rollback(args.version)
            else:
                record = client.models()
    except RegistryError as exc:
        raise CliError(str(exc)) from exc
    except httpx.TransportError as exc:  # connection refused, DNS, timeouts
        raise CliError(f"cannot reach the service at {args.url}: {exc}") from exc
    print(json.dumps(record, indent=2, default=str))
    return 0


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
        optimizer=args.optimizer,
        lr0=args.lr0,
        warmup_epochs=args.warmup_epochs,
        cos_lr=args.cos_lr,
    )
    with _user_errors():
        run_dir = train(options)
    print(f"run folder: {run_dir}")
    return 0
