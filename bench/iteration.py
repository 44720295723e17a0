"""One real iteration of the loop on the shared data: v1 -> field reviews -> v2, v1 vs v2 measured.

What is real: the service (`siteguard serve`, its own SQLite), v1's detections (the production
`OnnxDetector` on every field image), the ingest, review, sample-export and registry APIs,
`siteguard retrain` (fine-tune, export, evaluation through the production detector) and the
service's promotion gate. What is SIMULATED, and reported as such:

- the detector loop: each field image where v1 sees a bare head becomes one alert for its most
  confident head, posted with the raw frame through the real ingest API;
- the managers: each alert is reviewed from the image's ground-truth labels
  (`training.review_sim`): the flagged head is a real bare head -> confirmed; it is a helmet ->
  false alarm read as `helmet`; else -> false alarm, `background`;
- optionally the trainers (`--trainer-corrects S`): a share S of the samples gets its labels
  replaced by the ground truth through `PUT /samples/{id}/labels` (default 0: managers only).

Data (hardhat-workers, no image used twice): the base dataset version for the retrain is
train = train, val = the first half of valid, test = test (the benchmark). The field images are
the second half of valid: v1 never trained on them. The held-back share of the samples (by event
id hash; event ids are derived from the image names, so reruns hold back the same images) gives
the field figures; the rest is trained on.

    .venv/bin/python bench/iteration.py --v1 models/siteguard-ppe.onnx \\
        --v1-weights models/siteguard-ppe.pt [--data ../shared/data/hardhat-workers] \\
        [--epochs 3 --imgsz 416 --fraction 0.25] [--work var/iteration] [--promote]

Writes WORK/iteration.json (every figure) and prints the markdown rows for docs/iteration.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402

from detector.evidence import boxes_payload  # noqa: E402
from detector.inference import OnnxDetector  # noqa: E402
from training.datasets import DatasetWriter, Sample  # noqa: E402
from training.labels import label_path_for, list_images, read_labels  # noqa: E402
from training.review_sim import GroundTruthReviewer  # noqa: E402

SITE, CAMERA = "iteration", "field-1"
PASSWORD = "iteration-bench-7"  # the users only log in through their tokens
SIGUARD = [sys.executable, "-m", "siteguard"]
FIGURES = ("worker_accuracy", "map50", "map50_95", "violation_precision", "violation_recall")


def _admin(data_dir: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [*SIGUARD, "admin", "--data-dir", str(data_dir), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return json.loads(last) if last.startswith("{") else {}


def start_service(work: Path, port: int) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """`siteguard serve` on 127.0.0.1 with a site, a camera, users and their tokens."""
    data_dir = work / "service"
    _admin(data_dir, "upgrade-db")
    _admin(data_dir, "create-site", SITE)
    _admin(data_dir, "create-camera", CAMERA, "--site", SITE)
    tokens: dict[str, str] = {}
    for role in ("manager", "trainer", "admin"):
        _admin(
            data_dir, "create-user", role, "--role", role, "--sites", SITE, "--password", PASSWORD
        )
        tokens[role] = _admin(data_dir, "create-api-key", "--user", role, f"{role}-token")["key"]
    tokens["detector"] = _admin(data_dir, "create-api-key", "--site", SITE, "edge")["key"]
    log = (work / "service.log").open("w")
    proc = subprocess.Popen(
        [*SIGUARD, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service did not start; see {work / 'service.log'}")
        time.sleep(0.5)
    return proc, url, tokens


def base_dataset(data: Path, out: Path) -> tuple[Path, list[Path]]:
    """The retrain's base version (train, half of valid as val, test) and the field images."""
    valid = list_images(data / "valid" / "images")
    half = len(valid) // 2
    writer = DatasetWriter(out)
    for split, images in (
        ("train", list_images(data / "train" / "images")),
        ("val", valid[:half]),
        ("test", list_images(data / "test" / "images")),
    ):
        for image in images:
            writer.add(Sample(split, image, read_labels(label_path_for(image), 3)))
    writer.finish("hardhat-base")
    return out / "data.yaml", valid[half:]


