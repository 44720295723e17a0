"""The loop on a NEW site, for real: v1.1 meets the second source, reviews -> retrain, N times.

The second source (Construction Site Safety, our group split: `siteguard dataset import ...
--split-by-group`, see docs/iteration.md) plays a site the shipped model has never seen. Its
train groups arrive in N batches (whole groups, in a fixed order), like weeks of footage:

    for each batch:  the live model runs on the batch's frames -> alerts (real ingest)
                     -> managers review them -> trainers correct the samples' boxes
                     -> `siteguard retrain` (base data + every sample so far) -> candidate
                     -> the service's gate -> promoted when it passes (else the live model stays)

Every version is scored on the site's held-back groups (its `test` split, never trained on or
tuned on; coverage matching) and on the Hard Hat Workers test split (the benchmark), through
the production detector. The site figures are stored in the service's own records as the
version's second-source figures (`metrics["cross_source"]`), so the panel's Model accuracy page
draws the same curve (worker accuracy and bare-head recall on the other source).

What is real: the service, the detector's inference (`OnnxDetector`), ingest, review, the
sample export, `retrain` (fine-tune, export, evaluation), the registry and its gate.
What is SIMULATED, and reported as such (`training.review_sim`): the detector loop (one alert
per frame that shows a bare head, for its surest head), the managers (each alert judged from
the labels) and the trainers (a share of the samples gets the labelled boxes, as a trainer
would draw them in the box editor).

    .venv/bin/python bench/site_iteration.py --site data/css/data.yaml \\
        --groups ../shared/data/construction-site-safety/groups.csv --iterations 3 \\
        --epochs 3 --base-train-share 0.1 --repeat-samples 4 --work var/site-iteration

Writes WORK/site_iteration.json and prints the markdown table for docs/iteration.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import httpx  # noqa: E402

from bench.iteration import CAMERA, post_and_review, start_service  # noqa: E402
from training.datasets import DatasetWriter, Sample, in_stable_share  # noqa: E402
from training.group_split import read_groups, split_of_group  # noqa: E402
from training.labels import label_path_for, list_images, read_labels  # noqa: E402

FIGURES = ("worker_accuracy", "violation_recall", "violation_precision", "workers")


def base_dataset(
    hardhat: Path, site: dict[str, Any], out: Path, share: float, val_share: float
) -> Path:
    """The retrain's base: a stable share of Hard Hat Workers train (replay), a share of its
    valid + the site's val groups (best-epoch choice sees both), Hard Hat Workers test."""
    writer = DatasetWriter(out)

    def part(folder: Path, fraction: float) -> list[Path]:
        return [p for p in list_images(folder) if in_stable_share(p, fraction)]

    for split, images in (
        ("train", part(hardhat / "train" / "images", share)),
        ("val", part(hardhat / "valid" / "images", val_share) + list_images(site["val"])),
        ("test", list_images(hardhat / "test" / "images")),
    ):
        for image in images:
            writer.add(Sample(split, image, read_labels(label_path_for(image), 3)))
    writer.finish("hardhat-replay+site-val")
    return out / "data.yaml"


def site_batches(site: dict[str, Any], groups: Path, count: int) -> list[list[Path]]:
    """The site's train images in `count` batches of whole groups (a fixed, seeded order)."""
    group_of = read_groups(groups)
    fractions = {str(i): 1 / count for i in range(count)}
    batches: list[list[Path]] = [[] for _ in range(count)]
    for image in list_images(site["train"]):
        batches[int(split_of_group(group_of[image.stem], fractions, seed=1))].append(image)
    return batches


def audit_id(image: Path) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"siteguard-site-audit/{image.name}"))


