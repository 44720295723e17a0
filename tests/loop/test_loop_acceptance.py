"""The whole review -> retrain -> promote loop, for real and small (issue 7's acceptance test).

A real service (uvicorn, SQLite file) and the real detector on real hardhat-workers test images
run v1 (the bundled model's .pt exported at 320 px: an early-epoch, weak model); its alerts are
reviewed through the API by managers simulated from the ground-truth labels (confirmations and
false alarms); a trainer corrects one sample; `siteguard retrain` fine-tunes 1 epoch at 320 px on
a handful of images; the new version appears with its figures and .pt; `siteguard registry
promote` promotes it; the running detector hot-reloads it and its new violations carry it.

The service runs with a wide promotion tolerance here: 1 epoch on a dozen images is not meant to
beat v1, and the gate's refusals are tested on their own in test_loop_service.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from loop_testlib import CAMERA, bare_head_images, small_dataset, start_service, wait_until

from siteguard.cli import main

pytestmark = [pytest.mark.train, pytest.mark.shared, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_weights() -> Path:
    """The .pt of the bundled model (models/siteguard-ppe.pt, or $SITEGUARD_LOOP_BASE_WEIGHTS)."""
    pytest.importorskip("ultralytics")
    path = Path(os.environ.get("SITEGUARD_LOOP_BASE_WEIGHTS", REPO / "models/siteguard-ppe.pt"))
    if not path.is_file():
        pytest.skip(f"no .pt for the bundled model at {path} (set SITEGUARD_LOOP_BASE_WEIGHTS)")
    return path


def _violations(client, version: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/violations", params={"model_version": version, "limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _detector_config(tmp: Path, url: str, key: str, model: Path, camera_dir: Path):  # type: ignore[no-untyped-def]
    from detector.config import load_config

    return load_config(
        None,
        detector_id="edge-loop",
        # A low threshold makes the weak v1 weaker still: false alarms to review, not only hits.
        model={
            "path": str(model),
            "conf": 0.1,
            "download_dir": str(tmp / "downloads"),
            "threads": 1,
        },
        service={"url": url, "api_key": key, "heartbeat_interval_s": 0.5, "retry_max_s": 2.0},
        outbox={"path": str(tmp / "outbox.sqlite3")},
        motion={"enabled": False},
        rules={"hold_s": 0.5, "close_after_s": 1.0, "cooldown_s": 1.0},
        metrics={"port": 0},
        cameras=[
            {"id": CAMERA, "source": str(camera_dir), "fps": 2, "image_hold_s": 3.0, "loop": True}
        ],
    )


def _reported_version(client) -> str | None:  # type: ignore[no-untyped-def]
    """The model version the detector's last heartbeat reported (GET /api/v1/detectors)."""
    rows = {d["id"]: d for d in client.get("/api/v1/detectors").json()}
    return rows["edge-loop"]["model_version"] if "edge-loop" in rows else None


