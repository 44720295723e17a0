"""A class the model lacks, added by labelling it, in one `siteguard retrain` (issue 14.3).

The base is v1.2, the bundled model before v1.3 (head, helmet, person: no vest). Real
Construction Site Safety photos reach a real service as audit frames, and a trainer labels them
through the API the box editor saves with (`PUT /api/v1/samples/{id}/labels`): their own boxes,
`vest` among them.
Then ONE command, `siteguard retrain` (1 epoch at 320 px on a handful of images), grows the
model to head, helmet, person, vest, fine-tunes, exports and registers it. Checked: the ONNX
the detector loads names `vest` with the old classes at their old ids, the grown start kept the
base's class rows, the samples' vest boxes were trained as class 3, and the candidate still
finds the helmets and bare heads of real hardhat images. The command's time is printed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import cv2
import pytest
from loop_testlib import CAMERA, LoopService, small_dataset, start_service

from siteguard.cli import main

pytestmark = [pytest.mark.train, pytest.mark.shared, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
# v1.3 (the bundled model) has vests; v1.2, kept in models/ for the demo's lineage, does not
BASE_PT = REPO / "models" / "siteguard-ppe-v1.2.pt"
# Construction Site Safety ids -> our names (the vest is the class the base model lacks)
CSS_CLASSES = {0: "helmet", 2: "head", 5: "person", 7: "vest"}
SAMPLES = 6


def css_labels(image: Path) -> list[dict]:
    """The image's true boxes in our names, frame pixels (as a trainer draws them)."""
    frame = cv2.imread(str(image))
    h, w = frame.shape[:2]
    label = image.parent.parent / "labels" / f"{image.stem}.txt"
    boxes = []
    for line in label.read_text().splitlines():
        cls, cx, cy, bw, bh = (float(v) for v in line.split())
        if int(cls) in CSS_CLASSES:
            x1, y1 = max(0.0, (cx - bw / 2) * w), max(0.0, (cy - bh / 2) * h)
            x2, y2 = min(float(w), (cx + bw / 2) * w), min(float(h), (cy + bh / 2) * h)
            xyxy = [round(v, 1) for v in (x1, y1, x2, y2)]
            if xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]:
                boxes.append({"class": CSS_CLASSES[int(cls)], "xyxy": xyxy})
    return boxes


def vest_images(css_dir: Path, n: int) -> list[Path]:
    """The first `n` images with at least two vests and a person."""
    picked = []
    for image in sorted((css_dir / "images").glob("*.jpg")):
        classes = [b["class"] for b in css_labels(image)]
        if classes.count("vest") >= 2 and "person" in classes:
            picked.append(image)
        if len(picked) == n:
            return picked
    raise AssertionError(f"only {len(picked)} images with vests")


def label_as_a_trainer(svc: LoopService, image: Path) -> int:
    """The frame arrives as an audit frame; a trainer saves its labels; returns the sample id."""
    import httpx

    frame = cv2.imread(str(image))
    audit = {
        "audit_id": str(uuid.uuid4()),
        "camera_id": CAMERA,
        "captured_at": dt.datetime.now(dt.UTC).isoformat(),
        "model_version": "css-base",
        "frame_width": frame.shape[1],
        "frame_height": frame.shape[0],
        "detections": [],
    }
    files = {"audit": (None, json.dumps(audit)), "frame": ("f.jpg", image.read_bytes())}
    r = httpx.post(
        f"{svc.url}/api/v1/audit-frames", files=files, headers={"X-API-Key": svc.detector_key}
    )
    assert r.status_code == 201, r.text
    with svc.client("trainer") as trainer:
        items = trainer.get("/api/v1/samples", params={"kind": "audit"}).json()["items"]
        (sample,) = [s for s in items if s["event_id"] == audit["audit_id"]]
        boxes = css_labels(image)
        r = trainer.put(f"/api/v1/samples/{sample['id']}/labels", json={"boxes": boxes})
        assert r.status_code == 200, r.text
        assert [b["class"] for b in r.json()["labels"]] == [b["class"] for b in boxes]
    return int(sample["id"])


