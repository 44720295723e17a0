"""How good are a model's person boxes as pseudo-labels? Person AP50 and P/R per confidence.

Issue 14.1: Hard Hat Workers labels persons only now and then, so `siteguard dataset
pseudo-label` adds the COCO-pretrained YOLO11n's persons to its train split. This scores that
model's `person` class, with the labeller's own settings (640 px, one image per call, NMS IoU
0.7), on images whose persons are labelled:

- `hhw-valid`, `hhw-train`: Hard Hat Workers images with at least one person box (the model
  never saw them: both are fair for choosing the threshold);
- `hhw-test`: the same on test, reported only;
- `css`: Construction Site Safety, every image, class `Person` (reported only);
- `css-val`, `css-test`: its group splits as imported into `data/css` (docs/benchmarks.md,
  issue 13), with `--css-groups data/css`.

AP50 comes from supervision's MeanAveragePrecision as `training/evaluate.py` computes it, P and R
at IoU 0.5 from its Precision / Recall, one inference pass per image at conf 0.001. On Hard Hat
Workers an unlabelled person counts as a false positive, so precision there is a floor.

    YOLO_OFFLINE=1 nice -n 19 .venv/bin/python bench/person_pseudo_labels.py \\
        --render data/hhw-person --render-source ../shared/data/hardhat-workers

`--render DATASET` also draws 12 random train images of a pseudo-labelled version (source boxes
thin, added boxes thick red) into test-artifacts/pseudo-label/.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFS = (0.25, 0.3, 0.4, 0.5, 0.6, 0.7)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "pseudo-label"


def person_sets(shared: Path, css_groups: Path | None) -> dict[str, tuple[list[Path], int, int]]:
    """name -> (images, the person class id in its labels, number of classes)."""
    from training.labels import label_path_for, list_images, read_labels

    hhw = shared / "data" / "hardhat-workers"
    sets: dict[str, tuple[list[Path], int, int]] = {}
    for name, split in (("hhw-valid", "valid"), ("hhw-train", "train"), ("hhw-test", "test")):
        images = [
            p
            for p in list_images(hhw / split / "images")
            if (read_labels(label_path_for(p), 3)[:, 0] == 2).any()
        ]
        sets[name] = (images, 2, 3)
    sets["css"] = (list_images(shared / "data" / "construction-site-safety" / "images"), 5, 10)
    if css_groups is not None:  # an import in our classes: person is 2 of 3
        for split in ("val", "test"):
            sets[f"css-{split}"] = (list_images(css_groups / split / "images"), 2, 3)
    return sets


def score(model_path: Path, images: list[Path], person: int, classes: int) -> dict:
    """Person AP50 and, per confidence in CONFS, P/R at IoU 0.5 and boxes per image."""
    import cv2
    import supervision as sv
    from tqdm import tqdm

    from training.evaluate import load_model
    from training.labels import label_path_for, read_labels, to_xyxy
    from training.pseudo_label import class_id

    model = load_model(model_path, 640, 0.001, 0.7)
    model_person = class_id(model.names, "person", f"model {model_path}")
    ap = sv.metrics.MeanAveragePrecision(max_detection_thresholds=(1, 10, 300))
    at = {c: (sv.metrics.Precision(), sv.metrics.Recall()) for c in CONFS}
    kept = dict.fromkeys(CONFS, 0)
    boxes = 0
    for image in tqdm(images, desc=f"person AP {len(images)} images"):
        frame = cv2.imread(str(image))
        h, w = frame.shape[:2]
        rows = read_labels(label_path_for(image), classes)
        rows = rows[rows[:, 0] == person]
        boxes += len(rows)
        target = sv.Detections(
            xyxy=to_xyxy(rows, w, h).reshape(-1, 4), class_id=np.zeros(len(rows), int)
        )
        found = model.predict([frame])[0]
        found = found[found.class_id == model_person]
        found.class_id = np.zeros(len(found), int)
        ap.update([found], [target])
        for conf, (precision, recall) in at.items():
            operating = found[found.confidence >= conf]
            precision.update([operating], [target])
            recall.update([operating], [target])
            kept[conf] += len(operating)
    rows_out = []
    for conf, (precision, recall) in at.items():
        p, r = float(precision.compute().precision_at_50), float(recall.compute().recall_at_50)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_image = round(kept[conf] / len(images), 2)
        rows_out.append(
            {"conf": conf, "precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
             "boxes_per_image": per_image}
        )  # fmt: skip
    ap50 = round(float(ap.compute().map50), 3)
    return {"images": len(images), "person_boxes": boxes, "ap50": ap50, "by_conf": rows_out}


def render(dataset: Path, source: Path, count: int = 12, seed: int = 0) -> list[Path]:
    """Draw `count` random train images of a pseudo-labelled version: source boxes thin
    (head blue, helmet green, person yellow), added boxes thick red."""
    import cv2

    from training.labels import list_images, read_labels, to_xyxy

    colours = {0: (255, 120, 0), 1: (0, 200, 0), 2: (0, 220, 255)}
    images = random.Random(seed).sample(list_images(dataset / "train" / "images"), count)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    written = []
    for image in images:
        frame = cv2.imread(str(image))
        h, w = frame.shape[:2]
        rows = read_labels(dataset / "train" / "labels" / f"{image.stem}.txt", 3)
        original = source / "train" / "labels" / f"{image.stem}.txt"
        n_source = len(read_labels(original, 3))
        for i, (row, box) in enumerate(zip(rows, to_xyxy(rows, w, h), strict=True)):
            x1, y1, x2, y2 = (int(v) for v in box)
            added = i >= n_source
            colour = (0, 0, 255) if added else colours.get(int(row[0]), (255, 255, 255))
            cv2.rectangle(frame, (x1, y1), (x2, y2), colour, 3 if added else 1)
        path = ARTIFACTS / f"{image.stem}.png"
        cv2.imwrite(str(path), frame)
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "weights" / "yolo11n-coco.pt")
    parser.add_argument("--sets", default="hhw-valid,hhw-train,hhw-test,css")
    parser.add_argument("--css-groups", type=Path, default=None, help="e.g. data/css")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, help="a pseudo-labelled version")
    parser.add_argument("--render-source", type=Path, default=SHARED / "data" / "hardhat-workers")
    args = parser.parse_args()
    if args.render:
        for path in render(args.render, args.render_source):
            print(path)
        return 0
    sets = person_sets(SHARED, args.css_groups)
    results = {}
    for name in args.sets.split(","):
        images, person, classes = sets[name]
        results[name] = score(args.model, images[: args.limit], person, classes)
        r = results[name]
        print(f"\n{name}: {r['images']} images, {r['person_boxes']} person boxes, AP50 {r['ap50']}")
        for row in r["by_conf"]:
            print(f"  conf {row['conf']}: P {row['precision']} R {row['recall']} "
                  f"F1 {row['f1']} boxes/img {row['boxes_per_image']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