def test_review_retrain_promote_reload(
    tmp_path: Path, hardhat_dir: Path, base_weights: Path
) -> None:
    from detector.runner import Runner
    from training.evaluate import EvalOptions, evaluate
    from training.export import ExportOptions, compact_metrics, export
    from training.registry import RegistryClient
    from training.retrain import is_held_back
    from training.review_sim import GroundTruthReviewer

    started = time.monotonic()
    bench = small_dataset(hardhat_dir, tmp_path / "bench", {"train": 12, "val": 4, "test": 8})
    v1 = export(
        ExportOptions(
            weights=base_weights,
            out=tmp_path / "v1" / "loop-v1.onnx",
            imgsz=320,
            model_version="loop-v1",
        )
    ).onnx
    v1_figures = evaluate(EvalOptions(model=v1, data=bench, split="test"))
    phases = {"v1 export+eval": time.monotonic() - started}
    svc = start_service(tmp_path / "svc", promotion_tolerance=1.0, promotion_field_tolerance=1.0)
    camera_dir = tmp_path / "camera"
    camera_dir.mkdir()
    camera_images = bare_head_images(hardhat_dir, "test", 4, min_heads=1, min_helmets=3)
    for image in camera_images:
        (camera_dir / image.name).symlink_to(image)
    runner = None
    thread = None
    try:
        with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
            registry.register(
                v1,
                "loop-v1",
                metrics={"benchmark": compact_metrics(v1_figures)},
                weights=base_weights,
            )
            assert registry.promote("loop-v1")["status"] == "active"
        # The detector starts on its local copy of v1 and reports it.
        runner = Runner(_detector_config(tmp_path, svc.url, svc.detector_key, v1, camera_dir))
        runner.start()
        thread = threading.Thread(target=runner.run_forever, daemon=True)
        thread.start()
        manager, trainer = svc.client("manager"), svc.client("trainer")
        # Managers review (simulated from the ground truth, each decision from the real frame).
        # Which alerts a weak model raises first varies from run to run, so decisions are taken
        # as alerts arrive until both kinds exist (the loop needs hits and hard negatives).
        reviewer = GroundTruthReviewer(camera_images)
        decided: dict[str, tuple[dict, object]] = {}

        def both_kinds_seen() -> bool:
            for v in _violations(manager, "loop-v1"):
                if v["event_id"] in decided:
                    continue
                # The raw frame is for trainers (unblurred_frame_role); the simulated
                # reviewer decides from it, as a manager from the blurred snapshot.
                frame_jpeg = trainer.get(f"/api/v1/violations/{v['event_id']}/frame")
                assert frame_jpeg.status_code == 200
                frame = cv2.imdecode(np.frombuffer(frame_jpeg.content, np.uint8), cv2.IMREAD_COLOR)
                decided[v["event_id"]] = (v, reviewer.decide(frame, v))
            kinds = {d.outcome for _, d in decided.values()}
            return len(decided) >= 6 and {"confirmed", "false_alarm"} <= kinds

        wait_until(both_kinds_seen, timeout=240)
        phases["v1 alerts"] = time.monotonic() - started
        assert _reported_version(manager) == "loop-v1"

        chosen = [x for x in decided.values() if x[1].outcome == "false_alarm"][:6]
        chosen += [x for x in decided.values() if x[1].outcome != "false_alarm"][: 12 - len(chosen)]
        outcomes = []
        for v, decision in chosen:
            body = {"outcome": decision.outcome, "comment": f"IoU {decision.iou:.2f}"}
            if decision.false_alarm_as:
                body["false_alarm_as"] = decision.false_alarm_as
            r = manager.post(f"/api/v1/violations/{v['event_id']}/review", json=body)
            assert r.status_code == 200, r.text
            outcomes.append(decision.outcome)
        assert set(outcomes) == {"confirmed", "false_alarm"}, outcomes  # both kinds reviewed
        samples = trainer.get("/api/v1/samples").json()["items"]
        assert len(samples) == len(outcomes)  # every reviewed violation became a sample
        assert {s["outcome"] for s in samples} == set(outcomes)

        # A trainer corrects one sample to the ground truth (fixes classes, adds missed heads).
        sample = samples[0]
        image_jpeg = trainer.get(sample["image_url"]).content
        truth = reviewer.labels(
            reviewer.identify(cv2.imdecode(np.frombuffer(image_jpeg, np.uint8), 1))
        )
        r = trainer.put(f"/api/v1/samples/{sample['id']}/labels", json={"boxes": truth})
        assert r.status_code == 200, r.text
        assert r.json()["labels"] == [
            {"class": b["class"], "confidence": 1.0, "xyxy": b["xyxy"]} for b in truth
        ]

        # Retrain: 1 epoch at 320 px on the 12 benchmark-train images + the samples.
        work = tmp_path / "retrain"
        args = ["retrain", "--from-service", svc.url, "--token", svc.tokens["trainer"]]
        args += ["--base-model", "loop-v1", "--base-data", str(bench), "--version", "loop-v2"]
        args += ["--epochs", "1", "--imgsz", "320", "--batch", "4", "--workers", "0"]
        args += ["--holdout", "0.3", "--no-cache", "--workdir", str(work)]
        assert main(args) == 0
        phases["retrain"] = time.monotonic() - started

        with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
            v2 = registry.get("loop-v2")
            assert v2["status"] == "candidate" and v2["weights_url"]
            metrics = v2["metrics"]
            assert metrics["baseline"]["version"] == "loop-v1"
            for key in ("map50", "worker_accuracy", "violation_precision"):
                assert 0.0 <= metrics["benchmark"][key] <= 1.0
                assert 0.0 <= metrics["baseline"]["benchmark"][key] <= 1.0
            assert metrics["benchmark"]["images"] == 8
            info = metrics["retrain"]
            assert info["samples"] == len(samples) and info["epochs"] == 1
            assert v2["dataset_version"] == info["dataset_version"]
            # The held-back samples are exactly those whose event id hashes below the share,
            # and none of them was trained on.
            manifest = json.loads((work / "loop-v2" / "samples-zip" / "manifest.json").read_text())
            held = {e["event_id"] for e in manifest if is_held_back(e["event_id"], 0.3)}
            assert info["held_back_samples"] == len(held)
            if held:
                assert metrics["field"]["images"] == len(held)
                assert metrics["baseline"]["field"]["images"] == len(held)
            names = {
                p.name.removeprefix("v1_")
                for p in (work / "loop-v2" / "dataset" / "train" / "images").iterdir()
            }
            held_images = {Path(e["image"]).name for e in manifest if e["event_id"] in held}
            assert not names & held_images
            gate = registry.gate("loop-v2")
            assert gate["ok"] and gate["reference"].startswith("loop-v1 measured beside")

        assert main(["registry", "--url", svc.url, "--token", svc.tokens["trainer"],
                     "promote", "loop-v2"]) == 0  # fmt: skip
        wait_until(lambda: runner.models.current.version == "loop-v2", timeout=120)
        phases["reload"] = time.monotonic() - started
        new = wait_until(lambda: _violations(manager, "loop-v2"), timeout=180)
        phases["v2 alert"] = time.monotonic() - started
        assert all(v["model_version"] == "loop-v2" for v in new)
        wait_until(lambda: _reported_version(manager) == "loop-v2", timeout=60)
        with svc.app.state.siteguard.db.session() as db:
            from service.models import AuditEntry

            promotions = [
                e.detail
                for e in db.query(AuditEntry).filter_by(action="model.promote", target="loop-v2")
            ]
        assert promotions and promotions[0]["gate"] == "passed"
        marks = ", ".join(f"{k} {v:.0f}" for k, v in phases.items())
        print(f"loop acceptance: {time.monotonic() - started:.0f} s ({marks}), reviews {outcomes}")
    finally:
        if runner is not None:
            runner.request_stop()
        if thread is not None:
            thread.join(30)
        svc.stop()