def test_one_retrain_adds_vest_and_keeps_the_old_classes(
    tmp_path: Path, hardhat_dir: Path, css_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ultralytics")
    import torch

    from detector.inference import OnnxDetector
    from training.export import ExportOptions, export
    from training.grow import class_convs, model_names
    from training.registry import RegistryClient

    assert "vest" not in model_names(BASE_PT)
    bench = small_dataset(hardhat_dir, tmp_path / "bench", {"train": 8, "val": 2, "test": 6})
    base = export(ExportOptions(BASE_PT, tmp_path / "base" / "css-base.onnx", imgsz=320)).onnx
    svc = start_service(tmp_path / "svc", promotion_tolerance=1.0, promotion_field_tolerance=1.0)
    try:
        with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
            registry.register(base, "css-base", weights=BASE_PT)
        images = vest_images(css_dir, SAMPLES)
        for image in images:
            label_as_a_trainer(svc, image)

        work = tmp_path / "retrain"
        args = ["retrain", "--from-service", svc.url, "--token", svc.tokens["trainer"]]
        args += ["--base-model", "css-base", "--base-data", str(bench), "--version", "css-vest"]
        args += ["--epochs", "1", "--imgsz", "320", "--batch", "4", "--workers", "0"]
        args += ["--holdout", "0", "--no-cache", "--workdir", str(work)]
        started = time.monotonic()
        assert main(args) == 0
        took = time.monotonic() - started
        assert "(new: vest)" in capsys.readouterr().out
        print(f"\nnew class by one retrain: {took:.0f} s ({SAMPLES} samples + 8 base images, "
              f"1 epoch at 320 px, export, 2 evaluations, register)")  # fmt: skip

        run = work / "css-vest"
        with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
            record = registry.get("css-vest")
            assert record["status"] == "candidate" and record["weights_url"]
            info = record["metrics"]["retrain"]
            assert info["classes"] == ["head", "helmet", "person", "vest"]
            assert info["classes_added"] == ["vest"]
            registry.download("css-vest", tmp_path / "registered.onnx")
        # The ONNX the detector loads carries the grown class list, old ids unchanged.
        candidate = OnnxDetector(tmp_path / "registered.onnx")
        assert candidate.names == {0: "head", 1: "helmet", 2: "person", 3: "vest"}
        assert model_names(run / "train" / "weights" / "best.pt")[3] == "vest"
        # The fine-tune started from the grown .pt: the base's class rows, a new vest row.
        from ultralytics import YOLO

        grown, was = YOLO(str(run / "grown.pt")).model, YOLO(str(BASE_PT)).model
        for wide, narrow in zip(class_convs(grown), class_convs(was), strict=True):
            assert wide.out_channels == 4
            assert torch.equal(wide.weight[:3], narrow.weight)
            assert torch.equal(wide.bias[:3], narrow.bias)
        # The samples' vests were trained as class 3, beside the base data's classes 0-2.
        data = json.loads((run / "dataset" / "manifest.json").read_text())
        assert data["classes"] == ["head", "helmet", "person", "vest"]
        assert data["splits"]["train"]["boxes"]["vest"] >= 2 * SAMPLES
        assert data["splits"]["train"]["boxes"]["helmet"] > 0
        # The old classes still work: on the benchmark (6 hardhat test images, ground truth)
        # the candidate's helmet and bare-head AP50 stay near the base's.
        bench_ap = {
            who: {c: figures["benchmark"]["per_class"][c]["ap50"] for c in ("head", "helmet")}
            for who, figures in (
                ("base", record["metrics"]["baseline"]),
                ("new", record["metrics"]),
            )
        }
        print(f"benchmark AP50, base -> candidate: {bench_ap}")
        for name in ("head", "helmet"):
            assert bench_ap["base"][name] > 0.3, bench_ap
            assert bench_ap["new"][name] >= 0.7 * bench_ap["base"][name], bench_ap
    finally:
        svc.stop()
