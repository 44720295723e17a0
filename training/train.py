"""Fine-tune a YOLO model with Ultralytics, offline, into a self-describing run folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from training.data_yaml import write_resolved
from training.manifest import dataset_version


@dataclass(frozen=True)
class TrainOptions:
    """What `siteguard train` takes; each field maps one-to-one to an Ultralytics train key."""

    data: Path
    base_weights: Path
    epochs: int = 50
    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"
    workers: int = 2
    fraction: float = 1.0
    freeze: int | None = None
    hours: float | None = None
    close_mosaic: int = 10
    cache: bool = True
    seed: int = 0
    project: Path = Path("runs/train")
    name: str = "siteguard"
    resume: bool = False
    # Schedule: None keeps Ultralytics' choice (optimizer "auto" picks AdamW and its own lr0 for
    # short runs). Continuing from an already fine-tuned model wants a small lr0 and no warm-up.
    optimizer: str = "auto"
    lr0: float | None = None
    warmup_epochs: float | None = None
    cos_lr: bool = False


def offline_environment() -> None:
    """Keep Ultralytics from reaching the network (fonts, assets, hub, telemetry)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "True")


def use_all_cores(trainer) -> None:
    """Ultralytics pins CPU training to `cpu_count - 1` torch threads (1 of 2 cores here) and
    loads data in the main thread on CPU anyway, so the last core sits idle: measured 8.0 ->
    4.7 s per batch of 16 at 640 px on 2 cores. A GPU run is left alone."""
    import torch

    if trainer.device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)


def load_yolo(path: Path):  # -> ultralytics.YOLO (not imported at module level)
    """`YOLO(path)` for a local checkpoint, with a clear ValueError when it is not one (and
    never a download: Ultralytics fetches unknown *names* such as `yolo11x.pt` otherwise)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    from ultralytics import YOLO

    try:
        return YOLO(str(path))
    except Exception as exc:  # torch/pickle raise many types for a bad file
        raise ValueError(f"{path} is not an Ultralytics YOLO checkpoint: {exc}") from exc


def train(options: TrainOptions) -> Path:
    """Run the fine-tune and return the run folder (weights/best.pt inside)."""
    offline_environment()
    if not options.base_weights.is_file():
        raise FileNotFoundError(f"base weights not found: {options.base_weights}")
    from ultralytics import YOLO, settings

    settings.update({"sync": False})
    run_dir = (options.project / options.name).resolve()
    if options.resume:
        last = run_dir / "weights" / "last.pt"
        if not last.is_file():
            raise FileNotFoundError(f"nothing to resume: {last} does not exist")
        resumed = YOLO(str(last))
        resumed.add_callback("on_pretrain_routine_start", use_all_cores)
        resumed.train(resume=True)
        return run_dir
    if options.lr0 is not None and options.optimizer == "auto":
        raise ValueError("--optimizer auto ignores --lr0: name an optimizer (SGD, AdamW, ...)")
    # Check the data and the weights before writing anything.
    version = dataset_version(options.data)  # recorded so export can stamp it into the model
    model = load_yolo(options.base_weights)
    data_yaml = write_resolved(options.data, run_dir.parent / f"{options.name}-data")
    extra: dict = {}
    if options.freeze is not None:
        extra["freeze"] = options.freeze
    if options.hours is not None:
        extra["time"] = options.hours
    if options.lr0 is not None:
        extra["lr0"] = options.lr0
    if options.warmup_epochs is not None:
        extra["warmup_epochs"] = options.warmup_epochs
    model.add_callback("on_pretrain_routine_start", use_all_cores)
    model.train(
        data=str(data_yaml),
        epochs=options.epochs,
        imgsz=options.imgsz,
        batch=options.batch,
        device=options.device,
        workers=options.workers,
        fraction=options.fraction,
        close_mosaic=options.close_mosaic,
        cache="ram" if options.cache else False,
        seed=options.seed,
        project=str(options.project.resolve()),
        name=options.name,
        exist_ok=True,
        plots=False,
        optimizer=options.optimizer,
        cos_lr=options.cos_lr,
        **extra,
    )
    run_dir = Path(model.trainer.save_dir)
    record = {k: str(v) for k, v in asdict(options).items()}
    record["dataset_version"] = version
    (run_dir / "siteguard_train.json").write_text(json.dumps(record, indent=2))
    return run_dir
