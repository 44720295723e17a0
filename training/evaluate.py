"""`siteguard evaluate`: accuracy of a model on a dataset split, as the JSON in docs/contract.md.

One inference pass per image at a low confidence threshold (`map_conf`, 0.001) feeds:

- mAP50, mAP50-95 and per-class AP50 from `supervision.metrics.MeanAveragePrecision`
  (COCO-style 101-point interpolation, IoU 0.50:0.05:0.95, up to 300 detections per image and
  class, as Ultralytics' val keeps), over the classes that have ground truth;
- per-class precision and recall at the operating threshold (`conf`: given, else the model's
  own from `siteguard export --conf`, else 0.25) and IoU 0.5, from
  `supervision.metrics.Precision` / `Recall`;
- worker accuracy and violation precision/recall at the operating threshold, defined in
  `training/worker_metrics.py`.

The operating threshold may differ per class (`class_conf`: given, else the model's own from
`siteguard export --class-conf`): a detection counts when its confidence reaches its class's
threshold, else the single one. `class_conf_grid` searches head x helmet thresholds for the best
worker accuracy from the same pass; run it on the validation split, never on test.

Detections below `conf` are dropped after NMS; greedy NMS never lets a low-scoring box suppress a
higher one, so this equals a second pass at `conf`. ONNX models run through
`detector.inference.OnnxDetector`, the code path that runs in production; `.pt` weights run
through Ultralytics' predictor, and `ultralytics_val=True` adds Ultralytics' own `val` figures
(P/R there are at the max-F1 threshold, so they differ from ours) for comparison. `tiles` runs
an ONNX model tiled, as a camera with `tiling` runs it (detector/tiling.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from detector.inference import class_thresholds, parse_class_conf
from detector.tiling import Tiling
from training.classmap import parse_class_map, resolve_names
from training.data_yaml import load_data_yaml
from training.labels import ImagesError, label_path_for, list_images, read_labels, to_xyxy
from training.worker_metrics import COMPLIANT, VIOLATION, WorkerTally

log = logging.getLogger(__name__)

MAP_IMPLEMENTATION = "supervision.metrics.MeanAveragePrecision (COCO 101-point, maxDets 300)"


DEFAULT_CONF = 0.25
# What the threshold grid may maximise: worker accuracy as defined, or the strict form that also
# counts stray helmet boxes (an evaluator that calls every unmatched box a false alarm).
RANKINGS = ("worker_accuracy", "strict_worker_accuracy")


@dataclass(frozen=True)
class EvalOptions:
    model: Path
    data: Path
    split: str = "test"
    class_map: str | None = None
    imgsz: int | None = None
    conf: float | None = None  # None: the model's own operating threshold, else DEFAULT_CONF
    map_conf: float = 0.001
    nms_iou: float = 0.5
    batch: int = 1  # per-image rect letterbox: less padding than a shared batch shape
    limit: int | None = None
    ultralytics_val: bool = False
    conf_sweep: tuple[float, ...] = ()  # also report the worker figures at these thresholds
    class_conf: str | None = None  # "head=0.4,helmet=0.2": per-class operating thresholds
    class_conf_grid: tuple[float, ...] = ()  # search head x helmet thresholds over these values
    matching: str = "iou"  # how a detection matches a worker (training/worker_metrics.py)
    rank_by: str = "worker_accuracy"  # what the grid maximises (or strict_worker_accuracy)
    tiles: int = 0  # tiled inference (detector/tiling.py): GRID x GRID tiles + full frame; 0 off
    tile_overlap: float = 0.2


@dataclass
class Model:
    """What evaluation needs from a model: names, a version and batched prediction."""

    names: dict[int, str]
    version: str
    imgsz: tuple[int, int]
    predict: Callable[[Sequence[np.ndarray]], list[sv.Detections]]
    conf: float | None = None  # the operating threshold stored in the model, if any
    class_conf: dict[str, float] = field(default_factory=dict)  # its per-class ones, if any


def load_model(
    path: Path, imgsz: int | None, map_conf: float, nms_iou: float, tiling: Tiling | None = None
) -> Model:
    """An ONNX file through the production detector (tiled when `tiling` is set, as a camera
    with `tiling` runs), or `.pt` weights through Ultralytics."""
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    if tiling is not None and path.suffix != ".onnx":
        raise ValueError(f"tiled evaluation runs the production detector: needs .onnx, got {path}")
    if path.suffix == ".onnx":
        from detector.inference import OnnxDetector

        det = OnnxDetector(path, conf=map_conf, iou=nms_iou)
        if imgsz is not None and (imgsz, imgsz) != det.imgsz:
            log.warning("evaluating %s at %d px; it was exported at %s", path, imgsz, det.imgsz)
            det.imgsz = (imgsz, imgsz)
        predict = det.predict if tiling is None else partial(det.predict, tiling=tiling)
        return Model(
            dict(det.names), det.version, det.imgsz, predict, det.operating_conf,
            dict(det.class_conf),
        )  # fmt: skip
    if path.suffix == ".pt":
        return _ultralytics_model(path, imgsz, map_conf, nms_iou)
    raise ValueError(f"model must be .onnx or .pt, got {path}")


def _ultralytics_model(path: Path, imgsz: int | None, conf: float, iou: float) -> Model:
    from training.train import offline_environment

    offline_environment()
    from training.train import load_yolo

    yolo = load_yolo(path)
    size = imgsz or int(yolo.overrides.get("imgsz") or 640)
    names = {int(k): str(v) for k, v in yolo.names.items()}

    def predict(frames: Sequence[np.ndarray]) -> list[sv.Detections]:
        results = yolo.predict(
            list(frames), conf=conf, iou=iou, imgsz=size, max_det=300, verbose=False
        )
        out = []
        for result in results:
            det = sv.Detections.from_ultralytics(result)
            det.data["class_name"] = np.array([names[int(c)] for c in det.class_id], dtype=str)
            out.append(det)
        return out

    return Model(names, path.stem, (size, size), predict)


def _targets(
    images: list[Path], names: dict[int, str], to_model: dict[int, int | None]
) -> tuple[list[np.ndarray], list[sv.Detections]]:
    """Read every image and its labels (validated) into ground-truth detections in model ids."""
    frames, targets = [], []
    for image_path in images:
        frame = cv2.imread(str(image_path))
        if frame is None:
            raise ImagesError(f"cannot read image {image_path}")
        rows = read_labels(label_path_for(image_path), len(names))
        keep = [to_model[int(c)] is not None for c in rows[:, 0]]
        rows = rows[np.asarray(keep, dtype=bool)] if len(rows) else rows
        class_ids = np.array([to_model[int(c)] for c in rows[:, 0]], dtype=int)
        h, w = frame.shape[:2]
        frames.append(frame)
        targets.append(sv.Detections(xyxy=to_xyxy(rows, w, h).reshape(-1, 4), class_id=class_ids))
    return frames, targets


def evaluate(options: EvalOptions) -> dict[str, Any]:
    """Evaluate and return the figures (see the module docstring for what each one means)."""
    from tqdm import tqdm

    started = time.perf_counter()
    data = load_data_yaml(options.data)
    if options.split not in data:
        splits = [s for s in ("train", "val", "test") if s in data]
        raise ValueError(f"{options.data} has no '{options.split}' split (it has {splits})")
    images = list_images(data[options.split])
    if options.limit:
        images = images[: options.limit]
    tiling = Tiling(options.tiles, options.tile_overlap) if options.tiles else None
    model = load_model(options.model, options.imgsz, options.map_conf, options.nms_iou, tiling)
    model_classes = [model.names[i] for i in sorted(model.names)]
    to_model = resolve_names(data["names"], parse_class_map(options.class_map), model_classes)
    operating_conf = next(c for c in (options.conf, model.conf, DEFAULT_CONF) if c is not None)

    class_conf = parse_class_conf(options.class_conf) if options.class_conf else model.class_conf
    unknown = sorted(set(class_conf) - set(model_classes))
    if unknown:
        raise ValueError(f"class thresholds for {unknown}: the model's classes are {model_classes}")
    thresholds = class_thresholds(model.names, class_conf, operating_conf)
    grid = (
        ClassConfGrid(options.class_conf_grid, options.matching, options.rank_by)
        if options.class_conf_grid
        else None
    )
    map_metric = sv.metrics.MeanAveragePrecision(max_detection_thresholds=(1, 10, 300))
    precision = sv.metrics.Precision()
    recall = sv.metrics.Recall()
    tally = WorkerTally(options.matching)
    sweep = {c: WorkerTally(options.matching) for c in options.conf_sweep}
    names_of = np.array(model_classes, dtype=object)
    gt_counts = np.zeros(len(model_classes), dtype=int)
    infer_seconds = 0.0
    for start in tqdm(range(0, len(images), options.batch), desc=f"evaluate {options.split}"):
        frames, targets = _targets(images[start : start + options.batch], data["names"], to_model)
        t0 = time.perf_counter()
        predictions = model.predict(frames)
        infer_seconds += time.perf_counter() - t0
        operating = [p[p.confidence >= thresholds[p.class_id]] for p in predictions]
        map_metric.update(predictions, targets)
        precision.update(operating, targets)
        recall.update(operating, targets)
        for target, pred, raw in zip(targets, operating, predictions, strict=True):
            gt_counts += np.bincount(target.class_id, minlength=len(model_classes))
            gt_names = names_of[target.class_id].astype(str)
            tally.update(
                target.xyxy,
                gt_names,
                pred.xyxy,
                names_of[pred.class_id].astype(str),
                pred.confidence,
            )
            if grid is not None:
                grid.update(target.xyxy, gt_names, raw, names_of[raw.class_id].astype(str))
            for conf, other in sweep.items():
                kept = raw[raw.confidence >= conf]
                other.update(
                    target.xyxy, gt_names, kept.xyxy, names_of[kept.class_id].astype(str),
                    kept.confidence,
                )  # fmt: skip

    result = map_metric.compute()
    p_result, r_result = precision.compute(), recall.compute()
    ap50 = dict(
        zip(result.matched_classes.tolist(), result.ap_per_class[:, 0].tolist(), strict=True)
    )
    p50 = dict(
        zip(
            p_result.matched_classes.tolist(),
            p_result.precision_per_class[:, 0].tolist(),
            strict=True,
        )
    )
    r50 = dict(
        zip(
            r_result.matched_classes.tolist(), r_result.recall_per_class[:, 0].tolist(), strict=True
        )
    )
    per_class = {
        model_classes[c]: {
            "ap50": _unit(ap50.get(c, 0.0)),
            "precision": _unit(p50.get(c, 0.0)),
            "recall": _unit(r50.get(c, 0.0)),
            "instances": int(gt_counts[c]),
        }
        for c in range(len(model_classes))
        if gt_counts[c] > 0
    }
    figures: dict[str, Any] = {
        "model": str(options.model),
        "model_version": model.version,
        "data": str(Path(options.data).resolve()),
        "split": options.split,
        "images": len(images),
        "imgsz": list(model.imgsz),
        "map50": _unit(result.map50),
        "map50_95": _unit(result.map50_95),
        "per_class": per_class,
        **tally.figures(),
        "conf": operating_conf,
        "class_conf": class_conf,
        "map_conf": options.map_conf,
        "nms_iou": options.nms_iou,
        "match_iou": 0.5,  # of mAP and per-class P/R; worker figures follow `matching`
        "map_implementation": MAP_IMPLEMENTATION,
        "class_map": options.class_map or "",
        "tiling": asdict(tiling) if tiling else None,
        "inference_ms_per_image": round(1000 * infer_seconds / max(len(images), 1), 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if sweep:
        figures["conf_sweep"] = [{"conf": c, **t.figures()} for c, t in sorted(sweep.items())]
    if grid is not None:
        figures["class_conf_grid"] = grid.rows()
        figures["class_conf_best"] = grid.best()
    if options.ultralytics_val:
        val = ultralytics_val(options, images, data["names"], to_model, model_classes)
        figures["ultralytics_val"] = val
    return figures


class ClassConfGrid:
    """Worker figures for every (head, helmet) threshold pair, accumulated image by image.

    A bare-head alert and a missed hard hat cost differently, so the two worker classes need not
    share a threshold; `best()` is the pair with the highest worker accuracy (ties: fewer false
    alarms). Choose on validation data: on the test split it would be fitting to the test.
    """

    def __init__(
        self, values: Sequence[float], matching: str = "iou", rank_by: str = "worker_accuracy"
    ) -> None:
        if not values or any(not 0.0 < v < 1.0 for v in values):
            raise ValueError(f"class threshold grid must hold values in (0, 1), got {values}")
        if rank_by not in RANKINGS:
            raise ValueError(f"rank_by must be one of {', '.join(RANKINGS)}, got {rank_by!r}")
        self.values = sorted(set(values))
        self.rank_by = rank_by
        self.tallies = {(h, c): WorkerTally(matching) for h in self.values for c in self.values}

    def update(
        self, gt_xyxy: np.ndarray, gt_names: np.ndarray, raw: sv.Detections, names: np.ndarray
    ) -> None:
        conf = np.asarray(raw.confidence)
        is_head, is_helmet = names == VIOLATION, names == COMPLIANT
        for (head, helmet), tally in self.tallies.items():
            keep = (is_head & (conf >= head)) | (is_helmet & (conf >= helmet))
            tally.update(gt_xyxy, gt_names, raw.xyxy[keep], names[keep], conf[keep])

    def rows(self) -> list[dict[str, Any]]:
        return [
            {VIOLATION: head, COMPLIANT: helmet, **tally.figures()}
            for (head, helmet), tally in self.tallies.items()
        ]

    def best(self) -> dict[str, Any]:
        return max(self.rows(), key=lambda r: (r[self.rank_by], -r["false_alarms"]))


def _unit(value: float) -> float:
    """supervision reports -1 when a figure is undefined (no targets); we report 0."""
    return round(max(float(value), 0.0), 4)


def ultralytics_val(
    options: EvalOptions,
    images: list[Path],
    names: dict[int, str],
    to_model: dict[int, int | None],
    model_classes: list[str],
) -> dict[str, Any]:
    """Ultralytics' own `val` on the same images and class map, for comparison with our figures.

    It runs on a temporary copy of the split (symlinked images, labels in model ids): Ultralytics
    writes a `labels.cache` beside the labels it reads, and the source may be read-only data.
    """
    import os
    import tempfile

    import yaml

    from training.train import offline_environment

    offline_environment()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "labels").mkdir()
        for i, image in enumerate(images):
            link = root / "images" / f"{i:06d}{image.suffix}"
            os.symlink(image.absolute(), link)
            rows = read_labels(label_path_for(image), len(names))
            lines = [
                f"{to_model[int(r[0])]} {r[1]} {r[2]} {r[3]} {r[4]}\n"
                for r in rows
                if to_model[int(r[0])] is not None
            ]
            (root / "labels" / f"{i:06d}.txt").write_text("".join(lines))
        data_yaml = root / "data.yaml"
        data_yaml.write_text(
            yaml.safe_dump(
                {
                    "path": tmp,
                    "train": "images",
                    "val": "images",
                    "names": dict(enumerate(model_classes)),
                }
            )
        )
        kwargs: dict[str, Any] = {"imgsz": options.imgsz} if options.imgsz else {}
        metrics = YOLO(str(options.model), task="detect").val(
            data=str(data_yaml),
            split="val",
            conf=options.map_conf,
            batch=1,
            plots=False,
            project=str(root / "runs"),
            verbose=False,
            **kwargs,
        )
    box = metrics.box
    names = metrics.names
    return {
        "map50": round(float(box.map50), 4),
        "map50_95": round(float(box.map), 4),
        "images": len(images),
        "per_class": {
            names[int(c)]: {
                "ap50": round(float(box.ap50[i]), 4),
                "precision": round(float(box.p[i]), 4),
                "recall": round(float(box.r[i]), 4),
            }
            for i, c in enumerate(box.ap_class_index)
        },
    }
