"""Model registry: register an ONNX candidate, promote, heartbeat hot-reload hint, download,
roll back; refuse files onnxruntime cannot load."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from service_testkit import BUNDLED, Live


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tiny real ONNX graph (Identity); the bundled model when `onnx` is not installed."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        if not BUNDLED.is_file():
            pytest.skip("neither the onnx package nor the bundled model is available")
        return BUNDLED.read_bytes()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path: Path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path.read_bytes()


def register(client, version: str, data: bytes, **meta):  # type: ignore[no-untyped-def]
    body = {"version": version, "dataset_version": "ds-1", "metrics": {"benchmark": {"map50": 0.9}}}
    body.update(meta)
    files = {
        "meta": (None, json.dumps(body)),
        "file": ("model.onnx", io.BytesIO(data), "application/octet-stream"),
    }
    return client.post("/api/v1/models", files=files)


def beat(live: Live) -> dict:
    with live.detector() as det:
        r = det.post("/api/v1/heartbeats", json={"detector_id": "edge-m", "cameras": []})
    assert r.status_code == 200, r.text
    return r.json()


def test_register_promote_download_rollback(live: Live, onnx_bytes: bytes) -> None:
    sha = hashlib.sha256(onnx_bytes).hexdigest()
    with live.login("trainer") as trainer:
        r1 = register(trainer, "m-2026.11.01", onnx_bytes)
        assert r1.status_code == 201, r1.text
        assert r1.json()["status"] == "candidate" and r1.json()["sha256"] == sha
        assert register(trainer, "m-2026.11.01", onnx_bytes).status_code == 409
        assert register(trainer, "m-2026.11.02", onnx_bytes + b"").status_code == 201
        assert trainer.post("/api/v1/models/m-2026.11.01/promote").status_code == 200
    assert beat(live)["active_model"] == {
        "version": "m-2026.11.01",
        "sha256": sha,
        "url": "/api/v1/models/m-2026.11.01/file",
    }
    with live.detector() as det:
        f = det.get("/api/v1/models/m-2026.11.01/file")
        assert f.status_code == 200 and hashlib.sha256(f.content).hexdigest() == sha
    with live.login("view-a") as viewer:
        assert viewer.get("/api/v1/models/m-2026.11.01/file").status_code == 403
        assert viewer.post("/api/v1/models/m-2026.11.02/promote").status_code == 403
        listed = {m["version"]: m for m in viewer.get("/api/v1/models").json()}
        assert listed["m-2026.11.01"]["metrics"]["benchmark"]["map50"] == 0.9
    with live.login("trainer") as trainer:
        assert trainer.post("/api/v1/models/m-2026.11.02/promote").status_code == 200
        assert beat(live)["active_model"]["version"] == "m-2026.11.02"
        patched = trainer.patch(
            "/api/v1/models/m-2026.11.02", json={"metrics": {"field": {"precision": 0.8}}}
        )
        assert patched.status_code == 200
        assert set(patched.json()["metrics"]) == {"benchmark", "field"}
        assert trainer.post("/api/v1/models/m-2026.11.01/rollback").status_code == 409
        back = trainer.post("/api/v1/models/m-2026.11.02/rollback")
        assert back.status_code == 200 and back.json()["version"] == "m-2026.11.01"
        statuses = {m["version"]: m["status"] for m in trainer.get("/api/v1/models").json()}
        assert statuses == {"m-2026.11.01": "active", "m-2026.11.02": "retired"}
        assert trainer.get("/api/v1/models/m-2026.11.01/file").status_code == 200
    assert beat(live)["active_model"]["version"] == "m-2026.11.01"
    with live.login("admin") as admin:
        assert admin.delete("/api/v1/models/m-2026.11.01").status_code == 409
        assert admin.delete("/api/v1/models/m-2026.11.02").status_code == 204
        assert admin.get("/api/v1/models/m-2026.11.02").status_code == 404
        # Both versions had the same bytes: the shared blob outlives the deleted one.
        assert admin.get("/api/v1/models/m-2026.11.01/file").content == onnx_bytes
        actions = {e["action"] for e in admin.get("/api/v1/audit").json()}
    assert {"model.register", "model.promote", "model.rollback"} <= actions


def test_bad_model_uploads(live: Live, onnx_bytes: bytes) -> None:
    with live.login("trainer") as trainer:
        assert register(trainer, "junk-1", b"this is not onnx").status_code == 415
        assert register(trainer, "junk-2", b"").status_code == 415
        assert register(trainer, "../escape", onnx_bytes).status_code == 422
        assert register(trainer, "bad-metrics", onnx_bytes, metrics=[1]).status_code == 422
        assert trainer.get("/api/v1/models/junk-1").status_code == 404
    with live.login("mgr-a") as mgr:
        assert register(mgr, "by-manager", onnx_bytes).status_code == 403
