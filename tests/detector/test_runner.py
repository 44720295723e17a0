"""The whole detector against a real uvicorn service: cameras in, events and heartbeats out."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import onnx
import pytest
from detector_testlib import API_KEY, ServiceProcess, wait_until, write_video

from detector.config import load_config
from detector.runner import Runner


def _worker_video(path: Path, images: list[Path], seconds_each: float = 2.0, fps: int = 10):
    """Real site photos as a 1280x720 clip, each held for a while (a worker standing there)."""
    frames = []
    for image in images:
        frame = cv2.resize(cv2.imread(str(image)), (1280, 720))
        frames += [frame] * int(seconds_each * fps)
    return write_video(path, frames, fps=fps)


def _with_version(source: Path, dest: Path, version: str) -> Path:
    """The same network re-saved with another `siteguard_version` (a new model release)."""
    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == "siteguard_version":
            prop.value = version
            break
    else:
        model.metadata_props.add(key="siteguard_version", value=version)
    onnx.save(model, str(dest))
    return dest


@pytest.fixture()
def make_runner(tmp_path: Path, coco_model: Path) -> Iterator:
    runners: list[tuple[Runner, threading.Thread]] = []

    def make(service: ServiceProcess, cameras: list[dict], **overrides) -> Runner:
        model = tmp_path / "model.onnx"
        if not model.exists():
            _with_version(coco_model, model, "v1")
        config = load_config(
            None,
            detector_id="edge-test",
            model={"path": str(model), "watch_interval_s": 0.3, "download_dir": str(tmp_path)},
            service={
                "url": service.url,
                "api_key": API_KEY,
                "heartbeat_interval_s": 0.5,
                "retry_initial_s": 0.2,
                "retry_max_s": 1.0,
            },
            outbox={"path": str(tmp_path / "outbox.sqlite3")},
            # COCO model: treat every person as a "bare head" so real detections drive the rules.
            rules={"bare_head_classes": ["person"], "hold_s": 0.5, "close_after_s": 1.0},
            metrics={"port": 0},
            cameras=cameras,
            **overrides,
        )
        runner = Runner(config)
        runner.start()
        thread = threading.Thread(target=runner.run_forever, daemon=True)
        thread.start()
        runners.append((runner, thread))
        return runner

    yield make
    for runner, thread in runners:
        runner.request_stop()
        thread.join(30)


def _last_heartbeat(service: ServiceProcess) -> dict:
    rows = service.query("SELECT body FROM heartbeats ORDER BY n DESC LIMIT 1")
    return json.loads(rows[0][0]) if rows else {}


def _states(service: ServiceProcess) -> dict[str, str]:
    return {c["camera_id"]: c["state"] for c in _last_heartbeat(service).get("cameras", [])}


def test_events_reach_the_service_while_broken_cameras_stay_broken(
    service: ServiceProcess, make_runner, worker_images: list[Path], tmp_path: Path, free_port
) -> None:
    video = _worker_video(tmp_path / "yard.mp4", worker_images[:3])
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    cameras = [
        {"id": "yard", "source": str(video), "fps": 5},
        {"id": "unreachable", "source": f"http://127.0.0.1:{free_port}/x.mjpg"},
        {"id": "corrupt", "source": str(corrupt)},
    ]
    runner = make_runner(service, cameras)
    wait_until(lambda: service.event_ids(), timeout=120)
    body, snapshot, frame = service.query("SELECT body, snapshot, frame FROM events LIMIT 1")[0]
    event = json.loads(body)
    assert event["camera_id"] == "yard" and event["kind"] == "no_helmet"
    assert event["zone"] == "site" and event["model_version"] == "v1"
    assert (event["frame_width"], event["frame_height"]) == (1280, 720)
    assert event["duration_s"] >= 0.5 and event["started_at"].endswith("+00:00")
    assert any(
        b["class"] == "person" and b["track_id"] == event["track_id"] for b in event["boxes"]
    )
    assert snapshot > 1000 and frame > 1000  # annotated snapshot and raw frame arrived
    wait_until(lambda: _states(service).get("yard") == "online", timeout=60)
    states = _states(service)
    assert states["unreachable"] == "offline" and states["corrupt"] == "offline"
    metrics = httpx.get(f"http://127.0.0.1:{runner.metrics_port}/metrics").text
    assert 'siteguard_detector_frames_processed_total{camera="yard"}' in metrics
    assert "siteguard_detector_inference_seconds_count" in metrics
    assert 'siteguard_detector_events_posted_total{type="open"}' in metrics
    assert 'siteguard_detector_camera_state{camera="unreachable",state="offline"} 1.0' in metrics


def test_static_camera_skips_inference(
    service: ServiceProcess, make_runner, worker_images: list[Path], tmp_path: Path
) -> None:
    video = _worker_video(tmp_path / "still.mp4", worker_images[:1], seconds_each=3)
    runner = make_runner(
        service,
        [{"id": "still", "source": str(video), "fps": 10}],
        motion={"keyframe_interval_s": 5.0},
    )
    pipe = runner.cameras["still"]
    wait_until(lambda: sum(pipe.counts.values()) >= 60, timeout=120)
    skipped = pipe.counts["skipped"] / sum(pipe.counts.values())
    assert skipped >= 0.8, pipe.counts


def test_image_folder_with_a_still_scene_still_opens_events(
    service: ServiceProcess, make_runner, worker_images: list[Path], tmp_path: Path
) -> None:
    """Motion gating skips the repeated pictures, yet the workers in them are tracked and the
    hold time passes: skipped frames re-use the last detections."""
    folder = tmp_path / "images"
    folder.mkdir()
    for image in worker_images[:2]:
        shutil.copy(image, folder / image.name)
    camera = {"id": "demo", "source": str(folder), "playback_fps": 5, "image_hold_s": 4}
    runner = make_runner(service, [camera], motion={"keyframe_interval_s": 30.0})
    wait_until(lambda: service.event_ids(), timeout=120)
    pipe = runner.cameras["demo"]
    assert pipe.counts["skipped"] > pipe.counts["processed"]


def test_hot_reload_rejects_a_corrupt_model_and_swaps_a_good_one(
    service: ServiceProcess, make_runner, worker_images: list[Path], tmp_path: Path
) -> None:
    video = _worker_video(tmp_path / "yard.mp4", worker_images[:2])
    runner = make_runner(service, [{"id": "yard", "source": str(video), "fps": 5}])
    pipe = runner.cameras["yard"]
    model = runner.config.model.path
    good = model.read_bytes()
    wait_until(lambda: pipe.counts["processed"] >= 3, timeout=120)

    model.write_bytes(good[: len(good) // 2])  # a half-copied file
    wait_until(
        lambda: runner.metrics.model_reloads.labels("rejected")._value.get() >= 1, timeout=60
    )
    before = pipe.counts["processed"]
    wait_until(lambda: pipe.counts["processed"] > before + 3, timeout=60)  # old model still runs
    assert runner.models.current.version == "v1"

    (tmp_path / "v1.onnx").write_bytes(good)
    _with_version(tmp_path / "v1.onnx", tmp_path / "v2.onnx", "v2")
    shutil.copy(tmp_path / "v2.onnx", model)  # a new release dropped in place
    wait_until(lambda: runner.models.current.version == "v2", timeout=60)
    before = pipe.counts["processed"]
    wait_until(lambda: pipe.counts["processed"] > before + 3, timeout=60)
    wait_until(lambda: _last_heartbeat(service).get("model_version") == "v2", timeout=60)
    assert runner.metrics.camera_errors.labels("yard")._value.get() == 0


def test_promoted_model_announced_by_the_service_is_downloaded_and_used(
    service: ServiceProcess, make_runner, worker_images: list[Path], tmp_path: Path
) -> None:
    video = _worker_video(tmp_path / "yard.mp4", worker_images[:1])
    runner = make_runner(service, [{"id": "yard", "source": str(video), "fps": 5}])
    served = _with_version(runner.config.model.path, service.models / "v3.onnx", "v3")
    sha = hashlib.sha256(served.read_bytes()).hexdigest()
    announce = {"version": "v3", "sha256": sha, "url": "/api/v1/models/v3/file"}
    service.active_file.write_text(json.dumps(announce))
    wait_until(lambda: runner.models.current.version == "v3", timeout=120)
    wait_until(lambda: _last_heartbeat(service).get("model_version") == "v3", timeout=60)
    assert (tmp_path / "v3.onnx").is_file()
