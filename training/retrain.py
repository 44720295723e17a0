"""`siteguard retrain`: reviewed field samples -> a new dataset version -> fine-tune -> evaluate ->
export -> a registered candidate, in one command.

The steps, each done by the module that owns it:

1. pull the reviewed samples from the service as a YOLO zip (`GET /api/v1/samples/export`):
   reviewed alerts' frames, and audit frames (random frames a detector sent) that trainers
   labelled;
2. hold back a fixed share of them for field evaluation: a sample is held back when the sha256 of
   its event id (an audit frame's audit id) falls below `holdout` (`is_held_back`), so the same
   sample is held back in every retrain and never trained on; held-back audit frames form a set
   of their own (`audit`), the others are trained on like any sample;
3. build the new dataset version: the base dataset + the other samples in its train split
   (`training.datasets.merge_datasets`, manifests with parents), in the base model's classes
   grown by any class the trainers labelled that the model lacks (e.g. `vest`, `harness`:
   `classmap.grown_names`; old classes keep their ids);
4. fine-tune from the base model's own `.pt` (downloaded from the registry, `training.train`),
   first grown to the new classes when there are any (`training.grow`: wider head, old
   classes' weights kept);
5. export ONNX (`training.export`; its metadata carries the class names the detector reads);
6. evaluate the candidate AND the base model, through the production detector, on the fixed
   benchmark split (the base dataset's `test`), on the held-back field samples and on the
   held-back labelled audit frames (the figures that see missed bare heads);
7. register the candidate with its .pt, dataset version and every figure:
   `{"benchmark", "field", "audit", "baseline": {"version", "benchmark", "field", "audit"},
   "retrain": {...}}`.
   The service's promotion gate (service/gate.py) compares exactly these.

Example:
    >>> result = retrain(RetrainOptions(url="http://127.0.0.1:8000", token=token,
    ...     base_model="siteguard-ppe-2026.11.23", base_data=Path("data/hardhat/data.yaml"),
    ...     epochs=10, imgsz=416))
    >>> result.version, result.metrics["field"]["worker_accuracy"]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


class RetrainError(ValueError):
    """A retrain cannot go on (no samples, no base weights, ...); the message says what to do."""


@dataclass(frozen=True)
class RetrainOptions:
    url: str
    token: str
    base_model: str
    base_data: Path | None = None
    base_weights: Path | None = None
    epochs: int = 10
    hours: float | None = None  # time budget; overrides epochs
    close_mosaic: int | None = None  # last N epochs without mosaic; default min(10, epochs)
    imgsz: int = 640
    export_imgsz: int | None = None  # default: the base model's input size
    conf: float | None = None  # operating threshold; default: the base model's
    batch: int = 16
    fraction: float = 1.0
    holdout: float = 0.2
    since: str | None = None
    version: str | None = None
    name: str = "siteguard-ppe"
    workdir: Path = Path("runs/retrain")
    device: str = "cpu"
    workers: int = 2
    cache: bool = True
    benchmark_split: str = "test"
    eval_limit: int | None = None
    notes: str = ""
    # The fine-tune's schedule, as `siteguard train` takes it (None/"auto": Ultralytics' choice,
    # which warms up for 3 epochs: most of a short retrain). Continuing from a fine-tuned model
    # wants a small lr0, no warm-up and cosine decay.
    optimizer: str = "auto"
    lr0: float | None = None
    warmup_epochs: float | None = None
    cos_lr: bool = False
    # Freeze the first N layers (10: YOLO11's backbone). Keeps the base's features, so the
    # benchmark forgets less, and trains about 3x faster on a CPU.
    freeze: int | None = None
    repeat_samples: int = 1  # list each training sample N times (a few samples vs a large base)
    # More labelled sets to score candidate and base on, {name: (data.yaml, split)}: e.g. a
    # site's held-back groups. Matched by coverage (training/worker_metrics.py), so a set
    # labelled in another box convention still scores fairly; stored under metrics[name].
    also_evaluate: dict[str, tuple[Path, str]] = field(default_factory=dict)


@dataclass
class RetrainResult:
    version: str
    dataset_version: str
    onnx: Path
    weights: Path
    metrics: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


def is_held_back(event_id: str, share: float) -> bool:
    """Whether a sample belongs to the fixed field-evaluation set: a pure function of its event
    id (not of the order or the number of samples), so it never moves between retrains."""
    digest = hashlib.sha256(event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass
class SampleSplit:
    train: Path | None  # dataset folder with the samples to train on (train split)
    field: Path | None  # dataset folder with the held-back samples (test split)
    trained: int
    held_back: int
    audit: Path | None = None  # the held-back labelled audit frames (test split)
    audit_held_back: int = 0


def split_samples(
    zip_path: Path, out: Path, holdout: float, names: Sequence[str] | None = None
) -> SampleSplit:
    """Unpack the service's sample zip and write the dataset versions: the samples to train on,
    the held-back reviewed samples and the held-back audit frames (manifest `kind` "audit").
    Labels are read and validated by `training.datasets`, class ids are those of `names`
    (default: ours)."""
    from training.classmap import OUR_CLASSES
    from training.datasets import DatasetWriter, Sample, extract_zip, yolo_samples

    targets = names or OUR_CLASSES

    source = extract_zip(zip_path, out / "samples-zip")
    entries = json.loads((source / "manifest.json").read_text())
    if not entries:
        return SampleSplit(None, None, 0, 0)
    event_of = {Path(e["image"]).name: str(e["event_id"]) for e in entries}
    audits = {Path(e["image"]).name for e in entries if e.get("kind") == "audit"}
    writers = {
        "train": DatasetWriter(out / "samples-train", names),
        "test": DatasetWriter(out / "samples-field", names),
        "audit": DatasetWriter(out / "samples-audit", names),
    }
    counts = {"train": 0, "test": 0, "audit": 0}
    for sample in yolo_samples(source / "data.yaml", _unlabelled(source, names), targets):
        event_id = event_of.get(sample.image.name)
        if event_id is None:
            raise RetrainError(f"{zip_path}: {sample.image.name} is not in manifest.json")
        held = is_held_back(event_id, holdout)
        to = "train" if not held else "audit" if sample.image.name in audits else "test"
        writers[to].add(Sample("train" if to == "train" else "test", sample.image, sample.rows))
        counts[to] += 1
    names = {"train": "field-samples", "test": "field-holdout", "audit": "audit-holdout"}
    for to, writer in writers.items():
        if counts[to]:
            writer.finish(names[to])
    return SampleSplit(
        writers["train"].out if counts["train"] else None,
        writers["test"].out if counts["test"] else None,
        counts["train"],
        counts["test"],
        writers["audit"].out if counts["audit"] else None,
        counts["audit"],
    )


def default_version(name: str) -> str:
    return f"{name}-{dt.datetime.now(dt.UTC):%Y.%m.%d-%H%M%S}"


def _dropped(data: Path, classes: Sequence[str]) -> str | None:
    """A `--class-map` that drops `classes` from a dataset (those of them it lists)."""
    from training.data_yaml import load_data_yaml

    listed = set(load_data_yaml(data)["names"].values()) if classes else set()
    return ",".join(f"{name}=-" for name in classes if name in listed) or None


def _evaluate(
    model: Path,
    data: Path,
    split: str,
    limit: int | None,
    conf: float | None,
    class_conf: str | None = None,
    matching: str = "iou",
    class_map: str | None = None,
) -> dict[str, Any]:
    from training.evaluate import EvalOptions, evaluate

    return evaluate(
        EvalOptions(
            model=model,
            data=data,
            split=split,
            limit=limit,
            conf=conf,
            class_conf=class_conf,
            matching=matching,
            class_map=class_map,
        )
    )


def _base_files(client: Any, options: RetrainOptions, work: Path) -> tuple[Path, Path]:
    """The base model's ONNX and .pt: both from the registry, or the .pt given locally."""
    from training.registry import RegistryError

    onnx = client.download(options.base_model, work / "base.onnx")
    if options.base_weights is not None:
        if not options.base_weights.is_file():
            raise RetrainError(f"base weights not found: {options.base_weights}")
        return onnx, options.base_weights
    try:
        return onnx, client.download(options.base_model, work / "base.pt", what="weights")
    except RegistryError as exc:
        if exc.status != 404:
            raise
        raise RetrainError(
            f"the registry holds no .pt for {options.base_model!r} (register it with its "
            "weights, or pass --base-weights PATH to the .pt it was exported from)"
        ) from exc