def post_audit_frames(
    url: str, tokens: dict[str, str], model: Path, frames: list[Path], share: float
) -> dict[str, int]:
    """A random share of the batch's frames as the detector's audit frames (real route), each
    labelled by a trainer with the labelled boxes (`PUT /samples/{id}/labels`)."""
    from detector.evidence import boxes_payload
    from detector.inference import OnnxDetector, class_thresholds
    from training.review_sim import GroundTruthReviewer

    detector = OnnxDetector(model)
    truth = GroundTruthReviewer(frames)
    thresholds = class_thresholds(detector.names, detector.class_conf, detector.operating_conf)
    edge = httpx.Client(base_url=url, headers={"X-API-Key": tokens["detector"]}, timeout=60)
    trainer = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {tokens['trainer']}"}, timeout=60
    )
    counts = {"audit_frames": 0, "labelled": 0}
    for image in frames:
        if not in_stable_share(Path(audit_id(image)), share):
            continue
        frame = cv2.imread(str(image))
        [found] = detector.predict([frame])
        found = found[found.confidence >= thresholds[found.class_id]]
        height, width = frame.shape[:2]
        audit = {
            "audit_id": audit_id(image),
            "camera_id": CAMERA,
            "captured_at": dt.datetime.now(dt.UTC).isoformat(),
            "model_version": detector.version,
            "frame_width": width,
            "frame_height": height,
            "detections": boxes_payload(found),
            "thresholds": {detector.names[i]: float(t) for i, t in enumerate(thresholds)},
        }
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        r = edge.post(
            "/api/v1/audit-frames",
            files={"audit": (None, json.dumps(audit)), "frame": ("f.jpg", jpeg, "image/jpeg")},
        )
        r.raise_for_status()
        counts["audit_frames"] += 1
        sample_id = r.json().get("sample_id")
        if sample_id is not None:
            boxes = truth.labels(image)
            trainer.put(f"/api/v1/samples/{sample_id}/labels", json={"boxes": boxes})
            counts["labelled"] += 1
    return counts


def score(
    model: Path, data: Path, split: str, matching: str, limit: int | None = None
) -> dict[str, Any]:
    from training.evaluate import EvalOptions, evaluate
    from training.export import compact_metrics

    options = EvalOptions(model, data, split=split, matching=matching, limit=limit)
    return compact_metrics(evaluate(options))


def _row(version: str, site: dict[str, Any], bench: dict[str, Any], note: str) -> str:
    cells = [f"{site[k]:.3f}" if k != "workers" else str(site[k]) for k in FIGURES]
    return (
        f"| {version} | {' | '.join(cells)} | {bench['worker_accuracy']:.3f} | "
        f"{bench['per_class']['head']['ap50']:.3f} | {note} |"
    )


