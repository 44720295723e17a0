"""The loop's service side against a real service (uvicorn on 127.0.0.1, SQLite file): the
registry keeps the .pt, the promotion gate refuses / an admin forces (audited), reviewers' and
trainers' labels reach the exported samples (YOLO and COCO), shadow reports."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from loop_testlib import CAMERA, LoopService, start_service

from siteguard.cli import main
from training.registry import RegistryClient, RegistryError


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopService]:
    service = start_service(tmp_path_factory.mktemp("loop-svc"), promotion_tolerance=0.02)
    yield service
    service.stop()


def _weights(path: Path) -> Path:
    """A zip archive, as a torch checkpoint is (the service checks the container, not torch)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    return path


def _bench(map50: float, acc: float, images: int = 10) -> dict:
    return {
        "map50": map50,
        "worker_accuracy": acc,
        "data": "bench",
        "split": "test",
        "images": images,
    }


def test_weights_are_kept_beside_the_onnx(
    svc: LoopService, bundled_model: Path, tmp_path: Path
) -> None:
    pt = _weights(tmp_path / "w.pt")
    with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
        record = registry.register(bundled_model, "w-1", weights=pt)
        assert record["weights_url"] == "/api/v1/models/w-1/weights"
        back = registry.download("w-1", tmp_path / "back.pt", what="weights")
        assert back.read_bytes() == pt.read_bytes()
        assert registry.register(bundled_model, "w-2")["weights_url"] is None
        with pytest.raises(RegistryError) as exc:
            registry.download("w-2", tmp_path / "none.pt", what="weights")
        assert exc.value.status == 404
        junk = tmp_path / "junk.pt"
        junk.write_bytes(b"not a checkpoint")
        with pytest.raises(RegistryError) as exc:
            registry.register(bundled_model, "w-3", weights=junk)
        assert exc.value.status == 415
        assert "w-3" not in {m["version"] for m in registry.models()}  # nothing half-stored
    with svc.client("viewer") as viewer:
        assert viewer.get("/api/v1/models/w-1/weights").status_code == 403


