"""Audit sampling (detector/audit.py): which frames go, what they carry, and that they reach the
real service through the durable outbox even when it was down (issue 13, deliverable 4)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest
import supervision as sv
from detector_testlib import wait_until

from detector.audit import AuditSampler, at_operating_thresholds, audit_message
from detector.config import ConfigError, PrivacyConfig, load_config
from detector.evidence import encode_jpeg
from detector.outbox import Outbox
from detector.poster import Poster
from detector.runner import Runner

CODE = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"
MODEL = SimpleNamespace(  # what an audit frame needs of an OnnxDetector
    version="m-1",
    names={0: "head", 1: "helmet", 2: "person"},
    operating_conf=0.3,
    class_conf={"head": 0.5, "helmet": 0.2},
)


# --- which frames ---------------------------------------------------------------------------


def test_each_processed_frame_is_drawn_with_the_cameras_share() -> None:
    sampler = AuditSampler({"gate": 0.02, "yard": 0.0}, min_interval_s=0, rng=random.Random(7))
    picked = sum(sampler.pick("gate") for _ in range(50_000))
    assert 0.017 < picked / 50_000 < 0.023
    assert not any(sampler.pick("yard") for _ in range(1000))  # share 0: never
    assert not sampler.pick("not-configured")
    assert sampler.counts["frames"] == 50_000  # only configured cameras' frames are drawn from


def test_the_rate_limit_looks_at_the_clock_only() -> None:
    now = [0.0]
    sampler = AuditSampler({"gate": 1.0}, min_interval_s=60, clock=lambda: now[0])
    picks = []
    for second in range(0, 200, 5):
        now[0] = float(second)
        picks += [second] if sampler.pick("gate") else []
    assert picks == [0, 60, 120, 180]
    assert sampler.counts["rate_limited"] == 40 - 4
    with pytest.raises(ValueError, match="shares"):
        AuditSampler({"gate": 1.5})


def test_config_is_off_by_default_overridable_per_camera_and_checked_at_start_up() -> None:
    cams = [{"id": "a", "source": "x"}, {"id": "b", "source": "y", "audit_share": 0.01}]
    off = load_config(None, cameras=cams[:1])
    assert off.audit.share == 0 and not AuditSampler.from_config(off).enabled
    cfg = load_config(None, audit={"share": 0.002, "min_interval_s": 30}, cameras=cams)
    sampler = AuditSampler.from_config(cfg)
    assert sampler.shares == {"a": 0.002, "b": 0.01} and sampler.min_interval_s == 30
    with pytest.raises(ConfigError, match="needs privacy.send_raw_frame: true"):
        load_config(None, privacy={"send_raw_frame": False}, cameras=cams)  # b samples
    with pytest.raises(ConfigError, match=r"audit\.share: Input should be less than or equal"):
        load_config(None, audit={"share": 2}, cameras=cams[:1])
    with pytest.raises(ConfigError, match=r"cameras\.0\.audit_share"):
        load_config(None, cameras=[{"id": "a", "source": "x", "audit_share": -0.1}])


# --- what they carry ------------------------------------------------------------------------


def _detections(rows: list[tuple[str, float, list[float]]]) -> sv.Detections:
    ids = {name: i for i, name in MODEL.names.items()}
    det = sv.Detections(
        xyxy=np.array([r[2] for r in rows], dtype=np.float32).reshape(-1, 4),
        confidence=np.array([r[1] for r in rows], dtype=np.float32),
        class_id=np.array([ids[r[0]] for r in rows], dtype=int),
    )
    det.data["class_name"] = np.array([r[0] for r in rows], dtype=str)
    return det


def test_the_message_carries_the_raw_frame_a_blurred_snapshot_and_counted_detections() -> None:
    blocks = np.random.default_rng(3).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    image = cv2.resize(blocks, (320, 240), interpolation=cv2.INTER_NEAREST)  # 8 px tiles
    detections = _detections(
        [
            ("head", 0.9, [20, 20, 80, 80]),  # counts (head threshold 0.5)
            ("head", 0.35, [200, 20, 260, 80]),  # below the head threshold: not a detection
            ("helmet", 0.25, [120, 120, 180, 180]),  # counts (helmet threshold 0.2)
            ("person", 0.25, [0, 0, 100, 200]),  # below the single threshold 0.3
        ]
    )
    assert at_operating_thresholds(detections, MODEL).data["class_name"].tolist() == [
        "head",
        "helmet",
    ]
    payload, snapshot, raw = audit_message("gate", image, 1_700_000_000.0, detections, MODEL,
                                           PrivacyConfig(jpeg_quality=95))  # fmt: skip
    assert payload["model_version"] == "m-1" and payload["camera_id"] == "gate"
    assert payload["captured_at"] == "2023-11-14T22:13:20+00:00"
    assert (payload["frame_width"], payload["frame_height"]) == (320, 240)
    assert [(d["class"], d["confidence"]) for d in payload["detections"]] == [
        ("head", 0.9),
        ("helmet", 0.25),
    ]
    assert payload["thresholds"] == {"head": 0.5, "helmet": 0.2, "person": 0.3}
    json.dumps(payload)  # what the outbox stores
    raw_img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    snap = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert raw == encode_jpeg(image, 95)  # the raw frame: the frame itself, unblurred

    def texture(img: np.ndarray, box: list[int]) -> float:
        """Mean absolute difference between neighbouring pixels: what a blur removes."""
        x1, y1, x2, y2 = box
        roi = img[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].astype(float)
        return float(np.abs(np.diff(roi, axis=1)).mean() + np.abs(np.diff(roi, axis=0)).mean())

    for box in ([20, 20, 80, 80], [200, 20, 260, 80], [120, 120, 180, 180]):
        # Every head the model found is blurred for viewers, even one below the threshold.
        assert texture(snap, box) < 0.5 * texture(raw_img, box), box
    assert texture(snap, [280, 150, 320, 240]) > 0.8 * texture(raw_img, [280, 150, 320, 240])
    no_blur = audit_message("gate", image, 0.0, detections, MODEL, PrivacyConfig(blur=False))[1]
    unblurred = cv2.imdecode(np.frombuffer(no_blur, np.uint8), cv2.IMREAD_COLOR)
    assert texture(unblurred, [200, 20, 260, 80]) > 0.8 * texture(raw_img, [200, 20, 260, 80])


# --- a real detector, a real service, an outage in between -----------------------------------


def _siteguard(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_real_detector_sends_audit_frames_through_an_outage_to_the_real_service(
    tmp_path: Path, free_port: int, bundled_model: Path, worker_images: list[Path]
) -> None:
    """Every processed frame is drawn (share 1), with or without a detection; the service is
    down while they are taken, so they wait in the outbox; once it is up, every one arrives as a
    training sample to label, carrying the model version and its detections."""
    pytest.importorskip("service.app")
    folder = tmp_path / "camera"
    folder.mkdir()
    for n, image in enumerate(worker_images[:3]):
        cv2.imwrite(str(folder / f"{n}-worker.jpg"), cv2.resize(cv2.imread(str(image)), (640, 480)))
    for n in range(2):  # an empty scene: the model sees nobody
        cv2.imwrite(str(folder / f"{n}-empty.jpg"), np.full((480, 640, 3), 90 + 40 * n, np.uint8))
    url = f"http://127.0.0.1:{free_port}"
    config = load_config(
        None,
        detector_id="edge-audit",
        model={"path": str(bundled_model), "watch": False, "follow_promotions": False},
        service={"url": url, "api_key": "not-yet", "retry_initial_s": 0.2, "retry_max_s": 0.5},
        outbox={"path": str(tmp_path / "outbox.sqlite3")},
        motion={"enabled": False},
        metrics={"enabled": False},
        audit={"share": 1.0, "min_interval_s": 0},
        cameras=[{"id": "yard", "source": str(folder), "fps": 4, "playback_fps": 4}],
    )
    runner = Runner(config)
    runner.start()
    thread = threading.Thread(target=runner.run_forever, daemon=True)
    thread.start()
    try:
        wait_until(lambda: runner.audit.counts["picked"] >= 10, timeout=240, interval=0.2)
    finally:
        runner.request_stop()
        thread.join(60)
    processed = runner.cameras["yard"].counts["processed"]
    assert runner.audit.counts["frames"] == processed == runner.audit.counts["picked"]

    outbox = Outbox(config.outbox.path)
    waiting = [m for m in outbox.due(limit=1000) if m.type == "audit"]
    assert len(waiting) == processed, "the service was down: every audit frame waits"
    assert all(m.frame and m.snapshot for m in waiting)
    assert {m.payload["model_version"] for m in waiting} == {runner.models.current.version}
    assert any(not m.payload["detections"] for m in waiting), "empty frames are drawn too"
    assert any(m.payload["detections"] for m in waiting)

    data = tmp_path / "service-data"
    admin = ["admin", "--data-dir", str(data)]
    _siteguard(*admin, "upgrade-db")
    _siteguard(*admin, "create-site", "site-a")
    _siteguard(*admin, "create-camera", "--site", "site-a", "yard")
    key = json.loads(_siteguard(*admin, "create-api-key", "--site", "site-a", "edge"))["key"]
    for name, role in (("trainer", "trainer"), ("viewer", "viewer")):
        _siteguard(*admin, "create-user", name, "--role", role, "--sites", "site-a",
                   "--password", "correct horse battery")  # fmt: skip
    tokens = {
        name: json.loads(_siteguard(*admin, "create-api-key", f"t-{name}", "--user", name))["key"]
        for name in ("trainer", "viewer")
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", CODE, "serve", "--data-dir", str(data), "--host", "127.0.0.1",
         "--port", str(free_port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=120, interval=0.3)
        service = config.service.model_copy(update={"api_key": key})
        assert Poster(service, outbox).drain()
        assert outbox.depth() == 0 and outbox.dead_count() == 0
        trainer = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tokens['trainer']}"}
        )
        viewer = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['viewer']}"})
        with trainer, viewer:
            items = trainer.get("/api/v1/samples", params={"kind": "audit"}).json()["items"]
            assert len(items) == len(waiting)
            assert {i["status"] for i in items} == {"to_label"}
            by_id = {i["event_id"]: i for i in items}
            for message in waiting:
                item = by_id[message.payload["audit_id"]]
                assert item["model_version"] == message.payload["model_version"]
                assert item["detections"] == message.payload["detections"]
                image = trainer.get(item["image_url"])
                assert image.status_code == 200 and image.content == message.frame
                assert viewer.get(item["image_url"]).status_code == 403  # raw: trainers only
                frame = viewer.get(f"/api/v1/audit-frames/{message.payload['audit_id']}").json()
                snapshot = viewer.get(frame["snapshot_url"])
                assert snapshot.status_code == 200 and snapshot.content == message.snapshot
    finally:
        proc.terminate()
        proc.wait(30)
        outbox.close()


# --- the poster ------------------------------------------------------------------------------


def test_the_poster_posts_audit_frames_and_an_old_service_does_not_block_the_queue(
    tmp_path: Path,
) -> None:
    """An audit message goes to POST /audit-frames as a form (audit JSON, frame, snapshot). A
    service without that route answers FastAPI's own 404: the message is kept dead and the events
    behind it still go; a 404 naming the camera is a set-up problem and is retried."""
    from detector.config import ServiceConfig

    seen: list[tuple[str, bytes]] = []
    answers = {
        "audit-1": (404, {"detail": "Not Found"}),
        "audit-2": (404, {"detail": "unknown camera 'x'"}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append((request.url.path, body))
        for audit_id, (status, detail) in answers.items():
            if audit_id.encode() in body:
                return httpx.Response(status, json=detail)
        return httpx.Response(201, json={})

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    poster = Poster(ServiceConfig(url="http://service.test", api_key="k"), outbox)
    poster._client = httpx.Client(
        base_url="http://service.test", transport=httpx.MockTransport(handler)
    )
    payload = {"audit_id": "audit-0", "camera_id": "gate", "detections": []}
    outbox.put("audit", "audit-0", payload, snapshot=b"\xff\xd8snap", frame=b"\xff\xd8raw")
    outbox.put("audit", "audit-1", {**payload, "audit_id": "audit-1"}, frame=b"\xff\xd8raw")
    outbox.put("open", "event-1", {"event_id": "event-1"})
    assert poster.drain()
    assert [path for path, _ in seen] == [
        "/api/v1/audit-frames",
        "/api/v1/audit-frames",
        "/api/v1/violations",
    ]
    first = seen[0][1]
    for part in (b'name="audit"', b'name="frame"', b'name="snapshot"', b"\xff\xd8raw", b"audit-0"):
        assert part in first
    assert outbox.depth() == 0 and outbox.dead_count() == 1  # kept, with its reason
    outbox.put("audit", "audit-2", {**payload, "audit_id": "audit-2"}, frame=b"\xff\xd8raw")
    assert not poster.drain()  # an unknown camera: retried later, like an event's
    assert outbox.depth() == 1
    poster.stop()
    outbox.close()
