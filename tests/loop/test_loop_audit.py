"""Audit frames in `siteguard retrain`: a real service's sample zip holds the labelled audit
frames (not those still to label); the fixed hold-back applies to them by audit id, the held-back
ones become the `audit` evaluation set, the others are trained on; candidate and base are scored
on it (`metrics.audit`, `metrics.baseline.audit`) for the promotion gate."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from loop_testlib import CAMERA, LoopService, start_service

from training import retrain as rt
from training.registry import RegistryClient


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopService]:
    service = start_service(tmp_path_factory.mktemp("loop-audit"))
    yield service
    service.stop()


def _post_audit(svc: LoopService, n: int) -> str:
    image = np.full((240, 320, 3), 60 + n % 150, np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    audit = {
        "audit_id": str(uuid.uuid4()),
        "camera_id": CAMERA,
        "captured_at": dt.datetime.now(dt.UTC).isoformat(),
        "model_version": "base-1",
        "frame_width": 320,
        "frame_height": 240,
        "detections": [{"class": "helmet", "confidence": 0.9, "xyxy": [10, 10, 40, 40]}],
    }
    files = {"audit": (None, json.dumps(audit)), "frame": ("f.jpg", jpeg.tobytes(), "image/jpeg")}
    r = httpx.post(
        f"{svc.url}/api/v1/audit-frames", files=files, headers={"X-API-Key": svc.detector_key}
    )
    assert r.status_code == 201, r.text
    return audit["audit_id"]


def test_labelled_audit_frames_are_held_back_by_id_or_trained_on(
    svc: LoopService, tmp_path: Path
) -> None:
    ids = [_post_audit(svc, n) for n in range(24)]
    labelled, waiting = ids[:20], ids[20:]
    with svc.client("trainer") as trainer:
        items = trainer.get("/api/v1/samples", params={"kind": "audit"}).json()["items"]
        sample_of = {i["event_id"]: i["id"] for i in items}
        for n, audit_id in enumerate(labelled):
            boxes = [] if n % 4 == 0 else [{"class": "head", "xyxy": [100, 50, 140, 100]}]
            r = trainer.put(f"/api/v1/samples/{sample_of[audit_id]}/labels", json={"boxes": boxes})
            assert r.status_code == 200, r.text
    with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
        page = registry.samples(kind="audit", status="to_label")
        assert {i["event_id"] for i in page["items"]} == set(waiting)
        archive = registry.export_samples(tmp_path / "samples.zip")
    holdout = 0.4
    split = rt.split_samples(archive, tmp_path / "out", holdout)
    held = {a for a in labelled if rt.is_held_back(a, holdout)}
    assert 0 < len(held) < len(labelled)
    assert (split.audit_held_back, split.held_back) == (len(held), 0)
    assert split.trained == len(labelled) - len(held)  # to-label frames are not in the zip
    assert split.audit is not None and split.field is None
    audit_images = sorted((split.audit / "test" / "images").iterdir())
    assert len(audit_images) == len(held)
    trained = list((split.train / "train" / "images").iterdir())
    assert len(trained) == split.trained
    # The same frames land on the same side in every retrain.
    again = rt.split_samples(archive, tmp_path / "again", holdout)
    assert (again.audit_held_back, again.trained) == (split.audit_held_back, split.trained)


def test_candidate_and_base_are_scored_on_the_held_back_audit_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[tuple[str, str]] = []

    def fake_evaluate(model: Path, data: Path, split: str, *args: Any, **kwargs: Any) -> dict:
        scored.append((model.name, data.parent.name))
        return {"images": 3, "worker_accuracy": 0.5, "violation_recall": 0.25, "data": str(data)}

    monkeypatch.setattr(rt, "_evaluate", fake_evaluate)
    audit = tmp_path / "samples-audit"
    field = tmp_path / "samples-field"
    split = rt.SampleSplit(None, field, 0, 2, audit, 3)
    options = rt.RetrainOptions(url="http://x", token="t", base_model="base-1")
    from training.export import compact_metrics

    cand, base = tmp_path / "cand.onnx", tmp_path / "base.onnx"
    metrics = rt._metrics(options, split, cand, base, compact_metrics, 0.3)
    assert metrics["audit"]["worker_accuracy"] == 0.5
    assert metrics["baseline"]["audit"]["violation_recall"] == 0.25
    assert ("cand.onnx", "samples-audit") in scored and ("base.onnx", "samples-audit") in scored
    assert ("cand.onnx", "samples-field") in scored
