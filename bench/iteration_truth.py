"""Field figures of an iteration against the dataset's TRUE labels (not the samples' labels).

A sample's labels are the alerting model's own detections, corrected only where a manager judged
the flagged head, so field figures scored against them favour that model. This script takes the
field images of a `bench/iteration.py` run and writes two YOLO datasets with the dataset's own
labels: the held-back samples' images, and every field image the candidate never trained on.
Evaluate both models on them with `siteguard evaluate`:

    .venv/bin/python bench/iteration_truth.py --work var/iteration-v2
    siteguard evaluate --model M.onnx --data var/iteration-v2/field-gt-unseen/data.yaml --split test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.iteration import event_id  # noqa: E402
from training.datasets import DatasetWriter, Sample  # noqa: E402
from training.labels import label_path_for, list_images, read_labels  # noqa: E402
from training.retrain import is_held_back  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = Path(os.environ.get("SITEGUARD_SHARED", "../shared"))
    parser.add_argument("--data", type=Path, default=shared / "data" / "hardhat-workers")
    parser.add_argument("--work", type=Path, default=Path("var/iteration"))
    args = parser.parse_args()
    report = json.loads((args.work / "iteration.json").read_text())
    holdout = report["retrain"]["holdout"]
    [archive] = args.work.glob(f"retrain/{report['v2']}/samples.zip")
    with zipfile.ZipFile(archive) as zf:
        manifest = next(n for n in zf.namelist() if n.endswith(".json"))
        samples = {s["event_id"] for s in json.loads(zf.read(manifest))}
    valid = list_images(args.data / "valid" / "images")
    field = valid[len(valid) // 2 :]  # as bench/iteration.py splits it
    held = [p for p in field if event_id(p) in samples and is_held_back(event_id(p), holdout)]
    trained = {event_id(p) for p in field if event_id(p) in samples} - {event_id(p) for p in held}
    unseen = [p for p in field if event_id(p) not in trained]
    for name, images in (("field-gt-heldback", held), ("field-gt-unseen", unseen)):
        writer = DatasetWriter(args.work / name)
        for image in images:
            writer.add(Sample("test", image, read_labels(label_path_for(image), 3)))
        writer.finish(name)
        print(f"{args.work / name / 'data.yaml'}: {len(images)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