def _unlabelled(source: Path, names: Sequence[str] | None) -> str | None:
    """A `--class-map` dropping the zip's listed classes that `names` lacks. With `names` from
    `model_classes` those have no boxes (the service always lists head, helmet and person)."""
    from training.data_yaml import load_data_yaml

    if names is None:
        return None
    listed = load_data_yaml(source / "data.yaml")["names"]
    return ",".join(f"{n}=-" for n in listed.values() if n not in names) or None


def sample_classes(zip_path: Path) -> set[str]:
    """The classes with at least one box in the service's YOLO sample zip."""
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        listed = (yaml.safe_load(zf.read("data.yaml")) or {}).get("names") or {}
        listed = dict(enumerate(listed)) if isinstance(listed, list) else listed
        names = {int(k): str(v) for k, v in listed.items()}
        ids = {
            int(line.split()[0])
            for member in zf.namelist()
            if member.startswith("labels/") and member.endswith(".txt")
            for line in zf.read(member).decode().splitlines()
            if line.strip()
        }
    unknown = ids - set(names)
    if unknown:
        raise RetrainError(f"{zip_path}: labels use class ids {sorted(unknown)} not in data.yaml")
    return {names[i] for i in ids}


def model_classes(
    base_weights: Path, archive: Path, base_data: Path | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The new model's classes and those of them that are new: the base model's, then every
    class labelled in the samples (or the base data) that it lacks."""
    from training.classmap import ClassMapError, grown_names
    from training.datasets import labelled_classes
    from training.grow import model_names

    base = model_names(base_weights)
    labelled = sample_classes(archive)
    if base_data is not None:
        labelled |= labelled_classes(base_data)
    try:
        names = grown_names(base, labelled)
    except ClassMapError as exc:
        raise RetrainError(f"the samples label a class that cannot be added: {exc}") from exc
    return names, names[len(base) :]


def build_dataset(
    split: SampleSplit,
    base_data: Path | None,
    out: Path,
    repeat: int = 1,
    names: Sequence[str] | None = None,
) -> Path:
    """The new dataset version's data.yaml: base + training samples (or the samples alone), in
    the class list `names` (default: ours)."""
    from training.datasets import merge_datasets

    if base_data is None:
        if split.train is None:
            raise RetrainError("no samples to train on and no --base-data")
        log.warning("no --base-data: fine-tuning on the samples alone (validated on themselves),")
        log.warning("no benchmark figures: the promotion gate will refuse this candidate")
        data_yaml = split.train / "data.yaml"
        data = yaml.safe_load(data_yaml.read_text())
        data.setdefault("val", data["train"])  # Ultralytics needs a val split
        data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
        return data_yaml
    if split.train is None:
        log.warning("every sample is held back for evaluation; training on the base data only")
        return base_data
    merge_datasets(base_data, [split.train], out, name="retrain", repeat=repeat, names=names)
    return out / "data.yaml"


def retrain(options: RetrainOptions) -> RetrainResult:
    """Run the whole loop (see the module docstring); returns the registered candidate."""
    from training.export import ExportOptions, compact_metrics, export
    from training.grow import grow_checkpoint
    from training.manifest import dataset_version
    from training.registry import RegistryClient
    from training.train import TrainOptions, train

    if not 0.0 <= options.holdout < 1.0:
        raise RetrainError(f"--holdout must be in [0, 1), got {options.holdout}")
    if options.base_data is not None and not options.base_data.is_file():
        raise RetrainError(f"base data YAML not found: {options.base_data}")
    version = options.version or default_version(options.name)
    work = (options.workdir / version).absolute()
    if work.exists():
        raise RetrainError(f"{work} already exists; choose another --version")
    work.mkdir(parents=True)
    with RegistryClient(options.url, options.token) as client:
        client.get(options.base_model)  # fails early (404) on a wrong --base-model
        base_onnx, base_pt = _base_files(client, options, work)
        log.info("pulling reviewed samples from %s", options.url)
        archive = client.export_samples(work / "samples.zip", since=options.since)
        names, added = model_classes(base_pt, archive, options.base_data)
        split = split_samples(archive, work, options.holdout, names)
        if split.trained + split.held_back + split.audit_held_back == 0:
            raise RetrainError("the service has no reviewed samples yet (review some alerts)")
        log.info(
            "%d samples: %d to train on, %d held back, %d audit frames held back", *_counts(split)
        )
        check_trainable(added, split, options)
        data = build_dataset(
            split, options.base_data, work / "dataset", options.repeat_samples, names
        )
        data_version = dataset_version(data)
        start_pt = base_pt
        if added:
            log.info("growing the model's classes by %s", ", ".join(added))
            start_pt = grow_checkpoint(base_pt, names, work / "grown.pt")
        run_dir = train(
            TrainOptions(
                data=data,
                base_weights=start_pt,
                epochs=options.epochs,
                hours=options.hours,
                imgsz=options.imgsz,
                batch=options.batch,
                device=options.device,
                workers=options.workers,
                fraction=options.fraction,
                close_mosaic=(
                    options.close_mosaic
                    if options.close_mosaic is not None
                    else min(10, options.epochs)
                ),
                cache=options.cache,
                project=work,
                name="train",
                optimizer=options.optimizer,
                lr0=options.lr0,
                warmup_epochs=options.warmup_epochs,
                cos_lr=options.cos_lr,
                freeze=options.freeze,
            )
        )
        weights = run_dir / "weights" / "best.pt"
        onnx = work / f"{version}.onnx"
        export_imgsz, conf, class_conf = _inherited(options, base_onnx)
        export(
            ExportOptions(
                weights=weights,
                out=onnx,
                imgsz=export_imgsz,
                conf=conf,
                class_conf=class_conf,
                model_version=version,
                dataset_version=data_version,
            )
        )
        metrics = _metrics(
            options, split, onnx, base_onnx, compact_metrics, conf, class_conf, added
        )
        metrics["retrain"] = {
            "classes": list(names),
            "classes_added": list(added),
            "base_model": options.base_model,
            "samples": split.trained + split.held_back,
            "trained_samples": split.trained,
            "held_back_samples": split.held_back,
            "held_back_audit_frames": split.audit_held_back,
            "holdout": options.holdout,
            "since": options.since,
            "epochs": options.epochs,
            "hours": options.hours,
            "imgsz": options.imgsz,
            "export_imgsz": export_imgsz,
            "conf": conf,
            "class_conf": class_conf,
            "fraction": options.fraction,
            "repeat_samples": options.repeat_samples,
            "optimizer": options.optimizer,
            "lr0": options.lr0,
            "warmup_epochs": options.warmup_epochs,
            "cos_lr": options.cos_lr,
            "dataset_version": data_version,
        }
        (work / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        record = client.register(
            onnx,
            version,
            metrics=metrics,
            dataset_version=data_version,
            notes=options.notes or f"retrained from {options.base_model} with field samples",
            weights=weights,
        )
    return RetrainResult(version, data_version, onnx, weights, metrics, record)


def check_trainable(added: Sequence[str], split: SampleSplit, options: RetrainOptions) -> None:
    """A class the model gains must have boxes to learn from: one that is labelled only in
    held-back samples would ship untrained (and a `harness` class that never fires makes every
    worker at height a violation)."""
    from training.datasets import labelled_classes

    if not added:
        return
    taught = labelled_classes(split.train) if split.train is not None else set()
    if options.base_data is not None:
        taught |= labelled_classes(options.base_data)
    missing = [name for name in added if name not in taught]
    if missing:
        raise RetrainError(
            f"new class(es) {', '.join(missing)} are labelled only in held-back samples "
            f"(a fixed {options.holdout:.0%} is kept for evaluation); label more samples"
        )


def _counts(split: SampleSplit) -> tuple[int, int, int, int]:
    held = split.held_back + split.audit_held_back
    return split.trained + held, split.trained, split.held_back, split.audit_held_back


def _inherited(options: RetrainOptions, base_onnx: Path) -> tuple[int, float | None, str | None]:
    """Export size and operating thresholds: as given, else the base model's (like for like).
    A `--conf` given alone replaces the base model's per-class thresholds too."""
    from detector.inference import OnnxDetector, format_class_conf

    base = OnnxDetector(base_onnx)
    imgsz = options.export_imgsz or max(base.imgsz)
    if options.conf is not None:
        return imgsz, options.conf, None
    return imgsz, base.operating_conf, format_class_conf(base.class_conf) or None


def _metrics(
    options: RetrainOptions,
    split: SampleSplit,
    onnx: Path,
    base_onnx: Path,
    compact: Any,
    conf: float | None,
    class_conf: str | None = None,
    added: Sequence[str] = (),
) -> dict[str, Any]:
    """Candidate and base model on the benchmark split and the held-back samples, both at the
    candidate's operating thresholds (the same bar for both). Classes the base model lacks
    (`added`) are dropped from its ground truth: it is scored on what it can see."""
    metrics: dict[str, Any] = {"baseline": {"version": options.base_model}}
    sets = []
    if options.base_data is not None:
        sets.append(("benchmark", options.base_data, options.benchmark_split, "iou"))
    if split.field is not None:
        sets.append(("field", split.field / "data.yaml", "test", "iou"))
    if split.audit is not None:  # labelled by trainers in the box editor: the model's convention
        sets.append(("audit", split.audit / "data.yaml", "test", "iou"))
    for name, (data, data_split) in options.also_evaluate.items():
        if name in ("benchmark", "field", "audit", "baseline", "retrain"):
            raise RetrainError(f"--also-evaluate name {name!r} is taken; choose another")
        sets.append((name, data, data_split, "coverage"))
    for key, data, data_split, matching in sets:
        limit = options.eval_limit
        figures = _evaluate(onnx, data, data_split, limit, conf, class_conf, matching)
        metrics[key] = compact(figures)
        base = _evaluate(
            base_onnx, data, data_split, limit, conf, class_conf, matching, _dropped(data, added)
        )
        metrics["baseline"][key] = compact(base)
    return metrics