def write_report(
    work: Path, versions: list[dict[str, Any]], batches: list[list[Path]], started: float
) -> dict[str, Any]:
    report = {
        "versions": versions,
        "batches": [len(b) for b in batches],
        "seconds": round(time.monotonic() - started),
        "simulated": "alerts one per frame; reviews and trainer boxes from ground-truth labels",
    }
    (work / "site_iteration.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = Path(os.environ.get("SITEGUARD_SHARED", "../shared"))
    parser.add_argument("--v1", type=Path, default=Path("models/siteguard-ppe.onnx"))
    parser.add_argument("--v1-weights", type=Path, default=Path("models/siteguard-ppe.pt"))
    parser.add_argument("--site", type=Path, required=True, help="the site's grouped data.yaml")
    parser.add_argument(
        "--groups", type=Path, default=shared / "data/construction-site-safety/groups.csv"
    )
    parser.add_argument("--hardhat", type=Path, default=shared / "data" / "hardhat-workers")
    parser.add_argument("--work", type=Path, default=Path("var/site-iteration"))
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hours", type=float, default=None, help="time budget per retrain")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--base-train-share", type=float, default=0.1)
    parser.add_argument("--base-val-share", type=float, default=0.5)
    parser.add_argument("--repeat-samples", type=int, default=4)
    parser.add_argument("--lr0", type=float, default=0.001, help="AdamW, no warm-up, cosine")
    parser.add_argument("--freeze", type=int, default=None, help="10: YOLO11's backbone")
    parser.add_argument("--trainer-corrects", type=float, default=1.0)
    parser.add_argument("--review-iou", type=float, default=0.3)
    parser.add_argument(
        "--audit-share",
        type=float,
        default=0.0,
        help="share of each batch's frames posted as audit frames and labelled by trainers",
    )
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--eval-limit", type=int, default=None, help="smoke runs only")
    args = parser.parse_args()
    from training.data_yaml import load_data_yaml

    site = load_data_yaml(args.site)
    work = args.work.absolute()
    if work.exists():
        raise SystemExit(f"{work} exists; remove it or pass another --work")
    work.mkdir(parents=True)
    started = time.monotonic()
    base_yaml = base_dataset(
        args.hardhat, site, work / "base", args.base_train_share, args.base_val_share
    )
    batches = site_batches(site, args.groups, args.iterations)
    proc, url, tokens = start_service(work, args.port)
    versions: list[dict[str, Any]] = []
    try:
        from training.registry import RegistryClient, register_model_file
        from training.retrain import RetrainOptions, retrain

        with RegistryClient(url, tokens["admin"]) as admin:
            live = register_model_file(admin, args.v1, weights=args.v1_weights)["version"]
            admin.promote(live)
            site_fig = score(args.v1, args.site, "test", "coverage", args.eval_limit)
            bench_fig = score(args.v1, base_yaml, "test", "iou", args.eval_limit)
            admin.update_metrics(live, {"cross_source": site_fig})
        live_onnx = args.v1
        versions.append({"version": live, "site": site_fig, "benchmark": bench_fig, "note": "v1.1"})
        for index, batch in enumerate(batches, start=1):
            counts = post_and_review(
                url, tokens, live_onnx, batch, args.trainer_corrects, args.review_iou
            )
            if args.audit_share > 0:
                counts.update(post_audit_frames(url, tokens, live_onnx, batch, args.audit_share))
            print(f"batch {index}: {len(batch)} frames, reviews (simulated): {counts}", flush=True)
            result = retrain(
                RetrainOptions(
                    url=url,
                    token=tokens["trainer"],
                    base_model=live,
                    base_data=base_yaml,
                    epochs=args.epochs,
                    hours=args.hours,
                    imgsz=args.imgsz,
                    close_mosaic=1,
                    optimizer="AdamW",
                    lr0=args.lr0,
                    warmup_epochs=0,
                    cos_lr=True,
                    freeze=args.freeze,
                    holdout=args.holdout,
                    repeat_samples=args.repeat_samples,
                    also_evaluate={"cross_source": (args.site, "test")},
                    version=f"site-v{index + 1}",
                    workdir=work / "retrain",
                    eval_limit=args.eval_limit,
                    notes=f"bench/site_iteration.py batch {index}: reviews simulated from labels",
                )
            )
            with RegistryClient(url, tokens["admin"]) as admin:
                gate = admin.gate(result.version)
                promoted = bool(gate["ok"] and admin.promote(result.version))
            m = result.metrics
            versions.append(
                {
                    "version": result.version,
                    "site": m["cross_source"],
                    "benchmark": m["benchmark"],
                    "field": m.get("field"),
                    "reviews": counts,
                    "samples": m["retrain"],
                    "gate": gate,
                    "promoted": promoted,
                    "note": f"batch {index}: {counts['alerts']} alerts, "
                    f"{counts.get('audit_frames', 0)} audit frames, "
                    f"{m['retrain']['trained_samples']} samples trained, "
                    f"{'promoted' if promoted else 'gate refused'}",
                }
            )
            if promoted:
                live, live_onnx = result.version, result.onnx
            write_report(work, versions, batches, started)  # a cut-short run keeps its rows
    finally:
        proc.terminate()
        proc.wait(30)
    report = write_report(work, versions, batches, started)
    print(
        "\n| version | site worker acc. | site viol. recall | site viol. precision | "
        "site workers | HHW test worker acc. | HHW head AP50 | step |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for v in versions:
        print(_row(v["version"], v["site"], v["benchmark"], v["note"]))
    print(f"\nall figures: {work / 'site_iteration.json'} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