def test_gate_refuses_a_regression_and_an_admin_may_force_it(
    svc: LoopService, bundled_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
        registry.register(bundled_model, "g-1", metrics={"benchmark": _bench(0.80, 0.80)})
        registry.promote("g-1")
        # 3 points worse on mAP50 than the active model: beyond the 2-point tolerance.
        registry.register(bundled_model, "g-2", metrics={"benchmark": _bench(0.77, 0.81)})
        verdict = registry.gate("g-2")
        assert not verdict["ok"]
        failed = [c["name"] for c in verdict["checks"] if not c["ok"]]
        assert failed == ["benchmark.map50"]
        with pytest.raises(RegistryError, match="benchmark.map50: regressed") as exc:
            registry.promote("g-2")
        assert exc.value.status == 409
        assert registry.get("g-1")["status"] == "active"
        with pytest.raises(RegistryError) as exc:
            registry.promote("g-2", force=True)
        assert exc.value.status == 403  # only admins force
    args = ["registry", "--url", svc.url, "--token", svc.tokens["admin"]]
    assert main([*args, "promote", "g-2"]) == 2
    assert "promotion gate refused 'g-2'" in capsys.readouterr().err
    assert main([*args, "promote", "g-2", "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "active"

    with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
        # Measured beside the active g-2 on the same data: benchmark holds, field improves.
        baseline = {"version": "g-2", "benchmark": _bench(0.77, 0.81), "field": _bench(0.5, 0.6, 5)}
        good = {"benchmark": _bench(0.76, 0.82), "field": _bench(0.6, 0.7, 5), "baseline": baseline}
        registry.register(bundled_model, "g-3", metrics=good)
        bad = {**good, "field": _bench(0.5, 0.55, 5)}  # field accuracy drops
        registry.register(bundled_model, "g-4", metrics=bad)
        verdict = registry.gate("g-4")
        assert [c["name"] for c in verdict["checks"] if not c["ok"]] == ["field.worker_accuracy"]
        assert verdict["reference"] == "g-2 measured beside the candidate"
        assert registry.promote("g-3")["status"] == "active"
        restored = registry.rollback("g-3")
        assert restored["version"] == "g-2"
    with svc.app.state.siteguard.db.session() as db:
        from service.models import AuditEntry

        rows = db.query(AuditEntry).filter(AuditEntry.action.like("model.%")).all()
        promotions = {r.target: r.detail["gate"] for r in rows if r.action == "model.promote"}
        assert promotions == {"g-1": "passed", "g-2": "forced", "g-3": "passed"}
        assert any(r.action == "model.rollback" and r.target == "g-3" for r in rows)


def _frame_jpeg(width: int = 640, height: int = 480) -> bytes:
    image = np.full((height, width, 3), 90, np.uint8)
    cv2.rectangle(image, (100, 100), (160, 170), (40, 40, 200), -1)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def _post_violation(svc: LoopService) -> str:
    import httpx

    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "camera_id": CAMERA,
        "kind": "no_helmet",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "confidence": 0.7,
        "track_id": 17,
        "model_version": "g-2",
        "frame_width": 640,
        "frame_height": 480,
        "boxes": [
            {"class": "head", "confidence": 0.7, "xyxy": [100, 100, 160, 170], "track_id": 17},
            {"class": "helmet", "confidence": 0.9, "xyxy": [300, 100, 360, 170], "track_id": 3},
            {"class": "person", "confidence": 0.9, "xyxy": [280, 90, 380, 470], "track_id": 4},
        ],
    }
    files = {"event": (None, json.dumps(event)), "frame": ("f.jpg", _frame_jpeg(), "image/jpeg")}
    r = httpx.post(
        f"{svc.url}/api/v1/violations", files=files, headers={"X-API-Key": svc.detector_key}
    )
    assert r.status_code == 201, r.text
    return event_id


def _classes(sample: dict) -> list[str]:
    return sorted(b["class"] for b in sample["labels"])


def test_reviews_and_corrections_become_training_labels(svc: LoopService) -> None:
    confirmed, as_helmet, as_background = (_post_violation(svc) for _ in range(3))
    with svc.client("manager") as manager:
        reviews = {
            confirmed: {"outcome": "confirmed"},
            as_helmet: {"outcome": "false_alarm", "false_alarm_as": "helmet"},
            as_background: {"outcome": "false_alarm"},
        }
        for event_id, body in reviews.items():
            r = manager.post(f"/api/v1/violations/{event_id}/review", json=body)
            assert r.status_code == 200, r.text
        bad = {"outcome": "confirmed", "false_alarm_as": "hat"}
        assert manager.post(f"/api/v1/violations/{confirmed}/review", json=bad).status_code == 422
        # The unblurred frame of a sample is for trainers only.
        assert manager.get("/api/v1/samples").status_code == 403
    with svc.client("trainer") as trainer:
        samples = {s["event_id"]: s for s in trainer.get("/api/v1/samples").json()["items"]}
        assert _classes(samples[confirmed]) == ["head", "helmet", "person"]
        assert _classes(samples[as_helmet]) == ["helmet", "helmet", "person"]
        assert _classes(samples[as_background]) == ["helmet", "person"]
        assert samples[as_helmet]["false_alarm_as"] == "helmet"
        assert trainer.get(samples[confirmed]["image_url"]).content[:2] == b"\xff\xd8"

        # A trainer fixes the confirmed sample: the head was a helmet, and a missed bare head.
        sid = samples[confirmed]["id"]
        fixed = [
            {"class": "helmet", "xyxy": [100, 100, 160, 170]},
            {"class": "head", "xyxy": [500, 80, 550, 140]},
        ]
        r = trainer.put(f"/api/v1/samples/{sid}/labels", json={"boxes": fixed})
        assert r.status_code == 200, r.text
        assert _classes(r.json()) == ["head", "helmet"] and r.json()["corrected_at"]
        outside = [{"class": "head", "xyxy": [600, 400, 700, 500]}]
        assert (
            trainer.put(f"/api/v1/samples/{sid}/labels", json={"boxes": outside}).status_code == 422
        )
        assert trainer.put("/api/v1/samples/999999/labels", json={"boxes": []}).status_code == 404
    with svc.client("manager") as manager:  # a later review keeps the trainer's labels
        again = manager.post(
            f"/api/v1/violations/{confirmed}/review", json={"outcome": "confirmed"}
        )
        assert again.status_code == 200
        assert (
            manager.put(f"/api/v1/samples/{sid}/labels", json={"boxes": fixed}).status_code == 403
        )
    with svc.client("trainer") as trainer:
        samples = {s["event_id"]: s for s in trainer.get("/api/v1/samples").json()["items"]}
        assert _classes(samples[confirmed]) == ["head", "helmet"]

        yolo = zipfile.ZipFile(io.BytesIO(trainer.get("/api/v1/samples/export").content))
        names = {v: int(k) for k, v in _yaml(yolo.read("data.yaml"))["names"].items()}
        stem = f"{sid:08d}"
        rows = [line.split() for line in yolo.read(f"labels/{stem}.txt").decode().splitlines()]
        assert sorted(int(r[0]) for r in rows) == sorted([names["helmet"], names["head"]])
        coco_zip = trainer.get("/api/v1/samples/export", params={"format": "coco"})
        coco = json.loads(zipfile.ZipFile(io.BytesIO(coco_zip.content)).read("annotations.json"))
        image_id = next(i["id"] for i in coco["images"] if i["file_name"] == f"{stem}.jpg")
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        boxes = {
            cats[a["category_id"]]: a["bbox"]
            for a in coco["annotations"]
            if a["image_id"] == image_id
        }
        assert boxes == {"helmet": [100.0, 100.0, 60.0, 70.0], "head": [500.0, 80.0, 50.0, 60.0]}


def _yaml(data: bytes) -> dict:
    import yaml

    return yaml.safe_load(data)


def test_shadow_reports_are_stored_and_counted(svc: LoopService, bundled_model: Path) -> None:
    import httpx

    with RegistryClient(svc.url, svc.tokens["trainer"]) as registry:
        registry.register(bundled_model, "s-cand")
    report = {
        "detector_id": "edge-s",
        "candidate_version": "s-cand",
        "active_version": "g-2",
        "disagreements": [
            {
                "camera_id": CAMERA,
                "at": dt.datetime.now(dt.UTC).isoformat(),
                "kind": "missed_violation",
                "active_boxes": [{"class": "head", "confidence": 0.6, "xyxy": [1, 2, 30, 40]}],
                "candidate_boxes": [],
            }
        ],
    }
    headers = {"X-API-Key": svc.detector_key}
    r = httpx.post(f"{svc.url}/api/v1/shadow", json=report, headers=headers)
    assert r.status_code == 201 and r.json() == {"stored": 1}
    unknown = {**report, "disagreements": [{**report["disagreements"][0], "camera_id": "nope"}]}
    assert httpx.post(f"{svc.url}/api/v1/shadow", json=unknown, headers=headers).status_code == 404
    assert httpx.post(f"{svc.url}/api/v1/shadow", json=report).status_code == 401
    with svc.client("trainer") as trainer:
        rows = trainer.get("/api/v1/shadow", params={"candidate_version": "s-cand"}).json()
        assert [(r["kind"], r["active_boxes"][0]["class"]) for r in rows] == [
            ("missed_violation", "head")
        ]
        assert trainer.get("/api/v1/models/s-cand").json()["shadow_disagreements"] == 1
        page = trainer.get("/models")  # the model page shows the count beside the figures
        assert page.status_code == 200
        # The version has a row in each table (benchmark, on site); the count is on site.
        rows = [p.split("</tr>", 1)[0] for p in page.text.split('<tr data-version="s-cand">')[1:]]
        assert len(rows) == 2
        assert sum('<td class="num" data-field="shadow">1</td>' in row for row in rows) == 1


def test_raw_frames_and_their_samples_expire_sooner(svc: LoopService) -> None:
    from service.retention import run_retention

    old_id, fresh_id = _post_violation(svc), _post_violation(svc)
    with svc.client("manager") as manager:
        for event_id in (old_id, fresh_id):
            r = manager.post(f"/api/v1/violations/{event_id}/review", json={"outcome": "confirmed"})
            assert r.status_code == 200
    state = svc.app.state.siteguard
    days = state.settings.frame_retention_days
    assert days < state.settings.retention_days  # the unblurred frame goes first
    with state.db.session() as db, state.db.writing(db):
        from service.models import Violation

        v = db.query(Violation).filter_by(event_id=old_id).one()
        v.started_at = v.started_at - dt.timedelta(days=days + 1)
    result = run_retention(state)
    assert result.samples_deleted == 1
    with svc.client("trainer") as trainer:
        ids = {s["event_id"] for s in trainer.get("/api/v1/samples").json()["items"]}
        assert fresh_id in ids and old_id not in ids
        old = trainer.get(f"/api/v1/violations/{old_id}").json()
        assert old["frame_url"] is None and old["status"] == "confirmed"  # the review stays
        assert trainer.get(f"/api/v1/violations/{fresh_id}/frame").status_code == 200