def event_id(image: Path) -> str:
    """The same image always makes the same event (so reruns hold back the same samples)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"siteguard-iteration/{image.name}"))


def post_and_review(
    url: str,
    tokens: dict[str, str],
    v1: Path,
    field: list[Path],
    corrects: float,
    review_iou: float = 0.5,
) -> dict[str, int]:
    """v1 on every field image -> alerts (real ingest) -> simulated reviews -> samples.

    `corrects` is the share of THESE images' samples whose labels trainers replace with the
    ground truth; `review_iou` how much a flagged box must overlap a labelled head to count."""
    detector = OnnxDetector(v1)
    reviewer = GroundTruthReviewer(field, iou_threshold=review_iou)
    counts = {"images": len(field), "alerts": 0, "confirmed": 0, "helmet": 0, "background": 0}
    counts["corrected"] = 0
    det_http = httpx.Client(base_url=url, headers={"X-API-Key": tokens["detector"]}, timeout=60)
    manager = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {tokens['manager']}"}, timeout=60
    )
    for image in field:
        frame = cv2.imread(str(image))
        [found] = detector.predict([frame])
        names = list(found.data["class_name"])
        heads = [i for i, n in enumerate(names) if n == "head"]
        if not heads:
            continue
        flagged = max(heads, key=lambda i: float(found.confidence[i]))
        found.tracker_id = np.array([1 if i == flagged else 100 + i for i in range(len(names))])
        height, width = frame.shape[:2]
        event = {
            "event_id": event_id(image),
            "camera_id": CAMERA,
            "kind": "no_helmet",
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
            "confidence": round(float(found.confidence[flagged]), 4),
            "track_id": 1,
            "model_version": detector.version,
            "frame_width": width,
            "frame_height": height,
            "boxes": boxes_payload(found),
        }
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        r = det_http.post(
            "/api/v1/violations",
            files={"event": (None, json.dumps(event)), "frame": ("f.jpg", jpeg, "image/jpeg")},
        )
        r.raise_for_status()
        counts["alerts"] += 1
        decision = reviewer.decide(frame, event)
        body: dict[str, Any] = {"outcome": decision.outcome, "comment": "simulated from labels"}
        if decision.false_alarm_as:
            body["false_alarm_as"] = decision.false_alarm_as
        manager.post(f"/api/v1/violations/{event['event_id']}/review", json=body).raise_for_status()
        counts[decision.false_alarm_as or "confirmed"] += 1
    if corrects > 0:
        trainer = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tokens['trainer']}"}, timeout=60
        )
        by_name = {event_id(p): p for p in field}
        items = trainer.get("/api/v1/samples", params={"limit": 5000}).json()["items"]
        items = [item for item in items if item["event_id"] in by_name]  # this round's only
        for item in items[: round(corrects * len(items))]:
            truth = reviewer.labels(by_name[item["event_id"]])
            r = trainer.put(f"/api/v1/samples/{item['id']}/labels", json={"boxes": truth})
            r.raise_for_status()
            counts["corrected"] += 1
    return counts


def _row(name: str, block: dict[str, Any]) -> str:
    cells = " | ".join(f"{block.get(k, float('nan')):.3f}" for k in FIGURES)
    return f"| {name} | {block.get('images', '-')} | {cells} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--v1", type=Path, default=Path("models/siteguard-ppe.onnx"))
    parser.add_argument("--v1-weights", type=Path, default=Path("models/siteguard-ppe.pt"))
    shared = Path(os.environ.get("SITEGUARD_SHARED", "../shared"))
    parser.add_argument("--data", type=Path, default=shared / "data" / "hardhat-workers")
    parser.add_argument("--work", type=Path, default=Path("var/iteration"))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hours", type=float, default=None, help="time budget for the retrain")
    parser.add_argument("--imgsz", type=int, default=416, help="training image size")
    parser.add_argument("--close-mosaic", type=int, default=None)
    parser.add_argument("--export-imgsz", type=int, default=None, help="default: v1's input size")
    parser.add_argument("--conf", type=float, default=None, help="default: v1's threshold")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--field-images", type=int, default=None, help="use the first N only")
    parser.add_argument("--trainer-corrects", type=float, default=0.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-limit", type=int, default=None, help="smoke runs: N test images")
    parser.add_argument("--promote", action="store_true", help="promote v2 if the gate passes")
    args = parser.parse_args()
    for path in (args.v1, args.v1_weights, args.data / "data.yaml"):
        if not path.is_file():
            raise SystemExit(f"not found: {path}")
    work = args.work.absolute()
    if work.exists():
        raise SystemExit(f"{work} exists; remove it or pass another --work")
    work.mkdir(parents=True)
    started = time.monotonic()
    base_yaml, field = base_dataset(args.data, work / "base")
    field = field[: args.field_images] if args.field_images else field
    proc, url, tokens = start_service(work, args.port)
    try:
        from training.registry import RegistryClient, register_model_file
        from training.retrain import RetrainOptions, retrain

        with RegistryClient(url, tokens["trainer"]) as registry:
            v1 = register_model_file(registry, args.v1, weights=args.v1_weights)["version"]
            registry.promote(v1)
        counts = post_and_review(url, tokens, args.v1, field, args.trainer_corrects)
        print(f"reviews (simulated from ground truth): {counts}", flush=True)
        result = retrain(
            RetrainOptions(
                url=url,
                token=tokens["trainer"],
                base_model=v1,
                base_data=base_yaml,
                epochs=args.epochs,
                hours=args.hours,
                close_mosaic=args.close_mosaic,
                imgsz=args.imgsz,
                export_imgsz=args.export_imgsz,
                conf=args.conf,
                batch=args.batch,
                fraction=args.fraction,
                holdout=args.holdout,
                workdir=work / "retrain",
                device=args.device,
                eval_limit=args.eval_limit,
                notes="bench/iteration.py: reviews simulated from ground-truth labels",
            )
        )
        with RegistryClient(url, tokens["admin"]) as registry:
            gate = registry.gate(result.version)
            promoted = bool(args.promote and gate["ok"] and registry.promote(result.version))
    finally:
        proc.terminate()
        proc.wait(30)
    m = result.metrics
    report = {
        "v1": v1,
        "v2": result.version,
        "dataset_version": result.dataset_version,
        "reviews": counts,
        "retrain": m["retrain"],
        "v1_benchmark": m["baseline"].get("benchmark"),
        "v2_benchmark": m.get("benchmark"),
        "v1_field": m["baseline"].get("field"),
        "v2_field": m.get("field"),
        "gate": gate,
        "promoted": promoted,
        "seconds": round(time.monotonic() - started),
    }
    (work / "iteration.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n| model | images | {' | '.join(FIGURES)} |")
    print("|---|---|" + "---|" * len(FIGURES))
    for name, key in (("v1 test", "v1_benchmark"), ("v2 test", "v2_benchmark")):
        print(_row(f"{report[name[:2]]} ({name[3:]})", report[key] or {}))
    for name, key in (("v1 field", "v1_field"), ("v2 field", "v2_field")):
        if report[key]:
            print(_row(f"{report[name[:2]]} (held-back field)", report[key]))
    print(f"\ngate: {'passes' if gate['ok'] else 'refuses'}; promoted: {promoted}")
    print(f"all figures: {work / 'iteration.json'} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
