"""Pseudo-labels: a new dataset version whose labels are the source's plus one class predicted by
a model (e.g. `person` from the COCO-pretrained YOLO11n, where the source rarely labels persons).

Every source label line is kept verbatim; a predicted box is added unless it overlaps a labelled
box of its class (IoU >= `match_iou`). Only the `splits` given get predictions (default: train);
the others are linked unchanged, so val/test keep the human labels that models are measured on.
Images stay symlinks to the source, as `dataset import` / `merge` write them.

Example:
    >>> pseudo_label(PseudoLabelOptions(Path("../shared/data/hardhat-workers"), Path("data/hhw-p"),
    ...                                 conf=0.5))["pseudo_labels"]["added"]  # doctest: +SKIP
    {'train': 9120}
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data_yaml import SPLITS, load_data_yaml
from training.datasets import DatasetError, DatasetWriter, Sample, _data_yaml_of, yolo_samples
from training.labels import ImagesError, label_path_for, to_xyxy
from training.manifest import dataset_version, read_manifest, write_manifest

DEFAULT_MODEL = Path("../shared/weights/yolo11n-coco.pt")


@dataclass(frozen=True)
class PseudoLabelOptions:
    source: Path  # a YOLO dataset (data.yaml or its folder) whose names hold `target`
    out: Path  # the new dataset folder (must be empty or absent)
    conf: float = 0.5  # keep predictions at or above this confidence
    model: Path = DEFAULT_MODEL  # .pt through Ultralytics or .onnx through the detector
    model_class: str = "person"  # the model's class name to predict (COCO `person` = id 0)
    target: str | None = None  # the dataset's class the boxes become (default: model_class)
    splits: tuple[str, ...] = ("train",)
    match_iou: float = 0.5  # a prediction this close to a labelled box of the class is dropped
    imgsz: int = 640
    batch: int = 1  # per-image rect letterbox; on 2 CPU cores faster than batches (see README)
    nms_iou: float = 0.7  # Ultralytics' default
    name: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.conf < 1.0:
            raise ValueError(f"--conf must be in (0, 1), got {self.conf}")
        if not 0.0 < self.match_iou <= 1.0:
            raise ValueError(f"--match-iou must be in (0, 1], got {self.match_iou}")
        unknown = sorted(set(self.splits) - set(SPLITS))
        if unknown or not self.splits:
            raise ValueError(f"--splits must name some of {', '.join(SPLITS)}, got {unknown}")
        if self.batch < 1 or self.imgsz < 32:
            raise ValueError("--batch must be >= 1 and --imgsz >= 32")


def class_id(names: dict[int, str], name: str, owner: str) -> int:
    """The id of class `name` in `names`, or a ValueError that lists what `owner` has."""
    for index, candidate in names.items():
        if candidate == name:
            return int(index)
    listed = ", ".join(list(names.values())[:12]) + (", ..." if len(names) > 12 else "")
    raise ValueError(f"{owner} has no class {name!r} (its classes: {listed})")


def unmatched(predicted: np.ndarray, labelled: np.ndarray, match_iou: float) -> np.ndarray:
    """Mask of the predicted xyxy boxes whose IoU with every labelled box is below `match_iou`."""
    import supervision as sv

    if not len(predicted) or not len(labelled):
        return np.ones(len(predicted), dtype=bool)
    return sv.box_iou_batch(predicted, labelled).max(axis=1) < match_iou


def to_rows(xyxy: np.ndarray, class_index: int, width: int, height: int) -> np.ndarray:
    """Pixel xyxy -> (N, 5) rows `class cx cy w h`, normalised and clipped to the image."""
    box = (xyxy / np.array([width, height, width, height])).clip(0.0, 1.0)
    rows = np.stack(
        [
            np.full(len(box), float(class_index)),
            (box[:, 0] + box[:, 2]) / 2,
            (box[:, 1] + box[:, 3]) / 2,
            box[:, 2] - box[:, 0],
            box[:, 3] - box[:, 1],
        ],
        axis=1,
    )
    return rows[(rows[:, 3] > 0) & (rows[:, 4] > 0)]


def _label_text(sample: Sample) -> str:
    """The source label file as it is (a final newline added), empty when it has none."""
    path = label_path_for(sample.image)
    text = path.read_text() if path.is_file() else ""
    return text if not text or text.endswith("\n") else text + "\n"


def pseudo_label(options: PseudoLabelOptions) -> dict[str, Any]:
    """Write the new version and return its manifest, with a `pseudo_labels` record (model,
    classes, thresholds, boxes added and duplicates dropped per split)."""
    import cv2
    from tqdm import tqdm

    from training.datasets import format_rows
    from training.evaluate import load_model

    data_yaml = _data_yaml_of(options.source)
    if not data_yaml.is_file():
        raise DatasetError(f"dataset not found: {options.source}")
    names = load_data_yaml(data_yaml)["names"]
    target = options.target or options.model_class
    target_id = class_id(names, target, f"dataset {data_yaml}")
    writer = DatasetWriter(options.out, names=[names[i] for i in sorted(names)])
    model = load_model(options.model, options.imgsz, options.conf, options.nms_iou)
    model_id = class_id(model.names, options.model_class, f"model {options.model}")
    samples = list(yolo_samples(data_yaml, targets=[names[i] for i in sorted(names)]))
    to_label = [s for s in samples if s.split in options.splits]
    if not to_label:
        raise DatasetError(f"{options.source}: no images in split(s) {', '.join(options.splits)}")

    added = dict.fromkeys(options.splits, 0)
    dropped = dict.fromkeys(options.splits, 0)
    try:
        for sample in samples:
            if sample.split not in options.splits:
                writer.add(sample, label_text=_label_text(sample))
        progress = tqdm(total=len(to_label), desc=f"pseudo-label {target}", unit="img")
        for start in range(0, len(to_label), options.batch):
            batch = to_label[start : start + options.batch]
            frames = [cv2.imread(str(s.image)) for s in batch]
            for sample, frame in zip(batch, frames, strict=True):
                if frame is None:
                    raise ImagesError(f"cannot read image {sample.image}")
            for sample, frame, found in zip(batch, frames, model.predict(frames), strict=True):
                height, width = frame.shape[:2]
                found = found[found.class_id == model_id]
                mine = sample.rows[sample.rows[:, 0] == target_id]
                keep = unmatched(found.xyxy, to_xyxy(mine, width, height), options.match_iou)
                new = to_rows(found.xyxy[keep], target_id, width, height)
                added[sample.split] += len(new)
                dropped[sample.split] += int((~keep).sum())
                rows = np.concatenate([sample.rows, new])
                text = _label_text(sample) + "".join(format_rows(new))
                writer.add(Sample(sample.split, sample.image, rows), label_text=text)
            progress.update(len(batch))
        progress.close()
        manifest = writer.finish(options.name or options.out.name, [dataset_version(data_yaml)])
    except BaseException:
        if writer.out.exists() and not read_manifest(writer.out):
            shutil.rmtree(writer.out, ignore_errors=True)  # leave nothing half-written
        raise
    record = {key: str(v) if isinstance(v, Path) else v for key, v in asdict(options).items()}
    record.update(target=target, added=added, dropped_duplicates=dropped)
    manifest["pseudo_labels"] = record
    write_manifest(manifest, writer.out)
    return manifest
